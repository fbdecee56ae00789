/*
 * RFC 5321 envelope paths and domains, normalised the one way the policy
 * store compares them.
 */
#include "addr.h"

#include <arpa/inet.h>
#include <idn2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Longest input looked at; anything longer is refused unread. */
#define ADDR_INPUT_MAX 1024

static bool addr_is_atext(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static char addr_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* True when s[0..len) is a dot-string: atoms of atext joined by one '.'. */
static bool addr_is_dot_string(const char *s, size_t len)
{
    if (len == 0 || s[0] == '.' || s[len - 1] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            if (s[i + 1] == '.')
                return false;
        } else if (!addr_is_atext((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

/* Checks one LDH label of an ASCII, lowercased domain. */
static int addr_check_label(const char *s, size_t len)
{
    if (len == 0)
        return ADDR_EDOMAIN;
    if (len > 63)
        return ADDR_ETOOLONG;
    if (s[0] == '-' || s[len - 1] == '-')
        return ADDR_EDOMAIN;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return ADDR_EDOMAIN;
    }
    return ADDR_OK;
}

/* Checks every label of a lowercased ASCII domain; the last label may not
 * be all digits, so that a bare IP address is never taken for a name. */
static int addr_check_labels(const char *d)
{
    const char *label = d;
    bool digits = true;

    for (const char *p = d;; p++) {
        if (*p == '.' || *p == '\0') {
            int rc = addr_check_label(label, (size_t)(p - label));
            if (rc != ADDR_OK)
                return rc;
            if (*p == '\0')
                break;
            label = p + 1;
            digits = true;
        } else if (*p < '0' || *p > '9') {
            digits = false;
        }
    }
    return digits ? ADDR_EDOMAIN : ADDR_OK;
}

/* An address literal: "[1.2.3.4]" or "[IPv6:...]" (tag in any case). The
 * IPv6 text is lowercased; nothing else changes. */
static int addr_norm_literal(const char *in, size_t len, char *out,
                             size_t outlen)
{
    char body[ADDR_DOMAIN_MAX + 1];
    unsigned char bin[16];
    size_t blen = len - 2;

    if (len < 3 || in[len - 1] != ']' || blen >= sizeof(body) || len >= outlen)
        return ADDR_EDOMAIN;
    memcpy(body, in + 1, blen);
    body[blen] = '\0';

    if (inet_pton(AF_INET, body, bin) == 1) {
        memcpy(out, in, len);
        out[len] = '\0';
        return ADDR_OK;
    }
    if (blen > 5 && strncasecmp(body, "IPv6:", 5) == 0 &&
        inet_pton(AF_INET6, body + 5, bin) == 1) {
        memcpy(out, "[IPv6:", 6);
        for (size_t i = 5; i < blen; i++)
            out[i + 1] = addr_lower(body[i]);
        out[blen + 1] = ']';
        out[blen + 2] = '\0';
        return ADDR_OK;
    }
    return ADDR_EDOMAIN;
}

/* Converts a lowercased name holding non-ASCII bytes to A-labels. */
static int addr_to_alabels(const char *in, char *out, size_t outlen)
{
    char *alabels = NULL;
    int rc = idn2_lookup_u8((const uint8_t *)in, (uint8_t **)&alabels,
                            IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);

    if (rc != IDN2_OK)
        return rc == IDN2_TOO_BIG_DOMAIN || rc == IDN2_TOO_BIG_LABEL
                   ? ADDR_ETOOLONG
                   : ADDR_EIDNA;
    if (strlen(alabels) >= outlen) {
        idn2_free(alabels);
        return ADDR_ETOOLONG;
    }
    strcpy(out, alabels);
    idn2_free(alabels);
    return ADDR_OK;
}

/* True when some label of the ASCII domain d is an A-label ("xn--"). */
static bool addr_has_alabel(const char *d)
{
    for (const char *p = d; (p = strstr(p, "xn--")) != NULL; p += 4)
        if (p == d || p[-1] == '.')
            return true;
    return false;
}

/* Lowercases in[0..len) into a name with no trailing dot, then makes it
 * A-labels (checking existing A-labels too) and checks the labels. */
static int addr_norm_name(const char *in, size_t len, char *out, size_t outlen)
{
    char low[ADDR_INPUT_MAX + 1];
    bool ascii = true;
    int rc;

    if (len > 0 && in[len - 1] == '.')
        len--;
    if (len == 0)
        return ADDR_EDOMAIN;
    for (size_t i = 0; i < len; i++) {
        low[i] = addr_lower(in[i]);
        if ((unsigned char)in[i] >= 0x80)
            ascii = false;
    }
    low[len] = '\0';

    if (!ascii || addr_has_alabel(low)) {
        rc = addr_to_alabels(low, out, outlen);
        if (rc != ADDR_OK)
            return rc;
    } else {
        if (len >= outlen)
            return ADDR_ETOOLONG;
        memcpy(out, low, len + 1);
    }
    if (strlen(out) > ADDR_DOMAIN_MAX)
        return ADDR_ETOOLONG;
    return addr_check_labels(out);
}

int addr_domain_norm(const char *in, int allow_wildcard, char *out,
                     size_t outlen)
{
    size_t len = strlen(in);
    bool wild = false;
    int rc;

    if (outlen < ADDR_DOMAIN_MAX + 1)
        return ADDR_ETOOLONG;
    out[0] = '\0';
    if (len > ADDR_INPUT_MAX)
        return ADDR_ETOOLONG;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)in[i] < 0x20 || in[i] == 0x7f || in[i] == ' ')
            return ADDR_EDOMAIN;

    if (in[0] == '[')
        return addr_norm_literal(in, len, out, outlen);
    if (in[0] == '.') {
        if (!allow_wildcard)
            return ADDR_EDOMAIN;
        wild = true;
        in++;
        len--;
    }
    rc = addr_norm_name(in, len, out + wild, outlen - wild);
    if (rc != ADDR_OK) {
        out[0] = '\0';
        return rc;
    }
    if (wild) {
        out[0] = '.';
        if (strlen(out) > ADDR_DOMAIN_MAX) {
            out[0] = '\0';
            return ADDR_ETOOLONG;
        }
    }
    return ADDR_OK;
}

/* Finds the last '@' outside a quoted string in s[0..len); -1 if none. A
 * backslash inside quotes escapes the next byte. */
static long addr_last_at(const char *s, size_t len)
{
    bool quoted = false;
    long at = -1;

    for (size_t i = 0; i < len; i++) {
        if (quoted && s[i] == '\\')
            i++;
        else if (s[i] == '"')
            quoted = !quoted;
        else if (!quoted && s[i] == '@')
            at = (long)i;
    }
    return quoted ? -1 : at;
}

/* Unquotes a quoted-string local part s[0..len) (quotes included) into
 * buf, lowercased. Returns the content length or a negative error. */
static long addr_unquote(const char *s, size_t len, char *buf, size_t buflen)
{
    size_t n = 0;

    if (len < 2 || s[0] != '"' || s[len - 1] != '"')
        return ADDR_ESYNTAX;
    for (size_t i = 1; i + 1 < len; i++) {
        char c = s[i];
        if (c == '\\') {
            if (i + 2 >= len)
                return ADDR_ESYNTAX;
            c = s[++i];
        } else if (c == '"') {
            return ADDR_ESYNTAX;
        }
        if ((unsigned char)c >= 0x80)
            return ADDR_ESYNTAX;
        if (n + 1 >= buflen)
            return ADDR_ETOOLONG;
        buf[n++] = addr_lower(c);
    }
    buf[n] = '\0';
    return (long)n;
}

/* Writes the local part s[0..len) in its one canonical form: lowercased,
 * unquoted when the content is a dot-string, else quoted with '"' and '\'
 * escaped. At most ADDR_LOCAL_MAX octets between the quotes. */
static int addr_norm_local(const char *s, size_t len, struct addr *out)
{
    char raw[ADDR_INPUT_MAX + 1];
    long n;
    size_t o = 0;

    if (len == 0 || s[0] != '"') {
        if (!addr_is_dot_string(s, len))
            return ADDR_ESYNTAX;
        if (len > ADDR_LOCAL_MAX)
            return ADDR_ETOOLONG;
        for (size_t i = 0; i < len; i++)
            out->local[i] = addr_lower(s[i]);
        out->local[len] = '\0';
        return ADDR_OK;
    }

    n = addr_unquote(s, len, raw, sizeof(raw));
    if (n < 0)
        return (int)n;
    if (n > 0 && addr_is_dot_string(raw, (size_t)n))
        return addr_norm_local(raw, (size_t)n, out);
    out->local[o++] = '"';
    for (long i = 0; i < n; i++) {
        if (o >= ADDR_LOCAL_MAX + 1)
            return ADDR_ETOOLONG;
        if (raw[i] == '"' || raw[i] == '\\') {
            out->local[o++] = '\\';
            if (o >= ADDR_LOCAL_MAX + 1)
                return ADDR_ETOOLONG;
        }
        out->local[o++] = raw[i];
    }
    out->local[o++] = '"';
    out->local[o] = '\0';
    return ADDR_OK;
}

/* Skips an RFC 5321 source route "@a,@b:" at the start of s; returns the
 * bytes to skip, 0 when there is none, or a negative error. */
static long addr_skip_route(const char *s, size_t len)
{
    const char *colon;

    if (len == 0 || s[0] != '@')
        return 0;
    colon = memchr(s, ':', len);
    if (colon == NULL || colon == s + 1)
        return ADDR_ESYNTAX;
    for (const char *p = s; p < colon; p++)
        if (*p == '"' || *p == '\\' || *p == '<' || *p == '>' || *p == ' ')
            return ADDR_ESYNTAX;
    return (long)(colon - s) + 1;
}

/* Splits a mailbox at its last unquoted '@' and normalises both parts. */
static int addr_parse_mailbox(const char *s, size_t len, struct addr *out)
{
    char dom[ADDR_INPUT_MAX + 1];
    long at = addr_last_at(s, len);
    size_t dlen;
    int rc;

    if (at <= 0 || (size_t)at + 1 >= len)
        return ADDR_ESYNTAX;
    rc = addr_norm_local(s, (size_t)at, out);
    if (rc != ADDR_OK)
        return rc;

    dlen = len - (size_t)at - 1;
    memcpy(dom, s + at + 1, dlen);
    dom[dlen] = '\0';
    rc = addr_domain_norm(dom, 0, out->domain, sizeof(out->domain));
    if (rc != ADDR_OK)
        return rc;
    snprintf(out->full, sizeof(out->full), "%s@%s", out->local, out->domain);
    return ADDR_OK;
}

int addr_parse_path(const char *s, size_t len, struct addr *out)
{
    long skip;
    int rc;

    memset(out, 0, sizeof(*out));
    if (len > ADDR_INPUT_MAX)
        return ADDR_ETOOLONG;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return ADDR_ESYNTAX;

    if (len > 0 && s[0] == '<') {
        if (len < 2 || s[len - 1] != '>')
            return ADDR_ESYNTAX;
        s++;
        len -= 2;
        if (len == 0)
            return ADDR_OK; /* the null path <> */
    }
    skip = addr_skip_route(s, len);
    if (skip < 0)
        return (int)skip;
    rc = addr_parse_mailbox(s + skip, len - (size_t)skip, out);
    if (rc != ADDR_OK)
        memset(out, 0, sizeof(*out));
    return rc;
}

int addr_parse(const char *s, struct addr *out)
{
    return addr_parse_path(s, strnlen(s, ADDR_INPUT_MAX + 1), out);
}

int addr_local_is_safe(const char *local)
{
    size_t len = strlen(local);

    if (len == 0 || len > ADDR_LOCAL_MAX || local[0] == '.' ||
        local[len - 1] == '.')
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = local[i];
        if (c == '.') {
            if (local[i + 1] == '.')
                return 0;
            continue;
        }
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
            continue;
        if (strchr("!#$%&'*+=?^_`{|}~-", c) == NULL)
            return 0;
    }
    return 1;
}

const char *addr_strerror(int err)
{
    switch (err) {
    case ADDR_OK:
        return "success";
    case ADDR_ESYNTAX:
        return "not a valid address or path";
    case ADDR_ETOOLONG:
        return "address part too long";
    case ADDR_EDOMAIN:
        return "malformed domain";
    case ADDR_EIDNA:
        return "domain cannot be converted to IDNA A-labels";
    }
    return "unknown address error";
}
