#!/usr/bin/env python3
"""Real TLS clients against tlsgate-smtpin: gnutls-cli and openssl
s_client (STARTTLS, then a scripted delivery), and session resumption with
a ticket across two receiver processes sharing the pool's ticket key.
argv: BINDIR CASE."""
import queue
import re
import socket
import ssl
import subprocess
import sys
import threading
import time

from inbound_lib import ACCEPT, check, free_port, run_main

SENDER = "alice@sender.example"


class Client:
    """A command-line TLS client driven line by line."""

    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.p.stdout:
            self.lines.put(raw.decode("latin-1").rstrip("\r\n"))
        self.lines.put(None)

    def wait_for(self, pattern, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            try:
                line = self.lines.get(timeout=end - time.time())
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if re.match(pattern, line):
                return line
        raise AssertionError("no %r in output:\n%s" %
                             (pattern, "\n".join(self.seen[-40:])))

    def send(self, text):
        self.p.stdin.write(text.encode() + b"\r\n")
        self.p.stdin.flush()

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def deliver(c, subject):
    """EHLO again after TLS, then one message, each reply awaited."""
    steps = [("EHLO client.test", r"^250 "),
             ("MAIL FROM:<%s>" % SENDER, r"^250 2\.1\.0"),
             ("RCPT TO:<%s>" % ACCEPT, r"^250 2\.1\.5"),
             ("DATA", r"^354"),
             ("Subject: %s\r\n\r\nbody\r\n." % subject, r"^250 2\.0\.0 Ok"),
             ("QUIT", r"^221")]
    for cmd, reply in steps:
        c.send(cmd)
        try:
            c.wait_for(reply)
        except AssertionError as e:
            check(False, "%s: %s" % (cmd.split("\r")[0], e))


def stored_tls(gw, subject, protocol):
    for m in gw.wait_messages(ACCEPT, 1):
        if ("Subject: %s" % subject).encode() in m:
            head = m.split(b"\n\n", 1)[0].decode()
            check(re.search(r"\(using %s with cipher \w+\)" %
                            re.escape(protocol), head), head)
            return
    check(False, "message %r not stored" % subject)


def gnutls(gw, prio, subject):
    c = Client(["gnutls-cli", "--starttls-proto=smtp", "--insecure",
                "--priority", prio, "--port", str(gw.port), "127.0.0.1"])
    try:
        c.wait_for(r"^- Handshake was completed")
        deliver(c, subject)
    finally:
        c.close()


def case_gnutls_cli(gw):
    gw.start_receiver()
    gnutls(gw, "NORMAL", "gnutls13")
    stored_tls(gw, "gnutls13", "TLS1.3")
    gnutls(gw, "NORMAL:-VERS-ALL:+VERS-TLS1.2", "gnutls12")
    stored_tls(gw, "gnutls12", "TLS1.2")
    r = subprocess.run(["gnutls-cli", "--starttls-proto=smtp", "--insecure",
                        "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.1",
                        "--port", str(gw.port), "127.0.0.1"],
                       input=b"", capture_output=True, timeout=30)
    check(b"Handshake was completed" not in r.stdout,
          "TLS 1.1 must be refused")


def case_openssl(gw):
    gw.start_receiver()
    c = Client(["openssl", "s_client", "-starttls", "smtp", "-connect",
                "127.0.0.1:%d" % gw.port, "-quiet", "-nocommands",
                "-name", "client.test"])
    try:
        # s_client sends its own EHLO and STARTTLS; -quiet prints no
        # banner, so the first thing we see is our EHLO's reply.
        time.sleep(0.5)
        deliver(c, "openssl")
    finally:
        c.close()
    stored_tls(gw, "openssl", "TLS1.3")


def client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def starttls_python(ctx, port, session=None):
    s = socket.create_connection(("127.0.0.1", port), 10)
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline()
            check(line, "closed")
            if line[3:4] != b"-":
                return line

    reply()
    s.sendall(b"EHLO client.test\r\n")
    reply()
    s.sendall(b"STARTTLS\r\n")
    check(reply().startswith(b"220"), "STARTTLS refused")
    t = ctx.wrap_socket(s, server_hostname="mx.test", session=session)
    tf = t.makefile("rb")
    t.sendall(b"EHLO client.test\r\n")
    while tf.readline()[3:4] == b"-":
        pass
    t.sendall(b"QUIT\r\n")
    tf.readline()
    sess, reused = t.session, t.session_reused
    t.close()
    return sess, reused


def case_resume(gw):
    other = free_port()
    gw.start_receiver()
    gw.start_receiver(port=other)
    ctx = client_context()
    sess, reused = starttls_python(ctx, gw.port)
    check(not reused, "first session is new")
    sess, reused = starttls_python(ctx, other, sess)
    check(reused, "a ticket from one receiver resumes on another")
    check(re.search(r"resumed=yes", gw.logs()), "resumption logged")


CASES = {n[5:]: f for n, f in globals().items() if n.startswith("case_")}

if __name__ == "__main__":
    sys.exit(run_main("tls-" + sys.argv[2], CASES[sys.argv[2]],
                      sys.argv[1]))
