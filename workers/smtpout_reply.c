#include "smtpout_reply.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void smtpout_reply_init(struct smtp_reply_parser *p)
{
    memset(p, 0, sizeof(*p));
}

bool smtpout_reply_partial(const struct smtp_reply_parser *p)
{
    return p->linelen > 0 || p->cur.nlines > 0 || p->cr;
}

/* "x.y.z" at s with class 2/4/5, subject 0-999, detail 0-999; its length
 * (followed by a space or the end) or 0. */
static size_t enhanced_len(const char *s)
{
    size_t i = 0, digits;

    if (s[0] != '2' && s[0] != '4' && s[0] != '5')
        return 0;
    i = 1;
    for (int part = 0; part < 2; part++) {
        if (s[i++] != '.')
            return 0;
        for (digits = 0; isdigit((unsigned char)s[i]); i++)
            digits++;
        if (digits == 0 || digits > 3)
            return 0;
    }
    return s[i] == ' ' || s[i] == '\0' ? i : 0;
}

/* Appends one line's text to the reply being built. */
static int add_text(struct smtp_reply_parser *p, const char *text)
{
    size_t n = strlen(text), need = n + (p->cur.nlines ? 1 : 0);

    if (p->textlen + need >= sizeof(p->cur.text))
        return REPLY_ETOOLONG;
    if (p->cur.nlines)
        p->cur.text[p->textlen++] = '\n';
    memcpy(p->cur.text + p->textlen, text, n);
    p->textlen += n;
    p->cur.text[p->textlen] = '\0';
    return 0;
}

/* Checks one complete line (NUL-terminated, no line end); 1 when it was
 * the last line of the reply, 0 for more, or an error. */
static int take_line(struct smtp_reply_parser *p)
{
    char *l = p->line;
    int code;
    size_t e;

    if (p->linelen < 3 || !isdigit((unsigned char)l[0]) ||
        !isdigit((unsigned char)l[1]) || !isdigit((unsigned char)l[2]))
        return REPLY_ESYNTAX;
    if (l[3] != '\0' && l[3] != ' ' && l[3] != '-')
        return REPLY_ESYNTAX;
    code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
    if (code < 200 || code > 559 || l[1] > '5')
        return REPLY_ECODE;
    if (p->cur.nlines && code != p->cur.code)
        return REPLY_ECODE;
    if (p->cur.nlines >= SMTP_REPLY_LINES_MAX)
        return REPLY_ETOOLONG;
    p->cur.code = code;

    const char *text = l[3] ? l + 4 : l + 3;
    if (p->cur.nlines == 0 && (e = enhanced_len(text)) > 0 &&
        e < sizeof(p->cur.enhanced) && text[0] == l[0]) {
        memcpy(p->cur.enhanced, text, e);
        p->cur.enhanced[e] = '\0';
    }
    if (add_text(p, text) != 0)
        return REPLY_ETOOLONG;
    p->cur.nlines++;
    return l[3] == '-' ? 0 : 1;
}

/* Hands the finished reply out and resets for the next one. */
static void finish(struct smtp_reply_parser *p, struct smtp_reply *out)
{
    *out = p->cur;
    memset(&p->cur, 0, sizeof(p->cur));
    p->textlen = 0;
}

/* One byte of a line: stored, or an error. */
static int put_byte(struct smtp_reply_parser *p, unsigned char c)
{
    if (c == '\0' || (c < 0x20 && c != '\t') || c == 0x7f)
        return REPLY_EBYTE;
    if (p->linelen + 3 > SMTP_REPLY_LINE_MAX)
        return REPLY_ETOOLONG;
    p->line[p->linelen++] = (char)c;
    return 0;
}

int smtpout_reply_feed(struct smtp_reply_parser *p, const char *buf, size_t len,
                       size_t *used, struct smtp_reply *out)
{
    size_t i;
    int rc;

    for (i = 0; i < len && p->err == 0; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (p->cr && c != '\n') {
            p->err = REPLY_EBYTE;
            break;
        }
        if (c == '\r') {
            p->cr = true;
            continue;
        }
        if (c != '\n') {
            p->err = put_byte(p, c);
            continue;
        }
        p->cr = false;
        p->line[p->linelen] = '\0';
        rc = take_line(p);
        p->linelen = 0;
        if (rc < 0)
            p->err = rc;
        else if (rc == 1) {
            finish(p, out);
            *used = i + 1;
            return 1;
        }
    }
    *used = i;
    return p->err;
}

/* True when line (up to '\n' or NUL) starts with keyword kw followed by
 * the end or a space. */
static bool is_keyword(const char *line, const char *kw, const char **arg)
{
    size_t n = strlen(kw);

    if (strncasecmp(line, kw, n) != 0)
        return false;
    if (line[n] != '\0' && line[n] != '\n' && line[n] != ' ')
        return false;
    *arg = line[n] == ' ' ? line + n + 1 : NULL;
    return true;
}

unsigned smtpout_ehlo_caps(const struct smtp_reply *r, unsigned long *size)
{
    static const struct {
        const char *kw;
        unsigned bit;
    } kws[] = {{"STARTTLS", EHLO_STARTTLS},
               {"PIPELINING", EHLO_PIPELINING},
               {"8BITMIME", EHLO_8BITMIME},
               {"SIZE", EHLO_SIZE},
               {"ENHANCEDSTATUSCODES", EHLO_ENHANCEDCODE},
               {"SMTPUTF8", EHLO_SMTPUTF8}};
    const char *line = strchr(r->text, '\n'), *arg;
    unsigned caps = 0;

    *size = 0;
    if (r->code != 250)
        return 0;
    for (; line; line = strchr(line, '\n')) {
        line++;
        for (size_t k = 0; k < sizeof(kws) / sizeof(kws[0]); k++) {
            if (!is_keyword(line, kws[k].kw, &arg))
                continue;
            caps |= kws[k].bit;
            if (kws[k].bit == EHLO_SIZE && arg && isdigit((unsigned char)*arg))
                *size = strtoul(arg, NULL, 10);
        }
    }
    return caps;
}

const char *smtpout_reply_strerror(int err)
{
    switch (err) {
    case REPLY_ESYNTAX:
        return "malformed reply line";
    case REPLY_ECODE:
        return "reply code out of range or changed inside a reply";
    case REPLY_ETOOLONG:
        return "reply line or reply too long";
    case REPLY_EBYTE:
        return "forbidden byte in a reply (NUL, bare CR, control)";
    }
    return "unknown reply error";
}
