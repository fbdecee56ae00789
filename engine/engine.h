/*
 * tlsgate-engine internals: the daemon answering policy questions over
 * the IPC protocol of docs/ipc.md. One libuv loop, one thread for lookups.
 */
#ifndef TLSGATE_ENGINE_H
#define TLSGATE_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "engine_client.h"
#include "rpc.h"
#include "store.h"

#define ENG_CONN_OUT_MAX (1u << 20) /* queued reply bytes before pausing */
#define ENG_CONN_MAX     1024 /* open connections; more are closed at once */
#define ENG_REOPEN_MS    200  /* retry opening a missing store */
#define ENG_HIST_BUCKETS 160  /* latency histogram, quarter-octaves */

struct eng_events;

/* Counters reported by the stats method. */
struct eng_counters {
    uint64_t req[IPC_M_COUNT];
    uint64_t requests, errors, bad_frames, batches;
    uint64_t connections, connections_total;
    uint64_t hist[ENG_HIST_BUCKETS];
    uint64_t latency_max_ns;
};

struct eng_conn;

struct engine {
    uv_loop_t *loop;
    const struct tg_config *cfg;
    uv_pipe_t server;
    uv_signal_t sig[3];    /* TERM, INT, HUP */
    struct store *st;      /* NULL until the store can be opened */
    struct store_txn *txn; /* the read transaction, renewed per batch */
    uint64_t last_open_ms;
    struct ipc_decoder dec;
    struct ipc_buf reply; /* the batch's replies, written in one go */
    struct eng_counters n;
    struct eng_events *events;
    struct eng_conn *conns;
    uint64_t next_conn_id;
    uint64_t started_ms;
    bool stopping;
};

/* engine_conn.c: accepting and serving connections. */
int eng_listen(struct engine *e);
void eng_close_all(struct engine *e);

/* engine_dispatch.c: one batch of frames, answered from one transaction. */
struct eng_batch {
    struct engine *e;
    int txn_err; /* 0, or why there is no transaction for this batch */
    bool txn_on; /* a transaction was started for this batch */
    uint64_t generation;
    unsigned requests;
};

void eng_batch_begin(struct engine *e, struct eng_batch *b);
void eng_batch_end(struct eng_batch *b);
/* Answers one frame payload into e->reply. Returns 0, or IPC_EPROTO when
 * the message is not a well-formed envelope (the caller closes). */
int eng_handle_frame(struct eng_batch *b, const char *p, size_t n,
                     uint64_t conn_id);

/* engine_stats.c */
void eng_stats_record(struct eng_counters *n, uint64_t ns, unsigned count);
void eng_stats_fill(const struct engine *e, uint64_t generation,
                    struct eng_stats *s);

/* engine_events.c: outcome events in their own LMDB environment, written
 * in batches from the thread pool, never on the lookup path. */
int eng_events_open(uv_loop_t *loop, const struct tg_config *cfg,
                    struct eng_events **out);
void eng_events_add(struct eng_events *ev, const struct eng_event *e);
void eng_events_counts(const struct eng_events *ev, uint64_t *received,
                       uint64_t *stored, uint64_t *dropped, uint64_t *pruned);
/* Stops the flush timer; call before the loop's last run. */
void eng_events_stop(struct eng_events *ev);
/* Writes what is still buffered and closes the environment (after the
 * loop has stopped). */
void eng_events_close(struct eng_events *ev);

#endif
