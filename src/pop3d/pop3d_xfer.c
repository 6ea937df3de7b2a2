/*
 * pop3d_xfer - a Maildir message in POP3's transfer form (RFC 1939
 * section 3): CRLF line ends, dot-stuffing, and TOP's "header plus n
 * body lines".
 *
 * Given the bytes of a message file in chunks of any size; trusts
 * nothing about them: LF or CRLF line ends, bare CRs (kept as content),
 * a last line without a newline, a message without a body or without
 * the empty line all come out as well-formed multi-line responses.  The
 * state is a handful of flags, so a 10 MB message streams through in
 * constant memory.  The same code counts the size that LIST and STAT
 * report (dot-stuffing excluded, as in Dovecot), so the octet counts
 * match what RETR sends.  Pure apart from pop3d_xfer_size's read(2).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "pop3d/pop3d.h"

/* Read size for counting and sending. */
#define POP3D_XFER_CHUNK (64 * 1024)

void pop3d_xfer_init(struct pop3d_xfer *x, long long body_max, bool dot_stuff,
                     pop3d_sink_fn sink, void *ctx)
{
    memset(x, 0, sizeof(*x));
    x->sink = sink;
    x->ctx = ctx;
    x->dot_stuff = dot_stuff;
    x->body_max = body_max;
    x->bol = true;
    x->line_empty = true;
}

static void xfer_emit(struct pop3d_xfer *x, const char *data, size_t len)
{
    x->sink(x->ctx, data, len);
    x->out += (long long)len;
}

static void xfer_content(struct pop3d_xfer *x, const char *data, size_t len)
{
    if (x->bol && x->dot_stuff && data[0] == '.')
        x->sink(x->ctx, ".", 1);
    xfer_emit(x, data, len);
    x->bol = false;
    x->line_empty = false;
}

static void xfer_line_end(struct pop3d_xfer *x)
{
    xfer_emit(x, "\r\n", 2);
    if (!x->in_body) {
        if (x->line_empty)
            x->in_body = true; /* the empty line ends the header */
    } else {
        x->body_lines++;
    }
    x->bol = true;
    x->line_empty = true;
}

bool pop3d_xfer_feed(struct pop3d_xfer *x, const char *data, size_t len)
{
    size_t i = 0;

    while (i < len && !x->done) {
        char c = data[i];

        if (x->bol && x->in_body && x->body_max >= 0 &&
            x->body_lines >= x->body_max) {
            x->done = true;
            break;
        }
        if (x->cr_pending) {
            x->cr_pending = false;
            if (c == '\n') {
                xfer_line_end(x);
                i++;
            } else {
                xfer_content(x, "\r", 1); /* a bare CR is content */
            }
            continue;
        }
        if (c == '\n') {
            xfer_line_end(x);
            i++;
        } else if (c == '\r') {
            x->cr_pending = true;
            i++;
        } else {
            size_t j = i;

            while (j < len && data[j] != '\r' && data[j] != '\n')
                j++;
            xfer_content(x, data + i, j - i);
            i = j;
        }
    }
    return !x->done;
}

void pop3d_xfer_finish(struct pop3d_xfer *x)
{
    if (x->done)
        return;
    if (x->bol && x->in_body && x->body_max >= 0 &&
        x->body_lines >= x->body_max) {
        x->done = true;
        return;
    }
    if (x->cr_pending) {
        x->cr_pending = false;
        xfer_content(x, "\r", 1);
    }
    if (!x->bol)
        xfer_line_end(x);
    x->done = true;
}

static void xfer_discard(void *ctx, const char *data, size_t len)
{
    (void)ctx;
    (void)data;
    (void)len;
}

long long pop3d_xfer_size(int fd)
{
    static char chunk[POP3D_XFER_CHUNK];
    struct pop3d_xfer x;
    ssize_t n;

    if (lseek(fd, 0, SEEK_SET) < 0)
        return -1;
    pop3d_xfer_init(&x, -1, false, xfer_discard, NULL);
    for (;;) {
        n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        (void)pop3d_xfer_feed(&x, chunk, (size_t)n);
    }
    pop3d_xfer_finish(&x);
    return x.out;
}
