/*
 * test_pop3d_parse - the POP3 server's command parser: keywords, case,
 * arguments and PASS's whole-line argument, the limits (keyword length,
 * argument count, line length), control characters, and message
 * numbers at and past their bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

/* The daemon's files are not in a library: compile them in. */
#include "pop3d/pop3d_parse.c"

static enum pop3d_parse_status parse(const char *line, struct pop3d_command *c)
{
    return pop3d_parse_command(line, strlen(line), c);
}

static void test_keyword_only(void **state)
{
    struct pop3d_command c;

    (void)state;
    assert_int_equal(parse("STAT", &c), POP3D_PARSE_OK);
    assert_string_equal(c.keyword, "STAT");
    assert_int_equal(c.nargs, 0);
    assert_string_equal(c.rest, "");

    assert_int_equal(parse("quit", &c), POP3D_PARSE_OK);
    assert_string_equal(c.keyword, "QUIT");
    assert_int_equal(parse("Top", &c), POP3D_PARSE_OK);
    assert_string_equal(c.keyword, "TOP");
}

static void test_arguments(void **state)
{
    struct pop3d_command c;

    (void)state;
    assert_int_equal(parse("TOP 1 10", &c), POP3D_PARSE_OK);
    assert_string_equal(c.keyword, "TOP");
    assert_int_equal(c.nargs, 2);
    assert_string_equal(c.args[0], "1");
    assert_string_equal(c.args[1], "10");

    /* Extra blanks between and after arguments are tolerated. */
    assert_int_equal(parse("LIST   2  ", &c), POP3D_PARSE_OK);
    assert_int_equal(c.nargs, 1);
    assert_string_equal(c.args[0], "2");

    assert_int_equal(parse("AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=", &c),
                     POP3D_PARSE_OK);
    assert_int_equal(c.nargs, 2);
    assert_string_equal(c.args[1], "dGVzdAB0ZXN0AHRlc3Q=");

    /* A trailing space only: no argument. */
    assert_int_equal(parse("STAT ", &c), POP3D_PARSE_OK);
    assert_int_equal(c.nargs, 0);
}

static void test_pass_keeps_spaces(void **state)
{
    static const char line[] = "PASS open sesame  twice";
    struct pop3d_command c;

    (void)state;
    assert_int_equal(parse(line, &c), POP3D_PARSE_OK);
    assert_string_equal(c.keyword, "PASS");
    assert_string_equal(c.rest, "open sesame  twice");
    /* Three words fit POP3D_ARGS_MAX; the split does not touch rest. */
    assert_int_equal(c.nargs, 3);
    assert_string_equal(line, "PASS open sesame  twice");

    /* More words than POP3D_ARGS_MAX: the parse is refused. */
    assert_int_equal(parse("PASS a b c d", &c), POP3D_PARSE_ARGS);
}

static void test_bad_keywords(void **state)
{
    struct pop3d_command c;

    (void)state;
    assert_int_equal(parse("", &c), POP3D_PARSE_EMPTY);
    assert_int_equal(parse(" STAT", &c), POP3D_PARSE_KEYWORD);
    assert_int_equal(parse("STATS", &c), POP3D_PARSE_KEYWORD);
    assert_int_equal(parse("ST4T", &c), POP3D_PARSE_KEYWORD);
    assert_int_equal(parse("R\xc3\xa9TR", &c), POP3D_PARSE_KEYWORD);
    assert_int_equal(parse("RETR 1 2 3 4", &c), POP3D_PARSE_ARGS);
}

static void test_control_characters(void **state)
{
    struct pop3d_command c;
    static const char nul[] = "USER a\0b";

    (void)state;
    assert_int_equal(pop3d_parse_command(nul, sizeof(nul) - 1, &c),
                     POP3D_PARSE_BADCHAR);
    assert_int_equal(parse("USER a\rb", &c), POP3D_PARSE_BADCHAR);
    assert_int_equal(parse("USER \x1b[31m", &c), POP3D_PARSE_BADCHAR);
    assert_int_equal(parse("USER a\x7f", &c), POP3D_PARSE_BADCHAR);
    /* A tab separates like a space. */
    assert_int_equal(parse("LIST\t3", &c), POP3D_PARSE_OK);
    assert_string_equal(c.args[0], "3");
}

static void test_line_limit(void **state)
{
    char *line = malloc(POP3D_LINE_MAX + 2);
    struct pop3d_command c;

    (void)state;
    memcpy(line, "PASS ", 5);
    memset(line + 5, 'x', POP3D_LINE_MAX - 5);
    line[POP3D_LINE_MAX] = 0;
    assert_int_equal(pop3d_parse_command(line, POP3D_LINE_MAX, &c),
                     POP3D_PARSE_OK);
    assert_int_equal(strlen(c.rest), POP3D_LINE_MAX - 5);
    line[POP3D_LINE_MAX] = 'x';
    line[POP3D_LINE_MAX + 1] = 0;
    assert_int_equal(pop3d_parse_command(line, POP3D_LINE_MAX + 1, &c),
                     POP3D_PARSE_ARGS);
    free(line);
}

static void test_numbers(void **state)
{
    unsigned long n = 7;

    (void)state;
    assert_true(pop3d_parse_number("1", POP3D_MSGNUM_MAX, &n));
    assert_int_equal(n, 1);
    assert_true(pop3d_parse_number("0", POP3D_MSGNUM_MAX, &n));
    assert_int_equal(n, 0);
    assert_true(pop3d_parse_number("007", POP3D_MSGNUM_MAX, &n));
    assert_int_equal(n, 7);
    assert_true(pop3d_parse_number("999999999", POP3D_MSGNUM_MAX, &n));
    assert_int_equal(n, 999999999UL);
    assert_false(pop3d_parse_number("1000000000", POP3D_MSGNUM_MAX, &n));
    assert_false(
        pop3d_parse_number("99999999999999999999999", POP3D_MSGNUM_MAX, &n));
    assert_false(pop3d_parse_number("", POP3D_MSGNUM_MAX, &n));
    assert_false(pop3d_parse_number("-1", POP3D_MSGNUM_MAX, &n));
    assert_false(pop3d_parse_number("+1", POP3D_MSGNUM_MAX, &n));
    assert_false(pop3d_parse_number("1a", POP3D_MSGNUM_MAX, &n));
    assert_false(pop3d_parse_number(" 1", POP3D_MSGNUM_MAX, &n));
    /* A bound below a single digit. */
    assert_true(pop3d_parse_number("5", 5, &n));
    assert_false(pop3d_parse_number("6", 5, &n));
    assert_false(pop3d_parse_number("9", 5, &n));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyword_only),
        cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_pass_keeps_spaces),
        cmocka_unit_test(test_bad_keywords),
        cmocka_unit_test(test_control_characters),
        cmocka_unit_test(test_line_limit),
        cmocka_unit_test(test_numbers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
