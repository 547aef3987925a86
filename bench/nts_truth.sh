#!/usr/bin/env bash
# horad's offsets and delays with NTS against plain SNTP, idle and under a
# 64-client NTS load (BENCHMARKS.md, "NTS"): the same probe code
# (`nts_load probe`, 500 requests 20 ms apart), plain and NTS, against one
# horad serving both. horad pinned to core 0, the probe and the load on
# core 1 (the load at nice 19, so the probe is woken at once).
#
#   cargo build --release --bins --examples && bash bench/nts_truth.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
d=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$d"' EXIT
bash bench/make_cert.sh "$d" IP:127.0.0.1
taskset -c 0 target/release/horad --config /dev/null --bind 127.0.0.1:0 --sntp-bind 127.0.0.1:11124 \
  --sntp-local-stratum 10 --nts-bind 127.0.0.1:14461 --nts-certificate-chain "$d/chain.pem" \
  --nts-private-key "$d/key.pem" --nts-keys "$d/keys" --no-ratelimit --stats-interval 0s --log-level warn &
sleep 1
nts=(target/release/examples/nts_load --ke 127.0.0.1:14461 --ca "$d/ca.pem")
probe() { taskset -c 1 "${nts[@]}" probe "$@" | sed 's/^mode=probe //'; }
for round in $(seq "$rounds"); do
  echo "round=$round idle plain: $(probe --plain --ntp 127.0.0.1:11124)"
  echo "round=$round idle nts:   $(probe)"
  nice -n 19 taskset -c 1 "${nts[@]}" requests --clients 64 --duration 24s > "$d/load" &
  load=$!
  sleep 2
  echo "round=$round load plain: $(probe --plain --ntp 127.0.0.1:11124)"
  echo "round=$round load nts:   $(probe)"
  wait "$load"
  echo "round=$round the load:   $(cat "$d/load")"
done
