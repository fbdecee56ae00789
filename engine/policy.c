/*
 * The decision functions: outbound TLS level, inbound RCPT decision, the
 * tenant of a submission sender and route overrides. Each reads only the
 * transaction it is given and allocates nothing for ASCII input.
 */
#include "policy.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "store_impl.h"

static const char *const tls_level_names[] = {"none", "may", "encrypt",
                                              "verify", "secure"};
static const char *const out_mode_names[] = {"off", "all", "domains"};
static const char *const in_action_names[] = {"accept", "reject", "discard"};

/*
 * Finds the entry that matches domain best: "tenant\0domain" exactly, then
 * ".parent" entries from the longest parent to the shortest. found_key gets
 * the entry that matched. STORE_ENOTFOUND when none does.
 */
static int policy_match(struct store_txn *txn, const char *tenant,
                        const char *domain, bool outbound, enum tls_level *lvl,
                        const char **found_key)
{
    int rc;

    *found_key = domain;
    rc = outbound ? store_outbound_level(txn, tenant, domain, lvl)
                  : store_trust_has(txn, tenant, domain);
    if (rc != STORE_ENOTFOUND || domain[0] == '[')
        return rc;
    for (const char *p = strchr(domain, '.'); p != NULL;
         p = strchr(p + 1, '.')) {
        *found_key = p;
        rc = outbound ? store_outbound_level(txn, tenant, p, lvl)
                      : store_trust_has(txn, tenant, p);
        if (rc != STORE_ENOTFOUND)
            return rc;
    }
    return STORE_ENOTFOUND;
}

/* Writes the rule naming the entry key that matched. */
static void policy_entry_rule(char *rule, const char *key)
{
    snprintf(rule, RULE_MAX, "%s:%s", key[0] == '.' ? "subdomain" : "domain",
             key);
}

/* Chooses the level from the tenant's mode and its best matching entry. */
static int policy_outbound_level(struct store_txn *txn, const char *tenant,
                                 const struct store_tenant_rec *rec,
                                 struct outbound_decision *out)
{
    enum tls_level lvl = TLS_NONE;
    const char *key;
    int rc;

    if (rec->mode == MODE_OFF) {
        out->level = TLS_NONE;
        snprintf(out->rule, sizeof(out->rule), "default:mode=off");
        return STORE_OK;
    }
    rc = policy_match(txn, tenant, out->domain, true, &lvl, &key);
    if (rc != STORE_OK && rc != STORE_ENOTFOUND)
        return rc;

    if (rec->mode == MODE_ALL && (rc != STORE_OK || lvl <= rec->level)) {
        out->level = rec->level;
        snprintf(out->rule, sizeof(out->rule), "default:mode=all");
    } else if (rc == STORE_OK) {
        out->level = lvl;
        policy_entry_rule(out->rule, key);
    } else {
        out->level = TLS_NONE;
        snprintf(out->rule, sizeof(out->rule), "default:unlisted");
    }
    return STORE_OK;
}

/* The shadow choice: the live one under the shadow's mode and level. */
static int policy_outbound_shadow(struct store_txn *txn, const char *tenant,
                                  const struct store_tenant_rec *rec,
                                  struct outbound_decision *out)
{
    struct store_tenant_rec srec = *rec;
    struct outbound_decision sd;
    int rc;

    srec.mode = rec->shadow_mode;
    srec.level = rec->shadow_level;
    memcpy(sd.domain, out->domain, sizeof(sd.domain));
    rc = policy_outbound_level(txn, tenant, &srec, &sd);
    if (rc != STORE_OK)
        return rc;
    out->shadow = true;
    out->shadow_level = sd.level;
    memcpy(out->shadow_rule, sd.rule, sizeof(out->shadow_rule));
    return STORE_OK;
}

int policy_outbound(struct store_txn *txn, const char *tenant,
                    const char *recipient, struct outbound_decision *out)
{
    struct store_tenant_rec rec;
    struct addr a;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = store_tenant_read(txn, tenant, &rec);
    if (rc != STORE_OK)
        return rc;
    if (addr_parse(recipient, &a) != ADDR_OK || a.full[0] == '\0' ||
        strlen(a.full) > ADDR_MAX)
        return STORE_EINVAL;

    snprintf(out->tenant, sizeof(out->tenant), "%s", tenant);
    memcpy(out->recipient, a.full, strlen(a.full) + 1);
    memcpy(out->domain, a.domain, strlen(a.domain) + 1);
    out->generation = store_generation(txn);
    rc = policy_outbound_level(txn, tenant, &rec, out);
    out->required = out->level >= TLS_ENCRYPT;
    if (rc == STORE_OK && rec.shadow_mode != MODE_OFF)
        rc = policy_outbound_shadow(txn, tenant, &rec, out);
    return rc;
}

/* Fills the reply part of an inbound decision. */
static void policy_reply(struct inbound_decision *out, enum in_action action,
                         int code, const char *enhanced, const char *text,
                         const char *rule)
{
    out->action = action;
    out->code = code;
    snprintf(out->enhanced, sizeof(out->enhanced), "%s", enhanced);
    snprintf(out->text, sizeof(out->text), "%s", text);
    snprintf(out->rule, sizeof(out->rule), "%s", rule);
}

/* Applies the allow-list of a tenant to the envelope sender. */
static int policy_allowlist(struct store_txn *txn,
                            const struct store_tenant_rec *rec,
                            const char *sender, struct inbound_decision *out)
{
    enum tls_level unused;
    const char *key;
    struct addr s;
    int rc = STORE_ENOTFOUND;

    if (addr_parse(sender, &s) == ADDR_OK && s.domain[0] != '\0')
        rc = policy_match(txn, out->tenant, s.domain, false, &unused, &key);
    if (rc == STORE_OK) {
        policy_reply(out, IN_ACCEPT, 250, "2.1.5", "Recipient OK", "");
        snprintf(out->rule, sizeof(out->rule), "allowlist:trusted:%s", key);
        return STORE_OK;
    }
    if (rc != STORE_ENOTFOUND)
        return rc;
    if (rec->action == IN_DISCARD)
        policy_reply(out, IN_DISCARD, 250, "2.1.5", "Recipient OK",
                     "allowlist:not-trusted");
    else
        policy_reply(out, IN_REJECT, 550, "5.7.1",
                     "Sender domain not trusted by the recipient",
                     "allowlist:not-trusted");
    return STORE_OK;
}

int policy_inbound(struct store_txn *txn, const char *sender,
                   const char *recipient, bool tls,
                   struct inbound_decision *out)
{
    struct store_tenant_rec rec;
    char folder[ADDR_MAX + 1];
    struct addr r;
    int rc;

    memset(out, 0, sizeof(*out));
    out->generation = store_generation(txn);
    if (addr_parse(recipient, &r) != ADDR_OK || r.full[0] == '\0')
        return STORE_EINVAL;
    rc = store_mailbox_get(txn, r.full, out->tenant, folder, sizeof(folder));
    if (rc == STORE_ENOTFOUND) {
        out->tenant[0] = '\0';
        policy_reply(out, IN_REJECT, 550, "5.1.1",
                     "Recipient is not a monitored mailbox", "no-mailbox");
        return STORE_OK;
    }
    if (rc != STORE_OK)
        return rc;

    rc = store_tenant_read(txn, out->tenant, &rec);
    if (rc != STORE_OK)
        return rc == STORE_ENOTFOUND ? STORE_ECORRUPT : rc;
    memcpy(out->mailbox, r.full, strlen(r.full) + 1);
    snprintf(out->mailbox_dir, sizeof(out->mailbox_dir), "%s/%s", out->tenant,
             folder);

    if (rec.in_tls && !tls) {
        policy_reply(out, IN_REJECT, 530, "5.7.0",
                     "Must issue a STARTTLS command first", "tls-required");
        return STORE_OK;
    }
    if (rec.allow)
        return policy_allowlist(txn, &rec, sender, out);
    policy_reply(out, IN_ACCEPT, 250, "2.1.5", "Recipient OK", "mailbox");
    return STORE_OK;
}

int policy_tenant_for_sender(struct store_txn *txn, const char *sender,
                             struct tenant_info *out)
{
    char name[TENANT_MAX + 1];
    struct addr a;
    int rc;

    memset(out, 0, sizeof(*out));
    if (addr_parse(sender, &a) != ADDR_OK)
        return STORE_EINVAL;
    if (a.full[0] == '\0')
        return STORE_ENOTFOUND;
    rc = store_domain_tenant(txn, a.domain, name);
    if (rc == STORE_ENOTFOUND)
        rc = store_sender_get(txn, a.full, name);
    if (rc != STORE_OK)
        return rc;
    rc = store_tenant_get(txn, name, out);
    return rc == STORE_ENOTFOUND ? STORE_ECORRUPT : rc;
}

int policy_route(struct store_txn *txn, const char *domain, char *host,
                 size_t hostlen, unsigned *port)
{
    char norm[ADDR_DOMAIN_MAX + 1];
    int rc;

    if (addr_domain_norm(domain, 0, norm, sizeof(norm)) != ADDR_OK)
        return STORE_EINVAL;
    rc = store_route_get(txn, norm, host, hostlen, port);
    if (rc != STORE_ENOTFOUND || norm[0] == '[')
        return rc;
    for (const char *p = strchr(norm, '.'); p != NULL; p = strchr(p + 1, '.')) {
        rc = store_route_get(txn, p, host, hostlen, port);
        if (rc != STORE_ENOTFOUND)
            return rc;
    }
    return STORE_ENOTFOUND;
}

const char *tls_level_name(enum tls_level lvl)
{
    return (unsigned)lvl <= TLS_SECURE ? tls_level_names[lvl] : "unknown";
}

int tls_level_parse(const char *s, enum tls_level *out)
{
    for (unsigned i = 0; i <= TLS_SECURE; i++)
        if (strcasecmp(s, tls_level_names[i]) == 0) {
            *out = (enum tls_level)i;
            return STORE_OK;
        }
    return STORE_EINVAL;
}

const char *out_mode_name(enum out_mode mode)
{
    return (unsigned)mode <= MODE_DOMAINS ? out_mode_names[mode] : "unknown";
}

int out_mode_parse(const char *s, enum out_mode *out)
{
    for (unsigned i = 0; i <= MODE_DOMAINS; i++)
        if (strcasecmp(s, out_mode_names[i]) == 0) {
            *out = (enum out_mode)i;
            return STORE_OK;
        }
    return STORE_EINVAL;
}

const char *in_action_name(enum in_action action)
{
    return (unsigned)action <= IN_DISCARD ? in_action_names[action] : "unknown";
}
