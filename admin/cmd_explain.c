/* explain outbound / explain inbound: the decision functions the engine
 * uses, run on one read transaction of the store. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

/* Reports a decision function's error for the given inputs. */
static int adm_explain_err(int rc, const char *what, const char *tenant)
{
    if (rc == STORE_ENOTFOUND && tenant)
        return adm_err("no such tenant '%s'", tenant);
    if (rc == STORE_EINVAL)
        return adm_err("explain: malformed %s", what);
    return adm_store_err(rc, "explain");
}

/* explain outbound as aligned "field  value" lines. */
static void adm_outbound_text(const struct outbound_decision *d)
{
    struct adm_table t;
    char gen[24];

    snprintf(gen, sizeof(gen), "%llu", (unsigned long long)d->generation);
    adm_table_init(&t, 2);
    adm_table_row(&t, "tenant", d->tenant);
    adm_table_row(&t, "recipient", d->recipient);
    adm_table_row(&t, "domain", d->domain);
    adm_table_row(&t, "level", tls_level_name(d->level));
    adm_table_row(&t, "required", d->required ? "yes" : "no");
    adm_table_row(&t, "rule", d->rule);
    adm_table_row(&t, "generation", gen);
    if (d->shadow) {
        adm_table_row(&t, "shadow level", tls_level_name(d->shadow_level));
        adm_table_row(&t, "shadow rule", d->shadow_rule);
    }
    adm_table_print(&t, stdout);
}

/* policy_outbound for (tenant, recipient) on one read transaction. */
int adm_cmd_explain_outbound(struct adm_ctx *c)
{
    json_t *doc;
    struct outbound_decision d;
    struct addr a;
    struct store *st;
    struct store_txn *txn;
    int rc;

    if (adm_tenant_name(c->args[0]) != ADM_OK ||
        adm_address(c->args[1], &a) != ADM_OK)
        return ADM_FAIL;
    if (adm_read_begin(c, &st, &txn) != ADM_OK)
        return ADM_FAIL;
    rc = policy_outbound(txn, c->args[0], c->args[1], &d);
    adm_read_end(st, txn);
    if (rc < 0)
        return adm_explain_err(rc, "recipient address", c->args[0]);
    if (!c->json) {
        adm_outbound_text(&d);
        return ADM_OK;
    }
    doc = json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:I}", "tenant", d.tenant,
                    "recipient", d.recipient, "domain", d.domain, "level",
                    tls_level_name(d.level), "required", d.required, "rule",
                    d.rule, "generation", (json_int_t)d.generation);
    if (doc && d.shadow) /* the shadow policy's answer, beside the live one */
        json_object_set_new(doc, "shadow",
                            json_pack("{s:s, s:b, s:s}", "level",
                                      tls_level_name(d.shadow_level),
                                      "required", d.shadow_level >= TLS_ENCRYPT,
                                      "rule", d.shadow_rule));
    return adm_json_out(doc, stdout, false);
}

/* explain inbound as aligned "field  value" lines. */
static void adm_inbound_text(const struct inbound_decision *d, bool tls)
{
    struct adm_table t;
    char gen[24], reply[200];

    snprintf(gen, sizeof(gen), "%llu", (unsigned long long)d->generation);
    snprintf(reply, sizeof(reply), "%d %s %s", d->code, d->enhanced, d->text);
    adm_table_init(&t, 2);
    adm_table_row(&t, "action", in_action_name(d->action));
    adm_table_row(&t, "reply", reply);
    adm_table_row(&t, "tenant", d->tenant[0] ? d->tenant : "-");
    adm_table_row(&t, "mailbox", d->mailbox[0] ? d->mailbox : "-");
    adm_table_row(&t, "tls", tls ? "yes" : "no");
    adm_table_row(&t, "rule", d->rule);
    adm_table_row(&t, "generation", gen);
    adm_table_print(&t, stdout);
}

/* explain inbound --json: the fields docs/admin.md lists. */
static json_t *adm_inbound_json(const struct inbound_decision *d, bool tls)
{
    char reply[32];

    adm_reply_str(d, reply, sizeof(reply));
    return json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:b, s:s, "
                     "s:I}",
                     "action", in_action_name(d->action), "reply", reply,
                     "code", d->code, "enhanced", d->enhanced, "text", d->text,
                     "tenant", d->tenant, "mailbox", d->mailbox, "mailbox_dir",
                     d->mailbox_dir, "tls", tls, "rule", d->rule, "generation",
                     (json_int_t)d->generation);
}

/* policy_inbound for (sender, recipient, tls) on one read transaction. */
int adm_cmd_explain_inbound(struct adm_ctx *c)
{
    struct inbound_decision d;
    struct addr a;
    struct store *st;
    struct store_txn *txn;
    int rc;

    if (addr_parse(c->args[0], &a) < 0)
        return adm_err("explain: malformed sender '%s'", c->args[0]);
    if (adm_address(c->args[1], &a) != ADM_OK)
        return ADM_FAIL;
    if (adm_read_begin(c, &st, &txn) != ADM_OK)
        return ADM_FAIL;
    rc = policy_inbound(txn, c->args[0], c->args[1], c->tls, &d);
    adm_read_end(st, txn);
    if (rc < 0)
        return adm_explain_err(rc, "sender or recipient address", NULL);
    if (!c->json) {
        adm_inbound_text(&d, c->tls);
        return ADM_OK;
    }
    return adm_json_out(adm_inbound_json(&d, c->tls), stdout, false);
}

struct adm_counts {
    size_t tenants, routes;
};

static int adm_count_tenant(const struct tenant_info *t, void *ctx)
{
    ((struct adm_counts *)ctx)->tenants++;
    return 0;
}

static int adm_count_route(const char *d, const char *h, unsigned p, void *ctx)
{
    ((struct adm_counts *)ctx)->routes++;
    return 0;
}

/* status: where the store is, its generation, and how much it holds. */
int adm_cmd_status(struct adm_ctx *c)
{
    char pd[ADDR_DOMAIN_MAX + 1] = "", gen[24], nt[24], nr[24];
    char db[PATH_MAX];
    struct adm_counts n = {0};
    struct store *st;
    struct store_txn *txn;
    struct adm_table t;
    uint64_t g;
    int rc;

    if (adm_read_begin(c, &st, &txn) != ADM_OK)
        return ADM_FAIL;
    /* The absolute folder, whatever form --db took. */
    if (realpath(c->db, db) == NULL)
        snprintf(db, sizeof(db), "%s", c->db);
    g = store_generation(txn);
    store_setting_get(txn, "platform_domain", pd, sizeof(pd));
    rc = store_tenant_foreach(txn, adm_count_tenant, &n);
    if (rc >= 0)
        rc = store_route_foreach(txn, adm_count_route, &n);
    adm_read_end(st, txn);
    if (rc < 0)
        return adm_store_err(rc, "status");
    if (pd[0] == '\0')
        return adm_err("the store %s is not initialised (no platform domain; "
                       "run 'tlsgate-admin init --platform-domain DOMAIN')",
                       db);
    if (c->json)
        return adm_json_out(
            json_pack("{s:s, s:I, s:s, s:I, s:I}", "db", db, "generation",
                      (json_int_t)g, "platform_domain", pd, "tenants",
                      (json_int_t)n.tenants, "routes", (json_int_t)n.routes),
            stdout, false);
    snprintf(gen, sizeof(gen), "%llu", (unsigned long long)g);
    snprintf(nt, sizeof(nt), "%zu", n.tenants);
    snprintf(nr, sizeof(nr), "%zu", n.routes);
    adm_table_init(&t, 2);
    adm_table_row(&t, "db", db);
    adm_table_row(&t, "generation", gen);
    adm_table_row(&t, "platform domain", pd[0] ? pd : "(not set)");
    adm_table_row(&t, "tenants", nt);
    adm_table_row(&t, "routes", nr);
    adm_table_print(&t, stdout);
    return ADM_OK;
}
