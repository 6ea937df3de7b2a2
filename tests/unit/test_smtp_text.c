/*
 * test_smtp_text - what the SMTP client does to text on its way out:
 * xtext for DSN parameters, dot-stuffing with CRLF across arbitrary
 * chunk boundaries, the line length limit, the SIZE estimate, and the
 * refusal of addresses that would break a command line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

/* The daemon's files are not in a library: compile them in. */
#include "smtp/smtp_text.c"

static void test_xtext(void **state)
{
    struct buf b = BUF_INIT;

    (void)state;
    smtp_xtext_encode(&b, "user+tag=x@example.org");
    assert_string_equal(b.data, "user+2Btag+3Dx@example.org");
    buf_reset(&b);
    smtp_xtext_encode(&b, "a b\x01\xc3\xa9");
    assert_string_equal(b.data, "a+20b+01+C3+A9");
    buf_reset(&b);
    smtp_xtext_encode(&b, "");
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

/* Encode content given as pieces; returns the wire form. */
static char *encode(const char *const *pieces, size_t limit)
{
    struct smtp_dot d;
    struct buf out = BUF_INIT;

    smtp_dot_init(&d, limit);
    for (; *pieces; pieces++)
        smtp_dot_feed(&d, *pieces, strlen(*pieces), &out);
    smtp_dot_end(&d, &out);
    return buf_steal(&out);
}

static void test_dot_stuffing(void **state)
{
    static const char *const whole[] = {
        "Subject: x\n\n.hidden\n..two\nmid.dle\n.\n", NULL};
    char *s;

    (void)state;
    s = encode(whole, 0);
    assert_string_equal(s, "Subject: x\r\n\r\n..hidden\r\n...two\r\nmid.dle\r\n"
                           "..\r\n.\r\n");
    free(s);
}

static void test_chunk_boundaries(void **state)
{
    /* The same text split at every awkward place. */
    static const char *const split[] = {
        "Subject: x\n", "\n", ".",  "hidden\n.", ".two\nmid",
        ".dle\n",       ".",  "\n", NULL};
    char *s;

    (void)state;
    s = encode(split, 0);
    assert_string_equal(s, "Subject: x\r\n\r\n..hidden\r\n...two\r\nmid.dle\r\n"
                           "..\r\n.\r\n");
    free(s);
}

static void test_unterminated_last_line(void **state)
{
    static const char *const text[] = {"line\nno newline", NULL};
    static const char *const empty[] = {NULL};
    char *s;

    (void)state;
    s = encode(text, 0);
    assert_string_equal(s, "line\r\nno newline\r\n.\r\n");
    free(s);
    s = encode(empty, 0);
    assert_string_equal(s, ".\r\n");
    free(s);
}

static void test_line_limit(void **state)
{
    static const char *const longline[] = {"abcdefghij\nxy\n", NULL};
    static const char *const split[] = {"abcd", "efghij", "\n", NULL};
    static const char *const exact[] = {"abcd\n", NULL};
    static const char *const dot[] = {".bcdefg\n", NULL};
    char *s;

    (void)state;
    s = encode(longline, 4);
    assert_string_equal(s, "abcd\r\n efg\r\n hij\r\nxy\r\n.\r\n");
    free(s);
    s = encode(split, 4);
    assert_string_equal(s, "abcd\r\n efg\r\n hij\r\n.\r\n");
    free(s);
    /* A line of exactly the limit is not broken. */
    s = encode(exact, 4);
    assert_string_equal(s, "abcd\r\n.\r\n");
    free(s);
    /* The stuffed dot counts: the wire line is what is limited. */
    s = encode(dot, 4);
    assert_string_equal(s, "..bc\r\n def\r\n g\r\n.\r\n");
    free(s);
}

static void test_measure(void **state)
{
    struct smtp_measure m;

    (void)state;
    smtp_measure_init(&m);
    smtp_measure_feed(&m, "ab\n", 3);
    smtp_measure_feed(&m, "cd", 2);
    smtp_measure_feed(&m, "\n", 1);
    smtp_measure_end(&m);
    assert_int_equal(m.size, 8); /* "ab\r\ncd\r\n" */
    assert_false(m.eightbit);

    smtp_measure_init(&m);
    smtp_measure_feed(&m, "caf\xc3\xa9", 5);
    smtp_measure_end(&m);
    assert_int_equal(m.size, 7); /* CRLF added at the end */
    assert_true(m.eightbit);

    smtp_measure_init(&m);
    smtp_measure_end(&m);
    assert_int_equal(m.size, 0);
}

static void test_addr_sendable(void **state)
{
    (void)state;
    assert_true(smtp_addr_sendable("user@example.org"));
    assert_true(smtp_addr_sendable(""));
    assert_true(smtp_addr_sendable("\"john doe\"@example.org"));
    assert_true(smtp_addr_sendable("\"a\\\"b\"@example.org"));
    assert_true(smtp_addr_sendable("j\xc3\xb6s\xc3\xa9@example.org"));
    assert_false(smtp_addr_sendable("user@example.org>\r\nRCPT TO:<x"));
    assert_false(smtp_addr_sendable("a\nb@example.org"));
    assert_false(smtp_addr_sendable("a b@example.org"));
    assert_false(smtp_addr_sendable("a>b@example.org"));
    assert_false(smtp_addr_sendable("\"unterminated@example.org"));
    assert_false(smtp_addr_sendable("\"a\\\rb\"@example.org"));
    assert_false(smtp_addr_sendable("a\x7f@example.org"));
}

static void test_8bit(void **state)
{
    (void)state;
    assert_false(smtp_text_8bit("plain ascii", 11));
    assert_true(smtp_text_8bit("\x80", 1));
    assert_false(smtp_text_8bit("", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xtext),
        cmocka_unit_test(test_dot_stuffing),
        cmocka_unit_test(test_chunk_boundaries),
        cmocka_unit_test(test_unterminated_last_line),
        cmocka_unit_test(test_line_limit),
        cmocka_unit_test(test_measure),
        cmocka_unit_test(test_addr_sendable),
        cmocka_unit_test(test_8bit),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
