#!/usr/bin/env bash
# Builds the Debian package `hora` (target/debian/hora_*.deb): release
# binaries, then the man pages and completions generated from the clap
# definitions and config.toml (xtask), then cargo-deb.
#
#   cargo install cargo-deb     # once
#   bash deploy/build-deb.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p hora-server -p hora-client
cargo run --release --locked -q -p xtask -- assets target/release/assets
cargo deb --locked -p hora-server --no-build "$@"
