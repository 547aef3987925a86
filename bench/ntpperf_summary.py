"""Summarises bench/ntpperf.sh's rows: per mode and rate step, each
server's transmit-timestamp offsets (ns) over the rounds, and how horad
fares against chronyd in the same round (the transmit-timestamp issue's
criteria: min >= 0 at every step; basic and NTS mean <= chronyd's + 1 us and
stddev <= 2x chronyd's; interleaved mean <= chronyd's + 0.5 us; no reply
lost where chronyd loses none).

    python3 bench/ntpperf_summary.py ROWS
"""

import collections
import sys

MEAN_SLACK_NS = {"basic": 1000.0, "nts": 1000.0, "xleave": 500.0}


def read(path):
    rows = {}
    for line in open(path):
        fields = line.split()
        if not fields or not fields[0].startswith("server="):
            continue
        tags = dict(f.split("=", 1) for f in fields if "=" in f)
        values = [f for f in fields if "=" not in f]
        if len(values) < 10:
            continue  # a step without offsets (every reply lost)
        rate = int(values[0])
        lost = float(values[2].rstrip("%"))
        low, mean, high, stddev = (float(v) for v in values[6:10])
        key = (tags["mode"], rate, int(tags["round"]), tags["server"])
        rows[key] = (lost, low, mean, high, stddev)
    return rows


def main(path):
    rows = read(path)
    modes = sorted({k[0] for k in rows})
    for mode in modes:
        rates = sorted({k[1] for k in rows if k[0] == mode})
        rounds = sorted({k[2] for k in rows if k[0] == mode})
        servers = sorted({k[3] for k in rows if k[0] == mode})
        print(f"\n{mode}: per step, over {len(rounds)} rounds: lost% / min / mean / max / stddev (ns)")
        print(f"{'rate':>7} " + " ".join(f"{s:>44}" for s in servers))
        for rate in rates:
            cells = []
            for server in servers:
                got = [rows[(mode, rate, r, server)] for r in rounds if (mode, rate, r, server) in rows]
                if not got:
                    cells.append(f"{'-':>44}")
                    continue
                lost = max(g[0] for g in got)
                low = min(g[1] for g in got)
                mean = sum(g[2] for g in got) / len(got)
                high = max(g[3] for g in got)
                stddev = sum(g[4] for g in got) / len(got)
                cells.append(f"{lost:5.2f}% {low:+8.0f} {mean:+8.0f} {high:+9.0f} {stddev:8.0f}")
            print(f"{rate:>7} " + " ".join(cells))
        if "horad" not in servers or "chronyd" not in servers:
            continue
        steps = negative = mean_ok = spread_ok = lost_more = 0
        missed = collections.defaultdict(list)
        for rate in rates:
            for r in rounds:
                h = rows.get((mode, rate, r, "horad"))
                c = rows.get((mode, rate, r, "chronyd"))
                if h is None or c is None:
                    continue
                steps += 1
                if h[1] < 0:
                    negative += 1
                    missed["min<0"].append(f"{rate}/r{r}")
                if h[2] <= c[2] + MEAN_SLACK_NS[mode]:
                    mean_ok += 1
                else:
                    missed["mean"].append(f"{rate}/r{r}")
                if h[4] <= 2 * c[4]:
                    spread_ok += 1
                else:
                    missed["stddev"].append(f"{rate}/r{r}")
                if h[0] > 0 and c[0] == 0:
                    lost_more += 1
                    missed["lost"].append(f"{rate}/r{r}")
        if not steps:
            continue
        print(
            f"{mode} horad vs chronyd, {steps} steps: min >= 0 at {steps - negative}; "
            f"mean <= chronyd + {MEAN_SLACK_NS[mode] / 1000:g} us at {mean_ok} ({100 * mean_ok / steps:.0f}%); "
            f"stddev <= 2x at {spread_ok} ({100 * spread_ok / steps:.0f}%); "
            f"lost where chronyd lost none at {lost_more}"
        )
        for what, where in missed.items():
            print(f"  missed {what}: {' '.join(where)}")


if __name__ == "__main__":
    main(sys.argv[1])
