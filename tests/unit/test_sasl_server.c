/*
 * test_sasl_server - real SASL exchanges through libsasl2's PLAIN and
 * LOGIN plugins and our glue, with a stand-in for the auth service (the
 * verify callback): PLAIN with a base64 initial response and without
 * one, LOGIN in two steps and with the user name as initial response,
 * wrong passwords, a temporary failure of auth, an authorization
 * identity that is not the user, malformed base64, a line one byte past
 * the limit, an unknown mechanism, and that the password reached the
 * verify callback intact and with the client address and service; the
 * smtpd_sasl_security_options words and the mechanisms they leave.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sasl/saslutil.h>

#include "global/sasl_server.h"
#include "util/buf.h"
#include "util/str.h"

static char err[512];

/* What the stand-in auth saw last, and how often it was asked. */
static struct {
    int calls;
    char user[300];
    char password[600];
    char client_addr[64];
    char service[32];
} seen;

/* alice@example.test / "open sesame"; user "broken" makes auth fail. */
static int fake_verify(const char *user, const char *password,
                       const char *client_addr, const char *service,
                       struct auth_result *res, char *errbuf, size_t errlen)
{
    seen.calls++;
    str_lcpy(seen.user, user, sizeof(seen.user));
    str_lcpy(seen.password, password, sizeof(seen.password));
    str_lcpy(seen.client_addr, client_addr, sizeof(seen.client_addr));
    str_lcpy(seen.service, service, sizeof(seen.service));
    auth_result_clear(res);
    if (strcmp(user, "broken") == 0) {
        snprintf(errbuf, errlen, "auth service: connection closed");
        return AUTH_TEMPFAIL;
    }
    if (str_eq_ci(user, "alice@example.test") &&
        strcmp(password, "open sesame") == 0) {
        str_lcpy(res->user, "alice@example.test", sizeof(res->user));
        res->uid = 5000;
        res->gid = 5000;
        return AUTH_OK;
    }
    snprintf(errbuf, errlen, "authentication failed");
    return AUTH_FAIL;
}

static struct xsasl_server *session(void)
{
    struct xsasl_server *s;

    memset(&seen, 0, sizeof(seen));
    s = xsasl_server_create("smtp", "192.0.2.7", fake_verify, err, sizeof(err));
    if (s == NULL)
        fail_msg("xsasl_server_create: %s", err);
    return s;
}

/* base64 of len bytes of data. */
static const char *b64(const char *data, unsigned len)
{
    static char out[4][1024];
    static int slot;
    char *o = out[slot++ % 4];
    unsigned n;

    assert_int_equal(sasl_encode64(data, len, o, 1024, &n), SASL_OK);
    return o;
}

static const char *unb64(const char *text)
{
    static char out[256];
    unsigned n;

    assert_int_equal(
        sasl_decode64(text, (unsigned)strlen(text), out, sizeof(out) - 1, &n),
        SASL_OK);
    out[n] = 0;
    return out;
}

static void test_mechs(void **state)
{
    struct xsasl_server *s = session();
    const char *m = xsasl_server_mechs(s);

    (void)state;
    assert_non_null(strstr(m, "PLAIN"));
    assert_non_null(strstr(m, "LOGIN"));
    /* Mechanisms that need the stored secret are not offered. */
    assert_null(strstr(m, "CRAM-MD5"));
    assert_null(strstr(m, "DIGEST-MD5"));
    assert_null(strstr(m, "SCRAM"));
    assert_null(strstr(m, "ANONYMOUS"));
    xsasl_server_free(s);
}

static void test_plain_initial(void **state)
{
    struct xsasl_server *s = session();
    struct buf out = BUF_INIT;
    static const char resp[] = "\0alice@example.test\0open sesame";

    (void)state;
    assert_int_equal(xsasl_server_first(s, "PLAIN", b64(resp, sizeof(resp) - 1),
                                        &out, err, sizeof(err)),
                     XSASL_OK);
    assert_string_equal(xsasl_server_username(s), "alice@example.test");
    assert_int_equal(xsasl_server_result(s)->uid, 5000);
    assert_int_equal(seen.calls, 1);
    assert_string_equal(seen.user, "alice@example.test");
    assert_string_equal(seen.password, "open sesame");
    assert_string_equal(seen.client_addr, "192.0.2.7");
    assert_string_equal(seen.service, "smtp");
    buf_free(&out);
    xsasl_server_free(s);
}

static void test_plain_wrong(void **state)
{
    struct xsasl_server *s = session();
    struct buf out = BUF_INIT;
    static const char resp[] = "\0alice@example.test\0open sesamE";

    (void)state;
    assert_int_equal(xsasl_server_first(s, "plain", b64(resp, sizeof(resp) - 1),
                                        &out, err, sizeof(err)),
                     XSASL_FAIL);
    assert_int_equal(seen.calls, 1);
    assert_string_equal(xsasl_server_username(s), "");
    /* The same session may try again (a new AUTH command). */
    {
        static const char good[] = "\0alice@example.test\0open sesame";

        assert_int_equal(xsasl_server_first(s, "PLAIN",
                                            b64(good, sizeof(good) - 1), &out,
                                            err, sizeof(err)),
                         XSASL_OK);
        assert_string_equal(xsasl_server_username(s), "alice@example.test");
    }
    buf_free(&out);
    xsasl_server_free(s);
}

static void test_plain_two_steps(void **state)
{
    struct xsasl_server *s = session();
    struct buf out = BUF_INIT;
    static const char resp[] = "alice@example.test\0alice@example.test\0"
                               "open sesame";

    (void)state;
    /* AUTH PLAIN without initial response: "334 " (empty challenge). */
    assert_int_equal(
        xsasl_server_first(s, "PLAIN", NULL, &out, err, sizeof(err)),
        XSASL_CONTINUE);
    assert_int_equal(out.len, 0);
    assert_int_equal(seen.calls, 0);
    assert_int_equal(xsasl_server_next(s, b64(resp, sizeof(resp) - 1), &out,
                                       err, sizeof(err)),
                     XSASL_OK);
    assert_string_equal(xsasl_server_username(s), "alice@example.test");
    buf_free(&out);
    xsasl_server_free(s);
}

static void test_plain_foreign_authzid(void **state)
{
    struct xsasl_server *s = session();
    struct buf out = BUF_INIT;
    static const char resp[] = "bob@example.test\0alice@example.test\0"
                               "open sesame";

    (void)state;
    /* alice's right password does not make her bob. */
    assert_int_equal(xsasl_server_first(s, "PLAIN", b64(resp, sizeof(resp) - 1),
                                        &out, err, sizeof(err)),
                     XSASL_FAIL);
    assert_string_equal(xsasl_server_username(s), "");
    buf_free(&out);
    xsasl_server_free(s);
}

static void test_login(void **state)
{
    struct xsasl_server *s = session();
    struct buf out = BUF_INIT;

    (void)state;
    assert_int_equal(
        xsasl_server_first(s, "LOGIN", NULL, &out, err, sizeof(err)),
        XSASL_CONTINUE);
    assert_string_equal(unb64(out.data), "Username:");
    assert_int_equal(xsasl_server_next(s, b64("alice@example.test", 18), &out,
                                       err, sizeof(err)),
                     XSASL_CONTINUE);
    assert_string_equal(unb64(out.data), "Password:");
    assert_int_equal(seen.calls, 0);
    assert_int_equal(
        xsasl_server_next(s, b64("open sesame", 11), &out, err, sizeof(err)),
        XSASL_OK);
    assert_string_equal(xsasl_server_username(s), "alice@example.test");
    assert_string_equal(seen.password, "open sesame");

    /* The user name as initial response (AUTH LOGIN dXNlcg==). */
    assert_int_equal(xsasl_server_first(s, "LOGIN",
                                        b64("alice@example.test", 18), &out,
                                        err, sizeof(err)),
                     XSASL_CONTINUE);
    assert_string_equal(unb64(out.data), "Password:");
    assert_int_equal(
        xsasl_server_next(s, b64("wrong", 5), &out, err, sizeof(err)),
        XSASL_FAIL);
    buf_free(&out);
    xsasl_server_free(s);
}

static void test_tempfail(void **state)
{
    struct xsasl_server *s = session();
    struct buf out = BUF_INIT;
    static const char resp[] = "\0broken\0whatever";

    (void)state;
    assert_int_equal(xsasl_server_first(s, "PLAIN", b64(resp, sizeof(resp) - 1),
                                        &out, err, sizeof(err)),
                     XSASL_TEMPFAIL);
    assert_non_null(strstr(err, "connection closed"));
    buf_free(&out);
    xsasl_server_free(s);
}

static void test_bad_input(void **state)
{
    struct xsasl_server *s = session();
    struct buf out = BUF_INIT;
    char *line;

    (void)state;
    assert_int_equal(
        xsasl_server_first(s, "PLAIN", "not*base64!", &out, err, sizeof(err)),
        XSASL_BADPROT);
    assert_non_null(strstr(err, "base64"));
    assert_int_equal(
        xsasl_server_first(s, "CRAM-MD5", NULL, &out, err, sizeof(err)),
        XSASL_BADPROT);
    assert_int_equal(
        xsasl_server_first(s, "NO-SUCH-MECH", NULL, &out, err, sizeof(err)),
        XSASL_BADPROT);
    /* PLAIN without the separators is a protocol error, not a login. */
    assert_int_equal(
        xsasl_server_first(s, "PLAIN", b64("alice", 5), &out, err, sizeof(err)),
        XSASL_BADPROT);
    assert_int_equal(seen.calls, 0);

    /* At the line limit the data is decoded; one past, refused unread. */
    line = malloc(XSASL_LINE_MAX + 2);
    memset(line, 'A', XSASL_LINE_MAX + 1);
    line[XSASL_LINE_MAX + 1] = 0;
    assert_int_equal(
        xsasl_server_first(s, "PLAIN", NULL, &out, err, sizeof(err)),
        XSASL_CONTINUE);
    assert_int_equal(xsasl_server_next(s, line, &out, err, sizeof(err)),
                     XSASL_BADPROT);
    assert_non_null(strstr(err, "longer than"));
    line[XSASL_LINE_MAX] = 0;
    assert_int_equal(
        xsasl_server_first(s, "PLAIN", NULL, &out, err, sizeof(err)),
        XSASL_CONTINUE);
    /* 12288 'A's decode to NUL bytes only: PLAIN refuses the content. */
    assert_int_not_equal(xsasl_server_next(s, line, &out, err, sizeof(err)),
                         XSASL_OK);
    assert_null(strstr(err, "longer than"));
    free(line);
    assert_int_equal(seen.calls, 0);
    buf_free(&out);
    xsasl_server_free(s);
}

/* smtpd_sasl_security_options words, and what they leave offered. */
static void test_security_options(void **state)
{
    struct xsasl_server *s;
    struct buf out = BUF_INIT;
    unsigned flags;

    (void)state;
    assert_int_equal(xsasl_security_parse("", &flags, err, sizeof(err)), 0);
    assert_int_equal(flags, 0);
    assert_int_equal(xsasl_security_parse("noanonymous, noplaintext", &flags,
                                          err, sizeof(err)),
                     0);
    assert_int_equal(flags, XSASL_SEC_NOANONYMOUS | XSASL_SEC_NOPLAINTEXT);
    assert_int_equal(xsasl_security_parse("NoDictionary noactive,mutual_auth "
                                          "forward_secrecy",
                                          &flags, err, sizeof(err)),
                     0);
    assert_int_equal(flags, XSASL_SEC_NODICTIONARY | XSASL_SEC_NOACTIVE |
                                XSASL_SEC_MUTUAL_AUTH |
                                XSASL_SEC_FORWARD_SECRECY);
    assert_int_equal(
        xsasl_security_parse("noanonymous,nosuch", &flags, err, sizeof(err)),
        -1);
    assert_non_null(strstr(err, "nosuch"));

    s = session();
    /* noplaintext takes PLAIN and LOGIN away: nothing is left. */
    assert_int_equal(xsasl_server_set_security(s, XSASL_SEC_NOPLAINTEXT, err,
                                               sizeof(err)),
                     0);
    assert_string_equal(xsasl_server_mechs(s), "");
    assert_int_equal(xsasl_server_first(s, "PLAIN", NULL, &out, err,
                                        sizeof(err)),
                     XSASL_BADPROT);
    /* and noanonymous alone gives them back. */
    assert_int_equal(xsasl_server_set_security(s, XSASL_SEC_NOANONYMOUS, err,
                                               sizeof(err)),
                     0);
    assert_non_null(strstr(xsasl_server_mechs(s), "PLAIN"));
    assert_non_null(strstr(xsasl_server_mechs(s), "LOGIN"));
    assert_int_equal(xsasl_server_first(s, "PLAIN", NULL, &out, err,
                                        sizeof(err)),
                     XSASL_CONTINUE);
    buf_free(&out);
    xsasl_server_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_security_options),
        cmocka_unit_test(test_mechs),
        cmocka_unit_test(test_plain_initial),
        cmocka_unit_test(test_plain_wrong),
        cmocka_unit_test(test_plain_two_steps),
        cmocka_unit_test(test_plain_foreign_authzid),
        cmocka_unit_test(test_login),
        cmocka_unit_test(test_tempfail),
        cmocka_unit_test(test_bad_input),
    };

    if (xsasl_server_init(err, sizeof(err)) < 0) {
        fprintf(stderr, "xsasl_server_init: %s\n", err);
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
