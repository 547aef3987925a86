#!/usr/bin/env bash
# SNTP throughput and CPU per request, horad against chronyd (BENCHMARKS.md):
# 64 closed-loop clients (`loadgen ntp`), nothing pinned, servers taking
# turns for ROUNDS rounds of 5 s. CPU per request is the server's
# utime+stime over the round (/proc/PID/stat) divided by the requests
# answered. Extra horad binaries to compare (a build before a change, say)
# go after ROUNDS. Loopback only; needs chronyd (apt: chrony).
#
#   cargo build --release --bins --examples && bash bench/sntp_throughput.sh 4 [OTHER_HORAD...]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-4}; shift || true
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
printf "port 11123\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 10\ncmdport 0\npidfile $d/pid\ndriftfile $d/drift\n" > $d/c.conf
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
for round in $(seq "$rounds"); do
  for server in chronyd target/release/horad "$@"; do
    if [ "$server" = chronyd ]; then
      chronyd -d -x -f "$d/c.conf" >/dev/null 2>&1 & pid=$!; port=11123
    else
      "$server" --config /dev/null --bind 127.0.0.1:0 --sntp-bind 127.0.0.1:11124 --sntp-local-stratum 10 \
        --no-ratelimit --stats-interval 0s --log-level warn >/dev/null 2>&1 & pid=$!; port=11124
    fi
    sleep 1
    before=$(cpu "$pid")
    out=$(target/release/examples/loadgen --server 127.0.0.1:$port ntp --clients 64 --duration 5s)
    after=$(cpu "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    answered=$(echo "$out" | grep -o " requests=[0-9]*" | cut -d= -f2)
    rate=$(echo "$out" | grep -o " rps=[0-9]*" | cut -d= -f2)
    echo "round=$round server=$server req_per_s=$rate cpu_us_per_req=$(python3 -c "print(round(($after-$before)/$ticks*1e6/$answered, 2))") | $out"
  done
done
