/* The fields of every method: params, results, errors, events. */
#include "rpc.h"

#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const char *const ipc_level_names[] = {"none",   "may",    "encrypt",
                                       "verify", "secure", NULL};
const char *const ipc_mode_names[] = {"off", "all", "domains", NULL};
const char *const ipc_action_names[] = {"accept", "reject", "discard", NULL};

/* Bounded string copy of a name table entry, "" when out of range. */
static const char *name_of(const char *const *names, int n, int i)
{
    return i >= 0 && i < n ? names[i] : "";
}

/* True when s fits an IPC string argument. */
static bool arg_ok(const char *s)
{
    return s && strnlen(s, IPC_ARG_MAX) < IPC_ARG_MAX;
}

int ipc_request_frame(struct ipc_buf *b, uint32_t id, enum ipc_method m,
                      const char *a, const char *b2, bool tls)
{
    struct ipc_writer w;

    if ((m == IPC_M_OUTBOUND || m == IPC_M_INBOUND) &&
        (!arg_ok(a) || !arg_ok(b2)))
        return IPC_EINVAL;
    if ((m == IPC_M_TENANT_FOR_SENDER || m == IPC_M_ROUTE) && !arg_ok(a))
        return IPC_EINVAL;

    ipc_frame_begin(&w, b);
    if (m == IPC_M_OUTBOUND) {
        ipc_pack_request(&w, id, m, 2);
        ipc_pack_kv_str(&w, "tenant", a);
        ipc_pack_kv_str(&w, "recipient", b2);
    } else if (m == IPC_M_INBOUND) {
        ipc_pack_request(&w, id, m, 3);
        ipc_pack_kv_str(&w, "sender", a);
        ipc_pack_kv_str(&w, "recipient", b2);
        ipc_pack_kv_bool(&w, "tls", tls);
    } else if (m == IPC_M_TENANT_FOR_SENDER) {
        ipc_pack_request(&w, id, m, 1);
        ipc_pack_kv_str(&w, "sender", a);
    } else if (m == IPC_M_ROUTE) {
        ipc_pack_request(&w, id, m, 1);
        ipc_pack_kv_str(&w, "domain", a);
    } else {
        ipc_pack_request(&w, id, m, 0);
    }
    return ipc_frame_end(&w);
}

int ipc_get_params(enum ipc_method m, const msgpack_object *params,
                   struct ipc_params *p, char *why, size_t whylen)
{
    const struct ipc_field out[] = {
        {"tenant", IPC_F_STR, p->a, sizeof(p->a), NULL},
        {"recipient", IPC_F_STR, p->b, sizeof(p->b), NULL},
    };
    const struct ipc_field in[] = {
        {"sender", IPC_F_STR, p->a, sizeof(p->a), NULL},
        {"recipient", IPC_F_STR, p->b, sizeof(p->b), NULL},
        {"tls", IPC_F_BOOL, &p->tls, 0, NULL},
    };
    const struct ipc_field sender[] = {
        {"sender", IPC_F_STR, p->a, sizeof(p->a), NULL},
    };
    const struct ipc_field domain[] = {
        {"domain", IPC_F_STR, p->a, sizeof(p->a), NULL},
    };

    p->a[0] = p->b[0] = '\0';
    p->tls = false;
    switch (m) {
    case IPC_M_OUTBOUND:
        return ipc_get_fields(params, out, COUNT(out), why, whylen);
    case IPC_M_INBOUND:
        return ipc_get_fields(params, in, COUNT(in), why, whylen);
    case IPC_M_TENANT_FOR_SENDER:
        return ipc_get_fields(params, sender, COUNT(sender), why, whylen);
    case IPC_M_ROUTE:
        return ipc_get_fields(params, domain, COUNT(domain), why, whylen);
    default:
        return ipc_get_fields(params, NULL, 0, why, whylen);
    }
}

/* ---- results ---- */

void ipc_pack_ping(struct ipc_writer *w, uint32_t id, uint64_t generation)
{
    ipc_pack_result(w, id, 2);
    ipc_pack_kv_uint(w, "version", IPC_PROTO_VERSION);
    ipc_pack_kv_uint(w, "generation", generation);
}

int ipc_get_ping(const msgpack_object *r, unsigned *version, uint64_t *gen)
{
    const struct ipc_field f[] = {
        {"version", IPC_F_U32, version, 0, NULL},
        {"generation", IPC_F_U64, gen, 0, NULL},
    };
    char why[64];

    return ipc_get_fields(r, f, COUNT(f), why, sizeof(why));
}

void ipc_pack_outbound(struct ipc_writer *w, uint32_t id,
                       const struct outbound_decision *d)
{
    ipc_pack_result(w, id, 10);
    ipc_pack_kv_str(w, "tenant", d->tenant);
    ipc_pack_kv_str(w, "recipient", d->recipient);
    ipc_pack_kv_str(w, "domain", d->domain);
    ipc_pack_kv_str(w, "level", name_of(ipc_level_names, 5, (int)d->level));
    ipc_pack_kv_bool(w, "required", d->required);
    ipc_pack_kv_str(w, "rule", d->rule);
    ipc_pack_kv_uint(w, "generation", d->generation);
    ipc_pack_kv_bool(w, "shadow", d->shadow);
    ipc_pack_kv_str(w, "shadow_level",
                    name_of(ipc_level_names, 5, (int)d->shadow_level));
    ipc_pack_kv_str(w, "shadow_rule", d->shadow_rule);
}

int ipc_get_outbound(const msgpack_object *r, struct outbound_decision *d)
{
    int level = 0, slevel = 0, err;
    const struct ipc_field f[] = {
        {"tenant", IPC_F_STR, d->tenant, sizeof(d->tenant), NULL},
        {"recipient", IPC_F_STR, d->recipient, sizeof(d->recipient), NULL},
        {"domain", IPC_F_STR, d->domain, sizeof(d->domain), NULL},
        {"level", IPC_F_ENUM, &level, 0, ipc_level_names},
        {"required", IPC_F_BOOL, &d->required, 0, NULL},
        {"rule", IPC_F_STR, d->rule, sizeof(d->rule), NULL},
        {"generation", IPC_F_U64, &d->generation, 0, NULL},
        {"shadow", IPC_F_BOOL, &d->shadow, 0, NULL},
        {"shadow_level", IPC_F_ENUM, &slevel, 0, ipc_level_names},
        {"shadow_rule", IPC_F_STR, d->shadow_rule, sizeof(d->shadow_rule),
         NULL},
    };
    char why[64];

    err = ipc_get_fields(r, f, COUNT(f), why, sizeof(why));
    d->level = (enum tls_level)level;
    d->shadow_level = (enum tls_level)slevel;
    return err;
}

void ipc_pack_inbound(struct ipc_writer *w, uint32_t id,
                      const struct inbound_decision *d)
{
    ipc_pack_result(w, id, 9);
    ipc_pack_kv_str(w, "action", name_of(ipc_action_names, 3, (int)d->action));
    ipc_pack_kv_int(w, "code", d->code);
    ipc_pack_kv_str(w, "enhanced", d->enhanced);
    ipc_pack_kv_str(w, "text", d->text);
    ipc_pack_kv_str(w, "tenant", d->tenant);
    ipc_pack_kv_str(w, "mailbox", d->mailbox);
    ipc_pack_kv_str(w, "mailbox_dir", d->mailbox_dir);
    ipc_pack_kv_str(w, "rule", d->rule);
    ipc_pack_kv_uint(w, "generation", d->generation);
}

int ipc_get_inbound(const msgpack_object *r, struct inbound_decision *d)
{
    int action = 0, err;
    const struct ipc_field f[] = {
        {"action", IPC_F_ENUM, &action, 0, ipc_action_names},
        {"code", IPC_F_INT, &d->code, 0, NULL},
        {"enhanced", IPC_F_STR, d->enhanced, sizeof(d->enhanced), NULL},
        {"text", IPC_F_STR, d->text, sizeof(d->text), NULL},
        {"tenant", IPC_F_STR, d->tenant, sizeof(d->tenant), NULL},
        {"mailbox", IPC_F_STR, d->mailbox, sizeof(d->mailbox), NULL},
        {"mailbox_dir", IPC_F_STR, d->mailbox_dir, sizeof(d->mailbox_dir),
         NULL},
        {"rule", IPC_F_STR, d->rule, sizeof(d->rule), NULL},
        {"generation", IPC_F_U64, &d->generation, 0, NULL},
    };
    char why[64];

    err = ipc_get_fields(r, f, COUNT(f), why, sizeof(why));
    d->action = (enum in_action)action;
    return err;
}

void ipc_pack_tenant(struct ipc_writer *w, uint32_t id,
                     const struct tenant_info *t, uint64_t generation)
{
    ipc_pack_result(w, id, 9);
    ipc_pack_kv_str(w, "name", t->name);
    ipc_pack_kv_str(w, "from", t->from);
    ipc_pack_kv_bool(w, "from_is_default", t->from_is_default);
    ipc_pack_kv_str(w, "mode", name_of(ipc_mode_names, 3, (int)t->mode));
    ipc_pack_kv_str(w, "default_level",
                    name_of(ipc_level_names, 5, (int)t->default_level));
    ipc_pack_kv_bool(w, "inbound_tls_required", t->inbound_tls_required);
    ipc_pack_kv_bool(w, "allowlist", t->allowlist);
    ipc_pack_kv_str(w, "allowlist_action",
                    name_of(ipc_action_names, 3, (int)t->allowlist_action));
    ipc_pack_kv_uint(w, "generation", generation);
}

int ipc_get_tenant(const msgpack_object *r, struct tenant_info *t,
                   uint64_t *gen)
{
    int mode = 0, level = 0, action = 0, err;
    const struct ipc_field f[] = {
        {"name", IPC_F_STR, t->name, sizeof(t->name), NULL},
        {"from", IPC_F_STR, t->from, sizeof(t->from), NULL},
        {"from_is_default", IPC_F_BOOL, &t->from_is_default, 0, NULL},
        {"mode", IPC_F_ENUM, &mode, 0, ipc_mode_names},
        {"default_level", IPC_F_ENUM, &level, 0, ipc_level_names},
        {"inbound_tls_required", IPC_F_BOOL, &t->inbound_tls_required, 0, NULL},
        {"allowlist", IPC_F_BOOL, &t->allowlist, 0, NULL},
        {"allowlist_action", IPC_F_ENUM, &action, 0, ipc_action_names},
        {"generation", IPC_F_U64, gen, 0, NULL},
    };
    char why[64];

    err = ipc_get_fields(r, f, COUNT(f), why, sizeof(why));
    t->mode = (enum out_mode)mode;
    t->default_level = (enum tls_level)level;
    t->allowlist_action = (enum in_action)action;
    return err;
}

void ipc_pack_route(struct ipc_writer *w, uint32_t id, const char *host,
                    unsigned port, uint64_t generation)
{
    ipc_pack_result(w, id, 3);
    ipc_pack_kv_str(w, "host", host);
    ipc_pack_kv_uint(w, "port", port);
    ipc_pack_kv_uint(w, "generation", generation);
}

int ipc_get_route(const msgpack_object *r, char *host, size_t hostlen,
                  unsigned *port, uint64_t *gen)
{
    const struct ipc_field f[] = {
        {"host", IPC_F_STR, host, hostlen, NULL},
        {"port", IPC_F_U32, port, 0, NULL},
        {"generation", IPC_F_U64, gen, 0, NULL},
    };
    char why[64];

    return ipc_get_fields(r, f, COUNT(f), why, sizeof(why));
}

int ipc_get_error(const msgpack_object *e, int *code, char *msg, size_t msglen,
                  uint64_t *gen)
{
    const struct ipc_field f[] = {
        {"code", IPC_F_INT, code, 0, NULL},
        {"message", IPC_F_STR, msg, msglen, NULL},
        {"generation", IPC_F_U64, gen, 0, NULL},
    };
    char why[64];

    if (ipc_get_fields(e, f, COUNT(f), why, sizeof(why)) < 0 || *code >= 0)
        return IPC_EPROTO;
    return 0;
}
