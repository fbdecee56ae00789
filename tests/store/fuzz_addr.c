/*
 * libFuzzer target: addr_parse_path and addr_domain_norm on any bytes.
 * Checks the invariants the store relies on: results are bounded and
 * NUL-terminated, and parsing a result again gives the same result.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "addr.h"

/* A parsed address printed and parsed again must not change. */
static void check_stable(const struct addr *a)
{
    struct addr again;

    assert(strlen(a->local) <= ADDR_LOCAL_MAX + 2);
    assert(strlen(a->domain) <= ADDR_DOMAIN_MAX);
    if (a->full[0] == '\0') {
        assert(a->local[0] == '\0' && a->domain[0] == '\0');
        return;
    }
    assert(addr_parse(a->full, &again) == ADDR_OK);
    assert(strcmp(again.full, a->full) == 0);
    assert(strcmp(again.domain, a->domain) == 0);
    assert(strchr(a->domain, '@') == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char buf[2048], out[ADDR_DOMAIN_MAX + 1], again[ADDR_DOMAIN_MAX + 1];
    struct addr a;

    if (addr_parse_path((const char *)data, size, &a) == ADDR_OK)
        check_stable(&a);
    if (size >= sizeof(buf))
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    for (int wild = 0; wild <= 1; wild++) {
        if (addr_domain_norm(buf, wild, out, sizeof(out)) != ADDR_OK)
            continue;
        assert(strlen(out) <= ADDR_DOMAIN_MAX);
        assert(addr_domain_norm(out, wild, again, sizeof(again)) == ADDR_OK);
        assert(strcmp(out, again) == 0);
    }
    return 0;
}
