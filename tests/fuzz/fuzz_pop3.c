/*
 * fuzz_pop3 - libFuzzer harness for the POP3 server's command parser
 * and its message transfer encoding (src/pop3d/pop3d_parse.c and
 * pop3d_xfer.c).  A command line either parses into a 1..4 letter
 * upper-case keyword with at most POP3D_ARGS_MAX blank-free arguments,
 * or is refused; a message in any chunking comes out with CRLF line
 * ends only, every line start dot-stuffed, and the same size count.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3d/pop3d_parse.c"
#include "pop3d/pop3d_xfer.c"

struct out {
    struct buf b;
};

static void collect(void *ctx, const char *data, size_t len)
{
    buf_append(&((struct out *)ctx)->b, data, len);
}

static void check_parse(const char *data, size_t size)
{
    struct pop3d_command c;

    if (pop3d_parse_command(data, size, &c) != POP3D_PARSE_OK)
        return;
    assert(strlen(c.keyword) >= 1 && strlen(c.keyword) <= POP3D_KEYWORD_MAX);
    for (const char *k = c.keyword; *k; k++)
        assert(*k >= 'A' && *k <= 'Z');
    assert(c.nargs <= POP3D_ARGS_MAX);
    for (size_t i = 0; i < c.nargs; i++) {
        assert(*c.args[i] != 0);
        assert(strpbrk(c.args[i], " \t\r\n") == NULL);
    }
    assert(*c.rest == 0 || (c.rest > data && c.rest <= data + size));
}

static void check_xfer(const char *data, size_t size, long long body_max,
                       size_t chunk)
{
    struct out o = {BUF_INIT};
    struct pop3d_xfer x;
    size_t off = 0;

    pop3d_xfer_init(&x, body_max, true, collect, &o);
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk;

        if (!pop3d_xfer_feed(&x, data + off, n))
            break;
        off += n;
    }
    pop3d_xfer_finish(&x);
    /* Every LF is preceded by CR, every line ends, each starting "." is
       stuffed: a line of the output never is a lone ".". */
    for (size_t i = 0; i < o.b.len; i++)
        if (o.b.data[i] == '\n')
            assert(i > 0 && o.b.data[i - 1] == '\r');
    assert(o.b.len == 0 || (o.b.len >= 2 && o.b.data[o.b.len - 1] == '\n'));
    for (size_t i = 0; i + 2 < o.b.len; i++)
        if ((i == 0 || o.b.data[i - 1] == '\n') && o.b.data[i] == '.')
            assert(o.b.data[i + 1] == '.');
    assert(x.out <= (long long)o.b.len);
    buf_free(&o.b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;

    if (size <= POP3D_LINE_MAX + 1) {
        char *copy = malloc(size + 1);

        memcpy(copy, data, size);
        copy[size] = 0;
        check_parse(copy, size);
        free(copy);
    }
    check_xfer(text, size, -1, size ? size : 1);
    check_xfer(text, size, -1, 3);
    check_xfer(text, size, size % 4, 7);
    return 0;
}
