/* Unit tests of the gateway certificate (workers/tlscert.c), checked by
 * loading the files with GnuTLS itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>

#include "config.h"
#include "tlscert.h"

static char tmpdir[] = "/tmp/tlsgate-certtest.XXXXXX";

/* Settings with the TLS files under a fresh sub-folder of tmpdir. */
static void make_cfg(struct tg_config *cfg, const char *sub)
{
    char err[256], dir[PATH_MAX];

    cfg_defaults(cfg);
    snprintf(dir, sizeof(dir), "%s/%s", tmpdir, sub);
    assert_int_equal(cfg_set(cfg, "state_dir", dir, err, sizeof(err)), 0);
    assert_int_equal(cfg_set(cfg, "hostname", "gw.example.net", err, 256), 0);
    assert_int_equal(cfg_finish(cfg, err, sizeof(err)), 0);
    assert_int_equal(mkdir(dir, 0750), 0);
}

static gnutls_x509_crt_t load_crt(const char *path)
{
    gnutls_datum_t d;
    gnutls_x509_crt_t crt;

    assert_int_equal(gnutls_load_file(path, &d), 0);
    assert_int_equal(gnutls_x509_crt_init(&crt), 0);
    assert_int_equal(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM), 0);
    gnutls_free(d.data);
    return crt;
}

/* Collects the SANs as "dns:NAME" / "ip4" / "ip6" words in out. */
static void sans(gnutls_x509_crt_t crt, char *out, size_t n)
{
    char buf[256];

    out[0] = '\0';
    for (unsigned i = 0;; i++) {
        size_t len = sizeof(buf);
        unsigned type;
        int rc = gnutls_x509_crt_get_subject_alt_name2(crt, i, buf, &len, &type,
                                                       NULL);

        if (rc < 0)
            break;
        if (type == GNUTLS_SAN_DNSNAME)
            snprintf(out + strlen(out), n - strlen(out), "dns:%.*s ", (int)len,
                     buf);
        else if (type == GNUTLS_SAN_IPADDRESS)
            snprintf(out + strlen(out), n - strlen(out), "ip%s ",
                     len == 4 ? "4" : "6");
    }
}

static void test_generate(void **state)
{
    struct tg_config cfg;
    struct tlsc_creds *creds, *session;
    gnutls_x509_crt_t crt;
    unsigned bits = 0;
    time_t now = time(NULL), exp;
    char err[512], names[512];
    struct stat st;

    make_cfg(&cfg, "gen");
    assert_int_equal(tlsc_ensure_cert(&cfg, err, sizeof(err)), 0);
    assert_int_equal(stat(cfg.tls_key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(cfg.tls_dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    crt = load_crt(cfg.tls_cert);
    assert_int_equal(gnutls_x509_crt_get_pk_algorithm(crt, &bits),
                     GNUTLS_PK_ECDSA);
    assert_int_equal(bits, 256);
    sans(crt, names, sizeof(names));
    assert_string_equal(names, "dns:gw.example.net dns:localhost ip4 ip6 ");
    exp = gnutls_x509_crt_get_expiration_time(crt);
    assert_true(exp > now + 364 * 86400L && exp < now + 367 * 86400L);
    assert_true(gnutls_x509_crt_check_hostname(crt, "gw.example.net"));
    assert_true(gnutls_x509_crt_check_hostname(crt, "localhost"));
    assert_true(gnutls_x509_crt_check_ip(crt,
                                         (const unsigned char *)"\x7f"
                                                                "\0\0\x01",
                                         4, 0));
    assert_false(gnutls_x509_crt_check_hostname(crt, "other.example"));
    gnutls_x509_crt_deinit(crt);

    /* The pair loads into credentials, and reloads while a session still
     * holds the old ones. */
    assert_int_equal(tlsc_load(&cfg, &creds, err, sizeof(err)), 0);
    assert_non_null(tlsc_x509(creds));
    session = tlsc_ref(creds);
    assert_int_equal(tlsc_reload(&cfg, &creds, err, sizeof(err)), 0);
    assert_ptr_not_equal(session, creds);
    assert_non_null(tlsc_x509(session));
    tlsc_unref(session);
    tlsc_unref(creds);
}

/* An existing pair is kept as it is. */
static void test_keep_existing(void **state)
{
    struct tg_config cfg;
    char err[512];
    struct stat a, b;

    make_cfg(&cfg, "keep");
    assert_int_equal(tlsc_ensure_cert(&cfg, err, sizeof(err)), 0);
    assert_int_equal(stat(cfg.tls_cert, &a), 0);
    assert_int_equal(tlsc_ensure_cert(&cfg, err, sizeof(err)), 0);
    assert_int_equal(stat(cfg.tls_cert, &b), 0);
    assert_int_equal(a.st_ino, b.st_ino);
    assert_int_equal(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec);
}

/* A lone certificate or key is refused and left alone. */
static void test_lone_file(void **state)
{
    struct tg_config cfg;
    char err[512];

    make_cfg(&cfg, "lone");
    assert_int_equal(tlsc_ensure_cert(&cfg, err, sizeof(err)), 0);
    assert_int_equal(unlink(cfg.tls_key), 0);
    assert_int_equal(tlsc_ensure_cert(&cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "key.pem does not"));
    assert_int_equal(access(cfg.tls_key, F_OK), -1);

    assert_int_equal(rename(cfg.tls_cert, cfg.tls_key), 0);
    assert_int_equal(tlsc_ensure_cert(&cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cert.pem does not"));
}

/* Two pairs mixed: the key does not match the certificate. */
static void test_mismatch(void **state)
{
    struct tg_config a, b;
    struct tlsc_creds *creds;
    char err[512];

    make_cfg(&a, "mis1");
    make_cfg(&b, "mis2");
    assert_int_equal(tlsc_ensure_cert(&a, err, sizeof(err)), 0);
    assert_int_equal(tlsc_ensure_cert(&b, err, sizeof(err)), 0);
    assert_int_equal(rename(b.tls_key, a.tls_key), 0);
    assert_int_equal(tlsc_ensure_cert(&a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cert.pem"));

    /* A failed reload keeps the credentials in use. */
    assert_int_equal(tlsc_load(&b, &creds, err, sizeof(err)), -1);
    creds = NULL;
    assert_int_equal(tlsc_reload(&a, &creds, err, sizeof(err)), -1);
    assert_null(creds);
}

static int setup(void **state)
{
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[PATH_MAX + 16];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate),
        cmocka_unit_test(test_keep_existing),
        cmocka_unit_test(test_lone_file),
        cmocka_unit_test(test_mismatch),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
