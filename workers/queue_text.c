#include "queue_text.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int queue_text_crlf(const char *in, size_t len, bool dot_ends, char **out,
                    size_t *outlen)
{
    /* Worst case every byte is a lone CR or LF and grows to two. */
    char *buf = malloc(2 * len + 3);
    size_t o = 0, line_start = 0, i = 0;

    if (!buf)
        return QTEXT_ENOMEM;
    while (i < len) {
        char c = in[i++];
        if (c != '\r' && c != '\n') {
            buf[o++] = c;
            if (o - line_start > QUEUE_TEXT_LINE_MAX) {
                free(buf);
                return QTEXT_ELINE;
            }
            continue;
        }
        if (c == '\r' && i < len && in[i] == '\n')
            i++;
        if (dot_ends && o - line_start == 1 && buf[line_start] == '.') {
            o = line_start;
            break;
        }
        buf[o++] = '\r';
        buf[o++] = '\n';
        line_start = o;
    }
    if (o > line_start) {
        buf[o++] = '\r';
        buf[o++] = '\n';
    }
    *out = buf;
    *outlen = o;
    return QTEXT_OK;
}

size_t queue_text_header_len(const char *msg, size_t len)
{
    size_t i = 0;

    while (i + 1 < len) {
        const char *eol;
        if (msg[i] == '\r' && msg[i + 1] == '\n')
            return i;
        eol = memmem(msg + i, len - i, "\r\n", 2);
        if (!eol)
            return len;
        i = (size_t)(eol - msg) + 2;
    }
    return i;
}

/* Length of the field starting at msg[i] (its first line and every
 * continuation line, CRLFs included), within hlen. */
static size_t field_len(const char *msg, size_t hlen, size_t i)
{
    size_t j = i;

    do {
        const char *eol = memmem(msg + j, hlen - j, "\r\n", 2);
        j = eol ? (size_t)(eol - msg) + 2 : hlen;
    } while (j < hlen && (msg[j] == ' ' || msg[j] == '\t'));
    return j - i;
}

/* True when the field at msg[i] is called name. */
static bool field_is(const char *msg, size_t hlen, size_t i, const char *name)
{
    size_t n = strlen(name);

    return i + n < hlen && strncasecmp(msg + i, name, n) == 0 &&
           msg[i + n] == ':';
}

bool queue_text_has_header(const char *msg, size_t hlen, const char *name)
{
    for (size_t i = 0; i < hlen; i += field_len(msg, hlen, i))
        if (field_is(msg, hlen, i, name))
            return true;
    return false;
}

/* The unfolded value of the field at msg[i] of length flen, malloc'd. */
static char *field_value(const char *msg, size_t i, size_t flen, size_t namelen)
{
    char *v = malloc(flen + 1);
    size_t o = 0;

    if (!v)
        return NULL;
    for (size_t j = i + namelen + 1; j < i + flen; j++)
        if (msg[j] != '\r' && msg[j] != '\n')
            v[o++] = msg[j];
    v[o] = '\0';
    return v;
}

int queue_text_each_header(const char *msg, size_t hlen, const char *name,
                           int (*cb)(const char *value, void *ctx), void *ctx)
{
    size_t flen;
    int rc = 0;

    for (size_t i = 0; i < hlen && rc == 0; i += flen) {
        flen = field_len(msg, hlen, i);
        if (!field_is(msg, hlen, i, name))
            continue;
        char *v = field_value(msg, i, flen, strlen(name));
        if (!v)
            return QTEXT_ENOMEM;
        rc = cb(v, ctx);
        free(v);
    }
    return rc;
}

size_t queue_text_strip_header(char *msg, size_t len, const char *name)
{
    size_t hlen = queue_text_header_len(msg, len);
    size_t i = 0;

    while (i < hlen) {
        size_t flen = field_len(msg, hlen, i);
        if (!field_is(msg, hlen, i, name)) {
            i += flen;
            continue;
        }
        memmove(msg + i, msg + i + flen, len - i - flen);
        len -= flen;
        hlen -= flen;
    }
    return len;
}

/* Skips a comment "(...)" (nested, with quoted pairs) starting at *p. */
static int skip_comment(const char **p)
{
    int depth = 0;

    do {
        if (**p == '\0')
            return -1;
        if (**p == '\\' && (*p)[1])
            (*p)++;
        else if (**p == '(')
            depth++;
        else if (**p == ')')
            depth--;
        (*p)++;
    } while (depth > 0);
    return 0;
}

/* Emits the addr-spec of one list element (text, comments removed). */
static int emit_element(char *el, int (*cb)(const char *, void *), void *ctx)
{
    char *lt = strchr(el, '<'), *start = el, *end;

    if (lt) {
        start = lt + 1;
        end = strchr(start, '>');
        if (!end)
            return QTEXT_ESYNTAX;
        *end = '\0';
    }
    while (isspace((unsigned char)*start))
        start++;
    end = start + strlen(start);
    while (end > start && isspace((unsigned char)end[-1]))
        *--end = '\0';
    if (*start == '\0')
        return lt ? QTEXT_ESYNTAX : QTEXT_OK;
    return cb(start, ctx);
}

int queue_text_addresses(const char *value,
                         int (*cb)(const char *addr, void *ctx), void *ctx)
{
    char *el = malloc(strlen(value) + 1);
    size_t o = 0;
    bool quoted = false, angle = false;
    int rc = QTEXT_OK;

    if (!el)
        return QTEXT_ENOMEM;
    for (const char *p = value; rc == QTEXT_OK; p++) {
        if (!quoted && *p == '(') {
            if (skip_comment(&p) != 0) {
                rc = QTEXT_ESYNTAX;
                break;
            }
            p--;
            continue;
        }
        if (*p == '\0' || (!quoted && !angle && (*p == ',' || *p == ';'))) {
            el[o] = '\0';
            rc = emit_element(el, cb, ctx);
            o = 0;
            if (*p == '\0')
                break;
            continue;
        }
        if (!quoted && !angle && *p == ':') {
            o = 0; /* a group name: drop it */
            continue;
        }
        if (*p == '"' && !angle)
            quoted = !quoted;
        else if (!quoted && (*p == '<' || *p == '>'))
            angle = *p == '<';
        el[o++] = *p;
    }
    free(el);
    return quoted || angle ? QTEXT_ESYNTAX : rc;
}

/* A Message-ID local part: time, pid and randomness. */
static void message_id_local(char *buf, size_t n)
{
    struct timeval tv;
    unsigned r = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

    if (fd >= 0) {
        if (read(fd, &r, sizeof(r)) != sizeof(r))
            r = 0;
        close(fd);
    }
    gettimeofday(&tv, NULL);
    snprintf(buf, n, "%lx.%lx.%x.%x", (unsigned long)tv.tv_sec,
             (unsigned long)tv.tv_usec, (unsigned)getpid(), r);
}

int queue_text_complete(char **msg, size_t *len, const char *received,
                        const char *from, const char *fullname,
                        const char *msgid_domain)
{
    size_t hlen = queue_text_header_len(*msg, *len), plen = 0;
    char *pre = NULL, date[64], local[64], *out;
    FILE *f = open_memstream(&pre, &plen);
    time_t now = time(NULL);
    struct tm tm;

    if (!f)
        return QTEXT_ENOMEM;
    if (received)
        fprintf(f, "%s\r\n", received);
    if (!queue_text_has_header(*msg, hlen, "From")) {
        if (fullname && fullname[0])
            fprintf(f, "From: \"%s\" <%s>\r\n", fullname, from);
        else
            fprintf(f, "From: %s\r\n", from);
    }
    if (!queue_text_has_header(*msg, hlen, "Date")) {
        localtime_r(&now, &tm);
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
        fprintf(f, "Date: %s\r\n", date);
    }
    if (!queue_text_has_header(*msg, hlen, "Message-ID")) {
        message_id_local(local, sizeof(local));
        fprintf(f, "Message-ID: <%s@%s>\r\n", local, msgid_domain);
    }
    /* A message with no header at all still needs the empty line. */
    if (hlen == 0 && !(*len >= 2 && memcmp(*msg, "\r\n", 2) == 0))
        fputs("\r\n", f);
    if (fclose(f) != 0 || !(out = malloc(plen + *len + 1))) {
        free(pre);
        return QTEXT_ENOMEM;
    }
    memcpy(out, pre, plen);
    memcpy(out + plen, *msg, *len);
    free(pre);
    free(*msg);
    *msg = out;
    *len += plen;
    return QTEXT_OK;
}
