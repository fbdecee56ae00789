#include "rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const method_names[IPC_M_COUNT] = {
    [IPC_M_PING] = "ping",
    [IPC_M_OUTBOUND] = "outbound",
    [IPC_M_INBOUND] = "inbound",
    [IPC_M_TENANT_FOR_SENDER] = "tenant_for_sender",
    [IPC_M_ROUTE] = "route",
    [IPC_M_STATS] = "stats",
    [IPC_M_EVENT] = "event",
};

const char *ipc_method_name(enum ipc_method m)
{
    if (m < 0 || m >= IPC_M_COUNT)
        return "unknown";
    return method_names[m];
}

enum ipc_method ipc_method_lookup(const char *s, size_t len)
{
    for (int m = 0; m < IPC_M_COUNT; m++)
        if (strlen(method_names[m]) == len &&
            memcmp(method_names[m], s, len) == 0)
            return (enum ipc_method)m;
    return IPC_M_UNKNOWN;
}

/* Store errors are named here too, so that clients need no LMDB. */
static const char *store_error_text(int err)
{
    switch (err) {
    case 0:
        return "success";
    case STORE_ENOTFOUND:
        return "not found";
    case STORE_EEXIST:
        return "already exists";
    case STORE_EINVAL:
        return "invalid argument";
    case STORE_EFULL:
        return "policy store full (map or readers)";
    case STORE_EIO:
        return "policy store I/O error";
    case STORE_ECORRUPT:
        return "policy store record corrupt";
    case STORE_ENOINIT:
        return "policy store not initialised";
    case STORE_EVERSION:
        return "policy store schema version not supported";
    }
    return NULL;
}

const char *ipc_strerror(int err)
{
    const char *s = store_error_text(err);

    if (s)
        return s;
    switch (err) {
    case IPC_ETIMEDOUT:
        return "policy engine did not answer in time";
    case IPC_EUNAVAIL:
        return "policy engine unavailable";
    case IPC_EPROTO:
        return "malformed IPC message";
    case IPC_ECANCELED:
        return "request canceled";
    case IPC_ENOMEM:
        return "out of memory";
    case IPC_EINVAL:
        return "invalid IPC argument";
    case IPC_ETOOBIG:
        return "IPC message too large";
    case IPC_EFULL:
        return "IPC queue full";
    case IPC_EMETHOD:
        return "unknown IPC method";
    case IPC_ENOSTORE:
        return "policy store not available";
    case IPC_EVERSION:
        return "IPC protocol version mismatch";
    }
    return "unknown error";
}

/* ---- buffers ---- */

void ipc_buf_init(struct ipc_buf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
}

void ipc_buf_free(struct ipc_buf *b)
{
    free(b->data);
    ipc_buf_init(b);
}

int ipc_buf_reserve(struct ipc_buf *b, size_t n)
{
    size_t cap = b->cap ? b->cap : 256;
    char *p;

    if (b->len + n <= b->cap)
        return 0;
    while (cap < b->len + n)
        cap *= 2;
    p = realloc(b->data, cap);
    if (!p)
        return IPC_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int ipc_buf_append(struct ipc_buf *b, const void *p, size_t n)
{
    if (ipc_buf_reserve(b, n) < 0)
        return IPC_ENOMEM;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void ipc_buf_consume(struct ipc_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

/* ---- framing ---- */

int ipc_frame_next(const char *buf, size_t len, size_t *payload_len)
{
    const unsigned char *u = (const unsigned char *)buf;
    uint32_t n;

    if (len < IPC_HDR_LEN)
        return 0;
    n = (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 |
        u[3];
    if (n == 0 || n > IPC_FRAME_MAX)
        return IPC_ETOOBIG;
    if (len - IPC_HDR_LEN < n)
        return 0;
    *payload_len = n;
    return 1;
}

/* msgpack_packer callback: appends to the writer's buffer. It is called
 * for every small piece, so the common case is a plain copy. */
static int writer_append(void *data, const char *p, size_t n)
{
    struct ipc_writer *w = data;
    struct ipc_buf *b = w->b;

    if (w->err)
        return -1;
    if (b->len + n > b->cap && ipc_buf_reserve(b, n) < 0) {
        w->err = IPC_ENOMEM;
        return -1;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void ipc_frame_begin(struct ipc_writer *w, struct ipc_buf *b)
{
    static const char zero[IPC_HDR_LEN];

    w->b = b;
    w->start = b->len;
    w->err = 0;
    msgpack_packer_init(&w->pk, w, writer_append);
    writer_append(w, zero, sizeof(zero));
}

int ipc_frame_end(struct ipc_writer *w)
{
    size_t n = w->b->len - w->start - IPC_HDR_LEN;
    unsigned char *h = (unsigned char *)w->b->data + w->start;

    if (!w->err && n > IPC_FRAME_MAX)
        w->err = IPC_ETOOBIG;
    if (w->err) {
        w->b->len = w->start;
        return w->err;
    }
    h[0] = (unsigned char)(n >> 24);
    h[1] = (unsigned char)(n >> 16);
    h[2] = (unsigned char)(n >> 8);
    h[3] = (unsigned char)n;
    return 0;
}

static void pack_str(struct ipc_writer *w, const char *s)
{
    size_t n = strlen(s);

    msgpack_pack_str(&w->pk, n);
    msgpack_pack_str_body(&w->pk, s, n);
}

void ipc_pack_request(struct ipc_writer *w, uint32_t id, enum ipc_method m,
                      uint32_t n)
{
    msgpack_pack_array(&w->pk, 4);
    msgpack_pack_uint8(&w->pk, IPC_REQUEST);
    msgpack_pack_uint32(&w->pk, id);
    pack_str(w, ipc_method_name(m));
    msgpack_pack_map(&w->pk, n);
}

void ipc_pack_notify(struct ipc_writer *w, enum ipc_method m, uint32_t n)
{
    msgpack_pack_array(&w->pk, 3);
    msgpack_pack_uint8(&w->pk, IPC_NOTIFY);
    pack_str(w, ipc_method_name(m));
    msgpack_pack_map(&w->pk, n);
}

void ipc_pack_result(struct ipc_writer *w, uint32_t id, uint32_t n)
{
    msgpack_pack_array(&w->pk, 4);
    msgpack_pack_uint8(&w->pk, IPC_RESPONSE);
    msgpack_pack_uint32(&w->pk, id);
    msgpack_pack_nil(&w->pk);
    msgpack_pack_map(&w->pk, n);
}

void ipc_pack_error(struct ipc_writer *w, uint32_t id, int code,
                    const char *message, uint64_t generation)
{
    msgpack_pack_array(&w->pk, 4);
    msgpack_pack_uint8(&w->pk, IPC_RESPONSE);
    msgpack_pack_uint32(&w->pk, id);
    msgpack_pack_map(&w->pk, 3);
    ipc_pack_kv_int(w, "code", code);
    ipc_pack_kv_str(w, "message", message);
    ipc_pack_kv_uint(w, "generation", generation);
    msgpack_pack_nil(&w->pk);
}

void ipc_pack_kv_str(struct ipc_writer *w, const char *key, const char *val)
{
    pack_str(w, key);
    pack_str(w, val);
}

void ipc_pack_kv_uint(struct ipc_writer *w, const char *key, uint64_t val)
{
    pack_str(w, key);
    msgpack_pack_uint64(&w->pk, val);
}

void ipc_pack_kv_int(struct ipc_writer *w, const char *key, int64_t val)
{
    pack_str(w, key);
    msgpack_pack_int64(&w->pk, val);
}

void ipc_pack_kv_bool(struct ipc_writer *w, const char *key, bool val)
{
    pack_str(w, key);
    if (val)
        msgpack_pack_true(&w->pk);
    else
        msgpack_pack_false(&w->pk);
}
