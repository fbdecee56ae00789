/*
 * The policy store's environment, transactions, generation counter and
 * record codec. Record-level operations live in store_records.c and
 * store_inbound.c.
 */
#include "store_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define STORE_MAP_DEFAULT ((size_t)1 << 30)
#define STORE_MAX_READERS 510
#define STORE_ZONE_CHUNK  2048

static const char *const store_db_names[DB_COUNT] = {
    [DB_META] = "meta",         [DB_SETTINGS] = "settings",
    [DB_TENANTS] = "tenants",   [DB_OUTBOUND] = "outbound",
    [DB_MAILBOX] = "mailboxes", [DB_FOLDERS] = "folders",
    [DB_TRUSTED] = "trusted",   [DB_SENDERS] = "senders",
    [DB_ROUTES] = "routes",
};

int store_mdb_err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return STORE_OK;
    case MDB_NOTFOUND:
        return STORE_ENOTFOUND;
    case MDB_KEYEXIST:
        return STORE_EEXIST;
    case MDB_MAP_FULL:
    case MDB_READERS_FULL:
    case MDB_TXN_FULL:
    case MDB_DBS_FULL:
    case ENOSPC:
        return STORE_EFULL;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_INCOMPATIBLE:
        return STORE_ECORRUPT;
    case MDB_VERSION_MISMATCH:
        return STORE_EVERSION;
    case ENOENT:
        return STORE_ENOINIT;
    case MDB_BAD_VALSIZE:
        return STORE_EINVAL;
    }
    return STORE_EIO;
}

const char *store_strerror(int err)
{
    switch (err) {
    case STORE_OK:
        return "success";
    case STORE_ENOTFOUND:
        return "not found";
    case STORE_EEXIST:
        return "already exists";
    case STORE_EINVAL:
        return "invalid argument";
    case STORE_EFULL:
        return "policy store full (map size or readers)";
    case STORE_EIO:
        return "policy store I/O error";
    case STORE_ECORRUPT:
        return "policy store record does not decode";
    case STORE_ENOINIT:
        return "policy store not initialised";
    case STORE_EVERSION:
        return "policy store schema version not supported";
    }
    return "unknown store error";
}

/* Reads the uint meta record key; 0 with *v = 0 when absent. */
static int store_meta_get(struct store_txn *txn, const char *key, uint64_t *v)
{
    MDB_val k = {strlen(key), (void *)key}, val;
    msgpack_object obj;
    size_t off = 0;
    int rc = store_get(txn, DB_META, &k, &val);

    *v = 0;
    if (rc == STORE_ENOTFOUND)
        return STORE_OK;
    if (rc != STORE_OK)
        return rc;
    msgpack_zone_clear(&txn->zone);
    if (msgpack_unpack(val.mv_data, val.mv_size, &off, &txn->zone, &obj) !=
            MSGPACK_UNPACK_SUCCESS ||
        off != val.mv_size || obj.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return STORE_ECORRUPT;
    *v = obj.via.u64;
    return STORE_OK;
}

static int store_meta_put(struct store_txn *txn, const char *key, uint64_t v)
{
    MDB_val k = {strlen(key), (void *)key};
    struct store_buf b;
    msgpack_packer pk;

    store_pack_init(&b, &pk);
    msgpack_pack_uint64(&pk, v);
    return store_put(txn, DB_META, &k, &b);
}

/* Opens (creating when writable) every named database and checks the
 * schema version, writing it into a new store. */
static int store_open_dbs(struct store *st)
{
    struct store_txn t = {.st = st, .write = !st->rdonly};
    unsigned dbflags = st->rdonly ? 0 : MDB_CREATE;
    uint64_t schema;
    int rc;

    if (!msgpack_zone_init(&t.zone, STORE_ZONE_CHUNK))
        return STORE_EIO;
    rc = mdb_txn_begin(st->env, NULL, st->rdonly ? MDB_RDONLY : 0, &t.txn);
    for (int i = 0; rc == MDB_SUCCESS && i < DB_COUNT; i++)
        rc = mdb_dbi_open(t.txn, store_db_names[i], dbflags, &st->dbi[i]);
    rc = rc == MDB_NOTFOUND ? STORE_ENOINIT : store_mdb_err(rc);

    if (rc == STORE_OK)
        rc = store_meta_get(&t, "schema", &schema);
    if (rc == STORE_OK && schema == 0 && !st->rdonly)
        rc = store_meta_put(&t, "schema", schema = STORE_SCHEMA);
    if (rc == STORE_OK && schema != STORE_SCHEMA)
        rc = schema == 0 ? STORE_ENOINIT : STORE_EVERSION;

    if (rc == STORE_OK)
        rc = store_mdb_err(mdb_txn_commit(t.txn));
    else if (t.txn != NULL)
        mdb_txn_abort(t.txn);
    msgpack_zone_destroy(&t.zone);
    return rc;
}

/* Creates and configures the environment handle and opens the folder. */
static int store_open_env(struct store *st, const char *dir, size_t map_size,
                          unsigned flags)
{
    unsigned envflags = MDB_NOTLS | (st->rdonly ? MDB_RDONLY : 0);
    int rc, dead;

    if ((flags & STORE_CREATE) && !st->rdonly && mkdir(dir, 0700) != 0 &&
        errno != EEXIST)
        return STORE_EIO;
    rc = mdb_env_create(&st->env);
    if (rc == MDB_SUCCESS)
        rc = mdb_env_set_maxdbs(st->env, DB_COUNT + 2);
    if (rc == MDB_SUCCESS)
        rc = mdb_env_set_maxreaders(st->env, STORE_MAX_READERS);
    if (rc == MDB_SUCCESS)
        rc = mdb_env_set_mapsize(st->env,
                                 map_size ? map_size : STORE_MAP_DEFAULT);
    if (rc == MDB_SUCCESS)
        rc = mdb_env_open(st->env, dir, envflags, 0600);
    if (rc == MDB_SUCCESS)
        rc = mdb_reader_check(st->env, &dead);
    return store_mdb_err(rc);
}

int store_open(struct store **out, const char *dir, size_t map_size,
               unsigned flags)
{
    struct store *st = calloc(1, sizeof(*st));
    int rc;

    *out = NULL;
    if (st == NULL)
        return STORE_EIO;
    st->rdonly = (flags & STORE_RDONLY) != 0;
    rc = store_open_env(st, dir, map_size, flags);
    if (rc == STORE_OK)
        rc = store_open_dbs(st);
    if (rc != STORE_OK) {
        store_close(st);
        return rc;
    }
    *out = st;
    return STORE_OK;
}

void store_close(struct store *st)
{
    if (st == NULL)
        return;
    if (st->env != NULL)
        mdb_env_close(st->env);
    free(st);
}

/* Starts the LMDB transaction, adopting a map grown by another process. */
static int store_txn_start(struct store_txn *t)
{
    int rc =
        mdb_txn_begin(t->st->env, NULL, t->write ? 0 : MDB_RDONLY, &t->txn);

    if (rc == MDB_MAP_RESIZED) {
        rc = mdb_env_set_mapsize(t->st->env, 0);
        if (rc == MDB_SUCCESS)
            rc = mdb_txn_begin(t->st->env, NULL, t->write ? 0 : MDB_RDONLY,
                               &t->txn);
    }
    if (rc != MDB_SUCCESS) {
        t->txn = NULL;
        return store_mdb_err(rc);
    }
    return store_meta_get(t, "generation", &t->generation);
}

int store_begin(struct store *st, bool write, struct store_txn **out)
{
    struct store_txn *t;
    int rc;

    *out = NULL;
    if (write && st->rdonly)
        return STORE_EINVAL;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return STORE_EIO;
    if (!msgpack_zone_init(&t->zone, STORE_ZONE_CHUNK)) {
        free(t);
        return STORE_EIO;
    }
    t->st = st;
    t->write = write;
    rc = store_txn_start(t);
    if (rc != STORE_OK) {
        store_abort(t);
        return rc;
    }
    *out = t;
    return STORE_OK;
}

static void store_txn_free(struct store_txn *t)
{
    msgpack_zone_destroy(&t->zone);
    free(t);
}

int store_commit(struct store_txn *txn)
{
    uint64_t unused;

    return store_commit_gen(txn, &unused);
}

int store_commit_gen(struct store_txn *txn, uint64_t *generation)
{
    int rc = STORE_OK;

    if (txn->write)
        rc = store_meta_put(txn, "generation", txn->generation + 1);
    if (rc == STORE_OK) {
        rc = store_mdb_err(mdb_txn_commit(txn->txn));
        if (rc == STORE_OK && txn->write)
            txn->generation++;
        if (rc == STORE_OK)
            *generation = txn->generation;
    } else {
        mdb_txn_abort(txn->txn);
    }
    store_txn_free(txn);
    return rc;
}

void store_abort(struct store_txn *txn)
{
    if (txn == NULL)
        return;
    if (txn->txn != NULL)
        mdb_txn_abort(txn->txn);
    store_txn_free(txn);
}

void store_reset(struct store_txn *txn)
{
    if (!txn->write && txn->txn != NULL)
        mdb_txn_reset(txn->txn);
}

int store_renew(struct store_txn *txn)
{
    int rc;

    if (txn->write || txn->txn == NULL)
        return STORE_EINVAL;
    rc = mdb_txn_renew(txn->txn);
    if (rc == MDB_MAP_RESIZED) {
        rc = mdb_env_set_mapsize(txn->st->env, 0);
        if (rc == MDB_SUCCESS)
            rc = mdb_txn_renew(txn->txn);
    }
    if (rc != MDB_SUCCESS)
        return store_mdb_err(rc);
    return store_meta_get(txn, "generation", &txn->generation);
}

uint64_t store_generation(struct store_txn *txn)
{
    return txn->generation;
}

/* ---- codec ---- */

static int store_buf_write(void *data, const char *buf, size_t len)
{
    struct store_buf *b = data;

    if (len > sizeof(b->data) - b->len) {
        b->overflow = true;
        return -1;
    }
    memcpy(b->data + b->len, buf, len);
    b->len += len;
    return 0;
}

void store_pack_init(struct store_buf *b, msgpack_packer *pk)
{
    b->len = 0;
    b->overflow = false;
    msgpack_packer_init(pk, b, store_buf_write);
}

static void store_pack_key(msgpack_packer *pk, const char *key)
{
    size_t n = strlen(key);

    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, key, n);
}

void store_pack_str(msgpack_packer *pk, const char *key, const char *val)
{
    store_pack_key(pk, key);
    store_pack_key(pk, val);
}

void store_pack_uint(msgpack_packer *pk, const char *key, uint64_t val)
{
    store_pack_key(pk, key);
    msgpack_pack_uint64(pk, val);
}

void store_pack_bool(msgpack_packer *pk, const char *key, bool val)
{
    store_pack_key(pk, key);
    if (val)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

/* Stores one decoded value into its field after checking type and range. */
static int store_decode_field(const msgpack_object *v, struct store_field *f)
{
    switch (f->type) {
    case SF_STR:
        if (v->type != MSGPACK_OBJECT_STR || v->via.str.size >= f->size ||
            memchr(v->via.str.ptr, '\0', v->via.str.size) != NULL)
            return STORE_ECORRUPT;
        memcpy(f->dst, v->via.str.ptr, v->via.str.size);
        ((char *)f->dst)[v->via.str.size] = '\0';
        return STORE_OK;
    case SF_UINT:
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > f->max)
            return STORE_ECORRUPT;
        *(uint64_t *)f->dst = v->via.u64;
        return STORE_OK;
    case SF_BOOL:
        if (v->type != MSGPACK_OBJECT_BOOLEAN)
            return STORE_ECORRUPT;
        *(bool *)f->dst = v->via.boolean;
        return STORE_OK;
    }
    return STORE_ECORRUPT;
}

/* Finds the field named by key, or NULL. */
static struct store_field *store_field_find(const msgpack_object *key,
                                            struct store_field *f, size_t n)
{
    if (key->type != MSGPACK_OBJECT_STR)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strlen(f[i].name) == key->via.str.size &&
            memcmp(f[i].name, key->via.str.ptr, key->via.str.size) == 0)
            return &f[i];
    return NULL;
}

int store_decode_map(struct store_txn *txn, const MDB_val *val,
                     struct store_field *f, size_t n)
{
    msgpack_object obj;
    size_t off = 0;

    /* every record is a fixmap (at most 15 fields): refusing anything
     * else up front keeps a corrupt length from sizing an allocation */
    if (val->mv_size == 0 || (*(unsigned char *)val->mv_data & 0xf0) != 0x80)
        return STORE_ECORRUPT;
    msgpack_zone_clear(&txn->zone);
    if (msgpack_unpack(val->mv_data, val->mv_size, &off, &txn->zone, &obj) !=
            MSGPACK_UNPACK_SUCCESS ||
        off != val->mv_size || obj.type != MSGPACK_OBJECT_MAP)
        return STORE_ECORRUPT;

    for (size_t i = 0; i < n; i++)
        f[i].seen = false;
    for (uint32_t i = 0; i < obj.via.map.size; i++) {
        const msgpack_object_kv *kv = &obj.via.map.ptr[i];
        struct store_field *fld = store_field_find(&kv->key, f, n);
        if (fld == NULL || fld->seen ||
            store_decode_field(&kv->val, fld) != STORE_OK)
            return STORE_ECORRUPT;
        fld->seen = true;
    }
    for (size_t i = 0; i < n; i++)
        if (f[i].required && !f[i].seen)
            return STORE_ECORRUPT;
    return STORE_OK;
}

/* ---- raw access ---- */

bool store_key2(char *buf, size_t n, const char *a, const char *b, MDB_val *key)
{
    size_t la = strlen(a), lb = strlen(b);

    if (la + 1 + lb > n)
        return false;
    memcpy(buf, a, la);
    buf[la] = '\0';
    memcpy(buf + la + 1, b, lb);
    key->mv_data = buf;
    key->mv_size = la + 1 + lb;
    return true;
}

int store_get(struct store_txn *txn, enum store_db db, const MDB_val *key,
              MDB_val *val)
{
    if (key->mv_size == 0)
        return STORE_ENOTFOUND;
    return store_mdb_err(
        mdb_get(txn->txn, txn->st->dbi[db], (MDB_val *)key, val));
}

int store_put(struct store_txn *txn, enum store_db db, const MDB_val *key,
              const struct store_buf *b)
{
    MDB_val val = {b->len, (void *)b->data};

    if (b->overflow || key->mv_size == 0)
        return STORE_EINVAL;
    return store_mdb_err(
        mdb_put(txn->txn, txn->st->dbi[db], (MDB_val *)key, &val, 0));
}

int store_del(struct store_txn *txn, enum store_db db, const MDB_val *key)
{
    return store_mdb_err(
        mdb_del(txn->txn, txn->st->dbi[db], (MDB_val *)key, NULL));
}

int store_walk_prefix(
    struct store_txn *txn, enum store_db db, const char *prefix, size_t plen,
    int (*cb)(const MDB_val *key, const MDB_val *val, void *ctx), void *ctx)
{
    MDB_cursor *cur;
    MDB_val key = {plen, (void *)prefix}, val;
    int rc = mdb_cursor_open(txn->txn, txn->st->dbi[db], &cur);
    int op = plen ? MDB_SET_RANGE : MDB_FIRST;

    if (rc != MDB_SUCCESS)
        return store_mdb_err(rc);
    while ((rc = mdb_cursor_get(cur, &key, &val, op)) == MDB_SUCCESS) {
        op = MDB_NEXT;
        if (key.mv_size < plen || memcmp(key.mv_data, prefix, plen) != 0)
            break;
        rc = cb(&key, &val, ctx);
        if (rc != 0) {
            mdb_cursor_close(cur);
            return rc;
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_SUCCESS || rc == MDB_NOTFOUND ? STORE_OK
                                                   : store_mdb_err(rc);
}

int store_del_prefix(struct store_txn *txn, enum store_db db,
                     const char *prefix, size_t plen)
{
    MDB_cursor *cur;
    MDB_val key, val;
    int rc = mdb_cursor_open(txn->txn, txn->st->dbi[db], &cur);

    if (rc != MDB_SUCCESS)
        return store_mdb_err(rc);
    for (;;) {
        key.mv_size = plen;
        key.mv_data = (void *)prefix;
        rc = mdb_cursor_get(cur, &key, &val, plen ? MDB_SET_RANGE : MDB_FIRST);
        if (rc != MDB_SUCCESS || key.mv_size < plen ||
            memcmp(key.mv_data, prefix, plen) != 0)
            break;
        rc = mdb_cursor_del(cur, 0);
        if (rc != MDB_SUCCESS)
            break;
    }
    mdb_cursor_close(cur);
    return rc == MDB_SUCCESS || rc == MDB_NOTFOUND ? STORE_OK
                                                   : store_mdb_err(rc);
}
