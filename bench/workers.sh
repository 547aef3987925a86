#!/usr/bin/env bash
# Requests a second and CPU per request with 1, 2, 4, ... workers
# (BENCHMARKS.md, "Workers"): the seed protocol (64 closed-loop sessions per
# load generator, `loadgen load`) or SNTP (64 closed-loop clients, `loadgen
# ntp`), every load generator's sessions spread over 64 source addresses of
# its own (127.0.G.1-64), as the hosts of a LAN: horad steers each address
# to one worker. The worker counts take turns for ROUNDS rounds of
# DURATION; CPU per request is horad's utime+stime over the round
# (/proc/PID/stat, every thread) divided by the requests answered.
#
#   cargo build --release --bins --examples
#   bash bench/workers.sh seed|sntp ROUNDS "1 2" [LOADGENS]
#
# PIN=1 pins horad's workers to cores 0..W-1 (taskset) and each load
# generator to a core of its own from CORES_FROM on (default: after the
# most workers asked): the scaling run on a machine with cores to spare.
# HORAD and LOADGEN name other binaries (a machine without a build tree).
# Loopback only. The last lines sum it up: each count's means and its
# per-round ratio to the first count, with its standard error.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?seed or sntp}; rounds=${2:-4}; counts=${3:-"1 2"}; loadgens=${4:-1}
horad=${HORAD:-target/release/horad}
loadgen=${LOADGEN:-target/release/examples/loadgen}
duration=${DURATION:-5s}
most=$(echo "$counts" | tr ' ' '\n' | sort -n | tail -1)
cores_from=${CORES_FROM:-$most}
d=$(mktemp -d)
trap 'pkill -f "$horad --config /dev/null --bind 127.0.0.1:5206" 2>/dev/null || true; rm -rf "$d"' EXIT
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
case "$mode" in
  seed) port=5206; load=(load --sessions 64) ;;
  sntp) port=11206; load=(ntp --clients 64) ;;
  *) echo "mode: seed or sntp" >&2; exit 2 ;;
esac
for round in $(seq "$rounds"); do
  for workers in $counts; do
    pin=()
    if [ "${PIN:-0}" = 1 ]; then pin=(taskset -c "0-$((workers - 1))"); fi
    "${pin[@]}" "$horad" --config /dev/null --bind 127.0.0.1:5206 --sntp-bind 127.0.0.1:11206 \
      --sntp-local-stratum 10 --max-sessions 400000 --max-sessions-per-ip 400000 --no-ratelimit \
      --stats-interval 0s --log-level error --workers "$workers" >/dev/null 2>&1 &
    sleep 1
    pid=$(pgrep -f "$horad --config /dev/null --bind 127.0.0.1:5206" | head -1)
    before=$(cpu "$pid")
    pids=()
    for g in $(seq "$loadgens"); do
      lpin=()
      if [ "${PIN:-0}" = 1 ]; then lpin=(taskset -c "$((cores_from + g - 1))"); fi
      "${lpin[@]}" "$loadgen" --server "127.0.0.1:$port" --addresses 64 "${load[@]}" --ip "127.0.$g.1" \
        --duration "$duration" 2>/dev/null | grep mode= > "$d/load.$g" &
      pids+=($!)
    done
    wait "${pids[@]}" || true
    after=$(cpu "$pid")
    kill "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    sum() { cat "$d"/load.* | { grep -o " $1=[0-9]*" || true; } | cut -d= -f2 | awk '{s+=$1} END {print s+0}'; }
    answered=$(sum requests); rate=$(sum rps); lost=$(( $(sum lost_sessions) + $(sum failed_clients) ))
    p99=$(cat "$d"/load.* | grep -o " p99_us=[0-9]*" | cut -d= -f2 | sort -n | tail -1)
    rm -f "$d"/load.*
    echo "round=$round workers=$workers req_per_s=$rate cpu_us_per_req=$(python3 -c "print(round(($after-$before)/$ticks*1e6/max($answered,1), 2))") worst_p99_us=$p99 lost=$lost"
  done
done | tee "$d/rounds"
python3 - "$d/rounds" <<'PY'
import collections, re, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    m = re.search(r"workers=(\d+) req_per_s=(\d+) cpu_us_per_req=([\d.]+)", line)
    if m:
        runs[int(m[1])].append((int(m[2]), float(m[3])))
names = list(runs)
for name in names:
    rates = [r for r, _ in runs[name]]
    cpus = [c for _, c in runs[name]]
    line = f"summary workers={name} rounds={len(rates)} mean_req_per_s={statistics.mean(rates):.0f} mean_cpu_us_per_req={statistics.mean(cpus):.2f}"
    if name != names[0] and len(rates) > 1:
        ratios = [r / ref for r, (ref, _) in zip(rates, runs[names[0]])]
        cpu_ratios = [c / ref for c, (_, ref) in zip(cpus, runs[names[0]])]
        sem = lambda xs: statistics.stdev(xs) / len(xs) ** 0.5
        line += f" ratio_to_{names[0]}={statistics.mean(ratios):.3f}+-{sem(ratios):.3f} cpu_ratio={statistics.mean(cpu_ratios):.3f}+-{sem(cpu_ratios):.3f}"
    print(line)
PY
