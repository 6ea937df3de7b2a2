/*
 * fuzz_addr - libFuzzer harness for the RFC 5321 path parser.
 * Every input must either parse (and then re-check invariants) or fail
 * with an error text; nothing may crash or read out of bounds.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "global/addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int utf8 = 0; utf8 < 2; utf8++) {
        struct mailaddr a;
        size_t used = 0;
        const char *err = NULL;

        memset(&a, 0, sizeof(a));
        if (addr_parse_path((const char *)data, size, true, utf8, &a, &used,
                            &err) == 0) {
            assert(used <= size);
            assert(strlen(a.domain) <= ADDR_DOMAIN_MAX);
            char *u = addr_local_unquote(a.local);
            free(u);
            addr_free(&a);
        } else {
            assert(err != NULL);
        }
    }
    return 0;
}
