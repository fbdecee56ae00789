#!/usr/bin/env python3
"""Runs one dialogue file (tests/inbound/dialogues/*.txt) against a real
tlsgate-smtpin + tlsgate-engine. argv: BINDIR FILE.

A dialogue shows the bytes a client sends and the replies it must get:

  # comment
  @flags --data-timeout 1        receiver flags (first lines only)
  >EHLO x\\r\\n                   send (Python escapes; {x*2000} repeats x)
  <250 2.1.5                     next reply's last line starts with this
  <close                         the server closes the connection
  !tls                           TLS handshake (python ssl, no verify)
  !trickle MAIL FROM:<a@b>\\r\\n   send one byte at a time
  !sleep 1.5                     wait
  !quiet 0.5                     no reply within 0.5 s
  !has 250-SIZE 2048             the last reply (all lines) contains this
  !lacks STARTTLS                the last reply does not contain this
  !conn 2                        switch to connection 2 (opened at need)
  !hangup                        the client closes this connection
  !stored ADDRESS N              N messages in the mailbox's new/
  !tmp-empty ADDRESS             nothing left in its tmp/
  !contains ADDRESS TEXT         its newest message contains TEXT
  !log REGEX                     the receiver's log matches
  !rss-mark / !rss-growth KB     receiver memory grew by less than KB
  !sigterm                       send SIGTERM to the receiver
  !exited                        the receiver exited 0 (after !sigterm)
"""
import codecs
import os
import re
import signal
import socket
import ssl
import sys
import time

from inbound_lib import Failure, check, run_main

TIMEOUT = 10.0


def unescape(text):
    text = re.sub(r"\{(.)\*(\d+)\}", lambda m: m.group(1) * int(m.group(2)),
                  text)
    return codecs.decode(text, "unicode_escape").encode("latin-1")


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), TIMEOUT)
        self.buf = b""
        self.last = ""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def reply(self, timeout=TIMEOUT):
        """One whole reply (all its lines); returns its last line."""
        lines = []
        end = time.time() + timeout
        while True:
            while b"\n" not in self.buf:
                left = end - time.time()
                if left <= 0:
                    raise Failure("no reply within %.1fs" % timeout)
                self._fill(left)
            line, self.buf = self.buf.split(b"\n", 1)
            line = line.rstrip(b"\r").decode("latin-1")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                self.last = "\n".join(lines)
                return line

    def closed(self, timeout=TIMEOUT):
        """True when the server closes before sending anything else."""
        try:
            if self.buf:
                return False
            self._fill(timeout)
            return False
        except (EOFError, ConnectionResetError):
            return True
        except socket.timeout:
            return False

    def quiet(self, secs):
        try:
            if self.buf:
                return False
            self._fill(secs)
            return False
        except socket.timeout:
            return True
        except (EOFError, ConnectionResetError):
            return False

    def starttls(self):
        check(self.buf == b"", "server sent bytes after 220: %r" % self.buf)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock.settimeout(TIMEOUT)
        self.sock = ctx.wrap_socket(self.sock, server_hostname="mx.test")


class Runner:
    def __init__(self, gw, steps):
        self.gw = gw
        self.steps = steps
        self.conns = {}
        self.cur = 1
        self.rss0 = 0

    def conn(self):
        if self.cur not in self.conns:
            self.conns[self.cur] = Conn(self.gw.port)
        return self.conns[self.cur]

    def rss(self):
        pid = self.gw.receivers[0].pid
        for line in open("/proc/%d/status" % pid):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def expect(self, want, lineno):
        c = self.conn()
        if want == "close":
            check(c.closed(), "line %d: connection not closed (buffer %r)"
                  % (lineno, c.buf[:200]))
            return
        try:
            got = c.reply()
        except (EOFError, ConnectionResetError):
            raise Failure("line %d: closed, wanted %r" % (lineno, want))
        check(got.startswith(want), "line %d: wanted %r, got %r" %
              (lineno, want, got))

    def mailbox_check(self, cmd, arg):
        parts = arg.split(None, 1)
        if cmd == "stored":
            n = len(self.gw.maildir(parts[0]))
            check(n == int(parts[1]), "%s has %d messages, wanted %s" %
                  (parts[0], n, parts[1]))
        elif cmd == "tmp-empty":
            check(self.gw.maildir(parts[0], "tmp") == [], "tmp/ not empty")
        elif cmd == "contains":
            msgs = self.gw.messages(parts[0])
            check(msgs and unescape(parts[1]) in msgs[-1],
                  "%r not in %r" % (parts[1], msgs[-1:]))

    def action(self, cmd, arg):
        c = None if cmd in ("conn", "sleep", "log", "sigterm", "exited",
                            "stored", "tmp-empty", "contains", "rss-mark",
                            "rss-growth") else self.conn()
        if cmd == "tls":
            c.starttls()
        elif cmd == "trickle":
            for b in unescape(arg):
                c.send(bytes([b]))
                time.sleep(0.005)
        elif cmd == "sleep":
            time.sleep(float(arg))
        elif cmd == "quiet":
            check(c.quiet(float(arg)), "a reply came: %r" % c.buf[:200])
        elif cmd == "has":
            check(arg in c.last, "%r not in reply %r" % (arg, c.last))
        elif cmd == "lacks":
            check(arg not in c.last, "%r in reply %r" % (arg, c.last))
        elif cmd == "conn":
            self.cur = int(arg)
        elif cmd == "hangup":
            c.sock.close()
            del self.conns[self.cur]
        elif cmd == "log":
            time.sleep(0.2)
            check(re.search(arg, self.gw.wait_logs(arg)), "log lacks %r" % arg)
        elif cmd == "rss-mark":
            self.rss0 = self.rss()
        elif cmd == "rss-growth":
            grew = self.rss() - self.rss0
            check(grew < int(arg), "memory grew by %d kB" % grew)
        elif cmd == "sigterm":
            self.gw.receivers[0].send_signal(signal.SIGTERM)
        elif cmd == "exited":
            p = self.gw.receivers[0]
            p.wait(20)
            check(p.returncode == 0, "receiver exit %s" % p.returncode)
        else:
            self.mailbox_check(cmd, arg)

    def run(self):
        for lineno, kind, text in self.steps:
            if kind == ">":
                self.conn().send(unescape(text))
            elif kind == "<":
                self.expect(text, lineno)
            else:
                cmd, _, arg = text.partition(" ")
                self.action(cmd, arg)


def parse(path):
    flags, steps = [], []
    for lineno, raw in enumerate(open(path, encoding="utf-8"), 1):
        line = raw.rstrip("\n")
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("@flags "):
            flags += line[7:].split()
        elif line[0] in "<>!":
            steps.append((lineno, line[0], line[1:]))
        else:
            raise SystemExit("%s:%d: bad line" % (path, lineno))
    return flags, steps


def main():
    bindir, path = sys.argv[1], sys.argv[2]
    flags, steps = parse(path)

    def body(gw):
        gw.start_receiver(*flags)
        Runner(gw, steps).run()

    name = os.path.basename(path)[:-4]
    return run_main("dlg-" + name, body, bindir)


if __name__ == "__main__":
    sys.exit(main())
