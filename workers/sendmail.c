/*
 * tlsgate-sendmail: queues one message from stdin for a tenant, following
 * the sendmail command-line conventions. Exit status per sysexits.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "config.h"
#include "log.h"
#include "queue.h"
#include "queue_text.h"
#include "store.h"

struct sm_opts {
    const char *tenant;
    const char *sender; /* -f; NULL: the tenant's From */
    const char *fullname;
    bool extract; /* -t */
    bool dot_ends;
    int nargs; /* recipients on the command line */
    char **args;
};

static bool to_syslog; /* log_target = syslog */

struct sm_rcpts {
    struct queue_msg *m;
    int err; /* first bad address: EX_DATAERR */
    char bad[128];
};

static void usage(void)
{
    fprintf(stderr,
            "usage: tlsgate-sendmail [--state-dir DIR | --KEY VALUE...] "
            "-T|--tenant NAME\n"
            "       [-f SENDER] [-F FULLNAME] [-t] [-i|-oi] [--] "
            "[RECIPIENT...] < message\n");
}

/* The value of an option given as "-xVALUE" or "-x VALUE". */
static const char *opt_value(int argc, char **argv, int *i)
{
    if (argv[*i][2])
        return argv[*i] + 2;
    if (*i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

/* Options that take a value and are accepted but ignored. */
static bool ignored_with_value(char c)
{
    return c == 'B' || c == 'N' || c == 'R' || c == 'V' || c == 'L' || c == 'O';
}

/* One option at argv[*i]. Returns 0, 1 when it said what is wrong, or
 * EX_USAGE for an unknown option (the caller says so). */
static int parse_one(struct sm_opts *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i];

    if (strcmp(a, "--tenant") == 0 && *i + 1 < argc)
        return o->tenant = argv[++*i], 0;
    if (strcmp(a, "--tenant") == 0) {
        fprintf(stderr, "tlsgate-sendmail: option --tenant needs a value "
                        "(the tenant name)\n");
        return 1;
    }
    if (strncmp(a, "--tenant=", 9) == 0)
        return o->tenant = a + 9, 0;
    if (strcmp(a, "-t") == 0)
        return o->extract = true, 0;
    if (strcmp(a, "-i") == 0 || strcmp(a, "-oi") == 0)
        return o->dot_ends = false, 0;
    if (a[1] == 'T' || a[1] == 'f' || a[1] == 'r' || a[1] == 'F') {
        const char *v = opt_value(argc, argv, i);
        if (!v) {
            fprintf(stderr, "tlsgate-sendmail: option -%c needs a value%s\n",
                    a[1], a[1] == 'T' ? " (the tenant name)" : "");
            return 1;
        }
        if (a[1] == 'T')
            o->tenant = v;
        else if (a[1] == 'F')
            o->fullname = v;
        else
            o->sender = v;
        return 0;
    }
    if (ignored_with_value(a[1]))
        return opt_value(argc, argv, i) ? 0 : EX_USAGE;
    /* -odi -odb -oem -oee -om -bm -U -v: harmless, ignored */
    if (a[1] == 'o' || strcmp(a, "-bm") == 0 || strcmp(a, "-U") == 0 ||
        strcmp(a, "-v") == 0)
        return 0;
    return EX_USAGE;
}

/* Parses the sendmail options left after cfg_from_args. */
static int parse_opts(struct sm_opts *o, int argc, char **argv)
{
    int i;

    o->dot_ends = true;
    for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        int rc = parse_one(o, argc, argv, &i);
        if (rc == EX_USAGE)
            fprintf(stderr, "tlsgate-sendmail: bad option: %s\n", argv[i]);
        if (rc != 0)
            return EX_USAGE;
    }
    o->nargs = argc - i;
    o->args = argv + i;
    if (!o->tenant) {
        fprintf(stderr, "tlsgate-sendmail: the tenant is required "
                        "(-T NAME or --tenant NAME)\n");
        return EX_USAGE;
    }
    if (!store_tenant_name_ok(o->tenant)) {
        fprintf(stderr,
                "tlsgate-sendmail: malformed tenant name \"%s\" (lower-case "
                "letters, digits and '-', up to 63)\n",
                o->tenant);
        return EX_USAGE;
    }
    return 0;
}

/* Adds one recipient (parsed, normalised) to the envelope. */
static int add_rcpt(const char *text, void *ctx)
{
    struct sm_rcpts *r = ctx;
    struct queue_msg *m = r->m;
    struct queue_rcpt *grown;
    struct addr a;

    if (addr_parse(text, &a) != ADDR_OK || a.full[0] == '\0') {
        r->err = EX_DATAERR;
        log_escape(r->bad, sizeof(r->bad), text);
        return 1;
    }
    for (size_t i = 0; i < m->nrcpt; i++)
        if (strcmp(m->rcpt[i].addr, a.full) == 0)
            return 0;
    if (m->nrcpt >= QUEUE_RCPT_MAX) {
        r->err = EX_DATAERR;
        snprintf(r->bad, sizeof(r->bad), "too many recipients");
        return 1;
    }
    grown = realloc(m->rcpt, (m->nrcpt + 1) * sizeof(*grown));
    if (!grown)
        return r->err = EX_OSERR, 1;
    m->rcpt = grown;
    memset(&m->rcpt[m->nrcpt], 0, sizeof(*grown));
    snprintf(m->rcpt[m->nrcpt++].addr, sizeof(grown->addr), "%s", a.full);
    return 0;
}

static int add_header_rcpts(const char *value, void *ctx)
{
    int rc = queue_text_addresses(value, add_rcpt, ctx);

    if (rc < 0) {
        struct sm_rcpts *r = ctx;
        r->err = EX_DATAERR;
        log_escape(r->bad, sizeof(r->bad), value);
        return 1;
    }
    return rc;
}

/* Collects the recipients: arguments, then To/Cc/Bcc with -t. */
static int collect_rcpts(const struct sm_opts *o, const char *msg, size_t len,
                         struct queue_msg *m)
{
    static const char *const fields[] = {"To", "Cc", "Bcc"};
    struct sm_rcpts r = {.m = m};
    size_t hlen = queue_text_header_len(msg, len);

    for (int i = 0; i < o->nargs && !r.err; i++)
        if (queue_text_addresses(o->args[i], add_rcpt, &r) < 0 && !r.err) {
            r.err = EX_DATAERR;
            log_escape(r.bad, sizeof(r.bad), o->args[i]);
        }
    for (int i = 0; o->extract && i < 3 && !r.err; i++)
        queue_text_each_header(msg, hlen, fields[i], add_header_rcpts, &r);
    if (r.err) {
        fprintf(stderr, "tlsgate-sendmail: bad recipient address: %s\n", r.bad);
        return r.err;
    }
    if (m->nrcpt == 0) {
        fprintf(stderr, "tlsgate-sendmail: no recipients%s\n",
                o->extract ? " found in the message headers" : " given");
        return o->extract ? EX_DATAERR : EX_USAGE;
    }
    return 0;
}

/* Looks the tenant up in the policy store (read-only). */
static int find_tenant(const struct tg_config *cfg, const char *name,
                       struct tenant_info *t)
{
    struct store *st = NULL;
    struct store_txn *txn = NULL;
    int rc;

    rc = store_open(&st, cfg->policy_dir, 0, STORE_RDONLY);
    if (rc == 0)
        rc = store_begin(st, false, &txn);
    if (rc == 0) {
        rc = store_tenant_get(txn, name, t);
        store_abort(txn);
    }
    if (st)
        store_close(st);
    if (rc == STORE_ENOTFOUND) {
        fprintf(stderr, "tlsgate-sendmail: no such tenant: %s\n", name);
        return EX_NOUSER;
    }
    if (rc != 0) {
        fprintf(stderr, "tlsgate-sendmail: policy store %s: %s\n",
                cfg->policy_dir, store_strerror(rc));
        return EX_TEMPFAIL;
    }
    return 0;
}

/* Reads all of stdin, at most max bytes. EX_DATAERR when larger. */
static int read_stdin(size_t max, char **out, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);

    while (buf) {
        ssize_t r;
        if (n == cap) {
            char *grown = cap > max ? NULL : realloc(buf, cap * 2);
            if (!grown)
                break;
            buf = grown;
            cap *= 2;
        }
        r = read(STDIN_FILENO, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            *out = buf;
            *len = n;
            return r == 0 && n <= max ? 0 : r < 0 ? EX_IOERR : EX_DATAERR;
        }
        n += (size_t)r;
    }
    free(buf);
    return n > max ? EX_DATAERR : EX_OSERR;
}

/* Fills the envelope sender: -f, else the tenant's From. */
static int set_sender(const struct sm_opts *o, const struct tenant_info *t,
                      struct queue_msg *m)
{
    struct addr a;

    if (!o->sender || !o->sender[0]) {
        snprintf(m->sender, sizeof(m->sender), "%s", t->from);
        return 0;
    }
    if (strcmp(o->sender, "<>") == 0) {
        m->sender[0] = '\0';
        return 0;
    }
    if (addr_parse(o->sender, &a) != ADDR_OK) {
        fprintf(stderr, "tlsgate-sendmail: bad sender address: %s\n",
                o->sender);
        return EX_DATAERR;
    }
    snprintf(m->sender, sizeof(m->sender), "%s", a.full);
    return 0;
}

/* Normalises the line endings and checks the size. */
static int normalise(const struct tg_config *cfg, const struct sm_opts *o,
                     char **msg, size_t *len)
{
    char *raw = *msg;
    int rc = queue_text_crlf(raw, *len, o->dot_ends, msg, len);

    free(raw);
    if (rc != QTEXT_OK) {
        *msg = NULL;
        fprintf(stderr, "tlsgate-sendmail: %s\n",
                rc == QTEXT_ELINE ? "a line is longer than 998 octets"
                                  : "out of memory");
        return rc == QTEXT_ELINE ? EX_DATAERR : EX_OSERR;
    }
    if (*len > cfg->max_message_size) {
        fprintf(stderr, "tlsgate-sendmail: message larger than %lu bytes\n",
                cfg->max_message_size);
        return EX_DATAERR;
    }
    return 0;
}

/* Strips Bcc (with -t) and adds Received and the missing headers. */
static int finish_text(const struct tg_config *cfg, const struct sm_opts *o,
                       const struct tenant_info *t, char **msg, size_t *len)
{
    char received[512], date[64];
    const char *dom = strrchr(t->from, '@');
    time_t now = time(NULL);
    struct tm tm;
    int rc;

    localtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
    snprintf(received, sizeof(received),
             "Received: by %s (tlsgate-sendmail, uid %u, tenant %s);\r\n\t%s",
             cfg->hostname, (unsigned)getuid(), t->name, date);
    if (o->extract)
        *len = queue_text_strip_header(*msg, *len, "Bcc");
    rc = queue_text_complete(msg, len, received, t->from, o->fullname,
                             dom ? dom + 1 : cfg->hostname);
    return rc == QTEXT_OK ? 0 : EX_OSERR;
}

/* Writes the message durably into the queue and logs it. */
static int enqueue(const struct tg_config *cfg, struct queue_msg *m,
                   const char *msg, size_t len)
{
    struct queue *q;
    char s[ADDR_MAX * 4];
    int rc = queue_open(cfg->queue_dir, &q);

    if (rc == QUEUE_OK) {
        rc = queue_submit(q, m, msg, len);
        queue_close(q);
    }
    if (rc != QUEUE_OK) {
        fprintf(stderr, "tlsgate-sendmail: queue %s: %s: %s\n", cfg->queue_dir,
                queue_strerror(rc), strerror(errno));
        return EX_TEMPFAIL;
    }
    /* Callers expect silence on success: the queue line is debug on
     * stderr, info only when the config sends the log to syslog. */
    log_msg(to_syslog ? LOG_LVL_INFO : LOG_LVL_DEBUG,
            "id=%s queued tenant=%s from=<%s> nrcpt=%zu size=%zu "
            "source=sendmail uid=%u",
            m->id, m->tenant, log_escape(s, sizeof(s), m->sender), m->nrcpt,
            len, (unsigned)getuid());
    return 0;
}

/* Everything after option parsing; returns the exit status. */
static int run(const struct tg_config *cfg, const struct sm_opts *o)
{
    struct tenant_info t;
    struct queue_msg m = {0};
    char *msg = NULL;
    size_t len = 0;
    int rc = find_tenant(cfg, o->tenant, &t);

    if (rc == 0 && (rc = read_stdin(cfg->max_message_size, &msg, &len)))
        fprintf(stderr, "tlsgate-sendmail: %s\n",
                rc == EX_DATAERR ? "message too large" : strerror(errno));
    if (rc == 0)
        rc = normalise(cfg, o, &msg, &len);
    if (rc == 0)
        rc = collect_rcpts(o, msg, len, &m);
    if (rc == 0)
        rc = finish_text(cfg, o, &t, &msg, &len);
    if (rc == 0)
        rc = set_sender(o, &t, &m);
    if (rc == 0) {
        snprintf(m.tenant, sizeof(m.tenant), "%s", t.name);
        snprintf(m.tenant_from, sizeof(m.tenant_from), "%s", t.from);
        rc = enqueue(cfg, &m, msg, len);
    }
    free(msg);
    queue_msg_free(&m);
    return rc;
}

/* The log level setting by name (info when unknown). */
static enum log_level level_of(const char *name)
{
    if (strcmp(name, "debug") == 0)
        return LOG_LVL_DEBUG;
    if (strcmp(name, "warn") == 0)
        return LOG_LVL_WARN;
    return strcmp(name, "error") == 0 ? LOG_LVL_ERR : LOG_LVL_INFO;
}

int main(int argc, char **argv)
{
    struct tg_config cfg;
    struct sm_opts o = {0};
    char err[512];
    int rc;

    log_init("tlsgate-sendmail", 0);
    if (argc > 1 &&
        (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage();
        return 0;
    }
    if (cfg_from_args(&cfg, &argc, argv, err, sizeof(err)) != 0) {
        fprintf(stderr, "tlsgate-sendmail: %s\n", err);
        return EX_USAGE;
    }
    to_syslog = strcmp(cfg.log_target, "syslog") == 0;
    if (to_syslog)
        log_init("tlsgate-sendmail", 1);
    log_set_level(level_of(cfg.log_level));
    rc = parse_opts(&o, argc, argv);
    if (rc != 0) {
        usage();
        return rc;
    }
    return run(&cfg, &o);
}
