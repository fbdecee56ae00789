/* Unit tests of the settings table and parser (ipc/config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static char tmpdir[] = "/tmp/tlsgate-cfgtest.XXXXXX";

/* Writes text to a file in the test folder; returns its path (static). */
static const char *write_conf(const char *text)
{
    static char path[PATH_MAX];
    FILE *f;

    snprintf(path, sizeof(path), "%s/test.conf", tmpdir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Runs cfg_from_args on a NULL-terminated list; returns its result. */
static int from_args(struct tg_config *cfg, const char **list, char *err,
                     size_t errlen, int *left)
{
    char *argv[64];
    int argc = 0, rc;

    argv[argc++] = "prog";
    for (; *list; list++)
        argv[argc++] = (char *)*list;
    argv[argc] = NULL;
    rc = cfg_from_args(cfg, &argc, argv, err, errlen);
    if (left)
        *left = argc;
    return rc;
}

static void test_defaults(void **state)
{
    struct tg_config cfg;
    char err[256];
    const char *args[] = {"--state-dir", "/srv/tg", NULL};

    assert_int_equal(from_args(&cfg, args, err, sizeof(err), NULL), 0);
    assert_string_equal(cfg.state_dir, "/srv/tg");
    assert_string_equal(cfg.engine_socket, "/srv/tg/engine.sock");
    assert_string_equal(cfg.policy_dir, "/srv/tg/policy");
    assert_string_equal(cfg.tls_cert, "/srv/tg/tls/cert.pem");
    assert_string_equal(cfg.tls_key, "/srv/tg/tls/key.pem");
    assert_string_equal(cfg.mail_dir, "/srv/tg/mail");
    assert_string_equal(cfg.queue_dir, "/srv/tg/queue");
    assert_string_equal(cfg.inbound_listen, "127.0.0.1:2525 [::1]:2525");
    assert_string_equal(cfg.submission_listen, "127.0.0.1:2587");
    assert_int_equal(cfg.max_message_size, 25UL * 1024 * 1024);
    assert_int_equal(cfg.command_timeout, 300);
    assert_int_equal(cfg.queue_lifetime, 5UL * 86400);
    assert_int_equal(cfg.restart_delay_max, 60);
    assert_int_equal(cfg.tls_tickets, 1);
    assert_string_equal(cfg.log_target, "stderr");
    assert_true(cfg.hostname[0] != '\0');
}

/* The default state folder is ./var, made absolute against the cwd. */
static void test_default_state_dir(void **state)
{
    struct tg_config cfg;
    char err[256], cwd[PATH_MAX], want[PATH_MAX + 16];
    const char *args[] = {NULL};

    assert_non_null(getcwd(cwd, sizeof(cwd)));
    snprintf(want, sizeof(want), "%s/var", cwd);
    assert_int_equal(from_args(&cfg, args, err, sizeof(err), NULL), 0);
    assert_string_equal(cfg.state_dir, want);
    assert_true(cfg.engine_socket[0] == '/');
}

static void test_file_parsing(void **state)
{
    struct tg_config cfg;
    char err[256];
    const char *path = write_conf("# a comment\n"
                                  "; another\n"
                                  "\n"
                                  "hostname = mx.example.net\n"
                                  "  max_message_size = 10m\n"
                                  "\tcommand_timeout=2m\n"
                                  "tls_tickets = off\n"
                                  "inbound-workers = 3\n"
                                  "data_timeout = 90 ; inline comment\n");
    const char *args[] = {"--config", path, "--state-dir", "/srv", NULL};

    assert_int_equal(from_args(&cfg, args, err, sizeof(err), NULL), 0);
    assert_string_equal(cfg.hostname, "mx.example.net");
    assert_int_equal(cfg.max_message_size, 10UL * 1024 * 1024);
    assert_int_equal(cfg.command_timeout, 120);
    assert_int_equal(cfg.tls_tickets, 0);
    assert_int_equal(cfg.inbound_workers, 3);
    assert_int_equal(cfg.data_timeout, 90);
}

/* Each bad file names its line and the reason. */
static void test_file_errors(void **state)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"hostname = a\nnot a setting line\n", "line 2: not 'key = value'"},
        {"\n\nno_such_key = 1\n", "line 3: unknown setting 'no_such_key'"},
        {"max_recipients = lots\n", "line 1: max_recipients: 'lots'"},
        {"[section]\nhostname = a\n", "line 1: sections are not used"},
        {"max_errors = 0\n", "line 1: max_errors: '0' is not a number"},
        {"tls_tickets = maybe\n", "line 1: tls_tickets: 'maybe' is not"},
        {"hostname = a\nlog = stderr\nhostname = b\n",
         "line 3: 'hostname' is already set on line 1"},
        {"max-errors = 3\nmax_errors = 4\n",
         "line 2: 'max_errors' is already set on line 1"},
        {"log_level = loud\n", "line 1: log_level: 'loud' is not debug"},
        {"inbound_listen = 127.0.0.1:99999\n", "line 1: inbound_listen: "},
    };
    struct tg_config cfg;
    char err[512];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *path = write_conf(cases[i].text);

        cfg_defaults(&cfg);
        assert_int_equal(cfg_load_file(&cfg, path, err, sizeof(err)), -1);
        if (strstr(err, cases[i].want) == NULL)
            fail_msg("case %zu: got '%s', want '%s'", i, err, cases[i].want);
        assert_non_null(strstr(err, path));
    }
}

/* A line longer than inih's buffer is refused, not split in two. */
static void test_long_line(void **state)
{
    struct tg_config cfg;
    char text[600], err[512];

    memset(text, 0, sizeof(text));
    strcpy(text, "hostname = a\ntls_priority = ");
    /* The longest line that fits is accepted. */
    memset(text + strlen(text), 'z', 197 - strlen("tls_priority = "));
    strcat(text, "\n");
    cfg_defaults(&cfg);
    assert_int_equal(cfg_load_file(&cfg, write_conf(text), err, sizeof(err)),
                     0);
    assert_int_equal(strlen(cfg.tls_priority), 197 - strlen("tls_priority = "));
    strcpy(text, "hostname = a\ntls_priority = ");
    memset(text + strlen(text), 'x', 300);
    strcat(text, "\ntls_priority = ");
    memset(text + strlen(text), 'y', 197 - strlen("tls_priority = "));
    strcat(text, "\n");
    cfg_defaults(&cfg);
    assert_int_equal(cfg_load_file(&cfg, write_conf(text), err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "line 2: longer than"));
}

/* A NUL byte inside a line is refused with its line number, not cut. */
static void test_nul_byte(void **state)
{
    static const char text[] = "log = stderr\nhostname = ab\0cd\n";
    struct tg_config cfg;
    char path[PATH_MAX], err[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/nul.conf", tmpdir);
    f = fopen(path, "w");
    assert_non_null(f);
    fwrite(text, 1, sizeof(text) - 1, f);
    fclose(f);
    cfg_defaults(&cfg);
    assert_int_equal(cfg_load_file(&cfg, path, err, sizeof(err)), -1);
    if (strstr(err, "line 2: has a NUL byte") == NULL)
        fail_msg("got '%s'", err);
}

/* hostname must be a DNS name; it is stored in lower case. */
static void test_hostname(void **state)
{
    static const char *const bad[] = {
        "a b\"<x>",
        "a..b",
        ".a",
        "a.",
        "a_b.example",
        "h\xc3\xa9.example",
        "[1.2.3.4]",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.x"};
    struct tg_config cfg;
    char err[256], name[300];

    cfg_defaults(&cfg);
    assert_int_equal(cfg_set(&cfg, "hostname", "MX-1.Example.NET", err, 256),
                     0);
    assert_string_equal(cfg.hostname, "mx-1.example.net");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (cfg_set(&cfg, "hostname", bad[i], err, 256) != -1)
            fail_msg("'%s' accepted", bad[i]);
        assert_non_null(strstr(err, "is not a DNS name"));
        assert_string_equal(cfg.hostname, "mx-1.example.net");
    }
    /* 63-character labels, 253 characters in all. */
    memset(name, 0, sizeof(name));
    for (int i = 0; i < 4; i++)
        memset(name + i * 64, 'a', 63), name[i * 64 + 63] = '.';
    name[253] = '\0';
    assert_int_equal(cfg_set(&cfg, "hostname", name, err, 256), 0);
    name[253] = 'a';
    name[254] = '\0';
    assert_int_equal(cfg_set(&cfg, "hostname", name, err, 256), -1);
    {
        const char *args[] = {"--hostname", "a b\"<x>", NULL};

        assert_int_equal(from_args(&cfg, args, err, 256, NULL), -1);
        assert_non_null(strstr(err, "hostname: "));
    }
}

/* log, log_level and the listen lists are checked when set. */
static void test_enums_and_listen(void **state)
{
    static const struct {
        const char *key, *value;
        int ok;
    } cases[] = {
        {"log", "syslog", 0},
        {"log", "file", -1},
        {"log_level", "warn", 0},
        {"log_level", "loud", -1},
        {"log_level", "INFO", -1},
        {"inbound_listen", "127.0.0.1:99999", -1},
        {"inbound_listen", "localhost:25", -1},
        {"inbound_listen", "127.0.0.1:25 nonsense", -1},
        {"inbound_listen", "127.0.0.1:25 [::1]:25 *:2525", 0},
        {"inbound_listen", "", 0},
        {"submission_listen", "[::1]:70000", -1},
        {"submission_listen", "127.0.0.1:587", 0},
    };
    struct tg_config cfg;
    char err[256];

    cfg_defaults(&cfg);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = cfg_set(&cfg, cases[i].key, cases[i].value, err, 256);

        if (rc != cases[i].ok)
            fail_msg("%s = '%s': rc %d", cases[i].key, cases[i].value, rc);
        if (rc < 0 && strncmp(err, cases[i].key, strlen(cases[i].key)) != 0)
            fail_msg("%s: message '%s'", cases[i].key, err);
    }
    /* cfg_finish checks a struct filled by hand too. */
    snprintf(cfg.log_level, sizeof(cfg.log_level), "loud");
    assert_int_equal(cfg_finish(&cfg, err, 256), -1);
}

static void test_missing_file(void **state)
{
    struct tg_config cfg;
    char err[512];
    const char *args[] = {"--config", "/nonexistent/tlsgate.conf", NULL};
    const char *lone[] = {"--config", NULL};

    assert_int_equal(from_args(&cfg, args, err, sizeof(err), NULL), -1);
    assert_non_null(strstr(err, "/nonexistent/tlsgate.conf"));
    assert_int_equal(from_args(&cfg, lone, err, sizeof(err), NULL), -1);
    assert_non_null(strstr(err, "--config"));
}

/* Flags win over the file wherever they stand; unknown args are kept. */
static void test_override_order(void **state)
{
    struct tg_config cfg;
    char err[256];
    const char *path = write_conf("max_recipients = 7\nmax_errors = 4\n"
                                  "hostname = file.example\n");
    const char *args[] = {"--max-recipients",
                          "9",
                          "--config",
                          path,
                          "--hostname=flag.example",
                          "extra",
                          "--unknown-flag",
                          "-x",
                          "",
                          NULL};
    int left;

    assert_int_equal(from_args(&cfg, args, err, sizeof(err), &left), 0);
    assert_int_equal(cfg.max_recipients, 9);
    assert_int_equal(cfg.max_errors, 4);
    assert_string_equal(cfg.hostname, "flag.example");
    assert_int_equal(left, 5); /* prog extra --unknown-flag -x "" */
}

static void test_numbers(void **state)
{
    struct tg_config cfg;
    char err[256];

    cfg_defaults(&cfg);
    assert_int_equal(cfg_set(&cfg, "max_message_size", "512k", err, 256), 0);
    assert_int_equal(cfg.max_message_size, 512UL * 1024);
    assert_int_equal(cfg_set(&cfg, "max_message_size", "1G", err, 256), 0);
    assert_int_equal(cfg.max_message_size, 1UL << 30);
    assert_int_equal(cfg_set(&cfg, "max_message_size", "3kb", err, 256), 0);
    assert_int_equal(cfg.max_message_size, 3072);
    assert_int_equal(cfg_set(&cfg, "queue_lifetime", "2d", err, 256), 0);
    assert_int_equal(cfg.queue_lifetime, 2UL * 86400);
    assert_int_equal(cfg_set(&cfg, "retry_max", "1h", err, 256), 0);
    assert_int_equal(cfg.retry_max, 3600);
    assert_int_equal(cfg_set(&cfg, "tls_tickets", "TRUE", err, 256), 0);
    assert_int_equal(cfg.tls_tickets, 1);
    assert_int_equal(cfg_set(&cfg, "tls_tickets", "0", err, 256), 0);
    assert_int_equal(cfg.tls_tickets, 0);

    /* Out of range, wrong unit, sign, garbage: refused, value kept. */
    assert_int_equal(cfg_set(&cfg, "max_message_size", "1t", err, 256), -1);
    assert_int_equal(cfg_set(&cfg, "max_message_size", "100", err, 256), -1);
    assert_int_equal(cfg_set(&cfg, "max_message_size", "-5", err, 256), -1);
    assert_int_equal(cfg_set(&cfg, "max_recipients", "5m", err, 256), -1);
    assert_int_equal(cfg_set(&cfg, "max_recipients", "0", err, 256), -1);
    assert_int_equal(cfg_set(&cfg, "max_recipients", "100001", err, 256), -1);
    assert_int_equal(cfg_set(&cfg, "command_timeout", "2w", err, 256), -1);
    assert_int_equal(cfg_set(&cfg, "command_timeout", "2d", err, 256), -1);
    assert_int_equal(cfg_set(&cfg, "max_errors", " 5", err, 256), -1);
    assert_int_equal(
        cfg_set(&cfg, "max_errors", "99999999999999999999999", err, 256), -1);
    assert_int_equal(cfg.max_message_size, 3072);
    assert_int_equal(cfg.max_recipients, 100);
    assert_non_null(strstr(err, "max_errors"));
}

static void test_strings(void **state)
{
    struct tg_config cfg;
    char err[256], big[1024];

    cfg_defaults(&cfg);
    assert_int_equal(cfg_set(&cfg, "hostname", "a\nb", err, 256), -1);
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(cfg_set(&cfg, "hostname", big, err, 256), -1);
    assert_int_equal(cfg_set(&cfg, "nope", "1", err, 256), -1);
    assert_non_null(strstr(err, "unknown setting 'nope'"));
}

/* Relative paths land under state_dir; absolute ones stay. */
static void test_paths(void **state)
{
    struct tg_config cfg;
    char err[256];
    const char *args[] = {"--state-dir", "/srv/tg",      "--queue-dir",
                          "spool/q",     "--mail_dir",   "/var/mail/tg",
                          "--tls-cert",  "certs/gw.pem", NULL};

    assert_int_equal(from_args(&cfg, args, err, sizeof(err), NULL), 0);
    assert_string_equal(cfg.queue_dir, "/srv/tg/spool/q");
    assert_string_equal(cfg.mail_dir, "/var/mail/tg");
    assert_string_equal(cfg.tls_cert, "/srv/tg/certs/gw.pem");
    assert_string_equal(cfg.tls_key, "/srv/tg/tls/key.pem");
}

/* What a child gets (cfg_to_args) parses back to the same settings. */
static void test_round_trip(void **state)
{
    struct tg_config a, b;
    char err[256], *args[128], *copy[128];
    const char *in[] = {"--state-dir",
                        "/srv/tg",
                        "--max-message-size",
                        "7m",
                        "--tls-tickets",
                        "no",
                        "--hostname",
                        "h.example",
                        "--command-timeout",
                        "1h",
                        NULL};
    int n, argc, keys = 0;

    for (const struct cfg_key *k = cfg_keys; k->name; k++)
        keys++;
    assert_int_equal(from_args(&a, in, err, sizeof(err), NULL), 0);
    n = cfg_to_args(&a, args + 1, 120);
    assert_int_equal(n, keys);
    args[0] = "child";
    args[n + 1] = NULL;
    argc = n + 1;
    memcpy(copy, args, sizeof(args)); /* the parser reorders argv */
    assert_int_equal(cfg_from_args(&b, &argc, args, err, sizeof(err)), 0);
    assert_int_equal(argc, 1);
    assert_memory_equal(&a, &b, sizeof(a));
    for (int i = 1; i <= n; i++)
        free(copy[i]);
    assert_int_equal(cfg_to_args(&a, args, 3), -1);
    for (int i = 0; i < 3; i++)
        free(args[i]);
}

static void test_markdown(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    cfg_print_markdown(f);
    fclose(f);
    assert_non_null(strstr(buf, "| `state_dir` | path | `./var` |"));
    assert_non_null(strstr(buf, "| `restart_delay_max` | duration |"));
    free(buf);
}

static int setup(void **state)
{
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/test.conf", tmpdir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/nul.conf", tmpdir);
    unlink(path);
    return rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_default_state_dir),
        cmocka_unit_test(test_file_parsing),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_hostname),
        cmocka_unit_test(test_enums_and_listen),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_override_order),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_markdown),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
