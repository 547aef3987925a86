#!/usr/bin/env python3
"""The NTS fleet of README's "When one host is not enough", run in network
namespaces this script makes (root needed; CI is root).

    client 10.88.0.2 -- router 10.88.0.1 --+-- A 10.88.1.2  NTS-KE, names 10.88.100.1
                                           +-- B 10.88.2.2  NTP on 10.88.100.1 (anycast)
                                           +-- C 10.88.3.2  NTP on 10.88.100.1 (anycast)

The router reaches the anycast address 10.88.100.1 through B and C by
ECMP (the kernel's multipath route, hashing on the ports:
fib_multipath_hash_policy 1). A runs the key exchange, writes the cookie
keys and hands out the anycast address as the NTP server; B and C only
read A's key file (every namespace sees the same files), so each opens the
cookies the other sealed.

1. From the client, `hora sntp --nts` (several runs, each from its own
   port) and chronyd -Q over NTS get authenticated time, and both B's and
   C's /metrics show NTS answers (hora_nts_requests_total).
2. A chronyd -Q client polling once a second, its traffic routed to B:
   once B has answered it, B is stopped and the route withdrawn (as a
   routing daemon would); its next requests reach C with the cookies it
   holds, and it finishes with authenticated time. C's counters show it.

Prints one line per check and "fleet: N passed, M failed"; exits 1 if any
failed.

    sudo python3 tests/fleet.py target/debug/horad
"""

import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

from checks import check, finish

HORAD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/debug/horad")
HORA = os.path.join(os.path.dirname(HORAD), "hora")
TAG = f"hf{os.getpid() % 100000}"
NS = {name: f"{TAG}{name}" for name in ("client", "router", "A", "B", "C")}
HOSTS = {"A": 1, "B": 2, "C": 3}
ANYCAST = "10.88.100.1"


def run(*args, ns=None, timeout=60, check=True):
    command = (["ip", "netns", "exec", NS[ns]] if ns else []) + list(args)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=check)


def link(a, a_addr, b, b_addr, index):
    here, there = f"{TAG}{index}a", f"{TAG}{index}b"
    run("ip", "link", "add", here, "type", "veth", "peer", "name", there)
    for ns, dev, addr in ((a, here, a_addr), (b, there, b_addr)):
        run("ip", "link", "set", dev, "netns", NS[ns])
        run("ip", "addr", "add", addr, "dev", dev, ns=ns)
        run("ip", "link", "set", dev, "up", ns=ns)


def make_network():
    for ns in NS.values():
        run("ip", "netns", "add", ns)
    for name in NS:
        run("ip", "link", "set", "lo", "up", ns=name)
    link("router", "10.88.0.1/24", "client", "10.88.0.2/24", 0)
    for host, n in HOSTS.items():
        link("router", f"10.88.{n}.1/24", host, f"10.88.{n}.2/24", n)
        run("ip", "route", "add", "default", "via", f"10.88.{n}.1", ns=host)
    run("ip", "route", "add", "default", "via", "10.88.0.1", ns="client")
    run("sysctl", "-qw", "net.ipv4.ip_forward=1", ns="router")
    run("sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1", ns="router")
    for host in ("B", "C"):
        run("ip", "addr", "add", f"{ANYCAST}/32", "dev", "lo", ns=host)
    route_anycast("B", "C")


def route_anycast(*hosts):
    """The router's route to the anycast address: through `hosts`, by ECMP."""
    hops = []
    for host in hosts:
        hops += ["nexthop", "via", f"10.88.{HOSTS[host]}.2"]
    run("ip", "route", "replace", f"{ANYCAST}/32", *hops, ns="router")


def remove_network():
    for ns in NS.values():
        run("ip", "netns", "del", ns, check=False)


def make_pki(scratch):
    """A CA and the key exchange's certificate, for A's address."""
    ca_key, ca = f"{scratch}/ca.key", f"{scratch}/ca.pem"
    key, csr, cert, ext = (f"{scratch}/ke.key", f"{scratch}/ke.csr", f"{scratch}/ke.pem",
                           f"{scratch}/ke.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:10.88.1.2\nbasicConstraints=CA:FALSE\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
        "-subj", "/CN=hora fleet CA")
    run("openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=10.88.1.2")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", ext)
    os.chmod(key, 0o600)
    return ca, cert, key


def start(host, *flags):
    """horad in `host`'s namespace; returns once it listens."""
    horad = subprocess.Popen(
        ["ip", "netns", "exec", NS[host], HORAD, "--config", "/dev/null",
         "--bind", f"10.88.{HOSTS[host]}.2:5005", "--sntp-local-stratum", "10",
         "--metrics-bind", f"10.88.{HOSTS[host]}.2:9975", "--log-format", "text",
         "--stats-interval", "0s", "--no-ratelimit"] + list(flags),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if k != "RUST_LOG"})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        line = horad.stderr.readline()
        if not line:
            break
        if "metrics listening on" in line:
            return horad
    horad.kill()
    raise SystemExit(f"horad on {host} did not start")


def stop(horad):
    if horad.poll() is None:
        horad.terminate()
        horad.wait(timeout=10)


def nts_answered(host):
    """hora_nts_requests_total{result="answered"} on `host`'s /metrics."""
    script = ("import urllib.request\n"
              f"print(urllib.request.urlopen('http://10.88.{HOSTS[host]}.2:9975/metrics',"
              " timeout=5).read().decode())")
    text = run("python3", "-c", script, ns=host).stdout
    found = re.search(r'^hora_nts_requests_total\{[^}]*result="answered"[^}]*\} (\d+)', text, re.M)
    return int(found.group(1)) if found else 0


def chronyd_conf(scratch, ca, name, polls):
    conf = os.path.join(scratch, f"{name}.conf")
    with open(conf, "w") as f:
        f.write(f"server 10.88.1.2 nts iburst minpoll 0 maxpoll 0 maxsamples {polls}\n"
                f"ntstrustedcerts {ca}\nntsdumpdir {scratch}/{name}-nts\n"
                f"cmdport 0\npidfile {scratch}/{name}.pid\n")
    return conf


def chronyd_measured(output):
    found = re.search(r"System clock wrong by (-?[0-9.]+) seconds", output)
    if not found:
        raise AssertionError(f"no authenticated measurement: {output[-400:]!r}")
    offset = float(found.group(1))
    assert abs(offset) < 0.05, f"off by {offset:+.6f} s"
    return offset


def through_the_fleet(ca, scratch):
    def fn():
        for _ in range(8):
            done = run(HORA, "sntp", "--nts", "--server", "10.88.1.2", "--ca", ca, "--json",
                       ns="client", check=False)
            assert done.returncode == 0, f"hora sntp --nts: {done.stderr.strip()!r}"
        conf = chronyd_conf(scratch, ca, "once", 1)
        done = run("chronyd", "-Q", "-u", "root", "-f", conf, "-t", "20", ns="client",
                   check=False)
        offset = chronyd_measured(done.stdout + done.stderr)
        answered = {host: nts_answered(host) for host in ("B", "C")}
        assert all(n > 0 for n in answered.values()), f"NTS answers by host: {answered}"
        return f"8 hora sntp --nts and chronyd -Q (off by {offset:+.6f} s); NTS answers {answered}"
    return fn


def b_stops_mid_run(ca, scratch, hosts):
    def fn():
        route_anycast("B")
        before = {host: nts_answered(host) for host in ("B", "C")}
        conf = chronyd_conf(scratch, ca, "long", 6)
        client = subprocess.Popen(
            ["ip", "netns", "exec", NS["client"], "chronyd", "-Q", "-u", "root", "-f", conf,
             "-t", "40"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # Bounded: B answers the client's first requests within seconds.
        for _ in range(200):
            if nts_answered("B") >= before["B"] + 2:
                break
            time.sleep(0.05)
        else:
            client.kill()
            raise AssertionError("B never answered the client")
        stop(hosts.pop("B"))
        route_anycast("C")
        output = client.communicate(timeout=60)[0]
        offset = chronyd_measured(output)
        gained = nts_answered("C") - before["C"]
        assert gained > 0, "C answered nothing after B stopped"
        return (f"B answered, then stopped; C answered {gained} more with the client's cookies;"
                f" chronyd off by {offset:+.6f} s")
    return fn


def main():
    if os.geteuid() != 0:
        sys.exit("fleet: needs root (network namespaces)")
    remove_network()
    hosts = {}
    with tempfile.TemporaryDirectory() as scratch:
        os.chmod(scratch, 0o755)
        try:
            make_network()
            ca, cert, key = make_pki(scratch)
            keys = f"{scratch}/nts-keys"
            hosts["A"] = start("A", "--nts-bind", "10.88.1.2:4460", "--nts-certificate-chain",
                               cert, "--nts-private-key", key, "--nts-keys", keys,
                               "--nts-ntp-server", ANYCAST)
            for host in ("B", "C"):
                hosts[host] = start(host, "--sntp-bind", f"{ANYCAST}:123", "--nts-keys", keys)
            check("authenticated time through the anycast address, from both NTP hosts",
                  through_the_fleet(ca, scratch))
            check("host B stops mid-run: its client goes on with C",
                  b_stops_mid_run(ca, scratch, hosts))
        finally:
            for horad in hosts.values():
                stop(horad)
            remove_network()
    finish("fleet")


if __name__ == "__main__":
    main()
