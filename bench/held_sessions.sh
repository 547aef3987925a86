#!/usr/bin/env bash
# Memory per held session and idle expiry at scale (BENCHMARKS.md): horad with
# a metrics port; SESSIONS sessions held by loadgen `hold` processes of at most
# 19,000 each (their open-file limit), each process from its own loopback
# address; horad's RSS at rest and with every session open (the growth over
# hora_sessions_open), then how late the idle notices were, as horad measured
# it (hora_idle_notice_lateness_seconds: deadline to notice queued) and as
# the clients saw it (the hold processes' p99 and max, which include their
# own delay in reading; a client whose login was resent reads the second menu
# where it waits for its notice, and counts as failed: compare login_losses).
# horad runs at nice -5, as deploy/horad.service runs it (NICE=0 to change):
# at nice 0 it gets a fiftieth of the CPU among fifty busy client processes.
# Loopback only; bounded by the sessions' idle timeout.
#
# The idle timeout must outlast the logins: 1,000,000 take about a minute here
# (fifty-three client processes starting up), so 90s.
#
#   cargo build --release --bins --examples && bash bench/held_sessions.sh 200000 [IDLE] [HORAD]
set -euo pipefail
cd "$(dirname "$0")/.."
total=${1:-200000}; idle=${2:-60s}; horad=${3:-target/release/horad}
d=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$d"' EXIT
nice -n "${NICE:--5}" "$horad" --config /dev/null --bind 127.0.0.1:5107 --metrics-bind 127.0.0.1:9977 \
  --max-sessions 1000000 --max-sessions-per-ip 1000000 --no-ratelimit \
  --idle-timeout "$idle" --stats-interval 0s --log-level warn 2>"$d/horad.log" & pid=$!
sleep 1
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
metric() { curl -s -m 2 127.0.0.1:9977/metrics | awk -v m="$1" '$1 == m {print $2}'; }
rest=$(rss)
per=19000; n=0; i=0; holders=()
started=$(date +%s.%N)
while [ "$n" -lt "$total" ]; do
  k=$(( total - n < per ? total - n : per ))
  target/release/examples/loadgen --server 127.0.0.1:5107 hold --sessions "$k" \
    --idle-timeout "$idle" --ip "127.2.$((i / 250)).$((i % 250 + 1))" > "$d/hold.$i" 2>&1 &
  holders+=($!)
  n=$((n + k)); i=$((i + 1))
done
open=0
for _ in $(seq 600); do
  open=$(metric hora_sessions_open); open=${open%.*}
  [ "${open:-0}" -ge "$total" ] && break
  sleep 0.25
done
held=$(rss)
[ "${open:-0}" -gt 0 ] || { echo "the sessions never all opened (open=${open:-?})"; exit 1; }
echo "sessions_open=$open logged_in_in_s=$(python3 -c "import time; print(round(time.time() - $started, 1))") rss_rest_kb=$rest rss_held_kb=$held bytes_per_session=$(( (held - rest) * 1024 / open ))"
for holder in "${holders[@]}"; do wait "$holder" || true; done
curl -s 127.0.0.1:9977/metrics | grep -E '^hora_idle_notice_lateness_seconds|^hora_sessions_ended_total\{reason="idle"\}|^hora_sessions_open|^hora_send_errors|^hora_logins_total'
cat "$d"/hold.* | grep mode=hold | awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
  expired += v["expired"]; failed += v["failed"]; losses += v["login_losses"]; if (v["p99"] > p99) p99 = v["p99"]; if (v["max"] > max) max = v["max"] }
  END { printf "clients: expired=%d failed=%d login_losses=%d worst_p99_late_ms=%d max_late_ms=%d\n", expired, failed, losses, p99, max }'
kill "$pid"; wait "$pid" 2>/dev/null || true
