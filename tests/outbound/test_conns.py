#!/usr/bin/env python3
"""Connection sharing and limits: seven messages for one destination,
with max_per_destination 1 and max_per_connection 3, reach the peer over
connections in sequence carrying at most 3 messages each (3 + 3 + 1
normally), never two at once; with max_per_destination 3, twelve
messages use at most three connections. Also: a message with recipients at two levels is split, each
level on its own connection (encrypt over TLS, none without STARTTLS).
An 8-bit body is sent with BODY=8BITMIME; a next hop where nothing
listens defers with 4.4.1.

usage: test_conns.py BINDIR
"""
import collections
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from outlib import (Env, Failure, Peer, check, make_certs,  # noqa: E402
                    wait_for)


def free_port():
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def mails_per_conn(peer):
    per = collections.Counter()
    for l in peer.lines():
        if " MAIL FROM:" in l:
            per[l.rsplit(" ", 1)[1]] += 1
    return per


def overlapping(peer):
    """True when a connection opened (EHLO) while another was between its
    first EHLO and its QUIT."""
    open_now = set()
    for l in peer.lines():
        cid = l.rsplit(" ", 1)[-1]
        if not cid.startswith("#c"):
            continue
        if " EHLO " in l and cid not in open_now:
            if open_now:
                return True
            open_now.add(cid)
        if " QUIT " in l:
            open_now.discard(cid)
    return False


def queue(env, n, rcpt):
    for i in range(n):
        rc, err = env.sendmail(["-T", "acme", "-i", rcpt],
                               "Subject: %d\n\nx\n" % i)
        check(rc == 0, err)


def main():
    env = Env(sys.argv[1], "conns")
    ok = False
    try:
        certs, ca = make_certs(env.path())
        env.init_store()
        serial = Peer(env, "serial")
        wide = Peer(env, "wide")
        split = Peer(env, "split", cert=certs["good"])
        env.admin("route", "add", "serial.test", "127.0.0.1:%d" % serial.port)
        env.admin("route", "add", "wide.test", "127.0.0.1:%d" % wide.port)
        env.admin("route", "add", "split.test", "localhost:%d" % split.port)
        env.admin("route", "add", "plain.split.test",
                  "localhost:%d" % split.port)
        env.admin("outbound", "mode", "acme", "domains")
        env.admin("outbound", "add", "acme", "split.test", "--level",
                  "encrypt")
        env.start_engine()

        queue(env, 7, "u@serial.test")
        s = env.start_sender(["--max-per-destination", "1",
                              "--max-per-connection", "3"])
        wait_for(lambda: len(serial.messages()) >= 7, 30, "7 messages")
        env.stop_sender(s)
        # Normally 3 + 3 + 1; on a loaded machine the engine's answers can
        # trickle in so that a connection finds no waiting job earlier.
        per = sorted(mails_per_conn(serial).values(), reverse=True)
        check(sum(per) == 7 and per[0] >= 2 and max(per) <= 3,
              "messages per connection: %r" % per)
        check(not overlapping(serial), "two connections at once")

        queue(env, 12, "u@wide.test")
        s = env.start_sender(["--max-per-destination", "3",
                              "--max-per-connection", "100"])
        wait_for(lambda: len(wide.messages()) >= 12, 30, "12 messages")
        env.stop_sender(s)
        per = mails_per_conn(wide)
        check(len(per) <= 3 and sum(per.values()) == 12,
              "connections used: %r" % dict(per))

        rc, err = env.sendmail(["-T", "acme", "-i", "a@split.test",
                                "b@plain.split.test"], "Subject: s\n\nx\n")
        check(rc == 0, err)
        s = env.start_sender(["--tls-ca-file", ca])
        wait_for(lambda: len(split.messages()) >= 2, 30, "both levels")
        env.stop_sender(s)
        lines = split.lines()
        tls_rcpt = [l for l in lines if "RCPT TO:<a@split.test>" in l]
        plain_rcpt = [l for l in lines if "RCPT TO:<b@plain.split.test>" in l]
        check(tls_rcpt and tls_rcpt[0].startswith("TLS "),
              "encrypt recipient not over TLS: %r" % tls_rcpt)
        check(plain_rcpt and plain_rcpt[0].startswith("PLAIN "),
              "none recipient: %r" % plain_rcpt)
        cid = plain_rcpt[0].rsplit(" ", 1)[1]
        check(not any("STARTTLS" in l and l.endswith(cid) for l in lines),
              "STARTTLS sent on the level none connection")
        # An 8-bit body is declared to a server that offers 8BITMIME.
        rc, err = env.sendmail(["-T", "acme", "-i", "e@serial.test"],
                               "Subject: 8bit\n\ncaf\u00e9\n")
        check(rc == 0, err)
        # A next hop where nothing listens: deferred 4.4.1, retried later.
        dead = free_port()
        env.admin("route", "add", "dead.test", "127.0.0.1:%d" % dead)
        rc, err = env.sendmail(["-T", "acme", "-i", "d@dead.test"],
                               "Subject: dead\n\nx\n")
        check(rc == 0, err)
        s = env.start_sender()
        wait_for(lambda: env.log_lines("to=<d@dead.test>") and
                 env.log_lines("to=<e@serial.test>"), 30, "both attempts")
        env.stop_sender(s)
        line = env.log_lines("to=<d@dead.test>")[0]
        check("status=deferred" in line and "reply=451\\x204.4.1" in line,
              "dead next hop: " + line)
        check(any("BODY=8BITMIME" in l and "MAIL FROM" in l
                  for l in serial.lines()), "8BITMIME not declared")
        check(not any("BODY=8BITMIME" in l for l in wide.lines()),
              "7-bit mail declared 8-bit")
        ok = True
        print("ok")
    except Failure as e:
        print("FAIL:", e)
        print(env.log()[-3000:])
    finally:
        env.close(keep=not ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
