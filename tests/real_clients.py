#!/usr/bin/env python3
"""Real clients that nobody here wrote, against horad's standard protocols.

Starts horad (the binary given as the first argument) with SNTP, RFC 868 Time
and RFC 867 Daytime on ephemeral loopback ports, then asks it the time with
Python's ntplib, Debian's rdate (SNTP and RFC 868 over UDP), chronyd -Q (which
only measures and sets nothing; over plain NTP and over NTS) and socat; and
`hora sntp --nts` against chronyd's own NTS server. Every answer must agree with this
host's clock. That horad runs with --sntp-local-stratum 10 (chrony's `local
stratum 10`), since a CI machine's kernel may say its clock is unsynchronized;
a second horad without it must tell the truth about the clock as the kernel
sees it (leap indicator 3 and no sample for chronyd -Q when unsynchronized).
Prints one line per check and a closing "real clients: N passed, M failed";
exits 1 if any failed.

.ci/run installs the clients (apt: chrony rdate socat; pip: ntplib).
"""

import datetime
import email.utils
import os
import re
import subprocess
import sys
import tempfile
import time

from checks import check, finish

HORAD = sys.argv[1] if len(sys.argv) > 1 else "target/debug/horad"
HORA = os.path.join(os.path.dirname(HORAD), "hora")
LOOPBACK = "127.0.0.1"


def kernel_clock_synchronized():
    """What ntp_adjtime (modes 0) says, as horad reads it: not TIME_ERROR and
    not STA_UNSYNC."""
    import ctypes

    class Timex(ctypes.Structure):
        _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long),
                    ("freq", ctypes.c_long), ("maxerror", ctypes.c_long),
                    ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                    ("rest", ctypes.c_byte * 256)]

    timex = Timex()
    state = ctypes.CDLL(None, use_errno=True).ntp_adjtime(ctypes.byref(timex))
    return state != 5 and not (timex.status & 0x0040)


def start_horad(local_stratum=True, more=()):
    extra = (["--sntp-local-stratum", "10"] if local_stratum else []) + list(more)
    horad = subprocess.Popen(
        [HORAD, "--bind", f"{LOOPBACK}:0", "--sntp-bind", f"{LOOPBACK}:0",
         "--time-bind", f"{LOOPBACK}:0", "--daytime-bind", f"{LOOPBACK}:0",
         "--log-format", "text", "--stats-interval", "0s", "--config", "/dev/null"] + extra,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, env={k: v for k, v in os.environ.items() if k != "RUST_LOG"})
    ports = {}
    deadline = time.monotonic() + 10
    while len(ports) < 3 and time.monotonic() < deadline:
        line = horad.stderr.readline()
        if not line:
            break
        found = re.search(r"(sntp|time|daytime) listening on 127\.0\.0\.1:(\d+)", line)
        if found:
            ports[found.group(1)] = int(found.group(2))
    if len(ports) < 3:
        horad.kill()
        sys.exit(f"horad did not start its three protocols: {ports}")
    return horad, ports


def within(seconds, limit, what):
    if abs(seconds) > limit:
        raise AssertionError(f"{what} off by {seconds:+.6f} s (limit {limit} s)")
    return f"{what} off by {seconds:+.6f} s"


def ntplib_check(port, version):
    def run():
        import ntplib
        response = ntplib.NTPClient().request(LOOPBACK, port=port, version=version, timeout=5)
        assert response.version == version, f"version {response.version}"
        assert response.stratum == 10, f"stratum {response.stratum}"
        ref = ntplib.ref_id_to_text(response.ref_id, response.stratum)
        assert ref == "127.127.1.1", f"reference id {ref}"
        return within(response.offset, 0.05, f"offset (stratum 10, ref {ref}, delay {response.delay:.6f} s)")
    return run


def rdate_check(flag, port):
    def run():
        before = time.time()
        out = subprocess.run(["rdate", flag, "-p", "-o", str(port), LOOPBACK],
                             capture_output=True, text=True, timeout=20, check=True,
                             env=dict(os.environ, TZ="UTC")).stdout
        after = time.time()
        # rdate prints ctime(3) in UTC here: "Tue Nov 24 08:46:18 UTC 2026"; it has whole seconds.
        text = out.strip().splitlines()[-1].replace("rdate: [127.0.0.1]\t", "")
        served = datetime.datetime.strptime(text, "%a %b %d %H:%M:%S %Z %Y")
        served = served.replace(tzinfo=datetime.timezone.utc).timestamp()
        if not (int(before) <= served <= after):
            raise AssertionError(f"{text!r} outside [{before:.3f}, {after:.3f}]")
        return f"{text!r} (whole seconds, within the request's second)"
    return run


def run_chronyd_q(port):
    with tempfile.TemporaryDirectory() as scratch:
        conf = os.path.join(scratch, "client.conf")
        with open(conf, "w") as f:
            f.write(f"server {LOOPBACK} port {port} iburst maxsamples 1\n"
                    f"cmdport 0\npidfile {scratch}/chronyd.pid\n")
        done = subprocess.run(["chronyd", "-Q", "-f", conf, "-t", "10"],
                              capture_output=True, text=True, timeout=30)
    return done.stdout + done.stderr


def truth_check(port):
    """Without local_stratum: LI 3 and no chronyd sample on an unsynchronized
    host; LI 0-2 and a sample on a synchronized one."""
    def run():
        import ntplib
        synchronized = kernel_clock_synchronized()
        response = ntplib.NTPClient().request(LOOPBACK, port=port, version=4, timeout=5)
        output = run_chronyd_q(port)
        sampled = "System clock wrong by" in output
        if synchronized:
            assert response.leap < 3 and response.stratum == 10, (response.leap, response.stratum)
            assert sampled, f"chronyd -Q took no sample: {output!r}"
            return f"kernel synchronized: LI {response.leap}, stratum {response.stratum}, chronyd sampled"
        assert response.leap == 3, f"LI {response.leap}"
        assert response.stratum == 0, f"stratum {response.stratum}"
        assert not sampled, f"chronyd -Q took a sample: {output!r}"
        return "kernel unsynchronized: LI 3, stratum 0, and chronyd -Q took no sample"
    return run


def chronyd_check(port):
    def run():
        output = run_chronyd_q(port)
        found = re.search(r"System clock wrong by (-?[0-9.]+) seconds \(ignored\)", output)
        if not found:
            raise AssertionError(f"no measurement in chronyd's output: {output!r}")
        return within(float(found.group(1)), 0.05, "chronyd -Q: system clock")
    return run


def chronyd_xleave_check(port):
    """chronyd in interleaved mode (`xleave`, RFC 9769), as root so that it
    writes its measurements log: from its third sample on, horad's replies
    carry the kernel's transmit time of the reply before, and chronyd marks
    those samples `I`."""
    def run():
        with tempfile.TemporaryDirectory() as scratch:
            os.makedirs(f"{scratch}/log")
            conf = os.path.join(scratch, "client.conf")
            with open(conf, "w") as f:
                f.write(f"server {LOOPBACK} port {port} iburst xleave minpoll -4 maxpoll -4 "
                        f"maxsamples 8\ncmdport 0\npidfile {scratch}/chronyd.pid\n"
                        f"logdir {scratch}/log\nlog measurements\n")
            done = subprocess.run(["chronyd", "-Q", "-u", "root", "-f", conf, "-t", "10"],
                                  capture_output=True, text=True, timeout=30)
            with open(f"{scratch}/log/measurements.log") as f:
                samples = [line.split() for line in f if line[:1].isdigit()]
        modes = "".join(fields[-3][-1] for fields in samples)
        interleaved = [float(fields[11]) for fields in samples if fields[-3].endswith("I")]
        assert interleaved, f"no interleaved sample ({modes!r}): {done.stdout + done.stderr!r}"
        worst = max(abs(offset) for offset in interleaved)
        assert worst < 0.001, f"interleaved offsets up to {worst} s"
        return f"samples {modes}, interleaved offsets within {worst * 1e6:.1f} us"
    return run


def socat_check(port):
    def run():
        before = time.time()
        raw = subprocess.run(["socat", "-t", "2", "-", f"UDP:{LOOPBACK}:{port}"], input=b"\n",
                             capture_output=True, timeout=10, check=True).stdout
        after = time.time()
        out = raw.decode("ascii")
        assert out.endswith("\r\n") and out.count("\n") == 1, repr(out)
        served = email.utils.parsedate_to_datetime(out.strip()).timestamp()
        if not (int(before) <= served <= after):
            raise AssertionError(f"{out!r} outside [{before:.3f}, {after:.3f}]")
        return repr(out)
    return run


def seed_address(horad_stderr_lines):
    for line in horad_stderr_lines:
        found = re.search(r" listening on (127\.0\.0\.1:\d+)", line)
        if found:
            return found.group(1)
    raise AssertionError("horad did not report its address")


def tmux_notice_check(trigger):
    """hora in a real terminal (tmux): the server's closing notice appears
    without a key press, in the seed's closing-line form, and hora exits 1.
    trigger is "idle" (horad's idle timeout, 1 s) or "shutdown" (SIGTERM)."""
    def run():
        flags = ["--idle-timeout", "1s"] if trigger == "idle" else []
        horad = subprocess.Popen(
            [HORAD, "--config", "/dev/null", "--bind", f"{LOOPBACK}:0", "--log-format", "text"] + flags,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        session = f"hora-{trigger}-{os.getpid()}"
        try:
            addr = seed_address(iter(horad.stderr.readline, ""))
            subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30",
                            f"{HORA} --server {addr}; echo EXIT=$?; sleep 30"], check=True)
            expected = {"idle": "Conexao encerrada por inatividade do cliente às ",
                        "shutdown": "Servidor desligando. Conexao encerrada às "}[trigger]
            screen = ""
            deadline = time.monotonic() + 15
            signalled = False
            while time.monotonic() < deadline:
                screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                                        capture_output=True, text=True).stdout
                if trigger == "shutdown" and not signalled and "2 - Encerrar a conexao." in screen:
                    horad.terminate()
                    signalled = True
                if expected in screen and "EXIT=" in screen:
                    break
                time.sleep(0.1)
            assert expected in screen, f"no {expected!r} on the screen:\n{screen}"
            assert "EXIT=1" in screen, f"exit status is not 1:\n{screen}"
            return f"{expected.strip()} HH:MM:SS shown with no key pressed; hora exited 1"
        finally:
            subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
            horad.kill()
            horad.wait(timeout=5)
    return run


def ntpdate_q(host):
    """ntpdate -q's sample: (stratum, offset, its delay or error bound). Three
    runs, the one with the least delay kept, as `hora sntp --count 4` keeps its
    best: one sample a run, and a 2-vCPU VM now and then delays one by a
    millisecond (a check saw ntpdate 1.36 ms off where hora was 0.02 ms)."""
    samples = [ntpdate_once(host) for _ in range(3)]
    return min(samples, key=lambda sample: sample[2])[:2]


def ntpdate_once(host):
    out = subprocess.run(["ntpdate", "-q", host], capture_output=True, text=True, timeout=30)
    # Classic ntpdate: "server 127.0.0.1, stratum 10, offset +0.000012, delay 0.02580";
    # Debian 12's (ntpsec's ntpdig): "2026-11-26 13:21:14.26758 (+0000) +0.000022
    # +/- 0.000047 127.0.0.1 s10 no-leap".
    classic = re.search(r"server \S+, stratum (\d+), offset ([-+]?[0-9.]+), delay ([0-9.]+)",
                        out.stdout)
    if classic:
        return int(classic.group(1)), float(classic.group(2)), float(classic.group(3))
    ntpsec = re.search(r"\) ([-+][0-9.]+) \+/- ([0-9.]+) \S+ s(\d+) ", out.stdout)
    if ntpsec:
        return int(ntpsec.group(3)), float(ntpsec.group(1)), float(ntpsec.group(2))
    raise AssertionError(f"no sample in ntpdate's output: {out.stdout!r} {out.stderr!r}")


def hora_sntp(host):
    out = subprocess.run([HORA, "sntp", "--server", host, "--json", "--count", "4"],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise AssertionError(f"hora sntp failed: {out.stderr!r}")
    import json
    reply = json.loads(out.stdout)
    return reply["stratum"], reply["offset_s"]


def agree_with_ntpdate(name, start, stop):
    """Starts a server on 127.0.0.1:123 (ntpdate asks only port 123), asks it
    with ntpdate -q and with hora sntp: same stratum, offsets within 1 ms."""
    def run():
        server = start()
        try:
            time.sleep(1)
            stratum_n, offset_n = ntpdate_q(LOOPBACK)
            stratum_h, offset_h = hora_sntp(LOOPBACK)
        finally:
            stop(server)
        assert stratum_n == stratum_h, f"stratum: ntpdate {stratum_n}, hora {stratum_h}"
        assert abs(offset_n - offset_h) < 0.001, f"offsets: ntpdate {offset_n}, hora {offset_h}"
        return f"{name}: stratum {stratum_h} both; offset ntpdate {offset_n:+.6f}, hora {offset_h:+.6f}"
    return run


def make_pki(scratch, name):
    """A CA and a server certificate for IP 127.0.0.1 (SAN), made with openssl."""
    ca_key, ca = f"{scratch}/{name}-ca.key", f"{scratch}/{name}-ca.pem"
    key, csr, cert = f"{scratch}/{name}.key", f"{scratch}/{name}.csr", f"{scratch}/{name}.pem"
    ext = f"{scratch}/{name}.ext"
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    quiet = dict(check=True, capture_output=True, timeout=60)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", f"/CN=hora test CA {name}"], **quiet)
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"], **quiet)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                    "-out", cert, "-days", "2", "-extfile", ext], **quiet)
    return {"ca": ca, "cert": cert, "key": key}


def start_horad_nts(scratch, pki):
    horad = subprocess.Popen(
        [HORAD, "--config", "/dev/null", "--bind", f"{LOOPBACK}:0", "--sntp-bind", f"{LOOPBACK}:0",
         "--sntp-local-stratum", "10", "--nts-bind", f"{LOOPBACK}:0",
         "--nts-certificate-chain", pki["cert"], "--nts-private-key", pki["key"],
         "--nts-keys", f"{scratch}/nts-keys", "--log-format", "text", "--stats-interval", "0s"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, env={k: v for k, v in os.environ.items() if k != "RUST_LOG"})
    ports = {}
    deadline = time.monotonic() + 10
    while len(ports) < 2 and time.monotonic() < deadline:
        line = horad.stderr.readline()
        if not line:
            break
        found = re.search(r"(sntp|nts-ke) listening on 127\.0\.0\.1:(\d+)", line)
        if found:
            ports[found.group(1)] = int(found.group(2))
    if len(ports) < 2:
        horad.kill()
        raise AssertionError(f"horad did not start SNTP and NTS-KE: {ports}")
    return horad, ports


def run_chronyd_q_nts(sntp_port, ke_port, trusted_ca):
    """chronyd -Q as an NTS client (-u root: its files are in a temp dir)."""
    with tempfile.TemporaryDirectory() as scratch:
        conf = os.path.join(scratch, "client.conf")
        with open(conf, "w") as f:
            f.write(f"server {LOOPBACK} port {sntp_port} nts ntsport {ke_port} iburst maxsamples 1\n"
                    f"ntstrustedcerts {trusted_ca}\nntsdumpdir {scratch}\n"
                    f"cmdport 0\npidfile {scratch}/chronyd.pid\n")
        done = subprocess.run(["chronyd", "-Q", "-u", "root", "-f", conf, "-t", "10"],
                              capture_output=True, text=True, timeout=30)
    return done.stdout + done.stderr


def chronyd_nts_check():
    """chronyd -Q takes an NTS-authenticated sample from horad when it trusts
    horad's CA, and none when it trusts another."""
    def run():
        with tempfile.TemporaryDirectory() as scratch:
            pki = make_pki(scratch, "horad")
            other = make_pki(scratch, "other")
            horad, ports = start_horad_nts(scratch, pki)
            try:
                trusted = run_chronyd_q_nts(ports["sntp"], ports["nts-ke"], pki["ca"])
                untrusted = run_chronyd_q_nts(ports["sntp"], ports["nts-ke"], other["ca"])
            finally:
                horad.terminate()
                horad.wait(timeout=5)
        found = re.search(r"System clock wrong by (-?[0-9.]+) seconds \(ignored\)", trusted)
        if not found:
            raise AssertionError(f"no NTS sample in chronyd's output: {trusted!r}")
        if "System clock wrong by" in untrusted:
            raise AssertionError(f"chronyd took a sample trusting another CA: {untrusted!r}")
        return within(float(found.group(1)), 0.05, "chronyd -Q over NTS") + "; none trusting another CA"
    return run


def free_port():
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def hora_nts_vs_chronyd_check():
    """hora sntp --nts against chronyd's own NTS server agrees with hora sntp
    (plain) against the same chronyd, and says it was authenticated."""
    def run():
        import json
        with tempfile.TemporaryDirectory() as scratch:
            pki = make_pki(scratch, "chronyd")
            ntp_port, ke_port = free_port(), free_port()
            conf = os.path.join(scratch, "chrony.conf")
            with open(conf, "w") as f:
                f.write(f"port {ntp_port}\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 10\n"
                        f"ntsserverkey {pki['key']}\nntsservercert {pki['cert']}\nntsport {ke_port}\n"
                        f"ntsdumpdir {scratch}\ncmdport 0\npidfile {scratch}/chronyd.pid\n"
                        f"driftfile {scratch}/drift\n")
            chronyd = subprocess.Popen(["chronyd", "-d", "-x", "-u", "root", "-f", conf],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            try:
                out = None
                for _ in range(50):  # until chronyd listens (bounded: 5 s)
                    out = subprocess.run([HORA, "sntp", "--nts", "--ca", pki["ca"], "--server",
                                          f"{LOOPBACK}:{ke_port}", "--json", "--count", "4", "--timeout", "2s"],
                                         capture_output=True, text=True, timeout=60)
                    if out.returncode == 0 or "refused" not in out.stderr:
                        break
                    time.sleep(0.1)
                plain = subprocess.run([HORA, "sntp", "--server", f"{LOOPBACK}:{ntp_port}", "--json", "--count", "4"],
                                       capture_output=True, text=True, timeout=60)
            finally:
                chronyd.terminate()
                chronyd.wait(timeout=10)
        if out is None or out.returncode != 0:
            raise AssertionError(f"hora sntp --nts failed: {out.stderr if out else ''!r}")
        nts = json.loads(out.stdout)
        plain = json.loads(plain.stdout)
        assert nts["nts"] in ("AEAD_AES_SIV_CMAC_256", "AEAD_AES_128_GCM_SIV"), nts
        assert nts["stratum"] == plain["stratum"] == 10, (nts, plain)
        assert abs(nts["offset_s"] - plain["offset_s"]) < 0.001, (nts, plain)
        return (f"chronyd's NTS server: {nts['nts']}, offset NTS {nts['offset_s']:+.6f}, "
                f"plain {plain['offset_s']:+.6f}")
    return run


def tmux_menu_check(name, script):
    """hora in a real terminal (tmux) against a fresh horad: `script(keys,
    wait_for)` presses keys and reads the screen (`wait_for(predicate,
    what)`: the screen once the predicate holds, within 15 s) and returns
    the check's line."""
    def run():
        horad = subprocess.Popen(
            [HORAD, "--config", "/dev/null", "--bind", f"{LOOPBACK}:0", "--log-format", "text"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        session = f"hora-{name}-{os.getpid()}"
        try:
            addr = seed_address(iter(horad.stderr.readline, ""))
            subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "40",
                            f"{HORA} --server {addr}; echo EXIT=$?; sleep 30"], check=True)
            def screen():
                return subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                                      capture_output=True, text=True).stdout
            def wait_for(predicate, what):
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    shown = screen()
                    if predicate(shown):
                        return shown
                    time.sleep(0.1)
                raise AssertionError(f"no {what} on the screen:\n{screen()}")
            def keys(*pressed):
                subprocess.run(["tmux", "send-keys", "-t", session, *pressed], check=True)
            return script(keys, wait_for)
        finally:
            subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
            horad.kill()
            horad.wait(timeout=5)
    return run


def tmux_interrupt_check():
    """A bare Enter shows the menu again and sends nothing (the session lives
    on), and Ctrl-C logs out and exits 130."""
    def script(keys, wait_for):
        wait_for(lambda shown: shown.count("2 - Encerrar a conexao.") == 1, "menu")
        keys("Enter")
        shown = wait_for(lambda shown: shown.count("2 - Encerrar a conexao.") == 2, "second menu")
        assert "Opcao invalida" not in shown, f"a bare Enter was sent:\n{shown}"
        keys("C-c")
        shown = wait_for(lambda shown: "EXIT=" in shown, "exit status")
        assert "EXIT=130" in shown, f"exit status is not 130:\n{shown}"
        return "a bare Enter showed the menu again (nothing sent); Ctrl-C logged out, exit 130"
    return tmux_menu_check("interrupt", script)


def tmux_invalid_option_check():
    """An invalid option at the menu ends the session as the seed's server
    does, and hora exits 1 (the server ended it on an error), not 0 as
    after a logout."""
    def script(keys, wait_for):
        wait_for(lambda shown: "2 - Encerrar a conexao." in shown, "menu")
        keys("3", "Enter")
        shown = wait_for(lambda shown: "EXIT=" in shown, "exit status")
        assert "Opcao invalida. Conexao encerrada" in shown, f"no closing line:\n{shown}"
        assert "EXIT=1" in shown, f"exit status is not 1:\n{shown}"
        return "option 3: Opcao invalida. Conexao encerrada, exit 1"
    return tmux_menu_check("invalid", script)


def happy_eyeballs_check():
    """A name with ::1 and 127.0.0.1 (a private mount namespace's
    /etc/hosts), horad on [::] denying ::1: `hora time` and `hora sntp` get
    their answer from 127.0.0.1 within a second, not after the timeout."""
    def run():
        with tempfile.TemporaryDirectory() as scratch:
            config = os.path.join(scratch, "horad.toml")
            with open(config, "w") as f:
                f.write('[access]\ndeny = ["::1/128"]\n')
            horad = subprocess.Popen(
                [HORAD, "--config", config, "--bind", "[::]:0", "--sntp-bind", "[::]:0",
                 "--sntp-local-stratum", "10", "--log-format", "text", "--stats-interval", "0s"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                text=True, env={k: v for k, v in os.environ.items() if k != "RUST_LOG"})
            try:
                ports = {}
                while len(ports) < 2:
                    line = horad.stderr.readline()
                    if not line:
                        raise AssertionError("horad did not start")
                    found = re.search(r"INFO (sntp )?listening on \[::\]:(\d+)", line)
                    if found:
                        ports["sntp" if found.group(1) else "seed"] = int(found.group(2))
                hosts = os.path.join(scratch, "hosts")
                with open("/etc/hosts") as f, open(hosts, "w") as out:
                    out.write(f.read() + "\n::1 dual.test\n127.0.0.1 dual.test\n")
                script = (f"mount --bind {hosts} /etc/hosts && "
                          f"{HORA} --server dual.test:{ports['seed']} time && "
                          f"{HORA} sntp --server dual.test:{ports['sntp']}")
                started = time.monotonic()
                done = subprocess.run(["unshare", "-m", "sh", "-c", script],
                                      capture_output=True, text=True, timeout=60)
                took = time.monotonic() - started
            finally:
                horad.terminate()
                horad.wait(timeout=5)
        assert done.returncode == 0, f"{done.returncode}: {done.stderr!r}"
        assert took < 2.0, f"took {took:.2f} s: {done.stderr!r}"
        return f"both answered from 127.0.0.1 in {took:.2f} s ({done.stderr.strip().splitlines()[0] if done.stderr.strip() else 'first address answered'})"
    return run


def start_chronyd_123():
    scratch = tempfile.mkdtemp()
    conf = os.path.join(scratch, "chrony.conf")
    with open(conf, "w") as f:
        f.write(f"port 123\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 10\n"
                f"cmdport 0\npidfile {scratch}/chronyd.pid\ndriftfile {scratch}/drift\n")
    return subprocess.Popen(["chronyd", "-d", "-x", "-f", conf],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_horad_123():
    return subprocess.Popen(
        [HORAD, "--config", "/dev/null", "--bind", f"{LOOPBACK}:0", "--sntp-bind", f"{LOOPBACK}:123",
         "--sntp-local-stratum", "10", "--no-ratelimit"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(process):
    process.terminate()
    process.wait(timeout=10)


def main():
    horad, ports = start_horad(local_stratum=False)
    try:
        check("the truth without local_stratum (ntplib, chronyd -Q)", truth_check(ports["sntp"]))
    finally:
        horad.terminate()
        horad.wait(timeout=5)
    horad, ports = start_horad()
    try:
        check("ntplib SNTPv4", ntplib_check(ports["sntp"], 4))
        check("ntplib SNTPv3", ntplib_check(ports["sntp"], 3))
        check("rdate -n (SNTP)", rdate_check("-n", ports["sntp"]))
        check("rdate -u (RFC 868 over UDP)", rdate_check("-u", ports["time"]))
        check("chronyd -Q (NTP)", chronyd_check(ports["sntp"]))
        if os.geteuid() == 0:
            check("chronyd -Q xleave (interleaved mode)", chronyd_xleave_check(ports["sntp"]))
        check("socat (RFC 867 daytime)", socat_check(ports["daytime"]))
    finally:
        horad.terminate()
        horad.wait(timeout=5)
    check("chronyd -Q over NTS (horad's key exchange and SNTP)", chronyd_nts_check())
    check("hora sntp --nts vs chronyd's NTS server", hora_nts_vs_chronyd_check())
    check("hora sntp vs ntpdate -q (chronyd, local stratum 10)",
          agree_with_ntpdate("chronyd", start_chronyd_123, stop))
    check("hora sntp vs ntpdate -q (horad, local_stratum 10)",
          agree_with_ntpdate("horad", start_horad_123, stop))
    check("Happy Eyeballs: a dual-stack name whose ::1 is dropped", happy_eyeballs_check())
    check("tmux: a bare Enter re-prompts, Ctrl-C exits 130", tmux_interrupt_check())
    check("tmux: an invalid option ends the session, exit 1", tmux_invalid_option_check())
    check("tmux: hora shows the idle notice at once", tmux_notice_check("idle"))
    check("tmux: hora shows the shutdown notice at once", tmux_notice_check("shutdown"))
    finish("real clients")


if __name__ == "__main__":
    main()
