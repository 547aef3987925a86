"""What every check script under tests/ shares: a check is a function that
returns what it saw or raises; each prints one PASS or FAIL line, and the
script closes with "NAME: N passed, M failed" (the line .ci/run adds up)
and exits 1 if any failed."""

import sys

results = []


def check(name, fn):
    """Runs `fn` as the check `name`: PASS with what it returned, FAIL with
    what it raised, whatever its cause."""
    try:
        detail = fn()
        results.append(True)
        print(f"PASS {name}: {detail}", flush=True)
    except Exception as error:  # a failed check, whatever its cause
        results.append(False)
        print(f"FAIL {name}: {error}", flush=True)


def finish(name):
    """Prints the closing count of the checks run and exits with it."""
    passed = sum(results)
    print(f"{name}: {passed} passed, {len(results) - passed} failed", flush=True)
    sys.exit(0 if all(results) else 1)


def start_daemon(argv, listening):
    """Starts the daemon as `argv` (RUST_LOG unset, standard error piped) and
    reads its log until a line matches the regular expression `listening`,
    for at most 10 s: the process and the match. Kills it and exits the
    script if no such line comes."""
    import os
    import re
    import subprocess
    import time

    daemon = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, env={k: v for k, v in os.environ.items() if k != "RUST_LOG"})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        line = daemon.stderr.readline()
        if not line:
            break
        found = re.search(listening, line)
        if found:
            return daemon, found
    daemon.kill()
    sys.exit(f"{argv[0]} did not start: no line matching {listening!r}")
