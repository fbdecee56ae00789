/* Connections: accept, read, answer each read's frames in one batch. */
#include "engine.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define READ_CHUNK 65536

struct eng_conn {
    uv_pipe_t pipe;
    struct engine *e;
    struct eng_conn *prev, *next;
    struct ipc_buf in;
    uint64_t id;
    bool paused, closing;
};

struct eng_wreq {
    uv_write_t req;
    struct eng_conn *k;
    size_t len;
    char data[];
};

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void conn_freed(uv_handle_t *h)
{
    struct eng_conn *k = h->data;

    ipc_buf_free(&k->in);
    free(k);
}

/* Closes a connection; its memory goes when libuv is done with it. */
static void conn_close(struct eng_conn *k, const char *why)
{
    struct engine *e = k->e;

    if (k->closing)
        return;
    k->closing = true;
    if (k->prev)
        k->prev->next = k->next;
    else
        e->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    e->n.connections--;
    log_info("id=conn-%llu closed reason=%s", (unsigned long long)k->id, why);
    uv_close((uv_handle_t *)&k->pipe, conn_freed);
}

static void on_written(uv_write_t *req, int status)
{
    struct eng_wreq *w = req->data;
    struct eng_conn *k = w->k;
    uv_stream_t *s = (uv_stream_t *)&k->pipe;

    free(w);
    if (k->closing)
        return;
    if (status < 0) {
        conn_close(k, "write-error");
        return;
    }
    if (k->paused && uv_stream_get_write_queue_size(s) < ENG_CONN_OUT_MAX / 2) {
        k->paused = false;
        uv_read_start(s, on_alloc, on_read);
    }
}

/* Sends the batch's replies: straight away when the socket takes them,
 * else the rest in one queued write. Pauses reading past the bound. */
static void conn_send(struct eng_conn *k, const char *p, size_t len)
{
    uv_stream_t *s = (uv_stream_t *)&k->pipe;
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
    struct eng_wreq *w;
    int n = uv_try_write(s, &b, 1);

    if (n == (int)len)
        return;
    if (n < 0 && n != UV_EAGAIN) {
        conn_close(k, "write-error");
        return;
    }
    if (n < 0)
        n = 0;
    if (!(w = malloc(sizeof(*w) + len - (size_t)n))) {
        conn_close(k, "out-of-memory");
        return;
    }
    w->k = k;
    w->len = len - (size_t)n;
    w->req.data = w;
    memcpy(w->data, p + n, w->len);
    b = uv_buf_init(w->data, (unsigned)w->len);
    if (uv_write(&w->req, s, &b, 1, on_written) < 0) {
        free(w);
        conn_close(k, "write-error");
        return;
    }
    if (uv_stream_get_write_queue_size(s) > ENG_CONN_OUT_MAX) {
        k->paused = true; /* the peer does not read its answers */
        uv_read_stop(s);
    }
}

/* Answers every whole frame in the input buffer from one transaction, all
 * replies in one write. Broken framing closes the connection. */
static void conn_process(struct eng_conn *k)
{
    struct engine *e = k->e;
    uint64_t t0 = uv_hrtime();
    struct eng_batch b;
    size_t off = 0, n;
    int rc;

    e->reply.len = 0;
    eng_batch_begin(e, &b);
    while ((rc = ipc_frame_next(k->in.data + off, k->in.len - off, &n)) > 0) {
        rc = eng_handle_frame(&b, k->in.data + off + IPC_HDR_LEN, n, k->id);
        off += IPC_HDR_LEN + n;
        if (rc < 0)
            break;
    }
    eng_batch_end(&b);
    ipc_buf_consume(&k->in, off);

    if (e->reply.len)
        conn_send(k, e->reply.data, e->reply.len);
    if (b.requests) {
        e->n.batches++;
        eng_stats_record(&e->n, uv_hrtime() - t0, b.requests);
    }
    if (rc < 0 && !k->closing) {
        e->n.bad_frames++;
        log_warn("id=conn-%llu bad_frame reason=%s", (unsigned long long)k->id,
                 rc == IPC_ETOOBIG ? "length" : "malformed");
        conn_close(k, "protocol-error");
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct eng_conn *k = h->data;

    /* At most one partial frame stays buffered, so this stays bounded. */
    if (ipc_buf_reserve(&k->in, READ_CHUNK) < 0) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = k->in.data + k->in.len;
    buf->len = k->in.cap - k->in.len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct eng_conn *k = s->data;

    if (nread == 0 || k->closing)
        return;
    if (nread < 0) {
        conn_close(k, nread == UV_EOF       ? "eof"
                      : nread == UV_ENOBUFS ? "out-of-memory"
                                            : uv_err_name((int)nread));
        return;
    }
    k->in.len += (size_t)nread;
    conn_process(k);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct engine *e = server->data;
    struct eng_conn *k;

    if (status < 0 || e->stopping || !(k = calloc(1, sizeof(*k))))
        return;
    uv_pipe_init(e->loop, &k->pipe, 0);
    k->pipe.data = k;
    k->e = e;
    if (uv_accept(server, (uv_stream_t *)&k->pipe) < 0) {
        uv_close((uv_handle_t *)&k->pipe, conn_freed);
        return;
    }
    k->id = ++e->next_conn_id;
    if (e->n.connections >= ENG_CONN_MAX) {
        log_warn("id=conn-%llu refused reason=too-many-connections max=%d",
                 (unsigned long long)k->id, ENG_CONN_MAX);
        uv_close((uv_handle_t *)&k->pipe, conn_freed);
        return;
    }
    k->next = e->conns;
    if (e->conns)
        e->conns->prev = k;
    e->conns = k;
    e->n.connections++;
    e->n.connections_total++;
    log_debug("id=conn-%llu accepted", (unsigned long long)k->id);
    uv_read_start((uv_stream_t *)&k->pipe, on_alloc, on_read);
}

/* True when something accepts connections on path: another engine runs
 * (a socket file nobody listens on is stale and refuses). */
static bool engine_running(const char *path)
{
    struct eng_sync *s;

    if (eng_sync_open(path, 500, &s) < 0)
        return false;
    eng_sync_close(s);
    return true;
}

int eng_listen(struct engine *e)
{
    const char *path = e->cfg->engine_socket;
    int err;

    if (engine_running(path)) {
        log_err("id=engine already_running socket=%s", path);
        return -1;
    }
    unlink(path); /* a stale socket left by a dead engine */
    uv_pipe_init(e->loop, &e->server, 0);
    e->server.data = e;
    if ((err = uv_pipe_bind(&e->server, path)) < 0 ||
        (err = uv_listen((uv_stream_t *)&e->server, 511, on_connection)) < 0) {
        log_err("id=engine listen_failed socket=%s error=%s", path,
                uv_strerror(err));
        return -1;
    }
    if (chmod(path, 0660) < 0) {
        log_err("id=engine chmod_failed socket=%s", path);
        return -1;
    }
    log_info("id=engine listening socket=%s", path);
    return 0;
}

void eng_close_all(struct engine *e)
{
    while (e->conns)
        conn_close(e->conns, "shutdown");
    if (!uv_is_closing((uv_handle_t *)&e->server))
        uv_close((uv_handle_t *)&e->server, NULL);
}
