#!/usr/bin/env python3
"""The submission listener of tlsgate-smtpout, driven with smtplib: the
tenant is found from the envelope sender (unknown: 550 5.7.1), limits
(452 4.5.3, 552 5.3.4), a message without From gets the tenant's From,
250 names the queue id and the message reaches the next hop; with the
engine stopped, MAIL gets 451 4.3.0.

usage: test_submit.py BINDIR
"""
import os
import smtplib
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from outlib import Env, Failure, Peer, check, wait_for  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(port):
    def try_connect():
        try:
            return smtplib.SMTP("127.0.0.1", port, timeout=10)
        except OSError:
            return None
    s = wait_for(try_connect, 15, "submission listener")
    s.ehlo("app.test")
    return s


def expect(reply, code, enhanced, what):
    check(reply[0] == code and reply[1].decode().startswith(enhanced),
          "%s: got %r, want %d %s" % (what, reply, code, enhanced))


def main():
    env = Env(sys.argv[1], "submit")
    ok = False
    try:
        env.init_store()
        sink = Peer(env, "sink", "normal", save=True)
        env.admin("route", "add", "dest.test", "127.0.0.1:%d" % sink.port)
        env.start_engine()
        port = free_port()
        sender = env.start_sender(
            ["--max-recipients", "2", "--max-message-size", "2k"],
            submission="127.0.0.1:%d" % port)
        s = connect(port)

        expect(s.docmd("MAIL FROM:<someone@elsewhere.example>"), 550,
               "5.7.1", "unknown sender")
        expect(s.docmd("RCPT TO:<a@dest.test>"), 503, "5.5.1",
               "RCPT without MAIL")
        expect(s.docmd("MAIL FROM:<app@acme.mail.example.net>"), 250,
               "2.1.0", "tenant sender")
        expect(s.docmd("RCPT TO:<a@dest.test>"), 250, "2.1.5", "rcpt 1")
        expect(s.docmd("RCPT TO:<b@dest.test>"), 250, "2.1.5", "rcpt 2")
        expect(s.docmd("RCPT TO:<c@dest.test>"), 452, "4.5.3", "rcpt 3")
        code, text = s.data(b"Subject: via submission\r\n\r\n.leading dot\r\n"
                            b"body\r\n")
        check(code == 250 and b"queued as" in text, "DATA: %r" % text)

        expect(s.docmd("MAIL FROM:<app@acme.mail.example.net>"), 250,
               "2.1.0", "second transaction")
        expect(s.docmd("RCPT TO:<a@dest.test>"), 250, "2.1.5", "rcpt")
        code, text = s.data(b"Subject: big\r\n\r\n" + (b"x" * 68 + b"\r\n") * 40)
        check(code == 552 and text.startswith(b"5.3.4"),
              "too large: %d %r" % (code, text))
        s.quit()

        wait_for(lambda: sink.messages(), 20, "delivery of the submission")
        m = sink.saved()[0]
        check("From: noreply@acme.mail.example.net" in m,
              "tenant From not added:\n" + m)
        check("Received: from localhost by out.test" in m, "Received")
        check("\n.leading dot\n" in m, "dot-stuffing lost a dot:\n" + m)
        wait_for(lambda: len(env.log_lines("status=sent")) >= 2, 20,
                 "both recipients sent")

        env.engine.terminate()
        env.engine.wait()
        s = connect(port)
        expect(s.docmd("MAIL FROM:<app@acme.mail.example.net>"), 451,
               "4.3.0", "engine down")
        s.quit()

        # Outbound with the engine down: deferred, never sent.
        rc, err = env.sendmail(["-T", "acme", "-i", "late@dest.test"],
                               "Subject: late\n\nx\n")
        check(rc == 0, err)
        wait_for(lambda: [l for l in env.log_lines("to=<late@dest.test>")
                          if "status=deferred" in l and
                          "reply=451\\x204.3.0" in l], 20,
                 "deferral while the engine is down")
        check(len(sink.messages()) == 1, "sent while the engine was down")
        env.stop_sender(sender)
        ok = True
        print("ok")
    except (Failure, smtplib.SMTPException, OSError) as e:
        print("FAIL:", e)
        print(env.log()[-3000:])
    finally:
        env.close(keep=not ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
