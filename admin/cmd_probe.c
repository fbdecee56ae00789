/*
 * probe DOMAIN: resolves the next hops the senders would use (route
 * override, MX, address records), and for each host connects, reads the
 * banner, says EHLO, STARTTLS, handshakes, reads the certificate chain and
 * says QUIT. It never sends MAIL FROM. Each step has a timeout
 * (--wait, 10 s by default).
 */
#include "report.h"

#include <arpa/inet.h>
#include <gnutls/x509.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "dns.h"
#include "smtpout_reply.h"
#include "tlsio.h"

#define PROBE_STEP_S   10 /* default wait: connect, each reply, handshake */
#define PROBE_STEP_MAX 300

enum probe_state { P_CONNECT, P_BANNER, P_EHLO, P_STARTTLS, P_TLS, P_DONE };

struct probe {
    uv_loop_t loop;
    struct dns_resolver *dns;
    struct tlsio_ctx *tls;
    const char *domain;
    struct dns_hops hops;
    size_t hi;
    int dns_err;
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct tlsio *t;
    enum probe_state st;
    struct smtp_reply_parser rp;
    char addr[64];
    json_t *host;     /* the report of the host being probed */
    json_t *hosts;    /* every host's report */
    int probed;       /* hosts that answered SMTP */
    unsigned step_ms; /* the wait of each step */
};

static void probe_next(struct probe *p);

/* The connection of a host is closed: on to the next host. */
static void on_closed(uv_handle_t *h)
{
    struct probe *p = h->data;

    if (p->st != P_DONE)
        return;
    p->hi++;
    probe_next(p);
}

/* Ends the current host with error (or none): keeps its report, stops
 * its timer and TLS session, closes its connection. */
static void host_end(struct probe *p, const char *error)
{
    if (error)
        json_object_set_new(p->host, "error", json_string(error));
    json_array_append_new(p->hosts, p->host);
    p->host = NULL;
    uv_timer_stop(&p->timer);
    if (p->t) {
        tlsio_free(p->t);
        p->t = NULL;
    }
    p->st = P_DONE;
    uv_close((uv_handle_t *)&p->tcp, on_closed);
}

static void on_timeout(uv_timer_t *t)
{
    struct probe *p = t->data;
    static const char *const what[] = {"connect", "banner", "EHLO reply",
                                       "STARTTLS reply", "TLS handshake"};
    char msg[64];

    snprintf(msg, sizeof(msg), "timeout waiting for %s", what[p->st]);
    host_end(p, msg);
}

static void arm(struct probe *p)
{
    uv_timer_start(&p->timer, on_timeout, p->step_ms, 0);
}

static void on_written(uv_write_t *w, int status)
{
    free(w);
}

/* Sends one plaintext command (never MAIL FROM: only EHLO, STARTTLS,
 * QUIT). */
static void send_cmd(struct probe *p, const char *cmd)
{
    uv_write_t *w = malloc(sizeof(*w) + strlen(cmd));
    uv_buf_t b;

    if (!w)
        return;
    memcpy(w + 1, cmd, strlen(cmd));
    b = uv_buf_init((char *)(w + 1), (unsigned)strlen(cmd));
    if (uv_write(w, (uv_stream_t *)&p->tcp, &b, 1, on_written) != 0)
        free(w);
    arm(p);
}

/* Appends one subject alternative name to names: a DNS name as it is, an IP
 * address SAN in its text form (what an address-literal host is matched
 * against); other kinds are left out. */
static void san_append(json_t *names, unsigned type, const char *name,
                       size_t len)
{
    char ip[INET6_ADDRSTRLEN];

    if (type == GNUTLS_SAN_DNSNAME)
        json_array_append_new(names, json_stringn(name, len));
    else if (type == GNUTLS_SAN_IPADDRESS && (len == 4 || len == 16) &&
             inet_ntop(len == 4 ? AF_INET : AF_INET6, name, ip, sizeof(ip)))
        json_array_append_new(names, json_string(ip));
}

/* One certificate of the chain: subject, issuer, validity, DNS names and
 * IP addresses. */
static json_t *cert_json(const gnutls_datum_t *der)
{
    gnutls_x509_crt_t crt;
    char dn[1024], name[256], a[32], b[32];
    size_t len;
    json_t *names = json_array(), *o;

    if (gnutls_x509_crt_init(&crt) < 0)
        return json_null();
    if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) < 0) {
        gnutls_x509_crt_deinit(crt);
        return json_null();
    }
    for (unsigned i = 0;; i++) {
        unsigned type;
        len = sizeof(name) - 1;
        int r = gnutls_x509_crt_get_subject_alt_name2(crt, i, name, &len, &type,
                                                      NULL);
        if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (r >= 0)
            san_append(names, type, name, len);
    }
    adm_iso_time(gnutls_x509_crt_get_activation_time(crt), a, sizeof(a));
    adm_iso_time(gnutls_x509_crt_get_expiration_time(crt), b, sizeof(b));
    len = sizeof(dn);
    if (gnutls_x509_crt_get_dn(crt, dn, &len) < 0)
        dn[0] = '\0';
    o = json_pack("{s:s, s:s, s:s, s:o}", "subject", dn, "not_before", a,
                  "not_after", b, "names", names);
    len = sizeof(dn);
    if (gnutls_x509_crt_get_issuer_dn(crt, dn, &len) < 0)
        dn[0] = '\0';
    json_object_set_new(o, "issuer", json_string(dn));
    gnutls_x509_crt_deinit(crt);
    return o;
}

/* The TLS part of the host's report and the levels that would deliver. */
static void tls_json(struct probe *p, const struct tlsio_report *r)
{
    gnutls_session_t s = tlsio_gnutls(p->t);
    const gnutls_datum_t *certs;
    unsigned n = 0;
    json_t *chain = json_array();
    bool domain_ok = tlsio_peer_name_matches(p->t, p->domain);
    bool expired = r->not_after > 0 && r->not_after < (int64_t)time(NULL);

    certs = gnutls_certificate_get_peers(s, &n);
    for (unsigned i = 0; certs && i < n; i++)
        json_array_append_new(chain, cert_json(&certs[i]));
    json_object_set_new(
        p->host, "tls",
        json_pack("{s:s, s:s, s:s, s:s, s:o, s:b, s:b, s:b, s:b, s:s}",
                  "protocol", r->protocol, "cipher", r->cipher, "kx", r->kx,
                  "group", r->group, "chain", chain, "chain_verified",
                  r->chain_ok, "name_matches_mx", r->name_ok,
                  "name_matches_domain", domain_ok, "expired", expired,
                  "verify_error", r->verify_error));
    json_object_set_new(p->host, "levels",
                        json_pack("{s:b, s:b, s:b, s:b}", "may", true,
                                  "encrypt", true, "verify",
                                  r->chain_ok && r->name_ok, "secure",
                                  r->chain_ok && domain_ok));
}

static void on_tls_read(struct tlsio *t, const char *buf, ssize_t n, void *arg)
{
    (void)t, (void)buf, (void)n, (void)arg; /* the QUIT reply is not needed */
}

static void on_quit_written(struct tlsio *t, int status, void *arg)
{
    host_end(arg, NULL);
}

/* The handshake ended: report it, say QUIT over TLS, end the host. */
static void on_handshake(struct tlsio *t, int status, void *arg)
{
    struct probe *p = arg;
    struct tlsio_report r;
    char msg[300];

    if (status != 0) {
        snprintf(msg, sizeof(msg), "TLS handshake failed: %s (%s)",
                 tlsio_strerror(status), tlsio_last_error(t));
        json_object_set_new(p->host, "levels",
                            json_pack("{s:b, s:b, s:b, s:b}", "may", true,
                                      "encrypt", false, "verify", false,
                                      "secure", false));
        host_end(p, msg);
        return;
    }
    tlsio_report(t, &r);
    tls_json(p, &r);
    tlsio_read_start(t, on_tls_read);
    arm(p);
    if (tlsio_write(t, "QUIT\r\n", 6, on_quit_written, p) != 0)
        host_end(p, NULL);
}

/* STARTTLS was accepted: forget what came before and handshake. */
static void start_tls(struct probe *p)
{
    const char *name = p->hops.host[p->hi].name;
    struct in6_addr ip;
    bool literal = inet_pton(AF_INET, name, &ip) == 1 ||
                   inet_pton(AF_INET6, name, &ip) == 1;
    struct tlsio_opts o = {.handshake_timeout_ms = p->step_ms,
                           .server_name = literal ? NULL : name,
                           .verify_name = name};

    uv_timer_stop(&p->timer);
    p->st = P_TLS;
    if (tlsio_start(p->tls, &p->tcp, false, &o, on_handshake, p, &p->t) != 0) {
        p->t = NULL;
        host_end(p, "TLS could not start");
    }
}

/* One complete reply in the plaintext dialogue. */
static void on_reply(struct probe *p, const struct smtp_reply *r)
{
    unsigned long size;
    unsigned caps;
    char msg[600];

    uv_timer_stop(&p->timer);
    if (p->st == P_BANNER) {
        json_object_set_new(p->host, "banner", json_integer(r->code));
        p->probed++;
        if (r->code != 220) {
            snprintf(msg, sizeof(msg), "banner %d %.500s", r->code, r->text);
            host_end(p, msg);
            return;
        }
        p->st = P_EHLO;
        send_cmd(p, "EHLO tlsgate-probe.invalid\r\n");
        return;
    }
    if (p->st == P_EHLO) {
        caps = r->code == 250 ? smtpout_ehlo_caps(r, &size) : 0;
        json_object_set_new(p->host, "starttls_offered",
                            json_boolean(caps & EHLO_STARTTLS));
        if (!(caps & EHLO_STARTTLS)) {
            json_object_set_new(p->host, "levels",
                                json_pack("{s:b, s:b, s:b, s:b}", "may", true,
                                          "encrypt", false, "verify", false,
                                          "secure", false));
            send_cmd(p, "QUIT\r\n");
            host_end(p, r->code == 250 ? NULL : "EHLO refused");
            return;
        }
        p->st = P_STARTTLS;
        send_cmd(p, "STARTTLS\r\n");
        return;
    }
    json_object_set_new(p->host, "starttls_reply", json_integer(r->code));
    if (r->code != 220) {
        json_object_set_new(p->host, "levels",
                            json_pack("{s:b, s:b, s:b, s:b}", "may", true,
                                      "encrypt", false, "verify", false,
                                      "secure", false));
        snprintf(msg, sizeof(msg), "STARTTLS refused: %d %.500s", r->code,
                 r->text);
        host_end(p, msg);
        return;
    }
    start_tls(p);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    static char slab[8192];

    *b = uv_buf_init(slab, sizeof(slab));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct probe *p = s->data;
    struct smtp_reply r;
    size_t used, off = 0;
    int rc;

    if (n < 0) {
        host_end(p, n == UV_EOF ? "connection closed by the server"
                                : uv_strerror((int)n));
        return;
    }
    while (off < (size_t)n && p->st < P_TLS) {
        rc = smtpout_reply_feed(&p->rp, b->base + off, (size_t)n - off, &used,
                                &r);
        if (rc < 0) {
            host_end(p, smtpout_reply_strerror(rc));
            return;
        }
        if (rc == 0)
            return;
        off += used;
        on_reply(p, &r);
        if (p->st == P_TLS || p->st == P_DONE)
            return; /* bytes after the 220 to STARTTLS are dropped */
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    struct probe *p = req->data;

    free(req);
    if (status == UV_ECANCELED)
        return; /* the host already ended (timeout) */
    if (status < 0) {
        host_end(p, status == UV_ECONNREFUSED ? "connection refused"
                                              : uv_strerror(status));
        return;
    }
    p->st = P_BANNER;
    arm(p);
    uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read);
}

/* The text form of an address with its port. */
static void addr_str(const struct sockaddr_storage *ss, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    bool v4 = ss->ss_family == AF_INET;
    const void *a = v4 ? (const void *)&((struct sockaddr_in *)ss)->sin_addr
                       : (const void *)&((struct sockaddr_in6 *)ss)->sin6_addr;
    unsigned port = ntohs(v4 ? ((struct sockaddr_in *)ss)->sin_port
                             : ((struct sockaddr_in6 *)ss)->sin6_port);

    inet_ntop(ss->ss_family, a, ip, sizeof(ip));
    snprintf(out, n, v4 ? "%s:%u" : "[%s]:%u", ip, port);
}

/* Probes the next host (its first address), or stops the loop. */
static void probe_next(struct probe *p)
{
    const struct dns_host *h;
    uv_connect_t *req;

    if (p->hi >= p->hops.nhost) {
        uv_close((uv_handle_t *)&p->timer, NULL);
        dns_close(p->dns);
        return;
    }
    h = &p->hops.host[p->hi];
    addr_str(&h->addr[0], p->addr, sizeof(p->addr));
    p->host =
        json_pack("{s:s, s:i, s:s, s:b}", "host", h->name, "preference",
                  (int)h->pref, "address", p->addr, "starttls_offered", false);
    p->st = P_CONNECT;
    smtpout_reply_init(&p->rp);
    uv_tcp_init(&p->loop, &p->tcp);
    p->tcp.data = p;
    arm(p);
    if (!(req = malloc(sizeof(*req)))) {
        host_end(p, "out of memory");
        return;
    }
    req->data = p;
    if (uv_tcp_connect(req, &p->tcp, (const struct sockaddr *)&h->addr[0],
                       on_connect) != 0) {
        free(req);
        host_end(p, "cannot connect");
    }
}

static void on_hops(void *ctx, int err, const struct dns_hops *h)
{
    struct probe *p = ctx;

    p->dns_err = err;
    if (err == DNS_OK)
        p->hops = *h;
    probe_next(p);
}

/* Where to connect: --host, else the route override, else the MX (with
 * the senders' rules). Fills host/port ("" for MX) and via. */
static int probe_target(struct adm_ctx *c, const char *domain, char *host,
                        size_t hlen, unsigned *port, const char **via)
{
    struct store *st;
    struct store_txn *txn;
    const char *colon = c->host ? strrchr(c->host, ':') : NULL;
    struct stat sb;
    char *end;
    int rc;

    *via = "mx";
    host[0] = '\0';
    if (c->host) {
        unsigned long v = colon ? strtoul(colon + 1, &end, 10) : 0;
        if (!colon || *end || v == 0 || v > 65535 || colon == c->host ||
            (size_t)(colon - c->host) >= hlen)
            return adm_usage("%s: --host must be HOST:PORT", c->cmd);
        snprintf(host, hlen, "%.*s", (int)(colon - c->host), c->host);
        if (host[0] == '[' && host[strlen(host) - 1] == ']') {
            memmove(host, host + 1, strlen(host));
            host[strlen(host) - 1] = '\0';
        }
        *port = (unsigned)v;
        *via = "option";
        return ADM_OK;
    }
    if (stat(c->db, &sb) != 0 || adm_open(c, false, false, &st) != ADM_OK)
        return ADM_OK; /* no store: MX only */
    if (store_begin(st, false, &txn) == 0) {
        rc = policy_route(txn, domain, host, hlen, port);
        store_abort(txn);
        if (rc == 0)
            *via = "route";
        else
            host[0] = '\0';
    }
    store_close(st);
    return ADM_OK;
}

/* Prints the text form of the report. */
static void probe_text(json_t *doc)
{
    json_t *h, *tls, *lv, *cert;
    size_t i, k;

    printf("domain %s (next hop from %s)\n",
           json_string_value(json_object_get(doc, "domain")),
           json_string_value(json_object_get(doc, "via")));
    if (json_object_get(doc, "error"))
        printf("error %s\n", json_string_value(json_object_get(doc, "error")));
    json_array_foreach(json_object_get(doc, "hosts"), i, h)
    {
        printf("host %s %s\n", json_string_value(json_object_get(h, "host")),
               json_string_value(json_object_get(h, "address")));
        if (json_object_get(h, "error"))
            printf("  error      %s\n",
                   json_string_value(json_object_get(h, "error")));
        printf("  starttls   %s\n",
               json_is_true(json_object_get(h, "starttls_offered"))
                   ? "offered"
                   : "not offered");
        if ((tls = json_object_get(h, "tls"))) {
            const char *kx = json_string_value(json_object_get(tls, "kx"));
            const char *group =
                json_string_value(json_object_get(tls, "group"));

            /* As in the JSON: TLS 1.3 has a group but no kx name. */
            printf("  protocol   %s\n  cipher     %s\n  kx         %s\n"
                   "  group      %s\n",
                   json_string_value(json_object_get(tls, "protocol")),
                   json_string_value(json_object_get(tls, "cipher")),
                   kx && kx[0] ? kx : "-", group && group[0] ? group : "-");
            printf("  verified   chain %s, MX name %s, domain name %s%s%s\n",
                   json_is_true(json_object_get(tls, "chain_verified")) ? "yes"
                                                                        : "no",
                   json_is_true(json_object_get(tls, "name_matches_mx")) ? "yes"
                                                                         : "no",
                   json_is_true(json_object_get(tls, "name_matches_domain"))
                       ? "yes"
                       : "no",
                   json_string_length(json_object_get(tls, "verify_error"))
                       ? "; "
                       : "",
                   json_string_value(json_object_get(tls, "verify_error")));
            json_array_foreach(json_object_get(tls, "chain"), k, cert)
            {
                char *names = json_dumps(json_object_get(cert, "names"), 0);
                printf("  cert %zu     subject %s\n             issuer %s\n"
                       "             valid %s .. %s\n             names %s\n",
                       k, json_string_value(json_object_get(cert, "subject")),
                       json_string_value(json_object_get(cert, "issuer")),
                       json_string_value(json_object_get(cert, "not_before")),
                       json_string_value(json_object_get(cert, "not_after")),
                       names ? names : "[]");
                free(names);
            }
        }
        if ((lv = json_object_get(h, "levels")))
            printf("  delivers   may %s, encrypt %s, verify %s, secure %s\n",
                   json_is_true(json_object_get(lv, "may")) ? "yes" : "no",
                   json_is_true(json_object_get(lv, "encrypt")) ? "yes" : "no",
                   json_is_true(json_object_get(lv, "verify")) ? "yes" : "no",
                   json_is_true(json_object_get(lv, "secure")) ? "yes" : "no");
    }
}

/* Runs the loop: resolve, then each host in turn. */
static int probe_run(struct probe *p, const char *host, unsigned port)
{
    int rc;

    uv_timer_init(&p->loop, &p->timer);
    p->timer.data = p;
    rc = host[0] ? dns_resolve_host(p->dns, host, port, on_hops, p)
                 : dns_resolve_mx(p->dns, p->domain, on_hops, p);
    if (rc != DNS_OK)
        return adm_err("probe: %s", dns_strerror(rc));
    uv_run(&p->loop, UV_RUN_DEFAULT);
    return ADM_OK;
}

/* probe DOMAIN [--host HOST:PORT] [--ca-file FILE] */
int adm_cmd_probe(struct adm_ctx *c)
{
    struct probe p = {.hosts = json_array()};
    struct tlsio_client_opts to = {.ca_file = c->ca_file};
    char domain[ADDR_DOMAIN_MAX + 2], host[256], err[256];
    unsigned port = 25;
    long wait = PROBE_STEP_S;
    char *end;
    const char *via;
    json_t *doc;
    int rc;

    if (c->wait && ((wait = strtol(c->wait, &end, 10)) < 1 || *end ||
                    wait > PROBE_STEP_MAX)) {
        json_decref(p.hosts);
        return adm_usage("%s: --wait takes 1 to %d seconds", c->cmd,
                         PROBE_STEP_MAX);
    }
    p.step_ms = (unsigned)wait * 1000;
    rc = adm_domain(c->args[0], false, domain, sizeof(domain));
    if (rc == ADM_OK)
        rc = probe_target(c, domain, host, sizeof(host), &port, &via);
    if (rc != ADM_OK) {
        json_decref(p.hosts);
        return rc;
    }
    p.domain = domain;
    if (tlsio_ctx_client(&to, &p.tls, err, sizeof(err)) != 0) {
        json_decref(p.hosts);
        return adm_err("probe: %s", err);
    }
    uv_loop_init(&p.loop);
    if (dns_open(&p.loop, p.step_ms, &p.dns) != DNS_OK)
        rc = adm_err("probe: cannot start the DNS resolver");
    else
        rc = probe_run(&p, host, port);
    uv_run(&p.loop, UV_RUN_DEFAULT);
    uv_loop_close(&p.loop);
    tlsio_ctx_unref(p.tls);
    if (rc != ADM_OK) {
        json_decref(p.hosts);
        return rc;
    }
    doc = json_pack("{s:s, s:s, s:o}", "domain", domain, "via", via, "hosts",
                    p.hosts);
    if (p.dns_err != DNS_OK)
        json_object_set_new(doc, "error", json_string(dns_strerror(p.dns_err)));
    if (c->json)
        rc = adm_json_out(json_incref(doc), stdout, false);
    else
        probe_text(doc);
    if (p.dns_err != DNS_OK)
        adm_err("probe %s: DNS: %s", domain, dns_strerror(p.dns_err));
    else if (p.probed == 0)
        adm_err("probe %s: no host could be probed", domain);
    rc = p.dns_err != DNS_OK || p.probed == 0 ? ADM_FAIL : rc;
    json_decref(doc);
    return rc;
}
