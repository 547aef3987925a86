#!/usr/bin/env bash
# The seed protocol's throughput and CPU per request, horad against the
# project's one-thread baseline (BENCHMARKS.md): 64 closed-loop sessions
# (`loadgen load`), nothing pinned, servers taking turns for ROUNDS rounds of
# 5 s. CPU per request is the server's utime+stime over the round
# (/proc/PID/stat) divided by the requests answered. Extra horad binaries to
# compare (a build before a change, say) go after ROUNDS. Loopback only.
#
#   cargo build --release --bins --examples && bash bench/seed_throughput.sh 4 [OTHER_HORAD...]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-4}; shift || true
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
for round in $(seq "$rounds"); do
  for server in baseline target/release/horad "$@"; do
    if [ "$server" = baseline ]; then
      target/release/examples/baseline 127.0.0.1:5106 2>/dev/null & pid=$!
    else
      "$server" --config /dev/null --bind 127.0.0.1:5106 --max-sessions 200000 --max-sessions-per-ip 200000 \
        --no-ratelimit --stats-interval 0s --log-level warn >/dev/null 2>&1 & pid=$!
    fi
    sleep 1
    before=$(cpu "$pid")
    out=$(target/release/examples/loadgen --server 127.0.0.1:5106 load --sessions 64 --duration 5s)
    after=$(cpu "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    answered=$(echo "$out" | grep -o " requests=[0-9]*" | cut -d= -f2)
    rate=$(echo "$out" | grep -o " rps=[0-9]*" | cut -d= -f2)
    echo "round=$round server=$server req_per_s=$rate cpu_us_per_req=$(python3 -c "print(round(($after-$before)/$ticks*1e6/$answered, 2))") | $out"
  done
done
