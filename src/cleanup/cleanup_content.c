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
 * Each complete header can first go through a check hook
 * (header_checks: cleanup_content_set_check), which may drop it, replace
 * it or put lines before it; the limit counts the headers as received.
 * Return-Path:, Bcc:, Resent-Bcc: and Content-Length: are then removed,
 * as Postfix's cleanup removes them (the checks still see them).
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
    struct buf block; /* the header block so far, as it will be written */
    struct buf cur;   /* the header being read (not yet in block) */
    size_t in_bytes;  /* header bytes received (the limit's measure) */
    cleanup_check_fn check;
    void *check_ctx;
    struct buf prepend;
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
    buf_free(&cc->cur);
    buf_free(&cc->prepend);
    buf_free(&cc->message_id);
    free(cc);
}

void cleanup_content_set_check(struct cleanup_content *cc,
                               cleanup_check_fn check, void *ctx)
{
    cc->check = check;
    cc->check_ctx = ctx;
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

/*
 * Headers cleanup removes: Return-Path: is the delivery agent's to write,
 * the Bcc: headers must not reveal blind copies, and a Content-Length:
 * is wrong once headers change.
 */
static bool header_removed(const char *h, size_t len)
{
    static const char *const names[] = {"return-path", "bcc", "resent-bcc",
                                        "content-length"};
    size_t name = cleanup_header_name_len(h, len);

    for (size_t i = 0; name > 0 && i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == name && strncasecmp(names[i], h, name) == 0)
            return true;
    return false;
}

/* Note what cleanup needs from a header that is kept (h, len). */
static void note_header(struct cleanup_content *cc, const char *h, size_t len)
{
    size_t name = cleanup_header_name_len(h, len);
    enum cleanup_header_kind kind = cleanup_header_kind(h, name);
    const char *v, *end = h + len;

    if (name == 0)
        return;
    cc->seen[kind] = true;
    if (kind == HDR_RECEIVED)
        cc->received++;
    if (kind != HDR_MESSAGE_ID || cc->message_id.len > 0)
        return;
    v = memchr(h, ':', len);
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

/*
 * The current header is complete: check it, then keep what the check
 * left (lines it prepends first).  -1 when the check said stop.
 */
static int close_header(struct cleanup_content *cc)
{
    int rc = CLEANUP_KEEP;

    if (cc->cur.len == 0)
        return 0;
    buf_reset(&cc->prepend);
    if (cc->check != NULL)
        rc = cc->check(cc->check_ctx, CLEANUP_PART_PRIMARY, &cc->cur,
                       &cc->prepend);
    if (rc < 0) {
        buf_reset(&cc->cur);
        cc->failed = true;
        return -1;
    }
    buf_append(&cc->block, cc->prepend.data, cc->prepend.len);
    if (rc == CLEANUP_KEEP && !header_removed(cc->cur.data, cc->cur.len)) {
        note_header(cc, cc->cur.data, cc->cur.len);
        buf_append(&cc->block, cc->cur.data, cc->cur.len);
    }
    buf_reset(&cc->cur);
    return 0;
}

static int end_headers(struct cleanup_content *cc)
{
    cc->in_body = true;
    if (close_header(cc) < 0 || cc->failed)
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
    if (cc->in_bytes + n > cc->limit)
        goto body; /* header block full: this and the rest are body */
    if (n == 0 || p[0] == '\n')
        goto body; /* the empty separator line belongs to the body */
    if ((p[0] == ' ' || p[0] == '\t') && cc->cur.len > 0) {
        buf_append(&cc->cur, p, n);
        cc->in_bytes += n;
        return 0;
    }
    if (cleanup_header_name_len(p, n) == 0)
        goto body;
    if (close_header(cc) < 0)
        return -1;
    buf_append(&cc->cur, p, n);
    cc->in_bytes += n;
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
            if (cc->in_bytes + cc->line.len > cc->limit) {
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
