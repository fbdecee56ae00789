/*
 * tlsgate-bench figures: latency samples and quantiles, error counts, and
 * the server's CPU time and memory read from /proc or a cgroup.
 */
#include "tlsgate_bench.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const phase_names[PH_COUNT] = {
    "connect", "banner", "ehlo_plain", "starttls", "handshake",
    "ehlo",    "mail",   "rcpt",       "data",     "body",
    "quit",    "close",  "lookup",     "session"};

static const char *const err_names[ERR_COUNT] = {
    "connect", "reply",   "handshake", "tls",   "eof",
    "io",      "timeout", "syntax",    "lookup"};

const char *bench_phase_name(enum bench_phase p)
{
    return p < PH_COUNT ? phase_names[p] : "?";
}

const char *bench_err_name(enum bench_err e)
{
    return e < ERR_COUNT ? err_names[e] : "?";
}

void bench_sample(struct bench_run *r, enum bench_phase p, uint64_t ns)
{
    struct bench_samples *s = &r->lat[p];
    uint64_t us = ns / 1000;

    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        uint32_t *v = realloc(s->v, cap * sizeof(*v));

        if (!v)
            return; /* the sample is lost; counts stay right */
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    s->sorted = false;
}

void bench_error(struct bench_run *r, enum bench_err e, const char *msg)
{
    if (r->errors[e]++ == 0)
        snprintf(r->first_error[e], sizeof(r->first_error[e]), "%s", msg);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

double bench_quantile(struct bench_samples *s, double q)
{
    size_t i;

    if (s->n == 0)
        return 0;
    if (!s->sorted) {
        qsort(s->v, s->n, sizeof(*s->v), cmp_u32);
        s->sorted = true;
    }
    i = (size_t)(q * (double)(s->n - 1) + 0.5);
    return s->v[i < s->n ? i : s->n - 1] / 1000.0;
}

/* ---- /proc ---- */

/* Fields of /proc/PID/stat: ppid, and utime+stime+cutime+cstime ticks. */
static int read_stat(int pid, int *ppid, unsigned long long *ticks)
{
    char path[64], buf[1024], *p;
    unsigned long long ut, st, cut, cst;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "re");
    if (!f)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p || sscanf(p + 2,
                     "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                     "%llu %llu %llu %llu",
                     ppid, &ut, &st, &cut, &cst) != 5)
        return -1;
    *ticks = ut + st + cut + cst;
    return 0;
}

static long read_rss_kib(int pid)
{
    char path[64], line[256];
    long kib = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    f = fopen(path, "re");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

struct proc_ent {
    int pid, ppid;
    unsigned long long ticks;
};

/* Every process of the machine with its parent, for the tree walk. */
static struct proc_ent *list_procs(size_t *count)
{
    DIR *d = opendir("/proc");
    struct proc_ent *v = NULL, *nv;
    size_t n = 0, cap = 0;
    struct dirent *e;

    while (d && (e = readdir(d))) {
        struct proc_ent p;

        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        p.pid = atoi(e->d_name);
        if (read_stat(p.pid, &p.ppid, &p.ticks) != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 512;
            nv = realloc(v, cap * sizeof(*v));
            if (!nv)
                break;
            v = nv;
        }
        v[n++] = p;
    }
    if (d)
        closedir(d);
    *count = n;
    return v;
}

/* Whether pid descends from (or is) one of the roots. */
static bool in_tree(const struct proc_ent *v, size_t n, int pid,
                    const int *roots, int nroots)
{
    for (int depth = 0; depth < 64 && pid > 1; depth++) {
        size_t i;

        for (int k = 0; k < nroots; k++)
            if (roots[k] == pid)
                return true;
        for (i = 0; i < n && v[i].pid != pid; i++)
            ;
        if (i == n)
            return false;
        pid = v[i].ppid;
    }
    return false;
}

/* CPU of the trees: each process's own time plus that of its reaped
 * children, so a child that exits between two reads is not lost. */
static void usage_procs(const struct bench_opts *o, struct bench_usage *u)
{
    size_t n = 0;
    struct proc_ent *v = list_procs(&n);
    unsigned long long ticks = 0;
    long hz = sysconf(_SC_CLK_TCK);

    for (size_t i = 0; i < n; i++) {
        if (!in_tree(v, n, v[i].pid, o->server_pids, o->nserver_pids))
            continue;
        ticks += v[i].ticks;
        u->rss_kib += read_rss_kib(v[i].pid);
        u->nproc++;
    }
    free(v);
    u->cpu_s = (double)ticks / (double)(hz > 0 ? hz : 100);
    u->ok = u->nproc > 0;
}

/* cgroup v2 (cpu.stat usage_usec) or v1 cpuacct (cpuacct.usage, ns). */
static void usage_cgroup(const char *dir, struct bench_usage *u)
{
    char path[4096], line[256];
    unsigned long long v;
    FILE *f;

    snprintf(path, sizeof(path), "%s/cpu.stat", dir);
    f = fopen(path, "re");
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "usage_usec %llu", &v) == 1) {
            u->cpu_s = (double)v / 1e6;
            u->ok = true;
        }
    if (f)
        fclose(f);
    if (u->ok)
        return;
    snprintf(path, sizeof(path), "%s/cpuacct.usage", dir);
    f = fopen(path, "re");
    if (f && fscanf(f, "%llu", &v) == 1) {
        u->cpu_s = (double)v / 1e9;
        u->ok = true;
    }
    if (f)
        fclose(f);
}

void bench_usage_read(const struct bench_opts *o, struct bench_usage *u)
{
    memset(u, 0, sizeof(*u));
    if (o->nserver_pids > 0)
        usage_procs(o, u);
    if (o->server_cgroup)
        usage_cgroup(o->server_cgroup, u);
}
