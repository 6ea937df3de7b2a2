/*
 * test_qmgr_feedback - the per-destination concurrency window: start at
 * initial_destination_concurrency (capped by the limit), +1 per delivery
 * without site trouble up to the limit and no further than `initial`
 * above what is in flight, -1 per delivery with trouble (never below 1),
 * dead after failed cohorts worth the cohort limit, a success clears the
 * count, and a dead destination restarts from the initial window.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* The daemon's files are not in a library: compile it in. */
#include "qmgr/qmgr_feedback.c"

static void test_start(void **state)
{
    struct qmgr_feedback f;

    qmgr_feedback_init(&f, 5, 20, 1);
    assert_int_equal(f.window, 5);
    /* The limit caps the start (smtp_destination_concurrency_limit=2). */
    qmgr_feedback_init(&f, 5, 2, 1);
    assert_int_equal(f.window, 2);
    /* Nonsense values are clamped, never zero. */
    qmgr_feedback_init(&f, 0, 0, -3);
    assert_int_equal(f.window, 1);
    assert_int_equal(f.limit, 1);
    assert_int_equal(f.cohort_limit, 0);
}

static void test_growth(void **state)
{
    struct qmgr_feedback f;

    qmgr_feedback_init(&f, 5, 20, 1);
    /* Busy destination: +1 per success up to the limit. */
    for (int i = 0; i < 10; i++)
        qmgr_feedback_success(&f, f.window);
    assert_int_equal(f.window, 15);
    for (int i = 0; i < 10; i++)
        qmgr_feedback_success(&f, f.window);
    assert_int_equal(f.window, 20);
    /* A window that is not used does not grow: 2 in flight, initial 5. */
    qmgr_feedback_init(&f, 5, 20, 1);
    for (int i = 0; i < 10; i++)
        qmgr_feedback_success(&f, 2);
    assert_int_equal(f.window, 7);
    qmgr_feedback_success(&f, 0);
    assert_int_equal(f.window, 7);
}

static void test_shrink_and_death(void **state)
{
    struct qmgr_feedback f;

    qmgr_feedback_init(&f, 5, 20, 1);
    /* 1/5 + 1/4 + 1/3 = 0.78 of a cohort: still alive, window 2. */
    assert_false(qmgr_feedback_failure(&f));
    assert_int_equal(f.window, 4);
    assert_false(qmgr_feedback_failure(&f));
    assert_false(qmgr_feedback_failure(&f));
    assert_int_equal(f.window, 2);
    /* + 1/2 passes 1: dead. */
    assert_true(qmgr_feedback_failure(&f));
    assert_int_equal(f.window, 1);
    /* Back from the dead: the initial window, no debt. */
    qmgr_feedback_reset(&f);
    assert_int_equal(f.window, 5);
    assert_true(f.fail_cohorts == 0);
}

static void test_success_clears_failures(void **state)
{
    struct qmgr_feedback f;

    qmgr_feedback_init(&f, 3, 20, 1);
    /* 1/3 + 1/2 = 0.83, then a success: the count starts over. */
    assert_false(qmgr_feedback_failure(&f));
    assert_false(qmgr_feedback_failure(&f));
    qmgr_feedback_success(&f, 0);
    assert_int_equal(f.window, 2);
    assert_false(qmgr_feedback_failure(&f)); /* 1/2 */
    assert_true(qmgr_feedback_failure(&f));  /* + 1/1 */
    /* Window 1 and one failure: exactly one cohort. */
    qmgr_feedback_init(&f, 1, 20, 1);
    assert_true(qmgr_feedback_failure(&f));
    /* Three cohorts needed: 3 failures at window 1. */
    qmgr_feedback_init(&f, 1, 20, 3);
    assert_false(qmgr_feedback_failure(&f));
    assert_false(qmgr_feedback_failure(&f));
    assert_true(qmgr_feedback_failure(&f));
    /* 0: never dead, the window stays at 1. */
    qmgr_feedback_init(&f, 2, 20, 0);
    for (int i = 0; i < 100; i++)
        assert_false(qmgr_feedback_failure(&f));
    assert_int_equal(f.window, 1);
}

static void test_thirds_make_a_cohort(void **state)
{
    struct qmgr_feedback f;

    /* A limit of 3 keeps the window at 3 only if successes come in
     * between; three failures at a window held at 3 add up to exactly 1
     * (floating point must not leave it at 0.999...). */
    qmgr_feedback_init(&f, 3, 3, 1);
    assert_false(qmgr_feedback_failure(&f));
    f.window = 3;
    assert_false(qmgr_feedback_failure(&f));
    f.window = 3;
    assert_true(qmgr_feedback_failure(&f));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_shrink_and_death),
        cmocka_unit_test(test_success_clears_failures),
        cmocka_unit_test(test_thirds_make_a_cohort),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
