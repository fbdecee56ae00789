/* One inbound SMTP connection: reading, writing, timers, TLS, teardown. */
#include "smtpin.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define CLOSE_WAIT_MS 5000 /* how long last replies may take to go out */

static void session_read_update(struct smtpin_session *s);
static void session_run(struct smtpin_session *s);
static void session_teardown(struct smtpin_session *s);

/* ---- replies ---- */

void smtpin_reply(struct smtpin_session *s, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 3)
        n = (int)sizeof(line) - 3;
    memcpy(line + n, "\r\n", 2);
    n += 2;
    if (s->out_len + (size_t)n > s->out_cap) {
        size_t cap = s->out_cap ? s->out_cap * 2 : 1024;
        char *p;

        while (cap < s->out_len + (size_t)n)
            cap *= 2;
        p = realloc(s->out, cap);
        if (!p)
            return;
        s->out = p;
        s->out_cap = cap;
    }
    memcpy(s->out + s->out_len, line, (size_t)n);
    s->out_len += (size_t)n;
}

/* Plaintext write done: its buffer is freed; a closing session may end. */
static void on_bye(struct tlsio *t, int status, void *arg)
{
    session_teardown(arg);
}

/* A closing session whose replies are out: close_notify, then close. */
static void session_finish(struct smtpin_session *s)
{
    if (s->torn_down)
        return;
    if (s->tls_active && s->tls && !s->peer_gone && !s->bye_sent) {
        s->bye_sent = true;
        tlsio_bye(s->tls, on_bye, s);
        return;
    }
    if (!s->bye_sent)
        session_teardown(s);
}

/* A write finished: a closing session may end, reading may resume. */
static void written(struct smtpin_session *s, int status)
{
    s->writes_pending--;
    if (status < 0)
        s->peer_gone = true;
    if (s->torn_down)
        return;
    if (s->mode == SM_CLOSING && s->writes_pending == 0)
        session_finish(s);
    else
        session_read_update(s);
}

static void on_plain_written(uv_write_t *req, int status)
{
    struct smtpin_session *s = req->data;

    free(req);
    written(s, status);
}

static void on_tls_written(struct tlsio *t, int status, void *arg)
{
    written(arg, status);
}

/* Writes the queued replies as one plaintext write: directly when the
 * kernel takes them all (returns 0: nothing pending; libuv 1.44 follows
 * each uv_write with an epoll_ctl), else the rest with uv_write (buffer
 * and request in one allocation; returns 1). -1 on error. */
static int flush_plain(struct smtpin_session *s)
{
    uv_buf_t b = uv_buf_init(s->out, (unsigned)s->out_len);
    int n = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
    uv_write_t *req;

    if (n < 0 && n != UV_EAGAIN)
        return -1;
    if (n == (int)s->out_len)
        return 0;
    n = n < 0 ? 0 : n;
    req = malloc(sizeof(*req) + s->out_len - (size_t)n);
    if (!req)
        return -1;
    memcpy(req + 1, s->out + n, s->out_len - (size_t)n);
    req->data = s;
    b = uv_buf_init((char *)(req + 1), (unsigned)(s->out_len - (size_t)n));
    if (uv_write(req, (uv_stream_t *)&s->tcp, &b, 1, on_plain_written) < 0) {
        free(req);
        return -1;
    }
    return 1;
}

void smtpin_flush(struct smtpin_session *s)
{
    int r;

    if (s->out_len == 0 || s->torn_down || s->peer_gone)
        return;
    if (s->tls_active)
        r = tlsio_write(s->tls, s->out, s->out_len, on_tls_written, s) < 0 ? -1
                                                                           : 1;
    else
        r = flush_plain(s);
    s->out_len = 0;
    if (r < 0)
        s->peer_gone = true;
    else if (r > 0)
        s->writes_pending++;
}

size_t smtpin_out_pending(const struct smtpin_session *s)
{
    size_t q =
        s->tls_active && s->tls
            ? tlsio_write_queue_size(s->tls)
            : uv_stream_get_write_queue_size((const uv_stream_t *)&s->tcp);

    return q + s->out_len;
}

/* ---- ids ---- */

void smtpin_new_id(struct smtpin_server *srv, char *buf, size_t n,
                   const char *prefix)
{
    static unsigned pid; /* receivers are exec'd, never forked after this */
    uv_timeval64_t tv;

    if (!pid)
        pid = (unsigned)uv_os_getpid() & 0xfffff;
    uv_gettimeofday(&tv);
    snprintf(buf, n, "%s%09llX%05X%04lX", prefix,
             (unsigned long long)tv.tv_sec & 0xfffffffffULL, pid,
             ++srv->seq & 0xffff);
}

/* ---- timers ---- */

/* Ends the session with a 421 (none mid-handshake: no channel for it). */
static void session_421(struct smtpin_session *s, const char *code,
                        const char *text, const char *reason)
{
    smtpin_message_abort(s);
    if (s->mode != SM_HANDSHAKE)
        smtpin_reply(s, "421 %s %s %s, closing", code, s->srv->cfg->hostname,
                     text);
    smtpin_end(s, reason);
}

/* No input for the mode's timeout (or last replies not taken): close. */
static void on_idle_timeout(uv_timer_t *tm)
{
    struct smtpin_session *s = tm->data;

    if (s->mode == SM_CLOSING) {
        session_teardown(s); /* the peer does not take our last replies */
        return;
    }
    if (s->mode == SM_DISK || s->mode == SM_ENGINE)
        return; /* our own wait: the next step restarts the timer */
    session_421(s, "4.4.2", "Timeout exceeded",
                s->mode == SM_DATA ? "data-timeout" : "timeout");
}

/* session_timeout: ends the session at the next point where it may. */
static void on_life_timeout(uv_timer_t *tm)
{
    struct smtpin_session *s = tm->data;

    if (s->mode == SM_CLOSING)
        return;
    if (s->mode == SM_DISK || s->mode == SM_ENGINE) {
        uv_timer_start(tm, on_life_timeout, 1000, 0); /* after this step */
        return;
    }
    session_421(s, "4.4.2", "Session too long", "session-timeout");
}

/* Arms the idle timer for the current mode. */
static void session_timer(struct smtpin_session *s)
{
    const struct tg_config *cfg = s->srv->cfg;
    uint64_t secs = s->mode == SM_DATA        ? cfg->data_timeout
                    : s->mode == SM_HANDSHAKE ? cfg->handshake_timeout + 1
                                              : cfg->command_timeout;

    if (s->mode == SM_CLOSING || s->torn_down)
        return;
    uv_timer_start(&s->idle, on_idle_timeout, secs * 1000, 0);
}

/* ---- input ---- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct smtpin_session *s = h->data;

    *buf = uv_buf_init(s->in + s->in_len, (unsigned)(s->in_cap - s->in_len));
}

/* The peer went away (EOF or error) while we wait for more input. */
static void session_peer_gone(struct smtpin_session *s, const char *why)
{
    s->peer_gone = true;
    smtpin_message_abort(s);
    if (s->mode == SM_ENGINE || s->mode == SM_DISK) {
        s->end_reason = why; /* the pending step ends the session */
        session_read_update(s);
        return;
    }
    smtpin_end(s, why);
}

static void input_arrived(struct smtpin_session *s)
{
    session_run(s);
}

/* Plaintext bytes land in the input buffer directly (on_alloc). */
static void on_plain_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct smtpin_session *s = st->data;

    if (n > 0) {
        s->in_len += (size_t)n;
        input_arrived(s);
    } else if (n < 0) {
        session_peer_gone(s, n == UV_EOF ? "eof" : "read-error");
    }
}

/* Decrypted bytes from tlsio, copied into the input buffer. */
static void on_tls_read(struct tlsio *t, const char *buf, ssize_t n, void *arg)
{
    struct smtpin_session *s = arg;

    if (n < 0) {
        session_peer_gone(s, n == TLSIO_EOF ? "eof" : "tls-error");
        return;
    }
    if ((size_t)n > s->in_cap - s->in_len) {
        /* session_read_update keeps room for a record, so this is a bug */
        session_peer_gone(s, "input-overflow");
        return;
    }
    memcpy(s->in + s->in_len, buf, (size_t)n);
    s->in_len += (size_t)n;
    input_arrived(s);
}

/* Reads only while there is room for a whole TLS record, replies are
 * being taken by the peer, and the session is not waiting or closing. */
static void session_read_update(struct smtpin_session *s)
{
    bool want = !s->torn_down && !s->peer_gone &&
                (s->mode == SM_CMD || s->mode == SM_DATA) &&
                s->in_cap - s->in_len >= SMTPIN_READ_ROOM &&
                smtpin_out_pending(s) < SMTPIN_OUT_MAX;

    if (want == s->reading)
        return;
    s->reading = want;
    if (s->tls_active) {
        if (want)
            tlsio_read_start(s->tls, on_tls_read);
        else
            tlsio_read_stop(s->tls);
    } else if (want) {
        uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_plain_read);
    } else {
        uv_read_stop((uv_stream_t *)&s->tcp);
    }
}

/* Drops the first n bytes of the input buffer. */
static void consume(struct smtpin_session *s, size_t n)
{
    memmove(s->in, s->in + n, s->in_len - n);
    s->in_len -= n;
}

/* One step on the buffered input; false when nothing more can be done. */
static bool session_step(struct smtpin_session *s)
{
    const char *line = NULL;
    size_t len = 0, used = 0;
    enum smtpin_line_status st;

    if (s->mode == SM_DATA) {
        consume(s, smtpin_data_input(s, s->in, s->in_len));
        return true;
    }
    if (s->mode == SM_ENGINE && s->discarding)
        return false;
    st = smtpin_next_line(s->in, s->in_len, s->srv->cfg->max_line_length,
                          &s->discarding, &line, &len, &used);
    if (st == SL_MORE) {
        consume(s, used);
        return false;
    }
    /* Lookups in flight: only further RCPTs run now (pipelined lookups
     * overlap); any other line waits for every answer, so replies keep
     * their order. */
    if (s->mode == SM_ENGINE &&
        (st != SL_LINE || !smtpin_rcpt_joins(s, line, len)))
        return false;
    if (st == SL_TOOLONG) {
        consume(s, used);
        smtpin_reply(s, "500 5.5.2 Line too long");
        smtpin_error(s);
        return true;
    }
    /* The line leaves the buffer first: what is left after it is what
     * the peer sent beyond it (STARTTLS injection, data before 354). */
    char copy[len + 1];
    memcpy(copy, line, len);
    copy[len] = '\0';
    consume(s, used);
    smtpin_command(s, copy, len);
    return true;
}

/* Processes buffered input until it runs out or the session waits, then
 * writes the replies (one write for a pipelined batch). */
static void session_run(struct smtpin_session *s)
{
    while (s->in_len > 0 &&
           (s->mode == SM_CMD || s->mode == SM_DATA || s->mode == SM_ENGINE))
        if (!session_step(s))
            break;
    if (s->mode == SM_CMD || s->mode == SM_DATA || s->mode == SM_CLOSING)
        smtpin_flush(s);
    if (s->mode == SM_CMD || s->mode == SM_DATA)
        session_timer(s);
    if (s->mode == SM_CLOSING && s->writes_pending == 0)
        session_finish(s);
    else
        session_read_update(s);
}

void smtpin_resume(struct smtpin_session *s)
{
    if (s->torn_down)
        return;
    if (s->srv->grace_over) {
        smtpin_session_shutdown(s); /* it was busy when the grace ended */
        return;
    }
    if (s->peer_gone && s->mode != SM_CLOSING) {
        smtpin_end(s, s->end_reason ? s->end_reason : "eof");
        return;
    }
    session_run(s);
}

/* ---- ending ---- */

void smtpin_end(struct smtpin_session *s, const char *reason)
{
    if (s->mode == SM_CLOSING || s->torn_down)
        return;
    if (!s->end_reason || !s->peer_gone)
        s->end_reason = reason;
    s->mode = SM_CLOSING;
    smtpin_message_abort(s);
    session_read_update(s);
    uv_timer_start(&s->idle, on_idle_timeout, CLOSE_WAIT_MS, 0);
    smtpin_flush(s);
    /* Under TLS the close_notify joins the last reply in one write (tlsio
     * orders it after everything queued); on_bye then tears down. */
    if (s->writes_pending == 0 || (s->tls_active && s->tls && !s->peer_gone))
        session_finish(s);
}

/* The one line per session: peer, HELO, TLS outcome, counts, reason. */
static void log_session_end(struct smtpin_session *s)
{
    char helo[128];

    log_info("id=%s smtpin session_end peer=%s:%u helo=%s tls=%s cipher=%s "
             "resumed=%s messages=%u errors=%u reason=%s",
             s->id, s->peer, s->peer_port,
             log_escape(helo, sizeof(helo), s->helo[0] ? s->helo : "-"),
             s->tls_active ? s->tlsrep.protocol : "none",
             s->tls_active ? s->tlsrep.cipher : "none",
             s->tls_active && s->tlsrep.resumed ? "yes" : "no", s->messages,
             s->errors, s->end_reason ? s->end_reason : "closed");
}

static void session_free_maybe(struct smtpin_session *s)
{
    struct smtpin_server *srv = s->srv;

    if (s->handles > 0 || s->refs > 0)
        return;
    if (s->prev)
        s->prev->next = s->next;
    else
        srv->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    srv->nsessions--;
    smtpin_calls_free(s);
    free(s->rcpts);
    free(s->out);
    free(s->in);
    free(s);
    if (srv->stopping && srv->nsessions == 0)
        uv_stop(srv->loop);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct smtpin_session *s = h->data;

    s->handles--;
    session_free_maybe(s);
}

/* Closes everything; memory goes when pending engine/disk work is done. */
static void session_teardown(struct smtpin_session *s)
{
    if (s->torn_down)
        return;
    s->torn_down = true;
    smtpin_message_abort(s);
    log_session_end(s);
    if (s->tls) {
        tlsio_free(s->tls);
        s->tls = NULL;
    }
    s->tcp.data = s;
    uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&s->idle, on_handle_closed);
    uv_close((uv_handle_t *)&s->life, on_handle_closed);
}

void smtpin_session_unref(struct smtpin_session *s)
{
    s->refs--;
    session_free_maybe(s);
}

void smtpin_session_shutdown(struct smtpin_session *s)
{
    if (s->mode == SM_DISK || s->mode == SM_CLOSING || s->torn_down)
        return;
    session_421(s, "4.3.2", "Service shutting down", "shutdown");
}

/* ---- TLS ---- */

static void on_handshake(struct tlsio *t, int status, void *arg)
{
    struct smtpin_session *s = arg;

    if (status < 0) {
        log_info("id=%s smtpin tls_failed peer=%s error=\"%s\" detail=\"%s\"",
                 s->id, s->peer, tlsio_strerror(status), tlsio_last_error(t));
        s->peer_gone = true;
        s->mode = SM_CMD;
        smtpin_end(s, status == TLSIO_ETIMEDOUT ? "tls-timeout" : "tls-failed");
        return;
    }
    tlsio_report(t, &s->tlsrep);
    s->tls_active = true;
    log_info("id=%s smtpin tls peer=%s protocol=%s cipher=%s group=%s "
             "resumed=%s",
             s->id, s->peer, s->tlsrep.protocol, s->tlsrep.cipher,
             s->tlsrep.group[0] ? s->tlsrep.group : "-",
             s->tlsrep.resumed ? "yes" : "no");
    s->mode = SM_CMD;
    smtpin_resume(s);
}

void smtpin_starttls(struct smtpin_session *s)
{
    struct tlsio_opts o = {0};
    int r;

    o.handshake_timeout_ms = (unsigned)s->srv->cfg->handshake_timeout * 1000;
    if (s->in_len > 0)
        log_warn("id=%s smtpin starttls_injection peer=%s discarded=%zu", s->id,
                 s->peer, s->in_len);
    s->in_len = 0; /* SPEC: nothing sent before the handshake survives */
    s->discarding = false;
    smtpin_flush(s);    /* the 220, in plaintext, before any TLS byte */
    s->reading = false; /* tlsio_start takes the running read over */
    r = tlsio_start(s->srv->tls, &s->tcp, true, &o, on_handshake, s, &s->tls);
    if (r < 0) {
        log_err("id=%s smtpin tls_start error=\"%s\"", s->id,
                tlsio_strerror(r));
        uv_read_stop((uv_stream_t *)&s->tcp);
        smtpin_end(s, "tls-failed");
        return;
    }
    s->mode = SM_HANDSHAKE;
    session_timer(s);
}

/* ---- accepting ---- */

static unsigned sessions_from(struct smtpin_server *srv, const char *peer)
{
    unsigned n = 0;

    for (struct smtpin_session *s = srv->sessions; s; s = s->next)
        if (!s->torn_down && strcmp(s->peer, peer) == 0)
            n++;
    return n;
}

static void peer_name(struct smtpin_session *s)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    strcpy(s->peer, "unknown");
    if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

        uv_ip6_name(a, s->peer, sizeof(s->peer));
        s->peer_port = ntohs(a->sin6_port);
    } else if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;

        uv_ip4_name(a, s->peer, sizeof(s->peer));
        s->peer_port = ntohs(a->sin_port);
    }
}

static struct smtpin_session *session_new(struct smtpin_server *srv)
{
    struct smtpin_session *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->in_cap = srv->cfg->max_line_length + SMTPIN_READ_ROOM;
    s->in = malloc(s->in_cap);
    if (!s->in) {
        free(s);
        return NULL;
    }
    s->srv = srv;
    uv_tcp_init(srv->loop, &s->tcp);
    uv_timer_init(srv->loop, &s->idle);
    uv_timer_init(srv->loop, &s->life);
    s->tcp.data = s->idle.data = s->life.data = s;
    s->handles = 3;
    s->next = srv->sessions;
    if (s->next)
        s->next->prev = s;
    srv->sessions = s;
    srv->nsessions++;
    smtpin_new_id(srv, s->id, sizeof(s->id), "S");
    return s;
}

/* The greeting, or 421 4.7.0 past the connection limits. */
static void session_greet(struct smtpin_session *s)
{
    const struct tg_config *cfg = s->srv->cfg;

    if (s->srv->nsessions > cfg->max_connections ||
        sessions_from(s->srv, s->peer) > cfg->max_connections_per_ip) {
        log_warn("id=%s smtpin connection_refused peer=%s reason=limit", s->id,
                 s->peer);
        smtpin_reply(s, "421 4.7.0 %s Too many connections, try later",
                     cfg->hostname);
        smtpin_end(s, "connection-limit");
        return;
    }
    log_debug("id=%s smtpin connect peer=%s:%u", s->id, s->peer, s->peer_port);
    smtpin_reply(s, "220 %s ESMTP tlsgate", cfg->hostname);
    smtpin_flush(s);
    uv_timer_start(&s->life, on_life_timeout, cfg->session_timeout * 1000, 0);
    session_timer(s);
    session_read_update(s);
}

static void on_dropped(uv_handle_t *h)
{
    free(h);
}

/* Out of memory: accept and close at once, or libuv stops accepting. */
static void drop_connection(struct smtpin_server *srv, uv_stream_t *listener)
{
    uv_tcp_t *tcp = malloc(sizeof(*tcp));

    if (!tcp)
        return;
    uv_tcp_init(srv->loop, tcp);
    uv_accept(listener, (uv_stream_t *)tcp);
    uv_close((uv_handle_t *)tcp, on_dropped);
}

void smtpin_accept(struct smtpin_server *srv, uv_stream_t *listener)
{
    struct smtpin_session *s = session_new(srv);

    if (!s) {
        log_err("id=- smtpin accept error=\"out of memory\"");
        drop_connection(srv, listener);
        return;
    }
    if (uv_accept(listener, (uv_stream_t *)&s->tcp) != 0) {
        s->mode = SM_CLOSING;
        s->torn_down = true;
        uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
        uv_close((uv_handle_t *)&s->idle, on_handle_closed);
        uv_close((uv_handle_t *)&s->life, on_handle_closed);
        return;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    peer_name(s);
    session_greet(s);
}
