/*
 * Shared helpers of the reporting commands: state paths, times, and a
 * read-only scan of the engine's events store (layout: docs/ipc.md).
 */
#include "report.h"

#include <errno.h>
#include <lmdb.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "rpc.h"

#define EV_TAIL 16 /* key tail: be64 time, be64 sequence */

int adm_state_path(const struct adm_ctx *c, const char *sub, char *out,
                   size_t outlen)
{
    const char *slash;
    int n;

    if (c->state && c->state[0])
        n = snprintf(out, outlen, "%s/%s", c->state, sub);
    else if ((slash = strrchr(c->db, '/')) && slash != c->db)
        n = snprintf(out, outlen, "%.*s/%s", (int)(slash - c->db), c->db, sub);
    else
        n = snprintf(out, outlen, "%s/%s", slash ? "" : ".", sub);
    if (n < 0 || (size_t)n >= outlen)
        return adm_err("state folder name too long");
    return ADM_OK;
}

int adm_parse_when(const char *s, int64_t now, int64_t *out)
{
    struct tm tm = {0};
    char *end;
    long long v;
    const char *rest;

    if (!strcmp(s, "now")) {
        *out = now;
        return 0;
    }
    if ((rest = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) && !*rest) {
        *out = (int64_t)timegm(&tm);
        return 0;
    }
    memset(&tm, 0, sizeof(tm));
    if ((rest = strptime(s, "%Y-%m-%d", &tm)) && !*rest) {
        *out = (int64_t)timegm(&tm);
        return 0;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0 || v > 100LL * 365 * 86400 || s[0] == '-')
        return -1;
    if (!strcmp(end, "s") || !*end)
        *out = now - v;
    else if (!strcmp(end, "m"))
        *out = now - v * 60;
    else if (!strcmp(end, "h"))
        *out = now - v * 3600;
    else if (!strcmp(end, "d"))
        *out = now - v * 86400;
    else
        return -1;
    return 0;
}

int adm_period(const struct adm_ctx *c, int64_t *since, int64_t *until)
{
    int64_t now = (int64_t)time(NULL);

    if (adm_parse_when(c->since ? c->since : "7d", now, since) < 0)
        return adm_usage("%s: bad --since '%s' (7d, 24h, 30m, 2026-01-31)",
                         c->cmd, c->since);
    if (adm_parse_when(c->until ? c->until : "now", now, until) < 0)
        return adm_usage("%s: bad --until '%s' (now, 1d, 2026-01-31)", c->cmd,
                         c->until);
    if (*until <= now)
        *until += c->until ? 0 : 1; /* "now" includes this second */
    if (*since >= *until)
        return adm_usage("%s: --since must be before --until", c->cmd);
    return ADM_OK;
}

void adm_iso_time(int64_t t, char *out, size_t outlen)
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

/* Decodes one stored event (its MessagePack map). 0 or -1. */
static int decode_event(const MDB_val *v, struct eng_event *ev)
{
    msgpack_unpacked u;
    size_t off = 0;
    char why[128];
    int rc = -1;

    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, v->mv_data, v->mv_size, &off) ==
            MSGPACK_UNPACK_SUCCESS &&
        off == v->mv_size)
        rc = ipc_get_event(&u.data, ev, why, sizeof(why)) == 0 ? 0 : -1;
    msgpack_unpacked_destroy(&u);
    return rc;
}

/* Walks the tenant's key range [since, until) with an open cursor. */
static int scan_range(MDB_cursor *cur, const char *tenant, int64_t since,
                      int64_t until, adm_event_cb cb, void *ctx)
{
    size_t tlen = strlen(tenant);
    unsigned char key[TENANT_MAX + 1 + EV_TAIL], lim[8];
    MDB_val k = {tlen + 1 + EV_TAIL, key}, v;
    struct eng_event ev;
    int rc, stop = 0;

    memcpy(key, tenant, tlen + 1);
    put_be64(key + tlen + 1, (uint64_t)(since < 0 ? 0 : since));
    put_be64(key + tlen + 9, 0);
    put_be64(lim, (uint64_t)until);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && !stop;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const unsigned char *kd = k.mv_data;

        if (k.mv_size != tlen + 1 + EV_TAIL || memcmp(kd, tenant, tlen + 1))
            break;
        if (memcmp(kd + tlen + 1, lim, 8) >= 0)
            break;
        if (decode_event(&v, &ev) == 0)
            stop = cb(&ev, ctx);
    }
    return 0;
}

int adm_events_scan(const char *dir, const char *tenant, int64_t since,
                    int64_t until, adm_event_cb cb, void *ctx)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_cursor *cur;
    struct stat sb;
    int rc;

    if (stat(dir, &sb) < 0)
        return ADM_OK; /* no events yet: an empty report */
    if ((rc = mdb_env_create(&env)) != 0 ||
        (rc = mdb_env_set_maxdbs(env, 4)) != 0 ||
        (rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600)) != 0 ||
        (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0)
        goto fail;
    if ((rc = mdb_dbi_open(txn, "events", 0, &dbi)) == MDB_NOTFOUND) {
        rc = 0;
        goto out;
    }
    if (rc != 0 || (rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
        goto fail;
    scan_range(cur, tenant, since, until, cb, ctx);
    mdb_cursor_close(cur);
    goto out;
fail:
    adm_err("events store %s: %s", dir, mdb_strerror(rc));
out:
    if (txn)
        mdb_txn_abort(txn);
    if (env)
        mdb_env_close(env);
    return rc == 0 ? ADM_OK : ADM_FAIL;
}
