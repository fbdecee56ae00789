/*
 * The durable outbound queue (layout and crash guarantees: docs/queue.md).
 * One immutable body file per message (msg/<id>) and one status record
 * (env/<id>) holding the envelope, per-recipient state and history. Every
 * file is written to tmp/, fsynced, renamed into place, and its folder
 * fsynced. A sender owns a message while it holds flock() on its body.
 */
#ifndef TLSGATE_QUEUE_H
#define TLSGATE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "store.h"

#define QUEUE_ID_MAX    32
#define QUEUE_REPLY_MAX 256
#define QUEUE_HIST_MAX  64   /* history lines kept per message */
#define QUEUE_RCPT_MAX  1000 /* recipients per message */

enum queue_error {
    QUEUE_OK = 0,
    QUEUE_EIO = -1,      /* a system call failed (errno kept) */
    QUEUE_ENOENT = -2,   /* no such message */
    QUEUE_ECORRUPT = -3, /* a status record that does not parse */
    QUEUE_ELOCKED = -4,  /* another process holds the message */
    QUEUE_EINVAL = -5,   /* bad id, address or record content */
    QUEUE_ENOMEM = -6,
};

enum rcpt_state { RCPT_PENDING, RCPT_SENT, RCPT_BOUNCED };

struct queue_rcpt {
    char addr[ADDR_MAX + 3];
    enum rcpt_state state;
    unsigned attempts;           /* delivery attempts made so far */
    int64_t next_try;            /* unix time; 0 = now */
    char reply[QUEUE_REPLY_MAX]; /* last reply or reason */
};

struct queue_msg {
    char id[QUEUE_ID_MAX];
    char tenant[TENANT_MAX + 1];
    char sender[ADDR_MAX + 3];      /* "" = null sender (a DSN) */
    char tenant_from[ADDR_MAX + 3]; /* tenant's default From at enqueue */
    int64_t created;                /* unix time of acceptance */
    uint64_t size;                  /* body bytes */
    size_t nrcpt;
    struct queue_rcpt *rcpt;
    size_t nhist;
    char *hist[QUEUE_HIST_MAX]; /* "time rcpt-index status relay ..." */
};

struct queue;

/* Opens (creating when missing) the queue folder dir and its tmp/, msg/
 * and env/ sub-folders. Returns QUEUE_OK or QUEUE_EIO. */
int queue_open(const char *dir, struct queue **out);
/* Opens an existing queue folder and creates nothing (for tools that only
 * read or change queued messages). Returns QUEUE_OK, QUEUE_ENOENT when the
 * folder or a sub-folder is missing, or QUEUE_EIO (errno set). */
int queue_open_existing(const char *dir, struct queue **out);
void queue_close(struct queue *q);
const char *queue_dir(const struct queue *q);

/* A fresh, unique, file-name-safe queue id ([0-9A-Z]) into id. */
void queue_new_id(char *id, size_t idlen);
/* True when id is a syntactically valid queue id. */
bool queue_id_ok(const char *id);

/*
 * Accepts a message: writes body (len bytes, CRLF lines) and the envelope
 * m (tenant, sender, tenant_from, recipients; id and created are filled in
 * here) durably. On QUEUE_OK the message survives any crash.
 */
int queue_submit(struct queue *q, struct queue_msg *m, const char *body,
                 size_t len);

/* Reads the status record of id into m (free with queue_msg_free).
 * Returns QUEUE_OK, QUEUE_ENOENT, QUEUE_ECORRUPT or QUEUE_EIO. */
int queue_read(struct queue *q, const char *id, struct queue_msg *m);
/* Rewrites the status record of m->id atomically and durably. */
int queue_save(struct queue *q, const struct queue_msg *m);
void queue_msg_free(struct queue_msg *m);

/* Adds one history line (formatted like printf), dropping the oldest
 * beyond QUEUE_HIST_MAX. Returns QUEUE_OK or QUEUE_ENOMEM. */
int queue_hist_add(struct queue_msg *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Takes the message for delivery or change: flock on its body. wait false:
 * QUEUE_ELOCKED at once when another process holds it. On QUEUE_OK *fd is
 * the open body (read it from offset 0); queue_unlock closes it.
 */
int queue_lock(struct queue *q, const char *id, bool wait, int *fd);
void queue_unlock(int fd);

/* Removes a message (status record first, then body). Caller holds the
 * lock. Returns QUEUE_OK or QUEUE_EIO. */
int queue_remove(struct queue *q, const char *id);

/* Calls cb for each message id in env/ (unsorted); stops when cb returns
 * non-zero and returns that value; QUEUE_EIO when env/ is unreadable. */
int queue_foreach(struct queue *q, int (*cb)(const char *id, void *ctx),
                  void *ctx);

/* Removes bodies left without a status record by a crash during
 * submission, once they are an hour old (no submission is that slow). */
void queue_sweep(struct queue *q);

/* Delay before retry number attempts (>= 1): retry_min doubled per
 * attempt, at most retry_max. */
int64_t queue_retry_delay(unsigned attempts, uint64_t retry_min,
                          uint64_t retry_max);
/* Earliest next_try of m's pending recipients; INT64_MAX when none. */
int64_t queue_next_due(const struct queue_msg *m);
/* True when every recipient is sent or bounced. */
bool queue_done(const struct queue_msg *m);

/* True when no DSN may be sent to sender: null sender, noreply@,
 * no-reply@, mailer-daemon@ (any case), or the tenant's default From. */
bool queue_is_noreply(const char *sender, const char *tenant_from);

/*
 * Queues an RFC 3464 delivery status notification (multipart/report) to
 * m->sender for the recipients whose index is in idx (n of them), quoting
 * the headers of the body read from body_fd. hostname names the reporting
 * MTA. Fills dsn_id. The caller checks queue_is_noreply first.
 */
int queue_bounce(struct queue *q, const struct queue_msg *m, const size_t *idx,
                 size_t n, int body_fd, const char *hostname, char *dsn_id,
                 size_t idlen);

const char *queue_state_name(enum rcpt_state s);
/* One short sentence for an enum queue_error. */
const char *queue_strerror(int err);

#endif
