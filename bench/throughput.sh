#!/usr/bin/env bash
# Throughput and CPU per request against the issue's reference (BENCHMARKS.md):
#   sntp: horad against chronyd (`local stratum 10`, no rate limit), 64
#         closed-loop SNTP clients (`loadgen ntp`);
#   xleave: the same, the clients in interleaved mode (`loadgen ntp
#         --interleaved`, as chronyd's `xleave`);
#   seed: horad against the project's one-thread baseline, 64 closed-loop
#         sessions (`loadgen load`).
# Nothing pinned; horad serves with one worker (HORAD_WORKERS=1: the
# one-core comparison; bench/workers.sh measures more); the servers take
# turns for ROUNDS rounds of 5 s. CPU per
# request is the server's utime+stime over the round (/proc/PID/stat) divided
# by the requests answered. Extra horad binaries to compare (a build before a
# change, say) go after ROUNDS. Loopback only; sntp needs chronyd (apt: chrony).
# The last lines sum it up: means, and each server's per-round ratio to the
# reference with its standard error (rounds here spread by +-13%: 24 rounds
# bring the error to about 2%).
#
#   cargo build --release --bins --examples && bash bench/throughput.sh sntp|xleave|seed 8 [OTHER_HORAD...]
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?sntp or seed}; rounds=${2:-4}; shift 2 || shift $#
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
printf "port 11123\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 10\ncmdport 0\npidfile $d/pid\ndriftfile $d/drift\n" > "$d/c.conf"
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
start() { # server -> pid and port of the socket to load
  case "$mode:$1" in
    sntp:chronyd|xleave:chronyd) chronyd -d -x -f "$d/c.conf" >/dev/null 2>&1 & pid=$!; port=11123 ;;
    sntp:*|xleave:*) HORAD_WORKERS=1 "$1" --config /dev/null --bind 127.0.0.1:0 --sntp-bind 127.0.0.1:11124 --sntp-local-stratum 10 \
              --no-ratelimit --stats-interval 0s --log-level warn >/dev/null 2>&1 & pid=$!; port=11124 ;;
    seed:baseline) target/release/examples/baseline 127.0.0.1:5106 2>/dev/null & pid=$!; port=5106 ;;
    seed:*) HORAD_WORKERS=1 "$1" --config /dev/null --bind 127.0.0.1:5106 --max-sessions 200000 --max-sessions-per-ip 200000 \
              --no-ratelimit --stats-interval 0s --log-level warn >/dev/null 2>&1 & pid=$!; port=5106 ;;
  esac
}
case "$mode" in
  sntp) reference=chronyd; load=(ntp --clients 64) ;;
  xleave) reference=chronyd; load=(ntp --clients 64 --interleaved) ;;
  seed) reference=baseline; load=(load --sessions 64) ;;
  *) echo "mode: sntp, xleave or seed" >&2; exit 2 ;;
esac
for round in $(seq "$rounds"); do
  for server in "$reference" target/release/horad "$@"; do
    start "$server"
    sleep 1
    before=$(cpu "$pid")
    out=$(target/release/examples/loadgen --server 127.0.0.1:$port "${load[@]}" --duration 5s 2>/dev/null | grep mode=)
    after=$(cpu "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    answered=$(echo "$out" | grep -o " requests=[0-9]*" | cut -d= -f2)
    rate=$(echo "$out" | grep -o " rps=[0-9]*" | cut -d= -f2)
    echo "round=$round server=$server req_per_s=$rate cpu_us_per_req=$(python3 -c "print(round(($after-$before)/$ticks*1e6/$answered, 2))") | $out"
  done
done | tee "$d/rounds"
# The summary: each server's means, and its per-round ratio to the reference
# (the rounds alternate, so a ratio within a round cancels the machine's drift).
python3 - "$d/rounds" <<'PY'
import collections, re, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    m = re.search(r"server=(\S+) req_per_s=(\d+) cpu_us_per_req=([\d.]+)", line)
    if m:
        runs[m[1]].append((int(m[2]), float(m[3])))
names = list(runs)
for name in names:
    rates = [r for r, _ in runs[name]]
    cpu = statistics.mean(c for _, c in runs[name])
    line = f"summary server={name} rounds={len(rates)} mean_req_per_s={statistics.mean(rates):.0f} mean_cpu_us_per_req={cpu:.2f}"
    if name != names[0] and len(rates) > 1:
        ratios = [r / ref for r, (ref, _) in zip(rates, runs[names[0]])]
        sem = statistics.stdev(ratios) / len(ratios) ** 0.5
        line += f" ratio_to_{names[0]}={statistics.mean(ratios):.3f}+-{sem:.3f}"
    print(line)
PY
