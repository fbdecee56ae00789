/*
 * Destinations and the SMTP client of tlsgate-smtpout. A destination is
 * (next hop, level): its jobs wait in one FIFO and are served by up to
 * max_per_destination connections, each sending up to max_per_connection
 * messages. The TLS level is enforced here, failing closed: under
 * encrypt, verify and secure no MAIL FROM is ever written before the
 * handshake succeeded, and no plaintext connection is ever made.
 */
#include "smtpout.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "smtpout_reply.h"

struct smtpout_dest {
    struct smtpout *so;
    char domain[ADDR_DOMAIN_MAX + 1]; /* recipient domain */
    char host[256];                   /* route host, "" for MX */
    unsigned port;
    enum tls_level level;
    struct smtpout_job *jobs, **tail; /* waiting, FIFO */
    unsigned nconn, nstarting;        /* open; not yet ready */
    struct smtpout_dest *next;
};

enum conn_state {
    C_RESOLVE,
    C_CONNECT,
    C_BANNER,
    C_EHLO,
    C_HELO,
    C_STARTTLS,
    C_HANDSHAKE,
    C_EHLO2,
    C_READY,
    C_MAIL,
    C_RCPT,
    C_DATA,
    C_DOT,
    C_RSET,
    C_QUIT,
    C_DONE,
};

struct smtpout_conn {
    struct smtpout *so;
    struct smtpout_dest *dest;
    uint64_t id;
    enum conn_state state;
    uv_tcp_t *tcp; /* one per address tried; freed by its close */
    uv_timer_t timer;
    struct tlsio *tls;
    bool tls_up;         /* handshake done on this connection */
    bool plaintext_only; /* level may after a failed handshake */
    bool starting;       /* counted in dest->nstarting */
    struct smtp_reply_parser rp;
    struct dns_hops hops;
    size_t hi, ai; /* host and address being tried */
    unsigned caps;
    unsigned long size_limit;
    char relay[320];
    struct smtpout_tls tinfo;
    enum smtpout_result fail_res; /* why the last setup failed */
    char fail_reply[QUEUE_REPLY_MAX];
    char kept_reply[QUEUE_REPLY_MAX]; /* what is reported (keep_failure) */
    char kept_relay[320];
    struct smtpout_tls kept_tls;
    struct smtpout_job *job; /* the message being sent */
    size_t ri;               /* its recipient being asked */
    bool *accepted;
    size_t naccepted;
    unsigned nsent; /* messages sent on this connection */
};

/* snprintf that may truncate (replies and reasons are bounded). */
static void sfmt(char *dst, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void sfmt(char *dst, size_t n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(dst, n, fmt, ap);
    va_end(ap);
}

static void conn_setup_failed(struct smtpout_conn *c);
static void conn_next_job(struct smtpout_conn *c);
static void conn_connect(struct smtpout_conn *c);
static void conn_close(struct smtpout_conn *c);
static void start_conns(struct smtpout_dest *d);
static void on_reply(struct smtpout_conn *c, const struct smtp_reply *r);

/* ---- destinations ---- */

static struct smtpout_dest *find_dest(struct smtpout *so, const char *domain,
                                      const char *host, unsigned port,
                                      enum tls_level level)
{
    struct smtpout_dest *d;

    for (d = so->dests; d; d = d->next)
        if (d->level == level && d->port == port &&
            strcmp(d->host, host ? host : "") == 0 &&
            ((host && level != TLS_SECURE) || strcmp(d->domain, domain) == 0))
            return d;
    if (!(d = calloc(1, sizeof(*d))))
        return NULL;
    d->so = so;
    sfmt(d->domain, sizeof(d->domain), "%s", domain);
    sfmt(d->host, sizeof(d->host), "%s", host ? host : "");
    d->port = port;
    d->level = level;
    d->tail = &d->jobs;
    d->next = so->dests;
    so->dests = d;
    return d;
}

/* Every recipient of job j gets the same result; the job is done. */
static void job_fail(struct smtpout_job *j, enum smtpout_result res,
                     const char *reply, const char *relay,
                     const struct smtpout_tls *tls)
{
    for (size_t i = 0; i < j->n; i++)
        if (j->m->r[j->idx[i]].result == RES_NONE)
            smtpout_rcpt_result(j->m, j->idx[i], res, reply, relay, tls);
    smtpout_job_done(j);
}

static struct smtpout_job *pop_job(struct smtpout_dest *d)
{
    struct smtpout_job *j = d->jobs;

    if (j && !(d->jobs = j->next))
        d->tail = &d->jobs;
    return j;
}

void smtpout_dispatch(struct smtpout *so, struct smtpout_job *j,
                      const char *domain, const char *host, unsigned port,
                      enum tls_level level)
{
    struct smtpout_dest *d = find_dest(so, domain, host, port, level);

    if (!d) {
        job_fail(j, RES_DEFER, "451 4.3.0 out of memory", NULL, NULL);
        return;
    }
    j->next = NULL;
    *d->tail = j;
    d->tail = &j->next;
    start_conns(d);
}

static void free_dest_if_idle(struct smtpout_dest *d)
{
    struct smtpout_dest **pp = &d->so->dests;

    if (d->jobs || d->nconn)
        return;
    while (*pp && *pp != d)
        pp = &(*pp)->next;
    if (*pp)
        *pp = d->next;
    free(d);
}

bool smtpout_conns_busy(const struct smtpout *so)
{
    for (const struct smtpout_dest *d = so->dests; d; d = d->next)
        if (d->jobs || d->nconn)
            return true;
    return false;
}

void smtpout_conns_free(struct smtpout *so)
{
    while (so->dests) {
        struct smtpout_dest *d = so->dests;
        so->dests = d->next;
        free(d);
    }
}

/* ---- connection life ---- */

static unsigned long queued_jobs(const struct smtpout_dest *d)
{
    unsigned long n = 0;

    for (const struct smtpout_job *j = d->jobs; j; j = j->next)
        n++;
    return n;
}

static void on_dns(void *ctx, int err, const struct dns_hops *h);

/* Opens connections while jobs wait that no starting connection will
 * take, up to the per-destination limit. */
static void start_conns(struct smtpout_dest *d)
{
    struct smtpout *so = d->so;
    unsigned long waiting = queued_jobs(d);
    int rc;

    while (d->nconn < so->cfg->max_per_destination && waiting > d->nstarting) {
        struct smtpout_conn *c = calloc(1, sizeof(*c));
        if (!c)
            return;
        c->so = so;
        c->dest = d;
        c->id = ++so->conn_seq;
        c->starting = true;
        d->nconn++;
        d->nstarting++;
        smtpout_reply_init(&c->rp);
        uv_timer_init(so->loop, &c->timer);
        c->timer.data = c;
        c->state = C_RESOLVE;
        rc = d->host[0] ? dns_resolve_host(so->dns, d->host, d->port, on_dns, c)
                        : dns_resolve_mx(so->dns, d->domain, on_dns, c);
        if (rc != DNS_OK)
            on_dns(c, rc, NULL);
    }
}

/* Keeps the name of the host being tried and its address for logs. */
static void set_relay(struct smtpout_conn *c)
{
    const struct dns_host *h = &c->hops.host[c->hi];
    const struct sockaddr_storage *ss = &h->addr[c->ai];
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port;

    if (ss->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)ss)->sin_addr, ip,
                  sizeof(ip));
        port = ntohs(((struct sockaddr_in *)ss)->sin_port);
    } else {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ss)->sin6_addr, ip,
                  sizeof(ip));
        port = ntohs(((struct sockaddr_in6 *)ss)->sin6_port);
    }
    sfmt(c->relay, sizeof(c->relay), "%s[%s]:%u", h->name, ip, port);
    sfmt(c->tinfo.mx_host, sizeof(c->tinfo.mx_host), "%s", h->name);
    sfmt(c->tinfo.mx_ip, sizeof(c->tinfo.mx_ip), "%s", ip);
}

static void on_dns(void *ctx, int err, const struct dns_hops *h)
{
    struct smtpout_conn *c = ctx;
    const char *what = c->dest->host[0] ? c->dest->host : c->dest->domain;

    if (err == DNS_OK) {
        c->hops = *h;
        conn_connect(c);
        return;
    }
    c->fail_res = RES_DEFER;
    if (err == DNS_ENULLMX || (err == DNS_ENOTFOUND && !c->dest->host[0]))
        c->fail_res = RES_BOUNCE;
    sfmt(c->fail_reply, sizeof(c->fail_reply), "%s %s: %s",
         err == DNS_ENULLMX          ? "556 5.1.10"
         : c->fail_res == RES_BOUNCE ? "550 5.1.2"
                                     : "451 4.4.3",
         what, dns_strerror(err));
    c->hops.nhost = 0;
    conn_setup_failed(c);
}

static void free_tcp(uv_handle_t *h)
{
    free(h);
}

/* Ends the TCP (and TLS) session of the address being tried. */
static void drop_transport(struct smtpout_conn *c)
{
    uv_timer_stop(&c->timer);
    if (c->tls) {
        tlsio_free(c->tls);
        c->tls = NULL;
    }
    if (c->tcp) {
        uv_read_stop((uv_stream_t *)c->tcp);
        uv_close((uv_handle_t *)c->tcp, free_tcp);
        c->tcp = NULL;
    }
    c->tls_up = false;
    memset(&c->tinfo, 0, sizeof(c->tinfo));
    smtpout_reply_init(&c->rp);
}

static void free_conn(uv_handle_t *h)
{
    struct smtpout_conn *c = h->data;

    free(c->accepted);
    free(c);
}

/* The connection is over: frees it, lets others take the waiting jobs. */
static void conn_close(struct smtpout_conn *c)
{
    struct smtpout_dest *d = c->dest;
    struct smtpout *so = c->so;

    if (c->job) /* lost in the middle of a message */
        job_fail(c->job, RES_DEFER, c->fail_reply, c->relay, &c->tinfo);
    c->job = NULL;
    drop_transport(c);
    if (c->starting)
        d->nstarting--;
    d->nconn--;
    c->state = C_DONE;
    uv_close((uv_handle_t *)&c->timer, free_conn);
    start_conns(d);
    free_dest_if_idle(d);
    smtpout_check_stop(so);
}

/* ---- connecting ---- */

static void on_timeout(uv_timer_t *t)
{
    struct smtpout_conn *c = t->data;

    sfmt(c->fail_reply, sizeof(c->fail_reply),
         "451 4.4.2 timeout with %s (state %d)", c->relay, c->state);
    c->fail_res = RES_DEFER;
    if (c->state <= C_EHLO2)
        conn_setup_failed(c);
    else
        conn_close(c);
}

static void arm(struct smtpout_conn *c, unsigned long seconds)
{
    uv_timer_start(&c->timer, on_timeout, seconds * 1000, 0);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char slab[65536];

    buf->base = slab;
    buf->len = sizeof(slab);
}

/* Feeds received bytes to the reply parser and handles each reply. Bytes
 * after a reply that changes the transport (STARTTLS) are dropped. */
static void feed(struct smtpout_conn *c, const char *buf, size_t n)
{
    struct smtp_reply r;
    size_t used;
    int rc;

    while (n > 0) {
        rc = smtpout_reply_feed(&c->rp, buf, n, &used, &r);
        if (rc < 0) {
            sfmt(c->fail_reply, sizeof(c->fail_reply),
                 "451 4.5.0 bad reply from %s: %s", c->relay,
                 smtpout_reply_strerror(rc));
            c->fail_res = RES_DEFER;
            c->state <= C_EHLO2 ? conn_setup_failed(c) : conn_close(c);
            return;
        }
        if (rc == 0)
            return;
        buf += used;
        n -= used;
        enum conn_state before = c->state;
        uv_stream_t *tcp = (uv_stream_t *)c->tcp;
        on_reply(c, &r);
        if (c->state == C_DONE || c->state == C_HANDSHAKE ||
            (before < C_READY && (uv_stream_t *)c->tcp != tcp))
            return;
    }
}

static void on_plain_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct smtpout_conn *c = s->data;

    if (n > 0) {
        feed(c, buf->base, (size_t)n);
        return;
    }
    if (n == 0)
        return;
    sfmt(c->fail_reply, sizeof(c->fail_reply),
         "451 4.4.2 connection lost with %s: %s", c->relay,
         uv_strerror((int)n));
    c->fail_res = RES_DEFER;
    c->state <= C_EHLO2 ? conn_setup_failed(c) : conn_close(c);
}

/* Keeps our own address on the connection (RFC 8460 sending-mta-ip). */
static void note_source(struct smtpout_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    const void *a;

    c->tinfo.src_ip[0] = '\0';
    if (uv_tcp_getsockname(c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    a = ss.ss_family == AF_INET
            ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
            : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
    inet_ntop(ss.ss_family, a, c->tinfo.src_ip, sizeof(c->tinfo.src_ip));
}

static void on_connect(uv_connect_t *req, int status)
{
    struct smtpout_conn *c = req->data;

    free(req); /* one per attempt: a canceled one may outlive c */
    if (status == UV_ECANCELED)
        return;
    if (status < 0) {
        log_info("id=C%" PRIu64 " connect-error relay=%s error=%s", c->id,
                 c->relay, uv_err_name(status));
        sfmt(c->fail_reply, sizeof(c->fail_reply),
             "451 4.4.1 connect to %s failed: %s", c->relay,
             uv_strerror(status));
        c->fail_res = RES_DEFER;
        conn_setup_failed(c);
        return;
    }
    note_source(c);
    c->state = C_BANNER;
    c->tcp->data = c;
    uv_read_start((uv_stream_t *)c->tcp, on_alloc, on_plain_read);
}

/* Connects to the current address (c->hi, c->ai). */
static void conn_connect(struct smtpout_conn *c)
{
    const struct sockaddr *sa =
        (const struct sockaddr *)&c->hops.host[c->hi].addr[c->ai];
    uv_connect_t *req;

    set_relay(c);
    c->state = C_CONNECT;
    c->tcp = malloc(sizeof(*c->tcp));
    if (!c->tcp || uv_tcp_init(c->so->loop, c->tcp) != 0) {
        free(c->tcp);
        c->tcp = NULL;
        sfmt(c->fail_reply, sizeof(c->fail_reply),
             "451 4.3.0 out of resources");
        conn_setup_failed(c);
        return;
    }
    c->tcp->data = c;
    arm(c, c->so->cfg->connect_timeout);
    if (!(req = malloc(sizeof(*req))) ||
        uv_tcp_connect(req, c->tcp, sa, on_connect) != 0) {
        free(req);
        sfmt(c->fail_reply, sizeof(c->fail_reply),
             "451 4.4.1 connect to %s failed", c->relay);
        conn_setup_failed(c);
        return;
    }
    req->data = c;
}

/* Moves to the next address, then the next host; false when none left. */
static bool next_address(struct smtpout_conn *c)
{
    if (c->hi >= c->hops.nhost)
        return false;
    if (++c->ai < c->hops.host[c->hi].naddr)
        return true;
    c->ai = 0;
    return ++c->hi < c->hops.nhost;
}

/* Keeps the reply that will be reported when every address failed: the
 * latest, except that a TLS failure (4.7.x) is not hidden by a later
 * connection failure on another address of the same next hop. */
static void keep_failure(struct smtpout_conn *c)
{
    bool tls_fail = strncmp(c->fail_reply, "451 4.7.", 8) == 0;

    if (c->kept_reply[0] && !tls_fail &&
        strncmp(c->kept_reply, "451 4.7.", 8) == 0)
        return;
    sfmt(c->kept_reply, sizeof(c->kept_reply), "%s", c->fail_reply);
    sfmt(c->kept_relay, sizeof(c->kept_relay), "%s", c->relay);
    /* The TLS outcome of the failed attempt is kept as it was: protocol
     * and cipher when a handshake completed (a certificate that did not
     * verify), none when it never did. */
    c->kept_tls = c->tinfo;
    c->kept_tls.verified = false;
}

/* Setup of this address failed (c->fail_reply says why): tries the next
 * address, else fails the waiting jobs and closes. Never falls back to
 * plaintext. */
static void conn_setup_failed(struct smtpout_conn *c)
{
    struct smtpout_dest *d = c->dest;
    struct smtpout_job *j;

    keep_failure(c);
    drop_transport(c);
    c->plaintext_only = false;
    if (c->fail_res != RES_BOUNCE && next_address(c)) {
        conn_connect(c);
        return;
    }
    log_info("id=C%" PRIu64 " connect-failed dest=%s level=%s reply=\"%s\"",
             c->id, d->host[0] ? d->host : d->domain, tls_level_name(d->level),
             c->kept_reply);
    /* Every waiting job shares this next hop and level: it would fail
     * the same way, so it is deferred now rather than retried in a storm
     * of connections. */
    while ((j = pop_job(d)))
        job_fail(j, c->fail_res, c->kept_reply, c->kept_relay, &c->kept_tls);
    conn_close(c);
}

/* Level may: the handshake failed, so a new plaintext connection to the
 * same address is allowed (and logged). */
static void conn_plaintext_retry(struct smtpout_conn *c, const char *why)
{
    char failure[sizeof(c->tinfo.failure)];

    log_warn("id=C%" PRIu64 " tls-fallback relay=%s level=may reason=\"%s\" "
             "action=reconnect-plaintext",
             c->id, c->relay, why);
    memcpy(failure, c->tinfo.failure, sizeof(failure));
    drop_transport(c);
    memcpy(c->tinfo.failure, failure, sizeof(failure)); /* for the report */
    c->plaintext_only = true;
    conn_connect(c);
}

/* ---- writing ---- */

struct wreq {
    uv_write_t req;
    char data[];
};

static void on_plain_written(uv_write_t *req, int status)
{
    free(req);
}

/* Sends bytes on the transport: TLS once up, else plaintext TCP. */
static int conn_send(struct smtpout_conn *c, const char *data, size_t len)
{
    struct wreq *w;
    uv_buf_t b;

    if (c->tls)
        return tlsio_write(c->tls, data, len, NULL, NULL);
    if (!(w = malloc(sizeof(*w) + len)))
        return -1;
    memcpy(w->data, data, len);
    b = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)c->tcp, &b, 1, on_plain_written)) {
        free(w);
        return -1;
    }
    return 0;
}

/* Sends one command line (CRLF added) and waits for its reply. */
static void conn_cmd(struct smtpout_conn *c, enum conn_state next,
                     const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void conn_cmd(struct smtpout_conn *c, enum conn_state next,
                     const char *fmt, ...)
{
    char line[1100];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) - 2)
        n = (int)sizeof(line) - 3;
    memcpy(line + n, "\r\n", 2);
    c->state = next;
    arm(c, c->so->cfg->command_timeout);
    if (conn_send(c, line, (size_t)n + 2) != 0) {
        sfmt(c->fail_reply, sizeof(c->fail_reply),
             "451 4.4.2 write to %s failed", c->relay);
        c->fail_res = RES_DEFER;
        next <= C_EHLO2 ? conn_setup_failed(c) : conn_close(c);
    }
}

/* ---- replies: the SMTP dialogue ---- */

/* The reply as one line "250 2.0.0 text text" for records and logs. */
static void reply_line(const struct smtp_reply *r, char *out, size_t n)
{
    sfmt(out, n, "%d %s", r->code, r->text);
    for (char *p = out; *p; p++)
        if (*p == '\n')
            *p = ' ';
}

static bool tls_required(const struct smtpout_conn *c)
{
    return c->dest->level >= TLS_ENCRYPT;
}

/* Notes the RFC 8460 result type of a TLS failure on this connection. */
static void note_failure(struct smtpout_conn *c, const char *kind)
{
    sfmt(c->tinfo.failure, sizeof(c->tinfo.failure), "%s", kind);
}

/* The result type of a failed handshake, from what tlsio saw. */
static const char *handshake_failure(struct tlsio *t, int status)
{
    struct tlsio_report rep;

    if (status != TLSIO_EVERIFY || tlsio_report(t, &rep) != 0)
        return "validation-failure";
    if (rep.not_after > 0 && rep.not_after < (int64_t)time(NULL))
        return "certificate-expired";
    if (!rep.chain_ok)
        return "certificate-not-trusted";
    return "certificate-host-mismatch";
}

/* The TLS failure of a required level: deferred with code (4.7.4 not
 * offered, 4.7.5 failed); QUIT is sent where the session allows it. */
static void fail_tls(struct smtpout_conn *c, const char *code, const char *why)
{
    sfmt(c->fail_reply, sizeof(c->fail_reply),
         "451 %s TLS required (level %s) but %s with %s", code,
         tls_level_name(c->dest->level), why, c->relay);
    c->fail_res = RES_DEFER;
    log_warn("id=C%" PRIu64 " tls-required-failed relay=%s level=%s "
             "reason=\"%s\" action=defer",
             c->id, c->relay, tls_level_name(c->dest->level), why);
    conn_setup_failed(c);
}

/* Level may, no TLS on this connection: continue in plaintext, logged. */
static void may_fallback(struct smtpout_conn *c, const char *why)
{
    log_warn("id=C%" PRIu64 " tls-fallback relay=%s level=may reason=\"%s\" "
             "action=plaintext",
             c->id, c->relay, why);
    c->tinfo.fallback = true;
}

static void on_tls_read(struct tlsio *t, const char *buf, ssize_t n, void *arg)
{
    struct smtpout_conn *c = arg;

    if (n > 0) {
        feed(c, buf, (size_t)n);
        return;
    }
    sfmt(c->fail_reply, sizeof(c->fail_reply),
         "451 4.4.2 TLS session lost with %s: %s", c->relay,
         tlsio_strerror((int)n));
    c->fail_res = RES_DEFER;
    c->state <= C_EHLO2 ? conn_setup_failed(c) : conn_close(c);
}

/* A handshake that completed but whose certificate did not verify (verify
 * or secure): records what was negotiated, verified=no, and logs it. */
static void note_unverified(struct smtpout_conn *c,
                            const struct tlsio_report *rep)
{
    sfmt(c->tinfo.protocol, sizeof(c->tinfo.protocol), "%s", rep->protocol);
    sfmt(c->tinfo.cipher, sizeof(c->tinfo.cipher), "%s", rep->cipher);
    c->tinfo.verified = false;
    c->tinfo.chain_ok = rep->chain_ok;
    c->tinfo.name_ok = rep->name_ok;
    log_info("id=C%" PRIu64 " tls relay=%s protocol=%s cipher=%s verified=no "
             "level=%s reason=\"%s\"",
             c->id, c->relay, rep->protocol, rep->cipher,
             tls_level_name(c->dest->level), rep->verify_error);
}

/* The handshake ended: checks it against the level, then EHLO again. */
static void on_handshake(struct tlsio *t, int status, void *arg)
{
    struct smtpout_conn *c = arg;
    struct tlsio_report rep;
    char why[300];

    if (status == TLSIO_EVERIFY && tlsio_report(t, &rep) == 0)
        note_unverified(c, &rep);
    if (status != 0) {
        note_failure(c, handshake_failure(t, status));
        sfmt(why, sizeof(why), "%s: %s",
             status == TLSIO_EVERIFY ? "certificate not verified"
                                     : "TLS handshake failed",
             tlsio_last_error(t));
        if (!tls_required(c))
            conn_plaintext_retry(c, why);
        else
            fail_tls(c, "4.7.5", why);
        return;
    }
    tlsio_report(t, &rep);
    c->tls_up = true;
    sfmt(c->tinfo.protocol, sizeof(c->tinfo.protocol), "%s", rep.protocol);
    sfmt(c->tinfo.cipher, sizeof(c->tinfo.cipher), "%s", rep.cipher);
    c->tinfo.verified = rep.cert_verified;
    c->tinfo.chain_ok = rep.chain_ok;
    c->tinfo.name_ok = rep.name_ok;
    log_info("id=C%" PRIu64 " tls relay=%s protocol=%s cipher=%s verified=%s "
             "level=%s",
             c->id, c->relay, rep.protocol, rep.cipher,
             rep.cert_verified ? "yes" : "no", tls_level_name(c->dest->level));
    tlsio_read_start(t, on_tls_read);
    conn_cmd(c, C_EHLO2, "EHLO %s", c->so->cfg->hostname);
}

/* STARTTLS got 220: forget every byte received so far, then handshake
 * with SNI, and for verify/secure a required verified name. */
static void start_tls(struct smtpout_conn *c)
{
    const struct dns_host *h = &c->hops.host[c->hi];
    enum tls_level lvl = c->dest->level;
    struct in6_addr ip;
    bool literal = inet_pton(AF_INET, h->name, &ip) == 1 ||
                   inet_pton(AF_INET6, h->name, &ip) == 1;
    struct tlsio_opts o = {
        .handshake_timeout_ms =
            (unsigned)(c->so->cfg->handshake_timeout * 1000),
        .server_name = literal ? NULL : h->name, /* SNI takes no address */
        .verify_name = lvl == TLS_SECURE ? c->dest->domain : h->name,
        .require_verified = lvl >= TLS_VERIFY,
    };
    int rc;

    uv_read_stop((uv_stream_t *)c->tcp);
    smtpout_reply_init(&c->rp);
    uv_timer_stop(&c->timer);
    c->state = C_HANDSHAKE;
    rc = tlsio_start(c->so->tls, c->tcp, false, &o, on_handshake, c, &c->tls);
    if (rc != 0) {
        c->tls = NULL;
        note_failure(c, "validation-failure");
        if (!tls_required(c))
            conn_plaintext_retry(c, tlsio_strerror(rc));
        else
            fail_tls(c, "4.7.5", tlsio_strerror(rc));
    }
}

/* The EHLO (or HELO) reply: decides STARTTLS per the level. */
static void on_ehlo(struct smtpout_conn *c, const struct smtp_reply *r,
                    const char *line)
{
    enum tls_level lvl = c->dest->level;

    if (r->code != 250 && c->state == C_EHLO && !tls_required(c)) {
        conn_cmd(c, C_HELO, "HELO %s", c->so->cfg->hostname);
        return;
    }
    if (r->code != 250) {
        note_failure(c, "starttls-not-supported");
        if (tls_required(c))
            fail_tls(c, "4.7.4", "EHLO was refused (no STARTTLS)");
        else {
            sfmt(c->fail_reply, sizeof(c->fail_reply),
                 "451 4.4.0 %s refused HELO: %s", c->relay, line);
            conn_setup_failed(c);
        }
        return;
    }
    c->caps = c->state == C_EHLO ? smtpout_ehlo_caps(r, &c->size_limit) : 0;
    if (lvl == TLS_NONE || c->plaintext_only) {
        c->tinfo.fallback = c->plaintext_only;
        conn_next_job(c);
        return;
    }
    if (c->caps & EHLO_STARTTLS) {
        conn_cmd(c, C_STARTTLS, "STARTTLS");
        return;
    }
    note_failure(c, "starttls-not-supported");
    if (tls_required(c))
        fail_tls(c, "4.7.4", "STARTTLS was not offered");
    else {
        may_fallback(c, "STARTTLS not offered");
        conn_next_job(c);
    }
}

/* The STARTTLS reply: 220 starts TLS; anything else is a refusal. */
static void on_starttls(struct smtpout_conn *c, const struct smtp_reply *r,
                        const char *line)
{
    char why[300];

    if (r->code == 220) {
        start_tls(c);
        return;
    }
    sfmt(why, sizeof(why), "STARTTLS was refused: %s", line);
    note_failure(c, "starttls-not-supported");
    if (tls_required(c))
        fail_tls(c, "4.7.5", why);
    else if (r->code == 421)
        conn_plaintext_retry(c, why);
    else {
        may_fallback(c, why);
        conn_next_job(c);
    }
}

/* After STARTTLS: capabilities come only from this new EHLO reply. */
static void on_ehlo2(struct smtpout_conn *c, const struct smtp_reply *r,
                     const char *line)
{
    char why[300];

    if (r->code != 250) {
        sfmt(why, sizeof(why), "EHLO after STARTTLS failed: %s", line);
        if (tls_required(c))
            fail_tls(c, "4.7.5", why);
        else {
            sfmt(c->fail_reply, sizeof(c->fail_reply), "451 4.4.0 %s", why);
            c->fail_res = RES_DEFER;
            conn_setup_failed(c);
        }
        return;
    }
    c->caps = smtpout_ehlo_caps(r, &c->size_limit);
    conn_next_job(c);
}

/* ---- the mail transaction ---- */

/* Takes the next waiting job, or says QUIT when none is left or the
 * connection has sent its share. */
static void conn_next_job(struct smtpout_conn *c)
{
    struct smtpout_dest *d = c->dest;
    struct smtpout_job *j;
    char size[32];

    if (c->starting) {
        c->starting = false;
        d->nstarting--;
    }
    c->state = C_READY;
    if (c->nsent >= c->so->cfg->max_per_connection || !(j = pop_job(d))) {
        conn_cmd(c, C_QUIT, "QUIT");
        return;
    }
    /* Fail closed: a level that requires TLS never sends MAIL FROM
     * without a finished handshake on this very connection. */
    if (tls_required(c) && !c->tls_up) {
        job_fail(j, RES_DEFER, "451 4.7.4 TLS required but not established",
                 c->relay, NULL);
        conn_cmd(c, C_QUIT, "QUIT");
        return;
    }
    free(c->accepted);
    c->accepted = calloc(j->n, sizeof(bool));
    c->job = j;
    c->ri = 0;
    c->naccepted = 0;
    c->nsent++;
    sfmt(size, sizeof(size), " SIZE=%zu", j->m->len);
    conn_cmd(c, C_MAIL, "MAIL FROM:<%s>%s%s", j->m->q.sender,
             c->caps & EHLO_SIZE ? size : "",
             j->m->eightbit && (c->caps & EHLO_8BITMIME) ? " BODY=8BITMIME"
                                                         : "");
}

/* Recipient i of the current job gets reply (4xx defer, 5xx bounce,
 * 2xx sent). */
static void rcpt_reply(struct smtpout_conn *c, size_t i, int code,
                       const char *line)
{
    enum smtpout_result res = code < 300   ? RES_SENT
                              : code < 500 ? RES_DEFER
                                           : RES_BOUNCE;
    const struct smtpout_rcpt *r = &c->job->m->r[c->job->idx[i]];

    /* Whether the certificate names the recipient domain (for secure,
     * also when it is only the shadow policy's level). */
    c->tinfo.domain_ok =
        c->tls_up && c->tls && tlsio_peer_name_matches(c->tls, r->d.domain);
    smtpout_rcpt_result(c->job->m, c->job->idx[i], res, line, c->relay,
                        &c->tinfo);
}

/* Ends the current job; all still-undecided recipients get line. */
static void end_job(struct smtpout_conn *c, int code, const char *line,
                    bool only_accepted)
{
    struct smtpout_job *j = c->job;

    for (size_t i = 0; i < j->n; i++)
        if (!only_accepted || c->accepted[i])
            rcpt_reply(c, i, code, line);
    c->job = NULL;
    smtpout_job_done(j);
}

/* The message text, dot-stuffed and ended with ".". */
static void send_body(struct smtpout_conn *c)
{
    const struct smtpout_msg *m = c->job->m;
    char *out = malloc(m->len + m->len / 2 + 8), *o = out;
    bool bol = true;

    if (!out) {
        sfmt(c->fail_reply, sizeof(c->fail_reply), "451 4.3.0 no memory");
        conn_close(c);
        return;
    }
    for (size_t i = 0; i < m->len; i++) {
        if (bol && m->body[i] == '.')
            *o++ = '.';
        *o++ = m->body[i];
        bol = m->body[i] == '\n';
    }
    if (!bol)
        o += sprintf(o, "\r\n");
    o += sprintf(o, ".\r\n");
    c->state = C_DOT;
    arm(c, c->so->cfg->data_timeout);
    if (conn_send(c, out, (size_t)(o - out)) != 0) {
        sfmt(c->fail_reply, sizeof(c->fail_reply),
             "451 4.4.2 write to %s failed", c->relay);
        conn_close(c);
    }
    free(out);
}

/* Asks for the next recipient, or DATA once all were asked. */
static void next_rcpt(struct smtpout_conn *c)
{
    struct smtpout_job *j = c->job;

    if (c->ri < j->n) {
        conn_cmd(c, C_RCPT, "RCPT TO:<%s>", j->m->q.rcpt[j->idx[c->ri]].addr);
        return;
    }
    if (c->naccepted == 0) {
        c->job = NULL;
        smtpout_job_done(j);
        conn_cmd(c, C_RSET, "RSET");
        return;
    }
    conn_cmd(c, C_DATA, "DATA");
}

/* One reply of the transaction states. */
static void on_txn_reply(struct smtpout_conn *c, const struct smtp_reply *r,
                         const char *line)
{
    switch (c->state) {
    case C_MAIL:
        if (r->code / 100 == 2)
            return next_rcpt(c);
        end_job(c, r->code, line, false);
        return conn_cmd(c, C_RSET, "RSET");
    case C_RCPT:
        if (r->code / 100 == 2)
            c->accepted[c->ri] = true, c->naccepted++;
        else
            rcpt_reply(c, c->ri, r->code, line);
        c->ri++;
        return next_rcpt(c);
    case C_DATA:
        if (r->code == 354)
            return send_body(c);
        end_job(c, r->code < 400 ? 451 : r->code, line, true);
        return conn_cmd(c, C_RSET, "RSET");
    case C_DOT:
        end_job(c, r->code < 400 && r->code >= 300 ? 451 : r->code, line, true);
        return conn_next_job(c);
    case C_RSET:
        if (r->code / 100 == 2)
            return conn_next_job(c);
        return conn_close(c);
    default:
        return conn_close(c);
    }
}

/* Every complete reply, by state. */
static void on_reply(struct smtpout_conn *c, const struct smtp_reply *r)
{
    char line[QUEUE_REPLY_MAX];

    uv_timer_stop(&c->timer);
    reply_line(r, line, sizeof(line));
    log_debug("id=C%" PRIu64 " reply state=%d code=%d lines=%zu", c->id,
              c->state, r->code, r->nlines);
    sfmt(c->fail_reply, sizeof(c->fail_reply),
         "451 4.4.2 lost connection with %s after: %s", c->relay, line);
    c->fail_res = RES_DEFER;
    switch (c->state) {
    case C_BANNER:
        if (r->code == 220)
            return conn_cmd(c, C_EHLO, "EHLO %s", c->so->cfg->hostname);
        sfmt(c->fail_reply, sizeof(c->fail_reply), "%s %s (banner)",
             r->code >= 500 ? "451 4.4.0" : "451 4.4.0", line);
        return conn_setup_failed(c);
    case C_EHLO:
    case C_HELO:
        return on_ehlo(c, r, line);
    case C_STARTTLS:
        return on_starttls(c, r, line);
    case C_EHLO2:
        return on_ehlo2(c, r, line);
    case C_QUIT:
        return conn_close(c);
    default:
        return on_txn_reply(c, r, line);
    }
}
