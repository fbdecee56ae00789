/*
 * A stand-in child for the supervisor tests, installed under the names of
 * the real children (tlsgate-engine, tlsgate-smtpin, tlsgate-smtpout) in a
 * folder given to tlsgated with --libexec-dir. It parses the flags it gets
 * like every program, serves its listeners by writing its pid to each
 * connection, and logs what it inherited and which signals it got.
 * TESTCHILD_IGNORE_TERM=1 makes it ignore SIGTERM (to test the grace).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "supfds.h"

static volatile sig_atomic_t got_term, got_hup;

static void on_signal(int sig)
{
    if (sig == SIGTERM)
        got_term = 1;
    else
        got_hup = 1;
}

/* Counts open descriptors from first up to 255: there should be none. */
static int stray_fds(int first)
{
    int n = 0;

    for (int fd = first; fd < 256; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            n++;
    return n;
}

/* The engine stand-in listens on the engine socket path. */
static int listen_unix(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (strlen(path) >= sizeof(sun.sun_path))
        log_fatal("id=testchild path_too_long path=%s", path);
    memcpy(sun.sun_path, path, strlen(path) + 1);
    unlink(path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
        listen(fd, 16) < 0)
        log_fatal("id=testchild bind_failed path=%s", path);
    return fd;
}

/* Accepts on any ready listener and writes our pid to the peer. */
static void serve(int *fds, int n)
{
    struct pollfd pfd[SUP_MAX_LISTENERS];
    char line[32];
    int len = snprintf(line, sizeof(line), "%ld\n", (long)getpid());

    for (int i = 0; i < n; i++)
        pfd[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
    while (!got_term || getenv("TESTCHILD_IGNORE_TERM")) {
        if (got_hup) {
            got_hup = 0;
            log_info("id=testchild hup");
        }
        if (poll(pfd, (nfds_t)n, 200) <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            int c = (pfd[i].revents & POLLIN) ? accept(fds[i], NULL, NULL) : -1;

            if (c < 0)
                continue;
            (void)!send(c, line, (size_t)len, MSG_NOSIGNAL);
            close(c);
        }
    }
}

int main(int argc, char **argv)
{
    struct tg_config cfg;
    const char *base =
        strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    const char *role = strstr(base, "engine")   ? "engine"
                       : strstr(base, "smtpin") ? "inbound"
                                                : "submission";
    int fds[SUP_MAX_LISTENERS], n, stray;
    char err[512];

    log_init("testchild", 0);
    if (cfg_from_args(&cfg, &argc, argv, err, sizeof(err)) < 0 || argc != 1)
        log_fatal("id=testchild bad_args error=%s argc=%d", err, argc);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);

    n = strcmp(role, "engine") == 0
            ? 0
            : sup_inherited_fds(role, fds, SUP_MAX_LISTENERS);
    stray = stray_fds(3 + (n > 0 ? n : 0));
    if (strcmp(role, "engine") == 0) {
        fds[0] = listen_unix(cfg.engine_socket);
        n = 1;
    }
    log_info("id=testchild start role=%s fds=%d stray_fds=%d state_dir=%s "
             "max_errors=%lu",
             role, n, stray, cfg.state_dir, cfg.max_errors);
    if (n > 0)
        serve(fds, n);
    else
        while (!got_term)
            pause();
    if (strcmp(role, "engine") == 0)
        unlink(cfg.engine_socket);
    log_info("id=testchild stop role=%s", role);
    return 0;
}
