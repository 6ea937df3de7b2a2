/*
 * test_auth_client - the client side of the auth protocol against a
 * scripted server in a child process (on $queue_directory/private/auth):
 * what a request carries, ok / fail / tempfail / notfound answers, the
 * secret only when asked for, answers that must not be believed (unknown
 * status, bad uid, relative home, over-long user, NUL bytes) turning into
 * temporary failures, a dead kept connection retried once on a new one,
 * no server at all, and client-side bounds on what is sent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "global/auth_client.h"
#include "global/config.h"
#include "util/attr.h"
#include "util/sock.h"
#include "util/stream.h"

static char tmpdir[256];
static char sockpath[320];
static char err[512];
static pid_t server_pid = -1;

/* ------------------------------------------------------------ the server */

static void reply(struct stream *s, const char *const *attrs, size_t n)
{
    struct buf frame = BUF_INIT;

    for (size_t i = 0; i + 1 < n; i += 2)
        attr_put_str(&frame, attrs[i], attrs[i + 1]);
    attr_end(&frame);
    stream_write(s, frame.data, frame.len);
    stream_flush(s);
    buf_free(&frame);
}

#define REPLY(s, ...)                                                          \
    do {                                                                       \
        const char *const a_[] = {__VA_ARGS__};                                \
        reply(s, a_, sizeof(a_) / sizeof(a_[0]));                              \
    } while (0)

/* Answers by user name; returns false to close the connection. */
static bool serve_one(struct stream *s, const struct attr_list *req)
{
    const char *request = attr_get(req, "request");
    const char *user = attr_get(req, "user");
    const char *pw = attr_get(req, "password");
    const char *addr = attr_get(req, "client_addr");
    const char *service = attr_get(req, "service");

    if (request == NULL || user == NULL)
        return false;
    if (strcmp(request, "passdb_verify") == 0) {
        if (strcmp(user, "alice@example.test") == 0) {
            /* Right only with everything the caller gave passed along. */
            if (pw != NULL && strcmp(pw, "open sesame") == 0 && addr != NULL &&
                strcmp(addr, "192.0.2.1") == 0 && service != NULL &&
                strcmp(service, "smtp") == 0)
                REPLY(s, "status", "ok", "user", "alice@example.test", "uid",
                      "5000", "gid", "5001", "home", "/srv/alice");
            else
                REPLY(s, "status", "fail", "reason", "authentication failed");
        } else if (strcmp(user, "noaddr") == 0) {
            REPLY(s, "status", addr == NULL && service == NULL ? "ok" : "fail",
                  "user", "noaddr");
        } else if (strcmp(user, "temp") == 0) {
            REPLY(s, "status", "tempfail", "reason", "passdb unreadable");
        } else if (strcmp(user, "maybe") == 0) {
            REPLY(s, "status", "maybe");
        } else if (strcmp(user, "baduid") == 0) {
            REPLY(s, "status", "ok", "user", "baduid", "uid", "-5");
        } else if (strcmp(user, "relhome") == 0) {
            REPLY(s, "status", "ok", "user", "relhome", "home", "srv/x");
        } else if (strcmp(user, "longuser") == 0) {
            static char big[AUTH_USER_MAX + 2];

            memset(big, 'u', sizeof(big) - 1);
            REPLY(s, "status", "ok", "user", big);
        } else if (strcmp(user, "nouser") == 0) {
            REPLY(s, "status", "ok");
        } else if (strcmp(user, "hangup") == 0) {
            return false;
        } else if (strcmp(user, "ok-then-close") == 0) {
            REPLY(s, "status", "ok", "user", "ok-then-close");
            return false;
        } else {
            REPLY(s, "status", "fail", "reason", "authentication failed");
        }
        return true;
    }
    if (strcmp(request, "passdb_lookup") == 0) {
        const char *secret = attr_get(req, "want_secret");

        if (strcmp(user, "carol@example.test") == 0)
            REPLY(s, "status", "ok", "user", "carol@example.test", "password",
                  secret != NULL && strcmp(secret, "1") == 0 ? "c-pw"
                                                             : "LEAKED");
        else if (strcmp(user, "dave@example.test") == 0)
            REPLY(s, "status", "ok", "user", "dave@example.test");
        else
            REPLY(s, "status", "notfound");
        return true;
    }
    return false;
}

static void server_loop(int lfd)
{
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        struct stream *s;
        struct attr_list req = ATTR_LIST_INIT;
        const char *why;

        if (fd < 0)
            continue;
        s = stream_open(fd);
        stream_set_timeout(s, 10000);
        while (attr_read(s, &req, 65536, &why) == STREAM_OK &&
               serve_one(s, &req))
            ;
        attr_list_free(&req);
        stream_close(s);
    }
}

static int setup(void **state)
{
    struct config *cfg;
    char dir[300];
    int lfd;

    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_auth_client.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(dir, sizeof(dir), "%s/private", tmpdir);
    if (mkdir(dir, 0700) < 0)
        return -1;
    snprintf(sockpath, sizeof(sockpath), "%s/auth", dir);
    cfg = config_new();
    if (config_set(cfg, "queue_directory", tmpdir, "test", err, sizeof(err)) <
            0 ||
        config_set(cfg, "auth_failure_max_delay", "1s", "test", err,
                   sizeof(err)) < 0)
        return -1;
    config_set_global(cfg);
    if ((lfd = sock_listen_unix(sockpath, 0600, 16, err, sizeof(err))) < 0)
        return -1;
    sock_set_nonblock(lfd, false);
    if ((server_pid = fork()) == 0) {
        server_loop(lfd);
        _exit(0);
    }
    close(lfd);
    return server_pid < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    char cmd[300];

    (void)state;
    auth_client_disconnect();
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ tests */

static void test_verify(void **state)
{
    struct auth_result res;

    (void)state;
    assert_int_equal(auth_verify("alice@example.test", "open sesame",
                                 "192.0.2.1", "smtp", &res, err, sizeof(err)),
                     AUTH_OK);
    assert_string_equal(res.user, "alice@example.test");
    assert_int_equal(res.uid, 5000);
    assert_int_equal(res.gid, 5001);
    assert_string_equal(res.home, "/srv/alice");
    assert_false(res.has_password);

    assert_int_equal(auth_verify("alice@example.test", "wrong", "192.0.2.1",
                                 "smtp", &res, err, sizeof(err)),
                     AUTH_FAIL);
    assert_string_equal(err, "authentication failed");
    assert_string_equal(res.user, "");
    assert_int_equal(res.uid, -1);

    /* No address and no service: the attributes are left out. */
    assert_int_equal(
        auth_verify("noaddr", "x", NULL, NULL, &res, err, sizeof(err)),
        AUTH_OK);
    assert_int_equal(res.uid, -1);
    assert_string_equal(res.home, "");

    assert_int_equal(
        auth_verify("temp", "x", "", "pop3", &res, err, sizeof(err)),
        AUTH_TEMPFAIL);
    assert_non_null(strstr(err, "passdb unreadable"));
}

static void test_untrusted_answers(void **state)
{
    static const char *users[] = {"maybe", "baduid", "relhome", "longuser",
                                  "nouser"};
    struct auth_result res;

    (void)state;
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
        int rc = auth_verify(users[i], "x", "192.0.2.1", "smtp", &res, err,
                             sizeof(err));

        if (rc != AUTH_TEMPFAIL || strstr(err, "malformed answer") == NULL)
            fail_msg("%s: got %d '%s', wanted a temporary failure", users[i],
                     rc, err);
        assert_string_equal(res.user, "");
    }
}

static void test_lookup(void **state)
{
    struct auth_result res;

    (void)state;
    assert_int_equal(
        auth_lookup("carol@example.test", true, &res, err, sizeof(err)),
        AUTH_OK);
    assert_true(res.has_password);
    assert_string_equal(res.password, "c-pw");
    /* Not asked for: not taken even when sent. */
    assert_int_equal(
        auth_lookup("carol@example.test", false, &res, err, sizeof(err)),
        AUTH_OK);
    assert_false(res.has_password);
    assert_string_equal(res.password, "");
    assert_int_equal(
        auth_lookup("dave@example.test", true, &res, err, sizeof(err)),
        AUTH_OK);
    assert_false(res.has_password);
    assert_int_equal(
        auth_lookup("erin@example.test", false, &res, err, sizeof(err)),
        AUTH_FAIL);
    auth_result_clear(&res);
}

static void test_dead_connection_retried(void **state)
{
    struct auth_result res;

    (void)state;
    /* The server answers, then closes the kept connection. */
    assert_int_equal(
        auth_verify("ok-then-close", "x", NULL, "smtp", &res, err, sizeof(err)),
        AUTH_OK);
    /* The next request finds it dead and is sent again on a new one. */
    assert_int_equal(auth_verify("alice@example.test", "open sesame",
                                 "192.0.2.1", "smtp", &res, err, sizeof(err)),
                     AUTH_OK);
    /* A server that hangs up on a fresh connection too: no answer. */
    assert_int_equal(
        auth_verify("hangup", "x", NULL, "smtp", &res, err, sizeof(err)),
        AUTH_TEMPFAIL);
    assert_non_null(strstr(err, "connection closed"));
    /* And the client recovers for the next request. */
    assert_int_equal(auth_verify("alice@example.test", "open sesame",
                                 "192.0.2.1", "smtp", &res, err, sizeof(err)),
                     AUTH_OK);
}

static void test_client_bounds(void **state)
{
    char user[AUTH_USER_MAX + 2], pw[AUTH_PASSWORD_MAX + 2];
    struct auth_result res;

    (void)state;
    memset(user, 'u', sizeof(user));
    user[AUTH_USER_MAX + 1] = 0;
    assert_int_equal(
        auth_verify(user, "x", NULL, "smtp", &res, err, sizeof(err)),
        AUTH_FAIL);
    assert_int_equal(auth_verify("", "x", NULL, "smtp", &res, err, sizeof(err)),
                     AUTH_FAIL);
    assert_int_equal(
        auth_verify("a\rb", "x", NULL, "smtp", &res, err, sizeof(err)),
        AUTH_FAIL);
    memset(pw, 'p', sizeof(pw));
    pw[AUTH_PASSWORD_MAX + 1] = 0;
    assert_int_equal(auth_verify("alice@example.test", pw, NULL, "smtp", &res,
                                 err, sizeof(err)),
                     AUTH_FAIL);
    assert_string_equal(err, "password too long");
}

static void test_no_server(void **state)
{
    struct auth_result res;

    (void)state;
    auth_client_disconnect();
    kill(server_pid, SIGKILL);
    waitpid(server_pid, NULL, 0);
    server_pid = -1;
    unlink(sockpath);
    assert_int_equal(auth_verify("alice@example.test", "open sesame",
                                 "192.0.2.1", "smtp", &res, err, sizeof(err)),
                     AUTH_TEMPFAIL);
    assert_non_null(strstr(err, "auth service: connect to"));
    assert_int_equal(
        auth_lookup("carol@example.test", false, &res, err, sizeof(err)),
        AUTH_TEMPFAIL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_untrusted_answers),
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_dead_connection_retried),
        cmocka_unit_test(test_client_bounds),
        cmocka_unit_test(test_no_server),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup, teardown);
}
