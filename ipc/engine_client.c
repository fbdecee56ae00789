/*
 * The asynchronous engine client: one connection, many requests in flight
 * matched by id, a deadline per request, reconnection with backoff.
 */
#include "engine_client.h"

#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "log.h"
#include "rpc.h"

#define BUCKETS        256
#define PENDING_MAX    16384
#define OUT_MAX        (4u << 20) /* queued request bytes */
#define BACKOFF_MIN_MS 10
#define BACKOFF_MAX_MS 1000

enum cstate { CS_CONNECTING, CS_CONNECTED, CS_BACKOFF, CS_CLOSING };

union eng_cb {
    eng_inbound_cb in;
    eng_outbound_cb out;
    eng_tenant_cb tenant;
    eng_route_cb route;
    eng_ping_cb ping;
};

struct req {
    struct req *hnext;       /* id hash chain */
    struct req *prev, *next; /* deadline order (or the deferred list) */
    uint32_t id;
    enum ipc_method m;
    union eng_cb cb;
    void *ctx;
    uint64_t deadline;
    int err; /* on the deferred list: the error to deliver */
};

struct conn {
    uv_pipe_t pipe;
    uv_connect_t creq;
    struct eng_client *c;
    bool dead;
};

struct wreq {
    uv_write_t req;
    struct ipc_buf buf;
    struct conn *conn;
};

struct eng_client {
    uv_loop_t *loop;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    unsigned timeout_ms;
    enum cstate state;
    struct conn *conn;
    uv_timer_t timer;   /* earliest request deadline */
    uv_timer_t retry;   /* reconnection backoff */
    uv_timer_t defer;   /* delivers failures from a later loop turn */
    uv_prepare_t flush; /* writes what was queued, once per loop turn */
    unsigned backoff_ms;
    uint32_t next_id;
    struct req *bucket[BUCKETS];
    struct req *head, *tail;   /* pending, by deadline */
    struct req *dhead, *dtail; /* deferred failures */
    unsigned npending;
    struct ipc_buf out, in, events;
    unsigned nevents;
    struct ipc_decoder dec;
    uint64_t generation, ev_dropped;
    int handles;
};

static void connect_start(struct eng_client *c);
static void drop_connection(struct eng_client *c, const char *why);
static void on_defer(uv_timer_t *t);
static void on_timer(uv_timer_t *t);
static void on_flush(uv_prepare_t *p);
static int ask(struct eng_client *c, enum ipc_method m, const char *a,
               const char *b, bool tls, union eng_cb cb, void *ctx);

/* ---- the pending table ---- */

static void pending_add(struct eng_client *c, struct req *r)
{
    struct req **b = &c->bucket[r->id % BUCKETS];

    r->hnext = *b;
    *b = r;
    r->next = NULL;
    r->prev = c->tail;
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    c->npending++;
}

/* Unlinks r from the hash and the deadline list. */
static void pending_remove(struct eng_client *c, struct req *r)
{
    struct req **b = &c->bucket[r->id % BUCKETS];

    while (*b != r)
        b = &(*b)->hnext;
    *b = r->hnext;
    if (r->prev)
        r->prev->next = r->next;
    else
        c->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        c->tail = r->prev;
    c->npending--;
}

static struct req *pending_find(struct eng_client *c, uint32_t id)
{
    struct req *r = c->bucket[id % BUCKETS];

    while (r && r->id != id)
        r = r->hnext;
    return r;
}

/* ---- delivering answers ---- */

/* Each deliver_* decodes its method's result (when err is 0) and calls the
 * callback; *gen gets the answer's generation. */
static void deliver_outbound(struct req *r, int err, const msgpack_object *res,
                             uint64_t *gen)
{
    struct outbound_decision d;

    if (!err)
        err = ipc_get_outbound(res, &d);
    if (!err)
        *gen = d.generation;
    r->cb.out(r->ctx, err, err ? NULL : &d);
}

static void deliver_inbound(struct req *r, int err, const msgpack_object *res,
                            uint64_t *gen)
{
    struct inbound_decision d;

    if (!err)
        err = ipc_get_inbound(res, &d);
    if (!err)
        *gen = d.generation;
    r->cb.in(r->ctx, err, err ? NULL : &d);
}

static void deliver_tenant(struct req *r, int err, const msgpack_object *res,
                           uint64_t *gen)
{
    struct tenant_info t;

    if (!err)
        err = ipc_get_tenant(res, &t, gen);
    r->cb.tenant(r->ctx, err, err ? NULL : &t);
}

static void deliver_route(struct req *r, int err, const msgpack_object *res,
                          uint64_t *gen)
{
    char host[IPC_ARG_MAX];
    unsigned port = 0;

    if (!err)
        err = ipc_get_route(res, host, sizeof(host), &port, gen);
    r->cb.route(r->ctx, err, err ? NULL : host, err ? 0 : port);
}

static void deliver_ping(struct req *r, int err, const msgpack_object *res,
                         uint64_t *gen)
{
    unsigned version = 0;

    if (!err)
        err = ipc_get_ping(res, &version, gen);
    r->cb.ping(r->ctx, err, version, err ? 0 : *gen);
}

/* Calls r's callback exactly once, with err or the decoded result, and
 * frees r (already out of every list). */
static void deliver(struct eng_client *c, struct req *r, int err,
                    const msgpack_object *result)
{
    uint64_t gen = 0;

    switch (r->m) {
    case IPC_M_OUTBOUND:
        deliver_outbound(r, err, result, &gen);
        break;
    case IPC_M_INBOUND:
        deliver_inbound(r, err, result, &gen);
        break;
    case IPC_M_TENANT_FOR_SENDER:
        deliver_tenant(r, err, result, &gen);
        break;
    case IPC_M_ROUTE:
        deliver_route(r, err, result, &gen);
        break;
    default:
        deliver_ping(r, err, result, &gen);
        break;
    }
    if (gen > c->generation)
        c->generation = gen;
    free(r);
}

/* Takes every pending request off the table and fails it with err. The
 * list is detached first, so callbacks may ask again or close. */
static void fail_pending(struct eng_client *c, int err)
{
    struct req *r = c->head, *next;

    memset(c->bucket, 0, sizeof(c->bucket));
    c->head = c->tail = NULL;
    c->npending = 0;
    for (; r; r = next) {
        next = r->next;
        deliver(c, r, err, NULL);
    }
}

/* Queues r to fail with err from a later loop turn. */
static void defer_fail(struct eng_client *c, struct req *r, int err)
{
    r->err = err;
    r->next = NULL;
    if (c->dtail)
        c->dtail->next = r;
    else
        c->dhead = r;
    c->dtail = r;
    uv_timer_start(&c->defer, on_defer, 0, 0);
}

static void handle_closed(uv_handle_t *h)
{
    struct eng_client *c = h->data;

    if (--c->handles == 0) {
        ipc_buf_free(&c->out);
        ipc_buf_free(&c->in);
        ipc_buf_free(&c->events);
        ipc_decoder_free(&c->dec);
        free(c);
    }
}

/* Delivers the deferred failures (those queued by the callbacks wait for
 * the next turn, so a caller retrying at once cannot spin here); when
 * closing, then closes the handles. */
static void on_defer(uv_timer_t *t)
{
    struct eng_client *c = t->data;
    struct req *r = c->dhead, *next;

    c->dhead = c->dtail = NULL;
    for (; r; r = next) {
        next = r->next;
        deliver(c, r, r->err, NULL);
    }
    if (c->state == CS_CLOSING && !c->dhead &&
        !uv_is_closing((uv_handle_t *)&c->defer)) {
        uv_close((uv_handle_t *)&c->timer, handle_closed);
        uv_close((uv_handle_t *)&c->retry, handle_closed);
        uv_close((uv_handle_t *)&c->flush, handle_closed);
        uv_close((uv_handle_t *)&c->defer, handle_closed);
    }
}

/* Arms the deadline timer for the oldest pending request. */
static void arm_timer(struct eng_client *c)
{
    uint64_t now = uv_now(c->loop);

    if (!c->head) {
        uv_timer_stop(&c->timer);
        return;
    }
    uv_timer_start(&c->timer, on_timer,
                   c->head->deadline > now ? c->head->deadline - now : 0, 0);
}

/* Fails every request whose deadline has passed with IPC_ETIMEDOUT. */
static void on_timer(uv_timer_t *t)
{
    struct eng_client *c = t->data;
    uint64_t now = uv_now(c->loop);
    struct req *r;

    while ((r = c->head) && r->deadline <= now && c->state != CS_CLOSING) {
        pending_remove(c, r);
        deliver(c, r, IPC_ETIMEDOUT, NULL);
    }
    if (c->state != CS_CLOSING)
        arm_timer(c);
}

/* ---- the connection ---- */

static void conn_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Closes the current connection, if any; its late callbacks are ignored. */
static void conn_close(struct eng_client *c)
{
    struct conn *k = c->conn;

    if (!k)
        return;
    k->dead = true;
    c->conn = NULL;
    uv_close((uv_handle_t *)&k->pipe, conn_closed);
}

static void on_retry(uv_timer_t *t)
{
    connect_start(t->data);
}

/* Connection lost, refused or unusable: fails everything in flight with
 * err, and retries later. */
static void drop_with(struct eng_client *c, const char *why, int err)
{
    if (c->state == CS_CONNECTED)
        log_warn("id=engine-client disconnected path=%s reason=%s", c->path,
                 why);
    conn_close(c);
    c->state = CS_BACKOFF;
    c->out.len = 0;
    c->in.len = 0;
    uv_prepare_stop(&c->flush);
    uv_timer_stop(&c->timer);
    uv_timer_start(&c->retry, on_retry, c->backoff_ms, 0);
    c->backoff_ms =
        c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
    fail_pending(c, err);
}

static void drop_connection(struct eng_client *c, const char *why)
{
    drop_with(c, why, IPC_EUNAVAIL);
}

/* The answer to the ping sent on every new connection: an engine speaking
 * another protocol version is treated as one that is not there. */
static void on_hello(void *ctx, int err, unsigned version, uint64_t gen)
{
    struct eng_client *c = ctx;

    if (err || version == IPC_PROTO_VERSION || c->state != CS_CONNECTED)
        return;
    log_err("id=engine-client version_mismatch path=%s engine=%u client=%d",
            c->path, version, IPC_PROTO_VERSION);
    drop_with(c, "version-mismatch", IPC_EVERSION);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct conn *k = h->data;
    struct eng_client *c = k->c;

    if (k->dead || ipc_buf_reserve(&c->in, 16384) < 0) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = c->in.data + c->in.len;
    buf->len = c->in.cap - c->in.len;
}

/* Matches one decoded message to its pending request. */
static int handle_message(struct eng_client *c, const struct ipc_msg *m)
{
    struct req *r;
    char text[256];
    uint64_t gen = 0;
    int code;

    if (m->type != IPC_RESPONSE)
        return IPC_EPROTO; /* the engine sends nothing else */
    r = pending_find(c, m->id);
    if (!r)
        return 0; /* answered after its timeout: ignored */
    pending_remove(c, r);
    if (!m->error) {
        deliver(c, r, 0, m->result);
        return 0;
    }
    if (ipc_get_error(m->error, &code, text, sizeof(text), &gen) < 0)
        code = IPC_EPROTO;
    if (gen > c->generation)
        c->generation = gen;
    deliver(c, r, code, NULL);
    return 0;
}

/* Decodes every whole frame in the input buffer. */
static void process_input(struct eng_client *c, struct conn *k)
{
    size_t off = 0, n;
    struct ipc_msg m;
    int rc;

    while ((rc = ipc_frame_next(c->in.data + off, c->in.len - off, &n)) > 0) {
        const char *p = c->in.data + off + IPC_HDR_LEN;

        off += IPC_HDR_LEN + n;
        if (ipc_decode(&c->dec, p, n, &m) < 0 || handle_message(c, &m) < 0) {
            rc = IPC_EPROTO;
            break;
        }
        if (k->dead) /* a callback closed the client */
            return;
    }
    if (rc < 0) {
        drop_connection(c, "protocol-error");
        return;
    }
    ipc_buf_consume(&c->in, off);
    arm_timer(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *k = s->data;

    if (k->dead || nread == 0)
        return;
    if (nread < 0) {
        drop_connection(k->c, nread == UV_EOF ? "eof" : uv_strerror(nread));
        return;
    }
    k->c->in.len += (size_t)nread;
    process_input(k->c, k);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *k = req->data;
    struct eng_client *c = k->c;

    if (k->dead)
        return;
    if (status < 0 ||
        uv_read_start((uv_stream_t *)&k->pipe, on_alloc, on_read) < 0) {
        drop_connection(c, status < 0 ? uv_strerror(status) : "read");
        return;
    }
    log_info("id=engine-client connected path=%s", c->path);
    c->state = CS_CONNECTED;
    c->backoff_ms = BACKOFF_MIN_MS;
    ask(c, IPC_M_PING, NULL, NULL, false, (union eng_cb){.ping = on_hello}, c);
    uv_prepare_start(&c->flush, on_flush);
}

/* Starts one connection attempt; requests made meanwhile wait for it. */
static void connect_start(struct eng_client *c)
{
    struct conn *k = calloc(1, sizeof(*k));

    if (!k || uv_pipe_init(c->loop, &k->pipe, 0) < 0) {
        free(k);
        c->state = CS_CONNECTING;
        drop_connection(c, "out-of-memory");
        return;
    }
    k->c = c;
    k->pipe.data = k;
    k->creq.data = k;
    c->conn = k;
    c->state = CS_CONNECTING;
    uv_pipe_connect(&k->creq, &k->pipe, c->path, on_connect);
}

/* ---- writing ---- */

static void on_written(uv_write_t *req, int status)
{
    struct wreq *w = req->data;

    if (status < 0 && !w->conn->dead)
        drop_connection(w->conn->c, uv_strerror(status));
    ipc_buf_free(&w->buf);
    free(w);
}

/* Once per loop turn: writes every queued frame and event in one write. */
static void on_flush(uv_prepare_t *p)
{
    struct eng_client *c = p->data;
    struct wreq *w;
    uv_buf_t b;

    uv_prepare_stop(p);
    if (c->state != CS_CONNECTED)
        return;
    if (c->events.len &&
        ipc_buf_append(&c->out, c->events.data, c->events.len) == 0) {
        c->events.len = 0;
        c->nevents = 0;
    }
    if (!c->out.len || !(w = calloc(1, sizeof(*w))))
        return;
    w->buf = c->out;
    w->conn = c->conn;
    w->req.data = w;
    ipc_buf_init(&c->out);
    b = uv_buf_init(w->buf.data, (unsigned)w->buf.len);
    if (uv_write(&w->req, (uv_stream_t *)&c->conn->pipe, &b, 1, on_written) <
        0) {
        ipc_buf_free(&w->buf);
        free(w);
        drop_connection(c, "write");
    }
}

/* ---- the public calls ---- */

/* Registers one request; see eng_ask_* in the header. */
static int ask(struct eng_client *c, enum ipc_method m, const char *a,
               const char *b, bool tls, union eng_cb cb, void *ctx)
{
    struct req *r;
    int err;

    if (!c || c->state == CS_CLOSING)
        return IPC_ECANCELED;
    if (!(r = calloc(1, sizeof(*r))))
        return IPC_ENOMEM;
    if (++c->next_id == 0)
        c->next_id = 1;
    r->id = c->next_id;
    r->m = m;
    r->cb = cb;
    r->ctx = ctx;
    if (c->state == CS_BACKOFF || c->npending >= PENDING_MAX ||
        c->out.len >= OUT_MAX) {
        defer_fail(c, r, IPC_EUNAVAIL);
        return 0;
    }
    if ((err = ipc_request_frame(&c->out, r->id, m, a, b, tls)) < 0) {
        free(r);
        return err == IPC_ENOMEM ? err : IPC_EINVAL;
    }
    r->deadline = uv_now(c->loop) + c->timeout_ms;
    pending_add(c, r);
    if (c->head == r)
        arm_timer(c);
    if (c->state == CS_CONNECTED)
        uv_prepare_start(&c->flush, on_flush);
    return 0;
}

int eng_ask_inbound(struct eng_client *c, const char *sender, const char *rcpt,
                    bool tls, eng_inbound_cb cb, void *ctx)
{
    union eng_cb u = {.in = cb};

    return cb ? ask(c, IPC_M_INBOUND, sender, rcpt, tls, u, ctx) : IPC_EINVAL;
}

int eng_ask_outbound(struct eng_client *c, const char *tenant, const char *rcpt,
                     eng_outbound_cb cb, void *ctx)
{
    union eng_cb u = {.out = cb};

    return cb ? ask(c, IPC_M_OUTBOUND, tenant, rcpt, false, u, ctx)
              : IPC_EINVAL;
}

int eng_ask_tenant_for_sender(struct eng_client *c, const char *sender,
                              eng_tenant_cb cb, void *ctx)
{
    union eng_cb u = {.tenant = cb};

    return cb ? ask(c, IPC_M_TENANT_FOR_SENDER, sender, NULL, false, u, ctx)
              : IPC_EINVAL;
}

int eng_ask_route(struct eng_client *c, const char *domain, eng_route_cb cb,
                  void *ctx)
{
    union eng_cb u = {.route = cb};

    return cb ? ask(c, IPC_M_ROUTE, domain, NULL, false, u, ctx) : IPC_EINVAL;
}

int eng_ask_ping(struct eng_client *c, eng_ping_cb cb, void *ctx)
{
    union eng_cb u = {.ping = cb};

    return cb ? ask(c, IPC_M_PING, NULL, NULL, false, u, ctx) : IPC_EINVAL;
}

int eng_send_event(struct eng_client *c, const struct eng_event *ev)
{
    int err;

    if (!c || !ev || c->state == CS_CLOSING)
        return IPC_EINVAL;
    if (c->nevents >= ENG_EVENT_QUEUE_MAX) {
        if (c->ev_dropped++ % 1000 == 0)
            log_warn("id=engine-client event_dropped reason=queue-full "
                     "dropped=%llu",
                     (unsigned long long)c->ev_dropped);
        return IPC_EFULL;
    }
    if ((err = ipc_event_frame(&c->events, ev)) < 0)
        return err == IPC_ENOMEM ? err : IPC_EINVAL;
    c->nevents++;
    if (c->state == CS_CONNECTED)
        uv_prepare_start(&c->flush, on_flush);
    return 0;
}

bool eng_client_connected(const struct eng_client *c)
{
    return c && c->state == CS_CONNECTED;
}

uint64_t eng_client_generation(const struct eng_client *c)
{
    return c ? c->generation : 0;
}

uint64_t eng_client_events_dropped(const struct eng_client *c)
{
    return c ? c->ev_dropped : 0;
}

/* Initialises the client's four handles (each counted for the free). */
static void init_handles(struct eng_client *c)
{
    uv_timer_init(c->loop, &c->timer);
    uv_timer_init(c->loop, &c->retry);
    uv_timer_init(c->loop, &c->defer);
    uv_prepare_init(c->loop, &c->flush);
    c->timer.data = c->retry.data = c->defer.data = c->flush.data = c;
    c->handles = 4;
}

int eng_client_open(uv_loop_t *loop, const char *socket_path,
                    unsigned timeout_ms, struct eng_client **out)
{
    struct eng_client *c;

    if (!loop || !socket_path || !out)
        return IPC_EINVAL;
    if (strlen(socket_path) >= sizeof(c->path))
        return IPC_EINVAL;
    if (!(c = calloc(1, sizeof(*c))))
        return IPC_ENOMEM;
    if (ipc_decoder_init(&c->dec) < 0) {
        free(c);
        return IPC_ENOMEM;
    }
    c->loop = loop;
    strcpy(c->path, socket_path);
    c->timeout_ms = timeout_ms ? timeout_ms : 1;
    c->backoff_ms = BACKOFF_MIN_MS;
    init_handles(c);
    connect_start(c);
    *out = c;
    return 0;
}

void eng_client_close(struct eng_client *c)
{
    struct req *r, *next;

    if (!c || c->state == CS_CLOSING)
        return;
    c->state = CS_CLOSING;
    conn_close(c);
    uv_timer_stop(&c->timer);
    uv_timer_stop(&c->retry);
    uv_prepare_stop(&c->flush);
    r = c->head;
    memset(c->bucket, 0, sizeof(c->bucket));
    c->head = c->tail = NULL;
    c->npending = 0;
    for (; r; r = next) {
        next = r->next;
        defer_fail(c, r, IPC_ECANCELED);
    }
    uv_timer_start(&c->defer, on_defer, 0, 0);
}
