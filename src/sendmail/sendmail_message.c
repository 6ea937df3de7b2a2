/*
 * sendmail_message - one message from standard input into maildrop/, the
 * way Postfix's sendmail reads it.
 *
 *   - Leading "From " lines (an mbox envelope, also ">From ") are dropped.
 *   - CRLF line ends become LF when the first line ends in CRLF (Postfix
 *     decides once, on the first line, so binary content is left alone).
 *   - Without -i / -oi a line holding only "." ends the input.
 *   - The header block (up to the first empty line, or the first line
 *     that is not a header field, at most header_size_limit bytes) is kept
 *     in memory: -t takes the recipients from To:, Cc: and Bcc: (from
 *     Resent-To:, Resent-Cc:, Resent-Bcc: instead when the message has
 *     any Resent- recipient header), adding them to the command line's,
 *     and removes Bcc: (Resent-Bcc:); -F adds "From: Full Name <sender>"
 *     when the message has no From:.
 *   - The body goes to the file as it arrives; message_size_limit is
 *     checked here, so a message that is too big fails at once (EX_DATAERR)
 *     instead of bouncing later.
 *
 * Everything else (Date:, Message-ID:, a plain From:, alias expansion) is
 * cleanup's job, as for SMTP mail.  Exit status: 0 once the file is
 * durable; EX_USAGE no recipients, EX_NOUSER a recipient that is no
 * address, EX_DATAERR unreadable input or too big, EX_TEMPFAIL the queue
 * could not be written.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "global/mail_proto.h"
#include "sendmail/sendmail.h"
#include "util/mem.h"

enum crlf_mode { CRLF_UNKNOWN, CRLF_STRIP, CRLF_KEEP };

struct msg_reader {
    struct sendmail_input *in;
    bool dot_ends;
    bool skip_from;     /* still at the leading From_ lines */
    bool skipping_line; /* inside a From_ line being dropped */
    enum crlf_mode crlf;
    bool done; /* the lone "." was seen */
};

/* Does this line start an mbox "From " envelope (">From " too)? */
static bool is_from_line(const char *p, size_t n)
{
    size_t i = 0;

    while (i < n && p[i] == '>')
        i++;
    return n - i >= 5 && memcmp(p + i, "From ", 5) == 0;
}

/*
 * Next piece of the message, line ends normalised.  Returns 1 with a
 * piece, 0 at the end of the message, -1 on a read error.
 */
static int msg_next(struct msg_reader *r, const char **data, size_t *len,
                    bool *line_start, bool *line_end)
{
    for (;;) {
        enum sendmail_piece st;
        const char *p;
        size_t n;

        if (r->done)
            return 0;
        st = sendmail_input_next(r->in, &p, &n, line_start, line_end);
        if (st == PIECE_EOF)
            return 0;
        if (st != PIECE_OK)
            return -1;
        if (r->skipping_line) {
            r->skipping_line = !*line_end;
            continue;
        }
        if (r->skip_from && *line_start) {
            if (is_from_line(p, n)) {
                r->skipping_line = !*line_end;
                continue;
            }
            r->skip_from = false;
        }
        if (*line_end && r->crlf == CRLF_UNKNOWN)
            r->crlf = n >= 2 && p[n - 2] == '\r' ? CRLF_STRIP : CRLF_KEEP;
        if (*line_end && r->crlf == CRLF_STRIP && n >= 2 && p[n - 2] == '\r') {
            /* Drop the CR: the piece is in our buffer, so write the LF
             * over it. */
            ((char *)p)[n - 2] = '\n';
            n--;
        }
        if (r->dot_ends && *line_start && *line_end && n == 2 &&
            memcmp(p, ".\n", 2) == 0) {
            r->done = true;
            return 0;
        }
        *data = p;
        *len = n;
        return 1;
    }
}

/* Length of the field name if line starts a header field ("Name:"). */
static size_t header_name_len(const char *p, size_t n)
{
    size_t i = 0;

    while (i < n && p[i] > ' ' && p[i] < 0x7f && p[i] != ':')
        i++;
    return i > 0 && i < n && p[i] == ':' ? i : 0;
}

struct header_field {
    size_t start, end; /* in the header block, continuation lines included */
    size_t name_len;
};

struct header_block {
    struct buf text;
    struct header_field *f;
    size_t n, cap;
};

static void header_add_line(struct header_block *h, const char *p, size_t n)
{
    size_t name = header_name_len(p, n);

    if (name == 0 && h->n > 0) {
        h->f[h->n - 1].end += n; /* continuation */
    } else {
        if (h->n == h->cap) {
            h->cap = h->cap ? 2 * h->cap : 16;
            h->f = xreallocarray(h->f, h->cap, sizeof(*h->f));
        }
        h->f[h->n].start = h->text.len;
        h->f[h->n].end = h->text.len + n;
        h->f[h->n].name_len = name;
        h->n++;
    }
    buf_append(&h->text, p, n);
}

static bool header_is(const struct header_block *h, size_t i, const char *name)
{
    return h->f[i].name_len == strlen(name) &&
           strncasecmp(h->text.data + h->f[i].start, name, strlen(name)) == 0;
}

/* -t: the recipient fields, Resent- ones when there are any. */
static void header_recipients(const struct header_block *h, struct argv *out)
{
    static const char *const plain[] = {"To", "Cc", "Bcc", NULL};
    static const char *const resent[] = {"Resent-To", "Resent-Cc", "Resent-Bcc",
                                         NULL};
    const char *const *names = plain;

    for (size_t i = 0; i < h->n; i++)
        for (size_t k = 0; resent[k]; k++)
            if (header_is(h, i, resent[k]))
                names = resent;
    for (size_t i = 0; i < h->n; i++)
        for (size_t k = 0; names[k]; k++)
            if (header_is(h, i, names[k])) {
                size_t skip = h->f[i].name_len + 1;
                sendmail_addr_list(h->text.data + h->f[i].start + skip,
                                   h->f[i].end - h->f[i].start - skip, out);
            }
}

/* The header block as it goes out: Bcc: removed with -t, From: added. */
static void header_output(const struct header_block *h,
                          const struct sendmail_msg_opts *opts, struct buf *out)
{
    bool has_from = false;

    for (size_t i = 0; i < h->n; i++) {
        if (header_is(h, i, "From"))
            has_from = true;
        if (opts->extract &&
            (header_is(h, i, "Bcc") || header_is(h, i, "Resent-Bcc")))
            continue;
        buf_append(out, h->text.data + h->f[i].start,
                   h->f[i].end - h->f[i].start);
    }
    if (!has_from && opts->full_name != NULL && *opts->sender) {
        /* A quoted-string, so any character of the name is safe. */
        buf_puts(out, "From: \"");
        for (const char *p = opts->full_name; *p; p++) {
            if (*p == '\r' || *p == '\n')
                continue;
            if (*p == '"' || *p == '\\')
                buf_putc(out, '\\');
            buf_putc(out, *p);
        }
        buf_printf(out, "\" <%s>\n", opts->sender);
    }
}

/*
 * Read the header block.  *first_body gets the piece that ended it when
 * that piece is content (a non-header line); the empty separator line is
 * put into the block's `sep`.  Returns 1, 0 (end of message inside the
 * header block) or -1 (read error).
 */
static int read_headers(const struct sendmail_cfg *cfg, struct msg_reader *r,
                        struct header_block *h, struct buf *rest, bool *sep)
{
    const char *p;
    size_t n;
    bool ls, le;
    int rc;

    *sep = false;
    while ((rc = msg_next(r, &p, &n, &ls, &le)) > 0) {
        bool fits = (long long)(h->text.len + n) <= cfg->header_limit;

        if (ls && le && n == 1) {
            *sep = true;
            return 1;
        }
        /* Headers are whole lines, fields or continuations of one. */
        if (ls && le && fits &&
            (header_name_len(p, n) > 0 ||
             (h->n > 0 && (p[0] == ' ' || p[0] == '\t')))) {
            header_add_line(h, p, n);
            continue;
        }
        buf_append(rest, p, n);
        return 1;
    }
    return rc;
}

int sendmail_message(const struct sendmail_cfg *cfg,
                     struct sendmail_msg_opts *opts)
{
    struct msg_reader r = {0};
    struct header_block h = {BUF_INIT, NULL, 0, 0};
    struct buf first = BUF_INIT, head = BUF_INIT;
    struct argv found = ARGV_INIT;
    struct sendmail_drop *d;
    const char *p;
    size_t n;
    bool ls, le, sep;
    char err[512];
    int rc;

    r.in = sendmail_input_open(0, -1);
    r.dot_ends = opts->dot_ends;
    r.skip_from = true;
    rc = read_headers(cfg, &r, &h, &first, &sep);
    if (rc < 0)
        sendmail_fatal(EX_DATAERR, "error reading input: %s", strerror(errno));

    if (opts->extract) {
        header_recipients(&h, &found);
        for (size_t i = 0; i < found.n; i++) {
            const char *why;
            char *a = sendmail_addr_internal(cfg, found.v[i], false, &why);
            if (a == NULL)
                sendmail_fatal(EX_NOUSER,
                               "bad recipient address <%s> in "
                               "message header: %s",
                               found.v[i], why);
            argv_add(&opts->rcpts, a);
            free(a);
        }
    }
    if (opts->rcpts.n == 0)
        sendmail_fatal(EX_USAGE, opts->extract
                                     ? "no recipient addresses found in "
                                       "message header"
                                     : "no recipients specified");
    if (opts->rcpts.n > MAIL_MAILDROP_RCPT_MAX)
        sendmail_fatal(EX_USAGE, "too many recipients (%zu; at most %d)",
                       opts->rcpts.n, MAIL_MAILDROP_RCPT_MAX);

    d = sendmail_drop_open(cfg, opts->sender, &opts->rcpts, err, sizeof(err));
    if (d == NULL)
        sendmail_fatal(EX_TEMPFAIL, "queue file write error: %s", err);
    header_output(&h, opts, &head);
    sendmail_drop_write(d, head.data, head.len);
    if (sep)
        sendmail_drop_write(d, "\n", 1);
    sendmail_drop_write(d, first.data, first.len);
    while ((rc = msg_next(&r, &p, &n, &ls, &le)) > 0) {
        sendmail_drop_write(d, p, n);
        if (cfg->size_limit > 0 && sendmail_drop_size(d) > cfg->size_limit) {
            sendmail_drop_abort(d);
            sendmail_fatal(EX_DATAERR,
                           "message file too big (message_size_limit is "
                           "%lld bytes)",
                           cfg->size_limit);
        }
    }
    if (rc < 0) {
        sendmail_drop_abort(d);
        sendmail_fatal(EX_DATAERR, "error reading input: %s", strerror(errno));
    }
    if (cfg->size_limit > 0 && sendmail_drop_size(d) > cfg->size_limit) {
        sendmail_drop_abort(d);
        sendmail_fatal(EX_DATAERR,
                       "message file too big (message_size_limit is %lld "
                       "bytes)",
                       cfg->size_limit);
    }
    if (sendmail_drop_commit(d, err, sizeof(err)) < 0)
        sendmail_fatal(EX_TEMPFAIL, "queue file write error: %s", err);

    sendmail_input_close(r.in);
    buf_free(&h.text);
    free(h.f);
    buf_free(&first);
    buf_free(&head);
    argv_free(&found);
    return 0;
}
