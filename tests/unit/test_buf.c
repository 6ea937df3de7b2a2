/*
 * test_buf - the growable byte buffer: NUL termination, binary content,
 * growth across many appends, printf growth, consume and steal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

static void test_empty(void **state)
{
    struct buf b = BUF_INIT;

    assert_string_equal(buf_cstr(&b), "");
    assert_int_equal(b.len, 0);
    buf_reset(&b);
    buf_truncate(&b, 10);
    assert_int_equal(b.len, 0);
    buf_free(&b);
    assert_null(b.data);
}

static void test_append_binary(void **state)
{
    struct buf b = BUF_INIT;

    buf_append(&b, "a\0b", 3);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "a\0b", 3);
    assert_int_equal(b.data[3], 0);
    buf_putc(&b, 0);
    buf_putc(&b, 'z');
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "a\0b\0z", 6);
    buf_free(&b);
}

static void test_growth(void **state)
{
    struct buf b = BUF_INIT;
    size_t i;

    for (i = 0; i < 100000; i++)
        buf_putc(&b, 'a' + (int)(i % 26));
    assert_int_equal(b.len, 100000);
    assert_true(b.cap > b.len);
    assert_int_equal(b.data[99999], 'a' + 99999 % 26);
    assert_int_equal(b.data[100000], 0);
    buf_free(&b);
}

static void test_printf(void **state)
{
    struct buf b = BUF_INIT;
    char big[5000];

    buf_puts(&b, "x=");
    buf_printf(&b, "%d,%s", 42, "y");
    assert_string_equal(buf_cstr(&b), "x=42,y");
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    buf_printf(&b, "[%s]", big);
    assert_int_equal(b.len, 6 + 2 + 4999);
    assert_int_equal(b.data[b.len - 1], ']');
    assert_int_equal(b.data[b.len], 0);
    assert_int_equal(strlen(b.data), b.len);
    buf_free(&b);
}

static void test_truncate_consume(void **state)
{
    struct buf b = BUF_INIT;

    buf_puts(&b, "hello world");
    buf_truncate(&b, 5);
    assert_string_equal(b.data, "hello");
    buf_truncate(&b, 50);
    assert_int_equal(b.len, 5);
    buf_consume(&b, 2);
    assert_string_equal(b.data, "llo");
    buf_consume(&b, 3);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_cstr(&b), "");
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

static void test_steal(void **state)
{
    struct buf b = BUF_INIT;
    char *p;

    p = buf_steal(&b);
    assert_string_equal(p, "");
    free(p);
    buf_puts(&b, "mine");
    p = buf_steal(&b);
    assert_string_equal(p, "mine");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    free(p);
}

static void test_reserve(void **state)
{
    struct buf b;

    buf_init(&b);
    buf_reserve(&b, 1000);
    assert_true(b.cap >= 1001);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_append_binary),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_truncate_consume),
        cmocka_unit_test(test_steal),
        cmocka_unit_test(test_reserve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
