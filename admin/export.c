/*
 * The whole policy as one JSON document (export, show --json, tenant show)
 * and the text form of show. The format is documented in docs/admin.md.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"

const char *adm_inbound_tls_name(bool required)
{
    return required ? "require" : "may";
}

void adm_reply_str(const struct inbound_decision *d, char *out, size_t n)
{
    snprintf(out, n, "%d %s", d->code, d->enhanced);
}

/* Callbacks adding store rows to JSON values; -1 stops on out of memory. */
static int adm_add_level(const char *domain, enum tls_level lvl, void *ctx)
{
    return json_object_set_new(ctx, domain, json_string(tls_level_name(lvl)));
}

static int adm_add_str(const char *s, void *ctx)
{
    return json_array_append_new(ctx, json_string(s));
}

static int adm_add_setting(const char *key, const char *value, void *ctx)
{
    return json_object_set_new(ctx, key, json_string(value));
}

static int adm_add_route(const char *domain, const char *host, unsigned port,
                         void *ctx)
{
    return json_object_set_new(
        ctx, domain, json_pack("{s:s, s:i}", "host", host, "port", (int)port));
}

static int adm_strcmp(const void *a, const void *b)
{
    return strcmp(json_string_value(*(json_t *const *)a),
                  json_string_value(*(json_t *const *)b));
}

/* Sorts an array of JSON strings in place (byte order). */
static void adm_sort_strings(json_t *arr)
{
    size_t n = json_array_size(arr);
    json_t **v = malloc((n ? n : 1) * sizeof(*v));

    if (v == NULL)
        abort();
    for (size_t k = 0; k < n; k++)
        v[k] = json_incref(json_array_get(arr, k));
    qsort(v, n, sizeof(*v), adm_strcmp);
    json_array_clear(arr);
    for (size_t k = 0; k < n; k++)
        json_array_append_new(arr, v[k]);
    free(v);
}

/* The "outbound" object of a tenant. */
static int adm_outbound_json(struct store_txn *txn, const struct tenant_info *t,
                             json_t **out)
{
    json_t *domains = json_object();
    int rc;

    rc = store_outbound_foreach(txn, t->name, adm_add_level, domains);
    if (rc < 0) {
        json_decref(domains);
        return adm_store_err(rc, t->name);
    }
    *out = json_pack("{s:s, s:s, s:o}", "mode", out_mode_name(t->mode),
                     "default_level", tls_level_name(t->default_level),
                     "domains", domains);
    if (*out && t->shadow_mode != MODE_OFF) /* absent when off */
        json_object_set_new(*out, "shadow",
                            json_pack("{s:s, s:s}", "level",
                                      tls_level_name(t->shadow_level), "mode",
                                      out_mode_name(t->shadow_mode)));
    return *out ? ADM_OK : adm_err("out of memory");
}

/* The tenant's mailboxes as an object: address -> Maildir folder. */
static int adm_mailboxes_json(struct store_txn *txn, const char *tenant,
                              json_t **out)
{
    json_t *list = json_array(), *v;
    char owner[TENANT_MAX + 1], folder[ADDR_MAX + 1];
    size_t k;
    int rc = store_mailbox_foreach(txn, tenant, adm_add_str, list);

    *out = json_object();
    json_array_foreach(list, k, v)
    {
        if (rc < 0)
            break;
        rc = store_mailbox_lookup(txn, json_string_value(v), owner, folder,
                                  sizeof(folder));
        if (rc == 0)
            rc = json_object_set_new(*out, json_string_value(v),
                                     json_string(folder));
    }
    json_decref(list);
    if (rc < 0) {
        json_decref(*out);
        return adm_store_err(rc, tenant);
    }
    return ADM_OK;
}

/* The "inbound" object of a tenant. */
static int adm_inbound_json(struct store_txn *txn, const struct tenant_info *t,
                            json_t **out)
{
    json_t *mbox, *trusted = json_array();
    int rc;

    if (adm_mailboxes_json(txn, t->name, &mbox) != ADM_OK) {
        json_decref(trusted);
        return ADM_FAIL;
    }
    rc = store_trust_foreach(txn, t->name, adm_add_str, trusted);
    if (rc < 0) {
        json_decref(mbox);
        json_decref(trusted);
        return adm_store_err(rc, t->name);
    }
    adm_sort_strings(trusted);
    *out =
        json_pack("{s:s, s:b, s:s, s:o, s:o}", "tls",
                  adm_inbound_tls_name(t->inbound_tls_required), "allowlist",
                  t->allowlist, "action", in_action_name(t->allowlist_action),
                  "trusted", trusted, "mailboxes", mbox);
    return *out ? ADM_OK : adm_err("out of memory");
}

int adm_tenant_json(struct store_txn *txn, const struct tenant_info *t,
                    json_t **out)
{
    json_t *ob, *ib;

    if (adm_outbound_json(txn, t, &ob) != ADM_OK)
        return ADM_FAIL;
    if (adm_inbound_json(txn, t, &ib) != ADM_OK) {
        json_decref(ob);
        return ADM_FAIL;
    }
    *out = json_pack("{s:o, s:o}", "outbound", ob, "inbound", ib);
    return *out ? ADM_OK : adm_err("out of memory");
}

struct adm_tlist {
    struct tenant_info *v;
    size_t n, cap;
};

static int adm_tlist_add(const struct tenant_info *t, void *ctx)
{
    struct adm_tlist *l = ctx;

    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
        if (l->v == NULL)
            abort();
    }
    l->v[l->n++] = *t;
    return 0;
}

/* Every tenant, collected first so no store walk is nested in another. */
int adm_tenants(struct store_txn *txn, struct tenant_info **out, size_t *n)
{
    struct adm_tlist l = {0};
    int rc = store_tenant_foreach(txn, adm_tlist_add, &l);

    if (rc < 0) {
        free(l.v);
        return adm_store_err(rc, "tenants");
    }
    *out = l.v;
    *n = l.n;
    return ADM_OK;
}

/* The "tenants" object: name -> {from, outbound, inbound}. */
static int adm_tenants_json(struct store_txn *txn, json_t *tenants)
{
    struct tenant_info *v = NULL;
    size_t n = 0;
    json_t *tj;

    if (adm_tenants(txn, &v, &n) != ADM_OK)
        return ADM_FAIL;
    for (size_t k = 0; k < n; k++) {
        if (adm_tenant_json(txn, &v[k], &tj) != ADM_OK) {
            free(v);
            return ADM_FAIL;
        }
        json_object_set_new(tj, "from",
                            v[k].from_is_default ? json_null()
                                                 : json_string(v[k].from));
        json_object_set_new(tenants, v[k].name, tj);
    }
    free(v);
    return ADM_OK;
}

int adm_export_build(struct store_txn *txn, json_t **out)
{
    json_t *settings = json_object(), *tenants = json_object();
    json_t *routes = json_object();
    int rc;

    rc = store_setting_foreach(txn, adm_add_setting, settings);
    if (rc >= 0)
        rc = store_route_foreach(txn, adm_add_route, routes);
    if (rc < 0 || adm_tenants_json(txn, tenants) != ADM_OK) {
        if (rc < 0)
            adm_store_err(rc, "export");
        json_decref(settings);
        json_decref(tenants);
        json_decref(routes);
        return ADM_FAIL;
    }
    *out = json_pack("{s:s, s:i, s:o, s:o, s:o}", "format", "tlsgate-policy",
                     "version", ADM_EXPORT_VERSION, "settings", settings,
                     "tenants", tenants, "routes", routes);
    return *out ? ADM_OK : adm_err("out of memory");
}

/* Writes the document to path through a temporary file and a rename, so a
 * failed export never leaves half a file. */
static int adm_export_file(json_t *doc, const char *path)
{
    char tmp[4096];
    FILE *f;
    int rc;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return adm_err("export: file name too long");
    if ((f = fopen(tmp, "w")) == NULL) {
        json_decref(doc);
        return adm_err("export: cannot create %s: %m", tmp);
    }
    rc = adm_json_out(doc, f, true);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        rc = adm_err("export: cannot write %s: %m", tmp);
    if (fclose(f) != 0 && rc == ADM_OK)
        rc = adm_err("export: cannot write %s: %m", tmp);
    if (rc == ADM_OK && rename(tmp, path) != 0)
        rc = adm_err("export: cannot rename %s to %s: %m", tmp, path);
    if (rc != ADM_OK)
        unlink(tmp);
    return rc;
}

int adm_cmd_export(struct adm_ctx *c)
{
    struct store *st;
    struct store_txn *txn;
    json_t *doc;
    int rc;

    if (adm_read_begin(c, &st, &txn) != ADM_OK)
        return ADM_FAIL;
    rc = adm_export_build(txn, &doc);
    adm_read_end(st, txn);
    if (rc != ADM_OK)
        return rc;
    if (c->nargs == 0 || !strcmp(c->args[0], "-"))
        return adm_json_out(doc, stdout, true);
    return adm_export_file(doc, c->args[0]);
}
