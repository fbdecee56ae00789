#include "tlsio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/x509.h>

#define DEFAULT_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
/* One TLS 1.2 record at its largest (2^14 + 2048 + header); GnuTLS keeps
 * partial records itself, so more only costs memory per idle session. */
#define IN_CAP      (16384 + 2048 + 5)
#define PLAIN_CHUNK 16384

struct tlsio_ctx {
    int refs;
    bool server;
    bool tickets;
    gnutls_certificate_credentials_t creds;
    gnutls_priority_t prio;
    gnutls_datum_t ticket_key;
};

/* One uv_write of ciphertext; cb is the caller's write that ended in it. */
struct wreq {
    uv_write_t req;
    struct tlsio *t;
    char *data;
    size_t len;
    tlsio_write_cb cb;
    void *arg;
    bool bye;
};

enum state { ST_HANDSHAKE, ST_OPEN, ST_FAILED, ST_BYE };

struct tlsio {
    struct tlsio_ctx *ctx;
    uv_tcp_t *tcp;
    void *saved_data;
    gnutls_session_t s;
    bool server;
    enum state state;
    void *arg;
    tlsio_handshake_cb hs_cb;
    tlsio_read_cb read_cb;
    tlsio_bye_cb bye_cb;
    void *bye_arg;
    int bye_status;
    bool bye_due; /* call bye_cb from the idle callback */
    uv_timer_t timer;
    uv_idle_t idle;
    int handles;   /* timer and idle not yet closed */
    int writes;    /* uv_writes in flight */
    size_t queued; /* their bytes */
    int depth;     /* nesting of our callbacks into the caller */
    bool dead;     /* tlsio_free was called */
    bool reading;  /* the caller wants plaintext */
    bool sock_reading;
    bool handshaken; /* the handshake succeeded */
    bool eof;        /* TCP EOF seen */
    bool io_error;   /* TCP error seen */
    bool in_process; /* inside process(): writes wait for its end */
    bool pend;       /* out holds a tlsio_write whose cb is pend_cb */
    bool bye_pass;   /* tlsio_bye was called inside a pass */
    tlsio_write_cb pend_cb;
    void *pend_arg;
    char *out; /* ciphertext pushed by GnuTLS, not yet written */
    size_t out_len, out_cap;
    size_t in_off, in_len;
    char *in; /* IN_CAP bytes of ciphertext read, not yet pulled */
    /* client verification, computed once after the handshake */
    bool require_verified;
    char verify_name[256];
    bool chain_ok, name_ok;
    char verify_error[192];
    char last_error[256];
};

static void process(struct tlsio *t);
static void update_reading(struct tlsio *t);
static void on_idle(uv_idle_t *h);

const char *tlsio_strerror(int err)
{
    switch (err) {
    case TLSIO_OK:
        return "success";
    case TLSIO_EOF:
        return "the peer closed the connection";
    case TLSIO_ETIMEDOUT:
        return "TLS handshake timed out";
    case TLSIO_EHANDSHAKE:
        return "TLS handshake failed";
    case TLSIO_EVERIFY:
        return "peer certificate not verified";
    case TLSIO_EIO:
        return "network read or write error";
    case TLSIO_ETLS:
        return "TLS record layer error";
    case TLSIO_ECONFIG:
        return "bad TLS configuration";
    case TLSIO_ENOMEM:
        return "out of memory";
    case TLSIO_EINVAL:
        return "invalid call for the TLS session state";
    case TLSIO_ECANCELED:
        return "TLS write canceled";
    }
    return "unknown error";
}

/* ---- contexts ---- */

static struct tlsio_ctx *ctx_new(bool server, const char *priority, char *err,
                                 size_t errlen)
{
    struct tlsio_ctx *c = calloc(1, sizeof(*c));
    const char *pos = NULL;
    int r;

    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->refs = 1;
    c->server = server;
    if (gnutls_certificate_allocate_credentials(&c->creds) < 0) {
        free(c);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r = gnutls_priority_init(&c->prio, priority ? priority : DEFAULT_PRIORITY,
                             &pos);
    if (r < 0) {
        snprintf(err, errlen, "priority string %s near \"%.20s\"",
                 gnutls_strerror(r), pos ? pos : "");
        gnutls_certificate_free_credentials(c->creds);
        free(c);
        return NULL;
    }
    return c;
}

/* Reads a ticket key of exactly len bytes from path. Returns 0 or -1. */
static int read_key_file(const char *path, unsigned char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -1;
    n = read(fd, buf, len + 1);
    close(fd);
    return n == (ssize_t)len ? 0 : -1;
}

/* Writes key to a fresh file and links it to path, so that among processes
 * racing at first start exactly one key wins. Returns 0 or -1. */
static int create_key_file(const char *path, const gnutls_datum_t *key)
{
    char tmp[4096];
    int fd, ok;

    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    ok =
        write(fd, key->data, key->size) == (ssize_t)key->size && fsync(fd) == 0;
    close(fd);
    if (ok && link(tmp, path) != 0 && errno != EEXIST)
        ok = 0;
    unlink(tmp);
    return ok ? 0 : -1;
}

/* The ticket key: shared through ticket_key_file when given. */
static int ctx_ticket_key(struct tlsio_ctx *c, const char *file, char *err,
                          size_t errlen)
{
    gnutls_datum_t fresh;
    unsigned char buf[256];

    if (gnutls_session_ticket_key_generate(&fresh) < 0) {
        snprintf(err, errlen, "cannot generate a ticket key");
        return -1;
    }
    if (!file || !*file || fresh.size > sizeof(buf)) {
        c->ticket_key = fresh;
        return 0;
    }
    if (read_key_file(file, buf, fresh.size) != 0 &&
        (create_key_file(file, &fresh) != 0 ||
         read_key_file(file, buf, fresh.size) != 0)) {
        snprintf(err, errlen, "ticket key file %s: %s", file,
                 strerror(errno ? errno : EINVAL));
        gnutls_memset(fresh.data, 0, fresh.size);
        gnutls_free(fresh.data);
        return -1;
    }
    memcpy(fresh.data, buf, fresh.size);
    gnutls_memset(buf, 0, sizeof(buf));
    c->ticket_key = fresh;
    return 0;
}

int tlsio_ctx_server(const struct tlsio_server_opts *o, struct tlsio_ctx **out,
                     char *err, size_t errlen)
{
    struct tlsio_ctx *c;
    int r;

    if (!o->cert_file || !o->key_file) {
        snprintf(err, errlen, "certificate and key files are required");
        return TLSIO_ECONFIG;
    }
    c = ctx_new(true, o->priority, err, errlen);
    if (!c)
        return TLSIO_ECONFIG;
    r = gnutls_certificate_set_x509_key_file2(
        c->creds, o->cert_file, o->key_file, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (r < 0) {
        snprintf(err, errlen, "%s / %s: %s", o->cert_file, o->key_file,
                 gnutls_strerror(r));
        tlsio_ctx_unref(c);
        return TLSIO_ECONFIG;
    }
    c->tickets = o->tickets;
    if (c->tickets && ctx_ticket_key(c, o->ticket_key_file, err, errlen)) {
        tlsio_ctx_unref(c);
        return TLSIO_ECONFIG;
    }
    *out = c;
    return 0;
}

int tlsio_ctx_client(const struct tlsio_client_opts *o, struct tlsio_ctx **out,
                     char *err, size_t errlen)
{
    struct tlsio_ctx *c = ctx_new(false, o->priority, err, errlen);
    int r;

    if (!c)
        return TLSIO_ECONFIG;
    if (o->ca_file && *o->ca_file)
        r = gnutls_certificate_set_x509_trust_file(c->creds, o->ca_file,
                                                   GNUTLS_X509_FMT_PEM);
    else
        r = gnutls_certificate_set_x509_system_trust(c->creds);
    if (r < 0) {
        snprintf(err, errlen, "trust store %s: %s",
                 o->ca_file && *o->ca_file ? o->ca_file : "(system)",
                 gnutls_strerror(r));
        tlsio_ctx_unref(c);
        return TLSIO_ECONFIG;
    }
    if (o->cert_file && o->key_file) {
        r = gnutls_certificate_set_x509_key_file2(
            c->creds, o->cert_file, o->key_file, GNUTLS_X509_FMT_PEM, NULL, 0);
        if (r < 0) {
            snprintf(err, errlen, "%s: %s", o->cert_file, gnutls_strerror(r));
            tlsio_ctx_unref(c);
            return TLSIO_ECONFIG;
        }
    }
    *out = c;
    return 0;
}

void tlsio_ctx_ref(struct tlsio_ctx *ctx)
{
    ctx->refs++;
}

void tlsio_ctx_unref(struct tlsio_ctx *ctx)
{
    if (!ctx || --ctx->refs > 0)
        return;
    gnutls_certificate_free_credentials(ctx->creds);
    gnutls_priority_deinit(ctx->prio);
    if (ctx->ticket_key.data) {
        gnutls_memset(ctx->ticket_key.data, 0, ctx->ticket_key.size);
        gnutls_free(ctx->ticket_key.data);
    }
    free(ctx);
}

/* ---- transport: GnuTLS pulls from our buffer and pushes into ours ---- */

static ssize_t pull_fn(gnutls_transport_ptr_t p, void *buf, size_t len)
{
    struct tlsio *t = p;
    size_t n = len < t->in_len ? len : t->in_len;

    if (n == 0) {
        if (t->eof)
            return 0;
        gnutls_transport_set_errno(t->s, t->io_error ? ECONNRESET : EAGAIN);
        return -1;
    }
    memcpy(buf, t->in + t->in_off, n);
    t->in_off += n;
    t->in_len -= n;
    if (t->in_len == 0)
        t->in_off = 0;
    return (ssize_t)n;
}

static int pull_timeout_fn(gnutls_transport_ptr_t p, unsigned ms)
{
    struct tlsio *t = p;

    return t->in_len > 0 || t->eof ? 1 : 0;
}

static ssize_t push_fn(gnutls_transport_ptr_t p, const void *buf, size_t len)
{
    struct tlsio *t = p;

    if (t->out_len + len > t->out_cap) {
        size_t cap = t->out_cap ? t->out_cap : 4096;
        char *n;

        while (cap < t->out_len + len)
            cap *= 2;
        n = realloc(t->out, cap);
        if (!n) {
            gnutls_transport_set_errno(t->s, ENOMEM);
            return -1;
        }
        t->out = n;
        t->out_cap = cap;
    }
    memcpy(t->out + t->out_len, buf, len);
    t->out_len += len;
    return (ssize_t)len;
}

/* Frees the session's memory once nothing refers to it any more. */
static void maybe_release(struct tlsio *t)
{
    if (!t->dead || t->handles > 0 || t->writes > 0 || t->depth > 0)
        return;
    gnutls_deinit(t->s);
    free(t->out);
    free(t->in);
    free(t);
}

static void on_written(uv_write_t *req, int status)
{
    struct wreq *w = req->data;
    struct tlsio *t = w->t;

    t->writes--;
    t->queued -= w->len;
    free(w->data);
    if (status < 0 && !t->dead)
        t->io_error = true;
    if (!t->dead && w->cb) {
        t->depth++;
        w->cb(t,
              status < 0
                  ? (status == UV_ECANCELED ? TLSIO_ECANCELED : TLSIO_EIO)
                  : 0,
              w->arg);
        t->depth--;
    }
    if (!t->dead && w->bye && t->bye_cb) {
        t->depth++;
        t->bye_cb(t, status < 0 ? TLSIO_EIO : 0, t->bye_arg);
        t->depth--;
    }
    free(w);
    maybe_release(t);
}

/* Writes what it can of out at once (uv_try_write: libuv 1.44 follows a
 * uv_write with an epoll_ctl even when the kernel took every byte).
 * Returns true when out is empty; false with io_error set on error. */
static bool try_write(struct tlsio *t)
{
    uv_buf_t b = uv_buf_init(t->out, (unsigned)t->out_len);
    int r = t->out_len ? uv_try_write((uv_stream_t *)t->tcp, &b, 1) : 0;

    if (r == UV_EAGAIN)
        return false;
    if (r < 0) {
        t->io_error = true;
        return false;
    }
    memmove(t->out, t->out + r, t->out_len - (size_t)r);
    t->out_len -= (size_t)r;
    return t->out_len == 0;
}

/* Writes out whatever GnuTLS pushed, in one uv_write; the pending
 * tlsio_write callback and the bye ride on it. Without them a direct
 * write is tried first. */
static int flush(struct tlsio *t, bool bye)
{
    struct wreq *w;
    uv_buf_t b;
    int r;

    if (t->out_len == 0 && !t->pend && !bye)
        return 0;
    if (!t->pend && !bye && !t->io_error && try_write(t))
        return 0;
    if (t->io_error && !t->pend && !bye) {
        t->out_len = 0;
        return TLSIO_EIO;
    }
    w = malloc(sizeof(*w));
    if (!w)
        return TLSIO_ENOMEM;
    w->t = t;
    w->data = t->out;
    w->len = t->out_len;
    w->cb = t->pend ? t->pend_cb : NULL;
    w->arg = t->pend_arg;
    w->bye = bye;
    t->out = NULL;
    t->out_len = t->out_cap = 0;
    w->req.data = w;
    b = uv_buf_init(w->data ? w->data : (char *)"", (unsigned)w->len);
    r = uv_write(&w->req, (uv_stream_t *)t->tcp, &b, 1, on_written);
    if (r < 0) { /* the pending callback stays pending */
        free(w->data);
        free(w);
        t->io_error = true;
        return TLSIO_EIO;
    }
    t->pend = false;
    t->writes++;
    t->queued += w->len;
    return 0;
}

/* A pass wrote everything directly: the callbacks that would have ridden
 * on a uv_write are called now (this runs inside a libuv callback). */
static void pass_written(struct tlsio *t, bool bye)
{
    tlsio_write_cb cb = t->pend ? t->pend_cb : NULL;

    t->pend = false;
    t->depth++;
    if (cb)
        cb(t, 0, t->pend_arg);
    if (bye && !t->dead)
        t->bye_cb(t, 0, t->bye_arg);
    t->depth--;
}

/* End of process(): one write for the flights, records, replies and the
 * close_notify the pass produced; a failed write is reported to its
 * callbacks here. */
static void flush_pass(struct tlsio *t)
{
    bool bye = t->bye_pass;

    t->bye_pass = false;
    if (t->dead)
        return;
    if (!t->io_error && t->out_len > 0 && try_write(t)) {
        pass_written(t, bye);
        return;
    }
    if (flush(t, bye) == 0)
        return;
    if (bye) {
        t->bye_status = TLSIO_EIO;
        t->bye_due = true;
        uv_idle_start(&t->idle, on_idle);
    }
    if (!t->pend)
        return;
    t->pend = false;
    if (!t->pend_cb)
        return;
    t->depth++;
    t->pend_cb(t, TLSIO_EIO, t->pend_arg);
    t->depth--;
}

/* ---- reading ciphertext from the socket ---- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct tlsio *t = h->data;

    if (t->in_off > 0 && t->in_len > 0)
        memmove(t->in, t->in + t->in_off, t->in_len);
    t->in_off = 0;
    *buf = uv_buf_init(t->in + t->in_len, (unsigned)(IN_CAP - t->in_len));
}

/* Runs the handshake or delivers records, then writes what it produced. */
static void process_and_flush(struct tlsio *t)
{
    t->depth++;
    t->in_process = true;
    process(t);
    t->in_process = false;
    flush_pass(t);
    t->depth--;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct tlsio *t = st->data;

    if (n == 0)
        return;
    if (n > 0)
        t->in_len += (size_t)n;
    else if (n == UV_EOF)
        t->eof = true;
    else
        t->io_error = true;
    if (n < 0) {
        uv_read_stop(st);
        t->sock_reading = false;
    }
    process_and_flush(t);
    if (!t->dead)
        update_reading(t);
    maybe_release(t);
}

/* Reads the socket while the session is open and the buffer has room,
 * also while the caller pauses: pausing then costs no epoll_ctl, and at
 * most IN_CAP bytes wait here. */
static void update_reading(struct tlsio *t)
{
    bool want = (t->state == ST_HANDSHAKE || t->state == ST_OPEN) && !t->eof &&
                !t->io_error && t->in_len < IN_CAP;

    if (want && !t->sock_reading) {
        if (uv_read_start((uv_stream_t *)t->tcp, on_alloc, on_read) == 0)
            t->sock_reading = true;
    } else if (!want && t->sock_reading) {
        uv_read_stop((uv_stream_t *)t->tcp);
        t->sock_reading = false;
    }
}

/* ---- the handshake ---- */

static void save_error(struct tlsio *t, int gnutls_err)
{
    snprintf(t->last_error, sizeof(t->last_error), "%s",
             gnutls_strerror(gnutls_err));
}

/* Client: checks chain (purpose TLS server) and name; fills the report
 * fields chain_ok, name_ok and verify_error. */
static void verify_peer(struct tlsio *t)
{
    gnutls_typed_vdata_st data = {GNUTLS_DT_KEY_PURPOSE_OID,
                                  (unsigned char *)GNUTLS_KP_TLS_WWW_SERVER, 0};
    gnutls_datum_t txt = {NULL, 0};
    unsigned status = 0;
    int r;

    if (t->server)
        return;
    r = gnutls_certificate_verify_peers(t->s, &data, 1, &status);
    if (r < 0) {
        snprintf(t->verify_error, sizeof(t->verify_error), "%s",
                 gnutls_strerror(r));
        return;
    }
    t->chain_ok = status == 0;
    if (!t->chain_ok && gnutls_certificate_verification_status_print(
                            status, GNUTLS_CRT_X509, &txt, 0) == 0) {
        snprintf(t->verify_error, sizeof(t->verify_error), "%s", txt.data);
        gnutls_free(txt.data);
    }
    if (t->verify_name[0])
        t->name_ok = tlsio_peer_name_matches(t, t->verify_name);
    if (t->chain_ok && !t->name_ok)
        snprintf(t->verify_error, sizeof(t->verify_error),
                 t->verify_name[0] ? "certificate does not match %s"
                                   : "no name to check%s",
                 t->verify_name);
}

/* A failure's alert goes out before the callback, which may free. */
static void handshake_done(struct tlsio *t, int status)
{
    if (status != 0)
        flush(t, false);
    uv_timer_stop(&t->timer);
    t->state = status == 0 ? ST_OPEN : ST_FAILED;
    update_reading(t);
    t->depth++;
    t->hs_cb(t, status, t->arg);
    t->depth--;
}

/* Server, TLS 1.3: one session ticket instead of GnuTLS's two (each costs
 * a key derivation and an encryption; a client resumes one connection
 * per ticket and gets a fresh ticket on each resumed one). */
static void send_ticket(struct tlsio *t)
{
    int r;

    if (!t->server || !t->ctx->tickets ||
        gnutls_protocol_get_version(t->s) != GNUTLS_TLS1_3)
        return;
    r = gnutls_session_ticket_send(t->s, 1, 0);
    if (r < 0)
        save_error(t, r); /* no ticket: the next session is a full one */
}

/* One handshake step. Its flight is written at the end of the pass, with
 * the caller's first reply when the handshake completed. */
static void do_handshake(struct tlsio *t)
{
    int r = gnutls_handshake(t->s);

    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
        if (t->eof || t->io_error) {
            snprintf(t->last_error, sizeof(t->last_error),
                     "connection closed during the handshake");
            handshake_done(t, TLSIO_EHANDSHAKE);
        }
        return;
    }
    if (r < 0 && gnutls_error_is_fatal(r) == 0)
        return;
    if (r < 0) {
        save_error(t, r);
        handshake_done(t, t->io_error ? TLSIO_EIO : TLSIO_EHANDSHAKE);
        return;
    }
    verify_peer(t);
    send_ticket(t);
    t->handshaken = true;
    if (t->require_verified && !(t->chain_ok && t->name_ok)) {
        snprintf(t->last_error, sizeof(t->last_error), "%s", t->verify_error);
        handshake_done(t, TLSIO_EVERIFY);
        return;
    }
    handshake_done(t, 0);
}

/* Ends a read stream with err and tells the caller once. */
static void read_failed(struct tlsio *t, int err)
{
    flush(t, false);
    t->state = ST_FAILED;
    update_reading(t);
    if (t->read_cb && t->reading) {
        t->depth++;
        t->read_cb(t, NULL, err, t->arg);
        t->depth--;
    }
}

/* Decrypts and delivers records while the caller reads. */
static void do_records(struct tlsio *t)
{
    char buf[PLAIN_CHUNK];
    ssize_t r;

    while (!t->dead && t->state == ST_OPEN && t->reading) {
        size_t before = t->in_len;
        r = gnutls_record_recv(t->s, buf, sizeof(buf));
        /* GnuTLS answers AGAIN after a post-handshake message (a TLS 1.3
         * session ticket) even when more records are buffered here. */
        if (r == GNUTLS_E_AGAIN && t->in_len > 0 && t->in_len < before)
            continue;
        if (r > 0) {
            t->depth++;
            t->read_cb(t, buf, r, t->arg);
            t->depth--;
            continue;
        }
        if (r == 0) {
            read_failed(t, TLSIO_EOF);
            return;
        }
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
            if (t->eof || t->io_error) {
                snprintf(t->last_error, sizeof(t->last_error),
                         "connection closed without close_notify");
                read_failed(t, t->io_error ? TLSIO_EIO : TLSIO_EOF);
            }
            return;
        }
        if (r == GNUTLS_E_PREMATURE_TERMINATION) {
            save_error(t, (int)r); /* TCP closed without close_notify */
            read_failed(t, TLSIO_EOF);
            return;
        }
        if (gnutls_error_is_fatal((int)r)) {
            save_error(t, (int)r);
            read_failed(t, TLSIO_ETLS);
            return;
        }
    }
}

static void process(struct tlsio *t)
{
    if (t->state == ST_HANDSHAKE)
        do_handshake(t);
    if (!t->dead && t->state == ST_OPEN && t->reading)
        do_records(t);
}

/* ---- timers and deferred work ---- */

static void on_timeout(uv_timer_t *tm)
{
    struct tlsio *t = tm->data;

    if (t->state != ST_HANDSHAKE)
        return;
    snprintf(t->last_error, sizeof(t->last_error), "handshake timed out");
    handshake_done(t, TLSIO_ETIMEDOUT);
    maybe_release(t);
}

static void on_idle(uv_idle_t *h)
{
    struct tlsio *t = h->data;

    uv_idle_stop(h);
    t->depth++;
    if (t->bye_due) {
        t->bye_due = false;
        t->bye_cb(t, t->bye_status, t->bye_arg);
    }
    if (!t->dead)
        process_and_flush(t);
    t->depth--;
    if (!t->dead)
        update_reading(t);
    maybe_release(t);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct tlsio *t = h->data;

    t->handles--;
    maybe_release(t);
}

/* ---- sessions ---- */

static int session_init(struct tlsio *t, const struct tlsio_opts *o)
{
    unsigned flags =
        (t->server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NONBLOCK;

    if (t->server && !t->ctx->tickets)
        flags |= GNUTLS_NO_TICKETS;
    else if (t->server) /* one TLS 1.3 ticket, sent by send_ticket */
        flags |= GNUTLS_NO_AUTO_SEND_TICKET;
    if (gnutls_init(&t->s, flags) < 0)
        return TLSIO_ENOMEM;
    if (gnutls_priority_set(t->s, t->ctx->prio) < 0 ||
        gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, t->ctx->creds) < 0)
        return TLSIO_ECONFIG;
    if (t->server && t->ctx->tickets &&
        gnutls_session_ticket_enable_server(t->s, &t->ctx->ticket_key) < 0)
        return TLSIO_ECONFIG;
    if (t->server)
        gnutls_certificate_server_set_request(t->s, GNUTLS_CERT_IGNORE);
    if (!t->server && o->server_name && *o->server_name &&
        gnutls_server_name_set(t->s, GNUTLS_NAME_DNS, o->server_name,
                               strlen(o->server_name)) < 0)
        return TLSIO_EINVAL;
    if (!t->server && o->resume)
        gnutls_session_set_data(t->s, o->resume->data, o->resume->size);
    gnutls_transport_set_ptr(t->s, t);
    gnutls_transport_set_pull_function(t->s, pull_fn);
    gnutls_transport_set_pull_timeout_function(t->s, pull_timeout_fn);
    gnutls_transport_set_push_function(t->s, push_fn);
    return 0;
}

/* Takes over reading tcp. A read the caller has running is handed over in
 * place (libuv calls a reading stream's callbacks through its alloc_cb
 * and read_cb fields, which uv_read_stop clears): stopping and starting
 * again would cost two epoll_ctl calls, one of them failing. */
static void take_reading(struct tlsio *t, uv_tcp_t *tcp)
{
    t->saved_data = tcp->data;
    tcp->data = t;
    if (tcp->read_cb && uv_is_active((uv_handle_t *)tcp)) {
        tcp->alloc_cb = on_alloc;
        tcp->read_cb = on_read;
        t->sock_reading = true;
        return;
    }
    update_reading(t);
}

int tlsio_start(struct tlsio_ctx *ctx, uv_tcp_t *tcp, bool server,
                const struct tlsio_opts *o, tlsio_handshake_cb cb, void *arg,
                struct tlsio **out)
{
    uv_loop_t *loop = tcp->loop;
    struct tlsio *t;
    int r;

    if (ctx->server != server || !cb)
        return TLSIO_EINVAL;
    t = calloc(1, sizeof(*t));
    if (!t)
        return TLSIO_ENOMEM;
    t->in = malloc(IN_CAP); /* not zeroed: only read into */
    if (!t->in) {
        free(t);
        return TLSIO_ENOMEM;
    }
    t->ctx = ctx;
    t->tcp = tcp;
    t->server = server;
    t->hs_cb = cb;
    t->arg = arg;
    t->require_verified = o->require_verified;
    if (o->verify_name)
        snprintf(t->verify_name, sizeof(t->verify_name), "%s", o->verify_name);
    r = session_init(t, o);
    if (r < 0) {
        if (t->s)
            gnutls_deinit(t->s);
        free(t->in);
        free(t);
        return r;
    }
    tlsio_ctx_ref(ctx);
    take_reading(t, tcp);
    uv_timer_init(loop, &t->timer);
    uv_idle_init(loop, &t->idle);
    t->timer.data = t->idle.data = t;
    t->handles = 2;
    if (o->handshake_timeout_ms)
        uv_timer_start(&t->timer, on_timeout, o->handshake_timeout_ms, 0);
    if (!server) /* the client's first flight goes out from the idle */
        uv_idle_start(&t->idle, on_idle);
    *out = t;
    return 0;
}

int tlsio_read_start(struct tlsio *t, tlsio_read_cb cb)
{
    if (t->state != ST_OPEN || !cb)
        return TLSIO_EINVAL;
    t->read_cb = cb;
    t->reading = true;
    update_reading(t);
    /* Inside a pass the pass itself delivers what is buffered next. */
    if (!t->in_process && (t->in_len > 0 || t->eof || t->io_error ||
                           gnutls_record_check_pending(t->s) > 0))
        uv_idle_start(&t->idle, on_idle);
    return 0;
}

void tlsio_read_stop(struct tlsio *t)
{
    t->reading = false;
    update_reading(t);
}

int tlsio_write(struct tlsio *t, const void *buf, size_t len, tlsio_write_cb cb,
                void *arg)
{
    const char *p = buf;
    size_t off = 0;
    int fr;

    if (t->state != ST_OPEN || len == 0 || t->io_error)
        return TLSIO_EINVAL;
    while (off < len) {
        size_t n = len - off < PLAIN_CHUNK ? len - off : PLAIN_CHUNK;
        ssize_t r = gnutls_record_send(t->s, p + off, n);

        if (r < 0 && r != GNUTLS_E_AGAIN && r != GNUTLS_E_INTERRUPTED) {
            save_error(t, (int)r);
            return r == GNUTLS_E_MEMORY_ERROR ? TLSIO_ENOMEM : TLSIO_ETLS;
        }
        if (r > 0)
            off += (size_t)r;
    }
    /* One pending callback at a time rides on the next write. */
    if (t->pend && (fr = flush(t, false)) < 0)
        return fr;
    t->pend = true;
    t->pend_cb = cb;
    t->pend_arg = arg;
    if (t->in_process) /* written at the end of the pass, coalesced */
        return 0;
    fr = flush(t, false);
    if (fr < 0)
        t->pend = false; /* the caller has the error, not a callback */
    return fr;
}

size_t tlsio_write_queue_size(const struct tlsio *t)
{
    return t->queued + t->out_len;
}

void tlsio_bye(struct tlsio *t, tlsio_bye_cb cb, void *arg)
{
    int r;

    t->bye_cb = cb;
    t->bye_arg = arg;
    if (t->state != ST_OPEN || t->io_error) {
        t->state = ST_BYE;
        t->bye_status = TLSIO_EINVAL;
        t->bye_due = true;
        update_reading(t);
        uv_idle_start(&t->idle, on_idle);
        return;
    }
    t->state = ST_BYE;
    t->reading = false;
    update_reading(t);
    r = gnutls_bye(t->s, GNUTLS_SHUT_WR);
    if (r < 0 && r != GNUTLS_E_AGAIN)
        save_error(t, r);
    if (t->in_process) { /* with the pass's replies, at its end */
        t->bye_pass = true;
        return;
    }
    if (flush(t, true) < 0) { /* with any pending reply: one write */
        t->bye_status = TLSIO_EIO;
        t->bye_due = true;
        uv_idle_start(&t->idle, on_idle);
    }
}

void tlsio_free(struct tlsio *t)
{
    if (!t || t->dead)
        return;
    flush(t, false); /* what was written before the free still goes out */
    t->dead = true;
    if (t->sock_reading)
        uv_read_stop((uv_stream_t *)t->tcp);
    t->sock_reading = false;
    t->tcp->data = t->saved_data;
    uv_close((uv_handle_t *)&t->timer, on_handle_closed);
    uv_close((uv_handle_t *)&t->idle, on_handle_closed);
    tlsio_ctx_unref(t->ctx);
    t->ctx = NULL;
}

/* ---- the report ---- */

/* The peer's leaf certificate, imported; NULL when there is none. */
static gnutls_x509_crt_t peer_leaf(const struct tlsio *t)
{
    const gnutls_datum_t *list;
    unsigned n = 0;
    gnutls_x509_crt_t crt;

    list = gnutls_certificate_get_peers(t->s, &n);
    if (!list || n == 0 || gnutls_x509_crt_init(&crt) < 0)
        return NULL;
    if (gnutls_x509_crt_import(crt, &list[0], GNUTLS_X509_FMT_DER) < 0) {
        gnutls_x509_crt_deinit(crt);
        return NULL;
    }
    return crt;
}

static void copy_datum(char *dst, size_t n, gnutls_datum_t *d)
{
    snprintf(dst, n, "%.*s", (int)d->size, d->data ? (char *)d->data : "");
    gnutls_free(d->data);
}

/* Fills subject, issuer, names and validity from the leaf certificate. */
static void report_cert(const struct tlsio *t, struct tlsio_report *r)
{
    gnutls_x509_crt_t crt = peer_leaf(t);
    gnutls_datum_t d;
    char name[256];
    size_t len, used = 0;
    unsigned type;

    if (!crt)
        return;
    r->peer_cert = true;
    if (gnutls_x509_crt_get_dn3(crt, &d, 0) == 0)
        copy_datum(r->subject, sizeof(r->subject), &d);
    if (gnutls_x509_crt_get_issuer_dn3(crt, &d, 0) == 0)
        copy_datum(r->issuer, sizeof(r->issuer), &d);
    for (unsigned i = 0;; i++) {
        len = sizeof(name) - 1;
        int k = gnutls_x509_crt_get_subject_alt_name2(crt, i, name, &len, &type,
                                                      NULL);
        if (k == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (k != GNUTLS_SAN_DNSNAME || len + 2 >= sizeof(r->names) - used)
            continue;
        name[len] = '\0';
        used += (size_t)snprintf(r->names + used, sizeof(r->names) - used,
                                 "%s%s", used ? "," : "", name);
    }
    r->not_before = gnutls_x509_crt_get_activation_time(crt);
    r->not_after = gnutls_x509_crt_get_expiration_time(crt);
    gnutls_x509_crt_deinit(crt);
}

int tlsio_report(const struct tlsio *t, struct tlsio_report *r)
{
    const char *s;

    memset(r, 0, sizeof(*r));
    if (!t->handshaken)
        return TLSIO_EINVAL;
    s = gnutls_protocol_get_name(gnutls_protocol_get_version(t->s));
    snprintf(r->protocol, sizeof(r->protocol), "%s", s ? s : "");
    s = gnutls_ciphersuite_get(t->s);
    snprintf(r->cipher, sizeof(r->cipher), "%s", s ? s : "");
    if (gnutls_protocol_get_version(t->s) != GNUTLS_TLS1_3) {
        s = gnutls_kx_get_name(gnutls_kx_get(t->s));
        snprintf(r->kx, sizeof(r->kx), "%s", s ? s : "");
    }
    s = gnutls_group_get_name(gnutls_group_get(t->s));
    snprintf(r->group, sizeof(r->group), "%s", s ? s : "");
    r->resumed = gnutls_session_is_resumed(t->s) != 0;
    report_cert(t, r);
    r->chain_ok = t->chain_ok;
    r->name_ok = t->name_ok;
    r->cert_verified = t->chain_ok && t->name_ok;
    if (!r->cert_verified)
        snprintf(r->verify_error, sizeof(r->verify_error), "%s",
                 t->server            ? "client certificate not requested"
                 : !r->peer_cert      ? "no peer certificate"
                 : t->verify_error[0] ? t->verify_error
                                      : "not verified");
    return 0;
}

bool tlsio_peer_name_matches(const struct tlsio *t, const char *name)
{
    gnutls_x509_crt_t crt = peer_leaf(t);
    bool ok;

    if (!crt)
        return false;
    ok = gnutls_x509_crt_check_hostname2(crt, name, 0) != 0;
    gnutls_x509_crt_deinit(crt);
    return ok;
}

int tlsio_session_data(const struct tlsio *t, gnutls_datum_t *data)
{
    int r;

    if (!t->handshaken || t->server)
        return TLSIO_EINVAL;
    r = gnutls_session_get_data2(t->s, data);
    if (r < 0)
        return r == GNUTLS_E_MEMORY_ERROR ? TLSIO_ENOMEM : TLSIO_EINVAL;
    return 0;
}

gnutls_session_t tlsio_gnutls(const struct tlsio *t)
{
    return t->s;
}

const char *tlsio_last_error(const struct tlsio *t)
{
    return t->last_error;
}
