/*
 * The async client against a scripted peer that does what the real engine
 * never does: answers out of order, one byte at a time, with an unknown
 * id, an error, and finally a broken frame. (The engine tests run the
 * client against the real engine.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "rpc.h"

#define N 8

static char dir[64], path[96];
static int lfd = -1;

/* A fresh listening socket for each test, so that no test accepts a
 * connection another test's client left in the backlog. */
static void new_listener(const char *name)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    if (lfd >= 0) {
        close(lfd);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/%s.sock", dir, name);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 8), 0);
}

/* One connection of the scripted peer. The first ping on it is the
 * client's hello, answered at once with the given protocol version. */
struct pconn {
    int fd;
    struct ipc_buf in;
    bool hello_seen;
    unsigned version;
};

static void answer_hello(struct pconn *pc, uint32_t id)
{
    struct ipc_writer w;
    struct ipc_buf out;

    ipc_buf_init(&out);
    ipc_frame_begin(&w, &out);
    ipc_pack_result(&w, id, 2);
    ipc_pack_kv_uint(&w, "version", pc->version);
    ipc_pack_kv_uint(&w, "generation", 1);
    ipc_frame_end(&w);
    assert_int_equal(write(pc->fd, out.data, out.len), (ssize_t)out.len);
    pc->hello_seen = true;
    ipc_buf_free(&out);
}

/* Reads frames until n requests (the hello aside) and the hello have
 * arrived. */
static void read_requests(struct pconn *pc, uint32_t *ids,
                          char (*rcpt)[IPC_ARG_MAX], int n)
{
    struct ipc_buf *in = &pc->in;
    struct ipc_decoder d;
    struct ipc_params p;
    struct ipc_msg m;
    char why[96];
    size_t len;
    int got = 0;

    ipc_decoder_init(&d);
    while (got < n || !pc->hello_seen) {
        while ((got < n || !pc->hello_seen) &&
               ipc_frame_next(in->data, in->len, &len) == 1) {
            assert_int_equal(ipc_decode(&d, in->data + IPC_HDR_LEN, len, &m),
                             0);
            if (m.method == IPC_M_PING && !pc->hello_seen) {
                answer_hello(pc, m.id);
            } else {
                ids[got] = m.id;
                if (ipc_get_params(m.method, m.params, &p, why, sizeof(why)) ==
                    0)
                    strcpy(rcpt[got], p.b);
                got++;
            }
            ipc_buf_consume(in, IPC_HDR_LEN + len);
        }
        if (got == n && pc->hello_seen)
            break;
        ipc_buf_reserve(in, 4096);
        ssize_t r = read(pc->fd, in->data + in->len, in->cap - in->len);
        assert_true(r > 0);
        in->len += (size_t)r;
    }
    ipc_decoder_free(&d);
}

/* Writes buf one byte per write, with a short pause now and then. */
static void trickle(int fd, const struct ipc_buf *b)
{
    struct timespec ts = {0, 100000};

    for (size_t i = 0; i < b->len; i++) {
        assert_int_equal(write(fd, b->data + i, 1), 1);
        if (i % 16 == 0)
            nanosleep(&ts, NULL);
    }
}

static void *peer(void *arg)
{
    struct outbound_decision d = {.level = TLS_MAY, .generation = 11};
    struct pconn pc = {.fd = accept(lfd, NULL, NULL), .version = 1};
    char rcpt[N][IPC_ARG_MAX];
    struct ipc_buf out;
    struct ipc_writer w;
    uint32_t ids[N];

    ipc_buf_init(&pc.in);
    ipc_buf_init(&out);
    read_requests(&pc, ids, rcpt, N);

    /* An answer for an id nobody asked, then all in reverse order. */
    ipc_frame_begin(&w, &out);
    ipc_pack_ping(&w, 4242, 1);
    ipc_frame_end(&w);
    for (int i = N - 1; i >= 0; i--) {
        snprintf(d.recipient, sizeof(d.recipient), "%.300s", rcpt[i]);
        ipc_frame_begin(&w, &out);
        ipc_pack_outbound(&w, ids[i], &d);
        ipc_frame_end(&w);
    }
    trickle(pc.fd, &out);

    /* One request answered with an error. */
    read_requests(&pc, ids, rcpt, 1);
    out.len = 0;
    ipc_frame_begin(&w, &out);
    ipc_pack_error(&w, ids[0], STORE_ENOTFOUND, "not found", 12);
    ipc_frame_end(&w);
    trickle(pc.fd, &out);

    /* One request answered with a broken frame: the client must drop. */
    read_requests(&pc, ids, rcpt, 1);
    assert_int_equal(write(pc.fd, "\xff\xff\xff\xff", 4), 4);
    sleep(1);
    close(pc.fd);
    ipc_buf_free(&pc.in);
    ipc_buf_free(&out);
    return NULL;
}

/* A peer of protocol version 99: answers only the hello. */
static void *peer_v99(void *arg)
{
    struct pconn pc = {.fd = accept(lfd, NULL, NULL), .version = 99};
    char rcpt[1][IPC_ARG_MAX];
    uint32_t ids[1];

    ipc_buf_init(&pc.in);
    read_requests(&pc, ids, rcpt, 1);
    sleep(1);
    close(pc.fd);
    ipc_buf_free(&pc.in);
    return NULL;
}

struct result {
    int calls, err;
    char rcpt[ADDR_MAX + 1];
};

static void on_outbound(void *ctx, int err, const struct outbound_decision *d)
{
    struct result *r = ctx;

    r->calls++;
    r->err = err;
    if (d)
        snprintf(r->rcpt, sizeof(r->rcpt), "%s", d->recipient);
}

static void on_ping(void *ctx, int err, unsigned version, uint64_t gen)
{
    struct result *r = ctx;

    r->calls++;
    r->err = err;
}

/* Runs the loop until every result has its call (at most 5 s). */
static void run_until(uv_loop_t *loop, struct result *r, int n)
{
    time_t end = time(NULL) + 5;

    for (;;) {
        int done = 0;

        for (int i = 0; i < n; i++)
            done += r[i].calls;
        if (done >= n || time(NULL) > end)
            return;
        uv_run(loop, UV_RUN_ONCE);
    }
}

static void test_out_of_order_and_errors(void **state)
{
    struct result r[N], e = {0}, drop = {0};
    struct eng_client *c;
    uv_loop_t loop;
    pthread_t th;
    char rcpt[64];

    new_listener("peer");
    pthread_create(&th, NULL, peer, NULL);
    uv_loop_init(&loop);
    assert_int_equal(eng_client_open(&loop, path, 4000, &c), 0);
    memset(r, 0, sizeof(r));
    for (int i = 0; i < N; i++) {
        snprintf(rcpt, sizeof(rcpt), "r%d@x.example", i);
        assert_int_equal(eng_ask_outbound(c, "acme", rcpt, on_outbound, &r[i]),
                         0);
    }
    run_until(&loop, r, N);
    for (int i = 0; i < N; i++) {
        snprintf(rcpt, sizeof(rcpt), "r%d@x.example", i);
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].err, 0);
        assert_string_equal(r[i].rcpt, rcpt);
    }
    assert_int_equal(eng_client_generation(c), 11);

    assert_int_equal(eng_ask_ping(c, on_ping, &e), 0);
    run_until(&loop, &e, 1);
    assert_int_equal(e.err, STORE_ENOTFOUND);
    assert_int_equal(eng_client_generation(c), 12);

    assert_int_equal(
        eng_ask_outbound(c, "acme", "z@x.example", on_outbound, &drop), 0);
    run_until(&loop, &drop, 1);
    assert_int_equal(drop.calls, 1);
    assert_int_equal(drop.err, IPC_EUNAVAIL);
    assert_false(eng_client_connected(c));

    eng_client_close(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    pthread_join(th, NULL);
}

static void test_bad_arguments(void **state)
{
    char big[IPC_ARG_MAX + 8];
    struct eng_client *c;
    uv_loop_t loop;

    new_listener("args");
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    uv_loop_init(&loop);
    assert_int_equal(eng_client_open(&loop, big, 100, &c), IPC_EINVAL);
    assert_int_equal(eng_client_open(&loop, path, 100, &c), 0);
    assert_int_equal(eng_ask_outbound(c, "acme", big, on_outbound, NULL),
                     IPC_EINVAL);
    assert_int_equal(eng_ask_outbound(c, "acme", "a@b", NULL, NULL),
                     IPC_EINVAL);
    eng_client_close(c);
    assert_int_equal(eng_ask_ping(c, on_ping, NULL), IPC_ECANCELED);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_event_queue_bound(void **state)
{
    struct eng_event ev = {.kind = EV_DELIVERY, .time = 1};
    struct result r = {0};
    struct eng_client *c;
    char nowhere[128];
    uv_loop_t loop;

    /* No engine at all: events queue up to the bound, then are dropped
     * and counted; a request fails fast, not at its 5 s deadline. */
    snprintf(nowhere, sizeof(nowhere), "%s/none.sock", dir);
    uv_loop_init(&loop);
    assert_int_equal(eng_client_open(&loop, nowhere, 5000, &c), 0);
    for (int i = 0; i < ENG_EVENT_QUEUE_MAX; i++)
        assert_int_equal(eng_send_event(c, &ev), 0);
    assert_int_equal(eng_send_event(c, &ev), IPC_EFULL);
    assert_int_equal(eng_client_events_dropped(c), 1);
    time_t t0 = time(NULL);
    assert_int_equal(
        eng_ask_outbound(c, "acme", "a@x.example", on_outbound, &r), 0);
    run_until(&loop, &r, 1);
    assert_int_equal(r.err, IPC_EUNAVAIL);
    assert_true(time(NULL) - t0 <= 1);
    eng_client_close(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

struct closer {
    struct eng_client *c;
    int calls, errs[4];
};

static void on_outbound_close(void *ctx, int err,
                              const struct outbound_decision *d)
{
    struct closer *k = ctx;

    k->errs[k->calls++ % 4] = err;
    eng_client_close(k->c); /* the first call closes; later ones no-op */
}

static void test_close_inside_callback(void **state)
{
    struct closer k = {0};
    struct result first = {0};
    char nowhere[128];
    uv_loop_t loop;

    /* No engine: once the first attempt failed, requests fail from a later
     * loop turn; the first of them closes the client from its callback.
     * Every callback still runs exactly once and the loop ends. */
    snprintf(nowhere, sizeof(nowhere), "%s/none.sock", dir);
    uv_loop_init(&loop);
    assert_int_equal(eng_client_open(&loop, nowhere, 5000, &k.c), 0);
    assert_int_equal(
        eng_ask_outbound(k.c, "acme", "a@x.example", on_outbound, &first), 0);
    run_until(&loop, &first, 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            eng_ask_outbound(k.c, "acme", "b@x.example", on_outbound_close, &k),
            0);
    assert_int_equal(k.calls, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(k.calls, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(k.errs[i], IPC_EUNAVAIL);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_version_mismatch(void **state)
{
    struct result r = {0};
    struct eng_client *c;
    uv_loop_t loop;
    pthread_t th;

    new_listener("v99");
    pthread_create(&th, NULL, peer_v99, NULL);
    uv_loop_init(&loop);
    assert_int_equal(eng_client_open(&loop, path, 4000, &c), 0);
    assert_int_equal(
        eng_ask_outbound(c, "acme", "v@x.example", on_outbound, &r), 0);
    run_until(&loop, &r, 1);
    assert_int_equal(r.err, IPC_EVERSION);
    assert_false(eng_client_connected(c));
    eng_client_close(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    pthread_join(th, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_of_order_and_errors),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_event_queue_bound),
        cmocka_unit_test(test_close_inside_callback),
        cmocka_unit_test(test_version_mismatch),
    };
    const char *tmp = getenv("TMPDIR");
    int rc;

    snprintf(dir, sizeof(dir), "%s/tlsgate-ipc-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return 1;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (lfd >= 0) {
        close(lfd);
        unlink(path);
    }
    rmdir(dir);
    return rc;
}
