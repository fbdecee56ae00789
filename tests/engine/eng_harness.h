/*
 * Helpers for the engine tests: a private temporary state folder, a real
 * tlsgate-engine process on a socket in it (killed when the test process
 * dies, and at cleanup), and a sample policy store built with the store
 * API.
 */
#ifndef TLSGATE_ENG_HARNESS_H
#define TLSGATE_ENG_HARNESS_H

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine_client.h"
#include "policy.h"
#include "store.h"

struct harness {
    char dir[256];
    char sock[320];
    char policy[320];
    char events[320];
    const char *engine_bin;
    pid_t pid;
};

static inline long h_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static inline void h_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Makes the temporary state folder; returns 0 or -1. */
static inline int h_setup(struct harness *h, const char *engine_bin)
{
    const char *tmp = getenv("TMPDIR");

    memset(h, 0, sizeof(*h));
    h->engine_bin = engine_bin;
    snprintf(h->dir, sizeof(h->dir), "%s/tlsgate-eng-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(h->dir))
        return -1;
    snprintf(h->sock, sizeof(h->sock), "%s/engine.sock", h->dir);
    snprintf(h->policy, sizeof(h->policy), "%s/policy", h->dir);
    snprintf(h->events, sizeof(h->events), "%s/events", h->dir);
    return 0;
}

/* Starts an engine without waiting for it; returns its pid or -1. */
static inline pid_t h_spawn(struct harness *h)
{
    pid_t pid = fork();

    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl(h->engine_bin, "tlsgate-engine", "--state-dir", h->dir,
              "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Starts the engine and waits (up to 10 s) until it accepts connections.
 * Returns 0 or -1. */
static inline int h_start(struct harness *h)
{
    long deadline = h_now_ms() + 10000;
    struct eng_sync *s;
    int status;

    if ((h->pid = h_spawn(h)) < 0)
        return -1;
    while (h_now_ms() < deadline) {
        if (eng_sync_open(h->sock, 1000, &s) == 0) {
            eng_sync_close(s);
            return 0;
        }
        if (waitpid(h->pid, &status, WNOHANG) == h->pid) {
            h->pid = 0;
            return -1;
        }
        h_sleep_ms(20);
    }
    return -1;
}

/* Sends sig to the engine and reaps it; returns its wait status. */
static inline int h_stop(struct harness *h, int sig)
{
    int status = -1;

    if (h->pid <= 0)
        return -1;
    kill(h->pid, sig);
    while (waitpid(h->pid, &status, 0) < 0 && errno == EINTR)
        ;
    h->pid = 0;
    return status;
}

static inline int h_rm(const char *path, const struct stat *sb, int flag,
                       struct FTW *ftw)
{
    return remove(path);
}

/* Kills the engine if still running and removes the folder. */
static inline void h_cleanup(struct harness *h)
{
    if (h->pid > 0)
        h_stop(h, SIGKILL);
    if (h->dir[0])
        nftw(h->dir, h_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* Builds the sample policy used by the engine tests: returns 0 or the
 * first store error. */
static inline int h_build_store(const char *dir)
{
    struct store *st;
    struct store_txn *t;
    int rc;

    if ((rc = store_open(&st, dir, 0, STORE_CREATE)) < 0)
        return rc;
    if ((rc = store_begin(st, true, &t)) < 0)
        goto out;
    if ((rc = store_init(t, "mail.example.net")) ||
        (rc = store_tenant_add(t, "acme", NULL)) ||
        (rc = store_tenant_add(t, "beta", "boss@beta.example")) ||
        (rc = store_tenant_add(t, "gamma", NULL)) ||
        (rc = store_outbound_mode(t, "acme", MODE_DOMAINS, TLS_ENCRYPT)) ||
        (rc = store_outbound_add(t, "acme", "vendor.example", TLS_ENCRYPT)) ||
        (rc = store_outbound_add(t, "acme", ".secure.example", TLS_VERIFY)) ||
        (rc = store_outbound_add(t, "acme", "x.secure.example", TLS_SECURE)) ||
        (rc = store_outbound_mode(t, "beta", MODE_ALL, TLS_VERIFY)) ||
        (rc = store_outbound_add(t, "beta", "vendor.example", TLS_SECURE)) ||
        (rc = store_mailbox_add(t, "acme", "box@acme.mail.example.net")) ||
        (rc = store_mailbox_add(t, "beta", "in@beta.mail.example.net")) ||
        (rc = store_mailbox_add(t, "gamma", "g@gamma.mail.example.net")) ||
        (rc = store_allowlist(t, "acme", true, IN_REJECT)) ||
        (rc = store_trust_add(t, "acme", "partner.example")) ||
        (rc = store_allowlist(t, "beta", true, IN_DISCARD)) ||
        (rc = store_inbound_tls(t, "gamma", true)) ||
        (rc = store_route_add(t, "vendor.example", "127.0.0.1", 2526)) ||
        (rc = store_route_add(t, ".route.example", "::1", 25))) {
        store_abort(t);
        goto out;
    }
    rc = store_commit(t);
out:
    store_close(st);
    return rc;
}

#endif
