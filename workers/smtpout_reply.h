/*
 * SMTP reply parser for the outbound client (RFC 5321 4.2, enhanced codes
 * RFC 2034/3463): incremental, strict and bounded. Bytes go in as they
 * arrive; complete replies come out one at a time.
 */
#ifndef TLSGATE_SMTPOUT_REPLY_H
#define TLSGATE_SMTPOUT_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#define SMTP_REPLY_LINE_MAX  2048 /* octets per line, CRLF included */
#define SMTP_REPLY_LINES_MAX 64   /* lines per reply */
#define SMTP_REPLY_TEXT_MAX  4096 /* text kept, lines joined by '\n' */

enum smtpout_reply_error {
    REPLY_ESYNTAX = -1,  /* a line that is not "DDD[ -]text" */
    REPLY_ECODE = -2,    /* code out of range, or changed mid-reply */
    REPLY_ETOOLONG = -3, /* a line or the reply exceeds its bound */
    REPLY_EBYTE = -4,    /* NUL, bare CR or other control byte */
};

struct smtp_reply {
    int code;          /* 200..559 */
    char enhanced[16]; /* "4.7.5" from the first line, "" when none */
    char text[SMTP_REPLY_TEXT_MAX]; /* every line's text, '\n' between */
    size_t nlines;
};

struct smtp_reply_parser {
    struct smtp_reply cur;
    char line[SMTP_REPLY_LINE_MAX];
    size_t linelen;
    size_t textlen;
    bool cr; /* the last byte was a CR: only LF may follow */
    int err; /* sticky: once broken, every feed returns it */
};

void smtpout_reply_init(struct smtp_reply_parser *p);

/*
 * Feeds up to len bytes. Returns 1 when a reply is complete (copied into
 * out; *used bytes were consumed, the rest belong to the next reply), 0
 * when every byte was consumed and more are needed, or a negative enum
 * smtpout_reply_error (sticky). Lines end in CRLF; a lone LF is accepted
 * as a line end, a CR not followed by LF is an error.
 */
int smtpout_reply_feed(struct smtp_reply_parser *p, const char *buf, size_t len,
                       size_t *used, struct smtp_reply *out);

/* True when the parser holds part of a reply (bytes not yet answered). */
bool smtpout_reply_partial(const struct smtp_reply_parser *p);

/* EHLO keywords the client uses. */
#define EHLO_STARTTLS     0x01
#define EHLO_PIPELINING   0x02
#define EHLO_8BITMIME     0x04
#define EHLO_SIZE         0x08
#define EHLO_ENHANCEDCODE 0x10
#define EHLO_SMTPUTF8     0x20

/* Capabilities of a 250 EHLO reply (lines after the first); *size gets
 * the SIZE limit (0 when none or unlimited). */
unsigned smtpout_ehlo_caps(const struct smtp_reply *r, unsigned long *size);

/* One short sentence for an enum smtpout_reply_error. */
const char *smtpout_reply_strerror(int err);

#endif
