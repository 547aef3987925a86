#!/usr/bin/env bash
# One source asking 200 times a second while 250,000 others ask once each
# (RELIABILITY.md, "A rate limit no crowd can loosen"): for each horad given
# (default: this tree's release build), on SNTP and on the seed protocol, how
# many of the source's requests were answered against rate x seconds + burst
# (20 x 10 + 40 = 240 at the defaults). Loopback only; about 25 s a daemon.
#
#   cargo build --release --bins --examples && bash bench/crowd.sh [HORAD...]
set -euo pipefail
cd "$(dirname "$0")/.."
crowd=${CROWD:-250000}; duration=${DURATION:-10s}
[ $# -gt 0 ] || set -- target/release/horad
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
for horad in "$@"; do
  for protocol in sntp seed; do
    "$horad" --config /dev/null --bind 127.0.0.1:5108 --sntp-bind 127.0.0.1:5124 \
      --sntp-local-stratum 10 --stats-interval 0s --log-level warn & pid=$!
    sleep 0.5
    port=$([ "$protocol" = sntp ] && echo 5124 || echo 5108)
    printf '%s %s: ' "$horad" "$protocol"
    target/release/examples/crowd --server "127.0.0.1:$port" --protocol "$protocol" \
      --crowd "$crowd" --duration "$duration"
    kill -INT "$pid"; wait "$pid" || true
  done
done
