/* Unit tests of the outbound SMTP reply parser (smtpout_reply.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "smtpout_reply.h"

/* Feeds s in one go; returns the parser result of the first reply. */
static int feed_all(struct smtp_reply_parser *p, const char *s,
                    struct smtp_reply *r, size_t *used)
{
    smtpout_reply_init(p);
    return smtpout_reply_feed(p, s, strlen(s), used, r);
}

static void test_single_line(void **state)
{
    struct smtp_reply_parser p;
    struct smtp_reply r;
    size_t used;

    assert_int_equal(feed_all(&p, "250 2.1.0 Ok\r\n", &r, &used), 1);
    assert_int_equal(r.code, 250);
    assert_string_equal(r.enhanced, "2.1.0");
    assert_string_equal(r.text, "2.1.0 Ok");
    assert_int_equal(used, 14);
    assert_int_equal(feed_all(&p, "354\r\n", &r, &used), 1);
    assert_int_equal(r.code, 354);
    assert_string_equal(r.enhanced, "");
}

static void test_multi_line_and_caps(void **state)
{
    const char *s = "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n"
                    "250-STARTTLSX\r\n250 starttls\r\n220 next\r\n";
    struct smtp_reply_parser p;
    struct smtp_reply r;
    unsigned long size;
    size_t used;
    unsigned caps;

    assert_int_equal(feed_all(&p, s, &r, &used), 1);
    assert_int_equal(r.nlines, 5);
    caps = smtpout_ehlo_caps(&r, &size);
    assert_true(caps & EHLO_STARTTLS);
    assert_true(caps & EHLO_PIPELINING);
    assert_int_equal(size, 1000);
    /* the next reply stays unread */
    assert_string_equal(s + used, "220 next\r\n");
}

static void test_byte_at_a_time(void **state)
{
    const char *s = "451-4.7.5 first\r\n451 4.7.5 second\r\n";
    struct smtp_reply_parser p;
    struct smtp_reply r;
    size_t used, i;
    int rc = 0;

    smtpout_reply_init(&p);
    for (i = 0; s[i] && rc == 0; i++) {
        rc = smtpout_reply_feed(&p, s + i, 1, &used, &r);
        assert_true(rc >= 0);
    }
    assert_int_equal(rc, 1);
    assert_int_equal(i, strlen(s));
    assert_string_equal(r.text, "4.7.5 first\n4.7.5 second");
    assert_string_equal(r.enhanced, "4.7.5");
}

static void test_errors(void **state)
{
    static const struct {
        const char *in;
        int err;
    } bad[] = {
        {"25 short\r\n", REPLY_ESYNTAX},
        {"250x no separator\r\n", REPLY_ESYNTAX},
        {"abc def\r\n", REPLY_ESYNTAX},
        {"199 too low\r\n", REPLY_ECODE},
        {"600 too high\r\n", REPLY_ECODE},
        {"260 bad second digit\r\n", REPLY_ECODE},
        {"250-a\r\n251 changed\r\n", REPLY_ECODE},
        {"250 bare\rcr\r\n", REPLY_EBYTE},
        {"250 nul\0x\r\n", REPLY_EBYTE},
        {"250 ctl\x01\r\n", REPLY_EBYTE},
    };
    struct smtp_reply_parser p;
    struct smtp_reply r;
    size_t used;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = strlen(bad[i].in);
        if (strstr(bad[i].in, "nul"))
            n = 12;
        smtpout_reply_init(&p);
        assert_int_equal(smtpout_reply_feed(&p, bad[i].in, n, &used, &r),
                         bad[i].err);
        /* sticky */
        assert_int_equal(smtpout_reply_feed(&p, "250 ok\r\n", 8, &used, &r),
                         bad[i].err);
    }
}

static void test_bounds(void **state)
{
    char line[SMTP_REPLY_LINE_MAX + 16];
    struct smtp_reply_parser p;
    struct smtp_reply r;
    size_t used;
    int rc = 0;

    memset(line, 'a', sizeof(line));
    memcpy(line, "250 ", 4);
    smtpout_reply_init(&p);
    assert_int_equal(smtpout_reply_feed(&p, line, sizeof(line), &used, &r),
                     REPLY_ETOOLONG);
    smtpout_reply_init(&p);
    for (int i = 0; i <= SMTP_REPLY_LINES_MAX && rc == 0; i++)
        rc = smtpout_reply_feed(&p, "250-x\r\n", 7, &used, &r);
    assert_int_equal(rc, REPLY_ETOOLONG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_line),
        cmocka_unit_test(test_multi_line_and_caps),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
