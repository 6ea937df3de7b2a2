/*
 * stream - buffered, line-oriented I/O on a file descriptor with timeouts.
 *
 * Given a connected descriptor (socket, pipe or file) by its owner.  Trusts
 * nothing it reads: lines are bounded by the caller's maximum and an
 * over-long line is drained in read-buffer-sized chunks, so a peer cannot
 * make us hold more than max+1 bytes of it.  Talks to the kernel through
 * struct stream_ops (default: recv/send with MSG_DONTWAIT|MSG_NOSIGNAL on
 * sockets so a vanished peer gives EPIPE instead of SIGPIPE and a blocking
 * descriptor never blocks past the timeout; read/write otherwise), and
 * waits with poll() for at most timeout_ms of silence per wait.
 *
 * Failure model: EOF, timeout and I/O errors are sticky per direction.  A
 * read timeout does not poison the write side, so a server can still send
 * "421 timeout" after a silent client; stream_status() reports the first
 * error of either side.
 */
#include "util/stream.h"
#include "util/log.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/mem.h"
#include "util/str.h"

#define STREAM_RBUF_SIZE (16 * 1024)
/* Pending output beyond this is written out without waiting for a flush. */
#define STREAM_WBUF_FLUSH (64 * 1024)

struct stream {
    int fd;
    bool is_socket;
    int timeout_ms;
    const struct stream_ops *ops;
    void *ctx;
    char *rbuf;
    size_t rpos; /* next unread byte */
    size_t rlen; /* end of valid data */
    struct buf wbuf;
    enum stream_status rstatus; /* sticky, read side */
    enum stream_status wstatus; /* sticky, write side */
    enum stream_status first;   /* first error of either side */
    char errtext[128];
};

static ssize_t stream_fd_read(struct stream *s, void *ctx, void *buf,
                              size_t len, bool *want_write)
{
    *want_write = false;
    if (s->is_socket)
        return recv(s->fd, buf, len, MSG_DONTWAIT);
    return read(s->fd, buf, len);
}

static ssize_t stream_fd_write(struct stream *s, void *ctx, const void *buf,
                               size_t len, bool *want_write)
{
    *want_write = true;
    if (s->is_socket)
        return send(s->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    return write(s->fd, buf, len);
}

static const struct stream_ops stream_fd_ops = {
    stream_fd_read,
    stream_fd_write,
    NULL,
};

struct stream *stream_open(int fd)
{
    struct stream *s = xcalloc(1, sizeof(*s));
    struct stat st;

    s->fd = fd;
    s->is_socket = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
    s->timeout_ms = -1;
    s->ops = &stream_fd_ops;
    s->rbuf = xmalloc(STREAM_RBUF_SIZE);
    buf_init(&s->wbuf);
    return s;
}

void stream_close(struct stream *s)
{
    if (s == NULL)
        return;
    /* Best effort: output the caller queued but did not flush. */
    if (s->wbuf.len > 0 && s->wstatus == STREAM_OK && s->fd >= 0)
        (void)stream_flush(s);
    if (s->fd >= 0)
        close(s->fd);
    buf_free(&s->wbuf);
    free(s->rbuf);
    free(s);
}

int stream_release_fd(struct stream *s)
{
    int fd = s->fd;

    s->fd = -1;
    return fd;
}

int stream_fd(const struct stream *s)
{
    return s->fd;
}

void stream_set_timeout(struct stream *s, int timeout_ms)
{
    s->timeout_ms = timeout_ms;
}

void stream_set_ops(struct stream *s, const struct stream_ops *ops, void *ctx)
{
    s->ops = ops ? ops : &stream_fd_ops;
    s->ctx = ops ? ctx : NULL;
}

static void stream_fail(struct stream *s, bool writing, enum stream_status st,
                        const char *text)
{
    enum stream_status *side = writing ? &s->wstatus : &s->rstatus;

    if (*side == STREAM_OK)
        *side = st;
    if (s->first == STREAM_OK) {
        s->first = st;
        str_lcpy(s->errtext, text, sizeof(s->errtext));
    }
}

static long long stream_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is readable/writable; OK, TIMEOUT or ERROR (errno set). */
static enum stream_status stream_wait(struct stream *s, bool for_write)
{
    struct pollfd pfd;
    long long deadline = 0, left;
    int n, wait_ms;

    if (s->fd < 0) {
        errno = EBADF;
        return STREAM_ERROR;
    }
    if (s->timeout_ms >= 0)
        deadline = stream_now_ms() + s->timeout_ms;
    for (;;) {
        wait_ms = -1;
        if (s->timeout_ms >= 0) {
            left = deadline - stream_now_ms();
            wait_ms = left > 0 ? (int)left : 0;
        }
        pfd.fd = s->fd;
        pfd.events = for_write ? POLLOUT : POLLIN;
        pfd.revents = 0;
        n = poll(&pfd, 1, wait_ms);
        if (n > 0) {
            if (pfd.revents & POLLNVAL) {
                errno = EBADF;
                return STREAM_ERROR;
            }
            /* POLLHUP/POLLERR: let the read or write report what it is. */
            return STREAM_OK;
        }
        if (n == 0)
            return STREAM_TIMEOUT;
        if (errno != EINTR)
            return STREAM_ERROR;
    }
}

/* Refill the empty read buffer with at least one byte. */
static enum stream_status stream_fill(struct stream *s)
{
    bool want_write = false, need_wait;
    enum stream_status st;
    ssize_t n;

    if (s->rstatus != STREAM_OK)
        return s->rstatus;
    s->rpos = s->rlen = 0;
    need_wait = !(s->ops->pending && s->ops->pending(s, s->ctx) > 0);
    for (;;) {
        if (need_wait) {
            st = stream_wait(s, want_write);
            if (st == STREAM_TIMEOUT) {
                stream_fail(s, false, st, "timeout");
                return st;
            }
            if (st != STREAM_OK) {
                stream_fail(s, false, st, strerror(errno));
                return st;
            }
        }
        n = s->ops->read(s, s->ctx, s->rbuf, STREAM_RBUF_SIZE, &want_write);
        if (n > 0) {
            s->rlen = (size_t)n;
            return STREAM_OK;
        }
        if (n == 0) {
            stream_fail(s, false, STREAM_EOF, "lost connection");
            return STREAM_EOF;
        }
        if (errno == EINTR) {
            need_wait = false;
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            need_wait = true;
            continue;
        }
        stream_fail(s, false, STREAM_ERROR, strerror(errno));
        return STREAM_ERROR;
    }
}

enum stream_status stream_read_line(struct stream *s, struct buf *line,
                                    size_t max, bool *had_crlf)
{
    /* Keep max+1 bytes so a trailing "\r" can still be told apart. */
    size_t keep = max == SIZE_MAX ? max : max + 1;
    size_t total = 0, avail, take, content;
    enum stream_status st;
    char *nl, last = 0;
    bool crlf;

    buf_reset(line);
    if (had_crlf)
        *had_crlf = false;
    for (;;) {
        if (s->rpos == s->rlen && (st = stream_fill(s)) != STREAM_OK)
            return st;
        avail = s->rlen - s->rpos;
        nl = memchr(s->rbuf + s->rpos, '\n', avail);
        take = nl ? (size_t)(nl - (s->rbuf + s->rpos)) : avail;
        if (take > 0) {
            size_t room = keep - line->len;
            buf_append(line, s->rbuf + s->rpos, take < room ? take : room);
            last = s->rbuf[s->rpos + take - 1];
            total = total > SIZE_MAX - take ? SIZE_MAX : total + take;
        }
        s->rpos += take;
        if (nl) {
            s->rpos++;
            break;
        }
    }
    crlf = total > 0 && last == '\r';
    content = total - crlf;
    if (had_crlf)
        *had_crlf = crlf;
    if (content > max) {
        buf_truncate(line, max);
        return STREAM_TOOLONG;
    }
    buf_truncate(line, content);
    return STREAM_OK;
}

enum stream_status stream_read_exact(struct stream *s, struct buf *out,
                                     size_t len)
{
    enum stream_status st;
    size_t take;

    while (len > 0) {
        if (s->rpos == s->rlen && (st = stream_fill(s)) != STREAM_OK)
            return st;
        take = s->rlen - s->rpos;
        if (take > len)
            take = len;
        buf_append(out, s->rbuf + s->rpos, take);
        s->rpos += take;
        len -= take;
    }
    return STREAM_OK;
}

enum stream_status stream_read_some(struct stream *s, struct buf *out,
                                    size_t max)
{
    enum stream_status st;
    size_t take;

    if (max == 0)
        return s->rstatus;
    if (s->rpos == s->rlen && (st = stream_fill(s)) != STREAM_OK)
        return st;
    take = s->rlen - s->rpos;
    if (take > max)
        take = max;
    buf_append(out, s->rbuf + s->rpos, take);
    s->rpos += take;
    return STREAM_OK;
}

size_t stream_read_pending(const struct stream *s)
{
    size_t n = s->rlen - s->rpos;

    if (s->ops->pending)
        n += s->ops->pending((struct stream *)s, s->ctx);
    return n;
}

size_t stream_buffered(const struct stream *s, const char **data)
{
    *data = s->rbuf + s->rpos;
    return s->rlen - s->rpos;
}

void stream_skip(struct stream *s, size_t n)
{
    if (n > s->rlen - s->rpos)
        log_panic("stream_skip: %zu bytes, %zu buffered", n, s->rlen - s->rpos);
    s->rpos += n;
}

void stream_write(struct stream *s, const void *data, size_t len)
{
    if (s->wstatus != STREAM_OK)
        return;
    buf_append(&s->wbuf, data, len);
    if (s->wbuf.len >= STREAM_WBUF_FLUSH)
        (void)stream_flush(s);
}

void stream_puts(struct stream *s, const char *str)
{
    stream_write(s, str, strlen(str));
}

void stream_printf(struct stream *s, const char *fmt, ...)
{
    va_list ap;

    if (s->wstatus != STREAM_OK)
        return;
    va_start(ap, fmt);
    buf_vprintf(&s->wbuf, fmt, ap);
    va_end(ap);
    if (s->wbuf.len >= STREAM_WBUF_FLUSH)
        (void)stream_flush(s);
}

enum stream_status stream_flush(struct stream *s)
{
    size_t done = 0;
    bool want_write = true, need_wait = false;
    enum stream_status st = STREAM_OK;
    ssize_t n;

    while (s->wstatus == STREAM_OK && done < s->wbuf.len) {
        if (need_wait) {
            st = stream_wait(s, want_write);
            if (st == STREAM_TIMEOUT) {
                stream_fail(s, true, st, "timeout");
                break;
            }
            if (st != STREAM_OK) {
                stream_fail(s, true, st, strerror(errno));
                break;
            }
        }
        n = s->ops->write(s, s->ctx, s->wbuf.data + done, s->wbuf.len - done,
                          &want_write);
        if (n > 0) {
            done += (size_t)n;
            need_wait = false;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            need_wait = true;
            continue;
        }
        stream_fail(s, true, STREAM_ERROR,
                    n == 0 ? "write returned zero" : strerror(errno));
    }
    /* After a write error the rest can never be delivered: drop it. */
    if (s->wstatus != STREAM_OK)
        buf_reset(&s->wbuf);
    else
        buf_consume(&s->wbuf, done);
    return s->wstatus;
}

enum stream_status stream_status(const struct stream *s)
{
    return s->first;
}

const char *stream_error(const struct stream *s)
{
    return s->first == STREAM_OK ? "" : s->errtext;
}
