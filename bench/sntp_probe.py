#!/usr/bin/env python3
"""SNTP offset and delay as a client sees them: ntplib requests, 20 ms apart.

    python3 bench/sntp_probe.py PORT [COUNT]

Prints one line: median abs(offset), median delay, p99 abs(offset), p99 delay
(the round trip less the server's own time) and p99 round trip as the client
timed it (with the time the request waited in the server's queue), in
microseconds, and how many requests got no answer within 1 s. Offsets are
against this host's own clock, which the server serves: a perfect server
on loopback reads 0. Loopback only.
"""

import statistics
import sys
import time

import ntplib

PORT = int(sys.argv[1])
COUNT = int(sys.argv[2]) if len(sys.argv) > 2 else 500

client = ntplib.NTPClient()
offsets, delays, round_trips, lost = [], [], [], 0
for _ in range(COUNT):
    started = time.monotonic()
    try:
        response = client.request("127.0.0.1", port=PORT, version=4, timeout=1)
        round_trips.append((time.monotonic() - started) * 1e6)
        if response.stratum == 0:
            lost += 1  # a kiss-o'-death or an unsynchronized server: no time
        else:
            offsets.append(abs(response.offset) * 1e6)
            delays.append(response.delay * 1e6)
    except ntplib.NTPException:
        lost += 1
    time.sleep(max(0.0, 0.02 - (time.monotonic() - started)))

offsets.sort()
delays.sort()
p99 = offsets[min(len(offsets) - 1, int(len(offsets) * 0.99))] if offsets else float("nan")
p99_delay = delays[min(len(delays) - 1, int(len(delays) * 0.99))] if delays else float("nan")
round_trips.sort()
p99_round_trip = (round_trips[min(len(round_trips) - 1, int(len(round_trips) * 0.99))]
                  if round_trips else float("nan"))
print(f"port={PORT} samples={len(offsets)} lost={lost} "
      f"median_abs_offset_us={statistics.median(offsets):.0f} "
      f"median_delay_us={statistics.median(delays):.0f} p99_abs_offset_us={p99:.0f} "
      f"p99_delay_us={p99_delay:.0f} p99_round_trip_us={p99_round_trip:.0f}")
