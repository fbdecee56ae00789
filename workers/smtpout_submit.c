/*
 * The submission listener inside tlsgate-smtpout: SMTP on loopback for the
 * platform's applications. The tenant is found from the envelope sender
 * (engine); a message is answered 250 only once it is synced in the queue.
 */
#include "smtpout.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "queue_text.h"
#include "smtpin_parse.h"
#include "supfds.h"

struct smtpout_submit {
    struct smtpout *so;
    uv_tcp_t listeners[SUP_MAX_LISTENERS];
    int nlisten;
    int nopen; /* listener handles not yet closed */
    struct sub_sess *sessions;
    uint64_t seq;
};

struct sub_sess {
    struct smtpout_submit *sub;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uint64_t id;
    char *in; /* received bytes not yet handled */
    size_t inlen, incap;
    bool helo, in_data, waiting, closing;
    bool discarding;     /* dropping the rest of an overlong command line */
    bool read_paused;    /* input stopped while the engine is asked */
    bool handles_closed; /* freed once also no engine answer is due */
    unsigned errors;
    struct tenant_info tenant;
    bool have_sender;
    struct queue_msg env;
    struct smtpin_data dstate; /* the DATA state machine (inbound's) */
    char *data;                /* message being received, CRLF lines */
    size_t datalen, datacap;
    struct sub_sess *next;
};

static void sess_process(struct sub_sess *s);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);

/* ---- output and closing ---- */

static void on_written(uv_write_t *req, int status)
{
    free(req);
}

static void sess_reply(struct sub_sess *s, const char *text)
{
    size_t n = strlen(text);
    uv_write_t *req = malloc(sizeof(*req) + n + 2);
    char *buf = (char *)(req + 1);
    uv_buf_t b;

    if (!req)
        return;
    memcpy(buf, text, n);
    memcpy(buf + n, "\r\n", 2);
    b = uv_buf_init(buf, (unsigned)n + 2);
    if (uv_write(req, (uv_stream_t *)&s->tcp, &b, 1, on_written) != 0)
        free(req);
}

static void really_free(struct sub_sess *s)
{
    free(s->in);
    free(s->data);
    queue_msg_free(&s->env);
    free(s);
}

static void free_sess(uv_handle_t *h)
{
    struct sub_sess *s = h->data;

    s->handles_closed = true;
    if (!s->waiting)
        really_free(s);
}

static void close_timer(uv_handle_t *h)
{
    struct sub_sess *s = h->data;

    uv_close((uv_handle_t *)&s->timer, free_sess);
}

static void sess_close(struct sub_sess *s)
{
    struct sub_sess **pp = &s->sub->sessions;

    if (s->closing)
        return;
    s->closing = true;
    while (*pp && *pp != s)
        pp = &(*pp)->next;
    if (*pp)
        *pp = s->next;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->tcp, close_timer);
}

static void on_idle(uv_timer_t *t)
{
    struct sub_sess *s = t->data;

    sess_reply(s, "421 4.4.2 idle timeout, closing");
    sess_close(s);
}

/* ---- the transaction ---- */

static void sess_reset(struct sub_sess *s)
{
    queue_msg_free(&s->env);
    memset(&s->env, 0, sizeof(s->env));
    s->have_sender = false;
    s->in_data = false;
    s->datalen = 0;
}

static void on_tenant(void *ctx, int err, const struct tenant_info *t)
{
    struct sub_sess *s = ctx;

    s->waiting = false;
    if (s->closing) {
        if (s->handles_closed)
            really_free(s);
        return;
    }
    if (err == 0) {
        s->tenant = *t;
        s->have_sender = true;
        sess_reply(s, "250 2.1.0 Ok");
    } else if (err == STORE_ENOTFOUND || err == STORE_EINVAL) {
        sess_reply(s, "550 5.7.1 sender not a tenant");
        s->errors++;
    } else {
        sess_reply(s, "451 4.3.0 policy engine unavailable, try later");
    }
    sess_process(s);
}

/* The path inside "MAIL FROM:" / "RCPT TO:" (args after the '>' are
 * ignored, SIZE included: max_message_size is checked on the data). */
static int parse_path(const char *arg, struct addr *a)
{
    const char *end;

    while (*arg == ' ')
        arg++;
    if (*arg != '<' || !(end = strchr(arg, '>')))
        return -1;
    return addr_parse_path(arg, (size_t)(end - arg + 1), a) == ADDR_OK ? 0 : -1;
}

static void cmd_mail(struct sub_sess *s, const char *arg)
{
    struct addr a;

    if (!s->helo)
        return sess_reply(s, "503 5.5.1 EHLO first");
    if (s->have_sender)
        return sess_reply(s, "503 5.5.1 sender already given");
    if (parse_path(arg, &a) != 0)
        return sess_reply(s, "501 5.1.7 bad sender address syntax");
    if (a.full[0] == '\0')
        return sess_reply(s, "550 5.7.1 sender not a tenant");
    snprintf(s->env.sender, sizeof(s->env.sender), "%s", a.full);
    if (eng_ask_tenant_for_sender(s->sub->so->eng, a.full, on_tenant, s) != 0)
        return sess_reply(s, "451 4.3.0 policy engine unavailable");
    s->waiting = true;
}

static void cmd_rcpt(struct sub_sess *s, const char *arg)
{
    struct queue_rcpt *grown;
    struct addr a;

    if (!s->have_sender)
        return sess_reply(s, "503 5.5.1 MAIL first");
    if (s->env.nrcpt >= s->sub->so->cfg->max_recipients ||
        s->env.nrcpt >= QUEUE_RCPT_MAX)
        return sess_reply(s, "452 4.5.3 too many recipients");
    if (parse_path(arg, &a) != 0 || a.full[0] == '\0')
        return sess_reply(s, "501 5.1.3 bad recipient address syntax");
    grown = realloc(s->env.rcpt, (s->env.nrcpt + 1) * sizeof(*grown));
    if (!grown)
        return sess_reply(s, "452 4.3.0 out of memory");
    s->env.rcpt = grown;
    memset(&grown[s->env.nrcpt], 0, sizeof(*grown));
    snprintf(grown[s->env.nrcpt++].addr, sizeof(grown->addr), "%s", a.full);
    sess_reply(s, "250 2.1.5 Ok");
}

/* The message is complete: headers completed, queued, synced, answered. */
static void end_data(struct sub_sess *s)
{
    struct smtpout *so = s->sub->so;
    const char *dom = strrchr(s->tenant.from, '@');
    char received[600], date[64], reply[128], from[4 * ADDR_MAX];
    time_t now = time(NULL);
    struct tm tm;
    size_t len = s->datalen;
    int rc;

    localtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
    snprintf(received, sizeof(received),
             "Received: from localhost by %s (tlsgate-smtpout submission, "
             "tenant %s);\r\n\t%s",
             so->cfg->hostname, s->tenant.name, date);
    rc = queue_text_complete(&s->data, &len, received, s->tenant.from, NULL,
                             dom ? dom + 1 : so->cfg->hostname);
    s->datalen = len;
    s->datacap = len;
    snprintf(s->env.tenant, sizeof(s->env.tenant), "%s", s->tenant.name);
    snprintf(s->env.tenant_from, sizeof(s->env.tenant_from), "%s",
             s->tenant.from);
    if (rc == QTEXT_OK)
        rc = queue_submit(so->q, &s->env, s->data, s->datalen);
    if (rc != QUEUE_OK) {
        log_err("id=S%lu submit-failed error=\"%s\"", (unsigned long)s->id,
                queue_strerror(rc));
        sess_reply(s, "451 4.3.0 queue write failed, try later");
    } else {
        log_info("id=%s queued tenant=%s from=<%s> nrcpt=%zu size=%zu "
                 "source=submission",
                 s->env.id, s->env.tenant,
                 log_escape(from, sizeof(from), s->env.sender), s->env.nrcpt,
                 s->datalen);
        snprintf(reply, sizeof(reply), "250 2.0.0 Ok: queued as %s", s->env.id);
        sess_reply(s, reply);
        smtpout_kick(so);
    }
    sess_reset(s);
}

/* Appends stored message bytes (LF lines from the DATA state machine) to
 * the message as CRLF lines; false when memory runs out. */
static bool data_append(struct sub_sess *s, const char *out, size_t n)
{
    size_t need = s->datalen + 2 * n;

    if (need > s->datacap) {
        size_t cap = s->datacap ? s->datacap * 2 : 65536;
        char *grown;
        while (cap < need)
            cap *= 2;
        if (!(grown = realloc(s->data, cap)))
            return false;
        s->data = grown;
        s->datacap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        if (out[i] == '\n')
            s->data[s->datalen++] = '\r';
        s->data[s->datalen++] = out[i];
    }
    return true;
}

/* CRLF.CRLF arrived: refuse an overlong or oversized message, else queue. */
static void data_end(struct sub_sess *s)
{
    char reply[128];

    s->in_data = false;
    if (s->dstate.too_long)
        snprintf(reply, sizeof(reply),
                 "500 5.5.2 Message refused: a line is longer than %lu bytes",
                 s->sub->so->cfg->max_line_length);
    else if (s->dstate.too_big)
        snprintf(reply, sizeof(reply),
                 "552 5.3.4 message too large (limit %lu bytes)",
                 s->sub->so->cfg->max_message_size);
    else
        return end_data(s);
    log_info("id=S%lu submission refused reply=\"%s\"", (unsigned long)s->id,
             reply);
    sess_reply(s, reply);
    sess_reset(s);
}

/*
 * Feeds buffered input to the DATA state machine shared with inbound
 * (only CRLF.CRLF ends the data). A bare CR or LF refuses the message and
 * closes the session, so nothing after it runs as a command. Returns the
 * bytes consumed.
 */
static size_t data_input(struct sub_sess *s, const char *in, size_t len)
{
    static char scratch[65536];
    size_t outlen = 0, used = 0;
    enum smtpin_data_status st;

    if (len > sizeof(scratch))
        len = sizeof(scratch);
    st = smtpin_data_feed(&s->dstate, in, len, scratch, &outlen, &used);
    if (outlen > 0 && !data_append(s, scratch, outlen))
        s->dstate.too_big = true;
    if (st == SD_BARE) {
        log_warn("id=S%lu submission bare_cr_lf offset=%zu",
                 (unsigned long)s->id, s->dstate.size);
        sess_reply(s, "554 5.5.2 Bare CR or LF in message data refused, "
                      "closing");
        sess_reset(s);
        sess_close(s);
    } else if (st == SD_END) {
        data_end(s);
    }
    return used;
}

/* DATA: bytes already sent behind the command (before our 354) end the
 * session, as on the inbound listener. */
static void cmd_data(struct sub_sess *s)
{
    const struct tg_config *cfg = s->sub->so->cfg;

    if (!s->have_sender || s->env.nrcpt == 0)
        return sess_reply(s, "503 5.5.1 no valid recipients");
    if (s->inlen > 0) {
        log_warn("id=S%lu submission data_before_354 bytes=%zu",
                 (unsigned long)s->id, s->inlen);
        sess_reply(s, "554 5.5.0 Data sent before the 354 reply, closing");
        sess_reset(s);
        return sess_close(s);
    }
    smtpin_data_init(&s->dstate, cfg->max_line_length, cfg->max_message_size);
    s->in_data = true;
    s->datalen = 0;
    sess_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* ---- commands ---- */

static void cmd_helo(struct sub_sess *s, const char *arg, bool ehlo)
{
    char buf[512];

    if (*arg == '\0')
        return sess_reply(s, "501 5.5.4 EHLO needs a domain");
    sess_reset(s);
    s->helo = true;
    if (!ehlo) {
        snprintf(buf, sizeof(buf), "250 %s", s->sub->so->cfg->hostname);
        return sess_reply(s, buf);
    }
    snprintf(buf, sizeof(buf),
             "250-%s\r\n250-SIZE %lu\r\n250-8BITMIME\r\n250-PIPELINING\r\n"
             "250 ENHANCEDSTATUSCODES",
             s->sub->so->cfg->hostname, s->sub->so->cfg->max_message_size);
    sess_reply(s, buf);
}

static bool verb_is(const char *line, const char *verb, const char **arg)
{
    size_t n = strlen(verb);

    if (strncasecmp(line, verb, n) != 0 ||
        (line[n] != '\0' && line[n] != ' ' && verb[n - 1] != ':'))
        return false;
    *arg = line + n;
    while (**arg == ' ')
        (*arg)++;
    return true;
}

/* One command line (NUL-terminated, no CRLF). */
static void sess_command(struct sub_sess *s, const char *line)
{
    const char *arg;

    if (verb_is(line, "EHLO", &arg) || verb_is(line, "HELO", &arg))
        return cmd_helo(s, arg, toupper((unsigned char)line[0]) == 'E');
    if (verb_is(line, "MAIL FROM:", &arg))
        return cmd_mail(s, arg);
    if (verb_is(line, "RCPT TO:", &arg))
        return cmd_rcpt(s, arg);
    if (verb_is(line, "DATA", &arg))
        return cmd_data(s);
    if (verb_is(line, "RSET", &arg)) {
        sess_reset(s);
        return sess_reply(s, "250 2.0.0 Ok");
    }
    if (verb_is(line, "NOOP", &arg))
        return sess_reply(s, "250 2.0.0 Ok");
    if (verb_is(line, "QUIT", &arg)) {
        sess_reply(s, "221 2.0.0 Bye");
        return sess_close(s);
    }
    if (verb_is(line, "VRFY", &arg))
        return sess_reply(s, "252 2.5.0 Cannot VRFY user");
    s->errors++;
    sess_reply(s, "500 5.5.1 command not recognised");
}

/* Drops n handled bytes from the front of the input buffer. */
static void sess_consume(struct sub_sess *s, size_t n)
{
    memmove(s->in, s->in + n, s->inlen - n);
    s->inlen -= n;
}

/*
 * One step on the buffered input: data to the DATA state machine, or one
 * command line (inbound's splitter: an overlong line is dropped as it
 * comes, so memory stays flat, and answered 500 5.5.2). False when
 * nothing more can be done now.
 */
static bool sess_step(struct sub_sess *s)
{
    const char *line = NULL;
    size_t len = 0, used = 0;
    enum smtpin_line_status st;

    if (s->in_data) {
        sess_consume(s, data_input(s, s->in, s->inlen));
        return !s->in_data || s->inlen > 0;
    }
    st = smtpin_next_line(s->in, s->inlen, s->sub->so->cfg->max_line_length,
                          &s->discarding, &line, &len, &used);
    if (st == SL_MORE) {
        sess_consume(s, used);
        return false;
    }
    if (st == SL_TOOLONG) {
        sess_consume(s, used);
        sess_reply(s, "500 5.5.2 Line too long");
        s->errors++;
    } else {
        /* The line leaves the buffer first: what is left is what the
         * peer sent beyond it (data before the 354). */
        char copy[len + 1];
        memcpy(copy, line, len);
        copy[len] = '\0';
        sess_consume(s, used);
        sess_command(s, copy);
    }
    if (s->errors >= s->sub->so->cfg->max_errors && !s->closing) {
        sess_reply(s, "421 4.7.0 too many errors, closing");
        sess_close(s);
    }
    return true;
}

/* Handles the buffered input, pausing while the engine is asked and
 * resuming after. */
static void sess_process(struct sub_sess *s)
{
    while (!s->closing && !s->waiting && s->inlen > 0 && sess_step(s))
        ;
    if (s->closing)
        return;
    if (s->read_paused && !s->waiting) {
        s->read_paused = false;
        uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
    }
    uv_timer_start(&s->timer, on_idle, s->sub->so->cfg->command_timeout * 1000,
                   0);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct sub_sess *s = h->data;

    if (s->incap - s->inlen < 4096) {
        size_t cap = s->incap ? s->incap * 2 : 16384;
        char *grown = realloc(s->in, cap);
        if (grown) {
            s->in = grown;
            s->incap = cap;
        }
    }
    buf->base = s->in + s->inlen;
    buf->len = s->incap - s->inlen;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct sub_sess *s = st->data;
    size_t limit = s->sub->so->cfg->max_line_length * 4 + 65536;

    if (n < 0) {
        sess_close(s);
        return;
    }
    s->inlen += (size_t)n;
    sess_process(s);
    /* While the engine is asked, input waits in the buffer: stop reading
     * past a bound so memory stays flat; reading resumes after. */
    if (!s->closing && s->waiting && s->inlen > limit) {
        uv_read_stop(st);
        s->read_paused = true;
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct smtpout_submit *sub = server->data;
    struct sub_sess *s;
    char banner[300];

    if (status < 0 || !(s = calloc(1, sizeof(*s))))
        return;
    s->sub = sub;
    s->id = ++sub->seq;
    uv_tcp_init(sub->so->loop, &s->tcp);
    uv_timer_init(sub->so->loop, &s->timer);
    s->tcp.data = s->timer.data = s;
    if (uv_accept(server, (uv_stream_t *)&s->tcp) != 0 || sub->so->stopping) {
        s->next = sub->sessions;
        sub->sessions = s;
        sess_close(s);
        return;
    }
    s->next = sub->sessions;
    sub->sessions = s;
    snprintf(banner, sizeof(banner), "220 %s ESMTP tlsgate submission",
             sub->so->cfg->hostname);
    sess_reply(s, banner);
    uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
    uv_timer_start(&s->timer, on_idle, sub->so->cfg->command_timeout * 1000, 0);
}

/* ---- start and stop ---- */

int smtpout_submit_start(struct smtpout *so, char *err, size_t errlen)
{
    struct smtpout_submit *sub = calloc(1, sizeof(*sub));
    int fds[SUP_MAX_LISTENERS], n;

    if (!sub)
        return snprintf(err, errlen, "out of memory"), -1;
    sub->so = so;
    so->submit = sub;
    n = sup_inherited_fds("submission", fds, SUP_MAX_LISTENERS);
    if (n == 0)
        n = sup_listen_all(so->cfg->submission_listen, fds, SUP_MAX_LISTENERS,
                           err, errlen);
    else if (n < 0)
        snprintf(err, errlen, "malformed " SUP_FDS_ENV);
    for (int i = 0; i < n; i++) {
        uv_tcp_init(so->loop, &sub->listeners[i]);
        sub->listeners[i].data = sub;
        if (uv_tcp_open(&sub->listeners[i], fds[i]) != 0 ||
            uv_listen((uv_stream_t *)&sub->listeners[i], SOMAXCONN,
                      on_connection) != 0) {
            snprintf(err, errlen, "cannot listen on descriptor %d", fds[i]);
            return -1;
        }
        sub->nlisten++;
        sub->nopen++;
        sup_fd_name(fds[i], err, errlen);
        log_info("id=- submission listening on %s", err);
    }
    return n < 0 ? -1 : 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    struct smtpout_submit *sub = h->data;

    if (--sub->nopen == 0)
        free(sub);
}

void smtpout_submit_stop(struct smtpout *so)
{
    struct smtpout_submit *sub = so->submit;

    if (!sub)
        return;
    so->submit = NULL;
    while (sub->sessions)
        sess_close(sub->sessions);
    if (sub->nlisten == 0) {
        free(sub);
        return;
    }
    for (int i = 0; i < sub->nlisten; i++)
        uv_close((uv_handle_t *)&sub->listeners[i], on_listener_closed);
}
