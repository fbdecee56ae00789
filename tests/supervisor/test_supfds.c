/* Unit tests of the listener helpers (ipc/supfds.c): binding from the
 * settings' syntax and reading TLSGATE_FDS back in a child. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "supfds.h"

/* Counts the open descriptors, to show nothing leaks. */
static int open_fds(void)
{
    int n = 0;

    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            n++;
    return n;
}

static void test_listen_all(void **state)
{
    int fds[4], one = 0, flags;
    socklen_t len = sizeof(one);
    char err[256], name[64];

    assert_int_equal(
        sup_listen_all(" 127.0.0.1:0\t[::1]:0 ", fds, 4, err, sizeof(err)), 2);
    flags = fcntl(fds[0], F_GETFL);
    assert_true(flags & O_NONBLOCK);
    assert_true(fcntl(fds[1], F_GETFD) & FD_CLOEXEC);
    assert_int_equal(getsockopt(fds[1], IPPROTO_IPV6, IPV6_V6ONLY, &one, &len),
                     0);
    assert_int_equal(one, 1);
    sup_fd_name(fds[0], name, sizeof(name));
    assert_memory_equal(name, "127.0.0.1:", 10);
    sup_fd_name(fds[1], name, sizeof(name));
    assert_memory_equal(name, "[::1]:", 6);
    close(fds[0]);
    close(fds[1]);

    assert_int_equal(sup_listen_all("", fds, 4, err, sizeof(err)), 0);
    assert_int_equal(sup_listen_all("  ", fds, 4, err, sizeof(err)), 0);
}

/* Bad addresses and a taken port: -1, a message naming the address, and
 * no descriptor left open. */
static void test_listen_errors(void **state)
{
    static const char *const bad[] = {
        "localhost:25", "127.0.0.1",       "[::1]25", "999.1.1.1:25",
        "127.0.0.1:",   "127.0.0.1:99999", "[::1:25", ":25",
    };
    int fds[4], taken, before = open_fds();
    char err[256], name[64], list[128];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(sup_listen_all(bad[i], fds, 4, err, sizeof(err)), -1);
        assert_non_null(strstr(err, bad[i]));
    }
    assert_int_equal(sup_listen_all("127.0.0.1:0", &taken, 1, err, 256), 1);
    sup_fd_name(taken, name, sizeof(name));
    snprintf(list, sizeof(list), "[::1]:0 %s", name);
    assert_int_equal(sup_listen_all(list, fds, 4, err, sizeof(err)), -1);
    assert_non_null(strstr(err, name));
    assert_non_null(strstr(err, "Address already in use"));
    assert_int_equal(
        sup_listen_all("127.0.0.1:0 127.0.0.1:0", fds, 1, err, sizeof(err)),
        -1);
    close(taken);
    assert_int_equal(open_fds(), before);
}

static void test_inherited(void **state)
{
    int a = socket(AF_INET, SOCK_STREAM, 0),
        b = socket(AF_INET, SOCK_STREAM, 0);
    int fds[4], pipefd[2];
    char env[128];

    assert_int_equal(dup2(a, 40), 40);
    assert_int_equal(dup2(b, 41), 41);
    assert_int_equal(pipe(pipefd), 0);

    unsetenv(SUP_FDS_ENV);
    assert_int_equal(sup_inherited_fds("inbound", fds, 4), 0);

    setenv(SUP_FDS_ENV, "inbound=40  submission=41 inbound=41", 1);
    assert_int_equal(sup_inherited_fds("inbound", fds, 4), 2);
    assert_int_equal(fds[0], 40);
    assert_int_equal(fds[1], 41);
    assert_true(fcntl(40, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(sup_inherited_fds("submission", fds, 4), 1);
    assert_int_equal(sup_inherited_fds("inbound", fds, 1), -1);
    assert_int_equal(sup_inherited_fds("inbo", fds, 4), 0);

    /* Malformed, out of range, or not a socket. */
    setenv(SUP_FDS_ENV, "inbound=4x", 1);
    assert_int_equal(sup_inherited_fds("inbound", fds, 4), -1);
    setenv(SUP_FDS_ENV, "inbound=2", 1);
    assert_int_equal(sup_inherited_fds("inbound", fds, 4), -1);
    setenv(SUP_FDS_ENV, "inbound=", 1);
    assert_int_equal(sup_inherited_fds("inbound", fds, 4), -1);
    setenv(SUP_FDS_ENV, "inbound=999", 1);
    assert_int_equal(sup_inherited_fds("inbound", fds, 4), -1);
    snprintf(env, sizeof(env), "inbound=%d", pipefd[0]);
    setenv(SUP_FDS_ENV, env, 1);
    assert_int_equal(sup_inherited_fds("inbound", fds, 4), -1);

    unsetenv(SUP_FDS_ENV);
    close(a);
    close(b);
    close(40);
    close(41);
    close(pipefd[0]);
    close(pipefd[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_all),
        cmocka_unit_test(test_listen_errors),
        cmocka_unit_test(test_inherited),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
