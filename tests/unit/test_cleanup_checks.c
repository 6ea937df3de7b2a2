/*
 * test_cleanup_checks - the I/O-free parts of header/body checks:
 * the action parser (every header_checks(5) action, 4NN/5NN, enhanced
 * codes, text made safe for smtpd, what is only warned about), which
 * table a line goes to, header unfolding, the Postfix-style log line, the
 * primary header hook in cleanup_content (drop, replace, prepend, and
 * what cleanup notes about the block afterwards), and cleanup_body's MIME
 * walk: part headers, attached messages, boundaries, long lines cut
 * into pieces, body_checks_size_limit per segment, edits in the output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cleanup/cleanup_body.c"
#include "cleanup/cleanup_checks.c"
#include "cleanup/cleanup_content.c"
#include "cleanup/cleanup_envelope.c"

/* ---- the action parser ---- */

static void test_action_words(void **state)
{
    struct cleanup_action a;

    cleanup_action_parse("DUNNO", true, &a);
    assert_int_equal(a.kind, CLEANUP_ACT_DUNNO);
    assert_null(a.problem);
    cleanup_action_parse("ok", true, &a);
    assert_int_equal(a.kind, CLEANUP_ACT_DUNNO);
    assert_null(a.problem);
    cleanup_action_parse("discard  spam run 7", true, &a);
    assert_int_equal(a.kind, CLEANUP_ACT_DISCARD);
    assert_string_equal(a.text, "spam run 7");
    cleanup_action_parse("Hold", true, &a);
    assert_int_equal(a.kind, CLEANUP_ACT_HOLD);
    assert_string_equal(a.text, "");
    cleanup_action_parse("IGNORE", false, &a);
    assert_int_equal(a.kind, CLEANUP_ACT_IGNORE);
    cleanup_action_parse("WARN look at this", false, &a);
    assert_int_equal(a.kind, CLEANUP_ACT_WARN);
    assert_string_equal(a.text, "look at this");
    cleanup_action_parse("INFO note", false, &a);
    assert_int_equal(a.kind, CLEANUP_ACT_INFO);
    assert_string_equal(a.text, "note");
}

static void test_action_reject(void **state)
{
    struct cleanup_action a;

    cleanup_action_parse("REJECT", true, &a);
    assert_int_equal(a.kind, CLEANUP_ACT_REJECT);
    assert_int_equal(a.status, 5);
    assert_string_equal(a.reason, "5.7.1 message content rejected");
    cleanup_action_parse("reject No spam here", true, &a);
    assert_int_equal(a.status, 5);
    assert_string_equal(a.reason, "5.7.1 No spam here");
    /* The text's own enhanced code decides, 4.x.x included. */
    cleanup_action_parse("REJECT 4.7.0 try later", true, &a);
    assert_int_equal(a.status, 4);
    assert_string_equal(a.reason, "4.7.0 try later");
    cleanup_action_parse("REJECT 5.7.9 policy", true, &a);
    assert_int_equal(a.status, 5);
    assert_string_equal(a.reason, "5.7.9 policy");
    /* Postfix: a 2.x.x code cannot reject; it becomes 4.x.x. */
    cleanup_action_parse("REJECT 2.0.0 odd", true, &a);
    assert_int_equal(a.status, 4);
    assert_string_equal(a.reason, "4.0.0 odd");
    /* Not a code: "5.7" is text. */
    cleanup_action_parse("REJECT 5.7 nope", true, &a);
    assert_string_equal(a.reason, "5.7.1 5.7 nope");
}

static void test_action_numeric(void **state)
{
    struct cleanup_action a;

    cleanup_action_parse("450 come back later", true, &a);
    assert_int_equal(a.kind, CLEANUP_ACT_REJECT);
    assert_int_equal(a.status, 4);
    assert_string_equal(a.reason, "4.7.1 come back later");
    cleanup_action_parse("554 5.7.2 blocked", true, &a);
    assert_int_equal(a.status, 5);
    assert_string_equal(a.reason, "5.7.2 blocked");
    /* The class of the code wins over the text's. */
    cleanup_action_parse("451 5.7.2 mismatch", true, &a);
    assert_int_equal(a.status, 4);
    assert_string_equal(a.reason, "4.7.2 mismatch");
    cleanup_action_parse("550", true, &a);
    assert_string_equal(a.reason, "5.7.1 message content rejected");
    /* 2NN, 3NN or 4-digit words are not actions. */
    cleanup_action_parse("250 fine", true, &a);
    assert_int_equal(a.kind, CLEANUP_ACT_DUNNO);
    assert_non_null(a.problem);
    cleanup_action_parse("4500 x", true, &a);
    assert_int_equal(a.kind, CLEANUP_ACT_DUNNO);
}

static void test_action_text_is_safe(void **state)
{
    struct cleanup_action a;
    char big[1000];

    /* Message text substituted into a result: no control bytes. */
    cleanup_action_parse("REJECT bad \x01 byte \xc3\xa9\r", true, &a);
    assert_string_equal(a.reason, "5.7.1 bad ? byte ???");
    memset(big, 'x', sizeof(big) - 1);
    memcpy(big, "REJECT ", 7);
    big[sizeof(big) - 1] = 0;
    cleanup_action_parse(big, true, &a);
    assert_int_equal(strlen(a.reason), CLEANUP_REASON_MAX);
}

static void test_action_prepend_replace(void **state)
{
    struct cleanup_action a;

    cleanup_action_parse("PREPEND X-Spam: yes", true, &a);
    assert_int_equal(a.kind, CLEANUP_ACT_PREPEND);
    assert_string_equal(a.text, "X-Spam: yes");
    cleanup_action_parse("replace Subject: [SPAM] x", true, &a);
    assert_int_equal(a.kind, CLEANUP_ACT_REPLACE);
    assert_string_equal(a.text, "Subject: [SPAM] x");
    /* A header needs "Name:"; a body line does not. */
    cleanup_action_parse("PREPEND not a header", true, &a);
    assert_int_equal(a.kind, CLEANUP_ACT_DUNNO);
    assert_non_null(strstr(a.problem, "not a header"));
    cleanup_action_parse("PREPEND a body line", false, &a);
    assert_int_equal(a.kind, CLEANUP_ACT_PREPEND);
    cleanup_action_parse("REPLACE", false, &a);
    assert_int_equal(a.kind, CLEANUP_ACT_DUNNO);
    assert_string_equal(a.problem, "REPLACE without text");
    cleanup_action_parse("PREPEND", true, &a);
    assert_string_equal(a.problem, "PREPEND without text");
}

static void test_action_unsupported(void **state)
{
    struct cleanup_action a;

    cleanup_action_parse("FILTER smtp:[127.0.0.1]:10025", true, &a);
    assert_int_equal(a.kind, CLEANUP_ACT_DUNNO);
    assert_string_equal(a.problem, "FILTER is not supported");
    cleanup_action_parse("redirect a@b", true, &a);
    assert_string_equal(a.problem, "REDIRECT is not supported");
    cleanup_action_parse("BCC a@b", true, &a);
    assert_string_equal(a.problem, "BCC is not supported");
    cleanup_action_parse("FROBNICATE", true, &a);
    assert_string_equal(a.problem, "unknown action");
    cleanup_action_parse("", true, &a);
    assert_int_equal(a.kind, CLEANUP_ACT_DUNNO);
    assert_string_equal(a.problem, "unknown action");
}

/* ---- classes, keys, log line ---- */

static void test_lists(void **state)
{
    const char *ct = "Content-Type: text/plain\n", *subj = "Subject: x\n";

    assert_true(cleanup_header_is_mime(ct, strlen(ct)));
    assert_true(cleanup_header_is_mime("mime-version: 1.0\n", 18));
    assert_false(cleanup_header_is_mime("Content-Length: 5\n", 18));
    assert_false(cleanup_header_is_mime(subj, strlen(subj)));
    assert_int_equal(
        cleanup_check_list_for(CLEANUP_PART_PRIMARY, subj, strlen(subj)),
        CLEANUP_CHECK_HEADER);
    assert_int_equal(
        cleanup_check_list_for(CLEANUP_PART_PRIMARY, ct, strlen(ct)),
        CLEANUP_CHECK_MIME);
    assert_int_equal(
        cleanup_check_list_for(CLEANUP_PART_MULTIPART, subj, strlen(subj)),
        CLEANUP_CHECK_MIME);
    assert_int_equal(
        cleanup_check_list_for(CLEANUP_PART_NESTED, subj, strlen(subj)),
        CLEANUP_CHECK_NESTED);
    assert_int_equal(
        cleanup_check_list_for(CLEANUP_PART_NESTED, ct, strlen(ct)),
        CLEANUP_CHECK_MIME);
    assert_int_equal(cleanup_check_list_for(CLEANUP_PART_BODY, "x", 1),
                     CLEANUP_CHECK_BODY);
}

static void test_unfold(void **state)
{
    struct buf out = BUF_INIT;
    const char *h = "Subject: one\n two\r\n\tthree\n";

    cleanup_header_unfold(&out, h, strlen(h), 1000);
    assert_string_equal(out.data, "Subject: one two\tthree");
    cleanup_header_unfold(&out, h, strlen(h), 10);
    assert_string_equal(out.data, "Subject: o");
    buf_free(&out);
}

static void test_log_line(void **state)
{
    struct cleanup_envelope env = {0};
    struct buf out = BUF_INIT;
    char longh[400];

    env.sender = "a@example.org";
    env.client_name = "unknown";
    env.client_addr = "127.0.0.1";
    env.protocol = "ESMTP";
    env.helo = "client.example.org";
    cleanup_rcpt_add(&env.rcpts, "b@example.test", "", "", "");
    cleanup_check_log_line(&out, "ABC123", "reject", "header",
                           "Subject: buy\tnow", 16, &env, "5.7.1 no spam");
    assert_string_equal(out.data,
                        "ABC123: reject: header Subject: buy?now from "
                        "unknown[127.0.0.1]; from=<a@example.org> "
                        "to=<b@example.test> proto=ESMTP "
                        "helo=<client.example.org>: 5.7.1 no spam");
    /* Local submission, null sender, no text; content cut to 200. */
    buf_reset(&out);
    env.sender = "";
    env.client_addr = NULL;
    env.protocol = NULL;
    env.helo = NULL;
    memset(longh, 'h', sizeof(longh));
    cleanup_check_log_line(&out, "ID", "hold", "body", longh, sizeof(longh),
                           &env, NULL);
    assert_int_equal(out.len, strlen("ID: hold: body  from local; from=<> "
                                     "to=<b@example.test>") +
                                  200);
    assert_non_null(
        strstr(out.data, " from local; from=<> to=<b@example.test>"));
    cleanup_rcpt_list_free(&env.rcpts);
    buf_free(&out);
}

/* ---- a scripted check hook ---- */

struct script {
    const char *match[8]; /* substring of the text ... */
    int action[8];        /* ... gives this: 'I'gnore 'R'eplace 'P'repend
                             'S'top */
    const char *text[8];
    struct buf seen; /* "part|text\n" of every call */
};

static int script_check(void *ctx, enum cleanup_part part, struct buf *text,
                        struct buf *prepend)
{
    struct script *s = ctx;

    buf_printf(&s->seen, "%d|%.*s\n", (int)part, (int)text->len, text->data);
    for (int i = 0; i < 8 && s->match[i] != NULL; i++) {
        if (memmem(text->data, text->len, s->match[i], strlen(s->match[i])) ==
            NULL)
            continue;
        switch (s->action[i]) {
        case 'I':
            return CLEANUP_DROP;
        case 'R':
            buf_reset(text);
            buf_puts(text, s->text[i]);
            return CLEANUP_KEEP;
        case 'P':
            buf_puts(prepend, s->text[i]);
            return CLEANUP_KEEP;
        case 'S':
            return -1;
        }
    }
    return CLEANUP_KEEP;
}

static int collect(const char *data, size_t len, void *ctx)
{
    buf_append(ctx, data, len);
    return 0;
}

static int headers_into(struct cleanup_content *cc, void *ctx)
{
    const struct buf *b = cleanup_content_header_block(cc);

    buf_append(ctx, b->data, b->len);
    return 0;
}

static void test_primary_hook(void **state)
{
    struct script s = {
        .match = {"X-Drop", "Message-ID", "Subject", "From:"},
        .action = {'I', 'I', 'R', 'P'},
        .text = {NULL, NULL, "Subject: [tagged]\n", "X-Before: 1\n"},
    };
    struct buf out = BUF_INIT;
    struct cleanup_content *cc =
        cleanup_content_new(10000, collect, headers_into, &out);
    const char *msg = "From: a@b\nX-Drop: yes\n continued\nSubject: hi\n"
                      "Message-ID: <x@y>\nBcc: hidden@x\nTo: c@d\n"
                      "Return-Path: <forged@x>\n\nbody\n";

    cleanup_content_set_check(cc, script_check, &s);
    assert_int_equal(cleanup_content_feed(cc, msg, strlen(msg)), 0);
    assert_int_equal(cleanup_content_finish(cc), 0);
    assert_string_equal(out.data, "X-Before: 1\nFrom: a@b\n"
                                  "Subject: [tagged]\nTo: c@d\n\nbody\n");
    /* The hook saw each whole header, folded lines included, and also
     * the headers cleanup removes anyway (Bcc:, Return-Path:). */
    assert_non_null(strstr(s.seen.data, "0|X-Drop: yes\n continued\n\n"));
    assert_non_null(strstr(s.seen.data, "0|Bcc: hidden@x\n\n"));
    assert_non_null(strstr(s.seen.data, "0|Return-Path: <forged@x>\n\n"));
    /* An ignored Message-ID: counts as missing (cleanup adds one). */
    assert_false(cleanup_content_has(cc, HDR_MESSAGE_ID));
    assert_true(cleanup_content_has(cc, HDR_FROM));
    cleanup_content_free(cc);
    buf_free(&out);
    buf_free(&s.seen);
}

static void test_primary_hook_stop(void **state)
{
    struct script s = {.match = {"Subject"}, .action = {'S'}};
    struct buf out = BUF_INIT;
    struct cleanup_content *cc =
        cleanup_content_new(10000, collect, headers_into, &out);
    const char *msg = "From: a@b\nSubject: spam\nTo: c@d\n\nbody\n";

    cleanup_content_set_check(cc, script_check, &s);
    assert_int_equal(cleanup_content_feed(cc, msg, strlen(msg)), -1);
    assert_int_equal(cleanup_content_finish(cc), -1);
    /* Nothing was written: the headers callback never ran. */
    assert_int_equal(out.len, 0);
    cleanup_content_free(cc);
    buf_free(&out);
    buf_free(&s.seen);
}

/* ---- the body ---- */

static const struct cleanup_body_limits body_lim = {
    .line_max = 2048, .header_max = 10000, .check_max = 51200};

/* Run body through cleanup_body in chunks of step bytes. */
static void run_body(const struct cleanup_body_limits *lim,
                     const struct cleanup_ctype *primary, struct script *s,
                     const char *body, size_t step, struct buf *out, int want)
{
    struct cleanup_body *b =
        cleanup_body_new(lim, primary, script_check, s, collect, out);
    size_t len = strlen(body);
    int rc = 0;

    for (size_t off = 0; off < len && rc == 0; off += step)
        rc = cleanup_body_feed(b, body + off,
                               len - off < step ? len - off : step);
    if (rc == 0)
        rc = cleanup_body_finish(b);
    assert_int_equal(rc, want);
    cleanup_body_free(b);
}

static void test_ctype(void **state)
{
    struct cleanup_ctype ct = {0};
    const char *h1 = "Content-Type: multipart/mixed;\n\tboundary=\"=_a b\"\n";
    const char *h2 = "content-type: Multipart/Alternative; charset=x;"
                     " BOUNDARY=simple\n";
    const char *h3 = "Content-Type: message/rfc822\n";
    const char *h4 = "Content-Type: multipart/mixed\n"; /* no boundary */
    const char *h5 = "Subject: multipart/mixed; boundary=x\n";

    cleanup_ctype_note(&ct, h1, strlen(h1));
    assert_int_equal(ct.kind, CLEANUP_CT_MULTIPART);
    assert_string_equal(ct.boundary, "=_a b");
    cleanup_ctype_note(&ct, h2, strlen(h2));
    assert_string_equal(ct.boundary, "simple");
    cleanup_ctype_note(&ct, h3, strlen(h3));
    assert_int_equal(ct.kind, CLEANUP_CT_MESSAGE);
    cleanup_ctype_note(&ct, h4, strlen(h4));
    assert_int_equal(ct.kind, CLEANUP_CT_OTHER);
    cleanup_ctype_note(&ct, h1, strlen(h1));
    cleanup_ctype_note(&ct, h5, strlen(h5)); /* not a Content-Type */
    assert_int_equal(ct.kind, CLEANUP_CT_MULTIPART);
}

static const char *mime_msg =
    "\n"
    "preamble\n"
    "--outer\n"
    "Content-Type: text/plain\n"
    "X-Part: one\n"
    "\n"
    "first part line\n"
    "--outer\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "Subject: inner subject\n"
    "Content-Type: multipart/alternative; boundary=\"inner\"\n"
    "\n"
    "--inner\n"
    "Content-Type: text/html\n"
    "\n"
    "<p>deep line</p>\n"
    "--inner--\n"
    "--outer--\n"
    "epilogue\n";

static void test_mime_walk(void **state)
{
    struct cleanup_ctype primary = {.kind = CLEANUP_CT_MULTIPART,
                                    .boundary = "outer"};
    const size_t steps[] = {1, 7, 100000};

    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        struct script s = {0};
        struct buf out = BUF_INIT;

        run_body(&body_lim, &primary, &s, mime_msg, steps[i], &out, 0);
        /* Nothing changed: the output is the input. */
        assert_string_equal(out.data, mime_msg);
        assert_string_equal(
            s.seen.data,
            "3|\n3|preamble\n3|--outer\n"
            "1|Content-Type: text/plain\n\n1|X-Part: one\n\n"
            "3|\n3|first part line\n3|--outer\n"
            "1|Content-Type: message/rfc822\n\n"
            "2|Subject: inner subject\n\n"
            "2|Content-Type: multipart/alternative; boundary=\"inner\"\n\n"
            "3|\n3|--inner\n"
            "1|Content-Type: text/html\n\n"
            "3|\n3|<p>deep line</p>\n3|--inner--\n3|--outer--\n3|epilogue\n");
        buf_free(&out);
        buf_free(&s.seen);
    }
}

static void test_body_edits(void **state)
{
    struct cleanup_ctype primary = {.kind = CLEANUP_CT_MULTIPART,
                                    .boundary = "outer"};
    struct script s = {
        .match = {"X-Part", "first part", "epilogue", "inner subject"},
        .action = {'I', 'R', 'P', 'R'},
        .text = {NULL, "REPLACED", "ADDED\n", "Subject: new\n"},
    };
    struct buf out = BUF_INIT;

    run_body(&body_lim, &primary, &s, mime_msg, 3, &out, 0);
    assert_null(strstr(out.data, "X-Part"));
    assert_non_null(strstr(out.data, "\n\nREPLACED\n--outer\n"));
    assert_non_null(strstr(out.data, "--outer--\nADDED\nepilogue\n"));
    assert_non_null(strstr(out.data, "\n\nSubject: new\nContent-Type: mult"));
    buf_free(&out);
    buf_free(&s.seen);

    /* Stop (REJECT/DISCARD) in the body: -1, output ends there. */
    struct script stop = {.match = {"deep line"}, .action = {'S'}};
    run_body(&body_lim, &primary, &stop, mime_msg, 5, &out, -1);
    assert_null(strstr(out.data, "deep line"));
    buf_free(&out);
    buf_free(&stop.seen);
}

static void test_long_lines_and_limits(void **state)
{
    struct cleanup_body_limits lim = {
        .line_max = 10, .header_max = 40, .check_max = 30};
    struct script s = {0};
    struct buf out = BUF_INIT;
    const char *body = "\n0123456789abcdefghij0123\nshort\nlate line\n";

    run_body(&lim, NULL, &s, body, 4, &out, 0);
    assert_string_equal(out.data, body);
    /* Pieces of 10 bytes; body_checks stop after 30 bytes of the segment. */
    assert_string_equal(s.seen.data, "3|\n3|0123456789\n3|abcdefghij\n"
                                     "3|0123\n3|short\n");
    buf_free(&out);
    buf_free(&s.seen);
}

static void test_part_header_overflow(void **state)
{
    struct cleanup_body_limits lim = {
        .line_max = 100, .header_max = 30, .check_max = 1000};
    struct cleanup_ctype primary = {.kind = CLEANUP_CT_MULTIPART,
                                    .boundary = "b"};
    struct script s = {0};
    struct buf out = BUF_INIT;
    const char *body = "\n--b\nX-A: 1\nX-Long: 0123456789012345678901234\n"
                       "rest\n--b--\n";

    run_body(&lim, &primary, &s, body, 1000, &out, 0);
    assert_string_equal(out.data, body);
    /* The part's header block ended at 30 bytes: the rest is body. */
    assert_string_equal(s.seen.data, "3|\n3|--b\n1|X-A: 1\n\n"
                                     "3|X-Long: 0123456789012345678901\n"
                                     "3|234\n3|rest\n3|--b--\n");
    buf_free(&out);
    buf_free(&s.seen);
}

static void test_nesting_bound(void **state)
{
    struct buf body = BUF_INIT, out = BUF_INIT;
    struct cleanup_ctype primary = {.kind = CLEANUP_CT_MULTIPART,
                                    .boundary = "b0"};
    struct script s = {0};

    buf_puts(&body, "\n");
    for (int i = 0; i < CLEANUP_MIME_DEPTH_MAX + 20; i++)
        buf_printf(&body,
                   "--b%d\nContent-Type: multipart/mixed; "
                   "boundary=b%d\n\n",
                   i, i + 1);
    buf_puts(&body, "deep\n");
    run_body(&body_lim, &primary, &s, body.data, 512, &out, 0);
    assert_string_equal(out.data, body.data);
    buf_free(&body);
    buf_free(&out);
    buf_free(&s.seen);
}

static void test_nested_primary(void **state)
{
    struct cleanup_ctype primary = {.kind = CLEANUP_CT_MESSAGE};
    struct script s = {0};
    struct buf out = BUF_INIT;
    const char *body = "\nSubject: inner\nX-Y: z\n\ntext\n";

    run_body(&body_lim, &primary, &s, body, 2, &out, 0);
    assert_string_equal(out.data, body);
    assert_string_equal(s.seen.data,
                        "3|\n2|Subject: inner\n\n2|X-Y: z\n\n3|\n3|text\n");
    buf_free(&out);
    buf_free(&s.seen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_action_words),
        cmocka_unit_test(test_action_reject),
        cmocka_unit_test(test_action_numeric),
        cmocka_unit_test(test_action_text_is_safe),
        cmocka_unit_test(test_action_prepend_replace),
        cmocka_unit_test(test_action_unsupported),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_unfold),
        cmocka_unit_test(test_log_line),
        cmocka_unit_test(test_primary_hook),
        cmocka_unit_test(test_primary_hook_stop),
        cmocka_unit_test(test_ctype),
        cmocka_unit_test(test_mime_walk),
        cmocka_unit_test(test_body_edits),
        cmocka_unit_test(test_long_lines_and_limits),
        cmocka_unit_test(test_part_header_overflow),
        cmocka_unit_test(test_nesting_bound),
        cmocka_unit_test(test_nested_primary),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
