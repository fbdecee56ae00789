/*
 * Helpers shared by the store tests: a fresh store in a private temporary
 * folder, removed afterwards.
 */
#ifndef TLSGATE_STORE_TEST_H
#define TLSGATE_STORE_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policy.h"
#include "store.h"

#define PLATFORM "mail.example.net"

struct fixture {
    char dir[256];
    struct store *st;
};

/* Makes a unique empty folder for one store. */
static inline void fx_mkdir(struct fixture *fx)
{
    const char *tmp = getenv("TMPDIR");
    size_t n;

    /* mkdtemp's template: the prefix, then six 'X' it replaces */
    n = (size_t)snprintf(fx->dir, sizeof(fx->dir) - 7, "%s/tlsgate-store-",
                         tmp && *tmp ? tmp : "/tmp");
    assert_true(n < sizeof(fx->dir) - 7);
    memset(fx->dir + n, 'X', 6);
    fx->dir[n + 6] = '\0';
    assert_non_null(mkdtemp(fx->dir));
}

/* Removes the store files and the folder. */
static inline void fx_rmdir(struct fixture *fx)
{
    char path[300];

    snprintf(path, sizeof(path), "%s/data.mdb", fx->dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", fx->dir);
    unlink(path);
    rmdir(fx->dir);
}

/* Begins a write transaction, asserting success. */
static inline struct store_txn *fx_write(struct fixture *fx)
{
    struct store_txn *t;

    assert_int_equal(store_begin(fx->st, true, &t), 0);
    return t;
}

static inline struct store_txn *fx_read(struct fixture *fx)
{
    struct store_txn *t;

    assert_int_equal(store_begin(fx->st, false, &t), 0);
    return t;
}

/* A fresh store initialised with PLATFORM (generation 1). */
static inline int fx_setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    struct store_txn *t;

    fx_mkdir(fx);
    assert_int_equal(store_open(&fx->st, fx->dir, 0, STORE_CREATE), 0);
    t = fx_write(fx);
    assert_int_equal(store_init(t, PLATFORM), 0);
    assert_int_equal(store_commit(t), 0);
    *state = fx;
    return 0;
}

static inline int fx_teardown(void **state)
{
    struct fixture *fx = *state;

    store_close(fx->st);
    fx_rmdir(fx);
    free(fx);
    return 0;
}

#endif
