#!/usr/bin/env python3
"""Delivery to a real Postfix on loopback. A private Postfix instance
(config, queue and mailboxes under the test's temp folder) runs two smtpd
listeners: one offers STARTTLS (certificate for localhost and
pf-secure.test, signed by the test CA), one does not. Postfix delivers
to a Maildir. For each level, a recipient routed to each listener:

  STARTTLS offered: none -> plaintext; may/encrypt -> TLS; verify, secure
                    -> TLS with the certificate verified
  not offered:      none -> plaintext; may -> plaintext, logged fallback;
                    encrypt/verify/secure -> deferred 4.7.4, never sent

plus a tenant in mode "all": delivered with TLS to the first listener,
deferred (never plaintext) by the second. Postfix's own Received headers
confirm TLS. Skipped (77) when Postfix cannot run here (not root, not
installed).

usage: test_postfix.py BINDIR
"""
import glob
import os
import shutil
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from outlib import (SKIP, Env, Failure, check, make_certs,  # noqa: E402
                    named_cert, wait_for)

LEVELS = ["none", "may", "encrypt", "verify", "secure"]

MASTER = """\
127.0.0.1:{tls} inet n - n - - smtpd
127.0.0.1:{plain} inet n - n - - smtpd -o smtpd_tls_security_level=none
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def domain(kind, level):
    if kind == "tls" and level == "secure":
        return "pf-secure.test"
    return "pf-%s-%s.test" % (kind, level)


class Postfix:
    def __init__(self, env, cert, domains):
        self.base = env.path("postfix")
        self.conf = os.path.join(self.base, "conf")
        for d in ("conf", "queue", "data", "mail"):
            os.makedirs(os.path.join(self.base, d))
        pw = subprocess.run(["id", "-u", "postfix"], capture_output=True,
                            text=True)
        gr = subprocess.run(["id", "-g", "postfix"], capture_output=True,
                            text=True)
        uid, gid = int(pw.stdout), int(gr.stdout)
        for d in ("data", "mail"):
            os.chown(os.path.join(self.base, d), uid, gid)
        os.chmod(env.dir, 0o755)
        self.tls, self.plain = free_port(), free_port()
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(self.main_cf(cert, domains, uid, gid))
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(MASTER.format(tls=self.tls, plain=self.plain))

    def main_cf(self, cert, domains, uid, gid):
        b = self.base
        return "\n".join([
            "compatibility_level = 3.6",
            "queue_directory = %s/queue" % b,
            "data_directory = %s/data" % b,
            "mail_owner = postfix", "setgid_group = postdrop",
            "inet_interfaces = 127.0.0.1", "inet_protocols = ipv4",
            "myhostname = pf.test", "mydestination =",
            "mynetworks = 127.0.0.0/8", "relay_domains =",
            "smtpd_relay_restrictions = permit_mynetworks, reject",
            "virtual_mailbox_domains = " + ", ".join(domains),
            "virtual_mailbox_base = %s/mail" % b,
            "virtual_mailbox_maps = static:box/",
            "virtual_uid_maps = static:%d" % uid,
            "virtual_gid_maps = static:%d" % gid,
            "virtual_minimum_uid = %d" % min(uid, 100),
            "maillog_file_prefixes = %s" % b,
            "maillog_file = %s/maillog" % b,
            "smtpd_tls_security_level = may",
            "smtpd_tls_cert_file = " + cert[0],
            "smtpd_tls_key_file = " + cert[1],
            "smtpd_tls_received_header = yes",
            "import_environment = MAIL_CONFIG MAIL_DEBUG TZ LANG=C", ""])

    def cmd(self, what):
        return subprocess.run(["postfix", "-c", self.conf, what],
                              capture_output=True, text=True, timeout=60)

    def start(self):
        r = self.cmd("start")
        if r.returncode != 0:
            raise Failure("postfix start failed: %s %s" %
                          (r.stderr, self.maillog()[-2000:]))
        for port in (self.tls, self.plain):
            wait_for(lambda: self.listening(port), 20, "postfix smtpd")

    @staticmethod
    def listening(port):
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return True
        except OSError:
            return False

    def stop(self):
        if self.cmd("stop").returncode != 0:
            self.cmd("abort")

    def maillog(self):
        try:
            with open(os.path.join(self.base, "maillog")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def delivered(self):
        out = {}
        for p in glob.glob(os.path.join(self.base, "mail", "box", "new",
                                        "*")):
            with open(p, errors="replace") as f:
                text = f.read()
            for line in text.splitlines():
                if line.lower().startswith("message-id:"):
                    out[line.split(":", 1)[1].strip()] = text
                    break
        return out


def expected(kind, level):
    if kind == "tls":
        return {"none": "plain", "may": "tls", "encrypt": "tls"}.get(
            level, "verified")
    return {"none": "plain", "may": "fallback"}.get(level, "4.7.4")


def check_one(env, pf, got, tenant, kind, level):
    rcpt = "%s-%s@%s" % (tenant, level, domain(kind, level))
    msgid = "<%s-%s-%s@pf.test>" % (tenant, kind, level)
    want = expected(kind, level)
    what = "%s %s/%s" % (tenant, kind, level)
    line = [l for l in env.log_lines(" delivery ") if "to=<%s>" % rcpt in l]
    check(line, what + ": no log line")
    line = line[0]
    check("level=" + level in line and "generation=" in line and
          "rule=" in line and "relay=localhost[127.0.0.1]:" in line,
          what + ": log line fields: " + line)
    if want == "4.7.4":
        check("status=deferred" in line and "reply=451\\x204.7.4" in line,
              what + ": not deferred 4.7.4: " + line)
        check(msgid not in got, what + ": delivered in plaintext")
        return
    check("status=sent" in line, what + ": not sent: " + line)
    check(msgid in got, what + ": not in the Postfix mailbox")
    postfix_tls = "using TLS" in got[msgid]
    if want in ("plain", "fallback"):
        check("tls=none" in line and not postfix_tls,
              what + ": expected plaintext: " + line)
    if want == "fallback":
        check("fallback=yes" in line, what + ": fallback not logged")
    if want in ("tls", "verified"):
        check("tls=TLS1." in line and postfix_tls,
              what + ": expected TLS: " + line)
    if want == "verified":
        check("verified=yes" in line, what + ": not verified: " + line)


def setup_store(env, pf):
    env.init_store(("acme", "allco"))
    env.admin("outbound", "mode", "acme", "domains")
    env.admin("outbound", "mode", "allco", "all")
    for kind, port in (("tls", pf.tls), ("plain", pf.plain)):
        for level in LEVELS:
            d = domain(kind, level)
            env.admin("outbound", "add", "acme", d, "--level", level)
            env.admin("route", "add", d, "localhost:%d" % port)


def submit(env, tenant, kind, level):
    rcpt = "%s-%s@%s" % (tenant, level, domain(kind, level))
    text = "Subject: %s %s %s\nMessage-ID: <%s-%s-%s@pf.test>\n\nhello\n" % (
        tenant, kind, level, tenant, kind, level)
    rc, err = env.sendmail(["-T", tenant, "-i", rcpt], text)
    check(rc == 0, "sendmail: " + err)
    return rcpt


def main():
    if os.geteuid() != 0 or not shutil.which("postfix"):
        print("SKIP: Postfix needs root and the postfix package")
        return SKIP
    env = Env(sys.argv[1], "postfix")
    ok, pf = False, None
    try:
        certs, ca = make_certs(env.path())
        cert = named_cert(env.path(), "pf", ["localhost", "pf-secure.test"])
        domains = [domain(k, l) for k in ("tls", "plain") for l in LEVELS]
        pf = Postfix(env, cert, domains)
        pf.start()
        setup_store(env, pf)
        env.start_engine()
        cases = [("acme", k, l) for k in ("tls", "plain") for l in LEVELS]
        cases += [("allco", "tls", "encrypt"), ("allco", "plain", "encrypt")]
        rcpts = [submit(env, *c) for c in cases]
        sender = env.start_sender(["--tls-ca-file", ca])
        wait_for(lambda: all(env.log_lines("to=<%s>" % r) for r in rcpts),
                 60, "an attempt for every recipient")
        sent = len([c for c in cases if expected(c[1], c[2]) != "4.7.4"])
        wait_for(lambda: len(pf.delivered()) >= sent, 30,
                 "Postfix delivering to the mailbox")
        got = pf.delivered()
        for c in cases:
            check_one(env, pf, got, *c)
        env.stop_sender(sender)
        ok = True
        print("ok: %d cases, %d delivered by Postfix" % (len(cases), sent))
    except Failure as e:
        print("FAIL:", e)
        print(env.log()[-3000:])
        if pf:
            print(pf.maillog()[-3000:])
    finally:
        if pf:
            pf.stop()
        env.close(keep=not ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
