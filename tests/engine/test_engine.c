/*
 * tlsgate-engine against the store: answers equal the decision functions,
 * admin writes show at once, missing store, events, start-up and signals.
 * Usage: test_engine PATH-TO-tlsgate-engine
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <lmdb.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "eng_harness.h"

static const char *engine_bin;

static int setup(void **state)
{
    struct harness *h = calloc(1, sizeof(*h));

    if (!h || h_setup(h, engine_bin) < 0)
        return -1;
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    h_cleanup(*state);
    free(*state);
    return 0;
}

/* Starts the engine on a fresh sample store and connects to it. */
static struct eng_sync *start_with_store(struct harness *h)
{
    struct eng_sync *s;

    assert_int_equal(h_build_store(h->policy), 0);
    assert_int_equal(h_start(h), 0);
    assert_int_equal(eng_sync_open(h->sock, 5000, &s), 0);
    return s;
}

static const char *const tenants[] = {"acme", "beta", "gamma", "nosuch",
                                      "Bad Name"};
static const char *const rcpts[] = {
    "a@vendor.example",      "<B@Vendor.Example>", "c@x.secure.example",
    "d@y.secure.example",    "e@secure.example",   "f@other.example",
    "not-an-address",        "g@bücher.example",   "<>",
    "\"q@x\"@vendor.example"};

static void test_outbound_matrix(void **state)
{
    struct harness *h = *state;
    struct eng_sync *s = start_with_store(h);
    struct outbound_decision want, got;
    struct store_txn *t;
    struct store *st;

    assert_int_equal(store_open(&st, h->policy, 0, STORE_RDONLY), 0);
    assert_int_equal(store_begin(st, false, &t), 0);
    for (size_t i = 0; i < sizeof(tenants) / sizeof(*tenants); i++) {
        for (size_t j = 0; j < sizeof(rcpts) / sizeof(*rcpts); j++) {
            int rw = policy_outbound(t, tenants[i], rcpts[j], &want);
            int rg = eng_sync_outbound(s, tenants[i], rcpts[j], &got);

            assert_int_equal(rg, rw);
            if (rw)
                continue;
            assert_string_equal(got.tenant, want.tenant);
            assert_string_equal(got.recipient, want.recipient);
            assert_string_equal(got.domain, want.domain);
            assert_int_equal(got.level, want.level);
            assert_int_equal(got.required, want.required);
            assert_string_equal(got.rule, want.rule);
            assert_int_equal(got.generation, want.generation);
            assert_true(got.generation > 0);
        }
    }
    store_abort(t);
    store_close(st);
    eng_sync_close(s);
}

static void check_inbound(struct eng_sync *s, struct store_txn *t,
                          const char *sender, const char *rcpt, bool tls)
{
    struct inbound_decision want, got;
    int rw = policy_inbound(t, sender, rcpt, tls, &want);
    int rg = eng_sync_inbound(s, sender, rcpt, tls, &got);

    assert_int_equal(rg, rw);
    if (rw)
        return;
    assert_int_equal(got.action, want.action);
    assert_int_equal(got.code, want.code);
    assert_string_equal(got.enhanced, want.enhanced);
    assert_string_equal(got.text, want.text);
    assert_string_equal(got.tenant, want.tenant);
    assert_string_equal(got.mailbox, want.mailbox);
    assert_string_equal(got.mailbox_dir, want.mailbox_dir);
    assert_string_equal(got.rule, want.rule);
    assert_int_equal(got.generation, want.generation);
}

static void test_inbound_matrix(void **state)
{
    static const char *const senders[] = {"x@partner.example",
                                          "x@stranger.example", "<>",
                                          "bad address", "<X@Partner.Example>"};
    static const char *const boxes[] = {"box@acme.mail.example.net",
                                        "BOX@ACME.mail.example.net",
                                        "in@beta.mail.example.net",
                                        "g@gamma.mail.example.net",
                                        "nobody@acme.mail.example.net",
                                        "x@elsewhere.example",
                                        "@@"};
    struct harness *h = *state;
    struct eng_sync *s = start_with_store(h);
    struct store_txn *t;
    struct store *st;

    assert_int_equal(store_open(&st, h->policy, 0, STORE_RDONLY), 0);
    assert_int_equal(store_begin(st, false, &t), 0);
    for (size_t i = 0; i < sizeof(senders) / sizeof(*senders); i++)
        for (size_t j = 0; j < sizeof(boxes) / sizeof(*boxes); j++)
            for (int tls = 0; tls < 2; tls++)
                check_inbound(s, t, senders[i], boxes[j], tls);
    store_abort(t);
    store_close(st);
    eng_sync_close(s);
}

static void test_tenant_and_route(void **state)
{
    static const char *const senders[] = {
        "someone@acme.mail.example.net", "boss@beta.example",
        "x@elsewhere.example", "noreply@gamma.mail.example.net", "junk"};
    static const char *const domains[] = {"vendor.example", "a.route.example",
                                          "route.example", "none.example",
                                          "VENDOR.EXAMPLE."};
    struct harness *h = *state;
    struct eng_sync *s = start_with_store(h);
    struct tenant_info want, got;
    char hw[300], hg[300];
    unsigned pw = 0, pg = 0;
    uint64_t gen;
    struct store_txn *t;
    struct store *st;

    assert_int_equal(store_open(&st, h->policy, 0, STORE_RDONLY), 0);
    assert_int_equal(store_begin(st, false, &t), 0);
    for (size_t i = 0; i < sizeof(senders) / sizeof(*senders); i++) {
        int rw = policy_tenant_for_sender(t, senders[i], &want);

        assert_int_equal(eng_sync_tenant_for_sender(s, senders[i], &got, &gen),
                         rw);
        if (rw)
            continue;
        assert_string_equal(got.name, want.name);
        assert_string_equal(got.from, want.from);
        assert_int_equal(got.mode, want.mode);
        assert_int_equal(got.default_level, want.default_level);
        assert_int_equal(got.allowlist, want.allowlist);
        assert_int_equal(got.allowlist_action, want.allowlist_action);
        assert_int_equal(got.inbound_tls_required, want.inbound_tls_required);
        assert_int_equal(gen, store_generation(t));
    }
    for (size_t i = 0; i < sizeof(domains) / sizeof(*domains); i++) {
        int rw = policy_route(t, domains[i], hw, sizeof(hw), &pw);

        assert_int_equal(
            eng_sync_route(s, domains[i], hg, sizeof(hg), &pg, &gen), rw);
        if (rw)
            continue;
        assert_string_equal(hg, hw);
        assert_int_equal(pg, pw);
    }
    store_abort(t);
    store_close(st);
    eng_sync_close(s);
}

static void test_admin_write_seen(void **state)
{
    struct harness *h = *state;
    struct eng_sync *s = start_with_store(h);
    struct outbound_decision d;
    struct store_txn *t;
    struct store *st;
    uint64_t g0, g1;
    unsigned version;

    assert_int_equal(eng_sync_ping(s, &version, &g0), 0);
    assert_int_equal(version, 1);
    assert_int_equal(eng_sync_outbound(s, "gamma", "a@new.example", &d), 0);
    assert_int_equal(d.level, TLS_NONE);

    /* An admin-style change while the engine runs, never restarted. */
    assert_int_equal(store_open(&st, h->policy, 0, 0), 0);
    assert_int_equal(store_begin(st, true, &t), 0);
    assert_int_equal(store_outbound_mode(t, "gamma", MODE_DOMAINS, TLS_ENCRYPT),
                     0);
    assert_int_equal(store_outbound_add(t, "gamma", "new.example", TLS_SECURE),
                     0);
    assert_int_equal(store_commit(t), 0);

    assert_int_equal(eng_sync_outbound(s, "gamma", "a@new.example", &d), 0);
    assert_int_equal(d.level, TLS_SECURE);
    assert_true(d.required);
    assert_true(d.generation > g0);
    assert_int_equal(eng_sync_ping(s, &version, &g1), 0);
    assert_int_equal(g1, d.generation);

    /* A removal is seen just as fast. */
    assert_int_equal(store_begin(st, true, &t), 0);
    assert_int_equal(store_tenant_remove(t, "gamma"), 0);
    assert_int_equal(store_commit(t), 0);
    assert_int_equal(eng_sync_outbound(s, "gamma", "a@new.example", &d),
                     STORE_ENOTFOUND);
    store_close(st);
    eng_sync_close(s);
}

static void test_store_appears_later(void **state)
{
    struct harness *h = *state;
    struct eng_sync *s;
    struct eng_stats stats;
    struct outbound_decision d;
    long deadline;
    int rc;

    assert_int_equal(h_start(h), 0);
    assert_int_equal(eng_sync_open(h->sock, 5000, &s), 0);
    assert_int_equal(eng_sync_outbound(s, "acme", "a@vendor.example", &d),
                     IPC_ENOSTORE);
    assert_int_equal(eng_sync_stats(s, &stats), 0);
    assert_false(stats.store_open);

    assert_int_equal(h_build_store(h->policy), 0);
    deadline = h_now_ms() + 5000;
    do {
        h_sleep_ms(50);
        rc = eng_sync_outbound(s, "acme", "a@vendor.example", &d);
    } while (rc == IPC_ENOSTORE && h_now_ms() < deadline);
    assert_int_equal(rc, 0);
    assert_int_equal(d.level, TLS_ENCRYPT);
    eng_sync_close(s);
}

/* Counts the records of one table of the events environment. */
static size_t count_events(const char *dir, const char *table,
                           const char *tenant)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur;
    MDB_val k, v;
    size_t n = 0;

    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, table, 0, &dbi), 0);
    assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
    while (mdb_cursor_get(cur, &k, &v, n ? MDB_NEXT : MDB_FIRST) == 0) {
        if (tenant)
            assert_memory_equal(k.mv_data, tenant, strlen(tenant) + 1);
        n++;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return n;
}

static void test_events_stored(void **state)
{
    struct harness *h = *state;
    struct eng_sync *s = start_with_store(h);
    struct eng_event ev = {.kind = EV_DELIVERY, .generation = 3};
    struct eng_stats st;
    long deadline;

    ev.time = (int64_t)time(NULL);
    strcpy(ev.tenant, "acme");
    strcpy(ev.status, "sent");
    strcpy(ev.address, "a@vendor.example");
    for (int i = 0; i < 30; i++) {
        snprintf(ev.id, sizeof(ev.id), "Q%d", i);
        /* Five are older than the retention (30 days by default). */
        ev.time = (int64_t)time(NULL) - (i < 5 ? 31 * 86400 : 0);
        assert_int_equal(eng_sync_event(s, &ev), 0);
    }
    deadline = h_now_ms() + 5000;
    do {
        h_sleep_ms(50);
        assert_int_equal(eng_sync_stats(s, &st), 0);
    } while (st.events_stored < 30 && h_now_ms() < deadline);
    assert_int_equal(st.events_received, 30);
    assert_int_equal(st.events_stored, 30);
    assert_int_equal(st.events_dropped, 0);
    assert_int_equal(st.events_pruned, 5);
    assert_int_equal(count_events(h->events, "events", "acme"), 25);
    assert_int_equal(count_events(h->events, "bytime", NULL), 25);
    eng_sync_close(s);
}

static void test_start_and_signals(void **state)
{
    struct harness *h = *state;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct harness second;
    int fd, status;
    pid_t pid;

    /* A stale socket file (nobody listening) does not stop the start. */
    strcpy(sa.sun_path, h->sock);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    assert_int_equal(h_start(h), 0);

    /* A second engine on the same socket refuses to start. */
    second = *h;
    pid = h_spawn(&second);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);

    /* HUP is only logged; TERM stops cleanly with status 0. */
    kill(h->pid, SIGHUP);
    h_sleep_ms(100);
    assert_int_equal(waitpid(h->pid, &status, WNOHANG), 0);
    status = h_stop(h, SIGTERM);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(access(h->sock, F_OK), -1);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_outbound_matrix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inbound_matrix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenant_and_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_write_seen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_appears_later, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_events_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_and_signals, setup,
                                        teardown),
    };

    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH-TO-tlsgate-engine\n", argv[0]);
        return 2;
    }
    engine_bin = argv[1];
    return cmocka_run_group_tests(tests, NULL, NULL);
}
