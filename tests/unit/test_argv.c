/*
 * test_argv - string vectors and the list splitter used for Postfix list
 * parameters ("a, b\tc\n d").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "util/argv.h"

static void test_add(void **state)
{
    struct argv a = ARGV_INIT;
    char tmp[16];
    int i;

    argv_add(&a, "one");
    argv_addn(&a, "twothree", 3);
    assert_int_equal(a.n, 2);
    assert_string_equal(a.v[0], "one");
    assert_string_equal(a.v[1], "two");
    assert_null(a.v[2]);
    for (i = 0; i < 100; i++) {
        snprintf(tmp, sizeof(tmp), "x%d", i);
        argv_add(&a, tmp);
    }
    assert_int_equal(a.n, 102);
    assert_string_equal(a.v[101], "x99");
    assert_null(a.v[102]);
    argv_free(&a);
    assert_null(a.v);
    assert_int_equal(a.n, 0);
}

static void test_copies(void **state)
{
    struct argv a = ARGV_INIT;
    char s[] = "mutable";

    argv_add(&a, s);
    s[0] = 'M';
    assert_string_equal(a.v[0], "mutable");
    argv_free(&a);
}

static void test_split(void **state)
{
    struct argv a = ARGV_INIT;

    argv_split(&a,
               "  permit_mynetworks,reject_unauth_destination ,\t\n"
               "check_relay  ,, x",
               ", \t\n");
    assert_int_equal(a.n, 4);
    assert_string_equal(a.v[0], "permit_mynetworks");
    assert_string_equal(a.v[1], "reject_unauth_destination");
    assert_string_equal(a.v[2], "check_relay");
    assert_string_equal(a.v[3], "x");
    assert_null(a.v[4]);
    /* Appends to what is there. */
    argv_split(&a, "y", ", \t\n");
    assert_int_equal(a.n, 5);
    assert_string_equal(a.v[4], "y");
    argv_free(&a);
}

static void test_split_empty(void **state)
{
    struct argv a = ARGV_INIT;

    argv_split(&a, "", ", \t\n");
    assert_int_equal(a.n, 0);
    argv_split(&a, " ,\t,\n, ", ", \t\n");
    assert_int_equal(a.n, 0);
    argv_split(&a, "single", ", \t\n");
    assert_int_equal(a.n, 1);
    assert_string_equal(a.v[0], "single");
    argv_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_copies),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_split_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
