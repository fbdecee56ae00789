#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

static void start_child(struct sup_child *c);
static void schedule_restart(struct sup_child *c, uint64_t ran_ms);
static void roll_next(struct sup *s);

/* Restart timer callback. */
static void on_restart(uv_timer_t *t)
{
    struct sup_child *c = t->data;

    if (!c->sup->stopping)
        start_child(c);
}

int sup_children_init(struct sup *s)
{
    unsigned n = 0, i = 0;

    for (int r = 0; r < SUP_ROLES; r++)
        if (s->roles[r].wanted && s->roles[r].present)
            n += s->roles[r].count;
    s->children = calloc(n ? n : 1, sizeof(*s->children));
    if (s->children == NULL)
        return -1;
    for (int r = 0; r < SUP_ROLES; r++) {
        if (!s->roles[r].wanted || !s->roles[r].present)
            continue;
        for (unsigned k = 0; k < s->roles[r].count; k++, i++) {
            struct sup_child *c = &s->children[i];

            c->sup = s;
            c->role = (enum sup_role)r;
            c->index = k;
            uv_timer_init(s->loop, &c->restart);
            uv_unref((uv_handle_t *)&c->restart);
            c->restart.data = c;
        }
    }
    s->nchildren = n;
    return 0;
}

/* In the forked child: own process group, SIGTERM when the supervisor
 * dies, signals reset, listeners at 3.., other fds closed, exec. Only
 * async-signal-safe calls from here on. */
static void exec_child(const struct sup *s, const struct sup_role_state *rs,
                       pid_t parent)
{
    const char *why;
    sigset_t all;
    char *argv0 = (char *)rs->path;

    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(1);
    /* SIGHUP starts ignored: one that comes before the program has set up
     * its handler must not kill it (a handler replaces SIG_IGN). */
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, sig == SIGHUP ? SIG_IGN : SIG_DFL);
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);

    dup2(s->devnull, STDIN_FILENO);
    for (int i = 0; i < rs->nfds; i++)
        dup2(rs->fds[i], 3 + i); /* dup2 leaves the copy inheritable */
    close_range(3 + (unsigned)rs->nfds, ~0U, 0);

    s->args[0] = argv0;
    execve(rs->path, s->args, rs->envp);
    why = strerrorname_np(errno);
    (void)!write(STDERR_FILENO, "tlsgated: cannot run ", 21);
    (void)!write(STDERR_FILENO, rs->path, strlen(rs->path));
    (void)!write(STDERR_FILENO, ": ", 2);
    (void)!write(STDERR_FILENO, why ? why : "error", why ? strlen(why) : 5);
    (void)!write(STDERR_FILENO, "\n", 1);
    _exit(127);
}

/* Forks and execs one child; a failed fork is retried like a death. */
static void start_child(struct sup_child *c)
{
    struct sup *s = c->sup;
    struct sup_role_state *rs = &s->roles[c->role];
    sigset_t all, old;
    pid_t parent = getpid(), pid;

    /* No signal handler may run in the child before exec. */
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    pid = fork();
    if (pid == 0)
        exec_child(s, rs, parent);
    sigprocmask(SIG_SETMASK, &old, NULL);

    c->restart_pending = 0;
    c->stale = 0;
    uv_update_time(s->loop);
    c->started_ms = uv_now(s->loop);
    if (pid < 0) {
        log_err("id=%s.%u start_failed error=%s", rs->name, c->index,
                strerrorname_np(errno));
        c->pid = 0;
        schedule_restart(c, 0);
        return;
    }
    c->pid = pid;
    log_info("id=%s.%u child_start pid=%ld binary=%s", rs->name, c->index,
             (long)pid, rs->binary);
}

/* Picks this death's restart delay from the role's back-off and grows it;
 * a child that ran stably for a while starts the back-off afresh. */
static void schedule_restart(struct sup_child *c, uint64_t ran_ms)
{
    struct sup_role_state *rs = &c->sup->roles[c->role];
    uint64_t max_ms = c->sup->cfg.restart_delay_max * 1000, delay;

    if (ran_ms >= c->sup->cfg.restart_stable * 1000)
        rs->delay_ms = SUP_DELAY_MIN_MS;
    delay = rs->delay_ms < max_ms ? rs->delay_ms : max_ms;
    rs->delay_ms = delay * 2 < max_ms ? delay * 2 : max_ms;

    c->restart_pending = 1;
    uv_timer_start(&c->restart, on_restart, delay, 0);
    log_info("id=%s.%u restart_scheduled delay_ms=%llu", rs->name, c->index,
             (unsigned long long)delay);
}

/* Writes why a child ended ("status=exit code=3" or "status=signal
 * signal=KILL core=no") into buf. */
static void describe_status(int status, char *buf, size_t n)
{
    const char *name;

    if (WIFEXITED(status)) {
        snprintf(buf, n, "status=exit code=%d", WEXITSTATUS(status));
        return;
    }
    name = sigabbrev_np(WTERMSIG(status));
    snprintf(buf, n, "status=signal signal=%s core=%s", name ? name : "unknown",
             WCOREDUMP(status) ? "yes" : "no");
}

static struct sup_child *find_child(struct sup *s, pid_t pid)
{
    for (unsigned i = 0; i < s->nchildren; i++)
        if (s->children[i].pid == pid)
            return &s->children[i];
    return NULL;
}

/* Logs one child's end and restarts it unless the supervisor is stopping.
 * Any end while running is unexpected, exit 0 included. */
static void child_ended(struct sup *s, struct sup_child *c, int status)
{
    uint64_t ran_ms;
    char why[96];
    pid_t pid = c->pid;

    uv_update_time(s->loop);
    ran_ms = uv_now(s->loop) - c->started_ms;
    describe_status(status, why, sizeof(why));
    c->pid = 0;
    if (s->stopping) {
        log_info("id=%s.%u child_stopped pid=%ld %s ran_ms=%llu",
                 s->roles[c->role].name, c->index, (long)pid, why,
                 (unsigned long long)ran_ms);
        return;
    }
    if (c == s->rolling) {
        log_info("id=%s.%u child_replaced pid=%ld %s", s->roles[c->role].name,
                 c->index, (long)pid, why);
        start_child(c);
        roll_next(s);
        return;
    }
    log_warn("id=%s.%u child_died pid=%ld %s ran_ms=%llu",
             s->roles[c->role].name, c->index, (long)pid, why,
             (unsigned long long)ran_ms);
    schedule_restart(c, ran_ms);
}

void sup_children_reap(struct sup *s)
{
    struct sup_child *c;
    int status;
    pid_t pid;

    /* One SIGCHLD may stand for many exits: reap until none is left. */
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        c = find_child(s, pid);
        if (c != NULL)
            child_ended(s, c, status);
    }
    if (s->stopping)
        sup_children_stop(s);
}

/* True when the engine socket accepts a connection. */
static int engine_answers(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd, ok;

    if (strlen(path) >= sizeof(sun.sun_path))
        return 0;
    strcpy(sun.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    ok = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
    close(fd);
    return ok;
}

/* Starts every worker slot (all roles but the engine). */
static void start_workers(struct sup *s)
{
    s->workers_started = 1;
    for (unsigned i = 0; i < s->nchildren; i++)
        if (s->children[i].role != SUP_ENGINE)
            start_child(&s->children[i]);
}

/* Polls the engine socket every 100 ms at start-up; the workers start when
 * it answers, or after SUP_ENGINE_WAIT_MS with a warning. */
static void on_ready_poll(uv_timer_t *t)
{
    struct sup *s = t->data;

    if (s->stopping) {
        uv_timer_stop(t);
        return;
    }
    if (engine_answers(s->cfg.engine_socket)) {
        log_info("id=tlsgated engine_ready socket=%s", s->cfg.engine_socket);
    } else if (uv_now(s->loop) >= s->ready_deadline) {
        log_warn("id=tlsgated engine_not_ready socket=%s waited_ms=%d "
                 "action=starting_workers",
                 s->cfg.engine_socket, SUP_ENGINE_WAIT_MS);
    } else {
        return;
    }
    uv_timer_stop(t);
    start_workers(s);
}

void sup_children_start(struct sup *s)
{
    int engine = 0;

    for (unsigned i = 0; i < s->nchildren; i++) {
        if (s->children[i].role == SUP_ENGINE) {
            start_child(&s->children[i]);
            engine = 1;
        }
    }
    if (!engine) {
        start_workers(s);
        return;
    }
    s->ready_deadline = uv_now(s->loop) + SUP_ENGINE_WAIT_MS;
    s->ready.data = s;
    uv_timer_start(&s->ready, on_ready_poll, 50, 100);
}

unsigned sup_children_signal(struct sup *s, int sig, int engine_too)
{
    unsigned n = 0;

    for (unsigned i = 0; i < s->nchildren; i++) {
        struct sup_child *c = &s->children[i];

        if (c->pid > 0 && (engine_too || c->role != SUP_ENGINE) &&
            kill(c->pid, sig) == 0)
            n++;
    }
    return n;
}

unsigned sup_children_running(const struct sup *s, int engine_too)
{
    unsigned n = 0;

    for (unsigned i = 0; i < s->nchildren; i++)
        if (s->children[i].pid > 0 &&
            (engine_too || s->children[i].role != SUP_ENGINE))
            n++;
    return n;
}

/* Grace expired: whatever still runs in this phase is killed. */
static void on_grace(uv_timer_t *t)
{
    struct sup *s = t->data;
    unsigned n = sup_children_signal(s, SIGKILL, s->stopping == 2);

    log_warn("id=tlsgated grace_expired phase=%s killed=%u",
             s->stopping == 2 ? "engine" : "workers", n);
}

/* Ends the loop: every handle of the supervisor is closed. */
static void close_all(struct sup *s)
{
    for (unsigned i = 0; i < s->nchildren; i++)
        uv_close((uv_handle_t *)&s->children[i].restart, NULL);
    uv_close((uv_handle_t *)&s->ready, NULL);
    uv_close((uv_handle_t *)&s->grace, NULL);
    uv_close((uv_handle_t *)&s->sig_chld, NULL);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->sig_hup, NULL);
}

/* Moves the stop along: phase 1 waits for the workers (SIGTERM, up to
 * shutdown_grace), phase 2 for the engine (the same), then the loop ends.
 * Called on the stop signal and after every reaped child. */
void sup_children_stop(struct sup *s)
{
    uint64_t grace_ms = s->cfg.shutdown_grace * 1000;

    if (s->stopping == 0) {
        s->stopping = 1;
        uv_timer_stop(&s->ready);
        for (unsigned i = 0; i < s->nchildren; i++)
            uv_timer_stop(&s->children[i].restart);
        log_info("id=tlsgated stopping workers=%u",
                 sup_children_signal(s, SIGTERM, 0));
        uv_timer_start(&s->grace, on_grace, grace_ms, 0);
    }
    if (s->stopping == 1 && sup_children_running(s, 0) == 0) {
        s->stopping = 2;
        log_info("id=tlsgated stopping engine=%u",
                 sup_children_signal(s, SIGTERM, 1));
        uv_timer_start(&s->grace, on_grace, grace_ms, 0);
    }
    if (s->stopping == 2 && sup_children_running(s, 1) == 0 &&
        !uv_is_closing((uv_handle_t *)&s->grace))
        close_all(s);
}

/* A child being replaced did not stop within shutdown_grace. */
static void on_roll_grace(uv_timer_t *t)
{
    struct sup *s = t->data;

    if (s->rolling == NULL || s->rolling->pid <= 0)
        return;
    log_warn("id=%s.%u grace_expired phase=replace pid=%ld",
             s->roles[s->rolling->role].name, s->rolling->index,
             (long)s->rolling->pid);
    kill(s->rolling->pid, SIGKILL);
}

/* The next running child still on old settings, workers before the
 * engine; NULL when none is left. */
static struct sup_child *next_stale(struct sup *s)
{
    for (int engine = 0; engine < 2; engine++)
        for (unsigned i = 0; i < s->nchildren; i++) {
            struct sup_child *c = &s->children[i];

            if (c->stale && c->pid > 0 && (c->role == SUP_ENGINE) == engine)
                return c;
        }
    return NULL;
}

/* Stops the next stale child; child_ended starts it again at once and
 * calls this again, so one slot at a time is being replaced. */
static void roll_next(struct sup *s)
{
    struct sup_child *c = next_stale(s);

    s->rolling = c;
    if (c == NULL) {
        uv_timer_stop(&s->grace);
        log_info("id=tlsgated rolling_done");
        return;
    }
    log_info("id=%s.%u replacing pid=%ld", s->roles[c->role].name, c->index,
             (long)c->pid);
    kill(c->pid, SIGTERM);
    uv_timer_start(&s->grace, on_roll_grace, s->cfg.shutdown_grace * 1000, 0);
}

void sup_children_roll(struct sup *s)
{
    for (unsigned i = 0; i < s->nchildren; i++)
        s->children[i].stale = 1;
    log_info("id=tlsgated rolling_restart children=%u",
             sup_children_running(s, 1));
    if (s->rolling == NULL)
        roll_next(s);
}

void sup_children_free(struct sup *s)
{
    free(s->children);
    s->children = NULL;
    s->nchildren = 0;
}
