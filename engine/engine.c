/* tlsgate-engine: answers policy questions from the LMDB store over the
 * IPC protocol of docs/ipc.md. Started by tlsgated with the settings as
 * flags; runs standalone the same way. */
#include "engine.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static const char usage[] =
    "usage: tlsgate-engine [--config FILE] [--state-dir DIR] [--KEY VALUE]\n"
    "Every setting of docs/config.md is a flag; the engine uses\n"
    "engine_socket, policy_dir, events_dir, engine_map_size,\n"
    "events_retention, log and log_level.\n";

/* Maps the log settings; exits on a bad value (start-up). */
static void setup_logging(const struct tg_config *cfg)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    int lvl = -1;

    log_init("tlsgate-engine", strcmp(cfg->log_target, "syslog") == 0);
    for (int i = 0; i < 4; i++)
        if (strcmp(cfg->log_level, levels[i]) == 0)
            lvl = i;
    if (lvl < 0)
        log_fatal("id=engine bad_setting key=log_level value=%.32s",
                  cfg->log_level);
    log_set_level((enum log_level)lvl);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct engine *e = h->data;

    if (signum == SIGHUP) {
        log_info("id=engine sighup action=none reason=store-read-live");
        return;
    }
    if (e->stopping)
        return;
    e->stopping = true;
    log_info("id=engine stopping signal=%s",
             signum == SIGTERM ? "TERM" : "INT");
    eng_close_all(e);
    eng_events_stop(e->events);
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)&e->sig[i], NULL);
}

/* Signal handlers on the loop: TERM and INT stop, HUP is logged. */
static void setup_signals(struct engine *e)
{
    static const int sigs[3] = {SIGTERM, SIGINT, SIGHUP};

    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < 3; i++) {
        uv_signal_init(e->loop, &e->sig[i]);
        e->sig[i].data = e;
        uv_signal_start(&e->sig[i], on_signal, sigs[i]);
    }
}

/* Releases what the loop no longer uses, after it has stopped. */
static void teardown(struct engine *e)
{
    eng_events_close(e->events);
    if (e->txn)
        store_abort(e->txn);
    if (e->st)
        store_close(e->st);
    ipc_decoder_free(&e->dec);
    ipc_buf_free(&e->reply);
    unlink(e->cfg->engine_socket);
    uv_loop_close(e->loop);
}

int main(int argc, char **argv)
{
    static struct tg_config cfg;
    static struct engine e;
    char err[256];

    if (cfg_from_args(&cfg, &argc, argv, err, sizeof(err)) < 0) {
        fprintf(stderr, "tlsgate-engine: %s\n%s", err, usage);
        return 1;
    }
    if (argc > 1) {
        fprintf(stderr, "tlsgate-engine: unknown argument %s\n%s", argv[1],
                usage);
        return strcmp(argv[1], "--help") == 0 ? 0 : 1;
    }
    setup_logging(&cfg);

    e.loop = uv_default_loop();
    e.cfg = &cfg;
    e.started_ms = uv_now(e.loop);
    if (ipc_decoder_init(&e.dec) < 0 || ipc_buf_reserve(&e.reply, 1 << 16) < 0)
        log_fatal("id=engine out_of_memory");
    setup_signals(&e); /* before listening: a signal may come at once */
    if (eng_listen(&e) < 0)
        return 1;
    eng_events_open(e.loop, &cfg, &e.events);
    log_info("id=engine started pid=%d socket=%s policy=%s events=%s",
             (int)getpid(), cfg.engine_socket, cfg.policy_dir, cfg.events_dir);

    uv_run(e.loop, UV_RUN_DEFAULT);
    teardown(&e);
    log_info("id=engine stopped");
    return 0;
}
