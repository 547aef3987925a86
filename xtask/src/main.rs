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
    write_gzip(&man.join("horad.8.gz"), &render(horad.clone(), "8")?)?;
    write_gzip(&man.join("hora.1.gz"), &render(hora.clone(), "1")?)?;
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
        let config = gunzip(&dir.path().join("man/hora-config.5.gz"));
        for key in ["idle_timeout", "local_stratum", "table_size", "allow"] {
            assert!(config.contains(key), "{key} not in hora-config(5)");
        }
    }
}
