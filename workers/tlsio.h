/*
 * TLS over libuv: one GnuTLS session driven over a connected uv_tcp_t, as
 * server (the answer to STARTTLS) or as client (STARTTLS to a remote MX).
 *
 * Model. A struct tlsio_ctx holds what many sessions share (credentials,
 * priority string, ticket key, trust store); it is reference counted so a
 * SIGHUP can swap in a new one while older sessions finish on the old one.
 * A struct tlsio is one session. Once started it owns reading and writing
 * on the TCP stream: ciphertext is pulled from libuv reads into a bounded
 * buffer and pushed out with uv_write; the caller sees only plaintext.
 *
 * While a tlsio is attached, tcp->data points to the tlsio (libuv gives read
 * callbacks only the stream); tlsio_free puts the caller's value back.
 *
 * Callbacks are never called from inside the tlsio_* call that caused
 * them (always from a later libuv callback). After tlsio_free no callback of
 * that session is ever called. A callback may call tlsio_free (or any other
 * tlsio_* function) itself.
 *
 * Bytes that arrived on the stream before tlsio_start (for example bytes
 * sent after "STARTTLS" in the same packet) are the caller's business: the
 * caller must discard them (SPEC: both sides forget everything before the
 * handshake); tlsio_start stops any read the caller had running on tcp.
 *
 * Errors are negative enum tlsio_error values; tlsio_strerror names them.
 */
#ifndef TLSGATE_TLSIO_H
#define TLSGATE_TLSIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <gnutls/gnutls.h>
#include <uv.h>

enum tlsio_error {
    TLSIO_OK = 0,
    TLSIO_EOF = -301,        /* the peer closed (close_notify, or TCP FIN
                                without it: see tlsio_last_error) */
    TLSIO_ETIMEDOUT = -302,  /* handshake not done within its timeout */
    TLSIO_EHANDSHAKE = -303, /* handshake failed (alert, bad message...) */
    TLSIO_EVERIFY = -304,    /* peer certificate not verified and
                                require_verified was set */
    TLSIO_EIO = -305,        /* TCP read or write error */
    TLSIO_ETLS = -306,       /* record layer error after the handshake */
    TLSIO_ECONFIG = -307,    /* bad priority string, unreadable cert/key */
    TLSIO_ENOMEM = -308,
    TLSIO_EINVAL = -309,    /* wrong call for the state or role */
    TLSIO_ECANCELED = -310, /* a write that tlsio_free or an error ended */
};

/* One short sentence for an enum tlsio_error (or "unknown error"). */
const char *tlsio_strerror(int err);

/* ---- shared context ---- */

struct tlsio_ctx;

struct tlsio_server_opts {
    const char *cert_file; /* PEM chain, required */
    const char *key_file;  /* PEM key, required */
    const char *priority;  /* GnuTLS priority string; NULL: the default */
    bool tickets;          /* issue session tickets for resumption */
    /* File holding the ticket key, shared by every process that names it
     * (so a ticket from one receiver resumes on another). Created (0600,
     * atomically) when missing. NULL or "": a random key per context. */
    const char *ticket_key_file;
};

struct tlsio_client_opts {
    const char *priority;  /* GnuTLS priority string; NULL: the default */
    const char *ca_file;   /* PEM CA bundle; NULL or "": system trust */
    const char *cert_file; /* optional client certificate (PEM) */
    const char *key_file;  /* its key; both or neither */
};

/*
 * Creates a server context: loads cert/key and the priority string and
 * prepares the ticket key. Returns 0 and *out (one reference), or
 * TLSIO_ECONFIG / TLSIO_ENOMEM with a message in err.
 */
int tlsio_ctx_server(const struct tlsio_server_opts *o, struct tlsio_ctx **out,
                     char *err, size_t errlen);

/*
 * Creates a client context: trust store (ca_file or the system's), optional
 * client certificate, priority string. Returns 0 and *out (one reference),
 * or TLSIO_ECONFIG / TLSIO_ENOMEM with a message in err.
 */
int tlsio_ctx_client(const struct tlsio_client_opts *o, struct tlsio_ctx **out,
                     char *err, size_t errlen);

/* Reference counting: each tlsio holds one on its ctx while it lives. */
void tlsio_ctx_ref(struct tlsio_ctx *ctx);
void tlsio_ctx_unref(struct tlsio_ctx *ctx);

/* ---- one session ---- */

struct tlsio;

struct tlsio_opts {
    unsigned handshake_timeout_ms; /* 0: no timeout */
    /* Client: name sent as SNI (NULL: none). */
    const char *server_name;
    /* Client: the peer certificate's names are checked against this name
     * (NULL: the chain only; the report then has name_ok = false). Key
     * purpose TLS server authentication is always required of the chain. */
    const char *verify_name;
    /* Client: fail the handshake with TLSIO_EVERIFY when the peer
     * certificate does not verify (chain and verify_name). Otherwise the
     * handshake succeeds and the caller reads the report. */
    bool require_verified;
    /* Client: session data from tlsio_session_data to resume (or NULL). */
    const gnutls_datum_t *resume;
};

/* The handshake finished: status 0 or a negative enum tlsio_error. On
 * failure the caller should tlsio_free and close the TCP handle. */
typedef void (*tlsio_handshake_cb)(struct tlsio *t, int status, void *arg);

/* Plaintext arrived (n > 0 bytes at buf, valid during the call only), or
 * the stream ended: n is TLSIO_EOF, TLSIO_ETLS or TLSIO_EIO (buf NULL).
 * After an error no more data is delivered. */
typedef void (*tlsio_read_cb)(struct tlsio *t, const char *buf, ssize_t n,
                              void *arg);

/* A tlsio_write finished: status 0 (handed to the kernel), TLSIO_EIO or
 * TLSIO_ECANCELED. */
typedef void (*tlsio_write_cb)(struct tlsio *t, int status, void *arg);

/* tlsio_bye finished: status 0 when close_notify went out, else an
 * error. The TCP handle is still open: the caller closes it. */
typedef void (*tlsio_bye_cb)(struct tlsio *t, int status, void *arg);

/*
 * Starts a session on tcp (connected, owned by the caller, which keeps it
 * open until after tlsio_free). server: true for the STARTTLS answerer.
 * Stops any read running on tcp, starts the handshake and its timer, and
 * calls cb once when it ends. arg is passed to every callback.
 * Returns 0 and *out, or TLSIO_EINVAL / TLSIO_ENOMEM / TLSIO_ECONFIG.
 */
int tlsio_start(struct tlsio_ctx *ctx, uv_tcp_t *tcp, bool server,
                const struct tlsio_opts *o, tlsio_handshake_cb cb, void *arg,
                struct tlsio **out);

/*
 * After a successful handshake: delivers plaintext to cb until
 * tlsio_read_stop, an error or EOF. Plaintext already decrypted is
 * delivered from the next loop iteration. Returns 0 or TLSIO_EINVAL.
 */
int tlsio_read_start(struct tlsio *t, tlsio_read_cb cb);

/* Stops delivering plaintext until the next tlsio_read_start; nothing is
 * lost. The socket is still read until one TLS record (18 KiB) waits. */
void tlsio_read_stop(struct tlsio *t);

/*
 * Encrypts len bytes (copied; len > 0) and queues them in order, then
 * calls cb (may be NULL) once they are handed to the kernel. Called from
 * inside a tlsio callback, the bytes go out at the end of that callback's
 * pass, in one write with the handshake's or other replies' bytes. Returns 0,
 * TLSIO_EINVAL (len 0, no handshake yet, or after an error or bye),
 * TLSIO_ETLS or TLSIO_ENOMEM; on error cb is not called.
 */
int tlsio_write(struct tlsio *t, const void *buf, size_t len, tlsio_write_cb cb,
                void *arg);

/* Bytes queued by tlsio_write and not yet written (for back-pressure). */
size_t tlsio_write_queue_size(const struct tlsio *t);

/*
 * Clean end: sends close_notify (after everything queued) and calls cb
 * once it is written or failed; does not wait for the peer's. Stops
 * reading. If the session never completed its handshake, or already
 * failed, cb gets TLSIO_EINVAL (from a later loop iteration as always).
 * The caller then frees.
 */
void tlsio_bye(struct tlsio *t, tlsio_bye_cb cb, void *arg);

/* Ends the session at once (no close_notify), stops its timers and reads,
 * restores tcp->data, drops the ctx reference. Pending write callbacks are
 * not called. The TCP handle stays open for the caller to uv_close. */
void tlsio_free(struct tlsio *t);

/* ---- what was negotiated ---- */

struct tlsio_report {
    char protocol[32];      /* "TLS1.3", "TLS1.2" */
    char cipher[96];        /* IANA suite, "TLS_AES_256_GCM_SHA384" */
    char kx[48];            /* key exchange, "ECDHE-ECDSA" ("" under TLS 1.3
                               where the suite does not name one) */
    char group[32];         /* "X25519", "SECP256R1", "" when none */
    bool resumed;           /* the session was resumed (ticket or id) */
    bool peer_cert;         /* the peer presented a certificate */
    bool chain_ok;          /* chain verifies to a trusted CA, in validity,
                               purpose TLS server (client role only) */
    bool name_ok;           /* the certificate matches verify_name */
    bool cert_verified;     /* chain_ok && name_ok */
    char verify_error[192]; /* why not verified; "" when verified */
    char subject[256];      /* peer certificate subject DN, "" if none */
    char issuer[256];       /* its issuer DN */
    char names[512];        /* subjectAltName dNSNames, comma separated */
    int64_t not_before;     /* validity, Unix time; 0 when no cert */
    int64_t not_after;
};

/* Fills r after a successful handshake. Returns 0 or TLSIO_EINVAL. */
int tlsio_report(const struct tlsio *t, struct tlsio_report *r);

/* Whether the peer certificate also matches name (for levels that accept
 * one of several names, e.g. "secure"). False when there is no cert. */
bool tlsio_peer_name_matches(const struct tlsio *t, const char *name);

/* Client: session data for a later tlsio_opts.resume. Under TLS 1.3 the
 * ticket arrives after the handshake, so ask after the first reply was
 * read. Returns 0 and data (free with gnutls_free(data->data)), or
 * TLSIO_EINVAL / TLSIO_ENOMEM. */
int tlsio_session_data(const struct tlsio *t, gnutls_datum_t *data);

/* The GnuTLS session, for anything this API does not cover. */
gnutls_session_t tlsio_gnutls(const struct tlsio *t);

/* The text of the last GnuTLS error of this session ("" when none), for
 * logs: e.g. "The TLS connection was non-properly terminated." */
const char *tlsio_last_error(const struct tlsio *t);

#endif
