/* The store itself: bad input leaves it (and the generation) unchanged,
 * one generation per commit, cascading tenant removal, corrupt records,
 * a full map, hot-reader reset/renew, clear. */
#include "store_test.h"
#include "store_impl.h"

/* ---- a text dump of the whole store through the public API ---- */

struct dump {
    char buf[16384];
    size_t len;
    struct store_txn *txn;
};

static void dump_add(struct dump *d, const char *fmt, const char *a,
                     const char *b)
{
    int n = snprintf(d->buf + d->len, sizeof(d->buf) - d->len, fmt, a, b);

    assert_true(n > 0 && (size_t)n < sizeof(d->buf) - d->len);
    d->len += (size_t)n;
}

static int dump_setting(const char *key, const char *value, void *ctx)
{
    dump_add(ctx, "set %s=%s\n", key, value);
    return 0;
}

static int dump_entry(const char *domain, enum tls_level lvl, void *ctx)
{
    dump_add(ctx, "  out %s %s\n", domain, tls_level_name(lvl));
    return 0;
}

static int dump_one(const char *s, void *ctx)
{
    dump_add(ctx, "  item %s%s\n", s, "");
    return 0;
}

static int dump_tenant(const struct tenant_info *ti, void *ctx)
{
    struct dump *d = ctx;
    char flags[64];

    snprintf(flags, sizeof(flags), "%d %d %d %d %d %d", ti->mode,
             ti->default_level, ti->inbound_tls_required, ti->allowlist,
             ti->allowlist_action, ti->from_is_default);
    dump_add(d, "tenant %s %s", ti->name, ti->from);
    dump_add(d, " %s%s\n", flags, "");
    assert_int_equal(store_outbound_foreach(d->txn, ti->name, dump_entry, d),
                     0);
    assert_int_equal(store_mailbox_foreach(d->txn, ti->name, dump_one, d), 0);
    assert_int_equal(store_trust_foreach(d->txn, ti->name, dump_one, d), 0);
    return 0;
}

static int dump_route(const char *domain, const char *host, unsigned port,
                      void *ctx)
{
    char p[16];

    snprintf(p, sizeof(p), "%u", port);
    dump_add(ctx, "route %s %s", domain, host);
    dump_add(ctx, ":%s%s\n", p, "");
    return 0;
}

/* Dumps the store, generation included, into d. */
static void dump_store(struct fixture *fx, struct dump *d)
{
    char gen[32];

    d->len = 0;
    d->buf[0] = '\0';
    d->txn = fx_read(fx);
    snprintf(gen, sizeof(gen), "%llu",
             (unsigned long long)store_generation(d->txn));
    dump_add(d, "generation %s%s\n", gen, "");
    assert_int_equal(store_setting_foreach(d->txn, dump_setting, d), 0);
    assert_int_equal(store_tenant_foreach(d->txn, dump_tenant, d), 0);
    assert_int_equal(store_route_foreach(d->txn, dump_route, d), 0);
    store_abort(d->txn);
}

/* A store with one of everything. */
static void load_some(struct fixture *fx)
{
    struct store_txn *t = fx_write(fx);

    assert_int_equal(store_tenant_add(t, "acme", "news@brand.example"), 0);
    assert_int_equal(store_outbound_mode(t, "acme", MODE_DOMAINS, TLS_NONE), 0);
    assert_int_equal(
        store_outbound_add(t, "acme", "vendor.example", TLS_VERIFY), 0);
    assert_int_equal(store_outbound_add(t, "acme", ".example.com", TLS_MAY), 0);
    assert_int_equal(store_mailbox_add(t, "acme", "info@acme." PLATFORM), 0);
    assert_int_equal(store_mailbox_add(t, "acme", "alias@other.example"), 0);
    assert_int_equal(store_allowlist(t, "acme", true, IN_DISCARD), 0);
    assert_int_equal(store_trust_add(t, "acme", "partner.example"), 0);
    assert_int_equal(store_trust_add(t, "acme", ".trusted.example"), 0);
    assert_int_equal(store_inbound_tls(t, "acme", true), 0);
    assert_int_equal(store_tenant_add(t, "beta", NULL), 0);
    assert_int_equal(store_mailbox_add(t, "beta", "info@beta." PLATFORM), 0);
    assert_int_equal(
        store_outbound_add(t, "beta", "vendor.example", TLS_SECURE), 0);
    assert_int_equal(store_trust_add(t, "beta", "partner.example"), 0);
    assert_int_equal(store_route_add(t, "example.org", "127.0.0.1", 2525), 0);
    assert_int_equal(store_commit(t), 0);
}

static int setup_some(void **state)
{
    fx_setup(state);
    load_some(*state);
    return 0;
}

static void test_generation(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    struct store_txn *t;

    *state = fx;
    fx_mkdir(fx);
    assert_int_equal(store_open(&fx->st, fx->dir, 0, STORE_RDONLY),
                     STORE_ENOINIT);
    assert_int_equal(store_open(&fx->st, fx->dir, 0, STORE_CREATE), 0);

    t = fx_read(fx);
    assert_int_equal(store_generation(t), 0);
    store_abort(t);
    t = fx_write(fx);
    assert_int_equal(store_tenant_add(t, "acme", NULL), STORE_ENOINIT);
    assert_int_equal(store_init(t, "bad..domain"), STORE_EINVAL);
    assert_int_equal(store_init(t, "[192.0.2.1]"), STORE_EINVAL);
    assert_int_equal(store_init(t, "Mail.Example.NET."), 0);
    assert_int_equal(store_commit(t), 0);

    t = fx_read(fx);
    assert_int_equal(store_generation(t), 1);
    assert_int_equal(store_commit(t), 0); /* a read commit bumps nothing */
    for (int i = 0; i < 3; i++) {
        t = fx_write(fx);
        assert_int_equal(store_tenant_add(t,
                                          i == 0   ? "a"
                                          : i == 1 ? "b"
                                                   : "c",
                                          NULL),
                         0);
        assert_int_equal(store_outbound_add(t, "a", "x.example", TLS_MAY), 0);
        assert_int_equal(store_commit(t), 0);
    }
    t = fx_write(fx); /* an empty write still counts as one change */
    assert_int_equal(store_commit(t), 0);
    t = fx_write(fx); /* an aborted one does not */
    assert_int_equal(store_tenant_add(t, "d", NULL), 0);
    store_abort(t);
    t = fx_read(fx);
    assert_int_equal(store_generation(t), 5);
    assert_int_equal(store_init(t, PLATFORM), 0); /* same domain: no-op */
    store_abort(t);
    t = fx_write(fx);
    assert_int_equal(store_init(t, "other.example"), STORE_EEXIST);
    store_abort(t);
    fx_teardown(state);
}

struct bad_case {
    const char *what;
    int want;
    int (*op)(struct store_txn *t);
};

static int bad_tenant_upper(struct store_txn *t)
{
    return store_tenant_add(t, "Acme", NULL);
}
static int bad_tenant_dash(struct store_txn *t)
{
    return store_tenant_add(t, "-acme", NULL);
}
static int bad_tenant_dash2(struct store_txn *t)
{
    return store_tenant_add(t, "acme-", NULL);
}
static int bad_tenant_empty(struct store_txn *t)
{
    return store_tenant_add(t, "", NULL);
}
static int bad_tenant_underscore(struct store_txn *t)
{
    return store_tenant_add(t, "a_b", NULL);
}
static int bad_tenant_dot(struct store_txn *t)
{
    return store_tenant_add(t, "a.b", NULL);
}
static int bad_tenant_long(struct store_txn *t)
{
    return store_tenant_add(t,
                            "a1234567890123456789012345678901234567890"
                            "1234567890123456789bcde",
                            NULL); /* 64 characters */
}
static int bad_tenant_exists(struct store_txn *t)
{
    return store_tenant_add(t, "acme", NULL);
}
static int bad_tenant_from(struct store_txn *t)
{
    return store_tenant_add(t, "gamma", "not an address");
}
static int bad_tenant_from_null(struct store_txn *t)
{
    return store_tenant_add(t, "gamma", "<>");
}
static int bad_tenant_from_taken(struct store_txn *t)
{
    return store_tenant_add(t, "gamma", "NEWS@brand.example");
}
static int bad_tenant_from_domain(struct store_txn *t)
{
    return store_tenant_add(t, "gamma", "x@acme." PLATFORM);
}
static int bad_set_from_domain(struct store_txn *t)
{
    return store_tenant_set_from(t, "beta", "news@acme." PLATFORM);
}
static int bad_mbox_other_domain(struct store_txn *t)
{
    return store_mailbox_add(t, "acme", "sales@beta." PLATFORM);
}
/* A tenant's own domain is reserved for it before the tenant exists. */
static int bad_mbox_future_domain(struct store_txn *t)
{
    return store_mailbox_add(t, "acme", "sales@later." PLATFORM);
}
static int bad_from_future_domain(struct store_txn *t)
{
    return store_tenant_set_from(t, "acme", "news@later." PLATFORM);
}
static int bad_remove_unknown(struct store_txn *t)
{
    return store_tenant_remove(t, "gamma");
}
static int bad_set_from_unknown(struct store_txn *t)
{
    return store_tenant_set_from(t, "gamma", "a@b.example");
}
static int bad_set_from_taken(struct store_txn *t)
{
    return store_tenant_set_from(t, "beta", "news@brand.example");
}
static int bad_set_from_syntax(struct store_txn *t)
{
    return store_tenant_set_from(t, "beta", "a@b@c");
}
static int bad_mode_level(struct store_txn *t)
{
    return store_outbound_mode(t, "acme", MODE_ALL, TLS_MAY);
}
static int bad_mode_value(struct store_txn *t)
{
    return store_outbound_mode(t, "acme", (enum out_mode)7, TLS_ENCRYPT);
}
static int bad_mode_level_value(struct store_txn *t)
{
    return store_outbound_mode(t, "acme", MODE_ALL, (enum tls_level)9);
}
static int bad_mode_tenant(struct store_txn *t)
{
    return store_outbound_mode(t, "gamma", MODE_OFF, TLS_NONE);
}
static int bad_out_domain(struct store_txn *t)
{
    return store_outbound_add(t, "acme", "a..example", TLS_MAY);
}
static int bad_out_domain2(struct store_txn *t)
{
    return store_outbound_add(t, "acme", "a_b.example", TLS_MAY);
}
static int bad_out_level(struct store_txn *t)
{
    return store_outbound_add(t, "acme", "a.example", (enum tls_level)5);
}
static int bad_out_tenant(struct store_txn *t)
{
    return store_outbound_add(t, "gamma", "a.example", TLS_MAY);
}
static int bad_out_remove(struct store_txn *t)
{
    return store_outbound_remove(t, "acme", "missing.example");
}
static int bad_out_remove_sub(struct store_txn *t)
{
    return store_outbound_remove(t, "acme", "example.com");
}
static int bad_mbox_slash(struct store_txn *t)
{
    return store_mailbox_add(t, "acme", "a/b@acme." PLATFORM);
}
static int bad_mbox_quoted(struct store_txn *t)
{
    return store_mailbox_add(t, "acme", "\"a b\"@acme." PLATFORM);
}
static int bad_mbox_literal(struct store_txn *t)
{
    return store_mailbox_add(t, "acme", "a@[192.0.2.1]");
}
static int bad_mbox_null(struct store_txn *t)
{
    return store_mailbox_add(t, "acme", "<>");
}
static int bad_mbox_other_tenant(struct store_txn *t)
{
    return store_mailbox_add(t, "acme", "INFO@beta." PLATFORM);
}
static int bad_mbox_twice(struct store_txn *t)
{
    return store_mailbox_add(t, "acme", "info@acme." PLATFORM ".");
}
static int bad_mbox_tenant(struct store_txn *t)
{
    return store_mailbox_add(t, "gamma", "info@gamma." PLATFORM);
}
static int bad_mbox_remove_other(struct store_txn *t)
{
    return store_mailbox_remove(t, "acme", "info@beta." PLATFORM);
}
static int bad_mbox_remove_missing(struct store_txn *t)
{
    return store_mailbox_remove(t, "acme", "nobody@acme." PLATFORM);
}
static int bad_allow_action(struct store_txn *t)
{
    return store_allowlist(t, "acme", true, IN_ACCEPT);
}
static int bad_allow_tenant(struct store_txn *t)
{
    return store_allowlist(t, "gamma", true, IN_REJECT);
}
static int bad_trust_domain(struct store_txn *t)
{
    return store_trust_add(t, "acme", "-bad.example");
}
static int bad_trust_remove(struct store_txn *t)
{
    return store_trust_remove(t, "acme", "missing.example");
}
static int bad_tls_tenant(struct store_txn *t)
{
    return store_inbound_tls(t, "gamma", true);
}
static int bad_route_port0(struct store_txn *t)
{
    return store_route_add(t, "example.net", "mx.example.net", 0);
}
static int bad_route_port_big(struct store_txn *t)
{
    return store_route_add(t, "example.net", "mx.example.net", 65536);
}
static int bad_route_host(struct store_txn *t)
{
    return store_route_add(t, "example.net", "bad host", 25);
}
static int bad_route_host2(struct store_txn *t)
{
    return store_route_add(t, "example.net", "[not-an-ip]", 25);
}
static int bad_route_host3(struct store_txn *t)
{
    return store_route_add(t, "example.net", "", 25);
}
static int bad_route_domain(struct store_txn *t)
{
    return store_route_add(t, "a..b", "mx.example.net", 25);
}
static int bad_route_remove(struct store_txn *t)
{
    return store_route_remove(t, "example.net");
}
static int bad_setting_key(struct store_txn *t)
{
    return store_setting_set(t, "no_such_key", "x");
}
static int bad_setting_domain(struct store_txn *t)
{
    return store_setting_set(t, "platform_domain", "bad domain");
}
static int bad_setting_local(struct store_txn *t)
{
    return store_setting_set(t, "default_from_local", "a/b");
}
static int bad_init_other(struct store_txn *t)
{
    return store_init(t, "other.example");
}

static const struct bad_case bad_cases[] = {
    {"tenant upper", STORE_EINVAL, bad_tenant_upper},
    {"tenant dash", STORE_EINVAL, bad_tenant_dash},
    {"tenant dash2", STORE_EINVAL, bad_tenant_dash2},
    {"tenant empty", STORE_EINVAL, bad_tenant_empty},
    {"tenant underscore", STORE_EINVAL, bad_tenant_underscore},
    {"tenant dot", STORE_EINVAL, bad_tenant_dot},
    {"tenant long", STORE_EINVAL, bad_tenant_long},
    {"tenant exists", STORE_EEXIST, bad_tenant_exists},
    {"tenant from", STORE_EINVAL, bad_tenant_from},
    {"tenant from null", STORE_EINVAL, bad_tenant_from_null},
    {"tenant from taken", STORE_EEXIST, bad_tenant_from_taken},
    {"tenant from domain", STORE_EEXIST, bad_tenant_from_domain},
    {"set from domain", STORE_EEXIST, bad_set_from_domain},
    {"mbox other domain", STORE_EEXIST, bad_mbox_other_domain},
    {"mbox future domain", STORE_EEXIST, bad_mbox_future_domain},
    {"from future domain", STORE_EEXIST, bad_from_future_domain},
    {"remove unknown", STORE_ENOTFOUND, bad_remove_unknown},
    {"set from unknown", STORE_ENOTFOUND, bad_set_from_unknown},
    {"set from taken", STORE_EEXIST, bad_set_from_taken},
    {"set from syntax", STORE_EINVAL, bad_set_from_syntax},
    {"mode level", STORE_EINVAL, bad_mode_level},
    {"mode value", STORE_EINVAL, bad_mode_value},
    {"mode level value", STORE_EINVAL, bad_mode_level_value},
    {"mode tenant", STORE_ENOTFOUND, bad_mode_tenant},
    {"out domain", STORE_EINVAL, bad_out_domain},
    {"out domain2", STORE_EINVAL, bad_out_domain2},
    {"out level", STORE_EINVAL, bad_out_level},
    {"out tenant", STORE_ENOTFOUND, bad_out_tenant},
    {"out remove", STORE_ENOTFOUND, bad_out_remove},
    {"out remove sub", STORE_ENOTFOUND, bad_out_remove_sub},
    {"mbox slash", STORE_EINVAL, bad_mbox_slash},
    {"mbox quoted", STORE_EINVAL, bad_mbox_quoted},
    {"mbox literal", STORE_EINVAL, bad_mbox_literal},
    {"mbox null", STORE_EINVAL, bad_mbox_null},
    {"mbox other tenant", STORE_EEXIST, bad_mbox_other_tenant},
    {"mbox twice", STORE_EEXIST, bad_mbox_twice},
    {"mbox tenant", STORE_ENOTFOUND, bad_mbox_tenant},
    {"mbox remove other", STORE_ENOTFOUND, bad_mbox_remove_other},
    {"mbox remove missing", STORE_ENOTFOUND, bad_mbox_remove_missing},
    {"allow action", STORE_EINVAL, bad_allow_action},
    {"allow tenant", STORE_ENOTFOUND, bad_allow_tenant},
    {"trust domain", STORE_EINVAL, bad_trust_domain},
    {"trust remove", STORE_ENOTFOUND, bad_trust_remove},
    {"tls tenant", STORE_ENOTFOUND, bad_tls_tenant},
    {"route port 0", STORE_EINVAL, bad_route_port0},
    {"route port big", STORE_EINVAL, bad_route_port_big},
    {"route host", STORE_EINVAL, bad_route_host},
    {"route host2", STORE_EINVAL, bad_route_host2},
    {"route host3", STORE_EINVAL, bad_route_host3},
    {"route domain", STORE_EINVAL, bad_route_domain},
    {"route remove", STORE_ENOTFOUND, bad_route_remove},
    {"setting key", STORE_EINVAL, bad_setting_key},
    {"setting domain", STORE_EINVAL, bad_setting_domain},
    {"setting local", STORE_EINVAL, bad_setting_local},
    {"init other", STORE_EEXIST, bad_init_other},
};

/* Each bad write returns its error; the caller aborts, nothing changed. */
static void test_bad_input(void **state)
{
    struct fixture *fx = *state;
    static struct dump before, after;

    dump_store(fx, &before);
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        struct store_txn *t = fx_write(fx);
        int rc = bad_cases[i].op(t);

        store_abort(t);
        if (rc != bad_cases[i].want)
            fail_msg("%s: got %d (%s), want %d", bad_cases[i].what, rc,
                     store_strerror(rc), bad_cases[i].want);
        dump_store(fx, &after);
        assert_string_equal(before.buf, after.buf);
    }
}

/* A bad call inside a transaction writes nothing, so what the same
 * transaction wrote before it still commits whole. */
static void test_bad_input_writes_nothing(void **state)
{
    struct fixture *fx = *state;
    static struct dump before, after;
    struct store_txn *t;

    dump_store(fx, &before);
    t = fx_write(fx);
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++)
        assert_int_equal(bad_cases[i].op(t), bad_cases[i].want);
    assert_int_equal(store_commit(t), 0);
    dump_store(fx, &after);
    /* only the generation line differs */
    assert_string_equal(strchr(before.buf, '\n'), strchr(after.buf, '\n'));
    assert_string_not_equal(before.buf, after.buf);
}

static int count_cb(const char *s, void *ctx)
{
    (*(int *)ctx)++;
    return 0;
}

static int count_out_cb(const char *s, enum tls_level l, void *ctx)
{
    (*(int *)ctx)++;
    return 0;
}

static void test_tenant_remove_cascades(void **state)
{
    struct fixture *fx = *state;
    struct inbound_decision in;
    struct tenant_info ti;
    struct store_txn *t = fx_write(fx);
    int n = 0;

    assert_int_equal(store_tenant_remove(t, "acme"), 0);
    assert_int_equal(store_commit(t), 0);

    t = fx_read(fx);
    assert_int_equal(store_tenant_get(t, "acme", &ti), STORE_ENOTFOUND);
    assert_int_equal(store_outbound_foreach(t, "acme", count_out_cb, &n),
                     STORE_ENOTFOUND);
    assert_int_equal(policy_inbound(t, "a@partner.example",
                                    "info@acme." PLATFORM, true, &in),
                     0);
    assert_string_equal(in.rule, "no-mailbox");
    assert_int_equal(policy_inbound(t, "a@partner.example",
                                    "alias@other.example", true, &in),
                     0);
    assert_string_equal(in.rule, "no-mailbox");
    assert_int_equal(policy_tenant_for_sender(t, "news@brand.example", &ti),
                     STORE_ENOTFOUND);
    /* beta is untouched */
    assert_int_equal(policy_inbound(t, "a@partner.example",
                                    "info@beta." PLATFORM, true, &in),
                     0);
    assert_string_equal(in.rule, "mailbox");
    store_abort(t);

    /* a new tenant of the same name starts empty, and the From and the
     * mailboxes of the old one are free again */
    t = fx_write(fx);
    assert_int_equal(store_tenant_add(t, "acme", NULL), 0);
    assert_int_equal(store_outbound_foreach(t, "acme", count_out_cb, &n), 0);
    assert_int_equal(store_mailbox_foreach(t, "acme", count_cb, &n), 0);
    assert_int_equal(store_trust_foreach(t, "acme", count_cb, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_tenant_get(t, "acme", &ti), 0);
    assert_false(ti.allowlist);
    assert_false(ti.inbound_tls_required);
    assert_int_equal(ti.mode, MODE_OFF);
    assert_int_equal(store_tenant_add(t, "gamma", "news@brand.example"), 0);
    assert_int_equal(store_mailbox_add(t, "gamma", "alias@other.example"), 0);
    assert_int_equal(store_commit(t), 0);
}

static void test_set_from(void **state)
{
    struct fixture *fx = *state;
    struct store_txn *t = fx_write(fx);
    struct tenant_info ti;

    assert_int_equal(store_tenant_set_from(t, "acme", "Hello@Brand.Example"),
                     0);
    assert_int_equal(store_tenant_get(t, "acme", &ti), 0);
    assert_string_equal(ti.from, "hello@brand.example");
    assert_int_equal(policy_tenant_for_sender(t, "news@brand.example", &ti),
                     STORE_ENOTFOUND);
    assert_int_equal(policy_tenant_for_sender(t, "hello@brand.example", &ti),
                     0);
    assert_string_equal(ti.name, "acme");
    /* the same From again is fine; back to the default drops the index */
    assert_int_equal(store_tenant_set_from(t, "acme", "hello@brand.example"),
                     0);
    assert_int_equal(store_tenant_set_from(t, "acme", NULL), 0);
    assert_int_equal(store_tenant_get(t, "acme", &ti), 0);
    assert_string_equal(ti.from, "noreply@acme." PLATFORM);
    assert_true(ti.from_is_default);
    assert_int_equal(policy_tenant_for_sender(t, "hello@brand.example", &ti),
                     STORE_ENOTFOUND);
    /* the default local part is a setting */
    assert_int_equal(store_setting_set(t, "default_from_local", "no-reply"), 0);
    assert_int_equal(store_tenant_get(t, "beta", &ti), 0);
    assert_string_equal(ti.from, "no-reply@beta." PLATFORM);
    assert_int_equal(store_commit(t), 0);
}

static void test_entries_and_folders(void **state)
{
    struct fixture *fx = *state;
    struct store_txn *t = fx_write(fx);
    struct outbound_decision d;
    struct inbound_decision in;
    int n = 0;

    /* re-adding an entry replaces its level; trust is idempotent */
    assert_int_equal(
        store_outbound_add(t, "acme", "VENDOR.example.", TLS_SECURE), 0);
    assert_int_equal(policy_outbound(t, "acme", "x@vendor.example", &d), 0);
    assert_int_equal(d.level, TLS_SECURE);
    assert_int_equal(store_trust_add(t, "acme", "partner.example"), 0);
    assert_int_equal(store_trust_foreach(t, "acme", count_cb, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(store_outbound_remove(t, "acme", ".Example.COM"), 0);
    assert_int_equal(policy_outbound(t, "acme", "x@a.example.com", &d), 0);
    assert_string_equal(d.rule, "default:unlisted");

    /* after a platform rename, a new own-domain mailbox whose local part
     * already names a folder gets "local@domain" */
    assert_int_equal(store_setting_set(t, "platform_domain", "new.example"), 0);
    assert_int_equal(store_mailbox_add(t, "acme", "info@acme.new.example"), 0);
    assert_int_equal(store_mailbox_add(t, "acme", "sales@acme.new.example"), 0);
    assert_int_equal(
        policy_inbound(t, "<>", "info@acme.new.example", true, &in), 0);
    assert_string_equal(in.mailbox_dir, "acme/info@acme.new.example");
    assert_int_equal(
        policy_inbound(t, "<>", "sales@acme.new.example", true, &in), 0);
    assert_string_equal(in.mailbox_dir, "acme/sales");
    assert_int_equal(policy_inbound(t, "<>", "info@acme." PLATFORM, true, &in),
                     0);
    assert_string_equal(in.mailbox_dir, "acme/info");

    /* removing a mailbox frees its folder */
    assert_int_equal(store_mailbox_remove(t, "acme", "info@acme." PLATFORM), 0);
    assert_int_equal(store_mailbox_add(t, "acme", "info@acme." PLATFORM), 0);
    assert_int_equal(policy_inbound(t, "<>", "info@acme." PLATFORM, true, &in),
                     0);
    assert_string_equal(in.mailbox_dir, "acme/info@acme." PLATFORM);
    store_abort(t);
}

/* Import keeps folders: a mailbox can be registered with its folder. */
static void test_mailbox_add_folder(void **state)
{
    struct fixture *fx = *state;
    struct store_txn *t = fx_write(fx);
    char tenant[TENANT_MAX + 1], folder[ADDR_MAX + 1];

    assert_int_equal(store_mailbox_lookup(t, "INFO@acme." PLATFORM ".", tenant,
                                          folder, sizeof(folder)),
                     0);
    assert_string_equal(tenant, "acme");
    assert_string_equal(folder, "info");
    assert_int_equal(store_mailbox_lookup(t, "x@nowhere.example", tenant,
                                          folder, sizeof(folder)),
                     STORE_ENOTFOUND);
    assert_int_equal(
        store_mailbox_lookup(t, "<>", tenant, folder, sizeof(folder)),
        STORE_EINVAL);

    assert_int_equal(store_mailbox_add_folder(t, "acme", "a@acme." PLATFORM,
                                              "a@acme." PLATFORM),
                     0);
    assert_int_equal(store_mailbox_add_folder(t, "acme", "b@x.example", "b"),
                     0);
    assert_int_equal(
        store_mailbox_lookup(t, "b@x.example", tenant, folder, sizeof(folder)),
        0);
    assert_string_equal(folder, "b");
    /* only the two forms a folder can take, and only a free one */
    assert_int_equal(store_mailbox_add_folder(t, "acme", "c@x.example", "d"),
                     STORE_EINVAL);
    assert_int_equal(store_mailbox_add_folder(t, "acme", "c@x.example", "../c"),
                     STORE_EINVAL);
    assert_int_equal(
        store_mailbox_add_folder(t, "acme", "info@y.example", "info"),
        STORE_EEXIST);
    assert_int_equal(store_mailbox_add_folder(t, "acme", "b@x.example", "b"),
                     STORE_EEXIST);
    assert_int_equal(store_mailbox_add_folder(t, "nobody", "e@x.example", "e"),
                     STORE_ENOTFOUND);
    store_abort(t);
}

/* Writes raw bytes as the value of key in db, bypassing the codec. */
static void put_raw(struct store_txn *t, enum store_db db, const char *key,
                    size_t klen, const char *val, size_t vlen)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};

    assert_int_equal(mdb_put(t->txn, t->st->dbi[db], &k, &v, 0), 0);
}

static void test_corrupt_records(void **state)
{
    struct fixture *fx = *state;
#define B(x)                                                                   \
    {                                                                          \
        x, sizeof(x) - 1                                                       \
    }
    static const struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        B(""),
        B("\xc1"),                 /* never-used byte */
        B("\x90"),                 /* an array */
        B("\x80\x00"),             /* trailing byte */
        B("\x81\xa4mode\x00"),     /* missing fields */
        B("\x81\xa3zzz\x00"),      /* unknown key */
        B("\xdb\xff\xff\xff\xff"), /* a string longer than the value */
        B("\xdf\xff\xff\xff\xff"), /* a map32 with 4G entries */
        B("\x81\xa4mode\xdb\xff\xff\xff\xff"), /* a truncated string */
        /* mode out of range */
        B("\x85\xa4mode\x09\xa5level\x02\xabinbound_tls\xc2\xa9"
          "allowlist\xc2\xa6"
          "action\x01"),
        /* default level below encrypt */
        B("\x85\xa4mode\x00\xa5level\x01\xabinbound_tls\xc2\xa9"
          "allowlist\xc2\xa6"
          "action\x01"),
        /* a bool of the wrong type */
        B("\x85\xa4mode\x00\xa5level\x02\xabinbound_tls\x00\xa9"
          "allowlist\xc2\xa6"
          "action\x01"),
        /* a duplicate key */
        B("\x85\xa4mode\x00\xa4mode\x00\xabinbound_tls\xc2\xa9"
          "allowlist\xc2\xa6"
          "action\x01"),
        /* action "accept" is not an allow-list action */
        B("\x85\xa4mode\x00\xa5level\x02\xabinbound_tls\xc2\xa9"
          "allowlist\xc2\xa6"
          "action\x00"),
    };
#undef B
    struct outbound_decision d;
    struct inbound_decision in;
    struct tenant_info ti;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct store_txn *t = fx_write(fx);

        put_raw(t, DB_TENANTS, "acme", 4, bad[i].bytes, bad[i].len);
        if (store_tenant_get(t, "acme", &ti) != STORE_ECORRUPT)
            fail_msg("case %zu decoded", i);
        assert_int_equal(policy_outbound(t, "acme", "a@b.example", &d),
                         STORE_ECORRUPT);
        assert_int_equal(
            policy_inbound(t, "a@b.example", "info@acme." PLATFORM, true, &in),
            STORE_ECORRUPT);
        assert_int_equal(store_outbound_add(t, "acme", "a.example", TLS_MAY),
                         STORE_ECORRUPT);
        /* a corrupt tenant can still be removed, From index included */
        assert_int_equal(store_tenant_remove(t, "acme"), 0);
        assert_int_equal(store_tenant_get(t, "acme", &ti), STORE_ENOTFOUND);
        assert_int_equal(policy_tenant_for_sender(t, "news@brand.example", &ti),
                         STORE_ENOTFOUND);
        assert_int_equal(policy_tenant_for_sender(t, "x@beta." PLATFORM, &ti),
                         0);
        store_abort(t);
    }

    static const char bad_mbox[] = "\x82\xa6tenant\xa4"
                                   "beta\xa6"
                                   "folder\xa2..";
    struct store_txn *t = fx_write(fx);

    put_raw(t, DB_MAILBOX, "info@beta." PLATFORM, strlen("info@beta." PLATFORM),
            bad_mbox, sizeof(bad_mbox) - 1);
    assert_int_equal(
        policy_inbound(t, "a@b.example", "info@beta." PLATFORM, true, &in),
        STORE_ECORRUPT);
    assert_int_equal(store_outbound_mode(t, "beta", MODE_DOMAINS, TLS_NONE), 0);
    put_raw(t, DB_OUTBOUND, "beta\0vendor.example", 19, "\x81\xa5level\x07", 8);
    assert_int_equal(policy_outbound(t, "beta", "x@vendor.example", &d),
                     STORE_ECORRUPT);
    /* a generation that does not decode stops every transaction */
    put_raw(t, DB_META, "generation", 10, "\xa1x", 2);
    assert_int_equal(mdb_txn_commit(t->txn), 0);
    t->txn = NULL;
    store_abort(t);
    assert_int_equal(store_begin(fx->st, false, &t), STORE_ECORRUPT);
    assert_null(t);
}

static void test_map_full(void **state)
{
    struct fixture fx;
    struct store_txn *t;
    char name[32];
    int rc = 0, i;

    fx_mkdir(&fx);
    assert_int_equal(store_open(&fx.st, fx.dir, 64 * 4096, STORE_CREATE), 0);
    t = fx_write(&fx);
    assert_int_equal(store_init(t, PLATFORM), 0);
    assert_int_equal(store_commit(t), 0);

    t = fx_write(&fx);
    for (i = 0; i < 100000 && rc == 0; i++) {
        snprintf(name, sizeof(name), "t%d", i);
        rc = store_tenant_add(t, name, NULL);
    }
    if (rc == 0)
        rc = store_commit(t);
    else
        store_abort(t);
    assert_int_equal(rc, STORE_EFULL);

    /* the store is unchanged and still usable */
    t = fx_read(&fx);
    assert_int_equal(store_generation(t), 1);
    assert_int_equal(store_tenant_get(t, "t0", &(struct tenant_info){0}),
                     STORE_ENOTFOUND);
    store_abort(t);
    store_close(fx.st);
    fx_rmdir(&fx);
}

/* A hot reader keeps its handle: reset, then renew sees newer commits. */
static void test_reset_renew(void **state)
{
    struct fixture *fx = *state;
    struct store_txn *r = fx_read(fx), *w;
    struct tenant_info ti;
    uint64_t g = store_generation(r);

    w = fx_write(fx); /* a writer is not blocked by the open reader */
    assert_int_equal(store_tenant_add(w, "gamma", NULL), 0);
    assert_int_equal(store_commit(w), 0);
    assert_int_equal(store_generation(r), g);
    assert_int_equal(store_tenant_get(r, "gamma", &ti), STORE_ENOTFOUND);

    for (int i = 0; i < 3; i++) {
        store_reset(r);
        assert_int_equal(store_renew(r), 0);
    }
    assert_int_equal(store_generation(r), g + 1);
    assert_int_equal(store_tenant_get(r, "gamma", &ti), 0);
    store_abort(r);

    w = fx_write(fx);
    assert_int_equal(store_renew(w), STORE_EINVAL);
    store_abort(w);
}

static void test_clear(void **state)
{
    struct fixture *fx = *state;
    struct store_txn *t = fx_write(fx);
    uint64_t g = store_generation(t);
    static struct dump d;
    char buf[64];

    assert_int_equal(store_clear(t), 0);
    assert_int_equal(store_platform_domain(t, buf, sizeof(buf)), STORE_ENOINIT);
    assert_int_equal(store_init(t, "other.example"), 0);
    assert_int_equal(store_commit(t), 0);
    dump_store(fx, &d);
    snprintf(buf, sizeof(buf), "generation %llu\n", (unsigned long long)g + 1);
    assert_string_equal(d.buf, strcat(buf, "set platform_domain="
                                           "other.example\n"));
}

static void test_setting_get(void **state)
{
    struct fixture *fx = *state;
    struct store_txn *t = fx_read(fx);
    char small[4], buf[64];

    assert_int_equal(store_setting_get(t, "platform_domain", buf, sizeof(buf)),
                     0);
    assert_string_equal(buf, PLATFORM);
    assert_int_equal(
        store_setting_get(t, "platform_domain", small, sizeof(small)),
        STORE_EINVAL);
    assert_int_equal(store_setting_get(t, "nothing", buf, sizeof(buf)),
                     STORE_ENOTFOUND);
    store_abort(t);
}

static int stop_at_first(const struct tenant_info *ti, void *ctx)
{
    snprintf(ctx, TENANT_MAX + 1, "%s", ti->name);
    return 7;
}

/* Walks go in key order and stop at a nonzero callback return. */
static void test_foreach_stops(void **state)
{
    struct fixture *fx = *state;
    struct store_txn *t = fx_read(fx);
    char first[TENANT_MAX + 1] = "";

    assert_int_equal(store_tenant_foreach(t, stop_at_first, first), 7);
    assert_string_equal(first, "acme");
    store_abort(t);
}

static void test_open_errors(void **state)
{
    struct fixture fx;
    struct store_txn *t;
    char missing[300];

    fx_mkdir(&fx);
    snprintf(missing, sizeof(missing), "%s/none", fx.dir);
    assert_int_equal(store_open(&fx.st, missing, 0, 0), STORE_ENOINIT);
    assert_null(fx.st);
    assert_int_equal(store_open(&fx.st, missing, 0, STORE_RDONLY),
                     STORE_ENOINIT);

    /* a schema version from a newer build is refused, not guessed at */
    assert_int_equal(store_open(&fx.st, fx.dir, 0, STORE_CREATE), 0);
    t = fx_write(&fx);
    put_raw(t, DB_META, "schema", 6, "\x02", 1);
    assert_int_equal(store_commit(t), 0);
    store_close(fx.st);
    assert_int_equal(store_open(&fx.st, fx.dir, 0, 0), STORE_EVERSION);
    assert_int_equal(store_open(&fx.st, fx.dir, 0, STORE_RDONLY),
                     STORE_EVERSION);
    fx_rmdir(&fx);
}

static void test_strerror(void **state)
{
    for (int e = STORE_EVERSION; e <= 0; e++)
        assert_string_not_equal(store_strerror(e), "unknown store error");
}

static void test_rdonly(void **state)
{
    struct fixture *fx = *state;
    struct store *ro;
    struct store_txn *t;
    struct tenant_info ti;

    assert_int_equal(store_open(&ro, fx->dir, 0, STORE_RDONLY), 0);
    assert_int_equal(store_begin(ro, true, &t), STORE_EINVAL);
    assert_int_equal(store_begin(ro, false, &t), 0);
    assert_int_equal(store_tenant_get(t, "acme", &ti), 0);
    store_abort(t);
    store_close(ro);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generation),
        cmocka_unit_test_setup_teardown(test_bad_input, setup_some,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_writes_nothing,
                                        setup_some, fx_teardown),
        cmocka_unit_test_setup_teardown(test_tenant_remove_cascades, setup_some,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_set_from, setup_some, fx_teardown),
        cmocka_unit_test_setup_teardown(test_entries_and_folders, setup_some,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_mailbox_add_folder, setup_some,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_records, setup_some,
                                        fx_teardown),
        cmocka_unit_test(test_map_full),
        cmocka_unit_test_setup_teardown(test_reset_renew, setup_some,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_clear, setup_some, fx_teardown),
        cmocka_unit_test_setup_teardown(test_setting_get, setup_some,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_foreach_stops, setup_some,
                                        fx_teardown),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test_setup_teardown(test_rdonly, setup_some, fx_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
