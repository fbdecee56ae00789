/*
 * Two processes: this one keeps one read-only store handle open for the
 * whole test; a writer process changes the store through the store API on
 * command. Each change and its generation are seen by the reader's next
 * transaction, without reopening, and the writer is never blocked by the
 * reader's open snapshot.
 */
#include "store_test.h"

#include <signal.h>
#include <sys/wait.h>

struct twoproc {
    struct fixture fx;
    pid_t writer;
    int cmd;  /* to the writer */
    int resp; /* from the writer: the generation of each commit */
};

/* One write transaction of the writer for command c. */
static int writer_apply(struct store *st, char c, uint64_t *gen)
{
    struct store_txn *t;
    int rc = store_begin(st, true, &t);

    if (rc != 0)
        return rc;
    if (c == 'i') {
        rc = store_init(t, PLATFORM);
        if (rc == 0)
            rc = store_tenant_add(t, "acme", NULL);
    } else if (c == 'w') {
        rc = store_mailbox_add(t, "acme", "info@acme." PLATFORM);
        if (rc == 0)
            rc = store_outbound_add(t, "acme", "vendor.example", TLS_VERIFY);
        if (rc == 0)
            rc = store_outbound_mode(t, "acme", MODE_DOMAINS, TLS_NONE);
    } else if (c == 'r') {
        rc = store_tenant_remove(t, "acme");
    } else if (c == 'm') {
        char name[32];
        for (int i = 0; i < 6000 && rc == 0; i++) {
            snprintf(name, sizeof(name), "many%d", i);
            rc = store_tenant_add(t, name, NULL);
        }
    }
    if (rc != 0) {
        store_abort(t);
        return rc;
    }
    return store_commit_gen(t, gen);
}

/* 'b' begins a write transaction and keeps it open (answering the
 * generation it reads); 'c' commits it. */
static int writer_hold(struct store *st, char c, struct store_txn **held,
                       uint64_t *gen)
{
    int rc;

    if (c == 'c')
        return *held ? store_commit_gen(*held, gen) : -1;
    rc = store_begin(st, true, held);
    if (rc == 0)
        rc = store_tenant_add(*held, "held", NULL);
    *gen = rc == 0 ? store_generation(*held) : 0;
    return rc;
}

/* The writer process: reads one command byte at a time, answers with the
 * generation its commit made. Never returns. */
static void writer_main(const char *dir, int cmd, int resp)
{
    struct store_txn *held = NULL;
    struct store *st = NULL;
    uint64_t gen = 0;
    char c;
    int rc;

    alarm(60);
    if (store_open(&st, dir, 0, STORE_CREATE) != 0)
        _exit(2);
    while (read(cmd, &c, 1) == 1 && c != 'q') {
        if (c == 'b' || c == 'c')
            rc = writer_hold(st, c, &held, &gen);
        else
            rc = writer_apply(st, c, &gen);
        if (rc != 0)
            gen = 0;
        if (write(resp, &gen, sizeof(gen)) != sizeof(gen))
            _exit(3);
    }
    store_close(st);
    _exit(c == 'q' ? 0 : 4);
}

/* Sends a command and returns the generation the writer committed. */
static uint64_t writer_do(struct twoproc *tp, char c)
{
    uint64_t gen = 0;

    assert_int_equal(write(tp->cmd, &c, 1), 1);
    assert_int_equal(read(tp->resp, &gen, sizeof(gen)), sizeof(gen));
    assert_true(gen != 0);
    return gen;
}

static int setup(void **state)
{
    struct twoproc *tp = calloc(1, sizeof(*tp));
    int cmd[2], resp[2];

    fx_mkdir(&tp->fx);
    assert_int_equal(pipe(cmd), 0);
    assert_int_equal(pipe(resp), 0);
    tp->writer = fork();
    assert_true(tp->writer >= 0);
    if (tp->writer == 0) {
        close(cmd[1]);
        close(resp[0]);
        writer_main(tp->fx.dir, cmd[0], resp[1]);
    }
    close(cmd[0]);
    close(resp[1]);
    tp->cmd = cmd[1];
    tp->resp = resp[0];
    *state = tp;
    return 0;
}

static int teardown(void **state)
{
    struct twoproc *tp = *state;
    int status = 0;

    if (tp->writer > 0) {
        if (write(tp->cmd, "q", 1) != 1)
            kill(tp->writer, SIGKILL);
        waitpid(tp->writer, &status, 0);
    }
    close(tp->cmd);
    close(tp->resp);
    store_close(tp->fx.st);
    fx_rmdir(&tp->fx);
    free(tp);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void test_reader_sees_writes(void **state)
{
    struct twoproc *tp = *state;
    struct inbound_decision in;
    struct outbound_decision out;
    struct tenant_info ti;
    struct store_txn *r;

    alarm(60);
    assert_int_equal(writer_do(tp, 'i'), 1);

    /* a read-only open and read work while a write transaction is open */
    assert_int_equal(writer_do(tp, 'b'), 1);
    assert_int_equal(store_open(&tp->fx.st, tp->fx.dir, 0, STORE_RDONLY), 0);
    assert_int_equal(store_begin(tp->fx.st, false, &r), 0);
    assert_int_equal(store_generation(r), 1);
    assert_int_equal(store_tenant_get(r, "held", &ti), STORE_ENOTFOUND);
    assert_int_equal(store_tenant_get(r, "acme", &ti), 0);
    assert_int_equal(writer_do(tp, 'c'), 2);
    assert_int_equal(store_tenant_get(r, "held", &ti), STORE_ENOTFOUND);
    assert_int_equal(policy_inbound(r, "<>", "info@acme." PLATFORM, false, &in),
                     0);
    assert_string_equal(in.rule, "no-mailbox");
    store_reset(r);
    assert_int_equal(store_renew(r), 0);
    assert_int_equal(store_generation(r), 2);
    assert_int_equal(store_tenant_get(r, "held", &ti), 0);

    /* the writer commits while this snapshot is open */
    assert_int_equal(writer_do(tp, 'w'), 3);
    assert_int_equal(store_generation(r), 2);
    assert_int_equal(policy_inbound(r, "<>", "info@acme." PLATFORM, false, &in),
                     0);
    assert_string_equal(in.rule, "no-mailbox");

    /* the hot reader's next transaction sees the change */
    store_reset(r);
    assert_int_equal(store_renew(r), 0);
    assert_int_equal(store_generation(r), 3);
    assert_int_equal(policy_inbound(r, "<>", "info@acme." PLATFORM, false, &in),
                     0);
    assert_string_equal(in.rule, "mailbox");
    assert_int_equal(in.generation, 3);
    assert_int_equal(policy_outbound(r, "acme", "x@vendor.example", &out), 0);
    assert_int_equal(out.level, TLS_VERIFY);
    assert_int_equal(out.generation, 3);

    /* an idle reader (reset) does not hold the writer back either */
    store_reset(r);
    assert_int_equal(writer_do(tp, 'r'), 4);
    assert_int_equal(store_renew(r), 0);
    assert_int_equal(store_generation(r), 4);
    assert_int_equal(store_tenant_get(r, "acme", &ti), STORE_ENOTFOUND);
    store_abort(r);

    /* a fresh transaction on the same handle sees the same */
    assert_int_equal(writer_do(tp, 'i'), 5);
    assert_int_equal(store_begin(tp->fx.st, false, &r), 0);
    assert_int_equal(store_generation(r), 5);
    assert_int_equal(store_tenant_get(r, "acme", &ti), 0);
    store_abort(r);
    alarm(0);
}

/* The writer grows the data past the reader's (small) map: the reader's
 * next transaction adopts the larger map instead of failing. */
static void test_reader_follows_map_growth(void **state)
{
    struct twoproc *tp = *state;
    struct tenant_info ti;
    struct store_txn *r;

    alarm(60);
    assert_int_equal(writer_do(tp, 'i'), 1);
    assert_int_equal(
        store_open(&tp->fx.st, tp->fx.dir, 64 * 4096, STORE_RDONLY), 0);
    assert_int_equal(store_begin(tp->fx.st, false, &r), 0);
    store_reset(r);
    assert_int_equal(writer_do(tp, 'm'), 2);
    assert_int_equal(store_renew(r), 0);
    assert_int_equal(store_generation(r), 2);
    assert_int_equal(store_tenant_get(r, "many5999", &ti), 0);
    store_abort(r);
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reader_sees_writes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reader_follows_map_growth, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
