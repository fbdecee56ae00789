/* outbound, inbound and route commands of tlsgate-admin. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

/* ---- outbound ---- */

/* The level given with --level, or dflt. */
static int adm_opt_level(struct adm_ctx *c, enum tls_level dflt,
                         enum tls_level *out)
{
    *out = dflt;
    return c->level ? adm_level(c->level, out) : ADM_OK;
}

/* Sets the mode; under all with the --level default, else keeping the
 * stored default level. */
static int adm_do_mode(struct adm_ctx *c, struct store_txn *txn, void *arg)
{
    enum out_mode mode = *(enum out_mode *)arg;
    struct tenant_info t;
    enum tls_level lvl;
    int rc;

    if (adm_tenant(txn, c->args[0], &t) != ADM_OK)
        return ADM_FAIL;
    if (mode != MODE_ALL)
        lvl = t.default_level; /* kept for a later "all" */
    else if ((rc = adm_opt_level(c, TLS_ENCRYPT, &lvl)) != ADM_OK)
        return rc;
    if (mode == MODE_ALL && lvl < TLS_ENCRYPT)
        return adm_err("outbound mode: the default level under all must be "
                       "encrypt, verify or secure, not %s",
                       tls_level_name(lvl));
    if ((rc = store_outbound_mode(txn, t.name, mode, lvl)) < 0)
        return adm_store_err(rc, "outbound mode");
    return ADM_OK;
}

/* Checks the mode word and --level before the store is opened. */
int adm_cmd_outbound_mode(struct adm_ctx *c)
{
    enum out_mode mode;
    enum tls_level lvl;

    if (out_mode_parse(c->args[1], &mode) < 0)
        return adm_usage("outbound mode: unknown mode '%s' (off, all or "
                         "domains)",
                         c->args[1]);
    if (c->level && mode != MODE_ALL)
        return adm_usage("outbound mode: --level applies to mode all only "
                         "(entries carry their own level)");
    if (c->level && (tls_level_parse(c->level, &lvl) < 0 || lvl < TLS_ENCRYPT))
        return adm_usage("outbound mode: level '%s' is not encrypt, verify "
                         "or secure",
                         c->level);
    return adm_write(c, false, adm_do_mode, &mode);
}

/* Adds or re-levels one entry of an existing tenant. */
static int adm_do_outbound_add(struct adm_ctx *c, struct store_txn *txn,
                               void *arg)
{
    char dom[ADDR_DOMAIN_MAX + 2];
    enum tls_level lvl;
    int rc;

    if ((rc = adm_opt_level(c, TLS_ENCRYPT, &lvl)) != ADM_OK)
        return rc;
    if (adm_tenant(txn, c->args[0], NULL) != ADM_OK ||
        adm_domain(c->args[1], true, dom, sizeof(dom)) != ADM_OK)
        return ADM_FAIL;
    if ((rc = store_outbound_add(txn, c->args[0], dom, lvl)) < 0)
        return adm_store_err(rc, "outbound add");
    return ADM_OK;
}

/* An unknown --level is a usage error, found before the store opens. */
int adm_cmd_outbound_add(struct adm_ctx *c)
{
    enum tls_level lvl;
    int rc;

    if (c->level && (rc = adm_level(c->level, &lvl)) != ADM_OK)
        return rc;
    return adm_write(c, false, adm_do_outbound_add, NULL);
}

/* Removes one entry, naming it when it is not there. */
static int adm_do_outbound_remove(struct adm_ctx *c, struct store_txn *txn,
                                  void *arg)
{
    char dom[ADDR_DOMAIN_MAX + 2];
    int rc;

    if (adm_tenant(txn, c->args[0], NULL) != ADM_OK ||
        adm_domain(c->args[1], true, dom, sizeof(dom)) != ADM_OK)
        return ADM_FAIL;
    rc = store_outbound_remove(txn, c->args[0], dom);
    if (rc == STORE_ENOTFOUND)
        return adm_err("tenant '%s' has no outbound entry for '%s'", c->args[0],
                       dom);
    if (rc < 0)
        return adm_store_err(rc, "outbound remove");
    return ADM_OK;
}

int adm_cmd_outbound_remove(struct adm_ctx *c)
{
    return adm_write(c, false, adm_do_outbound_remove, NULL);
}

/* Shared by the list commands: prints one field of the tenant's JSON. */
static int adm_list_part(struct adm_ctx *c, const char *part, const char *field,
                         const char *title)
{
    struct store *st;
    struct store_txn *txn;
    struct tenant_info t;
    json_t *full = NULL, *v;
    int rc;

    if (adm_read_begin(c, &st, &txn) != ADM_OK)
        return ADM_FAIL;
    rc = adm_tenant(txn, c->args[0], &t);
    if (rc == ADM_OK)
        rc = adm_tenant_json(txn, &t, &full);
    adm_read_end(st, txn);
    if (rc != ADM_OK)
        return rc;

    v = json_incref(json_object_get(json_object_get(full, part), field));
    json_decref(full);
    if (c->json)
        return adm_json_out(json_pack("{s:s, s:o}", "tenant", t.name, field, v),
                            stdout, true);
    adm_print_titled(stdout, title, v);
    json_decref(v);
    return ADM_OK;
}

int adm_cmd_outbound_list(struct adm_ctx *c)
{
    return adm_list_part(c, "outbound", "domains", "outbound domains");
}

/* ---- inbound ---- */

/* The mailbox address, normalised, with a clear message when unusable. */
static int adm_mailbox_arg(const char *in, struct addr *a)
{
    if (in[0] == '<' || in[0] == '@' || strpbrk(in, "<>"))
        return adm_err("'%s' cannot be a mailbox: give the plain address "
                       "(local@domain), without angle brackets or a source "
                       "route",
                       in);
    if (adm_address(in, a) != ADM_OK)
        return ADM_FAIL;
    if (!addr_local_is_safe(a->local))
        return adm_err("'%s' cannot be a mailbox: its local part must be a "
                       "plain dot-atom (letters, digits, !#$%%&'*+=?^_`{|}~-"
                       " and single dots)",
                       in);
    return ADM_OK;
}

/* Registers a mailbox; the store picks its Maildir folder. */
static int adm_do_mailbox_add(struct adm_ctx *c, struct store_txn *txn,
                              void *arg)
{
    char owner[TENANT_MAX + 1], folder[ADDR_MAX + 1];
    struct addr a;
    int rc;

    if (adm_tenant(txn, c->args[0], NULL) != ADM_OK ||
        adm_mailbox_arg(c->args[1], &a) != ADM_OK)
        return ADM_FAIL;
    if (store_mailbox_lookup(txn, a.full, owner, folder, sizeof(folder)) == 0)
        return adm_err("mailbox '%s' is already registered to tenant '%s'",
                       a.full, owner);
    rc = store_mailbox_add(txn, c->args[0], a.full);
    if (rc == STORE_EEXIST)
        return adm_err("'%s' is in another tenant's own domain", a.full);
    if (rc == STORE_EINVAL)
        return adm_err("'%s' cannot be a mailbox of '%s': its domain must "
                       "be a name and the address at most 255 bytes",
                       a.full, c->args[0]);
    if (rc < 0)
        return adm_store_err(rc, "inbound mailbox add");
    return ADM_OK;
}

int adm_cmd_mailbox_add(struct adm_ctx *c)
{
    return adm_write(c, false, adm_do_mailbox_add, NULL);
}

/* Removes one of the tenant's mailboxes. */
static int adm_do_mailbox_remove(struct adm_ctx *c, struct store_txn *txn,
                                 void *arg)
{
    struct addr a;
    int rc;

    if (adm_tenant(txn, c->args[0], NULL) != ADM_OK ||
        adm_address(c->args[1], &a) != ADM_OK)
        return ADM_FAIL;
    rc = store_mailbox_remove(txn, c->args[0], a.full);
    if (rc == STORE_ENOTFOUND)
        return adm_err("tenant '%s' has no mailbox '%s'", c->args[0], a.full);
    if (rc < 0)
        return adm_store_err(rc, "inbound mailbox remove");
    return ADM_OK;
}

int adm_cmd_mailbox_remove(struct adm_ctx *c)
{
    return adm_write(c, false, adm_do_mailbox_remove, NULL);
}

int adm_cmd_mailbox_list(struct adm_ctx *c)
{
    return adm_list_part(c, "inbound", "mailboxes",
                         "mailboxes (address, Maildir folder)");
}

struct adm_allow {
    bool on;
    bool has_action;
    enum in_action action;
};

/* Switches the allow-list, keeping the action unless one was given. */
static int adm_do_allowlist(struct adm_ctx *c, struct store_txn *txn, void *arg)
{
    struct adm_allow *al = arg;
    struct tenant_info t;
    int rc;

    if (adm_tenant(txn, c->args[0], &t) != ADM_OK)
        return ADM_FAIL;
    rc = store_allowlist(txn, t.name, al->on,
                         al->has_action ? al->action : t.allowlist_action);
    if (rc < 0)
        return adm_store_err(rc, "inbound allowlist");
    return ADM_OK;
}

/* Checks on|off and --action before the store is opened. */
int adm_cmd_allowlist(struct adm_ctx *c)
{
    struct adm_allow al = {0};

    if (strcmp(c->args[1], "on") && strcmp(c->args[1], "off"))
        return adm_usage("inbound allowlist: '%s' is not on or off",
                         c->args[1]);
    al.on = !strcmp(c->args[1], "on");
    if (c->action) {
        al.has_action = true;
        if (!strcmp(c->action, "reject"))
            al.action = IN_REJECT;
        else if (!strcmp(c->action, "discard"))
            al.action = IN_DISCARD;
        else
            return adm_usage("inbound allowlist: unknown action '%s' "
                             "(reject or discard)",
                             c->action);
    }
    return adm_write(c, false, adm_do_allowlist, &al);
}

/* Adds (arg not NULL) or removes a trusted sender domain. */
static int adm_do_trust(struct adm_ctx *c, struct store_txn *txn, void *arg)
{
    bool add = arg != NULL;
    char dom[ADDR_DOMAIN_MAX + 2];
    int rc;

    if (adm_tenant(txn, c->args[0], NULL) != ADM_OK ||
        adm_domain(c->args[1], true, dom, sizeof(dom)) != ADM_OK)
        return ADM_FAIL;
    rc = add ? store_trust_add(txn, c->args[0], dom)
             : store_trust_remove(txn, c->args[0], dom);
    if (rc == STORE_ENOTFOUND && !add)
        return adm_err("tenant '%s' does not trust '%s'", c->args[0], dom);
    if (rc == STORE_EEXIST && add)
        return ADM_OK; /* trusting twice is no error */
    if (rc < 0)
        return adm_store_err(rc, add ? "inbound trust" : "inbound untrust");
    return ADM_OK;
}

int adm_cmd_trust(struct adm_ctx *c)
{
    return adm_write(c, false, adm_do_trust, c);
}

int adm_cmd_untrust(struct adm_ctx *c)
{
    return adm_write(c, false, adm_do_trust, NULL);
}

/* Sets whether the tenant's mailboxes need a TLS session. */
static int adm_do_inbound_tls(struct adm_ctx *c, struct store_txn *txn,
                              void *arg)
{
    int rc;

    if (adm_tenant(txn, c->args[0], NULL) != ADM_OK)
        return ADM_FAIL;
    rc = store_inbound_tls(txn, c->args[0], !strcmp(c->args[1], "require"));
    if (rc < 0)
        return adm_store_err(rc, "inbound tls");
    return ADM_OK;
}

/* Checks may|require before the store is opened. */
int adm_cmd_inbound_tls(struct adm_ctx *c)
{
    if (strcmp(c->args[1], "may") && strcmp(c->args[1], "require"))
        return adm_usage("inbound tls: '%s' is not may or require", c->args[1]);
    return adm_write(c, false, adm_do_inbound_tls, NULL);
}

/* ---- routes ---- */

int adm_route_host(const char *in, char *out, size_t outlen)
{
    unsigned char bin[16];

    if (strlen(in) >= outlen)
        return -1;
    if (inet_pton(AF_INET6, in, bin) == 1 || inet_pton(AF_INET, in, bin) == 1) {
        memcpy(out, in, strlen(in) + 1);
        return 0;
    }
    if (strchr(in, ':') || in[0] == '.' || in[0] == '[')
        return -1;
    return addr_domain_norm(in, 0, out, outlen) < 0 ? -1 : 0;
}

/* Parses "host:port" or "[ipv6]:port"; host is a name or an IP address. */
static int adm_hostport(const char *in, char *host, size_t hostlen,
                        unsigned *port)
{
    const char *colon = strrchr(in, ':'), *h = in;
    size_t hlen = colon ? (size_t)(colon - in) : 0;
    char tmp[ADDR_DOMAIN_MAX + 2];
    unsigned long p;
    char *end;

    if (!colon || hlen == 0 || hlen >= sizeof(tmp))
        return adm_err("route: '%s' is not HOST:PORT", in);
    if (in[0] == '[' && colon[-1] == ']') {
        h = in + 1;
        hlen -= 2;
    }
    memcpy(tmp, h, hlen);
    tmp[hlen] = '\0';
    p = strtoul(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end || p < 1 || p > 65535)
        return adm_err("route: port '%s' is out of range (1 to 65535)",
                       colon + 1);
    *port = (unsigned)p;
    if (h == in && strchr(tmp, ':'))
        return adm_err("route: write an IPv6 address as [ADDRESS]:PORT");
    if (h != in && !strchr(tmp, ':'))
        return adm_err("route: '[%s]' is not an IPv6 address", tmp);
    if (adm_route_host(tmp, host, hostlen) < 0)
        return adm_err("route: '%s' is not a host name or an IP address", tmp);
    return ADM_OK;
}

/* Adds or replaces the route of a domain. */
static int adm_do_route_add(struct adm_ctx *c, struct store_txn *txn, void *arg)
{
    char dom[ADDR_DOMAIN_MAX + 2], host[ADDR_DOMAIN_MAX + 2];
    unsigned port = 0;
    int rc;

    if (adm_domain(c->args[0], true, dom, sizeof(dom)) != ADM_OK ||
        adm_hostport(c->args[1], host, sizeof(host), &port) != ADM_OK)
        return ADM_FAIL;
    if ((rc = store_route_add(txn, dom, host, port)) < 0)
        return adm_store_err(rc, "route add");
    return ADM_OK;
}

int adm_cmd_route_add(struct adm_ctx *c)
{
    return adm_write(c, false, adm_do_route_add, NULL);
}

/* Removes a route, naming it when it is not there. */
static int adm_do_route_remove(struct adm_ctx *c, struct store_txn *txn,
                               void *arg)
{
    char dom[ADDR_DOMAIN_MAX + 2];
    int rc;

    if (adm_domain(c->args[0], true, dom, sizeof(dom)) != ADM_OK)
        return ADM_FAIL;
    rc = store_route_remove(txn, dom);
    if (rc == STORE_ENOTFOUND)
        return adm_err("no route for '%s'", dom);
    if (rc < 0)
        return adm_store_err(rc, "route remove");
    return ADM_OK;
}

int adm_cmd_route_remove(struct adm_ctx *c)
{
    return adm_write(c, false, adm_do_route_remove, NULL);
}

/* One route as a table row, IPv6 hosts in brackets. */
static int adm_route_row(const char *domain, const char *host, unsigned port,
                         void *ctx)
{
    char hp[ADDR_DOMAIN_MAX + 16];

    snprintf(hp, sizeof(hp), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host,
             port);
    adm_table_row(ctx, domain, hp);
    return 0;
}

int adm_route_print(struct store_txn *txn)
{
    struct adm_table t;
    int rc;

    adm_table_init(&t, 2);
    adm_table_row(&t, "DOMAIN", "NEXT HOP");
    rc = store_route_foreach(txn, adm_route_row, &t);
    adm_table_print(&t, stdout);
    return rc < 0 ? adm_store_err(rc, "routes") : ADM_OK;
}

static int adm_route_json(const char *domain, const char *host, unsigned port,
                          void *ctx)
{
    return json_array_append_new(ctx,
                                 json_pack("{s:s, s:s, s:i}", "domain", domain,
                                           "host", host, "port", (int)port));
}

/* route list: a table, or {"routes": [...]} with --json. */
int adm_cmd_route_list(struct adm_ctx *c)
{
    struct store *st;
    struct store_txn *txn;
    json_t *routes;
    int rc;

    if (adm_read_begin(c, &st, &txn) != ADM_OK)
        return ADM_FAIL;
    if (!c->json) {
        rc = adm_route_print(txn);
        adm_read_end(st, txn);
        return rc;
    }
    routes = json_array();
    rc = store_route_foreach(txn, adm_route_json, routes);
    adm_read_end(st, txn);
    if (rc < 0) {
        json_decref(routes);
        return adm_store_err(rc, "routes");
    }
    return adm_json_out(json_pack("{s:o}", "routes", routes), stdout, false);
}
