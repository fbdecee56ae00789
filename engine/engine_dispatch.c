/* Answering requests: one batch of frames, one read transaction. */
#include "engine.h"

#include <string.h>

#include "log.h"
#include "policy.h"

/* Opens the policy store read-only, at most every ENG_REOPEN_MS while it
 * does not exist yet. Returns 0 or IPC_ENOSTORE. */
static int open_store(struct engine *e)
{
    uint64_t now = uv_now(e->loop);
    static bool warned;
    int err;

    if (e->last_open_ms && now - e->last_open_ms < ENG_REOPEN_MS)
        return IPC_ENOSTORE;
    e->last_open_ms = now;
    err = store_open(&e->st, e->cfg->policy_dir, e->cfg->engine_map_size,
                     STORE_RDONLY);
    if (err < 0) {
        e->st = NULL;
        if (!warned)
            log_warn("id=engine store_unavailable dir=%s error=\"%s\"",
                     e->cfg->policy_dir, store_strerror(err));
        warned = true;
        return IPC_ENOSTORE;
    }
    warned = false;
    log_info("id=engine store_open dir=%s", e->cfg->policy_dir);
    return 0;
}

void eng_batch_begin(struct engine *e, struct eng_batch *b)
{
    memset(b, 0, sizeof(*b));
    b->e = e;
}

/* Starts (renews) the batch's read transaction the first time a request
 * needs it; every later request of the batch reads the same snapshot. */
static int batch_txn(struct eng_batch *b)
{
    struct engine *e = b->e;
    int err;

    if (b->txn_on || b->txn_err)
        return b->txn_err;
    if (!e->st && open_store(e) < 0)
        return b->txn_err = IPC_ENOSTORE;
    err = e->txn ? store_renew(e->txn) : store_begin(e->st, false, &e->txn);
    if (err < 0) {
        if (e->txn)
            store_abort(e->txn);
        e->txn = NULL;
        log_warn("id=engine txn_failed error=\"%s\"", store_strerror(err));
        return b->txn_err = err;
    }
    b->txn_on = true;
    b->generation = store_generation(e->txn);
    return 0;
}

void eng_batch_end(struct eng_batch *b)
{
    if (b->txn_on)
        store_reset(b->e->txn);
    b->txn_on = false;
}

/* Appends an error reply for request id. */
static void reply_error(struct eng_batch *b, uint32_t id, int code,
                        const char *message)
{
    struct ipc_writer w;

    b->e->n.errors++;
    ipc_frame_begin(&w, &b->e->reply);
    ipc_pack_error(&w, id, code, message, b->generation);
    ipc_frame_end(&w);
}

/* Closes a result frame; a result that cannot be sent becomes an error. */
static void reply_done(struct eng_batch *b, struct ipc_writer *w, uint32_t id)
{
    int err = ipc_frame_end(w);

    if (err < 0)
        reply_error(b, id, err, ipc_strerror(err));
}

/* Runs the lookup for one decoded request and appends its answer. */
static void answer(struct eng_batch *b, uint32_t id, enum ipc_method m,
                   const struct ipc_params *p)
{
    struct engine *e = b->e;
    union {
        struct outbound_decision out;
        struct inbound_decision in;
        struct tenant_info t;
        char host[IPC_ARG_MAX];
    } u;
    struct ipc_writer w;
    unsigned port = 0;
    int err = 0;

    if (m == IPC_M_OUTBOUND)
        err = policy_outbound(e->txn, p->a, p->b, &u.out);
    else if (m == IPC_M_INBOUND)
        err = policy_inbound(e->txn, p->a, p->b, p->tls, &u.in);
    else if (m == IPC_M_TENANT_FOR_SENDER)
        err = policy_tenant_for_sender(e->txn, p->a, &u.t);
    else if (m == IPC_M_ROUTE)
        err = policy_route(e->txn, p->a, u.host, sizeof(u.host), &port);
    if (err < 0) {
        reply_error(b, id, err, store_strerror(err));
        return;
    }

    ipc_frame_begin(&w, &e->reply);
    if (m == IPC_M_OUTBOUND)
        ipc_pack_outbound(&w, id, &u.out);
    else if (m == IPC_M_INBOUND)
        ipc_pack_inbound(&w, id, &u.in);
    else if (m == IPC_M_TENANT_FOR_SENDER)
        ipc_pack_tenant(&w, id, &u.t, b->generation);
    else if (m == IPC_M_ROUTE)
        ipc_pack_route(&w, id, u.host, port, b->generation);
    else
        ipc_pack_ping(&w, id, b->generation);
    reply_done(b, &w, id);
}

/* The stats method works without a store (generation 0). */
static void answer_stats(struct eng_batch *b, uint32_t id)
{
    struct eng_stats s;
    struct ipc_writer w;

    batch_txn(b);
    eng_stats_fill(b->e, b->generation, &s);
    ipc_frame_begin(&w, &b->e->reply);
    ipc_pack_stats(&w, id, &s);
    reply_done(b, &w, id);
}

/* A notification: only "event" exists; a bad one is logged and dropped. */
static void handle_notify(struct eng_batch *b, const struct ipc_msg *m,
                          uint64_t conn_id)
{
    struct eng_event ev;
    char why[96];

    if (m->method != IPC_M_EVENT) {
        b->e->n.errors++;
        log_warn("id=conn-%llu bad_notification reason=unknown-method",
                 (unsigned long long)conn_id);
        return;
    }
    if (ipc_get_event(m->params, &ev, why, sizeof(why)) < 0) {
        b->e->n.errors++;
        log_warn("id=conn-%llu bad_event reason=\"%s\"",
                 (unsigned long long)conn_id, why);
        return;
    }
    eng_events_add(b->e->events, &ev);
}

int eng_handle_frame(struct eng_batch *b, const char *payload, size_t n,
                     uint64_t conn_id)
{
    struct engine *e = b->e;
    struct ipc_params p;
    struct ipc_msg m;
    char why[96];
    int err;

    if (ipc_decode(&e->dec, payload, n, &m) < 0)
        return IPC_EPROTO;
    if (m.type == IPC_NOTIFY) {
        handle_notify(b, &m, conn_id);
        return 0;
    }
    if (m.type != IPC_REQUEST)
        return IPC_EPROTO;

    b->requests++;
    e->n.requests++;
    if (m.method == IPC_M_UNKNOWN || m.method == IPC_M_EVENT) {
        reply_error(b, m.id, IPC_EMETHOD, ipc_strerror(IPC_EMETHOD));
        return 0;
    }
    e->n.req[m.method]++;
    if (ipc_get_params(m.method, m.params, &p, why, sizeof(why)) < 0) {
        log_warn("id=conn-%llu bad_request method=%s reason=\"%s\"",
                 (unsigned long long)conn_id, ipc_method_name(m.method), why);
        reply_error(b, m.id, IPC_EPROTO, why);
        return 0;
    }
    if (m.method == IPC_M_STATS) {
        answer_stats(b, m.id);
        return 0;
    }
    if ((err = batch_txn(b)) < 0) {
        reply_error(b, m.id, err, ipc_strerror(err));
        return 0;
    }
    answer(b, m.id, m.method, &p);
    return 0;
}
