//! hora-config(5), the configuration file's man page, made from the shipped
//! `config.toml`: its comments document every key, and the test that the
//! built-in defaults equal that file keeps them honest.
//!
//! The file reads as: a header comment (the page's description), then
//! `[table]` headers, each key preceded by the comment lines about it. A
//! commented-out key (`# bind = "0.0.0.0:123"`) is an example, shown as one.

/// Renders the page (roff) from the text of `config.toml`.
pub fn render(config: &str, version: &str) -> String {
    let mut page = format!(
        ".TH HORA-CONFIG 5 \"\" \"hora {version}\" \"File Formats\"\n\
         .SH NAME\nhora-config \\- configuration file of horad, the hora time daemon\n\
         .SH SYNOPSIS\n/etc/hora/config.toml\n.SH DESCRIPTION\n"
    );
    let mut comment: Vec<String> = Vec::new();
    let mut in_header = true;
    let mut table = "";
    for line in config.lines() {
        let trimmed = line.trim();
        if let Some(text) = trimmed.strip_prefix('#') {
            let text = text.trim();
            if is_key_line(text) {
                // An example of a key off by default: an entry of its own,
                // with the comment above it, never text of the key before.
                page.push_str(&format!(".TP\n\\fB{}\\fR\n", escape(text)));
                page.push_str(&text_lines(&comment));
                page.push_str("(Commented out in the shipped file: not set by default.)\n");
                page.push_str(&about(table, text));
                comment.clear();
            } else if text.is_empty() && !comment.is_empty() {
                // A bare `#` ends a paragraph, as a blank line does.
                page.push_str(&paragraph(&comment));
                comment.clear();
            } else if !text.is_empty() {
                comment.push(text.to_owned());
            }
            continue;
        }
        if trimmed.is_empty() {
            if in_header && !comment.is_empty() {
                page.push_str(&paragraph(&comment));
                comment.clear();
                in_header = false;
            } else if !comment.is_empty() {
                page.push_str(&paragraph(&comment));
                comment.clear();
            }
            continue;
        }
        in_header = false;
        if trimmed.starts_with('[') {
            table = trimmed.trim_matches(['[', ']']);
            page.push_str(&format!(".SH {}\n", escape(trimmed)));
            page.push_str(&paragraph(&comment));
            comment.clear();
        } else if trimmed.contains('=') && !trimmed.starts_with('"') {
            // Not `.B`: it would take the value's quotes as its own.
            page.push_str(&format!(".TP\n\\fB{}\\fR\n", escape(trimmed)));
            page.push_str(&text_lines(&comment));
            page.push_str(&about(table, trimmed));
            comment.clear();
        } else {
            // A continuation of a multi-line value (a list of networks).
            page.push_str(&format!(".br\n{}\n", escape(trimmed)));
        }
    }
    page.push_str(&paragraph(&comment));
    page.push_str(".SH SEE ALSO\n.BR horad (8),\n.BR hora (1)\n");
    page
}

/// What the key table says of the key set on `line` under `[table]`: the
/// flag and variable that set it, and what a reload does with it.
fn about(table: &str, line: &str) -> String {
    let name = line.split('=').next().unwrap_or("").trim();
    let dotted = if table.is_empty() {
        name.to_owned()
    } else {
        format!("{table}.{name}")
    };
    let Some(key) = hora_server::config::key(&dotted) else {
        return String::new();
    };
    let set_by = match (key.flag, key.variable()) {
        (Some(flag), Some(variable)) => {
            format!(
                "Set also by \\fB{}\\fR or \\fB{variable}\\fR. ",
                escape(flag)
            )
        }
        _ => String::new(),
    };
    format!(".br\n{set_by}On reload: {}.\n", escape(key.reload.words()))
}

/// Whether a comment's text is a key set to a value (`bind = "0.0.0.0:123"`):
/// a key shown as an example, commented out.
fn is_key_line(text: &str) -> bool {
    text.split_once(" = ").is_some_and(|(key, _)| {
        !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    })
}

/// Lines of comment text as a roff paragraph.
fn paragraph(lines: &[String]) -> String {
    if lines.iter().all(String::is_empty) {
        return String::new();
    }
    format!(".PP\n{}", text_lines(lines))
}

fn text_lines(lines: &[String]) -> String {
    lines
        .iter()
        .filter(|line| !line.is_empty())
        .map(|line| format!("{}\n", escape(line)))
        .collect()
}

/// Escapes roff's backslash, and a leading dot or quote that would read as a
/// request.
fn escape(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_tagged_paragraphs_under_their_tables() {
        let page = render(
            "# The file.\n\n# How long.\nidle_timeout = \"10s\"\n\n[log]\n# The level.\nlevel = \"info\"\n",
            "1.0",
        );
        assert!(page.starts_with(".TH HORA-CONFIG 5"));
        assert!(page.contains(".PP\nThe file.\n"));
        assert!(
            page.contains(".TP\n\\fBidle_timeout = \"10s\"\\fR\nHow long.\n"),
            "{page}"
        );
        assert!(page.contains(".SH [log]\n"));
        // The key table's words, under the key's own table.
        assert!(
            page.contains("How long.\n.br\nSet also by \\fB\\-\\-idle\\-timeout\\fR or \\fBHORAD_IDLE_TIMEOUT\\fR. On reload: applied at once.\n"),
            "{page}"
        );
        assert!(page.contains("\\fB\\-\\-log\\-level\\fR"), "{page}");
        assert!(page.contains("\\fBlevel = \"info\"\\fR\nThe level.\n"));
    }

    /// A key commented out in the shipped file (off by default) gets an
    /// entry of its own with the comment above it, not a place in the text
    /// of the key before it; a bare `#` ends a paragraph.
    #[test]
    fn commented_out_keys_get_entries_of_their_own() {
        let page = render(
            "[sntp]\n# What it is.\n#\n# Where.\n# bind = \"0.0.0.0:123\"\n# How many.\nclient_log = 8\n# Serve anyway.\n# local_stratum = 10\n",
            "1.0",
        );
        assert!(page.contains(".PP\nWhat it is.\n"), "{page}");
        assert!(
            page.contains(".TP\n\\fBbind = \"0.0.0.0:123\"\\fR\nWhere.\n(Commented out"),
            "{page}"
        );
        assert!(
            page.contains(".TP\n\\fBclient_log = 8\\fR\nHow many.\n.br\nSet also by"),
            "{page}"
        );
        assert!(
            page.contains(".TP\n\\fBlocal_stratum = 10\\fR\nServe anyway.\n"),
            "{page}"
        );
    }

    #[test]
    fn roff_requests_in_text_are_escaped() {
        assert_eq!(escape(".hidden"), "\\&.hidden");
        assert_eq!(escape("a\\b"), "a\\eb");
        assert_eq!(escape("--flag"), "\\-\\-flag");
    }
}
