/*
 * tlsgate-bench lookup mode: keeps `concurrency` inbound policy requests
 * in flight on one engine connection (ipc/engine_client.h) and times each.
 */
#include "tlsgate_bench.h"

#include <stdio.h>
#include <stdlib.h>

#include "engine_client.h"
#include "log.h"

struct lk_req {
    struct bench_run *run;
    uint64_t t;
};

struct lk_state {
    struct eng_client *c;
    struct lk_req *reqs;
};

static void ask(struct lk_req *q);

static void on_answer(void *ctx, int err, const struct inbound_decision *d)
{
    struct lk_req *q = ctx;
    struct bench_run *r = q->run;

    bench_sample(r, PH_LOOKUP, uv_hrtime() - q->t);
    bench_sample(r, PH_SESSION, uv_hrtime() - q->t);
    r->active--;
    if (err != 0) {
        r->failed++;
        bench_error(r, ERR_LOOKUP, ipc_strerror(err));
    } else {
        r->done++;
    }
    if (bench_may_start(r))
        ask(q);
    else
        bench_maybe_finish(r);
}

/* Sends one inbound question for the configured sender and recipient. */
static void ask(struct lk_req *q)
{
    struct bench_run *r = q->run;
    struct lk_state *st = r->lookup;
    int e;

    r->started++;
    r->active++;
    q->t = uv_hrtime();
    e = eng_ask_inbound(st->c, r->o.mail_from, r->o.rcpt_to, true, on_answer,
                        q);
    if (e != 0) {
        r->active--;
        r->failed++;
        r->stopping = true; /* the callback will never come */
        bench_error(r, ERR_LOOKUP, ipc_strerror(e));
    }
}

/* The first answer proves the engine is there; then the load starts. */
static void on_ping(void *ctx, int err, unsigned version, uint64_t gen)
{
    struct bench_run *r = ctx;
    struct lk_state *st = r->lookup;

    r->active--;
    if (err != 0) {
        bench_error(r, ERR_LOOKUP, ipc_strerror(err));
        r->stopping = true;
        bench_maybe_finish(r);
        return;
    }
    for (unsigned i = 0; i < r->o.concurrency && bench_may_start(r); i++) {
        st->reqs[i].run = r;
        ask(&st->reqs[i]);
    }
    bench_maybe_finish(r);
}

int bench_lookup_start(struct bench_run *r)
{
    struct lk_state *st = calloc(1, sizeof(*st));
    int e;

    if (!st || !(st->reqs = calloc(r->o.concurrency, sizeof(*st->reqs)))) {
        free(st);
        return -1;
    }
    r->lookup = st;
    log_init("tlsgate-bench", 0);
    log_set_level(LOG_LVL_WARN);
    e = eng_client_open(r->loop, r->o.engine_socket,
                        (unsigned)(r->o.timeout * 1000), &st->c);
    if (e == 0) {
        r->active++;
        e = eng_ask_ping(st->c, on_ping, r);
        if (e != 0)
            r->active--;
    }
    if (e != 0) {
        fprintf(stderr, "tlsgate-bench: engine %s: %s\n", r->o.engine_socket,
                ipc_strerror(e));
        return -1;
    }
    return 0;
}

void bench_lookup_stop(struct bench_run *r)
{
    struct lk_state *st = r->lookup;

    if (!st || !st->c)
        return;
    eng_client_close(st->c);
    st->c = NULL;
}

void bench_lookup_free(struct bench_run *r)
{
    struct lk_state *st = r->lookup;

    if (!st)
        return;
    free(st->reqs);
    free(st);
    r->lookup = NULL;
}
