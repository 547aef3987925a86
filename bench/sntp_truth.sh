#!/usr/bin/env bash
# horad's SNTP offset and delay against chronyd's, as BENCHMARKS.md reports
# them: servers pinned to core 0, the probe (and the load) on core 1.
#
#   cargo build --release --bins --examples && bash bench/sntp_truth.sh [ROUNDS]
#
# HORAD_BEFORE=path/to/an/older/horad adds its row, run with
# HORAD_BEFORE_ARGS (default --sntp-local-stratum 10; set it empty for builds
# before 2026-11-26, which lack the flag and served stratum 10 always).
# Needs chronyd (apt: chrony) and ntplib (pip). Loopback only; every run is
# bounded (500 probes 20 ms apart, loads of 12 s). The garbage flood is
# paced at 150,000 datagrams a second, as in the tracker's measurement. The
# load generators run at nice 19, so that the probe, on the same core, is
# woken at once: what it measures is the server, not its own scheduling.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
chrony_port=11123
horad_port=11124
scratch=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$scratch"' EXIT

cat > "$scratch/chrony.conf" <<CONF
port $chrony_port
bindaddress 127.0.0.1
allow 127.0.0.1
local stratum 10
cmdport 0
pidfile $scratch/chronyd.pid
driftfile $scratch/drift
CONF


probe() { taskset -c 1 python3 bench/sntp_probe.py "$1" 500; }

measure() { # name port
  local name=$1 port=$2
  echo "[$name idle] $(probe "$port")"
  nice -n 19 taskset -c 1 target/release/examples/loadgen --server 127.0.0.1:"$port" ntp \
    --clients 64 --duration 12s >"$scratch/load.out" &
  local load=$!
  sleep 1
  echo "[$name 64-client load] $(probe "$port")"
  wait "$load"
  echo "[$name   load itself] $(cat "$scratch/load.out")"
  nice -n 19 taskset -c 1 target/release/examples/loadgen --server 127.0.0.1:"$port" garbage \
    --duration 12s --rate 150000 >"$scratch/garbage.out" &
  local flood=$!
  sleep 1
  echo "[$name garbage flood] $(probe "$port")"
  wait "$flood"
  echo "[$name  flood itself] $(cat "$scratch/garbage.out")"
}

for round in $(seq "$rounds"); do
  echo "== round $round"
  taskset -c 0 chronyd -d -x -f "$scratch/chrony.conf" >/dev/null 2>"$scratch/chronyd.log" &
  pid=$!
  sleep 1
  measure chronyd $chrony_port
  kill "$pid"; wait "$pid" 2>/dev/null || true
  taskset -c 0 target/release/horad --config /dev/null --bind 127.0.0.1:0 \
    --sntp-bind 127.0.0.1:$horad_port --sntp-local-stratum 10 --no-ratelimit \
    --stats-interval 0s >/dev/null 2>"$scratch/horad.log" &
  pid=$!
  sleep 1
  measure horad $horad_port
  kill "$pid"; wait "$pid" 2>/dev/null || true
  if [ -n "${HORAD_BEFORE:-}" ]; then
    taskset -c 0 "$HORAD_BEFORE" --config /dev/null --bind 127.0.0.1:0 \
      --sntp-bind 127.0.0.1:$horad_port ${HORAD_BEFORE_ARGS---sntp-local-stratum 10} --no-ratelimit \
      --stats-interval 0s >/dev/null 2>"$scratch/before.log" &
    pid=$!
    sleep 1
    measure horad-before $horad_port
    kill "$pid"; wait "$pid" 2>/dev/null || true
  fi
done
