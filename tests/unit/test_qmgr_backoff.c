/*
 * test_qmgr_backoff - qmgr's retry arithmetic and its log line: the next
 * retry is now + clamp(age, minimal, maximal backoff), expiry after
 * maximal_queue_lifetime (0 = try once), and the "to=<...>, delay=...,
 * status=..." line with Postfix's two-digit delay format.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "global/backoff.h"
#include "global/delivery_report.h"
#include "util/buf.h"

static void test_next_retry(void **state)
{
    time_t now = 1000000;

    /* Young message: the minimum. */
    assert_int_equal(backoff_next_retry(now, now, 300, 4000), now + 300);
    assert_int_equal(backoff_next_retry(now, now - 299, 300, 4000), now + 300);
    /* In between: its age, so retries double roughly. */
    assert_int_equal(backoff_next_retry(now, now - 1000, 300, 4000),
                     now + 1000);
    /* Old: the maximum. */
    assert_int_equal(backoff_next_retry(now, now - 4000, 300, 4000),
                     now + 4000);
    assert_int_equal(backoff_next_retry(now, now - 400000, 300, 4000),
                     now + 4000);
}

static void test_next_retry_odd(void **state)
{
    time_t now = 1000000;

    /* Arrival in the future (clock step): age 0. */
    assert_int_equal(backoff_next_retry(now, now + 5000, 300, 4000), now + 300);
    /* Maximum below minimum: the minimum wins. */
    assert_int_equal(backoff_next_retry(now, now - 1000, 600, 60), now + 600);
    /* Negative settings count as 0; huge ones are capped, no overflow. */
    assert_int_equal(backoff_next_retry(now, now - 10, -5, -5), now);
    assert_true(backoff_next_retry(now, 0, 1LL << 60, 1LL << 62) > now);
    assert_true(backoff_next_retry(now, 0, 1LL << 60, 1LL << 62) <=
                now + 366 * 24 * 3600);
}

static void test_expired(void **state)
{
    time_t now = 1000000;

    assert_false(backoff_expired(now, now, 5 * 86400));
    assert_false(backoff_expired(now, now - 5 * 86400, 5 * 86400));
    assert_true(backoff_expired(now, now - 5 * 86400 - 1, 5 * 86400));
    /* 0: try once, whatever the age. */
    assert_true(backoff_expired(now, now, 0));
    assert_true(backoff_expired(now, now + 10, 0));
}

static const char *delay(double s)
{
    static struct buf b;

    buf_reset(&b);
    delivery_delay_format(&b, s);
    return b.data;
}

static void test_delay_format(void **state)
{
    assert_string_equal(delay(0), "0");
    assert_string_equal(delay(-3), "0");
    assert_string_equal(delay(0.004), "0");
    assert_string_equal(delay(0.005), "0.01");
    assert_string_equal(delay(0.01), "0.01");
    assert_string_equal(delay(0.123), "0.12");
    assert_string_equal(delay(0.5), "0.5");
    assert_string_equal(delay(0.999), "1");
    assert_string_equal(delay(1), "1");
    assert_string_equal(delay(1.25), "1.2");
    assert_string_equal(delay(9.96), "10");
    assert_string_equal(delay(12.4), "12");
    assert_string_equal(delay(345.6), "346");
}

static void test_report_line(void **state)
{
    struct buf b = BUF_INIT;
    struct delivery_report r = {
        .rcpt = "demo@example.test",
        .orig_rcpt = "info@example.test",
        .relay = "local",
        .delay = 0.25,
        .delays = {0.1, 0.01, 0, 0.14},
        .dsn = "2.0.0",
        .status = "sent",
        .reason = "delivered to maildir",
    };

    delivery_report_format(&b, &r);
    assert_string_equal(b.data,
                        "to=<demo@example.test>, orig_to=<info@example.test>, "
                        "relay=local, delay=0.25, delays=0.1/0.01/0/0.14, "
                        "dsn=2.0.0, status=sent (delivered to maildir)");
    /* orig_to only when it differs; control bytes made printable. */
    buf_reset(&b);
    r.orig_rcpt = "demo@example.test";
    r.reason = "bad\nline";
    r.status = "deferred";
    r.dsn = "4.3.0";
    delivery_report_format(&b, &r);
    assert_null(strstr(b.data, "orig_to"));
    assert_null(strchr(b.data, '\n'));
    assert_non_null(strstr(b.data, "status=deferred (bad?line)"));
    buf_reset(&b);
    r.orig_rcpt = NULL;
    r.reason = NULL;
    r.relay = NULL;
    delivery_report_format(&b, &r);
    assert_non_null(strstr(b.data, "relay=none"));
    assert_int_equal(b.data[b.len - 1], 'd'); /* "...status=deferred" */
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_retry),
        cmocka_unit_test(test_next_retry_odd),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_delay_format),
        cmocka_unit_test(test_report_line),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
