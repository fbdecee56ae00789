/*
 * tlsgate-bench: options, the run's timers and bounds, then the output.
 * See tlsgate_bench.h for the model and bench/README.md for its use.
 */
#include "tlsgate_bench.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tlsgate-bench [--mode starttls|tls|deliver|lookup|plain]\n"
            "  [--host 127.0.0.1] [--port N] [--concurrency N]\n"
            "  [--sessions N] [--duration S] [--timeout S]\n"
            "  [--resume on|off] [--nodelay on|off] [--cert-type ecdsa|rsa]\n"
            "  [--group X25519] [--priority STRING] [--size BYTES]\n"
            "  [--helo NAME] [--from ADDR] [--to ADDR]\n"
            "  [--engine-socket PATH] [--json FILE] [--label TEXT]\n"
            "  [--server-pid PID]... [--server-cgroup DIR]\n"
            "  [--hold S] [--ramp N] [--quiet]\n");
}

static int parse_onoff(const char *v, bool *out)
{
    if (strcmp(v, "on") == 0 || strcmp(v, "yes") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(v, "off") == 0 || strcmp(v, "no") == 0) {
        *out = false;
        return 0;
    }
    return -1;
}

static int parse_mode(const char *v, enum bench_mode *m)
{
    static const char *const names[] = {"starttls", "tls", "deliver", "lookup",
                                        "plain"};

    for (int i = 0; i < 5; i++)
        if (strcmp(v, names[i]) == 0) {
            *m = (enum bench_mode)i;
            return 0;
        }
    return -1;
}

/* Loopback only: 127.0.0.0/8, ::1 or "localhost". */
static int resolve_loopback(struct bench_run *r)
{
    const char *h = r->o.host;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&r->addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&r->addr;

    if (strcmp(h, "localhost") == 0)
        h = "127.0.0.1";
    memset(&r->addr, 0, sizeof(r->addr));
    if (inet_pton(AF_INET, h, &a4->sin_addr) == 1 &&
        (ntohl(a4->sin_addr.s_addr) >> 24) == 127) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)r->o.port);
        r->addrlen = sizeof(*a4);
        return 0;
    }
    if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1 &&
        IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr)) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)r->o.port);
        r->addrlen = sizeof(*a6);
        return 0;
    }
    fprintf(stderr,
            "tlsgate-bench: %s is not a loopback address; "
            "refusing to load anything else\n",
            r->o.host);
    return -1;
}

static void defaults(struct bench_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->mode = MODE_STARTTLS;
    o->concurrency = 8;
    o->sessions = 1000;
    o->duration = 30;
    o->timeout = 10;
    o->nodelay = true;
    o->cert_type = "ecdsa";
    o->group = "X25519";
    o->size = 1024;
    o->host = "127.0.0.1";
    o->port = 2525;
    o->helo = "bench.test";
    o->mail_from = "bench@bench.test";
    o->rcpt_to = "gm@acme.mail.example.net";
}

enum {
    O_MODE = 256,
    O_HOST,
    O_PORT,
    O_CONC,
    O_SESS,
    O_DUR,
    O_TIMEOUT,
    O_RESUME,
    O_NODELAY,
    O_CERT,
    O_GROUP,
    O_PRIO,
    O_SIZE,
    O_HELO,
    O_FROM,
    O_TO,
    O_ENGINE,
    O_JSON,
    O_LABEL,
    O_PID,
    O_CGROUP,
    O_HOLD,
    O_RAMP,
    O_QUIET,
    O_HELP
};

static const struct option long_opts[] = {{"mode", 1, 0, O_MODE},
                                          {"host", 1, 0, O_HOST},
                                          {"port", 1, 0, O_PORT},
                                          {"concurrency", 1, 0, O_CONC},
                                          {"sessions", 1, 0, O_SESS},
                                          {"duration", 1, 0, O_DUR},
                                          {"timeout", 1, 0, O_TIMEOUT},
                                          {"resume", 1, 0, O_RESUME},
                                          {"nodelay", 1, 0, O_NODELAY},
                                          {"cert-type", 1, 0, O_CERT},
                                          {"group", 1, 0, O_GROUP},
                                          {"priority", 1, 0, O_PRIO},
                                          {"size", 1, 0, O_SIZE},
                                          {"helo", 1, 0, O_HELO},
                                          {"from", 1, 0, O_FROM},
                                          {"to", 1, 0, O_TO},
                                          {"engine-socket", 1, 0, O_ENGINE},
                                          {"json", 1, 0, O_JSON},
                                          {"label", 1, 0, O_LABEL},
                                          {"server-pid", 1, 0, O_PID},
                                          {"server-cgroup", 1, 0, O_CGROUP},
                                          {"hold", 1, 0, O_HOLD},
                                          {"ramp", 1, 0, O_RAMP},
                                          {"quiet", 0, 0, O_QUIET},
                                          {"help", 0, 0, O_HELP},
                                          {0, 0, 0, 0}};

/* A number in [lo, hi]; -1 on anything else. */
static int num(const char *v, double lo, double hi, double *out)
{
    char *end;
    double d = strtod(v, &end);

    if (end == v || *end || d < lo || d > hi)
        return -1;
    *out = d;
    return 0;
}

/* One option; returns 0 or -1 (bad value). */
static int set_opt(struct bench_opts *o, int c, const char *v)
{
    double d = 0;

    switch (c) {
    case O_MODE:
        return parse_mode(v, &o->mode);
    case O_HOST:
        o->host = v;
        return 0;
    case O_PORT:
        return num(v, 1, 65535, &d) ? -1 : (o->port = (unsigned)d, 0);
    case O_CONC:
        return num(v, 1, 100000, &d) ? -1 : (o->concurrency = (unsigned)d, 0);
    case O_SESS:
        return num(v, 0, 1e9, &d) ? -1 : (o->sessions = (uint64_t)d, 0);
    case O_DUR:
        return num(v, 0.1, 3600, &o->duration);
    case O_TIMEOUT:
        return num(v, 0.1, 600, &o->timeout);
    case O_RESUME:
        return parse_onoff(v, &o->resume);
    case O_NODELAY:
        return parse_onoff(v, &o->nodelay);
    case O_CERT:
        o->cert_type = v;
        return strcmp(v, "ecdsa") && strcmp(v, "rsa") ? -1 : 0;
    case O_SIZE:
        return num(v, 0, 64 << 20, &d) ? -1 : (o->size = (size_t)d, 0);
    case O_HOLD:
        return num(v, 0, 600, &o->hold);
    case O_RAMP:
        return num(v, 0, 100000, &d) ? -1 : (o->ramp = (unsigned)d, 0);
    case O_PID:
        if (o->nserver_pids == 32 || num(v, 1, 1 << 30, &d))
            return -1;
        o->server_pids[o->nserver_pids++] = (int)d;
        return 0;
    }
    return -1;
}

/* Options that only keep a string. */
static bool set_text(struct bench_opts *o, int c, const char *v)
{
    const char **slot = c == O_GROUP    ? &o->group
                        : c == O_PRIO   ? &o->priority
                        : c == O_HELO   ? &o->helo
                        : c == O_FROM   ? &o->mail_from
                        : c == O_TO     ? &o->rcpt_to
                        : c == O_ENGINE ? &o->engine_socket
                        : c == O_JSON   ? &o->json_path
                        : c == O_LABEL  ? &o->label
                        : c == O_CGROUP ? &o->server_cgroup
                                        : NULL;

    if (!slot)
        return false;
    *slot = v;
    return true;
}

static int parse_args(struct bench_opts *o, int argc, char **argv)
{
    int c;

    defaults(o);
    while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        if (c == O_HELP) {
            usage(stdout);
            exit(0);
        }
        if (c == O_QUIET) {
            o->quiet = true;
            continue;
        }
        if (c == '?' || (!set_text(o, c, optarg) && set_opt(o, c, optarg))) {
            if (c != '?')
                fprintf(stderr, "tlsgate-bench: bad value for --%s: %s\n",
                        long_opts[c - O_MODE].name, optarg);
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc || (o->mode == MODE_LOOKUP && !o->engine_socket) ||
        (o->hold > 0 && (o->mode == MODE_LOOKUP || o->mode == MODE_DELIVER))) {
        fprintf(stderr, "tlsgate-bench: %s\n",
                optind < argc ? "unexpected argument"
                : o->hold > 0 ? "--hold needs a session mode "
                                "(starttls, tls or plain)"
                              : "lookup mode needs --engine-socket");
        return -1;
    }
    return 0;
}

/* ---- the run ---- */

bool bench_may_start(struct bench_run *r)
{
    return !r->stopping && (r->o.sessions == 0 || r->started < r->o.sessions) &&
           uv_hrtime() < r->deadline_ns;
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void finish(struct bench_run *r)
{
    struct rusage ru;

    r->t_end_ns = uv_hrtime();
    bench_usage_read(&r->o, &r->after);
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        r->client_cpu_s = (double)ru.ru_utime.tv_sec +
                          (double)ru.ru_stime.tv_sec +
                          (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    if (r->o.mode == MODE_LOOKUP)
        bench_lookup_stop(r);
    close_handle((uv_handle_t *)&r->tick);
    close_handle((uv_handle_t *)&r->hold_timer);
    close_handle((uv_handle_t *)&r->sigint);
    close_handle((uv_handle_t *)&r->sigterm);
}

static void on_hold_over(uv_timer_t *t)
{
    bench_sess_release_held(t->data);
}

/* Hold runs: once every session is open (or none can open any more),
 * reads the server's memory and keeps the sessions for --hold seconds. */
static void hold_check(struct bench_run *r)
{
    if (r->o.hold <= 0 || r->hold_measured || r->opening > 0 || r->held == 0 ||
        bench_may_start(r))
        return;
    r->hold_measured = true;
    bench_usage_read(&r->o, &r->held_usage);
    r->held_count = r->held;
    if (!r->o.quiet)
        fprintf(stderr,
                "tlsgate-bench: %u sessions open and idle, server "
                "RSS %ld KiB; holding %.0f s\n",
                r->held, r->held_usage.rss_kib, r->o.hold);
    uv_timer_start(&r->hold_timer, on_hold_over, (uint64_t)(r->o.hold * 1000),
                   0);
}

void bench_maybe_finish(struct bench_run *r)
{
    hold_check(r);
    if (r->active == 0 && !bench_may_start(r) && !r->finished) {
        r->finished = true;
        finish(r);
    }
}

static void progress(struct bench_run *r)
{
    double t = (double)(uv_hrtime() - r->t0) / 1e9;
    uint64_t errs = 0;

    for (int i = 0; i < ERR_COUNT; i++)
        errs += r->errors[i];
    fprintf(stderr,
            "tlsgate-bench: %5.1fs done=%llu (%llu/s) handshakes=%llu "
            "resumed=%llu errors=%llu active=%u\n",
            t, (unsigned long long)r->done,
            (unsigned long long)(r->done - r->last_done),
            (unsigned long long)r->handshakes, (unsigned long long)r->resumed,
            (unsigned long long)errs, r->active);
    r->last_done = r->done;
}

/* Once a second: progress, per-session timeouts, the hard time bound. */
static void on_tick(uv_timer_t *t)
{
    struct bench_run *r = t->data;
    uint64_t now = uv_hrtime();
    uint64_t hard =
        r->deadline_ns + (uint64_t)((r->o.timeout + r->o.hold + 2) * 1e9);

    if (!r->o.quiet)
        progress(r);
    if (now >= r->deadline_ns && !r->stopping) {
        r->stopping = true;
        hold_check(r);
    }
    if (r->o.mode == MODE_LOOKUP) {
        bench_maybe_finish(r);
        return;
    }
    bench_sess_check_timeouts(r);
    if (now >= hard)
        bench_sess_abort_all(r);
    bench_sess_start_all(r); /* slots whose last connect failed */
    bench_maybe_finish(r);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct bench_run *r = h->data;

    r->interrupted = true;
    r->stopping = true;
    fprintf(stderr, "tlsgate-bench: interrupted, stopping\n");
    if (r->o.mode == MODE_LOOKUP)
        bench_maybe_finish(r);
    else
        bench_sess_abort_all(r);
}

/* Enough descriptors for every slot (hold runs open thousands). */
static void raise_nofile(unsigned need)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need + 64)
        return;
    rl.rlim_cur = need + 64;
    if (rl.rlim_max < rl.rlim_cur)
        rl.rlim_max = rl.rlim_cur; /* works as root, harmless otherwise */
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void start_handles(struct bench_run *r)
{
    uv_timer_init(r->loop, &r->tick);
    uv_timer_init(r->loop, &r->hold_timer);
    r->tick.data = r->hold_timer.data = r;
    uv_timer_start(&r->tick, on_tick, 1000, 1000);
    uv_signal_init(r->loop, &r->sigint);
    uv_signal_init(r->loop, &r->sigterm);
    r->sigint.data = r->sigterm.data = r;
    uv_signal_start(&r->sigint, on_signal, SIGINT);
    uv_signal_start(&r->sigterm, on_signal, SIGTERM);
}

static int run(struct bench_run *r)
{
    r->loop = uv_default_loop();
    start_handles(r);
    bench_usage_read(&r->o, &r->before);
    r->t0 = uv_hrtime();
    r->deadline_ns = r->t0 + (uint64_t)(r->o.duration * 1e9);
    if (r->o.mode == MODE_LOOKUP) {
        if (bench_lookup_start(r) != 0)
            return -1;
    } else {
        bench_sess_start_all(r);
    }
    uv_run(r->loop, UV_RUN_DEFAULT);
    return 0;
}

static void walk_close(uv_handle_t *h, void *arg)
{
    close_handle(h);
}

int main(int argc, char **argv)
{
    static struct bench_run r;
    int rc = 0;

    if (parse_args(&r.o, argc, argv) != 0)
        return 2;
    if (r.o.mode != MODE_LOOKUP && resolve_loopback(&r) != 0)
        return 2;
    if (r.o.hold > 0 && r.o.concurrency < r.o.sessions)
        r.o.concurrency = (unsigned)r.o.sessions; /* all open at once */
    raise_nofile(r.o.concurrency);
    signal(SIGPIPE, SIG_IGN); /* a peer that closes must not kill us */
    if (gnutls_global_init() < 0 ||
        (r.o.mode != MODE_LOOKUP && bench_sess_setup(&r) != 0))
        return 1;
    if (run(&r) != 0)
        rc = 1;
    bench_print_table(&r);
    if (r.o.json_path && bench_write_json(&r, r.o.json_path) != 0)
        rc = 1;
    uv_walk(r.loop, walk_close, NULL);
    uv_run(r.loop, UV_RUN_DEFAULT);
    uv_loop_close(r.loop);
    bench_sess_cleanup(&r);
    bench_lookup_free(&r);
    for (int i = 0; i < PH_COUNT; i++)
        free(r.lat[i].v);
    gnutls_global_deinit();
    if (r.interrupted)
        return 130;
    return rc != 0 ? rc : (r.done == 0 ? 1 : 0);
}
