/*
 * Maildir delivery for the inbound receiver. A message is written once,
 * into tmp/ of its first mailbox; commit (run on a libuv work thread,
 * since it syncs) hard-links it into the tmp/ of every other mailbox,
 * fsyncs, renames each into new/ and fsyncs every new/ folder. On any
 * failure every file it made is removed again: a message is in all of
 * its mailboxes' new/ or in none.
 *
 * Paths: mail_root/<tenant>/<local>/{tmp,new,cur}, where "<tenant>/<local>"
 * is the engine decision's mailbox_dir, checked again here.
 */
#ifndef TLSGATE_SMTPIN_MAILDIR_H
#define TLSGATE_SMTPIN_MAILDIR_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

/* True when mdir is "<tenant>/<local>": exactly one '/', a tenant name of
 * [a-z0-9-], a local part of safe dot-atom characters, no "." or ".."
 * component, no leading dot, nothing else. */
bool smtpin_mailbox_dir_ok(const char *mdir);

/*
 * Creates root/mdir and its tmp, new and cur folders (mode 0700) as
 * needed, refusing symbolic links on the way. Writes the Maildir path into
 * path (size n). Returns 0 or a negative errno (EINVAL for a bad mdir).
 */
int smtpin_maildir_make(const char *root, const char *mdir, char *path,
                        size_t n);

/* A unique file name "<time>.<pid>_<seq>.<host>" ('/' and ':' in host
 * written as \057 and \072, as Maildir readers expect). */
void smtpin_maildir_name(char *buf, size_t n, const char *host);

struct smtpin_delivery {
    int fd;         /* the open tmp file of dirs[0] (-1 when closed) */
    char name[256]; /* the file name, the same in every Maildir */
    size_t ndirs;
    char (*dirs)[PATH_MAX]; /* Maildir paths, no duplicates */
    int err;                /* first write error (negative errno), or 0 */
};

/*
 * Opens dirs[0]/tmp/<new name> for writing (0600, O_EXCL). dirs (ndirs
 * paths) is copied. Returns 0 or a negative errno.
 */
int smtpin_delivery_open(struct smtpin_delivery *d, char (*dirs)[PATH_MAX],
                         size_t ndirs, const char *host);

/* Appends len bytes; a failure is kept in d->err and later writes are
 * skipped. Returns d->err. */
int smtpin_delivery_write(struct smtpin_delivery *d, const void *buf,
                          size_t len);

/*
 * Syncs and publishes into every new/ (blocking: call it from a work
 * thread). Returns 0, d->err, or a negative errno; on failure nothing is
 * left in any tmp/ or new/.
 */
int smtpin_delivery_commit(struct smtpin_delivery *d);

/* Drops the message: closes and removes the tmp file (idempotent). */
void smtpin_delivery_abort(struct smtpin_delivery *d);

/* Frees d's memory (after commit or abort). */
void smtpin_delivery_free(struct smtpin_delivery *d);

/* Age after which a file left in tmp/ is stale (the Maildir convention). */
#define SMTPIN_TMP_MAX_AGE (36 * 3600)

/*
 * Removes files older than max_age seconds from every root/<tenant>/<local>
 * /tmp/ (left by a receiver that was killed mid-DATA). Blocking: run it on
 * a work thread. Returns how many files were removed.
 */
unsigned long smtpin_maildir_sweep(const char *root, long max_age);

#endif
