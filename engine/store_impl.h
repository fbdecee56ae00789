/*
 * Inside the policy store: the LMDB handles, the MessagePack record codec
 * and the single-probe lookups the decision functions use. Only
 * engine/store*.c and engine/policy.c include this.
 */
#ifndef TLSGATE_STORE_IMPL_H
#define TLSGATE_STORE_IMPL_H

#include <lmdb.h>
#include <msgpack.h>

#include "store.h"

#define STORE_SCHEMA 1

/* The named databases; names and layout in docs/store.md. */
enum store_db {
    DB_META,     /* "schema", "generation" -> uint */
    DB_SETTINGS, /* key -> str */
    DB_TENANTS,  /* name -> tenant map */
    DB_OUTBOUND, /* tenant\0domain -> {level} */
    DB_MAILBOX,  /* address -> {tenant, folder} */
    DB_FOLDERS,  /* tenant\0folder -> {address} */
    DB_TRUSTED,  /* tenant\0domain -> {} */
    DB_SENDERS,  /* set From address -> {tenant} */
    DB_ROUTES,   /* domain -> {host, port} */
    DB_COUNT
};

struct store {
    MDB_env *env;
    MDB_dbi dbi[DB_COUNT];
    bool rdonly;
};

struct store_txn {
    struct store *st;
    MDB_txn *txn;
    bool write;
    uint64_t generation;
    msgpack_zone zone; /* reused by every decode: no malloc per lookup */
};

/* A tenant record as stored (the From is "" when it is the default). */
struct store_tenant_rec {
    char from[ADDR_MAX + 1];
    enum out_mode mode;
    enum tls_level level;
    bool in_tls;
    bool allow;
    enum in_action action;
    enum out_mode shadow_mode;   /* MODE_OFF: no shadow policy */
    enum tls_level shadow_level; /* the shadow's default level under all */
};

/* ---- codec: strict decoding of one MessagePack map per value ---- */

enum store_ftype { SF_STR, SF_UINT, SF_BOOL };

struct store_field {
    const char *name;
    enum store_ftype type;
    bool required;
    void *dst;    /* char[size], uint64_t, or bool */
    size_t size;  /* SF_STR: buffer size */
    uint64_t max; /* SF_UINT: largest value allowed */
    bool seen;
};

/* Fixed-size output buffer for the MessagePack packer (no malloc). */
struct store_buf {
    char data[1024];
    size_t len;
    bool overflow;
};

void store_pack_init(struct store_buf *b, msgpack_packer *pk);
void store_pack_str(msgpack_packer *pk, const char *key, const char *val);
void store_pack_uint(msgpack_packer *pk, const char *key, uint64_t val);
void store_pack_bool(msgpack_packer *pk, const char *key, bool val);

/* Decodes val as a map holding exactly the fields f (required ones must be
 * present, no other keys, no duplicates). 0 or STORE_ECORRUPT. */
int store_decode_map(struct store_txn *txn, const MDB_val *val,
                     struct store_field *f, size_t n);

/* ---- raw access ---- */

/* Maps an LMDB return code to an enum store_error. */
int store_mdb_err(int rc);
/* Builds "a\0b" into key (size n); false when it does not fit. */
bool store_key2(char *buf, size_t n, const char *a, const char *b,
                MDB_val *key);
int store_get(struct store_txn *txn, enum store_db db, const MDB_val *key,
              MDB_val *val);
int store_put(struct store_txn *txn, enum store_db db, const MDB_val *key,
              const struct store_buf *b);
int store_del(struct store_txn *txn, enum store_db db, const MDB_val *key);
/* Deletes every key that starts with prefix (plen bytes). */
int store_del_prefix(struct store_txn *txn, enum store_db db,
                     const char *prefix, size_t plen);
/* Calls cb(key, val, ctx) for every key starting with prefix, in order;
 * a nonzero cb return stops the walk and is returned. */
int store_walk_prefix(
    struct store_txn *txn, enum store_db db, const char *prefix, size_t plen,
    int (*cb)(const MDB_val *key, const MDB_val *val, void *ctx), void *ctx);

/* Calls cb(rest, ctx) for every "tenant\0rest" key of db (the tenant's
 * trusted domains, for instance). */
int store_entry_walk_domains(struct store_txn *txn, const char *tenant,
                             enum store_db db,
                             int (*cb)(const char *domain, void *ctx),
                             void *ctx);

/* ---- single-probe lookups ---- */

/* Reads a tenant record: 0, STORE_ENOTFOUND or STORE_ECORRUPT. */
int store_tenant_read(struct store_txn *txn, const char *name,
                      struct store_tenant_rec *rec);
/* Writes a tenant record (no checks). */
int store_tenant_write(struct store_txn *txn, const char *name,
                       const struct store_tenant_rec *rec);
/* Fills a tenant_info from a record (computes the default From). */
int store_tenant_info(struct store_txn *txn, const char *name,
                      const struct store_tenant_rec *rec,
                      struct tenant_info *out);
/* The level of the outbound entry key (a domain or ".domain"). */
int store_outbound_level(struct store_txn *txn, const char *tenant,
                         const char *key, enum tls_level *lvl);
/* 0 when the tenant trusts the entry key, else STORE_ENOTFOUND. */
int store_trust_has(struct store_txn *txn, const char *tenant, const char *key);
/* The tenant and Maildir folder of a normalised mailbox address. */
int store_mailbox_get(struct store_txn *txn, const char *address, char *tenant,
                      char *folder, size_t folderlen);
/* The tenant whose set From is the normalised address. */
int store_sender_get(struct store_txn *txn, const char *address, char *tenant);
/* The route stored under key (a domain or ".domain"). */
int store_route_get(struct store_txn *txn, const char *key, char *host,
                    size_t hostlen, unsigned *port);
/* The existing tenant whose own domain ("<tenant>.<platform>") is domain:
 * 0 with its name, or STORE_ENOTFOUND. */
int store_domain_tenant(struct store_txn *txn, const char *domain, char *name);
/* STORE_EEXIST when domain is <name>.<platform> for a name other than
 * tenant (reserved for that tenant, existing or not), else STORE_OK. */
int store_domain_reserved(struct store_txn *txn, const char *domain,
                          const char *tenant);
/* Checks the tenant exists and builds the "tenant\0domain" key of an
 * outbound or trusted entry in buf (size n), the domain normalised
 * (".example.com" kept): STORE_OK, STORE_ENOTFOUND or STORE_EINVAL. */
int store_tenant_domain_key(struct store_txn *txn, const char *tenant,
                            const char *domain, char *buf, size_t n,
                            MDB_val *key);
/* The platform domain, or STORE_ENOINIT. */
int store_platform_domain(struct store_txn *txn, char *out, size_t outlen);

#endif
