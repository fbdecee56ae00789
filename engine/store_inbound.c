/*
 * Policy store records for inbound mail: monitored mailboxes (with their
 * Maildir folder), the allow-list switch, trusted sender domains and the
 * TLS requirement.
 */
#include "store_impl.h"

#include <string.h>

#define STORE_KEY_MAX  511
#define STORE_NAME_MAX 255 /* longest folder name a file system takes */

int store_mailbox_get(struct store_txn *txn, const char *address, char *tenant,
                      char *folder, size_t folderlen)
{
    MDB_val k = {strlen(address), (void *)address}, val;
    struct store_field f[] = {
        {"tenant", SF_STR, true, tenant, TENANT_MAX + 1, 0, false},
        {"folder", SF_STR, true, folder, folderlen, 0, false},
    };
    int rc = store_get(txn, DB_MAILBOX, &k, &val);

    if (rc != STORE_OK)
        return rc;
    rc = store_decode_map(txn, &val, f, 2);
    if (rc == STORE_OK && (!store_tenant_name_ok(tenant) || folder[0] == '\0' ||
                           folder[0] == '.' || strchr(folder, '/') != NULL))
        rc = STORE_ECORRUPT;
    return rc;
}

/* Parses a mailbox address: a non-null address whose local part can name
 * a folder and whose domain is a name (not an address literal). */
static int store_mailbox_parse(const char *address, struct addr *a)
{
    if (addr_parse(address, a) != ADDR_OK || a->full[0] == '\0' ||
        a->domain[0] == '[' || !addr_local_is_safe(a->local))
        return STORE_EINVAL;
    return STORE_OK;
}

/* True when tenant already has a mailbox stored in folder. */
static bool store_folder_taken(struct store_txn *txn, const char *tenant,
                               const char *folder)
{
    char buf[STORE_KEY_MAX];
    MDB_val k, val;

    if (!store_key2(buf, sizeof(buf), tenant, folder, &k))
        return true;
    return store_get(txn, DB_FOLDERS, &k, &val) != STORE_ENOTFOUND;
}

/* The Maildir folder of a new mailbox: the local part in the tenant's own
 * domain, else (or when that is taken) "local@domain". */
static int store_folder_pick(struct store_txn *txn, const char *tenant,
                             const struct addr *a, char *folder)
{
    char platform[ADDR_DOMAIN_MAX + 1];
    size_t tlen = strlen(tenant);
    int rc = store_platform_domain(txn, platform, sizeof(platform));

    if (rc != STORE_OK)
        return rc;
    if (strncmp(a->domain, tenant, tlen) == 0 && a->domain[tlen] == '.' &&
        strcmp(a->domain + tlen + 1, platform) == 0 &&
        !store_folder_taken(txn, tenant, a->local)) {
        strcpy(folder, a->local);
        return STORE_OK;
    }
    if (strlen(a->full) > STORE_NAME_MAX)
        return STORE_EINVAL;
    strcpy(folder, a->full);
    return store_folder_taken(txn, tenant, folder) ? STORE_EEXIST : STORE_OK;
}

/* Writes the mailbox record and its entry in the tenant's folder index. */
static int store_mailbox_write(struct store_txn *txn, const char *tenant,
                               const char *address, const char *folder)
{
    char buf[STORE_KEY_MAX];
    MDB_val k = {strlen(address), (void *)address};
    struct store_buf b;
    msgpack_packer pk;
    int rc;

    store_pack_init(&b, &pk);
    msgpack_pack_map(&pk, 2);
    store_pack_str(&pk, "tenant", tenant);
    store_pack_str(&pk, "folder", folder);
    rc = store_put(txn, DB_MAILBOX, &k, &b);
    if (rc != STORE_OK)
        return rc;

    if (!store_key2(buf, sizeof(buf), tenant, folder, &k))
        return STORE_EINVAL;
    store_pack_init(&b, &pk);
    msgpack_pack_map(&pk, 1);
    store_pack_str(&pk, "address", address);
    return store_put(txn, DB_FOLDERS, &k, &b);
}

/* Checks a new mailbox: the tenant exists, the address is a valid mailbox,
 * not registered yet and not in a domain <name>.<platform> of another
 * name, whether or not that tenant exists yet. */
static int store_mailbox_new(struct store_txn *txn, const char *tenant,
                             const char *address, struct addr *a)
{
    struct store_tenant_rec rec;
    char owner[TENANT_MAX + 1], folder[ADDR_MAX + 1];
    int rc = store_tenant_read(txn, tenant, &rec);

    if (rc != STORE_OK)
        return rc;
    if (store_mailbox_parse(address, a) != STORE_OK)
        return STORE_EINVAL;
    rc = store_domain_reserved(txn, a->domain, tenant);
    if (rc != STORE_OK)
        return rc;
    rc = store_mailbox_get(txn, a->full, owner, folder, sizeof(folder));
    if (rc != STORE_ENOTFOUND)
        return rc == STORE_OK ? STORE_EEXIST : rc;
    return STORE_OK;
}

int store_mailbox_add(struct store_txn *txn, const char *tenant,
                      const char *address)
{
    char folder[ADDR_MAX + 1];
    struct addr a;
    int rc = store_mailbox_new(txn, tenant, address, &a);

    if (rc == STORE_OK)
        rc = store_folder_pick(txn, tenant, &a, folder);
    if (rc != STORE_OK)
        return rc;
    return store_mailbox_write(txn, tenant, a.full, folder);
}

int store_mailbox_add_folder(struct store_txn *txn, const char *tenant,
                             const char *address, const char *folder)
{
    struct addr a;
    int rc = store_mailbox_new(txn, tenant, address, &a);

    if (rc != STORE_OK)
        return rc;
    if (strcmp(folder, a.local) != 0 &&
        (strcmp(folder, a.full) != 0 || strlen(a.full) > STORE_NAME_MAX))
        return STORE_EINVAL;
    if (store_folder_taken(txn, tenant, folder))
        return STORE_EEXIST;
    return store_mailbox_write(txn, tenant, a.full, folder);
}

int store_mailbox_lookup(struct store_txn *txn, const char *address,
                         char *tenant, char *folder, size_t folderlen)
{
    struct addr a;

    if (addr_parse(address, &a) != ADDR_OK || a.full[0] == '\0')
        return STORE_EINVAL;
    return store_mailbox_get(txn, a.full, tenant, folder, folderlen);
}

int store_mailbox_remove(struct store_txn *txn, const char *tenant,
                         const char *address)
{
    struct store_tenant_rec rec;
    char owner[TENANT_MAX + 1], folder[ADDR_MAX + 1], buf[STORE_KEY_MAX];
    struct addr a;
    MDB_val k;
    int rc = store_tenant_read(txn, tenant, &rec);

    if (rc != STORE_OK)
        return rc;
    if (store_mailbox_parse(address, &a) != STORE_OK)
        return STORE_EINVAL;
    rc = store_mailbox_get(txn, a.full, owner, folder, sizeof(folder));
    if (rc != STORE_OK)
        return rc;
    if (strcmp(owner, tenant) != 0)
        return STORE_ENOTFOUND;

    k.mv_size = strlen(a.full);
    k.mv_data = a.full;
    rc = store_del(txn, DB_MAILBOX, &k);
    if (rc == STORE_OK && store_key2(buf, sizeof(buf), tenant, folder, &k))
        rc = store_del(txn, DB_FOLDERS, &k);
    return rc;
}

struct store_mailbox_walk {
    struct store_txn *txn;
    int (*cb)(const char *address, void *ctx);
    void *ctx;
};

static int store_mailbox_step(const MDB_val *key, const MDB_val *val, void *ctx)
{
    struct store_mailbox_walk *w = ctx;
    char address[ADDR_MAX + 1];
    struct store_field f[] = {
        {"address", SF_STR, true, address, sizeof(address), 0, false},
    };
    int rc = store_decode_map(w->txn, val, f, 1);

    return rc == STORE_OK ? w->cb(address, w->ctx) : rc;
}

int store_mailbox_foreach(struct store_txn *txn, const char *tenant,
                          int (*cb)(const char *address, void *ctx), void *ctx)
{
    struct store_mailbox_walk w = {txn, cb, ctx};
    struct store_tenant_rec rec;
    int rc = store_tenant_read(txn, tenant, &rec);

    if (rc != STORE_OK)
        return rc;
    return store_walk_prefix(txn, DB_FOLDERS, tenant, strlen(tenant) + 1,
                             store_mailbox_step, &w);
}

/* ---- tenant switches ---- */

/* Sets the TLS requirement (in_tls >= 0) or the allow-list switch and
 * action (in_tls < 0) of a tenant. */
static int store_tenant_edit(struct store_txn *txn, const char *tenant,
                             bool allow, enum in_action action, int in_tls)
{
    struct store_tenant_rec rec;
    int rc = store_tenant_read(txn, tenant, &rec);

    if (rc != STORE_OK)
        return rc;
    if (in_tls >= 0) {
        rec.in_tls = in_tls != 0;
    } else {
        rec.allow = allow;
        rec.action = action;
    }
    return store_tenant_write(txn, tenant, &rec);
}

int store_allowlist(struct store_txn *txn, const char *tenant, bool on,
                    enum in_action action)
{
    if (action != IN_REJECT && action != IN_DISCARD)
        return STORE_EINVAL;
    return store_tenant_edit(txn, tenant, on, action, -1);
}

int store_inbound_tls(struct store_txn *txn, const char *tenant, bool required)
{
    return store_tenant_edit(txn, tenant, false, IN_REJECT, required ? 1 : 0);
}

/* ---- trusted sender domains ---- */

int store_trust_add(struct store_txn *txn, const char *tenant,
                    const char *domain)
{
    char buf[STORE_KEY_MAX];
    struct store_buf b;
    msgpack_packer pk;
    MDB_val key;
    int rc =
        store_tenant_domain_key(txn, tenant, domain, buf, sizeof(buf), &key);

    if (rc != STORE_OK)
        return rc;
    store_pack_init(&b, &pk);
    msgpack_pack_map(&pk, 0);
    return store_put(txn, DB_TRUSTED, &key, &b);
}

int store_trust_remove(struct store_txn *txn, const char *tenant,
                       const char *domain)
{
    char buf[STORE_KEY_MAX];
    MDB_val key;
    int rc =
        store_tenant_domain_key(txn, tenant, domain, buf, sizeof(buf), &key);

    return rc == STORE_OK ? store_del(txn, DB_TRUSTED, &key) : rc;
}

int store_trust_has(struct store_txn *txn, const char *tenant, const char *key)
{
    char buf[STORE_KEY_MAX];
    MDB_val k, val;
    int rc;

    if (!store_key2(buf, sizeof(buf), tenant, key, &k))
        return STORE_ENOTFOUND;
    rc = store_get(txn, DB_TRUSTED, &k, &val);
    if (rc != STORE_OK)
        return rc;
    return store_decode_map(txn, &val, NULL, 0);
}

int store_trust_foreach(struct store_txn *txn, const char *tenant,
                        int (*cb)(const char *domain, void *ctx), void *ctx)
{
    struct store_tenant_rec rec;
    int rc = store_tenant_read(txn, tenant, &rec);

    if (rc != STORE_OK)
        return rc;
    return store_entry_walk_domains(txn, tenant, DB_TRUSTED, cb, ctx);
}
