/*
 * tlsgate-bench: a load generator for SMTP STARTTLS, bare TLS, whole
 * deliveries and policy engine lookups (bench/README.md, "Handshakes").
 *
 * One libuv loop drives `concurrency` slots; each slot runs one session
 * after another until the session count or the duration is reached. A
 * session is a list of steps (connect, read a reply, send a command, TLS
 * handshake...) over a non-blocking socket watched with uv_poll; GnuTLS
 * reads and writes that socket directly, so the client copies nothing.
 */
#ifndef TLSGATE_BENCH_H
#define TLSGATE_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>
#include <uv.h>

enum bench_mode {
    MODE_STARTTLS,
    MODE_TLS,
    MODE_DELIVER,
    MODE_LOOKUP,
    MODE_PLAIN /* banner, EHLO, QUIT without TLS: the dialogue's own cost */
};

/* Latency phases; PH_SESSION is the whole session (or one lookup). */
enum bench_phase {
    PH_CONNECT,
    PH_BANNER,
    PH_EHLO1, /* the plaintext EHLO before STARTTLS */
    PH_STARTTLS,
    PH_HANDSHAKE,
    PH_EHLO, /* the first reply after the handshake */
    PH_MAIL,
    PH_RCPT,
    PH_DATA,
    PH_BODY, /* message bytes and "." until the 250 */
    PH_QUIT,
    PH_CLOSE, /* until the server's FIN */
    PH_LOOKUP,
    PH_SESSION,
    PH_COUNT
};

enum bench_err {
    ERR_CONNECT, /* connect refused or failed */
    ERR_REPLY,   /* an unexpected SMTP reply code */
    ERR_HANDSHAKE,
    ERR_TLS,     /* a TLS record error after the handshake */
    ERR_EOF,     /* the server closed too early */
    ERR_IO,      /* read or write error */
    ERR_TIMEOUT, /* the session took longer than --timeout */
    ERR_SYNTAX,  /* a reply that is not SMTP */
    ERR_LOOKUP,  /* an engine request failed */
    ERR_COUNT
};

/* Latency samples of one phase, in microseconds. */
struct bench_samples {
    uint32_t *v;
    size_t n, cap;
    bool sorted;
};

struct bench_opts {
    enum bench_mode mode;
    unsigned concurrency;
    uint64_t sessions;     /* total to start; 0: until the duration */
    double duration;       /* seconds; always bounded */
    double timeout;        /* seconds per session */
    double hold;           /* seconds to hold sessions open (RSS runs) */
    unsigned ramp;         /* hold runs: sessions opening at once */
    bool resume;           /* TLS 1.3 tickets */
    bool nodelay;          /* TCP_NODELAY */
    const char *cert_type; /* "ecdsa" or "rsa" */
    const char *priority;  /* full client priority string, or NULL */
    const char *group;     /* key exchange group, "X25519" */
    size_t size;           /* deliver: message bytes */
    const char *host;
    unsigned port;
    const char *helo;
    const char *mail_from;
    const char *rcpt_to;
    const char *engine_socket; /* lookup mode */
    const char *json_path;
    int server_pids[32];
    int nserver_pids;
    const char *server_cgroup;
    const char *label; /* free text copied into the JSON record */
    bool quiet;        /* no progress lines */
};

/* Server resource use read from /proc or a cgroup. */
struct bench_usage {
    double cpu_s; /* utime+stime of the tree (children included) */
    long rss_kib; /* VmRSS of the tree */
    int nproc;    /* processes seen */
    bool ok;
};

struct bench_run;

/* One connection slot: a session runs on it, then the next one. */
struct bench_slot {
    struct bench_run *run;
    uv_poll_t poll;
    int fd;
    bool polling; /* poll handle initialised and not closed */
    int events;   /* events the poll handle watches */
    gnutls_session_t tls;
    gnutls_datum_t ticket; /* from this slot's last session */
    bool new_ticket;       /* this session received a NewSessionTicket */
    int step;              /* index into the mode's step list */
    bool sent;             /* the current step's command went out */
    bool held;             /* idling at the hold point */
    bool active;
    uint64_t t_start, t_step; /* ns, uv_hrtime */
    const char *out;          /* bytes to send */
    size_t out_len, out_off;
    char in[2048]; /* reply being read */
    size_t in_len;
    struct bench_slot *next_waiting; /* ramp queue */
};

struct bench_run {
    struct bench_opts o;
    uv_loop_t *loop;
    uv_timer_t tick, hold_timer;
    uv_signal_t sigint, sigterm;
    gnutls_certificate_credentials_t creds;
    gnutls_priority_t prio;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    struct bench_slot *slots;
    char *message; /* deliver: the DATA body with its final "." */
    size_t message_len;
    uint64_t t0, t_end_ns, deadline_ns;
    uint64_t started, done, handshakes, resumed, failed;
    uint64_t errors[ERR_COUNT];
    char first_error[ERR_COUNT][160];
    struct bench_samples lat[PH_COUNT];
    unsigned active, opening, held, held_count;
    bool stopping, interrupted, hold_measured, finished;
    struct bench_usage before, after, held_usage;
    double client_cpu_s;
    uint64_t last_done;
    void *lookup; /* lookup mode state */
};

/* Names for output. */
const char *bench_phase_name(enum bench_phase p);
const char *bench_err_name(enum bench_err e);

/* Records one latency sample (ns) for a phase. */
void bench_sample(struct bench_run *r, enum bench_phase p, uint64_t ns);

/* Counts an error of a kind, keeping the first message of each kind. */
void bench_error(struct bench_run *r, enum bench_err e, const char *msg);

/* Sorts a phase's samples and returns the q quantile (0..1) in ms. */
double bench_quantile(struct bench_samples *s, double q);

/* Reads CPU and RSS of the --server-pid trees or the --server-cgroup.
 * u->ok is false when none was given or nothing could be read. */
void bench_usage_read(const struct bench_opts *o, struct bench_usage *u);

/* Session engine (tlsgate_bench_sess.c): prepares TLS and the message,
 * starts every slot. Returns 0 or -1 with a message on stderr. */
int bench_sess_setup(struct bench_run *r);
void bench_sess_start_all(struct bench_run *r);
/* Ends every active session now (Ctrl-C, timeouts are per slot). */
void bench_sess_abort_all(struct bench_run *r);
/* Once a second: fails sessions older than --timeout. */
void bench_sess_check_timeouts(struct bench_run *r);
/* Hold runs: sends QUIT on every held session. */
void bench_sess_release_held(struct bench_run *r);
void bench_sess_cleanup(struct bench_run *r);

/* Lookup mode (tlsgate_bench_lookup.c). Returns 0 or -1. */
int bench_lookup_start(struct bench_run *r);
void bench_lookup_stop(struct bench_run *r);
void bench_lookup_free(struct bench_run *r);

/* Output (tlsgate_bench_out.c): the table on stdout, the JSON file. */
void bench_print_table(struct bench_run *r);
int bench_write_json(struct bench_run *r, const char *path);

/* Called by the session and lookup code when a session or request ends;
 * decides whether to start another on the slot. */
bool bench_may_start(struct bench_run *r);
void bench_maybe_finish(struct bench_run *r);

#endif
