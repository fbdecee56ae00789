#!/usr/bin/env python3
"""Hostile noise against a live receiver: many connections sending random
bytes, random command-like lines, random bytes after STARTTLS and inside
DATA (seeded, so a failure repeats), some cut at random points. The
receiver must still serve a normal delivery afterwards and exit 0 (under ASan: no memory errors, no leaks).
argv: BINDIR."""
import random
import socket
import sys
import threading

from inbound_lib import ACCEPT, check, run_main, swaks

SEED = 4242
CONNS = 150
WORDS = [b"EHLO x", b"HELO", b"MAIL FROM:<a@b.example>", b"RCPT TO:<%s>" %
         ACCEPT.encode(), b"DATA", b"RSET", b"NOOP", b"STARTTLS", b"VRFY",
         b"MAIL FROM:<", b"RCPT TO:<>", b".", b"QUIT", b"\x00", b"\r",
         b"\n", b"\r\n", b"..", b"\xff" * 10, b"A" * 1200]


def noise(rng):
    parts = []
    for _ in range(rng.randint(1, 40)):
        k = rng.random()
        if k < 0.5:
            parts.append(rng.choice(WORDS) + rng.choice([b"\r\n", b"\n",
                                                         b"", b"\r"]))
        else:
            parts.append(bytes(rng.randrange(256)
                                for _ in range(rng.randint(1, 300))))
    return b"".join(parts)


def one(port, seed):
    rng = random.Random(seed)
    try:
        with socket.create_connection(("127.0.0.1", port), 5) as s:
            s.settimeout(2)
            data = noise(rng)
            cut = rng.randint(0, len(data))
            for i in range(0, cut, 97):
                s.sendall(data[i:min(i + 97, cut)])
            if rng.random() < 0.5:
                s.recv(65536)
    except OSError:
        pass


def body(gw):
    gw.start_receiver("--max-errors", "1000", "--command-timeout", "3",
                      "--data-timeout", "3", "--handshake-timeout", "2",
                      "--max-connections-per-ip", "1000")
    seeds = list(range(SEED, SEED + CONNS))
    for batch in range(0, CONNS, 15):
        threads = [threading.Thread(target=one, args=(gw.port, s))
                   for s in seeds[batch:batch + 15]]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
    before = len(gw.maildir(ACCEPT))
    rc, t = swaks(gw, "--to", ACCEPT, "--from", "a@sender.example", "--tls")
    check("250 2.0.0 Ok: queued as" in t, "normal delivery after the noise")
    check(len(gw.wait_messages(ACCEPT, before + 1)) == before + 1,
          "delivered")
    check(gw.receivers[0].poll() is None, "receiver still running")


if __name__ == "__main__":
    sys.exit(run_main("garbage", body, sys.argv[1]))
