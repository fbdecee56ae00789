/* The decision matrix: outbound levels in every mode, inbound replies,
 * the tenant of a submission sender, and route overrides. */
#include "store_test.h"

/* Without a sanitizer, this binary counts heap allocations so that the hot
 * path can be shown to make none (ASan brings its own allocator). */
static unsigned long n_allocs;
#if defined(__SANITIZE_ADDRESS__)
#define COUNT_MALLOC 0
#else
#define COUNT_MALLOC 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

void *malloc(size_t n)
{
    n_allocs++;
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
    n_allocs++;
    return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
    n_allocs++;
    return __libc_realloc(p, n);
}
#endif

/* Tenants and entries shared by every test in this file. */
static void load_policy(struct fixture *fx)
{
    struct store_txn *t = fx_write(fx);

    assert_int_equal(store_tenant_add(t, "off1", NULL), 0);
    assert_int_equal(
        store_outbound_add(t, "off1", "vendor.example", TLS_SECURE), 0);

    assert_int_equal(store_tenant_add(t, "all1", NULL), 0);
    assert_int_equal(store_outbound_mode(t, "all1", MODE_ALL, TLS_ENCRYPT), 0);
    assert_int_equal(
        store_outbound_add(t, "all1", "vendor.example", TLS_SECURE), 0);
    assert_int_equal(store_outbound_add(t, "all1", "weak.example", TLS_MAY), 0);
    assert_int_equal(store_outbound_add(t, "all1", ".sub.example", TLS_VERIFY),
                     0);

    assert_int_equal(store_tenant_add(t, "all2", NULL), 0);
    assert_int_equal(store_outbound_mode(t, "all2", MODE_ALL, TLS_VERIFY), 0);

    assert_int_equal(store_tenant_add(t, "dom1", NULL), 0);
    assert_int_equal(store_outbound_mode(t, "dom1", MODE_DOMAINS, TLS_NONE), 0);
    assert_int_equal(
        store_outbound_add(t, "dom1", "Vendor.Example.", TLS_VERIFY), 0);
    assert_int_equal(store_outbound_add(t, "dom1", ".example.com", TLS_ENCRYPT),
                     0);
    assert_int_equal(
        store_outbound_add(t, "dom1", ".deep.example.com", TLS_SECURE), 0);
    assert_int_equal(store_outbound_add(t, "dom1", "example.com", TLS_MAY), 0);
    assert_int_equal(
        store_outbound_add(t, "dom1", "plain.example.com", TLS_NONE), 0);
    assert_int_equal(
        store_outbound_add(t, "dom1", "bücher.example", TLS_ENCRYPT), 0);
    assert_int_equal(store_outbound_add(t, "dom1", "[192.0.2.1]", TLS_ENCRYPT),
                     0);
    assert_int_equal(store_commit(t), 0);
}

static int setup(void **state)
{
    fx_setup(state);
    load_policy(*state);
    return 0;
}

struct out_case {
    const char *tenant;
    const char *rcpt;
    enum tls_level level;
    const char *rule;
    const char *domain;
};

static const struct out_case out_cases[] = {
    /* mode off: entries are ignored */
    {"off1", "x@vendor.example", TLS_NONE, "default:mode=off", NULL},
    {"off1", "x@other.example", TLS_NONE, "default:mode=off", NULL},
    /* mode all: the default, raised only by a stronger entry */
    {"all1", "x@vendor.example", TLS_SECURE, "domain:vendor.example", NULL},
    {"all1", "x@weak.example", TLS_ENCRYPT, "default:mode=all", NULL},
    {"all1", "x@a.sub.example", TLS_VERIFY, "subdomain:.sub.example", NULL},
    {"all1", "x@a.b.sub.example", TLS_VERIFY, "subdomain:.sub.example", NULL},
    {"all1", "x@sub.example", TLS_ENCRYPT, "default:mode=all", NULL},
    {"all1", "x@other.example", TLS_ENCRYPT, "default:mode=all", NULL},
    {"all2", "x@other.example", TLS_VERIFY, "default:mode=all", NULL},
    /* mode domains: exact beats subdomain, longest subdomain wins */
    {"dom1", "x@vendor.example", TLS_VERIFY, "domain:vendor.example", NULL},
    {"dom1", "x@a.example.com", TLS_ENCRYPT, "subdomain:.example.com", NULL},
    {"dom1", "x@deep.example.com", TLS_ENCRYPT, "subdomain:.example.com", NULL},
    {"dom1", "x@a.deep.example.com", TLS_SECURE, "subdomain:.deep.example.com",
     NULL},
    {"dom1", "x@b.a.deep.example.com", TLS_SECURE,
     "subdomain:.deep.example.com", NULL},
    {"dom1", "x@example.com", TLS_MAY, "domain:example.com", NULL},
    {"dom1", "x@plain.example.com", TLS_NONE, "domain:plain.example.com", NULL},
    {"dom1", "x@unlisted.example", TLS_NONE, "default:unlisted", NULL},
    {"dom1", "x@com", TLS_NONE, "default:unlisted", NULL},
    /* the recipient is normalised before matching */
    {"dom1", "X@VENDOR.EXAMPLE.", TLS_VERIFY, "domain:vendor.example",
     "vendor.example"},
    {"dom1", "<@relay.example:x@Vendor.Example>", TLS_VERIFY,
     "domain:vendor.example", "vendor.example"},
    {"dom1", "x@BÜCHER.example", TLS_ENCRYPT, "domain:xn--bcher-kva.example",
     "xn--bcher-kva.example"},
    {"dom1", "x@xn--bcher-kva.example.", TLS_ENCRYPT,
     "domain:xn--bcher-kva.example", NULL},
    {"dom1", "x@A.Deep.Example.Com.", TLS_SECURE, "subdomain:.deep.example.com",
     "a.deep.example.com"},
    {"dom1", "x@[192.0.2.1]", TLS_ENCRYPT, "domain:[192.0.2.1]", NULL},
    {"dom1", "x@[192.0.2.2]", TLS_NONE, "default:unlisted", NULL},
};

static void test_outbound_matrix(void **state)
{
    struct fixture *fx = *state;
    struct store_txn *t = fx_read(fx);

    for (size_t i = 0; i < sizeof(out_cases) / sizeof(out_cases[0]); i++) {
        const struct out_case *c = &out_cases[i];
        struct outbound_decision d;
        int rc = policy_outbound(t, c->tenant, c->rcpt, &d);

        if (rc != 0)
            fail_msg("%s %s: %s", c->tenant, c->rcpt, store_strerror(rc));
        if (d.level != c->level || strcmp(d.rule, c->rule) != 0)
            fail_msg("%s %s: got %s %s, want %s %s", c->tenant, c->rcpt,
                     tls_level_name(d.level), d.rule, tls_level_name(c->level),
                     c->rule);
        assert_int_equal(d.required, c->level >= TLS_ENCRYPT);
        assert_string_equal(d.tenant, c->tenant);
        assert_int_equal(d.generation, store_generation(t));
        if (c->domain != NULL)
            assert_string_equal(d.domain, c->domain);
    }
    store_abort(t);
}

static void test_outbound_errors(void **state)
{
    struct fixture *fx = *state;
    struct store_txn *t = fx_read(fx);
    struct outbound_decision d;

    assert_int_equal(policy_outbound(t, "nobody", "x@a.example", &d),
                     STORE_ENOTFOUND);
    assert_int_equal(policy_outbound(t, "Bad Name", "x@a.example", &d),
                     STORE_ENOTFOUND);
    assert_int_equal(policy_outbound(t, "dom1", "not an address", &d),
                     STORE_EINVAL);
    assert_int_equal(policy_outbound(t, "dom1", "<>", &d), STORE_EINVAL);
    assert_int_equal(policy_outbound(t, "dom1", "x@a..example", &d),
                     STORE_EINVAL);
    assert_int_equal(policy_outbound(t, "dom1", "X@Vendor.Example", &d), 0);
    assert_string_equal(d.recipient, "x@vendor.example");
    store_abort(t);
}

/* Tenants for the inbound cases. */
static void load_inbound(struct fixture *fx)
{
    struct store_txn *t = fx_write(fx);

    assert_int_equal(store_tenant_add(t, "acme", NULL), 0);
    assert_int_equal(
        store_mailbox_add(t, "acme", "GlobalMobility@acme.mail.example.net"),
        0);
    assert_int_equal(store_mailbox_add(t, "acme", "alias@Other.Example"), 0);

    assert_int_equal(store_tenant_add(t, "tlsco", NULL), 0);
    assert_int_equal(store_inbound_tls(t, "tlsco", true), 0);
    assert_int_equal(store_mailbox_add(t, "tlsco", "ops@tlsco." PLATFORM), 0);

    assert_int_equal(store_tenant_add(t, "strict", NULL), 0);
    assert_int_equal(store_allowlist(t, "strict", true, IN_REJECT), 0);
    assert_int_equal(store_trust_add(t, "strict", "Partner.Example"), 0);
    assert_int_equal(store_trust_add(t, "strict", ".trusted.example"), 0);
    assert_int_equal(store_trust_add(t, "strict", "bücher.example"), 0);
    assert_int_equal(store_mailbox_add(t, "strict", "in@strict." PLATFORM), 0);

    assert_int_equal(store_tenant_add(t, "quiet", NULL), 0);
    assert_int_equal(store_allowlist(t, "quiet", true, IN_DISCARD), 0);
    assert_int_equal(store_mailbox_add(t, "quiet", "in@quiet." PLATFORM), 0);

    assert_int_equal(store_tenant_add(t, "both", NULL), 0);
    assert_int_equal(store_allowlist(t, "both", true, IN_REJECT), 0);
    assert_int_equal(store_inbound_tls(t, "both", true), 0);
    assert_int_equal(store_mailbox_add(t, "both", "in@both." PLATFORM), 0);
    assert_int_equal(store_commit(t), 0);
}

struct in_case {
    const char *sender;
    const char *rcpt;
    bool tls;
    enum in_action action;
    int code;
    const char *enhanced;
    const char *rule;
    const char *tenant;
    const char *dir;
};

#define ACC  IN_ACCEPT, 250, "2.1.5"
#define R511 IN_REJECT, 550, "5.1.1"
#define R571 IN_REJECT, 550, "5.7.1"
#define R570 IN_REJECT, 530, "5.7.0"
#define DISC IN_DISCARD, 250, "2.1.5"

static const struct in_case in_cases[] = {
    {"a@b.example", "globalmobility@acme." PLATFORM, false, ACC, "mailbox",
     "acme", "acme/globalmobility"},
    {"<>", "<GlobalMobility@ACME.Mail.Example.Net.>", false, ACC, "mailbox",
     "acme", "acme/globalmobility"},
    {"a@b.example", "alias@other.example", true, ACC, "mailbox", "acme",
     "acme/alias@other.example"},
    {"a@b.example", "nobody@acme." PLATFORM, false, R511, "no-mailbox", "", ""},
    {"a@b.example", "globalmobility@other.example", false, R511, "no-mailbox",
     "", ""},
    {"a@b.example", "\"globalmobility@acme." PLATFORM "\"@evil.example", false,
     R511, "no-mailbox", "", ""},
    /* TLS required */
    {"a@b.example", "ops@tlsco." PLATFORM, false, R570, "tls-required", "tlsco",
     "tlsco/ops"},
    {"a@b.example", "ops@tlsco." PLATFORM, true, ACC, "mailbox", "tlsco",
     "tlsco/ops"},
    /* allow-list, reject action */
    {"x@partner.example", "in@strict." PLATFORM, false, ACC,
     "allowlist:trusted:partner.example", "strict", "strict/in"},
    {"X@PARTNER.EXAMPLE.", "in@strict." PLATFORM, false, ACC,
     "allowlist:trusted:partner.example", "strict", "strict/in"},
    {"x@a.trusted.example", "in@strict." PLATFORM, false, ACC,
     "allowlist:trusted:.trusted.example", "strict", "strict/in"},
    {"x@BÜCHER.example", "in@strict." PLATFORM, false, ACC,
     "allowlist:trusted:xn--bcher-kva.example", "strict", "strict/in"},
    {"x@trusted.example", "in@strict." PLATFORM, false, R571,
     "allowlist:not-trusted", "strict", "strict/in"},
    {"x@sub.partner.example", "in@strict." PLATFORM, false, R571,
     "allowlist:not-trusted", "strict", "strict/in"},
    {"<>", "in@strict." PLATFORM, false, R571, "allowlist:not-trusted",
     "strict", "strict/in"},
    {"garbage", "in@strict." PLATFORM, false, R571, "allowlist:not-trusted",
     "strict", "strict/in"},
    {"<@partner.example:b@evil.example>", "in@strict." PLATFORM, false, R571,
     "allowlist:not-trusted", "strict", "strict/in"},
    {"\"b@partner.example\"@evil.example", "in@strict." PLATFORM, false, R571,
     "allowlist:not-trusted", "strict", "strict/in"},
    {"b%partner.example@evil.example", "in@strict." PLATFORM, false, R571,
     "allowlist:not-trusted", "strict", "strict/in"},
    {"b@evil.example.partner.example.attacker", "in@strict." PLATFORM, false,
     R571, "allowlist:not-trusted", "strict", "strict/in"},
    /* allow-list, discard action */
    {"x@any.example", "in@quiet." PLATFORM, false, DISC,
     "allowlist:not-trusted", "quiet", "quiet/in"},
    /* TLS is checked before the allow-list */
    {"x@any.example", "in@both." PLATFORM, false, R570, "tls-required", "both",
     "both/in"},
    {"x@any.example", "in@both." PLATFORM, true, R571, "allowlist:not-trusted",
     "both", "both/in"},
};

static void test_inbound_matrix(void **state)
{
    struct fixture *fx = *state;
    struct store_txn *t;

    load_inbound(fx);
    t = fx_read(fx);
    for (size_t i = 0; i < sizeof(in_cases) / sizeof(in_cases[0]); i++) {
        const struct in_case *c = &in_cases[i];
        struct inbound_decision d;
        int rc = policy_inbound(t, c->sender, c->rcpt, c->tls, &d);

        if (rc != 0)
            fail_msg("%s -> %s: %s", c->sender, c->rcpt, store_strerror(rc));
        if (d.action != c->action || d.code != c->code ||
            strcmp(d.enhanced, c->enhanced) != 0 ||
            strcmp(d.rule, c->rule) != 0)
            fail_msg("%s -> %s: got %s %d %s %s", c->sender, c->rcpt,
                     in_action_name(d.action), d.code, d.enhanced, d.rule);
        assert_string_equal(d.tenant, c->tenant);
        assert_string_equal(d.mailbox_dir, c->dir);
        assert_int_equal(d.generation, store_generation(t));
        assert_true(d.text[0] != '\0');
    }
    store_abort(t);
}

static void test_inbound_errors(void **state)
{
    struct fixture *fx = *state;
    struct inbound_decision d;
    struct store_txn *t;

    load_inbound(fx);
    t = fx_read(fx);
    assert_int_equal(policy_inbound(t, "a@b.example", "<>", false, &d),
                     STORE_EINVAL);
    assert_int_equal(policy_inbound(t, "a@b.example", "bad", false, &d),
                     STORE_EINVAL);
    assert_int_equal(
        policy_inbound(t, "a@b.example", "in@strict\r\n.x", false, &d),
        STORE_EINVAL);
    assert_int_equal(policy_inbound(t, "a@b.example",
                                    "GlobalMobility@acme." PLATFORM, false, &d),
                     0);
    assert_string_equal(d.mailbox, "globalmobility@acme." PLATFORM);
    store_abort(t);
}

static void test_tenant_for_sender(void **state)
{
    struct fixture *fx = *state;
    struct store_txn *t = fx_write(fx);
    struct tenant_info ti;

    assert_int_equal(store_tenant_add(t, "acme", "News@Brand.Example"), 0);
    assert_int_equal(store_tenant_add(t, "beta", NULL), 0);
    assert_int_equal(store_commit(t), 0);
    t = fx_read(fx);

    assert_int_equal(policy_tenant_for_sender(t, "x@acme." PLATFORM, &ti), 0);
    assert_string_equal(ti.name, "acme");
    assert_string_equal(ti.from, "news@brand.example");
    assert_false(ti.from_is_default);
    assert_int_equal(
        policy_tenant_for_sender(t, "<NoReply@BETA.Mail.Example.Net.>", &ti),
        0);
    assert_string_equal(ti.name, "beta");
    assert_string_equal(ti.from, "noreply@beta." PLATFORM);
    assert_true(ti.from_is_default);
    assert_int_equal(policy_tenant_for_sender(t, "news@brand.example", &ti), 0);
    assert_string_equal(ti.name, "acme");
    assert_int_equal(policy_tenant_for_sender(t, "other@brand.example", &ti),
                     STORE_ENOTFOUND);
    assert_int_equal(policy_tenant_for_sender(t, "x@nobody." PLATFORM, &ti),
                     STORE_ENOTFOUND);
    assert_int_equal(policy_tenant_for_sender(t, "x@sub.acme." PLATFORM, &ti),
                     STORE_ENOTFOUND);
    assert_int_equal(policy_tenant_for_sender(t, "x@" PLATFORM, &ti),
                     STORE_ENOTFOUND);
    assert_int_equal(policy_tenant_for_sender(t, "<>", &ti), STORE_ENOTFOUND);
    assert_int_equal(policy_tenant_for_sender(t, "bad", &ti), STORE_EINVAL);
    store_abort(t);
}

static void test_routes(void **state)
{
    struct fixture *fx = *state;
    struct store_txn *t = fx_write(fx);
    char host[ADDR_DOMAIN_MAX + 1];
    unsigned port;

    assert_int_equal(store_route_add(t, "Example.ORG.", "MX.Example.Org", 2525),
                     0);
    assert_int_equal(store_route_add(t, ".example.net", "[127.0.0.1]", 25), 0);
    assert_int_equal(store_route_add(t, ".b.example.net", "::1", 10025), 0);
    assert_int_equal(store_route_add(t, "v6.example", "[IPv6:::1]", 1),
                     STORE_EINVAL);
    assert_int_equal(store_commit(t), 0);
    t = fx_read(fx);

    assert_int_equal(policy_route(t, "EXAMPLE.org.", host, sizeof(host), &port),
                     0);
    assert_string_equal(host, "mx.example.org");
    assert_int_equal(port, 2525);
    assert_int_equal(
        policy_route(t, "a.example.net", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 25);
    assert_int_equal(
        policy_route(t, "x.a.b.example.net", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 10025);
    assert_int_equal(policy_route(t, "v6.example", host, sizeof(host), &port),
                     STORE_ENOTFOUND);
    assert_int_equal(policy_route(t, "example.net", host, sizeof(host), &port),
                     STORE_ENOTFOUND);
    assert_int_equal(
        policy_route(t, "sub.example.org", host, sizeof(host), &port),
        STORE_ENOTFOUND);
    assert_int_equal(policy_route(t, "a..b", host, sizeof(host), &port),
                     STORE_EINVAL);
    store_abort(t);
}

/* A hot reader (reset/renew) deciding ASCII addresses allocates nothing. */
static void test_hot_path_allocates_nothing(void **state)
{
    struct fixture *fx = *state;
    struct outbound_decision od;
    struct inbound_decision id;
    struct tenant_info ti;
    char host[ADDR_DOMAIN_MAX + 1];
    unsigned long before = 0;
    struct store_txn *t;
    unsigned port;

    if (!COUNT_MALLOC)
        skip();
    t = fx_write(fx);
    assert_int_equal(store_tenant_add(t, "acme", NULL), 0);
    assert_int_equal(store_mailbox_add(t, "acme", "in@acme." PLATFORM), 0);
    assert_int_equal(store_allowlist(t, "acme", true, IN_REJECT), 0);
    assert_int_equal(store_trust_add(t, "acme", ".partner.example"), 0);
    assert_int_equal(store_route_add(t, ".example.org", "mx.example.org", 25),
                     0);
    assert_int_equal(store_commit(t), 0);

    t = fx_read(fx);
    for (int i = 0; i < 1001; i++) {
        if (i == 1) /* the first round warms the decoder's zone up */
            before = n_allocs;
        store_reset(t);
        assert_int_equal(store_renew(t), 0);
        assert_int_equal(
            policy_outbound(t, "dom1", "X@a.Deep.example.com", &od), 0);
        assert_int_equal(od.level, TLS_SECURE);
        assert_int_equal(policy_inbound(t, "<b@x.partner.example>",
                                        "<In@acme." PLATFORM ">", true, &id),
                         0);
        assert_int_equal(id.action, IN_ACCEPT);
        assert_int_equal(policy_tenant_for_sender(t, "a@acme." PLATFORM, &ti),
                         0);
        assert_int_equal(
            policy_route(t, "a.example.org", host, sizeof(host), &port), 0);
    }
    assert_int_equal(n_allocs - before, 0);
    store_abort(t);
    /* the counter does count: a new transaction allocates its handle */
    before = n_allocs;
    t = fx_read(fx);
    store_abort(t);
    assert_true(n_allocs > before);
}

static void test_names(void **state)
{
    enum tls_level l;
    enum out_mode m;

    for (int i = TLS_NONE; i <= TLS_SECURE; i++) {
        assert_int_equal(tls_level_parse(tls_level_name(i), &l), 0);
        assert_int_equal(l, i);
    }
    assert_int_equal(tls_level_parse("dane", &l), STORE_EINVAL);
    assert_int_equal(tls_level_parse("", &l), STORE_EINVAL);
    for (int i = MODE_OFF; i <= MODE_DOMAINS; i++) {
        assert_int_equal(out_mode_parse(out_mode_name(i), &m), 0);
        assert_int_equal(m, i);
    }
    assert_int_equal(out_mode_parse("some", &m), STORE_EINVAL);
    assert_string_equal(in_action_name(IN_DISCARD), "discard");
    assert_string_equal(tls_level_name(99), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_outbound_matrix, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_outbound_errors, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_inbound_matrix, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_inbound_errors, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_tenant_for_sender, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_routes, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_hot_path_allocates_nothing, setup,
                                        fx_teardown),
        cmocka_unit_test(test_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
