#!/usr/bin/env python3
"""bench_smoke: tlsgate-bench against tlsgate-bench-limit on a free
loopback port, about 20 TLS sessions (full, then resumed), and a check that
the JSON record holds sane fields. Not a timing assertion. Also checks that
a non-loopback target is refused. argv: BINDIR."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

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
                         text=True)
    line = p.stdout.readline()
    if "listening=127.0.0.1:" not in line:
        p.kill()
        fail("limit server did not start: %r" % line)
    port = int(line.split("listening=127.0.0.1:")[1].split()[0])
    return p, port


def bench(bindir, port, pid, out, *extra):
    r = subprocess.run([os.path.join(bindir, "tlsgate-bench"), "--mode", "tls",
                        "--port", str(port), "--sessions", "20",
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


def main():
    bindir = sys.argv[1]
    for prog in ("tlsgate-bench", "tlsgate-bench-limit"):
        if not os.access(os.path.join(bindir, prog), os.X_OK):
            print("SKIP: %s not built" % prog)
            return SKIP
    if not shutil.which("certtool"):
        print("SKIP: certtool not installed")
        return SKIP
    d = tempfile.mkdtemp(prefix="tg-bench-smoke-")
    limit = None
    try:
        cert, key = make_cert(d)
        limit, port = start_limit(bindir, cert, key)
        full = bench(bindir, port, limit.pid, os.path.join(d, "full.json"))
        check_record(full, False)
        res = bench(bindir, port, limit.pid, os.path.join(d, "res.json"),
                    "--resume", "on")
        check_record(res, True)
        r = subprocess.run([os.path.join(bindir, "tlsgate-bench"), "--host",
                            "192.0.2.1", "--port", str(port)],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 2 or "loopback" not in r.stderr:
            fail("non-loopback target not refused: %d %s" % (r.returncode,
                                                             r.stderr))
    finally:
        if limit:
            limit.send_signal(signal.SIGTERM)
            try:
                limit.wait(10)
            except subprocess.TimeoutExpired:
                limit.kill()
                limit.wait()
        shutil.rmtree(d, ignore_errors=True)
    print("ok: %.1f sessions/s full, %.1f resumed; server %.3f ms/session" %
          (full["sessions_per_s"], res["sessions_per_s"],
           full["server"]["cpu_ms_per_session"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
