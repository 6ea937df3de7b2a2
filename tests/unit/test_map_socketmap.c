/*
 * test_map_socketmap - socketmap: tables against a socketmap server in a
 * forked child on a unix socket: OK/NOTFOUND, TEMP/TIMEOUT/PERM as lookup
 * errors, garbage, a malformed netstring, an oversized reply, a NUL in
 * the value, a server that never answers (socketmap_timeout), a server
 * that closes the connection (one retry on a fresh connection), the
 * persistent connection, the request format ("name key", key as given),
 * a server that is down, and bad table names.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "global/config.h"
#include "global/maps.h"
#include "util/buf.h"
#include "util/sock.h"

static char tmpdir[256];
static char sockpath[300];
static char spec[400];
static char err[512];
static pid_t server_pid;

/* ---- the server (child) ---- */

static void srv_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void srv_reply(int fd, const char *data, size_t len)
{
    char head[32];

    snprintf(head, sizeof(head), "%zu:", len);
    srv_write_all(fd, head, strlen(head));
    srv_write_all(fd, data, len);
    srv_write_all(fd, ",", 1);
}

/* Read one netstring request; returns its length or -1. */
static long srv_read(int fd, char *buf, size_t size)
{
    size_t len = 0, got = 0;
    char c;

    for (;;) {
        if (read(fd, &c, 1) != 1)
            return -1;
        if (c == ':')
            break;
        if (c < '0' || c > '9')
            return -1;
        len = len * 10 + (size_t)(c - '0');
    }
    if (len + 1 > size)
        return -1;
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);

        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    if (read(fd, &c, 1) != 1 || c != ',')
        return -1;
    buf[len] = 0;
    return (long)len;
}

/* One connection: answer by the key (after "name "). */
static void srv_conn(int fd)
{
    char req[4096], out[4200];
    int count = 0;

    while (srv_read(fd, req, sizeof(req)) >= 0) {
        const char *key = strchr(req, ' ');

        count++;
        key = key ? key + 1 : "";
        if (strncmp(key, "ok:", 3) == 0) {
            snprintf(out, sizeof(out), "OK value-of-%s", key + 3);
            srv_reply(fd, out, strlen(out));
        } else if (strcmp(key, "notfound") == 0) {
            srv_reply(fd, "NOTFOUND ", 9);
        } else if (strcmp(key, "temp") == 0) {
            srv_reply(fd, "TEMP try later", 14);
        } else if (strcmp(key, "timeout") == 0) {
            srv_reply(fd, "TIMEOUT backend slow", 20);
        } else if (strcmp(key, "perm") == 0) {
            srv_reply(fd, "PERM broken", 11);
        } else if (strcmp(key, "garbage") == 0) {
            srv_write_all(fd, "hello world\r\n", 13);
        } else if (strcmp(key, "badreply") == 0) {
            srv_reply(fd, "WHAT is this", 12);
        } else if (strcmp(key, "huge") == 0) {
            srv_write_all(fd, "999999:", 7);
        } else if (strcmp(key, "nul") == 0) {
            srv_reply(fd, "OK a\0b", 6);
        } else if (strcmp(key, "hang") == 0) {
            sleep(3);
            break;
        } else if (strcmp(key, "close") == 0) {
            srv_reply(fd, "OK closing", 10);
            break;
        } else if (strcmp(key, "count") == 0) {
            snprintf(out, sizeof(out), "OK %d", count);
            srv_reply(fd, out, strlen(out));
        } else {
            /* Echo the whole request: the client's format shows. */
            snprintf(out, sizeof(out), "OK [%s]", req);
            srv_reply(fd, out, strlen(out));
        }
    }
    close(fd);
}

/* A process per connection, so a hanging one blocks no other test. */
static void srv_main(int lfd)
{
    setpgid(0, 0);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGCHLD, SIG_IGN);
    for (;;) {
        int fd = accept(lfd, NULL, NULL);

        if (fd < 0)
            continue;
        if (fork() == 0) {
            close(lfd);
            srv_conn(fd);
            _exit(0);
        }
        close(fd);
    }
}

/* ---- fixtures ---- */

static int setup(void **state)
{
    struct config *cfg;
    int lfd;

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_map_socketmap.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(sockpath, sizeof(sockpath), "%s/sm", tmpdir);
    if ((lfd = sock_listen_unix(sockpath, 0600, 16, err, sizeof(err))) < 0)
        return -1;
    if ((server_pid = fork()) < 0)
        return -1;
    if (server_pid == 0)
        srv_main(lfd);
    close(lfd);
    snprintf(spec, sizeof(spec), "socketmap:unix:%s:mymap", sockpath);
    /* socketmap_timeout from main.cf: 1s keeps the hang test short. */
    cfg = config_new();
    if (config_set(cfg, "socketmap_timeout", "1s", "test", err, sizeof(err)) <
        0)
        return -1;
    maps_configure(cfg);
    config_free(cfg);
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];

    kill(-server_pid, SIGKILL);
    kill(server_pid, SIGKILL);
    waitpid(server_pid, NULL, 0);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static struct map *open_map(void)
{
    struct map *m = map_open(spec, err, sizeof(err));

    if (m == NULL)
        fail_msg("open %s: %s", spec, err);
    return m;
}

static enum map_result look(struct map *m, const char *key, struct buf *v)
{
    err[0] = 0;
    return map_lookup(m, key, v, err, sizeof(err));
}

/* ---- tests ---- */

static void test_found_and_not_found(void **state)
{
    struct map *m = open_map();
    struct buf v = BUF_INIT;

    assert_int_equal(look(m, "ok:alice", &v), MAP_FOUND);
    assert_string_equal(v.data, "value-of-alice");
    assert_int_equal(look(m, "notfound", &v), MAP_NOTFOUND);
    assert_int_equal(v.len, 0);
    /* The request is "name key", the key as given (not lowercased). */
    assert_int_equal(look(m, "Echo: MiXeD Case", &v), MAP_FOUND);
    assert_string_equal(v.data, "[mymap Echo: MiXeD Case]");
    buf_free(&v);
    map_close(m);
}

static void test_one_connection(void **state)
{
    struct map *m = open_map();
    struct buf v = BUF_INIT;

    assert_int_equal(look(m, "count", &v), MAP_FOUND);
    assert_string_equal(v.data, "1");
    assert_int_equal(look(m, "ok:x", &v), MAP_FOUND);
    assert_int_equal(look(m, "count", &v), MAP_FOUND);
    assert_string_equal(v.data, "3");
    buf_free(&v);
    map_close(m);
}

static void test_server_failures(void **state)
{
    struct map *m = open_map();
    struct buf v = BUF_INIT;

    assert_int_equal(look(m, "temp", &v), MAP_ERROR);
    assert_non_null(strstr(err, "TEMP try later"));
    assert_int_equal(look(m, "timeout", &v), MAP_ERROR);
    assert_non_null(strstr(err, "TIMEOUT backend slow"));
    assert_int_equal(look(m, "perm", &v), MAP_ERROR);
    assert_non_null(strstr(err, "PERM broken"));
    /* Those were proper replies: the connection is still the same one. */
    assert_int_equal(look(m, "count", &v), MAP_FOUND);
    assert_string_equal(v.data, "4");
    buf_free(&v);
    map_close(m);
}

static void test_garbage(void **state)
{
    struct map *m = open_map();
    struct buf v = BUF_INIT;

    assert_int_equal(look(m, "garbage", &v), MAP_ERROR);
    assert_non_null(strstr(err, "malformed netstring"));
    assert_int_equal(look(m, "badreply", &v), MAP_ERROR);
    assert_non_null(strstr(err, "malformed reply \"WHAT is this\""));
    assert_int_equal(look(m, "huge", &v), MAP_ERROR);
    assert_non_null(strstr(err, "reply longer than 100000"));
    assert_int_equal(look(m, "nul", &v), MAP_ERROR);
    assert_non_null(strstr(err, "NUL"));
    /* Each bad reply dropped the connection; the next one is fresh. */
    assert_int_equal(look(m, "count", &v), MAP_FOUND);
    assert_string_equal(v.data, "1");
    buf_free(&v);
    map_close(m);
}

static void test_timeout(void **state)
{
    struct map *m = open_map();
    struct buf v = BUF_INIT;
    time_t t0 = time(NULL);

    assert_int_equal(look(m, "hang", &v), MAP_ERROR);
    assert_non_null(strstr(err, "no reply within socketmap_timeout"));
    /* socketmap_timeout = 1s, not the server's 3 s, and no retry. */
    assert_true(time(NULL) - t0 <= 2);
    buf_free(&v);
    map_close(m);
}

static void test_reconnect_after_close(void **state)
{
    struct map *m = open_map();
    struct buf v = BUF_INIT;

    assert_int_equal(look(m, "close", &v), MAP_FOUND);
    assert_string_equal(v.data, "closing");
    /* The server hung up; the lookup retries once on a new connection. */
    assert_int_equal(look(m, "count", &v), MAP_FOUND);
    assert_string_equal(v.data, "1");
    buf_free(&v);
    map_close(m);
}

static void test_server_down(void **state)
{
    char down[400];
    struct map *m;
    struct buf v = BUF_INIT;

    snprintf(down, sizeof(down), "socketmap:unix:%s/nobody:x", tmpdir);
    /* Opening does not connect; the lookup fails as an error. */
    m = map_open(down, err, sizeof(err));
    assert_non_null(m);
    assert_int_equal(look(m, "ok:a", &v), MAP_ERROR);
    assert_non_null(strstr(err, "nobody"));
    map_close(m);
    /* inet: a port nobody listens on. */
    m = map_open("socketmap:inet:127.0.0.1:1:x", err, sizeof(err));
    assert_non_null(m);
    assert_int_equal(look(m, "ok:a", &v), MAP_ERROR);
    map_close(m);
    buf_free(&v);
}

static void test_bad_names(void **state)
{
    const char *bad[] = {
        "socketmap:unix:/tmp/x",  /* no map name after the path */
        "socketmap:tcp:host:1:x", /* unknown endpoint type */
        "socketmap:inet:host:x",  /* no port */
        "socketmap:inet::25:x",   /* no host */
        "socketmap:unix:/tmp/x:", /* empty map name */
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct map *m = map_open(bad[i], err, sizeof(err));

        if (m != NULL) {
            map_close(m);
            fail_msg("%s: opened", bad[i]);
        }
    }
    /* IPv6 host in brackets is fine. */
    struct map *m = map_open("socketmap:inet:[::1]:1:x", err, sizeof(err));
    assert_non_null(m);
    map_close(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_found_and_not_found),
        cmocka_unit_test(test_one_connection),
        cmocka_unit_test(test_server_failures),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_reconnect_after_close),
        cmocka_unit_test(test_server_down),
        cmocka_unit_test(test_bad_names),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
