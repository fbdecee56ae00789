/*
 * tlsgated internals: the supervisor state shared by its two files,
 * supervisor.c (start-up, signals) and supervisor_child.c (children).
 */
#ifndef TLSGATE_SUPERVISOR_H
#define TLSGATE_SUPERVISOR_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "config.h"
#include "supfds.h"

enum sup_role { SUP_ENGINE, SUP_INBOUND, SUP_OUTBOUND, SUP_ROLES };

/* What the supervisor knows about one role (engine, inbound, outbound). */
struct sup_role_state {
    const char *name;     /* "engine", "inbound", "outbound" */
    const char *binary;   /* file name in the bin folder */
    const char *fds_name; /* listeners it inherits, or NULL */
    int wanted;           /* listed in --roles */
    int present;          /* binary found and executable */
    char path[PATH_MAX];
    unsigned count;    /* how many processes */
    uint64_t delay_ms; /* next restart delay */
    char **envp;       /* environment for its children */
    int fds[SUP_MAX_LISTENERS];
    int nfds;
};

/* One supervised process slot; its pid changes with every restart. */
struct sup_child {
    struct sup *sup;
    enum sup_role role;
    unsigned index;
    pid_t pid;           /* 0 while not running */
    uint64_t started_ms; /* uv_now() at the last start */
    int restart_pending;
    int stale; /* started with settings since replaced */
    uv_timer_t restart;
};

struct sup {
    uv_loop_t *loop;
    struct tg_config cfg;
    char bindir[PATH_MAX];
    struct sup_role_state roles[SUP_ROLES];
    char **args; /* [0] program, cfg_to_args output, NULL */
    int nargs;
    char **argv0; /* the command line, to read the settings again */
    int argc0;
    int devnull;
    int pidfile_fd;
    char pidfile[PATH_MAX];

    struct sup_child *children;
    unsigned nchildren;

    int stopping; /* 0 running, 1 workers stopping, 2 engine */
    int workers_started;
    struct sup_child *rolling; /* being replaced after a reload */
    uint64_t ready_deadline;
    uv_timer_t ready; /* waits for the engine socket at start */
    uv_timer_t grace; /* shutdown deadline */
    uv_signal_t sig_chld, sig_term, sig_int, sig_hup;
};

/* The first restart delay (then doubled up to restart_delay_max, and back
 * to this after a run of restart_stable). */
#define SUP_DELAY_MIN_MS 500
/* How long workers wait for the engine socket at start-up. */
#define SUP_ENGINE_WAIT_MS 10000

/* Allocates the child slots from the roles; returns 0 or -1. */
int sup_children_init(struct sup *s);

/* Starts the engine, then the workers once its socket answers. */
void sup_children_start(struct sup *s);

/* Reaps every child that exited and schedules restarts (SIGCHLD). */
void sup_children_reap(struct sup *s);

/* Sends sig to every running child. Returns how many got it. */
unsigned sup_children_signal(struct sup *s, int sig, int engine_too);

/* Begins the orderly stop: workers first, then the engine. */
void sup_children_stop(struct sup *s);

/* Counts running children, all or all but the engine. */
unsigned sup_children_running(const struct sup *s, int engine_too);

/* Replaces every child, one at a time (SIGTERM, then a start with the
 * current settings), after a reload changed the settings. */
void sup_children_roll(struct sup *s);

/* Frees the slots (after the loop has closed their handles). */
void sup_children_free(struct sup *s);

/* supervisor_reload.c */

/* Applies the log and log_level settings; -1 (nothing changed) when either
 * is not a known value. */
int sup_setup_logging(const struct tg_config *cfg);

/* Builds s->args (the children's flags) from s->cfg; -1 out of memory. */
int sup_make_args(struct sup *s);
void sup_free_args(struct sup *s);

/* SIGHUP: reads the settings again; when they changed (and can change
 * without a restart) applies them and replaces the children one by one,
 * else checks the certificate and passes SIGHUP on to every child. */
void sup_reload(struct sup *s);

#endif
