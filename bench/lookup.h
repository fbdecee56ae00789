/*
 * tlsgate-bench-lookup: a synthetic policy (generator in lookup_gen.c) and
 * the keys the lookup loops ask for. Everything is derived from the tenant
 * and entry numbers, so the keys need no copy of the file.
 */
#ifndef TLSGATE_BENCH_LOOKUP_H
#define TLSGATE_BENCH_LOOKUP_H

#include <stdint.h>
#include <stdio.h>

#include "policy.h"

#define BENCH_PLATFORM "bench.example"

struct bench_shape {
    unsigned tenants;
    unsigned entries; /* outbound domain entries per tenant */
};

/* A small, fast, deterministic PRNG (xorshift64*). */
uint64_t bench_rand(uint64_t *state);

/* Tenant number i's name ("t00042"). */
void bench_tenant(unsigned i, char *out, size_t n);
/* Outbound entry j of tenant i: even j an exact domain, odd j a ".sub"
 * entry; the level is spread over all five. */
void bench_entry(unsigned i, unsigned j, char *dom, size_t n,
                 enum tls_level *lvl);

/* Writes the whole policy as an import document to f. Returns 0 or -1. */
int bench_gen_policy(FILE *f, const struct bench_shape *s);

/* Fills a recipient for tenant i: an exact hit, a subdomain hit, or a
 * domain no entry matches, chosen by rnd. */
void bench_recipient(unsigned i, const struct bench_shape *s, uint64_t rnd,
                     char *out, size_t n);
/* Fills an inbound (sender, recipient) pair: registered or unknown
 * mailboxes, trusted or untrusted senders, chosen by rnd. */
void bench_inbound_pair(const struct bench_shape *s, uint64_t rnd, char *sender,
                        char *rcpt, size_t n);

#endif
