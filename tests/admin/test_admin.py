#!/usr/bin/env python3
"""tlsgate-admin run as an operator runs it, on temporary stores.

usage: test_admin.py ADMIN_BINARY GROUP
GROUP is one of: commands, badinput, roundtrip, explain, newuser.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ADMIN = None
FAILS = []


def run(db, *args, stdin=None, env_db=None, cwd=None):
    """Runs the tool; returns (status, stdout, stderr)."""
    env = dict(os.environ)
    env.pop("TLSGATE_DB", None)
    if env_db:
        env["TLSGATE_DB"] = env_db
    cmd = [ADMIN] + (["--db", db] if db else []) + list(args)
    p = subprocess.run(cmd, input=stdin, capture_output=True, env=env,
                       timeout=120, cwd=cwd)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what, file=sys.stderr)


def ok(db, *args, stdin=None):
    rc, out, err = run(db, *args, stdin=stdin)
    check(rc == 0 and err == "",
          "%s: status %d, stderr %r" % (" ".join(args), rc, err))
    return out


def js(db, *args):
    out = ok(db, *(list(args) + ["--json"]))
    try:
        return json.loads(out)
    except ValueError:
        check(False, "%s --json: not JSON: %r" % (" ".join(args), out))
        return {}


def generation(db):
    return js(db, "status")["generation"]


def export(db):
    return ok(db, "export")


PD = "mail.example.net"


def populate(db):
    """A small but complete policy: every kind of record."""
    ok(db, "init", "--platform-domain", "Mail.Example.NET.")
    ok(db, "tenant", "add", "acme")
    ok(db, "tenant", "add", "beta", "--from", "Ops@Beta.Example")
    ok(db, "tenant", "add", "gamma")
    ok(db, "outbound", "mode", "acme", "domains")
    ok(db, "outbound", "add", "acme", "vendor.example")
    ok(db, "outbound", "add", "acme", ".Example.COM", "--level", "verify")
    ok(db, "outbound", "add", "acme", "bücher.example", "--level", "secure")
    ok(db, "outbound", "add", "acme", "plain.example", "--level", "may")
    ok(db, "outbound", "mode", "beta", "all", "--level", "verify")
    ok(db, "outbound", "add", "beta", "strong.example", "--level", "secure")
    ok(db, "outbound", "add", "beta", "weak.example", "--level", "none")
    ok(db, "inbound", "mailbox", "add", "acme",
       "globalmobility@acme." + PD)
    ok(db, "inbound", "mailbox", "add", "acme", "hr@acme." + PD)
    ok(db, "inbound", "allowlist", "acme", "on")
    ok(db, "inbound", "trust", "acme", "partner.example")
    ok(db, "inbound", "trust", "acme", ".trusted.example")
    ok(db, "inbound", "mailbox", "add", "beta", "audit@beta." + PD)
    ok(db, "inbound", "tls", "beta", "require")
    ok(db, "inbound", "mailbox", "add", "gamma", "box@gamma." + PD)
    ok(db, "inbound", "allowlist", "gamma", "on", "--action", "discard")
    ok(db, "route", "add", "vendor.example", "127.0.0.1:2525")
    ok(db, "route", "add", ".example.org", "[::1]:2526")
    ok(db, "route", "add", "relay.example", "smtp.Relay.Example:587")


def test_commands(tmp):
    db = os.path.join(tmp, "store")
    rc, out, err = run(None, "--help")
    check(rc == 0 and "tenant add" in out and "explain inbound" in out,
          "--help lists the commands")
    for words in (["tenant", "add"], ["inbound", "mailbox", "add"],
                  ["export"], ["explain", "outbound"], ["tenant"]):
        rc, out, err = run(None, *(words + ["--help"]))
        check(rc == 0 and " ".join(words) in out and err == "",
              "%s --help" % " ".join(words))

    w = js(db, "init", "--platform-domain", PD)
    check(w.get("ok") is True and w.get("generation") == 1, "init --json")
    g = generation(db)
    ok(db, "tenant", "add", "acme")
    check(generation(db) == g + 1, "one write moves the generation once")
    populate_rest(db)

    tl = js(db, "tenant", "list")["tenants"]
    check([t["name"] for t in tl] == ["acme", "beta"], "tenant list names")
    acme = tl[0]
    check(acme["mode"] == "domains" and acme["domains"] == 2 and
          acme["mailboxes"] == 1 and acme["from_is_default"] and
          acme["from"] == "noreply@acme." + PD, "tenant list acme row")
    check(tl[1]["from"] == "ops@beta.example" and tl[1]["mode"] == "all" and
          tl[1]["default_level"] == "secure", "tenant list beta row")
    out = ok(db, "tenant", "list")
    check(out.splitlines()[0].split()[:3] == ["NAME", "MODE", "LEVEL"],
          "tenant list text header")

    t = js(db, "tenant", "show", "acme")
    check(t["name"] == "acme" and t["outbound"]["mode"] == "domains" and
          t["outbound"]["domains"] == {".example.com": "verify",
                                        "vendor.example": "encrypt"},
          "tenant show outbound")
    check(t["inbound"] == {"tls": "may", "allowlist": True,
                           "action": "discard",
                           "trusted": ["partner.example"],
                           "mailboxes": {"globalmobility@acme." + PD:
                                         "globalmobility"}},
          "tenant show inbound: %r" % t.get("inbound"))
    out = ok(db, "tenant", "show", "acme")
    check("vendor.example" in out and "globalmobility@acme." + PD in out,
          "tenant show text")

    check(js(db, "outbound", "list", "acme")["domains"][".example.com"] ==
          "verify", "outbound list")
    check(js(db, "inbound", "mailbox", "list", "acme")["mailboxes"] ==
          {"globalmobility@acme." + PD: "globalmobility"},
          "inbound mailbox list")
    check(js(db, "settings", "show")["settings"] ==
          {"platform_domain": PD}, "settings show")
    ok(db, "settings", "set", "default_from_local", "no-reply")
    check(js(db, "tenant", "show", "acme")["from"] ==
          "no-reply@acme." + PD, "settings set default_from_local")
    check(js(db, "route", "list")["routes"] ==
          [{"domain": "relay.example", "host": "::1", "port": 2526}],
          "route list")
    st = js(db, "status")
    check(st["tenants"] == 2 and st["routes"] == 1 and
          st["platform_domain"] == PD, "status")

    removals(db)
    locations(tmp, db)


def locations(tmp, db):
    """--db, else TLSGATE_DB, else ./var/policy (created by init)."""
    rc, out, err = run(None, "status", "--json", env_db=db)
    check(rc == 0 and json.loads(out)["db"] == db, "TLSGATE_DB is used")
    other = os.path.join(tmp, "other")
    ok(other, "init", "--platform-domain", "other.example")
    rc, out, err = run(other, "status", "--json", env_db=db)
    check(rc == 0 and json.loads(out)["platform_domain"] == "other.example",
          "--db wins over TLSGATE_DB")
    cwd = os.path.join(tmp, "cwd")
    os.mkdir(cwd)
    rc, out, err = run(None, "init", "--platform-domain", PD, cwd=cwd)
    check(rc == 0 and os.path.isdir(os.path.join(cwd, "var", "policy")),
          "init without --db creates ./var/policy: %r" % err)
    rc, out, err = run(None, "--json", "status", cwd=cwd)
    check(rc == 0 and os.path.realpath(json.loads(out)["db"]) ==
          os.path.realpath(os.path.join(cwd, "var", "policy")),
          "the default store is ./var/policy")


def populate_rest(db):
    ok(db, "tenant", "add", "beta", "--from", "x@beta.example")
    ok(db, "tenant", "set", "beta", "--from", "Ops@Beta.Example")
    for args in (["outbound", "mode", "acme", "domains"],
                 ["outbound", "add", "acme", "Vendor.Example."]):
        g = generation(db)
        w = js(db, *args)
        check(w.get("ok") is True and w.get("generation") == g + 1,
              "%s --json: %r" % (" ".join(args), w))
    ok(db, "outbound", "add", "acme", ".example.com", "--level", "secure")
    ok(db, "outbound", "add", "acme", ".example.com", "--level", "verify")
    ok(db, "outbound", "add", "acme", "gone.example")
    ok(db, "outbound", "remove", "acme", "gone.example")
    ok(db, "outbound", "mode", "beta", "all", "--level", "secure")
    ok(db, "inbound", "mailbox", "add", "acme", "GlobalMobility@acme." + PD)
    ok(db, "inbound", "mailbox", "add", "acme", "old@acme." + PD)
    ok(db, "inbound", "mailbox", "remove", "acme", "old@acme." + PD)
    ok(db, "inbound", "allowlist", "acme", "on", "--action", "discard")
    ok(db, "inbound", "trust", "acme", "partner.example")
    ok(db, "inbound", "trust", "acme", "other.example")
    ok(db, "inbound", "untrust", "acme", "other.example")
    ok(db, "inbound", "tls", "beta", "require")
    ok(db, "inbound", "tls", "beta", "may")
    ok(db, "route", "add", "relay.example", "[::1]:2526")
    ok(db, "route", "add", "tmp.example", "10.0.0.1:25")
    ok(db, "route", "remove", "tmp.example")


def removals(db):
    w = js(db, "tenant", "set", "beta", "--default-from")
    check(w.get("ok") is True, "tenant set --default-from --json")
    check(js(db, "tenant", "show", "beta")["from_is_default"],
          "tenant set --default-from")
    ok(db, "inbound", "allowlist", "acme", "off")
    t = js(db, "tenant", "show", "acme")["inbound"]
    check(t["allowlist"] is False and t["action"] == "discard",
          "allowlist off keeps the action")
    ok(db, "outbound", "mode", "beta", "off")
    t = js(db, "tenant", "show", "beta")["outbound"]
    check(t["mode"] == "off" and t["default_level"] == "secure",
          "mode off keeps the default level")
    ok(db, "tenant", "remove", "acme")
    check([t["name"] for t in js(db, "tenant", "list")["tenants"]] ==
          ["beta"], "tenant remove")
    e = js(db, "explain", "inbound", "a@b.example",
           "globalmobility@acme." + PD)
    check(e["rule"] == "no-mailbox", "tenant remove drops its mailboxes")
    doc = json.loads(ok(db, "show", "--json"))
    check(doc == json.loads(export(db)), "show --json is the export")
    out = ok(db, "show")
    check("beta" in out and "relay.example" in out, "show text")


BAD = [
    # (arguments, what it is)
    (["tenant", "add", "Bad_Name"], "bad tenant name"),
    (["tenant", "add", "-lead"], "tenant name with a leading dash"),
    (["tenant", "add", "a" * 64], "tenant name too long"),
    (["tenant", "add", "acme"], "tenant that exists"),
    (["tenant", "add", "newt", "--from", "Boss@acme.example"],
     "From address of another tenant"),
    (["tenant", "set", "other", "--from", "boss@acme.example"],
     "set the From of another tenant"),
    (["tenant", "add", "newt", "--from", "not an address"], "bad From"),
    (["tenant", "set", "acme", "--from", "a@b..c"], "bad From domain"),
    (["tenant", "set", "acme"], "tenant set without --from"),
    (["tenant", "remove", "nosuch"], "remove unknown tenant"),
    (["tenant", "show", "nosuch"], "show unknown tenant"),
    (["outbound", "add", "acme", "bad..domain"], "malformed domain"),
    (["outbound", "add", "acme", "-x.example"], "malformed domain label"),
    (["outbound", "add", "acme", "x.example", "--level", "strong"],
     "unknown level"),
    (["outbound", "add", "nosuch", "x.example"], "unknown tenant"),
    (["outbound", "remove", "acme", "absent.example"], "absent entry"),
    (["outbound", "mode", "acme", "sometimes"], "unknown mode"),
    (["outbound", "mode", "acme", "all", "--level", "may"],
     "level below encrypt under all"),
    (["outbound", "mode", "acme", "off", "--level", "verify"],
     "level with mode off"),
    (["outbound", "mode", "nosuch", "all"], "mode of unknown tenant"),
    (["inbound", "mailbox", "add", "acme", "a b@acme." + PD],
     "malformed mailbox"),
    (["inbound", "mailbox", "add", "acme", "../x@acme." + PD],
     "mailbox that is not a safe folder"),
    (["inbound", "mailbox", "add", "acme", "<>"], "null path as mailbox"),
    (["inbound", "mailbox", "add", "acme", "globalmobility@acme." + PD],
     "mailbox registered twice"),
    (["inbound", "mailbox", "add", "other", "new@acme." + PD],
     "mailbox in another tenant's own domain"),
    (["tenant", "add", "newt", "--from", "x@acme." + PD],
     "From in another tenant's own domain"),
    (["inbound", "mailbox", "add", "nosuch", "x@nosuch." + PD],
     "mailbox of unknown tenant"),
    (["inbound", "mailbox", "remove", "acme", "absent@acme." + PD],
     "remove absent mailbox"),
    (["inbound", "allowlist", "acme", "maybe"], "allowlist not on/off"),
    (["inbound", "allowlist", "acme", "on", "--action", "bounce"],
     "unknown action"),
    (["inbound", "tls", "acme", "always"], "inbound tls not may/require"),
    (["inbound", "trust", "acme", "exa mple.com"], "malformed trust domain"),
    (["inbound", "untrust", "acme", "absent.example"], "untrust absent"),
    (["route", "add", "x.example", "host.example:0"], "port 0"),
    (["route", "add", "x.example", "host.example:65536"], "port too big"),
    (["route", "add", "x.example", "host.example:abc"], "port not a number"),
    (["route", "add", "x.example", "host.example"], "route without port"),
    (["route", "add", "x.example", "::1:25"], "bare IPv6 route"),
    (["route", "add", "bad..d", "h.example:25"], "malformed route domain"),
    (["route", "remove", "absent.example"], "remove absent route"),
    (["settings", "set", "nokey", "v"], "unknown setting"),
    (["settings", "set", "platform_domain", "bad..x"], "bad platform"),
    (["init", "--platform-domain", "other.example"], "init another domain"),
    (["init"], "init without domain"),
    (["frobnicate"], "unknown command"),
    (["tenant", "frob"], "unknown subcommand"),
    (["tenant"], "missing subcommand"),
    ([], "no command"),
    (["tenant", "list", "--bogus"], "unknown option"),
    (["tenant", "add"], "missing argument"),
    (["tenant", "add", "a", "b"], "extra argument"),
    (["tenant", "add", "newt", "--from"], "option without value"),
    (["tenant", "add", "newt", "--level", "encrypt"], "option not for it"),
    (["explain", "outbound", "nosuch", "x@y.example"], "explain unknown"),
    (["explain", "outbound", "acme", "not an address"], "explain bad rcpt"),
    (["explain", "inbound", "bad sender", "x@acme." + PD],
     "explain bad sender"),
    (["import", "/nonexistent/file.json"], "import missing file"),
]


def test_badinput(tmp):
    db = os.path.join(tmp, "store")
    ok(db, "init", "--platform-domain", PD)
    ok(db, "tenant", "add", "acme", "--from", "noreply@acme." + PD)
    ok(db, "tenant", "add", "other", "--from", "x@other.example")
    ok(db, "tenant", "set", "acme", "--from", "boss@acme.example")
    ok(db, "outbound", "add", "acme", "vendor.example")
    ok(db, "inbound", "mailbox", "add", "acme", "globalmobility@acme." + PD)
    before, g = export(db), generation(db)
    for args, what in BAD:
        for extra in ([], ["--json"]):
            rc, out, err = run(db, *(args + extra))
            lines = err.splitlines()
            check(rc != 0, "%s: status %d" % (what, rc))
            check(len(lines) == 1 and lines[0].startswith("tlsgate-admin: "),
                  "%s: one stderr line, got %r" % (what, err))
            check(out == "", "%s: nothing on stdout, got %r" % (what, out))
        check(export(db) == before, "%s: store changed" % what)
        check(generation(db) == g, "%s: generation moved" % what)

    # Usage errors are status 2, failures 1.
    check(run(db, "frobnicate")[0] == 2, "unknown command is status 2")
    check(run(db, "tenant", "add", "Bad_Name")[0] == 1, "bad name status 1")
    rc, out, err = run(os.path.join(tmp, "absent"), "tenant", "list")
    check(rc == 1 and len(err.splitlines()) == 1, "missing store")
    check(not os.path.exists(os.path.join(tmp, "absent")),
          "a read command creates no store")
    bad_imports(tmp, db, before, g)


BAD_FILES = {
    "syntax": '{"version": 1, "tenants": {',
    "not an object": '[1, 2]',
    "no version": '{"tenants": {}}',
    "version 2": '{"version": 2}',
    "unknown field": '{"version": 1, "color": "blue"}',
    "duplicate key": '{"version": 1, "tenants": {"a": {}, "a": {}}}',
    "bad tenant name": '{"version": 1, "tenants": {"A B": {}}}',
    "bad level": '{"version": 1, "tenants": {"t": {"outbound": '
                 '{"domains": {"x.example": "strong"}}}}}',
    "bad domain": '{"version": 1, "tenants": {"t": {"outbound": '
                  '{"domains": {"x..example": "encrypt"}}}}}',
    "duplicate after normalising": '{"version": 1, "tenants": {"t": '
        '{"outbound": {"domains": {"x.example": "encrypt", '
        '"X.Example": "verify"}}}}}',
    "bad mode": '{"version": 1, "tenants": {"t": {"outbound": '
                '{"mode": "most"}}}}',
    "low default": '{"version": 1, "tenants": {"t": {"outbound": '
                   '{"mode": "all", "default_level": "may"}}}}',
    "bad mailbox": '{"version": 1, "tenants": {"t": {"inbound": '
                   '{"mailboxes": ["not an address"]}}}}',
    "mailbox of two tenants": '{"version": 1, "settings": {"platform_domain":'
        ' "p.example"}, "tenants": {"t": {"inbound": {"mailboxes": '
        '["a@t.p.example"]}}, "u": {"inbound": {"mailboxes": '
        '["a@t.p.example"]}}}}',
    "bad folder": '{"version": 1, "settings": {"platform_domain":'
        ' "p.example"}, "tenants": {"t": {"inbound": {"mailboxes": '
        '{"a@t.p.example": "../b"}}}}}',
    "mailboxes neither list nor object": '{"version": 1, "tenants": {"t": '
        '{"inbound": {"mailboxes": "a@t.p.example"}}}}',
    "bad port": '{"version": 1, "routes": {"r.example": '
                '{"host": "h.example", "port": 70000}}}',
    "bad host": '{"version": 1, "routes": {"r.example": '
                '{"host": "h..example", "port": 25}}}',
    "bad allowlist": '{"version": 1, "tenants": {"t": {"inbound": '
                     '{"allowlist": "yes"}}}}',
    "bad setting": '{"version": 1, "settings": {"nokey": "x"}}',
    "binary": '\x00\x01\x02',
    "empty": '',
}


def bad_imports(tmp, db, before, g):
    for what, text in BAD_FILES.items():
        path = os.path.join(tmp, "bad.json")
        with open(path, "w") as f:
            f.write(text)
        rc, out, err = run(db, "import", path)
        check(rc == 1 and len(err.splitlines()) == 1,
              "import %s: status %d, stderr %r" % (what, rc, err))
        check(export(db) == before, "import %s: store changed" % what)
    big = os.path.join(tmp, "big.json")
    with open(big, "wb") as f:
        f.truncate(256 * 1024 * 1024 + 1)  # sparse: costs no disk
    rc, out, err = run(db, "import", big)
    check(rc == 1 and "larger than 256 MiB" in err, "oversized import: %r"
          % err)
    os.unlink(big)
    rc, out, err = run(db, "import", "-", stdin=b'{"version": 1,\n  x}')
    check(rc == 1 and "line 2" in err, "import error names the line: %r" % err)
    check(export(db) == before, "bad imports left the store unchanged")
    check(generation(db) == g, "bad imports left the generation unchanged")


def test_roundtrip(tmp):
    a, b = os.path.join(tmp, "a"), os.path.join(tmp, "b")
    populate(a)
    first = export(a)
    path = os.path.join(tmp, "policy.json")
    ok(a, "export", path)
    with open(path) as f:
        check(f.read() == first, "export FILE equals export to stdout")
    doc = json.loads(first)
    check(doc["version"] == 1 and doc["settings"]["platform_domain"] == PD,
          "export header")
    check(doc["tenants"]["acme"]["outbound"]["domains"]
          ["xn--bcher-kva.example"] == "secure", "IDN entry as A-label")
    check(doc["routes"][".example.org"] == {"host": "::1", "port": 2526},
          "export route")

    # Into a folder that does not exist yet: the file initialises it.
    w = js(b, "import", path)
    check(w.get("ok") is True, "import --json")
    check(export(b) == first, "export, import, export is byte-identical")

    # Over a store with other content: replaced whole, generation +1.
    ok(b, "tenant", "add", "extra")
    ok(b, "settings", "set", "default_from_local", "robot")
    g = generation(b)
    ok(b, "import", "-", stdin=first.encode())
    check(export(b) == first, "import replaces everything")
    check(generation(b) == g + 1, "import is one transaction")

    # A file without platform_domain keeps the store's.
    small = '{"version": 1, "tenants": {"solo": {}}}'
    ok(b, "import", "-", stdin=small.encode())
    check(js(b, "tenant", "show", "solo")["from"] == "noreply@solo." + PD,
          "import keeps the platform domain")
    folders(tmp)
    c = os.path.join(tmp, "c")
    rc, out, err = run(c, "import", "-", stdin=small.encode())
    check(rc == 1 and len(err.splitlines()) == 1,
          "import without platform_domain into an empty store fails")
    ok(c, "import", path)
    check(export(c) == first, "import into a fresh store")


def folders(tmp):
    """Maildir folders survive export and import, even when the platform
    domain changed after a mailbox was registered."""
    a, b = os.path.join(tmp, "fa"), os.path.join(tmp, "fb")
    ok(a, "init", "--platform-domain", "old.example")
    ok(a, "tenant", "add", "acme")
    ok(a, "inbound", "mailbox", "add", "acme", "x@acme.old.example")
    ok(a, "settings", "set", "platform_domain", "new.example")
    ok(a, "inbound", "mailbox", "add", "acme", "x@acme.new.example")
    ok(a, "inbound", "mailbox", "add", "acme", "y@elsewhere.example")
    want = {"x@acme.old.example": "x", "x@acme.new.example":
            "x@acme.new.example", "y@elsewhere.example":
            "y@elsewhere.example"}
    check(js(a, "inbound", "mailbox", "list", "acme")["mailboxes"] == want,
          "mailbox folders")
    first = export(a)
    ok(b, "import", "-", stdin=first.encode())
    check(export(b) == first, "folders round trip")
    e = js(b, "explain", "inbound", "s@x.example", "x@acme.old.example")
    check(e["mailbox_dir"] == "acme/x", "kept folder: %r" % e)

    # A hand-written file may list addresses only: the store picks folders.
    doc = json.loads(first)
    doc["tenants"]["acme"]["inbound"]["mailboxes"] = ["z@acme.new.example"]
    ok(b, "import", "-", stdin=json.dumps(doc).encode())
    check(js(b, "inbound", "mailbox", "list", "acme")["mailboxes"] ==
          {"z@acme.new.example": "z"}, "import of a mailbox array")


def test_explain(tmp):
    db = os.path.join(tmp, "store")
    populate(db)
    out_cases = [
        # tenant, recipient, level, required, rule
        ("acme", "a@vendor.example", "encrypt", True,
         "domain:vendor.example"),
        ("acme", "a@Vendor.Example.", "encrypt", True,
         "domain:vendor.example"),
        ("acme", "a@mx.example.com", "verify", True,
         "subdomain:.example.com"),
        ("acme", "a@example.com", "none", False, "default:unlisted"),
        ("acme", "a@bücher.example", "secure", True,
         "domain:xn--bcher-kva.example"),
        ("acme", "a@plain.example", "may", False, "domain:plain.example"),
        ("acme", "a@other.example", "none", False, "default:unlisted"),
        ("beta", "a@other.example", "verify", True, "default:mode=all"),
        ("beta", "a@strong.example", "secure", True,
         "domain:strong.example"),
        ("beta", "a@weak.example", "verify", True, "default:mode=all"),
        ("gamma", "a@vendor.example", "none", False, "default:mode=off"),
    ]
    g = generation(db)
    for tenant, rcpt, level, req, rule in out_cases:
        e = js(db, "explain", "outbound", tenant, rcpt)
        got = (e.get("tenant"), e.get("level"), e.get("required"),
               e.get("rule"), e.get("generation"))
        check(got == (tenant, level, req, rule, g),
              "explain outbound %s %s: %r" % (tenant, rcpt, got))
        check(e.get("recipient") == rcpt.lower().rstrip(".") or
              "xn--" in e.get("recipient", ""), "recipient normalised")
    text = ok(db, "explain", "outbound", "acme", "a@mx.example.com")
    check("subdomain:.example.com" in text and "verify" in text,
          "explain outbound text")

    acme_mb, beta_mb = "globalmobility@acme." + PD, "audit@beta." + PD
    in_cases = [
        # sender, recipient, tls, action, reply, tenant, rule
        ("a@partner.example", acme_mb, False, "accept", "250 2.1.5", "acme",
         "allowlist:trusted:partner.example"),
        ("a@mx.trusted.example", acme_mb, False, "accept", "250 2.1.5",
         "acme", "allowlist:trusted:.trusted.example"),
        ("a@stranger.example", acme_mb, False, "reject", "550 5.7.1",
         "acme", "allowlist:not-trusted"),
        ("<@a.example:b@stranger.example>", acme_mb, False, "reject",
         "550 5.7.1", "acme", "allowlist:not-trusted"),
        ("a@x.example", "nobody@acme." + PD, True, "reject", "550 5.1.1",
         "", "no-mailbox"),
        ("a@x.example", beta_mb, False, "reject", "530 5.7.0", "beta",
         "tls-required"),
        ("a@x.example", beta_mb, True, "accept", "250 2.1.5", "beta",
         "mailbox"),
        ("a@x.example", "box@gamma." + PD, True, "discard", "250 2.1.5",
         "gamma", "allowlist:not-trusted"),
    ]
    for sender, rcpt, tls, action, reply, tenant, rule in in_cases:
        args = ["explain", "inbound", sender, rcpt] + (["--tls"] if tls
                                                       else [])
        e = js(db, *args)
        got = (e.get("action"), e.get("reply"), e.get("tenant"),
               e.get("rule"), e.get("generation"))
        check(got == (action, reply, tenant, rule, g),
              "explain inbound %s %s tls=%s: %r" % (sender, rcpt, tls, got))
        if tenant:
            check(e.get("mailbox") == rcpt, "explain inbound mailbox")
    text = ok(db, "explain", "inbound", "a@x.example", beta_mb)
    check("530 5.7.0" in text and "tls-required" in text,
          "explain inbound text")


def test_newuser(tmp):
    """What a new user tripped over: a failed import leaves no store
    behind, status on a folder without a store fails, bare IP addresses,
    keyword lists, usage text, mailbox syntax, absolute status path and
    tenant show --json key order."""
    doc = os.path.join(tmp, "nopd.json")
    with open(doc, "w") as f:
        json.dump({"version": 1, "tenants": {}}, f)
    new = os.path.join(tmp, "x", "new")
    rc, out, err = run(new, "import", doc)
    check(rc == 1 and out == "", "import without platform domain: %d" % rc)
    check(not os.path.exists(os.path.join(tmp, "x")),
          "failed import left %r" % [d for d in os.walk(tmp)])
    empty = os.path.join(tmp, "empty")
    os.mkdir(empty)
    rc, out, err = run(empty, "import", doc)
    check(rc == 1 and os.listdir(empty) == [],
          "failed import into an empty folder left %r" % os.listdir(empty))
    rc, out, err = run(empty, "status")
    check(rc == 1 and out == "" and "no policy store in " + empty in err,
          "status on an empty folder: %d %r %r" % (rc, out, err))

    rc, out, err = run("rel", "init", "--platform-domain", PD, cwd=tmp)
    check(rc == 0, "init with a relative --db: %r" % err)
    rc, out, err = run("rel", "status", cwd=tmp)
    check(rc == 0 and ("db               %s/rel\n" % os.path.realpath(tmp))
          in out, "status prints a relative path: %r" % out)
    db = os.path.join(tmp, "rel")
    ok(db, "tenant", "add", "acme")
    for args, want_rc, want in (
            (["tenant", "list", "extra"], 2, "(usage: tenant list)\n"),
            (["outbound", "add", "acme", "1.2.3.4"], 1, "in brackets: "
             "[1.2.3.4]"),
            (["outbound", "mode", "acme", "all", "--level", "may"], 2,
             "level 'may' is not encrypt"),
            (["inbound", "mailbox", "add", "acme",
              "<@a.example,@b.example:x@acme.%s>" % PD], 1,
             "without angle brackets or a source route"),
            (["inbound", "mailbox", "add", "acme", "<x@acme.%s>" % PD], 1,
             "without angle brackets")):
        g = generation(db)
        rc, out, err = run(db, *args)
        check(rc == want_rc and want in err and out == "",
              "%s: %d %r" % (" ".join(args), rc, err))
        check(generation(db) == g, "%s changed the store" % " ".join(args))
    ok(db, "outbound", "add", "acme", "[1.2.3.4]")
    ok(db, "outbound", "add", "acme", "[IPv6:::1]")
    ok(db, "inbound", "mailbox", "add", "acme", "x@acme.%s" % PD)
    show = ok(db, "tenant", "show", "acme", "--json")
    exp = json.loads(export(db), object_pairs_hook=lambda p: p)
    tenants = dict(dict(exp)["tenants"])
    want = dict(tenants["acme"])
    got = json.loads(show, object_pairs_hook=lambda p: p)
    for part in ("outbound", "inbound"):
        check(dict(got)[part] == want[part],
              "tenant show --json %s differs from the export" % part)
    keys = [k for k, _ in got]
    check(keys == sorted(keys), "tenant show --json keys %r" % keys)


def main():
    global ADMIN
    ADMIN = os.path.abspath(sys.argv[1])
    group = sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="tlsgate-admin-%s-" % group)
    try:
        {"commands": test_commands, "badinput": test_badinput,
         "roundtrip": test_roundtrip, "explain": test_explain,
         "newuser": test_newuser}[group](tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if FAILS:
        print("%d check(s) failed" % len(FAILS), file=sys.stderr)
        return 1
    print("ok: %s" % group)
    return 0


if __name__ == "__main__":
    sys.exit(main())
