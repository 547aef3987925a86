#!/usr/bin/env python3
"""What scrapes cost the time service (BENCHMARKS.md, "Ops never slows serving").

    horad --config /dev/null --bind 127.0.0.1:5108 --metrics-bind 127.0.0.1:9978 --no-ratelimit &
    python3 bench/metrics_pipelining.py 127.0.0.1:5108 127.0.0.1:9978 [SECONDS]

Eight paced seed clients (one process, each asking the time every 10 ms)
measure their round trips for SECONDS (default 5) with the metrics listener
quiet, then for SECONDS while eight keep-alive connections (another process)
pipeline `GET /metrics` as fast as horad answers: 32 requests per write,
every response read. Prints each phase's p50/p99/max and the scrapes
served. Loopback only; bounded in time.
"""

import multiprocessing
import socket
import sys
import time


def address(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def probe(seed, seconds, out):
    clients = []
    for n in range(8):
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind((f"127.0.5.{n + 1}", 0))
        client.settimeout(1)
        client.sendto(b"login", seed)
        client.recvfrom(2048)
        clients.append(client)
    latencies, missed = [], 0
    end = time.monotonic() + seconds
    tick = time.monotonic()
    while time.monotonic() < end:
        for client in clients:
            started = time.monotonic()
            client.sendto(b"1", seed)
            try:
                client.recvfrom(2048)
                latencies.append(time.monotonic() - started)
            except socket.timeout:
                missed += 1
        tick += 0.010
        time.sleep(max(0.0, tick - time.monotonic()))
    out.put((sorted(latencies), missed))


def pipeline(http, seconds, out):
    request = b"GET /metrics HTTP/1.1\r\nHost: hora\r\n\r\n" * 32
    served = 0
    end = time.monotonic() + seconds
    stream = socket.create_connection(http)
    stream.settimeout(5)
    buffered = b""
    while time.monotonic() < end:
        stream.sendall(request)
        answered = 0
        while answered < 32:
            chunk = stream.recv(1 << 20)
            if not chunk:
                out.put(served)
                return
            buffered += chunk
            # Count complete responses by their status lines; keep the tail.
            answered_now = buffered.count(b"HTTP/1.1 200")
            if answered_now:
                answered += answered_now
                buffered = buffered[buffered.rfind(b"HTTP/1.1 200") + 12:]
        served += answered
    out.put(served)


def percentile(sorted_values, q):
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def report(name, latencies, missed, scrapes=None):
    line = (f"phase={name} answers={len(latencies)} missed={missed} "
            f"p50_ms={percentile(latencies, 0.5) * 1e3:.3f} "
            f"p99_ms={percentile(latencies, 0.99) * 1e3:.3f} "
            f"max_ms={(latencies[-1] if latencies else 0) * 1e3:.3f}")
    if scrapes is not None:
        line += f" scrapes={scrapes}"
    print(line, flush=True)
    return percentile(latencies, 0.99)


def main():
    seed, http = address(sys.argv[1]), address(sys.argv[2])
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
    out = multiprocessing.Queue()
    prober = multiprocessing.Process(target=probe, args=(seed, seconds, out))
    prober.start()
    quiet = out.get()
    prober.join()
    quiet_p99 = report("quiet", *quiet)
    scrapes = multiprocessing.Queue()
    pipeliners = [multiprocessing.Process(target=pipeline, args=(http, seconds + 0.5, scrapes))
                  for _ in range(8)]
    for p in pipeliners:
        p.start()
    time.sleep(0.25)
    prober = multiprocessing.Process(target=probe, args=(seed, seconds, out))
    prober.start()
    loaded = out.get()
    prober.join()
    served = sum(scrapes.get() for _ in pipeliners)
    for p in pipeliners:
        p.join()
    loaded_p99 = report("pipelining", *loaded, scrapes=served)
    bound = 2 * quiet_p99 + 0.001
    print(f"target p99 <= 2 x quiet + 1 ms = {bound * 1e3:.3f} ms: "
          f"{'met' if loaded_p99 <= bound else 'NOT met'}")


if __name__ == "__main__":
    main()
