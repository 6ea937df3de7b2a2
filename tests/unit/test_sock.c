/*
 * test_sock - listeners and connects on loopback and unix sockets: the
 * peer/local names (IPv4, IPv6, IPv4-mapped shown as IPv4, "local"),
 * stale unix socket removal and its mode, refusing to remove a regular
 * file, connect refused, and close-on-exec on every descriptor.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/sock.h"

static char dir[64];

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/test_sock.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static bool cloexec(int fd)
{
    return (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
}

static void test_inet(void **state)
{
    char err[256], addr[64], port[16], lport[16];
    int lfd, cfd, afd;

    lfd = sock_listen_inet("127.0.0.1", "0", 16, err, sizeof(err));
    assert_true(lfd >= 0);
    assert_true(cloexec(lfd));
    assert_int_equal(
        sock_local_name(lfd, addr, sizeof(addr), lport, sizeof(lport)), 0);
    assert_string_equal(addr, "127.0.0.1");
    assert_string_not_equal(lport, "0");

    cfd = sock_connect_inet("127.0.0.1", lport, 2000, err, sizeof(err));
    assert_true(cfd >= 0);
    assert_true(cloexec(cfd));
    /* The connected descriptor is blocking again. */
    assert_int_equal(fcntl(cfd, F_GETFL) & O_NONBLOCK, 0);
    afd = accept(lfd, NULL, NULL);
    assert_true(afd >= 0);
    assert_int_equal(
        sock_peer_name(afd, addr, sizeof(addr), port, sizeof(port)), 0);
    assert_string_equal(addr, "127.0.0.1");
    assert_int_equal(
        sock_peer_name(cfd, addr, sizeof(addr), port, sizeof(port)), 0);
    assert_string_equal(port, lport);
    close(afd);
    close(cfd);
    /* Nobody listening any more: refused, with a reason. */
    close(lfd);
    err[0] = 0;
    assert_int_equal(
        sock_connect_inet("127.0.0.1", lport, 2000, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "127.0.0.1"));
    /* Unresolvable names fail cleanly. */
    assert_int_equal(
        sock_listen_inet("127.0.0.1", "no-such-service-x", 1, err, sizeof(err)),
        -1);
    assert_int_equal(sock_listen_inet("256.1.1.1", "25", 1, err, sizeof(err)),
                     -1);
}

static void test_inet_blocking_connect(void **state)
{
    char err[256], addr[64], lport[16];
    int lfd, cfd;

    lfd = sock_listen_inet("127.0.0.1", "0", 16, err, sizeof(err));
    assert_true(lfd >= 0);
    assert_int_equal(
        sock_local_name(lfd, addr, sizeof(addr), lport, sizeof(lport)), 0);
    cfd = sock_connect_inet("localhost", lport, -1, err, sizeof(err));
    assert_true(cfd >= 0);
    close(cfd);
    close(lfd);
}

static void test_ipv6_and_mapped(void **state)
{
    char err[256], addr[64], port[16];
    struct sockaddr_in6 sin6;
    int lfd, cfd, afd, off = 0;

    lfd = sock_listen_inet("::1", "0", 4, err, sizeof(err));
    if (lfd < 0)
        skip(); /* no IPv6 loopback in this environment */
    assert_int_equal(
        sock_local_name(lfd, addr, sizeof(addr), port, sizeof(port)), 0);
    assert_string_equal(addr, "::1");
    cfd = sock_connect_inet("::1", port, 2000, err, sizeof(err));
    assert_true(cfd >= 0);
    afd = accept(lfd, NULL, NULL);
    assert_int_equal(
        sock_peer_name(afd, addr, sizeof(addr), port, sizeof(port)), 0);
    assert_string_equal(addr, "::1");
    close(afd);
    close(cfd);
    close(lfd);

    /* A dual-stack listener sees IPv4 clients as ::ffff:127.0.0.1. */
    lfd = socket(AF_INET6, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    assert_int_equal(
        setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)), 0);
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_addr = in6addr_any;
    assert_int_equal(bind(lfd, (struct sockaddr *)&sin6, sizeof(sin6)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(
        sock_local_name(lfd, addr, sizeof(addr), port, sizeof(port)), 0);
    cfd = sock_connect_inet("127.0.0.1", port, 2000, err, sizeof(err));
    assert_true(cfd >= 0);
    afd = accept(lfd, NULL, NULL);
    assert_int_equal(
        sock_peer_name(afd, addr, sizeof(addr), port, sizeof(port)), 0);
    assert_string_equal(addr, "127.0.0.1");
    close(afd);
    close(cfd);
    close(lfd);
}

static void test_unix(void **state)
{
    char err[256], addr[64], port[16], path[128];
    struct stat st;
    int lfd, cfd, afd;

    snprintf(path, sizeof(path), "%s/cleanup", dir);
    lfd = sock_listen_unix(path, 0622, 16, err, sizeof(err));
    assert_true(lfd >= 0);
    assert_true(cloexec(lfd));
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0622);
    cfd = sock_connect_unix(path, 2000, err, sizeof(err));
    assert_true(cfd >= 0);
    assert_true(cloexec(cfd));
    afd = accept(lfd, NULL, NULL);
    assert_true(afd >= 0);
    assert_int_equal(
        sock_peer_name(afd, addr, sizeof(addr), port, sizeof(port)), 0);
    assert_string_equal(addr, "local");
    assert_string_equal(port, "0");
    assert_int_equal(
        sock_local_name(cfd, addr, sizeof(addr), port, sizeof(port)), 0);
    assert_string_equal(addr, "local");
    close(afd);
    close(cfd);
    close(lfd);

    /* The socket file is stale now: nobody listens.  Connect fails... */
    assert_int_equal(sock_connect_unix(path, 500, err, sizeof(err)), -1);
    assert_non_null(strstr(err, path));
    assert_int_equal(sock_connect_unix(path, -1, err, sizeof(err)), -1);
    /* ...and a new listener replaces it. */
    lfd = sock_listen_unix(path, 0600, 16, err, sizeof(err));
    assert_true(lfd >= 0);
    cfd = sock_connect_unix(path, -1, err, sizeof(err));
    assert_true(cfd >= 0);
    close(cfd);
    close(lfd);
}

static void test_unix_errors(void **state)
{
    char err[256], path[256];
    FILE *f;

    /* A regular file is never taken for a stale socket. */
    snprintf(path, sizeof(path), "%s/regular", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(sock_listen_unix(path, 0600, 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not a socket"));
    assert_int_equal(access(path, F_OK), 0);
    /* Too long for sun_path. */
    memset(path, 'p', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = 0;
    assert_int_equal(sock_listen_unix(path, 0600, 1, err, sizeof(err)), -1);
    assert_int_equal(sock_connect_unix(path, 100, err, sizeof(err)), -1);
    /* Missing socket. */
    snprintf(path, sizeof(path), "%s/none", dir);
    assert_int_equal(sock_connect_unix(path, 100, err, sizeof(err)), -1);
}

static void test_flags(void **state)
{
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(sock_set_nonblock(sv[0], true), 0);
    assert_true(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
    assert_int_equal(sock_set_nonblock(sv[0], false), 0);
    assert_false(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
    assert_int_equal(sock_set_cloexec(sv[0], true), 0);
    assert_true(cloexec(sv[0]));
    assert_int_equal(sock_set_cloexec(sv[0], false), 0);
    assert_false(cloexec(sv[0]));
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(sock_set_nonblock(-1, true), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inet),
        cmocka_unit_test(test_inet_blocking_connect),
        cmocka_unit_test(test_ipv6_and_mapped),
        cmocka_unit_test_setup_teardown(test_unix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unix_errors, setup, teardown),
        cmocka_unit_test(test_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
