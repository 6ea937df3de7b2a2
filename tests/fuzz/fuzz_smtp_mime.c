/*
 * fuzz_smtp_mime - libFuzzer harness for the SMTP client's 8-bit to
 * 7-bit MIME downgrade (src/smtp/smtp_mime.c), which parses whatever
 * message content a sender submitted.  Nothing may crash or read out of
 * bounds; "nothing changed" leaves the output empty; and the downgrade
 * is idempotent: its result, parsed again, has nothing left to convert
 * (a conversion that changed the MIME structure, say by making a
 * boundary line, would show up here).
 *
 *     clang -fsanitize=fuzzer,address,undefined -Isrc \
 *         tests/fuzz/fuzz_smtp_mime.c build/fuzz/lib/libglobal.a \
 *         build/fuzz/lib/libutil.a ...
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_mime.c"
#include "smtp/smtp_text.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf out = BUF_INIT, again = BUF_INIT;
    size_t n;

    n = smtp_mime_downgrade((const char *)data, size, &out);
    if (n == 0) {
        assert(out.len == 0);
    } else {
        assert(out.len > 0);
        assert(smtp_mime_downgrade(out.data, out.len, &again) == 0);
        assert(again.len == 0);
    }
    buf_free(&out);
    buf_free(&again);
    return 0;
}
