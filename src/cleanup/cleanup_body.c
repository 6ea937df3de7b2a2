/*
 * cleanup_body - the message body, line by line, for the content checks:
 * the MIME structure (RFC 2045/2046: multipart boundaries, message/rfc822
 * attachments), the header blocks of MIME parts and attached messages
 * (each header checked as a whole, like the primary ones), and body
 * lines (checked up to body_checks_size_limit bytes of each segment).
 * Like Postfix's mime_state, nothing is decoded: rules match the text as
 * it is in the message.
 *
 * Everything in here is untrusted message text, so every buffer is
 * bounded: a body line is checked in pieces of at most line_max bytes
 * (Postfix's line_length_limit; the pieces are written out joined again),
 * a header block inside the body ends at header_max bytes (what follows
 * is body), and nesting deeper than CLEANUP_MIME_DEPTH_MAX is plain body.
 * The structure is read from the headers as they came, before any check
 * changed them, as Postfix does.  Output goes to out in order.  Pure: no
 * I/O of its own.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup/cleanup.h"
#include "util/mem.h"

/* Content-Type values longer than this are not looked into. */
#define CLEANUP_CTYPE_MAX 4096

enum body_state { BS_BODY, BS_HEADERS };

struct cleanup_body {
    struct cleanup_body_limits lim;
    cleanup_check_fn check;
    void *check_ctx;
    int (*out)(const char *data, size_t len, void *ctx);
    void *out_ctx;
    bool failed;
    struct buf line; /* input line not yet complete */
    bool line_cont;  /* the line continues a piece already passed on */
    enum body_state state;
    enum cleanup_part part;  /* of the header block being read */
    struct buf hdr;          /* the header being read */
    size_t block_bytes;      /* of the header block being read */
    struct cleanup_ctype ct; /* of the header block being read */
    char *bounds[CLEANUP_MIME_DEPTH_MAX];
    size_t nbounds;
    size_t seg_bytes; /* body bytes of the current segment so far */
    bool nested_next; /* the message is message/rfc822: after the first
                         (separator) line come the inner headers */
    struct buf text;
    struct buf prepend;
};

/* ---- Content-Type ---- */

static bool is_wsp(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* A token or quoted-string value at *pp into out (bounded); advances. */
static void param_value(const char **pp, struct buf *out)
{
    const char *p = *pp;

    buf_reset(out);
    if (*p == '"') {
        for (p++; *p != 0 && *p != '"'; p++) {
            if (*p == '\\' && p[1] != 0)
                p++;
            if (out->len <= CLEANUP_BOUNDARY_MAX)
                buf_putc(out, *p);
        }
        if (*p == '"')
            p++;
    } else {
        for (; *p != 0 && *p != ';' && !is_wsp(*p); p++)
            if (out->len <= CLEANUP_BOUNDARY_MAX)
                buf_putc(out, *p);
    }
    *pp = p;
}

void cleanup_ctype_note(struct cleanup_ctype *ct, const char *hdr, size_t len)
{
    struct buf v = BUF_INIT, val = BUF_INIT;
    size_t name = cleanup_header_name_len(hdr, len);
    const char *p, *type, *sub;
    size_t tlen, slen;

    if (name != 12 || strncasecmp(hdr, "Content-Type", 12) != 0)
        return;
    p = memchr(hdr, ':', len);
    cleanup_header_unfold(&v, p + 1, len - (size_t)(p + 1 - hdr),
                          CLEANUP_CTYPE_MAX);
    memset(ct, 0, sizeof(*ct));
    p = buf_cstr(&v);
    while (is_wsp(*p))
        p++;
    type = p;
    while (*p != 0 && *p != '/' && *p != ';' && !is_wsp(*p))
        p++;
    tlen = (size_t)(p - type);
    sub = *p == '/' ? ++p : p;
    while (*p != 0 && *p != ';' && !is_wsp(*p))
        p++;
    slen = (size_t)(p - sub);
    if (tlen == 7 && strncasecmp(type, "message", 7) == 0 && slen == 6 &&
        strncasecmp(sub, "rfc822", 6) == 0) {
        ct->kind = CLEANUP_CT_MESSAGE;
    } else if (tlen == 9 && strncasecmp(type, "multipart", 9) == 0) {
        /* ; name=value ... : the boundary parameter. */
        while ((p = strchr(p, ';')) != NULL) {
            const char *pn, *pe;

            for (p++; is_wsp(*p); p++)
                ;
            pn = p;
            while (*p != 0 && *p != '=' && *p != ';' && !is_wsp(*p))
                p++;
            pe = p;
            while (is_wsp(*p))
                p++;
            if (*p != '=')
                continue;
            for (p++; is_wsp(*p); p++)
                ;
            param_value(&p, &val);
            if (pe - pn == 8 && strncasecmp(pn, "boundary", 8) == 0 &&
                val.len > 0 && val.len <= CLEANUP_BOUNDARY_MAX &&
                memchr(val.data, 0, val.len) == NULL) {
                ct->kind = CLEANUP_CT_MULTIPART;
                memcpy(ct->boundary, val.data, val.len);
                ct->boundary[val.len] = 0;
                break;
            }
        }
    }
    buf_free(&v);
    buf_free(&val);
}

/* ---- output ---- */

static int body_emit(struct cleanup_body *b, const char *data, size_t len)
{
    if (b->failed)
        return -1;
    if (len > 0 && b->out(data, len, b->out_ctx) < 0) {
        b->failed = true;
        return -1;
    }
    return 0;
}

/* Run the check on text (in b->text), write prepend and the kept text. */
static int body_check_emit(struct cleanup_body *b, enum cleanup_part part,
                           bool check, const char *tail)
{
    int rc = CLEANUP_KEEP;

    buf_reset(&b->prepend);
    if (check && b->check != NULL)
        rc = b->check(b->check_ctx, part, &b->text, &b->prepend);
    if (rc < 0) {
        b->failed = true;
        return -1;
    }
    if (body_emit(b, b->prepend.data, b->prepend.len) < 0)
        return -1;
    if (rc == CLEANUP_KEEP && (body_emit(b, b->text.data, b->text.len) < 0 ||
                               body_emit(b, tail, strlen(tail)) < 0))
        return -1;
    return 0;
}

/* ---- header blocks inside the body ---- */

static int header_flush(struct cleanup_body *b)
{
    if (b->hdr.len == 0)
        return 0;
    cleanup_ctype_note(&b->ct, b->hdr.data, b->hdr.len);
    buf_reset(&b->text);
    buf_append(&b->text, b->hdr.data, b->hdr.len);
    buf_reset(&b->hdr);
    return body_check_emit(b, b->part, true, "");
}

static void bounds_pop(struct cleanup_body *b, size_t keep)
{
    while (b->nbounds > keep)
        free(b->bounds[--b->nbounds]);
}

/* The header block ended: its Content-Type decides what comes next. */
static int block_end(struct cleanup_body *b)
{
    if (header_flush(b) < 0)
        return -1;
    b->block_bytes = 0;
    b->seg_bytes = 0;
    if (b->ct.kind == CLEANUP_CT_MESSAGE) {
        /* An attached message: its own header block follows. */
        b->part = CLEANUP_PART_NESTED;
        memset(&b->ct, 0, sizeof(b->ct));
        return 0;
    }
    if (b->ct.kind == CLEANUP_CT_MULTIPART &&
        b->nbounds < CLEANUP_MIME_DEPTH_MAX)
        b->bounds[b->nbounds++] = xstrdup(b->ct.boundary);
    b->state = BS_BODY;
    return 0;
}

static void block_start(struct cleanup_body *b, enum cleanup_part part)
{
    b->state = BS_HEADERS;
    b->part = part;
    b->block_bytes = 0;
    memset(&b->ct, 0, sizeof(b->ct));
}

/* ---- lines ---- */

/*
 * A delimiter line "--boundary" of an enclosing multipart (innermost
 * first): 1 opens a part, 2 closes the multipart; *level is its depth.
 */
static int boundary_of(const struct cleanup_body *b, const char *p, size_t n,
                       size_t *level)
{
    if (n < 3 || p[0] != '-' || p[1] != '-')
        return 0;
    for (size_t i = b->nbounds; i-- > 0;) {
        size_t bl = strlen(b->bounds[i]);
        const char *rest = p + 2 + bl, *end = p + n;

        if (n < 2 + bl || memcmp(p + 2, b->bounds[i], bl) != 0)
            continue;
        *level = i;
        if (end - rest >= 2 && rest[0] == '-' && rest[1] == '-')
            return 2;
        while (rest < end && is_wsp(*rest))
            rest++;
        if (rest == end)
            return 1;
    }
    return 0;
}

/* One body line or piece; nl: it ends in "\n" (not included in p, n). */
static int body_line(struct cleanup_body *b, const char *p, size_t n, bool nl)
{
    size_t level = 0;
    int delim = 0;
    bool check = b->seg_bytes < b->lim.check_max;

    if (!b->line_cont && nl && b->nbounds > 0)
        delim = boundary_of(b, p, n, &level);
    b->seg_bytes += n + (nl ? 1 : 0);
    buf_reset(&b->text);
    buf_append(&b->text, p, n);
    if (body_check_emit(b, CLEANUP_PART_BODY, check, nl ? "\n" : "") < 0)
        return -1;
    if (b->nested_next) {
        b->nested_next = false;
        if (nl && n == 0)
            block_start(b, CLEANUP_PART_NESTED);
    } else if (delim == 1) {
        bounds_pop(b, level + 1);
        block_start(b, CLEANUP_PART_MULTIPART);
    } else if (delim == 2) {
        bounds_pop(b, level);
        b->seg_bytes = 0;
    }
    return 0;
}

/* One line (or piece) while in a header block inside the body. */
static int part_header_line(struct cleanup_body *b, const char *p, size_t n,
                            bool nl)
{
    bool cont = n > 0 && (p[0] == ' ' || p[0] == '\t');

    if (nl && n == 0) { /* the empty line ends the block; it is body */
        if (block_end(b) < 0)
            return -1;
        if (b->state == BS_HEADERS) /* an attached message's headers */
            return body_emit(b, "\n", 1);
        return body_line(b, p, n, nl);
    }
    if (!nl || b->block_bytes + n + 1 > b->lim.header_max ||
        (!cont && cleanup_header_name_len(p, n) == 0) ||
        (cont && b->hdr.len == 0)) {
        /* Not a header (or too much): the block ends, this is body. */
        if (block_end(b) < 0)
            return -1;
        if (b->state == BS_HEADERS)
            return part_header_line(b, p, n, nl);
        return body_line(b, p, n, nl);
    }
    if (!cont && header_flush(b) < 0)
        return -1;
    buf_append(&b->hdr, p, n);
    buf_putc(&b->hdr, '\n');
    b->block_bytes += n + 1;
    return 0;
}

static int body_piece(struct cleanup_body *b, const char *p, size_t n, bool nl)
{
    int rc;

    if (b->state == BS_HEADERS && !b->line_cont)
        rc = part_header_line(b, p, n, nl);
    else
        rc = body_line(b, p, n, nl);
    b->line_cont = !nl;
    return rc;
}

/* ---- public ---- */

struct cleanup_body *cleanup_body_new(
    const struct cleanup_body_limits *lim, const struct cleanup_ctype *primary,
    cleanup_check_fn check, void *check_ctx,
    int (*out)(const char *data, size_t len, void *ctx), void *out_ctx)
{
    struct cleanup_body *b = xcalloc(1, sizeof(*b));

    b->lim = *lim;
    if (b->lim.line_max == 0)
        b->lim.line_max = 1;
    b->check = check;
    b->check_ctx = check_ctx;
    b->out = out;
    b->out_ctx = out_ctx;
    b->state = BS_BODY;
    if (primary != NULL && primary->kind == CLEANUP_CT_MULTIPART)
        b->bounds[b->nbounds++] = xstrdup(primary->boundary);
    if (primary != NULL && primary->kind == CLEANUP_CT_MESSAGE)
        b->nested_next = true;
    return b;
}

void cleanup_body_free(struct cleanup_body *b)
{
    if (b == NULL)
        return;
    bounds_pop(b, 0);
    buf_free(&b->line);
    buf_free(&b->hdr);
    buf_free(&b->text);
    buf_free(&b->prepend);
    free(b);
}

int cleanup_body_feed(struct cleanup_body *b, const char *data, size_t len)
{
    while (len > 0 && !b->failed) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) : len;
        size_t cap =
            b->state == BS_HEADERS ? b->lim.header_max : b->lim.line_max;
        size_t room = cap > b->line.len ? cap - b->line.len : 0;

        if (n > room) {
            /* The line is too long to hold: pass this much on as a piece. */
            buf_append(&b->line, data, room);
            data += room;
            len -= room;
            if (body_piece(b, b->line.data, b->line.len, false) < 0)
                return -1;
            buf_reset(&b->line);
            continue;
        }
        if (nl == NULL) {
            buf_append(&b->line, data, len);
            break;
        }
        if (b->line.len > 0) {
            buf_append(&b->line, data, n);
            if (body_piece(b, b->line.data, b->line.len, true) < 0)
                return -1;
            buf_reset(&b->line);
        } else if (body_piece(b, data, n, true) < 0) {
            return -1;
        }
        data += n + 1;
        len -= n + 1;
    }
    return b->failed ? -1 : 0;
}

int cleanup_body_finish(struct cleanup_body *b)
{
    if (b->failed)
        return -1;
    if (b->line.len > 0 && body_piece(b, b->line.data, b->line.len, false) < 0)
        return -1;
    buf_reset(&b->line);
    if (b->state == BS_HEADERS && header_flush(b) < 0)
        return -1;
    return 0;
}
