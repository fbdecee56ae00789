/*
 * Mail addresses and domains as the policy sees them (RFC 5321 paths).
 * Everything here is pure: no store, no I/O.
 */
#ifndef TLSGATE_ADDR_H
#define TLSGATE_ADDR_H

#include <stddef.h>

#define ADDR_LOCAL_MAX  64  /* octets in a local part (RFC 5321 4.5.3.1.1) */
#define ADDR_DOMAIN_MAX 253 /* octets in a domain, no trailing dot */
#define ADDR_MAX        (ADDR_LOCAL_MAX + 1 + ADDR_DOMAIN_MAX)

enum addr_error {
    ADDR_OK = 0,
    ADDR_ESYNTAX = -1,  /* not an address or path */
    ADDR_ETOOLONG = -2, /* a part exceeds its limit */
    ADDR_EDOMAIN = -3,  /* the domain is malformed */
    ADDR_EIDNA = -4,    /* the domain cannot be converted to A-labels */
};

/* A parsed address. An empty local and domain is the null path "<>". */
struct addr {
    char local[ADDR_LOCAL_MAX + 3];   /* case-folded; quoted form kept */
    char domain[ADDR_DOMAIN_MAX + 1]; /* normalised (addr_domain_norm) */
    char full[ADDR_MAX + 3];          /* local@domain, or "" for <> */
};

/*
 * Parses an RFC 5321 path ("<a@b>", "<@r1,@r2:a@b>", "<>") or a bare
 * address ("a@b"), len bytes of s (no NUL needed). The domain is the part
 * after the last unquoted '@'; source routes are dropped; a quoted local
 * part may hold '@'; "b%a.example@c.example" has the domain c.example.
 * CR, LF, NUL and other control bytes are errors. Returns ADDR_OK or a
 * negative enum addr_error.
 */
int addr_parse_path(const char *s, size_t len, struct addr *out);

/* As addr_parse_path on a NUL-terminated string. */
int addr_parse(const char *s, struct addr *out);

/*
 * Normalises a domain into out (size outlen >= ADDR_DOMAIN_MAX + 1):
 * lowercase, trailing dot removed, U-labels to A-labels (libidn2, IDNA2008
 * with TR46 non-transitional mapping). Address literals "[1.2.3.4]" and
 * "[IPv6:...]" are kept as they are. With allow_wildcard, a leading '.'
 * (".example.com", "every subdomain of") is kept. Returns ADDR_OK or a
 * negative enum addr_error.
 */
int addr_domain_norm(const char *in, int allow_wildcard, char *out,
                     size_t outlen);

/* True when the local part is a dot-atom of [a-z0-9!#$%&'*+=?^_`{|}~-]
 * (no '/', no leading, trailing or doubled '.'), so that it can safely name
 * a folder: what a monitored mailbox's local part must be. */
int addr_local_is_safe(const char *local);

/* One short sentence for an enum addr_error. */
const char *addr_strerror(int err);

#endif
