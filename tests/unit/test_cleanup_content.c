/*
 * test_cleanup_content - cleanup's header/body split and the headers it
 * adds (Received:, Date:, Message-ID:), driven as pure functions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The daemon's files are not in a library: compile them in. */
#include "cleanup/cleanup_content.c"
#include "cleanup/cleanup_format.c"

struct sink {
    struct buf out;
    int header_calls;
    bool fail_headers;
};

static int sink_out(const char *data, size_t len, void *ctx)
{
    buf_append(&((struct sink *)ctx)->out, data, len);
    return 0;
}

/* Marks where the added headers go, then copies the block. */
static int sink_headers(struct cleanup_content *cc, void *ctx)
{
    struct sink *s = ctx;
    const struct buf *b = cleanup_content_header_block(cc);

    s->header_calls++;
    if (s->fail_headers)
        return -1;
    buf_puts(&s->out, "[H]");
    buf_append(&s->out, b->data, b->len);
    buf_puts(&s->out, "[/H]");
    return 0;
}

/* Run text through a fresh parser, fed in pieces of `step` bytes. */
static struct cleanup_content *run(struct sink *s, const char *text,
                                   size_t limit, size_t step)
{
    struct cleanup_content *cc;
    size_t len = strlen(text);

    memset(s, 0, sizeof(*s));
    cc = cleanup_content_new(limit, sink_out, sink_headers, s);
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        assert_int_equal(cleanup_content_feed(cc, text + off, n), 0);
    }
    assert_int_equal(cleanup_content_finish(cc), 0);
    assert_int_equal(s->header_calls, 1);
    return cc;
}

static void expect_split(const char *in, size_t limit, const char *want)
{
    /* Every way of cutting the input into frames gives the same result. */
    for (size_t step = 1; step <= strlen(in) + 1; step++) {
        struct sink s;
        struct cleanup_content *cc = run(&s, in, limit, step);
        if (strcmp(buf_cstr(&s.out), want) != 0)
            fail_msg("step %zu: got\n%s\nwant\n%s", step, buf_cstr(&s.out),
                     want);
        cleanup_content_free(cc);
        buf_free(&s.out);
    }
}

static void test_split_simple(void **state)
{
    expect_split("Subject: hi\nFrom: a@b\n\nbody\nline 2\n", 1000,
                 "[H]Subject: hi\nFrom: a@b\n[/H]\nbody\nline 2\n");
    /* Blank line first: empty header block, all body. */
    expect_split("\nbody\n", 1000, "[H][/H]\nbody\n");
    /* No separator: the first non-header line starts the body. */
    expect_split("Subject: a\nThis is text\n\nmore\n", 1000,
                 "[H]Subject: a\n[/H]This is text\n\nmore\n");
    /* A continuation line with no header before it is body. */
    expect_split(" indented\nSubject: a\n", 1000,
                 "[H][/H] indented\nSubject: a\n");
    /* Obsolete "Name :" is a header, "Name x" and ":x" are not. */
    expect_split("Subject : a\nNot a header\n", 1000,
                 "[H]Subject : a\n[/H]Not a header\n");
    expect_split(":x\n", 1000, "[H][/H]:x\n");
    /* Empty content. */
    expect_split("", 1000, "[H][/H]");
}

static void test_split_unterminated(void **state)
{
    /* A last line without "\n" is completed, header or body. */
    expect_split("Subject: x", 1000, "[H]Subject: x\n[/H]");
    expect_split("Subject: x\n\nbody", 1000, "[H]Subject: x\n[/H]\nbody\n");
    expect_split("no header", 1000, "[H][/H]no header\n");
}

static void test_split_limit(void **state)
{
    /* 14 + 14 = 28 bytes fit in 30; the third header becomes body. */
    expect_split("A: 1234567890\nB: 1234567890\nC: 1234567890\n\nbody\n", 30,
                 "[H]A: 1234567890\nB: 1234567890\n[/H]"
                 "C: 1234567890\n\nbody\n");
    /* Exactly at the limit still fits. */
    expect_split("A: 1234567890\nB: 1234567890\n\nb\n", 28,
                 "[H]A: 1234567890\nB: 1234567890\n[/H]\nb\n");
    /* One over: the second header is already body. */
    expect_split("A: 1234567890\nB: 1234567890\n\nb\n", 27,
                 "[H]A: 1234567890\n[/H]B: 1234567890\n\nb\n");
    /* An endless first line ends the header block, nothing is lost. */
    expect_split("X: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n\nb\n", 10,
                 "[H][/H]X: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n\nb\n");
}

static void test_header_facts(void **state)
{
    struct sink s;
    struct cleanup_content *cc;
    const char *msg = "Message-ID:\n   <abc.123@example.org> \n"
                      "Received: from a\n\tby b\n"
                      "received: from c\n"
                      "X-Received: not counted\n"
                      "DATE: Mon, 1 Jan 2024 00:00:00 +0000\n"
                      "\n"
                      "Received: in the body, not counted\n";

    for (size_t step = 1; step < 8; step++) {
        cc = run(&s, msg, 100000, step);
        assert_int_equal(cleanup_content_received_count(cc), 2);
        assert_true(cleanup_content_has(cc, HDR_MESSAGE_ID));
        assert_true(cleanup_content_has(cc, HDR_DATE));
        assert_false(cleanup_content_has(cc, HDR_FROM));
        assert_string_equal(cleanup_content_message_id(cc),
                            "<abc.123@example.org>");
        cleanup_content_free(cc);
        buf_free(&s.out);
    }

    cc = run(&s, "from: x\nSubject: y\n\n", 1000, 1000);
    assert_true(cleanup_content_has(cc, HDR_FROM));
    assert_false(cleanup_content_has(cc, HDR_MESSAGE_ID));
    assert_string_equal(cleanup_content_message_id(cc), "");
    assert_int_equal(cleanup_content_received_count(cc), 0);
    cleanup_content_free(cc);
    buf_free(&s.out);

    assert_int_equal(cleanup_header_name_len("Received: x", 11), 8);
    assert_int_equal(cleanup_header_name_len("Received x", 10), 0);
    assert_int_equal(cleanup_header_name_len("Received", 8), 0);
    assert_int_equal(cleanup_header_kind("rEcEiVeD", 8), HDR_RECEIVED);
    assert_int_equal(cleanup_header_kind("Message-Id", 10), HDR_MESSAGE_ID);
    assert_int_equal(cleanup_header_kind("Date-X", 6), HDR_OTHER);
}

static void test_callback_failure(void **state)
{
    struct sink s;
    struct cleanup_content *cc;

    memset(&s, 0, sizeof(s));
    s.fail_headers = true;
    cc = cleanup_content_new(1000, sink_out, sink_headers, &s);
    assert_int_equal(cleanup_content_feed(cc, "A: b\n", 5), 0);
    assert_int_equal(cleanup_content_feed(cc, "\nbody\n", 6), -1);
    assert_int_equal(cleanup_content_feed(cc, "more\n", 5), -1);
    assert_int_equal(cleanup_content_finish(cc), -1);
    assert_int_equal(s.header_calls, 1);
    assert_int_equal(s.out.len, 0);
    cleanup_content_free(cc);
}

static void use_tz(const char *tz)
{
    setenv("TZ", tz, 1);
    tzset();
}

static void test_date(void **state)
{
    struct buf b = BUF_INIT;

    use_tz("UTC");
    cleanup_format_date(&b, 1795429081);
    assert_string_equal(buf_cstr(&b), "Mon, 23 Nov 2026 10:18:01 +0000 (UTC)");
    buf_reset(&b);
    /* Single-digit days are space-padded, as Postfix writes them. */
    cleanup_format_date(&b, 1678179903);
    assert_string_equal(buf_cstr(&b), "Tue,  7 Mar 2023 09:05:03 +0000 (UTC)");
    buf_reset(&b);
    use_tz("<+0530>-5:30");
    cleanup_format_date(&b, 1795429081);
    assert_string_equal(buf_cstr(&b),
                        "Mon, 23 Nov 2026 15:48:01 +0530 (+0530)");
    buf_reset(&b);
    use_tz("<-03>3");
    cleanup_format_date(&b, 1795429081);
    assert_string_equal(buf_cstr(&b), "Mon, 23 Nov 2026 07:18:01 -0300 (-03)");
    buf_free(&b);
    use_tz("UTC");
}

static void test_received(void **state)
{
    struct cleanup_received r = {
        .helo = "mx.example.org",
        .client_name = "mail.example.org",
        .client_addr = "192.0.2.1",
        .myhostname = "mail.example.test",
        .mail_name = "posthorn",
        .protocol = "ESMTP",
        .queue_id = "4A1B2C3D",
        .rcpt = "bob@example.test",
        .when = 1795429081,
    };
    struct buf b = BUF_INIT;

    use_tz("UTC");
    cleanup_format_received(&b, &r);
    assert_string_equal(buf_cstr(&b),
                        "Received: from mx.example.org (mail.example.org "
                        "[192.0.2.1])\n"
                        "\tby mail.example.test (posthorn) with ESMTP id "
                        "4A1B2C3D\n"
                        "\tfor <bob@example.test>; Mon, 23 Nov 2026 10:18:01 "
                        "+0000 (UTC)\n");

    /* Several recipients: no "for"; IPv6; no HELO; TLS text. */
    buf_reset(&b);
    r.rcpt = NULL;
    r.helo = NULL;
    r.client_name = "unknown";
    r.client_addr = "2001:db8::1";
    r.tls = "using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384";
    cleanup_format_received(&b, &r);
    assert_string_equal(buf_cstr(&b),
                        "Received: from unknown (unknown [IPv6:2001:db8::1])\n"
                        "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\n"
                        "\tby mail.example.test (posthorn) with ESMTP id "
                        "4A1B2C3D;\n"
                        "\tMon, 23 Nov 2026 10:18:01 +0000 (UTC)\n");

    /* Control bytes and 8-bit text from HELO never reach the header raw. */
    buf_reset(&b);
    r.tls = NULL;
    r.helo = "evil\r\nX-Injected: 1\xc3\xa9";
    r.client_addr = "192.0.2.1";
    cleanup_format_received(&b, &r);
    assert_null(strstr(buf_cstr(&b), "\r"));
    assert_non_null(
        strstr(buf_cstr(&b), "Received: from evil??X-Injected: 1?? (unknown"));
    assert_int_equal(strchr(buf_cstr(&b), '\n') - buf_cstr(&b),
                     strlen("Received: from evil??X-Injected: 1?? (unknown "
                            "[192.0.2.1])"));

    /* Local submission: no client part. */
    buf_reset(&b);
    r.client_addr = NULL;
    r.client_name = NULL;
    r.protocol = NULL;
    r.rcpt = "bob@example.test";
    cleanup_format_received(&b, &r);
    assert_string_equal(buf_cstr(&b),
                        "Received: by mail.example.test (posthorn) id "
                        "4A1B2C3D\n"
                        "\tfor <bob@example.test>; Mon, 23 Nov 2026 10:18:01 "
                        "+0000 (UTC)\n");
    buf_free(&b);
}

static void test_message_id(void **state)
{
    struct buf b = BUF_INIT;

    use_tz("<+0530>-5:30"); /* the stamp is UTC whatever the zone */
    cleanup_format_message_id(&b, 1795429081, "4A1B2C3D", "mail.example.test");
    assert_string_equal(buf_cstr(&b), "Message-ID: <20261123101801.4A1B2C3D@"
                                      "mail.example.test>\n");
    buf_free(&b);
    use_tz("UTC");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_simple),
        cmocka_unit_test(test_split_unterminated),
        cmocka_unit_test(test_split_limit),
        cmocka_unit_test(test_header_facts),
        cmocka_unit_test(test_callback_failure),
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_received),
        cmocka_unit_test(test_message_id),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
