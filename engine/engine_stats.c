/* Request statistics: counters and a latency histogram. */
#include "engine.h"

#include <string.h>

/* Histogram bucket of a latency: four buckets per power of two of ns. */
static unsigned bucket_of(uint64_t ns)
{
    unsigned hi, b;

    if (ns < 4)
        return 0;
    hi = 63 - (unsigned)__builtin_clzll(ns);
    b = hi * 4 + (unsigned)((ns >> (hi - 2)) & 3);
    return b < ENG_HIST_BUCKETS ? b : ENG_HIST_BUCKETS - 1;
}

/* Upper bound of a bucket, in ns. */
static uint64_t bucket_top(unsigned b)
{
    unsigned hi = b / 4, q = b % 4;

    if (hi < 2)
        return 4;
    return ((4 + (uint64_t)q + 1) << (hi - 2)) - 1;
}

void eng_stats_record(struct eng_counters *n, uint64_t ns, unsigned count)
{
    n->hist[bucket_of(ns)] += count;
    if (ns > n->latency_max_ns)
        n->latency_max_ns = ns;
}

/* The latency below which a fraction num/den of requests fall, in us. */
static uint64_t percentile_us(const struct eng_counters *n, uint64_t num,
                              uint64_t den)
{
    uint64_t total = 0, seen = 0, want;

    for (unsigned b = 0; b < ENG_HIST_BUCKETS; b++)
        total += n->hist[b];
    if (!total)
        return 0;
    want = (total * num + den - 1) / den;
    for (unsigned b = 0; b < ENG_HIST_BUCKETS; b++) {
        seen += n->hist[b];
        if (seen >= want)
            return (bucket_top(b) + 999) / 1000;
    }
    return (n->latency_max_ns + 999) / 1000;
}

void eng_stats_fill(const struct engine *e, uint64_t generation,
                    struct eng_stats *s)
{
    const struct eng_counters *n = &e->n;

    memset(s, 0, sizeof(*s));
    s->version = IPC_PROTO_VERSION;
    s->generation = generation;
    s->store_open = e->st != NULL;
    s->uptime_s = (uv_now(e->loop) - e->started_ms) / 1000;
    s->connections = n->connections;
    s->connections_total = n->connections_total;
    s->requests = n->requests;
    s->req_ping = n->req[IPC_M_PING];
    s->req_outbound = n->req[IPC_M_OUTBOUND];
    s->req_inbound = n->req[IPC_M_INBOUND];
    s->req_tenant_for_sender = n->req[IPC_M_TENANT_FOR_SENDER];
    s->req_route = n->req[IPC_M_ROUTE];
    s->req_stats = n->req[IPC_M_STATS];
    s->errors = n->errors;
    s->bad_frames = n->bad_frames;
    s->batches = n->batches;
    s->latency_p50_us = percentile_us(n, 50, 100);
    s->latency_p99_us = percentile_us(n, 99, 100);
    s->latency_max_us = (n->latency_max_ns + 999) / 1000;
    if (e->events)
        eng_events_counts(e->events, &s->events_received, &s->events_stored,
                          &s->events_dropped, &s->events_pruned);
}
