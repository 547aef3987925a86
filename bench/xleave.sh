#!/usr/bin/env bash
# chronyd as an interleaved-mode (`xleave`) client, polling every 0.25 s,
# against chronyd's own server and against horad, one after the other in
# the same run: how many of its samples were interleaved, its median
# abs(offset) and peer delay (from its measurements log), and the share of
# replies it counted good (`chronyc ntpdata`). BENCHMARKS.md reports these.
#
#   cargo build --release --bins --examples && sudo bash bench/xleave.sh [SECONDS] [LOAD]
#
# LOAD (default 0): that many basic SNTP clients (examples/loadgen) load
# the server being probed, as bench/sntp_truth.sh does. HORAD=path measures
# another horad build (HORAD_ARGS adds flags). Servers on core 0, the
# client chronyd and the load on core 1. Needs root (chronyd -x -u root) and
# chrony; loopback only; bounded: SECONDS (default 20) per server.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
load=${2:-0}
horad=${HORAD:-target/release/horad}
port=11123
scratch=$(mktemp -d)
chmod 700 "$scratch"
trap 'pkill -f "$scratch" 2>/dev/null || true; kill $(jobs -p) 2>/dev/null || true; rm -rf "$scratch"' EXIT

cat > "$scratch/server.conf" <<CONF
port $port
bindaddress 127.0.0.2
allow 127.0.0.0/8
local stratum 10
cmdport 0
pidfile $scratch/server.pid
CONF

probe() { # name address
  local name=$1 address=$2 dir="$scratch/$1"
  mkdir -p "$dir/log" && chmod 700 "$dir"
  cat > "$dir/client.conf" <<CONF
server $address port $port xleave minpoll -2 maxpoll -2 iburst
port 0
bindcmdaddress $dir/chronyd.sock
pidfile $dir/client.pid
logdir $dir/log
log measurements
CONF
  local loading=
  if [ "$load" -gt 0 ]; then
    nice -n 19 taskset -c 1 target/release/examples/loadgen --server "$address:$port" ntp \
      --clients "$load" --duration "$((seconds + 2))s" >"$dir/load.out" &
    loading=$!
  fi
  taskset -c 1 chronyd -d -x -u root -f "$dir/client.conf" >"$dir/client.out" 2>&1 &
  local client=$!
  sleep "$seconds"
  chronyc -h "$dir/chronyd.sock" ntpdata >"$dir/ntpdata" 2>&1 || true
  kill "$client"; wait "$client" 2>/dev/null || true
  if [ -n "$loading" ]; then wait "$loading"; echo "         load: $(cat "$dir/load.out")"; fi
  python3 - "$name" "$address" "$dir" "$load" <<'PY'
import statistics, sys
name, address, directory, load = sys.argv[1:]
rows = []
for line in open(f"{directory}/log/measurements.log"):
    f = line.split()
    if len(f) > 18 and f[2] == address:
        rows.append((f[-3][-1], abs(float(f[11])), float(f[12]), float(f[11]), "".join(f[5:8])))
failing = " ".join(f"{r[0]}:{r[4]}" for r in rows if set(r[4]) != {"1"})
# The first samples of a new source are basic by design (interleaving
# needs two earlier replies): skip three.
rows = rows[3:]
data = dict(l.split(":", 1) for l in open(f"{directory}/ntpdata") if ":" in l)
rx = good = 0
for key, value in data.items():
    if key.strip() == "Total RX": rx = int(value)
    if key.strip() == "Total good RX": good = int(value)
xleave = sum(1 for r in rows if r[0] == "I")
print(f"{name:8} load={load:>3} samples={len(rows)} interleaved={xleave}/{len(rows)} "
      f"median_abs_offset_us={statistics.median(r[1] for r in rows)*1e6:.2f} "
      f"median_delay_us={statistics.median(r[2] for r in rows)*1e6:.2f} "
      f"(to server {statistics.median((r[2] + 2 * r[3]) / 2 for r in rows)*1e6:.2f}, "
      f"back {statistics.median((r[2] - 2 * r[3]) / 2 for r in rows)*1e6:.2f}) "
      f"good={good}/{rx} ({100*good/max(rx,1):.0f}%) failing_tests=[{failing}]")
PY
}

taskset -c 0 chronyd -d -x -f "$scratch/server.conf" >"$scratch/server.out" 2>&1 &
server=$!
sleep 1
probe chronyd 127.0.0.2
kill "$server"; wait "$server" 2>/dev/null || true

# shellcheck disable=SC2086
taskset -c 0 "$horad" --config /dev/null --bind 127.0.0.1:0 --sntp-bind 127.0.0.3:$port \
  --sntp-local-stratum 10 --no-ratelimit --stats-interval 0s ${HORAD_ARGS:-} \
  >"$scratch/horad.out" 2>&1 &
server=$!
sleep 1
probe horad 127.0.0.3
kill "$server"; wait "$server" 2>/dev/null || true
