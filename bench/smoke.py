#!/usr/bin/env python3
"""bench_smoke: tlsgate-bench against tlsgate-bench-limit on a free
loopback port, about 20 TLS sessions (full, then resumed), and a check that
the JSON record holds sane fields. Not a timing assertion. Also checks that
a non-loopback target is refused. argv: BINDIR [tls|smtp]; with "smtp"
(bench_smoke_smtp) the other modes run against a real tlsgated (engine and
one receiver): starttls with resumption, deliver (the messages must land
in the Maildir), plain and lookup."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def make_cert(d):
    """ECDSA P-256 key and self-signed certificate made with certtool."""
    key, cert, tmpl = (os.path.join(d, n) for n in
                       ("key.pem", "cert.pem", "cert.tmpl"))
    with open(tmpl, "w") as f:
        f.write("cn = localhost\ndns_name = localhost\n"
                "expiration_days = 2\ntls_www_server\nsigning_key\n")
    subprocess.run(["certtool", "--generate-privkey", "--key-type=ecdsa",
                    "--curve=secp256r1", "--outfile", key], check=True,
                   capture_output=True, timeout=30)
    subprocess.run(["certtool", "--generate-self-signed", "--load-privkey",
                    key, "--template", tmpl, "--outfile", cert], check=True,
                   capture_output=True, timeout=30)
    return cert, key


def start_limit(bindir, cert, key):
    p = subprocess.Popen([os.path.join(bindir, "tlsgate-bench-limit"),
                          "--cert", cert, "--key", key, "--port", "0",
                          "--workers", "2"], stdout=subprocess.PIPE,
                         text=True, start_new_session=True)
    line = p.stdout.readline()
    if "listening=127.0.0.1:" not in line:
        p.kill()
        fail("limit server did not start: %r" % line)
    port = int(line.split("listening=127.0.0.1:")[1].split()[0])
    return p, port


def bench(bindir, port, pid, out, *extra, mode="tls", sessions=20):
    r = subprocess.run([os.path.join(bindir, "tlsgate-bench"), "--mode", mode,
                        "--port", str(port), "--sessions", str(sessions),
                        "--concurrency", "4", "--duration", "30",
                        "--server-pid", str(pid), "--json", out, "--quiet"] +
                       list(extra), capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        fail("tlsgate-bench exited %d:\n%s%s" % (r.returncode, r.stdout,
                                                 r.stderr))
    return json.load(open(out))


def check_record(j, resumed):
    o = j["options"]
    if o["mode"] != "tls" or o["concurrency"] != 4 or o["host"] != \
            "127.0.0.1":
        fail("options: %r" % o)
    if j["sessions"] != 20 or j["failed"] != 0 or j["handshakes"] != 20:
        fail("counts: sessions=%s failed=%s handshakes=%s errors=%s" % (
            j["sessions"], j["failed"], j["handshakes"], j["first_errors"]))
    if not (j["elapsed_s"] > 0 and j["sessions_per_s"] > 0):
        fail("rates: %r" % j)
    for phase in ("connect", "handshake", "close", "session"):
        lat = j["latency_ms"].get(phase)
        if not lat or lat["n"] != 20 or not (
                0 <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]):
            fail("latency of %s: %r" % (phase, lat))
    srv = j["server"]
    if not srv or srv["processes"] < 2 or srv["cpu_s"] < 0 or \
            srv["cpu_ms_per_session"] < 0 or srv["rss_kib_after"] <= 0:
        fail("server figures: %r" % srv)
    if j["errors"] != {}:
        fail("errors: %r" % j["errors"])
    # The first session of each of the 4 slots has no ticket yet.
    if resumed and not (j["resumed"] >= 12 and 0 < j["resumed_share"] <= 1):
        fail("resumed %s of 20" % j["resumed"])
    if not resumed and j["resumed"] != 0:
        fail("resumed with --resume off")


PLATFORM = "mail.example.net"
MAILBOX = "gm@acme." + PLATFORM


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gateway(bindir, d, cert, key):
    """tlsgated with the engine and inbound roles on a one-tenant store."""
    env = dict(os.environ, TLSGATE_DB=os.path.join(d, "policy"))
    env.pop("TLSGATE_FDS", None)
    for cmd in (["init", "--platform-domain", PLATFORM],
                ["tenant", "add", "acme"],
                ["inbound", "mailbox", "add", "acme", MAILBOX]):
        subprocess.run([os.path.join(bindir, "tlsgate-admin")] + cmd,
                       env=env, check=True, capture_output=True, timeout=30)
    port = free_port()
    log = open(os.path.join(d, "gateway.log"), "wb")
    p = subprocess.Popen([os.path.join(bindir, "tlsgated"), "--state-dir", d,
                          "--roles", "engine,inbound", "--inbound-listen",
                          "127.0.0.1:%d" % port, "--inbound-workers", "1",
                          "--tls-cert", cert, "--tls-key", key,
                          "--hostname", "mx.test"], stdout=log,
                         stderr=subprocess.STDOUT, env=env,
                         start_new_session=True)
    end = time.time() + 20
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as c:
                c.settimeout(5)
                if c.recv(100).startswith(b"220"):
                    return p, port
        except OSError:
            time.sleep(0.1)
        if p.poll() is not None:
            break
    stop(p)
    fail("tlsgated did not answer:\n" +
         open(os.path.join(d, "gateway.log")).read()[-3000:])


def stop(p):
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def check_smtp_modes(bindir, d, port, pid):
    """starttls (resumed), deliver and plain against a real receiver."""
    j = bench(bindir, port, pid, os.path.join(d, "st.json"), "--resume",
              "on", mode="starttls")
    phases = ("connect", "banner", "ehlo_plain", "starttls", "handshake",
              "ehlo", "quit", "session")
    if j["sessions"] != 20 or j["failed"] or j["resumed"] < 12 or any(
            j["latency_ms"].get(ph, {}).get("n") != 20 for ph in phases):
        fail("starttls run: %r" % j)
    j = bench(bindir, port, pid, os.path.join(d, "dl.json"), "--size", "2000",
              "--to", MAILBOX, mode="deliver", sessions=5)
    if j["sessions"] != 5 or j["failed"] or \
            j["latency_ms"]["body"]["n"] != 5:
        fail("deliver run: %r" % j)
    new = os.path.join(d, "mail", "acme", "gm", "new")
    msgs = os.listdir(new) if os.path.isdir(new) else []
    if len(msgs) != 5 or any(os.path.getsize(os.path.join(new, m)) < 2000
                             for m in msgs):
        fail("deliver: %d messages in %s" % (len(msgs), new))
    j = bench(bindir, port, pid, os.path.join(d, "pl.json"), mode="plain")
    if j["sessions"] != 20 or j["handshakes"] != 0 or "handshake" in \
            j["latency_ms"]:
        fail("plain run: %r" % j)
    j = bench(bindir, 2525, pid, os.path.join(d, "lk.json"), "--engine-socket",
              os.path.join(d, "engine.sock"), "--to", MAILBOX, mode="lookup",
              sessions=200)
    if j["sessions"] != 200 or j["failed"] or \
            j["latency_ms"]["lookup"]["n"] != 200:
        fail("lookup run: %r" % j)


def main():
    bindir, which = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "tls"
    need = ["tlsgate-bench", "tlsgate-bench-limit"] if which == "tls" else \
        ["tlsgate-bench", "tlsgated", "tlsgate-engine", "tlsgate-smtpin",
         "tlsgate-admin"]
    for prog in need:
        if not os.access(os.path.join(bindir, prog), os.X_OK):
            print("SKIP: %s not built" % prog)
            return SKIP
    if not shutil.which("certtool"):
        print("SKIP: certtool not installed")
        return SKIP
    d = tempfile.mkdtemp(prefix="tg-bench-smoke-")
    server = None
    try:
        cert, key = make_cert(d)
        if which == "smtp":
            server, port = start_gateway(bindir, d, cert, key)
            check_smtp_modes(bindir, d, port, server.pid)
            print("ok: starttls, deliver, plain and lookup modes")
            return 0
        server, port = start_limit(bindir, cert, key)
        full = bench(bindir, port, server.pid, os.path.join(d, "full.json"))
        check_record(full, False)
        res = bench(bindir, port, server.pid, os.path.join(d, "res.json"),
                    "--resume", "on")
        check_record(res, True)
        r = subprocess.run([os.path.join(bindir, "tlsgate-bench"), "--host",
                            "192.0.2.1", "--port", str(port)],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 2 or "loopback" not in r.stderr:
            fail("non-loopback target not refused: %d %s" % (r.returncode,
                                                             r.stderr))
    finally:
        if server:
            stop(server)
        shutil.rmtree(d, ignore_errors=True)
    print("ok: %.1f sessions/s full, %.1f resumed; server %.3f ms/session" %
          (full["sessions_per_s"], res["sessions_per_s"],
           full["server"]["cpu_ms_per_session"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
