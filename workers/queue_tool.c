/*
 * tlsgate-queue: the operator's view of the outbound queue. list, show one
 * message (per-recipient status and history), retry now, delete. Changes
 * take the message's lock, so they never race a sender.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "queue.h"

struct tool {
    struct queue *q;
    bool json;
    json_t *list; /* what list collects */
};

static void usage(FILE *to)
{
    fprintf(to, "usage: tlsgate-queue [--state-dir DIR | --queue-dir DIR] "
                "COMMAND\n"
                "  list [--json]        every message, oldest first\n"
                "  show ID [--json]     one message: recipients and history\n"
                "  retry ID|--all       make pending recipients due now\n"
                "  delete ID            remove a message (no bounce)\n");
}

/* t as an ISO 8601 UTC time; 0 ("due now", after a retry) is the current
 * time, so every time field reads the same way. */
static void iso_time(int64_t t, char *buf, size_t n)
{
    time_t tt = t > 0 ? (time_t)t : time(NULL);
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *rcpt_json(const struct queue_rcpt *r)
{
    char next[32];

    iso_time(r->next_try, next, sizeof(next));
    return json_pack("{s:s, s:s, s:I, s:s, s:s}", "recipient", r->addr,
                     "status", queue_state_name(r->state), "attempts",
                     (json_int_t)r->attempts, "next_try",
                     r->state == RCPT_PENDING ? next : "", "reply", r->reply);
}

/*
 * One history line as an object. Delivery attempts are written by
 * tlsgate-smtpout as "TIME RCPT STATUS attempt=N relay=R tls=T level=L
 * reply=TEXT" and operator actions as "TIME operator ACTION"; anything else
 * keeps its text.
 */
static json_t *hist_json(const char *line)
{
    char when[32], who[400], what[64];
    const char *rest, *reply = strstr(line, " reply=");
    long long t = 0;
    int used = 0;
    json_t *o;

    if (sscanf(line, "%lld %399s %63s%n", &t, who, what, &used) != 3)
        return json_pack("{s:s}", "text", line);
    iso_time(t, when, sizeof(when));
    if (strcmp(who, "operator") == 0)
        return json_pack("{s:s, s:s, s:s}", "time", when, "by", "operator",
                         "action", what);
    o = json_pack("{s:s, s:s, s:s}", "time", when, "recipient", who, "status",
                  what);
    for (rest = line + used; *rest == ' ' && rest != reply;) {
        char key[16], val[300];
        int n = 0;
        if (sscanf(rest, " %15[a-z]=%299s%n", key, val, &n) != 2)
            break;
        if (strcmp(key, "attempt") == 0)
            json_object_set_new(o, key, json_integer(atoll(val)));
        else
            json_object_set_new(o, key, json_string(val));
        rest += n;
    }
    if (reply)
        json_object_set_new(o, "reply", json_string(reply + 7));
    return o;
}

/* The whole message as JSON (history included when full). */
static json_t *msg_json(const struct queue_msg *m, bool full)
{
    char created[32];
    json_t *o, *rc = json_array(), *h = json_array();

    iso_time(m->created, created, sizeof(created));
    for (size_t i = 0; i < m->nrcpt; i++)
        json_array_append_new(rc, rcpt_json(&m->rcpt[i]));
    o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o}", "id", m->id, "tenant",
                  m->tenant, "sender", m->sender, "created", created, "size",
                  (json_int_t)m->size, "recipients", rc);
    for (size_t i = 0; full && i < m->nhist; i++)
        json_array_append_new(h, hist_json(m->hist[i]));
    if (full)
        json_object_set_new(o, "history", h);
    else
        json_decref(h);
    return o;
}

static int list_one(const char *id, void *ctx)
{
    struct tool *t = ctx;
    struct queue_msg m;

    if (queue_read(t->q, id, &m) != QUEUE_OK)
        return 0;
    json_array_append_new(t->list, msg_json(&m, false));
    queue_msg_free(&m);
    return 0;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t **)a, "id")),
                  json_string_value(json_object_get(*(json_t **)b, "id")));
}

/* One line of the text listing. */
static void print_line(json_t *m)
{
    json_t *rc = json_object_get(m, "recipients"), *r;
    size_t i, pending = 0;

    json_array_foreach(rc, i, r) pending +=
        strcmp(json_string_value(json_object_get(r, "status")), "pending") == 0;
    printf("%-24s %-20s %8" JSON_INTEGER_FORMAT " %3zu/%-3zu <%s>\n",
           json_string_value(json_object_get(m, "id")),
           json_string_value(json_object_get(m, "created")),
           json_integer_value(json_object_get(m, "size")), pending,
           json_array_size(rc),
           json_string_value(json_object_get(m, "sender")));
}

/* Every message, sorted by id (ids start with their time). */
static int cmd_list(struct tool *t)
{
    json_t *all = json_array(), *sorted = json_array(), **items, *out;
    size_t n;

    t->list = all;
    if (queue_foreach(t->q, list_one, t) < 0)
        return EX_IOERR;
    n = json_array_size(all);
    items = calloc(n + 1, sizeof(*items));
    for (size_t i = 0; i < n; i++)
        items[i] = json_array_get(all, i);
    qsort(items, n, sizeof(*items), by_id);
    for (size_t i = 0; i < n; i++)
        json_array_append(sorted, items[i]);
    free(items);
    json_decref(all);
    if (t->json) {
        out =
            json_pack("{s:o, s:I}", "messages", sorted, "count", (json_int_t)n);
        json_dumpf(out, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(out);
        return 0;
    }
    printf("%-24s %-20s %8s %7s %s\n", "ID", "CREATED", "SIZE", "PENDING",
           "SENDER");
    for (size_t i = 0; i < n; i++)
        print_line(json_array_get(sorted, i));
    printf("%zu message(s)\n", n);
    json_decref(sorted);
    return 0;
}

/* Reads id (or says why not). */
static int load(struct tool *t, const char *id, struct queue_msg *m)
{
    int rc = queue_read(t->q, id, m);

    if (rc == QUEUE_OK)
        return 0;
    fprintf(stderr, "tlsgate-queue: %s: %s\n", id, queue_strerror(rc));
    return rc == QUEUE_ENOENT || rc == QUEUE_EINVAL ? EX_NOINPUT : EX_IOERR;
}

static int cmd_show(struct tool *t, const char *id)
{
    struct queue_msg m;
    json_t *o;
    int rc = load(t, id, &m);

    if (rc != 0)
        return rc;
    if (t->json) {
        o = msg_json(&m, true);
        json_dumpf(o, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(o);
    } else {
        char created[32], next[32];
        iso_time(m.created, created, sizeof(created));
        printf("id: %s\ntenant: %s\nsender: <%s>\ncreated: %s\nsize: %" PRIu64
               "\n",
               m.id, m.tenant, m.sender, created, m.size);
        for (size_t i = 0; i < m.nrcpt; i++) {
            const struct queue_rcpt *r = &m.rcpt[i];
            iso_time(r->next_try, next, sizeof(next));
            printf("recipient: <%s> status=%s attempts=%u next_try=%s "
                   "reply=\"%s\"\n",
                   r->addr, queue_state_name(r->state), r->attempts,
                   r->state == RCPT_PENDING ? next : "-", r->reply);
        }
        for (size_t i = 0; i < m.nhist; i++)
            printf("history: %s\n", m.hist[i]);
    }
    queue_msg_free(&m);
    return 0;
}

/* Changes one message under its lock (waits for a sender to finish). */
static int change(struct tool *t, const char *id, bool remove)
{
    struct queue_msg m;
    int fd, rc = queue_lock(t->q, id, true, &fd);

    if (rc != QUEUE_OK) {
        fprintf(stderr, "tlsgate-queue: %s: %s\n", id, queue_strerror(rc));
        return rc == QUEUE_ENOENT || rc == QUEUE_EINVAL ? EX_NOINPUT : EX_IOERR;
    }
    if ((rc = load(t, id, &m)) != 0) {
        queue_unlock(fd);
        return rc;
    }
    if (remove) {
        rc = queue_remove(t->q, id);
        log_info("id=%s removed reason=operator", id);
    } else {
        for (size_t i = 0; i < m.nrcpt; i++)
            if (m.rcpt[i].state == RCPT_PENDING)
                m.rcpt[i].next_try = 0;
        queue_hist_add(&m, "%" PRId64 " operator retry-now",
                       (int64_t)time(NULL));
        rc = queue_save(t->q, &m);
    }
    queue_msg_free(&m);
    queue_unlock(fd);
    if (rc != QUEUE_OK) {
        fprintf(stderr, "tlsgate-queue: %s: %s: %s\n", id, queue_strerror(rc),
                strerror(errno));
        return EX_IOERR;
    }
    printf("%s: %s\n", id, remove ? "deleted" : "due now");
    return 0;
}

static int retry_one(const char *id, void *ctx)
{
    change(ctx, id, false);
    return 0;
}

/* True when the command words are well formed (checked before the queue
 * is opened, so a usage error is always EX_USAGE). */
static bool cmd_ok(int argc, char **argv)
{
    const char *cmd = argv[1];

    if (strcmp(cmd, "list") == 0)
        return argc == 2;
    if (strcmp(cmd, "show") == 0 || strcmp(cmd, "retry") == 0 ||
        strcmp(cmd, "delete") == 0)
        return argc == 3;
    return false;
}

/* Dispatches the command words left after the settings flags. */
static int run(struct tool *t, int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";
    const char *arg = argc > 2 ? argv[2] : NULL;

    if (strcmp(cmd, "list") == 0 && argc == 2)
        return cmd_list(t);
    if (strcmp(cmd, "show") == 0 && argc == 3)
        return cmd_show(t, arg);
    if (strcmp(cmd, "retry") == 0 && argc == 3 && strcmp(arg, "--all") == 0)
        return queue_foreach(t->q, retry_one, t) < 0 ? EX_IOERR : 0;
    if (strcmp(cmd, "retry") == 0 && argc == 3)
        return change(t, arg, false);
    if (strcmp(cmd, "delete") == 0 && argc == 3)
        return change(t, arg, true);
    usage(stderr);
    return EX_USAGE;
}

/* Takes --json out of argv wherever it is. */
static bool take_json(int *argc, char **argv)
{
    bool found = false;
    int o = 1;

    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            found = true;
        else
            argv[o++] = argv[i];
    }
    *argc = o;
    return found;
}

int main(int argc, char **argv)
{
    struct tg_config cfg;
    struct tool t = {0};
    char err[512];
    int rc;

    log_init("tlsgate-queue", 0);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    t.json = take_json(&argc, argv);
    if (cfg_from_args(&cfg, &argc, argv, err, sizeof(err)) != 0) {
        fprintf(stderr, "tlsgate-queue: %s\n", err);
        return EX_USAGE;
    }
    if (argc < 2 || !cmd_ok(argc, argv)) {
        usage(stderr);
        return EX_USAGE;
    }
    /* Every command reads or changes what is there: create nothing. */
    if ((rc = queue_open_existing(cfg.queue_dir, &t.q)) != QUEUE_OK) {
        fprintf(stderr, "tlsgate-queue: %s: %s\n", cfg.queue_dir,
                rc == QUEUE_ENOENT ? "no queue here (missing folder; check "
                                     "--state-dir / --queue-dir)"
                                   : strerror(errno));
        return EX_IOERR;
    }
    rc = run(&t, argc, argv);
    queue_close(t.q);
    return rc;
}
