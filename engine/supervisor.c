/* tlsgated: the supervisor that binds the listeners and keeps the engine
 * and the worker pools running. */
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "tlscert.h"

extern char **environ;

static const char usage[] =
    "usage: tlsgated [--config FILE] [--state-dir DIR] [--KEY VALUE ...]\n"
    "                [--roles engine,inbound,outbound] [--libexec-dir DIR]\n"
    "       tlsgated [settings] --print-settings\n"
    "       tlsgated --print-config-docs | --version | --help\n"
    "Every setting of docs/config.md is also a flag (--KEY VALUE or "
    "--KEY=VALUE).\n";

/* Options of tlsgated itself, beyond the shared settings. */
struct sup_opts {
    const char *roles;
    const char *libexec_dir;
    int print_docs;
    int print_settings;
};

/* Reads the flags cfg_from_args left over; exits on a bad one. */
static void parse_own_flags(int argc, char **argv, struct sup_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = NULL;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            exit(0);
        } else if (strcmp(a, "--print-config-docs") == 0) {
            o->print_docs = 1;
            continue;
        } else if (strcmp(a, "--print-settings") == 0) {
            o->print_settings = 1;
            continue;
        } else if (strcmp(a, "--roles") == 0) {
            dst = &o->roles;
        } else if (strcmp(a, "--libexec-dir") == 0) {
            dst = &o->libexec_dir;
        } else if (strncmp(a, "--roles=", 8) == 0) {
            o->roles = a + 8;
            continue;
        } else if (strncmp(a, "--libexec-dir=", 14) == 0) {
            o->libexec_dir = a + 14;
            continue;
        }
        if (dst == NULL || i + 1 >= argc) {
            fprintf(stderr, "tlsgated: %s: unknown option or no value\n%s", a,
                    usage);
            exit(1);
        }
        *dst = argv[++i];
    }
}

/* Prints the settings in effect as a config file ("key = value"). */
static void print_settings(const struct tg_config *cfg)
{
    char *args[128];
    int n = cfg_to_args(cfg, args, 128);

    for (int i = 0; i < n; i++) {
        char *eq = strchr(args[i], '=');

        printf("%.*s = %s\n", (int)(eq - args[i] - 2), args[i] + 2, eq + 1);
        free(args[i]);
    }
}

/* mkdir -p with mode for the last component and any missing parent. */
static int make_dir(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];

    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* Creates the state folder and the folders the workers write into. */
static void make_layout(const struct tg_config *cfg)
{
    const struct {
        const char *path;
        mode_t mode;
    } dirs[] = {
        {cfg->state_dir, 0750},
        {cfg->tls_dir, 0700},
        {cfg->mail_dir, 0750},
        {cfg->queue_dir, 0750},
    };

    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
        if (make_dir(dirs[i].path, dirs[i].mode) < 0)
            log_fatal("id=tlsgated mkdir_failed path=%s error=%s", dirs[i].path,
                      strerrorname_np(errno));
}

/* Takes the pid file lock, so one state folder has one supervisor. */
static void lock_pidfile(struct sup *s)
{
    char buf[32] = "";
    ssize_t n;
    int fd;

    if (snprintf(s->pidfile, sizeof(s->pidfile), "%s/tlsgated.pid",
                 s->cfg.state_dir) >= (int)sizeof(s->pidfile))
        log_fatal("id=tlsgated state_dir_too_long");
    fd = open(s->pidfile, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        log_fatal("id=tlsgated pidfile_failed path=%s error=%s", s->pidfile,
                  strerrorname_np(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        n = read(fd, buf, sizeof(buf) - 1);
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        log_fatal("id=tlsgated already_running pid=%s state_dir=%s",
                  buf[0] ? buf : "unknown", s->cfg.state_dir);
    }
    n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
        log_fatal("id=tlsgated pidfile_failed path=%s error=%s", s->pidfile,
                  strerrorname_np(errno));
    s->pidfile_fd = fd;
}

/* The folder of /proc/self/exe: where the children's binaries live. */
static void default_bindir(char *out, size_t n)
{
    ssize_t len = readlink("/proc/self/exe", out, n - 1);
    char *slash;

    if (len <= 0) {
        snprintf(out, n, ".");
        return;
    }
    out[len] = '\0';
    slash = strrchr(out, '/');
    if (slash != NULL)
        *slash = '\0';
}

/* True when word is in the comma list. */
static int in_list(const char *list, const char *word)
{
    size_t n = strlen(word);

    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");

        if (len == n && strncmp(p, word, n) == 0)
            return 1;
        p += len;
        p += strspn(p, ",");
    }
    return 0;
}

/* True when every word of the --roles list names a role. */
static int roles_valid(const char *roles)
{
    static const char *const known[] = {"engine", "inbound", "outbound"};

    for (const char *p = roles; *p; p += strspn(p, ",")) {
        size_t len = strcspn(p, ","), k;

        for (k = 0; k < 3; k++)
            if (strlen(known[k]) == len && strncmp(p, known[k], len) == 0)
                break;
        if (k == 3)
            return 0;
        p += len;
    }
    return 1;
}

/* Fills the role table: which to run, where, how many. */
static void setup_roles(struct sup *s, const struct sup_opts *o)
{
    static const char *const names[] = {"engine", "inbound", "outbound"};
    static const char *const bins[] = {"tlsgate-engine", "tlsgate-smtpin",
                                       "tlsgate-smtpout"};
    static const char *const fds[] = {NULL, "inbound", "submission"};
    const char *roles = o->roles ? o->roles : "engine,inbound,outbound";

    for (int r = 0; r < SUP_ROLES; r++) {
        struct sup_role_state *rs = &s->roles[r];

        rs->name = names[r];
        rs->binary = bins[r];
        rs->fds_name = fds[r];
        rs->wanted = in_list(roles, names[r]);
        rs->delay_ms = SUP_DELAY_MIN_MS;
        rs->present = snprintf(rs->path, sizeof(rs->path), "%s/%s", s->bindir,
                               bins[r]) < (int)sizeof(rs->path) &&
                      access(rs->path, X_OK) == 0;
        rs->count = r == SUP_ENGINE    ? 1
                    : r == SUP_INBOUND ? cfg_workers(s->cfg.inbound_workers)
                                       : cfg_workers(s->cfg.outbound_workers);
        if (rs->wanted && !rs->present)
            log_warn("id=tlsgated role_skipped role=%s binary=%s "
                     "reason=not_built",
                     rs->name, rs->path);
    }
}

/* Binds one listener setting; fatal with a clear line if it fails. */
static void bind_setting(const char *setting, const char *list, int *fds,
                         int *n)
{
    char err[256], esc[400], name[80];

    *n = sup_listen_all(list, fds, SUP_MAX_LISTENERS, err, sizeof(err));
    if (*n < 0)
        log_fatal("id=tlsgated listen_failed setting=%s error=%s", setting,
                  log_escape(esc, sizeof(esc), err));
    for (int i = 0; i < *n; i++) {
        /* Above 64, so that placing them at 3.. in a child never
         * overwrites one not yet placed. */
        int high = fcntl(fds[i], F_DUPFD_CLOEXEC, 64);

        if (high < 0)
            log_fatal("id=tlsgated listen_failed error=%s",
                      strerrorname_np(errno));
        close(fds[i]);
        fds[i] = high;
        sup_fd_name(fds[i], name, sizeof(name));
        log_info("id=tlsgated listening setting=%s addr=%s", setting, name);
    }
}

/* Builds a role's environment: ours without TLSGATE_FDS, plus the
 * TLSGATE_FDS naming its listeners at 3, 4, ... */
static char **make_env(const struct sup_role_state *rs)
{
    size_t n = 0, o = 0, len;
    char **env;
    char *fds;

    while (environ[n])
        n++;
    env = calloc(n + 2, sizeof(*env));
    if (env == NULL)
        log_fatal("id=tlsgated out_of_memory");
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], SUP_FDS_ENV "=", sizeof(SUP_FDS_ENV)) != 0)
            env[o++] = strdup(environ[i]);
    if (rs->nfds == 0)
        return env;

    len = sizeof(SUP_FDS_ENV) + (size_t)rs->nfds * 24;
    fds = calloc(1, len);
    if (fds == NULL)
        log_fatal("id=tlsgated out_of_memory");
    strcpy(fds, SUP_FDS_ENV "=");
    for (int i = 0; i < rs->nfds; i++)
        snprintf(fds + strlen(fds), len - strlen(fds), "%s%s=%d", i ? " " : "",
                 rs->fds_name, 3 + i);
    env[o] = fds;
    return env;
}

/* Binds the listeners of the roles that will run, and prepares each
 * role's arguments and environment. */
static void prepare_children(struct sup *s)
{
    struct sup_role_state *in = &s->roles[SUP_INBOUND];
    struct sup_role_state *out = &s->roles[SUP_OUTBOUND];

    if (sup_make_args(s) < 0)
        log_fatal("id=tlsgated out_of_memory");

    if (in->wanted && in->present)
        bind_setting("inbound_listen", s->cfg.inbound_listen, in->fds,
                     &in->nfds);
    if (out->wanted && out->present)
        bind_setting("submission_listen", s->cfg.submission_listen, out->fds,
                     &out->nfds);
    for (int r = 0; r < SUP_ROLES; r++)
        s->roles[r].envp = make_env(&s->roles[r]);
}

/* Stop signals: the first starts the orderly stop, a second kills. */
static void on_stop_signal(uv_signal_t *h, int signum)
{
    struct sup *s = h->data;

    if (s->stopping) {
        log_warn("id=tlsgated stop_again signal=%s killed=%u",
                 sigabbrev_np(signum), sup_children_signal(s, SIGKILL, 1));
        return;
    }
    log_info("id=tlsgated stop signal=%s", sigabbrev_np(signum));
    sup_children_stop(s);
}

static void on_hup(uv_signal_t *h, int signum)
{
    sup_reload(h->data);
}

static void on_chld(uv_signal_t *h, int signum)
{
    sup_children_reap(h->data);
}

/* Installs the signal watchers; SIGPIPE is ignored in the supervisor. */
static void setup_signals(struct sup *s)
{
    signal(SIGPIPE, SIG_IGN);
    uv_signal_init(s->loop, &s->sig_chld);
    uv_signal_init(s->loop, &s->sig_term);
    uv_signal_init(s->loop, &s->sig_int);
    uv_signal_init(s->loop, &s->sig_hup);
    s->sig_chld.data = s->sig_term.data = s->sig_int.data = s;
    s->sig_hup.data = s;
    uv_signal_start(&s->sig_chld, on_chld, SIGCHLD);
    uv_signal_start(&s->sig_term, on_stop_signal, SIGTERM);
    uv_signal_start(&s->sig_int, on_stop_signal, SIGINT);
    uv_signal_start(&s->sig_hup, on_hup, SIGHUP);
    uv_timer_init(s->loop, &s->ready);
    uv_timer_init(s->loop, &s->grace);
    s->grace.data = s->ready.data = s;
}

/* Releases everything after the loop ended: the pid file goes last. */
static void cleanup(struct sup *s)
{
    for (int r = 0; r < SUP_ROLES; r++) {
        struct sup_role_state *rs = &s->roles[r];

        for (int i = 0; i < rs->nfds; i++)
            close(rs->fds[i]);
        for (size_t i = 0; rs->envp && rs->envp[i]; i++)
            free(rs->envp[i]);
        free(rs->envp);
    }
    sup_free_args(s);
    free(s->argv0);
    sup_children_free(s);
    uv_loop_close(s->loop);
    close(s->devnull);
    unlink(s->pidfile);
    close(s->pidfile_fd);
}

/* Settings, logging and the bin folder, from the command line. */
static void configure(struct sup *s, int argc, char **argv, struct sup_opts *o)
{
    char err[512];

    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--version") == 0) {
            printf("tlsgated %s\n", TLSGATE_VERSION);
            exit(0);
        }
    if (cfg_from_args(&s->cfg, &argc, argv, err, sizeof(err)) < 0) {
        fprintf(stderr, "tlsgated: %s\n", err);
        exit(1);
    }
    parse_own_flags(argc, argv, o);
    if (o->print_docs) {
        cfg_print_markdown(stdout);
        exit(0);
    }
    if (o->print_settings) {
        print_settings(&s->cfg);
        exit(0);
    }
    if (sup_setup_logging(&s->cfg) < 0) {
        fprintf(stderr, "tlsgated: log must be stderr or syslog, log_level "
                        "debug, info, warn or error\n");
        exit(1);
    }
    if (o->roles && !roles_valid(o->roles))
        log_fatal("id=tlsgated bad_roles roles=%s "
                  "expected=engine,inbound,outbound",
                  log_escape(err, 80, o->roles));
    if (o->libexec_dir)
        snprintf(s->bindir, sizeof(s->bindir), "%s", o->libexec_dir);
    else
        default_bindir(s->bindir, sizeof(s->bindir));
}

int main(int argc, char **argv)
{
    static struct sup sup;
    struct sup *s = &sup;
    struct sup_opts opts = {0};
    char err[512], esc[800];

    /* Kept for SIGHUP, which reads the settings again the same way. */
    s->argv0 = calloc((size_t)argc + 1, sizeof(*argv));
    if (s->argv0 == NULL)
        log_fatal("id=tlsgated out_of_memory");
    memcpy(s->argv0, argv, (size_t)argc * sizeof(*argv));
    s->argc0 = argc;
    configure(s, argc, argv, &opts);
    make_layout(&s->cfg);
    lock_pidfile(s);
    if (tlsc_ensure_cert(&s->cfg, err, sizeof(err)) < 0)
        log_fatal("id=tlsgated cert_error error=%s",
                  log_escape(esc, sizeof(esc), err));
    s->devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (s->devnull < 0)
        log_fatal("id=tlsgated open_failed path=/dev/null");

    s->loop = uv_default_loop();
    setup_roles(s, &opts);
    prepare_children(s);
    setup_signals(s);
    if (sup_children_init(s) < 0)
        log_fatal("id=tlsgated out_of_memory");
    log_info("id=tlsgated start pid=%ld state_dir=%s bindir=%s children=%u",
             (long)getpid(), s->cfg.state_dir, s->bindir, s->nchildren);
    if (s->nchildren == 0)
        log_warn("id=tlsgated nothing_to_run hint=build_the_programs");
    sup_children_start(s);

    uv_run(s->loop, UV_RUN_DEFAULT);
    log_info("id=tlsgated exit status=0");
    cleanup(s);
    return 0;
}
