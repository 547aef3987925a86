#!/usr/bin/env bash
# ntpd-rs as an NTS client of horad (not in CI: ntpd-rs builds for minutes).
# ntpd-rs wants a host name, not an IP: the name hora.test is given to
# 127.0.0.1 in a private mount namespace (a bind-mounted /etc/hosts), and the
# certificate (a private CA, made by openssl) names it. ntp-daemon refuses
# to run without CAP_SYS_TIME and has no measure-only mode, so it may steer
# this host's clock for the 20 s it runs (horad serves this same clock: the
# offsets are microseconds); the kernel's frequency and status are saved
# before and restored after. Passes when ntp-daemon accepts horad's packets
# (its debug log) and horad counts NTS requests answered and no NAK.
#
#   cargo install ntpd --root /tmp/ntpd-rs   # a few minutes
#   cargo build --release --bins && bash bench/ntpd_rs_nts.sh [/tmp/ntpd-rs/bin/ntp-daemon]
set -euo pipefail
cd "$(dirname "$0")/.."
daemon=${1:-/tmp/ntpd-rs/bin/ntp-daemon}
d=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$d"' EXIT
bash bench/make_cert.sh "$d" DNS:hora.test
# A reference id other than 127.127.1.1, which ntpd-rs takes for a synchronization loop.
printf '[sntp]\nreference_id = "GPS"\n' > "$d/horad.toml"
target/release/horad --config "$d/horad.toml" --bind 127.0.0.1:0 --sntp-bind 127.0.0.1:11125 --sntp-local-stratum 10 \
  --nts-bind 127.0.0.1:14462 --nts-certificate-chain "$d/chain.pem" --nts-private-key "$d/key.pem" \
  --nts-keys "$d/keys" --metrics-bind 127.0.0.1:19979 --stats-interval 0s 2> "$d/horad.log" &
sleep 1
cat > "$d/ntp.toml" <<TOML
[observability]
log-level = "debug"
observation-path = "$d/observe"

[[source]]
mode = "nts"
address = "hora.test:14462"
certificate-authority = "$d/ca.pem"

[synchronization]
minimum-agreeing-sources = 1
TOML
cp /etc/hosts "$d/hosts"; echo "127.0.0.1 hora.test" >> "$d/hosts"
python3 bench/adjtimex_state.py save "$d/clock"
timeout 20 unshare -m sh -c "mount --bind '$d/hosts' /etc/hosts && \
  exec '$daemon' -c '$d/ntp.toml'" > "$d/ntpd.log" 2>&1 || true
python3 bench/adjtimex_state.py restore "$d/clock"
metrics=$(python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:19979/metrics').read().decode())")
answered=$(echo "$metrics" | grep -o 'hora_nts_requests_total{result="answered"} [0-9]*' | awk '{print $2}')
naks=$(echo "$metrics" | grep -o 'hora_nts_requests_total{result="nak"} [0-9]*' | awk '{print $2}')
kes=$(echo "$metrics" | grep -o 'hora_nts_ke_total{result="ok"} [0-9]*' | awk '{print $2}')
grep -E "accept packet|Initial source update|offset" "$d/ntpd.log" | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-220 | head -6 || true
echo "horad: key exchanges ok=$kes, NTS requests answered=$answered, naks=$naks"
if [ "${answered:-0}" -gt 0 ] && [ "${naks:-0}" -eq 0 ] && grep -q "accept packet" "$d/ntpd.log"; then
  echo "ntpd-rs NTS: PASS"
else
  echo "ntpd-rs NTS: FAIL"; tail -30 "$d/ntpd.log"; exit 1
fi
