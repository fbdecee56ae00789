/* Unit tests of the receiver's pure parts: command parser, line splitter,
 * DATA state machine, mailbox_dir checks and Maildir delivery. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "smtpin_maildir.h"
#include "smtpin_parse.h"

static int parse(const char *line, struct smtpin_cmd *c)
{
    return smtpin_parse_cmd(line, strlen(line), c);
}

static void test_verbs(void **state)
{
    struct smtpin_cmd c;

    assert_int_equal(parse("EHLO mx.example", &c), SP_OK);
    assert_int_equal(c.verb, SV_EHLO);
    assert_string_equal(c.arg, "mx.example");
    assert_int_equal(parse("helo  x  ", &c), SP_OK);
    assert_string_equal(c.arg, "x");
    assert_int_equal(parse("EHLO", &c), SP_ESYNTAX);
    assert_int_equal(parse("EHLO a b", &c), SP_ESYNTAX);
    assert_int_equal(parse("StartTLS", &c), SP_OK);
    assert_int_equal(c.verb, SV_STARTTLS);
    assert_int_equal(parse("DATA x", &c), SP_ESYNTAX);
    assert_int_equal(parse("QUIT", &c), SP_OK);
    assert_int_equal(parse("VRFY", &c), SP_ESYNTAX);
    assert_int_equal(parse("HELP", &c), SP_OK);
    assert_int_equal(parse("BDAT 10", &c), SP_EUNKNOWN);
    assert_int_equal(parse("", &c), SP_EUNKNOWN);
}

static void test_control_bytes(void **state)
{
    struct smtpin_cmd c;

    assert_int_equal(smtpin_parse_cmd("NOOP\0", 5, &c), SP_EBADCHAR);
    assert_int_equal(parse("EHLO a\rb", &c), SP_EBADCHAR);
    assert_int_equal(parse("MAIL FROM:<a\x1b@b.example>", &c), SP_EBADCHAR);
    assert_int_equal(parse("XX\x7f", &c), SP_EBADCHAR);
}

static void test_mail_rcpt(void **state)
{
    struct smtpin_cmd c;

    assert_int_equal(parse("MAIL FROM:<A@B.Example>", &c), SP_OK);
    assert_string_equal(c.path.domain, "b.example");
    assert_int_equal(
        parse("mail from: <a@b.example> SIZE=123 BODY=8BITMIME", &c), SP_OK);
    assert_true(c.has_size);
    assert_int_equal(c.size, 123);
    assert_true(c.body_8bit);
    assert_int_equal(parse("MAIL FROM:<>", &c), SP_OK);
    assert_string_equal(c.path.full, "");
    assert_int_equal(parse("RCPT TO:<>", &c), SP_EPATH);
    assert_int_equal(parse("MAIL FROM:a@b.example", &c), SP_EPATH);
    assert_int_equal(parse("MAIL FROM:<a@b.example", &c), SP_EPATH);
    assert_int_equal(parse("MAIL FROM:<a@b.example>x", &c), SP_ESYNTAX);
    assert_int_equal(parse("MAIL FROM:<a@b.example> SIZE=x", &c), SP_ESYNTAX);
    assert_int_equal(parse("MAIL FROM:<a@b.example> AUTH=<>", &c), SP_EPARAM);
    assert_int_equal(parse("RCPT TO:<a@b.example> SIZE=1", &c), SP_EPARAM);
    assert_int_equal(parse("RCPT TO:<\"a>b\"@c.example>", &c), SP_OK);
    assert_int_equal(parse("RCPT FROM:<a@b.example>", &c), SP_ESYNTAX);
    assert_int_equal(
        parse("MAIL FROM:<a@b.example> SIZE=99999999999999999999", &c), SP_OK);
    assert_int_equal(parse("MAIL FROM:<a@b.example> "
                           "SIZE=999999999999999999999",
                           &c),
                     SP_ESYNTAX);
}

static void test_lines(void **state)
{
    const char *line;
    size_t len, used;
    bool disc = false;
    char big[3000];

    assert_int_equal(
        smtpin_next_line("NOOP\r\nQUIT", 10, 512, &disc, &line, &len, &used),
        SL_LINE);
    assert_int_equal(len, 4);
    assert_int_equal(used, 6);
    assert_int_equal(
        smtpin_next_line("QUIT", 4, 512, &disc, &line, &len, &used), SL_MORE);
    assert_int_equal(used, 0);
    memset(big, 'x', sizeof(big));
    assert_int_equal(
        smtpin_next_line(big, sizeof(big), 512, &disc, &line, &len, &used),
        SL_MORE);
    assert_true(disc);
    assert_int_equal(used, sizeof(big));
    assert_int_equal(
        smtpin_next_line("xx\nNOOP\n", 8, 512, &disc, &line, &len, &used),
        SL_TOOLONG);
    assert_false(disc);
    assert_int_equal(used, 3);
    memset(big, 'y', 600);
    big[600] = '\n';
    assert_int_equal(smtpin_next_line(big, 601, 512, &disc, &line, &len, &used),
                     SL_TOOLONG);
}

/* Feeds s in pieces of step bytes; returns the final status. */
static enum smtpin_data_status feed(struct smtpin_data *d, const char *s,
                                    size_t step, char *out, size_t *olen,
                                    size_t *rest)
{
    size_t len = strlen(s), off = 0, o, used;
    enum smtpin_data_status st = SD_MORE;

    *olen = 0;
    while (off < len && st == SD_MORE) {
        size_t n = len - off < step ? len - off : step;

        st = smtpin_data_feed(d, s + off, n, out + *olen, &o, &used);
        *olen += o;
        off += used;
    }
    *rest = len - off;
    return st;
}

static void test_data(void **state)
{
    static const size_t steps[] = {1, 2, 3, 7, 1000};
    char out[256];
    size_t olen, rest;

    for (size_t i = 0; i < 5; i++) {
        struct smtpin_data d;

        smtpin_data_init(&d, 100, 1000);
        assert_int_equal(feed(&d, "a\r\n..b\r\n.c\r\n\r\n.\r\nQUIT\r\n",
                              steps[i], out, &olen, &rest),
                         SD_END);
        assert_int_equal(rest, 6);
        assert_int_equal(olen, strlen("a\n.b\nc\n\n"));
        assert_memory_equal(out, "a\n.b\nc\n\n", olen);
    }
}

static void test_data_bare(void **state)
{
    static const char *const bad[] = {
        "x\n.\n",   "x\r.\n", "x\n.\r\n", "x\r.\r\n",   "a\rb\r\n",
        "a\nb\r\n", ".\n",    "\n",       "ok\r\n.\rx", "ok\r\n.\n",
    };
    char out[64];
    size_t olen, rest;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct smtpin_data d;

        smtpin_data_init(&d, 100, 1000);
        assert_int_equal(feed(&d, bad[i], 1, out, &olen, &rest), SD_BARE);
    }
}

static void test_data_limits(void **state)
{
    struct smtpin_data d;
    char in[512], out[512];
    size_t olen, rest;

    smtpin_data_init(&d, 10, 1000);
    assert_int_equal(feed(&d, "123456789\r\n.\r\n", 100, out, &olen, &rest),
                     SD_END);
    assert_true(d.too_long); /* 11 bytes with CRLF: over by one */
    smtpin_data_init(&d, 11, 1000);
    assert_int_equal(feed(&d, "123456789\r\n.\r\n", 100, out, &olen, &rest),
                     SD_END);
    assert_false(d.too_long);
    smtpin_data_init(&d, 10, 1000);
    assert_int_equal(feed(&d, "1234567890\r\n.\r\n", 3, out, &olen, &rest),
                     SD_END);
    assert_true(d.too_long);
    memset(in, 'x', 300);
    strcpy(in + 300, "\r\n.\r\n");
    smtpin_data_init(&d, 1000, 100);
    assert_int_equal(feed(&d, in, 64, out, &olen, &rest), SD_END);
    assert_true(d.too_big);
    assert_true(olen <= 100);
}

static void test_mailbox_dir(void **state)
{
    assert_true(smtpin_mailbox_dir_ok("acme/gm"));
    assert_true(smtpin_mailbox_dir_ok("a-1/first.last+tag"));
    assert_false(smtpin_mailbox_dir_ok("acme/.."));
    assert_false(smtpin_mailbox_dir_ok("../gm"));
    assert_false(smtpin_mailbox_dir_ok("acme/a/b"));
    assert_false(smtpin_mailbox_dir_ok("acme/.hidden"));
    assert_false(smtpin_mailbox_dir_ok("acme/a..b"));
    assert_false(smtpin_mailbox_dir_ok("acme"));
    assert_false(smtpin_mailbox_dir_ok("/gm"));
    assert_false(smtpin_mailbox_dir_ok("acme/"));
    assert_false(smtpin_mailbox_dir_ok("Acme/gm"));
    assert_false(smtpin_mailbox_dir_ok("acme/g\nm"));
    assert_false(smtpin_mailbox_dir_ok("acme/g m"));
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_delivery(void **state)
{
    char root[64] = "/tmp/smtpin-unit-", p[2 * PATH_MAX + 16];
    char dirs[2][PATH_MAX];
    struct smtpin_delivery d;

    memset(root + strlen(root), 'X', 6); /* the mkdtemp template */
    assert_non_null(mkdtemp(root));
    assert_int_equal(smtpin_maildir_make(root, "acme/gm", dirs[0], PATH_MAX),
                     0);
    assert_int_equal(smtpin_maildir_make(root, "acme/hr", dirs[1], PATH_MAX),
                     0);
    assert_int_equal(smtpin_maildir_make(root, "acme/..", p, sizeof(p)),
                     -EINVAL);
    assert_int_equal(smtpin_delivery_open(&d, dirs, 2, "h/o:st"), 0);
    assert_non_null(strstr(d.name, "h\\057o\\072st"));
    assert_int_equal(smtpin_delivery_write(&d, "hello\n", 6), 0);
    assert_int_equal(smtpin_delivery_commit(&d), 0);
    smtpin_delivery_free(&d);
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof(p), "%s/new", dirs[i]);
        assert_int_equal(count_files(p), 1);
        snprintf(p, sizeof(p), "%s/tmp", dirs[i]);
        assert_int_equal(count_files(p), 0);
    }
    assert_int_equal(smtpin_delivery_open(&d, dirs, 1, "h"), 0);
    smtpin_delivery_abort(&d);
    smtpin_delivery_free(&d);
    snprintf(p, sizeof(p), "%s/tmp", dirs[0]);
    assert_int_equal(count_files(p), 0);

    /* a stale tmp file (2 days) goes, a fresh one stays */
    snprintf(p, sizeof(p), "%s/tmp/old", dirs[1]);
    fclose(fopen(p, "w"));
    struct timespec old[2] = {{time(NULL) - 2 * 86400, 0},
                              {time(NULL) - 2 * 86400, 0}};
    assert_int_equal(utimensat(AT_FDCWD, p, old, 0), 0);
    snprintf(p, sizeof(p), "%s/tmp/fresh", dirs[1]);
    fclose(fopen(p, "w"));
    assert_int_equal(smtpin_maildir_sweep(root, SMTPIN_TMP_MAX_AGE), 1);
    snprintf(p, sizeof(p), "%s/tmp", dirs[1]);
    assert_int_equal(count_files(p), 1);
    snprintf(p, sizeof(p), "rm -rf '%s'", root);
    assert_int_equal(system(p), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verbs),
        cmocka_unit_test(test_control_bytes),
        cmocka_unit_test(test_mail_rcpt),
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_data),
        cmocka_unit_test(test_data_bare),
        cmocka_unit_test(test_data_limits),
        cmocka_unit_test(test_mailbox_dir),
        cmocka_unit_test(test_delivery),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
