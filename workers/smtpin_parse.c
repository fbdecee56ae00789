#include "smtpin_parse.h"

#include <ctype.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    enum smtpin_verb verb;
} verbs[] = {
    {"HELO", SV_HELO}, {"EHLO", SV_EHLO},         {"MAIL", SV_MAIL},
    {"RCPT", SV_RCPT}, {"DATA", SV_DATA},         {"RSET", SV_RSET},
    {"NOOP", SV_NOOP}, {"QUIT", SV_QUIT},         {"VRFY", SV_VRFY},
    {"HELP", SV_HELP}, {"STARTTLS", SV_STARTTLS},
};

/* Any byte below 0x20 (tab tolerated) or DEL. */
static bool has_control(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return true;
    }
    return false;
}

static enum smtpin_verb find_verb(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strlen(verbs[i].name) == len &&
            strncasecmp(verbs[i].name, s, len) == 0)
            return verbs[i].verb;
    return SV_UNKNOWN;
}

/* Copies an argument (leading/trailing blanks dropped) into out->arg. */
static int take_arg(const char *s, size_t len, struct smtpin_cmd *out)
{
    while (len > 0 && (*s == ' ' || *s == '\t'))
        s++, len--;
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len >= sizeof(out->arg))
        return SP_ETOOLONG;
    memcpy(out->arg, s, len);
    out->arg[len] = '\0';
    return SP_OK;
}

/* HELO/EHLO need a name: one token of printable characters. */
static int parse_hello(struct smtpin_cmd *out)
{
    if (!out->arg[0])
        return SP_ESYNTAX;
    for (const char *p = out->arg; *p; p++)
        if (*p == ' ' || *p == '\t')
            return SP_ESYNTAX;
    return SP_OK;
}

/* Length of "<...>" at s (quotes and backslash escapes honoured), or 0. */
static size_t path_len(const char *s, size_t len)
{
    bool quoted = false;

    if (len == 0 || s[0] != '<')
        return 0;
    for (size_t i = 1; i < len; i++) {
        if (s[i] == '\\' && i + 1 < len) {
            i++;
            continue;
        }
        if (s[i] == '"')
            quoted = !quoted;
        else if (s[i] == '>' && !quoted)
            return i + 1;
    }
    return 0;
}

/* SIZE=digits; an absurd value saturates at ULONG_MAX (too big anyway). */
static int param_size(const char *v, size_t len, struct smtpin_cmd *out)
{
    unsigned long n = 0;

    if (len == 0 || len > 20)
        return SP_ESYNTAX;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)v[i]))
            return SP_ESYNTAX;
        if (n > (ULONG_MAX - 9) / 10)
            n = ULONG_MAX;
        else
            n = n * 10 + (unsigned long)(v[i] - '0');
    }
    out->has_size = true;
    out->size = n;
    return SP_OK;
}

/* One "KEY=VALUE" MAIL parameter. */
static int mail_param(const char *p, size_t len, struct smtpin_cmd *out)
{
    if (len > 5 && strncasecmp(p, "SIZE=", 5) == 0)
        return param_size(p + 5, len - 5, out);
    if (len == 9 && strncasecmp(p, "BODY=7BIT", 9) == 0)
        return SP_OK;
    if (len == 13 && strncasecmp(p, "BODY=8BITMIME", 13) == 0) {
        out->body_8bit = true;
        return SP_OK;
    }
    return SP_EPARAM;
}

/* Parameters after a path: space separated, each for MAIL only. */
static int parse_params(const char *s, size_t len, struct smtpin_cmd *out)
{
    size_t i = 0;

    while (i < len) {
        size_t start, n;
        int r;

        while (i < len && s[i] == ' ')
            i++;
        start = i;
        while (i < len && s[i] != ' ')
            i++;
        n = i - start;
        if (n == 0)
            break;
        if (out->verb != SV_MAIL)
            return SP_EPARAM;
        r = mail_param(s + start, n, out);
        if (r != SP_OK)
            return r;
    }
    return SP_OK;
}

/* "FROM:<path> params" or "TO:<path> params" after the verb. */
static int parse_envelope(const char *s, size_t len, struct smtpin_cmd *out)
{
    const char *key = out->verb == SV_MAIL ? "FROM:" : "TO:";
    size_t klen = strlen(key), plen;

    while (len > 0 && *s == ' ')
        s++, len--;
    if (len < klen || strncasecmp(s, key, klen) != 0)
        return SP_ESYNTAX;
    s += klen, len -= klen;
    if (len > 0 && *s == ' ')
        s++, len--;
    plen = path_len(s, len);
    if (plen == 0)
        return SP_EPATH;
    if (plen > ADDR_MAX + 260)
        return SP_ETOOLONG;
    if (addr_parse_path(s, plen, &out->path) != ADDR_OK)
        return SP_EPATH;
    if (out->verb == SV_RCPT && out->path.full[0] == '\0')
        return SP_EPATH;
    if (plen < len && s[plen] != ' ')
        return SP_ESYNTAX;
    return parse_params(s + plen, len - plen, out);
}

int smtpin_parse_cmd(const char *line, size_t len, struct smtpin_cmd *out)
{
    size_t vlen = 0;
    int r;

    memset(out, 0, sizeof(*out));
    while (vlen < len && line[vlen] != ' ')
        vlen++;
    out->verb = find_verb(line, vlen);
    if (has_control(line, len))
        return SP_EBADCHAR;
    if (out->verb == SV_UNKNOWN)
        return SP_EUNKNOWN;

    switch (out->verb) {
    case SV_MAIL:
    case SV_RCPT:
        return parse_envelope(line + vlen, len - vlen, out);
    case SV_DATA:
    case SV_RSET:
    case SV_QUIT:
    case SV_STARTTLS:
        return vlen == len ? SP_OK : SP_ESYNTAX;
    case SV_NOOP:
    case SV_HELP:
        return SP_OK; /* any argument is ignored (RFC 5321 4.1.1.9) */
    default:
        break;
    }
    r = take_arg(line + vlen, len - vlen, out);
    if (r == SP_OK && (out->verb == SV_HELO || out->verb == SV_EHLO))
        r = parse_hello(out);
    if (r == SP_OK && out->verb == SV_VRFY && !out->arg[0])
        r = SP_ESYNTAX;
    return r;
}

const char *smtpin_parse_reply(int err, enum smtpin_verb verb)
{
    switch (err) {
    case SP_EBADCHAR:
        return "500 5.5.2 Control characters in command refused";
    case SP_EUNKNOWN:
        return "500 5.5.1 Command unrecognized";
    case SP_EPATH:
        return verb == SV_MAIL ? "501 5.1.7 Bad sender address syntax"
                               : "501 5.1.3 Bad recipient address syntax";
    case SP_EPARAM:
        return "555 5.5.4 Unsupported parameter";
    case SP_ETOOLONG:
        return "501 5.5.4 Argument too long";
    case SP_ESYNTAX:
    default:
        break;
    }
    switch (verb) {
    case SV_HELO:
    case SV_EHLO:
        return "501 5.5.4 Syntax: EHLO hostname";
    case SV_MAIL:
        return "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]";
    case SV_RCPT:
        return "501 5.5.4 Syntax: RCPT TO:<address>";
    case SV_VRFY:
        return "501 5.5.4 Syntax: VRFY address";
    default:
        return "501 5.5.4 Syntax error, no parameters allowed";
    }
}

enum smtpin_line_status smtpin_next_line(const char *buf, size_t len,
                                         size_t max, bool *discarding,
                                         const char **line, size_t *linelen,
                                         size_t *used)
{
    const char *lf = memchr(buf, '\n', len);
    size_t n;

    if (*discarding) {
        *used = lf ? (size_t)(lf - buf) + 1 : len;
        if (!lf)
            return SL_MORE;
        *discarding = false;
        return SL_TOOLONG;
    }
    if (!lf) {
        *used = 0;
        if (len < max)
            return SL_MORE;
        *discarding = true; /* no LF within max bytes: drop them */
        *used = len;
        return SL_MORE;
    }
    n = (size_t)(lf - buf) + 1;
    *used = n;
    if (n > max)
        return SL_TOOLONG;
    *line = buf;
    *linelen = n - 1;
    if (*linelen > 0 && buf[*linelen - 1] == '\r')
        (*linelen)--;
    return SL_LINE;
}

/* ---- DATA ---- */

enum { DS_BOL, DS_DOT, DS_DOT_CR, DS_MID, DS_CR };

void smtpin_data_init(struct smtpin_data *d, size_t max_line, size_t max_size)
{
    memset(d, 0, sizeof(*d));
    d->max_line = max_line;
    d->max_size = max_size;
    d->state = DS_BOL;
}

/* Appends one stored byte unless the message is already refused. */
static void data_emit(struct smtpin_data *d, char c, char *out, size_t *o)
{
    if (d->too_long || d->too_big)
        return;
    if (d->size + 1 > d->max_size) {
        d->too_big = true;
        return;
    }
    out[(*o)++] = c;
    d->size++;
}

/* Counts a wire byte of the current line against max_line. */
static void data_count(struct smtpin_data *d)
{
    if (++d->line_len > d->max_line)
        d->too_long = true;
}

/* One wire byte: 0 to go on, 1 at the end of the data, -1 for a bare CR
 * or LF. */
static int data_byte(struct smtpin_data *d, char c, char *out, size_t *o)
{
    data_count(d);
    switch (d->state) {
    case DS_BOL:
    case DS_MID:
        if (c == '\n')
            return -1;
        if (c == '.' && d->state == DS_BOL)
            d->state = DS_DOT;
        else if (c == '\r')
            d->state = DS_CR;
        else
            data_emit(d, c, out, o);
        if (d->state == DS_BOL)
            d->state = DS_MID; /* an ordinary first byte */
        return 0;
    case DS_DOT:
        if (c == '\n')
            return -1;
        if (c == '\r') {
            d->state = DS_DOT_CR;
            return 0;
        }
        data_emit(d, c, out, o); /* the stuffed dot is dropped */
        d->state = DS_MID;
        return 0;
    case DS_DOT_CR:
        return c == '\n' ? 1 : -1;
    default: /* DS_CR */
        if (c != '\n')
            return -1;
        data_emit(d, '\n', out, o);
        d->state = DS_BOL;
        d->line_len = 0;
        return 0;
    }
}

enum smtpin_data_status smtpin_data_feed(struct smtpin_data *d, const char *in,
                                         size_t len, char *out, size_t *outlen,
                                         size_t *used)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        int r = data_byte(d, in[i], out, &o);

        if (r != 0) {
            *outlen = o;
            *used = i + 1;
            return r > 0 ? SD_END : SD_BARE;
        }
    }
    *outlen = o;
    *used = len;
    return SD_MORE;
}
