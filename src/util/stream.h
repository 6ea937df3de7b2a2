/*
 * stream - buffered, line-oriented I/O on a file descriptor with timeouts.
 *
 * Protocol code reads whole lines or exact byte counts and never sees a
 * partial read.  Every read and write waits at most `timeout_ms` (poll) for
 * the peer; a timeout, EOF or I/O error is sticky and reported through the
 * return value and stream_error().  The transport is pluggable through
 * struct stream_ops so TLS (later) slots underneath without protocol code
 * noticing: the default ops are read(2)/write(2) on the fd.
 *
 * Output is buffered until stream_flush() (or the buffer fills), which lets
 * an SMTP server answer a pipelined group of commands in one write.
 */
#ifndef UTIL_STREAM_H
#define UTIL_STREAM_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/buf.h"

struct stream;

/*
 * Transport operations.  read/write return bytes moved, 0 on EOF (read), or
 * -1 with errno; EAGAIN/EWOULDBLOCK make the stream poll for `*want_write`
 * (false = readable, true = writable) and retry until the timeout.
 */
struct stream_ops {
    ssize_t (*read)(struct stream *s, void *ctx, void *buf, size_t len,
                    bool *want_write);
    ssize_t (*write)(struct stream *s, void *ctx, const void *buf, size_t len,
                     bool *want_write);
    /* Bytes already decrypted and waiting inside the transport (TLS). */
    size_t (*pending)(struct stream *s, void *ctx);
};

enum stream_status {
    STREAM_OK = 0,
    STREAM_EOF,      /* peer closed */
    STREAM_TIMEOUT,  /* no progress within timeout_ms */
    STREAM_ERROR,    /* I/O error, errno-style text in stream_error() */
    STREAM_TOOLONG,  /* line longer than the limit (see stream_read_line) */
};

struct stream *stream_open(int fd);
/* Closes the fd too (unless stream_release_fd was called). */
void stream_close(struct stream *s);
/* Forget the fd so stream_close will not close it; returns it. */
int stream_release_fd(struct stream *s);
int stream_fd(const struct stream *s);

void stream_set_timeout(struct stream *s, int timeout_ms); /* <0: forever */
void stream_set_ops(struct stream *s, const struct stream_ops *ops, void *ctx);

/*
 * Read one line terminated by "\n" into `line` (reset first).  The line
 * terminator ("\n" or "\r\n") is stripped; *had_crlf says which one.
 * If the line exceeds max bytes (terminator excluded) the rest of it is
 * read and discarded and STREAM_TOOLONG is returned (the stream stays
 * usable), with the first max bytes in `line`.
 * had_crlf may be NULL.
 */
enum stream_status stream_read_line(struct stream *s, struct buf *line,
                                    size_t max, bool *had_crlf);
/* Read exactly len bytes, appended to out. */
enum stream_status stream_read_exact(struct stream *s, struct buf *out,
                                     size_t len);
/* Read whatever is available (at least 1 byte, at most max), appended. */
enum stream_status stream_read_some(struct stream *s, struct buf *out,
                                    size_t max);
/* Bytes already buffered for reading (e.g. pipelined commands). */
size_t stream_read_pending(const struct stream *s);
/*
 * The bytes read ahead and not taken yet, without any I/O: *data and the
 * count (0 when none).  stream_skip() then takes n <= count of them.
 */
size_t stream_buffered(const struct stream *s, const char **data);
void stream_skip(struct stream *s, size_t n);

/* Buffered writes; errors are sticky and reported by stream_flush(). */
void stream_write(struct stream *s, const void *data, size_t len);
void stream_puts(struct stream *s, const char *str);
void stream_printf(struct stream *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
enum stream_status stream_flush(struct stream *s);

/* First error seen (STREAM_OK if none) and a human-readable text. */
enum stream_status stream_status(const struct stream *s);
const char *stream_error(const struct stream *s);

#endif
