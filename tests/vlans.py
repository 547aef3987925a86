#!/usr/bin/env python3
"""horad on a host with several networks, tested with real clients in
network namespaces this script makes (root needed; CI is root).

The server namespace has three veth links, one per "VLAN": 10.77.1.1/24,
10.77.2.1/24 (with a second address, 10.77.2.100) and 10.77.3.1/24; each
client namespace sits on one of them (10.77.N.2). Then:

1. horad bound to one address on each of the first two networks (a list per
   protocol): on each, chronyd -Q (whose NTP socket is connected to the
   server), ntpdate -q, `hora time` and the seed's own Python client get the
   time; the third network, where horad is not bound, gets no answer.
2. horad bound to the wildcard address tied to network 1's interface
   (`0.0.0.0:5005%IFACE`), and to a link-local address with its scope
   (`[fe80::1%IFACE]:5005`): network 1's clients get the time, over IPv4
   and link-local IPv6; network 3's get nothing.
3. horad bound to the wildcard address: a client asking the second address
   of its network (10.77.2.100, not the one the route back would pick) gets
   its answer from it: chronyd -Q, ntpdate -q, `hora time` and the seed's
   client alike.

Prints one line per check and "vlans: N passed, M failed"; exits 1 if any
failed. The namespaces go away at the end, whatever happened.

    sudo python3 tests/vlans.py target/debug/horad
"""

import os
import re
import subprocess
import sys
import tempfile

from checks import check, finish, start_daemon

HORAD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/debug/horad")
HORA = os.path.join(os.path.dirname(HORAD), "hora")
SEED_CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seed", "cliente.py")
TAG = f"hv{os.getpid() % 100000}"
SERVER = f"{TAG}s"
CLIENTS = {n: f"{TAG}c{n}" for n in (1, 2, 3)}


def run(*args, ns=None, timeout=30, check=True, **kwargs):
    command = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          check=check, **kwargs)


def make_networks():
    run("ip", "netns", "add", SERVER)
    run("ip", "link", "set", "lo", "up", ns=SERVER)
    for n, client in CLIENTS.items():
        run("ip", "netns", "add", client)
        run("ip", "link", "set", "lo", "up", ns=client)
        here, there = f"{TAG}s{n}", f"{TAG}c{n}"
        run("ip", "link", "add", here, "type", "veth", "peer", "name", there)
        run("ip", "link", "set", here, "netns", SERVER)
        run("ip", "link", "set", there, "netns", client)
        run("ip", "addr", "add", f"10.77.{n}.1/24", "dev", here, ns=SERVER)
        run("ip", "link", "set", here, "up", ns=SERVER)
        run("ip", "addr", "add", f"10.77.{n}.2/24", "dev", there, ns=client)
        run("ip", "link", "set", there, "up", ns=client)
    run("ip", "addr", "add", "10.77.2.100/24", "dev", f"{TAG}s2", ns=SERVER)
    # Link-local addresses of their own on network 1, at once (no DAD).
    run("ip", "-6", "addr", "add", "fe80::1/64", "dev", f"{TAG}s1", "nodad", ns=SERVER)
    run("ip", "-6", "addr", "add", "fe80::2/64", "dev", f"{TAG}c1", "nodad", ns=CLIENTS[1])


def remove_networks():
    for ns in [SERVER] + list(CLIENTS.values()):
        run("ip", "netns", "del", ns, check=False)


def start_horad(*flags):
    # The seed's socket, then SNTP's, are bound: every line is out.
    horad, _ = start_daemon(
        ["ip", "netns", "exec", SERVER, HORAD, "--config", "/dev/null",
         "--sntp-local-stratum", "10", "--log-format", "text", "--stats-interval", "0s",
         "--no-ratelimit"] + list(flags),
        "sntp listening on")
    return horad


def stop(horad):
    horad.terminate()
    try:
        horad.wait(timeout=10)
    except subprocess.TimeoutExpired:
        horad.kill()


def chronyd_q(client, server):
    """chronyd -Q's measurement of `server` from namespace `client`."""
    def fn():
        with tempfile.TemporaryDirectory() as scratch:
            conf = os.path.join(scratch, "client.conf")
            with open(conf, "w") as f:
                f.write(f"server {server} iburst maxsamples 1\n"
                        f"cmdport 0\npidfile {scratch}/chronyd.pid\n")
            done = run("chronyd", "-Q", "-u", "root", "-f", conf, "-t", "10",
                       ns=client, check=False)
        output = done.stdout + done.stderr
        found = re.search(r"System clock wrong by (-?[0-9.]+) seconds", output)
        if not found:
            raise AssertionError(f"no measurement: {output!r}")
        offset = float(found.group(1))
        assert abs(offset) < 0.05, f"off by {offset:+.6f} s"
        return f"{server}: off by {offset:+.6f} s"
    return fn


def ntpdate_q(client, server):
    """ntpdate -q's sample, classic ("server A, stratum 10, offset +0.0001,
    ...") or ntpsec's ("... +0.000022 +/- 0.000047 A s10 no-leap")."""
    def fn():
        done = run("ntpdate", "-q", server, ns=client, check=False)
        output = done.stdout + done.stderr
        found = (re.search(r"stratum (\d+), offset ([-+]?[0-9.]+)", output)
                 or re.search(r"\) ([-+][0-9.]+) \+/- [0-9.]+ \S+ s(\d+) ", output))
        if not found:
            raise AssertionError(f"no sample: {output!r}")
        numbers = found.groups()
        stratum, offset = (numbers[0], numbers[1]) if "stratum" in found.group(0) else (numbers[1], numbers[0])
        assert stratum == "10", f"stratum {stratum}"
        assert abs(float(offset)) < 0.05, f"offset {offset}"
        return f"{server}: stratum 10, offset {offset}"
    return fn


def hora_time(client, server):
    def fn():
        done = run(HORA, "--server", f"{server}:5005", "time", ns=client, check=False)
        assert done.returncode == 0, f"exit {done.returncode}: {done.stderr.strip()!r}"
        return f"{server}: {done.stdout.strip()!r}"
    return fn


def seed_client(client, client_ip, server):
    """The seed's own client, its addresses set for the namespace: it asks
    the time (option 1), then ends the session (option 2)."""
    def fn():
        with open(SEED_CLIENT) as f:
            source = f.read()
        source = source.replace('UDP_IP = "127.0.0.1"', f'UDP_IP = "{server}"')
        source = source.replace("sock.bind((UDP_IP,", f'sock.bind(("{client_ip}",')
        done = run("python3", "-c", source, ns=client, input="1\n2\n", check=False)
        output = done.stdout
        assert re.search(r"Data e hora no servidor: \d{2}/\d{2}/\d{4}, \d{2}:\d{2}:\d{2}", output), \
            f"no date: {output!r}"
        assert "Conexao encerrada" in output, f"no closing line: {output!r}"
        return f"{server}: the time, then Conexao encerrada"
    return fn


def hora_time_scoped(client, interface, server):
    """`hora time` to a link-local `server` through `interface`, its scope
    given as the interface's index (as a socket address writes it)."""
    def fn():
        index = run("cat", f"/sys/class/net/{interface}/ifindex", ns=client).stdout.strip()
        done = run(HORA, "--server", f"[{server}%{index}]:5005", "time", ns=client, check=False)
        assert done.returncode == 0, f"exit {done.returncode}: {done.stderr.strip()!r}"
        return f"[{server}%{interface}]: {done.stdout.strip()!r}"
    return fn


def sntp_scoped(client, interface, server):
    """One SNTP request to a link-local `server` through `interface`, on a
    socket connected to it: a server-mode reply."""
    def fn():
        probe = (
            "import socket, sys\n"
            "s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n"
            "s.settimeout(5)\n"
            f"where = socket.getaddrinfo('{server}%{interface}', 123, socket.AF_INET6)[0][4]\n"
            "s.connect(where)\n"
            "s.send(bytes([0x23]) + bytes(47))\n"
            "reply = s.recv(1024)\n"
            "sys.exit(0 if len(reply) == 48 and reply[0] & 7 == 4 else 1)\n")
        done = run("python3", "-c", probe, ns=client, check=False)
        assert done.returncode == 0, f"no server reply: {done.stderr.strip()!r}"
        return f"[{server}%{interface}]:123: a server reply"
    return fn


def no_answer(client, server, port):
    """A datagram to `server`:`port` from `client` gets no answer."""
    def fn():
        probe = (
            "import socket, sys\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.settimeout(1)\n"
            f"s.connect(('{server}', {port}))\n"
            "s.send(b'login')\n"
            "try:\n"
            "    s.recv(1024)\n"
            "    sys.exit(1)\n"
            "except (socket.timeout, ConnectionRefusedError):\n"
            "    sys.exit(0)\n")
        done = run("python3", "-c", probe, ns=client, check=False)
        assert done.returncode == 0, f"{server}:{port} answered"
        return f"{server}:{port}: nothing"
    return fn


def main():
    if os.geteuid() != 0:
        sys.exit("vlans: needs root (network namespaces)")
    remove_networks()
    try:
        make_networks()
        horad = start_horad("--bind", "10.77.1.1:5005,10.77.2.1:5005",
                            "--sntp-bind", "10.77.1.1:123,10.77.2.1:123")
        try:
            for n in (1, 2):
                client, server = CLIENTS[n], f"10.77.{n}.1"
                check(f"one address a network: chronyd -Q on network {n}", chronyd_q(client, server))
                check(f"one address a network: ntpdate -q on network {n}", ntpdate_q(client, server))
                check(f"one address a network: hora time on network {n}", hora_time(client, server))
                check(f"one address a network: the seed's client on network {n}",
                      seed_client(client, f"10.77.{n}.2", server))
            check("an address horad is not bound to: the seed's port",
                  no_answer(CLIENTS[3], "10.77.3.1", 5005))
            check("an address horad is not bound to: SNTP's port",
                  no_answer(CLIENTS[3], "10.77.3.1", 123))
        finally:
            stop(horad)
        horad = start_horad("--bind", f"0.0.0.0:5005%{TAG}s1,[fe80::1%{TAG}s1]:5005",
                            "--sntp-bind", f"0.0.0.0:123%{TAG}s1,[fe80::1%{TAG}s1]:123")
        try:
            check("tied to an interface: hora time on its network",
                  hora_time(CLIENTS[1], "10.77.1.1"))
            check("tied to an interface: chronyd -Q on its network",
                  chronyd_q(CLIENTS[1], "10.77.1.1"))
            check("tied to an interface: another network's client gets nothing",
                  no_answer(CLIENTS[3], "10.77.3.1", 5005))
            check("a link-local address with its scope: hora time",
                  hora_time_scoped(CLIENTS[1], f"{TAG}c1", "fe80::1"))
            check("a link-local address with its scope: SNTP",
                  sntp_scoped(CLIENTS[1], f"{TAG}c1", "fe80::1"))
        finally:
            stop(horad)
        horad = start_horad("--bind", "0.0.0.0:5005", "--sntp-bind", "0.0.0.0:123")
        try:
            asked = "10.77.2.100"
            check("wildcard bind: chronyd -Q asking the network's second address",
                  chronyd_q(CLIENTS[2], asked))
            check("wildcard bind: ntpdate -q asking it", ntpdate_q(CLIENTS[2], asked))
            check("wildcard bind: hora time asking it", hora_time(CLIENTS[2], asked))
            check("wildcard bind: the seed's client asking it",
                  seed_client(CLIENTS[2], "10.77.2.2", asked))
        finally:
            stop(horad)
    finally:
        remove_networks()
    finish("vlans")


if __name__ == "__main__":
    main()
