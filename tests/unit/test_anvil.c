/*
 * test_anvil - the anvil service's counting rules (anvil_table.c), its
 * request handling and per-connection holds (anvil_conn.c), and the
 * client (global/anvil_client.c) against those same files serving on
 * $queue_directory/private/anvil in a child process.
 *
 * Time is an argument of every table call, so the window rules are
 * tested at exact seconds; the client tests use the real clock with a
 * one-second time unit.
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

#include <event2/event.h>
#include <event2/listener.h>

#include "global/anvil_client.h"
#include "global/config.h"
#include "util/sock.h"

/* The daemon's files are not in a library: compile them in. */
#include "anvil/anvil_conn.c"
#include "anvil/anvil_table.c"

struct event_base *anvil_base;

long long anvil_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec;
}

static char tmpdir[256];
static char err[512];
static pid_t server_pid = -1;

/* ------------------------------------------------------------ table */

static void test_connect_count_and_rate(void **state)
{
    struct anvil_table *t = anvil_table_new(60, 100);
    struct anvil_counts c;

    (void)state;
    assert_int_equal(anvil_table_connect(t, "smtp:192.0.2.1", 1000, &c), 0);
    assert_int_equal(c.count, 1);
    assert_int_equal(c.rate, 1);
    assert_int_equal(anvil_table_connect(t, "smtp:192.0.2.1", 1001, &c), 0);
    assert_int_equal(c.count, 2);
    assert_int_equal(c.rate, 2);
    /* Another client is counted apart. */
    assert_int_equal(anvil_table_connect(t, "smtp:192.0.2.2", 1001, &c), 0);
    assert_int_equal(c.count, 1);
    assert_int_equal(c.rate, 1);
    anvil_table_disconnect(t, "smtp:192.0.2.1", 1002);
    anvil_table_lookup(t, "smtp:192.0.2.1", 1002, &c);
    assert_int_equal(c.count, 1);
    assert_int_equal(c.rate, 2);
    /* Never below zero. */
    anvil_table_disconnect(t, "smtp:192.0.2.1", 1002);
    anvil_table_disconnect(t, "smtp:192.0.2.1", 1002);
    anvil_table_lookup(t, "smtp:192.0.2.1", 1002, &c);
    assert_int_equal(c.count, 0);
    anvil_table_disconnect(t, "smtp:unknown", 1002);
    assert_int_equal(anvil_table_size(t), 2);
    anvil_table_free(t);
}

static void test_rate_window(void **state)
{
    struct anvil_table *t = anvil_table_new(60, 100);
    struct anvil_counts c;

    (void)state;
    anvil_table_connect(t, "x", 100, &c);
    anvil_table_message(t, "x", 100, &c);
    anvil_table_message(t, "x", 130, &c);
    assert_int_equal(c.message, 2);
    anvil_table_recipient(t, "x", 130, &c);
    anvil_table_recipient(t, "x", 130, &c);
    anvil_table_recipient(t, "x", 160, &c);
    assert_int_equal(c.recipient, 3);
    /* Postfix's rule: start + unit < now starts a new window. */
    anvil_table_lookup(t, "x", 160, &c);
    assert_int_equal(c.rate, 1);
    assert_int_equal(c.message, 2);
    anvil_table_lookup(t, "x", 161, &c);
    assert_int_equal(c.rate, 0);
    assert_int_equal(c.message, 0);
    assert_int_equal(c.count, 1);
    /* The next event opens the new window: every rate starts over. */
    anvil_table_message(t, "x", 161, &c);
    assert_int_equal(c.message, 1);
    assert_int_equal(c.recipient, 0);
    assert_int_equal(c.rate, 0);
    assert_int_equal(c.count, 1);
    anvil_table_connect(t, "x", 170, &c);
    assert_int_equal(c.rate, 1);
    assert_int_equal(c.count, 2);
    anvil_table_free(t);
}

static void test_idle_entries_expire(void **state)
{
    struct anvil_table *t = anvil_table_new(60, 100);
    struct anvil_counts c;

    (void)state;
    anvil_table_connect(t, "busy", 0, &c);
    anvil_table_connect(t, "idle", 0, &c);
    anvil_table_disconnect(t, "idle", 10);
    anvil_table_message(t, "ratesonly", 20, &c);
    anvil_table_expire(t, 69);
    assert_int_equal(anvil_table_size(t), 3);
    anvil_table_expire(t, 70);
    assert_int_equal(anvil_table_size(t), 2);
    anvil_table_lookup(t, "idle", 70, &c);
    assert_int_equal(c.count, 0);
    assert_int_equal(c.rate, 0);
    anvil_table_expire(t, 80);
    assert_int_equal(anvil_table_size(t), 1);
    /* An ident with an open connection stays however long it is idle. */
    anvil_table_expire(t, 100000);
    assert_int_equal(anvil_table_size(t), 1);
    anvil_table_lookup(t, "busy", 100000, &c);
    assert_int_equal(c.count, 1);
    anvil_table_free(t);
}

static void test_table_is_bounded(void **state)
{
    struct anvil_table *t = anvil_table_new(60, 3);
    struct anvil_counts c;

    (void)state;
    anvil_table_connect(t, "a", 0, &c);
    anvil_table_message(t, "b", 1, &c); /* idle since 1 */
    anvil_table_message(t, "c", 2, &c); /* idle since 2 */
    /* Full: the longest-idle ident makes room. */
    assert_int_equal(anvil_table_message(t, "d", 3, &c), 0);
    assert_int_equal(anvil_table_size(t), 3);
    assert_int_equal(anvil_table_take_evicted(t), 1);
    assert_int_equal(anvil_table_take_evicted(t), 0);
    anvil_table_lookup(t, "b", 3, &c);
    assert_int_equal(c.message, 0);
    anvil_table_lookup(t, "c", 3, &c);
    assert_int_equal(c.message, 1);
    /* Full of idents holding connections: refused, nothing counted. */
    anvil_table_connect(t, "c", 4, &c);
    anvil_table_connect(t, "d", 4, &c);
    assert_int_equal(anvil_table_connect(t, "e", 5, &c), -1);
    assert_int_equal(anvil_table_message(t, "e", 5, &c), -1);
    assert_int_equal(anvil_table_size(t), 3);
    /* Known idents still count. */
    assert_int_equal(anvil_table_connect(t, "a", 5, &c), 0);
    assert_int_equal(c.count, 2);
    anvil_table_free(t);
}

static void test_statistics_lines(void **state)
{
    struct anvil_table *t = anvil_table_new(60, 100);
    struct anvil_counts c;
    char path[300], line[512];
    FILE *fp;
    int found = 0;

    (void)state;
    snprintf(path, sizeof(path), "%s/stats.log", tmpdir);
    log_open("anvil", LOG_TO_FILE, path);
    anvil_table_connect(t, "smtp:192.0.2.9", 0, &c);
    anvil_table_connect(t, "smtp:192.0.2.9", 0, &c);
    anvil_table_connect(t, "smtp:192.0.2.8", 0, &c);
    anvil_table_message(t, "smtp:192.0.2.8", 0, &c);
    anvil_table_recipient(t, "smtp:192.0.2.8", 0, &c);
    anvil_table_log_stats(t);
    /* Nothing new since: nothing logged the second time. */
    anvil_table_log_stats(t);
    log_open("test_anvil", LOG_TO_STDERR, NULL);
    assert_non_null(fp = fopen(path, "r"));
    while (fgets(line, sizeof(line), fp) != NULL) {
        if (strstr(line, "statistics: max connection rate 2/60s for "
                         "(smtp:192.0.2.9) at ") != NULL)
            found |= 1;
        if (strstr(line, "statistics: max connection count 2 for "
                         "(smtp:192.0.2.9) at ") != NULL)
            found |= 2;
        if (strstr(line, "statistics: max message rate 1/60s for "
                         "(smtp:192.0.2.8) at ") != NULL)
            found |= 4;
        if (strstr(line, "statistics: max recipient rate 1/60s for "
                         "(smtp:192.0.2.8) at ") != NULL)
            found |= 8;
        if (strstr(line, "statistics: max cache size 2 at ") != NULL)
            found |= 16;
        if (strstr(line, "statistics:") == NULL)
            fail_msg("unexpected log line %s", line);
    }
    fclose(fp);
    assert_int_equal(found, 31);
    /* Five lines, not ten. */
    assert_non_null(fp = fopen(path, "r"));
    {
        int n = 0;

        while (fgets(line, sizeof(line), fp) != NULL)
            n++;
        assert_int_equal(n, 5);
    }
    fclose(fp);
    anvil_table_free(t);
}

/* ------------------------------------------------------------ requests */

static struct attr_list make_req(const char *request, const char *ident)
{
    struct attr_list req = ATTR_LIST_INIT;

    if (request != NULL)
        attr_list_add(&req, "request", request, strlen(request));
    if (ident != NULL)
        attr_list_add(&req, "ident", ident, strlen(ident));
    return req;
}

/* Run one request; returns the answer's status, fills *answer. */
static const char *run(struct anvil_table *t, struct anvil_holds *h,
                       const char *request, const char *ident, long long now,
                       struct attr_list *answer)
{
    struct attr_list req = make_req(request, ident);
    struct buf reply = BUF_INIT;
    struct stream *s;
    int fds[2];
    const char *why;

    anvil_request(t, h, &req, now, &reply);
    attr_list_free(&req);
    /* Read it back with the real frame reader. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    assert_int_equal(write(fds[0], reply.data, reply.len), (ssize_t)reply.len);
    close(fds[0]);
    s = stream_open(fds[1]);
    assert_int_equal(attr_read(s, answer, 4096, &why), STREAM_OK);
    stream_close(s);
    buf_free(&reply);
    return attr_get(answer, "status");
}

static long long num(const struct attr_list *a, const char *name)
{
    long long v = -1;

    assert_true(attr_get_int(a, name, &v));
    return v;
}

static void test_requests(void **state)
{
    struct anvil_table *t = anvil_table_new(60, 100);
    struct anvil_holds *h = anvil_holds_new();
    struct attr_list a = ATTR_LIST_INIT;
    char longident[ANVIL_IDENT_MAX + 2];

    (void)state;
    assert_string_equal(run(t, h, "connect", "smtp:192.0.2.1", 0, &a), "0");
    assert_int_equal(num(&a, "count"), 1);
    assert_int_equal(num(&a, "rate"), 1);
    assert_string_equal(run(t, h, "message", "smtp:192.0.2.1", 0, &a), "0");
    assert_int_equal(num(&a, "rate"), 1);
    assert_null(attr_find(&a, "count"));
    assert_string_equal(run(t, h, "recipient", "smtp:192.0.2.1", 0, &a), "0");
    assert_string_equal(run(t, h, "recipient", "smtp:192.0.2.1", 0, &a), "0");
    assert_int_equal(num(&a, "rate"), 2);
    assert_string_equal(run(t, h, "lookup", "smtp:192.0.2.1", 0, &a), "0");
    assert_int_equal(num(&a, "count"), 1);
    assert_int_equal(num(&a, "rate"), 1);
    assert_int_equal(num(&a, "message"), 1);
    assert_int_equal(num(&a, "recipient"), 2);
    assert_string_equal(run(t, h, "disconnect", "smtp:192.0.2.1", 0, &a), "0");
    assert_string_equal(run(t, h, "lookup", "smtp:192.0.2.1", 0, &a), "0");
    assert_int_equal(num(&a, "count"), 0);

    /* Requests that make no sense: status 1 with a reason. */
    assert_string_equal(run(t, h, "explode", "smtp:192.0.2.1", 0, &a), "1");
    assert_non_null(attr_get(&a, "reason"));
    assert_string_equal(run(t, h, NULL, "smtp:192.0.2.1", 0, &a), "1");
    assert_string_equal(run(t, h, "connect", NULL, 0, &a), "1");
    assert_string_equal(run(t, h, "connect", "", 0, &a), "1");
    assert_string_equal(run(t, h, "connect", "smtp:with space", 0, &a), "1");
    assert_string_equal(run(t, h, "connect", "smtp:\001", 0, &a), "1");
    memset(longident, 'a', sizeof(longident) - 1);
    longident[sizeof(longident) - 1] = 0;
    assert_string_equal(run(t, h, "connect", longident, 0, &a), "1");
    longident[ANVIL_IDENT_MAX] = 0;
    assert_string_equal(run(t, h, "connect", longident, 0, &a), "0");
    attr_list_free(&a);
    anvil_holds_free(h, t, 0);
    anvil_table_free(t);
}

static void test_holds(void **state)
{
    struct anvil_table *t = anvil_table_new(60, 100);
    struct anvil_holds *h1 = anvil_holds_new(), *h2 = anvil_holds_new();
    struct attr_list a = ATTR_LIST_INIT;
    struct anvil_counts c;

    (void)state;
    run(t, h1, "connect", "smtp:192.0.2.1", 0, &a);
    run(t, h1, "connect", "smtp:192.0.2.1", 0, &a);
    run(t, h1, "connect", "smtp:192.0.2.2", 0, &a);
    run(t, h2, "connect", "smtp:192.0.2.1", 0, &a);
    assert_int_equal(num(&a, "count"), 3);
    /* h2 cannot end connections it does not hold. */
    run(t, h2, "disconnect", "smtp:192.0.2.2", 0, &a);
    run(t, h2, "disconnect", "smtp:192.0.2.1", 0, &a);
    run(t, h2, "disconnect", "smtp:192.0.2.1", 0, &a);
    anvil_table_lookup(t, "smtp:192.0.2.1", 0, &c);
    assert_int_equal(c.count, 2);
    anvil_table_lookup(t, "smtp:192.0.2.2", 0, &c);
    assert_int_equal(c.count, 1);
    /* h1 hangs up: everything it held ends. */
    anvil_holds_free(h1, t, 1);
    anvil_table_lookup(t, "smtp:192.0.2.1", 1, &c);
    assert_int_equal(c.count, 0);
    anvil_table_lookup(t, "smtp:192.0.2.2", 1, &c);
    assert_int_equal(c.count, 0);
    /* The rates are not forgotten with the connections. */
    assert_int_equal(c.rate, 1);
    attr_list_free(&a);
    anvil_holds_free(h2, t, 1);
    anvil_table_free(t);
}

/* ------------------------------------------------------------ the client */

static void child_accept(struct evconnlistener *l, evutil_socket_t fd,
                         struct sockaddr *sa, int salen, void *ctx)
{
    (void)l;
    (void)sa;
    (void)salen;
    anvil_conn_accept(fd, ctx);
}

/* A real anvil minus the skeleton: the event loop and anvil_conn.c. */
static void child_serve(int lfd)
{
    struct anvil_table *t = anvil_table_new(1, 100);
    struct evconnlistener *l;

    anvil_base = event_base_new();
    l = evconnlistener_new(anvil_base, child_accept, t, 0, 0, lfd);
    if (l == NULL)
        _exit(1);
    event_base_dispatch(anvil_base);
    _exit(0);
}

static void start_server(void)
{
    char path[400];
    int lfd;

    snprintf(path, sizeof(path), "%s/private/anvil", tmpdir);
    lfd = sock_listen_unix(path, 0600, 16, err, sizeof(err));
    assert_true(lfd >= 0);
    /* As master passes it: libevent accepts until EAGAIN. */
    sock_set_nonblock(lfd, true);
    if ((server_pid = fork()) == 0)
        child_serve(lfd);
    assert_true(server_pid > 0);
    close(lfd);
}

static void stop_server(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
    }
    server_pid = -1;
}

static void test_client(void **state)
{
    int count = -1, rate = -1, rate2 = -1;

    (void)state;
    start_server();
    assert_int_equal(
        anvil_connect("smtp:192.0.2.1", &count, &rate, err, sizeof(err)), 0);
    assert_int_equal(count, 1);
    assert_int_equal(rate, 1);
    assert_int_equal(
        anvil_connect("smtp:192.0.2.1", &count, &rate, err, sizeof(err)), 0);
    assert_int_equal(count, 2);
    assert_int_equal(rate, 2);
    assert_int_equal(anvil_message("smtp:192.0.2.1", &rate, err, sizeof(err)),
                     0);
    assert_int_equal(rate, 1);
    assert_int_equal(
        anvil_recipient("smtp:192.0.2.1", &rate2, err, sizeof(err)), 0);
    assert_int_equal(rate2, 1);
    assert_int_equal(anvil_disconnect("smtp:192.0.2.1", err, sizeof(err)), 0);
    assert_int_equal(
        anvil_connect("smtp:192.0.2.1", &count, &rate, err, sizeof(err)), 0);
    assert_int_equal(count, 2);
    /* The client hangs up: anvil ends the connections it held. */
    anvil_client_close();
    usleep(100000);
    assert_int_equal(
        anvil_connect("smtp:192.0.2.1", &count, &rate, err, sizeof(err)), 0);
    assert_int_equal(count, 1);
    /* A one-second unit: two seconds later the rate starts over. */
    sleep(2);
    assert_int_equal(
        anvil_connect("smtp:192.0.2.1", &count, &rate, err, sizeof(err)), 0);
    assert_int_equal(count, 2);
    assert_int_equal(rate, 1);

    /* Refused locally: nothing sent. */
    assert_int_equal(
        anvil_connect("smtp:with space", &count, &rate, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "malformed ident"));

    /* anvil restarted: the dead kept connection is replaced. */
    stop_server();
    start_server();
    usleep(100000);
    assert_int_equal(
        anvil_connect("smtp:192.0.2.1", &count, &rate, err, sizeof(err)), 0);
    assert_int_equal(count, 1);

    /* No anvil: an error, quickly. */
    stop_server();
    assert_int_equal(anvil_message("smtp:192.0.2.1", &rate, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "anvil service"));
    anvil_client_close();
}

/* A server that answers garbage: the client reports an error. */
static void test_client_bad_answers(void **state)
{
    static const char *const answers[] = {
        "status:1:0\n\n", /* no count/rate */
        "status:1:0\ncount:2:-1\nrate:1:1\n\n",
        "status:1:0\ncount:11:99999999999\nrate:1:1\n\n",
        "status:1:1\nreason:4:nope\n\n",
        "status:2:ok\ncount:1:1\nrate:1:1\n\n",
        "garbage\n\n",
    };
    char path[400];
    int lfd;

    (void)state;
    snprintf(path, sizeof(path), "%s/private/anvil", tmpdir);
    for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
        int count, rate;
        pid_t pid;

        lfd = sock_listen_unix(path, 0600, 16, err, sizeof(err));
        assert_true(lfd >= 0);
        if ((pid = fork()) == 0) {
            int fd = accept(lfd, NULL, NULL);
            char b[1024];

            (void)read(fd, b, sizeof(b));
            (void)write(fd, answers[i], strlen(answers[i]));
            sleep(1);
            _exit(0);
        }
        close(lfd);
        assert_int_equal(
            anvil_connect("smtp:192.0.2.1", &count, &rate, err, sizeof(err)),
            -1);
        if (i == 3)
            assert_non_null(strstr(err, "nope"));
        anvil_client_close();
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

static int setup(void **state)
{
    struct config *cfg;
    char dir[300];

    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_anvil.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(dir, sizeof(dir), "%s/private", tmpdir);
    if (mkdir(dir, 0700) < 0)
        return -1;
    cfg = config_new();
    config_set_global(cfg);
    if (config_set(cfg, "queue_directory", tmpdir, "test", err, sizeof(err)) <
        0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];

    (void)state;
    stop_server();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_count_and_rate),
        cmocka_unit_test(test_rate_window),
        cmocka_unit_test(test_idle_entries_expire),
        cmocka_unit_test(test_table_is_bounded),
        cmocka_unit_test(test_statistics_lines),
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_holds),
        cmocka_unit_test(test_client),
        cmocka_unit_test(test_client_bad_answers),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup, teardown);
}
