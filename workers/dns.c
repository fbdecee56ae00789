#include "dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dns_sock {
    uv_poll_t poll;
    ares_socket_t fd;
    struct dns_resolver *r;
    struct dns_sock *next;
};

struct dns_resolver {
    uv_loop_t *loop;
    ares_channel channel;
    uv_timer_t timer; /* drives c-ares timeouts */
    struct dns_sock *socks;
};

struct dns_lookup {
    struct dns_resolver *r;
    dns_hops_cb cb;
    void *ctx;
    unsigned port;
    char domain[256];
    int pending; /* address lookups outstanding, +1 while starting */
    int err;
    struct dns_hops hops;
    uv_timer_t done; /* delivers the result from a later loop turn */
};

struct dns_gai {
    struct dns_lookup *l;
    size_t idx;
};

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct dns_sock *s = h->data;
    ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;

    if (status < 0 || (events & UV_READABLE))
        rfd = s->fd;
    if (status < 0 || (events & UV_WRITABLE))
        wfd = s->fd;
    ares_process_fd(s->r->channel, rfd, wfd);
}

static void free_sock(uv_handle_t *h)
{
    free(h->data);
}

/* c-ares opens, watches or closes one of its sockets. */
static void on_sock_state(void *data, ares_socket_t fd, int readable,
                          int writable)
{
    struct dns_resolver *r = data;
    struct dns_sock **pp = &r->socks, *s;

    while (*pp && (*pp)->fd != fd)
        pp = &(*pp)->next;
    s = *pp;
    if (!readable && !writable) {
        if (s) {
            *pp = s->next;
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, free_sock);
        }
        return;
    }
    if (!s) {
        if (!(s = calloc(1, sizeof(*s))))
            return;
        s->fd = fd;
        s->r = r;
        s->poll.data = s;
        if (uv_poll_init_socket(r->loop, &s->poll, fd) != 0) {
            free(s);
            return;
        }
        s->next = r->socks;
        r->socks = s;
    }
    uv_poll_start(&s->poll,
                  (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0),
                  on_poll);
}

static void on_tick(uv_timer_t *t)
{
    struct dns_resolver *r = t->data;

    ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

int dns_open(uv_loop_t *loop, unsigned timeout_ms, struct dns_resolver **out)
{
    struct dns_resolver *r = calloc(1, sizeof(*r));
    struct ares_options o = {0};

    if (!r || ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
        free(r);
        return DNS_ENOMEM;
    }
    r->loop = loop;
    o.sock_state_cb = on_sock_state;
    o.sock_state_cb_data = r;
    o.timeout = (int)timeout_ms;
    o.tries = 2;
    if (ares_init_options(&r->channel, &o,
                          ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS |
                              ARES_OPT_TRIES) != ARES_SUCCESS) {
        free(r);
        return DNS_ETEMP;
    }
    /* Name servers other than resolv.conf's, "ip[:port],..." (for tests
     * and unusual set-ups; docs/outbound.md). */
    if (getenv("TLSGATE_DNS_SERVERS") &&
        ares_set_servers_ports_csv(r->channel, getenv("TLSGATE_DNS_SERVERS")) !=
            ARES_SUCCESS) {
        ares_destroy(r->channel);
        free(r);
        return DNS_EINVAL;
    }
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    uv_timer_start(&r->timer, on_tick, 100, 100);
    uv_unref((uv_handle_t *)&r->timer);
    *out = r;
    return DNS_OK;
}

static void free_resolver(uv_handle_t *h)
{
    free(h->data);
}

void dns_close(struct dns_resolver *r)
{
    if (!r)
        return;
    ares_destroy(r->channel); /* pending lookups finish with ETEMP */
    while (r->socks) {
        struct dns_sock *s = r->socks;
        r->socks = s->next;
        uv_poll_stop(&s->poll);
        uv_close((uv_handle_t *)&s->poll, free_sock);
    }
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, free_resolver);
}

static void free_lookup(uv_handle_t *h)
{
    free(h->data);
}

/* Delivers the result, dropping hosts that got no address. */
static void on_done(uv_timer_t *t)
{
    struct dns_lookup *l = t->data;
    struct dns_hops *h = &l->hops;
    size_t o = 0;

    for (size_t i = 0; i < h->nhost; i++)
        if (h->host[i].naddr > 0)
            h->host[o++] = h->host[i];
    h->nhost = o;
    if (o > 0)
        l->cb(l->ctx, DNS_OK, h);
    else
        l->cb(l->ctx, l->err ? l->err : DNS_ENOTFOUND, NULL);
    uv_close((uv_handle_t *)t, free_lookup);
}

/* One outstanding part of the lookup ended. */
static void lookup_step(struct dns_lookup *l)
{
    if (--l->pending == 0)
        uv_timer_start(&l->done, on_done, 0, 0);
}

static int ares_to_dns(int status)
{
    if (status == ARES_ENOTFOUND || status == ARES_ENODATA ||
        status == ARES_ENONAME)
        return DNS_ENOTFOUND;
    return status == ARES_ENOMEM ? DNS_ENOMEM : DNS_ETEMP;
}

/* Copies the addresses of one host's answer, with the lookup's port. */
static void on_addrinfo(void *arg, int status, int timeouts,
                        struct ares_addrinfo *res)
{
    struct dns_gai *g = arg;
    struct dns_lookup *l = g->l;
    struct dns_host *h = &l->hops.host[g->idx];

    if (status != ARES_SUCCESS && !l->err)
        l->err = ares_to_dns(status);
    for (struct ares_addrinfo_node *n = res ? res->nodes : NULL;
         n && h->naddr < DNS_ADDRS_MAX; n = n->ai_next) {
        struct sockaddr_storage *ss = &h->addr[h->naddr];
        if (n->ai_family != AF_INET && n->ai_family != AF_INET6)
            continue;
        memcpy(ss, n->ai_addr, n->ai_addrlen);
        if (n->ai_family == AF_INET)
            ((struct sockaddr_in *)ss)->sin_port = htons(l->port);
        else
            ((struct sockaddr_in6 *)ss)->sin6_port = htons(l->port);
        h->naddr++;
    }
    if (res)
        ares_freeaddrinfo(res);
    free(g);
    lookup_step(l);
}

/* Starts the address lookup of hops.host[idx]. */
static void start_addr(struct dns_lookup *l, size_t idx)
{
    struct ares_addrinfo_hints hints = {.ai_family = AF_UNSPEC,
                                        .ai_socktype = SOCK_STREAM};
    struct dns_gai *g = malloc(sizeof(*g));

    if (!g) {
        l->err = DNS_ENOMEM;
        return;
    }
    g->l = l;
    g->idx = idx;
    l->pending++;
    ares_getaddrinfo(l->r->channel, l->hops.host[idx].name, NULL, &hints,
                     on_addrinfo, g);
}

static struct dns_lookup *lookup_new(struct dns_resolver *r, const char *name,
                                     unsigned port, dns_hops_cb cb, void *ctx)
{
    struct dns_lookup *l = calloc(1, sizeof(*l));

    if (!l)
        return NULL;
    l->r = r;
    l->cb = cb;
    l->ctx = ctx;
    l->port = port;
    l->pending = 1;
    snprintf(l->domain, sizeof(l->domain), "%s", name);
    uv_timer_init(r->loop, &l->done);
    l->done.data = l;
    return l;
}

int dns_resolve_host(struct dns_resolver *r, const char *host, unsigned port,
                     dns_hops_cb cb, void *ctx)
{
    struct dns_lookup *l = lookup_new(r, host, port, cb, ctx);

    if (!l)
        return DNS_ENOMEM;
    l->hops.nhost = 1;
    snprintf(l->hops.host[0].name, sizeof(l->hops.host[0].name), "%s", host);
    start_addr(l, 0);
    lookup_step(l);
    return DNS_OK;
}

static int by_pref(const void *a, const void *b)
{
    const struct dns_host *x = a, *y = b;

    return (x->pref > y->pref) - (x->pref < y->pref);
}

/* The MX answer: sorted hosts, then their addresses; no MX: the domain. */
static void on_mx(void *arg, int status, int timeouts, unsigned char *buf,
                  int len)
{
    struct dns_lookup *l = arg;
    struct ares_mx_reply *mx = NULL;
    struct dns_hops *h = &l->hops;

    if (status == ARES_SUCCESS)
        status = ares_parse_mx_reply(buf, len, &mx);
    if (status == ARES_ENODATA) { /* no MX: the domain's own addresses */
        h->nhost = 1;
        snprintf(h->host[0].name, sizeof(h->host[0].name), "%s", l->domain);
    } else if (status != ARES_SUCCESS) {
        l->err = ares_to_dns(status);
    }
    for (struct ares_mx_reply *m = mx; m && h->nhost < DNS_HOSTS_MAX;
         m = m->next) {
        if (m->host[0] == '\0' || strcmp(m->host, ".") == 0) {
            l->err = DNS_ENULLMX;
            continue;
        }
        snprintf(h->host[h->nhost].name, sizeof(h->host[0].name), "%s",
                 m->host);
        h->host[h->nhost++].pref = m->priority;
    }
    if (mx)
        ares_free_data(mx);
    qsort(h->host, h->nhost, sizeof(h->host[0]), by_pref);
    for (size_t i = 0; i < h->nhost && l->err != DNS_ENULLMX; i++)
        start_addr(l, i);
    lookup_step(l);
}

int dns_resolve_mx(struct dns_resolver *r, const char *domain, dns_hops_cb cb,
                   void *ctx)
{
    struct dns_lookup *l = lookup_new(r, domain, 25, cb, ctx);

    if (!l)
        return DNS_ENOMEM;
    ares_query(r->channel, domain, ns_c_in, ns_t_mx, on_mx, l);
    return DNS_OK;
}

const char *dns_strerror(int err)
{
    switch (err) {
    case DNS_OK:
        return "success";
    case DNS_ENOTFOUND:
        return "domain or host not found";
    case DNS_ENULLMX:
        return "domain accepts no mail (null MX)";
    case DNS_ETEMP:
        return "temporary DNS failure";
    case DNS_ENOMEM:
        return "out of memory";
    case DNS_EINVAL:
        return "invalid name";
    }
    return "unknown DNS error";
}
