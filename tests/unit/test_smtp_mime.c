/*
 * test_smtp_mime - the SMTP client's 8-bit to 7-bit downgrade for servers
 * without 8BITMIME: which parts are converted to quoted-printable, which
 * labels change, what is never touched (headers, base64, non-MIME
 * messages), the quoted-printable line rules, and malformed structure
 * copied unchanged.  Also the header/body split of the content measure
 * that decides whether SMTPUTF8 is needed for the header.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The daemon's files are not in a library: compile them in. */
#include "smtp/smtp_mime.c"
#include "smtp/smtp_text.c"

/* Downgrade s; the result (NUL-terminated, caller frees) and the count. */
static char *downgrade(const char *s, size_t *count)
{
    struct buf out = BUF_INIT;

    *count = smtp_mime_downgrade(s, strlen(s), &out);
    return buf_steal(&out);
}

static void assert_7bit(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        assert_true(*p < 0x80);
}

static void test_not_mime_is_left_alone(void **state)
{
    size_t n;
    char *out;

    (void)state;
    out = downgrade(
        "Subject: x\nContent-Transfer-Encoding: 8bit\n\ncaf\xc3\xa9\n", &n);
    assert_int_equal(n, 0);
    assert_string_equal(out, "");
    free(out);
}

static void test_single_part_text(void **state)
{
    size_t n;
    char *out;

    (void)state;
    out = downgrade("Subject: caf\xc3\xa9\n"
                    "MIME-Version: 1.0\n"
                    "Content-Type: text/plain; charset=utf-8\n"
                    "Content-Transfer-Encoding: 8bit\n"
                    "X-After: kept\n"
                    "\n"
                    "caf\xc3\xa9 = 1\n"
                    "trailing space \n"
                    "plain line\n",
                    &n);
    assert_int_equal(n, 1);
    /* The header keeps its 8-bit Subject; the label is replaced. */
    assert_string_equal(out, "Subject: caf\xc3\xa9\n"
                             "MIME-Version: 1.0\n"
                             "Content-Type: text/plain; charset=utf-8\n"
                             "X-After: kept\n"
                             "Content-Transfer-Encoding: quoted-printable\n"
                             "\n"
                             "caf=C3=A9 =3D 1\n"
                             "trailing space=20\n"
                             "plain line\n");
    free(out);
}

static void test_no_label_and_no_content_type(void **state)
{
    size_t n;
    char *out;

    (void)state;
    /* text/plain by default; 8-bit bytes under no label are converted too. */
    out = downgrade("MIME-Version: 1.0\n\n\xe9t\xe9", &n);
    assert_int_equal(n, 1);
    assert_string_equal(out, "MIME-Version: 1.0\n"
                             "Content-Transfer-Encoding: quoted-printable\n"
                             "\n"
                             "=E9t=E9");
    free(out);
}

static void test_ascii_body_is_not_converted(void **state)
{
    size_t n;
    char *out;

    (void)state;
    /* 8-bit only in the header: nothing to do. */
    out = downgrade("MIME-Version: 1.0\nSubject: \xc3\xa9\n"
                    "Content-Transfer-Encoding: 8bit\n\nascii\n",
                    &n);
    assert_int_equal(n, 0);
    free(out);
}

static void test_long_lines_soft_breaks(void **state)
{
    struct buf in = BUF_INIT;
    size_t n;
    char *out, *body, *line;

    (void)state;
    buf_puts(&in, "MIME-Version: 1.0\nContent-Transfer-Encoding: 8bit\n\n");
    for (int i = 0; i < 300; i++)
        buf_puts(&in, i % 7 == 0 ? "\xc3\xa9" : "x");
    buf_puts(&in, "\nend\n");
    out = downgrade(buf_cstr(&in), &n);
    assert_int_equal(n, 1);
    assert_7bit(out);
    body = strstr(out, "\n\n") + 2;
    for (line = strtok(body, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        size_t len = strlen(line);

        assert_true(len <= 76);
        /* An "=XX" is never split by a soft break. */
        assert_false(len >= 2 && line[len - 2] == '=');
        assert_false(len >= 3 && line[len - 3] == '=' && line[len - 1] == '=');
    }
    free(out);
    buf_free(&in);
}

static void test_multipart_converts_only_8bit_leaves(void **state)
{
    size_t n;
    char *out;

    (void)state;
    out = downgrade("MIME-Version: 1.0\n"
                    "Content-Type: multipart/mixed;\n"
                    "\tboundary=\"=-b 1\"\n"
                    "Content-Transfer-Encoding: 8bit\n"
                    "\n"
                    "preamble\n"
                    "--=-b 1\n"
                    "Content-Type: text/plain; charset=utf-8\n"
                    "Content-Transfer-Encoding: 8bit\n"
                    "\n"
                    "\xc3\xa9t\xc3\xa9\n"
                    "--=-b 1\n"
                    "Content-Type: application/octet-stream\n"
                    "Content-Transfer-Encoding: base64\n"
                    "\n"
                    "AAAA\n"
                    "--=-b 1\n"
                    "Content-Type: text/plain\n"
                    "\n"
                    "ascii only\n"
                    "--=-b 1--  \n"
                    "epilogue\n",
                    &n);
    /* One leaf and the container's label. */
    assert_int_equal(n, 2);
    assert_string_equal(out, "MIME-Version: 1.0\n"
                             "Content-Type: multipart/mixed;\n"
                             "\tboundary=\"=-b 1\"\n"
                             "Content-Transfer-Encoding: 7bit\n"
                             "\n"
                             "preamble\n"
                             "--=-b 1\n"
                             "Content-Type: text/plain; charset=utf-8\n"
                             "Content-Transfer-Encoding: quoted-printable\n"
                             "\n"
                             "=C3=A9t=C3=A9\n"
                             "--=-b 1\n"
                             "Content-Type: application/octet-stream\n"
                             "Content-Transfer-Encoding: base64\n"
                             "\n"
                             "AAAA\n"
                             "--=-b 1\n"
                             "Content-Type: text/plain\n"
                             "\n"
                             "ascii only\n"
                             "--=-b 1--  \n"
                             "epilogue\n");
    free(out);
}

static void test_embedded_message(void **state)
{
    size_t n;
    char *out;

    (void)state;
    out = downgrade("MIME-Version: 1.0\n"
                    "Content-Type: multipart/mixed; boundary=B\n"
                    "\n"
                    "--B\n"
                    "Content-Type: message/rfc822\n"
                    "Content-Transfer-Encoding: 8bit\n"
                    "\n"
                    "Subject: inner\n"
                    "Content-Type: text/plain\n"
                    "Content-Transfer-Encoding: 8bit\n"
                    "\n"
                    "\xe9\n"
                    "--B--\n",
                    &n);
    assert_int_equal(n, 2);
    assert_string_equal(out, "MIME-Version: 1.0\n"
                             "Content-Type: multipart/mixed; boundary=B\n"
                             "\n"
                             "--B\n"
                             "Content-Type: message/rfc822\n"
                             "Content-Transfer-Encoding: 7bit\n"
                             "\n"
                             "Subject: inner\n"
                             "Content-Type: text/plain\n"
                             "Content-Transfer-Encoding: quoted-printable\n"
                             "\n"
                             "=E9\n"
                             "--B--\n");
    free(out);
}

static void test_malformed_structure_is_copied(void **state)
{
    struct buf in = BUF_INIT;
    size_t n;
    char *out;

    (void)state;
    /* No boundary parameter: the multipart cannot be split. */
    out = downgrade(
        "MIME-Version: 1.0\nContent-Type: multipart/mixed\n\n\xe9\n", &n);
    assert_int_equal(n, 0);
    free(out);
    /* A boundary that never appears: one unterminated preamble. */
    out = downgrade("MIME-Version: 1.0\nContent-Type: multipart/mixed; "
                    "boundary=\"zz\"\n\n\xe9\n",
                    &n);
    assert_int_equal(n, 0);
    free(out);
    /* An over-long boundary is no boundary. */
    buf_puts(&in,
             "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=");
    for (int i = 0; i < 71; i++)
        buf_putc(&in, 'b');
    buf_puts(&in, "\n\n--");
    for (int i = 0; i < 71; i++)
        buf_putc(&in, 'b');
    buf_puts(&in, "\n\n\xe9\n");
    out = downgrade(buf_cstr(&in), &n);
    assert_int_equal(n, 0);
    free(out);
    buf_free(&in);
    /* Unterminated quoted parameter and comment: no crash, no change. */
    out = downgrade("MIME-Version: 1.0\nContent-Type: multipart/mixed; "
                    "boundary=\"abc\n\n\xe9\n",
                    &n);
    free(out);
    out =
        downgrade("MIME-Version: 1.0\nContent-Type: (text/plain\n\n\xe9\n", &n);
    free(out);
}

static void test_nesting_limit(void **state)
{
    struct buf in = BUF_INIT;
    size_t n;
    char *out;

    (void)state;
    /* Deeper than SMTP_MIME_DEPTH_MAX: the innermost part stays 8-bit. */
    buf_puts(&in, "MIME-Version: 1.0\n");
    for (int i = 0; i < SMTP_MIME_DEPTH_MAX + 5; i++)
        buf_printf(&in,
                   "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i,
                   i);
    buf_puts(&in, "Content-Type: text/plain\n\n\xe9\n");
    out = downgrade(buf_cstr(&in), &n);
    assert_int_equal(n, 0);
    free(out);
    buf_free(&in);
    /* Within the limit it is converted. */
    buf_puts(&in, "MIME-Version: 1.0\n");
    for (int i = 0; i < 5; i++)
        buf_printf(&in,
                   "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i,
                   i);
    buf_puts(&in, "Content-Type: text/plain\n\n\xe9\n");
    out = downgrade(buf_cstr(&in), &n);
    assert_int_equal(n, 1);
    assert_non_null(strstr(out, "\n\n=E9\n"));
    free(out);
    buf_free(&in);
}

static void test_qp_control_and_crlf(void **state)
{
    size_t n;
    char *out;

    (void)state;
    out = downgrade("MIME-Version: 1.0\n\na\rb\x01\t\xff\tx\t\n", &n);
    assert_int_equal(n, 1);
    assert_string_equal(strstr(out, "\n\n") + 2, "a=0Db=01\t=FF\tx=09\n");
    free(out);
}

static void test_soft_break_never_makes_a_boundary(void **state)
{
    struct buf in = BUF_INIT, again = BUF_INIT;
    size_t n;
    char *out, *line;

    (void)state;
    /* 75 bytes, then "--B": the soft break falls right before "--B". */
    buf_puts(&in, "MIME-Version: 1.0\nContent-Type: multipart/mixed; "
                  "boundary=B\n\n--B\nContent-Type: text/plain\n\n");
    for (int i = 0; i < 75; i++)
        buf_putc(&in, 'x');
    buf_puts(&in, "--B \xe9\n--B--\n");
    out = downgrade(buf_cstr(&in), &n);
    assert_int_equal(n, 1);
    assert_non_null(strstr(out, "=\n=2D-B =E9\n--B--\n"));
    /* The result parses the same way: converting it again changes nothing. */
    assert_int_equal(smtp_mime_downgrade(out, strlen(out), &again), 0);
    assert_int_equal(again.len, 0);
    for (line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n"))
        if (strncmp(line, "--B", 3) == 0)
            assert_true(strcmp(line, "--B") == 0 || strcmp(line, "--B--") == 0);
    free(out);
    buf_free(&in);
    buf_free(&again);
}

static void test_measure_header_8bit(void **state)
{
    struct smtp_measure m;
    const char *msg = "Subject: x\n\nbody \xc3\xa9\n";

    (void)state;
    smtp_measure_init(&m);
    smtp_measure_feed(&m, msg, strlen(msg));
    smtp_measure_end(&m);
    assert_true(m.eightbit);
    assert_false(m.header_8bit);
    /* Split anywhere, an 8-bit header byte is seen as such. */
    msg = "Subject: caf\xc3\xa9\n\nbody\n";
    for (size_t cut = 0; cut <= strlen(msg); cut++) {
        smtp_measure_init(&m);
        smtp_measure_feed(&m, msg, cut);
        smtp_measure_feed(&m, msg + cut, strlen(msg) - cut);
        assert_true(m.header_8bit);
    }
    /* The empty line is found across a chunk boundary. */
    msg = "A: b\n\n\xe9\n";
    for (size_t cut = 0; cut <= strlen(msg); cut++) {
        smtp_measure_init(&m);
        smtp_measure_feed(&m, msg, cut);
        smtp_measure_feed(&m, msg + cut, strlen(msg) - cut);
        assert_false(m.header_8bit);
        assert_true(m.eightbit);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_mime_is_left_alone),
        cmocka_unit_test(test_single_part_text),
        cmocka_unit_test(test_no_label_and_no_content_type),
        cmocka_unit_test(test_ascii_body_is_not_converted),
        cmocka_unit_test(test_long_lines_soft_breaks),
        cmocka_unit_test(test_multipart_converts_only_8bit_leaves),
        cmocka_unit_test(test_embedded_message),
        cmocka_unit_test(test_malformed_structure_is_copied),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_qp_control_and_crlf),
        cmocka_unit_test(test_soft_break_never_makes_a_boundary),
        cmocka_unit_test(test_measure_header_8bit),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
