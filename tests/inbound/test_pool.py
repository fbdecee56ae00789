#!/usr/bin/env python3
"""The receiver pool under the real supervisor: tlsgated starts the engine
and two tlsgate-smtpin sharing its sockets; a swaks message with STARTTLS
lands in the tenant's Maildir; kill -9 of one receiver under load: the
other keeps serving, tlsgated starts a new one, every message that got 250
is whole; SIGTERM stops everything with status 0. argv: BINDIR."""
import os
import re
import signal
import subprocess
import sys
import threading
import time

from inbound_lib import (ACCEPT, SKIP, _die_with_parent, check, run_main,
                         stop_process, swaks)
from test_kill import CLIENTS, Load, verify


def smtpin_pids(log):
    return set(int(p) for p in
               re.findall(r"smtpin\[(\d+)\] info: id=- smtpin started "
                          r"standalone=no", log))


def wait_pids(gw, n, exclude=(), timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        pids = smtpin_pids(gw.read(gw.path("tlsgated.log"))) - set(exclude)
        if len(pids) >= n:
            return pids
        time.sleep(0.1)
    check(False, "no %d receivers started:\n%s" %
          (n, gw.read(gw.path("tlsgated.log"))[-3000:]))


def body(gw):
    log = gw.path("tlsgated.log")
    sup = subprocess.Popen(
        [os.path.join(gw.bindir, "tlsgated")] + gw.common_flags() +
        ["--roles", "engine,inbound", "--inbound-workers", "2",
         "--inbound-listen", "127.0.0.1:%d" % gw.port],
        stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=gw.env,
        preexec_fn=_die_with_parent)
    try:
        pids = wait_pids(gw, 2)
        rc, t = swaks(gw, "--to", ACCEPT, "--from", "a@sender.example",
                      "--tls")
        check("250 2.0.0 Ok: queued as" in t, t[-2000:])
        head = gw.wait_messages(ACCEPT, 1)[0].split(b"\n\n")[0].decode()
        check("(using TLS1.3 with cipher" in head, head)

        load = Load(gw.port)
        threads = [threading.Thread(target=load.client, args=(i,))
                   for i in range(CLIENTS)]
        for th in threads:
            th.start()
        load.wait_for(3)
        time.sleep(1.0)
        victim = sorted(pids)[0]
        os.kill(victim, signal.SIGKILL)
        before = len(load.ok)
        wait_pids(gw, 2, exclude=[victim])
        time.sleep(1.5)
        load.stop = True
        for th in threads:
            th.join(30)
        check(len(load.ok) - before > 10, "the pool kept serving")
        verify_all(gw, load.ok)
    finally:
        stop_process(sup, 60)
    check(sup.returncode == 0, "tlsgated exit %s" % sup.returncode)
    out = gw.read(log)
    check("AddressSanitizer" not in out and "runtime error:" not in out,
          "sanitizer report:\n" + out[-3000:])


def verify_all(gw, ok):
    """The swaks message has no X-Test-Id: check the load ones only."""
    msgs = [m for m in gw.messages(ACCEPT) if b"X-Test-Id: " in m]
    check(len(msgs) >= len(ok), "fewer stored than accepted")
    first = gw.maildir(ACCEPT)
    keep = [f for f in first if b"X-Test-Id: " not in open(f, "rb").read()]
    for f in keep:
        os.unlink(f)
    verify(gw, ok)


if __name__ == "__main__":
    if not os.access(os.path.join(sys.argv[1], "tlsgated"), os.X_OK):
        print("SKIP: tlsgated not built")
        sys.exit(SKIP)
    sys.exit(run_main("pool", body, sys.argv[1]))
