#!/usr/bin/env python3
"""End-to-end tests of tlsgated, the supervisor.

Each test runs tlsgated on a fresh temporary state folder and free loopback
ports, reads its key=value log lines, and kills every process it saw at the
end, whatever happened. The children are either the real programs (test
"engine", skipped with status 77 while tlsgate-engine is not built) or the
stand-in sup_testchild installed under the real names in a --libexec-dir.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
from testlib import Failure, check  # noqa: E402,F401

SKIP = 77


def free_port(both=False):
    """A port free on 127.0.0.1 (and on ::1 when both)."""
    for _ in range(50):
        s4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s4.bind(("127.0.0.1", 0))
        port = s4.getsockname()[1]
        try:
            if both:
                s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s6.bind(("::1", port))
                s6.close()
            return port
        except OSError:
            continue
        finally:
            s4.close()
    raise Failure("no free port")


def read_pid(host, port, timeout=10.0):
    """Connects and reads the pid the stand-in child writes."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(64)
            if not chunk:
                break
            data += chunk
    return int(data.strip())


def alive(pid):
    """True while pid runs (a zombie waiting for its reaper has ended)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def unix_answers(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_for(what, cond, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise Failure("timed out waiting for " + what)


class Gate:
    """One tlsgated run with its log file and every pid it reported."""

    def __init__(self, opts, work, name, args, env=None, libexec=True):
        self.opts = opts
        self.state = os.path.join(work, name)
        self.logpath = os.path.join(work, name + ".log")
        self.args = [os.path.join(opts.bindir, "tlsgated"),
                     "--state-dir", self.state] + list(args)
        if libexec:
            self.args += ["--libexec-dir", os.path.join(work, "libexec")]
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None
        self.seen = set()

    def start(self):
        self.logfile = open(self.logpath, "ab")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                     stdout=self.logfile,
                                     stderr=self.logfile, env=self.env,
                                     start_new_session=True)
        return self

    def run(self, timeout=15):
        """Runs to completion (for refusals); returns the exit status."""
        self.start()
        try:
            return self.proc.wait(timeout)
        finally:
            self.logfile.close()

    def log(self):
        with open(self.logpath, "r", errors="replace") as f:
            return f.read()

    def lines(self, pattern):
        return [m for m in re.finditer(pattern, self.log(), re.M)]

    def wait_lines(self, pattern, count=1, timeout=10.0):
        def enough():
            found = self.lines(pattern)
            return found if len(found) >= count else None
        try:
            return wait_for("%d x %r" % (count, pattern), enough, timeout)
        except Failure:
            sys.stderr.write(self.log())
            raise

    def pids(self, role=None):
        """pid of every child_start line (of one role), in order."""
        out = []
        for m in self.lines(r"id=(\w+)\.(\d+) child_start pid=(\d+)"):
            self.seen.add(int(m.group(3)))
            if role is None or m.group(1) == role:
                out.append(int(m.group(3)))
        return out

    def current(self, role, index=0):
        """The pid of the last start of one child slot."""
        found = self.lines(r"id=%s\.%d child_start pid=(\d+)" % (role, index))
        check(found, "no %s.%d started" % (role, index))
        return int(found[-1].group(1))

    def stop(self, sig=signal.SIGTERM, timeout=20):
        self.pids()
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        self.logfile.close()
        return rc

    def cleanup(self):
        """Kills whatever is left of this run."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None:
            try:
                self.pids()
            except OSError:
                pass
        for pid in self.seen:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def check_all_gone(self):
        self.pids()
        left = [p for p in self.seen if alive(p)]
        check(not left, "processes left behind: %r" % left)


def make_libexec(opts, work, roles=("engine", "smtpin", "smtpout")):
    d = os.path.join(work, "libexec")
    os.makedirs(d, exist_ok=True)
    for r in roles:
        os.symlink(opts.testchild, os.path.join(d, "tlsgate-" + r))


def pool_args(inport, subport, extra=()):
    return ["--inbound-listen", "127.0.0.1:%d [::1]:%d" % (inport, inport),
            "--submission-listen=127.0.0.1:%d" % subport,
            "--log-level", "debug"] + list(extra)


def test_pool(opts, work, gates):
    """Start-up, layout, fd passing to a pool, SIGHUP, orderly SIGTERM."""
    make_libexec(opts, work)
    inport, subport = free_port(both=True), free_port()
    g = Gate(opts, work, "pool", pool_args(inport, subport, [
        "--inbound-workers", "2", "--outbound-workers", "1",
        "--shutdown-grace", "5"]))
    gates.append(g)
    g.start()
    starts = g.wait_lines(r"testchild start role=(\w+) fds=(\d+) "
                          r"stray_fds=(\d+)", 4)
    roles = sorted((m.group(1), m.group(2), m.group(3)) for m in starts)
    check(roles == [("engine", "1", "0"), ("inbound", "2", "0"),
                    ("inbound", "2", "0"), ("submission", "1", "0")],
          "children and their fds: %r" % roles)
    log = g.log()
    check(log.index("engine_ready") < log.index("id=inbound.0 child_start"),
          "workers started before the engine answered")
    check("role_skipped" not in log, "a role was skipped")

    # The layout, the certificate and the pid file.
    st = g.state
    check(stat.S_IMODE(os.stat(st).st_mode) == 0o750, "state dir mode")
    check(stat.S_IMODE(os.stat(st + "/tls").st_mode) == 0o700, "tls mode")
    check(stat.S_IMODE(os.stat(st + "/tls/key.pem").st_mode) == 0o600,
          "key mode")
    check(os.path.exists(st + "/tls/cert.pem"), "no certificate")
    with open(st + "/tlsgated.pid") as f:
        check(int(f.read()) == g.proc.pid, "pid file content")
    check(unix_answers(st + "/engine.sock"), "engine socket")

    # Every listener reaches a child of the right role.
    inbound = set(g.pids("inbound"))
    check(read_pid("127.0.0.1", inport) in inbound, "v4 inbound")
    check(read_pid("::1", inport) in inbound, "v6 inbound")
    check(read_pid("127.0.0.1", subport) in g.pids("outbound"), "submission")

    # SIGHUP is passed on to every child.
    g.proc.send_signal(signal.SIGHUP)
    g.wait_lines(r"testchild\[\d+\] info: id=testchild hup", 4)
    g.wait_lines(r"reload signal=HUP children=4")

    # SIGTERM: workers first, then the engine; exit 0, nothing left.
    rc = g.stop()
    check(rc == 0, "tlsgated exit status %d" % rc)
    log = g.log()
    check(len(g.lines(r"testchild stop")) == 4, "children did not stop")
    last_worker = max(log.rindex("id=inbound.1 child_stopped"),
                      log.rindex("id=outbound.0 child_stopped"))
    check(last_worker < log.index("id=engine.0 child_stopped"),
          "engine stopped before the workers")
    check(not os.path.exists(st + "/tlsgated.pid"), "pid file left")
    g.check_all_gone()


def test_restart(opts, work, gates):
    """kill -9: logged, restarted with a growing delay; nothing lost."""
    make_libexec(opts, work)
    inport, subport = free_port(both=True), free_port()
    g = Gate(opts, work, "restart", pool_args(inport, subport, [
        "--inbound-workers", "1", "--roles", "engine,inbound",
        "--restart-delay-max", "2", "--restart-stable", "3"]))
    gates.append(g)
    g.start()
    g.wait_lines(r"testchild start", 2)
    sock = g.state + "/engine.sock"

    # The engine, four times: 500 ms, 1 s, then 2 s (restart_delay_max).
    for n, delay in ((1, 500), (2, 1000), (3, 2000), (4, 2000)):
        old = g.current("engine")
        os.kill(old, signal.SIGKILL)
        g.wait_lines(r"id=engine\.0 child_died pid=%d status=signal "
                     r"signal=KILL core=no ran_ms=\d+" % old)
        got = g.wait_lines(r"id=engine\.0 restart_scheduled delay_ms=(\d+)",
                           n)
        check(int(got[n - 1].group(1)) == delay,
              "restart %d after %s ms, not %d" % (n, got[n - 1].group(1),
                                                  delay))
        g.wait_lines(r"id=engine\.0 child_start", n + 1, timeout=5)
        new = g.current("engine")
        check(new != old, "engine not restarted")
        wait_for("engine socket back", lambda: unix_answers(sock))

    # After a stable run the back-off starts again from 0.5 s.
    time.sleep(3.2)
    old = g.current("engine")
    os.kill(old, signal.SIGKILL)
    got = g.wait_lines(r"id=engine\.0 restart_scheduled delay_ms=(\d+)", 5)
    check(got[4].group(1) == "500", "back-off not reset: %s" % got[4].group(1))
    wait_for("engine socket back", lambda: unix_answers(sock))

    # A connection made while the only receiver is dead waits in the
    # listening socket and is served by its successor.
    old = read_pid("127.0.0.1", inport)
    check(old == g.current("inbound"), "served by the wrong child")
    os.kill(old, signal.SIGKILL)
    wait_for("receiver dead", lambda: "id=inbound.0 child_died pid=%d" % old
             in g.log(), 5)
    t0 = time.monotonic()
    served = [read_pid("127.0.0.1", inport), read_pid("::1", inport)]
    waited = time.monotonic() - t0
    successor = g.current("inbound")
    check(served == [successor, successor] and successor != old,
          "queued connections served by %r, successor %d" % (served,
                                                             successor))
    check(waited >= 0.3, "no restart delay (%.2f s)" % waited)

    rc = g.stop()
    check(rc == 0, "tlsgated exit status %d" % rc)
    g.check_all_gone()


def test_reload(opts, work, gates):
    """SIGHUP reads the settings again: unchanged, they are passed on as a
    signal; changed, every child is replaced in turn; wrong or needing a
    restart, they are refused and the children keep running."""
    make_libexec(opts, work)
    inport, subport = free_port(both=True), free_port()
    conf = os.path.join(work, "tlsgate.conf")

    def write_conf(text, workers=2):
        # A key may appear once in the file.
        with open(conf, "w") as f:
            f.write("# test settings\nshutdown_grace = 5\n"
                    "inbound_workers = %d\noutbound_workers = 1\n" % workers
                    + text)

    write_conf("max_errors = 5\n")
    g = Gate(opts, work, "reload",
             ["--config", conf] + pool_args(inport, subport))
    gates.append(g)
    g.start()
    first = g.wait_lines(r"testchild start .* max_errors=(\d+)", 4)
    check(all(m.group(1) == "5" for m in first), "settings not passed")

    g.proc.send_signal(signal.SIGHUP)
    g.wait_lines(r"reload signal=HUP children=4")

    write_conf("max_errors = 7\n")
    g.proc.send_signal(signal.SIGHUP)
    g.wait_lines(r"reload signal=HUP settings_changed=max_errors$")
    g.wait_lines(r"rolling_done", timeout=20)
    starts = g.wait_lines(r"testchild start .* max_errors=(\d+)", 8)
    check([m.group(1) for m in starts] == ["5"] * 4 + ["7"] * 4,
          "children not replaced with the new settings")
    order = [m.group(1) for m in g.lines(r"id=(\w+\.\d) replacing pid=")]
    check(order == ["inbound.0", "inbound.1", "outbound.0", "engine.0"],
          "replacement order %r" % order)
    check(not g.lines(r"child_died"), "a child died during the reload")
    check(read_pid("127.0.0.1", inport) in g.pids("inbound")[2:],
          "not served by a new receiver")

    for text, workers, want in (
            ("max_errors = lots\n", 2, r"reload_refused reason=bad_settings "
             r"error=\S+tlsgate\.conf:\\x20line\\x205:"),
            ("max_errors = 7\n", 3,
             r"reload_refused setting=inbound_workers reason=needs_restart"),
            ("max_errors = 7\nmax_errors = 8\n", 2,
             r"reload_refused reason=bad_settings error=\S+tlsgate\.conf:"
             r"\\x20line\\x206:\\x20'max_errors'\\x20is\\x20already")):
        write_conf(text, workers)
        g.proc.send_signal(signal.SIGHUP)
        g.wait_lines(want)
    g.wait_lines(r"reload signal=HUP children=4", 4)
    check(len(g.lines(r"child_start")) == 8, "children restarted anyway")

    rc = g.stop()
    check(rc == 0, "tlsgated exit status %d" % rc)
    g.check_all_gone()


def test_grace(opts, work, gates):
    """Children that ignore SIGTERM are killed after shutdown_grace; a
    second stop signal kills at once."""
    make_libexec(opts, work)
    inport, subport = free_port(both=True), free_port()
    env = {"TESTCHILD_IGNORE_TERM": "1"}
    g = Gate(opts, work, "grace", pool_args(inport, subport, [
        "--inbound-workers", "1", "--roles", "engine,inbound",
        "--shutdown-grace", "1"]), env)
    gates.append(g)
    g.start()
    g.wait_lines(r"testchild start", 2)
    t0 = time.monotonic()
    rc = g.stop()
    took = time.monotonic() - t0
    check(rc == 0, "tlsgated exit status %d" % rc)
    check(len(g.lines(r"grace_expired phase=workers killed=1")) == 1,
          "workers not killed after the grace")
    check(len(g.lines(r"grace_expired phase=engine killed=1")) == 1,
          "engine not killed after the grace")
    check(1.8 < took < 8, "stop took %.1f s" % took)
    g.check_all_gone()

    g2 = Gate(opts, work, "grace2", pool_args(inport, subport, [
        "--inbound-workers", "1", "--roles", "engine,inbound",
        "--shutdown-grace", "60"]), env)
    gates.append(g2)
    g2.start()
    g2.wait_lines(r"testchild start", 2)
    g2.proc.send_signal(signal.SIGTERM)
    g2.wait_lines(r"stopping workers=1")
    t0 = time.monotonic()
    rc = g2.stop(signal.SIGINT)
    check(rc == 0, "tlsgated exit status %d" % rc)
    check(time.monotonic() - t0 < 5, "second signal did not kill")
    check(g2.lines(r"stop_again signal=INT killed=2"), "no stop_again")
    g2.check_all_gone()


def test_refuse(opts, work, gates):
    """One supervisor per state folder; taken ports and bad settings give
    a clear error and status 1; a missing role is skipped with a warning."""
    make_libexec(opts, work, roles=("engine", "smtpin"))
    inport, subport = free_port(both=True), free_port()
    g = Gate(opts, work, "first", pool_args(inport, subport, [
        "--inbound-workers", "1"]))
    gates.append(g)
    g.start()
    g.wait_lines(r"testchild start", 2)
    check(len(g.lines(r"role_skipped role=outbound binary=\S+"
                      r"tlsgate-smtpout reason=not_built")) == 1,
          "missing smtpout not reported once")

    twice = Gate(opts, work, "first", pool_args(inport, subport))
    twice.logpath = os.path.join(work, "twice.log")
    gates.append(twice)
    check(twice.run() == 1, "second tlsgated on one state dir did not fail")
    check(twice.lines(r"already_running pid=%d" % g.proc.pid),
          "no clear already_running line")

    taken = Gate(opts, work, "taken", pool_args(inport, subport))
    gates.append(taken)
    check(taken.run() == 1, "a taken port did not fail")
    check(taken.lines(r"listen_failed setting=inbound_listen "
                      r"error=127\.0\.0\.1:%d:\\x20Address\\x20already"
                      % inport), "no clear listen_failed line")
    check(not taken.lines(r"child_start"), "children started anyway")

    rc = g.stop()
    check(rc == 0, "tlsgated exit status %d" % rc)
    g.check_all_gone()

    # A child that cannot be run is logged and retried with the back-off.
    broken = os.path.join(work, "broken")
    os.makedirs(broken)
    with open(os.path.join(broken, "tlsgate-engine"), "w") as f:
        f.write("#!/nonexistent/interpreter\n")
    os.chmod(os.path.join(broken, "tlsgate-engine"), 0o755)
    b = Gate(opts, work, "broken", ["--roles", "engine", "--libexec-dir",
                                    broken], libexec=False)
    gates.append(b)
    b.start()
    b.wait_lines(r"cannot run \S+/tlsgate-engine: ENOENT", 2, timeout=5)
    b.wait_lines(r"id=engine\.0 child_died pid=\d+ status=exit "
                 r"code=127 ran_ms=\d+", 2, timeout=5)
    check(len(b.lines(r"restart_scheduled delay_ms=1000")) == 1,
          "no back-off for a child that cannot run")
    check(b.stop() == 0, "tlsgated exit status")
    b.check_all_gone()

    # A supervisor killed outright takes its children with it (they get
    # SIGTERM), and its stale pid file does not block the next start.
    crash = Gate(opts, work, "crash", pool_args(inport, subport, [
        "--inbound-workers", "1", "--roles", "engine,inbound"]))
    gates.append(crash)
    crash.start()
    crash.wait_lines(r"testchild start", 2)
    children = crash.pids()
    crash.proc.kill()
    crash.proc.wait()
    wait_for("orphans to stop", lambda: not any(alive(p) for p in children))
    check(len(crash.lines(r"testchild stop")) == 2, "orphans not stopped")
    again = Gate(opts, work, "crash", pool_args(inport, subport, [
        "--inbound-workers", "1", "--roles", "engine,inbound"]))
    again.logpath = os.path.join(work, "again.log")
    gates.append(again)
    again.start()
    again.wait_lines(r"testchild start", 2)
    check(again.stop() == 0, "restarted tlsgated exit status")
    again.check_all_gone()

    conf = os.path.join(work, "bad.conf")
    with open(conf, "w") as f:
        f.write("# settings\nhostname = gw.example\nmax_recipients = many\n")
    for name, args, want in (
            ("badconf", ["--config", conf], r"bad\.conf: line 3: "
             r"max_recipients: 'many' is not a number"),
            ("badflag", ["--no-such-flag"], r"--no-such-flag: unknown"),
            ("badroles", ["--roles", "engine,mailer"], r"bad_roles"),
            ("badlisten", ["--inbound-listen", "localhost"],
             r"inbound_listen: localhost: not HOST:PORT"),
            ("badlog", ["--log", "file"], r"log: 'file' is not stderr or "
                                          r"syslog")):
        b = Gate(opts, work, name, args)
        gates.append(b)
        check(b.run() == 1, name + " did not fail")
        check(b.lines(want), name + ": no clear message: " + b.log())


def test_engine(opts, work, gates):
    """The real programs with no config file: the engine starts, is
    restarted after kill -9, gets SIGHUP, and all stop on SIGTERM."""
    engine = os.path.join(opts.bindir, "tlsgate-engine")
    if not os.access(engine, os.X_OK):
        print("tlsgate-engine is not built: skipped")
        return SKIP
    inport, subport = free_port(both=True), free_port()
    g = Gate(opts, work, "real", [
        "--inbound-listen", "127.0.0.1:%d [::1]:%d" % (inport, inport),
        "--submission-listen", "127.0.0.1:%d" % subport,
        "--inbound-workers", "1", "--outbound-workers", "1",
        "--shutdown-grace", "5"], libexec=False)
    gates.append(g)
    admin = os.path.join(opts.bindir, "tlsgate-admin")
    if os.access(admin, os.X_OK):
        subprocess.run([admin, "--db", g.state + "/policy", "init",
                        "--platform-domain", "mail.example.net"],
                       check=True, stdout=subprocess.DEVNULL, timeout=30)
    g.start()
    sock = g.state + "/engine.sock"
    g.wait_lines(r"id=engine\.0 child_start pid=\d+")
    wait_for("engine socket", lambda: unix_answers(sock), 20)
    check(os.path.exists(g.state + "/tls/cert.pem"), "no certificate")

    old = g.current("engine")
    os.kill(old, signal.SIGKILL)
    g.wait_lines(r"id=engine\.0 child_died pid=%d status=signal "
                 r"signal=KILL" % old)
    g.wait_lines(r"id=engine\.0 restart_scheduled delay_ms=500")
    g.wait_lines(r"id=engine\.0 child_start", 2)
    check(g.current("engine") != old, "engine not restarted")
    wait_for("engine socket back", lambda: unix_answers(sock), 20)

    # SIGHUP reaches every child, even one still starting, and kills none.
    workers = [r for r, b in (("inbound", "tlsgate-smtpin"),
                              ("outbound", "tlsgate-smtpout"))
               if os.access(os.path.join(opts.bindir, b), os.X_OK)]
    for r in workers:
        g.wait_lines(r"id=%s\.0 child_start" % r)
    deaths = len(g.lines(r"child_died"))
    g.proc.send_signal(signal.SIGHUP)
    g.wait_lines(r"reload signal=HUP children=%d" % (1 + len(workers)))
    time.sleep(1)
    check(len(g.lines(r"child_died")) == deaths, "a child died on SIGHUP")

    rc = g.stop()
    check(rc == 0, "tlsgated exit status %d" % rc)
    g.check_all_gone()


def test_docs(opts, work, gates):
    """docs/config.md ends with exactly tlsgated --print-config-docs."""
    out = subprocess.run([os.path.join(opts.bindir, "tlsgated"),
                          "--print-config-docs"], check=True,
                         capture_output=True, text=True, timeout=10).stdout
    with open(opts.docs) as f:
        doc = f.read()
    check(out.startswith("| key |"), "unexpected table output")
    check(doc.endswith(out),
          "docs/config.md is not the table tlsgated prints; regenerate it "
          "from the top of the tree with: { sed '/^| key |/,$d' "
          "docs/config.md; BUILD/bin/tlsgated --print-config-docs; } "
          ">docs/config.md.new && mv docs/config.md.new docs/config.md")


def test_cli(opts, work, gates):
    """--version prints the CMake project version; --print-settings refuses
    what a real start refuses, with the setting named."""
    tg = os.path.join(opts.bindir, "tlsgated")
    out = subprocess.run([tg, "--version"], capture_output=True, text=True,
                         timeout=10)
    check(out.returncode == 0 and re.fullmatch(r"tlsgated \d+\.\d+\.\d+\n",
                                               out.stdout),
          "tlsgated --version: %r" % out.stdout)
    for args, want in (
            (["--hostname", 'a b"<x>'], "hostname: "),
            (["--log-level", "loud"], "log_level: 'loud'"),
            (["--log", "file"], "log: 'file'"),
            (["--inbound-listen", "127.0.0.1:99999"], "inbound_listen: "),
            (["--submission-listen", "nohost:25"], "submission_listen: ")):
        r = subprocess.run([tg, "--state-dir", work] + args +
                           ["--print-settings"], capture_output=True,
                           text=True, timeout=10)
        check(r.returncode == 1 and want in r.stderr and r.stdout == "",
              "%s: rc %d, %r" % (args, r.returncode, r.stderr))
    r = subprocess.run([tg, "--state-dir", work, "--hostname", "MX.Example.COM",
                        "--print-settings"], capture_output=True, text=True,
                       timeout=10)
    check("hostname = mx.example.com\n" in r.stdout, "hostname not lowered")
    admin = os.path.join(opts.bindir, "tlsgate-admin")
    if os.path.exists(admin):
        a = subprocess.run([admin, "--version"], capture_output=True,
                           text=True, timeout=10)
        check(a.returncode == 0 and a.stdout.split()[1:] ==
              out.stdout.split()[1:], "tlsgate-admin --version %r" % a.stdout)
    # scripts/run.sh: the state folder 0750 (docs/operations.md), and every
    # program of the gateway in its "programs built" list.
    run_sh = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                          "..", "scripts", "run.sh")
    with open(run_sh) as f:
        text = f.read()
    check("mkdir -p -m 0750 var" in text, "run.sh: var not made 0750")
    listed = re.search(r"for p in ([^;]*); do", text, re.S)
    names = listed.group(1).replace("\\", " ").split() if listed else []
    for prog in ("tlsgated", "tlsgate-engine", "tlsgate-smtpin",
                 "tlsgate-smtpout", "tlsgate-queue", "tlsgate-admin",
                 "tlsgate-sendmail"):
        check(prog in names, "run.sh does not list %s" % prog)
    return 0


TESTS = {"pool": test_pool, "cli": test_cli, "restart": test_restart,
         "grace": test_grace,
         "reload": test_reload,
         "refuse": test_refuse, "engine": test_engine, "docs": test_docs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bindir", required=True)
    ap.add_argument("--testchild", required=True)
    ap.add_argument("--docs")
    ap.add_argument("test", choices=sorted(TESTS))
    opts = ap.parse_args()
    opts.bindir = os.path.abspath(opts.bindir)
    opts.testchild = os.path.abspath(opts.testchild)

    # Killed from outside (a ctest timeout): still clean up below.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))
    work = tempfile.mkdtemp(prefix="tlsgate-sup-%s." % opts.test)
    gates = []
    try:
        rc = TESTS[opts.test](opts, work, gates)
    except (Failure, subprocess.TimeoutExpired, OSError) as e:
        print("FAIL %s: %s" % (opts.test, e), file=sys.stderr)
        for g in gates:
            print("--- %s" % g.logpath, file=sys.stderr)
            try:
                sys.stderr.write(g.log()[-6000:])
            except OSError:
                pass
        rc = 1
    finally:
        for g in gates:
            g.cleanup()
    if rc == SKIP:
        shutil.rmtree(work, ignore_errors=True)
        return SKIP
    if rc in (None, 0):
        shutil.rmtree(work, ignore_errors=True)
        print("ok %s" % opts.test)
        return 0
    print("logs kept in " + work, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
