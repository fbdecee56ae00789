/* Helpers every tlsgate-admin command shares. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"

bool adm_quiet;

/* Prints the message as one line: control bytes become '?'. */
static void adm_vmsg(const char *fmt, va_list ap)
{
    char buf[1024];

    if (adm_quiet)
        return;
    vsnprintf(buf, sizeof(buf), fmt, ap);
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    fprintf(stderr, "tlsgate-admin: %s\n", buf);
}

int adm_err(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    adm_vmsg(fmt, ap);
    va_end(ap);
    return ADM_FAIL;
}

int adm_usage(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    adm_vmsg(fmt, ap);
    va_end(ap);
    return ADM_USAGE;
}

int adm_store_err(int rc, const char *what)
{
    if (rc == STORE_ENOINIT)
        return adm_err("%s: the store is not initialised (run 'tlsgate-admin "
                       "init --platform-domain DOMAIN')",
                       what);
    return adm_err("%s: %s", what, store_strerror(rc));
}

/* The topmost folder adm_mkparents created ("" when none): a failed
 * command removes it again. */
static char adm_created_top[4096];

/* Creates the folders above path that are missing (like mkdir -p on its
 * parent), so that init works in a fresh checkout. */
static int adm_mkparents(const char *path)
{
    char buf[4096];
    size_t len = strlen(path);

    if (len >= sizeof(buf))
        return adm_err("store path too long: %s", path);
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) == 0) {
            if (adm_created_top[0] == '\0')
                snprintf(adm_created_top, sizeof(adm_created_top), "%s", buf);
        } else if (errno != EEXIST)
            return adm_err("cannot create %s: %s", buf, strerror(errno));
        *p = '/';
    }
    return ADM_OK;
}

/* Whether dir holds an LMDB store (its data.mdb). */
static bool adm_store_exists(const char *dir)
{
    char path[4200];

    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    return access(path, F_OK) == 0;
}

/* After a failed command that created the store: removes its files, its
 * folder and the parents made for it, so that nothing is left behind. */
static void adm_undo_create(const char *dir, bool dir_existed)
{
    char path[4200];

    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", dir);
    unlink(path);
    if (dir_existed)
        return;
    snprintf(path, sizeof(path), "%s", dir);
    while (rmdir(path) == 0 && adm_created_top[0] &&
           strcmp(path, adm_created_top) != 0) {
        char *slash = strrchr(path, '/');

        if (slash == NULL || slash == path)
            break;
        *slash = '\0';
    }
}

int adm_open(struct adm_ctx *c, bool write, bool create, struct store **out)
{
    unsigned flags = (write ? 0 : STORE_RDONLY) | (create ? STORE_CREATE : 0);
    struct stat sb;
    int rc;

    if (!create && stat(c->db, &sb) != 0)
        return adm_err("no policy store at %s (run 'tlsgate-admin init "
                       "--platform-domain DOMAIN', or give --db DIR)",
                       c->db);
    if (!create && !adm_store_exists(c->db))
        return adm_err("no policy store in %s (the folder has no data.mdb; "
                       "run 'tlsgate-admin init --platform-domain DOMAIN', "
                       "or give --db DIR)",
                       c->db);
    if (create && adm_mkparents(c->db) != ADM_OK)
        return ADM_FAIL;
    rc = store_open(out, c->db, 0, flags);
    if (rc == STORE_ENOINIT && !write)
        return adm_err("the store %s is not initialised (run 'tlsgate-admin "
                       "init --platform-domain DOMAIN')",
                       c->db);
    if (rc < 0)
        return adm_err("cannot open the store %s: %s", c->db,
                       store_strerror(rc));
    return ADM_OK;
}

int adm_read_begin(struct adm_ctx *c, struct store **st, struct store_txn **txn)
{
    int rc;

    if (adm_open(c, false, false, st) != ADM_OK)
        return ADM_FAIL;
    if ((rc = store_begin(*st, false, txn)) < 0) {
        store_close(*st);
        return adm_store_err(rc, "read transaction");
    }
    return ADM_OK;
}

void adm_read_end(struct store *st, struct store_txn *txn)
{
    store_abort(txn);
    store_close(st);
}

/* Prints the generation a commit produced, read back in a new snapshot. */
static int adm_print_written(struct store *st)
{
    struct store_txn *txn;
    json_t *doc;
    int rc;

    if ((rc = store_begin(st, false, &txn)) < 0)
        return adm_store_err(rc, "read transaction");
    doc = json_pack("{s:b, s:I}", "ok", 1, "generation",
                    (json_int_t)store_generation(txn));
    store_abort(txn);
    return adm_json_out(doc, stdout, false);
}

int adm_write(struct adm_ctx *c, bool create, adm_write_fn fn, void *arg)
{
    struct store *st;
    struct store_txn *txn;
    struct stat sb;
    bool existed = adm_store_exists(c->db);
    bool dir_existed = stat(c->db, &sb) == 0;
    int rc;

    if (adm_open(c, true, create, &st) != ADM_OK) {
        if (create && !existed)
            adm_undo_create(c->db, dir_existed);
        return ADM_FAIL;
    }
    if ((rc = store_begin(st, true, &txn)) < 0) {
        store_close(st);
        rc = adm_store_err(rc, "write transaction");
    } else if ((rc = fn(c, txn, arg)) != ADM_OK) {
        store_abort(txn);
        store_close(st);
    } else if ((rc = store_commit(txn)) < 0) {
        store_close(st);
        rc = adm_store_err(rc, "commit");
    }
    if (rc != ADM_OK) {
        /* A failed command changes nothing, not even the folder. */
        if (create && !existed)
            adm_undo_create(c->db, dir_existed);
        return rc;
    }

    rc = c->json ? adm_print_written(st) : ADM_OK;
    store_close(st);
    return rc;
}

int adm_tenant_name(const char *name)
{
    if (!store_tenant_name_ok(name))
        return adm_err("bad tenant name '%s' (1 to %d of a-z, 0-9 and '-', "
                       "not starting or ending with '-')",
                       name, TENANT_MAX);
    return ADM_OK;
}

int adm_tenant(struct store_txn *txn, const char *name,
               struct tenant_info *info)
{
    struct tenant_info tmp;
    int rc;

    if (adm_tenant_name(name) != ADM_OK)
        return ADM_FAIL;
    rc = store_tenant_get(txn, name, info ? info : &tmp);
    if (rc == STORE_ENOTFOUND)
        return adm_err("no such tenant '%s'", name);
    if (rc < 0)
        return adm_store_err(rc, name);
    return ADM_OK;
}

/* Whether s is a bare IPv4 or IPv6 address. */
static bool adm_is_ip(const char *s)
{
    unsigned char buf[16];

    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

int adm_domain(const char *in, bool wildcard, char *out, size_t outlen)
{
    int rc = addr_domain_norm(in, wildcard, out, outlen);

    if (rc < 0 && wildcard && adm_is_ip(in))
        return adm_err("bad domain '%s': an IP address is written as an "
                       "address literal, in brackets: [%s]",
                       in, in);
    if (rc < 0)
        return adm_err("bad domain '%s': %s", in, addr_strerror(rc));
    if (!wildcard && out[0] == '[')
        return adm_err("malformed domain '%s': an address literal is not a "
                       "domain name",
                       in);
    return ADM_OK;
}

int adm_address(const char *in, struct addr *out)
{
    int rc = addr_parse(in, out);

    if (rc < 0)
        return adm_err("malformed address '%s': %s", in, addr_strerror(rc));
    if (out->full[0] == '\0')
        return adm_err("malformed address '%s': the null path is not an "
                       "address",
                       in);
    return ADM_OK;
}

int adm_level(const char *s, enum tls_level *out)
{
    if (tls_level_parse(s, out) < 0)
        return adm_usage("unknown level '%s' (none, may, encrypt, verify or "
                         "secure)",
                         s);
    return ADM_OK;
}

int adm_json_out(json_t *doc, FILE *f, bool sort)
{
    size_t flags = JSON_INDENT(2) | (sort ? JSON_SORT_KEYS : 0);
    int rc;

    if (doc == NULL)
        return adm_err("out of memory building JSON");
    rc = json_dumpf(doc, f, flags);
    json_decref(doc);
    if (rc < 0 || fputc('\n', f) == EOF)
        return adm_err("cannot write JSON output");
    return ADM_OK;
}

void adm_table_init(struct adm_table *t, int ncols)
{
    memset(t, 0, sizeof(*t));
    t->ncols = ncols;
}

void adm_table_row(struct adm_table *t, ...)
{
    va_list ap;

    if (t->nrows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cells = realloc(t->cells, t->cap * t->ncols * sizeof(char *));
        if (t->cells == NULL)
            abort(); /* out of memory in a short-lived tool */
    }
    va_start(ap, t);
    for (int k = 0; k < t->ncols; k++) {
        const char *s = va_arg(ap, const char *);

        t->cells[t->nrows * t->ncols + k] = strdup(s ? s : "");
    }
    va_end(ap);
    t->nrows++;
}

void adm_table_print(struct adm_table *t, FILE *f)
{
    size_t width[8] = {0};

    for (size_t r = 0; r < t->nrows; r++)
        for (int k = 0; k < t->ncols && k < 8; k++) {
            size_t len = strlen(t->cells[r * t->ncols + k]);

            width[k] = len > width[k] ? len : width[k];
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (int k = 0; k < t->ncols; k++) {
            const char *s = t->cells[r * t->ncols + k];
            bool last = k == t->ncols - 1;

            fprintf(f, "%-*s%s", last ? 0 : (int)width[k], s,
                    last ? "\n" : "  ");
            free((char *)s);
        }
    }
    free(t->cells);
    t->cells = NULL;
}
