/*
 * The policy store: one LMDB environment, the only source of truth, shared
 * by the engine (reads) and tlsgate-admin (writes). Layout in docs/store.md.
 *
 * Every write transaction bumps the policy generation once, at commit.
 * Readers never block writers (LMDB MVCC); a reader that keeps its store
 * open sees each commit in its next transaction.
 *
 * Every function returns 0 or a negative enum store_error. A write function
 * checks all its input first: STORE_EINVAL (bad name, domain, address,
 * level, mode, port, host), STORE_ENOTFOUND (no such tenant or entry),
 * STORE_EEXIST; then nothing was written and the caller aborts. Names and
 * domains are normalised (addr_domain_norm) before they are stored or
 * compared. STORE_EFULL, STORE_EIO, STORE_ECORRUPT can come from any call.
 * A store_txn is used by one thread at a time; a store by many. The
 * *_foreach functions call cb in key order; a nonzero cb return stops the
 * walk and is returned.
 */
#ifndef TLSGATE_STORE_H
#define TLSGATE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

#define TENANT_MAX 63

enum store_error {
    STORE_OK = 0,
    STORE_ENOTFOUND = -1, /* no such tenant, entry, mailbox, route */
    STORE_EEXIST = -2,    /* already there (where that is an error) */
    STORE_EINVAL = -3,    /* bad name, domain, address, level, port... */
    STORE_EFULL = -4,     /* LMDB map or readers full */
    STORE_EIO = -5,       /* any other LMDB or system failure */
    STORE_ECORRUPT = -6,  /* a record that does not decode */
    STORE_ENOINIT = -7,   /* store not initialised (no platform domain) */
    STORE_EVERSION = -8,  /* schema version this build cannot read */
};

enum tls_level { TLS_NONE, TLS_MAY, TLS_ENCRYPT, TLS_VERIFY, TLS_SECURE };
enum out_mode { MODE_OFF, MODE_ALL, MODE_DOMAINS };
enum in_action { IN_ACCEPT, IN_REJECT, IN_DISCARD };

struct store;
struct store_txn;

struct tenant_info {
    char name[TENANT_MAX + 1];
    char from[ADDR_MAX + 1]; /* effective From: set one or the default */
    bool from_is_default;    /* from = noreply@<tenant>.<platform> */
    enum out_mode mode;
    enum tls_level default_level; /* under MODE_ALL; >= TLS_ENCRYPT */
    bool inbound_tls_required;
    bool allowlist;
    enum in_action allowlist_action; /* IN_REJECT or IN_DISCARD */
    enum out_mode shadow_mode;       /* shadow policy; MODE_OFF: none */
    enum tls_level shadow_level;     /* its default level (>= encrypt) */
};

/* ---- opening and transactions ---- */

#define STORE_RDONLY 0x1 /* open for reading only (the engine) */
#define STORE_CREATE 0x2 /* create the folder if missing (init) */

/* Opens the store folder dir. map_size 0 means the default (1 GiB). */
int store_open(struct store **out, const char *dir, size_t map_size,
               unsigned flags);
void store_close(struct store *st);

/* Begins a read (write = false) or write transaction. */
int store_begin(struct store *st, bool write, struct store_txn **out);
/* Commits: for a write transaction, bumps the generation first. */
int store_commit(struct store_txn *txn);
/* As store_commit; on success *generation is the generation the store is
 * at after the commit (for a write, the new one). */
int store_commit_gen(struct store_txn *txn, uint64_t *generation);
void store_abort(struct store_txn *txn);
/* For hot readers: end a read transaction but keep its handle, then
 * start it again on the newest data (mdb_txn_reset / mdb_txn_renew). */
void store_reset(struct store_txn *txn);
int store_renew(struct store_txn *txn);

/* The policy generation this transaction reads (0 before init). In a write
 * transaction: the generation before its commit. */
uint64_t store_generation(struct store_txn *txn);

/* One short sentence for an enum store_error. */
const char *store_strerror(int err);

/* ---- global settings ---- */

/* Sets the platform domain (normalised). 0 when it is already that domain,
 * STORE_EEXIST when it is another one, STORE_EINVAL for a bad domain. */
int store_init(struct store_txn *txn, const char *platform_domain);
/* Known keys: platform_domain (a domain, normalised) and
 * default_from_local (the local part of default From addresses, "noreply"
 * when unset). out is NUL-ended. get: 0, STORE_ENOTFOUND, STORE_EINVAL (out
 * too small); set: 0, STORE_EINVAL (unknown key or bad value). */
int store_setting_get(struct store_txn *txn, const char *key, char *out,
                      size_t outlen);
int store_setting_set(struct store_txn *txn, const char *key,
                      const char *value);
int store_setting_foreach(struct store_txn *txn,
                          int (*cb)(const char *key, const char *value,
                                    void *ctx),
                          void *ctx);

/* ---- tenants ---- */

/* Tenant names: [a-z0-9-], 1..63, no leading or trailing '-'. */
bool store_tenant_name_ok(const char *name);
int store_tenant_add(struct store_txn *txn, const char *name,
                     const char *from /* NULL: the default */);
/* Removes the tenant and everything that belongs to it. */
int store_tenant_remove(struct store_txn *txn, const char *name);
int store_tenant_get(struct store_txn *txn, const char *name,
                     struct tenant_info *out);
int store_tenant_foreach(struct store_txn *txn,
                         int (*cb)(const struct tenant_info *t, void *ctx),
                         void *ctx);
/* A From belongs to one tenant and may not be in another tenant's own
 * domain (STORE_EEXIST). */
int store_tenant_set_from(struct store_txn *txn, const char *name,
                          const char *from /* NULL: back to default */);

/* ---- outbound ---- */

/* level is used for MODE_ALL (default TLS_ENCRYPT; below is EINVAL). */
int store_outbound_mode(struct store_txn *txn, const char *tenant,
                        enum out_mode mode, enum tls_level level);
/* The shadow policy: the outbound policy the senders evaluate beside the
 * live one (same entries, this mode and default level) to count what it
 * would have deferred. MODE_OFF turns it off; level as for
 * store_outbound_mode (kept for a later all when mode is not MODE_ALL). */
int store_outbound_shadow(struct store_txn *txn, const char *tenant,
                          enum out_mode mode, enum tls_level level);
/* domain "example.com" matches itself, ".example.com" every subdomain. An
 * existing entry gets the new level. */
int store_outbound_add(struct store_txn *txn, const char *tenant,
                       const char *domain, enum tls_level level);
int store_outbound_remove(struct store_txn *txn, const char *tenant,
                          const char *domain);
int store_outbound_foreach(struct store_txn *txn, const char *tenant,
                           int (*cb)(const char *domain, enum tls_level lvl,
                                     void *ctx),
                           void *ctx);

/* ---- inbound ---- */

/* Any domain but an address literal; the local part must pass
 * addr_local_is_safe; an address belongs to one tenant only, and an
 * address in another tenant's own domain is refused (both STORE_EEXIST).
 * The Maildir folder is fixed here (docs/store.md). */
int store_mailbox_add(struct store_txn *txn, const char *tenant,
                      const char *address);
/* As store_mailbox_add with the folder given (import keeps folders as
 * exported): folder must be the address's local part or "local@domain",
 * and not yet used by the tenant (else STORE_EEXIST). */
int store_mailbox_add_folder(struct store_txn *txn, const char *tenant,
                             const char *address, const char *folder);
/* The tenant and Maildir folder (size folderlen >= ADDR_MAX + 1) of a
 * registered mailbox: 0, STORE_ENOTFOUND or STORE_EINVAL. */
int store_mailbox_lookup(struct store_txn *txn, const char *address,
                         char *tenant, char *folder, size_t folderlen);
int store_mailbox_remove(struct store_txn *txn, const char *tenant,
                         const char *address);
int store_mailbox_foreach(struct store_txn *txn, const char *tenant,
                          int (*cb)(const char *address, void *ctx), void *ctx);
int store_allowlist(struct store_txn *txn, const char *tenant, bool on,
                    enum in_action action);
/* domain or ".domain"; adding an existing entry is not an error. */
int store_trust_add(struct store_txn *txn, const char *tenant,
                    const char *domain);
int store_trust_remove(struct store_txn *txn, const char *tenant,
                       const char *domain);
int store_trust_foreach(struct store_txn *txn, const char *tenant,
                        int (*cb)(const char *domain, void *ctx), void *ctx);
int store_inbound_tls(struct store_txn *txn, const char *tenant, bool required);

/* ---- routes ---- */

int store_route_add(struct store_txn *txn, const char *domain, const char *host,
                    unsigned port);
int store_route_remove(struct store_txn *txn, const char *domain);
int store_route_foreach(struct store_txn *txn,
                        int (*cb)(const char *domain, const char *host,
                                  unsigned port, void *ctx),
                        void *ctx);

/* Empties every table but the meta record (for import). */
int store_clear(struct store_txn *txn);

#endif
