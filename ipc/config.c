#include "config.h"

#include "supfds.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define OFF(f)  offsetof(struct tg_config, f)
#define SZ(f)   sizeof(((struct tg_config *)0)->f)
#define S(f)    CFG_STR, OFF(f), SZ(f)
#define P(f)    CFG_PATH, OFF(f), SZ(f)
#define N(t, f) t, OFF(f), 0

/* The one table of settings. docs/config.md is generated from it. */
const struct cfg_key cfg_keys[] = {
    {"state_dir", P(state_dir), "./var", 0, 0,
     "Folder holding every file of a running gateway"},
    {"hostname", S(hostname), "", 0, 0,
     "Name used in SMTP banners, EHLO and Received headers (a DNS name, "
     "stored in lower case); empty: the machine's host name"},
    {"log", S(log_target), "stderr", 0, 0,
     "Where log lines go: stderr or "
     "syslog (facility mail)"},
    {"log_level", S(log_level), "info", 0, 0,
     "Lowest level logged: debug, info, warn or error"},

    {"engine_socket", P(engine_socket), "engine.sock", 0, 0,
     "Unix socket of the policy engine (mode 0660)"},
    {"policy_dir", P(policy_dir), "policy", 0, 0,
     "LMDB policy store (what tlsgate-admin edits)"},
    {"events_dir", P(events_dir), "events", 0, 0,
     "LMDB store of delivery and import outcomes kept for reports"},
    {"engine_map_size", N(CFG_SIZE, engine_map_size), "1g", 1 << 20, 1UL << 40,
     "Largest size of each LMDB store"},
    {"engine_timeout_ms", N(CFG_UINT, engine_timeout_ms), "2000", 10, 600000,
     "How long a worker waits for the engine before it answers "
     "451 4.3.0 (inbound) or defers (outbound), in milliseconds"},
    {"events_retention", N(CFG_DURATION, events_retention), "30d", 3600,
     10UL * 365 * 86400, "How long outcome events are kept"},

    {"tls_dir", P(tls_dir), "tls", 0, 0,
     "Folder of the certificate generated at first start"},
    {"tls_cert", P(tls_cert), "tls/cert.pem", 0, 0,
     "Server certificate chain (PEM); generated when absent"},
    {"tls_key", P(tls_key), "tls/key.pem", 0, 0,
     "Private key of tls_cert (PEM); generated when absent"},
    {"tls_priority", S(tls_priority),
     "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2", 0, 0,
     "GnuTLS priority string for both directions"},
    {"tls_ca_file", S(tls_ca_file), "", 0, 0,
     "CA bundle for verify and secure levels; empty: the system trust "
     "store"},
    {"tls_tickets", N(CFG_BOOL, tls_tickets), "yes", 0, 1,
     "Offer TLS session tickets for resumption"},

    {"inbound_listen", S(inbound_listen), "127.0.0.1:2525 [::1]:2525", 0, 0,
     "Addresses of the inbound SMTP listeners, space separated "
     "(HOST:PORT, [IPV6]:PORT, *:PORT)"},
    {"inbound_workers", N(CFG_UINT, inbound_workers), "0", 0, 256,
     "Inbound receiver processes; 0: one per core"},
    {"mail_dir", P(mail_dir), "mail", 0, 0,
     "Root of the tenants' Maildirs: mail_dir/<tenant>/<mailbox>/"},
    {"max_message_size", N(CFG_SIZE, max_message_size), "25m", 1024, 1UL << 31,
     "Largest message accepted (SIZE), in bytes"},
    {"max_recipients", N(CFG_UINT, max_recipients), "100", 1, 100000,
     "Recipients per message; more get 452 4.5.3"},
    {"max_line_length", N(CFG_UINT, max_line_length), "1000", 512, 65536,
     "Longest command or data line, CRLF included; longer get 500 5.5.2"},
    {"max_connections", N(CFG_UINT, max_connections), "10000", 1, 1000000,
     "Concurrent inbound sessions per receiver process"},
    {"max_connections_per_ip", N(CFG_UINT, max_connections_per_ip), "100", 1,
     1000000,
     "Concurrent inbound sessions from one client address, per "
     "receiver process"},
    {"max_errors", N(CFG_UINT, max_errors), "10", 1, 1000,
     "Errors in one session before it is closed"},
    {"command_timeout", N(CFG_DURATION, command_timeout), "5m", 1, 86400,
     "Idle time allowed while waiting for a command"},
    {"data_timeout", N(CFG_DURATION, data_timeout), "10m", 1, 86400,
     "Idle time allowed while receiving message data"},
    {"handshake_timeout", N(CFG_DURATION, handshake_timeout), "30s", 1, 3600,
     "Time allowed for a TLS handshake"},
    {"session_timeout", N(CFG_DURATION, session_timeout), "1h", 1, 86400,
     "Longest inbound session"},
    {"shutdown_grace", N(CFG_DURATION, shutdown_grace), "30s", 0, 3600,
     "On stop, how long running sessions may finish"},

    {"submission_listen", S(submission_listen), "127.0.0.1:2587", 0, 0,
     "Addresses of the submission SMTP listeners, space separated "
     "(HOST:PORT, [IPV6]:PORT, *:PORT)"},
    {"queue_dir", P(queue_dir), "queue", 0, 0, "Durable outbound queue"},
    {"outbound_workers", N(CFG_UINT, outbound_workers), "0", 0, 256,
     "Outbound sender processes; 0: one per core"},
    {"queue_lifetime", N(CFG_DURATION, queue_lifetime), "5d", 60, 365UL * 86400,
     "How long a message is retried before it bounces"},
    {"retry_min", N(CFG_DURATION, retry_min), "5m", 1, 86400,
     "First retry delay; each retry doubles it"},
    {"retry_max", N(CFG_DURATION, retry_max), "4h", 1, 7 * 86400,
     "Longest delay between retries"},
    {"connect_timeout", N(CFG_DURATION, connect_timeout), "30s", 1, 600,
     "Outbound TCP connect and banner timeout"},
    {"max_per_destination", N(CFG_UINT, max_per_destination), "20", 1, 10000,
     "Concurrent outbound connections to one next hop, per sender process"},
    {"max_per_connection", N(CFG_UINT, max_per_connection), "100", 1, 100000,
     "Messages sent over one outbound connection before it is closed"},

    {"restart_delay_max", N(CFG_DURATION, restart_delay_max), "60s", 1, 3600,
     "Longest delay before the supervisor restarts a child that keeps "
     "dying"},
    {"restart_stable", N(CFG_DURATION, restart_stable), "30s", 1, 86400,
     "How long a child must run before its next restart waits only 0.5 s "
     "again"},
    {NULL, 0, 0, 0, NULL, 0, 0, NULL},
};

static const struct cfg_key *find_key(const char *name)
{
    char norm[64];
    size_t i;

    for (i = 0; name[i] && i + 1 < sizeof(norm); i++)
        norm[i] = name[i] == '-' ? '_' : name[i];
    norm[i] = '\0';
    for (const struct cfg_key *k = cfg_keys; k->name; k++)
        if (strcmp(k->name, norm) == 0)
            return k;
    return NULL;
}

static int parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return *out = 1, 0;
        if (strcasecmp(v, no[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

/* A whole number with an optional unit suffix from units (factor table). */
static int parse_number(const char *v, enum cfg_type type, unsigned long *out)
{
    unsigned long long n, mul = 1;
    char *end;

    if (!isdigit((unsigned char)*v))
        return -1;
    errno = 0;
    n = strtoull(v, &end, 10);
    if (errno != 0)
        return -1;
    if (type == CFG_SIZE && *end) {
        switch (tolower((unsigned char)*end++)) {
        case 'k':
            mul = 1024ULL;
            break;
        case 'm':
            mul = 1024ULL * 1024;
            break;
        case 'g':
            mul = 1024ULL * 1024 * 1024;
            break;
        default:
            return -1;
        }
        if (*end == 'b' || *end == 'B')
            end++;
    } else if (type == CFG_DURATION && *end) {
        switch (*end++) {
        case 's':
            mul = 1;
            break;
        case 'm':
            mul = 60;
            break;
        case 'h':
            mul = 3600;
            break;
        case 'd':
            mul = 86400;
            break;
        default:
            return -1;
        }
    }
    if (*end != '\0' || n > ULONG_MAX / mul)
        return -1;
    *out = (unsigned long)(n * mul);
    return 0;
}

/* A DNS name: letters, digits and hyphens in dot-separated labels of 1 to
 * 63 characters, 253 in all; lowered in place. Returns 0 or -1. */
static int check_hostname(char *name, char *err, size_t errlen)
{
    size_t label = 0, len = strlen(name);

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];

        if (c == '.') {
            if (label == 0)
                break;
            label = 0;
            continue;
        }
        if (!isalnum(c) && c != '-')
            break;
        if (++label > 63)
            break;
        name[i] = (char)tolower(c);
        if (i + 1 == len && label > 0 && len <= 253)
            return 0;
    }
    snprintf(err, errlen,
             "hostname: '%.64s' is not a DNS name (letters, digits, hyphens "
             "and dots, labels of 1 to 63 characters, 253 in all)",
             name);
    return -1;
}

/* A space-separated list of HOST:PORT / [V6]:PORT / *:PORT addresses. */
static int check_listen(const char *key, const char *list, char *err,
                        size_t errlen)
{
    struct sockaddr_storage ss;
    char word[128], why[200];
    unsigned len, count = 0;

    for (const char *p = list + strspn(list, " \t"); *p;) {
        size_t n = strcspn(p, " \t");

        if (n >= sizeof(word) || ++count > SUP_MAX_LISTENERS) {
            snprintf(err, errlen, "%s: address too long or more than %d", key,
                     SUP_MAX_LISTENERS);
            return -1;
        }
        memcpy(word, p, n);
        word[n] = '\0';
        if (sup_parse_addr(word, &ss, &len, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "%s: %s", key, why);
            return -1;
        }
        p += n;
        p += strspn(p, " \t");
    }
    return 0;
}

/* Settings whose text has a fixed form: checked after they are stored. */
static int check_text(struct tg_config *cfg, const struct cfg_key *k, char *err,
                      size_t errlen)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};

    if (k->offset == OFF(hostname) && cfg->hostname[0])
        return check_hostname(cfg->hostname, err, errlen);
    if (k->offset == OFF(log_target) && strcmp(cfg->log_target, "stderr") &&
        strcmp(cfg->log_target, "syslog")) {
        snprintf(err, errlen, "log: '%s' is not stderr or syslog",
                 cfg->log_target);
        return -1;
    }
    if (k->offset == OFF(log_level)) {
        for (size_t i = 0; i < 4; i++)
            if (strcmp(cfg->log_level, levels[i]) == 0)
                return 0;
        snprintf(err, errlen,
                 "log_level: '%s' is not debug, info, warn or error",
                 cfg->log_level);
        return -1;
    }
    if (k->offset == OFF(inbound_listen) || k->offset == OFF(submission_listen))
        return check_listen(k->name, (char *)cfg + k->offset, err, errlen);
    return 0;
}

int cfg_set(struct tg_config *cfg, const char *key, const char *value,
            char *err, size_t errlen)
{
    const struct cfg_key *k = find_key(key);
    char *field;
    unsigned long n;
    int b;

    if (k == NULL) {
        snprintf(err, errlen, "unknown setting '%s'", key);
        return -1;
    }
    field = (char *)cfg + k->offset;
    switch (k->type) {
    case CFG_STR:
    case CFG_PATH:
        if (strlen(value) >= k->size || strpbrk(value, "\r\n")) {
            snprintf(err, errlen, "%s: value too long or has a line break",
                     k->name);
            return -1;
        }
        if (k->type == CFG_STR) {
            char old[CFG_STR_MAX];

            snprintf(old, sizeof(old), "%s", field);
            memcpy(field, value, strlen(value) + 1);
            if (check_text(cfg, k, err, errlen) < 0) {
                memcpy(field, old, strlen(old) + 1);
                return -1;
            }
            return 0;
        }
        memcpy(field, value, strlen(value) + 1);
        return 0;
    case CFG_BOOL:
        if (parse_bool(value, &b) < 0) {
            snprintf(err, errlen, "%s: '%s' is not yes or no", k->name, value);
            return -1;
        }
        *(int *)field = b;
        return 0;
    default:
        if (parse_number(value, k->type, &n) < 0 || n < k->min || n > k->max) {
            snprintf(err, errlen, "%s: '%s' is not a number from %lu to %lu",
                     k->name, value, k->min, k->max);
            return -1;
        }
        *(unsigned long *)field = n;
        return 0;
    }
}

void cfg_defaults(struct tg_config *cfg)
{
    char err[128];

    memset(cfg, 0, sizeof(*cfg));
    for (const struct cfg_key *k = cfg_keys; k->name; k++)
        if (cfg_set(cfg, k->name, k->def, err, sizeof(err)) < 0)
            abort(); /* a default that does not parse is a bug */
}

struct line_reader {
    FILE *f;
    int lineno;
    int bad_line;    /* a line refused before inih saw it */
    const char *why; /* NULL: the line is too long */
};

#define CFG_MAX_KEYS 128

struct ini_ctx {
    struct tg_config *cfg;
    char *err;
    size_t errlen;
    int failed;
    const struct line_reader *reader;
    int set_on[CFG_MAX_KEYS]; /* line where each key was set, 0: not yet */
};

/* inih stops at the first line this refuses and returns its number. */
static int on_ini_line(void *user, const char *section, const char *name,
                       const char *value)
{
    struct ini_ctx *ctx = user;
    const struct cfg_key *k = find_key(name);
    char why[256];
    size_t i;

    (void)section;
    if (ctx->failed)
        return 0;
    i = k ? (size_t)(k - cfg_keys) : 0;
    if (k && i < CFG_MAX_KEYS && ctx->set_on[i]) {
        snprintf(ctx->err, ctx->errlen, "'%s' is already set on line %d",
                 k->name, ctx->set_on[i]);
        ctx->failed = 1;
        return 0;
    }
    if (k && i < CFG_MAX_KEYS)
        ctx->set_on[i] = ctx->reader->lineno;
    if (cfg_set(ctx->cfg, name, value, why, sizeof(why)) < 0) {
        snprintf(ctx->err, ctx->errlen, "%s", why);
        ctx->failed = 1;
        return 0;
    }
    return 1;
}

/* inih reader: one line at a time with its leading blanks removed, so that
 * an indented line is never taken for the continuation of the previous
 * value; a line too long for inih's buffer or a [section] stops the parse
 * (a long line must not be split in two). */
static char *read_line(char *buf, int size, void *stream)
{
    struct line_reader *r = stream;
    char *line = NULL;
    size_t cap = 0, len;
    ssize_t got;
    const char *p;

    got = getline(&line, &cap, r->f);
    if (got < 0) {
        free(line);
        return NULL;
    }
    r->lineno++;
    p = line + strspn(line, " \t");
    len = strlen(p);
    if (len + 1 >= (size_t)size || p[0] == '[' || strlen(line) != (size_t)got) {
        r->bad_line = r->lineno;
        r->why = p[0] == '['                   ? "sections are not used"
                 : strlen(line) != (size_t)got ? "has a NUL byte"
                                               : NULL;
        free(line);
        return NULL;
    }
    memcpy(buf, p, len + 1);
    free(line);
    return buf;
}

int cfg_load_file(struct tg_config *cfg, const char *path, char *err,
                  size_t errlen)
{
    struct line_reader r = {fopen(path, "re"), 0, 0, NULL};
    struct ini_ctx ctx = {cfg, err, errlen, 0, &r, {0}};
    char why[300];
    int rc;

    if (r.f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    rc = ini_parse_stream(read_line, &r, on_ini_line, &ctx);
    fclose(r.f);
    if (ctx.failed) {
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errlen, "%s: line %d: %s", path, rc, why);
        return -1;
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s: line %d: not 'key = value'", path, rc);
        return -1;
    }
    if (r.bad_line && r.why) {
        snprintf(err, errlen, "%s: line %d: %s", path, r.bad_line, r.why);
        return -1;
    }
    if (r.bad_line) {
        /* inih's buffer holds the text, a newline and a NUL. */
        snprintf(err, errlen, "%s: line %d: longer than %d characters", path,
                 r.bad_line, INI_MAX_LINE - 3);
        return -1;
    }
    return 0;
}

/* Splits "--key=value" or "--key value"; returns args consumed, 0 if the
 * argument is not a setting. */
static int take_setting(struct tg_config *cfg, int argc, char **argv, int i,
                        char *err, size_t errlen, int *failed)
{
    char name[64];
    const char *arg, *eq, *value;
    size_t len;

    if (strncmp(argv[i], "--", 2) != 0)
        return 0;
    arg = argv[i] + 2;
    eq = strchr(arg, '=');
    len = eq ? (size_t)(eq - arg) : strlen(arg);
    if (len == 0 || len >= sizeof(name))
        return 0;
    memcpy(name, arg, len);
    name[len] = '\0';
    if (find_key(name) == NULL)
        return 0;
    if (eq == NULL && i + 1 >= argc) {
        snprintf(err, errlen, "--%s needs a value", name);
        *failed = 1;
        return 1;
    }
    value = eq ? eq + 1 : argv[i + 1];
    if (cfg_set(cfg, name, value, err, errlen) < 0)
        *failed = 1;
    return eq ? 1 : 2;
}

int cfg_from_args(struct tg_config *cfg, int *argc, char **argv, char *err,
                  size_t errlen)
{
    int i, out = 1, failed = 0, used;

    cfg_defaults(cfg);

    /* The file first, so that flags override it wherever they stand. */
    for (i = 1; i < *argc; i++) {
        const char *file = NULL;

        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= *argc) {
                snprintf(err, errlen, "--config needs a file name");
                return -1;
            }
            file = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0)
            file = argv[i] + 9;
        if (file && cfg_load_file(cfg, file, err, errlen) < 0)
            return -1;
    }

    for (i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < *argc) {
            i++;
            continue;
        }
        if (strncmp(argv[i], "--config=", 9) == 0)
            continue;
        used = take_setting(cfg, *argc, argv, i, err, errlen, &failed);
        if (failed)
            return -1;
        if (used > 0) {
            i += used - 1;
            continue;
        }
        argv[out++] = argv[i];
    }
    argv[out] = NULL;
    *argc = out;
    return cfg_finish(cfg, err, errlen);
}

static int resolve_path(char *field, size_t size, const char *base,
                        const char *name, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    const char *rel = field;
    int n;

    if (field[0] == '\0' || field[0] == '/')
        return 0;
    while (rel[0] == '.' && rel[1] == '/')
        rel += 2; /* "./var" under /srv is /srv/var */
    n = snprintf(tmp, sizeof(tmp), "%s/%s", base, rel);
    if (n < 0 || (size_t)n >= size) {
        snprintf(err, errlen, "%s: path too long", name);
        return -1;
    }
    memcpy(field, tmp, (size_t)n + 1);
    return 0;
}

int cfg_finish(struct tg_config *cfg, char *err, size_t errlen)
{
    char cwd[PATH_MAX];

    if (cfg->state_dir[0] != '/') {
        if (getcwd(cwd, sizeof(cwd)) == NULL) {
            snprintf(err, errlen, "getcwd: %s", strerror(errno));
            return -1;
        }
        if (resolve_path(cfg->state_dir, sizeof(cfg->state_dir), cwd,
                         "state_dir", err, errlen) < 0)
            return -1;
    }
    for (const struct cfg_key *k = cfg_keys; k->name; k++) {
        if (k->type != CFG_PATH || k->offset == OFF(state_dir))
            continue;
        if (resolve_path((char *)cfg + k->offset, k->size, cfg->state_dir,
                         k->name, err, errlen) < 0)
            return -1;
    }
    if (cfg->hostname[0] == '\0') {
        /* The machine's name, lowered; "localhost" if it is no DNS name. */
        if (gethostname(cfg->hostname, sizeof(cfg->hostname) - 1) < 0 ||
            check_hostname(cfg->hostname, err, errlen) < 0)
            snprintf(cfg->hostname, sizeof(cfg->hostname), "localhost");
    }
    /* A struct filled without cfg_set is checked here too. */
    for (const struct cfg_key *k = cfg_keys; k->name; k++)
        if (k->type == CFG_STR && check_text(cfg, k, err, errlen) < 0)
            return -1;
    return 0;
}

static void format_value(const struct tg_config *cfg, const struct cfg_key *k,
                         char *buf, size_t n)
{
    const char *field = (const char *)cfg + k->offset;

    if (k->type == CFG_STR || k->type == CFG_PATH)
        snprintf(buf, n, "%s", field);
    else if (k->type == CFG_BOOL)
        snprintf(buf, n, "%s", *(const int *)field ? "yes" : "no");
    else
        snprintf(buf, n, "%lu", *(const unsigned long *)field);
}

int cfg_to_args(const struct tg_config *cfg, char **out, int n)
{
    char value[PATH_MAX];
    int count = 0;

    for (const struct cfg_key *k = cfg_keys; k->name; k++) {
        if (count >= n)
            return -1;
        format_value(cfg, k, value, sizeof(value));
        if (asprintf(&out[count], "--%s=%s", k->name, value) < 0)
            return -1;
        count++;
    }
    return count;
}

void cfg_print_markdown(FILE *out)
{
    static const char *const type_names[] = {"text", "path",     "number",
                                             "size", "duration", "boolean"};

    fprintf(out, "| key | type | default | meaning |\n");
    fprintf(out, "|---|---|---|---|\n");
    for (const struct cfg_key *k = cfg_keys; k->name; k++)
        fprintf(out, "| `%s` | %s | `%s` | %s |\n", k->name,
                type_names[k->type], k->def[0] ? k->def : "(empty)",
                k->meaning);
}

unsigned cfg_workers(unsigned long setting)
{
    long n;

    if (setting > 0)
        return (unsigned)setting;
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}
