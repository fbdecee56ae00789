/* The synthetic policy of tlsgate-bench-lookup and its lookup keys. */
#include <string.h>

#include "lookup.h"

uint64_t bench_rand(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

void bench_tenant(unsigned i, char *out, size_t n)
{
    snprintf(out, n, "t%05u", i);
}

/* Mixes two numbers into one, so that entries differ between tenants. */
static unsigned bench_mix(unsigned i, unsigned j)
{
    uint64_t s = ((uint64_t)i << 32 | j) + 0x9E3779B97F4A7C15ULL;

    return (unsigned)(bench_rand(&s) >> 40);
}

void bench_entry(unsigned i, unsigned j, char *dom, size_t n,
                 enum tls_level *lvl)
{
    unsigned k = bench_mix(i, j) % 5000;

    if (j % 2 == 0)
        snprintf(dom, n, "v%u-%u.example", k, j);
    else
        snprintf(dom, n, ".s%u-%u.example", k, j);
    *lvl = (enum tls_level)(bench_mix(j, i) % 5);
}

/* Mode of tenant i: a tenth off, three tenths all, the rest domains. */
static const char *bench_mode(unsigned i)
{
    unsigned m = i % 10;

    return m == 0 ? "off" : m <= 3 ? "all" : "domains";
}

/* One tenant object of the import document. */
static void bench_gen_tenant(FILE *f, unsigned i, const struct bench_shape *s)
{
    char name[16], dom[64];
    enum tls_level lvl;

    bench_tenant(i, name, sizeof(name));
    fprintf(f,
            "%s\"%s\":{\"outbound\":{\"mode\":\"%s\",\"default_level\":"
            "\"%s\",\"domains\":{",
            i ? ",\n" : "", name, bench_mode(i), i % 2 ? "encrypt" : "verify");
    for (unsigned j = 0; j < s->entries; j++) {
        bench_entry(i, j, dom, sizeof(dom), &lvl);
        fprintf(f, "%s\"%s\":\"%s\"", j ? "," : "", dom, tls_level_name(lvl));
    }
    fprintf(f,
            "}},\"inbound\":{\"tls\":\"%s\",\"allowlist\":%s,"
            "\"action\":\"%s\",\"trusted\":[\"partner%u.example\","
            "\".trusted%u.example\"],\"mailboxes\":[\"m0@%s.%s\","
            "\"m1@%s.%s\"]}}",
            i % 5 == 0 ? "require" : "may", i % 4 == 0 ? "true" : "false",
            i % 8 == 0 ? "discard" : "reject", i % 100, i % 50, name,
            BENCH_PLATFORM, name, BENCH_PLATFORM);
}

int bench_gen_policy(FILE *f, const struct bench_shape *s)
{
    fprintf(f,
            "{\"format\":\"tlsgate-policy\",\"version\":1,\"settings\":"
            "{\"platform_domain\":\"%s\"},\"tenants\":{\n",
            BENCH_PLATFORM);
    for (unsigned i = 0; i < s->tenants; i++)
        bench_gen_tenant(f, i, s);
    fprintf(f, "},\"routes\":{\"v1-0.example\":{\"host\":\"127.0.0.1\","
               "\"port\":2525}}}\n");
    return ferror(f) ? -1 : 0;
}

void bench_recipient(unsigned i, const struct bench_shape *s, uint64_t rnd,
                     char *out, size_t n)
{
    unsigned j = (unsigned)(rnd >> 8) % s->entries, kind = rnd % 10;
    enum tls_level lvl;
    char dom[64];

    bench_entry(i, j, dom, sizeof(dom), &lvl);
    if (kind < 3)
        snprintf(out, n, "user%u@nomatch%u.example", j, (unsigned)(rnd >> 32));
    else if (dom[0] == '.')
        snprintf(out, n, "user%u@mx%u%s", j, kind, dom);
    else
        snprintf(out, n, "User%u@%s", j, dom);
}

void bench_inbound_pair(const struct bench_shape *s, uint64_t rnd, char *sender,
                        char *rcpt, size_t n)
{
    unsigned i = (unsigned)(rnd >> 16) % s->tenants, kind = rnd % 10;
    char name[16];

    bench_tenant(i, name, sizeof(name));
    if (kind == 0)
        snprintf(rcpt, n, "nobody@%s.%s", name, BENCH_PLATFORM);
    else
        snprintf(rcpt, n, "m%u@%s.%s", kind % 2, name, BENCH_PLATFORM);
    if (kind < 5)
        snprintf(sender, n, "<a@partner%u.example>", i % 100);
    else if (kind < 7)
        snprintf(sender, n, "b@mail.trusted%u.example", i % 50);
    else
        snprintf(sender, n, "c@stranger%u.example", (unsigned)(rnd >> 40));
}
