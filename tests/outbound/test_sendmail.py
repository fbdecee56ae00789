#!/usr/bin/env python3
"""tlsgate-sendmail as scripts call it: recipients as arguments, -t with
To/Cc/Bcc (Bcc stripped), -f, -F, -i, ignored options, the tenant's From
when the message has none, exit codes on bad input, and the queue files
that result (CRLF lines, synced records). No engine is needed.

usage: test_sendmail.py BINDIR
"""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from outlib import Env, Failure, check  # noqa: E402

EX_USAGE, EX_DATAERR, EX_NOUSER = 64, 65, 67


def record(env, qid):
    with open(env.path("queue", "env", qid)) as f:
        return f.read()


def body(env, qid):
    with open(env.path("queue", "msg", qid), "rb") as f:
        return f.read()


def only_new(env, before):
    new = [q for q in env.queue_ids() if q not in before]
    check(len(new) == 1, "expected one new message, got %r" % new)
    return new[0]


def send_ok(env, args, text):
    before = env.queue_ids()
    rc, err = env.sendmail(args, text)
    check(rc == 0, "sendmail %r: exit %d: %s" % (args, rc, err))
    check(err == "", "sendmail %r: success must be silent on stderr at "
          "the default log level, got %r" % (args, err))
    return only_new(env, before)


def test_arguments(env):
    qid = send_ok(env, ["-T", "acme", "-f", "app@acme.mail.example.net",
                        "-oi", "-odi", "-oem", "Bob@Example.ORG",
                        "carol@example.net"],
                  "Subject: a\nFrom: App <app@acme.mail.example.net>\n\n"
                  "line one\n.\nstill body\n")
    rec = record(env, qid)
    check("sender app@acme.mail.example.net\n" in rec, "sender: " + rec)
    check("rcpt pending 0 0 Bob@example.org -" in rec or
          "rcpt pending 0 0 bob@example.org -" in rec, "rcpt 1: " + rec)
    check("rcpt pending 0 0 carol@example.net -" in rec, "rcpt 2: " + rec)
    check(rec.endswith("end\n"), "record not complete")
    b = body(env, qid)
    check(b"\r\nstill body\r\n" in b, "-oi: a lone dot must not end input")
    check(b"\n" not in b.replace(b"\r\n", b""), "bare LF left in the body")
    check(b"Message-ID: <" in b and b"Date: " in b, "Message-ID/Date added")
    check(b.count(b"From: ") == 1, "From must not be added twice")


def test_dot_ends_and_tenant_from(env):
    qid = send_ok(env, ["--tenant", "acme", "x@example.org"],
                  "Subject: no from\n\nfirst\n.\nafter the dot\n")
    b = body(env, qid)
    check(b"From: noreply@acme.mail.example.net\r\n" in b,
          "missing From gets the tenant From: %r" % b[:300])
    check(b"after the dot" not in b, "without -i a lone dot ends input")
    check("sender noreply@acme.mail.example.net" in record(env, qid),
          "missing envelope sender gets the tenant From")


def test_extract(env):
    qid = send_ok(env, ["-t", "-i", "-T", "acme", "-F", "The App"],
                  "To: Ann <ann@example.org>, \"Doe, J\" <jd@example.org>\n"
                  "Cc: team: cc1@example.org, cc2@example.org;\n"
                  "Bcc: hidden@example.org\n"
                  "Subject: -t\n\nbody\n")
    rec = record(env, qid)
    for a in ("ann@example.org", "jd@example.org", "cc1@example.org",
              "cc2@example.org", "hidden@example.org"):
        check(" %s -" % a in rec, "-t recipient %s missing: %s" % (a, rec))
    b = body(env, qid)
    check(b"Bcc" not in b and b"hidden@" not in b, "Bcc not stripped")
    check(b'From: "The App" <noreply@acme.mail.example.net>' in b,
          "-F full name in the added From")


def test_bad_input(env):
    cases = [
        (["x@example.org"], "Subject: x\n\nb\n", EX_USAGE, "no tenant"),
        (["-T", "nosuch", "x@example.org"], "b\n", EX_NOUSER,
         "unknown tenant"),
        (["-T", "Bad_Name!", "x@example.org"], "b\n", EX_USAGE,
         "malformed tenant name"),
        (["-T", "Acme", "x@example.org"], "b\n", EX_USAGE,
         "malformed tenant name"),
        (["-T"], "b\n", EX_USAGE, "needs a value"),
        (["--tenant"], "b\n", EX_USAGE, "needs a value"),
        (["-T", "acme"], "Subject: x\n\nb\n", EX_USAGE, "no recipients"),
        (["-T", "acme", "-t"], "Subject: x\n\nb\n", EX_DATAERR,
         "-t without recipient headers"),
        (["-T", "acme", "not an address"], "b\n", EX_DATAERR,
         "bad recipient"),
        (["-T", "acme", "-f", "bad@@x", "x@example.org"], "b\n", EX_DATAERR,
         "bad sender"),
        (["-T", "acme", "-q", "x@example.org"], "b\n", EX_USAGE,
         "unknown option"),
        (["-T", "acme", "x@example.org"], "Subject: x\n\n" + "a" * 1200 +
         "\n", EX_DATAERR, "line over 998 octets"),
        (["-T", "acme", "x@example.org"], "Subject: big\n\n" +
         ("x" * 70 + "\n") * 40, EX_DATAERR, "larger than max_message_size"),
    ]
    for args, text, want, what in cases:
        before = env.queue_ids()
        extra = ["--max-message-size", "2k"] if "max_message" in what else []
        rc, err = env.sendmail(args, text, extra)
        check(rc == want, "%s: exit %d, want %d (%s)" % (what, rc, want, err))
        check(err.strip() != "", what + ": no message on stderr")
        if what in ("malformed tenant name", "needs a value"):
            check(what in err, "%s: stderr says %r" % (what, err))
        check(env.queue_ids() == before, what + ": something was queued")
    check(os.listdir(env.path("queue", "tmp")) == [], "tmp/ not empty")


def queue_tool(env, *args):
    r = subprocess.run([env.bin("tlsgate-queue"), "--state-dir", env.dir] +
                       list(args), capture_output=True, text=True,
                       timeout=30)
    return r.returncode, r.stdout, r.stderr


ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def check_show_json(env, qid):
    """show --json after a retry: next_try is an ISO time (not "now") and
    history entries are objects (a delivery attempt written the way
    tlsgate-smtpout writes it is parsed into its fields)."""
    path = env.path("queue", "env", qid)
    with open(path) as f:
        rec = f.read()
    attempt = ("1700000000 x@example.org deferred attempt=1 "
               "relay=127.0.0.1:25 tls=TLS1.3 level=may "
               "reply=451 4.3.0 try later")
    esc = "".join("%%%02X" % ord(c) if ord(c) <= 0x20 or c == "%" else c
                  for c in attempt)
    with open(path, "w") as f:
        f.write(rec.replace("end\n", "hist " + esc + "\nend\n"))
    rc, out, err = queue_tool(env, "show", qid, "--json")
    check(rc == 0, "show --json: " + err)
    doc = json.loads(out)
    nt = doc["recipients"][0]["next_try"]
    check(ISO.match(nt), "next_try not an ISO time: %r" % nt)
    hist = doc["history"]
    check(all(isinstance(h, dict) and ISO.match(h["time"]) for h in hist),
          "history entries must be objects with an ISO time: %r" % hist)
    check({"by": "operator", "action": "retry-now"}.items() <=
          hist[0].items(), "operator entry: %r" % hist[0])
    want = {"time": "2023-11-14T22:13:20Z", "recipient": "x@example.org",
            "status": "deferred", "attempt": 1, "relay": "127.0.0.1:25",
            "tls": "TLS1.3", "level": "may", "reply": "451 4.3.0 try later"}
    check(hist[-1] == want, "attempt entry: %r" % hist[-1])


def test_missing_queue(env):
    """Read-only, retry and delete commands create nothing: a missing queue
    is an error (74); --help is usage on stdout, status 0."""
    for flag in ("--queue-dir", "--state-dir"):
        missing = env.path("missing-" + flag.strip("-"))
        for args in (["list"], ["list", "--json"], ["retry", "--all"],
                     ["show", "X"], ["delete", "X"]):
            r = subprocess.run([env.bin("tlsgate-queue"), flag, missing] +
                               args, capture_output=True, text=True,
                               timeout=30)
            check(r.returncode == 74 and "no queue" in r.stderr,
                  "%s %s: exit %d %r" % (flag, args, r.returncode, r.stderr))
            check(not os.path.exists(missing), "%s %s created %s" %
                  (flag, args, missing))
    r = subprocess.run([env.bin("tlsgate-queue"), "--help"],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and "usage:" in r.stdout and r.stderr == "",
          "--help: %d %r %r" % (r.returncode, r.stdout, r.stderr))


def test_debug_log(env):
    """With --log-level debug the queue line is on stderr."""
    rc, err = env.sendmail(["-T", "acme", "x@example.org"], "b\n",
                           ["--log-level", "debug"])
    check(rc == 0 and "queued tenant=acme" in err, "debug log: %r" % err)


def test_queue_tool(env):
    ids = env.queue_ids()
    rc, out, err = queue_tool(env, "list", "--json")
    check(rc == 0, "list: " + err)
    doc = json.loads(out)
    check(doc["count"] == len(ids), "list count")
    check([m["id"] for m in doc["messages"]] == sorted(ids), "list order")
    rc, out, err = queue_tool(env, "show", ids[0], "--json")
    check(rc == 0, "show: " + err)
    doc = json.loads(out)
    check(doc["id"] == ids[0] and doc["recipients"][0]["status"] ==
          "pending" and "history" in doc, "show --json: " + out)
    rc, out, _ = queue_tool(env, "list")
    check(rc == 0 and ids[0] in out, "text list")
    rc, out, _ = queue_tool(env, "retry", ids[0])
    check(rc == 0 and "due now" in out, "retry: " + out)
    rc, out, _ = queue_tool(env, "show", ids[0])
    check("operator retry-now" in out, "retry not in history: " + out)
    check_show_json(env, ids[0])
    rc, out, _ = queue_tool(env, "delete", ids[0])
    check(rc == 0 and ids[0] not in env.queue_ids(), "delete")
    check(not os.path.exists(env.path("queue", "msg", ids[0])),
          "body left after delete")
    rc, _, err = queue_tool(env, "show", ids[0])
    check(rc == 66 and err, "show of a deleted message: %d" % rc)
    rc, _, err = queue_tool(env, "show", "../../etc/passwd")
    check(rc == 66, "a path as id must be refused")
    rc, _, _ = queue_tool(env, "frobnicate")
    check(rc == 64, "unknown command")


def main():
    env = Env(sys.argv[1], "sendmail")
    ok = False
    try:
        env.init_store()
        test_arguments(env)
        test_dot_ends_and_tenant_from(env)
        test_extract(env)
        test_bad_input(env)
        test_debug_log(env)
        test_queue_tool(env)
        test_missing_queue(env)
        ok = True
        print("ok")
    except Failure as e:
        print("FAIL:", e)
    finally:
        env.close(keep=not ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
