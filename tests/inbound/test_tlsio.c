/*
 * tlsio end to end on one libuv loop: a tlsio server and a tlsio client
 * over a real loopback TCP connection. Checks the handshake report (both
 * sides), chain and name verification, require_verified, a 200 KB echo in
 * both directions, close_notify, ticket resumption and the handshake
 * timeout against a peer that never answers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "tlscert.h"
#include "tlsio.h"

#define CHECK(c)                                                               \
    do {                                                                       \
        if (!(c)) {                                                            \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #c);                                                       \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

#define PAYLOAD (200 * 1024)

static uv_loop_t *loop;
static struct tlsio_ctx *server_ctx;
static uv_tcp_t listener;
static int listen_port;
static bool server_silent; /* accept but never start TLS (timeout test) */

/* ---- the server: echoes every byte back ---- */

struct peer {
    uv_tcp_t tcp;
    struct tlsio *t;
};

static void peer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void peer_end(struct peer *p)
{
    tlsio_free(p->t);
    p->tcp.data = p;
    uv_close((uv_handle_t *)&p->tcp, peer_closed);
}

static void server_read(struct tlsio *t, const char *buf, ssize_t n, void *arg)
{
    if (n < 0) {
        peer_end(arg);
        return;
    }
    CHECK(tlsio_write(t, buf, (size_t)n, NULL, NULL) == 0);
}

static void server_handshake(struct tlsio *t, int status, void *arg)
{
    struct tlsio_report r;

    if (status != 0) {
        peer_end(arg);
        return;
    }
    CHECK(tlsio_report(t, &r) == 0);
    CHECK(!r.peer_cert && !r.cert_verified);
    CHECK(tlsio_read_start(t, server_read) == 0);
}

static void on_connection(uv_stream_t *l, int status)
{
    struct peer *p = calloc(1, sizeof(*p));
    struct tlsio_opts o = {.handshake_timeout_ms = 5000};

    CHECK(status == 0 && p);
    uv_tcp_init(loop, &p->tcp);
    p->tcp.data = p;
    CHECK(uv_accept(l, (uv_stream_t *)&p->tcp) == 0);
    if (server_silent)
        return; /* leaked on purpose until the loop ends: never answers */
    CHECK(tlsio_start(server_ctx, &p->tcp, true, &o, server_handshake, p,
                      &p->t) == 0);
}

/* ---- the client ---- */

struct client {
    uv_tcp_t tcp;
    uv_connect_t conn;
    struct tlsio_ctx *ctx;
    struct tlsio_opts opts;
    struct tlsio *t;
    int hs_status;
    struct tlsio_report rep;
    bool other_name_ok;
    char *sent;
    size_t got;
    bool match;
    gnutls_datum_t session;
    bool done;
};

static void client_closed(uv_handle_t *h)
{
    struct client *c = h->data;

    c->done = true;
}

static void client_end(struct client *c)
{
    if (c->t)
        tlsio_free(c->t);
    c->t = NULL;
    c->tcp.data = c;
    uv_close((uv_handle_t *)&c->tcp, client_closed);
}

static void client_bye(struct tlsio *t, int status, void *arg)
{
    CHECK(status == 0);
    client_end(arg);
}

static void client_read(struct tlsio *t, const char *buf, ssize_t n, void *arg)
{
    struct client *c = arg;

    CHECK(n > 0);
    if (memcmp(buf, c->sent + c->got, (size_t)n) != 0)
        c->match = false;
    c->got += (size_t)n;
    if (c->got < PAYLOAD)
        return;
    tlsio_read_stop(t);
    CHECK(tlsio_session_data(t, &c->session) == 0);
    tlsio_bye(t, client_bye, c);
}

static void client_handshake(struct tlsio *t, int status, void *arg)
{
    struct client *c = arg;

    c->hs_status = status;
    if (status != 0) {
        client_end(c);
        return;
    }
    CHECK(tlsio_report(t, &c->rep) == 0);
    c->other_name_ok = tlsio_peer_name_matches(t, "other.example");
    c->sent = malloc(PAYLOAD);
    for (size_t i = 0; i < PAYLOAD; i++)
        c->sent[i] = (char)(i * 7 + i / 1000);
    c->match = true;
    CHECK(tlsio_write(t, c->sent, PAYLOAD, NULL, NULL) == 0);
    CHECK(tlsio_write_queue_size(t) > 0);
    CHECK(tlsio_read_start(t, client_read) == 0);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct client *c = req->data;

    CHECK(status == 0);
    CHECK(tlsio_start(c->ctx, &c->tcp, false, &c->opts, client_handshake, c,
                      &c->t) == 0);
}

/* Runs one client connection to completion. */
static void run_client(struct client *c)
{
    struct sockaddr_in a;

    uv_ip4_addr("127.0.0.1", listen_port, &a);
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->conn.data = c;
    c->hs_status = 1;
    CHECK(uv_tcp_connect(&c->conn, &c->tcp, (struct sockaddr *)&a,
                         on_connect) == 0);
    while (!c->done)
        uv_run(loop, UV_RUN_ONCE);
    free(c->sent);
}

static struct tlsio_ctx *client_ctx(const char *ca, const char *prio)
{
    struct tlsio_client_opts o = {.priority = prio, .ca_file = ca};
    struct tlsio_ctx *ctx;
    char err[256];

    CHECK(tlsio_ctx_client(&o, &ctx, err, sizeof(err)) == 0);
    return ctx;
}

/* ---- scenarios ---- */

static void test_verified(const char *ca)
{
    struct client c = {0};

    c.ctx = client_ctx(ca, NULL);
    c.opts = (struct tlsio_opts){.handshake_timeout_ms = 5000,
                                 .server_name = "localhost",
                                 .verify_name = "localhost",
                                 .require_verified = true};
    run_client(&c);
    CHECK(c.hs_status == 0);
    CHECK(strcmp(c.rep.protocol, "TLS1.3") == 0);
    CHECK(strncmp(c.rep.cipher, "TLS_AES_", 8) == 0);
    CHECK(c.rep.group[0] != '\0');
    CHECK(c.rep.peer_cert && c.rep.chain_ok && c.rep.name_ok);
    CHECK(c.rep.cert_verified && c.rep.verify_error[0] == '\0');
    CHECK(strstr(c.rep.subject, "CN=mx.test") != NULL);
    CHECK(strstr(c.rep.names, "localhost") != NULL);
    CHECK(c.rep.not_before > 0 && c.rep.not_after > c.rep.not_before);
    CHECK(!c.rep.resumed && !c.other_name_ok);
    CHECK(c.got == PAYLOAD && c.match);

    /* the same context again, with the session: resumed */
    struct client d = {0};
    d.ctx = c.ctx;
    d.opts = c.opts;
    d.opts.resume = &c.session;
    run_client(&d);
    CHECK(d.hs_status == 0 && d.rep.resumed && d.match);
    gnutls_free(c.session.data);
    gnutls_free(d.session.data);
    tlsio_ctx_unref(c.ctx);
}

static void test_wrong_name(const char *ca)
{
    struct client c = {0};

    c.ctx = client_ctx(ca, NULL);
    c.opts = (struct tlsio_opts){.handshake_timeout_ms = 5000,
                                 .server_name = "wrong.example",
                                 .verify_name = "wrong.example",
                                 .require_verified = true};
    run_client(&c);
    CHECK(c.hs_status == TLSIO_EVERIFY);
    tlsio_ctx_unref(c.ctx);
}

static void test_untrusted_tls12(void)
{
    struct client c = {0};

    c.ctx = client_ctx(NULL, "NORMAL:-VERS-ALL:+VERS-TLS1.2");
    c.opts = (struct tlsio_opts){.handshake_timeout_ms = 5000,
                                 .verify_name = "localhost"};
    run_client(&c);
    CHECK(c.hs_status == 0);
    CHECK(strcmp(c.rep.protocol, "TLS1.2") == 0);
    CHECK(c.rep.kx[0] != '\0');
    CHECK(c.rep.peer_cert && !c.rep.chain_ok && !c.rep.cert_verified);
    CHECK(c.rep.verify_error[0] != '\0');
    CHECK(c.got == PAYLOAD && c.match);
    gnutls_free(c.session.data);
    tlsio_ctx_unref(c.ctx);
}

static void test_timeout(const char *ca)
{
    struct client c = {0};
    uint64_t t0 = uv_now(loop);

    server_silent = true;
    c.ctx = client_ctx(ca, NULL);
    c.opts = (struct tlsio_opts){.handshake_timeout_ms = 300};
    run_client(&c);
    CHECK(c.hs_status == TLSIO_ETIMEDOUT);
    CHECK(uv_now(loop) - t0 >= 250 && uv_now(loop) - t0 < 3000);
    tlsio_ctx_unref(c.ctx);
    server_silent = false;
}

static void setup(const char *dir, char *cert, char *key)
{
    static struct tg_config cfg;
    struct tlsio_server_opts so = {0};
    char err[512], ticket[PATH_MAX];
    struct sockaddr_in a;
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    cfg_defaults(&cfg);
    snprintf(cfg.hostname, sizeof(cfg.hostname), "mx.test");
    snprintf(cfg.tls_cert, sizeof(cfg.tls_cert), "%s", cert);
    snprintf(cfg.tls_key, sizeof(cfg.tls_key), "%s", key);
    CHECK(tlsc_ensure_cert(&cfg, err, sizeof(err)) == 0);
    snprintf(ticket, sizeof(ticket), "%s/ticket.key", dir);
    so = (struct tlsio_server_opts){.cert_file = cert,
                                    .key_file = key,
                                    .tickets = true,
                                    .ticket_key_file = ticket};
    CHECK(tlsio_ctx_server(&so, &server_ctx, err, sizeof(err)) == 0);
    CHECK(access(ticket, R_OK) == 0);

    uv_tcp_init(loop, &listener);
    uv_ip4_addr("127.0.0.1", 0, &a);
    CHECK(uv_tcp_bind(&listener, (struct sockaddr *)&a, 0) == 0);
    CHECK(uv_listen((uv_stream_t *)&listener, 16, on_connection) == 0);
    uv_tcp_getsockname(&listener, (struct sockaddr *)&ss, &len);
    listen_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void close_all(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, h == (uv_handle_t *)&listener ? NULL : peer_closed);
}

int main(void)
{
    char dir[64] = "/tmp/tlsio-test-", cert[PATH_MAX], key[PATH_MAX];
    char cmd[PATH_MAX + 16];

    memset(dir + strlen(dir), 'X', 6); /* the mkdtemp template */
    CHECK(mkdtemp(dir) != NULL);
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    loop = uv_default_loop();
    setup(dir, cert, key);

    test_verified(cert);
    test_wrong_name(cert);
    test_untrusted_tls12();
    test_timeout(cert);

    uv_walk(loop, close_all, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    tlsio_ctx_unref(server_ctx);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    printf("tlsio: all checks passed\n");
    return 0;
}
