#!/usr/bin/env python3
"""Outbound delivery per CPU second, side by side with Postfix (issue 6;
not a ctest). The same N messages of about 1 KB are delivered with
STARTTLS (level encrypt) to the same local sink - one tlsgate-smtpin
receiver writing to a Maildir on 127.0.0.1 - first by the tlsgate-smtpout
pool, then by Postfix's smtp client (a private Postfix instance relaying
everything to the sink with smtp_tls_security_level = encrypt). Queueing
is not measured: both queues are filled first, then delivery is released
and timed until the sink's Maildir holds N messages.

CPU is utime+stime from /proc/PID/stat, read before release and after the
last message: the tlsgate-smtpout processes for tlsgate, the smtp
processes under this Postfix's master for Postfix (max_use and max_idle
are raised so that none exits, and so none is lost, during the run;
qmgr is shown apart). Prints messages/s, sender CPU ms per message, and
the ratios.

usage: python3 bench/delivery/bench_delivery.py BINDIR [N] [SENDERS]
       (root, Postfix installed; loopback only)
"""
import glob
import os
import smtplib
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "outbound"))
from outlib import Env, Failure, check, make_certs, named_cert  # noqa
from test_postfix import Postfix  # noqa: E402
from test_smtpin import start_receiver  # noqa: E402

MAILBOX = "gm@dst.mail.example.net"
BODY = "x" * 78  # 9 lines of it plus the headers: about 1 KB stored
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def count(env):
    return len(glob.glob(env.path("mail", "dst", "gm", "new", "*")))


def wait_count(env, n, timeout=90):
    end = time.time() + timeout
    while count(env) < n:
        if time.time() > end:
            raise Failure("sink has %d of %d" % (count(env), n))
        time.sleep(0.02)


def stat(pid):
    """(comm, ppid, utime+stime in ticks) of pid, or None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    rest = text[text.rindex(")") + 2:].split()
    return comm, int(rest[1]), int(rest[11]) + int(rest[12])


def cpu_of(pids):
    return {p: s[2] for p in pids if (s := stat(p))}


def children(ppid, comm):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            s = stat(int(d))
            if s and s[1] == ppid and s[0] == comm:
                out.append(int(d))
    return out


def used_ms(before, after):
    return sum(t - before.get(p, 0) for p, t in after.items()) * 1000 / TICK


def run_tlsgate(env, n, senders, ca):
    text = "Subject: tg %d\n\n" + (BODY + "\n") * 9
    for i in range(n):
        rc, err = env.sendmail(["-T", "acme", "-i", MAILBOX], text % i)
        check(rc == 0, err)
    base = count(env)
    start = time.time()
    procs = [env.start_sender(["--tls-ca-file", ca, "--log-level", "warn"])
             for _ in range(senders)]
    pids = [p.pid for p in procs]
    wait_count(env, base + n)
    took = time.time() - start
    ms = used_ms({}, cpu_of(pids))  # started for the run: from zero
    for p in procs:
        env.stop_sender(p)
    return took, ms


class PfEnv:
    """The test Env with Postfix's folder renamed, for a second instance."""

    def __init__(self, env, name):
        self.env, self.name, self.dir = env, name, env.dir

    def path(self, *parts):
        if parts[:1] == ("postfix",):
            parts = (self.name,) + parts[1:]
        return self.env.path(*parts)


def postfix_relay(env, sink_port, ca, n, reuse):
    """A Postfix that relays to the sink with TLS required, its smtp
    transport deferred while the messages are injected. reuse: TLS
    connections are reused (smtp_tls_connection_reuse, via tlsproxy), as
    tlsgate reuses its connections; else Postfix's default, one TLS
    session per message."""
    name = "postfix-reuse" if reuse else "postfix"
    pf = Postfix(PfEnv(env, name), named_cert(env.path(), name,
                                              ["localhost"]),
                 ["unused.test"])
    with open(os.path.join(pf.conf, "main.cf"), "a") as f:
        f.write("relayhost = [127.0.0.1]:%d\n" % sink_port +
                "smtp_tls_security_level = encrypt\n"
                "smtp_tls_CAfile = %s\n" % ca +
                "defer_transports = smtp\n"
                "smtp_destination_concurrency_limit = 20\n"
                "default_destination_concurrency_limit = 20\n"
                "smtp_connection_cache_on_demand = yes\n"
                "default_process_limit = 100\n"
                "max_use = 100000\nmax_idle = 600\n"
                "smtp_tls_connection_reuse = %s\n" % ("yes" if reuse
                                                       else "no"))
    with open(os.path.join(pf.conf, "master.cf"), "a") as f:
        f.write("tlsproxy  unix  -       -       n       -       0       "
                "tlsproxy\n")
    pf.start()
    s = smtplib.SMTP("127.0.0.1", pf.plain, timeout=30)
    text = "Subject: pf %d\r\n\r\n" + (BODY + "\r\n") * 9
    for i in range(n):
        s.sendmail("app@acme.mail.example.net", [MAILBOX], text % i)
    s.quit()
    return pf


def master_pid(pf):
    with open(os.path.join(pf.base, "queue", "pid", "master.pid")) as f:
        return int(f.read().split()[0])


def run_postfix(env, pf, n):
    base = count(env)
    time.sleep(2)  # every message in the deferred queue
    subprocess.run(["postconf", "-c", pf.conf, "-e", "defer_transports ="],
                   check=True)
    master = master_pid(pf)
    comms = ("smtp", "tlsproxy", "qmgr")
    before = {c: cpu_of(children(master, c)) for c in comms}
    start = time.time()
    pf.cmd("reload")
    subprocess.run(["postqueue", "-c", pf.conf, "-f"], check=False)
    wait_count(env, base + n)
    took = time.time() - start
    ms = {c: used_ms(before[c], cpu_of(children(master, c))) for c in comms}
    pf.stop()
    return took, ms


def main():
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    senders = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    env = Env(sys.argv[1], "bench")
    pf = None
    try:
        certs, ca = make_certs(env.path())
        cert = named_cert(env.path(), "mx", ["localhost"])
        port = free_port()
        env.init_store(("acme", "dst"))
        env.admin("inbound", "mailbox", "add", "dst", MAILBOX)
        env.admin("outbound", "mode", "acme", "all", "--level", "encrypt")
        env.admin("route", "add", "dst.mail.example.net",
                  "localhost:%d" % port)
        env.start_engine()
        start_receiver(env, port, cert)
        tg, tg_ms = run_tlsgate(env, n, senders, ca)
        runs = []
        for reuse in (False, True):
            pf = postfix_relay(env, port, ca, n, reuse)
            runs.append((reuse,) + run_postfix(env, pf, n))
            pf = None
        stored = glob.glob(env.path("mail", "dst", "gm", "new", "*"))
        check(len(stored) == 3 * n, "sink has %d messages" % len(stored))
        for path in stored:  # every message came in over TLS
            with open(path, errors="replace") as f:
                head = f.read(2000)
            check("TLS1." in head, "not received over TLS: " + path)
        print("messages=%d stored_size=%dB level=encrypt "
              "sink=tlsgate-smtpin 127.0.0.1 cores=%d" %
              (n, os.path.getsize(stored[0]), os.cpu_count()))
        print("%-34s %8s %8s %11s %9s" % ("sender", "seconds", "msg/s",
                                          "cpu ms/msg", "cpu ratio"))
        tg_cpu = tg_ms / n
        print("%-34s %8.2f %8.0f %11.3f %9s" % (
            "tlsgate-smtpout x%d" % senders, tg, n / tg, tg_cpu, "1.00"))
        for reuse, pft, ms in runs:
            cpu = (ms["smtp"] + ms["tlsproxy"]) / n
            label = ("postfix smtp+tlsproxy (TLS reuse)" if reuse else
                     "postfix smtp (default)")
            print("%-34s %8.2f %8.0f %11.3f %9.2f" % (label, pft, n / pft,
                                                     cpu, cpu / tg_cpu))
            print("  (qmgr besides: %.3f cpu ms/msg; tlsgate/postfix "
                  "throughput %.2fx)" % (ms["qmgr"] / n, pft / tg))
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
