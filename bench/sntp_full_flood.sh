#!/usr/bin/env bash
# SNTP under a garbage flood at full speed (BENCHMARKS.md): chronyd and horad
# pinned to core 0; on core 1 the probe and, at nice 19, the flood. Loopback
# only; each round is bounded (12 s of flood, 500 probes).
#
#   cargo build --release --bins --examples && bash bench/sntp_full_flood.sh
set -euo pipefail
cd "$(dirname "$0")/.."
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
printf "port 11123\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 10\ncmdport 0\npidfile $d/pid\ndriftfile $d/drift\n" > $d/c.conf
for server in chronyd horad chronyd horad; do
  if [ $server = chronyd ]; then
    taskset -c 0 chronyd -d -x -f $d/c.conf >/dev/null 2>&1 & pid=$!; port=11123
  else
    taskset -c 0 target/release/horad --config /dev/null --bind 127.0.0.1:0 --sntp-bind 127.0.0.1:11124 --sntp-local-stratum 10 --no-ratelimit --stats-interval 0s >/dev/null 2>&1 & pid=$!; port=11124
  fi
  sleep 1
  nice -n 19 taskset -c 1 target/release/examples/loadgen --server 127.0.0.1:$port garbage --duration 12s --rate 0 > $d/flood.out &
  f=$!
  sleep 1
  echo "[$server garbage at full speed] $(taskset -c 1 python3 bench/sntp_probe.py $port 500) | $(cat $d/flood.out)"
  wait $f
  echo "   flood: $(cat $d/flood.out)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
