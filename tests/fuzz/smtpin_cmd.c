/* libFuzzer target: the receiver's command-line splitter and command
 * parser on arbitrary bytes, as they would arrive from a peer. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "smtpin_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    bool discarding = false;
    size_t off = 0;

    while (off < size) {
        const char *line = NULL;
        size_t len = 0, used = 0;
        struct smtpin_cmd c;
        enum smtpin_line_status st;

        st = smtpin_next_line(buf + off, size - off, 512, &discarding, &line,
                              &len, &used);
        assert(used <= size - off);
        if (st == SL_MORE && used == 0)
            break;
        off += used;
        if (st != SL_LINE)
            continue;
        assert(len < used);
        if (smtpin_parse_cmd(line, len, &c) == SP_OK) {
            assert(strlen(c.arg) < sizeof(c.arg));
            assert(strlen(c.path.full) < sizeof(c.path.full));
        }
        (void)smtpin_parse_reply(-3, c.verb);
    }
    return 0;
}
