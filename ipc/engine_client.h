/*
 * Clients of the policy engine (tlsgate-engine) over its Unix socket. The
 * protocol (MessagePack-RPC in length-prefixed frames) is in docs/ipc.md.
 *
 * Two clients share this header:
 *  - eng_client: asynchronous, on a libuv loop, for the workers. Many
 *    requests in flight on one connection, matched by id; a timeout per
 *    request; reconnects by itself with a growing delay.
 *  - eng_sync: blocking, one request at a time, for tools and tests.
 *
 * Errors are negative ints: an enum store_error forwarded from the engine
 * (STORE_ENOTFOUND, STORE_EINVAL, ...) or an enum ipc_error below (all
 * below -100, so they never clash). ipc_strerror() names any of them.
 * Workers treat any error other than STORE_ENOTFOUND and STORE_EINVAL as
 * "engine unavailable" (inbound 451 4.3.0, outbound defer).
 *
 * A process using either client must ignore SIGPIPE: writing to an engine
 * that has just died would otherwise kill it.
 */
#ifndef TLSGATE_ENGINE_CLIENT_H
#define TLSGATE_ENGINE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "policy.h"
#include "store.h"

enum ipc_error {
    IPC_ETIMEDOUT = -101, /* no answer within the request's timeout */
    IPC_EUNAVAIL = -102,  /* not connected, or the connection dropped */
    IPC_EPROTO = -103,    /* malformed message, either direction */
    IPC_ECANCELED = -104, /* the client was closed with the call pending */
    IPC_ENOMEM = -105,    /* out of memory */
    IPC_EINVAL = -106,    /* bad argument (NULL, string too long) */
    IPC_ETOOBIG = -107,   /* a message over the frame limit (64 KiB) */
    IPC_EFULL = -108,     /* a bounded queue is full; item dropped */
    IPC_EMETHOD = -109,   /* the engine does not know the method */
    IPC_ENOSTORE = -110,  /* the engine has no policy store (yet) */
    IPC_EVERSION = -111,  /* the engine speaks another protocol version */
};

/* One short sentence for an enum ipc_error or an enum store_error. */
const char *ipc_strerror(int err);

/* ---- events: delivery and import outcomes, kept by the engine ---- */

enum eng_event_kind { EV_DELIVERY, EV_IMPORT };

struct eng_event {
    enum eng_event_kind kind;
    int64_t time;          /* seconds since the epoch */
    char id[64];           /* queue id (delivery) or message id (import) */
    char tenant[64];       /* "" when none matched */
    char peer_domain[254]; /* recipient domain outbound, sender inbound */
    char address[321];     /* recipient outbound, sender inbound */
    char mailbox[321];     /* inbound: the monitored mailbox */
    char relay[300];       /* "host[addr]:port" or "" */
    char
        status[16]; /* sent, deferred, bounced, accepted, rejected, discarded */
    char reply[256];       /* the SMTP reply, as text */
    char tls_protocol[32]; /* "" when no TLS */
    char tls_cipher[96];
    bool tls_verified;
    char level[16]; /* policy level name, e.g. "encrypt" */
    char rule[320]; /* the rule that chose it */
    uint64_t generation;
    /* Outbound detail for reports (docs/operator-tls.md); "" when none. */
    char tls_failure[40];   /* RFC 8460 result type: starttls-not-supported,
                               certificate-host-mismatch, ... */
    char mx_host[256];      /* the host tried (MX or route host) */
    char mx_ip[48];         /* its address */
    char src_ip[48];        /* the sender's own address on that connection */
    char shadow_level[16];  /* the shadow policy's level, "" without one */
    char shadow_result[16]; /* "pass" or "would-defer" */
};

/* ---- the asynchronous client (libuv) ---- */

struct eng_client;

/*
 * Creates a client on loop for the engine at socket_path and starts
 * connecting in the background (it never fails because the engine is
 * down: it keeps retrying with a growing delay, up to one second). On each
 * new connection it pings the engine; an engine with another protocol
 * version is dropped (pending calls fail with IPC_EVERSION) and retried.
 * timeout_ms bounds every request (cfg->engine_timeout_ms).
 * Returns 0, IPC_EINVAL (path too long for a Unix socket) or IPC_ENOMEM.
 */
int eng_client_open(uv_loop_t *loop, const char *socket_path,
                    unsigned timeout_ms, struct eng_client **out);

/*
 * Closes the client: pending calls get IPC_ECANCELED (from a later loop
 * turn), queued events are dropped, the handles are closed. Safe to call
 * from inside a callback. The loop must run for the memory to be freed.
 */
void eng_client_close(struct eng_client *c);

/*
 * Each eng_ask_* sends one request. On 0, cb is called exactly once,
 * never from inside the eng_ask_* call itself, with err 0 and the answer,
 * or err != 0 and a NULL answer: IPC_ETIMEDOUT, IPC_EUNAVAIL (not
 * connected: the call fails at once while the engine is known to be down,
 * or waits at most its timeout while a connection is being made; or the
 * connection dropped), IPC_ECANCELED, IPC_EPROTO, or the engine's error
 * (STORE_ENOTFOUND, STORE_EINVAL, STORE_EFULL, IPC_ENOSTORE, ...).
 * A nonzero return (IPC_EINVAL: an argument too long; IPC_ENOMEM;
 * IPC_ECANCELED: client closing) means cb will never be called.
 */
typedef void (*eng_inbound_cb)(void *ctx, int err,
                               const struct inbound_decision *d);
int eng_ask_inbound(struct eng_client *c, const char *sender, const char *rcpt,
                    bool tls, eng_inbound_cb cb, void *ctx);

typedef void (*eng_outbound_cb)(void *ctx, int err,
                                const struct outbound_decision *d);
int eng_ask_outbound(struct eng_client *c, const char *tenant, const char *rcpt,
                     eng_outbound_cb cb, void *ctx);

typedef void (*eng_tenant_cb)(void *ctx, int err, const struct tenant_info *t);
int eng_ask_tenant_for_sender(struct eng_client *c, const char *sender,
                              eng_tenant_cb cb, void *ctx);

/* host is NUL-terminated and valid only during the callback. */
typedef void (*eng_route_cb)(void *ctx, int err, const char *host,
                             unsigned port);
int eng_ask_route(struct eng_client *c, const char *domain, eng_route_cb cb,
                  void *ctx);

/* version is the engine's IPC_PROTO_VERSION. */
typedef void (*eng_ping_cb)(void *ctx, int err, unsigned version,
                            uint64_t generation);
int eng_ask_ping(struct eng_client *c, eng_ping_cb cb, void *ctx);

/*
 * Queues an event (a notification: no reply) to be sent when connected.
 * The queue is bounded (ENG_EVENT_QUEUE_MAX); when full the event is
 * dropped, counted and a warning logged. Events written to a connection
 * that then drops are lost. Returns 0, IPC_EFULL (dropped), IPC_EINVAL.
 */
#define ENG_EVENT_QUEUE_MAX 4096
int eng_send_event(struct eng_client *c, const struct eng_event *ev);

/* True while connected to the engine. */
bool eng_client_connected(const struct eng_client *c);
/* The policy generation of the newest answer received (0 before any). */
uint64_t eng_client_generation(const struct eng_client *c);
/* Events dropped so far because the queue was full. */
uint64_t eng_client_events_dropped(const struct eng_client *c);

/* ---- the blocking client (tools and tests) ---- */

struct eng_sync;

/* Engine statistics (the "stats" method); latencies are in microseconds,
 * measured inside the engine from reading a request to writing its reply. */
struct eng_stats {
    unsigned version;
    uint64_t generation;
    bool store_open; /* false: answering IPC_ENOSTORE */
    uint64_t uptime_s;
    uint64_t connections;       /* open now */
    uint64_t connections_total; /* accepted since start */
    uint64_t requests;          /* all methods */
    uint64_t req_ping, req_outbound, req_inbound, req_tenant_for_sender,
        req_route, req_stats;
    uint64_t errors;     /* error replies sent */
    uint64_t bad_frames; /* connections closed for broken framing */
    uint64_t batches;    /* reads answered (one transaction each) */
    uint64_t latency_p50_us, latency_p99_us, latency_max_us;
    uint64_t events_received, events_stored, events_dropped, events_pruned;
};

/*
 * Connects to the engine at path; timeout_ms bounds the connect and each
 * later call. Returns 0, IPC_EUNAVAIL (no engine), IPC_ETIMEDOUT,
 * IPC_EINVAL or IPC_ENOMEM.
 */
int eng_sync_open(const char *path, unsigned timeout_ms, struct eng_sync **out);
void eng_sync_close(struct eng_sync *s);

/*
 * Each call sends one request and waits for its answer. Returns 0, the
 * engine's error (see eng_ask_*), IPC_ETIMEDOUT, IPC_EUNAVAIL (connection
 * lost: the eng_sync is then unusable, close it), IPC_EPROTO or
 * IPC_EINVAL. On error, *out is unspecified.
 */
int eng_sync_ping(struct eng_sync *s, unsigned *version, uint64_t *generation);
int eng_sync_outbound(struct eng_sync *s, const char *tenant, const char *rcpt,
                      struct outbound_decision *out);
int eng_sync_inbound(struct eng_sync *s, const char *sender, const char *rcpt,
                     bool tls, struct inbound_decision *out);
/* generation may be NULL. */
int eng_sync_tenant_for_sender(struct eng_sync *s, const char *sender,
                               struct tenant_info *out, uint64_t *generation);
int eng_sync_route(struct eng_sync *s, const char *domain, char *host,
                   size_t hostlen, unsigned *port, uint64_t *generation);
int eng_sync_stats(struct eng_sync *s, struct eng_stats *out);
/* Sends an event notification (no answer is awaited). */
int eng_sync_event(struct eng_sync *s, const struct eng_event *ev);

#endif
