/*
 * sendmail_input - the caller's input as pieces of lines, for the message
 * reader and the -bs SMTP dialogue.
 *
 * Lines have no length limit here (a message may carry any line): a line
 * longer than SENDMAIL_PIECE_MAX comes in several pieces, flagged so the
 * caller knows where lines start and end, and memory stays bounded.  A
 * read returns whatever is there, so an interactive SMTP client gets its
 * answer without filling a buffer first.  Every wait is bounded by the
 * timeout given at open (poll); the input is the caller's, but -bs may be
 * a slow or stuck client.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sendmail/sendmail.h"
#include "util/mem.h"

struct sendmail_input {
    int fd;
    int timeout_ms;
    char *buf;
    size_t start, end; /* unread bytes are buf[start, end) */
    bool eof;
    bool line_start; /* the next piece starts a line */
};

struct sendmail_input *sendmail_input_open(int fd, int timeout_ms)
{
    struct sendmail_input *in = xcalloc(1, sizeof(*in));

    in->fd = fd;
    in->timeout_ms = timeout_ms;
    in->buf = xmalloc(SENDMAIL_PIECE_MAX);
    in->line_start = true;
    return in;
}

void sendmail_input_close(struct sendmail_input *in)
{
    if (in == NULL)
        return;
    free(in->buf);
    free(in);
}

/* Read more; returns PIECE_OK (maybe at EOF now), TIMEOUT or ERROR. */
static enum sendmail_piece sendmail_input_fill(struct sendmail_input *in)
{
    ssize_t n;

    if (in->start > 0) {
        memmove(in->buf, in->buf + in->start, in->end - in->start);
        in->end -= in->start;
        in->start = 0;
    }
    for (;;) {
        struct pollfd pfd = {.fd = in->fd, .events = POLLIN};
        int rc = poll(&pfd, 1, in->timeout_ms);

        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return PIECE_ERROR;
        if (rc == 0)
            return PIECE_TIMEOUT;
        n = read(in->fd, in->buf + in->end, SENDMAIL_PIECE_MAX - in->end);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return PIECE_ERROR;
        if (n == 0)
            in->eof = true;
        in->end += (size_t)n;
        return PIECE_OK;
    }
}

enum sendmail_piece sendmail_input_next(struct sendmail_input *in,
                                        const char **data, size_t *len,
                                        bool *line_start, bool *line_end)
{
    for (;;) {
        size_t avail = in->end - in->start;
        char *p = in->buf + in->start;
        char *nl = memchr(p, '\n', avail);
        size_t n = 0;

        if (nl != NULL) {
            n = (size_t)(nl - p) + 1;
            *line_end = true;
        } else if (avail == SENDMAIL_PIECE_MAX || (in->eof && avail > 0)) {
            n = avail;
            /* Keep a trailing CR with the LF that may follow it. */
            if (!in->eof && n > 1 && p[n - 1] == '\r')
                n--;
            *line_end = false;
        } else if (in->eof) {
            return PIECE_EOF;
        }
        if (n > 0) {
            *data = p;
            *len = n;
            *line_start = in->line_start;
            in->line_start = *line_end;
            in->start += n;
            return PIECE_OK;
        }
        enum sendmail_piece st = sendmail_input_fill(in);
        if (st != PIECE_OK)
            return st;
    }
}
