#!/usr/bin/env python3
"""Each TLS level against hostile and broken peers (smtp_peer.py).

For every (peer case, level) one message goes through tlsgate-sendmail to
a recipient whose domain is routed to that case's peer and listed at that
level. The peers record what they receive. Asserted: under encrypt,
verify and secure no MAIL FROM and no message ever reaches a peer in
plaintext, and the recipient is deferred with 4.7.4 (not offered) or
4.7.5 (failed); under may the fallback happens and is logged; under none
STARTTLS is never sent.

usage: test_tls_levels.py BINDIR GROUP (starttls | handshake | certs)
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from outlib import (Env, Failure, Peer, check, make_certs,  # noqa: E402
                    named_cert, wait_for)

LEVELS = ["none", "may", "encrypt", "verify", "secure"]

# case: (peer mode, certificate, {level: expected}); expected is "sent",
# "sent-tls", "sent-verified", "fallback" (sent in plaintext, logged) or
# the deferral code.
GROUPS = {
    "starttls": {
        "nostarttls": ("no-starttls", "good", {
            "none": "sent", "may": "fallback", "encrypt": "4.7.4",
            "verify": "4.7.4", "secure": "4.7.4"}),
        "r454": ("refuse-454", "good", {
            "none": "sent", "may": "fallback", "encrypt": "4.7.5",
            "verify": "4.7.5", "secure": "4.7.5"}),
        "r502": ("refuse-502", "good", {
            "none": "sent", "may": "fallback", "encrypt": "4.7.5",
            "verify": "4.7.5", "secure": "4.7.5"}),
        "r500": ("refuse-500", "good", {
            "none": "sent", "may": "fallback", "encrypt": "4.7.5",
            "verify": "4.7.5", "secure": "4.7.5"}),
        "r421": ("refuse-421", "good", {
            "none": "sent", "may": "fallback", "encrypt": "4.7.5",
            "verify": "4.7.5", "secure": "4.7.5"}),
    },
    "handshake": {
        "tlsplain": ("tls-then-plain", "good", {
            "none": "sent", "may": "fallback", "encrypt": "4.7.5",
            "verify": "4.7.5", "secure": "4.7.5"}),
        "tlsclose": ("tls-then-close", "good", {
            "none": "sent", "may": "fallback", "encrypt": "4.7.5",
            "verify": "4.7.5", "secure": "4.7.5"}),
        "extra": ("extra-after-220", "good", {
            "none": "sent", "may": "sent-tls", "encrypt": "sent-tls",
            "verify": "sent-verified", "secure": "4.7.5"}),
        "cutdata": ("cut-data", "good", {
            "none": "4.4.2", "may": "4.4.2", "encrypt": "4.4.2",
            "verify": "4.4.2", "secure": "4.7.5"}),
    },
    "certs": {
        "selfsigned": ("normal", "selfsigned", {
            "none": "sent", "may": "sent-tls", "encrypt": "sent-tls",
            "verify": "4.7.5", "secure": "4.7.5"}),
        "expired": ("normal", "expired", {
            "none": "sent", "may": "sent-tls", "encrypt": "sent-tls",
            "verify": "4.7.5", "secure": "4.7.5"}),
        "wrongname": ("normal", "wrongname", {
            "none": "sent", "may": "sent-tls", "encrypt": "sent-tls",
            "verify": "4.7.5", "secure": "4.7.5"}),
        "untrusted": ("normal", "untrusted", {
            "none": "sent", "may": "sent-tls", "encrypt": "sent-tls",
            "verify": "4.7.5", "secure": "4.7.5"}),
        "good": ("normal", "good", {
            "none": "sent", "may": "sent-tls", "encrypt": "sent-tls",
            "verify": "sent-verified", "secure": "4.7.5"}),
        # secure: the certificate names the recipient domain itself
        "secure.test": ("normal", "securename", {
            "secure": "sent-verified"}),
    },
}


def domain_of(case, level):
    return case if "." in case else "%s-%s.test" % (case, level)


def setup(env, cases, certs):
    env.init_store()
    env.admin("outbound", "mode", "acme", "domains")
    peers = {}
    for case, (mode, cert, levels) in cases.items():
        peers[case] = Peer(env, case.replace(".", "_"), mode, certs[cert])
        for level in levels:
            dom = domain_of(case, level)
            env.admin("outbound", "add", "acme", dom, "--level", level)
            env.admin("route", "add", dom, "localhost:%d" % peers[case].port)
    return peers


def submit_all(env, cases):
    for case, (_, _, levels) in cases.items():
        for level in levels:
            msgid = "<%s-%s@test>" % (case, level)
            text = ("Subject: %s %s\nMessage-ID: %s\n\nbody line\n.dot\n" %
                    (case, level, msgid))
            rc, err = env.sendmail(
                ["-T", "acme", "-f", "s-%s@acme.mail.example.net" % level,
                 "-i", "rcpt@" + domain_of(case, level)], text)
            check(rc == 0, "sendmail %s %s: %d %s" % (case, level, rc, err))


def attempt_line(env, rcpt):
    for l in env.log_lines(" delivery "):
        if "to=<%s>" % rcpt in l:
            return l
    return None


def check_case(env, peer, case, level, want):
    rcpt = "rcpt@" + domain_of(case, level)
    line = attempt_line(env, rcpt)
    what = "%s/%s" % (case, level)
    check(line is not None, what + ": no delivery log line")
    rec = peer.lines()
    sender = "MAIL FROM:<s-%s@acme.mail.example.net>" % level
    plain_mail = any(l.startswith("PLAIN " + sender) for l in rec)
    tls_mail = any(l.startswith("TLS " + sender) for l in rec)
    msg_plain = any(l.startswith("MSG <%s-%s@test> tls=0" % (case, level))
                    for l in rec)
    required = level in ("encrypt", "verify", "secure")
    if required:
        check(not plain_mail, what + ": MAIL FROM sent in plaintext")
        check(not msg_plain, what + ": message body sent in plaintext")
    if want in ("sent", "fallback"):
        check("status=sent" in line and "tls=none" in line,
              what + ": not sent in plaintext: " + line)
        check(plain_mail, what + ": peer saw no plaintext MAIL")
    if want == "fallback":
        check("fallback=yes" in line, what + ": fallback not in log line")
        check(any("tls-fallback" in l and "level=may" in l
                  for l in env.log_lines("tls-fallback")),
              what + ": no tls-fallback log line")
    if want.startswith("sent-"):
        check("status=sent" in line and "tls=TLS1." in line,
              what + ": not sent over TLS: " + line)
        check(tls_mail, what + ": peer saw no MAIL over TLS")
    if want == "sent-verified":
        check("verified=yes" in line, what + ": not verified: " + line)
    if want == "4.7.5" and case in GROUPS["certs"]:
        # the handshake completed; only the certificate failed: the line
        # keeps the negotiated protocol and cipher, verified=no, the reason
        check("tls=TLS1." in line and "cipher=none" not in line and
              "verified=no" in line and
              "tls_failure=certificate-" in line,
              what + ": TLS outcome hidden: " + line)
    if want[0] == "4":
        check("status=deferred" in line, what + ": not deferred: " + line)
        check("reply=451\\x20" + want in line,
              what + ": reply is not " + want + ": " + line)
    check("level=" + level in line, what + ": level missing: " + line)
    if level == "none":
        check(not starttls_for(rec, sender),
              what + ": STARTTLS attempted under none")


def starttls_for(rec, sender):
    """True when a connection whose MAIL FROM is sender also sent
    STARTTLS (lines end with the peer's connection tag "#cN")."""
    cids = {l.rsplit(" ", 1)[1] for l in rec if sender in l}
    return any(l.rsplit(" ", 1)[1] in cids for l in rec
               if " STARTTLS " in l + " ")


def check_event(env, ca):
    """The engine event of a verify failure after a completed handshake
    carries the negotiated protocol and cipher (tlsgate-admin test send
    shows the event)."""
    r = subprocess.run([env.bin("tlsgate-admin"), "test", "send", "acme",
                        "ev@" + domain_of("untrusted", "verify"), "--wait",
                        "30", "--json"], env=env.env, capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 1, "test send: rc %d %s" % (r.returncode, r.stderr))
    ev = json.loads(r.stdout)
    check(ev["status"] == "deferred" and
          ev["tls_protocol"].startswith("TLS1.") and ev["tls_cipher"] and
          ev["tls_verified"] is False and
          ev["tls_failure"] == "certificate-not-trusted" and
          ev["reply"].startswith("451 4.7.5"), "event %r" % ev)


def main():
    bindir, group = sys.argv[1], sys.argv[2]
    cases = GROUPS[group]
    env = Env(bindir, "tls-" + group)
    ok = False
    try:
        certs, ca = make_certs(env.path())
        certs["securename"] = named_cert(env.path(), "named", ["secure.test"])
        peers = setup(env, cases, certs)
        env.start_engine()
        submit_all(env, cases)
        total = sum(len(v[2]) for v in cases.values())
        sender = env.start_sender(["--tls-ca-file", ca])
        rcpts = ["rcpt@" + domain_of(c, l) for c, v in cases.items()
                 for l in v[2]]
        wait_for(lambda: all(attempt_line(env, r) for r in rcpts), 60,
                 "one attempt per message")
        for case, (_, _, levels) in cases.items():
            for level, want in levels.items():
                check_case(env, peers[case], case, level, want)
        if group == "certs":
            check_event(env, ca)
        env.stop_sender(sender)
        ok = True
        print("ok: %d cases" % total)
    except Failure as e:
        print("FAIL:", e)
        print(env.log()[-6000:])
    finally:
        env.close(keep=not ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
