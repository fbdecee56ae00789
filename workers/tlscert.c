#include "tlscert.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CERT_DAYS 365

struct tlsc_creds {
    gnutls_certificate_credentials_t x509;
    unsigned refs;
};

/* Creates the parent folder of path (one level, mode 0700) if missing. */
static int make_parent(const char *path, char *err, size_t errlen)
{
    char copy[PATH_MAX];
    const char *dir;

    snprintf(copy, sizeof(copy), "%s", path);
    dir = dirname(copy);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* Syncs the folder holding path so that a rename into it is durable. */
static void sync_parent(const char *path)
{
    char copy[PATH_MAX];
    int fd;

    snprintf(copy, sizeof(copy), "%s", path);
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Writes data to path via "path.tmp.PID", synced, then renamed. */
static int write_atomic(const char *path, const gnutls_datum_t *data,
                        mode_t mode, char *err, size_t errlen)
{
    char tmp[PATH_MAX + 32];
    ssize_t n;
    int fd;

    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    n = write(fd, data->data, data->size);
    if (n != (ssize_t)data->size || fsync(fd) < 0) {
        snprintf(err, errlen, "%s: write: %s", tmp,
                 n < 0 ? strerror(errno) : "short write");
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        snprintf(err, errlen, "%s: rename: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    sync_parent(path);
    return 0;
}

/* Adds the subject alternative names: host name, localhost, loopback. */
static int add_sans(gnutls_x509_crt_t crt, const char *host)
{
    unsigned char v4[4], v6[16];
    int rc;

    rc = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, host,
                                              strlen(host), GNUTLS_FSAN_SET);
    if (rc == 0 && strcasecmp(host, "localhost") != 0)
        rc = gnutls_x509_crt_set_subject_alt_name(
            crt, GNUTLS_SAN_DNSNAME, "localhost", 9, GNUTLS_FSAN_APPEND);
    inet_pton(AF_INET, "127.0.0.1", v4);
    inet_pton(AF_INET6, "::1", v6);
    if (rc == 0)
        rc = gnutls_x509_crt_set_subject_alt_name(
            crt, GNUTLS_SAN_IPADDRESS, v4, sizeof(v4), GNUTLS_FSAN_APPEND);
    if (rc == 0)
        rc = gnutls_x509_crt_set_subject_alt_name(
            crt, GNUTLS_SAN_IPADDRESS, v6, sizeof(v6), GNUTLS_FSAN_APPEND);
    return rc;
}

/* Fills the fields of a one-year self-signed server certificate. */
static int fill_cert(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key,
                     const char *host)
{
    unsigned char serial[16], kid[64];
    size_t kid_len = sizeof(kid);
    time_t now = time(NULL);
    int rc;

    rc = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
    serial[0] &= 0x7f; /* a positive serial number */
    if (rc == 0)
        rc = gnutls_x509_crt_set_version(crt, 3);
    if (rc == 0)
        rc = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
    if (rc == 0)
        rc = gnutls_x509_crt_set_activation_time(crt, now - 3600);
    if (rc == 0)
        rc = gnutls_x509_crt_set_expiration_time(crt, now + CERT_DAYS * 86400L);
    if (rc == 0)
        rc = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
                                           host, strlen(host));
    if (rc == 0)
        rc = gnutls_x509_crt_set_key(crt, key);
    if (rc == 0)
        rc = add_sans(crt, host);
    if (rc == 0)
        rc = gnutls_x509_crt_set_basic_constraints(crt, 0, -1);
    if (rc == 0)
        rc = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
    if (rc == 0)
        rc = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER,
                                                 0);
    if (rc == 0)
        rc = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT,
                                                 0);
    if (rc == 0)
        rc = gnutls_x509_crt_get_key_id(crt, 0, kid, &kid_len);
    if (rc == 0)
        rc = gnutls_x509_crt_set_subject_key_id(crt, kid, kid_len);
    if (rc == 0)
        rc = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0);
    return rc;
}

/* Generates a key and its certificate and writes both, key first. */
static int generate_pair(const struct tg_config *cfg, char *err, size_t errlen)
{
    gnutls_x509_privkey_t key = NULL;
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t key_pem = {NULL, 0}, crt_pem = {NULL, 0};
    int rc, ret = -1;

    rc = gnutls_x509_privkey_init(&key);
    if (rc == 0)
        rc = gnutls_x509_privkey_generate(
            key, GNUTLS_PK_ECDSA,
            GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
    if (rc == 0)
        rc = gnutls_x509_crt_init(&crt);
    if (rc == 0)
        rc = fill_cert(crt, key, cfg->hostname);
    if (rc == 0)
        rc = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL,
                                               GNUTLS_PKCS_PLAIN, &key_pem);
    if (rc == 0)
        rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &crt_pem);
    if (rc < 0) {
        snprintf(err, errlen, "generating the certificate: %s",
                 gnutls_strerror(rc));
        goto out;
    }

    if (make_parent(cfg->tls_key, err, errlen) < 0 ||
        make_parent(cfg->tls_cert, err, errlen) < 0 ||
        write_atomic(cfg->tls_key, &key_pem, 0600, err, errlen) < 0 ||
        write_atomic(cfg->tls_cert, &crt_pem, 0644, err, errlen) < 0)
        goto out;
    ret = 0;

out:
    gnutls_free(key_pem.data);
    gnutls_free(crt_pem.data);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (key)
        gnutls_x509_privkey_deinit(key);
    return ret;
}

/* 1 when path exists, 0 when it does not, -1 (with err) on other errors. */
static int file_exists(const char *path, char *err, size_t errlen)
{
    struct stat st;

    if (stat(path, &st) == 0)
        return 1;
    if (errno == ENOENT)
        return 0;
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
}

int tlsc_ensure_cert(const struct tg_config *cfg, char *err, size_t errlen)
{
    struct tlsc_creds *probe;
    int have_cert, have_key;

    have_cert = file_exists(cfg->tls_cert, err, errlen);
    have_key = file_exists(cfg->tls_key, err, errlen);
    if (have_cert < 0 || have_key < 0)
        return -1;
    if (!have_cert && !have_key)
        return generate_pair(cfg, err, errlen);
    if (!have_cert || !have_key) {
        snprintf(err, errlen,
                 "%s exists but %s does not: give both, or remove it to "
                 "have a pair generated",
                 have_cert ? cfg->tls_cert : cfg->tls_key,
                 have_cert ? cfg->tls_key : cfg->tls_cert);
        return -1;
    }

    /* Both exist: they must load together. */
    if (tlsc_load(cfg, &probe, err, errlen) < 0)
        return -1;
    tlsc_unref(probe);
    return 0;
}

int tlsc_load(const struct tg_config *cfg, struct tlsc_creds **out, char *err,
              size_t errlen)
{
    struct tlsc_creds *c = calloc(1, sizeof(*c));
    int rc;

    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rc = gnutls_certificate_allocate_credentials(&c->x509);
    if (rc == 0)
        rc = gnutls_certificate_set_x509_key_file2(
            c->x509, cfg->tls_cert, cfg->tls_key, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc < 0) {
        snprintf(err, errlen, "%s / %s: %s", cfg->tls_cert, cfg->tls_key,
                 gnutls_strerror(rc));
        if (c->x509)
            gnutls_certificate_free_credentials(c->x509);
        free(c);
        return -1;
    }
    c->refs = 1;
    *out = c;
    return 0;
}

int tlsc_reload(const struct tg_config *cfg, struct tlsc_creds **current,
                char *err, size_t errlen)
{
    struct tlsc_creds *fresh;

    if (tlsc_load(cfg, &fresh, err, errlen) < 0)
        return -1;
    tlsc_unref(*current);
    *current = fresh;
    return 0;
}

gnutls_certificate_credentials_t tlsc_x509(const struct tlsc_creds *c)
{
    return c->x509;
}

struct tlsc_creds *tlsc_ref(struct tlsc_creds *c)
{
    c->refs++;
    return c;
}

void tlsc_unref(struct tlsc_creds *c)
{
    if (c == NULL || --c->refs > 0)
        return;
    gnutls_certificate_free_credentials(c->x509);
    free(c);
}
