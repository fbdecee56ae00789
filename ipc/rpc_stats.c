/* The fields of the stats result and of event notifications. */
#include "rpc.h"

#include <stddef.h>
#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Every uint64_t counter of struct eng_stats, by wire name. */
static const struct {
    const char *name;
    size_t off;
} stat_fields[] = {
#define F(x)                                                                   \
    {                                                                          \
#x, offsetof(struct eng_stats, x)                                      \
    }
    F(generation),        F(uptime_s),       F(connections),
    F(connections_total), F(requests),       F(req_ping),
    F(req_outbound),      F(req_inbound),    F(req_tenant_for_sender),
    F(req_route),         F(req_stats),      F(errors),
    F(bad_frames),        F(batches),        F(latency_p50_us),
    F(latency_p99_us),    F(latency_max_us), F(events_received),
    F(events_stored),     F(events_dropped), F(events_pruned),
#undef F
};

#define STAT_N COUNT(stat_fields)

void ipc_pack_stats(struct ipc_writer *w, uint32_t id,
                    const struct eng_stats *s)
{
    ipc_pack_result(w, id, (uint32_t)STAT_N + 2);
    ipc_pack_kv_uint(w, "version", s->version);
    ipc_pack_kv_bool(w, "store_open", s->store_open);
    for (size_t i = 0; i < STAT_N; i++)
        ipc_pack_kv_uint(
            w, stat_fields[i].name,
            *(const uint64_t *)((const char *)s + stat_fields[i].off));
}

int ipc_get_stats(const msgpack_object *r, struct eng_stats *s)
{
    struct ipc_field f[STAT_N + 2];
    char why[64];

    memset(s, 0, sizeof(*s));
    f[0] = (struct ipc_field){"version", IPC_F_U32, &s->version, 0, NULL};
    f[1] =
        (struct ipc_field){"store_open", IPC_F_BOOL, &s->store_open, 0, NULL};
    for (size_t i = 0; i < STAT_N; i++)
        f[i + 2] = (struct ipc_field){stat_fields[i].name, IPC_F_U64,
                                      (char *)s + stat_fields[i].off, 0, NULL};
    return ipc_get_fields(r, f, STAT_N + 2, why, sizeof(why));
}

/* ---- events ---- */

static const char *const kind_names[] = {"delivery", "import", NULL};

/* String fields of struct eng_event, by wire name. */
#define EVS(x)                                                                 \
    {                                                                          \
#x, offsetof(struct eng_event, x), sizeof(((struct eng_event *)0)->x)  \
    }
static const struct {
    const char *name;
    size_t off, size;
} event_strs[] = {
    EVS(id),           EVS(tenant),        EVS(peer_domain),
    EVS(address),      EVS(mailbox),       EVS(relay),
    EVS(status),       EVS(reply),         EVS(tls_protocol),
    EVS(tls_cipher),   EVS(level),         EVS(rule),
    EVS(tls_failure),  EVS(mx_host),       EVS(mx_ip),
    EVS(shadow_level), EVS(shadow_result), EVS(src_ip),
};
#undef EVS

#define EV_STR_N COUNT(event_strs)
#define EV_N     (EV_STR_N + 4)

void ipc_pack_event_fields(struct ipc_writer *w, const struct eng_event *ev)
{
    char tmp[400];

    ipc_pack_kv_str(w, "kind", ev->kind == EV_IMPORT ? "import" : "delivery");
    ipc_pack_kv_int(w, "time", ev->time);
    ipc_pack_kv_bool(w, "tls_verified", ev->tls_verified);
    ipc_pack_kv_uint(w, "generation", ev->generation);
    for (size_t i = 0; i < EV_STR_N; i++) {
        const char *s = (const char *)ev + event_strs[i].off;
        size_t n = strnlen(s, event_strs[i].size - 1);

        memcpy(tmp, s, n); /* the struct's strings may lack their NUL */
        tmp[n] = '\0';
        ipc_pack_kv_str(w, event_strs[i].name, tmp);
    }
}

int ipc_event_frame(struct ipc_buf *b, const struct eng_event *ev)
{
    struct ipc_writer w;

    if (ev->kind != EV_DELIVERY && ev->kind != EV_IMPORT)
        return IPC_EINVAL;
    ipc_frame_begin(&w, b);
    ipc_pack_notify(&w, IPC_M_EVENT, (uint32_t)EV_N);
    ipc_pack_event_fields(&w, ev);
    return ipc_frame_end(&w);
}

int ipc_event_map(struct ipc_buf *b, const struct eng_event *ev)
{
    struct ipc_writer w;

    ipc_frame_begin(&w, b);
    msgpack_pack_map(&w.pk, (uint32_t)EV_N);
    ipc_pack_event_fields(&w, ev);
    return ipc_frame_end(&w);
}

int ipc_get_event(const msgpack_object *params, struct eng_event *ev, char *why,
                  size_t whylen)
{
    struct ipc_field f[EV_N];
    int kind = 0, err;

    memset(ev, 0, sizeof(*ev));
    f[0] = (struct ipc_field){"kind", IPC_F_ENUM, &kind, 0, kind_names};
    f[1] = (struct ipc_field){"time", IPC_F_I64, &ev->time, 0, NULL};
    f[2] = (struct ipc_field){"tls_verified", IPC_F_BOOL, &ev->tls_verified, 0,
                              NULL};
    f[3] =
        (struct ipc_field){"generation", IPC_F_U64, &ev->generation, 0, NULL};
    for (size_t i = 0; i < EV_STR_N; i++)
        f[i + 4] = (struct ipc_field){event_strs[i].name, IPC_F_STR,
                                      (char *)ev + event_strs[i].off,
                                      event_strs[i].size, NULL};
    err = ipc_get_fields(params, f, EV_N, why, whylen);
    ev->kind = (enum eng_event_kind)kind;
    return err;
}
