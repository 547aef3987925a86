#!/usr/bin/env bash
# NTS throughput and CPU per request (BENCHMARKS.md, "NTS"):
#   requests: 64 closed-loop clients, each after one key exchange (not
#             timed), NTS-authenticated requests (`nts_load requests`):
#             chronyd's NTS server, horad's; and horad's plain SNTP
#             (`loadgen ntp`, 64 clients) in the same rounds;
#   ke:       key exchanges back to back from 8 clients (`nts_load ke`):
#             chronyd against horad.
# REPLAY=1 has each NTS client send 16 requests sealed before the run, in
# turn (`nts_load requests --replay`): the servers do the same work per
# request, the load generator only a send and a receive, so the servers
# rather than the generator run out of CPU. horad serves with one worker (HORAD_WORKERS=1),
# as chronyd answers NTP from one thread (the load comes from one address,
# so it would meet one worker anyway).
# Nothing pinned; the servers take turns for ROUNDS rounds of 5 s. CPU per
# request is the server's utime+stime over the round (/proc/PID/stat; for
# chronyd its main process, which answers NTP; its NTS-KE helper process is
# counted in the ke mode's rate only). The certificate is made with openssl.
#
# AEAD=15 (the default: AES-SIV-CMAC-256, all chronyd 4.3 offers) or AEAD=30
# (AES-128-GCM-SIV, horad only: chronyd 4.3 has none) picks what the
# clients offer.
#
#   cargo build --release --bins --examples && bash bench/nts.sh requests|ke 8 [OTHER_HORAD...]
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?requests or ke}; rounds=${2:-4}; shift 2 || shift $#
aead=${AEAD:-15}
replay=; [ "${REPLAY:-0}" = 1 ] && replay=--replay
export HORAD_WORKERS=1
d=$(mktemp -d)
trap 'pkill -P $$ || true; rm -rf "$d"' EXIT
bash bench/make_cert.sh "$d" IP:127.0.0.1
printf "port 11123\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 10\ncmdport 0\npidfile $d/pid\ndriftfile $d/drift\nntsserverkey $d/key.pem\nntsservercert $d/chain.pem\nntsport 14460\nntsdumpdir $d\n" > "$d/c.conf"
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
start() { # server -> pid, NTP port, KE port
  case "$1" in
    chronyd) chronyd -d -x -u root -f "$d/c.conf" >/dev/null 2>&1 & pid=$!; port=11123; ke=14460 ;;
    plain:*) "${1#plain:}" --config /dev/null --bind 127.0.0.1:0 --sntp-bind 127.0.0.1:11124 --sntp-local-stratum 10 \
              --no-ratelimit --stats-interval 0s --log-level warn >/dev/null 2>&1 & pid=$!; port=11124; ke= ;;
    *) "$1" --config /dev/null --bind 127.0.0.1:0 --sntp-bind 127.0.0.1:11124 --sntp-local-stratum 10 \
         --nts-bind 127.0.0.1:14461 --nts-certificate-chain "$d/chain.pem" --nts-private-key "$d/key.pem" \
         --nts-keys "$d/horad-keys" --no-ratelimit --stats-interval 0s --log-level warn >/dev/null 2>&1 & pid=$!
       port=11124; ke=14461 ;;
  esac
}
# chronyd 4.3 (Debian 12) has no AES-GCM-SIV: with AEAD=30 its rows are left out.
reference=chronyd; [ "$aead" = 30 ] && reference=
case "$mode" in
  requests) servers=($reference target/release/horad "$@" plain:target/release/horad) ;;
  ke) servers=($reference target/release/horad "$@") ;;
  *) echo "mode: requests or ke" >&2; exit 2 ;;
esac
for round in $(seq "$rounds"); do
  for server in "${servers[@]}"; do
    start "$server"
    sleep 1
    before=$(cpu "$pid")
    case "$mode:$server" in
      requests:plain:*) out=$(target/release/examples/loadgen --server 127.0.0.1:$port ntp --clients 64 --duration 5s 2>&1 | grep mode=) ;;
      requests:*) out=$(target/release/examples/nts_load --ke 127.0.0.1:$ke --ca "$d/ca.pem" --aead "$aead" requests --clients 64 --duration 5s $replay 2>&1 | grep mode=) ;;
      ke:*) out=$(target/release/examples/nts_load --ke 127.0.0.1:$ke --ca "$d/ca.pem" --aead "$aead" ke --clients 8 --duration 5s 2>&1 | grep mode=) ;;
    esac
    after=$(cpu "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    if [ "$mode" = ke ]; then
      rate=$(echo "$out" | grep -o " per_s=[0-9]*" | cut -d= -f2)
      echo "round=$round server=$server per_s=$rate | $out"
    else
      answered=$(echo "$out" | grep -o " requests=[0-9]*" | cut -d= -f2)
      rate=$(echo "$out" | grep -o " rps=[0-9]*" | cut -d= -f2)
      echo "round=$round server=$server per_s=$rate cpu_us_per_req=$(python3 -c "print(round(($after-$before)/$ticks*1e6/max($answered,1), 2))") | $out"
    fi
  done
done | tee "$d/rounds"
python3 - "$d/rounds" <<'PY'
import collections, re, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    m = re.search(r"server=(\S+) per_s=(\d+)(?: cpu_us_per_req=([\d.]+))?", line)
    if m:
        runs[m[1]].append((int(m[2]), float(m[3]) if m[3] else None))
names = list(runs)
for name in names:
    rates = [r for r, _ in runs[name]]
    line = f"summary server={name} rounds={len(rates)} mean_per_s={statistics.mean(rates):.0f}"
    cpus = [c for _, c in runs[name] if c is not None]
    if cpus:
        line += f" mean_cpu_us_per_req={statistics.mean(cpus):.2f}"
    for ref in names[:2]:
        if name != ref and len(rates) > 1:
            ratios = [r / b for r, (b, _) in zip(rates, runs[ref])]
            sem = statistics.stdev(ratios) / len(ratios) ** 0.5
            line += f" ratio_to_{ref.rsplit('/', 1)[-1]}={statistics.mean(ratios):.3f}+-{sem:.3f}"
    print(line)
PY
