/*
 * test_smtp_reply - the SMTP client's reading of server replies: line
 * grammar, multi-line replies, enhanced status codes, the code -> status
 * mapping and EHLO keywords.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

/* The daemon's files are not in a library: compile them in. */
#include "smtp/smtp_reply.c"

/* Feed lines; returns the last smtp_reply_line() result. */
static int feed(struct smtp_reply *r, const char *const *lines)
{
    int rc = -1;

    for (; *lines; lines++) {
        rc = smtp_reply_line(r, *lines, strlen(*lines));
        if (rc != 0)
            break;
    }
    if (rc == 1)
        smtp_reply_finish(r);
    return rc;
}

static void test_single_line(void **state)
{
    static const char *const lines[] = {"250 2.1.0 Ok", NULL};
    struct smtp_reply r;

    (void)state;
    smtp_reply_init(&r);
    assert_int_equal(feed(&r, lines), 1);
    assert_int_equal(r.code, 250);
    assert_string_equal(r.dsn, "2.1.0");
    assert_string_equal(r.text.data, "250 2.1.0 Ok");
    assert_int_equal(r.lines.n, 1);
    assert_string_equal(r.lines.v[0], "2.1.0 Ok");
    smtp_reply_free(&r);
}

static void test_multi_line_joined(void **state)
{
    static const char *const lines[] = {
        "550-5.7.1 first line", "550-5.7.1 second", "550 5.7.1 last", NULL};
    struct smtp_reply r;

    (void)state;
    smtp_reply_init(&r);
    assert_int_equal(smtp_reply_line(&r, lines[0], strlen(lines[0])), 0);
    assert_int_equal(smtp_reply_line(&r, lines[1], strlen(lines[1])), 0);
    assert_int_equal(smtp_reply_line(&r, lines[2], strlen(lines[2])), 1);
    smtp_reply_finish(&r);
    assert_int_equal(r.code, 550);
    assert_string_equal(r.dsn, "5.7.1");
    /* Postfix shows every line with its code, joined by spaces. */
    assert_string_equal(r.text.data,
                        "550-5.7.1 first line 550-5.7.1 second 550 5.7.1 last");
    assert_int_equal(r.lines.n, 3);
    smtp_reply_free(&r);
}

static void test_bare_code_and_no_dsn(void **state)
{
    static const char *const bare[] = {"354", NULL};
    static const char *const plain[] = {"451 try later", NULL};
    struct smtp_reply r;

    (void)state;
    smtp_reply_init(&r);
    assert_int_equal(feed(&r, bare), 1);
    assert_int_equal(r.code, 354);
    smtp_reply_free(&r);

    smtp_reply_init(&r);
    assert_int_equal(feed(&r, plain), 1);
    assert_int_equal(r.code, 451);
    /* No enhanced code in the text: the class default. */
    assert_string_equal(r.dsn, "4.0.0");
    smtp_reply_free(&r);
}

static void test_malformed_lines(void **state)
{
    static const char *const bad[] = {
        "",        "25",          "abc ok",       "2x0 ok",
        "250x ok", "199 too low", "600 too high", "099 ok",
        NULL};
    struct smtp_reply r;

    (void)state;
    for (const char *const *p = bad; *p; p++) {
        smtp_reply_init(&r);
        assert_int_equal(smtp_reply_line(&r, *p, strlen(*p)), -1);
        smtp_reply_free(&r);
    }
    /* A continuation line with another code is not the same reply. */
    smtp_reply_init(&r);
    assert_int_equal(smtp_reply_line(&r, "250-a", 5), 0);
    assert_int_equal(smtp_reply_line(&r, "251 b", 5), -1);
    smtp_reply_free(&r);
}

static void test_line_count_bounded(void **state)
{
    struct smtp_reply r;
    int rc = 0;
    size_t i;

    (void)state;
    smtp_reply_init(&r);
    for (i = 0; i < SMTP_REPLY_LINES_MAX; i++)
        assert_int_equal(smtp_reply_line(&r, "250-x", 5), 0);
    rc = smtp_reply_line(&r, "250 x", 5);
    assert_int_equal(rc, -1);
    smtp_reply_free(&r);
}

static void test_text_bounded(void **state)
{
    struct smtp_reply r;
    char line[SMTP_REPLY_LINE_MAX];

    (void)state;
    memset(line, 'a', sizeof(line));
    memcpy(line, "250-", 4);
    smtp_reply_init(&r);
    for (int i = 0; i < 5; i++)
        assert_int_equal(smtp_reply_line(&r, line, sizeof(line)), 0);
    assert_true(r.text.len <= SMTP_REPLY_TEXT_MAX);
    smtp_reply_free(&r);
}

static void test_dsn_parse(void **state)
{
    char dsn[SMTP_DSN_MAX];

    (void)state;
    assert_true(smtp_dsn_parse("5.1.1 user unknown", 550, dsn));
    assert_string_equal(dsn, "5.1.1");
    assert_true(smtp_dsn_parse("4.7.0", 421, dsn));
    assert_string_equal(dsn, "4.7.0");
    assert_true(smtp_dsn_parse("2.123.456 ok", 250, dsn));
    assert_string_equal(dsn, "2.123.456");
    /* Class must match the reply code. */
    assert_false(smtp_dsn_parse("5.1.1 x", 450, dsn));
    assert_false(smtp_dsn_parse("5.1 x", 550, dsn));
    assert_false(smtp_dsn_parse("5.1.1234 x", 550, dsn));
    assert_false(smtp_dsn_parse("5..1 x", 550, dsn));
    assert_false(smtp_dsn_parse("5.1.1x", 550, dsn));
    assert_false(smtp_dsn_parse("user unknown", 550, dsn));
}

static void test_dsn_class_mismatch_defaults(void **state)
{
    static const char *const lines[] = {"450 5.1.1 odd server", NULL};
    struct smtp_reply r;

    (void)state;
    smtp_reply_init(&r);
    assert_int_equal(feed(&r, lines), 1);
    assert_string_equal(r.dsn, "4.0.0");
    smtp_reply_free(&r);
}

static void test_status_mapping(void **state)
{
    (void)state;
    assert_int_equal(smtp_reply_status(250), 2);
    assert_int_equal(smtp_reply_status(221), 2);
    assert_int_equal(smtp_reply_status(421), 4);
    assert_int_equal(smtp_reply_status(452), 4);
    assert_int_equal(smtp_reply_status(550), 5);
    assert_int_equal(smtp_reply_status(554), 5);
    /* Anything else is unexpected here: retry later, never a bounce. */
    assert_int_equal(smtp_reply_status(354), 4);
    assert_int_equal(smtp_reply_status(0), 4);
}

static void test_ehlo_features(void **state)
{
    static const char *const lines[] = {"250-mx.example.org Hello",
                                        "250-PIPELINING",
                                        "250-SIZE 10240000",
                                        "250-8bitmime",
                                        "250-STARTTLS",
                                        "250-ENHANCEDSTATUSCODES",
                                        "250-DSN",
                                        "250-SMTPUTF8",
                                        "250-AUTH PLAIN LOGIN",
                                        "250 CHUNKING",
                                        NULL};
    struct smtp_reply r;
    long long size = -1;
    unsigned f;

    (void)state;
    smtp_reply_init(&r);
    assert_int_equal(feed(&r, lines), 1);
    f = smtp_ehlo_features(&r, &size);
    assert_true(f & SMTP_FEATURE_ESMTP);
    assert_true(f & SMTP_FEATURE_PIPELINING);
    assert_true(f & SMTP_FEATURE_SIZE);
    assert_true(f & SMTP_FEATURE_8BITMIME);
    assert_true(f & SMTP_FEATURE_STARTTLS);
    assert_true(f & SMTP_FEATURE_ENHANCEDSTATUSCODES);
    assert_true(f & SMTP_FEATURE_DSN);
    assert_true(f & SMTP_FEATURE_SMTPUTF8);
    assert_true(f & SMTP_FEATURE_CHUNKING);
    assert_int_equal(size, 10240000);
    smtp_reply_free(&r);
}

static void test_ehlo_minimal_and_odd(void **state)
{
    static const char *const minimal[] = {"250 mx.example.org", NULL};
    static const char *const odd[] = {
        "250-PIPELINING is my name", /* greeting line is never a keyword */
        "250-SIZE",                  /* no limit given */
        "250-PIPELININGX",           /* not PIPELINING */
        "250 SIZEx 5", NULL};
    static const char *const badsize[] = {"250-x", "250 SIZE 12abc", NULL};
    struct smtp_reply r;
    long long size = -1;
    unsigned f;

    (void)state;
    smtp_reply_init(&r);
    assert_int_equal(feed(&r, minimal), 1);
    f = smtp_ehlo_features(&r, &size);
    assert_int_equal(f, SMTP_FEATURE_ESMTP);
    assert_int_equal(size, 0);
    smtp_reply_free(&r);

    smtp_reply_init(&r);
    assert_int_equal(feed(&r, odd), 1);
    f = smtp_ehlo_features(&r, &size);
    assert_int_equal(f, SMTP_FEATURE_ESMTP | SMTP_FEATURE_SIZE);
    assert_int_equal(size, 0);
    smtp_reply_free(&r);

    smtp_reply_init(&r);
    assert_int_equal(feed(&r, badsize), 1);
    f = smtp_ehlo_features(&r, &size);
    assert_true(f & SMTP_FEATURE_SIZE);
    assert_int_equal(size, 0);
    smtp_reply_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_line),
        cmocka_unit_test(test_multi_line_joined),
        cmocka_unit_test(test_bare_code_and_no_dsn),
        cmocka_unit_test(test_malformed_lines),
        cmocka_unit_test(test_line_count_bounded),
        cmocka_unit_test(test_text_bounded),
        cmocka_unit_test(test_dsn_parse),
        cmocka_unit_test(test_dsn_class_mismatch_defaults),
        cmocka_unit_test(test_status_mapping),
        cmocka_unit_test(test_ehlo_features),
        cmocka_unit_test(test_ehlo_minimal_and_odd),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
