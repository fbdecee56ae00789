/*
 * tlsgate-bench-limit: the least a TLS server can do per connection, as
 * the yardstick for tlsgate's receivers (bench/README.md, "Handshakes").
 * It accepts, runs the GnuTLS handshake (same certificate and priority
 * string as tlsgate, session tickets on), sends close_notify and closes.
 * Nothing else: no SMTP, no logging, no policy. Loopback only.
 *
 * With --workers N it forks N processes sharing one listening socket and
 * one ticket key, as tlsgated's receiver pool does.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <uv.h>

#define DEFAULT_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

struct limit {
    const char *cert, *key, *priority, *host;
    unsigned port, workers;
    bool tickets;
    gnutls_certificate_credentials_t creds;
    gnutls_priority_t prio;
    gnutls_datum_t ticket_key;
    uv_loop_t *loop;
    uv_poll_t listener;
    int lfd;
};

struct conn {
    uv_poll_t poll;
    int fd;
    gnutls_session_t s;
    bool bye; /* handshake done, close_notify being sent */
};

static struct limit L;

static void conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;

    gnutls_deinit(c->s);
    close(c->fd);
    free(c);
}

static void conn_end(struct conn *c)
{
    uv_close((uv_handle_t *)&c->poll, conn_closed);
}

static void conn_wait(struct conn *c);

/* Handshake, then close_notify, then close. */
static void conn_step(struct conn *c)
{
    int r;

    if (!c->bye) {
        do {
            r = gnutls_handshake(c->s);
        } while (r < 0 && !gnutls_error_is_fatal(r) && r != GNUTLS_E_AGAIN);
        if (r == GNUTLS_E_AGAIN) {
            conn_wait(c);
            return;
        }
        if (r < 0) {
            conn_end(c);
            return;
        }
        c->bye = true;
    }
    r = gnutls_bye(c->s, GNUTLS_SHUT_WR);
    if (r == GNUTLS_E_AGAIN) {
        conn_wait(c);
        return;
    }
    conn_end(c);
}

static void on_conn(uv_poll_t *h, int status, int events)
{
    struct conn *c = h->data;

    if (status < 0) {
        conn_end(c);
        return;
    }
    conn_step(c);
}

static void conn_wait(struct conn *c)
{
    int dir = gnutls_record_get_direction(c->s);

    uv_poll_start(&c->poll, dir ? UV_WRITABLE : UV_READABLE, on_conn);
}

/* A fresh server session on an accepted socket; GnuTLS reads and writes
 * the socket itself. */
static void conn_new(int fd)
{
    struct conn *c = calloc(1, sizeof(*c));
    unsigned flags = GNUTLS_SERVER | GNUTLS_NONBLOCK;

    if (!c || gnutls_init(&c->s, flags | (L.tickets ? 0 : GNUTLS_NO_TICKETS))) {
        free(c);
        close(fd);
        return;
    }
    c->fd = fd;
    gnutls_priority_set(c->s, L.prio);
    gnutls_credentials_set(c->s, GNUTLS_CRD_CERTIFICATE, L.creds);
    gnutls_certificate_server_set_request(c->s, GNUTLS_CERT_IGNORE);
    if (L.tickets)
        gnutls_session_ticket_enable_server(c->s, &L.ticket_key);
    gnutls_transport_set_int(c->s, fd);
    uv_poll_init(L.loop, &c->poll, fd);
    c->poll.data = c;
    conn_step(c);
}

/* Accepts every queued connection; the workers race for them. */
static void on_accept(uv_poll_t *h, int status, int events)
{
    for (;;) {
        int fd = accept4(L.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0)
            return; /* EAGAIN: another worker took it, or nothing left */
        conn_new(fd);
    }
}

static void on_term(uv_signal_t *h, int signum)
{
    uv_stop(h->loop);
}

/* One worker: its own loop on the shared listening socket. */
static int worker_main(void)
{
    uv_signal_t term;

    prctl(PR_SET_PDEATHSIG, SIGTERM);
    L.loop = uv_default_loop();
    uv_poll_init(L.loop, &L.listener, L.lfd);
    uv_poll_start(&L.listener, UV_READABLE, on_accept);
    uv_signal_init(L.loop, &term);
    uv_signal_start(&term, on_term, SIGTERM);
    uv_run(L.loop, UV_RUN_DEFAULT);
    return 0;
}

/* Binds L.host:L.port (127.0.0.0/8 only; port 0 picks one) and listens.
 * Returns the socket or -1. */
static int listen_loopback(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd, on = 1;

    if (inet_pton(AF_INET, L.host, &a.sin_addr) != 1 ||
        (ntohl(a.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "tlsgate-bench-limit: %s is not 127.0.0.0/8\n", L.host);
        return -1;
    }
    a.sin_port = htons((uint16_t)L.port);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(fd, 4096) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        fprintf(stderr, "tlsgate-bench-limit: listen %s:%u: %s\n", L.host,
                L.port, strerror(errno));
        return -1;
    }
    L.port = ntohs(a.sin_port);
    return fd;
}

/* Credentials, priority string and the one ticket key every worker
 * shares (made before the fork). Returns 0 or -1. */
static int tls_setup(void)
{
    const char *pos = NULL;
    int r;

    gnutls_global_init();
    gnutls_certificate_allocate_credentials(&L.creds);
    r = gnutls_certificate_set_x509_key_file2(L.creds, L.cert, L.key,
                                              GNUTLS_X509_FMT_PEM, NULL, 0);
    if (r < 0) {
        fprintf(stderr, "tlsgate-bench-limit: %s / %s: %s\n", L.cert, L.key,
                gnutls_strerror(r));
        return -1;
    }
    r = gnutls_priority_init(&L.prio, L.priority, &pos);
    if (r < 0) {
        fprintf(stderr, "tlsgate-bench-limit: priority: %s near '%s'\n",
                gnutls_strerror(r), pos ? pos : "");
        return -1;
    }
    return gnutls_session_ticket_key_generate(&L.ticket_key) < 0 ? -1 : 0;
}

static int parse(int argc, char **argv)
{
    static const struct option opts[] = {
        {"cert", 1, 0, 'c'},    {"key", 1, 0, 'k'},  {"priority", 1, 0, 'p'},
        {"host", 1, 0, 'h'},    {"port", 1, 0, 'P'}, {"workers", 1, 0, 'w'},
        {"tickets", 1, 0, 't'}, {0, 0, 0, 0}};
    int c;

    L.priority = DEFAULT_PRIORITY;
    L.host = "127.0.0.1";
    L.workers = 1;
    L.tickets = true;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            L.cert = optarg;
            break;
        case 'k':
            L.key = optarg;
            break;
        case 'p':
            L.priority = optarg;
            break;
        case 'h':
            L.host = optarg;
            break;
        case 'P':
            L.port = (unsigned)atoi(optarg);
            break;
        case 'w':
            L.workers = (unsigned)atoi(optarg);
            break;
        case 't':
            L.tickets = strcmp(optarg, "off") != 0;
            break;
        default:
            return -1;
        }
    }
    if (!L.cert || !L.key || L.workers < 1 || L.workers > 64 ||
        L.port > 65535) {
        fprintf(stderr, "usage: tlsgate-bench-limit --cert PEM --key PEM "
                        "[--port N] [--workers N] [--priority S] "
                        "[--tickets on|off] [--host 127.0.0.1]\n");
        return -1;
    }
    return 0;
}

/* Forks the workers, then waits; SIGTERM/SIGINT stop them all. */
static int supervise(void)
{
    sigset_t set;
    pid_t pids[64];
    int sig = 0;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    for (unsigned i = 0; i < L.workers; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            sigprocmask(SIG_UNBLOCK, &set, NULL);
            _exit(worker_main()); /* the kernel frees the sessions */
        }
    }
    printf("tlsgate-bench-limit listening=%s:%u workers=%u pid=%d\n", L.host,
           L.port, L.workers, (int)getpid());
    fflush(stdout);
    sigwait(&set, &sig);
    for (unsigned i = 0; i < L.workers; i++)
        if (pids[i] > 0)
            kill(pids[i], SIGTERM);
    while (wait(NULL) > 0)
        ;
    return sig == SIGCHLD ? 1 : 0;
}

int main(int argc, char **argv)
{
    int rc;

    if (parse(argc, argv) != 0 || tls_setup() != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    L.lfd = listen_loopback();
    if (L.lfd < 0)
        return 1;
    rc = supervise();
    gnutls_priority_deinit(L.prio);
    gnutls_certificate_free_credentials(L.creds);
    gnutls_free(L.ticket_key.data);
    gnutls_global_deinit();
    return rc;
}
