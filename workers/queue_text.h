/*
 * Message text helpers shared by tlsgate-sendmail and the submission
 * listener: line-ending normalisation, header lookup and removal, address
 * lists, and the headers a submitted message must carry.
 */
#ifndef TLSGATE_QUEUE_TEXT_H
#define TLSGATE_QUEUE_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#define QUEUE_TEXT_LINE_MAX 998 /* octets before CRLF (RFC 5322 2.1.1) */

enum queue_text_error {
    QTEXT_OK = 0,
    QTEXT_ENOMEM = -1,
    QTEXT_ELINE = -2,   /* a line longer than QUEUE_TEXT_LINE_MAX */
    QTEXT_ESYNTAX = -3, /* an address list that does not parse */
};

/*
 * Copies len bytes of in into *out (malloc'd, *outlen bytes) with every
 * line ending (LF, CR, CRLF) made CRLF and a final CRLF added when
 * missing. With dot_ends, a line holding only "." ends the message (the
 * sendmail convention without -i). NUL bytes are kept. Returns QTEXT_OK,
 * QTEXT_ENOMEM or QTEXT_ELINE.
 */
int queue_text_crlf(const char *in, size_t len, bool dot_ends, char **out,
                    size_t *outlen);

/* Bytes of the header block of msg (CRLF lines): every header line with
 * its CRLF, without the empty line that ends the block. */
size_t queue_text_header_len(const char *msg, size_t len);

/* True when the header block (hlen bytes) has a field called name. */
bool queue_text_has_header(const char *msg, size_t hlen, const char *name);

/*
 * Calls cb with the unfolded value (NUL-terminated, without the name and
 * colon) of each field called name in the header block. Stops at a
 * non-zero cb return and returns it; QTEXT_ENOMEM on allocation failure.
 */
int queue_text_each_header(const char *msg, size_t hlen, const char *name,
                           int (*cb)(const char *value, void *ctx), void *ctx);

/* Removes every field called name (with its continuation lines) from the
 * header block at the start of msg; returns the new message length. */
size_t queue_text_strip_header(char *msg, size_t len, const char *name);

/*
 * Splits an RFC 5322 address-list value into addr-specs: commas outside
 * quotes, comments and angle brackets separate; "Name <a@b>" gives a@b;
 * group names ("team: a@b, c@d;") are dropped. Calls cb for each.
 * Returns QTEXT_OK, cb's non-zero value, or QTEXT_ESYNTAX.
 */
int queue_text_addresses(const char *value,
                         int (*cb)(const char *addr, void *ctx), void *ctx);

/*
 * Prepends to *msg (malloc'd, *len bytes, replaced on success) the
 * received line (if not NULL) and, when missing from its header block, a
 * From (fullname may be NULL), a Date and a Message-ID in msgid_domain.
 * Returns QTEXT_OK or QTEXT_ENOMEM.
 */
int queue_text_complete(char **msg, size_t *len, const char *received,
                        const char *from, const char *fullname,
                        const char *msgid_domain);

#endif
