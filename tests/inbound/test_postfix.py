#!/usr/bin/env python3
"""A real Postfix on loopback relays to tlsgate-smtpin with TLS required on
its side (smtp_tls_security_level = encrypt, relayhost = the receiver).
Postfix runs from its own config folder and queue under the test's temp
folder (postfix -c DIR start), listens on 127.0.0.1 only, and is stopped
at the end. A message given to Postfix must land in the tenant's Maildir
with the TLS protocol and cipher in its Received header. argv: BINDIR."""
import os
import re
import shutil
import subprocess
import sys
import time

from inbound_lib import (ACCEPT, SKIP, Failure, check, free_port, run_main,
                         swaks)

MASTER_DIST = "/usr/share/postfix/master.cf.dist"


def postfix_available():
    return (shutil.which("postfix") or os.path.exists("/usr/sbin/postfix")) \
        and os.path.exists(MASTER_DIST) and os.geteuid() == 0


def master_cf(port):
    """The packaged master.cf, no chroot, smtpd on 127.0.0.1:port only."""
    out = []
    for line in open(MASTER_DIST):
        f = line.split()
        if line[:1] not in ("#", " ", "\t") and len(f) >= 8:
            if f[0] == "smtp" and f[1] == "inet":
                f[0] = "127.0.0.1:%d" % port
            f[4] = "n"  # chroot: the temp folder is not a chroot jail
            line = " ".join(f) + "\n"
        out.append(line)
    return "".join(out)


def main_cf(pf, relay_port):
    return "\n".join([
        "compatibility_level = 3.6",
        "queue_directory = %s/spool" % pf,
        "data_directory = %s/data" % pf,
        "maillog_file = %s/maillog" % pf,
        "maillog_file_prefixes = %s" % pf,
        "mail_owner = postfix",
        "setgid_group = postdrop",
        "inet_interfaces = loopback-only",
        "inet_protocols = ipv4",
        "myhostname = relay.test",
        "mydomain = relay.test",
        "mydestination =",
        "mynetworks = 127.0.0.0/8",
        "alias_maps =",
        "alias_database =",
        "local_recipient_maps =",
        "relayhost = [127.0.0.1]:%d" % relay_port,
        "smtp_tls_security_level = encrypt",
        "smtp_tls_loglevel = 1",
        "smtp_host_lookup = native",
        "smtpd_tls_security_level = none",
        "smtpd_relay_restrictions = permit_mynetworks, reject",
        "bounce_queue_lifetime = 0",
        "maximal_queue_lifetime = 1h",
        "minimal_backoff_time = 1s",
        "maximal_backoff_time = 2s",
        "queue_run_delay = 1s",
        "",
    ])


def postfix(pf, *args):
    return subprocess.run(["postfix", "-c", pf + "/etc"] + list(args),
                          capture_output=True, text=True, timeout=60)


def body(gw):
    pf = gw.path("postfix")
    pf_port = free_port()
    os.chmod(gw.dir, 0o711)  # Postfix daemons run as user postfix
    for sub in ("etc", "spool", "data"):
        os.makedirs(os.path.join(pf, sub))
    shutil.chown(pf + "/data", "postfix")
    open(pf + "/etc/main.cf", "w").write(main_cf(pf, gw.port))
    open(pf + "/etc/master.cf", "w").write(master_cf(pf_port))
    gw.start_receiver()
    r = postfix(pf, "start")
    check(r.returncode == 0, "postfix start: %s%s" % (r.stdout, r.stderr))
    try:
        end = time.time() + 20
        rc, t = 1, ""
        while time.time() < end:
            rc, t = swaks(gw, "--to", ACCEPT, "--from", "alice@relay.test",
                          "--header", "Subject: via postfix", port=pf_port)
            if "250 2.0.0 Ok: queued as" in t:
                break
            time.sleep(0.5)
        check("250 2.0.0 Ok: queued as" in t, "Postfix took no mail:\n" + t)
        msgs = gw.wait_messages(ACCEPT, 1, timeout=60)
        log = gw.read(pf + "/maillog")
        check(len(msgs) == 1, "nothing arrived; Postfix log:\n" + log[-4000:])
        head = msgs[0].split(b"\n\n", 1)[0].decode()
        check("Subject: via postfix" in head, head)
        check(re.search(r"Received: from relay\.test \(\[127\.0\.0\.1\]\)\n"
                        r"\tby mx\.test \(tlsgate\) with ESMTPS id \S+\n"
                        r"\t\(using TLS1\.[23] with cipher \w+\)", head), head)
        check(re.search(r"Untrusted TLS connection established to "
                        r"127\.0\.0\.1\[127\.0\.0\.1\]:%d: TLSv1\.[23]" %
                        gw.port, log), "Postfix logs its TLS connection")
        check(re.search(r"status=sent", log), "Postfix logs status=sent")
    finally:
        r = postfix(pf, "stop")
        if r.returncode != 0:
            postfix(pf, "abort")


if __name__ == "__main__":
    if not postfix_available():
        print("SKIP: postfix not installed or not root")
        sys.exit(SKIP)
    sys.exit(run_main("postfix", body, sys.argv[1]))
