/*
 * Pure decision functions over one store transaction: the same answers for
 * the engine, tlsgate-admin explain, and the tests.
 */
#ifndef TLSGATE_POLICY_H
#define TLSGATE_POLICY_H

#include "store.h"

#define RULE_MAX 320

struct outbound_decision {
    char tenant[TENANT_MAX + 1];
    char recipient[ADDR_MAX + 1];     /* normalised */
    char domain[ADDR_DOMAIN_MAX + 1]; /* recipient domain */
    enum tls_level level;
    bool required;       /* level >= TLS_ENCRYPT */
    char rule[RULE_MAX]; /* e.g. "domain:vendor.example",
                            "subdomain:.example.com", "default:mode=off" */
    uint64_t generation;
    /* The tenant's shadow policy (store_outbound_shadow), when it has one:
     * the level it would apply and the rule that chose it. */
    bool shadow;
    enum tls_level shadow_level;
    char shadow_rule[RULE_MAX];
};

/*
 * Level for tenant sending to recipient. Mode off: none, entries ignored.
 * Mode all: the tenant default, raised by a stronger matching entry.
 * Mode domains: a matching entry's level, else none. An exact entry beats
 * a subdomain entry; the longest subdomain entry wins. With a shadow
 * policy, shadow_level/shadow_rule are the same choice under the shadow's
 * mode and default level.
 * Returns 0, STORE_ENOTFOUND (no such tenant), STORE_EINVAL (bad address)
 * or another negative enum store_error.
 */
int policy_outbound(struct store_txn *txn, const char *tenant,
                    const char *recipient, struct outbound_decision *out);

struct inbound_decision {
    enum in_action action;
    int code;                    /* 250 for accept and discard */
    char enhanced[8];            /* "2.1.5", "5.1.1", "5.7.1", "5.7.0" */
    char text[128];              /* human text for the reply */
    char tenant[TENANT_MAX + 1]; /* "" when no mailbox matched */
    char mailbox[ADDR_MAX + 1];  /* normalised registered address */
    char mailbox_dir[ADDR_MAX + TENANT_MAX + 2]; /* "<tenant>/<local>" */
    char rule[RULE_MAX]; /* "no-mailbox", "tls-required",
                            "allowlist:not-trusted",
                            "allowlist:trusted:<entry>" (the trusted
                            domain or ".domain" that matched), "mailbox" */
    uint64_t generation;
};

/*
 * Decision for one RCPT: unknown mailbox 550 5.1.1; tenant requires TLS in a
 * plaintext session 530 5.7.0; allow-list on and sender domain not trusted
 * (null sender included) 550 5.7.1 or discard; else accept. mailbox_dir is
 * built only from the registered mailbox, never from the text given.
 * A malformed recipient (or "<>") returns STORE_EINVAL; a malformed sender
 * is not an error: it matches no trusted domain. STORE_ECORRUPT or another
 * negative enum store_error when the store cannot be read.
 */
int policy_inbound(struct store_txn *txn, const char *sender,
                   const char *recipient, bool tls,
                   struct inbound_decision *out);

/*
 * Tenant of a submission's envelope sender: a sender in
 * <tenant>.<platform domain>, else a sender equal to a tenant's set From.
 * Returns 0, STORE_ENOTFOUND (no match, or the null sender), STORE_EINVAL
 * (malformed sender), STORE_ENOINIT or another negative enum store_error.
 */
int policy_tenant_for_sender(struct store_txn *txn, const char *sender,
                             struct tenant_info *out);

/* Route override for a recipient domain: exact, then ".parent" entries,
 * longest first. host is a name or a bare IP address (no brackets).
 * Returns 0, STORE_ENOTFOUND, or STORE_EINVAL (malformed domain). */
int policy_route(struct store_txn *txn, const char *domain, char *host,
                 size_t hostlen, unsigned *port);

const char *tls_level_name(enum tls_level lvl);
int tls_level_parse(const char *s, enum tls_level *out);
const char *out_mode_name(enum out_mode mode);
int out_mode_parse(const char *s, enum out_mode *out);
const char *in_action_name(enum in_action action);

#endif
