/* init, tenant, settings and show commands of tlsgate-admin. */
#include <stdlib.h>
#include <string.h>

#include "admin.h"

/* Sets the platform domain; a second init must name the same domain. */
static int adm_do_init(struct adm_ctx *c, struct store_txn *txn, void *arg)
{
    char dom[ADDR_DOMAIN_MAX + 1], cur[ADDR_DOMAIN_MAX + 1];
    int rc;

    if (adm_domain(c->platform, false, dom, sizeof(dom)) != ADM_OK)
        return ADM_FAIL;
    rc = store_setting_get(txn, "platform_domain", cur, sizeof(cur));
    if (rc == 0 && strcmp(cur, dom) != 0)
        return adm_err("init: the store is already initialised with "
                       "platform domain %s (use 'settings set "
                       "platform_domain')",
                       cur);
    if (rc == 0)
        return ADM_OK;
    if ((rc = store_init(txn, dom)) < 0)
        return adm_store_err(rc, "init");
    return ADM_OK;
}

/* init needs --platform-domain; it may create the store folder. */
int adm_cmd_init(struct adm_ctx *c)
{
    if (c->platform == NULL)
        return adm_usage("init: --platform-domain DOMAIN is required");
    return adm_write(c, true, adm_do_init, NULL);
}

/* Adds a tenant, telling "exists" apart from "From taken". */
static int adm_do_tenant_add(struct adm_ctx *c, struct store_txn *txn,
                             void *arg)
{
    const char *name = c->args[0];
    struct tenant_info t;
    struct addr from;
    int rc;

    if (adm_tenant_name(name) != ADM_OK)
        return ADM_FAIL;
    if (c->from && adm_address(c->from, &from) != ADM_OK)
        return ADM_FAIL;
    if (store_tenant_get(txn, name, &t) == 0)
        return adm_err("tenant '%s' already exists", name);
    rc = store_tenant_add(txn, name, c->from ? from.full : NULL);
    if (rc == STORE_EEXIST)
        return adm_err("From address '%s' is another tenant's From or in "
                       "another tenant's own domain",
                       from.full);
    if (rc == STORE_EINVAL)
        return adm_err("tenant name '%s' is too long for the platform "
                       "domain (%s.<platform domain> must fit in %d bytes)",
                       name, name, ADDR_DOMAIN_MAX);
    if (rc < 0)
        return adm_store_err(rc, "tenant add");
    return ADM_OK;
}

int adm_cmd_tenant_add(struct adm_ctx *c)
{
    return adm_write(c, false, adm_do_tenant_add, NULL);
}

/* Removes a tenant with its entries, mailboxes and From. */
static int adm_do_tenant_remove(struct adm_ctx *c, struct store_txn *txn,
                                void *arg)
{
    int rc;

    if (adm_tenant(txn, c->args[0], NULL) != ADM_OK)
        return ADM_FAIL;
    if ((rc = store_tenant_remove(txn, c->args[0])) < 0)
        return adm_store_err(rc, "tenant remove");
    return ADM_OK;
}

int adm_cmd_tenant_remove(struct adm_ctx *c)
{
    return adm_write(c, false, adm_do_tenant_remove, NULL);
}

/* Sets the From address, or back to the default. */
static int adm_do_tenant_set(struct adm_ctx *c, struct store_txn *txn,
                             void *arg)
{
    struct addr from;
    int rc;

    if (adm_tenant(txn, c->args[0], NULL) != ADM_OK)
        return ADM_FAIL;
    if (c->from && adm_address(c->from, &from) != ADM_OK)
        return ADM_FAIL;
    rc = store_tenant_set_from(txn, c->args[0], c->from ? from.full : NULL);
    if (rc == STORE_EEXIST)
        return adm_err("From address '%s' is another tenant's From or in "
                       "another tenant's own domain",
                       from.full);
    if (rc < 0)
        return adm_store_err(rc, "tenant set");
    return ADM_OK;
}

int adm_cmd_tenant_set(struct adm_ctx *c)
{
    if (!c->from == !c->default_from)
        return adm_usage("tenant set: give either --from ADDRESS or "
                         "--default-from");
    return adm_write(c, false, adm_do_tenant_set, NULL);
}

/* One tenant_info as the fields tenant list and tenant show share. */
static json_t *adm_tenant_summary(const struct tenant_info *t)
{
    return json_pack(
        "{s:s, s:s, s:b, s:s, s:s, s:s, s:b, s:s}", "name", t->name, "from",
        t->from, "from_is_default", t->from_is_default, "mode",
        out_mode_name(t->mode), "default_level",
        tls_level_name(t->default_level), "inbound_tls",
        adm_inbound_tls_name(t->inbound_tls_required), "allowlist",
        t->allowlist, "action", in_action_name(t->allowlist_action));
}

/* The tenant list row: the summary plus counts of its entries. */
static int adm_tenant_row(struct store_txn *txn, const struct tenant_info *t,
                          json_t **out)
{
    json_t *full, *ob, *ib;

    if (adm_tenant_json(txn, t, &full) != ADM_OK)
        return ADM_FAIL;
    ob = json_object_get(full, "outbound");
    ib = json_object_get(full, "inbound");
    *out = adm_tenant_summary(t);
    json_object_set_new(
        *out, "domains",
        json_integer(json_object_size(json_object_get(ob, "domains"))));
    json_object_set_new(
        *out, "mailboxes",
        json_integer(json_object_size(json_object_get(ib, "mailboxes"))));
    json_object_set_new(
        *out, "trusted",
        json_integer(json_array_size(json_object_get(ib, "trusted"))));
    json_decref(full);
    return ADM_OK;
}

static int adm_by_name(const void *a, const void *b)
{
    return strcmp(((const struct tenant_info *)a)->name,
                  ((const struct tenant_info *)b)->name);
}

/* Prints the tenant rows as a table. */
static void adm_tenant_table(json_t *rows)
{
    struct adm_table t;
    size_t k;
    json_t *r;

    adm_table_init(&t, 7);
    adm_table_row(&t, "NAME", "MODE", "LEVEL", "DOMAINS", "MAILBOXES",
                  "INBOUND", "FROM");
    json_array_foreach(rows, k, r)
    {
        char dom[24], mbox[24], in[48];

        snprintf(dom, sizeof(dom), "%lld",
                 (long long)json_integer_value(json_object_get(r, "domains")));
        snprintf(
            mbox, sizeof(mbox), "%lld",
            (long long)json_integer_value(json_object_get(r, "mailboxes")));
        snprintf(in, sizeof(in), "tls=%s%s%s",
                 json_string_value(json_object_get(r, "inbound_tls")),
                 json_is_true(json_object_get(r, "allowlist")) ? " allowlist="
                                                               : "",
                 json_is_true(json_object_get(r, "allowlist"))
                     ? json_string_value(json_object_get(r, "action"))
                     : "");
        adm_table_row(
            &t, json_string_value(json_object_get(r, "name")),
            json_string_value(json_object_get(r, "mode")),
            strcmp(json_string_value(json_object_get(r, "mode")), "all")
                ? "-"
                : json_string_value(json_object_get(r, "default_level")),
            dom, mbox, in, json_string_value(json_object_get(r, "from")));
    }
    adm_table_print(&t, stdout);
}

/* tenant list: one row per tenant, sorted by name. */
int adm_cmd_tenant_list(struct adm_ctx *c)
{
    struct store *st;
    struct store_txn *txn;
    struct tenant_info *v = NULL;
    json_t *rows, *row;
    size_t n = 0;
    int rc = ADM_OK;

    if (adm_read_begin(c, &st, &txn) != ADM_OK)
        return ADM_FAIL;
    rows = json_array();
    if (adm_tenants(txn, &v, &n) != ADM_OK)
        rc = ADM_FAIL;
    else
        qsort(v, n, sizeof(*v), adm_by_name);
    for (size_t k = 0; rc == ADM_OK && k < n; k++)
        if ((rc = adm_tenant_row(txn, &v[k], &row)) == ADM_OK)
            json_array_append_new(rows, row);
    adm_read_end(st, txn);
    free(v);
    if (rc != ADM_OK) {
        json_decref(rows);
        return rc;
    }
    if (c->json)
        return adm_json_out(json_pack("{s:o}", "tenants", rows), stdout, false);
    adm_tenant_table(rows);
    json_decref(rows);
    return ADM_OK;
}

static int adm_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Prints a titled list: an array one item a line, an object as sorted
 * "key  value" columns, or "(none)". */
void adm_print_titled(FILE *f, const char *title, json_t *list)
{
    size_t n =
        json_is_array(list) ? json_array_size(list) : json_object_size(list);
    const char **keys = malloc((n ? n : 1) * sizeof(*keys)), *key;
    struct adm_table t;
    size_t k = 0;
    json_t *v;

    if (keys == NULL)
        abort();
    fprintf(f, "%s:\n", title);
    if (n == 0)
        fprintf(f, "  (none)\n");
    if (json_is_array(list))
        json_array_foreach(list, k, v)
        {
            fprintf(f, "  %s\n", json_string_value(v));
        }
    else {
        json_object_foreach(list, key, v)
        {
            keys[k++] = key;
        }
        qsort(keys, n, sizeof(*keys), adm_cmp_str);
        adm_table_init(&t, 2);
        for (k = 0; k < n; k++)
            adm_table_row(&t, keys[k],
                          json_string_value(json_object_get(list, keys[k])));
        for (k = 0; k < t.nrows * 2; k += 2) {
            char *indented;

            if (asprintf(&indented, "  %s", t.cells[k]) < 0)
                abort();
            free(t.cells[k]);
            t.cells[k] = indented;
        }
        adm_table_print(&t, f);
    }
    free(keys);
}

int adm_tenant_print(struct store_txn *txn, const struct tenant_info *t,
                     FILE *f)
{
    json_t *full, *ob, *ib;
    struct adm_table tab;
    char from[ADDR_MAX + 16], allow[64], shadow[64] = "off";

    if (adm_tenant_json(txn, t, &full) != ADM_OK)
        return ADM_FAIL;
    ob = json_object_get(full, "outbound");
    ib = json_object_get(full, "inbound");
    if (t->shadow_mode != MODE_OFF)
        snprintf(shadow, sizeof(shadow), "mode %s, level %s",
                 out_mode_name(t->shadow_mode),
                 tls_level_name(t->shadow_level));
    snprintf(from, sizeof(from), "%s%s", t->from,
             t->from_is_default ? " (default)" : "");
    snprintf(allow, sizeof(allow), "%s, action %s", t->allowlist ? "on" : "off",
             in_action_name(t->allowlist_action));

    adm_table_init(&tab, 2);
    adm_table_row(&tab, "tenant", t->name);
    adm_table_row(&tab, "from", from);
    adm_table_row(&tab, "outbound mode", out_mode_name(t->mode));
    adm_table_row(&tab, "default level", tls_level_name(t->default_level));
    adm_table_row(&tab, "shadow", shadow);
    adm_table_row(&tab, "inbound tls",
                  adm_inbound_tls_name(t->inbound_tls_required));
    adm_table_row(&tab, "allowlist", allow);
    adm_table_print(&tab, f);

    adm_print_titled(f, "outbound domains", json_object_get(ob, "domains"));
    adm_print_titled(f, "mailboxes (address, Maildir folder)",
                     json_object_get(ib, "mailboxes"));
    adm_print_titled(f, "trusted domains", json_object_get(ib, "trusted"));
    json_decref(full);
    return ADM_OK;
}

/* tenant show --json: name and From, then the outbound and inbound
 * objects of the export document. */
static int adm_tenant_show_json(struct store_txn *txn,
                                const struct tenant_info *t)
{
    json_t *full, *doc;

    if (adm_tenant_json(txn, t, &full) != ADM_OK)
        return ADM_FAIL;
    doc = json_pack("{s:s, s:s, s:b, s:O, s:O}", "name", t->name, "from",
                    t->from, "from_is_default", t->from_is_default, "outbound",
                    json_object_get(full, "outbound"), "inbound",
                    json_object_get(full, "inbound"));
    json_decref(full);
    return adm_json_out(doc, stdout, true); /* key order of the export */
}

/* tenant show: everything of one tenant, text or JSON. */
int adm_cmd_tenant_show(struct adm_ctx *c)
{
    struct store *st;
    struct store_txn *txn;
    struct tenant_info t;
    int rc;

    if (adm_read_begin(c, &st, &txn) != ADM_OK)
        return ADM_FAIL;
    rc = adm_tenant(txn, c->args[0], &t);
    if (rc == ADM_OK && c->json)
        rc = adm_tenant_show_json(txn, &t);
    else if (rc == ADM_OK)
        rc = adm_tenant_print(txn, &t, stdout);
    adm_read_end(st, txn);
    return rc;
}

static int adm_add_setting_row(const char *key, const char *value, void *ctx)
{
    adm_table_row(ctx, key, value);
    return 0;
}

static int adm_add_setting_json(const char *key, const char *value, void *ctx)
{
    return json_object_set_new(ctx, key, json_string(value));
}

/* Prints the settings: text as "key  value" lines, or a JSON object. */
static int adm_settings_print(struct store_txn *txn, bool json)
{
    struct adm_table t;
    json_t *doc;
    int rc;

    if (json) {
        doc = json_object();
        rc = store_setting_foreach(txn, adm_add_setting_json, doc);
        if (rc < 0) {
            json_decref(doc);
            return adm_store_err(rc, "settings");
        }
        return adm_json_out(json_pack("{s:o}", "settings", doc), stdout, true);
    }
    adm_table_init(&t, 2);
    rc = store_setting_foreach(txn, adm_add_setting_row, &t);
    adm_table_print(&t, stdout);
    return rc < 0 ? adm_store_err(rc, "settings") : ADM_OK;
}

int adm_cmd_settings_show(struct adm_ctx *c)
{
    struct store *st;
    struct store_txn *txn;
    int rc;

    if (adm_read_begin(c, &st, &txn) != ADM_OK)
        return ADM_FAIL;
    rc = adm_settings_print(txn, c->json);
    adm_read_end(st, txn);
    return rc;
}

/* Sets one global setting; the store refuses unknown keys. */
static int adm_do_settings_set(struct adm_ctx *c, struct store_txn *txn,
                               void *arg)
{
    const char *key = c->args[0], *value = c->args[1];
    char dom[ADDR_DOMAIN_MAX + 1];
    int rc;

    if (!strcmp(key, "platform_domain")) {
        if (adm_domain(value, false, dom, sizeof(dom)) != ADM_OK)
            return ADM_FAIL;
        value = dom;
    }
    rc = store_setting_set(txn, key, value);
    if (rc == STORE_EINVAL)
        return adm_err("settings set: unknown setting or bad value: %s = "
                       "'%s'",
                       key, value);
    if (rc < 0)
        return adm_store_err(rc, "settings set");
    return ADM_OK;
}

int adm_cmd_settings_set(struct adm_ctx *c)
{
    return adm_write(c, false, adm_do_settings_set, NULL);
}

/* show: settings, every tenant in full, routes. */
static int adm_show_text(struct store_txn *txn)
{
    json_t *settings = json_object();
    struct tenant_info *v = NULL;
    size_t n = 0;
    int rc = store_setting_foreach(txn, adm_add_setting_json, settings);

    if (rc < 0) {
        json_decref(settings);
        return adm_store_err(rc, "settings");
    }
    adm_print_titled(stdout, "settings", settings);
    json_decref(settings);
    if (adm_tenants(txn, &v, &n) != ADM_OK)
        return ADM_FAIL;
    qsort(v, n, sizeof(*v), adm_by_name);
    for (size_t k = 0; rc == ADM_OK && k < n; k++) {
        printf("\n");
        rc = adm_tenant_print(txn, &v[k], stdout);
    }
    free(v);
    if (rc == ADM_OK) {
        printf("\n");
        rc = adm_route_print(txn);
    }
    return rc;
}

/* show: the whole policy as text, or the export document. */
int adm_cmd_show(struct adm_ctx *c)
{
    struct store *st;
    struct store_txn *txn;
    json_t *doc;
    int rc;

    if (adm_read_begin(c, &st, &txn) != ADM_OK)
        return ADM_FAIL;
    if (c->json) {
        rc = adm_export_build(txn, &doc);
        if (rc == ADM_OK)
            rc = adm_json_out(doc, stdout, true);
    } else
        rc = adm_show_text(txn);
    adm_read_end(st, txn);
    return rc;
}
