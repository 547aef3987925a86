#!/usr/bin/env python3
"""A real Prometheus server scrapes horad's /metrics.

Starts horad (the binary given as the first argument) with --metrics-bind on
an ephemeral loopback port, and Debian's prometheus with a scrape config
pointing at it (every second). UDP clients log in and out; the target must
be up, and hora_sessions_open and hora_logins_total read back through
Prometheus' query API must equal what the clients did. promtool (Debian 12's
reads the classic text format, which horad serves by default) checks the
exposition too. Prints "prometheus: N passed, M failed"; exits 1 on failure.

.ci/run installs prometheus (apt).
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HORAD = sys.argv[1] if len(sys.argv) > 1 else "target/debug/horad"
LOOPBACK = "127.0.0.1"
results = []


def free_tcp_port():
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def check(name, ok, detail):
    results.append(ok)
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")


def query(port, expression):
    url = f"http://{LOOPBACK}:{port}/api/v1/query?query={urllib.parse.quote(expression)}"
    with urllib.request.urlopen(url, timeout=5) as response:
        data = json.load(response)
    values = data.get("data", {}).get("result", [])
    return float(values[0]["value"][1]) if values else None


def main():
    metrics_port = free_tcp_port()
    horad = subprocess.Popen(
        [HORAD, "--config", "/dev/null", "--bind", f"{LOOPBACK}:0",
         "--metrics-bind", f"{LOOPBACK}:{metrics_port}", "--stats-interval", "0s",
         # The sessions must outlive a slow Prometheus start (10 s idled
         # them out on a loaded machine).
         "--idle-timeout", "10m"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    scratch = tempfile.mkdtemp()
    prometheus = None
    try:
        seed = None
        for line in iter(horad.stderr.readline, ""):
            found = re.search(r" listening on (127\.0\.0\.1):(\d+)", line)
            if found:
                seed = (found.group(1), int(found.group(2)))
                break
        if seed is None:
            sys.exit("horad did not start")
        # Three logins, one logout: two sessions stay open.
        clients = []
        for _ in range(3):
            client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            client.settimeout(5)
            client.bind((LOOPBACK, 0))
            client.sendto(b"login", seed)
            client.recvfrom(2048)
            clients.append(client)
        clients[0].sendto(b"2", seed)
        clients[0].recvfrom(2048)

        metrics = urllib.request.urlopen(f"http://{LOOPBACK}:{metrics_port}/metrics", timeout=5).read()
        promtool = subprocess.run(["promtool", "check", "metrics"], input=metrics, capture_output=True)
        check("promtool check metrics", promtool.returncode == 0,
              (promtool.stdout + promtool.stderr).decode().strip() or "no problems")

        web_port = free_tcp_port()
        config = os.path.join(scratch, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: horad\n    static_configs:\n"
                    f"      - targets: ['{LOOPBACK}:{metrics_port}']\n")
        prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={scratch}/data",
             f"--web.listen-address={LOOPBACK}:{web_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        up = sessions = logins = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                up = query(web_port, 'up{job="horad"}')
                sessions = query(web_port, "hora_sessions_open")
                logins = query(web_port, "hora_logins_total")
            except OSError:
                pass  # not listening yet
            if up == 1 and sessions == 2 and logins == 3:
                break
            time.sleep(0.5)
        check("prometheus scrapes horad", up == 1, f"up={up}")
        check("hora_sessions_open through Prometheus", sessions == 2, f"{sessions} (2 expected)")
        check("hora_logins_total through Prometheus", logins == 3, f"{logins} (3 expected)")
    finally:
        if prometheus:
            prometheus.terminate()
            prometheus.wait(timeout=10)
        horad.terminate()
        horad.wait(timeout=10)
        shutil.rmtree(scratch, ignore_errors=True)
    passed = sum(results)
    print(f"prometheus: {passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
