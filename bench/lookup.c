/*
 * tlsgate-bench-lookup: generates a policy of N tenants with M outbound
 * entries each, times `tlsgate-admin import` of it, then measures
 * policy_outbound and policy_inbound lookups per second in this process,
 * single thread, random keys. Results go to stdout; bench/README.md says
 * how to read them.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lookup.h"

#define BENCH_KEYS  (1u << 16) /* distinct random keys, reused in a ring */
#define BENCH_BATCH 1000       /* lookups per read transaction */

struct bench_opts {
    struct bench_shape shape;
    const char *admin;
    const char *dir;
    double seconds; /* per measurement */
    bool keep;
};

struct bench_key {
    char tenant[16];
    char a[96]; /* recipient (outbound) or sender (inbound) */
    char b[96]; /* recipient (inbound) */
};

static double bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void bench_die(const char *what, int rc)
{
    fprintf(stderr, "tlsgate-bench-lookup: %s: %s\n", what,
            rc < 0 ? store_strerror(rc) : strerror(errno));
    exit(1);
}

/* Writes the generated policy to path; returns its size in bytes. */
static long bench_write_policy(const char *path, const struct bench_shape *s)
{
    FILE *f = fopen(path, "w");
    long size;

    if (f == NULL)
        bench_die(path, 0);
    if (bench_gen_policy(f, s) < 0 || fflush(f) != 0)
        bench_die(path, 0);
    size = ftell(f);
    fclose(f);
    return size;
}

/* Runs `admin --db db cmd file` and returns its wall-clock seconds. */
static double bench_admin(const char *admin, const char *db, const char *cmd,
                          const char *file)
{
    double t0 = bench_now();
    int status;
    pid_t pid = fork();

    if (pid < 0)
        bench_die("fork", 0);
    if (pid == 0) {
        execl(admin, admin, "--db", db, cmd, file, (char *)NULL);
        fprintf(stderr, "tlsgate-bench-lookup: exec %s: %s\n", admin,
                strerror(errno));
        _exit(127);
    }
    if (waitpid(pid, &status, 0) < 0)
        bench_die("waitpid", 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "tlsgate-bench-lookup: %s failed\n", cmd);
        exit(1);
    }
    return bench_now() - t0;
}

/* Random keys, made before timing so that formatting is not measured. */
static struct bench_key *bench_keys(const struct bench_shape *s, bool inbound)
{
    struct bench_key *keys = calloc(BENCH_KEYS, sizeof(*keys));
    uint64_t seed = inbound ? 0xfeedULL : 0xbeefULL;

    if (keys == NULL)
        bench_die("calloc", 0);
    for (unsigned k = 0; k < BENCH_KEYS; k++) {
        uint64_t r = bench_rand(&seed);
        unsigned i = (unsigned)(r >> 33) % s->tenants;

        bench_tenant(i, keys[k].tenant, sizeof(keys[k].tenant));
        if (inbound)
            bench_inbound_pair(s, bench_rand(&seed), keys[k].a, keys[k].b,
                               sizeof(keys[k].a));
        else
            bench_recipient(i, s, bench_rand(&seed), keys[k].a,
                            sizeof(keys[k].a));
    }
    return keys;
}

struct bench_result {
    double rate;             /* lookups per second */
    unsigned long n, errors; /* lookups, lookups that returned an error */
    unsigned long hits;      /* required (outbound) or accepted (inbound) */
};

/* One lookup of key k; returns the decision's error code. */
static int bench_one(struct store_txn *txn, const struct bench_key *k,
                     bool inbound, unsigned long *hits)
{
    struct outbound_decision od;
    struct inbound_decision id;
    int rc;

    if (inbound) {
        rc = policy_inbound(txn, k->a, k->b, true, &id);
        *hits += rc == 0 && id.action == IN_ACCEPT;
    } else {
        rc = policy_outbound(txn, k->tenant, k->a, &od);
        *hits += rc == 0 && od.required;
    }
    return rc;
}

/* Looks keys up for about secs seconds on one read transaction that is
 * reset and renewed every `renew` lookups. */
static void bench_loop(struct store *st, const struct bench_key *keys,
                       bool inbound, unsigned renew, double secs,
                       struct bench_result *r)
{
    struct store_txn *txn;
    double t0, t;
    unsigned long i;
    int rc = store_begin(st, false, &txn);

    if (rc < 0)
        bench_die("store_begin", rc);
    memset(r, 0, sizeof(*r));
    t0 = bench_now();
    for (i = 0;; i++) {
        if (i % renew == 0 && i > 0) {
            store_reset(txn);
            if ((rc = store_renew(txn)) < 0)
                bench_die("store_renew", rc);
        }
        r->errors +=
            bench_one(txn, &keys[i % BENCH_KEYS], inbound, &r->hits) != 0;
        if (i % 4096 == 4095 && (t = bench_now() - t0) >= secs)
            break;
    }
    store_abort(txn);
    r->n = i + 1;
    r->rate = r->n / t;
}

static void bench_print(const char *what, const struct bench_result *r)
{
    printf("%-46s %10.0f lookups/s  (%lu lookups, %.1f%% %s, %lu errors)\n",
           what, r->rate, r->n, 100.0 * r->hits / r->n,
           strstr(what, "inbound") ? "accepted" : "TLS required", r->errors);
}

static void bench_usage(void)
{
    fprintf(stderr, "usage: tlsgate-bench-lookup [--tenants N] [--entries M] "
                    "[--seconds S]\n"
                    "                            [--admin PATH] [--dir DIR] "
                    "[--keep]\n");
    exit(2);
}

/* The tlsgate-admin beside this program (both are built into bin/). */
static const char *bench_default_admin(void)
{
    static char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 32);
    char *slash;

    if (n <= 0)
        return "tlsgate-admin";
    path[n] = '\0';
    slash = strrchr(path, '/');
    strcpy(slash + 1, "tlsgate-admin");
    return path;
}

static void bench_args(int argc, char **argv, struct bench_opts *o)
{
    o->shape.tenants = 10000;
    o->shape.entries = 50;
    o->seconds = 3;
    o->admin = bench_default_admin();
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (!strcmp(argv[i], "--keep")) {
            o->keep = true;
            continue;
        }
        if (v == NULL)
            bench_usage();
        if (!strcmp(argv[i], "--tenants"))
            o->shape.tenants = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(argv[i], "--entries"))
            o->shape.entries = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(argv[i], "--seconds"))
            o->seconds = strtod(v, NULL);
        else if (!strcmp(argv[i], "--admin"))
            o->admin = v;
        else if (!strcmp(argv[i], "--dir"))
            o->dir = v;
        else
            bench_usage();
        i++;
    }
    if (o->shape.tenants == 0 || o->shape.tenants > 99999 ||
        o->shape.entries == 0 || o->shape.entries > 10000 || !(o->seconds > 0))
        bench_usage();
}

/* Generates the file, imports it, exports the store; prints all three. */
static void bench_load(const struct bench_opts *o, const char *dir, char *db,
                       size_t n)
{
    char file[PATH_MAX], out[PATH_MAX];
    double secs;
    long size;

    snprintf(file, sizeof(file), "%s/policy.json", dir);
    snprintf(out, sizeof(out), "%s/export.json", dir);
    snprintf(db, n, "%s/policy", dir);
    size = bench_write_policy(file, &o->shape);
    printf("policy: %u tenants x %u outbound entries = %lu entries, "
           "2 mailboxes each; file %.1f MiB\n",
           o->shape.tenants, o->shape.entries,
           (unsigned long)o->shape.tenants * o->shape.entries,
           size / 1048576.0);
    secs = bench_admin(o->admin, db, "import", file);
    printf("import: %.2f s (%s --db %s import %s)\n", secs, o->admin, db, file);
    secs = bench_admin(o->admin, db, "export", out);
    printf("export: %.2f s (%s --db %s export %s)\n", secs, o->admin, db, out);
    if (!o->keep) {
        unlink(file);
        unlink(out);
    }
}

/* Removes the temporary store (LMDB's two files) and its folders. */
static void bench_cleanup(const char *dir, const char *db)
{
    char path[PATH_MAX + 16];

    snprintf(path, sizeof(path), "%s/data.mdb", db);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", db);
    unlink(path);
    if (rmdir(db) != 0 || rmdir(dir) != 0)
        fprintf(stderr, "tlsgate-bench-lookup: could not remove %s: %s\n", dir,
                strerror(errno));
}

int main(int argc, char **argv)
{
    struct bench_opts o = {0};
    struct bench_result r;
    struct bench_key *out_keys, *in_keys;
    char tmpl[] = "/tmp/tlsgate-bench-123456", db[PATH_MAX];
    const char *dir;
    struct store *st;
    int rc;

    bench_args(argc, argv, &o);
    memset(tmpl + sizeof(tmpl) - 7, 'X', 6); /* the six mkdtemp replaces */
    dir = o.dir ? o.dir : mkdtemp(tmpl);
    if (dir == NULL || (o.dir && mkdir(dir, 0700) != 0 && errno != EEXIST))
        bench_die("temporary folder", 0);
    bench_load(&o, dir, db, sizeof(db));
    out_keys = bench_keys(&o.shape, false);
    in_keys = bench_keys(&o.shape, true);
    if ((rc = store_open(&st, db, 0, STORE_RDONLY)) < 0)
        bench_die(db, rc);

    /* Untimed first pass: bring the store's pages into memory. */
    bench_loop(st, out_keys, false, BENCH_BATCH, o.seconds / 2, &r);
    bench_loop(st, out_keys, false, BENCH_BATCH, o.seconds, &r);
    bench_print("policy_outbound, txn renewed every 1000", &r);
    bench_loop(st, out_keys, false, 1, o.seconds, &r);
    bench_print("policy_outbound, txn renewed every lookup", &r);
    bench_loop(st, in_keys, true, BENCH_BATCH, o.seconds, &r);
    bench_print("policy_inbound (TLS on), txn renewed every 1000", &r);

    store_close(st);
    free(out_keys);
    free(in_keys);
    if (!o.keep && !o.dir)
        bench_cleanup(dir, db);
    return 0;
}
