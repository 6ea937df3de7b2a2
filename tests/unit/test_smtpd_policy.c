/*
 * test_smtpd_policy - smtpd's policy delegation client against a
 * scripted policy server in a child process (one forked handler per
 * connection, on $queue_directory/private/policy and on a loopback TCP
 * port): the request exactly as Postfix writes it, answers with extra
 * attributes and CRLF, answers that must be refused (no action, empty
 * action, over-long action or answer, control characters, garbage),
 * a server that hangs (timeout) or hangs up (retries up to the try
 * limit), connection reuse and its limits (request_limit, max_idle, a
 * kept connection the server closed, trailing bytes), endpoint syntax.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "global/config.h"
#include "util/sock.h"
#include "util/stream.h"

/* The daemon's files are not in a library: compile it in. */
#include "smtpd/smtpd_policy.c"

static char tmpdir[256];
static char sockpath[320];
static char inet_port[16];
static char err[512];
static pid_t server_pid = -1;

/* ------------------------------------------------------------ the server */

static void say(struct stream *s, const char *text)
{
    stream_puts(s, text);
    stream_flush(s);
}

/*
 * Serve one connection (number conn): read requests, answer by the
 * recipient.  Returns when the client hangs up or a script says so.
 */
static void serve_conn(struct stream *s, int conn)
{
    struct buf line = BUF_INIT, rcpt = BUF_INIT, helo = BUF_INIT;
    int nreq = 0;

    for (;;) {
        int nattr = 0;
        enum stream_status st;

        buf_reset(&rcpt);
        buf_reset(&helo);
        for (;;) {
            st = stream_read_line(s, &line, 65536, NULL);
            if (st != STREAM_OK)
                goto done;
            if (line.len == 0)
                break;
            nattr++;
            if (strncmp(line.data, "recipient=", 10) == 0)
                buf_puts(&rcpt, line.data + 10);
            if (strncmp(line.data, "helo_name=", 10) == 0)
                buf_puts(&helo, line.data + 10);
        }
        nreq++;
        const char *r = buf_cstr(&rcpt);

        if (strcmp(r, "echo") == 0) {
            stream_printf(s, "action=OK %d %s\n\n", nattr, buf_cstr(&helo));
            stream_flush(s);
        } else if (strcmp(r, "count") == 0) {
            stream_printf(s, "action=DUNNO conn=%d req=%d\n\n", conn, nreq);
            stream_flush(s);
        } else if (strcmp(r, "extra") == 0) {
            say(s, "foo=bar\naction=PREPEND X-Test: 1\nother=x=y\n\n");
        } else if (strcmp(r, "crlf") == 0) {
            say(s, "action=REJECT go away\r\n\r\n");
        } else if (strcmp(r, "split") == 0) {
            say(s, "act");
            usleep(100000);
            say(s, "ion=DEFER_IF_PERMIT later\n");
            usleep(100000);
            say(s, "\n");
        } else if (strcmp(r, "noaction") == 0) {
            say(s, "result=1\n\n");
        } else if (strcmp(r, "empty") == 0) {
            say(s, "action=\n\n");
        } else if (strcmp(r, "twoactions") == 0) {
            say(s, "action=OK\naction=REJECT\n\n");
        } else if (strcmp(r, "garbage") == 0) {
            say(s, "hello there\n\n");
        } else if (strcmp(r, "ctrl") == 0) {
            say(s, "action=REJECT a\001b\n\n");
        } else if (strcmp(r, "longaction") == 0) {
            stream_puts(s, "action=REJECT ");
            for (int i = 0; i < SMTPD_POLICY_ACTION_MAX; i++)
                stream_puts(s, "x");
            say(s, "\n\n");
        } else if (strcmp(r, "huge") == 0) {
            for (int i = 0; i < SMTPD_POLICY_REPLY_MAX / 10 + 10; i++)
                stream_puts(s, "name=value\n");
            say(s, "action=OK\n\n");
        } else if (strcmp(r, "hang") == 0) {
            /* No answer; wait for the client to give up and hang up. */
            while (stream_read_line(s, &line, 65536, NULL) == STREAM_OK)
                ;
            goto done;
        } else if (strcmp(r, "close") == 0) {
            goto done;
        } else if (strcmp(r, "bye") == 0) {
            say(s, "action=DUNNO\n\n");
            goto done;
        } else if (strcmp(r, "twice") == 0) {
            say(s, "action=DUNNO\n\naction=REJECT\n\n");
        } else {
            say(s, "action=DUNNO\n\n");
        }
    }
done:
    buf_free(&line);
    buf_free(&rcpt);
    buf_free(&helo);
}

static void server_loop(int ufd, int ifd)
{
    int conn = 0;

    signal(SIGCHLD, SIG_IGN);
    for (;;) {
        struct pollfd pfd[2] = {{.fd = ufd, .events = POLLIN},
                                {.fd = ifd, .events = POLLIN}};
        int fd = -1;

        if (poll(pfd, 2, -1) <= 0)
            continue;
        if (pfd[0].revents & POLLIN)
            fd = accept(ufd, NULL, NULL);
        else if (pfd[1].revents & POLLIN)
            fd = accept(ifd, NULL, NULL);
        if (fd < 0)
            continue;
        conn++;
        if (fork() == 0) {
            struct stream *s = stream_open(fd);

            stream_set_timeout(s, 30000);
            serve_conn(s, conn);
            stream_close(s);
            _exit(0);
        }
        close(fd);
    }
}

static int set(const char *name, const char *value)
{
    return config_set(config_global(), name, value, "test", err, sizeof(err));
}

static int setup(void **state)
{
    struct config *cfg;
    char dir[300], addr[64];
    int ufd, ifd;

    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_smtpd_policy.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(dir, sizeof(dir), "%s/private", tmpdir);
    if (mkdir(dir, 0700) < 0)
        return -1;
    snprintf(sockpath, sizeof(sockpath), "%s/policy", dir);
    cfg = config_new();
    config_set_global(cfg);
    if (set("queue_directory", tmpdir) < 0 ||
        set("smtpd_policy_service_timeout", "2s") < 0 ||
        set("smtpd_policy_service_retry_delay", "1s") < 0)
        return -1;
    if ((ufd = sock_listen_unix(sockpath, 0600, 16, err, sizeof(err))) < 0)
        return -1;
    if ((ifd = sock_listen_inet("127.0.0.1", "0", 16, err, sizeof(err))) < 0)
        return -1;
    if (sock_local_name(ifd, addr, sizeof(addr), inet_port, sizeof(inet_port)) <
        0)
        return -1;
    sock_set_nonblock(ufd, false);
    sock_set_nonblock(ifd, false);
    if ((server_pid = fork()) == 0) {
        server_loop(ufd, ifd);
        _exit(0);
    }
    close(ufd);
    close(ifd);
    return server_pid < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    char cmd[300];

    (void)state;
    smtpd_policy_close_all();
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ helpers */

static struct smtpd_policy_request rcpt_request(const char *rcpt)
{
    struct smtpd_policy_request req = {0};

    req.protocol_state = "RCPT";
    req.protocol_name = "ESMTP";
    req.helo_name = "client.example.org";
    req.sender = "s@example.org";
    req.recipient = rcpt;
    req.client_address = "192.0.2.1";
    req.client_name = "unknown";
    req.reverse_client_name = "unknown";
    return req;
}

/* Query "unix:private/policy" for rcpt; returns the rc, action in out. */
static int ask(const char *rcpt, struct buf *out)
{
    struct smtpd_policy_request req = rcpt_request(rcpt);

    err[0] = 0;
    return smtpd_policy_query("unix:private/policy", &req, out, err,
                              sizeof(err));
}

static int ask_opts(const char *rcpt, const struct smtpd_policy_opts *o,
                    struct buf *out)
{
    struct smtpd_policy_request req = rcpt_request(rcpt);

    err[0] = 0;
    return smtpd_policy_query_opts("unix:private/policy", o, &req, out, err,
                                   sizeof(err));
}

static long long now_ms(void)
{
    return smtpd_policy_now_ms();
}

/* ------------------------------------------------------------ tests */

static void test_format_every_attribute(void **state)
{
    struct smtpd_policy_request req = {
        .protocol_state = "RCPT",
        .protocol_name = "ESMTP",
        .helo_name = "client.example.org",
        .queue_id = "8045F2AB23",
        .sender = "foo@bar.tld",
        .recipient = "bar@foo.tld",
        .recipient_count = 0,
        .client_address = "1.2.3.4",
        .client_name = "another.domain.tld",
        .reverse_client_name = "another.domain.tld",
        .instance = "123.456.7",
        .sasl_method = "plain",
        .sasl_username = "you",
        .sasl_sender = NULL,
        .size = 12345,
        .ccert_subject = "solaris9.porcupine.org",
        .ccert_issuer = "Wietse+20Venema",
        .ccert_fingerprint = "C2:9D",
        .ccert_pubkey_fingerprint = "68:B3",
        .encryption_protocol = "TLSv1.3",
        .encryption_cipher = "TLS_AES_256_GCM_SHA384",
        .encryption_keysize = 256,
        .etrn_domain = NULL,
        .stress = NULL,
        .client_port = "1234",
        .server_address = "10.3.2.1",
        .server_port = "54321",
        .policy_context = "submission",
    };
    struct buf out = BUF_INIT;

    (void)state;
    set("compatibility_level", "3.6");
    smtpd_policy_format(&req, &out);
    assert_string_equal(buf_cstr(&out),
                        "request=smtpd_access_policy\n"
                        "protocol_state=RCPT\n"
                        "protocol_name=ESMTP\n"
                        "helo_name=client.example.org\n"
                        "queue_id=8045F2AB23\n"
                        "sender=foo@bar.tld\n"
                        "recipient=bar@foo.tld\n"
                        "recipient_count=0\n"
                        "client_address=1.2.3.4\n"
                        "client_name=another.domain.tld\n"
                        "reverse_client_name=another.domain.tld\n"
                        "instance=123.456.7\n"
                        "sasl_method=plain\n"
                        "sasl_username=you\n"
                        "sasl_sender=\n"
                        "size=12345\n"
                        "ccert_subject=solaris9.porcupine.org\n"
                        "ccert_issuer=Wietse+20Venema\n"
                        "ccert_fingerprint=C2:9D\n"
                        "encryption_protocol=TLSv1.3\n"
                        "encryption_cipher=TLS_AES_256_GCM_SHA384\n"
                        "encryption_keysize=256\n"
                        "etrn_domain=\n"
                        "stress=\n"
                        "ccert_pubkey_fingerprint=68:B3\n"
                        "client_port=1234\n"
                        "policy_context=submission\n"
                        "server_address=10.3.2.1\n"
                        "server_port=54321\n"
                        "compatibility_level=3.6\n"
                        "mail_version=0.1\n"
                        "\n");
    buf_free(&out);
}

static void test_format_masks_newlines(void **state)
{
    struct smtpd_policy_request req = rcpt_request("a@b");
    struct buf out = BUF_INIT;

    (void)state;
    req.helo_name = "evil\naction=OK\r";
    set("smtpd_policy_service_policy_context", "from-main-cf");
    smtpd_policy_format(&req, &out);
    assert_non_null(strstr(buf_cstr(&out), "\nhelo_name=evil?action=OK?\n"));
    assert_null(strstr(buf_cstr(&out), "\naction="));
    /* No policy_context in the request: main.cf's value. */
    assert_non_null(strstr(buf_cstr(&out), "\npolicy_context=from-main-cf\n"));
    set("smtpd_policy_service_policy_context", "");
    buf_free(&out);
}

static void test_server_sees_every_attribute(void **state)
{
    struct buf action = BUF_INIT;

    (void)state;
    assert_int_equal(ask("echo", &action), 0);
    assert_string_equal(buf_cstr(&action), "OK 31 client.example.org");
    buf_free(&action);
}

static void test_answers(void **state)
{
    struct buf action = BUF_INIT;

    (void)state;
    assert_int_equal(ask("plain", &action), 0);
    assert_string_equal(buf_cstr(&action), "DUNNO");
    /* Other attributes are ignored, wherever they are. */
    assert_int_equal(ask("extra", &action), 0);
    assert_string_equal(buf_cstr(&action), "PREPEND X-Test: 1");
    assert_int_equal(ask("crlf", &action), 0);
    assert_string_equal(buf_cstr(&action), "REJECT go away");
    /* An answer in pieces is put together. */
    assert_int_equal(ask("split", &action), 0);
    assert_string_equal(buf_cstr(&action), "DEFER_IF_PERMIT later");
    buf_free(&action);
}

static void test_bad_answers(void **state)
{
    static const struct {
        const char *rcpt;
        const char *why;
    } cases[] = {
        {"noaction", "answer without action="},
        {"empty", "empty action"},
        {"twoactions", "more than one action="},
        {"garbage", "malformed answer line"},
        {"ctrl", "control character in action"},
        {"longaction", "action longer than"},
        {"huge", "answer longer than"},
    };
    struct smtpd_policy_opts o = SMTPD_POLICY_OPTS_INIT;
    struct buf action = BUF_INIT;

    (void)state;
    o.try_limit = 1;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        buf_reset(&action);
        buf_puts(&action, "untouched");
        assert_int_equal(ask_opts(cases[i].rcpt, &o, &action), -1);
        if (strstr(err, cases[i].why) == NULL)
            fail_msg("%s: error '%s' does not say '%s'", cases[i].rcpt, err,
                     cases[i].why);
    }
    /* After each failure the next query works on a new connection. */
    assert_int_equal(ask("plain", &action), 0);
    assert_string_equal(buf_cstr(&action), "DUNNO");
    buf_free(&action);
}

static void test_timeout(void **state)
{
    struct smtpd_policy_opts o = SMTPD_POLICY_OPTS_INIT;
    struct buf action = BUF_INIT;
    long long t0 = now_ms(), took;

    (void)state;
    o.timeout = 1;
    o.try_limit = 1;
    assert_int_equal(ask_opts("hang", &o, &action), -1);
    took = now_ms() - t0;
    assert_non_null(strstr(err, "timeout"));
    assert_true(took >= 900 && took < 3000);
    buf_free(&action);
}

static void test_retries_up_to_try_limit(void **state)
{
    struct smtpd_policy_opts o = SMTPD_POLICY_OPTS_INIT;
    struct buf action = BUF_INIT;
    long long t0, took;

    (void)state;
    /* Two tries (main.cf default) with one retry delay between them. */
    t0 = now_ms();
    assert_int_equal(ask("close", &action), -1);
    took = now_ms() - t0;
    assert_non_null(strstr(err, "connection closed"));
    assert_true(took >= 900 && took < 3000);
    /* One try: no delay at all. */
    o.try_limit = 1;
    t0 = now_ms();
    assert_int_equal(ask_opts("close", &o, &action), -1);
    assert_true(now_ms() - t0 < 900);
    buf_free(&action);
}

/* conn=N req=M of a "count" answer. */
static void conn_req(struct buf *action, int *conn, int *req)
{
    assert_int_equal(
        sscanf(buf_cstr(action), "DUNNO conn=%d req=%d", conn, req), 2);
}

static void test_reuse_and_limits(void **state)
{
    struct smtpd_policy_opts o = SMTPD_POLICY_OPTS_INIT;
    struct buf action = BUF_INIT;
    int c1, r1, c2, r2, c3, r3;

    (void)state;
    smtpd_policy_close_all();
    assert_int_equal(ask("count", &action), 0);
    conn_req(&action, &c1, &r1);
    assert_int_equal(ask("count", &action), 0);
    conn_req(&action, &c2, &r2);
    assert_int_equal(c2, c1);
    assert_int_equal(r2, r1 + 1);

    /* request_limit 1: every request on a new connection. */
    o.request_limit = 1;
    assert_int_equal(ask_opts("count", &o, &action), 0);
    conn_req(&action, &c3, &r3);
    assert_int_equal(c3, c1);
    assert_int_equal(r3, r2 + 1);
    assert_int_equal(ask_opts("count", &o, &action), 0);
    conn_req(&action, &c3, &r3);
    assert_true(c3 > c1);
    assert_int_equal(r3, 1);

    /* max_idle: a connection idle that long is not reused. */
    o.request_limit = 0;
    o.max_idle = 1;
    assert_int_equal(ask_opts("count", &o, &action), 0);
    conn_req(&action, &c1, &r1);
    assert_int_equal(ask_opts("count", &o, &action), 0);
    conn_req(&action, &c2, &r2);
    assert_int_equal(c2, c1);
    sleep(1);
    usleep(100000);
    assert_int_equal(ask_opts("count", &o, &action), 0);
    conn_req(&action, &c3, &r3);
    assert_true(c3 > c2);
    assert_int_equal(r3, 1);
    buf_free(&action);
}

static void test_server_closed_kept_connection(void **state)
{
    struct smtpd_policy_opts o = SMTPD_POLICY_OPTS_INIT;
    struct buf action = BUF_INIT;
    int c1, r1;
    long long t0;

    (void)state;
    o.try_limit = 1;
    assert_int_equal(ask_opts("bye", &o, &action), 0);
    usleep(100000);
    /* The hang-up is noticed before sending: no failed try, no delay. */
    t0 = now_ms();
    assert_int_equal(ask_opts("count", &o, &action), 0);
    assert_true(now_ms() - t0 < 900);
    conn_req(&action, &c1, &r1);
    assert_int_equal(r1, 1);
    buf_free(&action);
}

static void test_trailing_bytes_drop_connection(void **state)
{
    struct buf action = BUF_INIT;
    int c1, r1, c2, r2;

    (void)state;
    assert_int_equal(ask("count", &action), 0);
    conn_req(&action, &c1, &r1);
    assert_int_equal(ask("twice", &action), 0);
    assert_string_equal(buf_cstr(&action), "DUNNO");
    /* The stray second answer is never taken for the next one. */
    assert_int_equal(ask("count", &action), 0);
    conn_req(&action, &c2, &r2);
    assert_true(c2 > c1);
    assert_int_equal(r2, 1);
    buf_free(&action);
}

static void test_inet_endpoints(void **state)
{
    struct smtpd_policy_request req = rcpt_request("extra");
    struct buf action = BUF_INIT;
    char svc[400];

    (void)state;
    snprintf(svc, sizeof(svc), "inet:127.0.0.1:%s", inet_port);
    assert_int_equal(smtpd_policy_query(svc, &req, &action, err, sizeof(err)),
                     0);
    assert_string_equal(buf_cstr(&action), "PREPEND X-Test: 1");
    snprintf(svc, sizeof(svc), "127.0.0.1:%s", inet_port);
    assert_int_equal(smtpd_policy_query(svc, &req, &action, err, sizeof(err)),
                     0);
    assert_string_equal(buf_cstr(&action), "PREPEND X-Test: 1");
    /* An absolute unix path works as well as a relative one. */
    snprintf(svc, sizeof(svc), "unix:%s", sockpath);
    assert_int_equal(smtpd_policy_query(svc, &req, &action, err, sizeof(err)),
                     0);
    assert_string_equal(buf_cstr(&action), "PREPEND X-Test: 1");
    buf_free(&action);
}

static void test_no_server(void **state)
{
    struct smtpd_policy_request req = rcpt_request("x");
    struct smtpd_policy_opts o = SMTPD_POLICY_OPTS_INIT;
    struct buf action = BUF_INIT;

    (void)state;
    o.try_limit = 1;
    assert_int_equal(smtpd_policy_query_opts("unix:private/nothing", &o, &req,
                                             &action, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "private/nothing"));
    buf_free(&action);
}

static void test_endpoint_syntax(void **state)
{
    (void)state;
    assert_int_equal(
        smtpd_policy_service_ok("inet:127.0.0.1:10023", err, sizeof(err)), 0);
    assert_int_equal(
        smtpd_policy_service_ok("localhost:10023", err, sizeof(err)), 0);
    assert_int_equal(
        smtpd_policy_service_ok("inet:[::1]:10023", err, sizeof(err)), 0);
    assert_int_equal(
        smtpd_policy_service_ok("unix:private/greylist", err, sizeof(err)), 0);
    assert_int_equal(
        smtpd_policy_service_ok("unix:/run/policy.sock", err, sizeof(err)), 0);
    assert_int_equal(smtpd_policy_service_ok("unix:", err, sizeof(err)), -1);
    assert_int_equal(smtpd_policy_service_ok("inet:host", err, sizeof(err)),
                     -1);
    assert_int_equal(smtpd_policy_service_ok("greylist", err, sizeof(err)), -1);
    assert_int_equal(smtpd_policy_service_ok("inet:::1:25", err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "[address]:port"));
    assert_int_equal(smtpd_policy_service_ok("inet:[::1]25", err, sizeof(err)),
                     -1);
    assert_int_equal(smtpd_policy_service_ok("inet:host:", err, sizeof(err)),
                     -1);
    assert_int_equal(smtpd_policy_service_ok("inet::25", err, sizeof(err)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_every_attribute),
        cmocka_unit_test(test_format_masks_newlines),
        cmocka_unit_test(test_server_sees_every_attribute),
        cmocka_unit_test(test_answers),
        cmocka_unit_test(test_bad_answers),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_retries_up_to_try_limit),
        cmocka_unit_test(test_reuse_and_limits),
        cmocka_unit_test(test_server_closed_kept_connection),
        cmocka_unit_test(test_trailing_bytes_drop_connection),
        cmocka_unit_test(test_inet_endpoints),
        cmocka_unit_test(test_no_server),
        cmocka_unit_test(test_endpoint_syntax),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup, teardown);
}
