/* The strict decoder: pre-scan, unpack, envelope, typed fields. */
#include "rpc.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* Big-endian unsigned of n bytes. */
static uint64_t be_uint(const unsigned char *p, int n)
{
    uint64_t v = 0;

    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* One value's head at p: header size, payload bytes, child values, and
 * whether it is a container. Returns 0, or -1 for a refused type. */
static int scan_head(const unsigned char *p, size_t avail, size_t *hdr,
                     uint64_t *body, uint64_t *items, bool *container)
{
    static const int width[4] = {1, 2, 4, 8};
    unsigned b = p[0];
    int w = 0;

    *hdr = 1, *body = 0, *items = 0, *container = false;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return 0;
    if (b >= 0x80 && b <= 0x9f) {
        *container = true;
        *items = b <= 0x8f ? 2 * (uint64_t)(b & 0x0f) : (b & 0x0f);
        return 0;
    }
    if (b >= 0xa0 && b <= 0xbf) {
        *body = b & 0x1f;
        return 0;
    }
    if (b >= 0xcc && b <= 0xd3) { /* uint8..64, int8..64 */
        *hdr = 1 + (size_t)width[(b - 0xcc) & 3];
        return 0;
    }
    if (b >= 0xd9 && b <= 0xdb) /* str8, str16, str32 */
        w = width[b - 0xd9];
    else if (b >= 0xdc && b <= 0xdf) /* array16/32, map16/32 */
        w = (b & 1) ? 4 : 2;
    else
        return -1; /* bin, ext, float, never-used */
    if (avail < 1 + (size_t)w)
        return -1;
    *hdr = 1 + (size_t)w;
    if (b <= 0xdb)
        *body = be_uint(p + 1, w);
    else {
        *container = true;
        *items = be_uint(p + 1, w) * (b >= 0xde ? 2 : 1);
    }
    return 0;
}

int ipc_scan(const char *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)buf;
    uint64_t left[IPC_DEPTH_MAX + 1], body, items;
    size_t off = 0, hdr;
    int depth = 0;
    bool container;

    left[0] = 1;
    while (depth >= 0) {
        if (left[depth] == 0) {
            depth--;
            continue;
        }
        left[depth]--;
        if (off >= len ||
            scan_head(p + off, len - off, &hdr, &body, &items, &container) < 0)
            return IPC_EPROTO;
        if (hdr > len - off || body > len - off - hdr)
            return IPC_EPROTO;
        off += hdr + body;
        if (!container)
            continue;
        if (depth + 1 > IPC_DEPTH_MAX || items > len - off)
            return IPC_EPROTO;
        left[++depth] = items;
    }
    return off == len ? 0 : IPC_EPROTO;
}

int ipc_decoder_init(struct ipc_decoder *d)
{
    if (!msgpack_zone_init(&d->zone, 4096))
        return IPC_ENOMEM;
    return 0;
}

void ipc_decoder_free(struct ipc_decoder *d)
{
    msgpack_zone_destroy(&d->zone);
}

static bool get_u32(const msgpack_object *o, uint32_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > UINT32_MAX)
        return false;
    *out = (uint32_t)o->via.u64;
    return true;
}

static bool is_map_or_nil(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_MAP || o->type == MSGPACK_OBJECT_NIL;
}

/* Checks the envelope's shape per message type and fills out. */
static int decode_envelope(const msgpack_object *root, struct ipc_msg *out)
{
    const msgpack_object *e;
    uint32_t n, type;

    memset(out, 0, sizeof(*out));
    if (root->type != MSGPACK_OBJECT_ARRAY)
        return IPC_EPROTO;
    e = root->via.array.ptr;
    n = root->via.array.size;
    if (n < 3 || !get_u32(&e[0], &type))
        return IPC_EPROTO;
    if (type == IPC_NOTIFY) {
        if (n != 3 || e[1].type != MSGPACK_OBJECT_STR ||
            e[2].type != MSGPACK_OBJECT_MAP)
            return IPC_EPROTO;
        out->type = IPC_NOTIFY;
        out->method = ipc_method_lookup(e[1].via.str.ptr, e[1].via.str.size);
        out->params = &e[2];
        return 0;
    }
    if (n != 4 || !get_u32(&e[1], &out->id))
        return IPC_EPROTO;
    if (type == IPC_REQUEST) {
        if (e[2].type != MSGPACK_OBJECT_STR || e[3].type != MSGPACK_OBJECT_MAP)
            return IPC_EPROTO;
        out->type = IPC_REQUEST;
        out->method = ipc_method_lookup(e[2].via.str.ptr, e[2].via.str.size);
        out->params = &e[3];
        return 0;
    }
    if (type != IPC_RESPONSE || !is_map_or_nil(&e[2]) || !is_map_or_nil(&e[3]))
        return IPC_EPROTO;
    if ((e[2].type == MSGPACK_OBJECT_NIL) == (e[3].type == MSGPACK_OBJECT_NIL))
        return IPC_EPROTO; /* exactly one of error and result */
    out->type = IPC_RESPONSE;
    out->error = e[2].type == MSGPACK_OBJECT_MAP ? &e[2] : NULL;
    out->result = e[3].type == MSGPACK_OBJECT_MAP ? &e[3] : NULL;
    return 0;
}

int ipc_decode(struct ipc_decoder *d, const char *payload, size_t len,
               struct ipc_msg *out)
{
    size_t off = 0;
    msgpack_unpack_return ret;

    if (ipc_scan(payload, len) < 0)
        return IPC_EPROTO;
    msgpack_zone_clear(&d->zone);
    ret = msgpack_unpack(payload, len, &off, &d->zone, &d->root);
    if (ret == MSGPACK_UNPACK_NOMEM_ERROR)
        return IPC_ENOMEM;
    if (ret != MSGPACK_UNPACK_SUCCESS || off != len)
        return IPC_EPROTO;
    return decode_envelope(&d->root, out);
}

/* Copies up to 40 bytes of a wire string for a message, '?' for any byte
 * that is not printable ASCII. */
static void printable(char *dst, size_t n, const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len && i < 40 && i + 1 < n; i++)
        dst[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    dst[i] = '\0';
}

/* A string value into a char[size] field, without NUL bytes inside. */
static bool get_str(const struct ipc_field *f, const msgpack_object *v)
{
    if (v->type != MSGPACK_OBJECT_STR || v->via.str.size >= f->size ||
        memchr(v->via.str.ptr, '\0', v->via.str.size))
        return false;
    memcpy(f->out, v->via.str.ptr, v->via.str.size);
    ((char *)f->out)[v->via.str.size] = '\0';
    return true;
}

/* An integer value as int64_t within [min, max]. */
static bool get_int(const msgpack_object *v, int64_t min, int64_t max,
                    int64_t *out)
{
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (v->via.u64 > (uint64_t)max)
            return false;
        *out = (int64_t)v->via.u64;
        return true;
    }
    if (v->type != MSGPACK_OBJECT_NEGATIVE_INTEGER || v->via.i64 < min)
        return false;
    *out = v->via.i64;
    return true;
}

/* A string value that must be one of f->names; stores its index. */
static bool get_enum(const struct ipc_field *f, const msgpack_object *v)
{
    if (v->type != MSGPACK_OBJECT_STR)
        return false;
    for (int i = 0; f->names[i]; i++) {
        if (strlen(f->names[i]) == v->via.str.size &&
            memcmp(f->names[i], v->via.str.ptr, v->via.str.size) == 0) {
            *(int *)f->out = i;
            return true;
        }
    }
    return false;
}

/* Decodes one value into its field; false when of the wrong type or out
 * of range. */
static bool get_value(const struct ipc_field *f, const msgpack_object *v)
{
    int64_t i;

    switch (f->type) {
    case IPC_F_STR:
        return get_str(f, v);
    case IPC_F_U64:
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return false;
        *(uint64_t *)f->out = v->via.u64;
        return true;
    case IPC_F_U32:
        if (!get_int(v, 0, UINT_MAX, &i))
            return false;
        *(unsigned *)f->out = (unsigned)i;
        return true;
    case IPC_F_I64:
        return get_int(v, INT64_MIN, INT64_MAX, (int64_t *)f->out);
    case IPC_F_INT:
        if (!get_int(v, INT_MIN, INT_MAX, &i))
            return false;
        *(int *)f->out = (int)i;
        return true;
    case IPC_F_BOOL:
        if (v->type != MSGPACK_OBJECT_BOOLEAN)
            return false;
        *(bool *)f->out = v->via.boolean;
        return true;
    case IPC_F_ENUM:
        return get_enum(f, v);
    }
    return false;
}

/* Index of the field named by a key object, or -1. */
static int field_index(const struct ipc_field *f, size_t n,
                       const msgpack_object *k)
{
    if (k->type != MSGPACK_OBJECT_STR)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (strlen(f[i].name) == k->via.str.size &&
            memcmp(f[i].name, k->via.str.ptr, k->via.str.size) == 0)
            return (int)i;
    return -1;
}

/* Writes a reason into why and returns IPC_EPROTO. */
static int fail(char *why, size_t whylen, const char *fmt, const char *arg)
{
    snprintf(why, whylen, fmt, arg);
    return IPC_EPROTO;
}

int ipc_get_fields(const msgpack_object *map, const struct ipc_field *f,
                   size_t n, char *why, size_t whylen)
{
    uint64_t seen = 0;
    char name[48] = "(not a string)";

    if (!map || map->type != MSGPACK_OBJECT_MAP || n > IPC_FIELDS_MAX)
        return fail(why, whylen, "%s are not a map", "fields");
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        int j = field_index(f, n, &kv->key);

        if (j < 0) {
            if (kv->key.type == MSGPACK_OBJECT_STR)
                printable(name, sizeof(name), kv->key.via.str.ptr,
                          kv->key.via.str.size);
            return fail(why, whylen, "unknown field %s", name);
        }
        if (seen & (1ULL << j))
            return fail(why, whylen, "duplicate field %s", f[j].name);
        seen |= 1ULL << j;
        if (!get_value(&f[j], &kv->val))
            return fail(why, whylen, "bad value for field %s", f[j].name);
    }
    for (size_t j = 0; j < n; j++)
        if (!(seen & (1ULL << j)))
            return fail(why, whylen, "missing field %s", f[j].name);
    return 0;
}
