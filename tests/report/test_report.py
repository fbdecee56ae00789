"""TLS testing and reporting (issue 7), with real processes on loopback:
tlsgate-admin probe against tlsgate-smtpin and the outbound tests' hostile
peer (no STARTTLS, self-signed, expired, wrong name, untrusted chain);
real deliveries through tlsgate-smtpout to those peers, then the
readiness, shadow, audit and RFC 8460 reports from the engine's events."""
import json
import os
import smtplib
import socket
import ssl
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "outbound"))
import outlib  # noqa: E402
from outlib import check, wait_for  # noqa: E402


def admin_json(env, *args, rc=0):
    r = subprocess.run([env.bin("tlsgate-admin")] + list(args) + ["--json"],
                       env=env.env, capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == rc, "tlsgate-admin %s: rc %d: %s" %
          (" ".join(args), r.returncode, r.stderr))
    return json.loads(r.stdout) if r.stdout else None


def probe(env, port, ca=None, rc=0):
    args = ["probe", "vendor.example", "--host", "127.0.0.1:%d" % port]
    if ca:
        args += ["--ca-file", ca]
    doc = admin_json(env, *args, rc=rc)
    check(doc["domain"] == "vendor.example" and doc["via"] == "option",
          "probe header %r" % doc)
    check(len(doc["hosts"]) == 1, "one host %r" % doc)
    return doc["hosts"][0]


def test_probe(env, certs, ca):
    """Each certificate case says exactly what happened."""
    plain = outlib.Peer(env, "plain", mode="normal")
    h = probe(env, plain.port)
    check(h["starttls_offered"] is False and "tls" not in h,
          "no STARTTLS: %r" % h)
    check(h["levels"] == {"may": True, "encrypt": False, "verify": False,
                          "secure": False}, "levels without TLS %r" % h)
    cases = {
        "good": (True, True, False, {"may": True, "encrypt": True,
                                     "verify": False, "secure": False}),
        "selfsigned": (False, False, False, None),
        "expired": (False, False, True, None),
        "wrongname": (True, False, False, None),
        "untrusted": (False, False, False, None),
    }
    for name, (chain, mx, expired, levels) in cases.items():
        peer = outlib.Peer(env, "p-" + name, mode="normal", cert=certs[name])
        h = probe(env, peer.port, ca=ca)
        t = h.get("tls")
        check(h["starttls_offered"] is True and t, "%s: TLS %r" % (name, h))
        check(t["protocol"].startswith("TLS1."), "%s protocol" % name)
        check(t["cipher"].startswith("TLS_"), "%s cipher %r" % (name, t))
        check(t["chain_verified"] is chain, "%s chain %r" % (name, t))
        # the MX name is the address 127.0.0.1, matched against IP SANs
        # only: these certificates have DNS names only
        check(t["name_matches_mx"] is False, "%s mx name %r" % (name, t))
        check(t["expired"] is expired, "%s expired %r" % (name, t))
        check(len(t["chain"]) >= 1 and t["chain"][0]["subject"],
              "%s chain %r" % (name, t))
        check(t["chain"][0]["not_after"].endswith("Z"), "%s validity" % name)
        want_names = {"good": ["localhost"], "wrongname": ["wrong.example"],
                      "untrusted": ["localhost"], "selfsigned": ["localhost"],
                      "expired": ["localhost"]}[name]
        check(t["chain"][0]["names"] == want_names, "%s names %r" % (name, t))
        check(h["levels"]["encrypt"] is True and
              h["levels"]["verify"] is False, "%s levels %r" % (name, h))
        if levels:
            check(h["levels"] == levels, "%s levels %r" % (name, h))
    # the next hop from the store's route override, text output
    env.admin("route", "add", "vendor.example", "127.0.0.1:%d" % plain.port)
    doc = admin_json(env, "probe", "vendor.example")
    check(doc["via"] == "route" and
          doc["hosts"][0]["address"] == "127.0.0.1:%d" % plain.port,
          "probe via route %r" % doc)
    text = env.admin("probe", "vendor.example")
    check("starttls   not offered" in text and
          "delivers   may yes, encrypt no" in text, "probe text:\n" + text)
    env.admin("route", "remove", "vendor.example")
    # nothing listens: a clear error and status 1
    port = plain.port
    plain.proc.terminate()
    plain.proc.wait(timeout=10)
    h = probe(env, port, rc=1)
    check(h["error"] == "connection refused", "refused %r" % h)
    # a listener that never says anything: a timeout, bounded by --wait
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        t0 = time.time()
        doc = admin_json(env, "probe", "vendor.example", "--host",
                         "127.0.0.1:%d" % silent.getsockname()[1], "--wait",
                         "1", rc=1)
        check(doc["hosts"][0]["error"] == "timeout waiting for banner" and
              time.time() - t0 < 10, "timeout %r" % doc)
    # the probe never sent MAIL FROM
    for peer_rec in os.listdir(env.dir):
        if peer_rec.endswith(".rec"):
            with open(env.path(peer_rec)) as f:
                check("MAIL" not in f.read(), "probe sent MAIL FROM")


def start_smtpin(env):
    """tlsgate-smtpin standalone on a free port, with its generated
    certificate (hostname localhost). Returns (process, port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(env.path("smtpin.log"), "a")
    p = subprocess.Popen(
        [env.bin("tlsgate-smtpin"), "--state-dir", env.dir,
         "--inbound-listen", "127.0.0.1:%d" % port, "--hostname", "localhost"],
        env=env.env, stdout=log, stderr=log,
        preexec_fn=outlib._die_with_parent)
    env.procs.append(p)

    def up():
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return True
        except OSError:
            return False
    wait_for(up, 20, "tlsgate-smtpin")
    return p, port


def test_probe_smtpin(env):
    """The project's own receiver with its generated certificate."""
    p, port = start_smtpin(env)
    cert = env.path("tls", "cert.pem")
    wait_for(lambda: os.path.exists(cert), 20, "smtpin's generated cert")
    h = probe(env, port, ca=cert)
    t = h["tls"]
    check(h["banner"] == 220 and h["starttls_offered"] is True, "smtpin %r" % h)
    check(t["protocol"] in ("TLS1.3", "TLS1.2"), "smtpin protocol %r" % t)
    check("localhost" in t["chain"][0]["names"], "smtpin names %r" % t)
    check(t["chain_verified"] is True, "smtpin chain with its cert %r" % t)
    # An IP host matches the certificate's IP SANs, and the names list
    # shows them, so the report explains its own "MX name yes".
    check("127.0.0.1" in t["chain"][0]["names"] and
          "::1" in t["chain"][0]["names"], "smtpin IP SANs %r" % t)
    check(t["name_matches_mx"] is True, "smtpin IP name match %r" % t)
    text = env.admin("probe", "vendor.example", "--host",
                     "127.0.0.1:%d" % port, "--ca-file", cert)
    kx = t["kx"] or "-"
    check(("  kx         %s\n  group      %s\n" % (kx, t["group"] or "-"))
          in text, "probe text kx/group:\n" + text)
    check("MX name yes" in text and '"127.0.0.1"' in text,
          "probe text names:\n" + text)
    p.terminate()
    p.wait(timeout=30)


def test_receive(env):
    """Two messages reach a mailbox, one over TLS: test receive shows
    which, newest first, filtered by sender domain."""
    box = "box@acme." + outlib.PLATFORM
    env.admin("inbound", "mailbox", "add", "acme", box)
    p, port = start_smtpin(env)
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("client.test")
        s.starttls(context=ssl._create_unverified_context())
        s.ehlo("client.test")
        s.sendmail("a@partner.example", [box], "Subject: 1\r\n\r\nx\r\n")
    time.sleep(1.1)  # distinct modification times
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.sendmail("b@other.example", [box], "Subject: 2\r\n\r\ny\r\n")
    r = admin_json(env, "test", "receive", "acme")
    m = r["messages"]
    check(len(m) == 2 and m[0]["sender"] == "b@other.example" and
          m[0]["tls"] is False and m[1]["sender"] == "a@partner.example" and
          m[1]["tls"] is True and m[1]["tls_protocol"].startswith("TLS1.") and
          m[1]["tls_cipher"] and m[1]["mailbox"] == "box", "receive %r" % r)
    r = admin_json(env, "test", "receive", "acme", "--from",
                   "partner.example")
    check([x["sender"] for x in r["messages"]] == ["a@partner.example"],
          "receive --from %r" % r)
    r = admin_json(env, "test", "receive", "acme", "--last", "1")
    check(len(r["messages"]) == 1, "receive --last %r" % r)
    p.terminate()
    p.wait(timeout=30)


def deliver(env, rcpt):
    code, err = env.sendmail(["-f", "noreply@acme." + outlib.PLATFORM,
                              "--tenant", "acme", rcpt],
                             "Subject: t\n\nhello\n")
    check(code == 0, "sendmail %s: %s" % (rcpt, err))


def events_for(env, n, timeout=60):
    """Waits until the readiness report counts n attempts."""
    def count():
        doc = admin_json(env, "report", "readiness", "acme", "--since", "1h")
        got = sum(d["attempts"] for d in doc["domains"].values())
        return doc if got >= n else None
    return wait_for(count, timeout, "%d delivery events" % n)


def test_reports(env, certs, ca):
    """Known deliveries: good.example gets verified-name-less TLS
    (encrypt), plain.example has no STARTTLS, bad.example an untrusted
    certificate; a shadow policy all/verify is on, live mode off."""
    good = outlib.Peer(env, "r-good", cert=certs["good"])
    plain = outlib.Peer(env, "r-plain")
    bad = outlib.Peer(env, "r-bad", cert=certs["untrusted"])
    env.admin("route", "add", "good.example", "localhost:%d" % good.port)
    env.admin("route", "add", "plain.example", "127.0.0.1:%d" % plain.port)
    env.admin("route", "add", "bad.example", "localhost:%d" % bad.port)
    env.admin("route", "add", "req.example", "127.0.0.1:%d" % plain.port)
    env.admin("outbound", "add", "acme", "good.example", "--level", "may")
    env.admin("outbound", "add", "acme", "req.example", "--level", "encrypt")
    env.admin("outbound", "shadow", "acme", "all", "--level", "verify")
    ex = admin_json(env, "explain", "outbound", "acme", "x@plain.example")
    check(ex["level"] == "none" and ex["shadow"] == {
        "level": "verify", "required": True, "rule": "default:mode=all"},
        "explain shows both %r" % ex)
    show = admin_json(env, "tenant", "show", "acme")
    check(show["outbound"]["shadow"] == {"mode": "all", "level": "verify"},
          "tenant show %r" % show)

    env.start_engine()
    # no retry within the test: one attempt per message
    sender = env.start_sender(["--tls-ca-file", ca, "--retry-min", "600",
                               "--retry-max", "600"])
    for _ in range(2):
        deliver(env, "a@good.example")
    deliver(env, "b@plain.example")
    deliver(env, "c@bad.example")
    events_for(env, 4)
    env.admin("outbound", "mode", "acme", "domains")
    deliver(env, "d@req.example")  # encrypt, no STARTTLS: deferred
    doc = events_for(env, 5)
    # verify level against the hostile certificates (MX name localhost)
    for name in ("expired", "wrongname", "untrusted"):
        peer = outlib.Peer(env, "v-" + name, cert=certs[name])
        dom = "v-%s.example" % name
        env.admin("route", "add", dom, "localhost:%d" % peer.port)
        env.admin("outbound", "add", "acme", dom, "--level", "verify")
        deliver(env, "e@" + dom)
    events_for(env, 8)
    env.stop_sender(sender)

    d = doc["domains"]
    check(d["good.example"]["messages"] == 2 and
          d["good.example"]["sent"] == 2 and d["good.example"]["tls"] == 2,
          "good counts %r" % d["good.example"])
    check(d["good.example"]["verified"] == 2 and
          d["good.example"]["under_all"] == "ok" and
          d["good.example"]["under_verify"] == "ok", "good %r" % d)
    check(d["plain.example"]["plaintext"] == 1 and
          d["plain.example"]["under_all"] == "fail" and
          d["plain.example"]["failures"] == {"starttls-not-supported": 1},
          "plain %r" % d["plain.example"])
    check(d["bad.example"]["tls"] == 1 and d["bad.example"]["verified"] == 0
          and d["bad.example"]["under_all"] == "ok" and
          d["bad.example"]["under_verify"] == "fail", "bad %r" % d)
    check(d["req.example"]["deferred"] == 1 and d["req.example"]["sent"] == 0,
          "req %r" % d["req.example"])
    check(sorted(doc["would_fail_all"]) == ["plain.example", "req.example"],
          "would fail all %r" % doc["would_fail_all"])
    check(sorted(doc["would_fail_verify"]) ==
          ["bad.example", "plain.example", "req.example"],
          "would fail verify %r" % doc)
    # shadow all/verify: good passes (CA-verified localhost), plain and bad
    # would have been deferred although they were sent
    check(d["good.example"]["shadow"]["pass"] == 2 and
          d["plain.example"]["shadow"]["would_defer"] == 1 and
          d["bad.example"]["shadow"]["would_defer"] == 1,
          "shadow counts %r" % d)
    check(len(env.log_lines("shadow-would-defer")) >= 2, "shadow log lines")

    text = env.admin("report", "readiness", "acme", "--since", "1h")
    check(any(l.split()[:1] == ["plain.example"] and "fail" in l
              for l in text.splitlines()), "readiness text:\n" + text)
    sys.stdout.write(text)
    text = env.admin("report", "audit", "acme", "--since", "1h")
    check("req.example" in text and "good.example" in text,
          "audit text:\n" + text)
    sys.stdout.write(text)
    rpt = admin_json(env, "report", "tlsrpt", "acme", "--since", "1h")
    check_rfc8460(rpt)
    pols = {p["policy"]["policy-domain"]: p for p in rpt["policies"]}
    check(pols["good.example"]["summary"] == {
        "total-successful-session-count": 2,
        "total-failure-session-count": 0}, "tlsrpt good %r" % pols)
    check(pols["plain.example"]["summary"]["total-failure-session-count"] == 1
          and pols["req.example"]["summary"][
              "total-failure-session-count"] == 1, "tlsrpt fail %r" % pols)
    for name, kind in (("expired", "certificate-expired"),
                       ("wrongname", "certificate-host-mismatch"),
                       ("untrusted", "certificate-not-trusted")):
        p = pols["v-%s.example" % name]
        check(p["summary"]["total-failure-session-count"] == 1 and
              p["summary"]["total-successful-session-count"] == 0 and
              p["failure-details"][0]["result-type"] == kind and
              p["failure-details"][0]["receiving-mx-hostname"] == "localhost" and
              p["policy"]["mx-host"] == ["localhost"],
              "tlsrpt %s %r" % (name, p))
    fd = pols["req.example"]["failure-details"][0]
    check(fd["result-type"] == "starttls-not-supported" and
          fd["receiving-mx-hostname"] == "127.0.0.1" and
          fd["receiving-ip"] == "127.0.0.1" and
          fd["sending-mta-ip"] == "127.0.0.1" and
          fd["failed-session-count"] == 1, "failure details %r" % fd)

    audit = admin_json(env, "report", "audit", "acme", "--since", "1h")
    weak = {w["domain"]: w for w in audit["not_required"]}
    check(set(weak) == {"good.example"}, "audit weak %r" % audit)
    failed = {f["domain"]: f for f in audit["failed_required"]}
    check(set(failed) == {"req.example", "v-expired.example",
                          "v-wrongname.example", "v-untrusted.example"} and
          failed["req.example"]["failures"] == 1 and
          failed["req.example"]["last_failure"] == "starttls-not-supported",
          "audit failed %r" % audit)

    # export/import keeps the shadow, byte for byte
    exp = env.admin("export")
    check('"shadow"' in exp, "export has the shadow")
    with open(env.path("p.json"), "w") as f:
        f.write(exp)
    env.admin("import", env.path("p.json"))
    check(env.admin("export") == exp, "export/import round trip")

    # test send through the real outbound path, with its TLS details
    sender = env.start_sender(["--tls-ca-file", ca, "--retry-min", "600",
                               "--retry-max", "600"])
    r = admin_json(env, "test", "send", "acme", "t@good.example", "--wait",
                   "30")
    check(r["status"] == "sent" and r["tls_protocol"].startswith("TLS1.") and
          r["tls_cipher"] and r["level"] == "may" and
          r["rule"] == "domain:good.example" and r["mx_host"] == "localhost"
          and r["reply"].startswith("250"), "test send %r" % r)
    check(len(good.messages()) == 3, "the test message arrived")
    r = admin_json(env, "test", "send", "acme", "t@req.example", "--wait",
                   "30", rc=1)
    check(r["status"] == "deferred" and r["tls_protocol"] == "" and
          r["tls_failure"] == "starttls-not-supported" and
          r["reply"].startswith("451 4.7.4"), "test send deferred %r" % r)
    # shadow secure: good.example's certificate names localhost, not the
    # recipient domain, so the shadow would defer what went out
    env.admin("outbound", "shadow", "acme", "all", "--level", "secure")
    deliver(env, "f@good.example")
    doc = events_for(env, 11)
    check(doc["domains"]["good.example"]["shadow"] == {
        "would_defer": 1, "pass": 3, "unknown": 0} and
        doc["domains"]["good.example"]["sent"] == 4,
        "shadow secure %r" % doc["domains"]["good.example"])
    env.admin("outbound", "shadow", "acme", "off")
    check("shadow" not in admin_json(env, "tenant", "show", "acme")[
        "outbound"], "shadow off")
    env.stop_sender(sender)


def check_rfc8460(r):
    """The required members and types of RFC 8460 section 4.4."""
    for k in ("organization-name", "contact-info", "report-id"):
        check(isinstance(r.get(k), str) and r[k], "tlsrpt %s" % k)
    dr = r["date-range"]
    for k in ("start-datetime", "end-datetime"):
        check(isinstance(dr[k], str) and dr[k].endswith("Z") and
              len(dr[k]) == 20, "date-range %s" % k)
    check(isinstance(r["policies"], list), "policies")
    for p in r["policies"]:
        check(p["policy"]["policy-type"] in ("tlsa", "sts",
                                             "no-policy-found"), "type")
        check(isinstance(p["policy"]["policy-domain"], str), "domain")
        for k in ("total-successful-session-count",
                  "total-failure-session-count"):
            check(isinstance(p["summary"][k], int), "summary " + k)
        for f in p.get("failure-details", []):
            check(f["result-type"] in (
                "starttls-not-supported", "certificate-host-mismatch",
                "certificate-expired", "certificate-not-trusted",
                "validation-failure", "tlsa-invalid", "dnssec-invalid",
                "dane-required", "sts-policy-fetch-error",
                "sts-policy-invalid", "sts-webpki-invalid"), "result-type")
            check(isinstance(f["failed-session-count"], int), "count")


def test_bad_input(env):
    """Bad input: one line on stderr, nothing on stdout, status 1 or 2,
    and the store's generation unchanged."""
    gen = admin_json(env, "status")["generation"]
    cases = [
        (2, ["probe", "vendor.example", "--host", "nonsense"]),
        (2, ["probe", "vendor.example", "--host", "127.0.0.1:0"]),
        (2, ["probe", "vendor.example", "--wait", "0"]),
        (1, ["probe", "bad domain!", "--host", "127.0.0.1:25"]),
        (1, ["report", "readiness", "nobody"]),
        (1, ["report", "tlsrpt", "Bad"]),
        (2, ["report", "readiness", "acme", "--since", "yesterday"]),
        (2, ["report", "audit", "acme", "--since", "1h", "--until", "2h"]),
        (2, ["outbound", "shadow", "acme", "domains", "--level", "verify"]),
        (2, ["outbound", "shadow", "acme", "all", "--level", "may"]),
        (2, ["outbound", "shadow", "acme", "sometimes"]),
        (1, ["outbound", "shadow", "nobody", "all"]),
        (2, ["test", "send", "acme", "x@y.example", "--wait", "-1"]),
        (1, ["test", "send", "acme", "not an address"]),
        (2, ["test", "receive", "acme", "--last", "0"]),
    ]
    for want, args in cases:
        r = subprocess.run([env.bin("tlsgate-admin")] + args, env=env.env,
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == want and r.stdout == "" and
              r.stderr.startswith("tlsgate-admin: ") and
              r.stderr.count("\n") == 1,
              "%s: rc %d out %r err %r" % (args, r.returncode, r.stdout,
                                           r.stderr))
    check(admin_json(env, "status")["generation"] == gen, "store unchanged")


def main():
    env = outlib.Env(sys.argv[1], "report")
    ok = False
    try:
        env.init_store()
        certs, ca = outlib.make_certs(env.dir)
        test_bad_input(env)
        test_probe(env, certs, ca)
        test_probe_smtpin(env)
        test_reports(env, certs, ca)
        test_receive(env)
        ok = True
    finally:
        env.close(keep=not ok)
    print("ok")


if __name__ == "__main__":
    main()
