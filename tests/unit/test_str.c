/*
 * test_str - value parsers for main.cf and protocols: sizes, times,
 * booleans and integers, at the overflow limit and one past it, and
 * garbage that must be refused; plus the bounded copy helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <string.h>

#include "util/str.h"

static void test_llong(void **state)
{
    long long v;

    assert_true(str_to_llong("0", &v));
    assert_int_equal(v, 0);
    assert_true(str_to_llong("12345", &v));
    assert_int_equal(v, 12345);
    assert_true(str_to_llong("-17", &v));
    assert_int_equal(v, -17);
    assert_true(str_to_llong("9223372036854775807", &v));
    assert_true(v == LLONG_MAX);
    assert_false(str_to_llong("9223372036854775808", &v));
    assert_false(str_to_llong("", &v));
    assert_false(str_to_llong("-", &v));
    assert_false(str_to_llong("+1", &v));
    assert_false(str_to_llong(" 1", &v));
    assert_false(str_to_llong("1 ", &v));
    assert_false(str_to_llong("12a", &v));
    assert_false(str_to_llong("0x10", &v));
    assert_false(str_to_llong(NULL, &v));
}

static void test_size(void **state)
{
    long long v;

    assert_true(str_to_size("10240000", &v));
    assert_int_equal(v, 10240000);
    assert_true(str_to_size("10k", &v));
    assert_int_equal(v, 10240);
    assert_true(str_to_size("10K", &v));
    assert_int_equal(v, 10240);
    assert_true(str_to_size("3m", &v));
    assert_int_equal(v, 3LL * 1024 * 1024);
    assert_true(str_to_size("2g", &v));
    assert_int_equal(v, 2LL * 1024 * 1024 * 1024);
    assert_true(str_to_size("0", &v));
    assert_int_equal(v, 0);
    /* LLONG_MAX / 2^30 = 8589934591 is the largest "g" value. */
    assert_true(str_to_size("8589934591g", &v));
    assert_false(str_to_size("8589934592g", &v));
    assert_false(str_to_size("99999999999999999999", &v));
    assert_false(str_to_size("", &v));
    assert_false(str_to_size("k", &v));
    assert_false(str_to_size("10kb", &v));
    assert_false(str_to_size("10x", &v));
    assert_false(str_to_size("-5", &v));
    assert_false(str_to_size("1.5m", &v));
    assert_false(str_to_size(" 10", &v));
}

static void test_time(void **state)
{
    long long v;

    assert_true(str_to_time("300", 's', &v));
    assert_int_equal(v, 300);
    assert_true(str_to_time("300s", 'd', &v));
    assert_int_equal(v, 300);
    assert_true(str_to_time("5m", 's', &v));
    assert_int_equal(v, 300);
    assert_true(str_to_time("2h", 's', &v));
    assert_int_equal(v, 7200);
    assert_true(str_to_time("5d", 's', &v));
    assert_int_equal(v, 5 * 86400);
    assert_true(str_to_time("1w", 's', &v));
    assert_int_equal(v, 7 * 86400);
    assert_true(str_to_time("5", 'd', &v));
    assert_int_equal(v, 5 * 86400);
    assert_true(str_to_time("1H", 's', &v));
    assert_int_equal(v, 3600);
    /* LLONG_MAX / 604800 = 15250284452471 */
    assert_true(str_to_time("15250284452471w", 's', &v));
    assert_false(str_to_time("15250284452472w", 's', &v));
    assert_false(str_to_time("15250284452472", 'w', &v));
    assert_false(str_to_time("99999999999999999999s", 's', &v));
    assert_false(str_to_time("", 's', &v));
    assert_false(str_to_time("s", 's', &v));
    assert_false(str_to_time("5x", 's', &v));
    assert_false(str_to_time("5ms", 's', &v));
    assert_false(str_to_time("-5s", 's', &v));
    assert_false(str_to_time("5", 'x', &v));
    assert_false(str_to_time("5 s", 's', &v));
}

static void test_bool(void **state)
{
    static const char *const t[] = {"yes", "YES", "true", "True", "1", "on"};
    static const char *const f[] = {"no", "No", "false", "FALSE", "0", "off"};
    static const char *const bad[] = {"",     "y",   "n",     "2",
                                      "yess", "on ", "enable"};
    bool v;
    size_t i;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        v = false;
        assert_true(str_to_bool(t[i], &v));
        assert_true(v);
    }
    for (i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        v = true;
        assert_true(str_to_bool(f[i], &v));
        assert_false(v);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(str_to_bool(bad[i], &v));
}

static void test_lcpy_lcat(void **state)
{
    char d[8];

    assert_int_equal(str_lcpy(d, "abc", sizeof(d)), 3);
    assert_string_equal(d, "abc");
    assert_int_equal(str_lcpy(d, "0123456789", sizeof(d)), 10);
    assert_string_equal(d, "0123456");
    str_lcpy(d, "ab", sizeof(d));
    assert_int_equal(str_lcat(d, "cd", sizeof(d)), 4);
    assert_string_equal(d, "abcd");
    assert_int_equal(str_lcat(d, "efghij", sizeof(d)), 10);
    assert_string_equal(d, "abcdefg");
    assert_int_equal(str_lcpy(d, "xyz", 0), 3);
    assert_string_equal(d, "abcdefg");
}

static void test_misc(void **state)
{
    char s[] = "  \tHeLLo World \r\n";
    char *t;

    t = str_trim(s);
    assert_string_equal(t, "HeLLo World");
    str_lower(t);
    assert_string_equal(t, "hello world");
    assert_true(str_has_prefix_ci("MAIL FROM:<a>", "mail from:"));
    assert_false(str_has_prefix_ci("MAIL", "mail from:"));
    assert_true(str_has_prefix_ci("x", ""));
    assert_true(str_eq_ci("EHLO", "ehlo"));
    assert_false(str_eq_ci("EHLO", "ehl"));
    assert_false(str_eq_ci("EHL", "ehlo"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llong),     cmocka_unit_test(test_size),
        cmocka_unit_test(test_time),      cmocka_unit_test(test_bool),
        cmocka_unit_test(test_lcpy_lcat), cmocka_unit_test(test_misc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
