/*
 * cleanup_content - split message content into the primary header block
 * and the body, as it streams in.
 *
 * Input is the content smtpd sent: lines ending in "\n", cut into frames
 * at arbitrary places.  The header block is the lines up to the first
 * empty line or the first line that is neither a header ("Name:") nor a
 * continuation (leading blank) of one, as RFC 5322 and Postfix read it.
 * The block is held in memory (bounded by header_size_limit: once it
 * would grow past that, it ends there and everything after it is body,
 * so a huge or endless header cannot exhaust memory), then handed to the
 * headers callback, which writes the headers cleanup adds around it.
 * Body bytes pass straight through to the output callback unchanged.
 *
 * Trusts nothing in the content; keeps no more than the header block and
 * one partial line (itself bounded by the same limit).  Pure: no I/O.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup/cleanup.h"
#include "util/mem.h"

/* Longest Message-ID value we keep for the log line. */
#define CLEANUP_MSGID_MAX 998

struct cleanup_content {
    size_t limit;
    cleanup_out_fn out;
    cleanup_headers_fn headers;
    void *ctx;
    bool in_body;     /* header block complete */
    bool failed;      /* a callback said stop */
    struct buf line;  /* partial header-phase line */
    struct buf block; /* the header block so far */
    bool have_header; /* block holds at least one header */
    size_t cur_start; /* offset of the current header */
    enum cleanup_header_kind cur_kind;
    unsigned received;
    bool seen[HDR_FROM + 1];
    struct buf message_id;
    char last; /* last byte sent to out (0 = none) */
};

size_t cleanup_header_name_len(const char *line, size_t len)
{
    size_t i = 0, name;

    /* RFC 5322 field name: printable ASCII except ':' (no blanks). */
    while (i < len && line[i] > ' ' && line[i] < 0x7f && line[i] != ':')
        i++;
    name = i;
    if (name == 0)
        return 0;
    /* Obsolete syntax allows blanks before the colon; Postfix does too. */
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    return i < len && line[i] == ':' ? name : 0;
}

enum cleanup_header_kind cleanup_header_kind(const char *name, size_t len)
{
    static const struct {
        const char *name;
        enum cleanup_header_kind kind;
    } known[] = {
        {"received", HDR_RECEIVED},
        {"message-id", HDR_MESSAGE_ID},
        {"date", HDR_DATE},
        {"from", HDR_FROM},
    };

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strlen(known[i].name) == len &&
            strncasecmp(known[i].name, name, len) == 0)
            return known[i].kind;
    return HDR_OTHER;
}

struct cleanup_content *cleanup_content_new(size_t header_limit,
                                            cleanup_out_fn out,
                                            cleanup_headers_fn headers,
                                            void *ctx)
{
    struct cleanup_content *cc = xcalloc(1, sizeof(*cc));

    cc->limit = header_limit;
    cc->out = out;
    cc->headers = headers;
    cc->ctx = ctx;
    return cc;
}

void cleanup_content_free(struct cleanup_content *cc)
{
    if (cc == NULL)
        return;
    buf_free(&cc->line);
    buf_free(&cc->block);
    buf_free(&cc->message_id);
    free(cc);
}

static int emit(struct cleanup_content *cc, const char *data, size_t len)
{
    if (cc->failed)
        return -1;
    if (len == 0)
        return 0;
    cc->last = data[len - 1];
    if (cc->out(data, len, cc->ctx) < 0) {
        cc->failed = true;
        return -1;
    }
    return 0;
}

/* The current header is complete: remember what we need from it. */
static void close_header(struct cleanup_content *cc)
{
    const char *h, *v, *end;

    if (!cc->have_header || cc->cur_kind != HDR_MESSAGE_ID ||
        cc->message_id.len > 0)
        return;
    h = cc->block.data + cc->cur_start;
    end = cc->block.data + cc->block.len;
    v = memchr(h, ':', (size_t)(end - h));
    if (v == NULL)
        return;
    /* Unfold (line breaks vanish) and trim the blanks at both ends. */
    for (v++; v < end && (*v == ' ' || *v == '\t' || *v == '\n'); v++)
        ;
    for (; v < end && cc->message_id.len < CLEANUP_MSGID_MAX; v++)
        if (*v != '\n' && *v != '\r')
            buf_putc(&cc->message_id, *v);
    while (cc->message_id.len > 0 &&
           (cc->message_id.data[cc->message_id.len - 1] == ' ' ||
            cc->message_id.data[cc->message_id.len - 1] == '\t'))
        buf_truncate(&cc->message_id, cc->message_id.len - 1);
}

static int end_headers(struct cleanup_content *cc)
{
    close_header(cc);
    cc->in_body = true;
    if (cc->failed)
        return -1;
    if (cc->headers(cc, cc->ctx) < 0) {
        cc->failed = true;
        return -1;
    }
    return 0;
}

/* One complete line (with its "\n", except possibly at end of content). */
static int header_line(struct cleanup_content *cc, const char *p, size_t n)
{
    size_t name;

    if (cc->block.len + n > cc->limit)
        goto body; /* header block full: this and the rest are body */
    if (n == 0 || p[0] == '\n')
        goto body; /* the empty separator line belongs to the body */
    if ((p[0] == ' ' || p[0] == '\t') && cc->have_header) {
        buf_append(&cc->block, p, n);
        return 0;
    }
    if ((name = cleanup_header_name_len(p, n)) == 0)
        goto body;
    close_header(cc);
    cc->have_header = true;
    cc->cur_start = cc->block.len;
    cc->cur_kind = cleanup_header_kind(p, name);
    cc->seen[cc->cur_kind] = true;
    if (cc->cur_kind == HDR_RECEIVED)
        cc->received++;
    buf_append(&cc->block, p, n);
    return 0;

body:
    if (end_headers(cc) < 0)
        return -1;
    return emit(cc, p, n);
}

int cleanup_content_feed(struct cleanup_content *cc, const char *data,
                         size_t len)
{
    if (cc->failed)
        return -1;
    while (len > 0 && !cc->in_body) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) + 1 : len;

        if (nl == NULL) {
            buf_append(&cc->line, data, n);
            if (cc->block.len + cc->line.len > cc->limit) {
                /* An over-long line ends the header block. */
                if (end_headers(cc) < 0 ||
                    emit(cc, cc->line.data, cc->line.len) < 0)
                    return -1;
                buf_reset(&cc->line);
            }
            return 0;
        }
        if (cc->line.len > 0) {
            buf_append(&cc->line, data, n);
            if (header_line(cc, cc->line.data, cc->line.len) < 0)
                return -1;
            buf_reset(&cc->line);
        } else if (header_line(cc, data, n) < 0) {
            return -1;
        }
        data += n;
        len -= n;
    }
    return emit(cc, data, len);
}

int cleanup_content_finish(struct cleanup_content *cc)
{
    if (cc->failed)
        return -1;
    if (!cc->in_body) {
        /* A last header line without "\n": complete it. */
        if (cc->line.len > 0) {
            buf_putc(&cc->line, '\n');
            if (header_line(cc, cc->line.data, cc->line.len) < 0)
                return -1;
            buf_reset(&cc->line);
        }
        if (!cc->in_body && end_headers(cc) < 0)
            return -1;
        return 0;
    }
    /* Queue file content is lines; so is the last one. */
    if (cc->last != 0 && cc->last != '\n')
        return emit(cc, "\n", 1);
    return 0;
}

const struct buf *cleanup_content_header_block(const struct cleanup_content *cc)
{
    return &cc->block;
}

unsigned cleanup_content_received_count(const struct cleanup_content *cc)
{
    return cc->received;
}

bool cleanup_content_has(const struct cleanup_content *cc,
                         enum cleanup_header_kind kind)
{
    return cc->seen[kind];
}

const char *cleanup_content_message_id(const struct cleanup_content *cc)
{
    return buf_cstr(&cc->message_id);
}
