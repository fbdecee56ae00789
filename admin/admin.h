/*
 * tlsgate-admin internals: the command context, the command table, and the
 * helpers every command shares (errors, store access, validation, output).
 * The user-facing manual is docs/admin.md.
 */
#ifndef TLSGATE_ADMIN_H
#define TLSGATE_ADMIN_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "addr.h"
#include "policy.h"
#include "store.h"

/* Exit statuses. */
#define ADM_OK    0
#define ADM_FAIL  1 /* bad value, unknown tenant, store or file failure */
#define ADM_USAGE 2 /* the command line itself cannot be understood */

/* Options a command may accept (bit flags in struct adm_cmd.opts). */
#define OPT_FROM         0x01   /* --from ADDRESS */
#define OPT_LEVEL        0x02   /* --level LEVEL */
#define OPT_ACTION       0x04   /* --action reject|discard */
#define OPT_PLATFORM     0x08   /* --platform-domain DOMAIN */
#define OPT_TLS          0x10   /* --tls */
#define OPT_DEFAULT_FROM 0x20   /* --default-from */
#define OPT_HOST         0x40   /* --host HOST:PORT (probe) */
#define OPT_CA_FILE      0x80   /* --ca-file FILE (probe) */
#define OPT_WAIT         0x100  /* --wait SECONDS (test send) */
#define OPT_LAST         0x200  /* --last N (test receive) */
#define OPT_SINCE        0x400  /* --since WHEN (reports) */
#define OPT_UNTIL        0x800  /* --until WHEN (reports) */
#define OPT_STATE        0x1000 /* --state-dir DIR (events, queue, mail) */

#define ADM_ARGS_MAX 4

struct adm_ctx {
    const char *db; /* store folder */
    bool json;
    const char *cmd; /* the command's words, for messages */
    int nargs;
    const char *args[ADM_ARGS_MAX]; /* positional arguments */
    const char *from, *level, *action, *platform;
    bool tls, default_from;
    const char *host, *ca_file, *wait, *last, *since, *until, *state;
};

struct adm_cmd {
    const char *words; /* "tenant add" */
    const char *usage; /* "NAME [--from ADDRESS]" */
    int min_args, max_args;
    unsigned opts;
    int (*run)(struct adm_ctx *c);
    const char *help; /* one sentence */
};

extern const struct adm_cmd adm_cmds[];

/* ---- messages ---- */

/* When set, adm_err and adm_usage print nothing (the fuzz target). */
extern bool adm_quiet;

/* Prints "tlsgate-admin: <message>" as one line on stderr (control bytes
 * in the message become '?'). Returns ADM_FAIL. */
int adm_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* As adm_err, and returns ADM_USAGE. */
int adm_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reports a store error for what ("tenant add acme"). Returns ADM_FAIL. */
int adm_store_err(int rc, const char *what);

/* ---- the store ---- */

/* Opens the store of c (read-only unless write; create for init and
 * import). Returns ADM_OK or ADM_FAIL after a message. */
int adm_open(struct adm_ctx *c, bool write, bool create, struct store **out);
/* Opens the store and starts a read transaction; adm_read_end ends both. */
int adm_read_begin(struct adm_ctx *c, struct store **st,
                   struct store_txn **txn);
void adm_read_end(struct store *st, struct store_txn *txn);

typedef int (*adm_write_fn)(struct adm_ctx *c, struct store_txn *txn,
                            void *arg);
/* Runs fn inside one write transaction: commits when it returns ADM_OK,
 * aborts otherwise (the store is then unchanged). With --json, prints
 * {"ok": true, "generation": N} after the commit. Returns an exit status. */
int adm_write(struct adm_ctx *c, bool create, adm_write_fn fn, void *arg);

/* ---- checked input (each prints its own error) ---- */

/* The tenant name is well formed and the tenant exists; info may be NULL. */
int adm_tenant(struct store_txn *txn, const char *name,
               struct tenant_info *info);
int adm_tenant_name(const char *name);
/* Normalises a domain (".sub" allowed with wildcard) into out. */
int adm_domain(const char *in, bool wildcard, char *out, size_t outlen);
/* Parses a mail address (not the null path) into out. */
int adm_address(const char *in, struct addr *out);
int adm_level(const char *s, enum tls_level *out);
/* Checks a route's host (a name, an IPv4 or a bare IPv6 address) and
 * copies it normalised into out. Returns 0 or -1 (no message). */
int adm_route_host(const char *in, char *out, size_t outlen);

/* ---- output ---- */

/* Prints one JSON document (pretty, keys in insertion order, or sorted
 * with sort) to f and releases it. Returns ADM_OK or ADM_FAIL. */
int adm_json_out(json_t *doc, FILE *f, bool sort);

/* A text table: rows of columns, printed aligned. */
struct adm_table {
    int ncols;
    size_t nrows, cap;
    char **cells;
};
void adm_table_init(struct adm_table *t, int ncols);
/* Adds one row of t->ncols strings (copied). */
void adm_table_row(struct adm_table *t, ...);
/* Prints the table aligned (the last column unpadded) and frees it. */
void adm_table_print(struct adm_table *t, FILE *f);

/* ---- the whole policy as JSON (export.c, import.c) ---- */

#define ADM_EXPORT_VERSION 1
#define ADM_IMPORT_MAX     (256UL * 1024 * 1024) /* bytes */

/* Builds the export document of the policy read by txn. Returns ADM_OK or
 * ADM_FAIL after a message. */
int adm_export_build(struct store_txn *txn, json_t **out);
/* Every tenant (store order), in a malloc'd array. */
int adm_tenants(struct store_txn *txn, struct tenant_info **out, size_t *n);
/* Prints a tenant's details as text (tenant show, show). */
int adm_tenant_print(struct store_txn *txn, const struct tenant_info *t,
                     FILE *f);
/* Prints a titled list: a JSON array one item a line, an object as sorted
 * "key  value" columns, or "(none)". */
void adm_print_titled(FILE *f, const char *title, json_t *list);
/* Prints the routes as a titled text table. */
int adm_route_print(struct store_txn *txn);
/* Parses and checks an import document (len bytes of buf) without a
 * store: ADM_OK, or ADM_FAIL after a message naming name. */
int adm_import_check(const char *buf, size_t len, const char *name);
/* Describes one tenant as in the export document (entries, mailboxes...). */
int adm_tenant_json(struct store_txn *txn, const struct tenant_info *t,
                    json_t **out);
/* Reports the SMTP reply of an inbound decision as "550 5.1.1". */
void adm_reply_str(const struct inbound_decision *d, char *out, size_t n);
const char *adm_inbound_tls_name(bool required);

/* ---- commands ---- */

int adm_cmd_init(struct adm_ctx *c);
int adm_cmd_tenant_add(struct adm_ctx *c);
int adm_cmd_tenant_remove(struct adm_ctx *c);
int adm_cmd_tenant_list(struct adm_ctx *c);
int adm_cmd_tenant_show(struct adm_ctx *c);
int adm_cmd_tenant_set(struct adm_ctx *c);
int adm_cmd_settings_show(struct adm_ctx *c);
int adm_cmd_settings_set(struct adm_ctx *c);
int adm_cmd_outbound_mode(struct adm_ctx *c);
int adm_cmd_outbound_add(struct adm_ctx *c);
int adm_cmd_outbound_remove(struct adm_ctx *c);
int adm_cmd_outbound_list(struct adm_ctx *c);
int adm_cmd_mailbox_add(struct adm_ctx *c);
int adm_cmd_mailbox_remove(struct adm_ctx *c);
int adm_cmd_mailbox_list(struct adm_ctx *c);
int adm_cmd_allowlist(struct adm_ctx *c);
int adm_cmd_trust(struct adm_ctx *c);
int adm_cmd_untrust(struct adm_ctx *c);
int adm_cmd_inbound_tls(struct adm_ctx *c);
int adm_cmd_route_add(struct adm_ctx *c);
int adm_cmd_route_remove(struct adm_ctx *c);
int adm_cmd_route_list(struct adm_ctx *c);
int adm_cmd_explain_outbound(struct adm_ctx *c);
int adm_cmd_explain_inbound(struct adm_ctx *c);
int adm_cmd_show(struct adm_ctx *c);
int adm_cmd_status(struct adm_ctx *c);
int adm_cmd_export(struct adm_ctx *c);
int adm_cmd_import(struct adm_ctx *c);
int adm_cmd_outbound_shadow(struct adm_ctx *c);
int adm_cmd_probe(struct adm_ctx *c);
int adm_cmd_test_send(struct adm_ctx *c);
int adm_cmd_test_receive(struct adm_ctx *c);
int adm_cmd_report_readiness(struct adm_ctx *c);
int adm_cmd_report_tlsrpt(struct adm_ctx *c);
int adm_cmd_report_audit(struct adm_ctx *c);

#endif
