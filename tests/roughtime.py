#!/usr/bin/env python3
"""Roughtime (RFC 10049) against real clients nobody here wrote.

Starts horad (the binary given as the first argument) serving Roughtime on
an ephemeral loopback port with a key file it makes, reads the public key
with `horad --roughtime-public-key`, then asks it with:

- roughly (PyPI; the Python given as the second argument, >= 3.12, must have
  it): its default offer (version 1 and drafts 07-15) and each draft alone
  that horad answers and roughly still speaks; each response verified by
  roughly with horad's key, and rejected by roughly with another key;
- roughenough's client (`roughenough_client` on PATH, crates.io's
  roughenough-client): version 1 and draft 0x8000000c, verified with -k;
  with another key it gets no answer (horad drops a request naming another
  key in SRV, as the RFC has a server do);
- hora roughtime, whose time must agree with roughly's, and which with another
  key exits 1 with a JSON error;

and starts horad on a key file other users may read, which it must refuse
(exit 2, one line); then horad on the wildcard address, asked at 127.0.0.3 by
roughly's connected socket, which hears only a reply from that address.

Prints one line per check and a closing "roughtime: N passed, M failed";
exits 1 if any failed. .ci/run installs both clients.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

from checks import check, finish, start_daemon

HORAD = sys.argv[1] if len(sys.argv) > 1 else "target/debug/horad"
ROUGHLY_PYTHON = sys.argv[2] if len(sys.argv) > 2 else "python3"
HORA = os.path.join(os.path.dirname(HORAD), "hora")
OTHER_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

# What roughly runs: a query offering `versions` (None: its default), checked
# with `key`; prints the version, midpoint and radius, or the error's class.
ROUGHLY = r"""
import asyncio, base64, json, sys
from roughly import client
from roughly.errors import VerificationError
port, key, check_key, versions, host = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
versions = [int(v, 0) for v in versions.split(",")] if versions else None
async def main():
    # Without SRV, so that a response comes for any key and the client's
    # own check decides (with SRV, horad would not answer another key).
    # roughly's socket is connected: a reply from another address than the
    # one asked would never reach it.
    response = await asyncio.wait_for(client.very_dangerously_send_request_and_do_not_verify(
        host, port, None, versions=versions), 5)
    try:
        response.verify(base64.b64decode(check_key))
    except VerificationError as error:
        print(json.dumps({"rejected": str(error)}))
        return
    srep = response.signed_response
    print(json.dumps({"version": response.version, "midpoint": srep.midpoint, "radius": srep.radius}))
asyncio.run(main())
"""


def start_horad(key_file, address="127.0.0.1"):
    horad, found = start_daemon(
        [HORAD, "--bind", "127.0.0.1:0", "--roughtime-bind", f"{address}:0",
         "--roughtime-key", key_file, "--log-format", "text", "--stats-interval", "0s",
         "--config", "/dev/null"],
        r"roughtime listening on [0-9.]+:(\d+)")
    return horad, int(found.group(1))


def roughly(port, key, check_key, versions="", host="127.0.0.1"):
    out = subprocess.run([ROUGHLY_PYTHON, "-c", ROUGHLY, str(port), key, check_key, versions, host],
                         capture_output=True, text=True, timeout=20)
    if out.returncode != 0:
        raise AssertionError(f"roughly failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout)


def verified_by_roughly(port, key, versions, expected_version, host="127.0.0.1"):
    answer = roughly(port, key, key, versions, host)
    if "rejected" in answer:
        raise AssertionError(f"roughly rejected it: {answer['rejected']}")
    if answer["version"] != expected_version:
        raise AssertionError(f"answered in {answer['version']:#x}, not {expected_version:#x}")
    off = answer["midpoint"] - time.time()
    if abs(off) > answer["radius"] + 1:
        raise AssertionError(f"midpoint {off:+.1f} s from this clock, radius {answer['radius']} s")
    return f"version {answer['version']:#x}, radius {answer['radius']} s, midpoint {off:+.1f} s from this clock"


def rejected_by_roughly(port, key):
    answer = roughly(port, key, OTHER_KEY)
    if "rejected" not in answer:
        raise AssertionError("roughly accepted a response with another server's key")
    return f"rejected: {answer['rejected']}"


def roughenough(port, key, protocol, expect_answer=True):
    out = subprocess.run(["roughenough_client", "127.0.0.1", str(port), "-k", key, "-P", protocol,
                          "--epoch"], capture_output=True, text=True, timeout=20)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr).strip()
    if not expect_answer:
        if out.returncode == 0:
            raise AssertionError(f"answered with another key: {text}")
        return f"no answer, exit {out.returncode}: {text.splitlines()[-1:]}"
    if out.returncode != 0:
        raise AssertionError(f"exit {out.returncode}: {text}")
    epoch = re.search(r"\b(\d{10})\b", text)
    if not epoch or abs(int(epoch.group(1)) - time.time()) > 20:
        raise AssertionError(f"no time near this clock's: {text}")
    return f"verified with -k, {epoch.group(1)}"


def hora_agrees(port, key):
    out = subprocess.run([HORA, "-s", f"127.0.0.1:{port}", "roughtime", "-k", key, "--json"],
                         capture_output=True, text=True, timeout=20)
    if out.returncode != 0:
        raise AssertionError(f"exit {out.returncode}: {out.stderr.strip()}")
    mine = json.loads(out.stdout)
    theirs = roughly(port, key, key)
    if not (mine["signature_verified"] and mine["delegation_verified"]):
        raise AssertionError(f"hora did not verify: {mine}")
    if abs(mine["midpoint"] - theirs["midpoint"]) > 2:
        raise AssertionError(f"hora {mine['midpoint']} vs roughly {theirs['midpoint']}")
    return f"hora {mine['midpoint_text']} +/- {mine['radius_s']} s, roughly {theirs['midpoint']}"


def hora_refuses_another_key(port):
    out = subprocess.run([HORA, "-s", f"127.0.0.1:{port}", "-t", "1s", "roughtime", "-k", OTHER_KEY,
                          "--json"], capture_output=True, text=True, timeout=20)
    answer = json.loads(out.stdout)
    if out.returncode != 1 or "error" not in answer:
        raise AssertionError(f"exit {out.returncode}: {out.stdout.strip()}")
    return f"exit 1, {answer['error']}"


def readable_key_refused(directory):
    path = os.path.join(directory, "readable.key")
    with open(path, "w") as file:
        file.write("ab" * 32 + "\n")
    os.chmod(path, 0o644)
    out = subprocess.run([HORAD, "--config", "/dev/null", "--bind", "127.0.0.1:0",
                          "--roughtime-bind", "127.0.0.1:0", "--roughtime-key", path],
                         capture_output=True, text=True, timeout=20)
    lines = out.stderr.strip().splitlines()
    if out.returncode != 2 or len(lines) != 1 or "chmod 600" not in lines[0]:
        raise AssertionError(f"exit {out.returncode}: {out.stderr.strip()}")
    return f"exit 2: {lines[0]}"


def main():
    with tempfile.TemporaryDirectory() as directory:
        key_file = os.path.join(directory, "roughtime.key")
        made = subprocess.run([HORAD, "--config", "/dev/null", "--roughtime-key", key_file,
                               "--roughtime-public-key"], capture_output=True, text=True, check=True)
        key = made.stdout.splitlines()[0]
        mode = os.stat(key_file).st_mode & 0o777
        check("horad --roughtime-public-key makes a private key file",
              lambda: f"{key}, mode {mode:o}" if mode == 0o600 else (_ for _ in ()).throw(
                  AssertionError(f"mode {mode:o}")))
        horad, port = start_horad(key_file)
        try:
            check("roughly, default offer", lambda: verified_by_roughly(port, key, "", 1))
            for draft in (0x8000000b, 0x8000000c, 0x8000000e, 0x8000000f):
                check(f"roughly, draft {draft & 0xff} alone",
                      lambda d=draft: verified_by_roughly(port, key, hex(d), d))
            check("roughly rejects it with another key", lambda: rejected_by_roughly(port, key))
            check("roughenough_client -P 1", lambda: roughenough(port, key, "1"))
            check("roughenough_client -P 19 (draft 0x8000000c)", lambda: roughenough(port, key, "19"))
            check("roughenough_client with another key gets no answer",
                  lambda: roughenough(port, OTHER_KEY, "1", expect_answer=False))
            check("hora roughtime agrees with roughly", lambda: hora_agrees(port, key))
            check("hora roughtime with another key: exit 1 and a JSON error",
                  lambda: hora_refuses_another_key(port))
            check("horad refuses a key file others may read: exit 2, one line",
                  lambda: readable_key_refused(directory))
        finally:
            horad.terminate()
            horad.wait(timeout=10)
        # On a wildcard bind, the reply leaves from the address asked.
        horad, port = start_horad(key_file, "0.0.0.0")
        try:
            check("wildcard bind: roughly asking 127.0.0.3 (a connected socket)",
                  lambda: verified_by_roughly(port, key, "", 1, host="127.0.0.3"))
        finally:
            horad.terminate()
            horad.wait(timeout=10)
    finish("roughtime")


if __name__ == "__main__":
    main()
