/*
 * tlsgate-smtpin, the inbound receiver: shared state of one process (the
 * server) and of one SMTP connection (the session). Behaviour, limits and
 * replies are described in docs/inbound.md.
 */
#ifndef TLSGATE_SMTPIN_H
#define TLSGATE_SMTPIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "engine_client.h"
#include "policy.h"
#include "smtpin_maildir.h"
#include "smtpin_parse.h"
#include "supfds.h"
#include "tlsio.h"

#define SMTPIN_INBUF (64 * 1024) /* DATA bytes handled per step */
#define SMTPIN_READ_ROOM                                                       \
    (17 * 1024)                    /* free input room needed to read:          \
                                      one TLS record of plaintext */
#define SMTPIN_OUT_MAX (64 * 1024) /* queued replies before reads pause */

struct smtpin_session;

struct smtpin_server {
    uv_loop_t *loop;
    const struct tg_config *cfg;
    struct eng_client *eng;
    struct tlsio_ctx *tls; /* NULL: STARTTLS not offered (no certificate) */
    uv_tcp_t listeners[SUP_MAX_LISTENERS];
    int nlisteners;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t grace;
    uv_work_t sweep; /* stale tmp/ files, once at start */
    unsigned long swept;
    bool stopping;
    bool grace_over;
    unsigned nsessions;
    struct smtpin_session *sessions; /* doubly linked */
    unsigned long seq;
};

/* One RCPT lookup in flight; answers are used in command order. */
struct smtpin_call {
    struct smtpin_session *s;
    bool done;
    int err;
    struct inbound_decision d;
    char rcpt[ADDR_MAX + 3];
};

/* One recipient that got 250: accepted or to be discarded. */
struct smtpin_rcpt {
    char address[ADDR_MAX + 3];
    struct inbound_decision d;
};

enum smtpin_mode {
    SM_CMD,       /* reading commands */
    SM_ENGINE,    /* RCPT lookups in flight; only more RCPTs may run */
    SM_HANDSHAKE, /* TLS handshake after STARTTLS */
    SM_DATA,      /* reading message data */
    SM_DISK,      /* the message is being synced on a work thread */
    SM_CLOSING,   /* last replies going out, then close */
};

struct smtpin_session {
    struct smtpin_server *srv;
    struct smtpin_session *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t idle; /* command, data and closing timeouts */
    uv_timer_t life; /* session_timeout */
    uv_work_t work;  /* the Maildir commit */
    int handles;     /* open libuv handles */
    int refs;        /* engine calls and work in flight */
    bool torn_down;  /* handles closed or closing */
    enum smtpin_mode mode;
    char id[32];
    char peer[64]; /* client address, text */
    unsigned peer_port;
    const char *end_reason;

    /* TLS */
    struct tlsio *tls;
    bool tls_active;
    struct tlsio_report tlsrep;

    /* SMTP state, reset by STARTTLS */
    bool greeted, esmtp;
    char helo[SMTPIN_ARG_MAX];
    bool has_mail;
    char sender[ADDR_MAX + 3];
    char msgid[40];
    struct smtpin_rcpt *rcpts;
    size_t nrcpts, rcpts_cap;
    struct smtpin_call **calls; /* lookups in flight, in command order */
    size_t ncalls, calls_cap;
    unsigned errors;
    unsigned messages;

    /* DATA */
    struct smtpin_data data;
    bool delivering; /* dlv is open */
    struct smtpin_delivery dlv;
    int commit_err;

    /* input: raw plaintext bytes not processed yet; in_cap is
     * max_line_length + SMTPIN_READ_ROOM, so a whole line always fits */
    char *in;
    size_t in_len, in_cap;
    bool discarding;
    bool reading;
    bool peer_gone;
    bool bye_sent;

    /* output: replies not written yet */
    char *out;
    size_t out_len, out_cap;
    size_t writes_pending;
};

/* ---- smtpin_session.c ---- */

/* Accepts one connection from listener (or refuses it past the limits). */
void smtpin_accept(struct smtpin_server *srv, uv_stream_t *listener);

/* Graceful stop: 421 to every session not mid-delivery, then close. */
void smtpin_session_shutdown(struct smtpin_session *s);

/* Engine calls and work callbacks hold a reference while in flight. */
void smtpin_session_unref(struct smtpin_session *s);

/* Starts TLS after "220 Ready to start TLS": input left over is dropped. */
void smtpin_starttls(struct smtpin_session *s);

/* Ends the session after the queued replies (reason for the log). */
void smtpin_end(struct smtpin_session *s, const char *reason);

/* Continues processing buffered input (after a pause). */
void smtpin_resume(struct smtpin_session *s);

/* Queues one reply line (CRLF added), printf-style. */
void smtpin_reply(struct smtpin_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Writes out every queued reply in one write. */
void smtpin_flush(struct smtpin_session *s);

/* Queued reply bytes plus bytes in flight. */
size_t smtpin_out_pending(const struct smtpin_session *s);

/* ---- smtpin_cmd.c ---- */

/* Runs one command line; may pause the session (engine, TLS). */
void smtpin_command(struct smtpin_session *s, const char *line, size_t len);

/* While lookups are in flight: true when line is a RCPT that may be asked
 * at once (well-formed, under max_recipients counting those in flight);
 * anything else waits until every answer is in. */
bool smtpin_rcpt_joins(struct smtpin_session *s, const char *line, size_t len);

/* Frees the lookups a closed session still holds (all answered). */
void smtpin_calls_free(struct smtpin_session *s);

/* Forgets the envelope (RSET, HELO, after a message). */
void smtpin_reset_envelope(struct smtpin_session *s);

/* Counts a protocol error; past max_errors says 421 and closes. Returns
 * true when the session is closing. */
bool smtpin_error(struct smtpin_session *s);

/* ---- smtpin_message.c ---- */

/* DATA was accepted: opens the delivery and says 354 (or refuses). */
void smtpin_data_begin(struct smtpin_session *s);

/* Feeds DATA bytes; returns how many of buf were consumed. */
size_t smtpin_data_input(struct smtpin_session *s, const char *buf, size_t len);

/* Drops an unfinished message (peer gone, timeout). */
void smtpin_message_abort(struct smtpin_session *s);

/* Sends one delivery event for rcpt with status and reply text. */
void smtpin_event(struct smtpin_session *s, const char *address,
                  const struct inbound_decision *d, const char *status,
                  const char *reply);

/* A new unique id: prefix + time + pid + sequence. */
void smtpin_new_id(struct smtpin_server *srv, char *buf, size_t n,
                   const char *prefix);

#endif
