#!/usr/bin/env python3
"""Real TLS clients against tlsgate-smtpin: gnutls-cli and openssl
s_client (STARTTLS, then a scripted delivery), and session resumption with
a ticket across two receiver processes sharing the pool's ticket key.
argv: BINDIR CASE."""
import os
import queue
import re
import signal
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
    check(re.search(r"resumed=yes", gw.wait_logs(r"resumed=yes")),
          "resumption logged")
    third = free_port()
    gw.start_receiver("--tls-tickets", "no", port=third)
    sess, reused = starttls_python(ctx, third)
    sess, reused = starttls_python(ctx, third, sess)
    check(not reused, "no resumption with tls_tickets off")


def peer_cert(port):
    """The DER certificate the receiver shows after STARTTLS."""
    s = socket.create_connection(("127.0.0.1", port), 10)
    f = s.makefile("rb")
    for cmd in (None, b"EHLO client.test\r\n", b"STARTTLS\r\n"):
        if cmd:
            s.sendall(cmd)
        while f.readline()[3:4] == b"-":
            pass
    t = client_context().wrap_socket(s, server_hostname="mx.test")
    der = t.getpeercert(binary_form=True)
    t.close()
    return der


def new_cert(gw, cn):
    key, cert = gw.path("tls", "new.key"), gw.path("tls", "new.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "2",
                        "-subj", "/CN=" + cn], capture_output=True,
                       timeout=30)
    check(r.returncode == 0, "openssl req: %r" % r.stderr)
    return key, cert


def case_reload(gw):
    """SIGHUP re-reads the certificate; a broken one keeps the old."""
    p = gw.start_receiver()
    first = peer_cert(gw.port)
    key, cert = new_cert(gw, "reloaded.test")
    os.replace(key, gw.path("tls", "key.pem"))
    os.replace(cert, gw.path("tls", "cert.pem"))
    p.send_signal(signal.SIGHUP)
    gw.wait_log(p.log, "reload result=ok", p)
    second = peer_cert(gw.port)
    check(second != first, "new certificate served after SIGHUP")
    open(gw.path("tls", "cert.pem"), "w").write("garbage\n")
    p.send_signal(signal.SIGHUP)
    gw.wait_log(p.log, "reload result=failed", p)
    check(peer_cert(gw.port) == second, "old certificate kept")


def case_latency(gw):
    """No Nagle/delayed-ACK stalls: 100 round trips, plain and over TLS,
    well under the 4 s that 40 ms stalls would cost."""
    gw.start_receiver()
    s = socket.create_connection(("127.0.0.1", gw.port), 10)
    f = s.makefile("rb")

    def rtt(sock, rf, n):
        t0 = time.time()
        for _ in range(n):
            sock.sendall(b"NOOP\r\n")
            check(rf.readline().startswith(b"250"), "NOOP")
        return time.time() - t0

    f.readline()
    plain = rtt(s, f, 100)
    s.sendall(b"STARTTLS\r\n")
    f.readline()
    t = client_context().wrap_socket(s, server_hostname="mx.test")
    secure = rtt(t, t.makefile("rb"), 100)
    t.close()
    print("100 round trips: plain %.3fs, TLS %.3fs" % (plain, secure))
    check(plain < 2.0 and secure < 2.0, "round trips stall")


CASES = {n[5:]: f for n, f in globals().items() if n.startswith("case_")}

if __name__ == "__main__":
    sys.exit(run_main("tls-" + sys.argv[2], CASES[sys.argv[2]],
                      sys.argv[1]))
