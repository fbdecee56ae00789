#!/usr/bin/env python3
"""Dialogues with the submission listener of tlsgate-smtpout, mirroring
inbound's tests/inbound/dialogues: SMTP smuggling (a bare CR or LF in the
data: \\n.\\n, \\r.\\n, \\n.\\r\\n, \\r.\\r\\n, a bare CR inside a line) and data
sent before the 354 get 554 5.5.x and the connection is closed, with
nothing queued (the smuggled second message is as another tenant); an
overlong command line gets 500 5.5.2 and the session goes on; a clean
message in the same run is queued, so the check can see a queued message.

usage: test_submit_smuggle.py BINDIR
"""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from outlib import Env, Failure, check, wait_for  # noqa: E402

ENV_FROM = b"MAIL FROM:<app@acme.mail.example.net>\r\n"
SMUGGLED = (b"MAIL FROM:<app@beta.mail.example.net>\r\n"
            b"RCPT TO:<victim@dest.test>\r\nDATA\r\n"
            b"Subject: smuggled\r\n\r\nx\r\n.\r\n")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dialogue:
    """One raw SMTP session: send bytes, expect reply lines, expect close."""

    def __init__(self, port):
        def try_connect():
            try:
                return socket.create_connection(("127.0.0.1", port), 5)
            except OSError:
                return None
        self.sock = wait_for(try_connect, 15, "submission listener")
        self.sock.settimeout(10)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Failure("connection closed, buffered %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("latin-1")

    def expect(self, prefix, what):
        """Reads one reply (multi-line: up to its last line)."""
        while True:
            line = self.line()
            if len(line) < 4 or line[3] != "-":
                break
        check(line.startswith(prefix), "%s: got %r, want %r" %
              (what, line, prefix))
        return line

    def expect_close(self, what):
        try:
            rest = self.buf + self.sock.recv(65536)
        except (ConnectionResetError, socket.timeout) as e:
            rest = b"" if isinstance(e, ConnectionResetError) else b"timeout"
        check(rest == b"", "%s: connection not closed, got %r" %
              (what, rest))

    def close(self):
        self.sock.close()


def open_session(port, rcpt=b"a@dest.test"):
    d = Dialogue(port)
    d.expect("220", "banner")
    d.send(b"EHLO app.test\r\n")
    d.expect("250", "EHLO")
    d.send(ENV_FROM)
    d.expect("250 2.1.0", "MAIL")
    d.send(b"RCPT TO:<" + rcpt + b">\r\n")
    d.expect("250 2.1.5", "RCPT")
    return d


def smuggle_case(port, name, body):
    d = open_session(port)
    d.send(b"DATA\r\n")
    d.expect("354", name + " DATA")
    d.send(b"Subject: first\r\n\r\n" + body)
    d.expect("554 5.5.2", name)
    d.expect_close(name)
    d.close()


def data_before_354(port):
    d = Dialogue(port)
    d.expect("220", "banner")
    d.send(b"EHLO app.test\r\n")
    d.expect("250", "EHLO")
    d.send(ENV_FROM + b"RCPT TO:<a@dest.test>\r\nDATA\r\n"
           b"Subject: early\r\n\r\nx\r\n.\r\n")
    d.expect("250 2.1.0", "pipelined MAIL")
    d.expect("250 2.1.5", "pipelined RCPT")
    d.expect("554 5.5.0", "data before 354")
    d.expect_close("data before 354")
    d.close()


def overlong_line(port):
    d = Dialogue(port)
    d.expect("220", "banner")
    d.send(b"EHLO app.test\r\n")
    d.expect("250", "EHLO")
    d.send(b"NOOP " + b"A" * 70000 + b"\r\n")
    d.expect("500 5.5.2", "70,000-byte line")
    d.send(b"NOOP\r\n")
    d.expect("250", "NOOP after the overlong line (session kept)")
    d.send(b"QUIT\r\n")
    d.expect("221", "QUIT")
    d.close()


def clean_message(port):
    d = open_session(port, b"clean@dest.test")
    d.send(b"DATA\r\n")
    d.expect("354", "clean DATA")
    d.send(b"Subject: clean\r\n\r\n..dot\r\nbody\r\n.\r\n")
    d.expect("250 2.0.0", "clean message")
    d.send(b"QUIT\r\n")
    d.expect("221", "QUIT")
    d.close()


def main():
    env = Env(sys.argv[1], "smuggle")
    ok = False
    try:
        env.init_store(("acme", "beta"))
        # dest.test routes to a closed port: a queued message stays in the
        # queue (deferred), so the queue shows what was accepted.
        env.admin("route", "add", "dest.test", "127.0.0.1:%d" % free_port())
        env.start_engine()
        port = free_port()
        sender = env.start_sender(submission="127.0.0.1:%d" % port)
        cases = [
            ("lf_dot_lf", b"body\n.\n" + SMUGGLED),
            ("cr_dot_lf", b"body\r.\n" + SMUGGLED),
            ("lf_dot_crlf", b"body\n.\r\n" + SMUGGLED),
            ("cr_dot_crlf", b"body\r.\r\n" + SMUGGLED),
            ("bare_cr_line", b"body\rmore\r\n.\r\n" + SMUGGLED),
            ("bare_lf_line", b"body\nmore\r\n.\r\n" + SMUGGLED),
        ]
        for name, body in cases:
            smuggle_case(port, name, body)
        data_before_354(port)
        overlong_line(port)
        time.sleep(0.5)
        queued = env.log_lines("source=submission")
        check(queued == [] and env.queue_ids() == [],
              "refused dialogues queued something: %r %r" %
              (queued, env.queue_ids()))
        check(len(env.log_lines("bare_cr_lf")) == len(cases),
              "bare_cr_lf log lines")
        check(env.log_lines("data_before_354"), "data_before_354 log line")

        clean_message(port)
        wait_for(lambda: env.log_lines("source=submission"), 10,
                 "the clean message queued")
        check(len(env.queue_ids()) == 1, "queue: %r" % env.queue_ids())
        env.stop_sender(sender)
        ok = True
        print("ok")
    except (Failure, OSError) as e:
        print("FAIL:", e)
        print(env.log()[-3000:])
    finally:
        env.close(keep=not ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
