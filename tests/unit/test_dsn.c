/*
 * test_dsn - delivery status notifications (RFC 3464) as qmgr sends them:
 * the multipart/report layout, the per-message and per-recipient fields,
 * what is attached, folding and the line limit, text from the network
 * that tries to forge fields or a boundary, and the helpers (remote reply
 * split, NOTIFY, header block length).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "global/dsn.h"
#include "util/buf.h"

static const char orig_msg[] = "Received: by client\n"
                               "From: alice@example.test\n"
                               "Subject: hello\n"
                               "\n"
                               "body line\n";

static struct dsn_rcpt one_rcpt = {
    .addr = "bob@remote.test",
    .orig = "",
    .orcpt = "",
    .action = "failed",
    .status = "5.1.1",
    .reason = "host mx.remote.test[192.0.2.1] said: 550 5.1.1 <bob@remote."
              "test>: Recipient address rejected (in reply to RCPT TO "
              "command)",
};

static void base_report(struct dsn_report *r, const struct dsn_rcpt *rc,
                        size_t n)
{
    memset(r, 0, sizeof(*r));
    r->kind = DSN_FAILURE;
    r->myhostname = "mx.example.test";
    r->queue_id = "ABC123";
    r->sender = "alice@example.test";
    r->to = "alice@example.test";
    r->message_id = "20240101.ABC123.1@mx.example.test";
    r->arrival = 1700000000;
    r->now = 1700000100;
    r->rcpts = rc;
    r->nrcpt = n;
}

/* Every line of the text up to the attached original fits the limit. */
static void assert_lines_short(const char *s, const char *stop)
{
    const char *end = stop ? strstr(s, stop) : NULL;

    if (end == NULL)
        end = s + strlen(s);
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s);

        if (len > DSN_LINE_MAX)
            fail_msg("line of %zu bytes: %.*s", len, (int)len, s);
        s += len + 1;
    }
}

static void test_failure_layout(void **state)
{
    struct dsn_report r;
    struct buf out = BUF_INIT;
    const char *s;

    base_report(&r, &one_rcpt, 1);
    r.envid = "env-42";
    dsn_format(&out, &r, orig_msg, strlen(orig_msg));
    s = out.data;
    assert_non_null(strstr(
        s, "From: MAILER-DAEMON@mx.example.test (Mail Delivery System)\n"));
    assert_non_null(
        strstr(s, "Subject: Undelivered Mail Returned to Sender\n"));
    assert_non_null(strstr(s, "\nTo: alice@example.test\n"));
    assert_non_null(strstr(s, "\nAuto-Submitted: auto-replied\n"));
    assert_non_null(strstr(s, "\nMIME-Version: 1.0\n"));
    assert_non_null(strstr(s, "Content-Type: multipart/report; "
                              "report-type=delivery-status;\n\tboundary=\""
                              "ABC123.1700000100/mx.example.test\"\n"));
    assert_non_null(
        strstr(s, "Message-ID: <20240101.ABC123.1@mx.example.test>\n"));
    assert_null(strstr(s, "Content-Transfer-Encoding"));
    /* Three parts in order, then the closing boundary. */
    {
        const char *p1 = strstr(s, "--ABC123.1700000100/mx.example.test\n"
                                   "Content-Description: Notification\n"
                                   "Content-Type: text/plain; "
                                   "charset=us-ascii\n\n"
                                   "This is the mail system at host "
                                   "mx.example.test.\n");
        const char *p2 = strstr(s, "--ABC123.1700000100/mx.example.test\n"
                                   "Content-Description: Delivery report\n"
                                   "Content-Type: message/delivery-status\n"
                                   "\nReporting-MTA: dns; mx.example.test\n");
        const char *p3 = strstr(s, "--ABC123.1700000100/mx.example.test\n"
                                   "Content-Description: Undelivered "
                                   "Message\n"
                                   "Content-Type: message/rfc822\n\n"
                                   "Received: by client\n");
        const char *end =
            strstr(s, "\n--ABC123.1700000100/mx.example.test--\n");

        assert_non_null(p1);
        assert_non_null(p2);
        assert_non_null(p3);
        assert_non_null(end);
        assert_true(p1 < p2 && p2 < p3 && p3 < end);
        assert_int_equal(strlen(end), strlen("\n--ABC123.1700000100/"
                                             "mx.example.test--\n"));
    }
    assert_non_null(strstr(s, "Subject: hello\n\nbody line\n"));
    /* Per message. */
    assert_non_null(strstr(s, "X-Posthorn-Queue-ID: ABC123\n"));
    assert_non_null(
        strstr(s, "X-Posthorn-Sender: rfc822; alice@example.test\n"));
    assert_non_null(strstr(s, "Original-Envelope-Id: env-42\n"));
    assert_non_null(strstr(s, "Arrival-Date: "));
    /* Per recipient: the remote reply split into MTA and diagnostic. */
    assert_non_null(strstr(s, "\n\nFinal-Recipient: rfc822; bob@remote.test\n"
                              "Action: failed\nStatus: 5.1.1\n"
                              "Remote-MTA: dns; mx.remote.test\n"
                              "Diagnostic-Code: smtp; 550 5.1.1 "
                              "<bob@remote.test>: Recipient address "
                              "rejected\n"));
    assert_null(strstr(s, "Original-Recipient"));
    /* The human part: the reason, folded with an indent. */
    assert_non_null(strstr(s, "\n<bob@remote.test>: host mx.remote.test"));
    assert_non_null(strstr(s, "I'm sorry to have to inform you"));
    assert_lines_short(s, "Received: by client");
    buf_free(&out);
}

static void test_recipient_fields(void **state)
{
    struct dsn_rcpt rc[2] = {
        {.addr = "demo@example.test",
         .orig = "info@example.test",
         .orcpt = "",
         .action = "failed",
         .status = "4.4.1",
         .reason = "connect to mx[192.0.2.1]:25: Connection refused"},
        {.addr = "x@example.test",
         .orig = "x@example.test",
         .orcpt = "rfc822;X@Example.Test",
         .action = "failed",
         .status = "5.0.0",
         .reason = ""},
    };
    struct dsn_report r;
    struct buf out = BUF_INIT;

    base_report(&r, rc, 2);
    dsn_format(&out, &r, NULL, 0);
    /* Alias expansion shows in both parts; no ORCPT: the original. */
    assert_non_null(strstr(out.data, "<demo@example.test> (expanded from "
                                     "<info@example.test>): connect to"));
    assert_non_null(strstr(out.data, "Final-Recipient: rfc822; "
                                     "demo@example.test\nOriginal-Recipient: "
                                     "rfc822; info@example.test\n"));
    /* Not a server reply: our own diagnostic type, no Remote-MTA. */
    assert_non_null(strstr(out.data, "Diagnostic-Code: X-Posthorn; connect "
                                     "to mx[192.0.2.1]:25: Connection "
                                     "refused\n"));
    assert_null(strstr(out.data, "Remote-MTA"));
    /* ORCPT wins over the original recipient. */
    assert_non_null(strstr(out.data, "Original-Recipient: "
                                     "rfc822;X@Example.Test\nAction: "));
    assert_non_null(strstr(out.data, "<x@example.test>: (no reason given)"));
    /* No original: no third part. */
    assert_null(strstr(out.data, "Undelivered Message"));
    buf_free(&out);
}

static void test_headers_only_and_kinds(void **state)
{
    struct dsn_rcpt rc = one_rcpt;
    struct dsn_report r;
    struct buf out = BUF_INIT;
    size_t h = dsn_header_length(orig_msg, strlen(orig_msg));

    rc.action = "delayed";
    rc.status = "4.2.0";
    base_report(&r, &rc, 1);
    r.kind = DSN_DELAY;
    r.headers_only = true;
    r.warn_after = 4 * 3600;
    r.retry_until = r.arrival + 5 * 86400;
    dsn_format(&out, &r, orig_msg, h);
    assert_non_null(
        strstr(out.data, "Subject: Delayed Mail (still being retried)\n"));
    assert_non_null(strstr(out.data, "THIS IS A WARNING ONLY"));
    assert_non_null(strstr(out.data, "for more than 4 hour(s).\n"
                                     "It will be retried until it is 5 "
                                     "day(s) old.\n"));
    assert_non_null(strstr(out.data, "Action: delayed\nStatus: 4.2.0\n"));
    assert_non_null(strstr(out.data, "Will-Retry-Until: "));
    assert_non_null(strstr(out.data, "Content-Description: Undelivered "
                                     "Message Headers\nContent-Type: "
                                     "text/rfc822-headers\n\n"));
    assert_null(strstr(out.data, "body line"));
    buf_reset(&out);

    rc.action = "delivered";
    rc.status = "2.0.0";
    rc.reason = "delivered to maildir";
    r.kind = DSN_SUCCESS;
    dsn_format(&out, &r, orig_msg, h);
    assert_non_null(
        strstr(out.data, "Subject: Successful Mail Delivery Report\n"));
    assert_non_null(strstr(out.data, "successfully delivered"));
    assert_non_null(strstr(out.data, "Action: delivered\n"));
    assert_non_null(strstr(out.data, "Delivered Message Headers"));
    assert_null(strstr(out.data, "Will-Retry-Until"));
    buf_reset(&out);

    r.kind = DSN_POSTMASTER;
    r.sender = "";
    r.to = "postmaster@mx.example.test";
    rc.action = "failed";
    dsn_format(&out, &r, orig_msg, h);
    assert_non_null(
        strstr(out.data, "Subject: Postmaster Copy: Undelivered Mail\n"));
    assert_non_null(strstr(out.data, "To: postmaster@mx.example.test\n"));
    assert_non_null(strstr(out.data, "its sender <>."));
    /* Trailing blanks are not kept: "rfc822;" for <>. */
    assert_non_null(strstr(out.data, "X-Posthorn-Sender: rfc822;\n"));
    buf_free(&out);
}

static void test_hostile_text(void **state)
{
    struct dsn_rcpt rc = one_rcpt;
    struct dsn_report r;
    struct buf out = BUF_INIT;
    char big[3000];
    const char *orig = "Subject: x\n\n--ABC123.1700000100/mx.example.test\n"
                       "--ABC123.1700000100/mx.example.test.1--\n";

    rc.reason = "550 bad\r\nFinal-Recipient: rfc822; forged@evil\x01\xff";
    base_report(&r, &rc, 1);
    dsn_format(&out, &r, orig, strlen(orig));
    /* The forged field is part of a folded value, never a line. */
    assert_null(strstr(out.data, "\nFinal-Recipient: rfc822; forged"));
    assert_non_null(strstr(out.data, "forged@evil??"));
    assert_null(strchr(out.data, '\r'));
    assert_null(strchr(out.data, '\x01'));
    /* The boundary grew until the original does not contain it. */
    assert_non_null(strstr(out.data, "boundary=\"ABC123.1700000100/"
                                     "mx.example.test.1.2\""));
    buf_reset(&out);

    /* One enormous word is cut, so no line passes 998 bytes. */
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    rc.reason = big;
    dsn_format(&out, &r, NULL, 0);
    for (const char *p = out.data; *p;) {
        size_t len = strcspn(p, "\n");

        assert_true(len <= 998);
        p += len + (p[len] ? 1 : 0);
    }
    buf_free(&out);
}

static void test_utf8(void **state)
{
    struct dsn_rcpt rc = one_rcpt;
    struct dsn_report r;
    struct buf out = BUF_INIT;
    const char *orig = "Subject: caf\xc3\xa9\n\n";

    rc.addr = "j\xc3\xb6s\xc3\xa9@example.test";
    rc.reason = "bad \xc3\xa9 text";
    base_report(&r, &rc, 1);
    r.smtputf8 = true;
    dsn_format(&out, &r, orig, strlen(orig));
    assert_non_null(strstr(out.data, "Content-Transfer-Encoding: 8bit\n"));
    assert_non_null(strstr(out.data, "charset=utf-8"));
    assert_non_null(strstr(out.data, "message/global-delivery-status"));
    assert_non_null(strstr(out.data, "Content-Type: message/global\n"));
    assert_non_null(strstr(
        out.data, "Final-Recipient: utf-8; j\xc3\xb6s\xc3\xa9@example.test"));
    /* Remote text stays ASCII even then. */
    assert_non_null(strstr(out.data, "bad ?? text"));
    buf_reset(&out);

    /* Not smtputf8: every 8-bit byte of an address becomes '?'. */
    r.smtputf8 = false;
    dsn_format(&out, &r, NULL, 0);
    assert_non_null(strstr(out.data, "Final-Recipient: rfc822; j??s??@"));
    assert_null(strstr(out.data, "8bit"));
    buf_free(&out);
}

static void test_remote_reply(void **state)
{
    struct buf mta = BUF_INIT, text = BUF_INIT;

    assert_true(dsn_remote_reply("host mx.example.org[192.0.2.1] said: 451 "
                                 "4.3.0 busy (in reply to end of DATA "
                                 "command)",
                                 &mta, &text));
    assert_string_equal(mta.data, "mx.example.org");
    assert_string_equal(text.data, "451 4.3.0 busy");
    buf_reset(&mta);
    buf_reset(&text);
    /* Without the trailer the text is kept whole. */
    assert_true(dsn_remote_reply("host h said: 550 no", &mta, &text));
    assert_string_equal(mta.data, "h");
    assert_string_equal(text.data, "550 no");
    buf_reset(&mta);
    buf_reset(&text);
    assert_false(
        dsn_remote_reply("connect to h[1.2.3.4]:25: refused", &mta, &text));
    assert_false(dsn_remote_reply("host a b said: 550 x", &mta, &text));
    assert_false(dsn_remote_reply("host [1.2.3.4] said: 550 x", &mta, &text));
    assert_false(dsn_remote_reply("host h said: ", &mta, &text));
    assert_false(dsn_remote_reply(NULL, &mta, &text));
    assert_int_equal(mta.len, 0);
    assert_int_equal(text.len, 0);
    buf_free(&mta);
    buf_free(&text);
}

static void test_notify(void **state)
{
    /* Not given: failures and delays, no success. */
    assert_true(dsn_notify_wants("", DSN_FAILURE));
    assert_true(dsn_notify_wants(NULL, DSN_DELAY));
    assert_false(dsn_notify_wants("", DSN_SUCCESS));
    assert_false(dsn_notify_wants("NEVER", DSN_FAILURE));
    assert_false(dsn_notify_wants("NEVER", DSN_DELAY));
    assert_true(dsn_notify_wants("SUCCESS", DSN_SUCCESS));
    assert_false(dsn_notify_wants("SUCCESS", DSN_FAILURE));
    assert_true(dsn_notify_wants("success,failure", DSN_FAILURE));
    assert_false(dsn_notify_wants("FAILURE", DSN_DELAY));
    assert_true(dsn_notify_wants("FAILURE,DELAY", DSN_DELAY));
    assert_false(dsn_notify_wants("FAILUREX", DSN_FAILURE));
    /* The postmaster's copy does not depend on the sender's wishes. */
    assert_true(dsn_notify_wants("NEVER", DSN_POSTMASTER));
}

static void test_header_length(void **state)
{
    assert_int_equal(dsn_header_length("a: b\n\nbody\n", 11), 6);
    assert_int_equal(dsn_header_length("\nbody\n", 6), 1);
    assert_int_equal(dsn_header_length("a: b\nc: d\n", 10), 10);
    assert_int_equal(dsn_header_length("", 0), 0);
    assert_true(dsn_has_8bit("a\x80", 2));
    assert_false(dsn_has_8bit("abc", 3));
}

static void test_date(void **state)
{
    struct buf out = BUF_INIT;

    setenv("TZ", "UTC", 1);
    dsn_format_date(&out, 1700000000);
    assert_string_equal(out.data, "Tue, 14 Nov 2023 22:13:20 +0000 (UTC)");
    buf_reset(&out);
    dsn_format_date(&out, 1704067200);
    assert_string_equal(out.data, "Mon,  1 Jan 2024 00:00:00 +0000 (UTC)");
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failure_layout),
        cmocka_unit_test(test_recipient_fields),
        cmocka_unit_test(test_headers_only_and_kinds),
        cmocka_unit_test(test_hostile_text),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_remote_reply),
        cmocka_unit_test(test_notify),
        cmocka_unit_test(test_header_length),
        cmocka_unit_test(test_date),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
