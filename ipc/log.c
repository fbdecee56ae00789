#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static char log_role[32] = "tlsgate";
static int log_syslog;
static enum log_level log_min = LOG_LVL_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const int level_prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};

void log_init(const char *role, int to_syslog)
{
    snprintf(log_role, sizeof(log_role), "%s", role);
    log_syslog = to_syslog;
    if (to_syslog)
        openlog(log_role, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_set_level(enum log_level min)
{
    log_min = min;
}

void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
    char line[4096], out[4096 + 128];
    char stamp[32];
    int n;
    struct timespec ts;
    struct tm tm;

    if (lvl < log_min)
        return;
    vsnprintf(line, sizeof(line), fmt, ap);
    if (log_syslog) {
        syslog(level_prio[lvl], "%s", line);
        return;
    }

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    /* One write(2) per line, so lines from many processes never interleave
     * (dprintf would also fstat and lseek for every line). */
    n = snprintf(out, sizeof(out), "%s.%03ldZ %s[%ld] %s: %s\n", stamp,
                 ts.tv_nsec / 1000000, log_role, (long)getpid(),
                 level_names[lvl], line);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(out)) {
        n = sizeof(out) - 1;
        out[n - 1] = '\n';
    }
    while (write(STDERR_FILENO, out, (size_t)n) < 0 && errno == EINTR)
        ;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(lvl, fmt, ap);
    va_end(ap);
}

void log_fatal(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(LOG_LVL_ERR, fmt, ap);
    va_end(ap);
    exit(1);
}

char *log_escape(char *dst, size_t n, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    if (n == 0)
        return dst;
    for (; s && *s && o + 5 < n; s++) {
        unsigned char c = (unsigned char)*s;

        if (c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '=') {
            dst[o++] = (char)c;
            continue;
        }
        dst[o++] = '\\';
        dst[o++] = 'x';
        dst[o++] = hex[c >> 4];
        dst[o++] = hex[c & 15];
    }
    dst[o] = '\0';
    return dst;
}
