/*
 * Next-hop resolution for the outbound senders, with c-ares on a libuv
 * loop: MX records sorted by preference, each MX host's A/AAAA records,
 * and the domain's own address records when it has no MX (RFC 5321 5.1).
 */
#ifndef TLSGATE_DNS_H
#define TLSGATE_DNS_H

#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

#define DNS_HOSTS_MAX 10 /* MX hosts kept, lowest preference first */
#define DNS_ADDRS_MAX 4  /* addresses kept per host */

enum dns_error {
    DNS_OK = 0,
    DNS_ENOTFOUND = -1, /* NXDOMAIN, or neither MX nor address records */
    DNS_ENULLMX = -2,   /* the domain publishes a null MX (RFC 7505) */
    DNS_ETEMP = -3,     /* timeout, SERVFAIL, no server: try later */
    DNS_ENOMEM = -4,
    DNS_EINVAL = -5,
};

struct dns_host {
    char name[256]; /* MX host name (or the route host / domain) */
    unsigned pref;  /* MX preference */
    size_t naddr;
    struct sockaddr_storage addr[DNS_ADDRS_MAX]; /* port set */
};

struct dns_hops {
    size_t nhost;
    struct dns_host host[DNS_HOSTS_MAX];
};

struct dns_resolver;

/* Creates a resolver on loop (system resolv.conf and hosts file, or the
 * servers named in the environment variable TLSGATE_DNS_SERVERS,
 * "ip[:port],..."); timeout_ms per query. Returns DNS_OK, DNS_ENOMEM,
 * DNS_EINVAL (bad TLSGATE_DNS_SERVERS) or DNS_ETEMP. */
int dns_open(uv_loop_t *loop, unsigned timeout_ms, struct dns_resolver **out);
/* Cancels pending lookups (their callbacks get DNS_ETEMP) and frees the
 * resolver once its handles are closed (the loop must run). */
void dns_close(struct dns_resolver *r);

/* err DNS_OK with hops (valid during the call only; hosts without any
 * address are dropped), or a negative enum dns_error and NULL. */
typedef void (*dns_hops_cb)(void *ctx, int err, const struct dns_hops *h);

/* Next hops of a mail domain on port 25. cb is called exactly once,
 * never from inside this call. Returns DNS_OK or DNS_ENOMEM. */
int dns_resolve_mx(struct dns_resolver *r, const char *domain, dns_hops_cb cb,
                   void *ctx);

/* Address records of one host name or literal, with port. Same rules. */
int dns_resolve_host(struct dns_resolver *r, const char *host, unsigned port,
                     dns_hops_cb cb, void *ctx);

const char *dns_strerror(int err);

#endif
