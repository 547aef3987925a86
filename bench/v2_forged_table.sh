#!/usr/bin/env bash
# Protocol v2 against a table full of forged seed sessions (BENCHMARKS.md,
# "Protocol v2"): `forged_sessions` opens SESSIONS forged seed sessions
# (default 12,000, each asking the time and refreshed every 8 s: RATE
# 1,500 datagrams/s) against horad with `--max-sessions 10000`; meanwhile a
# real user (127.0.0.51) runs `hora time` every 100 ms, in turn with
# `--protocol seed` and `--protocol v2`. Needs root (a raw socket).
#
#   cargo build --release --bins --examples && bash bench/v2_forged_table.sh
set -euo pipefail
cd "$(dirname "$0")/.."
sessions=${SESSIONS:-12000}; rate=${RATE:-1500}; duration=${DURATION:-30}
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
target/release/horad --config /dev/null --bind 127.0.0.1:5110 --max-sessions 10000 \
  --stats-interval 0s --log-level error 2>/dev/null & pid=$!
sleep 0.5
target/release/examples/forged_sessions --server 127.0.0.1:5110 --sessions "$sessions" \
  --rate "$rate" --fill-rate 20000 --duration "${duration}s" > /tmp/forged_table.$$ 2>&1 &
sleep 3
declare -A served=([seed]=0 [v2]=0) asked=([seed]=0 [v2]=0)
end=$((SECONDS + duration - 5))
while [ $SECONDS -lt $end ]; do
  for protocol in seed v2; do
    asked[$protocol]=$((asked[$protocol] + 1))
    if target/release/hora --server 127.0.0.1:5110 --bind 127.0.0.51:0 --protocol "$protocol" --timeout 2s time >/dev/null 2>&1; then
      served[$protocol]=$((served[$protocol] + 1))
    fi
    sleep 0.05
  done
done
wait %2 || true
echo "forger: $(grep -v '^$' /tmp/forged_table.$$ | tail -1)"
echo "real user, seed protocol: ${served[seed]} of ${asked[seed]} got the time"
echo "real user, protocol v2:   ${served[v2]} of ${asked[v2]} got the time"
rm -f /tmp/forged_table.$$
kill -INT "$pid"; wait "$pid" || true
