#!/usr/bin/env python3
"""Queued mail of a removed tenant: its policy cannot be read, so it is
never sent (fail closed); each attempt is deferred with "451 4.3.0 tenant
<x> no longer exists" and a tenant-missing log line naming the fix, and
`tlsgate-queue delete` removes the message.

usage: test_tenant_removed.py BINDIR
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from outlib import Env, Failure, Peer, check, wait_for  # noqa: E402


def main():
    env = Env(sys.argv[1], "tenant-removed")
    ok = False
    try:
        env.init_store(("acme", "beta"))
        sink = Peer(env, "sink", "normal", save=True)
        env.admin("route", "add", "dest.test", "127.0.0.1:%d" % sink.port)
        rc, err = env.sendmail(["-T", "beta", "-i", "x@dest.test"],
                               "Subject: orphan\n\nbody\n")
        check(rc == 0, "sendmail: " + err)
        qid = env.queue_ids()[0]
        env.admin("tenant", "remove", "beta")
        env.start_engine()
        sender = env.start_sender()
        wait_for(lambda: len([l for l in env.log_lines(" delivery ")
                              if "status=deferred" in l]) >= 2, 30,
                 "two deferred attempts")
        line = env.log_lines(" delivery ")[0]
        check("reply=451\\x204.3.0\\x20tenant\\x20beta\\x20no\\x20longer"
              "\\x20exists" in line, "defer reply: " + line)
        warn = env.log_lines("tenant-missing")
        check(warn and "tenant=beta" in warn[0] and
              "no longer exists" in warn[0] and
              "tlsgate-queue delete " + qid in warn[0],
              "tenant-missing log line: %r" % warn)
        check(sink.messages() == [] and not env.log_lines("status=sent"),
              "mail of a removed tenant was sent")
        r = subprocess.run([env.bin("tlsgate-queue"), "--state-dir", env.dir,
                            "delete", qid], capture_output=True, text=True,
                           timeout=60)
        check(r.returncode == 0 and env.queue_ids() == [],
              "delete: %d %s" % (r.returncode, r.stderr))
        env.stop_sender(sender)
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
