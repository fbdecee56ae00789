/*
 * tlsgate-bench-ipc: outbound lookups per second and latency over the
 * engine's IPC (1 and 64 requests in flight, 1 and 4 client processes),
 * side by side with in-process policy_outbound and with a bare Unix-socket
 * ping-pong of the same message sizes. See bench/README.md ("IPC").
 * Usage: tlsgate-bench-ipc [--seconds S] [--keep]
 */
#include "ipc_bench.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine_client.h"
#include "policy.h"
#include "store.h"

#define TENANTS 50
#define DOMAINS 20 /* outbound entries per tenant; recipients use 40 */

struct bench {
    char dir[PATH_MAX], policy[PATH_MAX + 16];
    char sock[3][PATH_MAX + 16]; /* ping-pong, batched echo, engine */
    pid_t pid[3];
    struct ipcb_pool pool;
    long seconds;
    int keep;
};

/* Result of one configuration. */
struct line {
    double rate, p50, p99;
    uint64_t errors;
};

static void die(const char *what)
{
    fprintf(stderr, "tlsgate-bench-ipc: %s\n", what);
    exit(1);
}

/* The store: TENANTS tenants in mode domains with DOMAINS entries each. */
static void build_store(const char *dir)
{
    struct store *st;
    struct store_txn *t;
    char name[32], dom[64];

    if (store_open(&st, dir, 0, STORE_CREATE) < 0 ||
        store_begin(st, true, &t) < 0 || store_init(t, "mail.example.net") < 0)
        die("cannot create the policy store");
    for (int i = 0; i < TENANTS; i++) {
        snprintf(name, sizeof(name), "t%d", i);
        if (store_tenant_add(t, name, NULL) < 0 ||
            store_outbound_mode(t, name, MODE_DOMAINS, TLS_ENCRYPT) < 0)
            die("cannot add a tenant");
        for (int k = 0; k < DOMAINS; k++) {
            snprintf(dom, sizeof(dom), "d%d.example", k);
            if (store_outbound_add(t, name, dom, TLS_ENCRYPT + k % 3) < 0)
                die("cannot add an entry");
        }
    }
    if (store_commit(t) < 0)
        die("cannot commit the policy store");
    store_close(st);
}

/* IPCB_POOL outbound requests over every tenant, half of them matching an
 * entry. */
static void build_pool(struct ipcb_pool *p)
{
    char tenant[32], rcpt[64];

    ipc_buf_init(&p->frames);
    for (int i = 0; i < IPCB_POOL; i++) {
        snprintf(tenant, sizeof(tenant), "t%d", i % TENANTS);
        snprintf(rcpt, sizeof(rcpt), "user%d@d%d.example", i, i % 40);
        p->off[i] = p->frames.len;
        if (ipc_request_frame(&p->frames, (uint32_t)i + 1, IPC_M_OUTBOUND,
                              tenant, rcpt, false) < 0)
            die("cannot encode a request");
        p->len[i] = p->frames.len - p->off[i];
    }
}

/* Starts the tlsgate-engine found beside this program. */
static pid_t start_engine(struct bench *b)
{
    char self[PATH_MAX], bin[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    struct eng_sync *s;
    pid_t pid;

    if (n < 0)
        die("cannot find my own path");
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    snprintf(bin, sizeof(bin), "%s/tlsgate-engine", self);
    fflush(stdout);
    if ((pid = fork()) == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl(bin, "tlsgate-engine", "--state-dir", b->dir, "--log-level",
              "warn", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        if (eng_sync_open(b->sock[2], 1000, &s) == 0) {
            eng_sync_close(s);
            return pid;
        }
        usleep(10000);
    }
    die("the engine did not start (is bin/tlsgate-engine built?)");
    return -1;
}

/* Decodes the pool's requests into p and returns the mean size of the
 * engine's answers to them (payload bytes), encoded as the engine does. */
static size_t decode_pool(const struct bench *b, struct store_txn *t,
                          struct ipc_params *p)
{
    struct outbound_decision d;
    struct ipc_decoder dec;
    struct ipc_writer w;
    struct ipc_buf out;
    struct ipc_msg m;
    char why[96];
    size_t mean;

    ipc_decoder_init(&dec);
    ipc_buf_init(&out);
    for (int i = 0; i < IPCB_POOL; i++) {
        ipc_decode(&dec, b->pool.frames.data + b->pool.off[i] + IPC_HDR_LEN,
                   b->pool.len[i] - IPC_HDR_LEN, &m);
        ipc_get_params(IPC_M_OUTBOUND, m.params, &p[i], why, sizeof(why));
        policy_outbound(t, p[i].a, p[i].b, &d);
        ipc_frame_begin(&w, &out);
        ipc_pack_outbound(&w, (uint32_t)i + 1, &d);
        ipc_frame_end(&w);
    }
    mean = out.len / IPCB_POOL - IPC_HDR_LEN;
    ipc_buf_free(&out);
    ipc_decoder_free(&dec);
    return mean;
}

/* In-process lookups on the same requests: the transaction is renewed
 * every 64 lookups, as the engine does per batch. Also returns the mean
 * size of the engine's answers to these requests. */
static struct line run_inprocess(struct bench *b, size_t *reply_len)
{
    static uint64_t hist[IPCB_HIST_US + 1];
    static struct ipc_params p[IPCB_POOL];
    struct outbound_decision d;
    struct store *st;
    struct store_txn *t;
    struct line l = {0};
    uint64_t done = 0;
    long t_end;

    if (store_open(&st, b->policy, 0, STORE_RDONLY) < 0 ||
        store_begin(st, false, &t) < 0)
        die("cannot open the policy store");
    *reply_len = decode_pool(b, t, p);

    t_end = ipc_bench_now_us() + b->seconds * 1000000L;
    for (unsigned i = 0; ipc_bench_now_us() < t_end; i++) {
        long t0 = ipc_bench_now_us(), lat;

        if (i % 64 == 0) {
            store_reset(t);
            store_renew(t);
        }
        if (policy_outbound(t, p[i % IPCB_POOL].a, p[i % IPCB_POOL].b, &d))
            l.errors++;
        lat = ipc_bench_now_us() - t0;
        hist[lat < IPCB_HIST_US ? lat : IPCB_HIST_US]++;
        done++;
    }
    l.rate = (double)done / (double)b->seconds;
    l.p50 = ipc_bench_percentile(hist, 50);
    l.p99 = ipc_bench_percentile(hist, 99);
    store_abort(t);
    store_close(st);
    return l;
}

/* Runs `clients` client processes against path with `window` in flight;
 * sums their answers and merges their latency histograms. */
static struct line run_clients(struct bench *b, const char *path, int clients,
                               unsigned window, int check)
{
    struct ipcb_run run = {path, &b->pool,          window,
                           500,  b->seconds * 1000, check};
    size_t size = sizeof(struct ipcb_result) * (size_t)clients;
    struct ipcb_result *res = mmap(NULL, size, PROT_READ | PROT_WRITE,
                                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    static uint64_t hist[IPCB_HIST_US + 1];
    struct line l = {0};
    uint64_t done = 0;
    pid_t pid[16];

    if (res == MAP_FAILED || clients > 16)
        die("out of memory");
    memset(res, 0, size);
    fflush(stdout);
    for (int c = 0; c < clients; c++) {
        if ((pid[c] = fork()) == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            ipc_bench_client(&run, &res[c]);
            _exit(0);
        }
    }
    for (int c = 0; c < clients; c++)
        while (waitpid(pid[c], NULL, 0) < 0 && errno == EINTR)
            ;
    memset(hist, 0, sizeof(hist));
    for (int c = 0; c < clients; c++) {
        done += res[c].done;
        l.errors += res[c].errors;
        for (int i = 0; i <= IPCB_HIST_US; i++)
            hist[i] += res[c].hist[i];
    }
    l.rate = (double)done / (double)b->seconds;
    l.p50 = ipc_bench_percentile(hist, 50);
    l.p99 = ipc_bench_percentile(hist, 99);
    munmap(res, size);
    return l;
}

static void print_line(const char *what, int clients, const char *window,
                       const struct line *l)
{
    printf("%-12s %7d %9s %12.0f %9.1f %9.1f%s\n", what, clients, window,
           l->rate, l->p50, l->p99, l->errors ? "  (errors!)" : "");
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    return remove(path);
}

/* Compares each IPC configuration with the plain ping-pong (the targets)
 * and the batched echo (the ceiling); returns 0 when both targets are
 * met. r[k][c][w]: k 0 ping-pong, 1 batched echo, 2 engine. */
static int report(struct line r[3][2][2], const struct line *inproc)
{
    static const int nclients[2] = {1, 4};
    int fail = 0;

    printf("\nratios, engine IPC / plain ping-pong (the targets):\n");
    for (int c = 0; c < 2; c++) {
        double r64 = r[2][c][1].rate / r[0][c][1].rate;
        double p1 = r[2][c][0].p50 / r[0][c][0].p50;

        printf("  %d client(s): 64 in flight: rate %.2f (target >= 0.50: "
               "%s); 1 in flight: median latency %.2fx (target <= 1.5x: "
               "%s), rate %.2f\n",
               nclients[c], r64, r64 >= 0.5 ? "met" : "MISSED", p1,
               p1 <= 1.5 ? "met" : "MISSED", r[2][c][0].rate / r[0][c][0].rate);
        fail |= r64 < 0.5 || p1 > 1.5;
    }
    printf("ratios, engine IPC / batched echo (no work at all):\n");
    for (int c = 0; c < 2; c++)
        printf("  %d client(s): 64 in flight: rate %.2f; 1 in flight: "
               "median latency %.2fx\n",
               nclients[c], r[2][c][1].rate / r[1][c][1].rate,
               r[2][c][0].p50 / r[1][c][0].p50);
    printf("engine IPC, 64 in flight, 4 clients / in-process lookups: %.2f\n",
           r[2][1][1].rate / inproc->rate);
    return fail;
}

/* The engine's own view: how it batched, and its time per batch. */
static void print_engine_stats(const struct bench *b)
{
    struct eng_stats st;
    struct eng_sync *s;

    if (eng_sync_open(b->sock[2], 2000, &s) < 0 || eng_sync_stats(s, &st) < 0)
        die("cannot read the engine's stats");
    printf("engine stats: %llu requests in %llu batches (%.1f per batch), "
           "%llu errors; time in the engine per request p50 %llu us, "
           "p99 %llu us\n",
           (unsigned long long)st.requests, (unsigned long long)st.batches,
           st.batches ? (double)st.requests / (double)st.batches : 0.0,
           (unsigned long long)st.errors, (unsigned long long)st.latency_p50_us,
           (unsigned long long)st.latency_p99_us);
    eng_sync_close(s);
}

/* Reads the flags and makes the temporary folder and its paths. */
static void setup(struct bench *b, int argc, char **argv)
{
    const char *tmp = getenv("TMPDIR");

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            b->seconds = atol(argv[++i]);
        else if (strcmp(argv[i], "--keep") == 0)
            b->keep = 1;
        else
            die("usage: tlsgate-bench-ipc [--seconds S] [--keep]");
    }
    if (b->seconds < 1 || b->seconds > 60)
        die("--seconds must be 1..60");
    snprintf(b->dir, sizeof(b->dir), "%s/tlsgate-bench-ipc-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(b->dir))
        die("cannot make a temporary folder");
    snprintf(b->policy, sizeof(b->policy), "%s/policy", b->dir);
    snprintf(b->sock[0], sizeof(b->sock[0]), "%s/pingpong.sock", b->dir);
    snprintf(b->sock[1], sizeof(b->sock[1]), "%s/batch.sock", b->dir);
    snprintf(b->sock[2], sizeof(b->sock[2]), "%s/engine.sock", b->dir);
}

/* Runs every configuration against the three servers, printing a line
 * each; r[k][c][w] as in report(). */
static void run_table(struct bench *b, struct line r[3][2][2])
{
    static const char *const kinds[3] = {"ping-pong", "echo-batch",
                                         "engine-ipc"};
    static const int nclients[2] = {1, 4};
    static const unsigned windows[2] = {1, 64};

    for (int c = 0; c < 2; c++) {
        for (int w = 0; w < 2; w++) {
            char win[16];

            snprintf(win, sizeof(win), "%u", windows[w]);
            for (int k = 0; k < 3; k++) {
                r[k][c][w] =
                    run_clients(b, b->sock[k], nclients[c], windows[w], k == 2);
                print_line(kinds[k], nclients[c], win, &r[k][c][w]);
            }
        }
    }
}

int main(int argc, char **argv)
{
    static struct bench b = {.seconds = 3};
    struct line r[3][2][2], inproc;
    size_t reply_len;
    int fail;

    setup(&b, argc, argv);
    signal(SIGPIPE, SIG_IGN);
    build_store(b.policy);
    build_pool(&b.pool);
    b.pid[2] = start_engine(&b);
    inproc = run_inprocess(&b, &reply_len);
    b.pid[0] = ipc_bench_echo_start(b.sock[0], reply_len, 0);
    b.pid[1] = ipc_bench_echo_start(b.sock[1], reply_len, 1);

    printf("tlsgate-bench-ipc: %d tenants x %d entries, outbound lookups, "
           "request %zu bytes, reply %zu bytes (frames), %lds per run\n\n",
           TENANTS, DOMAINS, b.pool.frames.len / IPCB_POOL,
           reply_len + IPC_HDR_LEN, b.seconds);
    printf("%-12s %7s %9s %12s %9s %9s\n", "path", "clients", "in-flight",
           "per-second", "p50-us", "p99-us");
    print_line("in-process", 1, "-", &inproc);
    run_table(&b, r);
    fail = report(r, &inproc);
    print_engine_stats(&b);

    for (int k = 0; k < 3; k++) {
        kill(b.pid[k], k == 2 ? SIGTERM : SIGKILL);
        waitpid(b.pid[k], NULL, 0);
    }
    if (!b.keep)
        nftw(b.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return fail ? 2 : 0;
}
