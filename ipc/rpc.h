/*
 * The MessagePack-RPC codec of the engine protocol (docs/ipc.md), shared by
 * the engine and its clients: framing, a strict bounded decoder, typed
 * getters, and the encoders and decoders of every method's fields.
 *
 * A frame is a 4-byte big-endian payload length, then one MessagePack
 * value: request [0, id, method, params], response [1, id, error, result],
 * notification [2, method, params].
 */
#ifndef TLSGATE_IPC_RPC_H
#define TLSGATE_IPC_RPC_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine_client.h"

#define IPC_PROTO_VERSION 1
#define IPC_HDR_LEN       4     /* frame header: payload length, big-endian */
#define IPC_FRAME_MAX     65536 /* largest payload */
#define IPC_DEPTH_MAX     4     /* deepest nesting of arrays and maps */
#define IPC_FIELDS_MAX    32    /* most keys in one params/result map */
#define IPC_ARG_MAX       1024  /* longest string argument, NUL included */

enum ipc_msg_type { IPC_REQUEST = 0, IPC_RESPONSE = 1, IPC_NOTIFY = 2 };

/* One list of methods; ipc_method_name() gives the wire name. */
enum ipc_method {
    IPC_M_UNKNOWN = -1,
    IPC_M_PING,
    IPC_M_OUTBOUND,
    IPC_M_INBOUND,
    IPC_M_TENANT_FOR_SENDER,
    IPC_M_ROUTE,
    IPC_M_STATS,
    IPC_M_EVENT, /* notification only */
    IPC_M_COUNT
};

const char *ipc_method_name(enum ipc_method m);
/* The method named by s[0..len), or IPC_M_UNKNOWN. */
enum ipc_method ipc_method_lookup(const char *s, size_t len);

/* ---- growable byte buffer ---- */

struct ipc_buf {
    char *data;
    size_t len, cap;
};

void ipc_buf_init(struct ipc_buf *b);
void ipc_buf_free(struct ipc_buf *b);
/* Makes room for n more bytes. Returns 0 or IPC_ENOMEM. */
int ipc_buf_reserve(struct ipc_buf *b, size_t n);
int ipc_buf_append(struct ipc_buf *b, const void *p, size_t n);
/* Drops the first n bytes, moving the rest to the front. */
void ipc_buf_consume(struct ipc_buf *b, size_t n);

/* ---- framing ---- */

/*
 * Looks for the first frame in buf[0..len). Returns 1 with *payload_len
 * set when a whole frame is there (it spans IPC_HDR_LEN + *payload_len
 * bytes), 0 when more bytes are needed, IPC_ETOOBIG when the header
 * announces an empty payload or one over IPC_FRAME_MAX (the stream cannot
 * be resynchronised: close it).
 */
int ipc_frame_next(const char *buf, size_t len, size_t *payload_len);

/* Appends one frame to a buffer: ipc_frame_begin, pack, ipc_frame_end. */
struct ipc_writer {
    struct ipc_buf *b;
    size_t start;
    int err;
    msgpack_packer pk;
};

void ipc_frame_begin(struct ipc_writer *w, struct ipc_buf *b);
/* Patches the header. Returns 0, IPC_ENOMEM or IPC_ETOOBIG; on error the
 * buffer is cut back to where the frame began. */
int ipc_frame_end(struct ipc_writer *w);

/* Envelope heads; each is followed by the params/result map's n pairs. */
void ipc_pack_request(struct ipc_writer *w, uint32_t id, enum ipc_method m,
                      uint32_t n);
void ipc_pack_notify(struct ipc_writer *w, enum ipc_method m, uint32_t n);
void ipc_pack_result(struct ipc_writer *w, uint32_t id, uint32_t n);
/* A whole error response: [1, id, {code, message, generation}, nil]. */
void ipc_pack_error(struct ipc_writer *w, uint32_t id, int code,
                    const char *message, uint64_t generation);

void ipc_pack_kv_str(struct ipc_writer *w, const char *key, const char *val);
void ipc_pack_kv_uint(struct ipc_writer *w, const char *key, uint64_t val);
void ipc_pack_kv_int(struct ipc_writer *w, const char *key, int64_t val);
void ipc_pack_kv_bool(struct ipc_writer *w, const char *key, bool val);

/* ---- decoding ---- */

/*
 * Checks that buf[0..len) is exactly one MessagePack value, nested at most
 * IPC_DEPTH_MAX deep, whose every announced length fits in what is left
 * (so that no decoder allocates more than a few times len). Only nil,
 * booleans, integers, strings, arrays and maps are allowed.
 * Returns 0 or IPC_EPROTO.
 */
int ipc_scan(const char *buf, size_t len);

/* A decoded message; the objects live in the decoder's zone until the
 * next ipc_decode or ipc_decoder_free. */
struct ipc_msg {
    enum ipc_msg_type type;
    uint32_t id;                  /* request, response */
    enum ipc_method method;       /* request, notify (may be UNKNOWN) */
    const msgpack_object *params; /* request, notify: a map */
    const msgpack_object *error;  /* response: NULL or a map */
    const msgpack_object *result; /* response: NULL or a map */
};

struct ipc_decoder {
    msgpack_zone zone;
    msgpack_object root;
};

int ipc_decoder_init(struct ipc_decoder *d);
void ipc_decoder_free(struct ipc_decoder *d);

/*
 * Decodes one frame payload (without its header). Returns 0 or IPC_EPROTO
 * (not one well-formed envelope: bad value, trailing bytes, wrong element
 * count or types, unknown message type), IPC_ENOMEM.
 */
int ipc_decode(struct ipc_decoder *d, const char *payload, size_t len,
               struct ipc_msg *out);

/* Field kinds for ipc_get_fields. */
enum ipc_ftype {
    IPC_F_STR,  /* out: char[size], no NUL inside, fits with its NUL */
    IPC_F_U64,  /* out: uint64_t */
    IPC_F_U32,  /* out: unsigned */
    IPC_F_I64,  /* out: int64_t */
    IPC_F_INT,  /* out: int (negative allowed) */
    IPC_F_BOOL, /* out: bool */
    IPC_F_ENUM, /* out: int, the index of the string in names[] */
};

struct ipc_field {
    const char *name;
    enum ipc_ftype type;
    void *out;
    size_t size;              /* IPC_F_STR: buffer size */
    const char *const *names; /* IPC_F_ENUM: NULL-terminated */
};

/*
 * Strict typed access to a map: it must hold exactly the n fields (string
 * keys, each once, each of its type and in range). Returns 0, or
 * IPC_EPROTO with a short reason in why (e.g. "missing field recipient").
 */
int ipc_get_fields(const msgpack_object *map, const struct ipc_field *f,
                   size_t n, char *why, size_t whylen);

/* ---- the methods' fields (rpc_schema.c) ---- */

extern const char *const ipc_level_names[];  /* enum tls_level */
extern const char *const ipc_mode_names[];   /* enum out_mode */
extern const char *const ipc_action_names[]; /* enum in_action */

/* Request params, as the engine decodes them. */
struct ipc_params {
    char a[IPC_ARG_MAX]; /* tenant | sender | domain */
    char b[IPC_ARG_MAX]; /* recipient */
    bool tls;
};

/* Packs one whole request frame for method m with its arguments
 * (a, b, tls as struct ipc_params). Returns as ipc_frame_end. */
int ipc_request_frame(struct ipc_buf *b, uint32_t id, enum ipc_method m,
                      const char *a, const char *b2, bool tls);
/* Decodes the params of a request of method m. 0 or IPC_EPROTO + why. */
int ipc_get_params(enum ipc_method m, const msgpack_object *params,
                   struct ipc_params *out, char *why, size_t whylen);

/* Result encoders (engine) and decoders (clients), one per method. */
void ipc_pack_ping(struct ipc_writer *w, uint32_t id, uint64_t generation);
int ipc_get_ping(const msgpack_object *r, unsigned *version, uint64_t *gen);
void ipc_pack_outbound(struct ipc_writer *w, uint32_t id,
                       const struct outbound_decision *d);
int ipc_get_outbound(const msgpack_object *r, struct outbound_decision *d);
void ipc_pack_inbound(struct ipc_writer *w, uint32_t id,
                      const struct inbound_decision *d);
int ipc_get_inbound(const msgpack_object *r, struct inbound_decision *d);
void ipc_pack_tenant(struct ipc_writer *w, uint32_t id,
                     const struct tenant_info *t, uint64_t generation);
int ipc_get_tenant(const msgpack_object *r, struct tenant_info *t,
                   uint64_t *gen);
void ipc_pack_route(struct ipc_writer *w, uint32_t id, const char *host,
                    unsigned port, uint64_t generation);
int ipc_get_route(const msgpack_object *r, char *host, size_t hostlen,
                  unsigned *port, uint64_t *gen);
void ipc_pack_stats(struct ipc_writer *w, uint32_t id,
                    const struct eng_stats *s);
int ipc_get_stats(const msgpack_object *r, struct eng_stats *s);
/* An error map: code must be negative. */
int ipc_get_error(const msgpack_object *e, int *code, char *msg, size_t msglen,
                  uint64_t *gen);

/* Events: one notification frame; decoding checks every field. */
int ipc_event_frame(struct ipc_buf *b, const struct eng_event *ev);
void ipc_pack_event_fields(struct ipc_writer *w, const struct eng_event *ev);
/* One frame whose payload is the event's map alone (the events store
 * keeps that payload as its value; ipc_get_event decodes it). */
int ipc_event_map(struct ipc_buf *b, const struct eng_event *ev);
int ipc_get_event(const msgpack_object *params, struct eng_event *ev, char *why,
                  size_t whylen);

#endif
