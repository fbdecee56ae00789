#!/usr/bin/env python3
"""The gateway talking to itself: tlsgate-smtpout delivers to the project's
own receiver tlsgate-smtpin (one engine, one store). Five sending tenants
use the five levels towards the same monitored mailbox; the receiver's
certificate (test CA) names localhost and the mailbox's domain, so every
level succeeds: none in plaintext, the others over TLS, verify and secure
with the certificate verified. The receiver's Received headers confirm
what the sender's log lines say.

usage: test_smtpin.py BINDIR
"""
import glob
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from outlib import (SKIP, Env, Failure, check, make_certs,  # noqa: E402
                    named_cert, wait_for, _die_with_parent)

MAILBOX = "gm@dst.mail.example.net"
LEVELS = ["none", "may", "encrypt", "verify", "secure"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_receiver(env, port, cert):
    log = open(env.path("smtpin.log"), "a")
    p = subprocess.Popen(
        [env.bin("tlsgate-smtpin"), "--state-dir", env.dir, "--hostname",
         "mx.test", "--inbound-listen", "127.0.0.1:%d" % port, "--tls-cert",
         cert[0], "--tls-key", cert[1], "--inbound-workers", "1"],
        env=env.env, stdout=log, stderr=log, preexec_fn=_die_with_parent)
    env.procs.append(p)

    def up():
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return True
        except OSError:
            return p.poll() is not None
    wait_for(up, 20, "tlsgate-smtpin")
    check(p.poll() is None, "tlsgate-smtpin exited:\n" +
          open(env.path("smtpin.log")).read()[-2000:])
    return p


def setup_store(env, port):
    env.init_store(["dst"] + ["s" + l for l in LEVELS])
    env.admin("inbound", "mailbox", "add", "dst", MAILBOX)
    env.admin("route", "add", "dst.mail.example.net", "localhost:%d" % port)
    for l in LEVELS:
        env.admin("outbound", "mode", "s" + l, "domains")
        env.admin("outbound", "add", "s" + l, "dst.mail.example.net",
                  "--level", l)


def mailbox(env):
    out = {}
    for p in glob.glob(env.path("mail", "dst", "gm", "new", "*")):
        with open(p, errors="replace") as f:
            text = f.read()
        for l in LEVELS:
            if "Subject: level %s\n" % l in text.replace("\r", ""):
                out[l] = text
    return out


def first_received(text):
    """The receiver's own Received field (the first one), unfolded."""
    part = text.replace("\r", "").split("Received:")[1]
    return part.split("\nReceived:")[0]


def main():
    if not os.access(os.path.join(sys.argv[1], "tlsgate-smtpin"), os.X_OK):
        print("SKIP: tlsgate-smtpin not built")
        return SKIP
    env = Env(sys.argv[1], "smtpin")
    ok = False
    try:
        certs, ca = make_certs(env.path())
        cert = named_cert(env.path(), "mx", ["localhost",
                                             "dst.mail.example.net"])
        port = free_port()
        setup_store(env, port)
        env.start_engine()
        rx = start_receiver(env, port, cert)
        for l in LEVELS:
            rc, err = env.sendmail(["-T", "s" + l, "-i", MAILBOX],
                                   "Subject: level %s\n\nhello\n" % l)
            check(rc == 0, err)
        sender = env.start_sender(["--tls-ca-file", ca])
        wait_for(lambda: len(mailbox(env)) == len(LEVELS), 40,
                 "every level in the mailbox")
        got = mailbox(env)
        for l in LEVELS:
            line = [x for x in env.log_lines("status=sent")
                    if "level=%s " % l in x]
            check(line, "%s: no sent line" % l)
            line = line[0]
            if l == "none":
                check("tls=none" in line, "none used TLS: " + line)
                check("(without TLS)" in first_received(got[l]),
                      "receiver saw TLS under none")
            else:
                check("tls=TLS1." in line, l + ": no TLS: " + line)
                rcvd = first_received(got[l])
                check("without TLS" not in rcvd and "TLS1" in rcvd,
                      l + ": receiver's Received has no TLS:\n" + rcvd)
            if l in ("verify", "secure"):
                check("verified=yes" in line, l + ": not verified")
        env.stop_sender(sender)
        rx.terminate()
        check(rx.wait(30) == 0, "tlsgate-smtpin did not exit 0")
        ok = True
        print("ok")
    except Failure as e:
        print("FAIL:", e)
        print(env.log()[-3000:])
        try:
            print(open(env.path("smtpin.log")).read()[-2000:])
        except OSError:
            pass
    finally:
        env.close(keep=not ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
