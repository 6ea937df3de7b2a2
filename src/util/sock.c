/*
 * sock - socket helpers.
 *
 * Given host/port strings from configuration (master.cf, main.cf) and
 * socket paths under the queue directory.  Every descriptor is created
 * close-on-exec so daemons never leak listeners into children they exec.
 * Connects are bounded by a timeout via a non-blocking connect and poll();
 * the returned descriptor is blocking again.  Failures return -1 with a
 * one-line reason in err that names the address, for the caller's log.
 */
#include "util/sock.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/str.h"

static void sock_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void sock_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    int saved = errno;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    errno = saved;
}

int sock_set_nonblock(int fd, bool on)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags < 0)
        return -1;
    flags = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
    return fcntl(fd, F_SETFL, flags) < 0 ? -1 : 0;
}

int sock_set_cloexec(int fd, bool on)
{
    int flags = fcntl(fd, F_GETFD);

    if (flags < 0)
        return -1;
    flags = on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC;
    return fcntl(fd, F_SETFD, flags) < 0 ? -1 : 0;
}

static long long sock_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * connect() bounded by deadline_ms (monotonic; <0 = none).  Unix sockets
 * answer EAGAIN when the listener's backlog is full instead of going
 * EINPROGRESS; that is retried briefly until the deadline.
 */
static int sock_connect_fd(int fd, const struct sockaddr *sa, socklen_t salen,
                           long long deadline_ms)
{
    struct pollfd pfd;
    socklen_t optlen;
    int soerr, n, wait_ms;

    if (deadline_ms < 0) {
        if (connect(fd, sa, salen) == 0)
            return 0;
        /* An interrupted connect goes on in the background: wait for it. */
        if (errno != EINTR)
            return -1;
    } else {
        if (sock_set_nonblock(fd, true) < 0)
            return -1;
        for (;;) {
            if (connect(fd, sa, salen) == 0)
                return sock_set_nonblock(fd, false);
            if (errno == EAGAIN && sa->sa_family == AF_UNIX) {
                if (sock_now_ms() >= deadline_ms) {
                    errno = ETIMEDOUT;
                    return -1;
                }
                poll(NULL, 0, 10);
                continue;
            }
            if (errno == EINPROGRESS || errno == EINTR)
                break;
            return -1;
        }
    }
    for (;;) {
        wait_ms = -1;
        if (deadline_ms >= 0) {
            long long left = deadline_ms - sock_now_ms();
            wait_ms = left > 0 ? (int)left : 0;
        }
        pfd.fd = fd;
        pfd.events = POLLOUT;
        pfd.revents = 0;
        n = poll(&pfd, 1, wait_ms);
        if (n > 0)
            break;
        if (n == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (errno != EINTR)
            return -1;
    }
    optlen = sizeof(soerr);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &optlen) < 0)
        return -1;
    if (soerr != 0) {
        errno = soerr;
        return -1;
    }
    return sock_set_nonblock(fd, false);
}

static int sock_unix_addr(const char *path, struct sockaddr_un *addr_un,
                          char *err, size_t errlen)
{
    memset(addr_un, 0, sizeof(*addr_un));
    addr_un->sun_family = AF_UNIX;
    if (str_lcpy(addr_un->sun_path, path, sizeof(addr_un->sun_path)) >=
        sizeof(addr_un->sun_path)) {
        errno = ENAMETOOLONG;
        sock_err(err, errlen, "socket path too long: %s", path);
        return -1;
    }
    return 0;
}

int sock_listen_inet(const char *host, const char *port, int backlog, char *err,
                     size_t errlen)
{
    struct addrinfo hints, *res, *ai;
    const char *node = host;
    char what[300];
    int fd = -1, on = 1, rc, saved = 0;

    if (node != NULL && (*node == 0 || strcmp(node, "*") == 0))
        node = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    if ((rc = getaddrinfo(node, port, &hints, &res)) != 0) {
        errno = EINVAL;
        sock_err(err, errlen, "cannot resolve %s:%s: %s", node ? node : "*",
                 port, gai_strerror(rc));
        return -1;
    }
    snprintf(what, sizeof(what), "%s:%s", node ? node : "*", port);
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            sock_err(err, errlen, "socket for %s: %s", what, strerror(errno));
            continue;
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
        /* One socket per address family keeps "::" and "0.0.0.0" apart. */
        if (ai->ai_family == AF_INET6)
            (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, backlog) == 0)
            break;
        saved = errno;
        sock_err(err, errlen, "bind/listen %s: %s", what, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        errno = saved ? saved : EADDRNOTAVAIL;
    return fd;
}

int sock_listen_unix(const char *path, int mode, int backlog, char *err,
                     size_t errlen)
{
    struct sockaddr_un addr_un;
    struct stat st;
    mode_t old_umask;
    int fd, rc;

    if (sock_unix_addr(path, &addr_un, err, errlen) < 0)
        return -1;
    /* Only a socket is "stale"; never remove a file put there by mistake. */
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            errno = EEXIST;
            sock_err(err, errlen, "%s exists and is not a socket", path);
            return -1;
        }
        if (unlink(path) < 0) {
            sock_err(err, errlen, "remove stale socket %s: %s", path,
                     strerror(errno));
            return -1;
        }
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        sock_err(err, errlen, "socket for %s: %s", path, strerror(errno));
        return -1;
    }
    /* Nobody may connect before the final mode is in place. */
    old_umask = umask(0077);
    rc = bind(fd, (struct sockaddr *)&addr_un, sizeof(addr_un));
    umask(old_umask);
    if (rc < 0) {
        sock_err(err, errlen, "bind %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (chmod(path, (mode_t)mode) < 0 || listen(fd, backlog) < 0) {
        sock_err(err, errlen, "chmod/listen %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int sock_connect_unix(const char *path, int timeout_ms, char *err,
                      size_t errlen)
{
    struct sockaddr_un addr_un;
    long long deadline = timeout_ms < 0 ? -1 : sock_now_ms() + timeout_ms;
    int fd;

    if (sock_unix_addr(path, &addr_un, err, errlen) < 0)
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        sock_err(err, errlen, "socket for %s: %s", path, strerror(errno));
        return -1;
    }
    if (sock_connect_fd(fd, (struct sockaddr *)&addr_un, sizeof(addr_un),
                        deadline) < 0) {
        sock_err(err, errlen, "connect to %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int sock_connect_inet(const char *host, const char *port, int timeout_ms,
                      char *err, size_t errlen)
{
    struct addrinfo hints, *res, *ai;
    long long deadline = timeout_ms < 0 ? -1 : sock_now_ms() + timeout_ms;
    int fd = -1, rc, saved = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
        errno = EINVAL;
        sock_err(err, errlen, "cannot resolve %s:%s: %s", host, port,
                 gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd >= 0 &&
            sock_connect_fd(fd, ai->ai_addr, ai->ai_addrlen, deadline) == 0)
            break;
        saved = errno;
        sock_err(err, errlen, "connect to %s:%s: %s", host, port,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
        if (deadline >= 0 && sock_now_ms() >= deadline)
            break;
    }
    freeaddrinfo(res);
    if (fd < 0)
        errno = saved ? saved : ECONNREFUSED;
    return fd;
}

static int sock_name(const struct sockaddr_storage *ss, socklen_t len,
                     char *addr, size_t addrlen, char *port, size_t portlen)
{
    struct sockaddr_in sin;
    const struct sockaddr *sa = (const struct sockaddr *)ss;
    const struct sockaddr_in6 *sin6;
    char host[NI_MAXHOST], serv[NI_MAXSERV];

    if (ss->ss_family == AF_UNIX) {
        str_lcpy(addr, "local", addrlen);
        str_lcpy(port, "0", portlen);
        return 0;
    }
    if (ss->ss_family == AF_INET6) {
        sin6 = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            memset(&sin, 0, sizeof(sin));
            sin.sin_family = AF_INET;
            sin.sin_port = sin6->sin6_port;
            memcpy(&sin.sin_addr, &sin6->sin6_addr.s6_addr[12], 4);
            sa = (const struct sockaddr *)&sin;
            len = sizeof(sin);
        }
    }
    if (getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        errno = EINVAL;
        return -1;
    }
    str_lcpy(addr, host, addrlen);
    str_lcpy(port, serv, portlen);
    return 0;
}

int sock_peer_name(int fd, char *addr, size_t addrlen, char *port,
                   size_t portlen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    memset(&ss, 0, sizeof(ss));
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    return sock_name(&ss, len, addr, addrlen, port, portlen);
}

int sock_local_name(int fd, char *addr, size_t addrlen, char *port,
                    size_t portlen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    memset(&ss, 0, sizeof(ss));
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    return sock_name(&ss, len, addr, addrlen, port, portlen);
}
