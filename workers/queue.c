#include "queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define RECORD_MAGIC "tlsgate-queue 1"
#define LINE_MAX_LEN 4096
#define ORPHAN_AGE   3600

struct queue {
    char dir[4096];
    int tmp_fd, msg_fd, env_fd; /* folder fds, for fsync and *at calls */
};

static int open_sub(const char *dir, const char *sub, bool create)
{
    char path[4200];

    snprintf(path, sizeof(path), "%s/%s", dir, sub);
    if (create && mkdir(path, 0700) != 0 && errno != EEXIST)
        return -1;
    return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Opens the queue folder, creating what is missing only when create. */
static int queue_open_mode(const char *dir, bool create, struct queue **out)
{
    struct queue *q = calloc(1, sizeof(*q));

    if (!q)
        return QUEUE_ENOMEM;
    snprintf(q->dir, sizeof(q->dir), "%s", dir);
    q->tmp_fd = q->msg_fd = q->env_fd = -1;
    if (create && mkdir(dir, 0700) != 0 && errno != EEXIST) {
        free(q);
        return QUEUE_EIO;
    }
    q->tmp_fd = open_sub(dir, "tmp", create);
    q->msg_fd = open_sub(dir, "msg", create);
    q->env_fd = open_sub(dir, "env", create);
    if (q->tmp_fd < 0 || q->msg_fd < 0 || q->env_fd < 0) {
        int saved = errno;
        queue_close(q);
        errno = saved;
        return !create && saved == ENOENT ? QUEUE_ENOENT : QUEUE_EIO;
    }
    *out = q;
    return QUEUE_OK;
}

int queue_open(const char *dir, struct queue **out)
{
    return queue_open_mode(dir, true, out);
}

int queue_open_existing(const char *dir, struct queue **out)
{
    return queue_open_mode(dir, false, out);
}

void queue_close(struct queue *q)
{
    if (!q)
        return;
    if (q->tmp_fd >= 0)
        close(q->tmp_fd);
    if (q->msg_fd >= 0)
        close(q->msg_fd);
    if (q->env_fd >= 0)
        close(q->env_fd);
    free(q);
}

const char *queue_dir(const struct queue *q)
{
    return q->dir;
}

/* Base-32 digits of v, most significant first, exactly n of them. */
static void put_b32(char *dst, uint64_t v, int n)
{
    static const char digits[] = "0123456789ABCDEFGHJKLMNPQRSTVWXY";

    for (int i = n - 1; i >= 0; i--, v >>= 5)
        dst[i] = digits[v & 31];
}

void queue_new_id(char *id, size_t idlen)
{
    static unsigned counter;
    struct timeval tv;
    unsigned r = 0;
    int fd;
    char buf[24];

    gettimeofday(&tv, NULL);
    fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &r, sizeof(r)) != sizeof(r))
            r = 0;
        close(fd);
    }
    /* time (sortable), microseconds, pid, counter + randomness */
    put_b32(buf, (uint64_t)tv.tv_sec, 7);
    put_b32(buf + 7, (uint64_t)tv.tv_usec, 4);
    put_b32(buf + 11, (uint64_t)getpid(), 5);
    put_b32(buf + 16, ((uint64_t)++counter << 20) ^ r, 6);
    buf[22] = '\0';
    snprintf(id, idlen, "%s", buf);
}

bool queue_id_ok(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n >= QUEUE_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'A' && id[i] <= 'Z')))
            return false;
    return true;
}

/* Writes all of buf to fd, retrying short writes. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Writes data as tmp/<name>, fsyncs it and renames it to <dirfd>/<id>,
 * then fsyncs that folder: the file is durable when this returns 0. */
static int durable_put(struct queue *q, int dirfd, const char *id,
                       const char *tag, const char *data, size_t len)
{
    char tmp[QUEUE_ID_MAX + 16];
    int fd, rc = QUEUE_EIO;

    snprintf(tmp, sizeof(tmp), "%s.%s", id, tag);
    fd = openat(q->tmp_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return QUEUE_EIO;
    if (write_all(fd, data, len) == 0 && fsync(fd) == 0 &&
        renameat(q->tmp_fd, tmp, dirfd, id) == 0 && fsync(dirfd) == 0)
        rc = QUEUE_OK;
    close(fd);
    if (rc != QUEUE_OK) {
        int saved = errno;
        unlinkat(q->tmp_fd, tmp, 0);
        errno = saved;
    }
    return rc;
}

/* Appends s to the record buffer, %XX-escaping spaces, controls, '%' and
 * non-ASCII so that every value is one token. */
static void put_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f || c == '%')
            fprintf(f, "%%%02X", c);
        else
            fputc(c, f);
    }
}

/* The status record of m as text; *len its size. NULL on ENOMEM. */
static char *record_text(const struct queue_msg *m, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);

    if (!f)
        return NULL;
    fprintf(f, RECORD_MAGIC "\nid %s\ntenant %s\nsender ", m->id, m->tenant);
    put_escaped(f, m->sender);
    fputs("\ntenant_from ", f);
    put_escaped(f, m->tenant_from);
    fprintf(f, "\ncreated %" PRId64 "\nsize %" PRIu64 "\n", m->created,
            m->size);
    for (size_t i = 0; i < m->nrcpt; i++) {
        const struct queue_rcpt *r = &m->rcpt[i];
        fprintf(f, "rcpt %s %u %" PRId64 " ", queue_state_name(r->state),
                r->attempts, r->next_try);
        put_escaped(f, r->addr);
        fputc(' ', f);
        put_escaped(f, r->reply[0] ? r->reply : "-");
        fputc('\n', f);
    }
    for (size_t i = 0; i < m->nhist; i++) {
        fputs("hist ", f);
        put_escaped(f, m->hist[i]);
        fputc('\n', f);
    }
    fputs("end\n", f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

int queue_save(struct queue *q, const struct queue_msg *m)
{
    size_t len;
    char *text;
    int rc;

    if (!queue_id_ok(m->id))
        return QUEUE_EINVAL;
    text = record_text(m, &len);
    if (!text)
        return QUEUE_ENOMEM;
    rc = durable_put(q, q->env_fd, m->id, "env", text, len);
    free(text);
    return rc;
}

int queue_submit(struct queue *q, struct queue_msg *m, const char *body,
                 size_t len)
{
    int rc;

    if (m->nrcpt == 0 || m->nrcpt > QUEUE_RCPT_MAX)
        return QUEUE_EINVAL;
    queue_new_id(m->id, sizeof(m->id));
    m->created = (int64_t)time(NULL);
    m->size = len;

    /* The body first: a status record never names a missing body. */
    rc = durable_put(q, q->msg_fd, m->id, "msg", body, len);
    if (rc != QUEUE_OK)
        return rc;
    rc = queue_save(q, m);
    if (rc != QUEUE_OK)
        unlinkat(q->msg_fd, m->id, 0);
    return rc;
}

/* Decodes %XX escapes of s into dst (size n). -1 on a bad escape or
 * overflow. */
static int unescape(char *dst, size_t n, const char *s)
{
    size_t o = 0;

    for (; *s; s++) {
        unsigned v;
        char c = *s;
        if (c == '%') {
            if (sscanf(s + 1, "%2X", &v) != 1 || !s[1] || !s[2])
                return -1;
            c = (char)v;
            s += 2;
        }
        if (c == '\0' || o + 1 >= n)
            return -1;
        dst[o++] = c;
    }
    dst[o] = '\0';
    return 0;
}

static int parse_state(const char *s, enum rcpt_state *out)
{
    for (int i = RCPT_PENDING; i <= RCPT_BOUNCED; i++)
        if (strcmp(s, queue_state_name(i)) == 0)
            return *out = i, 0;
    return -1;
}

/* Parses "STATE ATTEMPTS NEXT_TRY ADDR REPLY" into a new recipient. */
static int parse_rcpt(struct queue_msg *m, char *v)
{
    char *tok[5], *save = NULL, *end;
    struct queue_rcpt *r, *grown;
    int i;

    for (i = 0; i < 5; i++)
        if (!(tok[i] = strtok_r(i ? NULL : v, " ", &save)))
            return -1;
    if (strtok_r(NULL, " ", &save) || m->nrcpt >= QUEUE_RCPT_MAX)
        return -1;
    grown = realloc(m->rcpt, (m->nrcpt + 1) * sizeof(*r));
    if (!grown)
        return -1;
    m->rcpt = grown;
    r = &m->rcpt[m->nrcpt];
    memset(r, 0, sizeof(*r));
    if (parse_state(tok[0], &r->state) != 0 ||
        unescape(r->addr, sizeof(r->addr), tok[3]) != 0 ||
        unescape(r->reply, sizeof(r->reply), tok[4]) != 0)
        return -1;
    if (strcmp(r->reply, "-") == 0)
        r->reply[0] = '\0';
    r->attempts = (unsigned)strtoul(tok[1], &end, 10);
    if (*end)
        return -1;
    r->next_try = strtoll(tok[2], &end, 10);
    if (*end)
        return -1;
    m->nrcpt++;
    return 0;
}

/* One "key value" line of a status record into m. */
static int parse_line(struct queue_msg *m, char *line)
{
    char *v = strchr(line, ' ');

    if (!v)
        return strcmp(line, "end") == 0 ? 1 : -1;
    *v++ = '\0';
    if (strcmp(line, "id") == 0)
        return snprintf(m->id, sizeof(m->id), "%s", v) < (int)sizeof(m->id)
                   ? 0
                   : -1;
    if (strcmp(line, "tenant") == 0)
        return unescape(m->tenant, sizeof(m->tenant), v);
    if (strcmp(line, "sender") == 0)
        return unescape(m->sender, sizeof(m->sender), v);
    if (strcmp(line, "tenant_from") == 0)
        return unescape(m->tenant_from, sizeof(m->tenant_from), v);
    if (strcmp(line, "created") == 0)
        return sscanf(v, "%" SCNd64, &m->created) == 1 ? 0 : -1;
    if (strcmp(line, "size") == 0)
        return sscanf(v, "%" SCNu64, &m->size) == 1 ? 0 : -1;
    if (strcmp(line, "rcpt") == 0)
        return parse_rcpt(m, v);
    if (strcmp(line, "hist") == 0) {
        char h[LINE_MAX_LEN];
        if (unescape(h, sizeof(h), v) != 0)
            return -1;
        return queue_hist_add(m, "%s", h) == QUEUE_OK ? 0 : -1;
    }
    return -1;
}

/* Parses a whole record from f; QUEUE_ECORRUPT unless it ends in "end". */
static int parse_record(FILE *f, struct queue_msg *m)
{
    char line[LINE_MAX_LEN];
    int rc = 0;

    if (!fgets(line, sizeof(line), f) || strcmp(line, RECORD_MAGIC "\n"))
        return QUEUE_ECORRUPT;
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        size_t n = strlen(line);
        if (n == 0 || line[n - 1] != '\n')
            return QUEUE_ECORRUPT;
        line[n - 1] = '\0';
        rc = parse_line(m, line);
    }
    if (rc != 1 || !queue_id_ok(m->id))
        return QUEUE_ECORRUPT;
    return QUEUE_OK;
}

int queue_read(struct queue *q, const char *id, struct queue_msg *m)
{
    FILE *f;
    int fd, rc;

    memset(m, 0, sizeof(*m));
    if (!queue_id_ok(id))
        return QUEUE_EINVAL;
    fd = openat(q->env_fd, id, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? QUEUE_ENOENT : QUEUE_EIO;
    f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return QUEUE_EIO;
    }
    rc = parse_record(f, m);
    fclose(f);
    if (rc == QUEUE_OK && strcmp(m->id, id) != 0)
        rc = QUEUE_ECORRUPT;
    if (rc != QUEUE_OK)
        queue_msg_free(m);
    return rc;
}

void queue_msg_free(struct queue_msg *m)
{
    free(m->rcpt);
    m->rcpt = NULL;
    m->nrcpt = 0;
    for (size_t i = 0; i < m->nhist; i++)
        free(m->hist[i]);
    m->nhist = 0;
}

int queue_hist_add(struct queue_msg *m, const char *fmt, ...)
{
    char *line;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return QUEUE_ENOMEM;
    if (m->nhist == QUEUE_HIST_MAX) {
        free(m->hist[0]);
        memmove(m->hist, m->hist + 1, (QUEUE_HIST_MAX - 1) * sizeof(char *));
        m->nhist--;
    }
    m->hist[m->nhist++] = line;
    return QUEUE_OK;
}

int queue_lock(struct queue *q, const char *id, bool wait, int *fd)
{
    int f;

    if (!queue_id_ok(id))
        return QUEUE_EINVAL;
    f = openat(q->msg_fd, id, O_RDONLY | O_CLOEXEC);
    if (f < 0)
        return errno == ENOENT ? QUEUE_ENOENT : QUEUE_EIO;
    while (flock(f, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
        int saved = errno;
        if (saved == EINTR)
            continue;
        close(f);
        return saved == EWOULDBLOCK ? QUEUE_ELOCKED : QUEUE_EIO;
    }
    /* A message removed while we waited: its record is gone. */
    if (faccessat(q->env_fd, id, F_OK, 0) != 0) {
        close(f);
        return QUEUE_ENOENT;
    }
    *fd = f;
    return QUEUE_OK;
}

void queue_unlock(int fd)
{
    if (fd >= 0)
        close(fd);
}

int queue_remove(struct queue *q, const char *id)
{
    if (!queue_id_ok(id))
        return QUEUE_EINVAL;
    if (unlinkat(q->env_fd, id, 0) != 0 && errno != ENOENT)
        return QUEUE_EIO;
    if (fsync(q->env_fd) != 0)
        return QUEUE_EIO;
    if (unlinkat(q->msg_fd, id, 0) != 0 && errno != ENOENT)
        return QUEUE_EIO;
    return QUEUE_OK;
}

/* Removes msg/<id> files that have no status record and are old enough
 * that no submission can still be writing it. */
void queue_sweep(struct queue *q)
{
    int fd = dup(q->msg_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *e;
    struct stat st;
    time_t now = time(NULL);

    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    rewinddir(d);
    while ((e = readdir(d))) {
        if (!queue_id_ok(e->d_name) ||
            faccessat(q->env_fd, e->d_name, F_OK, 0) == 0 ||
            fstatat(q->msg_fd, e->d_name, &st, 0) != 0 ||
            now - st.st_mtime < ORPHAN_AGE)
            continue;
        unlinkat(q->msg_fd, e->d_name, 0);
    }
    closedir(d);
}

int queue_foreach(struct queue *q, int (*cb)(const char *id, void *ctx),
                  void *ctx)
{
    int fd = dup(q->env_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *e;
    int rc = 0;

    if (!d) {
        if (fd >= 0)
            close(fd);
        return QUEUE_EIO;
    }
    rewinddir(d);
    while (rc == 0 && (e = readdir(d)))
        if (queue_id_ok(e->d_name))
            rc = cb(e->d_name, ctx);
    closedir(d);
    return rc;
}

int64_t queue_retry_delay(unsigned attempts, uint64_t retry_min,
                          uint64_t retry_max)
{
    uint64_t d = retry_min;

    for (unsigned i = 1; i < attempts && d < retry_max; i++)
        d *= 2;
    return (int64_t)(d < retry_max ? d : retry_max);
}

int64_t queue_next_due(const struct queue_msg *m)
{
    int64_t due = INT64_MAX;

    for (size_t i = 0; i < m->nrcpt; i++)
        if (m->rcpt[i].state == RCPT_PENDING && m->rcpt[i].next_try < due)
            due = m->rcpt[i].next_try;
    return due;
}

bool queue_done(const struct queue_msg *m)
{
    return queue_next_due(m) == INT64_MAX;
}

bool queue_is_noreply(const char *sender, const char *tenant_from)
{
    static const char *const locals[] = {"noreply@", "no-reply@",
                                         "mailer-daemon@"};

    if (!sender || !sender[0])
        return true;
    for (size_t i = 0; i < sizeof(locals) / sizeof(locals[0]); i++)
        if (strncasecmp(sender, locals[i], strlen(locals[i])) == 0)
            return true;
    return tenant_from && tenant_from[0] &&
           strcasecmp(sender, tenant_from) == 0;
}

const char *queue_state_name(enum rcpt_state s)
{
    switch (s) {
    case RCPT_PENDING:
        return "pending";
    case RCPT_SENT:
        return "sent";
    case RCPT_BOUNCED:
        return "bounced";
    }
    return "?";
}

const char *queue_strerror(int err)
{
    switch (err) {
    case QUEUE_OK:
        return "success";
    case QUEUE_EIO:
        return "queue file system error";
    case QUEUE_ENOENT:
        return "no such message in the queue";
    case QUEUE_ECORRUPT:
        return "queue status record is corrupt";
    case QUEUE_ELOCKED:
        return "message is held by another process";
    case QUEUE_EINVAL:
        return "invalid queue id or message";
    case QUEUE_ENOMEM:
        return "out of memory";
    }
    return "unknown queue error";
}
