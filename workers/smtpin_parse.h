/*
 * The inbound receiver's pure parsers: SMTP command lines and the DATA
 * stream. No I/O and no allocation, so they are unit-tested and fuzzed
 * directly (tests/fuzz/smtpin_cmd, tests/fuzz/smtpin_data).
 */
#ifndef TLSGATE_SMTPIN_PARSE_H
#define TLSGATE_SMTPIN_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "addr.h"

enum smtpin_verb {
    SV_UNKNOWN,
    SV_HELO,
    SV_EHLO,
    SV_MAIL,
    SV_RCPT,
    SV_DATA,
    SV_RSET,
    SV_NOOP,
    SV_QUIT,
    SV_VRFY,
    SV_HELP,
    SV_STARTTLS,
};

enum smtpin_parse_error {
    SP_OK = 0,
    SP_EBADCHAR = -1, /* NUL, CR or another control byte: 500 5.5.2 */
    SP_EUNKNOWN = -2, /* not a command we know: 500 5.5.1 */
    SP_ESYNTAX = -3,  /* a known command, bad arguments: 501 5.5.4 */
    SP_EPATH = -4,    /* malformed path or address: 501 5.1.3 / 5.1.7 */
    SP_EPARAM = -5,   /* unknown MAIL/RCPT parameter: 555 5.5.4 */
    SP_ETOOLONG = -6, /* a path or argument over its limit: 501 5.5.4 */
};

#define SMTPIN_ARG_MAX 512 /* HELO/EHLO name, VRFY/HELP argument */

struct smtpin_cmd {
    enum smtpin_verb verb;
    char arg[SMTPIN_ARG_MAX]; /* HELO/EHLO domain, VRFY text */
    struct addr path;         /* MAIL and RCPT; full "" for <> */
    bool has_size;            /* MAIL SIZE= given */
    unsigned long size;       /* its value (ULONG_MAX when it overflows) */
    bool body_8bit;           /* MAIL BODY=8BITMIME */
};

/*
 * Parses one command line of len bytes, without its line ending (the
 * caller strips "\r\n" or "\n"). Verbs are case-insensitive. MAIL and RCPT
 * take "FROM:<path>" / "TO:<path>" (one optional space after the colon
 * tolerated), then space-separated parameters: MAIL knows SIZE= and
 * BODY=7BIT|8BITMIME, RCPT knows none. Returns SP_OK with out filled, or a
 * negative enum smtpin_parse_error (out->verb still says which command it
 * was when known).
 */
int smtpin_parse_cmd(const char *line, size_t len, struct smtpin_cmd *out);

/* The SMTP reply ("500 5.5.2 ...") for a parse error, without CRLF. */
const char *smtpin_parse_reply(int err, enum smtpin_verb verb);

/* ---- command lines out of a byte stream ---- */

enum smtpin_line_status {
    SL_MORE,    /* no full line yet: everything was consumed */
    SL_LINE,    /* a line: line/len set (line ending stripped) */
    SL_TOOLONG, /* a line over the limit ended: reply 500 5.5.2 */
};

/*
 * Finds the next command line in buf (len bytes). A line ends at LF (a CR
 * before it is stripped). max is the longest line, ending included. A
 * line with no LF within max bytes is consumed and dropped up to its LF
 * (*discarding set meanwhile, so memory stays flat) and then reported as
 * SL_TOOLONG. *used says how many bytes of buf were consumed; for
 * SL_MORE with *discarding false nothing is consumed (keep the bytes).
 */
enum smtpin_line_status smtpin_next_line(const char *buf, size_t len,
                                         size_t max, bool *discarding,
                                         const char **line, size_t *linelen,
                                         size_t *used);

/* ---- the DATA stream ---- */

enum smtpin_data_status {
    SD_MORE, /* all input consumed, the message goes on */
    SD_END,  /* CRLF.CRLF seen: *used stops right after it */
    SD_BARE, /* a bare CR or LF: refuse, then close */
};

struct smtpin_data {
    size_t max_line; /* longest line, CRLF included */
    size_t max_size; /* largest message, as stored */
    int state;       /* private */
    size_t line_len; /* bytes of the current line so far */
    size_t size;     /* bytes of the message so far, as stored */
    bool too_long;   /* a line was over max_line */
    bool too_big;    /* the message is over max_size */
};

/* Starts a message. */
void smtpin_data_init(struct smtpin_data *d, size_t max_line, size_t max_size);

/*
 * Feeds len bytes of DATA. Writes the message as stored into out (room for
 * len bytes always suffices): dot-stuffing removed, CRLF turned into LF.
 * Once the message is too long or too big nothing more is written (the
 * flags say why) but the stream is still followed to its end. *used is how
 * many input bytes were consumed and *outlen how many written. The
 * terminating ".\r\n" line is not part of the message.
 */
enum smtpin_data_status smtpin_data_feed(struct smtpin_data *d, const char *in,
                                         size_t len, char *out, size_t *outlen,
                                         size_t *used);

#endif
