#!/usr/bin/env bash
# Forged protocol v2 logins against horad (BENCHMARKS.md, "Protocol v2"):
# `loadgen v2-logins` sends LOGINs from 4,096 loopback addresses at RATE a
# second (default 100,000) for DURATION seconds, never confirming, and
# reads every answer; meanwhile horad's RSS is sampled each second and a
# real `hora time --protocol v2` asks every second. Run once as configured
# by default (rate limit on) and once with `--no-ratelimit` (every login
# answered). Prints the RSS series, bytes in and out, and the clients' results.
#
#   cargo build --release --bins --examples && bash bench/v2_flood.sh [RATE] [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-100000}; duration=${2:-20}
horad=${HORAD:-target/release/horad}
loadgen=${LOADGEN:-target/release/examples/loadgen}
hora=${HORA:-target/release/hora}
for limit in on off; do
  flags=(); [ "$limit" = off ] && flags=(--no-ratelimit)
  "$horad" --config /dev/null --bind 127.0.0.1:5108 --stats-interval 0s --log-level error "${flags[@]}" >/dev/null 2>&1 & pid=$!
  sleep 1
  rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
  echo "rate limit $limit: RSS before ${rss_kb:=$(rss)} kB"
  "$loadgen" --server 127.0.0.1:5108 v2-logins --sources 4096 --rate "$rate" --duration "${duration}s" > /tmp/v2_flood.$$ &
  gen=$!
  series=(); served=0; asked=0
  for _ in $(seq "$duration"); do
    sleep 1
    series+=("$(rss)")
    asked=$((asked + 1))
    if "$hora" --server 127.0.0.1:5108 --protocol v2 --timeout 2s time >/dev/null 2>&1; then served=$((served + 1)); fi
  done
  wait "$gen"
  echo "  RSS each second (kB): ${series[*]}"
  echo "  RSS after: $(rss) kB; v2 clients served during the flood: $served of $asked"
  echo "  $(cat /tmp/v2_flood.$$)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  unset rss_kb
  rm -f /tmp/v2_flood.$$
done
