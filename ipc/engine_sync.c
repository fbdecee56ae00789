/* The blocking engine client, for tools and tests: one call at a time. */
#include "engine_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "rpc.h"

struct eng_sync {
    int fd;
    unsigned timeout_ms;
    uint32_t next_id;
    bool broken;
    size_t used; /* bytes of the last answer, dropped at the next call */
    struct ipc_buf in, out;
    struct ipc_decoder dec;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for events or the deadline passes. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    int64_t left;
    int rc;

    for (;;) {
        left = deadline - now_ms();
        if (left <= 0)
            return IPC_ETIMEDOUT;
        rc = poll(&p, 1, (int)left);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return IPC_EUNAVAIL;
    }
}

int eng_sync_open(const char *path, unsigned timeout_ms, struct eng_sync **out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct eng_sync *s;

    if (!path || strlen(path) >= sizeof(sa.sun_path) || !out)
        return IPC_EINVAL;
    strcpy(sa.sun_path, path);
    if (!(s = calloc(1, sizeof(*s))) || ipc_decoder_init(&s->dec) < 0) {
        free(s);
        return IPC_ENOMEM;
    }
    s->timeout_ms = timeout_ms ? timeout_ms : 1;
    s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* Non-blocking before connect: a full backlog fails at once. */
    if (s->fd < 0 || fcntl(s->fd, F_SETFL, O_NONBLOCK) < 0 ||
        connect(s->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        eng_sync_close(s);
        return IPC_EUNAVAIL;
    }
    *out = s;
    return 0;
}

void eng_sync_close(struct eng_sync *s)
{
    if (!s)
        return;
    if (s->fd >= 0)
        close(s->fd);
    ipc_buf_free(&s->in);
    ipc_buf_free(&s->out);
    ipc_decoder_free(&s->dec);
    free(s);
}

/* Writes the out buffer whole before the deadline. */
static int write_all(struct eng_sync *s, int64_t deadline)
{
    size_t off = 0;
    ssize_t n;
    int err;

    while (off < s->out.len) {
        n = send(s->fd, s->out.data + off, s->out.len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return IPC_EUNAVAIL;
        if ((err = wait_fd(s->fd, POLLOUT, deadline)) < 0)
            return err;
    }
    s->out.len = 0;
    return 0;
}

/* Reads more bytes into the input buffer before the deadline. */
static int read_more(struct eng_sync *s, int64_t deadline)
{
    ssize_t n;
    int err;

    if (ipc_buf_reserve(&s->in, 16384) < 0)
        return IPC_ENOMEM;
    for (;;) {
        n = recv(s->fd, s->in.data + s->in.len, s->in.cap - s->in.len, 0);
        if (n > 0) {
            s->in.len += (size_t)n;
            return 0;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            return IPC_EUNAVAIL;
        if ((err = wait_fd(s->fd, POLLIN, deadline)) < 0)
            return err;
    }
}

/* Reads frames until the response to id; other ids are skipped. The
 * answer stays at the front of the input buffer until the next call. */
static int await(struct eng_sync *s, uint32_t id, int64_t deadline,
                 struct ipc_msg *m)
{
    size_t n;
    int rc, err;

    for (;;) {
        while ((rc = ipc_frame_next(s->in.data, s->in.len, &n)) > 0) {
            if (ipc_decode(&s->dec, s->in.data + IPC_HDR_LEN, n, m) < 0 ||
                m->type != IPC_RESPONSE)
                return IPC_EPROTO;
            if (m->id == id) {
                s->used = IPC_HDR_LEN + n;
                return 0;
            }
            ipc_buf_consume(&s->in, IPC_HDR_LEN + n);
        }
        if (rc < 0)
            return IPC_EPROTO;
        if ((err = read_more(s, deadline)) < 0)
            return err;
    }
}

/* One request: send, wait, and turn an error reply into its code. */
static int call(struct eng_sync *s, enum ipc_method method, const char *a,
                const char *b, bool tls, struct ipc_msg *m)
{
    int64_t deadline;
    char text[256];
    uint64_t gen;
    int err, code;

    if (!s || s->broken)
        return IPC_EUNAVAIL;
    deadline = now_ms() + s->timeout_ms;
    ipc_buf_consume(&s->in, s->used);
    s->used = 0;
    if (++s->next_id == 0)
        s->next_id = 1;
    if ((err = ipc_request_frame(&s->out, s->next_id, method, a, b, tls)) < 0)
        return err == IPC_ENOMEM ? err : IPC_EINVAL;
    if ((err = write_all(s, deadline)) < 0 ||
        (err = await(s, s->next_id, deadline, m)) < 0) {
        s->broken = err != IPC_ETIMEDOUT;
        s->out.len = 0;
        return err;
    }
    if (!m->error)
        return 0;
    if (ipc_get_error(m->error, &code, text, sizeof(text), &gen) < 0)
        return IPC_EPROTO;
    return code;
}

int eng_sync_ping(struct eng_sync *s, unsigned *version, uint64_t *generation)
{
    struct ipc_msg m;
    int err = call(s, IPC_M_PING, NULL, NULL, false, &m);

    return err ? err : ipc_get_ping(m.result, version, generation);
}

int eng_sync_outbound(struct eng_sync *s, const char *tenant, const char *rcpt,
                      struct outbound_decision *out)
{
    struct ipc_msg m;
    int err = call(s, IPC_M_OUTBOUND, tenant, rcpt, false, &m);

    return err ? err : ipc_get_outbound(m.result, out);
}

int eng_sync_inbound(struct eng_sync *s, const char *sender, const char *rcpt,
                     bool tls, struct inbound_decision *out)
{
    struct ipc_msg m;
    int err = call(s, IPC_M_INBOUND, sender, rcpt, tls, &m);

    return err ? err : ipc_get_inbound(m.result, out);
}

int eng_sync_tenant_for_sender(struct eng_sync *s, const char *sender,
                               struct tenant_info *out, uint64_t *generation)
{
    struct ipc_msg m;
    uint64_t gen;
    int err = call(s, IPC_M_TENANT_FOR_SENDER, sender, NULL, false, &m);

    return err ? err
               : ipc_get_tenant(m.result, out, generation ? generation : &gen);
}

int eng_sync_route(struct eng_sync *s, const char *domain, char *host,
                   size_t hostlen, unsigned *port, uint64_t *generation)
{
    struct ipc_msg m;
    uint64_t gen;
    int err = call(s, IPC_M_ROUTE, domain, NULL, false, &m);

    return err ? err
               : ipc_get_route(m.result, host, hostlen, port,
                               generation ? generation : &gen);
}

int eng_sync_stats(struct eng_sync *s, struct eng_stats *out)
{
    struct ipc_msg m;
    int err = call(s, IPC_M_STATS, NULL, NULL, false, &m);

    return err ? err : ipc_get_stats(m.result, out);
}

int eng_sync_event(struct eng_sync *s, const struct eng_event *ev)
{
    int err;

    if (!s || s->broken)
        return IPC_EUNAVAIL;
    if (!ev || (err = ipc_event_frame(&s->out, ev)) < 0)
        return IPC_EINVAL;
    if ((err = write_all(s, now_ms() + s->timeout_ms)) < 0) {
        s->broken = true;
        s->out.len = 0;
    }
    return err;
}
