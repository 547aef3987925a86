#!/usr/bin/env python3
"""Restarts without a lost request: horad on sockets systemd passes.

1. `systemd-socket-activate` (Debian's systemd package) hands horad its
   seed and SNTP sockets (`--fdname=seed:sntp`): both answer; a socket the
   configuration does not bind is refused with one line and exit 2.
2. Ten restarts (SIGTERM, then the next start at once) while a paced SNTP
   client and a paced protocol v2 client (a v2 login each 20 ms, on the
   seed's socket, each answered with its challenge) keep asking. As
   systemd's socket unit does, this script holds the sockets and passes
   them to each horad (LISTEN_FDS, LISTEN_FDNAMES): every request is
   answered, the ones sent while no horad ran late, not refused. The same
   run with horad binding its own sockets shows the loss (the kernel
   refuses what arrives between two horads).

Prints one line per check, then "socket activation: N passed, M failed";
exits 1 if any failed.

    python3 tests/socket_activation.py target/debug/horad
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

from checks import check, finish

HORAD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/debug/horad")
RESTARTS = 10
PACE = 0.02


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def horad_flags(seed, sntp):
    return [HORAD, "--config", "/dev/null", "--bind", f"127.0.0.1:{seed}",
            "--sntp-bind", f"127.0.0.1:{sntp}", "--sntp-local-stratum", "10",
            "--workers", "1", "--no-ratelimit", "--stats-interval", "0s",
            "--log-level", "warn"]


def sntp_request(n):
    packet = bytearray(48)
    packet[0] = 4 << 3 | 3
    packet[40:48] = n.to_bytes(8, "big")
    return bytes(packet)


def v2_login(n):
    """A protocol v2 login (PROTOCOL.md) with nonce `n`: the magic, `1`,
    the nonce written two bits a character in whitespace, spaces to 256."""
    magic, spaces = b"\n\x0b\x0c\r\t\x0c\x0b\n", b" \t\x0b\x0c"
    out = bytearray(b" " * 256)
    out[:8] = magic
    out[8] = ord("1")
    for i, byte in enumerate(n.to_bytes(16, "big")):
        for pair in range(4):
            out[9 + 4 * i + pair] = spaces[(byte >> (6 - 2 * pair)) & 3]
    return bytes(out)


def ask(address, datagram):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(datagram, address)
        return s.recvfrom(2048)[0]


def systemd_socket_activate():
    seed, sntp = free_port(), free_port()
    command = ["systemd-socket-activate", "-d", "-l", f"127.0.0.1:{seed}",
               "-l", f"127.0.0.1:{sntp}", "--fdname=seed:sntp"] + horad_flags(seed, sntp)
    activator = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True)
    try:
        time.sleep(0.3)  # it binds at once; a datagram then starts horad
        menu = ask(("127.0.0.1", seed), b"login")
        assert menu.startswith(b"\n \n ****ESCOLHA"), f"seed: {menu!r}"
        reply = ask(("127.0.0.1", sntp), sntp_request(1))
        assert len(reply) == 48 and reply[0] & 7 == 4, f"sntp: {reply!r}"
        return f"seed 127.0.0.1:{seed} and sntp 127.0.0.1:{sntp} answered on systemd's sockets"
    finally:
        activator.terminate()
        activator.wait(timeout=10)


def a_socket_not_configured_is_refused():
    seed, other = free_port(), free_port()
    command = ["systemd-socket-activate", "-d", "-l", f"127.0.0.1:{other}", "--fdname=sntp",
               HORAD, "--config", "/dev/null", "--bind", f"127.0.0.1:{seed}", "--workers", "1"]
    activator = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True)
    time.sleep(0.3)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"login", ("127.0.0.1", other))
    code = activator.wait(timeout=10)
    said = activator.stderr.read().strip().splitlines()[-1]
    assert code == 2, f"exit {code}"
    assert "socket activation: systemd passed sntp" in said, said
    return f"exit 2: {said!r}"


def answered(name, answer):
    """An SNTP server reply, or v2's challenge (its magic, then `C`)."""
    if name == "sntp":
        return len(answer) == 48 and answer[0] & 7 == 4
    return answer[:8] == b"\n\x0b\x0c\r\t\x0c\x0b\n" and answer[8:9] == b"C"


class PacedClients:
    """An SNTP client and a protocol v2 client, one request each PACE,
    each request on its own source port, every answer counted."""

    def __init__(self, seed, sntp):
        self.targets = [("sntp", ("127.0.0.1", sntp)), ("v2", ("127.0.0.1", seed))]
        self.sent = {"sntp": 0, "v2": 0}
        self.answered = {"sntp": 0, "v2": 0}
        self.refused = {"sntp": 0, "v2": 0}
        self.sockets = []
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        n = 0
        while not self.stop.is_set():
            for name, address in self.targets:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.connect(address)
                s.setblocking(False)
                n += 1
                try:
                    s.send(sntp_request(n) if name == "sntp" else v2_login(n))
                    self.sent[name] += 1
                    self.sockets.append((name, s))
                except OSError:
                    self.sent[name] += 1
                    self.refused[name] += 1
                    s.close()
            time.sleep(PACE)

    def collect(self, wait):
        """Reads every answer, waiting up to `wait` seconds for the last."""
        deadline = time.monotonic() + wait
        pending = list(self.sockets)
        while pending and time.monotonic() < deadline:
            still = []
            for name, s in pending:
                try:
                    answer = s.recv(2048)
                    if answered(name, answer):
                        self.answered[name] += 1
                    s.close()
                except BlockingIOError:
                    still.append((name, s))
                except ConnectionRefusedError:
                    self.refused[name] += 1
                    s.close()
            pending = still
            time.sleep(0.01)
        for _, s in pending:
            s.close()


def restarts(activated):
    seed, sntp = free_port(), free_port()
    held = []
    if activated:
        for port in (seed, sntp):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(("127.0.0.1", port))
            held.append(s)

    def start():
        if not activated:
            return subprocess.Popen(horad_flags(seed, sntp), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        fds = [s.fileno() for s in held]

        def as_systemd_does():
            # The held sockets become descriptors 3 and 4, as systemd
            # passes them.
            for target, fd in zip((3, 4), fds):
                os.dup2(fd, target)
        return subprocess.Popen(horad_flags(seed, sntp), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, pass_fds=(3, 4),
                                preexec_fn=as_systemd_does,
                                env=dict(os.environ, LISTEN_FDS="2", LISTEN_FDNAMES="seed:sntp"))

    horad = start()
    time.sleep(0.5)
    clients = PacedClients(seed, sntp)
    pacing = threading.Thread(target=clients.run)
    pacing.start()
    try:
        for _ in range(RESTARTS):
            time.sleep(0.3)
            horad.send_signal(signal.SIGTERM)
            horad.wait(timeout=10)
            horad = start()
        time.sleep(0.3)
    finally:
        clients.stop.set()
        pacing.join()
        clients.collect(wait=5)
        horad.send_signal(signal.SIGTERM)
        horad.wait(timeout=10)
        for s in held:
            s.close()
    return clients


def without_a_loss():
    clients = restarts(activated=True)
    lost = {k: clients.sent[k] - clients.answered[k] for k in clients.sent}
    assert sum(clients.sent.values()) > 200, f"too few requests: {clients.sent}"
    assert all(v == 0 for v in lost.values()), \
        f"lost {lost} of {clients.sent} (refused {clients.refused})"
    return f"{RESTARTS} restarts: sent {clients.sent}, all answered"


def the_loss_without_activation():
    clients = restarts(activated=False)
    lost = {k: clients.sent[k] - clients.answered[k] for k in clients.sent}
    assert sum(lost.values()) > 0, f"nothing lost: {clients.sent}"
    return f"{RESTARTS} restarts, horad binding its own: sent {clients.sent}, lost {lost} (refused {clients.refused})"


def main():
    check("systemd-socket-activate hands horad the seed's and SNTP's sockets",
          systemd_socket_activate)
    check("a passed socket the configuration does not bind", a_socket_not_configured_is_refused)
    check("restarts on systemd's sockets lose no request", without_a_loss)
    check("restarts on horad's own sockets lose requests (the comparison)",
          the_loss_without_activation)
    finish("socket activation")


if __name__ == "__main__":
    main()
