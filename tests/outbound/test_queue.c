/* Unit tests of the queue files and message text helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "queue.h"
#include "queue_text.h"

static char dir[64];

static int setup(void **state)
{
    size_t n = (size_t)snprintf(dir, sizeof(dir), "/tmp/tg-queue-unit-");

    memset(dir + n, 'X', 6); /* the mkdtemp template */
    dir[n + 6] = '\0';
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

static void test_round_trip(void **state)
{
    struct queue *q;
    struct queue_msg m = {0}, r;
    struct queue_rcpt rc[2] = {{.addr = "a@example.org"},
                               {.addr = "b@example.net"}};
    int fd, fd2;

    assert_int_equal(queue_open(dir, &q), QUEUE_OK);
    strcpy(m.tenant, "acme");
    strcpy(m.sender, "app@acme.example");
    strcpy(m.tenant_from, "noreply@acme.example");
    m.rcpt = rc;
    m.nrcpt = 2;
    assert_int_equal(queue_submit(q, &m, "Subject: x\r\n\r\nhi\r\n", 19),
                     QUEUE_OK);
    assert_true(queue_id_ok(m.id));

    assert_int_equal(queue_read(q, m.id, &r), QUEUE_OK);
    assert_string_equal(r.sender, "app@acme.example");
    assert_int_equal(r.nrcpt, 2);
    assert_int_equal(r.size, 19);
    r.rcpt[0].state = RCPT_SENT;
    strcpy(r.rcpt[1].reply, "451 4.7.4 with spaces % and\tcontrols");
    r.rcpt[1].attempts = 3;
    queue_hist_add(&r, "line %d with spaces", 1);

    /* one holder at a time */
    assert_int_equal(queue_lock(q, m.id, false, &fd), QUEUE_OK);
    assert_int_equal(queue_lock(q, m.id, false, &fd2), QUEUE_ELOCKED);
    assert_int_equal(queue_save(q, &r), QUEUE_OK);
    queue_msg_free(&r);
    assert_int_equal(queue_read(q, m.id, &r), QUEUE_OK);
    assert_int_equal(r.rcpt[0].state, RCPT_SENT);
    assert_string_equal(r.rcpt[1].reply,
                        "451 4.7.4 with spaces % and\tcontrols");
    assert_int_equal(r.nhist, 1);
    assert_string_equal(r.hist[0], "line 1 with spaces");
    assert_false(queue_done(&r));
    queue_msg_free(&r);
    assert_int_equal(queue_remove(q, m.id), QUEUE_OK);
    queue_unlock(fd);
    assert_int_equal(queue_read(q, m.id, &r), QUEUE_ENOENT);
    assert_int_equal(queue_lock(q, "../etc", false, &fd), QUEUE_EINVAL);
    queue_close(q);
}

static void test_retry_and_noreply(void **state)
{
    assert_int_equal(queue_retry_delay(1, 300, 14400), 300);
    assert_int_equal(queue_retry_delay(2, 300, 14400), 600);
    assert_int_equal(queue_retry_delay(5, 300, 14400), 4800);
    assert_int_equal(queue_retry_delay(9, 300, 14400), 14400);
    assert_true(queue_is_noreply("", NULL));
    assert_true(queue_is_noreply("NoReply@x.example", NULL));
    assert_true(queue_is_noreply("no-reply@x.example", NULL));
    assert_true(queue_is_noreply("MAILER-DAEMON@x.example", NULL));
    assert_true(queue_is_noreply("from@t.example", "from@t.example"));
    assert_false(queue_is_noreply("app@t.example", "from@t.example"));
}

static int collect(const char *a, void *ctx)
{
    strcat(ctx, a);
    strcat(ctx, "|");
    return 0;
}

static void test_text(void **state)
{
    char *out, got[256] = "";
    size_t n;
    char msg[] = "To: a@x\r\nBcc: b@x,\r\n c@x\r\nSubject: s\r\n\r\nbody\r\n";

    assert_int_equal(queue_text_crlf("a\nb\r\nc\rd", 8, false, &out, &n), 0);
    assert_int_equal(n, 12);
    assert_memory_equal(out, "a\r\nb\r\nc\r\nd\r\n", 12);
    free(out);
    assert_int_equal(queue_text_crlf("a\n.\nb\n", 6, true, &out, &n), 0);
    assert_int_equal(n, 3);
    free(out);

    assert_int_equal(queue_text_addresses("A <a@x>, \"B, b\" <b@x> (c), "
                                          "g: c@x, d@x;",
                                          collect, got),
                     0);
    assert_string_equal(got, "a@x|b@x|c@x|d@x|");
    assert_int_equal(queue_text_addresses("<a@x", collect, got), QTEXT_ESYNTAX);

    n = queue_text_strip_header(msg, strlen(msg), "bcc");
    msg[n] = '\0';
    assert_string_equal(msg, "To: a@x\r\nSubject: s\r\n\r\nbody\r\n");
    assert_true(
        queue_text_has_header(msg, queue_text_header_len(msg, n), "subject"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_retry_and_noreply),
        cmocka_unit_test(test_text),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
