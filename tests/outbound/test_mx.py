#!/usr/bin/env python3
"""Next hops from DNS (no route override), against dns_peer.py named in
TLSGATE_DNS_SERVERS: MX records are tried by preference (the preferred MX
refuses connections, so the second one gets the mail), a domain without
MX is reached at its own address, a null MX and a missing domain bounce
at once (5.1.10, 5.1.2). MX hosts are reached on port 25, so the peer
binds 127.0.0.1:25; the test is skipped (77) when that port is taken or
cannot be bound.

usage: test_mx.py BINDIR
"""
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from outlib import (SKIP, Env, Failure, Peer, check, wait_for,  # noqa: E402
                    _die_with_parent)


def port25_free():
    try:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 25))
        return True
    except OSError:
        return False


def start_dns(env):
    portfile = env.path("dns.port")
    p = subprocess.Popen([sys.executable,
                          os.path.join(os.path.dirname(__file__),
                                       "dns_peer.py"),
                          "--port-file", portfile, "--log",
                          env.path("dns.log")], preexec_fn=_die_with_parent)
    env.procs.append(p)
    wait_for(lambda: os.path.exists(portfile), 10, "dns port")
    with open(portfile) as f:
        return int(f.read())


def line_for(env, rcpt):
    lines = env.log_lines("to=<%s>" % rcpt)
    return lines[0] if lines else None


def main():
    if not port25_free():
        print("SKIP: 127.0.0.1:25 is taken or needs privileges")
        return SKIP
    env = Env(sys.argv[1], "mx")
    ok = False
    try:
        env.init_store()
        sink = Peer(env, "mx25", "normal", port=25)
        dns = start_dns(env)
        env.env["TLSGATE_DNS_SERVERS"] = "127.0.0.1:%d" % dns
        env.start_engine()
        rcpts = ["u@mx.test", "u@nomx.test", "u@nullmx.test",
                 "u@missing.test"]
        for r in rcpts:
            rc, err = env.sendmail(["-T", "acme", "-i", r],
                                   "Subject: %s\n\nx\n" % r)
            check(rc == 0, err)
        s = env.start_sender()
        wait_for(lambda: all(line_for(env, r) for r in rcpts), 40,
                 "an attempt for every recipient")
        env.stop_sender(s)
        mx = line_for(env, "u@mx.test")
        check("status=sent" in mx and "relay=b.mx.test[127.0.0.1]:25" in mx,
              "MX by preference, then the next one: " + mx)
        check(env.log_lines("connect-error relay=a.mx.test[127.0.0.2]:25"),
              "the preferred MX was not tried first")
        nomx = line_for(env, "u@nomx.test")
        check("status=sent" in nomx and "relay=nomx.test[127.0.0.1]:25" in
              nomx, "no MX, the domain's address: " + nomx)
        null = line_for(env, "u@nullmx.test")
        check("status=bounced" in null and "reply=556\\x205.1.10" in null,
              "null MX: " + null)
        miss = line_for(env, "u@missing.test")
        check("status=bounced" in miss and "reply=550\\x205.1.2" in miss,
              "missing domain: " + miss)
        check(len(sink.messages()) == 2, "messages at the MX: %d" %
              len(sink.messages()))
        with open(env.path("dns.log")) as f:
            asked = f.read()
        check("a.mx.test 1" in asked, "the preferred MX's address was "
              "never asked for")
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
