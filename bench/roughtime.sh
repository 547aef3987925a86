#!/usr/bin/env bash
# Roughtime throughput and CPU per request: horad against roughenough's
# server (crates.io roughenough-server, `cargo install roughenough-server
# --version 2.2.0`), one core each: the server pinned to CPU 0 (horad with
# one worker, roughenough with -j 1), the load generator to CPU 1
# (`loadgen roughtime`: 64 closed-loop clients, version-1 requests of 1024
# bytes, one reply in 64 verified whole with the server's key). The servers
# take turns for ROUNDS rounds of 5 s; CPU per request is the server's
# utime+stime over the round (/proc/PID/stat) divided by the answers, and
# horad's signatures per batch come from its /metrics. Loopback only.
#
#   cargo build --release --bins --examples && bash bench/roughtime.sh 6 [OTHER_HORAD...]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-4}; shift || true
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
command -v roughenough_server >/dev/null || { echo "roughenough_server not on PATH" >&2; exit 2; }
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
# Both servers' long-term keys, from one seed (hex, mode 0600, as both read it).
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$d/seed"; echo >> "$d/seed"
chmod 600 "$d/seed"
key=$(target/release/horad --config /dev/null --roughtime-key "$d/seed" --roughtime-public-key | head -1)
start() { # server -> pid, port
  case "$1" in
    roughenough) taskset -c 0 roughenough_server -i 127.0.0.1 -p 12003 -j 1 -q --seed-file "$d/seed" >/dev/null 2>&1 & pid=$!; port=12003 ;;
    *) HORAD_WORKERS=1 taskset -c 0 "$1" --config /dev/null --bind 127.0.0.1:0 --roughtime-bind 127.0.0.1:12002 \
         --roughtime-key "$d/seed" --metrics-bind 127.0.0.1:12004 --no-ratelimit --stats-interval 0s --log-level warn >/dev/null 2>&1 & pid=$!; port=12002 ;;
  esac
}
for round in $(seq "$rounds"); do
  for server in roughenough target/release/horad "$@"; do
    start "$server"
    sleep 1
    before=$(cpu "$pid")
    out=$(taskset -c 1 target/release/examples/loadgen --server 127.0.0.1:$port roughtime --clients 64 --duration 5s --key "$key" 2>/dev/null | grep mode=)
    after=$(cpu "$pid")
    batch=""
    if [ "$server" != roughenough ]; then
      batch=$(curl -s 127.0.0.1:12004/metrics | awk '/^hora_roughtime_signatures_total/ {s=$2} /^hora_roughtime_requests_total/ {r+=$2} END {if (s) printf " per_signature=%.1f", r/s}')
    fi
    kill "$pid"; wait "$pid" 2>/dev/null || true
    answered=$(echo "$out" | grep -o " requests=[0-9]*" | cut -d= -f2)
    rate=$(echo "$out" | grep -o " rps=[0-9]*" | cut -d= -f2)
    echo "round=$round server=$server req_per_s=$rate cpu_us_per_req=$(python3 -c "print(round(($after-$before)/$ticks*1e6/max($answered,1), 2))")$batch | $out"
  done
done | tee "$d/rounds"
python3 - "$d/rounds" <<'PY'
import collections, re, statistics, sys
rounds = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    f = dict(re.findall(r"(\w+)=(\S+)", line.split("|")[0]))
    rounds[f["round"]][f["server"]] = (float(f["req_per_s"]), float(f["cpu_us_per_req"]))
servers = list(next(iter(rounds.values())))
for server in servers:
    rates = [r[server][0] for r in rounds.values()]
    cpus = [r[server][1] for r in rounds.values()]
    ratios = [r[server][0] / r["roughenough"][0] for r in rounds.values()]
    err = statistics.stdev(ratios) / len(ratios) ** 0.5 if len(ratios) > 1 else 0
    print(f"{server}: {statistics.mean(rates):.0f} req/s, {statistics.mean(cpus):.2f} us CPU/req, "
          f"{statistics.mean(ratios):.3f} x roughenough (+-{err:.3f})")
PY
