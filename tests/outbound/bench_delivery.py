#!/usr/bin/env python3
"""Outbound throughput, side by side (issue 5's benchmark; not a ctest):
the same N messages delivered with STARTTLS (level encrypt) to the same
local sink - one tlsgate-smtpin receiver writing to a Maildir - first by
the tlsgate-smtpout pool, then by Postfix's own smtp client (a private
Postfix instance relaying everything to the sink with
smtp_tls_security_level = encrypt). Queueing is not timed: both queues
are filled first, then delivery is released and timed until the sink's
Maildir holds N messages. Prints messages per second and the ratio.

usage: bench_delivery.py BINDIR [N] [SENDERS]   (root, Postfix installed)
"""
import glob
import os
import smtplib
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from outlib import Env, Failure, check, make_certs, named_cert  # noqa
from test_postfix import MASTER, Postfix  # noqa: E402
from test_smtpin import start_receiver  # noqa: E402

MAILBOX = "gm@dst.mail.example.net"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def count(env):
    return len(glob.glob(env.path("mail", "dst", "gm", "new", "*")))


def wait_count(env, n, timeout=120):
    end = time.time() + timeout
    while count(env) < n:
        if time.time() > end:
            raise Failure("sink has %d of %d" % (count(env), n))
        time.sleep(0.02)


def run_tlsgate(env, n, senders, ca):
    for i in range(n):
        rc, err = env.sendmail(["-T", "acme", "-i", MAILBOX],
                               "Subject: tg %d\n\n%s" % (i, ("x" * 78 + "\n") * 25))
        check(rc == 0, err)
    base = count(env)
    start = time.time()
    procs = [env.start_sender(["--tls-ca-file", ca, "--log-level", "warn"])
             for _ in range(senders)]
    wait_count(env, base + n)
    took = time.time() - start
    for p in procs:
        env.stop_sender(p)
    return took


def postfix_relay(env, sink_port, ca, n):
    """A Postfix that relays to the sink with TLS required, its smtp
    transport deferred while the messages are injected."""
    pf = Postfix(env, named_cert(env.path(), "pfr", ["localhost"]),
                 ["unused.test"])
    with open(os.path.join(pf.conf, "main.cf"), "a") as f:
        f.write("relayhost = [127.0.0.1]:%d\n" % sink_port +
                "smtp_tls_security_level = encrypt\n"
                "smtp_tls_CAfile = %s\n" % ca +
                "defer_transports = smtp\n"
                "smtp_destination_concurrency_limit = 20\n"
                "default_destination_concurrency_limit = 20\n"
                "smtp_connection_cache_on_demand = yes\n"
                "default_process_limit = 100\n")
    pf.start()
    s = smtplib.SMTP("127.0.0.1", pf.plain, timeout=30)
    for i in range(n):
        s.sendmail("app@acme.mail.example.net", [MAILBOX],
                   "Subject: pf %d\r\n\r\n%s" % (i, ("x" * 78 + "\r\n") * 25))
    s.quit()
    return pf


def run_postfix(env, pf, n):
    base = count(env)
    # wait until every message sits in the deferred queue
    time.sleep(2)
    subprocess.run(["postconf", "-c", pf.conf, "-e", "defer_transports ="],
                   check=True)
    start = time.time()
    pf.cmd("reload")
    subprocess.run(["postqueue", "-c", pf.conf, "-f"], check=False)
    wait_count(env, base + n)
    return time.time() - start


def main():
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    senders = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    env = Env(sys.argv[1], "bench")
    pf = None
    try:
        certs, ca = make_certs(env.path())
        cert = named_cert(env.path(), "mx", ["localhost"])
        port = free_port()
        env.init_store(("acme", "dst"))
        env.admin("inbound", "mailbox", "add", "dst", MAILBOX)
        env.admin("outbound", "mode", "acme", "all")
        env.admin("route", "add", "dst.mail.example.net",
                  "localhost:%d" % port)
        env.start_engine()
        start_receiver(env, port, cert)
        tg = run_tlsgate(env, n, senders, ca)
        pf = postfix_relay(env, port, ca, n)
        pft = run_postfix(env, pf, n)
        print("messages=%d size=~2KB level=encrypt sink=tlsgate-smtpin" % n)
        print("tlsgate-smtpout x%d: %.2fs  %.0f msg/s" % (senders, tg,
                                                          n / tg))
        print("postfix smtp:       %.2fs  %.0f msg/s" % (pft, n / pft))
        print("ratio tlsgate/postfix: %.2f" % (pft / tg))
        return 0
    except Failure as e:
        print("FAIL:", e)
        return 1
    finally:
        if pf:
            pf.stop()
        env.close()


if __name__ == "__main__":
    sys.exit(main())
