/*
 * fuzz_imap_parse - libFuzzer harness for the IMAP command grammar
 * (src/imapd/imap_parse*.c): framing with literals and limits, the
 * argument tree, and the FETCH and SEARCH interpreters run on whatever
 * parsed.  Nothing may crash, read out of bounds or leak; a framed
 * command never claims more bytes than it was given.
 *
 *     clang -fsanitize=fuzzer,address,undefined -Isrc \
 *         tests/fuzz/fuzz_imap_parse.c build/fuzz/lib/libglobal.a \
 *         build/fuzz/lib/libutil.a ...
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imapd/imap_mime.c"
#include "imapd/imap_parse.c"
#include "imapd/imap_parse_fetch.c"
#include "imapd/imap_parse_search.c"
#include "imapd/imap_pool.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct imap_limits lim = {4096, 4096, 65536};
    const char *in = (const char *)data;
    struct imap_frame f;
    struct imap_pool pool = IMAP_POOL_INIT;
    enum imap_frame_status st = imap_frame_scan(in, size, &lim, &f);
    size_t n = size;

    if (st == IMAP_FRAME_DONE || st == IMAP_FRAME_TOOLONG ||
        st == IMAP_FRAME_TOOBIG)
        assert(f.len <= size);
    if (st == IMAP_FRAME_CONTINUE)
        assert(f.cont_at <= size);
    if (st == IMAP_FRAME_DONE)
        n = f.len;
    {
        struct imap_command cmd;
        const char *err = NULL;

        if (imap_parse_command(&pool, in, n, &cmd, &err) == 0) {
            struct imap_fetch_atts atts;
            struct imap_search q;
            struct imap_seqset set;
            bool bad;

            assert(cmd.tag != NULL && cmd.name != NULL);
            if (cmd.nargs >= 1)
                (void)imap_parse_fetch_atts(&pool, cmd.args + 1,
                                            cmd.nargs - 1, &atts, &err);
            (void)imap_parse_search(&pool, cmd.args, cmd.nargs, &q, &bad,
                                    &err);
            for (size_t i = 0; i < cmd.nargs; i++) {
                const char *s;
                time_t t;
                struct imap_date d;
                unsigned sys;
                const char **kw;
                size_t nkw;

                if (imap_arg_astring(&cmd.args[i], &s)) {
                    if (imap_parse_seqset(&pool, s, &set) == 0)
                        (void)imap_seqset_contains(&set, 7, 100);
                    (void)imap_parse_date(s, &d);
                    (void)imap_parse_datetime(s, &t);
                }
                (void)imap_parse_flags(&pool, &cmd.args[i], &sys, &kw, &nkw,
                                       &err);
            }
        } else {
            assert(err != NULL);
        }
    }
    {
        size_t line_len, used;
        bool ended;

        (void)imap_line_scan(in, size, 1024, &line_len, &used, &ended);
    }
    imap_pool_clear(&pool);
    return 0;
}
