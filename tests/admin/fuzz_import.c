/*
 * libFuzzer target: the whole check pass of tlsgate-admin import (JSON
 * parsing, structure, names, domains, addresses, levels, ports) on any
 * bytes, without a store. It must never crash, leak or read out of
 * bounds, whatever it decides.
 */
#include <stdint.h>

#include "admin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    adm_quiet = true;
    adm_import_check((const char *)data, size, "fuzz");
    return 0;
}
