/*
 * test_smtpd_params - the SMTP server's command-line and ESMTP parameter
 * parsers: what each MAIL/RCPT/BDAT argument becomes, and the exact
 * reply a malformed one gets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

/* The daemon's files are not in a library: compile them in. */
#include "smtpd/smtpd_params.c"

static const struct smtpd_param_opts all_on = {true, true, true};

/* ---------------------------------------------------------- command line */

static void test_split_command(void **state)
{
    char verb[SMTPD_VERB_MAX + 1];
    const char *args;

    assert_int_equal(
        smtpd_split_command("MAIL FROM:<a@b>", verb, sizeof(verb), &args), 0);
    assert_string_equal(verb, "MAIL");
    assert_string_equal(args, "FROM:<a@b>");

    assert_int_equal(
        smtpd_split_command("  noop   x y ", verb, sizeof(verb), &args), 0);
    assert_string_equal(verb, "noop");
    assert_string_equal(args, "x y ");

    assert_int_equal(smtpd_split_command("QUIT", verb, sizeof(verb), &args), 0);
    assert_string_equal(args, "");

    assert_int_equal(smtpd_split_command("", verb, sizeof(verb), &args), -1);
    assert_int_equal(smtpd_split_command(" \t ", verb, sizeof(verb), &args),
                     -1);

    /* An over-long verb is cut, so it cannot match a real command. */
    assert_int_equal(smtpd_split_command("ABCDEFGHIJKLMNOPQRSTUVWXYZ x", verb,
                                         sizeof(verb), &args),
                     0);
    assert_int_equal(strlen(verb), SMTPD_VERB_MAX);
    assert_string_equal(args, "x");
}

static void test_foreign_verb(void **state)
{
    assert_true(smtpd_is_foreign_verb("GET"));
    assert_true(smtpd_is_foreign_verb("post"));
    assert_true(smtpd_is_foreign_verb("CONNECT"));
    assert_true(smtpd_is_foreign_verb("Subject:"));
    assert_true(smtpd_is_foreign_verb("X-Mailer:"));
    assert_true(smtpd_is_foreign_verb("\x16\x03\x01"));
    assert_true(smtpd_is_foreign_verb("1234"));
    assert_false(smtpd_is_foreign_verb("MAIL"));
    assert_false(smtpd_is_foreign_verb("FOO"));
    assert_false(smtpd_is_foreign_verb("FROM:<a@b>"));
}

static void test_extract_path(void **state)
{
    struct buf path = BUF_INIT;
    const char *rest;

    assert_int_equal(
        smtpd_extract_path("FROM:<a@b> SIZE=10", "FROM:", false, &path, &rest),
        0);
    assert_string_equal(path.data, "<a@b>");
    assert_string_equal(rest, " SIZE=10");

    /* Space after the colon and any case are accepted (Postfix). */
    assert_int_equal(
        smtpd_extract_path("to: <x@y>", "TO:", false, &path, &rest), 0);
    assert_string_equal(path.data, "<x@y>");
    assert_string_equal(rest, "");

    assert_int_equal(smtpd_extract_path("FROM:<>", "FROM:", true, &path, &rest),
                     0);
    assert_string_equal(path.data, "<>");

    /* A '>' inside a quoted local part does not end the path. */
    assert_int_equal(smtpd_extract_path("TO:<\"a>b\"@c> NOTIFY=NEVER",
                                        "TO:", false, &path, &rest),
                     0);
    assert_string_equal(path.data, "<\"a>b\"@c>");
    assert_string_equal(rest, " NOTIFY=NEVER");

    /* Bare addresses only without strict_rfc821_envelopes. */
    assert_int_equal(
        smtpd_extract_path("TO:a@b X=1", "TO:", false, &path, &rest), 0);
    assert_string_equal(path.data, "<a@b>");
    assert_string_equal(rest, " X=1");
    assert_int_equal(smtpd_extract_path("TO:a@b", "TO:", true, &path, &rest),
                     -1);

    assert_int_equal(
        smtpd_extract_path("FROM:<a@b>SIZE=1", "FROM:", false, &path, &rest),
        -1);
    assert_int_equal(smtpd_extract_path("TO:", "TO:", false, &path, &rest), -1);
    assert_int_equal(smtpd_extract_path("TO:<a@b", "TO:", false, &path, &rest),
                     -1);
    assert_int_equal(smtpd_extract_path("<a@b>", "FROM:", false, &path, &rest),
                     -1);
    assert_int_equal(
        smtpd_extract_path("FROM <a@b>", "FROM:", false, &path, &rest), -1);
    buf_free(&path);
}

static void test_xtext(void **state)
{
    struct buf out = BUF_INIT;

    assert_int_equal(smtpd_xtext_decode("a+2Bb+3Dc", 9, &out), 0);
    assert_string_equal(out.data, "a+b=c");
    assert_int_equal(smtpd_xtext_decode("x+2by", 5, &out), 0); /* lower */
    assert_string_equal(out.data, "x+y");
    assert_int_equal(smtpd_xtext_decode("", 0, &out), 0);
    assert_int_equal(out.len, 0);

    assert_int_equal(smtpd_xtext_decode("a+2", 3, &out), -1);
    assert_int_equal(smtpd_xtext_decode("a+", 2, &out), -1);
    assert_int_equal(smtpd_xtext_decode("+G0", 3, &out), -1);
    assert_int_equal(smtpd_xtext_decode("a=b", 3, &out), -1);
    assert_int_equal(smtpd_xtext_decode("a b", 3, &out), -1);
    assert_int_equal(smtpd_xtext_decode("a\x80", 2, &out), -1);
    buf_free(&out);
}

/* ---------------------------------------------------------- MAIL */

static void expect_mail_error(const char *params,
                              const struct smtpd_param_opts *o,
                              const char *reply)
{
    struct smtpd_mail_params p;
    struct buf r = BUF_INIT;

    assert_int_equal(smtpd_parse_mail_params(params, o, &p, &r), -1);
    assert_string_equal(r.data, reply);
    assert_null(p.envid);
    buf_free(&r);
}

static void test_mail_params_ok(void **state)
{
    struct smtpd_mail_params p;
    struct buf r = BUF_INIT;

    assert_int_equal(smtpd_parse_mail_params("", &all_on, &p, &r), 0);
    assert_false(p.size_given);
    assert_int_equal(p.body, SMTPD_BODY_NONE);
    assert_int_equal(p.ret, SMTPD_RET_NONE);

    assert_int_equal(
        smtpd_parse_mail_params(" SIZE=12345 body=8bitmime SMTPUTF8 RET=hdrs "
                                "ENVID=QQ+2B1 AUTH=<>",
                                &all_on, &p, &r),
        0);
    assert_true(p.size_given);
    assert_int_equal(p.size, 12345);
    assert_int_equal(p.body, SMTPD_BODY_8BITMIME);
    assert_true(p.smtputf8);
    assert_int_equal(p.ret, SMTPD_RET_HDRS);
    assert_string_equal(p.envid, "QQ+1");
    assert_true(p.auth_given);
    smtpd_mail_params_free(&p);
    assert_null(p.envid);

    assert_int_equal(
        smtpd_parse_mail_params("BODY=7BIT RET=FULL", &all_on, &p, &r), 0);
    assert_int_equal(p.body, SMTPD_BODY_7BIT);
    assert_int_equal(p.ret, SMTPD_RET_FULL);

    assert_int_equal(
        smtpd_parse_mail_params("BODY=BINARYMIME", &all_on, &p, &r), 0);
    assert_int_equal(p.body, SMTPD_BODY_BINARYMIME);
    assert_string_equal(smtpd_body_name(p.body), "BINARYMIME");

    assert_int_equal(
        smtpd_parse_mail_params("AUTH=joe+40example.com", &all_on, &p, &r), 0);
    assert_true(p.auth_given);

    /* The largest SIZE that fits is accepted (the limit is the caller's). */
    assert_int_equal(
        smtpd_parse_mail_params("SIZE=9223372036854775807", &all_on, &p, &r),
        0);
    assert_int_equal(p.size, 9223372036854775807LL);
    buf_free(&r);
}

static void test_mail_params_errors(void **state)
{
    const struct smtpd_param_opts no_dsn = {false, true, true};
    const struct smtpd_param_opts no_utf8 = {true, false, true};
    const struct smtpd_param_opts no_chunking = {true, true, false};
    char envid[SMTPD_ENVID_MAX + 16];

    expect_mail_error("SIZE=x", &all_on, "501 5.5.4 Bad message size syntax");
    expect_mail_error("SIZE=", &all_on, "501 5.5.4 Bad message size syntax");
    expect_mail_error("SIZE", &all_on, "501 5.5.4 Bad message size syntax");
    expect_mail_error("SIZE=-1", &all_on, "501 5.5.4 Bad message size syntax");
    expect_mail_error("SIZE=1 SIZE=2", &all_on,
                      "501 5.5.4 Bad message size syntax");
    expect_mail_error("SIZE=99999999999999999999", &all_on,
                      "552 5.3.4 Message size exceeds file system imposed "
                      "limit");
    expect_mail_error("BODY=FOO", &all_on,
                      "555 5.5.4 Unsupported option: BODY=FOO");
    expect_mail_error("BODY=BINARYMIME", &no_chunking,
                      "555 5.5.4 Unsupported option: BODY=BINARYMIME");
    expect_mail_error("BODY=7BIT BODY=8BITMIME", &all_on,
                      "501 5.5.4 Bad BODY keyword value");
    expect_mail_error("SMTPUTF8", &no_utf8,
                      "555 5.5.4 Unsupported option: SMTPUTF8");
    expect_mail_error("SMTPUTF8=yes", &all_on,
                      "555 5.5.4 Unsupported option: SMTPUTF8=yes");
    expect_mail_error("RET=FULL RET=HDRS", &all_on,
                      "501 5.5.4 Bad RET parameter syntax");
    expect_mail_error("RET=NONE", &all_on,
                      "501 5.5.4 Bad RET parameter syntax");
    expect_mail_error("RET=FULL", &no_dsn,
                      "555 5.5.4 Unsupported option: RET=FULL");
    expect_mail_error("ENVID=a+2", &all_on,
                      "501 5.5.4 Bad ENVID parameter syntax");
    expect_mail_error("ENVID=", &all_on,
                      "501 5.5.4 Bad ENVID parameter syntax");
    expect_mail_error("ENVID=a+20b", &all_on, /* decodes to a space */
                      "501 5.5.4 Bad ENVID parameter syntax");
    expect_mail_error("ENVID=a ENVID=b", &all_on,
                      "501 5.5.4 Bad ENVID parameter syntax");
    memset(envid, 'e', sizeof(envid));
    memcpy(envid, "ENVID=", 6);
    envid[6 + SMTPD_ENVID_MAX + 1] = 0; /* one past the limit */
    expect_mail_error(envid, &all_on, "501 5.5.4 Bad ENVID parameter syntax");
    envid[6 + SMTPD_ENVID_MAX] = 0; /* at the limit */
    {
        struct smtpd_mail_params p;
        struct buf r = BUF_INIT;

        assert_int_equal(smtpd_parse_mail_params(envid, &all_on, &p, &r), 0);
        assert_int_equal(strlen(p.envid), SMTPD_ENVID_MAX);
        smtpd_mail_params_free(&p);
        buf_free(&r);
    }
    expect_mail_error("AUTH=", &all_on, "501 5.5.4 Syntax: AUTH=address");
    expect_mail_error("AUTH=<> AUTH=<>", &all_on,
                      "503 5.5.4 Error: multiple AUTH= options");
    expect_mail_error("FOO=1", &all_on, "555 5.5.4 Unsupported option: FOO=1");
    expect_mail_error("SIZE=10 XYZ", &all_on,
                      "555 5.5.4 Unsupported option: XYZ");
}

/* ---------------------------------------------------------- RCPT */

static void test_rcpt_params(void **state)
{
    const struct smtpd_param_opts no_dsn = {false, true, true};
    struct smtpd_rcpt_params p;
    struct buf r = BUF_INIT, fmt = BUF_INIT;

    assert_int_equal(smtpd_parse_rcpt_params("", &all_on, &p, &r), 0);
    assert_int_equal(p.notify, 0);
    assert_null(p.orcpt);

    assert_int_equal(smtpd_parse_rcpt_params(
                         " NOTIFY=failure,Success ORCPT=rfc822;a+2Bb@c.example",
                         &all_on, &p, &r),
                     0);
    assert_int_equal(p.notify, SMTPD_NOTIFY_FAILURE | SMTPD_NOTIFY_SUCCESS);
    assert_string_equal(p.orcpt, "rfc822;a+b@c.example");
    smtpd_notify_format(p.notify, &fmt);
    assert_string_equal(fmt.data, "SUCCESS,FAILURE");
    smtpd_rcpt_params_free(&p);
    assert_null(p.orcpt);

    assert_int_equal(smtpd_parse_rcpt_params("NOTIFY=NEVER", &all_on, &p, &r),
                     0);
    smtpd_notify_format(p.notify, &fmt);
    assert_string_equal(fmt.data, "NEVER");
    assert_int_equal(smtpd_parse_rcpt_params("NOTIFY=DELAY", &all_on, &p, &r),
                     0);
    assert_int_equal(p.notify, SMTPD_NOTIFY_DELAY);

    static const char *const bad_notify[] = {
        "NOTIFY=",
        "NOTIFY=FOO",
        "NOTIFY=NEVER,SUCCESS",
        "NOTIFY=SUCCESS,",
        "NOTIFY=,SUCCESS",
        "NOTIFY=SUCCESS,SUCCESS",
        "NOTIFY=DELAY NOTIFY=DELAY",
    };
    for (size_t i = 0; i < sizeof(bad_notify) / sizeof(bad_notify[0]); i++) {
        assert_int_equal(
            smtpd_parse_rcpt_params(bad_notify[i], &all_on, &p, &r), -1);
        assert_string_equal(r.data,
                            "501 5.5.4 Error: Bad NOTIFY parameter syntax");
    }

    static const char *const bad_orcpt[] = {
        "ORCPT=foo",
        "ORCPT=;a@b",
        "ORCPT=rfc822;",
        "ORCPT=rfc822;a+ZZb",
        "ORCPT=rf c822;a@b",
        "ORCPT=rfc822;a+20b@c",
        "ORCPT=rfc822;a@b ORCPT=rfc822;c@d",
    };
    for (size_t i = 0; i < sizeof(bad_orcpt) / sizeof(bad_orcpt[0]); i++) {
        assert_int_equal(smtpd_parse_rcpt_params(bad_orcpt[i], &all_on, &p, &r),
                         -1);
        assert_string_equal(r.data,
                            "501 5.5.4 Error: Bad ORCPT parameter syntax");
        assert_null(p.orcpt);
    }

    assert_int_equal(smtpd_parse_rcpt_params("NOTIFY=NEVER", &no_dsn, &p, &r),
                     -1);
    assert_string_equal(r.data, "555 5.5.4 Unsupported option: NOTIFY=NEVER");
    assert_int_equal(smtpd_parse_rcpt_params("SIZE=1", &all_on, &p, &r), -1);
    assert_string_equal(r.data, "555 5.5.4 Unsupported option: SIZE=1");
    buf_free(&r);
    buf_free(&fmt);
}

/* ---------------------------------------------------------- BDAT */

static void test_bdat_args(void **state)
{
    long long size;
    bool last;

    assert_int_equal(smtpd_parse_bdat("100", &size, &last), 0);
    assert_int_equal(size, 100);
    assert_false(last);
    assert_int_equal(smtpd_parse_bdat("0 LAST", &size, &last), 0);
    assert_int_equal(size, 0);
    assert_true(last);
    assert_int_equal(smtpd_parse_bdat("7  last ", &size, &last), 0);
    assert_true(last);
    assert_int_equal(smtpd_parse_bdat("9223372036854775807", &size, &last), 0);
    assert_int_equal(size, 9223372036854775807LL);

    assert_int_equal(smtpd_parse_bdat("", &size, &last), -1);
    assert_int_equal(smtpd_parse_bdat("x", &size, &last), -1);
    assert_int_equal(smtpd_parse_bdat("-1", &size, &last), -1);
    assert_int_equal(smtpd_parse_bdat("10x", &size, &last), -1);
    assert_int_equal(smtpd_parse_bdat("10 FIRST", &size, &last), -1);
    assert_int_equal(smtpd_parse_bdat("10 LAST x", &size, &last), -1);
    assert_int_equal(smtpd_parse_bdat("10 LASTX", &size, &last), -1);
    assert_int_equal(smtpd_parse_bdat("9223372036854775808", &size, &last), -1);
    assert_int_equal(smtpd_parse_bdat("99999999999999999999", &size, &last),
                     -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_command),
        cmocka_unit_test(test_foreign_verb),
        cmocka_unit_test(test_extract_path),
        cmocka_unit_test(test_xtext),
        cmocka_unit_test(test_mail_params_ok),
        cmocka_unit_test(test_mail_params_errors),
        cmocka_unit_test(test_rcpt_params),
        cmocka_unit_test(test_bdat_args),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
