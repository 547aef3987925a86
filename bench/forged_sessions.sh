#!/usr/bin/env bash
# Forged seed sessions holding the table (RELIABILITY.md, "Forged sessions
# against the table"): SESSIONS forged sources, each refreshed every
# SESSIONS / RATE seconds, against horad (its defaults, or EXTRA flags), and
# a real client logging in every 100 ms; then horad's own counts. Needs root
# (a raw socket). Loopback only; DURATION long.
#
#   cargo build --release --bins --examples
#   SESSIONS=12000 RATE=1500 bash bench/forged_sessions.sh [HORAD] [EXTRA...]
set -euo pipefail
cd "$(dirname "$0")/.."
horad=${1:-target/release/horad}; shift || true
sessions=${SESSIONS:-12000}; rate=${RATE:-1500}; fill=${FILL:-20000}; duration=${DURATION:-30s}
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
"$horad" --config /dev/null --bind 127.0.0.1:5109 --metrics-bind 127.0.0.1:9979 \
  --stats-interval 0s --log-level warn "$@" 2>/dev/null & pid=$!
sleep 0.5
target/release/examples/forged_sessions --server 127.0.0.1:5109 --sessions "$sessions" \
  --rate "$rate" --fill-rate "$fill" --duration "$duration"
curl -s -m 2 127.0.0.1:9979/metrics |
  grep -E '^hora_(sessions_open|logins_refused_total|logins_displacing_total|logins_total|dropped_total\{reason="(rate_limited|overloaded)"\})' || true
echo "horad VmHWM: $(awk '/VmHWM/ {print $2, $3}' /proc/$pid/status)"
kill -INT "$pid"; wait "$pid" || true
