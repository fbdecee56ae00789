/* libFuzzer target: the outbound SMTP reply parser and EHLO keywords. */
#include <stddef.h>
#include <stdint.h>

#include "smtpout_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct smtp_reply_parser p;
    struct smtp_reply r;
    unsigned long limit;
    size_t used;
    int rc = 1;

    smtpout_reply_init(&p);
    /* Replies one after another, as they arrive on a connection. */
    while (size > 0 && rc == 1) {
        rc = smtpout_reply_feed(&p, (const char *)data, size, &used, &r);
        if (used > size)
            __builtin_trap();
        data += used;
        size -= used;
        if (rc == 1)
            smtpout_ehlo_caps(&r, &limit);
    }
    return 0;
}
