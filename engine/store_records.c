/*
 * Policy store records: global settings, tenants and their From index,
 * outbound entries and routes. Every write checks all its input before it
 * writes anything; on an error the caller aborts the transaction.
 */
#include "store_impl.h"

#include <arpa/inet.h>
#include <string.h>

#define STORE_KEY_MAX 511 /* LMDB's default largest key */

/* ---- settings ---- */

/* Validates and normalises a setting value; STORE_EINVAL when the key is
 * unknown or the value is bad. */
static int store_setting_check(const char *key, const char *value, char *out,
                               size_t outlen)
{
    if (strcmp(key, "platform_domain") == 0) {
        if (value[0] == '[' ||
            addr_domain_norm(value, 0, out, outlen) != ADDR_OK)
            return STORE_EINVAL;
        return STORE_OK;
    }
    if (strcmp(key, "default_from_local") == 0) {
        if (!addr_local_is_safe(value) || strlen(value) >= outlen)
            return STORE_EINVAL;
        strcpy(out, value);
        return STORE_OK;
    }
    return STORE_EINVAL;
}

int store_setting_get(struct store_txn *txn, const char *key, char *out,
                      size_t outlen)
{
    MDB_val k = {strlen(key), (void *)key}, val;
    msgpack_object obj;
    size_t off = 0;
    int rc = store_get(txn, DB_SETTINGS, &k, &val);

    if (rc != STORE_OK)
        return rc;
    msgpack_zone_clear(&txn->zone);
    if (msgpack_unpack(val.mv_data, val.mv_size, &off, &txn->zone, &obj) !=
            MSGPACK_UNPACK_SUCCESS ||
        off != val.mv_size || obj.type != MSGPACK_OBJECT_STR ||
        memchr(obj.via.str.ptr, '\0', obj.via.str.size) != NULL)
        return STORE_ECORRUPT;
    if (obj.via.str.size >= outlen)
        return STORE_EINVAL;
    memcpy(out, obj.via.str.ptr, obj.via.str.size);
    out[obj.via.str.size] = '\0';
    return STORE_OK;
}

int store_setting_set(struct store_txn *txn, const char *key, const char *value)
{
    char norm[ADDR_DOMAIN_MAX + 1];
    MDB_val k = {strlen(key), (void *)key};
    struct store_buf b;
    msgpack_packer pk;
    int rc = store_setting_check(key, value, norm, sizeof(norm));

    if (rc != STORE_OK)
        return rc;
    store_pack_init(&b, &pk);
    msgpack_pack_str(&pk, strlen(norm));
    msgpack_pack_str_body(&pk, norm, strlen(norm));
    return store_put(txn, DB_SETTINGS, &k, &b);
}

struct store_setting_walk {
    struct store_txn *txn;
    int (*cb)(const char *key, const char *value, void *ctx);
    void *ctx;
};

static int store_setting_step(const MDB_val *key, const MDB_val *val, void *ctx)
{
    struct store_setting_walk *w = ctx;
    char name[STORE_KEY_MAX + 1], value[ADDR_DOMAIN_MAX + 1];
    int rc;

    if (key->mv_size > STORE_KEY_MAX)
        return STORE_ECORRUPT;
    memcpy(name, key->mv_data, key->mv_size);
    name[key->mv_size] = '\0';
    rc = store_setting_get(w->txn, name, value, sizeof(value));
    if (rc != STORE_OK)
        return rc == STORE_EINVAL ? STORE_ECORRUPT : rc;
    return w->cb(name, value, w->ctx);
}

int store_setting_foreach(struct store_txn *txn,
                          int (*cb)(const char *key, const char *value,
                                    void *ctx),
                          void *ctx)
{
    struct store_setting_walk w = {txn, cb, ctx};

    return store_walk_prefix(txn, DB_SETTINGS, "", 0, store_setting_step, &w);
}

int store_platform_domain(struct store_txn *txn, char *out, size_t outlen)
{
    int rc = store_setting_get(txn, "platform_domain", out, outlen);

    return rc == STORE_ENOTFOUND ? STORE_ENOINIT : rc;
}

int store_init(struct store_txn *txn, const char *platform_domain)
{
    char norm[ADDR_DOMAIN_MAX + 1], cur[ADDR_DOMAIN_MAX + 1];
    int rc;

    if (platform_domain[0] == '[' ||
        addr_domain_norm(platform_domain, 0, norm, sizeof(norm)) != ADDR_OK)
        return STORE_EINVAL;
    rc = store_platform_domain(txn, cur, sizeof(cur));
    if (rc == STORE_OK)
        return strcmp(cur, norm) == 0 ? STORE_OK : STORE_EEXIST;
    if (rc != STORE_ENOINIT)
        return rc;
    return store_setting_set(txn, "platform_domain", norm);
}

int store_clear(struct store_txn *txn)
{
    for (int i = 0; i < DB_COUNT; i++) {
        int rc;
        if (i == DB_META)
            continue;
        rc = mdb_drop(txn->txn, txn->st->dbi[i], 0);
        if (rc != MDB_SUCCESS)
            return store_mdb_err(rc);
    }
    return STORE_OK;
}

/* ---- tenants ---- */

bool store_tenant_name_ok(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > TENANT_MAX || name[0] == '-' || name[len - 1] == '-')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') ||
              (name[i] >= '0' && name[i] <= '9') || name[i] == '-'))
            return false;
    return true;
}

/* Decodes a tenant record value strictly. */
static int store_tenant_decode(struct store_txn *txn, const MDB_val *val,
                               struct store_tenant_rec *rec)
{
    uint64_t mode, level, action, smode = MODE_OFF, slevel = TLS_ENCRYPT;
    struct store_field f[] = {
        {"from", SF_STR, false, rec->from, sizeof(rec->from), 0, false},
        {"mode", SF_UINT, true, &mode, 0, MODE_DOMAINS, false},
        {"level", SF_UINT, true, &level, 0, TLS_SECURE, false},
        {"inbound_tls", SF_BOOL, true, &rec->in_tls, 0, 0, false},
        {"allowlist", SF_BOOL, true, &rec->allow, 0, 0, false},
        {"action", SF_UINT, true, &action, 0, IN_DISCARD, false},
        {"shadow_mode", SF_UINT, false, &smode, 0, MODE_DOMAINS, false},
        {"shadow_level", SF_UINT, false, &slevel, 0, TLS_SECURE, false},
    };
    int rc;

    rec->from[0] = '\0';
    rc = store_decode_map(txn, val, f, sizeof(f) / sizeof(f[0]));
    if (rc != STORE_OK || level < TLS_ENCRYPT || action == IN_ACCEPT ||
        slevel < TLS_ENCRYPT)
        return STORE_ECORRUPT;
    rec->shadow_mode = (enum out_mode)smode;
    rec->shadow_level = (enum tls_level)slevel;
    rec->mode = (enum out_mode)mode;
    rec->level = (enum tls_level)level;
    rec->action = (enum in_action)action;
    return STORE_OK;
}

int store_tenant_read(struct store_txn *txn, const char *name,
                      struct store_tenant_rec *rec)
{
    MDB_val k = {strlen(name), (void *)name}, val;
    int rc;

    if (!store_tenant_name_ok(name))
        return STORE_ENOTFOUND;
    rc = store_get(txn, DB_TENANTS, &k, &val);
    if (rc != STORE_OK)
        return rc;
    return store_tenant_decode(txn, &val, rec);
}

int store_tenant_write(struct store_txn *txn, const char *name,
                       const struct store_tenant_rec *rec)
{
    MDB_val k = {strlen(name), (void *)name};
    struct store_buf b;
    msgpack_packer pk;

    store_pack_init(&b, &pk);
    msgpack_pack_map(&pk, (rec->from[0] ? 6 : 5) +
                              (rec->shadow_mode != MODE_OFF ? 2 : 0));
    if (rec->from[0])
        store_pack_str(&pk, "from", rec->from);
    store_pack_uint(&pk, "mode", rec->mode);
    store_pack_uint(&pk, "level", rec->level);
    store_pack_bool(&pk, "inbound_tls", rec->in_tls);
    store_pack_bool(&pk, "allowlist", rec->allow);
    store_pack_uint(&pk, "action", rec->action);
    if (rec->shadow_mode != MODE_OFF) { /* absent: no shadow policy */
        store_pack_uint(&pk, "shadow_mode", rec->shadow_mode);
        store_pack_uint(&pk, "shadow_level", rec->shadow_level);
    }
    return store_put(txn, DB_TENANTS, &k, &b);
}

int store_tenant_info(struct store_txn *txn, const char *name,
                      const struct store_tenant_rec *rec,
                      struct tenant_info *out)
{
    char platform[ADDR_DOMAIN_MAX + 1], local[ADDR_LOCAL_MAX + 1];
    int rc;

    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "%s", name);
    out->mode = rec->mode;
    out->default_level = rec->level;
    out->inbound_tls_required = rec->in_tls;
    out->allowlist = rec->allow;
    out->allowlist_action = rec->action;
    out->shadow_mode = rec->shadow_mode;
    out->shadow_level = rec->shadow_level;
    if (rec->from[0]) {
        snprintf(out->from, sizeof(out->from), "%s", rec->from);
        return STORE_OK;
    }

    rc = store_platform_domain(txn, platform, sizeof(platform));
    if (rc != STORE_OK)
        return rc;
    rc = store_setting_get(txn, "default_from_local", local, sizeof(local));
    if (rc == STORE_ENOTFOUND)
        strcpy(local, "noreply");
    else if (rc != STORE_OK)
        return rc;
    out->from_is_default = true;
    if ((size_t)snprintf(out->from, sizeof(out->from), "%s@%s.%s", local, name,
                         platform) >= sizeof(out->from))
        return STORE_ECORRUPT;
    return STORE_OK;
}

int store_tenant_get(struct store_txn *txn, const char *name,
                     struct tenant_info *out)
{
    struct store_tenant_rec rec;
    int rc = store_tenant_read(txn, name, &rec);

    if (rc != STORE_OK)
        return rc;
    return store_tenant_info(txn, name, &rec, out);
}

struct store_tenant_walk {
    struct store_txn *txn;
    int (*cb)(const struct tenant_info *t, void *ctx);
    void *ctx;
};

static int store_tenant_step(const MDB_val *key, const MDB_val *val, void *ctx)
{
    struct store_tenant_walk *w = ctx;
    struct store_tenant_rec rec;
    struct tenant_info info;
    char name[TENANT_MAX + 1];
    int rc;

    if (key->mv_size > TENANT_MAX)
        return STORE_ECORRUPT;
    memcpy(name, key->mv_data, key->mv_size);
    name[key->mv_size] = '\0';
    if (!store_tenant_name_ok(name))
        return STORE_ECORRUPT;
    rc = store_tenant_decode(w->txn, val, &rec);
    if (rc == STORE_OK)
        rc = store_tenant_info(w->txn, name, &rec, &info);
    return rc == STORE_OK ? w->cb(&info, w->ctx) : rc;
}

int store_tenant_foreach(struct store_txn *txn,
                         int (*cb)(const struct tenant_info *t, void *ctx),
                         void *ctx)
{
    struct store_tenant_walk w = {txn, cb, ctx};

    return store_walk_prefix(txn, DB_TENANTS, "", 0, store_tenant_step, &w);
}

/* ---- the From index ---- */

int store_sender_get(struct store_txn *txn, const char *address, char *tenant)
{
    MDB_val k = {strlen(address), (void *)address}, val;
    struct store_field f[] = {
        {"tenant", SF_STR, true, tenant, TENANT_MAX + 1, 0, false},
    };
    int rc = store_get(txn, DB_SENDERS, &k, &val);

    if (rc != STORE_OK)
        return rc;
    rc = store_decode_map(txn, &val, f, 1);
    if (rc == STORE_OK && !store_tenant_name_ok(tenant))
        rc = STORE_ECORRUPT;
    return rc;
}

/* The tenant name a domain of the form <name>.<platform> is reserved for,
 * whether or not that tenant exists yet: STORE_OK or STORE_ENOTFOUND. */
static int store_domain_label(struct store_txn *txn, const char *domain,
                              char *name)
{
    char platform[ADDR_DOMAIN_MAX + 1];
    const char *dot = strchr(domain, '.');
    size_t n = dot ? (size_t)(dot - domain) : 0;
    int rc = store_platform_domain(txn, platform, sizeof(platform));

    if (rc != STORE_OK)
        return rc;
    if (n == 0 || n > TENANT_MAX || strcmp(dot + 1, platform) != 0)
        return STORE_ENOTFOUND;
    memcpy(name, domain, n);
    name[n] = '\0';
    return STORE_OK;
}

int store_domain_tenant(struct store_txn *txn, const char *domain, char *name)
{
    struct store_tenant_rec rec;
    int rc = store_domain_label(txn, domain, name);

    return rc == STORE_OK ? store_tenant_read(txn, name, &rec) : rc;
}

int store_domain_reserved(struct store_txn *txn, const char *domain,
                          const char *tenant)
{
    char owner[TENANT_MAX + 1];
    int rc = store_domain_label(txn, domain, owner);

    if (rc == STORE_ENOTFOUND)
        return STORE_OK;
    if (rc != STORE_OK)
        return rc;
    return strcmp(owner, tenant) == 0 ? STORE_OK : STORE_EEXIST;
}

/* Normalises a From address into out (size ADDR_MAX + 1) and checks that
 * no other tenant has it, as its set From or in its own domain:
 * STORE_EINVAL or STORE_EEXIST. */
static int store_from_check(struct store_txn *txn, const char *tenant,
                            const char *from, char *out)
{
    char owner[TENANT_MAX + 1];
    struct addr a;
    int rc;

    if (addr_parse(from, &a) != ADDR_OK || a.full[0] == '\0' ||
        strlen(a.full) > ADDR_MAX)
        return STORE_EINVAL;
    strcpy(out, a.full);
    rc = store_domain_reserved(txn, a.domain, tenant);
    if (rc != STORE_OK)
        return rc;
    rc = store_sender_get(txn, out, owner);
    if (rc == STORE_OK && strcmp(owner, tenant) != 0)
        return STORE_EEXIST;
    return rc == STORE_ENOTFOUND ? STORE_OK : rc;
}

static int store_sender_put(struct store_txn *txn, const char *address,
                            const char *tenant)
{
    MDB_val k = {strlen(address), (void *)address};
    struct store_buf b;
    msgpack_packer pk;

    store_pack_init(&b, &pk);
    msgpack_pack_map(&pk, 1);
    store_pack_str(&pk, "tenant", tenant);
    return store_put(txn, DB_SENDERS, &k, &b);
}

static int store_sender_del(struct store_txn *txn, const char *address)
{
    MDB_val k = {strlen(address), (void *)address};
    int rc = store_del(txn, DB_SENDERS, &k);

    return rc == STORE_ENOTFOUND ? STORE_OK : rc;
}

/* ---- tenant writes ---- */

int store_tenant_add(struct store_txn *txn, const char *name, const char *from)
{
    struct store_tenant_rec rec = {.mode = MODE_OFF,
                                   .level = TLS_ENCRYPT,
                                   .action = IN_REJECT,
                                   .shadow_level = TLS_ENCRYPT};
    char platform[ADDR_DOMAIN_MAX + 1];
    int rc;

    if (!store_tenant_name_ok(name))
        return STORE_EINVAL;
    rc = store_platform_domain(txn, platform, sizeof(platform));
    if (rc != STORE_OK)
        return rc;
    if (strlen(name) + 1 + strlen(platform) > ADDR_DOMAIN_MAX)
        return STORE_EINVAL;
    rc = store_tenant_read(txn, name, &rec);
    if (rc != STORE_ENOTFOUND)
        return rc == STORE_OK ? STORE_EEXIST : rc;
    if (from != NULL) {
        rc = store_from_check(txn, name, from, rec.from);
        if (rc != STORE_OK)
            return rc;
    }

    rc = store_tenant_write(txn, name, &rec);
    if (rc == STORE_OK && rec.from[0])
        rc = store_sender_put(txn, rec.from, name);
    return rc;
}

int store_tenant_set_from(struct store_txn *txn, const char *name,
                          const char *from)
{
    struct store_tenant_rec rec;
    char norm[ADDR_MAX + 1] = "";
    int rc = store_tenant_read(txn, name, &rec);

    if (rc != STORE_OK)
        return rc;
    if (from != NULL) {
        rc = store_from_check(txn, name, from, norm);
        if (rc != STORE_OK)
            return rc;
    }

    if (rec.from[0])
        rc = store_sender_del(txn, rec.from);
    strcpy(rec.from, norm);
    if (rc == STORE_OK)
        rc = store_tenant_write(txn, name, &rec);
    if (rc == STORE_OK && norm[0])
        rc = store_sender_put(txn, norm, name);
    return rc;
}

/* Deletes the tenant's mailbox records named in its folder index. */
static int store_tenant_mailbox_del(const MDB_val *key, const MDB_val *val,
                                    void *ctx)
{
    struct store_txn *txn = ctx;
    char address[ADDR_MAX + 1];
    struct store_field f[] = {
        {"address", SF_STR, true, address, sizeof(address), 0, false},
    };
    MDB_val k;
    int rc = store_decode_map(txn, val, f, 1);

    if (rc != STORE_OK)
        return rc;
    k.mv_size = strlen(address);
    k.mv_data = address;
    rc = store_del(txn, DB_MAILBOX, &k);
    return rc == STORE_ENOTFOUND ? STORE_OK : rc;
}

struct store_sender_find {
    struct store_txn *txn;
    const char *tenant;
    char key[ADDR_MAX + 1];
};

/* Stops at a From index entry that names the tenant, copying its key. */
static int store_sender_match(const MDB_val *key, const MDB_val *val, void *ctx)
{
    struct store_sender_find *f = ctx;
    char tenant[TENANT_MAX + 1];
    struct store_field fld[] = {
        {"tenant", SF_STR, true, tenant, sizeof(tenant), 0, false},
    };

    if (key->mv_size > ADDR_MAX ||
        store_decode_map(f->txn, val, fld, 1) != STORE_OK ||
        strcmp(tenant, f->tenant) != 0)
        return 0;
    memcpy(f->key, key->mv_data, key->mv_size);
    f->key[key->mv_size] = '\0';
    return 1;
}

/* Drops every From index entry of a tenant whose record does not decode
 * (so its From is unknown): a full walk, only on that path. */
static int store_sender_del_tenant(struct store_txn *txn, const char *name)
{
    struct store_sender_find f = {.txn = txn, .tenant = name};
    int rc;

    while ((rc = store_walk_prefix(txn, DB_SENDERS, "", 0, store_sender_match,
                                   &f)) == 1) {
        rc = store_sender_del(txn, f.key);
        if (rc != STORE_OK)
            return rc;
    }
    return rc;
}

int store_tenant_remove(struct store_txn *txn, const char *name)
{
    struct store_tenant_rec rec;
    MDB_val k = {strlen(name), (void *)name};
    char prefix[TENANT_MAX + 1];
    size_t plen = strlen(name) + 1;
    int rc = store_tenant_read(txn, name, &rec);

    if (rc == STORE_ECORRUPT) {
        rec.from[0] = '\0';
        rc = store_sender_del_tenant(txn, name);
    }
    if (rc != STORE_OK)
        return rc;
    memcpy(prefix, name, plen); /* "name\0" */

    rc = store_walk_prefix(txn, DB_FOLDERS, prefix, plen,
                           store_tenant_mailbox_del, txn);
    if (rc == STORE_OK)
        rc = store_del_prefix(txn, DB_FOLDERS, prefix, plen);
    if (rc == STORE_OK)
        rc = store_del_prefix(txn, DB_OUTBOUND, prefix, plen);
    if (rc == STORE_OK)
        rc = store_del_prefix(txn, DB_TRUSTED, prefix, plen);
    if (rc == STORE_OK && rec.from[0])
        rc = store_sender_del(txn, rec.from);
    if (rc == STORE_OK)
        rc = store_del(txn, DB_TENANTS, &k);
    return rc;
}

/* ---- outbound ---- */

static bool store_level_ok(enum tls_level lvl)
{
    return (unsigned)lvl <= TLS_SECURE;
}

int store_outbound_mode(struct store_txn *txn, const char *tenant,
                        enum out_mode mode, enum tls_level level)
{
    struct store_tenant_rec rec;
    int rc;

    if ((unsigned)mode > MODE_DOMAINS ||
        (mode == MODE_ALL && (!store_level_ok(level) || level < TLS_ENCRYPT)))
        return STORE_EINVAL;
    rc = store_tenant_read(txn, tenant, &rec);
    if (rc != STORE_OK)
        return rc;
    rec.mode = mode;
    if (mode == MODE_ALL)
        rec.level = level;
    return store_tenant_write(txn, tenant, &rec);
}

int store_outbound_shadow(struct store_txn *txn, const char *tenant,
                          enum out_mode mode, enum tls_level level)
{
    struct store_tenant_rec rec;
    int rc;

    if ((unsigned)mode > MODE_DOMAINS || !store_level_ok(level) ||
        level < TLS_ENCRYPT)
        return STORE_EINVAL;
    rc = store_tenant_read(txn, tenant, &rec);
    if (rc != STORE_OK)
        return rc;
    rec.shadow_mode = mode;
    rec.shadow_level = mode == MODE_OFF ? TLS_ENCRYPT : level;
    return store_tenant_write(txn, tenant, &rec);
}

int store_tenant_domain_key(struct store_txn *txn, const char *tenant,
                            const char *domain, char *buf, size_t n,
                            MDB_val *key)
{
    struct store_tenant_rec rec;
    char norm[ADDR_DOMAIN_MAX + 1];
    int rc = store_tenant_read(txn, tenant, &rec);

    if (rc != STORE_OK)
        return rc;
    if (addr_domain_norm(domain, 1, norm, sizeof(norm)) != ADDR_OK)
        return STORE_EINVAL;
    return store_key2(buf, n, tenant, norm, key) ? STORE_OK : STORE_EINVAL;
}

int store_outbound_add(struct store_txn *txn, const char *tenant,
                       const char *domain, enum tls_level level)
{
    char buf[STORE_KEY_MAX];
    struct store_buf b;
    msgpack_packer pk;
    MDB_val key;
    int rc;

    if (!store_level_ok(level))
        return STORE_EINVAL;
    rc = store_tenant_domain_key(txn, tenant, domain, buf, sizeof(buf), &key);
    if (rc != STORE_OK)
        return rc;
    store_pack_init(&b, &pk);
    msgpack_pack_map(&pk, 1);
    store_pack_uint(&pk, "level", level);
    return store_put(txn, DB_OUTBOUND, &key, &b);
}

int store_outbound_remove(struct store_txn *txn, const char *tenant,
                          const char *domain)
{
    char buf[STORE_KEY_MAX];
    MDB_val key;
    int rc =
        store_tenant_domain_key(txn, tenant, domain, buf, sizeof(buf), &key);

    return rc == STORE_OK ? store_del(txn, DB_OUTBOUND, &key) : rc;
}

/* Decodes an outbound entry value. */
static int store_level_decode(struct store_txn *txn, const MDB_val *val,
                              enum tls_level *lvl)
{
    uint64_t v;
    struct store_field f[] = {
        {"level", SF_UINT, true, &v, 0, TLS_SECURE, false},
    };
    int rc = store_decode_map(txn, val, f, 1);

    if (rc == STORE_OK)
        *lvl = (enum tls_level)v;
    return rc;
}

int store_outbound_level(struct store_txn *txn, const char *tenant,
                         const char *key, enum tls_level *lvl)
{
    char buf[STORE_KEY_MAX];
    MDB_val k, val;
    int rc;

    if (!store_key2(buf, sizeof(buf), tenant, key, &k))
        return STORE_ENOTFOUND;
    rc = store_get(txn, DB_OUTBOUND, &k, &val);
    return rc == STORE_OK ? store_level_decode(txn, &val, lvl) : rc;
}

struct store_entry_walk {
    struct store_txn *txn;
    size_t plen;
    int (*out_cb)(const char *domain, enum tls_level lvl, void *ctx);
    int (*dom_cb)(const char *domain, void *ctx);
    void *ctx;
};

/* Copies the part of a "tenant\0rest" key after the prefix. */
static int store_key_rest(const MDB_val *key, size_t plen, char *out,
                          size_t outlen)
{
    size_t n = key->mv_size - plen;

    if (n == 0 || n >= outlen ||
        memchr((char *)key->mv_data + plen, '\0', n) != NULL)
        return STORE_ECORRUPT;
    memcpy(out, (char *)key->mv_data + plen, n);
    out[n] = '\0';
    return STORE_OK;
}

static int store_outbound_step(const MDB_val *key, const MDB_val *val,
                               void *ctx)
{
    struct store_entry_walk *w = ctx;
    char domain[ADDR_DOMAIN_MAX + 1];
    enum tls_level lvl;
    int rc = store_key_rest(key, w->plen, domain, sizeof(domain));

    if (rc == STORE_OK)
        rc = store_level_decode(w->txn, val, &lvl);
    return rc == STORE_OK ? w->out_cb(domain, lvl, w->ctx) : rc;
}

int store_outbound_foreach(struct store_txn *txn, const char *tenant,
                           int (*cb)(const char *domain, enum tls_level lvl,
                                     void *ctx),
                           void *ctx)
{
    struct store_entry_walk w = {txn, strlen(tenant) + 1, cb, NULL, ctx};
    struct store_tenant_rec rec;
    int rc = store_tenant_read(txn, tenant, &rec);

    if (rc != STORE_OK)
        return rc;
    return store_walk_prefix(txn, DB_OUTBOUND, tenant, w.plen,
                             store_outbound_step, &w);
}

/* ---- routes ---- */

/* Normalises a route host: a host name (A-labels, lowercase) or an IP
 * address, given bare or in brackets, stored without brackets. */
static int store_route_host(const char *host, char *out, size_t outlen)
{
    unsigned char bin[16];
    size_t len = strlen(host);
    char ip[64];

    if (len > 0 && host[0] == '[') {
        if (len < 3 || len - 2 >= sizeof(ip) || host[len - 1] != ']')
            return STORE_EINVAL;
        memcpy(ip, host + 1, len - 2);
        ip[len - 2] = '\0';
    } else if (len < sizeof(ip)) {
        strcpy(ip, host);
    } else {
        ip[0] = '\0';
    }
    if (inet_pton(AF_INET, ip, bin) == 1 || inet_pton(AF_INET6, ip, bin) == 1) {
        for (size_t i = 0; ip[i]; i++)
            out[i] = ip[i] >= 'A' && ip[i] <= 'F' ? ip[i] - 'A' + 'a' : ip[i];
        out[strlen(ip)] = '\0';
        return STORE_OK;
    }
    if (host[0] == '[' || addr_domain_norm(host, 0, out, outlen) != ADDR_OK)
        return STORE_EINVAL;
    return STORE_OK;
}

int store_route_add(struct store_txn *txn, const char *domain, const char *host,
                    unsigned port)
{
    char key[ADDR_DOMAIN_MAX + 1], h[ADDR_DOMAIN_MAX + 1];
    MDB_val k;
    struct store_buf b;
    msgpack_packer pk;

    if (port < 1 || port > 65535 ||
        addr_domain_norm(domain, 1, key, sizeof(key)) != ADDR_OK ||
        store_route_host(host, h, sizeof(h)) != STORE_OK)
        return STORE_EINVAL;
    k.mv_size = strlen(key);
    k.mv_data = key;
    store_pack_init(&b, &pk);
    msgpack_pack_map(&pk, 2);
    store_pack_str(&pk, "host", h);
    store_pack_uint(&pk, "port", port);
    return store_put(txn, DB_ROUTES, &k, &b);
}

int store_route_remove(struct store_txn *txn, const char *domain)
{
    char key[ADDR_DOMAIN_MAX + 1];
    MDB_val k;

    if (addr_domain_norm(domain, 1, key, sizeof(key)) != ADDR_OK)
        return STORE_EINVAL;
    k.mv_size = strlen(key);
    k.mv_data = key;
    return store_del(txn, DB_ROUTES, &k);
}

/* Decodes a route value. */
static int store_route_decode(struct store_txn *txn, const MDB_val *val,
                              char *host, size_t hostlen, unsigned *port)
{
    uint64_t p;
    struct store_field f[] = {
        {"host", SF_STR, true, host, hostlen, 0, false},
        {"port", SF_UINT, true, &p, 0, 65535, false},
    };
    int rc = store_decode_map(txn, val, f, 2);

    if (rc == STORE_OK && (p == 0 || host[0] == '\0'))
        rc = STORE_ECORRUPT;
    if (rc == STORE_OK)
        *port = (unsigned)p;
    return rc;
}

int store_route_get(struct store_txn *txn, const char *key, char *host,
                    size_t hostlen, unsigned *port)
{
    MDB_val k = {strlen(key), (void *)key}, val;
    int rc = store_get(txn, DB_ROUTES, &k, &val);

    if (rc != STORE_OK)
        return rc;
    rc = store_route_decode(txn, &val, host, hostlen, port);
    return rc == STORE_EINVAL ? STORE_ECORRUPT : rc;
}

struct store_route_walk {
    struct store_txn *txn;
    int (*cb)(const char *domain, const char *host, unsigned port, void *ctx);
    void *ctx;
};

static int store_route_step(const MDB_val *key, const MDB_val *val, void *ctx)
{
    struct store_route_walk *w = ctx;
    char domain[ADDR_DOMAIN_MAX + 1], host[ADDR_DOMAIN_MAX + 1];
    unsigned port;
    int rc = store_key_rest(key, 0, domain, sizeof(domain));

    if (rc == STORE_OK)
        rc = store_route_decode(w->txn, val, host, sizeof(host), &port);
    return rc == STORE_OK ? w->cb(domain, host, port, w->ctx) : rc;
}

int store_route_foreach(struct store_txn *txn,
                        int (*cb)(const char *domain, const char *host,
                                  unsigned port, void *ctx),
                        void *ctx)
{
    struct store_route_walk w = {txn, cb, ctx};

    return store_walk_prefix(txn, DB_ROUTES, "", 0, store_route_step, &w);
}

static int store_domain_step(const MDB_val *key, const MDB_val *val, void *ctx)
{
    struct store_entry_walk *w = ctx;
    char domain[ADDR_DOMAIN_MAX + 1];
    int rc = store_key_rest(key, w->plen, domain, sizeof(domain));

    return rc == STORE_OK ? w->dom_cb(domain, w->ctx) : rc;
}

int store_entry_walk_domains(struct store_txn *txn, const char *tenant,
                             enum store_db db,
                             int (*cb)(const char *domain, void *ctx),
                             void *ctx)
{
    struct store_entry_walk w = {txn, strlen(tenant) + 1, NULL, cb, ctx};

    return store_walk_prefix(txn, db, tenant, w.plen, store_domain_step, &w);
}
