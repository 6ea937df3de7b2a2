/*
 * fuzz_imap_mime - libFuzzer harness for imapd's MIME layer: any bytes
 * as a stored message go through the CRLF conversion, the parser,
 * ENVELOPE/BODY/BODYSTRUCTURE, section lookup, the SEARCH decoders and
 * the SEARCH cache block (built from the message, then read back; and the
 * input itself read as a damaged block).
 * Nothing may crash, hang or read out of bounds, and a section is never
 * longer than the message it comes from (plus the line ends HEADER.FIELDS
 * may add).  The MIME sources are compiled in, as imapd links them.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imapd/imap_mime.c"
#include "imapd/imap_mime_decode.c"
#include "imapd/imap_mime_search.c"
#include "imapd/imap_mime_struct.c"

static const char *const specs[] = {"",       "1",        "2",      "1.1",
                                    "2.1.3",  "HEADER",   "TEXT",   "1.MIME",
                                    "2.HEADER", "3.TEXT", "1.2.MIME",
                                    "HEADER.FIELDS", "1.HEADER.FIELDS.NOT"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const fields[] = {"From", "subject", "Content-Type"};
    struct buf crlf = BUF_INIT, out = BUF_INIT;
    struct imap_mime *m;
    time_t t;
    int zone;

    imap_mime_crlf((const char *)data, size, &crlf);
    assert(crlf.len == imap_mime_crlf_size((const char *)data, size));
    m = imap_mime_parse(crlf.data ? crlf.data : "", crlf.len);
    imap_mime_envelope(m, &out);
    imap_mime_bodystructure(m, false, &out);
    imap_mime_bodystructure(m, true, &out);
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        struct imap_section s;

        buf_reset(&out);
        if (imap_section_parse(specs[i], strlen(specs[i]), &s) < 0)
            abort();
        s.fields = fields;
        s.n_fields = 3;
        if (imap_mime_section(m, &s, &out) == 0)
            assert(out.len <= 2 * crlf.len + 2);
    }
    buf_reset(&out);
    imap_mime_body_utf8(m, &out, 1 << 20);
    assert(out.len <= 1 << 20);
    imap_mime_headers_utf8(m, &out);
    imap_mime_date(m, &t, &zone);
    buf_reset(&out);
    imap_mime_decode_header((const char *)data, size, &out);
    (void)imap_mime_contains(crlf.data ? crlf.data : "", crlf.len,
                             (const char *)data, size < 16 ? size : 16);
    imap_section_parse((const char *)data, size, &(struct imap_section){0});
    {
        static const char *const names[] = {"From", "TO", "cc", "Bcc",
                                            "Subject", "Date", "X-Other"};
        const char *v;
        size_t vlen, count;

        buf_reset(&out);
        imap_mime_search_cache(m, &out);
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            if (imap_mime_search_cached_header(out.data ? out.data : "",
                                               out.len, names[i], &v, &vlen,
                                               &count) == 1)
                assert(v != NULL && vlen <= out.len);
            (void)imap_mime_search_cached_header((const char *)data, size,
                                                 names[i], &v, &vlen, &count);
        }
        assert(imap_mime_search_cached_date(out.data ? out.data : "",
                                            out.len, &t, &zone) >= 0);
        (void)imap_mime_search_cached_date((const char *)data, size, &t,
                                           &zone);
    }
    imap_mime_free(m);
    buf_free(&crlf);
    buf_free(&out);
    return 0;
}
