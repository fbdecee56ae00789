/*
 * tlsgate-smtpout internals, shared by its files: smtpout.c (start-up,
 * queue scan, policy decisions, results), smtpout_conn.c (destinations and
 * the SMTP client on tlsio) and smtpout_submit.c (submission listener).
 */
#ifndef TLSGATE_SMTPOUT_H
#define TLSGATE_SMTPOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "dns.h"
#include "engine_client.h"
#include "policy.h"
#include "queue.h"
#include "tlsio.h"

#define SMTPOUT_INFLIGHT_MAX   256 /* messages held by one process at once */
#define SMTPOUT_INFLIGHT_BYTES (256UL << 20) /* their bodies, in memory */

/* What one recipient's attempt came to. */
enum smtpout_result { RES_NONE, RES_SENT, RES_DEFER, RES_BOUNCE };

/* The TLS outcome of a connection, for the log and the events. */
struct smtpout_tls {
    char protocol[32]; /* "" when no TLS */
    char cipher[96];
    bool verified;
    bool fallback; /* level may, TLS not used: logged as such */
    /* For reports and the shadow policy (docs/operator-tls.md). */
    char failure[40];  /* RFC 8460 result type of a TLS failure, or "" */
    char mx_host[256]; /* the host tried */
    char mx_ip[48];    /* its address */
    char src_ip[48];   /* our address on the connection */
    bool chain_ok;     /* the chain verified (when TLS was up) */
    bool name_ok;      /* the certificate matched the MX host */
    bool domain_ok;    /* it matched the recipient domain */
};

struct smtpout_msg;

struct smtpout_rcpt {
    struct smtpout_msg *m; /* back pointers, for engine callbacks */
    size_t idx;
    bool active;          /* attempted in this round */
    char route_host[256]; /* route override, when routed */
    unsigned route_port;
    bool routed;
    struct outbound_decision d;
    enum smtpout_result result;
    char reply[QUEUE_REPLY_MAX];
    char relay[300];
    struct smtpout_tls tls;
};

struct smtpout_msg {
    struct smtpout *so;
    struct queue_msg q;
    int fd; /* lock and body */
    char *body;
    size_t len;
    bool eightbit;          /* the body has bytes above 127 */
    struct smtpout_rcpt *r; /* q.nrcpt of them */
    int pending;            /* engine answers and jobs outstanding */
    struct smtpout_msg *next;
};

/* A part of a message for one destination: recipients of one level. */
struct smtpout_job {
    struct smtpout_msg *m;
    size_t *idx; /* recipient indices */
    size_t n;
    struct smtpout_job *next;
};

struct smtpout_dest;

struct smtpout {
    const struct tg_config *cfg;
    uv_loop_t *loop;
    struct queue *q;
    struct eng_client *eng;
    struct dns_resolver *dns;
    struct tlsio_ctx *tls;
    uv_timer_t scan;
    uv_signal_t sigterm, sigint, sighup;
    struct smtpout_msg *inflight;
    size_t ninflight;
    uint64_t inflight_bytes; /* body bytes held (read into memory) */
    struct smtpout_dest *dests;
    bool stopping;
    bool closed; /* handles closed, the loop is ending */
    uint64_t conn_seq;
    uint64_t scans; /* queue scans so far (orphans swept every 600) */
    struct smtpout_submit *submit;
    uint64_t retry_min_override; /* 0: cfg */
};

/* ---- smtpout.c ---- */

/* Records the outcome of one recipient of a job (sets result, reply,
 * relay, tls) and, when the job's message has nothing outstanding any
 * more, finishes it. reply is the SMTP reply text "451 4.7.5 ...". */
void smtpout_rcpt_result(struct smtpout_msg *m, size_t idx,
                         enum smtpout_result res, const char *reply,
                         const char *relay, const struct smtpout_tls *tls);
/* A job is over (all its recipients have results): frees it and lets the
 * message finish when it was the last. */
void smtpout_job_done(struct smtpout_job *j);
/* When stopping and nothing is held any more, closes every handle so
 * that the loop ends. */
void smtpout_check_stop(struct smtpout *so);
/* Starts a queue scan soon (new mail was queued). */
void smtpout_kick(struct smtpout *so);

/* ---- smtpout_conn.c ---- */

/* Queues job for the destination (next hop host:port from a route, or
 * the MX of domain when host is NULL) and level. Jobs sharing a
 * destination share connections, up to cfg->max_per_destination at once
 * and cfg->max_per_connection messages per connection. */
void smtpout_dispatch(struct smtpout *so, struct smtpout_job *j,
                      const char *domain, const char *host, unsigned port,
                      enum tls_level level);
/* True while any destination has a job or a connection. */
bool smtpout_conns_busy(const struct smtpout *so);
/* Frees idle destinations (at exit). */
void smtpout_conns_free(struct smtpout *so);

/* ---- smtpout_submit.c ---- */

struct smtpout_submit;
/* Starts the submission listener(s): inherited "submission" sockets, or
 * binds cfg->submission_listen. Empty list: none. Returns 0 or -1 with a
 * message in err. */
int smtpout_submit_start(struct smtpout *so, char *err, size_t errlen);
/* Stops accepting; sessions in progress are closed. */
void smtpout_submit_stop(struct smtpout *so);

#endif
