/*
 * qmgr_feedback - the per-destination concurrency window (see qmgr.h).
 *
 * Postfix's scheduler with its default feedback of 1 per delivery: a
 * window starts at initial_destination_concurrency, grows by one for each
 * delivery that had no trouble reaching the site and shrinks by one for
 * each that had (connection refused, timeout, no greeting or EHLO, DNS
 * failure), never below one.  Growth stops at the transport's
 * <transport>_destination_concurrency_limit and, as in Postfix, when the
 * window is already `initial` above what is in flight, so an idle
 * destination does not build up a window it never tested.  A failure
 * adds 1/window to a "failed pseudo-cohort" count; a success clears it;
 * when it reaches destination_concurrency_failed_cohort_limit the
 * destination is dead (the caller defers its mail and retries after
 * minimal_backoff_time).
 *
 * Pure arithmetic, no I/O: tests/unit/test_qmgr_feedback.c includes it.
 */
#include "qmgr/qmgr.h"

void qmgr_feedback_init(struct qmgr_feedback *f, int initial, int limit,
                        int cohort_limit)
{
    f->limit = limit < 1 ? 1 : limit;
    f->initial = initial < 1 ? 1 : initial;
    f->cohort_limit = cohort_limit < 0 ? 0 : cohort_limit;
    qmgr_feedback_reset(f);
}

void qmgr_feedback_reset(struct qmgr_feedback *f)
{
    f->window = f->initial < f->limit ? f->initial : f->limit;
    f->fail_cohorts = 0;
}

void qmgr_feedback_success(struct qmgr_feedback *f, int busy)
{
    f->fail_cohorts = 0;
    if (f->window < f->limit && f->window < busy + f->initial)
        f->window++;
}

bool qmgr_feedback_failure(struct qmgr_feedback *f)
{
    f->fail_cohorts += 1.0 / (double)f->window;
    if (f->window > 1)
        f->window--;
    /* A small epsilon: 1/3 + 1/3 + 1/3 is a cohort. */
    return f->cohort_limit > 0 &&
           f->fail_cohorts + 1e-9 >= (double)f->cohort_limit;
}
