/*
 * tlsgate-bench output: a table for people on stdout and one JSON record
 * (jansson) for scripts such as bench/compare.
 */
#include "tlsgate_bench.h"

#include <stdio.h>

#include <jansson.h>

static const char *const mode_names[] = {"starttls", "tls", "deliver", "lookup",
                                         "plain"};

static double elapsed_s(const struct bench_run *r)
{
    uint64_t end = r->t_end_ns ? r->t_end_ns : uv_hrtime();

    return (double)(end - r->t0) / 1e9;
}

/* Server CPU per finished session in ms; < 0 when unknown. */
static double cpu_ms_per_session(const struct bench_run *r)
{
    if (!r->before.ok || !r->after.ok || r->done == 0)
        return -1;
    return (r->after.cpu_s - r->before.cpu_s) * 1000.0 / (double)r->done;
}

static void print_latency(struct bench_run *r)
{
    printf("  %-11s %8s %8s %8s %8s %8s\n", "phase (ms)", "n", "p50", "p90",
           "p99", "max");
    for (int p = 0; p < PH_COUNT; p++) {
        struct bench_samples *s = &r->lat[p];

        if (s->n == 0)
            continue;
        printf("  %-11s %8zu %8.3f %8.3f %8.3f %8.3f\n", bench_phase_name(p),
               s->n, bench_quantile(s, 0.5), bench_quantile(s, 0.9),
               bench_quantile(s, 0.99), bench_quantile(s, 1.0));
    }
}

void bench_print_table(struct bench_run *r)
{
    double t = elapsed_s(r), cpu = cpu_ms_per_session(r);

    printf("tlsgate-bench %s %s:%u concurrency=%u resume=%s%s%s\n",
           mode_names[r->o.mode], r->o.host, r->o.port, r->o.concurrency,
           r->o.resume ? "on" : "off", r->o.label ? " label=" : "",
           r->o.label ? r->o.label : "");
    printf("  sessions    %llu ok, %llu failed in %.2f s: %.1f/s\n",
           (unsigned long long)r->done, (unsigned long long)r->failed, t,
           (double)r->done / t);
    if (r->o.mode != MODE_LOOKUP)
        printf("  handshakes  %llu (%.1f/s), resumed %.1f%%\n",
               (unsigned long long)r->handshakes, (double)r->handshakes / t,
               r->handshakes
                   ? 100.0 * (double)r->resumed / (double)r->handshakes
                   : 0.0);
    if (cpu >= 0 && r->o.server_cgroup)
        printf("  server CPU  %.3f s in cgroup %s: %.3f ms per session\n",
               r->after.cpu_s - r->before.cpu_s, r->o.server_cgroup, cpu);
    else if (cpu >= 0)
        printf("  server CPU  %.3f s in %d processes: %.3f ms per session\n",
               r->after.cpu_s - r->before.cpu_s, r->after.nproc, cpu);
    printf("  client CPU  %.3f s\n", r->client_cpu_s);
    if (r->hold_measured && r->held_count > 0)
        printf("  held        %u idle sessions: server RSS %ld -> %ld KiB, "
               "%.1f KiB per session\n",
               r->held_count, r->before.rss_kib, r->held_usage.rss_kib,
               (double)(r->held_usage.rss_kib - r->before.rss_kib) /
                   r->held_count);
    print_latency(r);
    for (int e = 0; e < ERR_COUNT; e++)
        if (r->errors[e])
            printf("  errors %-9s %llu (first: %s)\n", bench_err_name(e),
                   (unsigned long long)r->errors[e], r->first_error[e]);
}

static json_t *latency_json(struct bench_run *r)
{
    json_t *o = json_object();

    for (int p = 0; p < PH_COUNT; p++) {
        struct bench_samples *s = &r->lat[p];

        if (s->n == 0)
            continue;
        json_object_set_new(
            o, bench_phase_name(p),
            json_pack("{s:I, s:f, s:f, s:f, s:f}", "n", (json_int_t)s->n, "p50",
                      bench_quantile(s, 0.5), "p90", bench_quantile(s, 0.9),
                      "p99", bench_quantile(s, 0.99), "max",
                      bench_quantile(s, 1.0)));
    }
    return o;
}

static json_t *errors_json(struct bench_run *r, bool first)
{
    json_t *o = json_object();

    for (int e = 0; e < ERR_COUNT; e++) {
        if (!r->errors[e])
            continue;
        json_object_set_new(o, bench_err_name(e),
                            first ? json_string(r->first_error[e])
                                  : json_integer((json_int_t)r->errors[e]));
    }
    return o;
}

static json_t *server_json(struct bench_run *r)
{
    double cpu = cpu_ms_per_session(r);

    if (cpu < 0)
        return json_null();
    return json_pack("{s:f, s:f, s:i, s:I, s:I}", "cpu_s",
                     r->after.cpu_s - r->before.cpu_s, "cpu_ms_per_session",
                     cpu, "processes", r->after.nproc, "rss_kib_before",
                     (json_int_t)r->before.rss_kib, "rss_kib_after",
                     (json_int_t)r->after.rss_kib);
}

static json_t *hold_json(struct bench_run *r)
{
    long delta = r->held_usage.rss_kib - r->before.rss_kib;

    if (!r->hold_measured || r->held_count == 0)
        return json_null();
    return json_pack("{s:i, s:I, s:I, s:f}", "sessions", r->held_count,
                     "rss_kib_before", (json_int_t)r->before.rss_kib,
                     "rss_kib_held", (json_int_t)r->held_usage.rss_kib,
                     "bytes_per_session",
                     (double)delta * 1024.0 / r->held_count);
}

static json_t *options_json(struct bench_run *r)
{
    return json_pack("{s:s, s:s, s:i, s:i, s:I, s:f, s:b, s:b, s:s, s:s, s:I}",
                     "mode", mode_names[r->o.mode], "host", r->o.host, "port",
                     (int)r->o.port, "concurrency", (int)r->o.concurrency,
                     "sessions_limit", (json_int_t)r->o.sessions,
                     "duration_limit_s", r->o.duration, "resume", r->o.resume,
                     "nodelay", r->o.nodelay, "cert_type", r->o.cert_type,
                     "group", r->o.group, "size", (json_int_t)r->o.size);
}

int bench_write_json(struct bench_run *r, const char *path)
{
    double t = elapsed_s(r);
    json_t *j = json_pack(
        "{s:o, s:s?, s:f, s:I, s:I, s:f, s:I, s:f, s:I, s:f, s:f}", "options",
        options_json(r), "label", r->o.label, "elapsed_s", t, "sessions",
        (json_int_t)r->done, "failed", (json_int_t)r->failed, "sessions_per_s",
        (double)r->done / t, "handshakes", (json_int_t)r->handshakes,
        "handshakes_per_s", (double)r->handshakes / t, "resumed",
        (json_int_t)r->resumed, "resumed_share",
        r->handshakes ? (double)r->resumed / (double)r->handshakes : 0.0,
        "client_cpu_s", r->client_cpu_s);
    int rc;

    if (!j)
        return -1;
    json_object_set_new(j, "latency_ms", latency_json(r));
    json_object_set_new(j, "errors", errors_json(r, false));
    json_object_set_new(j, "first_errors", errors_json(r, true));
    json_object_set_new(j, "server", server_json(r));
    json_object_set_new(j, "hold", hold_json(r));
    json_object_set_new(j, "interrupted", json_boolean(r->interrupted));
    rc = json_dump_file(j, path, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(j);
    if (rc != 0)
        fprintf(stderr, "tlsgate-bench: cannot write %s\n", path);
    return rc;
}
