#!/usr/bin/env python3
"""swaks against a real tlsgate-smtpin + tlsgate-engine: one group of
cases per run (argv: BINDIR CASE). Replies and stored messages are
checked; nothing here needs a person to read the output."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

from inbound_lib import (ACCEPT, ACCEPT2, ALLOW_DISCARD, ALLOW_REJECT,
                         TLSREQ, TRUSTED_SENDER, UNKNOWN, check, run_main,
                         swaks)

SENDER = "alice@sender.example"


def replied(transcript, code):
    """True when a server line (plain or TLS) starts with code."""
    return re.search(r"^<[-~*]* +%s" % re.escape(code), transcript,
                     re.M) is not None


def expect(transcript, code, what):
    check(replied(transcript, code), "%s: no %r in:\n%s" %
          (what, code, transcript[-3000:]))


def header_block(msg):
    return msg.split(b"\n\n", 1)[0].decode()


def case_plain(gw):
    gw.start_receiver()
    rc, t = swaks(gw, "--to", ACCEPT, "--from", SENDER,
                  "--body", "hello plain\n.dot line\n")
    expect(t, "250 2.0.0 Ok: queued as", "plain delivery")
    msgs = gw.wait_messages(ACCEPT, 1)
    check(len(msgs) == 1, "one message in new/, got %d" % len(msgs))
    head = header_block(msgs[0])
    check(head.startswith("Return-Path: <%s>\n" % SENDER), head)
    check("Received: from client.test ([127.0.0.1])" in head, head)
    check("(without TLS)" in head and "with ESMTP id" in head, head)
    check(b"\nhello plain\n.dot line\n" in msgs[0], "body unstuffed, LF")
    check(b"\r" not in msgs[0], "stored with LF line ends")
    check(gw.maildir(ACCEPT, "tmp") == [], "tmp/ left empty")
    check(re.search(r"smtpin message .*status=delivered",
                    gw.wait_logs(r"smtpin message .*status=delivered")),
          "message log line")


def case_tls(gw):
    gw.start_receiver()
    rc, t = swaks(gw, "--to", ACCEPT, "--from", SENDER, "--tls")
    expect(t, "250 2.0.0 Ok: queued as", "TLS delivery")
    check("TLS started with cipher TLSv1.3" in t, "TLS 1.3 negotiated")
    head = header_block(gw.wait_messages(ACCEPT, 1)[0])
    check(re.search(r"with ESMTPS id \S+\n\t\(using TLS1\.3 with cipher "
                    r"TLS_AES_\w+\)", head), head)
    check("without TLS" not in head, head)
    ended = r"session_end .*tls=TLS1\.3 cipher=TLS_AES"
    check(re.search(ended, gw.wait_logs(ended)),
          "session log has the TLS outcome")


def case_pipeline(gw):
    gw.start_receiver()
    rc, t = swaks(gw, "--to", "%s,%s,%s" % (ACCEPT, UNKNOWN, ACCEPT2),
                  "--from", SENDER, "--pipeline")
    check("PIPELINING" in t, "PIPELINING offered")
    replies = re.findall(r"^<[-~*]* +(\d{3} \d\.\d\.\d)", t, re.M)
    want = ["250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "354"]
    got = [r for r in replies if not r.startswith(("220", "221"))]
    check(got[:4] == want[:4], "replies in order: %s" % got)
    expect(t, "250 2.0.0 Ok", "pipelined delivery")
    check(len(gw.wait_messages(ACCEPT, 1)) == 1, "first mailbox")
    check(len(gw.wait_messages(ACCEPT2, 1)) == 1, "second mailbox")
    a, b = gw.messages(ACCEPT)[0], gw.messages(ACCEPT2)[0]
    check(a == b, "the same message in both mailboxes")
    check("; " in header_block(a) and "for <" not in header_block(a),
          "no 'for' clause with two mailboxes")


def case_refusals(gw):
    gw.start_receiver()
    rc, t = swaks(gw, "--to", UNKNOWN, "--from", SENDER)
    expect(t, "550 5.1.1", "unknown mailbox")
    rc, t = swaks(gw, "--to", ALLOW_REJECT, "--from", SENDER)
    expect(t, "550 5.7.1", "untrusted sender")
    rc, t = swaks(gw, "--to", ALLOW_REJECT, "--from", TRUSTED_SENDER)
    expect(t, "250 2.0.0 Ok", "trusted sender")
    check(len(gw.wait_messages(ALLOW_REJECT, 1)) == 1, "trusted delivered")
    rc, t = swaks(gw, "--to", TLSREQ, "--from", SENDER)
    expect(t, "530 5.7.0", "TLS required, plaintext")
    check(gw.maildir(TLSREQ) == [], "nothing stored in plaintext")
    rc, t = swaks(gw, "--to", TLSREQ, "--from", SENDER, "--tls")
    expect(t, "250 2.0.0 Ok", "TLS required, with TLS")
    check(len(gw.wait_messages(TLSREQ, 1)) == 1, "TLS-required delivered")


def case_discard(gw):
    gw.start_receiver()
    rc, t = swaks(gw, "--to", ALLOW_DISCARD, "--from", SENDER)
    expect(t, "250 2.1.5", "discard answers RCPT with 250")
    # The same final reply as a delivery: the sender cannot tell.
    expect(t, "250 2.0.0 Ok: queued as M", "discard answers DATA as a "
           "delivery")
    time.sleep(0.3)
    check(gw.maildir(ALLOW_DISCARD) == [], "discarded mail not written")
    check(gw.maildir(ALLOW_DISCARD, "tmp") == [], "no tmp file either")
    check(re.search(r"smtpin discarded from=<%s> to=<%s> reason=\S+" %
                    (re.escape(SENDER), re.escape(ALLOW_DISCARD)),
                    gw.logs()), "discard audit line")


def case_limits(gw):
    gw.start_receiver("--max-recipients", "2", "--max-message-size", "4k",
                      "--max-line-length", "600")
    rc, t = swaks(gw, "--to", "%s,%s,%s" % (ACCEPT, ACCEPT2, UNKNOWN),
                  "--from", SENDER)
    expect(t, "452 4.5.3", "third recipient over max_recipients")
    expect(t, "250 2.0.0 Ok", "the first two still get the message")
    rc, t = swaks(gw, "--to", ACCEPT, "--from", SENDER,
                  "--body", ("x" * 70 + "\r\n") * 100)
    expect(t, "552 5.3.4", "message over max_message_size")
    rc, t = swaks(gw, "--to", ACCEPT, "--from", SENDER,
                  "--body", "short\r\n" + "y" * 700 + "\r\nend\r\n")
    expect(t, "500 5.5.2", "data line over max_line_length")
    time.sleep(0.3)
    check(len(gw.messages(ACCEPT)) == 1, "refused messages not stored")
    check(gw.maildir(ACCEPT, "tmp") == [], "no tmp file left")


def case_engine_down(gw):
    gw.start_receiver("--engine-timeout-ms", "300")
    rc, t = swaks(gw, "--to", ACCEPT, "--from", SENDER)
    expect(t, "250 2.0.0 Ok", "delivery while the engine runs")
    gw.stop_engine()
    rc, t = swaks(gw, "--to", ACCEPT, "--from", SENDER)
    expect(t, "451 4.3.0", "engine stopped")
    check(len(gw.messages(ACCEPT)) == 1, "nothing new stored")
    gw.start_engine()
    end = time.time() + 10
    while time.time() < end:
        rc, t = swaks(gw, "--to", ACCEPT, "--from", SENDER)
        if replied(t, "250 2.0.0 Ok"):
            break
        time.sleep(0.5)
    expect(t, "250 2.0.0 Ok", "the receiver reconnects to the engine")


def case_events(gw):
    """Each recipient outcome reaches the engine's events store."""
    gw.start_receiver()
    rc, t = swaks(gw, "--to", ACCEPT, "--from", SENDER)
    acc = re.search(r"queued as (M\w+)", t)
    rc, t = swaks(gw, "--to", ALLOW_DISCARD, "--from", SENDER)
    disc = re.search(r"250 2\.0\.0 Ok: queued as (M\w+)", t)
    rc, t = swaks(gw, "--to", UNKNOWN, "--from", SENDER)
    check(acc and disc and replied(t, "550 5.1.1"), "three outcomes")
    time.sleep(1.5)  # events are queued, then written in batches
    gw.stop_receivers()
    gw.stop_engine(graceful=True)
    r = subprocess.run(["mdb_dump", "-a", "-p", gw.path("events")],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "mdb_dump: " + r.stderr)
    dump = r.stdout
    for what in (acc.group(1), disc.group(1), "accepted", "discarded",
                 "rejected", "allowlist:not-trusted", "no-mailbox",
                 "sender.example", "client.test[127.0.0.1]"):
        check(what in dump, "%r not in the events store" % what)


def case_disk_error(gw):
    """A Maildir that cannot be made: 451 4.3.0 at DATA, nothing written
    through a symbolic link, other mailboxes unaffected."""
    gw.start_receiver()
    os.makedirs(gw.path("mail", "acme"))
    open(gw.path("mail", "acme", "gm"), "w").write("not a folder\n")
    outside = gw.path("outside")
    os.makedirs(outside)
    os.symlink(outside, gw.path("mail", "acme", "hr"))
    for rcpt in (ACCEPT, ACCEPT2):
        rc, t = swaks(gw, "--to", rcpt, "--from", SENDER)
        expect(t, "451 4.3.0", "unusable Maildir for %s" % rcpt)
    check(os.listdir(outside) == [], "nothing made through the link")
    check(re.search(r"maildir_error dir=acme/gm error=",
                    gw.wait_logs(r"maildir_error dir=acme/gm error=")),
          "the error is logged")
    rc, t = swaks(gw, "--to", TLSREQ, "--from", SENDER, "--tls")
    expect(t, "250 2.0.0 Ok", "another mailbox still works")


def case_ipv6(gw):
    """Both loopback families, as the default inbound_listen has them."""
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        print("no IPv6 loopback: IPv4 only")
        return
    gw.start_receiver("--inbound-listen",
                      "127.0.0.1:%d [::1]:%d" % (gw.port, gw.port))
    r = subprocess.run(["swaks", "-6", "--server", "::1", "--port",
                        str(gw.port), "--helo", "client.test", "--to",
                        ACCEPT, "--from", SENDER, "--tls"],
                       capture_output=True, text=True, timeout=60)
    expect(r.stdout, "250 2.0.0 Ok", "delivery over IPv6")
    rc, t = swaks(gw, "--to", ACCEPT, "--from", SENDER)
    expect(t, "250 2.0.0 Ok", "delivery over IPv4")
    heads = [header_block(m) for m in gw.wait_messages(ACCEPT, 2)]
    check(any("from client.test ([IPv6:::1])" in h for h in heads), heads)


def case_parallel_lookups(gw):
    """Pipelined RCPTs wait for the engine together, not one by one: with
    the engine frozen, four lookups time out in about one timeout."""
    gw.start_receiver("--engine-timeout-ms", "600")
    s = socket.create_connection(("127.0.0.1", gw.port), 10)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"HELO client.test\r\nMAIL FROM:<a@sender.example>\r\n")
    f.readline(), f.readline()
    gw.engine.send_signal(signal.SIGSTOP)
    try:
        t0 = time.time()
        s.sendall(b"".join(b"RCPT TO:<%s>\r\n" % a.encode()
                           for a in (ACCEPT, ACCEPT2, UNKNOWN, TLSREQ)))
        codes = [f.readline()[:9] for _ in range(4)]
        took = time.time() - t0
    finally:
        gw.engine.send_signal(signal.SIGCONT)
    s.close()
    check(codes == [b"451 4.3.0"] * 4, "all unavailable: %r" % codes)
    print("four lookups: %.2fs" % took)
    check(took < 1.5, "lookups overlapped (%.2fs for four)" % took)


CASES = {n[5:]: f for n, f in globals().items() if n.startswith("case_")}

if __name__ == "__main__":
    bindir, case = sys.argv[1], sys.argv[2]
    sys.exit(run_main("swaks-" + case, CASES[case], bindir))
