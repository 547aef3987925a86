#!/usr/bin/env bash
# The flood table of RELIABILITY.md: examples/flood.rs against horad, for each
# mix (mixed, logins alone) at 50,000/s, 100,000/s and as fast as one core
# sends, then from two generator threads at 100,000/s and as fast as they send
# (horad at nice 0, then at nice -5 as deploy/horad.service runs it). Pass the horad binaries
# to compare (default target/release/horad). Each line: the flood's report,
# horad's CPU over the flood (ticks of 10 ms) and what horad dropped as
# overloaded (shed). Loopback only; every run is bounded (100,000 sources).
#
#   cargo build --release --bins --examples && bash bench/flood_table.sh [HORAD...]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- target/release/horad
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
run() { # binary rate mix threads [nice]
  nice -n "${5:-0}" "$1" --config /dev/null --bind 127.0.0.1:5105 --metrics-bind 127.0.0.1:9976 --stats-interval 0s \
    2>"$d/horad.log" & pid=$!
  sleep 0.5
  before=$(cpu "$pid")
  out=$(target/release/examples/flood --server 127.0.0.1:5105 --sources 100000 --rate "$2" \
    --mix "$3" --flood-threads "$4" --pid "$pid" | tail -1)
  after=$(cpu "$pid")
  shed=$(curl -s 127.0.0.1:9976/metrics | awk '/^hora_dropped_total\{protocol="seed",reason="overloaded"\}/ {print $2}')
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "horad=$1 nice=${5:-0} mix=$3 rate=$2 flood_threads=$4 horad_cpu_ticks=$((after - before)) shed=${shed:-0} | $out"
}
for mix in mixed logins; do
  for rate in 50000 100000 0; do
    for horad in "$@"; do run "$horad" "$rate" "$mix" 1; done
  done
  for rate in 100000 0; do
    for horad in "$@"; do run "$horad" "$rate" "$mix" 2; done
  done
  for horad in "$@"; do run "$horad" 0 "$mix" 2 -5; done
done
