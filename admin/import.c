/*
 * import: replaces the whole policy with an export document, in one write
 * transaction. A first pass checks the whole file without touching the
 * store; the second applies it after store_clear. Any failure aborts the
 * transaction, so the store is either the file or unchanged.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "admin.h"

struct adm_import {
    const char *file;                   /* name for messages */
    struct store_txn *txn;              /* NULL in the checking pass */
    const char *tenant;                 /* tenant being read, for messages */
    char platform[ADDR_DOMAIN_MAX + 2]; /* from the file, or "" */
    json_t *doc;
};

/* "import FILE: tenants.acme: message" as the one error line. */
static int imp_err(struct adm_import *im, const char *where, const char *fmt,
                   ...) __attribute__((format(printf, 3, 4)));
static int imp_err(struct adm_import *im, const char *where, const char *fmt,
                   ...)
{
    char msg[600];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (im->tenant)
        return adm_err("import %s: tenants.%s%s%s: %s", im->file, im->tenant,
                       where[0] ? "." : "", where, msg);
    return adm_err("import %s: %s: %s", im->file, where, msg);
}

/* Reads all of f into a malloc'd buffer, refusing more than
 * ADM_IMPORT_MAX bytes (it never holds more than one byte beyond). */
static int imp_read(FILE *f, const char *name, char **out, size_t *len)
{
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap), *bigger;

    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n > ADM_IMPORT_MAX) {
            free(buf);
            return adm_err("import %s: the file is larger than %lu MiB", name,
                           ADM_IMPORT_MAX >> 20);
        }
        if (n < cap)
            continue;
        cap = cap * 2 > ADM_IMPORT_MAX ? ADM_IMPORT_MAX + 1 : cap * 2;
        if ((bigger = realloc(buf, cap)) == NULL)
            free(buf);
        buf = bigger;
    }
    if (buf == NULL)
        return adm_err("import %s: out of memory", name);
    if (ferror(f)) {
        free(buf);
        return adm_err("import %s: cannot read: %s", name, strerror(errno));
    }
    *out = buf;
    *len = n;
    return ADM_OK;
}

/* Loads the file (or stdin for "-") as one JSON document. */
static int imp_load(const char *path, json_t **doc)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    json_error_t jerr;
    struct stat sb;
    char *buf = NULL;
    size_t len = 0;
    int rc;

    if (f == NULL)
        return adm_err("import %s: cannot open: %s", path, strerror(errno));
    if (f != stdin && fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) &&
        (unsigned long)sb.st_size > ADM_IMPORT_MAX) {
        fclose(f);
        return adm_err("import %s: the file is larger than %lu MiB", path,
                       ADM_IMPORT_MAX >> 20);
    }
    rc = imp_read(f, path, &buf, &len);
    if (f != stdin)
        fclose(f);
    if (rc != ADM_OK)
        return rc;
    *doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    free(buf);
    if (*doc == NULL)
        return adm_err("import %s: line %d column %d: %s", path, jerr.line,
                       jerr.column, jerr.text);
    return ADM_OK;
}

/* Checks that obj is an object whose keys are all in the NULL-ended list. */
static int imp_keys(struct adm_import *im, const char *where, json_t *obj,
                    const char *const *allowed)
{
    const char *key;
    json_t *v;
    size_t k;

    if (!json_is_object(obj))
        return imp_err(im, where, "must be an object");
    json_object_foreach(obj, key, v)
    {
        for (k = 0; allowed[k] && strcmp(allowed[k], key); k++)
            ;
        if (allowed[k] == NULL)
            return imp_err(im, where, "unknown field '%s'", key);
    }
    return ADM_OK;
}

/* The string field name of obj, or dflt when absent. */
static int imp_str(struct adm_import *im, json_t *obj, const char *name,
                   const char *dflt, const char **out)
{
    json_t *v = json_object_get(obj, name);

    *out = dflt;
    if (v == NULL)
        return ADM_OK;
    if (!json_is_string(v))
        return imp_err(im, name, "must be a string");
    *out = json_string_value(v);
    return ADM_OK;
}

/* Normalises a domain of the file, with a message naming where it is. */
static int imp_domain(struct adm_import *im, const char *where, const char *in,
                      bool wildcard, char *out)
{
    int rc = addr_domain_norm(in, wildcard, out, ADDR_DOMAIN_MAX + 2);

    if (rc < 0)
        return imp_err(im, where, "malformed domain '%s': %s", in,
                       addr_strerror(rc));
    return ADM_OK;
}

/* Reports a store failure while applying, naming what failed. */
static int imp_store(struct adm_import *im, const char *where, int rc,
                     const char *item)
{
    if (rc == STORE_EEXIST)
        return imp_err(im, where, "'%s' already exists", item);
    if (rc == STORE_EINVAL)
        return imp_err(im, where, "'%s' is refused by the store (%s)", item,
                       store_strerror(rc));
    return imp_err(im, where, "'%s': %s", item, store_strerror(rc));
}

/* settings: an object of strings; platform_domain is kept for later. */
static int imp_settings(struct adm_import *im, json_t *settings)
{
    const char *key;
    json_t *v;

    if (settings == NULL)
        return ADM_OK;
    if (!json_is_object(settings))
        return imp_err(im, "settings", "must be an object");
    json_object_foreach(settings, key, v)
    {
        if (!json_is_string(v))
            return imp_err(im, "settings", "'%s' must be a string", key);
        if (!strcmp(key, "platform_domain") &&
            imp_domain(im, "settings.platform_domain", json_string_value(v),
                       false, im->platform) != ADM_OK)
            return ADM_FAIL;
    }
    return ADM_OK;
}

/* Applies the settings: platform domain first (init when missing). */
static int imp_settings_apply(struct adm_import *im, json_t *settings,
                              const char *cur)
{
    const char *pd = im->platform[0] ? im->platform : cur, *key;
    char now[ADDR_DOMAIN_MAX + 1];
    json_t *v;
    int rc;

    if (pd == NULL || !pd[0])
        return imp_err(im, "settings",
                       "no platform_domain, and the store "
                       "is not initialised");
    rc = store_setting_get(im->txn, "platform_domain", now, sizeof(now));
    rc = rc < 0 ? store_init(im->txn, pd)
                : store_setting_set(im->txn, "platform_domain", pd);
    if (rc < 0)
        return imp_store(im, "settings.platform_domain", rc, pd);
    json_object_foreach(settings, key, v)
    {
        if (strcmp(key, "platform_domain") &&
            (rc = store_setting_set(im->txn, key, json_string_value(v))) < 0)
            return imp_store(im, "settings", rc, key);
    }
    return ADM_OK;
}

/* A set of normalised names seen in one list, to refuse duplicates that
 * differ only in spelling ("Example.com" and "example.com"). */
static int imp_seen(struct adm_import *im, const char *where, json_t *seen,
                    const char *norm)
{
    if (json_object_get(seen, norm))
        return imp_err(im, where, "'%s' is listed twice", norm);
    json_object_set_new(seen, norm, json_true());
    return ADM_OK;
}

/* One outbound domain entry: checked, or added when applying. */
static int imp_entry(struct adm_import *im, json_t *domains, json_t *seen,
                     const char *key, json_t *v)
{
    char dom[ADDR_DOMAIN_MAX + 2];
    enum tls_level lvl;
    int rc;

    if (!json_is_string(v) || tls_level_parse(json_string_value(v), &lvl) < 0)
        return imp_err(im, "outbound.domains",
                       "'%s': the level must be none, "
                       "may, encrypt, verify or secure",
                       key);
    if (imp_domain(im, "outbound.domains", key, true, dom) != ADM_OK)
        return ADM_FAIL;
    /* Only a key spelled otherwise than stored can collide with another. */
    if (im->txn == NULL && strcmp(dom, key) && json_object_get(domains, dom))
        return imp_err(im, "outbound.domains", "'%s' is listed twice", dom);
    if (im->txn == NULL && strcmp(dom, key) &&
        imp_seen(im, "outbound.domains", seen, dom) != ADM_OK)
        return ADM_FAIL;
    if (im->txn && (rc = store_outbound_add(im->txn, im->tenant, dom, lvl)) < 0)
        return imp_store(im, "outbound.domains", rc, dom);
    return ADM_OK;
}

/* The optional shadow object {"mode", "level"} (docs/operator-tls.md). */
static int imp_shadow(struct adm_import *im, json_t *sh)
{
    static const char *const keys[] = {"mode", "level", NULL};
    const char *mode_s, *lvl_s;
    enum out_mode mode;
    enum tls_level lvl;
    int rc;

    if (!sh)
        return ADM_OK;
    if (imp_keys(im, "outbound.shadow", sh, keys) != ADM_OK ||
        imp_str(im, sh, "mode", "off", &mode_s) != ADM_OK ||
        imp_str(im, sh, "level", "encrypt", &lvl_s) != ADM_OK)
        return ADM_FAIL;
    if (out_mode_parse(mode_s, &mode) < 0)
        return imp_err(im, "outbound.shadow.mode",
                       "'%s' is not off, all or domains", mode_s);
    if (tls_level_parse(lvl_s, &lvl) < 0 || lvl < TLS_ENCRYPT)
        return imp_err(im, "outbound.shadow.level",
                       "'%s' is not encrypt, verify or secure", lvl_s);
    if (im->txn &&
        (rc = store_outbound_shadow(im->txn, im->tenant, mode, lvl)) < 0)
        return imp_store(im, "outbound.shadow", rc, mode_s);
    return ADM_OK;
}

/* The outbound object: mode, default level, domain entries. */
static int imp_outbound(struct adm_import *im, json_t *ob)
{
    static const char *const keys[] = {"mode", "default_level", "domains",
                                       "shadow", NULL};
    json_t *domains = json_object_get(ob, "domains"), *seen, *v;
    const char *mode_s, *lvl_s, *key;
    enum out_mode mode;
    enum tls_level lvl;
    int rc = ADM_OK;

    if ((ob && imp_keys(im, "outbound", ob, keys) != ADM_OK) ||
        imp_str(im, ob, "mode", "off", &mode_s) != ADM_OK ||
        imp_str(im, ob, "default_level", "encrypt", &lvl_s) != ADM_OK)
        return ADM_FAIL;
    if (out_mode_parse(mode_s, &mode) < 0)
        return imp_err(im, "outbound.mode", "'%s' is not off, all or domains",
                       mode_s);
    if (tls_level_parse(lvl_s, &lvl) < 0 || lvl < TLS_ENCRYPT)
        return imp_err(im, "outbound.default_level",
                       "'%s' is not encrypt, verify or secure", lvl_s);
    if (im->txn && (rc = store_outbound_mode(im->txn, im->tenant, mode, lvl)))
        return imp_store(im, "outbound.mode", rc, mode_s);
    if (imp_shadow(im, json_object_get(ob, "shadow")) != ADM_OK)
        return ADM_FAIL;
    if (domains && !json_is_object(domains))
        return imp_err(im, "outbound.domains", "must be an object");

    seen = json_object();
    json_object_foreach(domains, key, v)
    {
        if ((rc = imp_entry(im, domains, seen, key, v)) != ADM_OK)
            break;
    }
    json_decref(seen);
    return rc;
}

/* One trusted domain (a list item): checked, or added when applying. */
static int imp_trusted(struct adm_import *im, json_t *seen, const char *item,
                       json_t *unused)
{
    char dom[ADDR_DOMAIN_MAX + 2];
    int rc;

    if (imp_domain(im, "inbound.trusted", item, true, dom) != ADM_OK)
        return ADM_FAIL;
    if (im->txn == NULL)
        return imp_seen(im, "inbound.trusted", seen, dom);
    if ((rc = store_trust_add(im->txn, im->tenant, dom)) < 0)
        return imp_store(im, "inbound.trusted", rc, dom);
    return ADM_OK;
}

/* Checks a mailbox's Maildir folder: its local part or its address. */
static int imp_folder(struct adm_import *im, const struct addr *a,
                      json_t *folder)
{
    const char *f = json_string_value(folder);

    if (f == NULL)
        return imp_err(im, "inbound.mailboxes",
                       "'%s': the folder must be a "
                       "string",
                       a->full);
    if (strcmp(f, a->local) && strcmp(f, a->full))
        return imp_err(im, "inbound.mailboxes",
                       "'%s': the folder must be "
                       "'%s' or '%s'",
                       a->full, a->local, a->full);
    return ADM_OK;
}

/* One monitored mailbox, with its folder when the file gives one:
 * checked, or added when applying. */
static int imp_mailbox(struct adm_import *im, json_t *seen, const char *item,
                       json_t *folder)
{
    struct addr a;
    int rc = addr_parse(item, &a);

    if (rc < 0 || !a.full[0] || !addr_local_is_safe(a.local))
        return imp_err(im, "inbound.mailboxes",
                       "'%s' is not a usable mailbox address%s%s", item,
                       rc < 0 ? ": " : "", rc < 0 ? addr_strerror(rc) : "");
    if (folder && imp_folder(im, &a, folder) != ADM_OK)
        return ADM_FAIL;
    if (im->txn == NULL)
        return imp_seen(im, "inbound.mailboxes", seen, a.full);
    rc = folder ? store_mailbox_add_folder(im->txn, im->tenant, a.full,
                                           json_string_value(folder))
                : store_mailbox_add(im->txn, im->tenant, a.full);
    if (rc == STORE_EEXIST)
        return imp_err(im, "inbound.mailboxes",
                       "'%s' is registered twice, shares a folder, or is in "
                       "another tenant's own domain",
                       a.full);
    if (rc < 0)
        return imp_store(im, "inbound.mailboxes", rc, a.full);
    return ADM_OK;
}

typedef int (*imp_item_fn)(struct adm_import *im, json_t *seen,
                           const char *item, json_t *value);

/* Runs fn on every item of the field name of obj (absent: none): an array
 * of strings, or, with objects allowed, an object (key, value). */
static int imp_list(struct adm_import *im, json_t *obj, const char *name,
                    bool objects, imp_item_fn fn)
{
    json_t *list = json_object_get(obj, name), *seen, *v;
    const char *key;
    char where[32];
    size_t k;
    int rc = ADM_OK;

    snprintf(where, sizeof(where), "inbound.%s", name);
    if (list == NULL)
        return ADM_OK;
    if (!json_is_array(list) && !(objects && json_is_object(list)))
        return imp_err(im, where, "must be an array%s",
                       objects ? " or an object" : "");
    seen = json_object();
    json_array_foreach(list, k, v)
    {
        rc = json_is_string(v) ? fn(im, seen, json_string_value(v), NULL)
                               : imp_err(im, where, "items must be strings");
        if (rc != ADM_OK)
            break;
    }
    json_object_foreach(list, key, v)
    {
        if (rc != ADM_OK || (rc = fn(im, seen, key, v)) != ADM_OK)
            break;
    }
    json_decref(seen);
    return rc;
}

/* The allow-list switch and action, and the inbound TLS requirement. */
static int imp_inbound_flags(struct adm_import *im, json_t *ib)
{
    json_t *allow = json_object_get(ib, "allowlist");
    const char *tls, *action;
    bool require;
    int rc;

    if (allow && !json_is_boolean(allow))
        return imp_err(im, "inbound.allowlist", "must be true or false");
    if (imp_str(im, ib, "tls", "may", &tls) != ADM_OK ||
        imp_str(im, ib, "action", "reject", &action) != ADM_OK)
        return ADM_FAIL;
    if (strcmp(tls, "may") && strcmp(tls, "require"))
        return imp_err(im, "inbound.tls", "'%s' is not may or require", tls);
    if (strcmp(action, "reject") && strcmp(action, "discard"))
        return imp_err(im, "inbound.action", "'%s' is not reject or discard",
                       action);
    require = !strcmp(tls, "require");
    if (im->txn == NULL)
        return ADM_OK;

    rc = store_allowlist(im->txn, im->tenant, json_is_true(allow),
                         strcmp(action, "reject") ? IN_DISCARD : IN_REJECT);
    if (rc == 0)
        rc = store_inbound_tls(im->txn, im->tenant, require);
    return rc < 0 ? imp_store(im, "inbound", rc, im->tenant) : ADM_OK;
}

/* The inbound object: flags, trusted domains, mailboxes. */
static int imp_inbound(struct adm_import *im, json_t *ib)
{
    static const char *const keys[] = {"tls",     "allowlist", "action",
                                       "trusted", "mailboxes", NULL};

    if (ib && imp_keys(im, "inbound", ib, keys) != ADM_OK)
        return ADM_FAIL;
    if (imp_inbound_flags(im, ib) != ADM_OK ||
        imp_list(im, ib, "trusted", false, imp_trusted) != ADM_OK ||
        imp_list(im, ib, "mailboxes", true, imp_mailbox) != ADM_OK)
        return ADM_FAIL;
    return ADM_OK;
}

/* One tenant: name, From, then its outbound and inbound parts. */
static int imp_tenant(struct adm_import *im, const char *name, json_t *t)
{
    static const char *const keys[] = {"from", "outbound", "inbound", NULL};
    json_t *from = json_object_get(t, "from");
    struct addr a = {0};
    int rc;

    im->tenant = NULL;
    if (!store_tenant_name_ok(name))
        return imp_err(im, "tenants", "bad tenant name '%s'", name);
    im->tenant = name;
    if (imp_keys(im, "", t, keys) != ADM_OK)
        return ADM_FAIL;
    if (from && !json_is_null(from) &&
        (!json_is_string(from) || addr_parse(json_string_value(from), &a) < 0 ||
         !a.full[0]))
        return imp_err(im, "from", "must be null or a mail address");
    if (im->txn) {
        rc = store_tenant_add(im->txn, name,
                              json_is_string(from) ? a.full : NULL);
        if (rc == STORE_EEXIST)
            return imp_err(im, "from",
                           "'%s' is another tenant's From or in another "
                           "tenant's own domain",
                           a.full);
        if (rc < 0)
            return imp_store(im, "", rc, name);
    }
    if (imp_outbound(im, json_object_get(t, "outbound")) != ADM_OK ||
        imp_inbound(im, json_object_get(t, "inbound")) != ADM_OK)
        return ADM_FAIL;
    im->tenant = NULL;
    return ADM_OK;
}

/* One route: domain -> {"host": ..., "port": ...}. */
static int imp_route(struct adm_import *im, const char *domain, json_t *r)
{
    static const char *const keys[] = {"host", "port", NULL};
    char dom[ADDR_DOMAIN_MAX + 2], host[ADDR_DOMAIN_MAX + 2];
    json_t *port = json_object_get(r, "port");
    const char *h;
    int rc;

    if (imp_domain(im, "routes", domain, true, dom) != ADM_OK ||
        imp_keys(im, "routes", r, keys) != ADM_OK ||
        imp_str(im, r, "host", NULL, &h) != ADM_OK)
        return ADM_FAIL;
    if (h == NULL || adm_route_host(h, host, sizeof(host)) != 0)
        return imp_err(im, "routes",
                       "'%s': host must be a host name or an "
                       "IP address",
                       domain);
    if (!json_is_integer(port) || json_integer_value(port) < 1 ||
        json_integer_value(port) > 65535)
        return imp_err(im, "routes", "'%s': port out of range (1 to 65535)",
                       domain);
    if (im->txn && (rc = store_route_add(im->txn, dom, host,
                                         (unsigned)json_integer_value(port))))
        return imp_store(im, "routes", rc, dom);
    return ADM_OK;
}

/* The top of the document: format, version, and which parts it has. */
static int imp_top(struct adm_import *im, json_t *doc)
{
    static const char *const keys[] = {"format",  "version", "settings",
                                       "tenants", "routes",  NULL};
    json_t *version = json_object_get(doc, "version");
    const char *format;

    if (imp_keys(im, "document", doc, keys) != ADM_OK ||
        imp_str(im, doc, "format", "tlsgate-policy", &format) != ADM_OK)
        return ADM_FAIL;
    if (strcmp(format, "tlsgate-policy"))
        return imp_err(im, "format", "'%s' is not tlsgate-policy", format);
    if (!json_is_integer(version) ||
        json_integer_value(version) != ADM_EXPORT_VERSION)
        return imp_err(im, "version", "must be %d", ADM_EXPORT_VERSION);
    if (json_object_get(doc, "tenants") &&
        !json_is_object(json_object_get(doc, "tenants")))
        return imp_err(im, "tenants", "must be an object");
    if (json_object_get(doc, "routes") &&
        !json_is_object(json_object_get(doc, "routes")))
        return imp_err(im, "routes", "must be an object");
    return imp_settings(im, json_object_get(doc, "settings"));
}

/* Tenants then routes: checked (txn NULL) or applied. */
static int imp_body(struct adm_import *im, json_t *doc)
{
    const char *key;
    json_t *v, *seen = json_object();
    char dom[ADDR_DOMAIN_MAX + 2];
    int rc = ADM_OK;

    json_object_foreach(json_object_get(doc, "tenants"), key, v)
    {
        if ((rc = imp_tenant(im, key, v)) != ADM_OK)
            break;
    }
    json_object_foreach(json_object_get(doc, "routes"), key, v)
    {
        if (rc != ADM_OK || (rc = imp_route(im, key, v)) != ADM_OK)
            break;
        if (im->txn == NULL &&
            addr_domain_norm(key, 1, dom, sizeof(dom)) == 0 &&
            (rc = imp_seen(im, "routes", seen, dom)) != ADM_OK)
            break;
    }
    json_decref(seen);
    return rc;
}

/* Inside the write transaction: clear, then the settings and the body. */
static int imp_apply(struct adm_ctx *c, struct store_txn *txn, void *arg)
{
    struct adm_import *im = arg;
    char cur[ADDR_DOMAIN_MAX + 1] = "";
    int rc;

    im->txn = txn;
    if (store_setting_get(txn, "platform_domain", cur, sizeof(cur)) < 0)
        cur[0] = '\0';
    if ((rc = store_clear(txn)) < 0)
        return adm_store_err(rc, "import: clearing the store");
    if (imp_settings_apply(im, json_object_get(im->doc, "settings"), cur) !=
        ADM_OK)
        return ADM_FAIL;
    return imp_body(im, im->doc);
}

int adm_import_check(const char *buf, size_t len, const char *name)
{
    struct adm_import im = {.file = name};
    json_error_t jerr;
    int rc;

    im.doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (im.doc == NULL)
        return adm_err("import %s: line %d column %d: %s", name, jerr.line,
                       jerr.column, jerr.text);
    rc = imp_top(&im, im.doc);
    if (rc == ADM_OK)
        rc = imp_body(&im, im.doc);
    json_decref(im.doc);
    return rc;
}

int adm_cmd_import(struct adm_ctx *c)
{
    struct adm_import im = {.file = c->args[0]};
    int rc;

    if ((rc = imp_load(c->args[0], &im.doc)) != ADM_OK)
        return rc;
    rc = imp_top(&im, im.doc);
    if (rc == ADM_OK)
        rc = imp_body(&im, im.doc);
    if (rc == ADM_OK)
        rc = adm_write(c, true, imp_apply, &im);
    json_decref(im.doc);
    return rc;
}
