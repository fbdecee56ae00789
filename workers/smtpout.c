/*
 * tlsgate-smtpout: one outbound sender process. Scans the shared queue,
 * takes due messages (flock), asks the engine for each recipient's level
 * and route, hands jobs to destinations (smtpout_conn.c), and records
 * every recipient's outcome durably. Also runs the submission listener.
 */
#include "smtpout.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "supfds.h"

static void finish_msg(struct smtpout_msg *m);
static void dispatch_msg(struct smtpout_msg *m);

/* ---- results ---- */

void smtpout_rcpt_result(struct smtpout_msg *m, size_t idx,
                         enum smtpout_result res, const char *reply,
                         const char *relay, const struct smtpout_tls *tls)
{
    struct smtpout_rcpt *r = &m->r[idx];

    r->result = res;
    snprintf(r->reply, sizeof(r->reply), "%s", reply);
    snprintf(r->relay, sizeof(r->relay), "%s", relay ? relay : "");
    if (tls)
        r->tls = *tls;
    else
        memset(&r->tls, 0, sizeof(r->tls));
}

void smtpout_job_done(struct smtpout_job *j)
{
    struct smtpout_msg *m = j->m;

    free(j->idx);
    free(j);
    if (--m->pending == 0)
        finish_msg(m);
}

/* ---- logging a recipient's attempt ---- */

static const char *result_name(enum smtpout_result r)
{
    return r == RES_SENT ? "sent" : r == RES_BOUNCE ? "bounced" : "deferred";
}

/* What the shadow policy makes of this attempt's TLS outcome: "pass",
 * "would-defer", or "unknown" when the attempt failed before any TLS
 * step (connect, DNS). "" without a shadow policy. */
static const char *shadow_result(const struct smtpout_rcpt *r)
{
    const struct smtpout_tls *t = &r->tls;
    enum tls_level s = r->d.shadow_level;
    bool up = t->protocol[0] != '\0';

    if (!r->d.shadow)
        return "";
    if (s < TLS_ENCRYPT)
        return "pass";
    if (!up && !t->failure[0] && r->result != RES_SENT)
        return "unknown";
    if (!up || (s == TLS_VERIFY && !(t->chain_ok && t->name_ok)) ||
        (s == TLS_SECURE && !(t->chain_ok && t->domain_ok)))
        return "would-defer";
    return "pass";
}

/* The log line of a delivery the shadow policy would have deferred. */
static void log_shadow(const struct smtpout_msg *m, size_t i,
                       const char *status)
{
    const struct smtpout_rcpt *r = &m->r[i];
    char to[4 * ADDR_MAX], rule[3 * RULE_MAX];

    log_warn("id=%s shadow-would-defer to=<%s> status=%s level=%s "
             "shadow_level=%s shadow_rule=%s tls=%s verified=%s failure=%s",
             m->q.id, log_escape(to, sizeof(to), m->q.rcpt[i].addr), status,
             tls_level_name(r->d.level), tls_level_name(r->d.shadow_level),
             log_escape(rule, sizeof(rule), r->d.shadow_rule),
             r->tls.protocol[0] ? r->tls.protocol : "none",
             r->tls.verified ? "yes" : "no",
             r->tls.failure[0] ? r->tls.failure : "none");
}

/* Fills the report fields of an event: failure, MX, shadow outcome. */
static void event_details(struct eng_event *ev, const struct smtpout_rcpt *r)
{
    snprintf(ev->tls_failure, sizeof(ev->tls_failure), "%s", r->tls.failure);
    snprintf(ev->mx_host, sizeof(ev->mx_host), "%s", r->tls.mx_host);
    snprintf(ev->mx_ip, sizeof(ev->mx_ip), "%s", r->tls.mx_ip);
    snprintf(ev->src_ip, sizeof(ev->src_ip), "%s", r->tls.src_ip);
    if (r->d.shadow)
        snprintf(ev->shadow_level, sizeof(ev->shadow_level), "%s",
                 tls_level_name(r->d.shadow_level));
    snprintf(ev->shadow_result, sizeof(ev->shadow_result), "%s",
             shadow_result(r));
}

/* The one log line and the engine event of one recipient's attempt. */
static void log_attempt(struct smtpout_msg *m, size_t i, const char *status)
{
    struct smtpout_rcpt *r = &m->r[i];
    const struct queue_rcpt *qr = &m->q.rcpt[i];
    struct eng_event ev = {.kind = EV_DELIVERY, .time = time(NULL)};
    char reply[3 * QUEUE_REPLY_MAX], rule[3 * RULE_MAX], to[4 * ADDR_MAX];
    const char *dom = strrchr(qr->addr, '@');

    log_info("id=%s delivery to=<%s> relay=%s status=%s attempt=%u "
             "tls=%s cipher=%s verified=%s fallback=%s level=%s rule=%s "
             "generation=%" PRIu64 " reply=%s tls_failure=%s",
             m->q.id, log_escape(to, sizeof(to), qr->addr),
             r->relay[0] ? r->relay : "none", status, qr->attempts,
             r->tls.protocol[0] ? r->tls.protocol : "none",
             r->tls.cipher[0] ? r->tls.cipher : "none",
             r->tls.verified ? "yes" : "no", r->tls.fallback ? "yes" : "no",
             tls_level_name(r->d.level),
             log_escape(rule, sizeof(rule), r->d.rule[0] ? r->d.rule : "none"),
             r->d.generation, log_escape(reply, sizeof(reply), r->reply),
             r->tls.failure[0] ? r->tls.failure : "none");

    snprintf(ev.id, sizeof(ev.id), "%s", m->q.id);
    snprintf(ev.tenant, sizeof(ev.tenant), "%s", m->q.tenant);
    snprintf(ev.peer_domain, sizeof(ev.peer_domain), "%s", dom ? dom + 1 : "");
    snprintf(ev.address, sizeof(ev.address), "%s", qr->addr);
    snprintf(ev.relay, sizeof(ev.relay), "%s", r->relay);
    snprintf(ev.status, sizeof(ev.status), "%s", status);
    snprintf(ev.reply, sizeof(ev.reply), "%s", r->reply);
    snprintf(ev.tls_protocol, sizeof(ev.tls_protocol), "%s", r->tls.protocol);
    snprintf(ev.tls_cipher, sizeof(ev.tls_cipher), "%s", r->tls.cipher);
    ev.tls_verified = r->tls.verified;
    snprintf(ev.level, sizeof(ev.level), "%s", tls_level_name(r->d.level));
    snprintf(ev.rule, sizeof(ev.rule), "%s", r->d.rule);
    ev.generation = r->d.generation;
    event_details(&ev, r);
    if (!strcmp(ev.shadow_result, "would-defer"))
        log_shadow(m, i, status);
    eng_send_event(m->so->eng, &ev);
}

/* ---- finishing a message ---- */

/* Applies one recipient's result to the status record; returns true when
 * it bounced. */
static bool apply_result(struct smtpout_msg *m, size_t i, int64_t now)
{
    const struct tg_config *cfg = m->so->cfg;
    struct smtpout_rcpt *r = &m->r[i];
    struct queue_rcpt *qr = &m->q.rcpt[i];
    enum smtpout_result res = r->result == RES_NONE ? RES_DEFER : r->result;
    uint64_t rmin =
        m->so->retry_min_override ? m->so->retry_min_override : cfg->retry_min;

    qr->attempts++;
    snprintf(qr->reply, sizeof(qr->reply), "%s", r->reply);
    if (res == RES_DEFER &&
        now - m->q.created >= (int64_t)cfg->queue_lifetime) {
        res = RES_BOUNCE;
        snprintf(qr->reply, sizeof(qr->reply),
                 "%.200s (queue lifetime "
                 "expired)",
                 r->reply);
        snprintf(r->reply, sizeof(r->reply), "%s", qr->reply);
    }
    qr->state = res == RES_SENT     ? RCPT_SENT
                : res == RES_BOUNCE ? RCPT_BOUNCED
                                    : RCPT_PENDING;
    if (res == RES_DEFER)
        qr->next_try =
            now + queue_retry_delay(qr->attempts, rmin, cfg->retry_max);
    queue_hist_add(&m->q,
                   "%" PRId64 " %s %s attempt=%u relay=%s tls=%s "
                   "level=%s reply=%s",
                   now, qr->addr, result_name(res), qr->attempts,
                   r->relay[0] ? r->relay : "none",
                   r->tls.protocol[0] ? r->tls.protocol : "none",
                   tls_level_name(r->d.level), r->reply);
    log_attempt(m, i, result_name(res));
    return res == RES_BOUNCE;
}

/* Sends (or suppresses, with a log line) the DSN for bounced recipients. */
static void bounce(struct smtpout_msg *m, const size_t *idx, size_t n)
{
    char dsn[QUEUE_ID_MAX], s[4 * ADDR_MAX];
    int rc;

    log_escape(s, sizeof(s), m->q.sender);
    if (queue_is_noreply(m->q.sender, m->q.tenant_from)) {
        log_info("id=%s dsn suppressed from=<%s> nrcpt=%zu reason=%s", m->q.id,
                 s, n, m->q.sender[0] ? "no-reply-sender" : "null-sender");
        return;
    }
    rc = queue_bounce(m->so->q, &m->q, idx, n, m->fd, m->so->cfg->hostname, dsn,
                      sizeof(dsn));
    if (rc == QUEUE_OK)
        log_info("id=%s dsn queued to=<%s> dsn_id=%s nrcpt=%zu", m->q.id, s,
                 dsn, n);
    else
        log_err("id=%s dsn failed to=<%s> error=\"%s\"", m->q.id, s,
                queue_strerror(rc));
}

static void unlink_inflight(struct smtpout_msg *m)
{
    struct smtpout_msg **pp = &m->so->inflight;

    while (*pp && *pp != m)
        pp = &(*pp)->next;
    if (*pp)
        *pp = m->next;
    m->so->ninflight--;
    m->so->inflight_bytes -= m->q.size;
}

/* Every recipient of this round has a result: record them, bounce, save
 * or remove the message, release it. */
static void finish_msg(struct smtpout_msg *m)
{
    struct smtpout *so = m->so;
    int64_t now = time(NULL);
    size_t *bounced = calloc(m->q.nrcpt, sizeof(size_t)), nb = 0;
    int rc;

    for (size_t i = 0; i < m->q.nrcpt; i++)
        if (m->r[i].active && apply_result(m, i, now) && bounced)
            bounced[nb++] = i;
    if (nb > 0)
        bounce(m, bounced, nb);
    free(bounced);

    rc = queue_done(&m->q) ? queue_remove(so->q, m->q.id)
                           : queue_save(so->q, &m->q);
    if (rc != QUEUE_OK)
        log_err("id=%s queue-update failed error=\"%s: %s\"", m->q.id,
                queue_strerror(rc), strerror(errno));
    else if (queue_done(&m->q))
        log_info("id=%s removed reason=done", m->q.id);

    unlink_inflight(m);
    queue_unlock(m->fd);
    queue_msg_free(&m->q);
    free(m->body);
    free(m->r);
    free(m);
    smtpout_check_stop(so);
}

/* ---- policy decisions ---- */

static bool engine_down(int err)
{
    return err != 0 && err != STORE_ENOTFOUND && err != STORE_EINVAL;
}

/* One recipient's decision and route are known (or failed). */
static void ask_done(struct smtpout_rcpt *r)
{
    struct smtpout_msg *m = r->m;

    if (--m->pending == 0)
        dispatch_msg(m);
}

static void on_route(void *ctx, int err, const char *host, unsigned port)
{
    struct smtpout_rcpt *r = ctx;
    char why[160];

    if (err == 0) {
        snprintf(r->route_host, sizeof(r->route_host), "%s", host);
        r->route_port = port;
        r->routed = true;
    } else if (err != STORE_ENOTFOUND) {
        snprintf(why, sizeof(why),
                 "451 4.3.0 policy engine unavailable (route: %s)",
                 ipc_strerror(err));
        smtpout_rcpt_result(r->m, r->idx, RES_DEFER, why, NULL, NULL);
    }
    ask_done(r);
}

/* The message's tenant was removed: its policy cannot be read, so the
 * recipient is never sent; it is deferred (and bounces at queue_lifetime)
 * with a reply and a log line that say so. */
static void tenant_gone(struct smtpout_rcpt *r)
{
    const struct queue_msg *q = &r->m->q;
    char why[160], to[4 * ADDR_MAX];

    snprintf(why, sizeof(why), "451 4.3.0 tenant %s no longer exists",
             q->tenant);
    log_warn("id=%s tenant-missing tenant=%s to=<%s> action=defer "
             "reason=\"tenant %s no longer exists\" hint=\"tlsgate-queue "
             "delete %s\"",
             q->id, q->tenant, log_escape(to, sizeof(to), q->rcpt[r->idx].addr),
             q->tenant, q->id);
    smtpout_rcpt_result(r->m, r->idx, RES_DEFER, why, NULL, NULL);
}

static void on_decision(void *ctx, int err, const struct outbound_decision *d)
{
    struct smtpout_rcpt *r = ctx;
    char why[160];

    if (err == 0) {
        r->d = *d;
        if (eng_ask_route(r->m->so->eng, d->domain, on_route, r) == 0)
            return;
        err = IPC_EUNAVAIL;
    }
    if (err == STORE_EINVAL)
        smtpout_rcpt_result(r->m, r->idx, RES_BOUNCE,
                            "550 5.1.3 bad recipient address syntax", NULL,
                            NULL);
    else if (engine_down(err)) {
        snprintf(why, sizeof(why), "451 4.3.0 policy lookup failed: %s",
                 ipc_strerror(err));
        smtpout_rcpt_result(r->m, r->idx, RES_DEFER, why, NULL, NULL);
    } else
        tenant_gone(r);
    ask_done(r);
}

/* ---- grouping recipients into jobs ---- */

/* The level a recipient's connection uses: its live level, raised from
 * none to may when a shadow policy needs to see TLS (may never defers). */
static enum tls_level conn_level(const struct smtpout_rcpt *r)
{
    if (r->d.level == TLS_NONE && r->d.shadow &&
        r->d.shadow_level >= TLS_ENCRYPT)
        return TLS_MAY;
    return r->d.level;
}

/* True when recipients a and b can share one connection: same next hop,
 * same level, and for secure the same name to check. */
static bool same_dest(const struct smtpout_rcpt *a,
                      const struct smtpout_rcpt *b)
{
    if (conn_level(a) != conn_level(b) || a->routed != b->routed)
        return false;
    if (a->routed && (strcmp(a->route_host, b->route_host) != 0 ||
                      a->route_port != b->route_port))
        return false;
    if (!a->routed || a->d.level == TLS_SECURE)
        return strcmp(a->d.domain, b->d.domain) == 0;
    return true;
}

/* Makes the job of recipient i and every later one with the same
 * destination; NULL on ENOMEM. */
static struct smtpout_job *make_job(struct smtpout_msg *m, size_t i,
                                    bool *taken)
{
    struct smtpout_job *j = calloc(1, sizeof(*j));

    if (!j || !(j->idx = calloc(m->q.nrcpt, sizeof(size_t)))) {
        free(j);
        return NULL;
    }
    j->m = m;
    for (size_t k = i; k < m->q.nrcpt; k++) {
        struct smtpout_rcpt *r = &m->r[k];
        if (taken[k] || !r->active || r->result != RES_NONE ||
            !same_dest(&m->r[i], r))
            continue;
        taken[k] = true;
        j->idx[j->n++] = k;
    }
    return j;
}

/* Every decision is in: groups the recipients still to try into jobs by
 * (next hop, level) and hands them to their destinations. */
static void dispatch_msg(struct smtpout_msg *m)
{
    bool *taken = calloc(m->q.nrcpt, sizeof(bool));

    m->pending = 1; /* held while dispatching */
    for (size_t i = 0; taken && i < m->q.nrcpt; i++) {
        struct smtpout_rcpt *r = &m->r[i];
        struct smtpout_job *j;
        if (taken[i] || !r->active || r->result != RES_NONE)
            continue;
        if (!(j = make_job(m, i, taken))) {
            smtpout_rcpt_result(m, i, RES_DEFER, "451 4.3.0 out of memory",
                                NULL, NULL);
            continue;
        }
        m->pending++;
        smtpout_dispatch(m->so, j, r->d.domain,
                         r->routed ? r->route_host : NULL,
                         r->routed ? r->route_port : 25, conn_level(r));
    }
    free(taken);
    if (--m->pending == 0)
        finish_msg(m);
}

/* ---- taking messages from the queue ---- */

/* Reads the whole body of a locked message into memory. */
static int load_body(struct smtpout_msg *m)
{
    size_t cap = m->q.size + 1, n = 0;
    ssize_t r;

    m->body = malloc(cap);
    if (!m->body)
        return -1;
    while ((r = pread(m->fd, m->body + n, cap - n, (off_t)n)) > 0)
        if ((n += (size_t)r) == cap)
            return -1; /* larger than recorded: not ours to guess */
    m->len = n;
    for (size_t i = 0; i < n && !m->eightbit; i++)
        m->eightbit = (unsigned char)m->body[i] > 127;
    return r < 0 || n != m->q.size ? -1 : 0;
}

/* Asks the engine about every due pending recipient of m. */
static void ask_engine(struct smtpout_msg *m, int64_t now)
{
    m->pending = 1; /* held while asking */
    for (size_t i = 0; i < m->q.nrcpt; i++) {
        struct smtpout_rcpt *r = &m->r[i];
        const struct queue_rcpt *qr = &m->q.rcpt[i];
        r->m = m;
        r->idx = i;
        if (qr->state != RCPT_PENDING || qr->next_try > now)
            continue;
        r->active = true;
        m->pending++;
        if (eng_ask_outbound(m->so->eng, m->q.tenant, qr->addr, on_decision,
                             r) != 0)
            on_decision(r, IPC_EUNAVAIL, NULL);
    }
    if (--m->pending == 0)
        dispatch_msg(m);
}

/* Takes one locked message whose record q is fresh and due. */
static void take_msg(struct smtpout *so, int fd, struct queue_msg *q,
                     int64_t now)
{
    struct smtpout_msg *m = calloc(1, sizeof(*m));

    if (!m || !(m->r = calloc(q->nrcpt, sizeof(*m->r)))) {
        free(m);
        queue_msg_free(q);
        queue_unlock(fd);
        return;
    }
    m->so = so;
    m->fd = fd;
    m->q = *q;
    m->next = so->inflight;
    so->inflight = m;
    so->ninflight++;
    so->inflight_bytes += m->q.size;
    if (load_body(m) != 0) {
        log_err("id=%s body unreadable error=\"%s\"", m->q.id, strerror(errno));
        for (size_t i = 0; i < m->q.nrcpt; i++) {
            m->r[i].active = m->q.rcpt[i].state == RCPT_PENDING &&
                             m->q.rcpt[i].next_try <= now;
            smtpout_rcpt_result(m, i, RES_DEFER,
                                "451 4.3.0 queue file unreadable", NULL, NULL);
        }
        finish_msg(m);
        return;
    }
    ask_engine(m, now);
}

/* Scan callback: takes the message id if it is due and free. */
static int consider(const char *id, void *ctx)
{
    struct smtpout *so = ctx;
    struct queue_msg q;
    int64_t now = time(NULL);
    int fd, rc;

    if (so->stopping || so->ninflight >= SMTPOUT_INFLIGHT_MAX ||
        so->inflight_bytes >= SMTPOUT_INFLIGHT_BYTES)
        return 1;
    if (queue_read(so->q, id, &q) != QUEUE_OK)
        return 0;
    rc = queue_next_due(&q) <= now;
    queue_msg_free(&q);
    if (!rc || queue_lock(so->q, id, false, &fd) != QUEUE_OK)
        return 0;
    /* Re-read under the lock: another sender may just have finished. */
    if (queue_read(so->q, id, &q) != QUEUE_OK) {
        queue_unlock(fd);
        return 0;
    }
    if (queue_next_due(&q) > now) {
        queue_msg_free(&q);
        queue_unlock(fd);
        return 0;
    }
    take_msg(so, fd, &q, now);
    return 0;
}

static void on_scan(uv_timer_t *t)
{
    struct smtpout *so = t->data;

    if (so->stopping)
        return;
    queue_foreach(so->q, consider, so);
    if (++so->scans % 600 == 1)
        queue_sweep(so->q);
}

void smtpout_kick(struct smtpout *so)
{
    if (!so->stopping)
        uv_timer_start(&so->scan, on_scan, 50, 1000);
}

/* ---- start and stop ---- */

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void smtpout_check_stop(struct smtpout *so)
{
    if (!so->stopping || so->closed || so->ninflight > 0 ||
        smtpout_conns_busy(so))
        return;
    so->closed = true;
    smtpout_conns_free(so);
    if (so->eng) {
        eng_client_close(so->eng);
        so->eng = NULL;
    }
    if (so->dns) {
        dns_close(so->dns);
        so->dns = NULL;
    }
    uv_timer_stop(&so->scan);
    uv_close((uv_handle_t *)&so->scan, NULL);
    uv_close((uv_handle_t *)&so->sigterm, NULL);
    uv_close((uv_handle_t *)&so->sigint, NULL);
    uv_close((uv_handle_t *)&so->sighup, NULL);
}

static void on_grace(uv_timer_t *t)
{
    log_warn("id=- shutdown grace over: exiting with messages in flight "
             "(they stay queued and are retried)");
    exit(0);
}

static void on_stop_signal(uv_signal_t *h, int signum)
{
    struct smtpout *so = h->data;
    static uv_timer_t grace;

    if (so->stopping)
        return;
    so->stopping = true;
    log_info("id=- stopping signal=%d inflight=%zu", signum, so->ninflight);
    smtpout_submit_stop(so);
    uv_timer_init(so->loop, &grace);
    uv_timer_start(&grace, on_grace, so->cfg->shutdown_grace * 1000, 0);
    uv_unref((uv_handle_t *)&grace);
    smtpout_check_stop(so);
}

/* The client TLS context: priority string and trust store. */
static struct tlsio_ctx *make_tls(const struct tg_config *cfg)
{
    struct tlsio_client_opts o = {.priority = cfg->tls_priority,
                                  .ca_file = cfg->tls_ca_file};
    struct tlsio_ctx *ctx = NULL;
    char err[256];

    if (tlsio_ctx_client(&o, &ctx, err, sizeof(err)) != 0) {
        log_err("id=- tls-config failed error=\"%s\"", err);
        return NULL;
    }
    return ctx;
}

static void on_hup(uv_signal_t *h, int signum)
{
    struct smtpout *so = h->data;
    struct tlsio_ctx *ctx = make_tls(so->cfg);

    if (!ctx)
        return;
    tlsio_ctx_unref(so->tls);
    so->tls = ctx;
    log_info("id=- reloaded tls trust store");
}

/* Opens the queue, engine client, resolver and TLS context. */
static void start(struct smtpout *so)
{
    const struct tg_config *cfg = so->cfg;
    char err[256];
    int rc;

    if ((rc = queue_open(cfg->queue_dir, &so->q)) != QUEUE_OK)
        log_fatal("id=- queue %s: %s: %s", cfg->queue_dir, queue_strerror(rc),
                  strerror(errno));
    if ((rc = eng_client_open(so->loop, cfg->engine_socket,
                              (unsigned)cfg->engine_timeout_ms, &so->eng)))
        log_fatal("id=- engine client: %s", ipc_strerror(rc));
    if ((rc = dns_open(so->loop, 5000, &so->dns)) != DNS_OK)
        log_fatal("id=- resolver: %s", dns_strerror(rc));
    if (!(so->tls = make_tls(cfg)))
        log_fatal("id=- no TLS client context");
    if (smtpout_submit_start(so, err, sizeof(err)) != 0)
        log_fatal("id=- submission listener: %s", err);

    uv_timer_init(so->loop, &so->scan);
    so->scan.data = so;
    uv_timer_start(&so->scan, on_scan, 0, 1000);
    uv_signal_init(so->loop, &so->sigterm);
    uv_signal_init(so->loop, &so->sigint);
    uv_signal_init(so->loop, &so->sighup);
    so->sigterm.data = so->sigint.data = so->sighup.data = so;
    uv_signal_start(&so->sigterm, on_stop_signal, SIGTERM);
    uv_signal_start(&so->sigint, on_stop_signal, SIGINT);
    uv_signal_start(&so->sighup, on_hup, SIGHUP);
}

static enum log_level level_of(const char *name)
{
    if (strcmp(name, "debug") == 0)
        return LOG_LVL_DEBUG;
    if (strcmp(name, "warn") == 0)
        return LOG_LVL_WARN;
    return strcmp(name, "error") == 0 ? LOG_LVL_ERR : LOG_LVL_INFO;
}

int main(int argc, char **argv)
{
    static struct tg_config cfg;
    struct smtpout so = {.cfg = &cfg};
    char err[512];

    sigset_t stops;

    /* A stop signal during start-up waits until its handler is in place,
     * so that the process still stops cleanly (exit 0). */
    sigemptyset(&stops);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGINT);
    sigprocmask(SIG_BLOCK, &stops, NULL);
    signal(SIGPIPE, SIG_IGN);
    log_init("tlsgate-smtpout", 0);
    if (cfg_from_args(&cfg, &argc, argv, err, sizeof(err)) != 0)
        log_fatal("id=- bad settings: %s", err);
    if (argc > 1)
        log_fatal("id=- unknown argument: %s", argv[1]);
    log_init("tlsgate-smtpout", strcmp(cfg.log_target, "syslog") == 0);
    log_set_level(level_of(cfg.log_level));

    so.loop = uv_default_loop();
    start(&so);
    sigprocmask(SIG_UNBLOCK, &stops, NULL);
    log_info("id=- started queue=%s engine=%s", cfg.queue_dir,
             cfg.engine_socket);
    uv_run(so.loop, UV_RUN_DEFAULT);

    uv_walk(so.loop, close_walk, NULL);
    uv_run(so.loop, UV_RUN_DEFAULT);
    tlsio_ctx_unref(so.tls);
    queue_close(so.q);
    uv_loop_close(so.loop);
    log_info("id=- stopped");
    return 0;
}
