/*
 * One log line per event, grep-able: "role[pid] level: id=... event k=v".
 * Callers write the "id=... event key=value" part; this adds the rest.
 */
#ifndef TLSGATE_LOG_H
#define TLSGATE_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERR };

/* Names the process role for every line; to_syslog sends lines to syslog
 * (facility mail) instead of stderr. Safe to call again after fork. */
void log_init(const char *role, int to_syslog);

/* Lines below min are dropped; the default is LOG_LVL_INFO. */
void log_set_level(enum log_level min);

void log_msg(enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level lvl, const char *fmt, va_list ap);

/* For a broken environment at start-up only: logs and exits with status 1. */
void log_fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_err(...)   log_msg(LOG_LVL_ERR, __VA_ARGS__)

/* Copies s into dst (size n) so that it is safe as a key=value value:
 * control bytes, spaces, quotes and non-ASCII become \xHH. Returns dst. */
char *log_escape(char *dst, size_t n, const char *s);

#endif
