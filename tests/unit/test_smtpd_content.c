/*
 * test_smtpd_content - what DATA and BDAT bytes become in the queue (dot
 * removal, end of data, CRLF -> LF across chunks), and how smtpd judges
 * cleanup's reply frame before it may say 250.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

/* The daemon's files are not in a library: compile them in. */
#include "smtpd/smtpd_cleanup.c"
#include "smtpd/smtpd_content.c"

/* Feed "line\r\n" style input split at '\n'; returns bytes up to the end. */
static size_t feed_data(const char *in, struct buf *out, bool *ended)
{
    struct smtpd_data_state st;
    const char *p = in;

    smtpd_data_init(&st);
    *ended = false;
    buf_reset(out);
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len;
        bool crlf;

        assert_non_null(nl);
        len = (size_t)(nl - p);
        crlf = len > 0 && p[len - 1] == '\r';
        if (smtpd_data_line(&st, p, len - crlf, crlf, out)) {
            *ended = true;
            return (size_t)(nl + 1 - in);
        }
        p = nl + 1;
    }
    return (size_t)(p - in);
}

static void test_data_end_and_dots(void **state)
{
    struct buf out = BUF_INIT;
    bool ended;
    const char *in = "Subject: x\r\n\r\n..leading\r\n.\r\nNEXT\r\n";

    assert_int_equal(feed_data(in, &out, &ended), strlen(in) - 6);
    assert_true(ended);
    assert_string_equal(out.data, "Subject: x\n\n.leading\n");

    /* An empty message. */
    assert_int_equal(feed_data(".\r\n", &out, &ended), 3);
    assert_true(ended);
    assert_int_equal(out.len, 0);
    buf_free(&out);
}

/*
 * smtpd_data_lines over any split of the input gives what smtpd_data_line
 * gives line by line, stops at the end of data, and leaves an incomplete
 * or over-long line alone.
 */
static void test_data_lines_in_bulk(void **state)
{
    const char *in = "Subject: x\r\n\r\n..dot\r\nbare\n.\r\nmid\rcr\r\n"
                     "\r\n.\r\nQUIT\r\n";
    size_t len = strlen(in), whole;
    struct buf want = BUF_INIT, out = BUF_INIT;
    bool ended;

    whole = feed_data(in, &want, &ended);
    assert_true(ended);
    for (size_t chunk = 1; chunk <= len; chunk++) {
        struct smtpd_data_state st;
        size_t pos = 0, used;
        bool end = false;

        smtpd_data_init(&st);
        buf_reset(&out);
        while (!end) {
            size_t window = chunk;

            /* Grow the window until a whole line fits, as the stream's
             * line-by-line path would read on. */
            do {
                if (pos + window > len)
                    window = len - pos;
                used = smtpd_data_lines(&st, in + pos, window, SIZE_MAX, &out,
                                        &end);
                window++;
            } while (used == 0 && pos + window - 1 < len);
            assert_true(used > 0);
            pos += used;
        }
        assert_int_equal(pos, whole);
        assert_int_equal(out.len, want.len);
        assert_memory_equal(out.data, want.data, want.len);
    }

    /* Nothing taken: an incomplete line, a line over the bound. */
    {
        struct smtpd_data_state st;
        bool end;

        smtpd_data_init(&st);
        buf_reset(&out);
        assert_int_equal(smtpd_data_lines(&st, "no end", 6, SIZE_MAX, &out,
                                          &end), 0);
        assert_int_equal(smtpd_data_lines(&st, "abcd\r\nx\r\n", 9, 3, &out,
                                          &end), 0);
        assert_false(end);
        /* At the bound is fine; the next line is over it. */
        assert_int_equal(smtpd_data_lines(&st, "abc\r\nabcd\n", 11, 3, &out,
                                          &end), 5);
        assert_int_equal(out.len, 4);
        assert_memory_equal(out.data, "abc\n", 4);
    }
    buf_free(&want);
    buf_free(&out);
}

static void test_data_bare_newlines(void **state)
{
    struct buf out = BUF_INIT;
    bool ended;

    /* Bare LF lines are normalised; "\n.\n" does not end the data. */
    feed_data("a\nb\r\n.\nc\r\n.\r\n", &out, &ended);
    assert_true(ended);
    assert_string_equal(out.data, "a\nb\n\nc\n");

    /* "." CRLF after a bare-LF line is content too (CRLF.CRLF only). */
    feed_data("a\n.\r\nb\r\n.\r\n", &out, &ended);
    assert_true(ended);
    assert_string_equal(out.data, "a\n\nb\n");

    /* Never ended: everything is content. */
    feed_data("x\r\n.\n", &out, &ended);
    assert_false(ended);
    assert_string_equal(out.data, "x\n\n");

    /* A bare CR inside a line is kept as it is. */
    feed_data("a\rb\r\n.\r\n", &out, &ended);
    assert_true(ended);
    assert_string_equal(out.data, "a\rb\n");
    buf_free(&out);
}

static void test_data_binary_bytes(void **state)
{
    struct smtpd_data_state st;
    struct buf out = BUF_INIT;
    const char line[] = {'a', 0, '\xff', 'b'};

    smtpd_data_init(&st);
    assert_false(smtpd_data_line(&st, line, sizeof(line), true, &out));
    assert_int_equal(out.len, 5);
    assert_memory_equal(out.data,
                        "a\0\xff"
                        "b\n",
                        5);
    buf_free(&out);
}

static void test_bdat_chunks(void **state)
{
    struct smtpd_bdat_state st;
    struct buf out = BUF_INIT;

    smtpd_bdat_init(&st);
    smtpd_bdat_decode(&st, "a\r\nb\r", 5, &out);
    assert_string_equal(out.data, "a\nb"); /* trailing CR held back */
    smtpd_bdat_decode(&st, "\nc\rd\n", 5, &out);
    assert_string_equal(out.data, "a\nb\nc\rd\n");
    smtpd_bdat_decode(&st, "e\r", 2, &out);
    smtpd_bdat_decode(&st, "", 0, &out);  /* empty chunk keeps the CR */
    smtpd_bdat_decode(&st, "f", 1, &out); /* not LF: the CR stays */
    assert_string_equal(out.data, "a\nb\nc\rd\ne\rf");
    smtpd_bdat_decode(&st, "\r", 1, &out);
    smtpd_bdat_finish(&st, &out); /* LAST: emit the CR */
    assert_string_equal(out.data, "a\nb\nc\rd\ne\rf\r");
    smtpd_bdat_finish(&st, &out);
    assert_string_equal(out.data, "a\nb\nc\rd\ne\rf\r");

    /* Dots and "." lines mean nothing in BDAT. */
    buf_reset(&out);
    smtpd_bdat_init(&st);
    smtpd_bdat_decode(&st, ".\r\n..x\r\n", 8, &out);
    assert_string_equal(out.data, ".\n..x\n");
    buf_free(&out);
}

/* ---------------------------------------------------------- cleanup reply */

static int parse(const char *const *pairs, struct smtpd_cleanup_result *res)
{
    struct attr_list l = ATTR_LIST_INIT;
    char err[128];
    int rc;

    for (size_t i = 0; pairs[i]; i += 2)
        attr_list_add(&l, pairs[i], pairs[i + 1], strlen(pairs[i + 1]));
    rc = smtpd_cleanup_parse_reply(&l, res, err, sizeof(err));
    attr_list_free(&l);
    return rc;
}

static void test_cleanup_reply(void **state)
{
    struct smtpd_cleanup_result res;

    const char *ok[] = {"status", "0", "queue_id", "4F2A1B3C9D", NULL};
    assert_int_equal(parse(ok, &res), 0);
    assert_int_equal(res.status, 0);
    assert_string_equal(res.queue_id, "4F2A1B3C9D");

    const char *tmp[] = {"status", "4", "reason",
                         "4.3.0 queue file write "
                         "error",
                         NULL};
    assert_int_equal(parse(tmp, &res), 0);
    assert_int_equal(res.status, 4);
    assert_string_equal(res.reason, "4.3.0 queue file write error");

    const char *big[] = {"status", "5", "reason", "5.3.4 too big", NULL};
    assert_int_equal(parse(big, &res), 0);
    assert_string_equal(res.reason, "5.3.4 too big");

    /* A reason without (or with the wrong class of) enhanced code. */
    const char *bare[] = {"status", "5", "reason", "rejected", NULL};
    assert_int_equal(parse(bare, &res), 0);
    assert_string_equal(res.reason, "5.3.0 rejected");
    const char *wrong[] = {"status", "4", "reason", "5.7.1 no", NULL};
    assert_int_equal(parse(wrong, &res), 0);
    assert_string_equal(res.reason, "4.3.0 5.7.1 no");

    /* Never 250 on anything doubtful. */
    const char *no_status[] = {"queue_id", "ABC", NULL};
    const char *bad_status[] = {"status", "2", "queue_id", "ABC", NULL};
    const char *no_id[] = {"status", "0", NULL};
    const char *bad_id[] = {"status", "0", "queue_id", "../etc", NULL};
    const char *empty_id[] = {"status", "0", "queue_id", "", NULL};
    const char *no_reason[] = {"status", "4", NULL};
    const char *ctl_reason[] = {"status", "4", "reason", "4.3.0 a\r\n250 ok",
                                NULL};
    assert_int_equal(parse(no_status, &res), -1);
    assert_int_equal(parse(bad_status, &res), -1);
    assert_int_equal(parse(no_id, &res), -1);
    assert_int_equal(parse(bad_id, &res), -1);
    assert_int_equal(parse(empty_id, &res), -1);
    assert_int_equal(parse(no_reason, &res), -1);
    assert_int_equal(parse(ctl_reason, &res), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_end_and_dots),
        cmocka_unit_test(test_data_lines_in_bulk),
        cmocka_unit_test(test_data_bare_newlines),
        cmocka_unit_test(test_data_binary_bytes),
        cmocka_unit_test(test_bdat_chunks),
        cmocka_unit_test(test_cleanup_reply),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
