/*
 * Helpers of the TLS testing and reporting commands (probe, test, report,
 * outbound shadow): where the gateway's state is, times given on the
 * command line, and the outcome events the engine keeps (read-only).
 * The operator's manual is docs/operator-tls.md.
 */
#ifndef TLSGATE_ADMIN_REPORT_H
#define TLSGATE_ADMIN_REPORT_H

#include <stdint.h>

#include "admin.h"
#include "engine_client.h"

/* The state folder: --state-dir, else the parent of the store folder
 * (tlsgated keeps STATE/policy, STATE/events, STATE/queue, STATE/mail).
 * Writes STATE/sub into out. Returns ADM_OK or ADM_FAIL after a message. */
int adm_state_path(const struct adm_ctx *c, const char *sub, char *out,
                   size_t outlen);

/* Parses a time: "now", a duration back from now ("90s", "30m", "24h",
 * "7d"), a date "YYYY-MM-DD" (00:00 UTC) or "YYYY-MM-DDTHH:MM:SSZ".
 * Returns 0 and *out (Unix seconds) or -1. */
int adm_parse_when(const char *s, int64_t now, int64_t *out);
/* The period of a report from --since (default 7d) and --until (default
 * now). Returns ADM_OK or ADM_USAGE after a message. */
int adm_period(const struct adm_ctx *c, int64_t *since, int64_t *until);
/* Formats t as "YYYY-MM-DDTHH:MM:SSZ". */
void adm_iso_time(int64_t t, char *out, size_t outlen);

/* Calls cb for each event of tenant with since <= time < until, oldest
 * first, from the events store folder dir (opened read-only). A missing
 * store reads as empty. cb returns nonzero to stop. Returns ADM_OK or
 * ADM_FAIL after a message. */
typedef int (*adm_event_cb)(const struct eng_event *ev, void *ctx);
int adm_events_scan(const char *dir, const char *tenant, int64_t since,
                    int64_t until, adm_event_cb cb, void *ctx);

#endif
