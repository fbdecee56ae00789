"""Shared set-up of the inbound tests: a temporary state folder with a
policy store made by tlsgate-admin, a real tlsgate-engine, and one or more
real tlsgate-smtpin receivers on free loopback ports. Every process started
here dies with the test (PR_SET_PDEATHSIG) and is stopped in close(), which
also checks that each receiver exited 0 (ASan reports make that fail)."""
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
from testlib import Failure, check  # noqa: E402,F401
from testlib import die_with_parent as _die_with_parent  # noqa: E402,F401

SKIP = 77
PLATFORM = "mail.example.net"
# Mailboxes of the standard store, by role.
ACCEPT = "gm@acme." + PLATFORM
ACCEPT2 = "hr@acme." + PLATFORM
TLSREQ = "box@sec." + PLATFORM
ALLOW_REJECT = "x@al." + PLATFORM
ALLOW_DISCARD = "y@dc." + PLATFORM
UNKNOWN = "nobody@acme." + PLATFORM
TRUSTED_SENDER = "boss@trusted.example"


def stop_process(p, timeout):
    """SIGTERM, then SIGKILL after timeout; True when it stopped alone."""
    if p.poll() is not None:
        return True
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return False


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    """Engine + receivers on a fresh state folder."""

    def __init__(self, bindir, name):
        self.bindir = bindir
        for prog in ("tlsgate-engine", "tlsgate-smtpin", "tlsgate-admin"):
            if not os.access(os.path.join(bindir, prog), os.X_OK):
                print("SKIP: %s not built" % prog)
                sys.exit(SKIP)
        self.dir = tempfile.mkdtemp(prefix="tg-in-%s-" % name)
        self.env = dict(os.environ, TLSGATE_DB=self.path("policy"))
        self.env.pop("TLSGATE_FDS", None)
        self.engine = None
        self.receivers = []
        self.port = free_port()

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def admin(self, *args):
        r = subprocess.run([os.path.join(self.bindir, "tlsgate-admin")] +
                           list(args), env=self.env, capture_output=True,
                           text=True, timeout=30)
        check(r.returncode == 0, "tlsgate-admin %s: %s" %
              (" ".join(args), r.stderr))
        return r.stdout

    def standard_store(self):
        """acme (plain mailboxes), sec (TLS required), al (allow-list,
        reject), dc (allow-list, discard); trusted.example is trusted."""
        self.admin("init", "--platform-domain", PLATFORM)
        for t in ("acme", "sec", "al", "dc"):
            self.admin("tenant", "add", t)
        self.admin("inbound", "mailbox", "add", "acme", ACCEPT)
        self.admin("inbound", "mailbox", "add", "acme", ACCEPT2)
        self.admin("inbound", "mailbox", "add", "sec", TLSREQ)
        self.admin("inbound", "tls", "sec", "require")
        self.admin("inbound", "mailbox", "add", "al", ALLOW_REJECT)
        self.admin("inbound", "allowlist", "al", "on")
        self.admin("inbound", "trust", "al", "trusted.example")
        self.admin("inbound", "mailbox", "add", "dc", ALLOW_DISCARD)
        self.admin("inbound", "allowlist", "dc", "on", "--action", "discard")

    def _spawn(self, argv, log):
        out = open(log, "ab")
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                env=self.env, preexec_fn=_die_with_parent)

    def common_flags(self):
        return ["--state-dir", self.dir, "--hostname", "mx.test",
                "--log-level", "debug"]

    def start_engine(self):
        self.engine = self._spawn(
            [os.path.join(self.bindir, "tlsgate-engine")] +
            self.common_flags(), self.path("engine.log"))
        self.wait_log(self.path("engine.log"), "started", self.engine)

    def stop_engine(self, graceful=False):
        if self.engine and self.engine.poll() is None:
            if graceful:
                self.engine.send_signal(signal.SIGTERM)
            else:
                self.engine.kill()
            self.engine.wait(20)

    def start_receiver(self, *flags, port=None):
        """Starts one receiver; returns its Popen. Extra flags win."""
        n = len(self.receivers)
        log = self.path("smtpin%d.log" % n)
        argv = ([os.path.join(self.bindir, "tlsgate-smtpin")] +
                self.common_flags() +
                ["--inbound-listen", "127.0.0.1:%d" % (port or self.port)] +
                list(flags))
        p = self._spawn(argv, log)
        p.log = log
        self.receivers.append(p)
        self.wait_log(log, "smtpin started", p)
        return p

    def wait_log(self, log, text, proc, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            if os.path.exists(log) and text in open(log, errors="replace"
                                                     ).read():
                return
            if proc.poll() is not None:
                raise Failure("%s exited %s:\n%s" % (
                    proc.args[0], proc.returncode, self.read(log)))
            time.sleep(0.05)
        raise Failure("no %r in %s" % (text, log))

    def read(self, log):
        try:
            return open(log, errors="replace").read()
        except OSError:
            return ""

    def logs(self):
        return "".join(self.read(p.log) for p in self.receivers)

    def wait_logs(self, pattern, timeout=10):
        """The receivers' logs once pattern (a regex) appears in them: a
        session's last line is written after the client has gone."""
        end = time.time() + timeout
        while time.time() < end:
            text = self.logs()
            if re.search(pattern, text):
                return text
            time.sleep(0.05)
        return self.logs()

    def maildir(self, address, sub="new"):
        local, dom = address.split("@")
        tenant = dom.split(".")[0]
        return sorted(glob.glob(self.path("mail", tenant, local, sub, "*")))

    def messages(self, address):
        return [open(f, "rb").read() for f in self.maildir(address)]

    def wait_messages(self, address, n, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            if len(self.maildir(address)) >= n:
                return self.messages(address)
            time.sleep(0.05)
        return self.messages(address)

    def stop_receivers(self):
        """SIGTERM each live receiver; it must exit 0 within its grace."""
        bad = []
        for p in self.receivers:
            if not stop_process(p, 30):
                bad.append("%s did not stop" % p.pid)
            elif p.returncode != 0:
                bad.append("receiver %d exited %d" % (p.pid, p.returncode))
            if "AddressSanitizer" in self.read(p.log) or \
                    "runtime error:" in self.read(p.log):
                bad.append("sanitizer report in %s" % p.log)
        return bad

    def close(self, ok):
        bad = self.stop_receivers()
        self.stop_engine()
        if bad or not ok:
            sys.stderr.write(self.logs()[-6000:])
        if not os.environ.get("TLSGATE_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        if bad:
            raise Failure("; ".join(bad))


def swaks(gw, *args, port=None, timeout=60):
    """Runs swaks against the receiver; returns (exit code, transcript)."""
    r = subprocess.run(["swaks", "--server", "127.0.0.1",
                        "--port", str(port or gw.port),
                        "--helo", "client.test", "--timeout", "20"] +
                       list(args), capture_output=True, text=True,
                       timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def run_main(name, body, bindir, store=True, engine=True):
    """Runs body(gw) with a fresh gateway; exit status 0, 1 or SKIP."""
    gw = Gateway(bindir, name)
    ok = False
    try:
        if store:
            gw.standard_store()
        if engine:
            gw.start_engine()
        body(gw)
        ok = True
    except Failure as e:
        print("FAIL: %s" % e)
    finally:
        try:
            gw.close(ok)
        except Failure as e:
            print("FAIL at stop: %s" % e)
            ok = False
    return 0 if ok else 1
