#!/usr/bin/env python3
"""kill -9 one of two receivers sharing a listening port (SO_REUSEPORT,
as standalone receivers bind it) while clients deliver: the other keeps
serving, and every message that got 250 is whole in its Maildir (and no
file in new/ is partial). argv: BINDIR."""
import hashlib
import signal
import smtplib
import sys
import threading
import time

from inbound_lib import ACCEPT, check, run_main

CLIENTS = 4
RUN_SECS = 4.0
KILL_AT = 1.2


def message(tag):
    """A ~30 KB message whose body can be checked line by line."""
    lines = ["X-Test-Id: %s" % tag, "Subject: kill test %s" % tag, ""]
    for i in range(400):
        h = hashlib.sha256(("%s/%d" % (tag, i)).encode()).hexdigest()
        lines.append("%s line %04d %s" % (tag, i, h))
    lines.append("END %s" % tag)
    return "\r\n".join(lines) + "\r\n"


def expected_body(tag):
    return message(tag).replace("\r\n", "\n").split("\n\n", 1)[1]


class Load:
    def __init__(self, port):
        self.port = port
        self.ok = []
        self.failed = 0
        self.lock = threading.Lock()
        self.stop = False

    def wait_for(self, n, timeout=20):
        """Until n messages got 250 (a loaded machine starts slowly)."""
        end = time.time() + timeout
        while len(self.ok) < n and time.time() < end:
            time.sleep(0.05)

    def client(self, n):
        seq = 0
        while not self.stop:
            tag = "c%d-%d" % (n, seq)
            seq += 1
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as s:
                    s.ehlo("client.test")
                    s.sendmail("load@sender.example", [ACCEPT], message(tag))
                with self.lock:
                    self.ok.append(tag)
            except (OSError, smtplib.SMTPException):
                with self.lock:
                    self.failed += 1
                time.sleep(0.02)


def verify(gw, ok):
    """Each file in new/ is whole; each 250'd message is there once."""
    found = {}
    for raw in gw.messages(ACCEPT):
        text = raw.decode()
        head, body = text.split("\n\n", 1)
        tag = [l.split(": ", 1)[1] for l in head.split("\n")
               if l.startswith("X-Test-Id: ")]
        check(len(tag) == 1, "a stored message without its id")
        check(body == expected_body(tag[0]), "message %s not whole" % tag[0])
        check(tag[0] not in found, "message %s stored twice" % tag[0])
        found[tag[0]] = True
    missing = [t for t in ok if t not in found]
    check(not missing, "250 but not stored: %s" % missing[:5])


def body(gw):
    a = gw.start_receiver()
    b = gw.start_receiver()
    load = Load(gw.port)
    threads = [threading.Thread(target=load.client, args=(i,))
               for i in range(CLIENTS)]
    for t in threads:
        t.start()
    load.wait_for(3)
    time.sleep(KILL_AT)
    before = len(load.ok)
    a.send_signal(signal.SIGKILL)
    a.wait(10)
    time.sleep(RUN_SECS - KILL_AT)
    load.stop = True
    for t in threads:
        t.join(30)
    after = len(load.ok) - before
    print("delivered %d (after the kill %d), failed %d" %
          (len(load.ok), after, load.failed))
    check(before > 0, "nothing delivered before the kill")
    check(after > 10, "the surviving receiver kept serving")
    check(b.poll() is None, "the other receiver still runs")
    verify(gw, load.ok)
    gw.receivers.remove(a)  # killed on purpose: no exit status to check


if __name__ == "__main__":
    sys.exit(run_main("kill9", body, sys.argv[1]))
