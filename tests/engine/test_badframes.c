/*
 * Bad frames from one client (truncated, huge length, deep nesting, wrong
 * types, garbage, a client that never reads) while a second, well-behaved
 * client keeps getting right answers from the same engine, concurrently.
 * Usage: test_engine_badframes PATH-TO-tlsgate-engine
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "eng_harness.h"
#include "rpc.h"

static const char *engine_bin;
static struct harness h;
static atomic_int stop_good;
static atomic_long good_ok, good_bad;

/* The well-behaved client: lookups in a loop until told to stop. */
static void *good_client(void *arg)
{
    struct outbound_decision d;
    struct eng_sync *s;

    if (eng_sync_open(h.sock, 3000, &s) < 0) {
        good_bad++;
        return NULL;
    }
    while (!stop_good) {
        int rc = eng_sync_outbound(s, "acme", "x@vendor.example", &d);

        if (rc == 0 && d.level == TLS_ENCRYPT)
            good_ok++;
        else
            good_bad++;
        h_sleep_ms(1);
    }
    eng_sync_close(s);
    return NULL;
}

static int raw_connect(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    strcpy(sa.sun_path, h.sock);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Reads until one frame, EOF or 3 s: 1 (frame decoded into m), 0 (EOF),
 * -1 (timeout). */
static int raw_read(int fd, struct ipc_decoder *d, struct ipc_buf *in,
                    struct ipc_msg *m)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    size_t n;
    ssize_t got;

    for (;;) {
        if (ipc_frame_next(in->data, in->len, &n) == 1) {
            assert_int_equal(ipc_decode(d, in->data + IPC_HDR_LEN, n, m), 0);
            return 1;
        }
        if (poll(&p, 1, 3000) <= 0)
            return -1;
        ipc_buf_reserve(in, 4096);
        got = read(fd, in->data + in->len, in->cap - in->len);
        if (got <= 0)
            return 0;
        in->len += (size_t)got;
    }
}

/* Sends raw bytes on a new connection; expects the engine to close it. */
static void expect_closed(const char *bytes, size_t len)
{
    struct ipc_decoder d;
    struct ipc_buf in;
    struct ipc_msg m;
    int fd = raw_connect();

    ipc_decoder_init(&d);
    ipc_buf_init(&in);
    assert_int_equal(write(fd, bytes, len), (ssize_t)len);
    assert_int_equal(raw_read(fd, &d, &in, &m), 0);
    close(fd);
    ipc_buf_free(&in);
    ipc_decoder_free(&d);
}

/* Frames a raw payload: 4-byte big-endian length, then the bytes. */
static size_t frame(char *out, const char *payload, size_t len)
{
    out[0] = (char)(len >> 24);
    out[1] = (char)(len >> 16);
    out[2] = (char)(len >> 8);
    out[3] = (char)len;
    memcpy(out + 4, payload, len);
    return len + 4;
}

#define RAW(s) s, sizeof(s) - 1

static void test_broken_framing(void **state)
{
    char buf[256];
    size_t n;

    expect_closed(RAW("\xff\xff\xff\xff\x94\x00\x01")); /* huge length */
    expect_closed(RAW("\x00\x01\x00\x01"));             /* 64 KiB + 1 */
    expect_closed(RAW("\x00\x00\x00\x00"));             /* empty frame */
    expect_closed(RAW("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    n = frame(buf, RAW("\x94\x00\x01\xa4ping\x81\xa1"
                       "a\x91\x91\x91\x91\x91\x01")); /* deep nesting */
    expect_closed(buf, n);
    n = frame(buf, RAW("\x94\x00\x01\xa4ping\x80\xc0")); /* trailing byte */
    expect_closed(buf, n);
    n = frame(buf, RAW("\xdd\xff\xff\xff\xff")); /* 4 G items announced */
    expect_closed(buf, n);
    n = frame(buf, RAW("\x94\x01\x01\xc0\x80")); /* a response, to the engine */
    expect_closed(buf, n);
}

static void test_truncated_then_gone(void **state)
{
    char buf[256];
    size_t n = frame(buf, RAW("\x94\x00\x01\xa4ping\x80"));
    int fd = raw_connect();

    /* Half a frame, then the client vanishes: nothing to answer. */
    assert_int_equal(write(fd, buf, n / 2), (ssize_t)(n / 2));
    h_sleep_ms(50);
    close(fd);
}

/* Sends one framed request payload and expects an error reply. */
static void expect_error(const char *payload, size_t len, int code)
{
    struct ipc_decoder d;
    struct ipc_buf in;
    struct ipc_msg m;
    char buf[512], text[256];
    uint64_t gen;
    int fd = raw_connect(), got;
    size_t n = frame(buf, payload, len);

    ipc_decoder_init(&d);
    ipc_buf_init(&in);
    assert_int_equal(write(fd, buf, n), (ssize_t)n);
    assert_int_equal(raw_read(fd, &d, &in, &m), 1);
    assert_int_equal(m.id, 7);
    assert_non_null(m.error);
    assert_int_equal(ipc_get_error(m.error, &got, text, sizeof(text), &gen), 0);
    assert_int_equal(got, code);
    close(fd);
    ipc_buf_free(&in);
    ipc_decoder_free(&d);
}

static void test_wrong_types(void **state)
{
    expect_error(RAW("\x94\x00\x07\xa8outbound\x82\xa6tenant\x01"
                     "\xa9recipient\xa3x@y"),
                 IPC_EPROTO);
    expect_error(RAW("\x94\x00\x07\xa8outbound\x81\xa6tenant\xa4"
                     "acme"),
                 IPC_EPROTO);
    expect_error(RAW("\x94\x00\x07\xa7inbound\x83\xa6sender\xa1x"
                     "\xa9recipient\xa1y\xa3tls\xa3yes"),
                 IPC_EPROTO);
    expect_error(RAW("\x94\x00\x07\xa4ping\x81\xa5"
                     "extra\xc0"),
                 IPC_EPROTO);
    expect_error(RAW("\x94\x00\x07\xa6reboot\x80"), IPC_EMETHOD);
    expect_error(RAW("\x94\x00\x07\xa8outbound\x82\xa6tenant\xa4"
                     "acme\xa9recipient\xa6nobody"),
                 STORE_EINVAL);
}

static void test_byte_at_a_time(void **state)
{
    struct ipc_decoder d;
    struct ipc_buf req, in;
    struct ipc_msg m;
    struct outbound_decision o;
    int fd = raw_connect();

    ipc_decoder_init(&d);
    ipc_buf_init(&req);
    ipc_buf_init(&in);
    ipc_request_frame(&req, 9, IPC_M_OUTBOUND, "acme", "z@vendor.example",
                      false);
    ipc_request_frame(&req, 10, IPC_M_PING, NULL, NULL, false);
    for (size_t i = 0; i < req.len; i++) {
        assert_int_equal(write(fd, req.data + i, 1), 1);
        h_sleep_ms(1);
    }
    assert_int_equal(raw_read(fd, &d, &in, &m), 1);
    assert_int_equal(m.id, 9);
    assert_int_equal(ipc_get_outbound(m.result, &o), 0);
    assert_int_equal(o.level, TLS_ENCRYPT);
    close(fd);
    ipc_buf_free(&req);
    ipc_buf_free(&in);
    ipc_decoder_free(&d);
}

static void test_client_never_reads(void **state)
{
    struct ipc_buf req;
    size_t off = 0;
    int fd = raw_connect();
    long sent = 0;

    /* Pipelines pings without reading a single answer, until the socket
     * is full both ways: the engine must pause this client only. */
    fcntl(fd, F_SETFL, O_NONBLOCK);
    ipc_buf_init(&req);
    for (uint32_t id = 1; id <= 2000; id++)
        ipc_request_frame(&req, id, IPC_M_PING, NULL, NULL, false);
    for (long deadline = h_now_ms() + 3000; h_now_ms() < deadline;) {
        ssize_t n = write(fd, req.data + off, req.len - off);

        if (n > 0) {
            sent += n;
            off = (off + (size_t)n) % req.len;
        } else {
            h_sleep_ms(5);
        }
    }
    assert_true(sent > 256 * 1024);
    close(fd);
    ipc_buf_free(&req);
}

static void test_good_client_unharmed(void **state)
{
    struct eng_sync *s;
    struct eng_stats st;

    assert_int_equal(eng_sync_open(h.sock, 3000, &s), 0);
    assert_int_equal(eng_sync_stats(s, &st), 0);
    assert_true(st.bad_frames >= 8);
    assert_true(st.errors >= 6);
    eng_sync_close(s);
}

static int group_setup(void **state)
{
    if (h_setup(&h, engine_bin) < 0 || h_build_store(h.policy) < 0 ||
        h_start(&h) < 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    h_cleanup(&h);
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broken_framing),
        cmocka_unit_test(test_truncated_then_gone),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_client_never_reads),
        cmocka_unit_test(test_good_client_unharmed),
    };
    pthread_t good;
    int rc;

    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH-TO-tlsgate-engine\n", argv[0]);
        return 2;
    }
    engine_bin = argv[1];
    signal(SIGPIPE, SIG_IGN);
    if (group_setup(NULL) < 0) {
        group_teardown(NULL);
        fprintf(stderr, "cannot start the engine\n");
        return 1;
    }
    pthread_create(&good, NULL, good_client, NULL);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    stop_good = 1;
    pthread_join(good, NULL);
    group_teardown(NULL);
    fprintf(stderr, "good client: %ld right answers, %ld wrong\n",
            (long)good_ok, (long)good_bad);
    if (good_ok < 100 || good_bad != 0)
        rc = 1;
    return rc;
}
