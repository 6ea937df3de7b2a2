/*
 * test_htable - string-keyed table: insert/replace/delete, growth across
 * thousands of keys, walking (with early stop), and freeing values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/htable.h"
#include "util/mem.h"

static void test_basic(void **state)
{
    struct htable *t = htable_new(0);
    int a = 1, b = 2, c = 3;
    char key[8];

    assert_null(htable_get(t, "x"));
    assert_null(htable_put(t, "x", &a));
    assert_null(htable_put(t, "y", &b));
    assert_int_equal(htable_count(t), 2);
    assert_ptr_equal(htable_get(t, "x"), &a);
    assert_ptr_equal(htable_put(t, "x", &c), &a);
    assert_int_equal(htable_count(t), 2);
    assert_ptr_equal(htable_get(t, "x"), &c);
    /* The key is copied. */
    strcpy(key, "z");
    htable_put(t, key, &a);
    key[0] = 'q';
    assert_ptr_equal(htable_get(t, "z"), &a);
    assert_null(htable_get(t, "q"));
    assert_ptr_equal(htable_del(t, "y"), &b);
    assert_null(htable_del(t, "y"));
    assert_null(htable_get(t, "y"));
    assert_int_equal(htable_count(t), 2);
    /* Empty key is a key like any other. */
    assert_null(htable_put(t, "", &b));
    assert_ptr_equal(htable_get(t, ""), &b);
    htable_free(t, NULL);
}

static void test_growth(void **state)
{
    struct htable *t = htable_new(4);
    char key[32];
    long i;

    for (i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "key%ld", i);
        assert_null(htable_put(t, key, (void *)(i + 1)));
    }
    assert_int_equal(htable_count(t), 20000);
    for (i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "key%ld", i);
        assert_ptr_equal(htable_get(t, key), (void *)(i + 1));
    }
    for (i = 0; i < 20000; i += 2) {
        snprintf(key, sizeof(key), "key%ld", i);
        assert_ptr_equal(htable_del(t, key), (void *)(i + 1));
    }
    assert_int_equal(htable_count(t), 10000);
    assert_null(htable_get(t, "key0"));
    assert_ptr_equal(htable_get(t, "key1"), (void *)2);
    htable_free(t, NULL);
}

static int count_cb(const char *key, void *value, void *ctx)
{
    long *sum = ctx;

    sum[0] += (long)(intptr_t)value;
    sum[1]++;
    return 0;
}

static int stop_cb(const char *key, void *value, void *ctx)
{
    int *calls = ctx;

    return ++*calls == 3;
}

static int delete_cb(const char *key, void *value, void *ctx)
{
    htable_del(ctx, key);
    return 0;
}

static void test_walk(void **state)
{
    struct htable *t = htable_new(16);
    char key[32];
    long sum[2] = {0, 0};
    int calls = 0;
    long i;

    for (i = 1; i <= 100; i++) {
        snprintf(key, sizeof(key), "%ld", i);
        htable_put(t, key, (void *)i);
    }
    htable_walk(t, count_cb, sum);
    assert_int_equal(sum[0], 5050);
    assert_int_equal(sum[1], 100);
    htable_walk(t, stop_cb, &calls);
    assert_int_equal(calls, 3);
    /* Deleting the current entry during a walk is allowed. */
    htable_walk(t, delete_cb, t);
    assert_int_equal(htable_count(t), 0);
    htable_free(t, NULL);
}

static int freed;

static void free_value(void *p)
{
    freed++;
    free(p);
}

static void test_free_values(void **state)
{
    struct htable *t = htable_new(0);

    htable_put(t, "a", xstrdup("1"));
    htable_put(t, "b", xstrdup("2"));
    free(htable_put(t, "a", xstrdup("3")));
    freed = 0;
    htable_free(t, free_value);
    assert_int_equal(freed, 2);
    htable_free(NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_walk),
        cmocka_unit_test(test_free_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
