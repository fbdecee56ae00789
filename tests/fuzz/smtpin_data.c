/* libFuzzer target: the DATA state machine, fed in chunks whose size the
 * first input byte chooses, with small line and size limits. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "smtpin_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct smtpin_data d;
    size_t step, off = 1;
    char *out;

    if (size < 1)
        return 0;
    step = (size_t)data[0] % 64 + 1;
    out = malloc(size);
    if (!out)
        return 0;
    smtpin_data_init(&d, 80, 4096);
    while (off < size) {
        size_t n = size - off < step ? size - off : step, olen, used;
        enum smtpin_data_status st;

        st = smtpin_data_feed(&d, (const char *)data + off, n, out, &olen,
                              &used);
        assert(used <= n && olen <= used);
        assert(d.size <= 4096);
        off += used;
        if (st != SD_MORE)
            break;
        assert(used == n);
    }
    free(out);
    return 0;
}
