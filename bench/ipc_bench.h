/*
 * tlsgate-bench-ipc: lookups over the engine's IPC against in-process
 * lookups and a bare Unix-socket ping-pong of the same message sizes.
 */
#ifndef TLSGATE_IPC_BENCH_H
#define TLSGATE_IPC_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rpc.h"

#define IPCB_HIST_US 20000 /* latency histogram: 1 us buckets, 20 ms */
#define IPCB_POOL    1024  /* distinct pre-encoded requests */

/* What one client process measured (in shared memory). */
struct ipcb_result {
    uint64_t done;   /* answers received in the measured window */
    uint64_t errors; /* error answers, or undecodable ones */
    uint64_t hist[IPCB_HIST_US + 1];
};

/* The requests every client sends, one frame each, back to back. */
struct ipcb_pool {
    struct ipc_buf frames;
    size_t off[IPCB_POOL], len[IPCB_POOL];
};

/* One client run: connect to path, keep `window` requests in flight for
 * warm_ms + run_ms, count answers and latencies after warm_ms. With check,
 * every answer is decoded and error answers counted. */
struct ipcb_run {
    const char *path;
    const struct ipcb_pool *pool;
    unsigned window;
    long warm_ms, run_ms;
    int check;
};

void ipc_bench_client(const struct ipcb_run *run, struct ipcb_result *res);

/* Forks a bare ping-pong server on path: it answers every frame it reads
 * with one frame of reply_len payload bytes and does nothing else; with
 * batched, every read's answers go in one write, else one write each.
 * Returns its pid. */
pid_t ipc_bench_echo_start(const char *path, size_t reply_len, int batched);

/* Latency percentile (0..100) of a histogram, in microseconds. */
double ipc_bench_percentile(const uint64_t *hist, double pct);

long ipc_bench_now_us(void);

#endif
