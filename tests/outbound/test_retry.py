#!/usr/bin/env python3
"""Retries and bounces. A peer answers 451 to every RCPT: the recipient is
deferred and retried with growing delays (retry_min 1s doubling to
retry_max 4s), checked on the schedule recorded in the queue (attempt
times and next_try from tlsgate-queue show --json), not on wall-clock gaps. Then the messages are made older than queue_lifetime (by
back-dating their status record, since the shortest lifetime the settings
allow is a minute): the next attempt bounces them. The message from a real
sender gets an RFC 3464 DSN, delivered to a sink; the one from the
tenant's no-reply From gets none; both are logged.

usage: test_retry.py BINDIR
"""
import calendar
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from outlib import Env, Failure, Peer, check, wait_for  # noqa: E402

APP = "app@acme.mail.example.net"
FLAGS = ["--retry-min", "1", "--retry-max", "4", "--queue-lifetime", "60"]


def attempts_of(env, rcpt):
    """(unix time, attempt number) of each logged attempt for rcpt."""
    out = []
    for l in env.log_lines(" delivery "):
        if "to=<%s>" % rcpt not in l:
            continue
        stamp = l.split(" ", 1)[0]
        t = time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
        t += float(stamp[19:23]) if stamp[19] == "." else 0
        out.append((t, int(re.search(r"attempt=(\d+)", l).group(1))))
    return out


def backdate(env):
    for qid in env.queue_ids():
        p = env.path("queue", "env", qid)
        with open(p) as f:
            text = f.read()
        text = re.sub(r"\ncreated \d+\n", "\ncreated %d\n" %
                      (int(time.time()) - 3600), text)
        with open(p + ".new", "w") as f:
            f.write(text)
        os.rename(p + ".new", p)


def iso_seconds(text):
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def show(env, rcpt):
    """The message of rcpt as tlsgate-queue show --json prints it."""
    for qid in env.queue_ids():
        r = subprocess.run([env.bin("tlsgate-queue"), "--state-dir", env.dir,
                            "show", qid, "--json"], capture_output=True,
                           text=True, timeout=60)
        check(r.returncode == 0, "queue show: " + r.stderr)
        doc = json.loads(r.stdout)
        if doc["recipients"][0]["recipient"] == rcpt:
            return doc
    raise Failure("no record for " + rcpt)


def check_schedule(env, rcpt):
    """The recorded schedule, not wall-clock gaps between log lines: each
    attempt's time and the next_try it set are written by the same clock
    reading, so attempt k+1 comes no earlier than attempt k plus its delay
    (1, 2, 4, then 4: retry_max), exactly; a loaded machine may only make
    it later. The record's next_try is the last attempt plus retry_max."""
    doc = show(env, rcpt)
    hist = [h for h in doc["history"] if h.get("recipient") == rcpt]
    check(len(hist) >= 4, "fewer than 4 attempts: %r" % hist)
    check([h["attempt"] for h in hist[:4]] == [1, 2, 3, 4] and
          all(h["status"] == "deferred" for h in hist), "attempts %r" % hist)
    times = [iso_seconds(h["time"]) for h in hist]
    for k, (a, b) in enumerate(zip(times, times[1:])):
        want = min(2 ** k, 4)
        check(want <= b - a <= want + 15, "attempt %d came %ds after "
              "attempt %d, scheduled %ds: %r" % (k + 2, b - a, k + 1, want,
                                                  times))
    r = doc["recipients"][0]
    check(r["attempts"] == hist[-1]["attempt"], "attempts in record")
    check(iso_seconds(r["next_try"]) - times[-1] == 4,
          "next_try %s is not the last attempt %s + 4s" %
          (r["next_try"], hist[-1]["time"]))


def main():
    env = Env(sys.argv[1], "retry")
    ok = False
    try:
        env.init_store()
        temp = Peer(env, "temp", "tempfail-rcpt")
        sink = Peer(env, "sink", "normal", save=True)
        env.admin("route", "add", "temp.test", "127.0.0.1:%d" % temp.port)
        env.admin("route", "add", "acme.mail.example.net",
                  "127.0.0.1:%d" % sink.port)
        env.start_engine()
        rc, err = env.sendmail(["-T", "acme", "-f", APP, "-i",
                                "a@temp.test"], "Subject: real\n\nx\n")
        check(rc == 0, err)
        rc, err = env.sendmail(["-T", "acme", "-i", "b@temp.test"],
                               "Subject: noreply\n\nx\n")
        check(rc == 0, err)

        s = env.start_sender(FLAGS)
        wait_for(lambda: len(attempts_of(env, "a@temp.test")) >= 4, 30,
                 "four attempts")
        env.stop_sender(s)
        check_schedule(env, "a@temp.test")
        check("reply=451\\x204.2.0" in env.log_lines("a@temp.test")[0],
              "deferral reply not recorded")

        backdate(env)
        s = env.start_sender(FLAGS)
        wait_for(lambda: len(env.log_lines("status=bounced")) >= 2, 30,
                 "bounces")
        wait_for(lambda: sink.messages(), 20, "the DSN at the sink")
        env.stop_sender(s)
        log = env.log()
        check(re.search(r"dsn queued to=<%s>" % re.escape(APP), log),
              "no DSN queued for the real sender")
        check("dsn suppressed from=<noreply@acme.mail.example.net>" in log,
              "no suppression logged for the no-reply sender")
        dsns = sink.saved()
        check(len(dsns) == 1, "expected one DSN, got %d" % len(dsns))
        d = dsns[0]
        for want in ("multipart/report; report-type=delivery-status",
                     "message/delivery-status", "Final-Recipient: rfc822; "
                     "a@temp.test", "Action: failed", "Status: 4.2.0",
                     "text/rfc822-headers", "Subject: real"):
            check(want in d, "DSN lacks %r:\n%s" % (want, d[:1500]))
        check(not env.queue_ids(), "queue not empty: %r" % env.queue_ids())
        ok = True
        print("ok")
    except Failure as e:
        print("FAIL:", e)
        print(env.log()[-4000:])
    finally:
        env.close(keep=not ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
