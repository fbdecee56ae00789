/*
 * tlsgate-smtpin: one inbound receiver process. Start-up order: settings,
 * logging, listening sockets (inherited from tlsgated, or bound here when
 * standalone), certificate and TLS context, engine client, signals, loop.
 */
#include "smtpin.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "tlscert.h"

/* Binds one "HOST:PORT" with SO_REUSEPORT, so that several standalone
 * receivers can share it as they share the supervisor's sockets. */
static int bind_one(const char *text, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    unsigned len;
    int fd, on = 1;

    if (sup_parse_addr(text, &ss, &len, err, errlen) != 0)
        return -1;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on));
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    if (bind(fd, (struct sockaddr *)&ss, len) == 0 &&
        listen(fd, SOMAXCONN) == 0)
        return fd;
fail:
    snprintf(err, errlen, "%s: %s", text, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Every address of cfg->inbound_listen. Returns how many, or -1. */
static int bind_all(const char *list, int *fds, int max, char *err,
                    size_t errlen)
{
    char copy[CFG_STR_MAX], *save = NULL;
    int n = 0;

    snprintf(copy, sizeof(copy), "%s", list);
    for (char *tok = strtok_r(copy, " \t", &save); tok;
         tok = strtok_r(NULL, " \t", &save)) {
        if (n == max || (fds[n] = bind_one(tok, err, errlen)) < 0) {
            while (n > 0)
                close(fds[--n]);
            return -1;
        }
        n++;
    }
    return n;
}

/* A new connection on a listener; none is taken once stopping. */
static void on_connection(uv_stream_t *listener, int status)
{
    struct smtpin_server *srv = listener->data;

    if (status < 0) {
        log_warn("id=- smtpin accept error=\"%s\"", uv_strerror(status));
        return;
    }
    if (!srv->stopping)
        smtpin_accept(srv, listener);
}

/* Serves every listening descriptor (inherited or bound here). */
static void listen_fds(struct smtpin_server *srv, const int *fds, int n)
{
    char name[80];

    for (int i = 0; i < n; i++) {
        uv_tcp_t *l = &srv->listeners[i];
        int r;

        uv_tcp_init(srv->loop, l);
        l->data = srv;
        r = uv_tcp_open(l, fds[i]);
        if (r == 0)
            r = uv_listen((uv_stream_t *)l, SOMAXCONN, on_connection);
        sup_fd_name(fds[i], name, sizeof(name));
        if (r != 0)
            log_fatal("id=- smtpin listen addr=%s error=\"%s\"", name,
                      uv_strerror(r));
        log_info("id=- smtpin listening addr=%s", name);
        srv->nlisteners++;
    }
}

/* The server TLS context; the ticket key file is shared by the pool. */
static int tls_load(struct smtpin_server *srv, struct tlsio_ctx **out)
{
    const struct tg_config *cfg = srv->cfg;
    char keyfile[PATH_MAX + 16], err[512];
    struct tlsio_server_opts o = {0};

    mkdir(cfg->tls_dir, 0700);
    snprintf(keyfile, sizeof(keyfile), "%s/ticket.key", cfg->tls_dir);
    o.cert_file = cfg->tls_cert;
    o.key_file = cfg->tls_key;
    o.priority = cfg->tls_priority;
    o.tickets = cfg->tls_tickets != 0;
    o.ticket_key_file = keyfile;
    if (tlsio_ctx_server(&o, out, err, sizeof(err)) != 0) {
        log_err("id=- smtpin tls_config error=\"%s\"", err);
        return -1;
    }
    return 0;
}

/* Work thread: the start-up sweep of stale tmp/ files. */
static void sweep_work(uv_work_t *w)
{
    struct smtpin_server *srv = w->data;

    srv->swept = smtpin_maildir_sweep(srv->cfg->mail_dir, SMTPIN_TMP_MAX_AGE);
}

static void sweep_done(uv_work_t *w, int status)
{
    struct smtpin_server *srv = w->data;

    if (srv->swept > 0)
        log_info("id=- smtpin tmp_sweep removed=%lu older_than=%ds", srv->swept,
                 SMTPIN_TMP_MAX_AGE);
}

/* shutdown_grace is over: every session still open gets its 421. */
static void on_grace(uv_timer_t *t)
{
    struct smtpin_server *srv = t->data;
    struct smtpin_session *next;

    srv->grace_over = true;
    for (struct smtpin_session *s = srv->sessions; s; s = next) {
        next = s->next;
        smtpin_session_shutdown(s);
    }
}

/* SIGTERM/SIGINT: stop accepting; sessions get shutdown_grace to end. */
static void on_stop(uv_signal_t *sig, int signum)
{
    struct smtpin_server *srv = sig->data;

    if (srv->stopping)
        return;
    srv->stopping = true;
    log_info("id=- smtpin stopping sessions=%u grace=%lus", srv->nsessions,
             srv->cfg->shutdown_grace);
    for (int i = 0; i < srv->nlisteners; i++)
        uv_close((uv_handle_t *)&srv->listeners[i], NULL);
    if (srv->nsessions == 0) {
        uv_stop(srv->loop);
        return;
    }
    uv_timer_start(&srv->grace, on_grace, srv->cfg->shutdown_grace * 1000, 0);
}

/* SIGHUP: re-read the certificate; on failure keep the old one. */
static void on_hup(uv_signal_t *sig, int signum)
{
    struct smtpin_server *srv = sig->data;
    struct tlsio_ctx *fresh;

    if (tls_load(srv, &fresh) != 0) {
        log_warn("id=- smtpin reload result=failed keeping=old-certificate");
        return;
    }
    tlsio_ctx_unref(srv->tls);
    srv->tls = fresh;
    log_info("id=- smtpin reload result=ok cert=%s", srv->cfg->tls_cert);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* After the loop stopped: close what is left and let the closes run. */
static void server_cleanup(struct smtpin_server *srv)
{
    if (srv->eng)
        eng_client_close(srv->eng);
    srv->eng = NULL;
    uv_run(srv->loop, UV_RUN_NOWAIT);
    uv_walk(srv->loop, close_walk, NULL);
    uv_run(srv->loop, UV_RUN_DEFAULT);
    tlsio_ctx_unref(srv->tls);
    uv_loop_close(srv->loop);
}

/* SIGTERM/SIGINT stop, SIGHUP reloads; SIGPIPE is ignored. */
static void setup_signals(struct smtpin_server *srv)
{
    uv_signal_init(srv->loop, &srv->sig_term);
    uv_signal_init(srv->loop, &srv->sig_int);
    uv_signal_init(srv->loop, &srv->sig_hup);
    srv->sig_term.data = srv->sig_int.data = srv->sig_hup.data = srv;
    uv_signal_start(&srv->sig_term, on_stop, SIGTERM);
    uv_signal_start(&srv->sig_int, on_stop, SIGINT);
    uv_signal_start(&srv->sig_hup, on_hup, SIGHUP);
    uv_timer_init(srv->loop, &srv->grace);
    srv->grace.data = srv;
    signal(SIGPIPE, SIG_IGN);
}

/* The log_level setting as an enum log_level (info when unknown). */
static enum log_level level_of(const char *name)
{
    if (strcmp(name, "debug") == 0)
        return LOG_LVL_DEBUG;
    if (strcmp(name, "warn") == 0)
        return LOG_LVL_WARN;
    if (strcmp(name, "error") == 0)
        return LOG_LVL_ERR;
    return LOG_LVL_INFO;
}

/* Listening sockets: the supervisor's, else our own (standalone). */
static int get_listeners(const struct tg_config *cfg, int *fds, bool *alone)
{
    char err[512];
    int n = sup_inherited_fds("inbound", fds, SUP_MAX_LISTENERS);

    if (n < 0)
        log_fatal("id=- smtpin start error=\"malformed %s\"", SUP_FDS_ENV);
    *alone = n == 0;
    if (n > 0)
        return n;
    n = bind_all(cfg->inbound_listen, fds, SUP_MAX_LISTENERS, err, sizeof(err));
    if (n <= 0)
        log_fatal("id=- smtpin start error=\"%s\"",
                  n < 0 ? err : "inbound_listen is empty");
    return n;
}

int main(int argc, char **argv)
{
    static struct tg_config cfg;
    struct smtpin_server srv = {0};
    char err[512];
    int fds[SUP_MAX_LISTENERS], n;
    bool alone;

    if (cfg_from_args(&cfg, &argc, argv, err, sizeof(err)) != 0 || argc > 1) {
        fprintf(stderr,
                "tlsgate-smtpin: %s%s\nusage: tlsgate-smtpin "
                "[--config FILE] [--state-dir DIR] [--KEY VALUE]...\n",
                argc > 1 ? "unknown argument " : err, argc > 1 ? argv[1] : "");
        return 2;
    }
    log_init("smtpin", strcmp(cfg.log_target, "syslog") == 0);
    log_set_level(level_of(cfg.log_level));
    n = get_listeners(&cfg, fds, &alone);
    if (alone && tlsc_ensure_cert(&cfg, err, sizeof(err)) != 0)
        log_fatal("id=- smtpin start error=\"certificate: %s\"", err);

    srv.loop = uv_default_loop();
    srv.cfg = &cfg;
    if (tls_load(&srv, &srv.tls) != 0)
        log_fatal("id=- smtpin start error=\"no usable certificate\"");
    if (eng_client_open(srv.loop, cfg.engine_socket,
                        (unsigned)cfg.engine_timeout_ms, &srv.eng) != 0)
        log_fatal("id=- smtpin start error=\"engine client\"");
    setup_signals(&srv);
    listen_fds(&srv, fds, n);
    srv.sweep.data = &srv;
    uv_queue_work(srv.loop, &srv.sweep, sweep_work, sweep_done);
    log_info("id=- smtpin started standalone=%s hostname=%s mail_dir=%s",
             alone ? "yes" : "no", cfg.hostname, cfg.mail_dir);

    uv_run(srv.loop, UV_RUN_DEFAULT);
    log_info("id=- smtpin stopped");
    server_cleanup(&srv);
    return 0;
}
