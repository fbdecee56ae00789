/* The bench's peers: the load client and the bare ping-pong server. */
#include "ipc_bench.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

long ipc_bench_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}

static int unix_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("tlsgate-bench-ipc: connect");
        _exit(1);
    }
    return fd;
}

/* Writes everything; returns 0 or -1 (peer gone). */
static int write_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Client state: the send times of the requests in flight, in order. */
struct flight {
    long *sent;
    unsigned head, count, cap, next;
};

/* Sends k requests from the pool in one write, noting their send time. */
static void send_some(int fd, const struct ipcb_pool *pool, struct flight *f,
                      unsigned k, struct ipc_buf *out)
{
    long now = ipc_bench_now_us();

    out->len = 0;
    for (unsigned i = 0; i < k; i++) {
        unsigned j = f->next++ % IPCB_POOL;

        ipc_buf_append(out, pool->frames.data + pool->off[j], pool->len[j]);
        f->sent[(f->head + f->count++) % f->cap] = now;
    }
    if (write_all(fd, out->data, out->len) < 0) {
        perror("tlsgate-bench-ipc: write");
        _exit(1);
    }
}

/* Takes the answers out of the input buffer; returns how many. */
static unsigned take_answers(struct ipc_buf *in, struct flight *f,
                             struct ipc_decoder *d, const struct ipcb_run *run,
                             struct ipcb_result *res, long t_measure)
{
    long now = ipc_bench_now_us();
    unsigned got = 0;
    struct ipc_msg m;
    size_t off = 0, n;

    while (ipc_frame_next(in->data + off, in->len - off, &n) == 1) {
        long lat = now - f->sent[f->head];

        if (run->check &&
            (ipc_decode(d, in->data + off + IPC_HDR_LEN, n, &m) < 0 ||
             m.error != NULL))
            res->errors++;
        f->head = (f->head + 1) % f->cap;
        f->count--;
        if (now >= t_measure) {
            res->done++;
            res->hist[lat < IPCB_HIST_US ? lat : IPCB_HIST_US]++;
        }
        off += IPC_HDR_LEN + n;
        got++;
    }
    ipc_buf_consume(in, off);
    return got;
}

void ipc_bench_client(const struct ipcb_run *run, struct ipcb_result *res)
{
    struct flight f = {.cap = run->window};
    struct ipc_buf in, out;
    struct ipc_decoder d;
    int fd = unix_connect(run->path);
    long t_measure = ipc_bench_now_us() + run->warm_ms * 1000;
    long t_end = t_measure + run->run_ms * 1000;
    ssize_t n;

    f.sent = calloc(run->window, sizeof(long));
    ipc_buf_init(&in);
    ipc_buf_init(&out);
    ipc_decoder_init(&d);
    send_some(fd, run->pool, &f, run->window, &out);
    while (ipc_bench_now_us() < t_end) {
        ipc_buf_reserve(&in, 65536);
        n = read(fd, in.data + in.len, in.cap - in.len);
        if (n <= 0) {
            fprintf(stderr, "tlsgate-bench-ipc: connection lost\n");
            _exit(1);
        }
        in.len += (size_t)n;
        unsigned got = take_answers(&in, &f, &d, run, res, t_measure);
        if (got)
            send_some(fd, run->pool, &f, got, &out);
    }
    close(fd);
    free(f.sent);
    ipc_buf_free(&in);
    ipc_buf_free(&out);
    ipc_decoder_free(&d);
}

/* Answers every whole frame read from fd with one reply frame: all in one
 * write when batched, else one write per frame (the plain ping-pong).
 * Returns 0, or -1 when the peer is gone. */
static int echo_serve(int fd, struct ipc_buf *in, struct ipc_buf *out,
                      const char *reply, size_t reply_len, int batched)
{
    size_t off = 0, n;
    ssize_t got;

    ipc_buf_reserve(in, 65536);
    got = read(fd, in->data + in->len, in->cap - in->len);
    if (got <= 0)
        return -1;
    in->len += (size_t)got;
    out->len = 0;
    while (ipc_frame_next(in->data + off, in->len - off, &n) == 1) {
        off += IPC_HDR_LEN + n;
        if (!batched && write_all(fd, reply, IPC_HDR_LEN + reply_len) < 0)
            return -1;
        if (batched)
            ipc_buf_append(out, reply, IPC_HDR_LEN + reply_len);
    }
    ipc_buf_consume(in, off);
    return out->len ? write_all(fd, out->data, out->len) : 0;
}

/* The ping-pong server's loop over all its connections, single-threaded
 * like the engine. */
static void echo_loop(int lfd, size_t reply_len, int batched)
{
    struct pollfd p[64] = {{.fd = lfd, .events = POLLIN}};
    struct ipc_buf in[64], out;
    char *reply = calloc(1, IPC_HDR_LEN + reply_len);
    int np = 1;

    reply[0] = (char)(reply_len >> 24);
    reply[1] = (char)(reply_len >> 16);
    reply[2] = (char)(reply_len >> 8);
    reply[3] = (char)reply_len;
    ipc_buf_init(&out);
    for (;;) {
        if (poll(p, (nfds_t)np, -1) < 0)
            continue;
        if ((p[0].revents & POLLIN) && np < 64) {
            p[np].fd = accept(lfd, NULL, NULL);
            p[np].events = POLLIN;
            ipc_buf_init(&in[np++]);
        }
        for (int i = 1; i < np; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP)) ||
                echo_serve(p[i].fd, &in[i], &out, reply, reply_len, batched) ==
                    0)
                continue;
            close(p[i].fd);
            ipc_buf_free(&in[i]);
            p[i] = p[--np];
            in[i] = in[np];
            i--;
        }
    }
}

pid_t ipc_bench_echo_start(const char *path, size_t reply_len, int batched)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    pid_t pid;

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    unlink(path);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(lfd, 64) < 0) {
        perror("tlsgate-bench-ipc: echo listen");
        exit(1);
    }
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        echo_loop(lfd, reply_len, batched);
        _exit(0);
    }
    close(lfd);
    return pid;
}

double ipc_bench_percentile(const uint64_t *hist, double pct)
{
    uint64_t total = 0, seen = 0;

    for (int i = 0; i <= IPCB_HIST_US; i++)
        total += hist[i];
    if (!total)
        return 0;
    for (int i = 0; i <= IPCB_HIST_US; i++) {
        seen += hist[i];
        if ((double)seen >= total * pct / 100.0)
            return i + 0.5;
    }
    return IPCB_HIST_US;
}
