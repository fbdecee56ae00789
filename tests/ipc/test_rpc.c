/* Unit tests of the IPC codec: round trips and every kind of bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rpc.h"

/* Extracts the one frame in b and decodes it into m. */
static int decode_one(struct ipc_decoder *d, const struct ipc_buf *b,
                      struct ipc_msg *m)
{
    size_t n;

    assert_int_equal(ipc_frame_next(b->data, b->len, &n), 1);
    assert_int_equal(IPC_HDR_LEN + n, b->len);
    return ipc_decode(d, b->data + IPC_HDR_LEN, n, m);
}

static void test_request_round_trip(void **state)
{
    struct ipc_decoder d;
    struct ipc_buf b;
    struct ipc_msg m;
    struct ipc_params p;
    char why[96];

    ipc_decoder_init(&d);
    ipc_buf_init(&b);
    assert_int_equal(ipc_request_frame(&b, 77, IPC_M_INBOUND, "a@x.example",
                                       "box@acme.mail.example.net", true),
                     0);
    assert_int_equal(decode_one(&d, &b, &m), 0);
    assert_int_equal(m.type, IPC_REQUEST);
    assert_int_equal(m.id, 77);
    assert_int_equal(m.method, IPC_M_INBOUND);
    assert_int_equal(ipc_get_params(m.method, m.params, &p, why, sizeof(why)),
                     0);
    assert_string_equal(p.a, "a@x.example");
    assert_string_equal(p.b, "box@acme.mail.example.net");
    assert_true(p.tls);

    /* The same params do not fit another method. */
    assert_int_equal(
        ipc_get_params(IPC_M_OUTBOUND, m.params, &p, why, sizeof(why)),
        IPC_EPROTO);
    ipc_buf_free(&b);
    ipc_decoder_free(&d);
}

static void test_results_round_trip(void **state)
{
    struct outbound_decision o = {.level = TLS_VERIFY,
                                  .required = true,
                                  .generation = 42},
                             o2;
    struct inbound_decision in = {.action = IN_REJECT,
                                  .code = 550,
                                  .generation = 9},
                            in2;
    struct ipc_decoder d;
    struct ipc_writer w;
    struct ipc_buf b;
    struct ipc_msg m;

    strcpy(o.tenant, "acme");
    strcpy(o.recipient, "x@vendor.example");
    strcpy(o.domain, "vendor.example");
    strcpy(o.rule, "domain:vendor.example");
    strcpy(in.enhanced, "5.7.1");
    strcpy(in.rule, "allowlist:not-trusted");
    ipc_decoder_init(&d);
    ipc_buf_init(&b);

    ipc_frame_begin(&w, &b);
    ipc_pack_outbound(&w, 5, &o);
    assert_int_equal(ipc_frame_end(&w), 0);
    assert_int_equal(decode_one(&d, &b, &m), 0);
    assert_int_equal(m.type, IPC_RESPONSE);
    assert_null(m.error);
    assert_int_equal(ipc_get_outbound(m.result, &o2), 0);
    assert_string_equal(o2.rule, o.rule);
    assert_int_equal(o2.level, TLS_VERIFY);
    assert_int_equal(o2.generation, 42);

    b.len = 0;
    ipc_frame_begin(&w, &b);
    ipc_pack_inbound(&w, 6, &in);
    assert_int_equal(ipc_frame_end(&w), 0);
    assert_int_equal(decode_one(&d, &b, &m), 0);
    assert_int_equal(ipc_get_inbound(m.result, &in2), 0);
    assert_int_equal(in2.action, IN_REJECT);
    assert_int_equal(in2.code, 550);
    assert_string_equal(in2.enhanced, "5.7.1");
    /* A result read as another method's is refused. */
    assert_int_equal(ipc_get_outbound(m.result, &o2), IPC_EPROTO);
    ipc_buf_free(&b);
    ipc_decoder_free(&d);
}

static void test_error_and_stats(void **state)
{
    struct eng_stats s = {.version = 1,
                          .store_open = true,
                          .requests = 12,
                          .latency_p99_us = 80},
                     s2;
    struct ipc_decoder d;
    struct ipc_writer w;
    struct ipc_buf b;
    struct ipc_msg m;
    char text[64];
    uint64_t gen;
    int code;

    ipc_decoder_init(&d);
    ipc_buf_init(&b);
    ipc_frame_begin(&w, &b);
    ipc_pack_error(&w, 3, STORE_ENOTFOUND, "not found", 17);
    assert_int_equal(ipc_frame_end(&w), 0);
    assert_int_equal(decode_one(&d, &b, &m), 0);
    assert_non_null(m.error);
    assert_null(m.result);
    assert_int_equal(ipc_get_error(m.error, &code, text, sizeof(text), &gen),
                     0);
    assert_int_equal(code, STORE_ENOTFOUND);
    assert_int_equal(gen, 17);

    b.len = 0;
    ipc_frame_begin(&w, &b);
    ipc_pack_stats(&w, 4, &s);
    assert_int_equal(ipc_frame_end(&w), 0);
    assert_int_equal(decode_one(&d, &b, &m), 0);
    assert_int_equal(ipc_get_stats(m.result, &s2), 0);
    assert_int_equal(s2.requests, 12);
    assert_int_equal(s2.latency_p99_us, 80);
    assert_true(s2.store_open);
    ipc_buf_free(&b);
    ipc_decoder_free(&d);
}

static void test_event_round_trip(void **state)
{
    struct eng_event ev = {.kind = EV_IMPORT,
                           .time = 1700000000,
                           .tls_verified = true,
                           .generation = 5},
                     ev2;
    struct ipc_decoder d;
    struct ipc_buf b;
    struct ipc_msg m;
    char why[96];

    strcpy(ev.tenant, "acme");
    strcpy(ev.status, "accepted");
    memset(ev.rule, 'r', sizeof(ev.rule)); /* no NUL: cut, not overrun */
    ipc_decoder_init(&d);
    ipc_buf_init(&b);
    assert_int_equal(ipc_event_frame(&b, &ev), 0);
    assert_int_equal(decode_one(&d, &b, &m), 0);
    assert_int_equal(m.type, IPC_NOTIFY);
    assert_int_equal(m.method, IPC_M_EVENT);
    assert_int_equal(ipc_get_event(m.params, &ev2, why, sizeof(why)), 0);
    assert_int_equal(ev2.kind, EV_IMPORT);
    assert_int_equal(ev2.time, 1700000000);
    assert_string_equal(ev2.tenant, "acme");
    assert_int_equal(strlen(ev2.rule), sizeof(ev.rule) - 1);
    ipc_buf_free(&b);
    ipc_decoder_free(&d);
}

static void test_frame_lengths(void **state)
{
    static const char huge[] = "\xff\xff\xff\xff\x90";
    static const char zero[] = "\x00\x00\x00\x00";
    static const char over[] = "\x00\x01\x00\x01";
    static const char max[] = "\x00\x01\x00\x00";
    size_t n;

    assert_int_equal(ipc_frame_next(huge, 5, &n), IPC_ETOOBIG);
    assert_int_equal(ipc_frame_next(zero, 4, &n), IPC_ETOOBIG);
    assert_int_equal(ipc_frame_next(over, 4, &n), IPC_ETOOBIG);
    assert_int_equal(ipc_frame_next(max, 4, &n), 0); /* fine, incomplete */
    assert_int_equal(ipc_frame_next(huge, 3, &n), 0);
}

static void test_truncated(void **state)
{
    struct ipc_decoder d;
    struct ipc_buf b;
    struct ipc_msg m;
    size_t n;

    ipc_decoder_init(&d);
    ipc_buf_init(&b);
    ipc_request_frame(&b, 1, IPC_M_OUTBOUND, "acme", "a@b.example", false);
    for (size_t k = 0; k < b.len; k++)
        assert_int_equal(ipc_frame_next(b.data, k, &n), 0);
    for (size_t k = 1; k < b.len - IPC_HDR_LEN; k++)
        assert_int_equal(ipc_decode(&d, b.data + IPC_HDR_LEN, k, &m),
                         IPC_EPROTO);
    ipc_buf_free(&b);
    ipc_decoder_free(&d);
}

static void test_trailing_bytes(void **state)
{
    struct ipc_decoder d;
    struct ipc_buf b;
    struct ipc_msg m;

    ipc_decoder_init(&d);
    ipc_buf_init(&b);
    ipc_request_frame(&b, 1, IPC_M_PING, NULL, NULL, false);
    ipc_buf_append(&b, "\xc0", 1);
    assert_int_equal(
        ipc_decode(&d, b.data + IPC_HDR_LEN, b.len - IPC_HDR_LEN, &m),
        IPC_EPROTO);
    ipc_buf_free(&b);
    ipc_decoder_free(&d);
}

static void test_nesting_and_counts(void **state)
{
    /* [0, 1, "ping", {"a": [[[1]]]}]: five levels deep. */
    static const char deep[] = "\x94\x00\x01\xa4ping\x81\xa1"
                               "a\x91\x91\x91\x01";
    /* array32 announcing 4 billion items in six bytes */
    static const char count[] = "\xdd\xff\xff\xff\xff\x00";
    /* str32 announcing more bytes than there are */
    static const char str[] = "\x94\x00\x01\xdb\x00\x01\x00\x00ping";
    /* float, bin and ext types are refused */
    static const char flt[] = "\x94\x00\x01\xa4ping\x81\xa1x\xca\0\0\0\0";
    static const char bin[] = "\x94\x00\x01\xc4\x04ping\x80";
    struct ipc_decoder d;
    struct ipc_msg m;

    ipc_decoder_init(&d);
    assert_int_equal(ipc_decode(&d, deep, sizeof(deep) - 1, &m), IPC_EPROTO);
    assert_int_equal(ipc_decode(&d, deep, sizeof(deep) - 3, &m), IPC_EPROTO);
    assert_int_equal(ipc_scan(count, sizeof(count) - 1), IPC_EPROTO);
    assert_int_equal(ipc_decode(&d, str, sizeof(str) - 1, &m), IPC_EPROTO);
    assert_int_equal(ipc_decode(&d, flt, sizeof(flt) - 1, &m), IPC_EPROTO);
    assert_int_equal(ipc_decode(&d, bin, sizeof(bin) - 1, &m), IPC_EPROTO);
    ipc_decoder_free(&d);
}

/* Packs [0, 1, "outbound", {params...}] with the pairs given as raw
 * MessagePack after the map head. */
static void check_params(const char *raw, size_t len, uint32_t n, int want,
                         const char *why_want)
{
    struct ipc_decoder d;
    struct ipc_writer w;
    struct ipc_params p;
    struct ipc_buf b;
    struct ipc_msg m;
    char why[96] = "";

    ipc_decoder_init(&d);
    ipc_buf_init(&b);
    ipc_frame_begin(&w, &b);
    ipc_pack_request(&w, 1, IPC_M_OUTBOUND, n);
    ipc_buf_append(&b, raw, len);
    assert_int_equal(ipc_frame_end(&w), 0);
    assert_int_equal(decode_one(&d, &b, &m), 0);
    assert_int_equal(ipc_get_params(m.method, m.params, &p, why, sizeof(why)),
                     want);
    if (why_want)
        assert_string_equal(why, why_want);
    ipc_buf_free(&b);
    ipc_decoder_free(&d);
}

#define RAW(s) s, sizeof(s) - 1

static void test_wrong_fields(void **state)
{
    check_params(RAW("\xa6tenant\xa4"
                     "acme\xa9recipient\xa3x@y"),
                 2, 0, NULL);
    check_params(RAW("\xa6tenant\xa4"
                     "acme"),
                 1, IPC_EPROTO, "missing field recipient");
    check_params(RAW("\xa6tenant\x07\xa9recipient\xa3x@y"), 2, IPC_EPROTO,
                 "bad value for field tenant");
    check_params(RAW("\xa6tenant\xa4"
                     "acme\xa9recipient\xa3x@y\xa3tls\xc3"),
                 3, IPC_EPROTO, "unknown field tls");
    check_params(RAW("\xa6tenant\xa1"
                     "a\xa6tenant\xa1"
                     "b"),
                 2, IPC_EPROTO, "duplicate field tenant");
    check_params(RAW("\xa6tenant\xa3"
                     "a\0b\xa9recipient\xa3x@y"),
                 2, IPC_EPROTO, "bad value for field tenant");
    check_params(RAW("\x01\xa4"
                     "acme\xa9recipient\xa3x@y"),
                 2, IPC_EPROTO, NULL);
}

static void test_bad_envelopes(void **state)
{
    static const struct {
        const char *raw;
        size_t len;
    } bad[] = {
        {RAW("\x94\x03\x01\xa4ping\x80")},                 /* type 3 */
        {RAW("\x94\x00\xff\xa4ping\x80")},                 /* id negative */
        {RAW("\x94\x00\xcf\0\0\0\1\0\0\0\0\xa4ping\x80")}, /* id > 2^32 */
        {RAW("\x94\x00\x01\x01\x80")},     /* method not a string */
        {RAW("\x94\x00\x01\xa4ping\x90")}, /* params not a map */
        {RAW("\x93\x00\x01\xa4ping")},     /* three elements */
        {RAW("\x94\x01\x01\x80\x80")},     /* response with error and result */
        {RAW("\x94\x01\x01\xc0\xc0")},     /* response with neither */
        {RAW("\x92\x02\xa5"
             "event")},    /* notify without params */
        {RAW("\xa4ping")}, /* not an array */
    };
    struct ipc_decoder d;
    struct ipc_msg m;

    ipc_decoder_init(&d);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ipc_decode(&d, bad[i].raw, bad[i].len, &m),
                         IPC_EPROTO);
    assert_int_equal(ipc_decode(&d, RAW("\x94\x00\x01\xa4pong\x80"), &m), 0);
    assert_int_equal(m.method, IPC_M_UNKNOWN);
    ipc_decoder_free(&d);
}

static void test_garbage(void **state)
{
    struct ipc_decoder d;
    struct ipc_msg m;
    char buf[64];
    unsigned seed = 12345;

    ipc_decoder_init(&d);
    for (int i = 0; i < 200000; i++) {
        size_t len = 1 + (size_t)(rand_r(&seed) % (int)sizeof(buf));

        for (size_t j = 0; j < len; j++)
            buf[j] = (char)rand_r(&seed);
        if (i % 2) /* often a plausible start */
            buf[0] = (char)(0x90 | (rand_r(&seed) & 7));
        int rc = ipc_decode(&d, buf, len, &m);
        assert_true(rc == 0 || rc == IPC_EPROTO);
    }
    ipc_decoder_free(&d);
}

static void test_byte_at_a_time(void **state)
{
    struct ipc_decoder d;
    struct ipc_buf stream, in;
    struct ipc_msg m;
    uint32_t next = 1;
    size_t n;

    ipc_decoder_init(&d);
    ipc_buf_init(&stream);
    ipc_buf_init(&in);
    for (uint32_t id = 1; id <= 20; id++)
        ipc_request_frame(&stream, id, IPC_M_ROUTE, "example.net", NULL, false);
    for (size_t i = 0; i < stream.len; i++) {
        ipc_buf_append(&in, stream.data + i, 1);
        while (ipc_frame_next(in.data, in.len, &n) == 1) {
            assert_int_equal(ipc_decode(&d, in.data + IPC_HDR_LEN, n, &m), 0);
            assert_int_equal(m.id, next);
            next++;
            ipc_buf_consume(&in, IPC_HDR_LEN + n);
        }
    }
    assert_int_equal(next, 21);
    assert_int_equal(in.len, 0);
    ipc_buf_free(&stream);
    ipc_buf_free(&in);
    ipc_decoder_free(&d);
}

static void test_limits_and_names(void **state)
{
    char big[IPC_ARG_MAX + 1];
    struct ipc_buf b;

    memset(big, 'a', sizeof(big));
    big[IPC_ARG_MAX] = '\0';
    ipc_buf_init(&b);
    assert_int_equal(ipc_request_frame(&b, 1, IPC_M_ROUTE, big, NULL, false),
                     IPC_EINVAL);
    big[IPC_ARG_MAX - 1] = '\0';
    assert_int_equal(ipc_request_frame(&b, 1, IPC_M_ROUTE, big, NULL, false),
                     0);
    for (int e = IPC_EVERSION; e <= IPC_ETIMEDOUT; e++)
        assert_string_not_equal(ipc_strerror(e), "unknown error");
    assert_string_equal(ipc_strerror(STORE_ENOTFOUND), "not found");
    assert_string_equal(ipc_method_name(IPC_M_TENANT_FOR_SENDER),
                        "tenant_for_sender");
    ipc_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_round_trip),
        cmocka_unit_test(test_results_round_trip),
        cmocka_unit_test(test_error_and_stats),
        cmocka_unit_test(test_event_round_trip),
        cmocka_unit_test(test_frame_lengths),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_nesting_and_counts),
        cmocka_unit_test(test_wrong_fields),
        cmocka_unit_test(test_bad_envelopes),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_limits_and_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
