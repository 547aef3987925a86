//! Build tasks for hora, run as `cargo run -p xtask -- <task>`.
//!
//! `assets [DIR]` (default `target/release/assets`, where the package takes them) writes what the Debian package
//! (and a by-hand install) ships besides the binaries, generated from the
//! same definitions the programs use, so they can never drift from `--help`:
//!
//! - `man/horad.8.gz`, `man/hora.1.gz`: from the clap definitions
//!   (`clap_mangen`);
//! - `man/hora-config.5.gz`: from the commented shipped `config.toml`, whose
//!   comments document every key (the same file the built-in defaults are
//!   tested against);
//! - `completions/`: bash, zsh and fish completions for both programs
//!   (`clap_complete`).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::CommandFactory as _;
use clap_complete::Shell;

mod config_page;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("assets") => {
            let out = args.next().map_or_else(
                || workspace_root().join("target/release/assets"),
                PathBuf::from,
            );
            assets(&out)?;
            println!("wrote {}", out.display());
            Ok(())
        }
        _ => bail!("usage: cargo run -p xtask -- assets [DIR]"),
    }
}

/// The workspace's root: this crate's parent.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Writes every man page and completion under `out`.
pub fn assets(out: &Path) -> anyhow::Result<()> {
    let man = out.join("man");
    let completions = out.join("completions");
    for dir in [&man, &completions] {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let horad = hora_server::cli::Args::command();
    let hora = hora_client::cli::Args::command();
    let mut horad_page = render(horad.clone(), "8")?;
    horad_page.extend_from_slice(horad_sections().as_bytes());
    write_gzip(&man.join("horad.8.gz"), &horad_page)?;
    let mut hora_page = render(hora.clone(), "1")?;
    hora_page.extend_from_slice(HORA_SECTIONS.as_bytes());
    write_gzip(&man.join("hora.1.gz"), &hora_page)?;
    // hora(1) names a page for each command (hora-time(1), hora-sntp(1)):
    // each has its own, with its flags and the global ones.
    let mut built = hora.clone();
    built.build();
    for sub in built
        .get_subcommands()
        .filter(|sub| sub.get_name() != "help")
    {
        // clap names commands with `&'static str` (without its `string`
        // feature): two small names, once a build.
        let name: &'static str = Box::leak(format!("hora-{}", sub.get_name()).into_boxed_str());
        let mut page = render(sub.clone().name(name), "1")?;
        page.extend_from_slice(HORA_SECTIONS.as_bytes());
        write_gzip(&man.join(format!("{name}.1.gz")), &page)?;
    }
    let config = fs::read_to_string(workspace_root().join("config.toml"))
        .context("cannot read config.toml")?;
    write_gzip(
        &man.join("hora-config.5.gz"),
        config_page::render(&config, env!("CARGO_PKG_VERSION")).as_bytes(),
    )?;
    for (mut command, name) in [(horad, "horad"), (hora, "hora")] {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            clap_complete::generate_to(shell, &mut command, name, &completions)
                .with_context(|| format!("cannot write the {shell} completion of {name}"))?;
        }
    }
    Ok(())
}

/// [`HORAD_SECTIONS`], with the keys that change only at restart from the
/// key table.
fn horad_sections() -> String {
    let restart_only: Vec<&str> =
        hora_server::config::keys::names(hora_server::config::Reload::Restart).collect();
    let list = match restart_only.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => "No key".to_owned(),
    };
    HORAD_SECTIONS.replace("{RESTART_ONLY}", &list)
}

/// What horad(8) says beyond its options, as chronyd(8) and sshd(8) do.
const HORAD_SECTIONS: &str = r#".SH SIGNALS
.TP
\fBSIGHUP\fR
Reload: read the configuration file read at start\-up again, with the same flags on
top and the same checks, and apply what can change live (access lists, rate limits,
session limits, idle timeout, log level, SNTP clock fields, NTS's certificate and key
and its require, ntp_server and ntp_port) without dropping a session. A file that fails
to validate, moves a socket, is no regular file, or is gone is refused with one log line
and the running configuration stays. {RESTART_ONLY} change only at restart;
hora\-config(5) says of each key what a reload does. \fBsystemctl reload horad\fR sends it.
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Shut down: every open session is told (\fIServidor desligando. Conexao encerrada\fR),
the summary of the counters is logged, and horad exits 0.
.SH EXIT STATUS
.TP
\fB0\fR
A clean shutdown, or \fB\-\-check\-config\fR found the configuration valid.
.TP
\fB1\fR
Another failure at start\-up (NTS's certificate or keys, the runtime).
.TP
\fB2\fR
A bad configuration or command line (one line naming the file, line and key), a
socket passed by systemd that the configuration does not bind, or a Roughtime key file
that is not a key or that other users may read.
.TP
\fB3\fR
An address could not be bound (in use, or a privileged port without the capability).
.TP
\fB141\fR
\fB\-\-check\-config\fR wrote into a pipe whose reader had gone, as cat(1) ends.
.SH FILES
.TP
\fI/etc/hora/config.toml\fR
The configuration read when neither \fB\-\-config\fR nor \fBHORAD_CONFIG\fR names one, if
it exists; see hora\-config(5). Never a file in the working directory.
.TP
\fI/var/lib/hora/nts\-keys\fR
The NTS cookie keys, when \fB[nts] keys\fR names it so (the packaged unit's state directory).
.TP
\fI/var/lib/hora/roughtime.key\fR
The Roughtime long\-term key (an Ed25519 seed, mode 0600, made when absent), when
\fB[roughtime] key\fR names it so; \fB\-\-roughtime\-public\-key\fR prints its public half.
.SH ENVIRONMENT
.TP
\fBHORAD_*\fR
Each flag's variable, as \fB\-\-help\fR lists them (\fBHORAD_BIND\fR, \fBHORAD_SNTP_BIND\fR, ...).
.TP
\fBRUST_LOG\fR
A log filter that overrides \fB[log] level\fR, at start\-up and on reload.
.TP
\fBJOURNAL_STREAM\fR
Set by systemd: when it names standard error, each line carries its priority for
journald and no timestamp of its own.
.TP
\fBNOTIFY_SOCKET\fR
Set by systemd (Type=notify): horad says READY=1 once every socket is bound,
RELOADING=1 and READY=1 around a reload, STOPPING=1 at shutdown.
.TP
\fBLISTEN_FDS\fR, \fBLISTEN_PID\fR, \fBLISTEN_FDNAMES\fR
Set by systemd (socket activation, sd_listen_fds(3)): horad serves on each passed socket
whose address its configuration binds (a name of \fIseed\fR, \fIsntp\fR, \fItime\fR,
\fIdaytime\fR, \fIroughtime\fR, \fImetrics\fR or \fInts\-ke\fR ties it to that protocol), so what clients send
while it restarts waits for the next horad; /usr/share/doc/hora/examples/horad.socket is a
socket unit for it.
.SH SEE ALSO
hora(1), hora\-config(5), chronyd(8), systemd.service(5), systemd.socket(5);
/usr/share/doc/hora/README.md and PROTOCOL.md.
"#;

/// What hora(1) and its commands' pages say beyond their options.
const HORA_SECTIONS: &str = r#".SH EXIT STATUS
.TP
\fB0\fR
The session ended normally, or a time was obtained.
.TP
\fB1\fR
Silence, a refusal (\fIServidor lotado\fR), an invalid option at the menu (the server
ended the session on it), an idle timeout, a shutdown, no valid time (an unsynchronized
server over SNTP or v2, a kiss\-o'\-death, a NTSN, a Roughtime response that failed
verification), a network error, or a server name that did not resolve.
.TP
\fB2\fR
A bad command line, or a server address that is no address or host name at all.
.TP
\fB130\fR
Interrupted (Ctrl\-C) at the menu, after logging out.
.TP
\fB141\fR
The reader of standard output went away (a closed pipe), as cat(1) ends.
.SH ENVIRONMENT
.TP
\fBHORA_SERVER\fR
The server, as \fB\-\-server\fR; for every command, so give it without a port to share it
between the seed's protocol (5005), \fBsntp\fR (123, 4460 with \fB\-\-nts\fR) and
\fBroughtime\fR (2002).
.SH SEE ALSO
hora(1), hora\-time(1), hora\-sntp(1), hora\-roughtime(1), horad(8), hora\-config(5), ntpdate(8), chronyd(8).
"#;

/// A man page of `command` in `section`.
fn render(command: clap::Command, section: &str) -> anyhow::Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .section(section)
        .render(&mut page)
        .context("cannot render a man page")?;
    Ok(page)
}

/// Writes `bytes` gzipped as Debian wants man pages: best compression, no
/// name or time stamp in the header, so builds are reproducible.
fn write_gzip(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let file =
        fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(file, flate2::Compression::best());
    encoder.write_all(bytes)?;
    encoder.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn gunzip(path: &Path) -> String {
        let mut text = String::new();
        flate2::read::GzDecoder::new(fs::File::open(path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    #[test]
    fn the_man_pages_have_the_sections_a_daemon_and_a_client_need() {
        let dir = tempfile::tempdir().unwrap();
        assets(dir.path()).unwrap();
        let horad = gunzip(&dir.path().join("man/horad.8.gz"));
        for section in ["SIGNALS", "EXIT STATUS", "FILES", "ENVIRONMENT", "SEE ALSO"] {
            assert!(
                horad.contains(&format!(".SH {section}")),
                "horad(8): {section}"
            );
        }
        assert!(horad.contains("SIGHUP"));
        let hora = gunzip(&dir.path().join("man/hora.1.gz"));
        for section in ["EXIT STATUS", "ENVIRONMENT", "SEE ALSO"] {
            assert!(
                hora.contains(&format!(".SH {section}")),
                "hora(1): {section}"
            );
        }
        let config = gunzip(&dir.path().join("man/hora-config.5.gz"));
        let per_ip = config
            .split("max_sessions_per_ip")
            .nth(1)
            .unwrap_or_default();
        assert!(
            per_ip.contains("source IP address"),
            "max_sessions_per_ip has its own description"
        );
    }

    #[test]
    fn every_flag_of_both_programs_is_in_its_man_page_and_completions() {
        let dir = tempfile::tempdir().unwrap();
        assets(dir.path()).unwrap();
        for (command, page, name) in [
            (hora_server::cli::Args::command(), "man/horad.8.gz", "horad"),
            (hora_client::cli::Args::command(), "man/hora.1.gz", "hora"),
        ] {
            let man = gunzip(&dir.path().join(page));
            let bash =
                fs::read_to_string(dir.path().join(format!("completions/{name}.bash"))).unwrap();
            assert!(dir.path().join(format!("completions/_{name}")).is_file());
            assert!(dir
                .path()
                .join(format!("completions/{name}.fish"))
                .is_file());
            for arg in command.get_arguments() {
                if let Some(long) = arg.get_long() {
                    // roff escapes the hyphens of a flag.
                    let escaped = format!("\\-\\-{}", long.replace('-', "\\-"));
                    assert!(
                        man.contains(&escaped),
                        "{name}: --{long} not in its man page"
                    );
                    assert!(
                        bash.contains(&format!("--{long}")),
                        "{name}: --{long} not completed"
                    );
                }
            }
        }
        // Each command's flags in its own page, which hora(1) names.
        let hora_page = gunzip(&dir.path().join("man/hora.1.gz"));
        for sub in hora_client::cli::Args::command().get_subcommands() {
            let name = format!("hora-{}", sub.get_name());
            assert!(
                hora_page.contains(&format!("{}(1)", name.replace('-', "\\-"))),
                "{name}"
            );
            let page = gunzip(&dir.path().join(format!("man/{name}.1.gz")));
            for arg in sub.get_arguments() {
                if let Some(long) = arg.get_long() {
                    let escaped = format!("\\-\\-{}", long.replace('-', "\\-"));
                    assert!(
                        page.contains(&escaped),
                        "{name}: --{long} not in its man page"
                    );
                }
            }
        }
        let config = gunzip(&dir.path().join("man/hora-config.5.gz"));
        for key in ["idle_timeout", "local_stratum", "table_size", "allow"] {
            assert!(config.contains(key), "{key} not in hora-config(5)");
        }
        // What a reload does, for every key of the table: as many entries
        // say it as the table has keys.
        let said = config.matches("On reload: ").count();
        assert_eq!(said, hora_server::config::KEYS.len(), "{config}");
        let horad = gunzip(&dir.path().join("man/horad.8.gz"));
        assert!(
            horad.contains("workers, stats_interval, log.format, nts.keys, nts.key_rotation, roughtime.key and roughtime.delegation change only at restart"),
            "{horad}"
        );
    }
}
