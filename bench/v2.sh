#!/usr/bin/env bash
# Protocol v2 against the seed's protocol on the same horad (BENCHMARKS.md,
# "Protocol v2"): 64 closed-loop sessions (`loadgen load` and `loadgen load
# --v2`), one worker, no rate limit; the two take turns for ROUNDS rounds of
# 5 s, horad restarted for each. CPU per request is horad's utime+stime over
# the round divided by the requests answered. The last lines: means, and
# v2's per-round ratio to the seed's with its standard error.
#
#   cargo build --release --bins --examples && bash bench/v2.sh 8
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-4}
horad=${HORAD:-target/release/horad}
loadgen=${LOADGEN:-target/release/examples/loadgen}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
for round in $(seq "$rounds"); do
  for protocol in seed v2; do
    HORAD_WORKERS=1 "$horad" --config /dev/null --bind 127.0.0.1:5107 --max-sessions 200000 --max-sessions-per-ip 200000 \
      --no-ratelimit --stats-interval 0s --log-level warn >/dev/null 2>&1 & pid=$!
    sleep 1
    flag=(); [ "$protocol" = v2 ] && flag=(--v2)
    before=$(cpu "$pid")
    out=$("$loadgen" --server 127.0.0.1:5107 load --sessions 64 --duration 5s "${flag[@]}" 2>/dev/null | grep mode=)
    after=$(cpu "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    answered=$(echo "$out" | grep -o " requests=[0-9]*" | cut -d= -f2)
    rate=$(echo "$out" | grep -o " rps=[0-9]*" | cut -d= -f2)
    echo "round=$round protocol=$protocol req_per_s=$rate cpu_us_per_req=$(python3 -c "print(round(($after-$before)/$ticks*1e6/$answered, 2))") | $out"
  done
done | tee "$d/rounds"
python3 - "$d/rounds" <<'PY'
import collections, re, statistics, sys
rows = [dict(re.findall(r"(\w+)=(\S+)", line.split("|")[0])) for line in open(sys.argv[1])]
by = collections.defaultdict(list)
for r in rows:
    by[r["protocol"]].append(r)
for p, rs in by.items():
    print(f"{p}: mean {statistics.mean(float(r['req_per_s']) for r in rs):,.0f} req/s, "
          f"{statistics.mean(float(r['cpu_us_per_req']) for r in rs):.2f} us/req over {len(rs)} rounds")
pairs = list(zip(by["seed"], by["v2"]))
for key, name in (("req_per_s", "throughput"), ("cpu_us_per_req", "CPU per request")):
    ratios = [float(v[key]) / float(s[key]) for s, v in pairs]
    err = statistics.stdev(ratios) / len(ratios) ** 0.5 if len(ratios) > 1 else 0.0
    print(f"v2/seed {name}: {statistics.mean(ratios):.3f} +- {err:.3f}")
PY
