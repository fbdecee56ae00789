/*
 * The asynchronous client against a real engine: pipelined answers matched
 * by id, timeouts, kill -9 of the engine with requests pending (failed
 * promptly), reconnection to a new engine by itself, close, events.
 * Usage: test_engine_reconnect PATH-TO-tlsgate-engine
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "eng_harness.h"

static const char *engine_bin;
static struct harness h;
static uv_loop_t loop;
static struct eng_client *client;
static bool in_ask; /* callbacks must never run inside eng_ask_* */

struct result {
    int calls, err;
    char rcpt[ADDR_MAX + 1];
    int level;
    long at_ms;
};

static void on_outbound(void *ctx, int err, const struct outbound_decision *d)
{
    struct result *r = ctx;

    assert_false(in_ask);
    r->calls++;
    r->err = err;
    r->at_ms = h_now_ms();
    if (!err) {
        snprintf(r->rcpt, sizeof(r->rcpt), "%s", d->recipient);
        r->level = (int)d->level;
    }
}

static void on_ping(void *ctx, int err, unsigned version, uint64_t gen)
{
    struct result *r = ctx;

    assert_false(in_ask);
    r->calls++;
    r->err = err;
    r->level = (int)version;
}

static void ask(const char *rcpt, struct result *r)
{
    in_ask = true;
    assert_int_equal(eng_ask_outbound(client, "acme", rcpt, on_outbound, r), 0);
    in_ask = false;
}

static void on_tick(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/* Runs the loop for about ms milliseconds. */
static void run_for(long ms)
{
    uv_timer_t t;

    uv_timer_init(&loop, &t);
    uv_timer_start(&t, on_tick, (uint64_t)ms, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

/* Runs the loop until all n results have their call, or max_ms. */
static void run_until_done(struct result *r, int n, long max_ms)
{
    long deadline = h_now_ms() + max_ms;

    for (;;) {
        int done = 0;

        for (int i = 0; i < n; i++)
            done += r[i].calls;
        if (done >= n || h_now_ms() > deadline)
            return;
        run_for(5);
    }
}

static void test_pipelined(void **state)
{
    struct result r[64];
    char rcpt[64];

    memset(r, 0, sizeof(r));
    for (int i = 0; i < 64; i++) {
        snprintf(rcpt, sizeof(rcpt), "u%d@vendor.example", i);
        ask(rcpt, &r[i]);
    }
    run_until_done(r, 64, 5000);
    for (int i = 0; i < 64; i++) {
        snprintf(rcpt, sizeof(rcpt), "u%d@vendor.example", i);
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].err, 0);
        assert_string_equal(r[i].rcpt, rcpt); /* matched by id */
        assert_int_equal(r[i].level, TLS_ENCRYPT);
    }
    assert_true(eng_client_connected(client));
    assert_true(eng_client_generation(client) > 0);
}

static void test_timeout(void **state)
{
    struct eng_client *fast;
    struct result r = {0}, ok = {0};
    long t0;

    assert_int_equal(eng_client_open(&loop, h.sock, 300, &fast), 0);
    run_for(50);
    kill(h.pid, SIGSTOP);
    t0 = h_now_ms();
    assert_int_equal(
        eng_ask_outbound(fast, "acme", "t@vendor.example", on_outbound, &r), 0);
    run_until_done(&r, 1, 5000);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.err, IPC_ETIMEDOUT);
    assert_true(r.at_ms - t0 >= 250 && r.at_ms - t0 < 2000);

    /* The late answer is ignored; the next request gets its own. */
    kill(h.pid, SIGCONT);
    assert_int_equal(
        eng_ask_outbound(fast, "acme", "n@vendor.example", on_outbound, &ok),
        0);
    run_until_done(&ok, 1, 5000);
    assert_int_equal(ok.err, 0);
    assert_string_equal(ok.rcpt, "n@vendor.example");
    assert_int_equal(r.calls, 1);
    eng_client_close(fast);
    run_for(20);
}

static void test_kill_and_reconnect(void **state)
{
    struct result r[20], down = {0}, ping = {0};
    long t0, deadline;

    /* Requests pending in a stopped engine, then kill -9. */
    memset(r, 0, sizeof(r));
    kill(h.pid, SIGSTOP);
    for (int i = 0; i < 20; i++)
        ask("k@vendor.example", &r[i]);
    run_for(100);
    for (int i = 0; i < 20; i++)
        assert_int_equal(r[i].calls, 0);
    t0 = h_now_ms();
    h_stop(&h, SIGKILL);
    run_until_done(r, 20, 10000);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].err, IPC_EUNAVAIL);
        assert_true(r[i].at_ms - t0 < 1000); /* the timeout is 10 s */
    }
    assert_false(eng_client_connected(client));

    /* While the engine is down, a request fails fast. */
    t0 = h_now_ms();
    ask("d@vendor.example", &down);
    run_until_done(&down, 1, 10000);
    assert_int_equal(down.err, IPC_EUNAVAIL);
    assert_true(down.at_ms - t0 < 1000);

    /* A new engine on the same socket: the client comes back by itself. */
    assert_int_equal(h_start(&h), 0);
    deadline = h_now_ms() + 5000;
    do {
        memset(&ping, 0, sizeof(ping));
        assert_int_equal(eng_ask_ping(client, on_ping, &ping), 0);
        run_until_done(&ping, 1, 3000);
        if (ping.err)
            run_for(50);
    } while (ping.err && h_now_ms() < deadline);
    assert_int_equal(ping.err, 0);
    assert_int_equal(ping.level, 1); /* protocol version */
    assert_true(eng_client_connected(client));
    test_pipelined(state);
}

static void test_close_with_pending(void **state)
{
    struct eng_client *c;
    struct result r = {0};

    assert_int_equal(eng_client_open(&loop, h.sock, 5000, &c), 0);
    run_for(50);
    kill(h.pid, SIGSTOP);
    assert_int_equal(
        eng_ask_outbound(c, "acme", "c@vendor.example", on_outbound, &r), 0);
    run_for(20);
    eng_client_close(c);
    assert_int_equal(r.calls, 0); /* not from inside the close */
    run_until_done(&r, 1, 2000);
    assert_int_equal(r.err, IPC_ECANCELED);
    kill(h.pid, SIGCONT);
}

static void test_events(void **state)
{
    struct eng_event ev = {.kind = EV_IMPORT};
    struct eng_stats st;
    struct eng_sync *s;
    long deadline;

    ev.time = (int64_t)time(NULL);
    strcpy(ev.tenant, "acme");
    strcpy(ev.status, "accepted");
    for (int i = 0; i < 30; i++)
        assert_int_equal(eng_send_event(client, &ev), 0);
    run_for(50);
    assert_int_equal(eng_sync_open(h.sock, 3000, &s), 0);
    deadline = h_now_ms() + 5000;
    do {
        run_for(20);
        assert_int_equal(eng_sync_stats(s, &st), 0);
    } while (st.events_stored < 30 && h_now_ms() < deadline);
    assert_int_equal(st.events_received, 30);
    assert_int_equal(st.events_stored, 30);
    assert_int_equal(eng_client_events_dropped(client), 0);
    eng_sync_close(s);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_kill_and_reconnect),
        cmocka_unit_test(test_close_with_pending),
        cmocka_unit_test(test_events),
    };
    int rc;

    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH-TO-tlsgate-engine\n", argv[0]);
        return 2;
    }
    engine_bin = argv[1];
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    if (h_setup(&h, engine_bin) < 0 || h_build_store(h.policy) < 0 ||
        h_start(&h) < 0 || eng_client_open(&loop, h.sock, 10000, &client) < 0) {
        h_cleanup(&h);
        fprintf(stderr, "cannot start the engine\n");
        return 1;
    }
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (h.pid > 0)
        kill(h.pid, SIGCONT);
    eng_client_close(client);
    run_for(50);
    h_cleanup(&h);
    return rc;
}
