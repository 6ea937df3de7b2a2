/*
 * test_local_delivered - the local agent's loop detection: the header
 * block ends at the first empty line, Delivered-To values are found in
 * any letter case, unfolded, without "<>", never in the body, and the
 * number kept is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "global/delivered_to.h"
#include "util/argv.h"
#include "util/buf.h"

static void collect(const char *text, struct argv *out)
{
    delivered_to_collect(text, strlen(text), out, DELIVERED_TO_MAX);
}

static void test_block_length(void **state)
{
    bool complete;
    const char *m = "A: 1\nB: 2\n\nbody\n";

    assert_int_equal(header_block_length(m, strlen(m), &complete), 11);
    assert_true(complete);
    m = "A: 1\r\n\r\nbody";
    assert_int_equal(header_block_length(m, strlen(m), &complete), 8);
    assert_true(complete);
    /* No empty line yet: all of it, incomplete. */
    m = "A: 1\nB: 2";
    assert_int_equal(header_block_length(m, strlen(m), &complete), 9);
    assert_false(complete);
    /* A message that starts with the empty line has no headers. */
    m = "\nbody\n";
    assert_int_equal(header_block_length(m, strlen(m), &complete), 1);
    assert_true(complete);
    assert_int_equal(header_block_length("", 0, &complete), 0);
    assert_false(complete);
}

static void test_collect_basic(void **state)
{
    struct argv v = ARGV_INIT;

    collect("Received: from x\n"
            "Delivered-To: User@Example.TEST\n"
            "delivered-to:   <other@example.test>  \n"
            "DELIVERED-TO\t: third@example.test\n"
            "Subject: Delivered-To: not@this.one\n"
            "\n"
            "Delivered-To: body@example.test\n",
            &v);
    assert_int_equal(v.n, 3);
    assert_string_equal(v.v[0], "user@example.test");
    assert_string_equal(v.v[1], "other@example.test");
    assert_string_equal(v.v[2], "third@example.test");
    argv_free(&v);
}

static void test_collect_folded(void **state)
{
    struct argv v = ARGV_INIT;

    collect("Delivered-To:\n  folded@example.test\nX: y\n\n", &v);
    assert_int_equal(v.n, 1);
    assert_string_equal(v.v[0], "folded@example.test");
    argv_free(&v);
    /* Folded as the last header line before the end of data. */
    collect("Delivered-To: a@b\n\tc", &v);
    assert_int_equal(v.n, 1);
    assert_string_equal(v.v[0], "a@b\tc");
    argv_free(&v);
}

static void test_collect_odd_input(void **state)
{
    struct argv v = ARGV_INIT;
    static const char nul[] = "Delivered-To: a@b\0junk\nDelivered-To: c@d\n";

    /* Empty values, names that only start alike, no colon at all. */
    collect("Delivered-To:\nDelivered-Tox: a@b\nDelivered-To\n"
            "Delivered-To: <>\n\n",
            &v);
    assert_int_equal(v.n, 0);
    /* Embedded NUL: explicit lengths, the next header is still found. */
    delivered_to_collect(nul, sizeof(nul) - 1, &v, DELIVERED_TO_MAX);
    assert_int_equal(v.n, 2);
    assert_string_equal(v.v[1], "c@d");
    argv_free(&v);
    delivered_to_collect("", 0, &v, DELIVERED_TO_MAX);
    assert_int_equal(v.n, 0);
}

static void test_collect_bounded(void **state)
{
    struct argv v = ARGV_INIT;
    struct buf b = BUF_INIT;

    for (int i = 0; i < 50; i++)
        buf_printf(&b, "Delivered-To: u%d@example.test\n", i);
    delivered_to_collect(b.data, b.len, &v, 10);
    assert_int_equal(v.n, 10);
    assert_string_equal(v.v[9], "u9@example.test");
    argv_free(&v);
    buf_free(&b);
}

static void test_match(void **state)
{
    struct argv v = ARGV_INIT;

    collect("Delivered-To: demo@example.test\n\n", &v);
    assert_true(delivered_to_match(&v, "demo@example.test"));
    assert_true(delivered_to_match(&v, "DEMO@Example.Test"));
    assert_false(delivered_to_match(&v, "demo@example.tes"));
    assert_false(delivered_to_match(&v, "other@example.test"));
    argv_free(&v);
    assert_false(delivered_to_match(&v, "demo@example.test"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_length),
        cmocka_unit_test(test_collect_basic),
        cmocka_unit_test(test_collect_folded),
        cmocka_unit_test(test_collect_odd_input),
        cmocka_unit_test(test_collect_bounded),
        cmocka_unit_test(test_match),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
