#!/usr/bin/env python3
"""A scriptable SMTP peer for the outbound tests: a sink, and a hostile
server. It records every line it receives, marked PLAIN or TLS, and every
message it accepts, to a record file the tests assert on.

Modes (--mode):
  normal          STARTTLS offered when --cert is given; accepts mail
  no-starttls     STARTTLS never offered (and refused if sent anyway)
  refuse-454 / refuse-502 / refuse-500 / refuse-421
                  STARTTLS offered, refused with that code (421 closes)
  tls-then-plain  220 to STARTTLS, then plaintext instead of a handshake
  tls-then-close  220 to STARTTLS, then the connection is closed
  extra-after-220 220 to STARTTLS followed by extra reply lines, then TLS
  cut-data        accepts DATA, closes the connection in the middle of it
  tempfail-rcpt   answers 451 4.2.0 to every RCPT
  slow            as normal, but waits 50 ms before its 250 to the data
"""
import argparse
import os
import socket
import socketserver
import ssl
import sys
import threading
import time

LOCK = threading.Lock()


def record(path, line):
    with LOCK:
        with open(path, "a") as f:
            f.write(line + "\n")


class Session:
    seq = 0
    saved = 0

    def __init__(self, handler, args):
        with LOCK:
            Session.seq += 1
            self.cid = "#c%d" % Session.seq
        self.h = handler
        self.args = args
        self.sock = handler.request
        self.tls = False
        self.buf = b""

    def send(self, text):
        self.sock.sendall(text.encode() + b"\r\n")

    def readline(self):
        while b"\n" not in self.buf:
            try:
                data = self.sock.recv(65536)
            except (OSError, ssl.SSLError):
                return None
            if not data:
                return None
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("latin-1")

    def mark(self):
        return "TLS" if self.tls else "PLAIN"

    def ehlo_reply(self):
        lines = ["peer.test", "PIPELINING", "SIZE 10240000", "8BITMIME"]
        if self.args.cert and not self.tls and self.args.mode != "no-starttls":
            lines.append("STARTTLS")
        out = []
        for i, l in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            out.append("250" + sep + l)
        self.send("\r\n".join(out))

    def starttls(self):
        mode = self.args.mode
        if self.tls or not self.args.cert or mode == "no-starttls":
            self.send("502 5.5.1 no STARTTLS here")
            return True
        if mode.startswith("refuse-"):
            code = mode.split("-")[1]
            self.send(code + " 4.7.0 TLS not available now"
                      if code in ("454", "421") else code + " 5.5.1 no TLS")
            return code != "421"
        if mode == "tls-then-close":
            self.send("220 2.0.0 go ahead")
            return False
        if mode == "tls-then-plain":
            self.send("220 2.0.0 go ahead")
            self.send("250 2.0.0 this is not TLS at all")
            return self.drain_plain()
        if mode == "extra-after-220":
            self.send("220 2.0.0 go ahead\r\n250 2.0.0 injected reply")
        else:
            self.send("220 2.0.0 go ahead")
        return self.wrap()

    def drain_plain(self):
        # Keep recording whatever arrives (it must be a ClientHello, never
        # a command) until the client gives up.
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return False
            if not data:
                return False
            if data[:1] != b"\x16":
                record(self.args.record, "PLAIN-AFTER-STARTTLS " +
                       data[:80].decode("latin-1"))

    def wrap(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.args.cert, self.args.key)
        self.buf = b""
        try:
            self.sock = ctx.wrap_socket(self.sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            record(self.args.record, "TLS-FAILED " + str(e)[:100])
            return False
        self.tls = True
        record(self.args.record, "TLS-UP " + str(self.sock.version()))
        return True

    def data(self):
        self.send("354 go ahead")
        lines = []
        n = 0
        while True:
            line = self.readline()
            if line is None:
                return False
            n += 1
            if self.args.mode == "cut-data" and n == 3:
                record(self.args.record, self.mark() + " DATA-CUT")
                return False
            if line == ".":
                break
            lines.append(line[1:] if line.startswith(".") else line)
        msgid = "-"
        for l in lines:
            if l.lower().startswith("message-id:"):
                msgid = l.split(":", 1)[1].strip()
                break
            if l == "":
                break
        if self.args.save_dir:
            with LOCK:
                Session.saved += 1
                n = Session.saved
            with open(os.path.join(self.args.save_dir, "%d.eml" % n),
                      "w") as f:
                f.write("\n".join(lines) + "\n")
        record(self.args.record, "MSG %s tls=%d lines=%d %s" %
               (msgid, int(self.tls), len(lines), self.cid))
        if self.args.mode == "slow":
            time.sleep(0.05)
        self.send("250 2.0.0 Ok: queued")
        return True

    def run(self):
        self.send("220 peer.test ESMTP test peer")
        while True:
            line = self.readline()
            if line is None:
                return
            record(self.args.record, self.mark() + " " + line + " " + self.cid)
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.ehlo_reply() if verb == "EHLO" else self.send("250 hi")
            elif verb == "STARTTLS":
                if not self.starttls():
                    return
            elif verb == "MAIL":
                self.send("250 2.1.0 Ok")
            elif verb == "RCPT":
                if self.args.mode == "tempfail-rcpt":
                    self.send("451 4.2.0 try later")
                else:
                    self.send("250 2.1.5 Ok")
            elif verb == "DATA":
                if not self.data():
                    return
            elif verb in ("RSET", "NOOP"):
                self.send("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.send("221 2.0.0 Bye")
                return
            else:
                self.send("500 5.5.1 unknown")


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            Session(self, self.server.args).run()
        except (OSError, ssl.SSLError):
            pass


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--record", required=True)
    p.add_argument("--mode", default="normal")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--save-dir", help="write each message to N.eml here")
    p.add_argument("--port", type=int, default=0, help="0: any free port")
    args = p.parse_args()
    srv = Server(("127.0.0.1", args.port), Handler)
    srv.args = args
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
