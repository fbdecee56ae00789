"""tlsgate-admin probe against a local Postfix (private config folder, as
tests/outbound/test_postfix.py runs it): one smtpd with STARTTLS and a
CA-signed localhost certificate, one without STARTTLS."""
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "outbound"))
import outlib  # noqa: E402
from outlib import check  # noqa: E402
import test_postfix  # noqa: E402
from test_report import probe  # noqa: E402


def main():
    if os.geteuid() != 0 or not shutil.which("postfix"):
        print("SKIP: Postfix needs root and the postfix package")
        return outlib.SKIP
    env = outlib.Env(sys.argv[1], "report-pf")
    pf = None
    ok = False
    try:
        env.init_store()
        certs, ca = outlib.make_certs(env.dir)
        pf = test_postfix.Postfix(env, certs["good"], ["vendor.example"])
        pf.start()
        h = probe(env, pf.tls, ca=ca)
        t = h["tls"]
        check(h["banner"] == 220 and h["starttls_offered"] is True,
              "postfix tls %r" % h)
        check(t["protocol"] in ("TLS1.3", "TLS1.2") and t["chain_verified"],
              "postfix tls %r" % t)
        check(t["chain"][0]["names"] == ["localhost"], "names %r" % t)
        check(h["levels"]["encrypt"] is True, "levels %r" % h)
        h = probe(env, pf.plain, ca=ca)
        check(h["starttls_offered"] is False and "tls" not in h and
              h["levels"]["encrypt"] is False and h["levels"]["may"],
              "postfix plain %r" % h)
        check("MAIL FROM" not in pf.maillog(), "probe sent no mail")
        ok = True
    finally:
        if pf:
            pf.stop()
        env.close(keep=not ok)
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
