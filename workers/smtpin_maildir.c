#include "smtpin_maildir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* A tenant name: [a-z0-9-], 1..63, no leading or trailing '-'. */
static bool tenant_ok(const char *s, size_t n)
{
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '-'))
            return false;
    return true;
}

/* A dot-atom of the characters that may name a folder. */
static bool local_ok(const char *s, size_t n)
{
    static const char extra[] = "!#$%&'*+=?^_`{|}~-.";

    if (n == 0 || n > 64 || s[0] == '.' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (c == '.' && s[i + 1] == '.')
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              (c && strchr(extra, c))))
            return false;
    }
    return true;
}

bool smtpin_mailbox_dir_ok(const char *mdir)
{
    const char *slash = strchr(mdir, '/');

    if (!slash || strchr(slash + 1, '/'))
        return false;
    return tenant_ok(mdir, (size_t)(slash - mdir)) &&
           local_ok(slash + 1, strlen(slash + 1));
}

/* mkdir that accepts an existing real folder (not a symbolic link). */
static int make_dir(const char *path)
{
    struct stat st;

    if (mkdir(path, 0700) == 0)
        return 0;
    if (errno != EEXIST)
        return -errno;
    if (lstat(path, &st) != 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int smtpin_maildir_make(const char *root, const char *mdir, char *path,
                        size_t n)
{
    static const char *const sub[] = {"tmp", "new", "cur"};
    const char *slash = strchr(mdir, '/');
    char p[PATH_MAX];
    int r;

    if (!smtpin_mailbox_dir_ok(mdir))
        return -EINVAL;
    if (snprintf(p, sizeof(p), "%s/%.*s", root, (int)(slash - mdir), mdir) >=
        (int)sizeof(p))
        return -ENAMETOOLONG;
    if ((r = make_dir(root)) < 0 || (r = make_dir(p)) < 0)
        return r;
    if (snprintf(path, n, "%s/%s", root, mdir) >= (int)n)
        return -ENAMETOOLONG;
    if ((r = make_dir(path)) < 0)
        return r;
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/%s", path, sub[i]);
        if ((r = make_dir(p)) < 0)
            return r;
    }
    return 0;
}

void smtpin_maildir_name(char *buf, size_t n, const char *host)
{
    static unsigned long seq;
    struct timeval tv;
    char h[128];
    size_t o = 0;

    for (const char *s = host; *s && o + 5 < sizeof(h); s++) {
        if (*s == '/' || *s == ':')
            o += (size_t)snprintf(h + o, sizeof(h) - o, "\\%03o",
                                  (unsigned char)*s);
        else
            h[o++] = *s;
    }
    h[o] = '\0';
    gettimeofday(&tv, NULL);
    snprintf(buf, n, "%ld.%ld_%lu.%s", (long)tv.tv_sec, (long)getpid(), ++seq,
             h);
}

/* dir/sub/name into out. */
static int file_path(char *out, size_t n, const char *dir, const char *sub,
                     const char *name)
{
    return snprintf(out, n, "%s/%s/%s", dir, sub, name) >= (int)n
               ? -ENAMETOOLONG
               : 0;
}

int smtpin_delivery_open(struct smtpin_delivery *d, char (*dirs)[PATH_MAX],
                         size_t ndirs, const char *host)
{
    char p[PATH_MAX + 300];

    memset(d, 0, sizeof(*d));
    d->fd = -1;
    if (ndirs == 0)
        return -EINVAL;
    d->dirs = malloc(ndirs * sizeof(*d->dirs));
    if (!d->dirs)
        return -ENOMEM;
    memcpy(d->dirs, dirs, ndirs * sizeof(*d->dirs));
    d->ndirs = ndirs;
    smtpin_maildir_name(d->name, sizeof(d->name), host);
    if (file_path(p, sizeof(p), d->dirs[0], "tmp", d->name) < 0)
        return -ENAMETOOLONG;
    d->fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    return d->fd < 0 ? -errno : 0;
}

int smtpin_delivery_write(struct smtpin_delivery *d, const void *buf,
                          size_t len)
{
    const char *p = buf;

    while (d->err == 0 && len > 0) {
        ssize_t w = write(d->fd, p, len);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            d->err = -errno;
        else
            p += w, len -= (size_t)w;
    }
    return d->err;
}

/* fsync of a folder by path. */
static int sync_dir(const char *dir, const char *sub)
{
    char p[PATH_MAX + 8];
    int fd, r = 0;

    snprintf(p, sizeof(p), "%s/%s", dir, sub);
    fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fsync(fd) != 0)
        r = -errno;
    close(fd);
    return r;
}

/* Removes dirs[i]/sub/name for i < upto. */
static void unlink_all(struct smtpin_delivery *d, const char *sub, size_t upto)
{
    char p[PATH_MAX + 300];

    for (size_t i = 0; i < upto; i++)
        if (file_path(p, sizeof(p), d->dirs[i], sub, d->name) == 0)
            unlink(p);
}

/* Hard-links the first tmp file into every other tmp/. Returns how many
 * tmp files exist (from dirs[0]) and sets *err on failure. */
static size_t link_all(struct smtpin_delivery *d, int *err)
{
    char src[PATH_MAX + 300], dst[PATH_MAX + 300];
    size_t i;

    file_path(src, sizeof(src), d->dirs[0], "tmp", d->name);
    for (i = 1; i < d->ndirs; i++) {
        if ((*err = file_path(dst, sizeof(dst), d->dirs[i], "tmp", d->name)))
            break;
        if (link(src, dst) != 0) {
            *err = -errno;
            break;
        }
    }
    return i;
}

/* Renames tmp/name into new/name in every Maildir, then syncs new/. */
static int publish_all(struct smtpin_delivery *d)
{
    char src[PATH_MAX + 300], dst[PATH_MAX + 300];
    size_t i;
    int r = 0;

    for (i = 0; i < d->ndirs && r == 0; i++) {
        file_path(src, sizeof(src), d->dirs[i], "tmp", d->name);
        file_path(dst, sizeof(dst), d->dirs[i], "new", d->name);
        if (rename(src, dst) != 0)
            r = -errno;
    }
    for (size_t j = 0; j < d->ndirs && r == 0; j++)
        r = sync_dir(d->dirs[j], "new");
    if (r < 0) {
        unlink_all(d, "new", d->ndirs);
        unlink_all(d, "tmp", d->ndirs);
    }
    return r;
}

int smtpin_delivery_commit(struct smtpin_delivery *d)
{
    int r = d->err;
    size_t linked;

    if (r == 0 && fsync(d->fd) != 0)
        r = -errno;
    if (close(d->fd) != 0 && r == 0)
        r = -errno;
    d->fd = -1;
    if (r < 0) {
        unlink_all(d, "tmp", 1);
        return r;
    }
    linked = link_all(d, &r);
    if (r < 0) {
        unlink_all(d, "tmp", linked);
        return r;
    }
    return publish_all(d);
}

void smtpin_delivery_abort(struct smtpin_delivery *d)
{
    if (d->fd >= 0) {
        close(d->fd);
        d->fd = -1;
        unlink_all(d, "tmp", 1);
    }
}

void smtpin_delivery_free(struct smtpin_delivery *d)
{
    free(d->dirs);
    d->dirs = NULL;
    d->ndirs = 0;
}

/* Stale regular files in one tmp/ folder. */
static unsigned long sweep_tmp(const char *tmp, time_t cutoff)
{
    DIR *d = opendir(tmp);
    struct dirent *e;
    unsigned long n = 0;
    char p[PATH_MAX + 256];
    struct stat st;

    if (!d)
        return 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", tmp, e->d_name);
        if (lstat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_mtime < cutoff &&
            unlink(p) == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* Sweeps root/<tenant>/<local>/tmp: depth 0 is root, 1 a tenant folder
 * (dot names and symbolic links skipped). */
static unsigned long each_dir(const char *dir, time_t cutoff, int depth)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    unsigned long n = 0;
    char p[PATH_MAX];
    struct stat st;

    if (!d)
        return 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' ||
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name) >= (int)sizeof(p))
            continue;
        if (lstat(p, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (depth == 0) {
            n += each_dir(p, cutoff, 1);
        } else if (strlen(p) + 5 < sizeof(p)) {
            strcat(p, "/tmp");
            n += sweep_tmp(p, cutoff);
        }
    }
    closedir(d);
    return n;
}

unsigned long smtpin_maildir_sweep(const char *root, long max_age)
{
    return each_dir(root, time(NULL) - max_age, 0);
}
