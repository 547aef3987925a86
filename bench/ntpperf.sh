#!/usr/bin/env bash
# ntpperf (by chrony's author: the NTP server benchmark) against horad and
# chronyd, side by side in the same run: responses lost, and the offset of
# each reply's transmit timestamp from the moment ntpperf's capture saw the
# reply (min, mean, max, stddev in ns, per rate step). A negative offset is
# a transmit timestamp later than the reply reached the client: never
# acceptable. BENCHMARKS.md, "Transmit timestamps by ntpperf", reports these.
#
#   NTPPERF=/path/to/ntpperf sudo -E bash bench/ntpperf.sh [MODES] [ROUNDS]
#
# MODES: a comma-separated list of basic, xleave, nts (default basic,xleave).
# ROUNDS (default 3): the servers take turns, one ntpperf run each per round.
# RATES (default 1000-25000): ntpperf's -r, requests per second from the
# lowest step to the highest. HORAD=path measures another build (it must
# take the flags below); HORAD_ARGS adds flags; SERVERS (default
# "chronyd horad") names what runs, in turn.
#
# ntpperf sends raw frames from a /16 of simulated clients, so it runs in a
# network namespace of its own, the server in another, joined by a veth
# pair (software timestamps); the server is pinned to core 0 and ntpperf to
# core 1. horad serves with one worker and no rate limit, as chronyd
# answers from one thread with none configured. Needs root, chrony and
# ntpperf: bring github mlichvar/ntpperf here and build it with
# `NTPPERF_NTS=1 make` (libpcap-dev and libgnutls28-dev). NTS mode also
# needs openssl and target/release/examples/nts_load. Bounded: each ntpperf
# run stops at its last rate step; the namespaces go when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
modes=${1:-basic,xleave}
rounds=${2:-3}
rates=${RATES:-1000-25000}
ntpperf=${NTPPERF:?NTPPERF=/path/to/ntpperf (see the comment at the top)}
horad=$(realpath "${HORAD:-target/release/horad}")
[ -x "$horad" ] || { echo "no horad at $horad: cargo build --release --bins" >&2; exit 2; }
read -r -a servers <<<"${SERVERS:-chronyd horad}"
ns_server=hora-ntpperf-server
ns_client=hora-ntpperf-client
server_ip=10.123.0.1
client_ip=10.123.0.2
clients=172.18.0.0/16
d=$(mktemp -d)
chmod 755 "$d"

cleanup() {
  ip netns pids "$ns_server" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns pids "$ns_client" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del "$ns_server" 2>/dev/null || true
  ip netns del "$ns_client" 2>/dev/null || true
  rm -rf "$d"
}
trap cleanup EXIT
cleanup
mkdir -p "$d"

ip netns add "$ns_server"
ip netns add "$ns_client"
ip link add veth-hora netns "$ns_server" type veth peer name veth-perf netns "$ns_client"
ip -n "$ns_server" link set lo up
ip -n "$ns_client" link set lo up
ip -n "$ns_server" addr add "$server_ip/24" dev veth-hora
ip -n "$ns_client" addr add "$client_ip/24" dev veth-perf
ip -n "$ns_server" link set veth-hora up
ip -n "$ns_client" link set veth-perf up
# Replies to the simulated clients go to ntpperf's side, which captures
# them and drops them (its kernel does not forward).
ip -n "$ns_server" route add "$clients" via "$client_ip"
mac=$(ip netns exec "$ns_server" cat /sys/class/net/veth-hora/address)
in_server() { ip netns exec "$ns_server" "$@"; }

cat >"$d/chrony.conf" <<CONF
port 123
bindaddress $server_ip
allow all
local stratum 10
cmdport 0
pidfile $d/chronyd.pid
driftfile $d/chronyd.drift
clientloglimit 16777216
CONF

nts=
if [[ ,$modes, == *,nts,* ]]; then
  bash bench/make_cert.sh "$d" "IP:$server_ip"
  cat >>"$d/chrony.conf" <<CONF
ntsserverkey $d/key.pem
ntsservercert $d/chain.pem
ntsport 4460
ntsdumpdir $d
CONF
  nts="--nts-bind $server_ip:4460 --nts-certificate-chain $d/chain.pem --nts-private-key $d/key.pem --nts-keys $d/horad-keys"
fi

start() { # server -> pid
  case "$1" in
    chronyd) ip netns exec "$ns_server" taskset -c 0 chronyd -d -x -u root -f "$d/chrony.conf" >"$d/chronyd.log" 2>&1 & ;;
    horad)
      # shellcheck disable=SC2086
      ip netns exec "$ns_server" taskset -c 0 "$horad" --config /dev/null --bind 127.0.0.1:0 \
        --sntp-bind "$server_ip:123" --sntp-local-stratum 10 --sntp-client-log 1000000 \
        --workers 1 --no-ratelimit --stats-interval 0s --log-level warn $nts ${HORAD_ARGS:-} \
        >"$d/horad.log" 2>&1 & ;;
    *) echo "unknown server $1" >&2; exit 2 ;;
  esac
  pid=$!
  # Bounded: up to 5 s for the server to answer (its NTP socket bound).
  for _ in $(seq 50); do
    in_server ss -Hlun "sport = :123" | grep -q . && break
    sleep 0.1
  done
}

stop() { # every process in the server's namespace
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  ip netns pids "$ns_server" | xargs -r kill 2>/dev/null || true
}

# ntpperf's -S takes the client-to-server key and one cookie from an NTS-KE.
nts_session() {
  ip netns exec "$ns_client" target/release/examples/nts_load --ke "$server_ip:4460" \
    --ca "$d/ca.pem" --name "$server_ip" --aead 15 session
}

run() { # server mode round
  local server=$1 mode=$2 round=$3 flag=-B extra=()
  case "$mode" in
    basic) ;;
    xleave) flag=-I ;;
    nts) extra=(-S "$(nts_session)") ;;
  esac
  ip netns exec "$ns_client" taskset -c 1 "$ntpperf" -i veth-perf -m "$mac" -d "$server_ip" \
    -s "$clients" "$flag" -r "$rates" -o 1e-9 "${extra[@]}" 2>&1 |
    awk -v s="$server" -v m="$mode" -v r="$round" '/^[0-9]/ { print "server=" s " mode=" m " round=" r " " $0 }' || true
  # (ntpperf exits non-zero when it can't send at its next rate: the
  # steps it printed stand.)
}

IFS=, read -r -a mode_list <<<"$modes"
echo "columns: rate clients lost invalid basic xleave | TX offset min mean max stddev (ns)"
for round in $(seq "$rounds"); do
  for mode in "${mode_list[@]}"; do
    for server in "${servers[@]}"; do
      start "$server"
      run "$server" "$mode" "$round"
      stop
    done
  done
done | tee "$d/rows"
python3 bench/ntpperf_summary.py "$d/rows"
