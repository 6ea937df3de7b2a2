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
 *
 * SCRAM-SHA-256 and SCRAM-SHA-1 with libsasl2's own client on the other
 * side, the secret coming through our auxprop plugin from a stand-in for
 * auth's lookup: right and wrong password, an account without a {PLAIN}
 * secret, an unknown user, auth unavailable, a foreign authorization
 * identity, that each outcome was reported (with address and service),
 * that PLAIN never gets a secret from the lookup, and that sasl_mechanisms
 * decides what is offered.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sasl/sasl.h>
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

/* What the stand-in lookup and report saw. */
static struct {
    int lookups, reports;
    bool want_secret;
    char user[300];
    bool success;
    char reason[300];
    char client_addr[64];
    char service[32];
} scram_seen;

/*
 * alice@example.test has {PLAIN}"open sesame", bob@example.test a hash
 * (no secret given), "broken" makes auth fail, others are unknown.
 */
static int fake_lookup(const char *user, bool want_secret,
                       struct auth_result *res, char *errbuf, size_t errlen)
{
    scram_seen.lookups++;
    scram_seen.want_secret = want_secret;
    auth_result_clear(res);
    if (strcmp(user, "broken") == 0) {
        snprintf(errbuf, errlen, "auth service: connection closed");
        return AUTH_TEMPFAIL;
    }
    if (str_eq_ci(user, "alice@example.test")) {
        str_lcpy(res->user, "alice@example.test", sizeof(res->user));
        res->uid = 5000;
        res->gid = 5001;
        str_lcpy(res->home, "/srv/mail/alice", sizeof(res->home));
        if (want_secret) {
            str_lcpy(res->password, "open sesame", sizeof(res->password));
            res->has_password = true;
        }
        return AUTH_OK;
    }
    if (str_eq_ci(user, "bob@example.test")) {
        str_lcpy(res->user, "bob@example.test", sizeof(res->user));
        return AUTH_OK;
    }
    snprintf(errbuf, errlen, "no such account");
    return AUTH_FAIL;
}

static int fake_report(const char *user, bool success, const char *reason,
                       const char *client_addr, const char *service,
                       char *errbuf, size_t errlen)
{
    (void)errbuf;
    (void)errlen;
    scram_seen.reports++;
    str_lcpy(scram_seen.user, user, sizeof(scram_seen.user));
    scram_seen.success = success;
    str_lcpy(scram_seen.reason, reason ? reason : "",
             sizeof(scram_seen.reason));
    str_lcpy(scram_seen.client_addr, client_addr,
             sizeof(scram_seen.client_addr));
    str_lcpy(scram_seen.service, service, sizeof(scram_seen.service));
    return AUTH_OK;
}

static struct xsasl_server *session(void)
{
    struct xsasl_server *s;

    memset(&seen, 0, sizeof(seen));
    memset(&scram_seen, 0, sizeof(scram_seen));
    s = xsasl_server_create("smtp", "192.0.2.7", fake_verify, err, sizeof(err));
    if (s == NULL)
        fail_msg("xsasl_server_create: %s", err);
    xsasl_server_set_backend(s, fake_lookup, fake_report);
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

/* ---------------------------------------------------------- SCRAM */

/* The client side: libsasl2's own SCRAM client. */
static struct {
    const char *authname, *authzid, *password;
} client_id;

static int client_simple(void *context, int id, const char **result,
                         unsigned *len)
{
    (void)context;
    *result = id == SASL_CB_AUTHNAME ? client_id.authname : client_id.authzid;
    if (len != NULL)
        *len = (unsigned)strlen(*result);
    return SASL_OK;
}

static int client_pass(sasl_conn_t *conn, void *context, int id,
                       sasl_secret_t **psecret)
{
    static union {
        sasl_secret_t secret;
        char space[sizeof(sasl_secret_t) + 256];
    } u;

    (void)conn;
    (void)context;
    (void)id;
    u.secret.len = (unsigned long)strlen(client_id.password);
    memcpy(u.secret.data, client_id.password, u.secret.len + 1);
    *psecret = &u.secret;
    return SASL_OK;
}

/*
 * A whole exchange of mech between libsasl2's client and s; returns the
 * server's last status.  The client checks the server's signature too.
 */
static enum xsasl_status scram_exchange(struct xsasl_server *s,
                                        const char *mech, const char *user,
                                        const char *authzid,
                                        const char *password)
{
    static sasl_callback_t callbacks[] = {
        {SASL_CB_AUTHNAME, (int (*)(void))(void (*)(void))client_simple, NULL},
        {SASL_CB_USER, (int (*)(void))(void (*)(void))client_simple, NULL},
        {SASL_CB_PASS, (int (*)(void))(void (*)(void))client_pass, NULL},
        {SASL_CB_LIST_END, NULL, NULL},
    };
    sasl_conn_t *conn = NULL;
    const char *clientout = NULL, *chosen = NULL;
    unsigned clientoutlen = 0;
    struct buf out = BUF_INIT;
    enum xsasl_status st;
    int rc, rounds = 0;

    client_id.authname = user;
    client_id.authzid = authzid;
    client_id.password = password;
    assert_int_equal(sasl_client_new("smtp", "mail.example.test", NULL, NULL,
                                     callbacks, 0, &conn),
                     SASL_OK);
    rc =
        sasl_client_start(conn, mech, NULL, &clientout, &clientoutlen, &chosen);
    assert_true(rc == SASL_OK || rc == SASL_CONTINUE);
    assert_string_equal(chosen, mech);
    st = xsasl_server_first(s, mech, b64(clientout, clientoutlen), &out, err,
                            sizeof(err));
    while (st == XSASL_CONTINUE && rounds++ < 5) {
        char challenge[1024];
        unsigned n = 0;

        assert_int_equal(sasl_decode64(out.data, (unsigned)out.len, challenge,
                                       sizeof(challenge), &n),
                         SASL_OK);
        rc = sasl_client_step(conn, challenge, n, NULL, &clientout,
                              &clientoutlen);
        /* The client refuses a server that does not know the password. */
        assert_true(rc == SASL_OK || rc == SASL_CONTINUE);
        st = xsasl_server_next(s,
                               clientoutlen ? b64(clientout, clientoutlen) : "",
                               &out, err, sizeof(err));
    }
    sasl_dispose(&conn);
    buf_free(&out);
    return st;
}

static struct xsasl_server *scram_session(void)
{
    assert_int_equal(xsasl_server_set_mechanisms("PLAIN LOGIN SCRAM-SHA-256 "
                                                 "scram-sha-1",
                                                 err, sizeof(err)),
                     0);
    return session();
}

static void test_scram_ok(void **state)
{
    struct xsasl_server *s = scram_session();
    const struct auth_result *r;

    (void)state;
    /* In the order sasl_mechanisms gives. */
    assert_string_equal(xsasl_server_mechs(s),
                        "PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-1");
    assert_int_equal(scram_exchange(s, "SCRAM-SHA-256", "Alice@Example.Test",
                                    "", "open sesame"),
                     XSASL_OK);
    assert_string_equal(xsasl_server_username(s), "alice@example.test");
    r = xsasl_server_result(s);
    assert_int_equal(r->uid, 5000);
    assert_int_equal(r->gid, 5001);
    assert_string_equal(r->home, "/srv/mail/alice");
    assert_false(r->has_password);
    assert_string_equal(r->password, "");
    /* Asked for the secret, told auth of the success; no password check. */
    assert_int_equal(scram_seen.lookups, 1);
    assert_true(scram_seen.want_secret);
    assert_int_equal(scram_seen.reports, 1);
    assert_true(scram_seen.success);
    assert_string_equal(scram_seen.user, "alice@example.test");
    assert_string_equal(scram_seen.client_addr, "192.0.2.7");
    assert_string_equal(scram_seen.service, "smtp");
    assert_int_equal(seen.calls, 0);

    /* SCRAM-SHA-1 comes with the same plugin. */
    memset(&scram_seen, 0, sizeof(scram_seen));
    assert_int_equal(scram_exchange(s, "SCRAM-SHA-1", "alice@example.test", "",
                                    "open sesame"),
                     XSASL_OK);
    assert_int_equal(scram_seen.reports, 1);
    assert_true(scram_seen.success);
    xsasl_server_free(s);
}

static void test_scram_wrong(void **state)
{
    struct xsasl_server *s = scram_session();

    (void)state;
    assert_int_equal(scram_exchange(s, "SCRAM-SHA-256", "alice@example.test",
                                    "", "open sesamE"),
                     XSASL_FAIL);
    assert_string_equal(xsasl_server_username(s), "");
    assert_int_equal(scram_seen.reports, 1);
    assert_false(scram_seen.success);
    assert_string_equal(scram_seen.user, "alice@example.test");
    assert_non_null(strstr(scram_seen.reason, "SCRAM-SHA-256"));
    assert_non_null(strstr(scram_seen.reason, "mismatch"));
    assert_non_null(strstr(err, "mismatch"));
    assert_string_equal(scram_seen.client_addr, "192.0.2.7");
    xsasl_server_free(s);
}

static void test_scram_no_secret(void **state)
{
    struct xsasl_server *s = scram_session();
    struct buf out = BUF_INIT;
    static const char first[] = "n,,n=bob@example.test,r=abcdefghijklmnop";
    static const char unknown[] = "n,,n=carol@example.test,r=abcdefghijklmnop";
    static const char broken[] = "n,,n=broken,r=abcdefghijklmnop";

    (void)state;
    /* A hashed password cannot serve SCRAM: fails at once, reported. */
    assert_int_equal(xsasl_server_first(s, "SCRAM-SHA-256",
                                        b64(first, sizeof(first) - 1), &out,
                                        err, sizeof(err)),
                     XSASL_FAIL);
    assert_int_equal(scram_seen.reports, 1);
    assert_false(scram_seen.success);
    assert_string_equal(scram_seen.user, "bob@example.test");
    assert_non_null(strstr(scram_seen.reason, "{PLAIN}"));
    /* An unknown user likewise. */
    memset(&scram_seen, 0, sizeof(scram_seen));
    assert_int_equal(xsasl_server_first(s, "SCRAM-SHA-256",
                                        b64(unknown, sizeof(unknown) - 1), &out,
                                        err, sizeof(err)),
                     XSASL_FAIL);
    assert_int_equal(scram_seen.reports, 1);
    assert_string_equal(scram_seen.user, "carol@example.test");
    assert_string_equal(scram_seen.reason, "unknown user");
    /* auth unavailable: try later, nothing to report. */
    memset(&scram_seen, 0, sizeof(scram_seen));
    assert_int_equal(xsasl_server_first(s, "SCRAM-SHA-256",
                                        b64(broken, sizeof(broken) - 1), &out,
                                        err, sizeof(err)),
                     XSASL_TEMPFAIL);
    assert_int_equal(scram_seen.reports, 0);
    assert_non_null(strstr(err, "connection closed"));
    /* Malformed client-first: a protocol error before any lookup. */
    memset(&scram_seen, 0, sizeof(scram_seen));
    assert_int_equal(xsasl_server_first(s, "SCRAM-SHA-256", b64("x,,y", 4),
                                        &out, err, sizeof(err)),
                     XSASL_BADPROT);
    assert_int_equal(scram_seen.lookups, 0);
    assert_int_equal(scram_seen.reports, 0);
    buf_free(&out);
    xsasl_server_free(s);
}

static void test_scram_authzid(void **state)
{
    struct xsasl_server *s = scram_session();

    (void)state;
    /* Right password, but asking to act as somebody else. */
    assert_int_equal(scram_exchange(s, "SCRAM-SHA-256", "alice@example.test",
                                    "bob@example.test", "open sesame"),
                     XSASL_FAIL);
    assert_string_equal(xsasl_server_username(s), "");
    assert_int_equal(scram_seen.reports, 1);
    assert_false(scram_seen.success);
    xsasl_server_free(s);
}

/* With SCRAM enabled, PLAIN is still auth's password check only. */
static void test_scram_plain_untouched(void **state)
{
    struct xsasl_server *s = scram_session();
    struct buf out = BUF_INIT;
    static const char resp[] = "\0alice@example.test\0open sesame";
    static const char wrong[] = "\0alice@example.test\0wrong";

    (void)state;
    assert_int_equal(xsasl_server_first(s, "PLAIN", b64(resp, sizeof(resp) - 1),
                                        &out, err, sizeof(err)),
                     XSASL_OK);
    assert_int_equal(seen.calls, 1);
    assert_int_equal(xsasl_server_first(s, "PLAIN",
                                        b64(wrong, sizeof(wrong) - 1), &out,
                                        err, sizeof(err)),
                     XSASL_FAIL);
    assert_int_equal(seen.calls, 2);
    assert_int_equal(scram_seen.lookups, 0);
    assert_int_equal(scram_seen.reports, 0);
    buf_free(&out);
    xsasl_server_free(s);
}

/* sasl_mechanisms: the default offers no SCRAM, unknown words are refused. */
static void test_mechanism_list(void **state)
{
    struct xsasl_server *s;
    struct buf out = BUF_INIT;
    static const char first[] = "n,,n=alice@example.test,r=abcdefghijklmnop";

    (void)state;
    assert_int_equal(
        xsasl_server_set_mechanisms("PLAIN, LOGIN", err, sizeof(err)), 0);
    s = session();
    assert_string_equal(xsasl_server_mechs(s), "PLAIN LOGIN");
    assert_int_equal(xsasl_server_first(s, "SCRAM-SHA-256",
                                        b64(first, sizeof(first) - 1), &out,
                                        err, sizeof(err)),
                     XSASL_BADPROT);
    assert_int_equal(scram_seen.lookups, 0);
    xsasl_server_free(s);
    assert_int_equal(
        xsasl_server_set_mechanisms("scram-sha-256,plain", err, sizeof(err)),
        0);
    s = session();
    assert_string_equal(xsasl_server_mechs(s), "SCRAM-SHA-256 PLAIN");
    /* noplaintext leaves SCRAM offered. */
    assert_int_equal(
        xsasl_server_set_security(
            s, XSASL_SEC_NOPLAINTEXT | XSASL_SEC_NOANONYMOUS, err, sizeof(err)),
        0);
    assert_string_equal(xsasl_server_mechs(s), "SCRAM-SHA-256");
    xsasl_server_free(s);
    assert_int_equal(
        xsasl_server_set_mechanisms("PLAIN CRAM-MD5", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "CRAM-MD5"));
    assert_int_equal(
        xsasl_server_set_mechanisms("PLAIN LOGIN", err, sizeof(err)), 0);
    buf_free(&out);
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
        cmocka_unit_test(test_scram_ok),
        cmocka_unit_test(test_scram_wrong),
        cmocka_unit_test(test_scram_no_secret),
        cmocka_unit_test(test_scram_authzid),
        cmocka_unit_test(test_scram_plain_untouched),
        cmocka_unit_test(test_mechanism_list),
    };

    /* No main.cf here: the mechanisms are set, not read. */
    if (xsasl_server_set_mechanisms("PLAIN LOGIN", err, sizeof(err)) < 0 ||
        xsasl_server_init(err, sizeof(err)) < 0 ||
        sasl_client_init(NULL) != SASL_OK) {
        fprintf(stderr, "xsasl_server_init: %s\n", err);
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
