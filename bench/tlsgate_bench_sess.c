/*
 * The session engine of tlsgate-bench: each slot walks its mode's list of
 * steps over a non-blocking socket; GnuTLS reads and writes the socket
 * itself (gnutls_transport_set_int), so no byte is copied on the way.
 */
#include "tlsgate_bench.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum step_kind { K_CONNECT, K_REPLY, K_CMD, K_HANDSHAKE, K_HOLD, K_EOF };
enum cmd_id { C_NONE, C_EHLO, C_STARTTLS, C_MAIL, C_RCPT, C_DATA, C_QUIT };

struct step {
    enum step_kind kind;
    enum bench_phase phase;
    enum cmd_id cmd; /* K_CMD: what to send; C_NONE on K_CMD: the body */
    int expect;      /* reply code wanted */
};

#define STEP_END                                                               \
    {                                                                          \
        K_EOF, PH_CLOSE, C_NONE, 0                                             \
    }

static const struct step steps_starttls[] = {
    {K_CONNECT, PH_CONNECT, C_NONE, 0},
    {K_REPLY, PH_BANNER, C_NONE, 220},
    {K_CMD, PH_EHLO1, C_EHLO, 250},
    {K_CMD, PH_STARTTLS, C_STARTTLS, 220},
    {K_HANDSHAKE, PH_HANDSHAKE, C_NONE, 0},
    {K_CMD, PH_EHLO, C_EHLO, 250},
    {K_HOLD, PH_SESSION, C_NONE, 0},
    {K_CMD, PH_QUIT, C_QUIT, 221},
    STEP_END,
};

static const struct step steps_deliver[] = {
    {K_CONNECT, PH_CONNECT, C_NONE, 0},
    {K_REPLY, PH_BANNER, C_NONE, 220},
    {K_CMD, PH_EHLO1, C_EHLO, 250},
    {K_CMD, PH_STARTTLS, C_STARTTLS, 220},
    {K_HANDSHAKE, PH_HANDSHAKE, C_NONE, 0},
    {K_CMD, PH_EHLO, C_EHLO, 250},
    {K_CMD, PH_MAIL, C_MAIL, 250},
    {K_CMD, PH_RCPT, C_RCPT, 250},
    {K_CMD, PH_DATA, C_DATA, 354},
    {K_CMD, PH_BODY, C_NONE, 250},
    {K_CMD, PH_QUIT, C_QUIT, 221},
    STEP_END,
};

static const struct step steps_plain[] = {
    {K_CONNECT, PH_CONNECT, C_NONE, 0}, {K_REPLY, PH_BANNER, C_NONE, 220},
    {K_CMD, PH_EHLO1, C_EHLO, 250},     {K_HOLD, PH_SESSION, C_NONE, 0},
    {K_CMD, PH_QUIT, C_QUIT, 221},      STEP_END,
};

static const struct step steps_tls[] = {
    {K_CONNECT, PH_CONNECT, C_NONE, 0},
    {K_HANDSHAKE, PH_HANDSHAKE, C_NONE, 0},
    {K_HOLD, PH_SESSION, C_NONE, 0},
    STEP_END,
};

static char *cmd_text[C_QUIT + 1];

static void slot_run(struct bench_slot *s);
static void slot_begin(struct bench_slot *s);

static const struct step *steps_of(const struct bench_run *r)
{
    switch (r->o.mode) {
    case MODE_DELIVER:
        return steps_deliver;
    case MODE_TLS:
        return steps_tls;
    case MODE_PLAIN:
        return steps_plain;
    default:
        return steps_starttls;
    }
}

/* The client priority string: TLS 1.3, one group, one certificate type. */
static void client_priority(const struct bench_opts *o, char *buf, size_t n)
{
    const char *sign =
        strcmp(o->cert_type, "rsa") == 0
            ? "+SIGN-RSA-PSS-RSAE-SHA256:+SIGN-RSA-PSS-RSAE-SHA384:"
              "+SIGN-RSA-PSS-SHA256:+SIGN-RSA-SHA256"
            : "+SIGN-ECDSA-SECP256R1-SHA256:+SIGN-ECDSA-SECP384R1-SHA384";

    if (o->priority) {
        snprintf(buf, n, "%s", o->priority);
        return;
    }
    snprintf(buf, n,
             "NORMAL:-VERS-ALL:+VERS-TLS1.3:-GROUP-ALL:+GROUP-%s:"
             "-SIGN-ALL:%s",
             o->group, sign);
}

/* A message of about `size` bytes: headers, 76-column lines, ".". */
static int build_message(struct bench_run *r)
{
    size_t size = r->o.size < 256 ? 256 : r->o.size;
    char *m = malloc(size + 128);
    size_t n;

    if (!m)
        return -1;
    n = (size_t)snprintf(m, 256,
                         "From: <%s>\r\nTo: <%s>\r\nSubject: tlsgate-bench"
                         "\r\nMessage-ID: <bench@bench.test>\r\n\r\n",
                         r->o.mail_from, r->o.rcpt_to);
    while (n + 78 <= size) {
        memset(m + n, 'x', 76);
        memcpy(m + n + 76, "\r\n", 2);
        n += 78;
    }
    memcpy(m + n, ".\r\n", 3);
    r->message = m;
    r->message_len = n + 3;
    return 0;
}

static int build_commands(struct bench_run *r)
{
    const struct bench_opts *o = &r->o;

    if (asprintf(&cmd_text[C_EHLO], "EHLO %s\r\n", o->helo) < 0 ||
        asprintf(&cmd_text[C_STARTTLS], "STARTTLS\r\n") < 0 ||
        asprintf(&cmd_text[C_MAIL], "MAIL FROM:<%s>\r\n", o->mail_from) < 0 ||
        asprintf(&cmd_text[C_RCPT], "RCPT TO:<%s>\r\n", o->rcpt_to) < 0 ||
        asprintf(&cmd_text[C_DATA], "DATA\r\n") < 0 ||
        asprintf(&cmd_text[C_QUIT], "QUIT\r\n") < 0)
        return -1;
    return 0;
}

int bench_sess_setup(struct bench_run *r)
{
    char prio[512];
    const char *pos = NULL;
    int e;

    client_priority(&r->o, prio, sizeof(prio));
    if (gnutls_certificate_allocate_credentials(&r->creds) < 0)
        return -1;
    e = gnutls_priority_init(&r->prio, prio, &pos);
    if (e < 0) {
        fprintf(stderr, "tlsgate-bench: priority %s: %s near '%s'\n", prio,
                gnutls_strerror(e), pos ? pos : "");
        return -1;
    }
    if (build_commands(r) != 0 ||
        (r->o.mode == MODE_DELIVER && build_message(r) != 0)) {
        fprintf(stderr, "tlsgate-bench: out of memory\n");
        return -1;
    }
    r->slots = calloc(r->o.concurrency, sizeof(*r->slots));
    if (!r->slots)
        return -1;
    for (unsigned i = 0; i < r->o.concurrency; i++) {
        r->slots[i].run = r;
        r->slots[i].fd = -1;
    }
    return 0;
}

/* ---- ending a session ---- */

static void on_closed(uv_handle_t *h)
{
    struct bench_slot *s = h->data;
    struct bench_run *r = s->run;

    s->polling = false;
    close(s->fd);
    s->fd = -1;
    if (bench_may_start(r))
        slot_begin(s);
    else
        bench_maybe_finish(r);
}

/* Frees the TLS session and closes the socket; the next session starts
 * from the close callback. */
static void slot_end(struct bench_slot *s, bool ok)
{
    struct bench_run *r = s->run;

    if (s->tls) {
        gnutls_deinit(s->tls);
        s->tls = NULL;
    }
    if (ok) {
        r->done++;
        bench_sample(r, PH_SESSION, uv_hrtime() - s->t_start);
    } else {
        r->failed++;
    }
    if (s->held)
        r->held--; /* a held session failed (Ctrl-C) */
    else if (r->o.hold > 0)
        r->opening--;
    s->held = false;
    s->active = false;
    r->active--;
    if (s->polling) {
        uv_close((uv_handle_t *)&s->poll, on_closed);
        return;
    }
    /* No socket or no connect: the once-a-second tick starts the slot
     * again, so a failure that repeats (EMFILE, no free port) is not a
     * busy loop. */
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    bench_maybe_finish(r);
}

static void slot_fail(struct bench_slot *s, enum bench_err e, const char *msg)
{
    const struct step *st = &steps_of(s->run)[s->step];
    char text[160];

    snprintf(text, sizeof(text), "%s: %s", bench_phase_name(st->phase), msg);
    bench_error(s->run, e, text);
    slot_end(s, false);
}

/* ---- I/O helpers ---- */

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct bench_slot *s = h->data;

    if (status == UV_EBADF) {
        /* POLLERR: libuv stopped the handle; the next read, write or
         * SO_ERROR says what happened. */
        s->events = 0;
    } else if (status < 0) {
        slot_fail(s, ERR_IO, uv_strerror(status));
        return;
    }
    slot_run(s);
}

static void want(struct bench_slot *s, int events)
{
    if (s->events == events)
        return;
    s->events = events;
    uv_poll_start(&s->poll, events, on_poll);
}

/* Sends what is left of s->out. Returns 1 done, 0 wait, -1 failed. */
static int write_out(struct bench_slot *s)
{
    while (s->out_off < s->out_len) {
        size_t n = s->out_len - s->out_off;
        ssize_t w;

        if (s->tls) {
            w = gnutls_record_send(s->tls, s->out + s->out_off,
                                   n > 16384 ? 16384 : n);
            if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED) {
                want(s, UV_WRITABLE);
                return 0;
            }
            if (w < 0) {
                slot_fail(s, ERR_TLS, gnutls_strerror((int)w));
                return -1;
            }
        } else {
            w = send(s->fd, s->out + s->out_off, n, MSG_NOSIGNAL);
            if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
                want(s, UV_WRITABLE);
                return 0;
            }
            if (w < 0) {
                slot_fail(s, ERR_IO, strerror(errno));
                return -1;
            }
        }
        s->out_off += (size_t)w;
    }
    return 1;
}

/* Reads some bytes. Returns > 0 bytes, 0 wait, or a negative error:
 * -1 EOF, -2 failed (already counted). */
static ssize_t read_some(struct bench_slot *s, char *buf, size_t n)
{
    ssize_t k;

    if (s->tls) {
        k = gnutls_record_recv(s->tls, buf, n);
        if (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED)
            return 0;
        if (k == 0 || k == GNUTLS_E_PREMATURE_TERMINATION)
            return -1;
        if (k < 0) {
            slot_fail(s, ERR_TLS, gnutls_strerror((int)k));
            return -2;
        }
        return k;
    }
    k = recv(s->fd, buf, n, 0);
    if (k < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (k == 0 || (k < 0 && errno == ECONNRESET))
        return -1;
    if (k < 0) {
        slot_fail(s, ERR_IO, strerror(errno));
        return -2;
    }
    return k;
}

/* Whether s->in holds a whole reply; sets *code. -1: not SMTP. */
static int reply_complete(const struct bench_slot *s, int *code)
{
    const char *p = s->in, *end = s->in + s->in_len;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));

        if (!nl)
            return 0;
        if (nl - p < 4 || p[0] < '2' || p[0] > '5')
            return -1;
        if (p[3] == ' ' || p[3] == '\r') {
            *code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
            return 1;
        }
        if (p[3] != '-')
            return -1;
        p = nl + 1;
    }
    return 0;
}

/* Reads until a whole reply. Returns its code, 0 wait, -1 failed. */
static int read_reply(struct bench_slot *s)
{
    for (;;) {
        int code = 0, c = reply_complete(s, &code);
        ssize_t k;

        if (c == 1)
            return code;
        if (c < 0 || s->in_len >= sizeof(s->in) - 1) {
            slot_fail(s, ERR_SYNTAX, "reply is not SMTP or too long");
            return -1;
        }
        k = read_some(s, s->in + s->in_len, sizeof(s->in) - 1 - s->in_len);
        if (k == 0) {
            want(s, UV_READABLE);
            return 0;
        }
        if (k == -1)
            slot_fail(s, ERR_EOF, "server closed the connection");
        if (k < 0)
            return -1;
        s->in_len += (size_t)k;
    }
}

/* ---- steps ---- */

/* Waits for the socket to be writable, then reads the connect result.
 * Returns 1 connected, 0 wait, -1 failed. */
static int step_connect(struct bench_slot *s)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (!s->sent) {
        s->sent = true;
        want(s, UV_WRITABLE);
        return 0;
    }
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err != 0) {
        slot_fail(s, ERR_CONNECT, strerror(err));
        return -1;
    }
    return 1;
}

/* Returns 1 done, 0 wait, -1 failed. */
static int step_handshake(struct bench_slot *s)
{
    struct bench_run *r = s->run;
    int e;

    do {
        e = gnutls_handshake(s->tls);
    } while (e < 0 && !gnutls_error_is_fatal(e) && e != GNUTLS_E_AGAIN);
    if (e == GNUTLS_E_AGAIN) {
        want(s,
             gnutls_record_get_direction(s->tls) ? UV_WRITABLE : UV_READABLE);
        return 0;
    }
    if (e < 0) {
        slot_fail(s, ERR_HANDSHAKE, gnutls_strerror(e));
        return -1;
    }
    r->handshakes++;
    if (gnutls_session_is_resumed(s->tls))
        r->resumed++;
    return 1;
}

/* Notes that the server sent a ticket in this session (TLS 1.3 servers
 * need not send one after a resumption; the old one is kept then). */
static int on_ticket(gnutls_session_t tls, unsigned htype, unsigned when,
                     unsigned incoming, const gnutls_datum_t *msg)
{
    struct bench_slot *s = gnutls_session_get_ptr(tls);

    if (incoming)
        s->new_ticket = true;
    return 0;
}

/* Starts TLS on the socket, resuming from the slot's last ticket. */
static int tls_begin(struct bench_slot *s)
{
    struct bench_run *r = s->run;

    if (gnutls_init(&s->tls, GNUTLS_CLIENT | GNUTLS_NONBLOCK) < 0)
        return -1;
    if (gnutls_priority_set(s->tls, r->prio) < 0 ||
        gnutls_credentials_set(s->tls, GNUTLS_CRD_CERTIFICATE, r->creds) < 0)
        return -1;
    gnutls_server_name_set(s->tls, GNUTLS_NAME_DNS, "localhost", 9);
    if (r->o.resume && s->ticket.data)
        gnutls_session_set_data(s->tls, s->ticket.data, s->ticket.size);
    gnutls_transport_set_int(s->tls, s->fd);
    gnutls_session_set_ptr(s->tls, s);
    s->new_ticket = false;
    gnutls_handshake_set_hook_function(s->tls,
                                       GNUTLS_HANDSHAKE_NEW_SESSION_TICKET,
                                       GNUTLS_HOOK_POST, on_ticket);
    return 0;
}

/* Keeps the ticket of a finished session for the slot's next one. */
static void keep_ticket(struct bench_slot *s)
{
    gnutls_datum_t d = {NULL, 0};

    if (!s->run->o.resume || !s->tls || !s->new_ticket)
        return;
    if (gnutls_session_get_data2(s->tls, &d) < 0 || d.size == 0) {
        gnutls_free(d.data);
        return;
    }
    gnutls_free(s->ticket.data);
    s->ticket = d;
}

/* Reads and drops bytes until the server closes. 1 closed, 0 wait. */
static int step_eof(struct bench_slot *s)
{
    char buf[512];

    for (;;) {
        ssize_t k = read_some(s, buf, sizeof(buf));

        if (k == 0) {
            want(s, UV_READABLE);
            return 0;
        }
        if (k == -1)
            return 1;
        if (k < 0)
            return -1;
    }
}

/* Hold runs: parks the session until bench_sess_release_held. */
static int step_hold(struct bench_slot *s)
{
    struct bench_run *r = s->run;

    if (r->o.hold <= 0 || s->held)
        return 1;
    s->held = true;
    r->held++;
    r->opening--;
    s->events = 0;
    uv_poll_stop(&s->poll);
    bench_sess_start_all(r); /* the ramp lets the next ones open */
    bench_maybe_finish(r);
    return 0;
}

/* Sends the step's command (or the message) once, then reads the reply.
 * Returns 1 done, 0 wait, -1 failed. */
static int step_cmd(struct bench_slot *s, const struct step *st)
{
    int code, w;

    if (!s->sent) {
        s->sent = true;
        s->in_len = 0;
        s->out = st->cmd == C_NONE ? s->run->message : cmd_text[st->cmd];
        s->out_len =
            st->cmd == C_NONE ? s->run->message_len : strlen(cmd_text[st->cmd]);
        s->out_off = 0;
    }
    w = write_out(s);
    if (w <= 0)
        return w;
    code = read_reply(s);
    if (code <= 0)
        return code;
    if (code != st->expect) {
        char msg[96];

        snprintf(msg, sizeof(msg), "reply %.60s", s->in);
        msg[strcspn(msg, "\r\n")] = '\0';
        slot_fail(s, ERR_REPLY, msg);
        return -1;
    }
    if (st->cmd == C_STARTTLS && tls_begin(s) != 0) {
        slot_fail(s, ERR_HANDSHAKE, "gnutls_init failed");
        return -1;
    }
    return 1;
}

/* Runs one step. Returns 1 done, 0 wait, -1 failed (slot ended). */
static int step_do(struct bench_slot *s, const struct step *st)
{
    int code;

    switch (st->kind) {
    case K_CONNECT:
        return step_connect(s);
    case K_REPLY:
        code = read_reply(s);
        if (code > 0 && code != st->expect) {
            slot_fail(s, ERR_REPLY, "unexpected banner");
            return -1;
        }
        return code;
    case K_CMD:
        return step_cmd(s, st);
    case K_HANDSHAKE:
        if (!s->tls && tls_begin(s) != 0) {
            slot_fail(s, ERR_HANDSHAKE, "gnutls_init failed");
            return -1;
        }
        return step_handshake(s);
    case K_HOLD:
        return step_hold(s);
    case K_EOF:
        return step_eof(s);
    }
    return -1;
}

/* Runs steps until one has to wait or the session ends. */
static void slot_run(struct bench_slot *s)
{
    const struct step *steps = steps_of(s->run);

    for (;;) {
        const struct step *st = &steps[s->step];
        uint64_t now;
        int r = step_do(s, st);

        if (r <= 0)
            return;
        now = uv_hrtime();
        if (st->kind != K_HOLD)
            bench_sample(s->run, st->phase, now - s->t_step);
        s->t_step = now;
        if (st->kind == K_EOF) {
            keep_ticket(s);
            slot_end(s, true);
            return;
        }
        s->step++;
        s->sent = false;
    }
}

/* Opens a socket and starts connecting; the steps go on from there. */
static void slot_begin(struct bench_slot *s)
{
    struct bench_run *r = s->run;
    int on = r->o.nodelay ? 1 : 0, fd;

    r->started++;
    r->active++;
    if (r->o.hold > 0)
        r->opening++;
    s->active = true;
    s->step = 0;
    s->sent = false;
    s->events = 0;
    s->in_len = 0;
    s->t_start = s->t_step = uv_hrtime();
    fd = socket(r->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
    s->fd = fd;
    if (fd < 0) {
        slot_fail(s, ERR_CONNECT, strerror(errno));
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    if (connect(fd, (struct sockaddr *)&r->addr, r->addrlen) != 0 &&
        errno != EINPROGRESS) {
        slot_fail(s, ERR_CONNECT, strerror(errno));
        return;
    }
    uv_poll_init(r->loop, &s->poll, fd);
    s->poll.data = s;
    s->polling = true;
    slot_run(s);
}

void bench_sess_start_all(struct bench_run *r)
{
    for (unsigned i = 0; i < r->o.concurrency; i++) {
        struct bench_slot *s = &r->slots[i];

        if (s->active || s->polling)
            continue;
        if (r->o.ramp && r->opening >= r->o.ramp)
            return;
        if (!bench_may_start(r))
            return;
        slot_begin(s);
    }
}

void bench_sess_release_held(struct bench_run *r)
{
    for (unsigned i = 0; i < r->o.concurrency; i++) {
        struct bench_slot *s = &r->slots[i];

        if (!s->held)
            continue;
        s->held = false;
        r->held--;
        r->opening++; /* slot_end takes it back */
        s->step++;
        s->sent = false;
        s->t_step = uv_hrtime();
        slot_run(s);
    }
}

void bench_sess_check_timeouts(struct bench_run *r)
{
    uint64_t now = uv_hrtime(), limit = (uint64_t)(r->o.timeout * 1e9);

    for (unsigned i = 0; i < r->o.concurrency; i++) {
        struct bench_slot *s = &r->slots[i];

        if (s->active && !s->held && now - s->t_start > limit)
            slot_fail(s, ERR_TIMEOUT, "session took too long");
    }
}

void bench_sess_abort_all(struct bench_run *r)
{
    r->stopping = true;
    for (unsigned i = 0; i < r->o.concurrency; i++) {
        struct bench_slot *s = &r->slots[i];

        if (s->active)
            slot_end(s, false);
    }
}

void bench_sess_cleanup(struct bench_run *r)
{
    for (unsigned i = 0; r->slots && i < r->o.concurrency; i++)
        gnutls_free(r->slots[i].ticket.data);
    free(r->slots);
    free(r->message);
    for (int i = 0; i <= C_QUIT; i++) {
        free(cmd_text[i]);
        cmd_text[i] = NULL;
    }
    if (r->prio)
        gnutls_priority_deinit(r->prio);
    if (r->creds)
        gnutls_certificate_free_credentials(r->creds);
}
