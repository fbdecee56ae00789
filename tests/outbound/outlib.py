"""Shared set-up of the outbound tests: a temporary state folder, a policy
store made by tlsgate-admin, a real tlsgate-engine, tlsgate-smtpout senders
and scriptable SMTP peers (smtp_peer.py) on free loopback ports. Every
process started here dies with the test (PR_SET_PDEATHSIG) and is stopped
in close(); a sender must exit 0 on SIGTERM (ASan reports make it fail)."""
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
from testlib import Failure, check  # noqa: E402,F401
from testlib import die_with_parent as _die_with_parent  # noqa: E402,F401

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
PLATFORM = "mail.example.net"


def wait_for(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise Failure("timed out waiting for " + what)


class Peer:
    """One smtp_peer.py server; record lines are read with lines()."""

    def __init__(self, env, name, mode="normal", cert=None, save=False,
                 port=0):
        self.record = env.path("peer-%s.rec" % name)
        portfile = env.path("peer-%s.port" % name)
        args = [sys.executable, os.path.join(HERE, "smtp_peer.py"),
                "--port-file", portfile, "--record", self.record,
                "--mode", mode, "--port", str(port)]
        if cert:
            args += ["--cert", cert[0], "--key", cert[1]]
        self.save_dir = None
        if save:
            self.save_dir = env.path("peer-%s-mail" % name)
            os.mkdir(self.save_dir)
            args += ["--save-dir", self.save_dir]
        self.proc = subprocess.Popen(args, preexec_fn=_die_with_parent)
        env.procs.append(self.proc)
        wait_for(lambda: os.path.exists(portfile), 10, "peer port")
        with open(portfile) as f:
            self.port = int(f.read())

    def lines(self):
        try:
            with open(self.record) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def saved(self):
        out = []
        for n in sorted(os.listdir(self.save_dir)):
            with open(os.path.join(self.save_dir, n)) as f:
                out.append(f.read())
        return out

    def messages(self):
        return [l for l in self.lines() if l.startswith("MSG ")]


class Env:
    def __init__(self, bindir, name):
        self.bindir = bindir
        for prog in ("tlsgate-engine", "tlsgate-smtpout", "tlsgate-admin",
                     "tlsgate-sendmail"):
            if not os.access(os.path.join(bindir, prog), os.X_OK):
                print("SKIP: %s not built" % prog)
                sys.exit(SKIP)
        self.dir = tempfile.mkdtemp(prefix="tg-out-%s-" % name)
        self.env = dict(os.environ, TLSGATE_DB=self.path("policy"))
        self.env.pop("TLSGATE_FDS", None)
        self.procs = []
        self.senders = []
        self.engine = None
        self.logn = 0

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def bin(self, prog):
        return os.path.join(self.bindir, prog)

    def admin(self, *args):
        r = subprocess.run([self.bin("tlsgate-admin")] + list(args),
                           env=self.env, capture_output=True, text=True,
                           timeout=30)
        check(r.returncode == 0, "tlsgate-admin %s: %s" %
              (" ".join(args), r.stderr))
        return r.stdout

    def init_store(self, tenants=("acme",)):
        self.admin("init", "--platform-domain", PLATFORM)
        for t in tenants:
            self.admin("tenant", "add", t)

    def start_engine(self):
        log = open(self.path("engine.log"), "a")
        self.engine = subprocess.Popen(
            [self.bin("tlsgate-engine"), "--state-dir", self.dir],
            env=self.env, stdout=log, stderr=log,
            preexec_fn=_die_with_parent)
        self.procs.append(self.engine)
        wait_for(lambda: os.path.exists(self.path("engine.sock")), 15,
                 "engine socket")

    def flags(self, extra=()):
        return ["--state-dir", self.dir, "--hostname", "out.test",
                "--retry-min", "1", "--retry-max", "2",
                "--connect-timeout", "5", "--command-timeout", "10",
                "--handshake-timeout", "5", "--log-level", "debug"] + \
            list(extra)

    def start_sender(self, extra=(), submission=""):
        self.logn += 1
        logpath = self.path("smtpout-%d.log" % self.logn)
        log = open(logpath, "a")
        p = subprocess.Popen(
            [self.bin("tlsgate-smtpout")] +
            self.flags(["--submission-listen", submission] + list(extra)),
            env=self.env, stdout=log, stderr=log,
            preexec_fn=_die_with_parent)
        p.logpath = logpath
        self.procs.append(p)
        self.senders.append(p)
        return p

    def stop_sender(self, p, expect_ok=True):
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = "timeout"
        if expect_ok:
            check(rc == 0, "tlsgate-smtpout exited %s (log %s):\n%s" %
                  (rc, p.logpath, open(p.logpath).read()[-3000:]))

    def sendmail(self, args, text, extra=()):
        r = subprocess.run([self.bin("tlsgate-sendmail"), "--state-dir",
                            self.dir] + list(extra) + list(args),
                           input=text.encode(), env=self.env,
                           capture_output=True, timeout=30)
        return r.returncode, r.stderr.decode()

    def log(self):
        out = ""
        for p in glob.glob(self.path("smtpout-*.log")):
            with open(p) as f:
                out += f.read()
        return out

    def log_lines(self, word):
        return [l for l in self.log().splitlines() if word in l]

    def queue_ids(self):
        try:
            return sorted(os.listdir(self.path("queue", "env")))
        except FileNotFoundError:
            return []

    def close(self, keep=False):
        for p in self.senders:
            if p.poll() is None:
                self.stop_sender(p, expect_ok=False)
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def make_certs(dirpath):
    """A CA, and leaf certificates signed by it: localhost (good), a wrong
    name, an expired one; plus a self-signed localhost and one signed by an
    untrusted CA. Returns {name: (cert, key)} and the CA file."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True,
                       capture_output=True, timeout=60)

    def p(n):
        return os.path.join(dirpath, n)

    def ca(name):
        run("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", p(name + ".key"),
            "-out", p(name + ".pem"), "-days", "30", "-subj",
            "/CN=" + name, "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def leaf(name, cn, issuer, days="30"):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", p(name + ".key"), "-out", p(name + ".csr"),
            "-subj", "/CN=" + cn)
        ext = p(name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n"
                    "basicConstraints=CA:FALSE\n" % cn)
        args = ["x509", "-req", "-in", p(name + ".csr"), "-CA",
                p(issuer + ".pem"), "-CAkey", p(issuer + ".key"),
                "-CAcreateserial", "-out", p(name + ".pem"), "-extfile", ext]
        run(*(args + ["-days", days]))
        return (p(name + ".pem"), p(name + ".key"))

    ca("ca")
    ca("rogue")
    certs = {
        "good": leaf("good", "localhost", "ca"),
        "wrongname": leaf("wrongname", "wrong.example", "ca"),
        "untrusted": leaf("untrusted", "localhost", "rogue"),
    }
    run("req", "-x509", "-newkey", "ec", "-pkeyopt",
        "ec_paramgen_curve:P-256", "-nodes", "-keyout", p("self.key"),
        "-out", p("self.pem"), "-days", "30", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=DNS:localhost")
    certs["selfsigned"] = (p("self.pem"), p("self.key"))
    certs["expired"] = expired_cert(dirpath)
    return certs, p("ca.pem")


def expired_cert(dirpath):
    """A localhost certificate signed by ca that expired yesterday, made
    with certtool (which takes explicit validity dates)."""
    def p(n):
        return os.path.join(dirpath, n)

    subprocess.run(["certtool", "--generate-privkey", "--key-type", "ecdsa",
                    "--outfile", p("expired.key")], check=True,
                   capture_output=True, timeout=60)
    with open(p("expired.tmpl"), "w") as f:
        f.write('cn = "localhost"\ndns_name = "localhost"\ntls_www_server\n'
                'activation_date = "2020-01-01 00:00:00 UTC"\n'
                'expiration_date = "2020-02-01 00:00:00 UTC"\n'
                'serial = 77\n')
    subprocess.run(["certtool", "--generate-certificate", "--load-privkey",
                    p("expired.key"), "--load-ca-certificate", p("ca.pem"),
                    "--load-ca-privkey", p("ca.key"), "--template",
                    p("expired.tmpl"), "--outfile", p("expired.pem")],
                   check=True, capture_output=True, timeout=60)
    return (p("expired.pem"), p("expired.key"))


def named_cert(dirpath, name, sans):
    """A leaf certificate for the DNS names sans, signed by the CA of
    make_certs (which must have run in dirpath). Returns (cert, key)."""
    def p(n):
        return os.path.join(dirpath, n)

    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                    p(name + ".key"), "-out", p(name + ".csr"), "-subj",
                    "/CN=" + sans[0]], check=True, capture_output=True,
                   timeout=60)
    with open(p(name + ".ext"), "w") as f:
        f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth\n" %
                ",".join("DNS:" + n for n in sans))
    subprocess.run(["openssl", "x509", "-req", "-in", p(name + ".csr"),
                    "-CA", p("ca.pem"), "-CAkey", p("ca.key"),
                    "-CAcreateserial", "-out", p(name + ".pem"), "-days",
                    "30", "-extfile", p(name + ".ext")], check=True,
                   capture_output=True, timeout=60)
    return (p(name + ".pem"), p(name + ".key"))
