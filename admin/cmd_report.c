/*
 * report readiness / tlsrpt / audit: what the outcome events the engine
 * keeps say about a tenant's recipient domains (docs/operator-tls.md).
 */
#include "report.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What a level would have made of one delivery attempt. */
enum verdict { V_UNKNOWN, V_OK, V_FAIL };

/* Per recipient domain counters (one JSON object each while scanning). */
struct dom_stats {
    json_t *doms; /* domain -> object of counters */
    json_t *ids;  /* "domain\nid": seen, for message counts */
};

static void bump(json_t *o, const char *key, json_int_t by)
{
    json_t *v = json_object_get(o, key);

    json_object_set_new(o, key,
                        json_integer((v ? json_integer_value(v) : 0) + by));
}

/* The verdict of level (encrypt or verify) on one attempt: known only
 * when the sender tried STARTTLS (a level other than none) or saw TLS. */
static enum verdict judge(const struct eng_event *e, enum tls_level lvl)
{
    bool up = e->tls_protocol[0] != '\0';

    if (up)
        return lvl == TLS_VERIFY && !e->tls_verified ? V_FAIL : V_OK;
    if (e->tls_failure[0])
        return V_FAIL;
    if (!strcmp(e->status, "sent") && strcmp(e->level, "none") != 0)
        return V_FAIL; /* may: went in plaintext */
    return V_UNKNOWN;
}

/* Merges a verdict into the domain's: fail beats ok beats unknown. */
static void merge(json_t *d, const char *key, enum verdict v)
{
    const char *cur = json_string_value(json_object_get(d, key));
    static const char *const names[] = {"unknown", "ok", "fail"};

    if (!cur || (v == V_FAIL) || (v == V_OK && !strcmp(cur, "unknown")))
        json_object_set_new(d, key, json_string(names[v]));
}

/* The counters object of a domain, created with every field at zero. */
static json_t *dom_get(json_t *doms, const char *domain)
{
    json_t *d = json_object_get(doms, domain);

    if (d)
        return d;
    d = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:s, s:s, s:o, "
                  "s:{s:i, s:i, s:i}}",
                  "messages", 0, "attempts", 0, "sent", 0, "deferred", 0,
                  "bounced", 0, "tls", 0, "verified", 0, "plaintext", 0,
                  "under_all", "unknown", "under_verify", "unknown", "failures",
                  json_object(), "shadow", "would_defer", 0, "pass", 0,
                  "unknown", 0);
    json_object_set_new(doms, domain, d);
    return d;
}

/* Counts one delivery event into its domain. */
static int readiness_step(const struct eng_event *e, void *ctx)
{
    struct dom_stats *s = ctx;
    char key[600];
    json_t *d, *sh;

    if (e->kind != EV_DELIVERY)
        return 0;
    d = dom_get(s->doms, e->peer_domain);
    snprintf(key, sizeof(key), "%s\n%s", e->peer_domain, e->id);
    if (!json_object_get(s->ids, key)) {
        json_object_set_new(s->ids, key, json_true());
        bump(d, "messages", 1);
    }
    bump(d, "attempts", 1);
    bump(d, e->status, 1);
    if (!strcmp(e->status, "sent"))
        bump(d,
             e->tls_protocol[0] ? (e->tls_verified ? "verified" : "tls")
                                : "plaintext",
             1);
    if (!strcmp(e->status, "sent") && e->tls_verified)
        bump(d, "tls", 1); /* verified TLS is TLS too */
    if (e->tls_failure[0])
        bump(json_object_get(d, "failures"), e->tls_failure, 1);
    merge(d, "under_all", judge(e, TLS_ENCRYPT));
    merge(d, "under_verify", judge(e, TLS_VERIFY));
    sh = json_object_get(d, "shadow");
    if (e->shadow_result[0])
        bump(sh,
             !strcmp(e->shadow_result, "would-defer") ? "would_defer"
                                                      : e->shadow_result,
             1);
    return 0;
}

/* Scans the tenant's events of the period into per-domain counters. */
static int collect(struct adm_ctx *c, int64_t since, int64_t until,
                   adm_event_cb cb, void *ctx)
{
    char dir[4096];
    struct store *st;
    struct store_txn *txn;
    int rc;

    if (adm_tenant_name(c->args[0]) != ADM_OK ||
        adm_read_begin(c, &st, &txn) != ADM_OK)
        return ADM_FAIL;
    rc = adm_tenant(txn, c->args[0], NULL);
    adm_read_end(st, txn);
    if (rc != ADM_OK || adm_state_path(c, "events", dir, sizeof(dir)) != 0)
        return ADM_FAIL;
    return adm_events_scan(dir, c->args[0], since, until, cb, ctx);
}

/* The domains whose key field says fail (or unknown), as an array. */
static json_t *dom_list(json_t *doms, const char *key, const char *value)
{
    json_t *arr = json_array(), *d;
    const char *name;

    json_object_foreach(doms, name, d)
    {
        if (!strcmp(json_string_value(json_object_get(d, key)), value))
            json_array_append_new(arr, json_string(name));
    }
    return arr;
}

#define IV(d, k) (json_integer_value(json_object_get((d), (k))))

static int key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of obj in sorted order (a malloc'd array of n). */
static const char **sorted_keys(json_t *obj, size_t *n)
{
    const char **keys = calloc(json_object_size(obj) + 1, sizeof(*keys));
    const char *k;
    json_t *v;

    *n = 0;
    json_object_foreach(obj, k, v)
    {
        keys[(*n)++] = k;
    }
    qsort(keys, *n, sizeof(*keys), key_cmp);
    return keys;
}

/* The values of obj as an array, in the order of their keys. */
static json_t *sorted_values(json_t *obj)
{
    size_t n;
    const char **keys = sorted_keys(obj, &n);
    json_t *arr = json_array();

    for (size_t k = 0; k < n; k++)
        json_array_append(arr, json_object_get(obj, keys[k]));
    free(keys);
    return arr;
}

/* readiness as a text table, domains in order. */
static void readiness_text(json_t *doc)
{
    struct adm_table t;
    json_t *doms = json_object_get(doc, "domains"), *d;
    size_t nk;
    const char **keys = sorted_keys(doms, &nk), *name;
    char n[6][24];

    adm_table_init(&t, 9);
    adm_table_row(&t, "DOMAIN", "MESSAGES", "SENT", "TLS", "VERIFIED",
                  "PLAINTEXT", "SHADOW-DEFER", "UNDER-ALL", "UNDER-VERIFY");
    for (size_t k = 0; k < nk; k++) {
        name = keys[k];
        d = json_object_get(doms, name);
        snprintf(n[0], 24, "%lld", (long long)IV(d, "messages"));
        snprintf(n[1], 24, "%lld", (long long)IV(d, "sent"));
        snprintf(n[2], 24, "%lld", (long long)IV(d, "tls"));
        snprintf(n[3], 24, "%lld", (long long)IV(d, "verified"));
        snprintf(n[4], 24, "%lld", (long long)IV(d, "plaintext"));
        snprintf(n[5], 24, "%lld",
                 (long long)IV(json_object_get(d, "shadow"), "would_defer"));
        adm_table_row(&t, name, n[0], n[1], n[2], n[3], n[4], n[5],
                      json_string_value(json_object_get(d, "under_all")),
                      json_string_value(json_object_get(d, "under_verify")));
    }
    free(keys);
    adm_table_print(&t, stdout);
}

/* report readiness NAME [--since] [--until] */
int adm_cmd_report_readiness(struct adm_ctx *c)
{
    struct dom_stats s = {json_object(), json_object()};
    int64_t since, until;
    char a[32], b[32];
    json_t *doc;
    int rc;

    if ((rc = adm_period(c, &since, &until)) != ADM_OK ||
        (rc = collect(c, since, until, readiness_step, &s)) != ADM_OK) {
        json_decref(s.doms);
        json_decref(s.ids);
        return rc;
    }
    json_decref(s.ids);
    adm_iso_time(since, a, sizeof(a));
    adm_iso_time(until, b, sizeof(b));
    doc = json_pack(
        "{s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "tenant", c->args[0], "since", a,
        "until", b, "would_fail_all", dom_list(s.doms, "under_all", "fail"),
        "would_fail_verify", dom_list(s.doms, "under_verify", "fail"),
        "unknown", dom_list(s.doms, "under_all", "unknown"), "domains", s.doms);
    if (c->json)
        return adm_json_out(doc, stdout, true);
    readiness_text(doc);
    json_decref(doc);
    return ADM_OK;
}

/* ---- RFC 8460 ---- */

/* Counts one delivery attempt as a session of its policy domain. A
 * session succeeded when TLS was up, failed when it has a failure type;
 * attempts that never tried TLS (level none) are not sessions. */
static int tlsrpt_step(const struct eng_event *e, void *ctx)
{
    json_t *pols = ctx, *p, *fd, *f;
    char key[400];

    if (e->kind != EV_DELIVERY || (!e->tls_protocol[0] && !e->tls_failure[0]))
        return 0;
    if (!(p = json_object_get(pols, e->peer_domain))) {
        p = json_pack("{s:i, s:i, s:o, s:o}", "ok", 0, "fail", 0, "mx",
                      json_object(), "details", json_object());
        json_object_set_new(pols, e->peer_domain, p);
    }
    if (e->mx_host[0])
        json_object_set_new(json_object_get(p, "mx"), e->mx_host, json_true());
    if (!e->tls_failure[0]) {
        bump(p, "ok", 1);
        return 0;
    }
    bump(p, "fail", 1);
    fd = json_object_get(p, "details");
    snprintf(key, sizeof(key), "%s\n%s\n%s\n%s", e->tls_failure, e->mx_host,
             e->mx_ip, e->src_ip);
    if (!(f = json_object_get(fd, key))) {
        f = json_pack("{s:s, s:s, s:s, s:i}", "result-type", e->tls_failure,
                      "receiving-mx-hostname", e->mx_host, "receiving-ip",
                      e->mx_ip, "failed-session-count", 0);
        if (e->src_ip[0])
            json_object_set_new(f, "sending-mta-ip", json_string(e->src_ip));
        json_object_set_new(fd, key, f);
    }
    bump(f, "failed-session-count", 1);
    return 0;
}

/* One policies[] item of the report. */
static json_t *tlsrpt_policy(const char *domain, json_t *p)
{
    json_t *mx = json_array(),
           *fd = sorted_values(json_object_get(p, "details"));
    size_t n;
    const char **keys = sorted_keys(json_object_get(p, "mx"), &n);

    for (size_t k = 0; k < n; k++)
        json_array_append_new(mx, json_string(keys[k]));
    free(keys);
    return json_pack("{s:{s:s, s:s, s:o}, s:{s:I, s:I}, s:o}", "policy",
                     "policy-type", "no-policy-found", "policy-domain", domain,
                     "mx-host", mx, "summary", "total-successful-session-count",
                     (json_int_t)IV(p, "ok"), "total-failure-session-count",
                     (json_int_t)IV(p, "fail"), "failure-details", fd);
}

/* The organisation and contact of the report: the platform domain and
 * the tenant's From address. */
static int tlsrpt_names(struct adm_ctx *c, char *org, size_t orglen,
                        char *contact, size_t clen)
{
    struct tenant_info ti;
    struct store *st;
    struct store_txn *txn;
    int rc;

    if (adm_read_begin(c, &st, &txn) != ADM_OK)
        return ADM_FAIL;
    rc = store_setting_get(txn, "platform_domain", org, orglen);
    if (rc == 0)
        rc = store_tenant_get(txn, c->args[0], &ti);
    adm_read_end(st, txn);
    if (rc < 0)
        return adm_store_err(rc, c->cmd);
    snprintf(contact, clen, "%s", ti.from);
    return ADM_OK;
}

/* report tlsrpt NAME [--since] [--until]: RFC 8460 section 4 JSON. */
int adm_cmd_report_tlsrpt(struct adm_ctx *c)
{
    json_t *pols = json_object(), *arr = json_array(), *doc;
    char a[32], b[32], org[256], contact[ADDR_MAX + 1], id[400];
    const char **keys;
    size_t nk;
    int64_t since, until;
    int rc;

    if ((rc = adm_period(c, &since, &until)) != ADM_OK ||
        (rc = collect(c, since, until, tlsrpt_step, pols)) != ADM_OK ||
        (rc = tlsrpt_names(c, org, sizeof(org), contact, sizeof(contact))) !=
            ADM_OK) {
        json_decref(pols);
        json_decref(arr);
        return rc;
    }
    keys = sorted_keys(pols, &nk);
    for (size_t k = 0; k < nk; k++)
        json_array_append_new(
            arr, tlsrpt_policy(keys[k], json_object_get(pols, keys[k])));
    free(keys);
    json_decref(pols);
    adm_iso_time(since, a, sizeof(a));
    adm_iso_time(until, b, sizeof(b));
    snprintf(id, sizeof(id), "%s_%s_%lld-%lld@%s", a, c->args[0],
             (long long)since, (long long)until, org);
    doc = json_pack("{s:s, s:{s:s, s:s}, s:s, s:s, s:o}", "organization-name",
                    org, "date-range", "start-datetime", a, "end-datetime", b,
                    "contact-info", contact, "report-id", id, "policies", arr);
    return adm_json_out(doc, stdout, false);
}

/* ---- audit ---- */

struct audit {
    struct store_txn *txn;
    const char *tenant;
    json_t *weak;   /* entries not under a required level */
    json_t *failed; /* domain -> failures under a required level */
};

/* One outbound entry: its effective level for a recipient it covers. */
static int audit_entry(const char *domain, enum tls_level lvl, void *ctx)
{
    struct audit *a = ctx;
    struct outbound_decision d;
    char rcpt[ADDR_MAX + 16];

    snprintf(rcpt, sizeof(rcpt), "postmaster@%s%s",
             domain[0] == '.' ? "sub" : "", domain);
    if (policy_outbound(a->txn, a->tenant, rcpt, &d) < 0 || d.required)
        return 0;
    json_array_append_new(a->weak,
                          json_pack("{s:s, s:s, s:s, s:s}", "domain", domain,
                                    "entry_level", tls_level_name(lvl),
                                    "effective_level", tls_level_name(d.level),
                                    "rule", d.rule));
    return 0;
}

/* One event: a failed delivery under a required level. */
static int audit_event(const struct eng_event *e, void *ctx)
{
    struct audit *a = ctx;
    enum tls_level lvl;
    json_t *f;

    if (e->kind != EV_DELIVERY || !strcmp(e->status, "sent") ||
        tls_level_parse(e->level, &lvl) < 0 || lvl < TLS_ENCRYPT)
        return 0;
    if (!(f = json_object_get(a->failed, e->peer_domain))) {
        f = json_pack("{s:s, s:i}", "domain", e->peer_domain, "failures", 0);
        json_object_set_new(a->failed, e->peer_domain, f);
    }
    bump(f, "failures", 1);
    json_object_set_new(f, "level", json_string(e->level));
    json_object_set_new(f, "last_reply", json_string(e->reply));
    json_object_set_new(f, "last_failure", json_string(e->tls_failure));
    json_object_set_new(f, "last_time", json_integer(e->time));
    return 0;
}

/* report audit: text output. */
static void audit_text(json_t *weak, json_t *failed)
{
    struct adm_table t;
    json_t *v;
    size_t i;
    char n[24];

    printf("listed domains not under a required level:\n");
    adm_table_init(&t, 4);
    adm_table_row(&t, "DOMAIN", "ENTRY", "EFFECTIVE", "RULE");
    json_array_foreach(weak, i, v)
    {
        adm_table_row(&t, json_string_value(json_object_get(v, "domain")),
                      json_string_value(json_object_get(v, "entry_level")),
                      json_string_value(json_object_get(v, "effective_level")),
                      json_string_value(json_object_get(v, "rule")));
    }
    adm_table_print(&t, stdout);
    printf("required domains with failed deliveries:\n");
    adm_table_init(&t, 4);
    adm_table_row(&t, "DOMAIN", "LEVEL", "FAILURES", "LAST REPLY");
    json_array_foreach(failed, i, v)
    {
        snprintf(n, sizeof(n), "%lld", (long long)IV(v, "failures"));
        adm_table_row(&t, json_string_value(json_object_get(v, "domain")),
                      json_string_value(json_object_get(v, "level")), n,
                      json_string_value(json_object_get(v, "last_reply")));
    }
    adm_table_print(&t, stdout);
}

/* report audit NAME [--since] */
int adm_cmd_report_audit(struct adm_ctx *c)
{
    struct audit a = {NULL, c->args[0], json_array(), json_object()};
    struct store *st;
    int64_t since, until;
    json_t *failed;
    int rc;

    if ((rc = adm_period(c, &since, &until)) == ADM_OK &&
        (rc = collect(c, since, until, audit_event, &a)) == ADM_OK &&
        (rc = adm_read_begin(c, &st, &a.txn)) == ADM_OK) {
        rc = store_outbound_foreach(a.txn, a.tenant, audit_entry, &a);
        adm_read_end(st, a.txn);
        rc = rc < 0 ? adm_store_err(rc, c->cmd) : ADM_OK;
    }
    failed = sorted_values(a.failed);
    json_decref(a.failed);
    if (rc == ADM_OK && !c->json)
        audit_text(a.weak, failed);
    if (rc != ADM_OK || !c->json) {
        json_decref(a.weak);
        json_decref(failed);
        return rc;
    }
    return adm_json_out(json_pack("{s:s, s:o, s:o}", "tenant", c->args[0],
                                  "not_required", a.weak, "failed_required",
                                  failed),
                        stdout, false);
}
