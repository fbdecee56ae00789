/*
 * Outcome events: buffered in memory (bounded, oldest dropped first) and
 * written in batches by a thread-pool job into their own LMDB environment
 * (cfg->events_dir), so lookups never wait on a write. Layout in
 * docs/ipc.md ("Events store").
 */
#include "engine.h"

#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"

#define EV_QUEUE_MAX 4096  /* buffered events; the oldest go beyond it */
#define EV_BATCH_MAX 512   /* flush at once when this many wait */
#define EV_FLUSH_MS  200   /* else flush this often */
#define EV_PRUNE_MS  60000 /* when idle, look for expired events this often */
#define EV_PRUNE_MAX 10000 /* deletions per write transaction */
#define EV_TAIL      16    /* key tail: be64 time, be64 sequence */

struct ev_rec {
    size_t klen, vlen;
    char data[]; /* key, then value */
};

struct eng_events {
    uv_loop_t *loop;
    MDB_env *env; /* NULL: the store could not be opened; events dropped */
    MDB_dbi db_events, db_time;
    uv_timer_t timer;
    uv_work_t job;
    bool busy, timer_on;
    struct ev_rec *ring[EV_QUEUE_MAX];
    unsigned head, count;
    struct ev_rec *work[EV_QUEUE_MAX]; /* owned by the job while busy */
    unsigned nwork;
    uint64_t seq, retention, last_prune_ms;
    int64_t cutoff; /* prune events older than this in the job; 0: none */
    int job_err;
    uint64_t job_pruned;
    uint64_t received, stored, dropped, pruned;
};

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* Builds one record: key tenant NUL be64(time) be64(seq), value the
 * event's MessagePack map (the params of the wire notification). */
static struct ev_rec *make_record(struct eng_events *ev,
                                  const struct eng_event *e)
{
    struct ipc_buf val;
    struct ev_rec *r = NULL;
    size_t tlen = strnlen(e->tenant, sizeof(e->tenant) - 1);
    uint64_t t = e->time > 0 ? (uint64_t)e->time : (uint64_t)time(NULL);

    ipc_buf_init(&val);
    if (ipc_event_map(&val, e) < 0)
        goto out;
    if (!(r = malloc(sizeof(*r) + tlen + 1 + EV_TAIL + val.len)))
        goto out;
    r->klen = tlen + 1 + EV_TAIL;
    r->vlen = val.len - IPC_HDR_LEN;
    memcpy(r->data, e->tenant, tlen);
    r->data[tlen] = '\0';
    put_be64((unsigned char *)r->data + tlen + 1, t);
    put_be64((unsigned char *)r->data + tlen + 9, ++ev->seq);
    memcpy(r->data + r->klen, val.data + IPC_HDR_LEN, r->vlen);
out:
    ipc_buf_free(&val);
    return r;
}

/* Deletes up to EV_PRUNE_MAX events older than cutoff, oldest first, in
 * both tables. Returns an LMDB status. */
static int prune(struct eng_events *ev, MDB_txn *txn, int64_t cutoff,
                 uint64_t *n)
{
    MDB_cursor *cur;
    MDB_val k, v, ek;
    char key[TENANT_MAX + 2 + EV_TAIL];
    int rc;

    if ((rc = mdb_cursor_open(txn, ev->db_time, &cur)) != 0)
        return rc;
    while (*n < EV_PRUNE_MAX &&
           (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
        if (k.mv_size != EV_TAIL || v.mv_size > TENANT_MAX ||
            get_be64(k.mv_data) >= (uint64_t)cutoff)
            break;
        memcpy(key, v.mv_data, v.mv_size);
        key[v.mv_size] = '\0';
        memcpy(key + v.mv_size + 1, k.mv_data, EV_TAIL);
        ek.mv_data = key;
        ek.mv_size = v.mv_size + 1 + EV_TAIL;
        rc = mdb_del(txn, ev->db_events, &ek, NULL);
        if ((rc != 0 && rc != MDB_NOTFOUND) ||
            (rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        (*n)++;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Thread-pool job: writes the work array in one transaction and prunes. */
static void job_write(uv_work_t *job)
{
    struct eng_events *ev = job->data;
    MDB_txn *txn;
    MDB_val k, v, tk, tv;
    int rc;

    ev->job_pruned = 0;
    if ((rc = mdb_txn_begin(ev->env, NULL, 0, &txn)) != 0) {
        ev->job_err = rc;
        return;
    }
    for (unsigned i = 0; i < ev->nwork && rc == 0; i++) {
        struct ev_rec *r = ev->work[i];

        k = (MDB_val){r->klen, r->data};
        v = (MDB_val){r->vlen, r->data + r->klen};
        tk = (MDB_val){EV_TAIL, r->data + r->klen - EV_TAIL};
        tv = (MDB_val){r->klen - EV_TAIL - 1, r->data};
        rc = mdb_put(txn, ev->db_events, &k, &v, 0);
        if (rc == 0)
            rc = mdb_put(txn, ev->db_time, &tk, &tv, 0);
    }
    if (rc == 0 && ev->cutoff > 0)
        rc = prune(ev, txn, ev->cutoff, &ev->job_pruned);
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    ev->job_err = rc;
}

static void job_done(uv_work_t *job, int status);

/* Hands every buffered event to a thread-pool job (one at a time). The
 * job also prunes expired events: each time it writes (the oldest key is
 * one lookup away, so this is cheap), and every EV_PRUNE_MS when idle. */
static void flush(struct eng_events *ev)
{
    uint64_t now = uv_now(ev->loop);

    if (ev->busy || !ev->env)
        return;
    ev->cutoff = 0;
    if (ev->count || now - ev->last_prune_ms >= EV_PRUNE_MS) {
        ev->last_prune_ms = now;
        ev->cutoff = (int64_t)time(NULL) - (int64_t)ev->retention;
    }
    if (!ev->count && !ev->cutoff)
        return;
    for (ev->nwork = 0; ev->count; ev->count--) {
        ev->work[ev->nwork++] = ev->ring[ev->head];
        ev->head = (ev->head + 1) % EV_QUEUE_MAX;
    }
    ev->busy = true;
    ev->job.data = ev;
    if (uv_queue_work(ev->loop, &ev->job, job_write, job_done) < 0) {
        ev->job_err = MDB_PANIC;
        job_done(&ev->job, 0);
    }
}

/* Back on the loop: counts the outcome and frees the written records. */
static void job_done(uv_work_t *job, int status)
{
    struct eng_events *ev = job->data;

    if (ev->job_err == 0) {
        ev->stored += ev->nwork;
        ev->pruned += ev->job_pruned;
        if (ev->job_pruned)
            log_info("id=engine events_pruned count=%llu",
                     (unsigned long long)ev->job_pruned);
    } else {
        ev->dropped += ev->nwork;
        log_warn("id=engine events_write_failed count=%u error=\"%s\"",
                 ev->nwork, mdb_strerror(ev->job_err));
    }
    for (unsigned i = 0; i < ev->nwork; i++)
        free(ev->work[i]);
    ev->nwork = 0;
    ev->busy = false;
    if (ev->count >= EV_BATCH_MAX)
        flush(ev);
}

static void on_timer(uv_timer_t *t)
{
    flush(t->data);
}

void eng_events_add(struct eng_events *ev, const struct eng_event *e)
{
    struct ev_rec *r;

    ev->received++;
    if (!ev->env || !(r = make_record(ev, e))) {
        ev->dropped++;
        return;
    }
    if (ev->count == EV_QUEUE_MAX) { /* drop the oldest */
        free(ev->ring[ev->head]);
        ev->head = (ev->head + 1) % EV_QUEUE_MAX;
        ev->count--;
        if (ev->dropped++ % 1000 == 0)
            log_warn("id=engine events_dropped reason=buffer-full total=%llu",
                     (unsigned long long)ev->dropped);
    }
    ev->ring[(ev->head + ev->count) % EV_QUEUE_MAX] = r;
    ev->count++;
    if (ev->count >= EV_BATCH_MAX)
        flush(ev);
}

void eng_events_counts(const struct eng_events *ev, uint64_t *received,
                       uint64_t *stored, uint64_t *dropped, uint64_t *pruned)
{
    *received = ev->received;
    *stored = ev->stored;
    *dropped = ev->dropped;
    *pruned = ev->pruned;
}

/* Creates the environment and its tables. Returns an LMDB status. */
static int open_env(struct eng_events *ev, const struct tg_config *cfg)
{
    MDB_txn *txn;
    int rc, dead;

    if (mkdir(cfg->events_dir, 0700) < 0 && errno != EEXIST)
        return errno;
    if ((rc = mdb_env_create(&ev->env)) != 0)
        return rc;
    if ((rc = mdb_env_set_maxdbs(ev->env, 4)) != 0 ||
        (rc = mdb_env_set_mapsize(ev->env, cfg->engine_map_size)) != 0 ||
        (rc = mdb_env_open(ev->env, cfg->events_dir, MDB_NOTLS, 0600)) != 0 ||
        (rc = mdb_reader_check(ev->env, &dead)) != 0 ||
        (rc = mdb_txn_begin(ev->env, NULL, 0, &txn)) != 0)
        goto fail;
    if ((rc = mdb_dbi_open(txn, "events", MDB_CREATE, &ev->db_events)) != 0 ||
        (rc = mdb_dbi_open(txn, "bytime", MDB_CREATE, &ev->db_time)) != 0) {
        mdb_txn_abort(txn);
        goto fail;
    }
    if ((rc = mdb_txn_commit(txn)) == 0)
        return 0;
fail:
    mdb_env_close(ev->env);
    ev->env = NULL;
    return rc;
}

int eng_events_open(uv_loop_t *loop, const struct tg_config *cfg,
                    struct eng_events **out)
{
    struct eng_events *ev = calloc(1, sizeof(*ev));
    struct timespec ts;
    int rc;

    if (!ev)
        return IPC_ENOMEM;
    ev->loop = loop;
    ev->retention = cfg->events_retention;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* Microseconds at start: unique sequence numbers across restarts. */
    ev->seq = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
    if ((rc = open_env(ev, cfg)) != 0)
        log_err("id=engine events_unavailable dir=%s error=\"%s\" "
                "action=drop-events",
                cfg->events_dir, mdb_strerror(rc));
    uv_timer_init(loop, &ev->timer);
    ev->timer.data = ev;
    uv_timer_start(&ev->timer, on_timer, EV_FLUSH_MS, EV_FLUSH_MS);
    ev->timer_on = true;
    *out = ev;
    return 0;
}

void eng_events_stop(struct eng_events *ev)
{
    if (ev->timer_on)
        uv_close((uv_handle_t *)&ev->timer, NULL);
    ev->timer_on = false;
}

void eng_events_close(struct eng_events *ev)
{
    if (!ev)
        return;
    if (ev->env && ev->count) { /* the loop is done: write here */
        ev->cutoff = (int64_t)time(NULL) - (int64_t)ev->retention;
        for (ev->nwork = 0; ev->count; ev->count--) {
            ev->work[ev->nwork++] = ev->ring[ev->head];
            ev->head = (ev->head + 1) % EV_QUEUE_MAX;
        }
        job_write(&ev->job);
        ev->job.data = ev;
        job_done(&ev->job, 0);
    }
    while (ev->count--) {
        free(ev->ring[ev->head]);
        ev->head = (ev->head + 1) % EV_QUEUE_MAX;
    }
    if (ev->env)
        mdb_env_close(ev->env);
    free(ev);
}
