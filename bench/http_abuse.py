#!/usr/bin/env python3
"""What hostile HTTP clients do to horad's time service (RELIABILITY.md).

    horad --config /dev/null --bind 127.0.0.1:5105 --metrics-bind 127.0.0.1:9975 &
    python3 bench/http_abuse.py 127.0.0.1:5105 127.0.0.1:9975

While a UDP client asks the time every 100 ms (under the rate limit) (and counts every answer and its
latency), it throws at the metrics listener: 1,000 idle connections, requests
that are not HTTP, a 1 MiB header, a slow drip of one byte a second. Then it
checks /status still answers. Loopback only; bounded in count and time.
"""

import resource
import socket
import sys
import threading
import time

SEED = sys.argv[1].rsplit(":", 1)
SEED = (SEED[0], int(SEED[1]))
HTTP = sys.argv[2].rsplit(":", 1)
HTTP = (HTTP[0], int(HTTP[1]))

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))

stop = threading.Event()
latencies, missed = [], [0]


def prober():
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(1)
    client.sendto(b"login", SEED)
    client.recvfrom(2048)
    while not stop.is_set():
        started = time.monotonic()
        client.sendto(b"1", SEED)
        try:
            client.recvfrom(2048)
            latencies.append((time.monotonic() - started) * 1e6)
        except socket.timeout:
            missed[0] += 1
        time.sleep(0.1)


def exchange(payload, wait=5):
    s = socket.create_connection(HTTP, timeout=wait)
    try:
        s.sendall(payload)
        return s.recv(200)
    except OSError as error:
        return repr(error).encode()
    finally:
        s.close()


thread = threading.Thread(target=prober)
thread.start()
time.sleep(0.5)

idle, refused = [], 0
for _ in range(1000):
    try:
        idle.append(socket.create_connection(HTTP, timeout=2))
    except OSError:
        refused += 1
print(f"1,000 idle connections: {len(idle)} connected, {refused} failed to connect")
closed = 0
for s in idle:
    s.settimeout(0.01)
    try:
        if s.recv(1) == b"":
            closed += 1
    except socket.timeout:
        pass
    except OSError:
        closed += 1
print(f"  closed by horad at once (over the limit of 8): {closed}")
for s in idle:
    s.close()
time.sleep(0.2)

print("not HTTP:", exchange(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 64)[:40])
print("1 MiB header:", exchange(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n")[:40])
drip = socket.create_connection(HTTP, timeout=20)
started = time.monotonic()
cut_after = None
for byte in b"GET /metrics HTTP/1.1\r\nHost: slow\r\n":
    try:
        drip.send(bytes([byte]))
        time.sleep(1)
        drip.settimeout(0.01)
        if drip.recv(200) is not None:
            cut_after = time.monotonic() - started
            break
    except socket.timeout:
        drip.settimeout(20)
        continue
    except OSError:
        cut_after = time.monotonic() - started
        break
print(f"slow drip (1 byte/s): cut after {cut_after:.1f} s" if cut_after else "slow drip: NOT cut")
status = exchange(b"GET /status HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
print("afterwards /status:", status[:15])

stop.set()
thread.join()
latencies.sort()
p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan")
print(f"UDP time requests throughout: {len(latencies)} answered, {missed[0]} missed, "
      f"p50 {latencies[len(latencies) // 2]:.0f} us, p99 {p99:.0f} us, max {latencies[-1]:.0f} us")
