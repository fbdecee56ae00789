/*
 * libFuzzer target for the IPC decoder: the input is read both as one
 * frame payload and as a stream of frames, and every decoded message is
 * walked with the typed getters of its kind.
 */
#include <stddef.h>
#include <stdint.h>

#include "rpc.h"

/* Runs every getter that could apply to a decoded message. */
static void walk(const struct ipc_msg *m)
{
    union {
        struct ipc_params p;
        struct eng_event ev;
        struct outbound_decision out;
        struct inbound_decision in;
        struct tenant_info t;
        struct eng_stats s;
        char host[256];
    } u;
    char why[96];
    uint64_t gen;
    unsigned port, version;
    int code;

    if (m->type == IPC_REQUEST) {
        ipc_get_params(m->method, m->params, &u.p, why, sizeof(why));
    } else if (m->type == IPC_NOTIFY) {
        ipc_get_event(m->params, &u.ev, why, sizeof(why));
    } else if (m->error) {
        ipc_get_error(m->error, &code, why, sizeof(why), &gen);
    } else {
        ipc_get_outbound(m->result, &u.out);
        ipc_get_inbound(m->result, &u.in);
        ipc_get_tenant(m->result, &u.t, &gen);
        ipc_get_route(m->result, u.host, sizeof(u.host), &port, &gen);
        ipc_get_ping(m->result, &version, &gen);
        ipc_get_stats(m->result, &u.s);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ipc_decoder d;
    static int ready;
    const char *p = (const char *)data;
    struct ipc_msg m;
    size_t off = 0, n;

    if (!ready && ipc_decoder_init(&d) == 0)
        ready = 1;
    if (!ready)
        return 0;
    if (size && ipc_decode(&d, p, size, &m) == 0)
        walk(&m);
    while (ipc_frame_next(p + off, size - off, &n) == 1) {
        if (ipc_decode(&d, p + off + IPC_HDR_LEN, n, &m) == 0)
            walk(&m);
        off += IPC_HDR_LEN + n;
    }
    return 0;
}
