/*
 * test_pop3d_xfer - POP3's transfer form of a Maildir message: LF and
 * CRLF line ends both become CRLF, dot-stuffing at every line start,
 * bare CRs, a last line without newline, TOP with 0, some and more body
 * lines than there are, messages without a body or without the empty
 * line, and that any chunking gives the same bytes and the size count
 * matches what is sent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pop3d/pop3d_xfer.c"

static void collect(void *ctx, const char *data, size_t len)
{
    buf_append(ctx, data, len);
}

/* Transfer form of in, fed in chunks of `chunk` bytes (0 = all at once). */
static char *xfer(const char *in, long long body_max, bool stuff, size_t chunk,
                  long long *out_count)
{
    struct buf out = BUF_INIT;
    struct pop3d_xfer x;
    size_t len = strlen(in), off = 0;

    buf_puts(&out, "");
    pop3d_xfer_init(&x, body_max, stuff, collect, &out);
    if (chunk == 0)
        chunk = len ? len : 1;
    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk;

        if (!pop3d_xfer_feed(&x, in + off, n))
            break;
        off += n;
    }
    pop3d_xfer_finish(&x);
    if (out_count != NULL)
        *out_count = x.out;
    return buf_steal(&out);
}

static void check(const char *in, long long body_max, const char *want)
{
    /* Every chunk size gives the same result. */
    for (size_t chunk = 0; chunk <= 7; chunk++) {
        char *got = xfer(in, body_max, true, chunk, NULL);

        if (strcmp(got, want) != 0)
            fail_msg("chunk %zu: input %s\ngot  [%s]\nwant [%s]", chunk, in,
                     got, want);
        free(got);
    }
}

static void test_lf_becomes_crlf(void **state)
{
    (void)state;
    check("Subject: x\n\nbody\n", -1, "Subject: x\r\n\r\nbody\r\n");
    check("Subject: x\r\n\r\nbody\r\n", -1, "Subject: x\r\n\r\nbody\r\n");
    check("a\r\nb\nc\r\n", -1, "a\r\nb\r\nc\r\n");
    check("", -1, "");
}

static void test_dot_stuffing(void **state)
{
    (void)state;
    check("S: x\n\n.\n..\n.a\na.b\n", -1,
          "S: x\r\n\r\n..\r\n...\r\n..a\r\na.b\r\n");
    check(".first\n", -1, "..first\r\n");
    check("S: x\n\r\n.\r\n", -1, "S: x\r\n\r\n..\r\n");
}

static void test_bare_cr_and_unterminated(void **state)
{
    (void)state;
    check("S: x\n\na\rb\n", -1, "S: x\r\n\r\na\rb\r\n");
    check("S: x\n\nlast", -1, "S: x\r\n\r\nlast\r\n");
    check("S: x\n\nlast\r", -1, "S: x\r\n\r\nlast\r\r\n");
    check("\r", -1, "\r\r\n");
    check("S: x\n\n\r.x\n", -1, "S: x\r\n\r\n\r.x\r\n");
}

static void test_top(void **state)
{
    static const char msg[] = "A: 1\nB: 2\n\nl1\nl2\n.l3\nl4\n";

    (void)state;
    check(msg, 0, "A: 1\r\nB: 2\r\n\r\n");
    check(msg, 1, "A: 1\r\nB: 2\r\n\r\nl1\r\n");
    check(msg, 3, "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n..l3\r\n");
    check(msg, 4, "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n..l3\r\nl4\r\n");
    check(msg, 100, "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n..l3\r\nl4\r\n");
}

static void test_top_odd_messages(void **state)
{
    (void)state;
    /* Header only, no empty line: all of it, for any n. */
    check("A: 1\nB: 2\n", 0, "A: 1\r\nB: 2\r\n");
    check("A: 1\nB: 2", 5, "A: 1\r\nB: 2\r\n");
    /* Empty line but no body. */
    check("A: 1\n\n", 0, "A: 1\r\n\r\n");
    check("A: 1\n\n", 3, "A: 1\r\n\r\n");
    /* A message that starts with the empty line (no header). */
    check("\nbody1\nbody2\n", 1, "\r\nbody1\r\n");
    /* CRLF message, last body line without newline. */
    check("A: 1\r\n\r\nx\r\ny", 5, "A: 1\r\n\r\nx\r\ny\r\n");
    check("A: 1\r\n\r\nx\r\ny", 1, "A: 1\r\n\r\nx\r\n");
}

static void test_size_matches_sent(void **state)
{
    static const char *const msgs[] = {
        "Subject: x\n\nbody\n", "a\r\nb\nc", ".x\n\n..y\n", "\r\r\n\n", "",
    };
    char path[] = "/tmp/test_pop3d_xfer.XXXXXX";
    int fd;

    (void)state;
    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        long long counted;
        char *plain = xfer(msgs[i], -1, false, 0, &counted);
        char *stuffed = xfer(msgs[i], -1, true, 0, NULL);
        size_t dots = 0;

        assert_int_equal(counted, (long long)strlen(plain));
        /* Stuffing adds bytes on the wire but not to the count. */
        for (const char *p = plain; *p; p++)
            if (*p == '.' && (p == plain || p[-1] == '\n'))
                dots++;
        assert_int_equal(strlen(stuffed), strlen(plain) + dots);

        fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, msgs[i], strlen(msgs[i])),
                         (ssize_t)strlen(msgs[i]));
        assert_int_equal(pop3d_xfer_size(fd), counted);
        close(fd);
        unlink(path);
        strcpy(path, "/tmp/test_pop3d_xfer.XXXXXX");
        free(plain);
        free(stuffed);
    }
}

static void test_large_message_streams(void **state)
{
    /* 3 MB of 100-byte lines in 64 KiB chunks: only the output grows. */
    char path[] = "/tmp/test_pop3d_xfer.XXXXXX";
    char line[101];
    int fd = mkstemp(path);
    long long lines = 30000;

    (void)state;
    assert_true(fd >= 0);
    memset(line, 'x', 99);
    line[99] = '\n';
    line[100] = 0;
    assert_int_equal(write(fd, "S: big\n\n", 8), 8);
    for (long long i = 0; i < lines; i++)
        assert_int_equal(write(fd, line, 100), 100);
    assert_int_equal(pop3d_xfer_size(fd), 10 + lines * 101);
    close(fd);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lf_becomes_crlf),
        cmocka_unit_test(test_dot_stuffing),
        cmocka_unit_test(test_bare_cr_and_unterminated),
        cmocka_unit_test(test_top),
        cmocka_unit_test(test_top_odd_messages),
        cmocka_unit_test(test_size_matches_sent),
        cmocka_unit_test(test_large_message_streams),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
