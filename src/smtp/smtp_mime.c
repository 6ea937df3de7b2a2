/*
 * smtp_mime - the 8-bit to 7-bit downgrade of RFC 6152 section 3 for a
 * server that does not announce 8BITMIME, as Postfix's smtp does with
 * disable_mime_output_conversion = no:
 *
 *   - a leaf part (any type but multipart and message/rfc822) whose
 *     body holds 8-bit bytes and whose Content-Transfer-Encoding is 7bit,
 *     8bit, binary or absent is re-encoded as quoted-printable (RFC 2045
 *     6.7: encoded lines of at most 76 characters, soft breaks "=", the
 *     line structure kept) and gets "Content-Transfer-Encoding:
 *     quoted-printable" in place of its old field;
 *   - multipart and message/rfc822 containers are walked part by part
 *     (an embedded message is a message again), and an 8bit or binary
 *     label on a container becomes 7bit;
 *   - headers are never changed (8-bit bytes in headers stay: there is no
 *     safe conversion without knowing the charset), nor are base64 or
 *     quoted-printable parts, nor preambles and epilogues.
 *
 * A message without MIME-Version: is not MIME: it is left alone (and then
 * sent unchanged, as Postfix does with content it cannot convert).
 * Nesting deeper than SMTP_MIME_DEPTH_MAX is left as it is.
 *
 * Pure: bytes in the queue's form ("\n" line ends) in, bytes out; the
 * whole message is in memory (the caller reads it from the queue file,
 * whose size cleanup bounded).  Malformed MIME never fails: what cannot
 * be parsed is copied unchanged.
 */
#include <string.h>
#include <strings.h>

#include "smtp/smtp.h"

#define SMTP_MIME_DEPTH_MAX 20
#define SMTP_MIME_BOUNDARY_MAX 70 /* RFC 2046 5.1.1 */
#define SMTP_QP_LINE_MAX 76       /* RFC 2045 6.7 (5) */
#define SMTP_MIME_FIELD_MAX 4096  /* a longer MIME field is not parsed */

enum mime_kind { MIME_LEAF, MIME_MULTIPART, MIME_MESSAGE };

enum mime_cte {
    CTE_NONE,
    CTE_7BIT,
    CTE_8BIT,
    CTE_BINARY,
    CTE_OTHER, /* quoted-printable, base64, x-token: left alone */
};

struct mime_head {
    const char *end;  /* end of the header lines */
    const char *body; /* start of the body (after the empty line) */
    bool separator;   /* an empty line ended the header */
    bool mime_version;
    enum mime_kind kind;
    enum mime_cte cte;
    char boundary[SMTP_MIME_BOUNDARY_MAX + 1];
};

/* ---- lines ---- */

static const char *line_end(const char *p, const char *end)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));

    return nl ? nl + 1 : end;
}

static bool is_field_start(const char *p, const char *end)
{
    const char *q = p;

    while (q < end && *q != ':' && *q > ' ' && *q < 0x7f)
        q++;
    return q > p && q < end && *q == ':';
}

/* ---- header fields ---- */

static const char *skip_cfws(const char *p, const char *end)
{
    int depth = 0;

    while (p < end) {
        if (*p == '(') {
            depth++;
        } else if (*p == ')' && depth > 0) {
            depth--;
        } else if (*p == '\\' && depth > 0 && p + 1 < end) {
            p++;
        } else if (depth == 0 && *p != ' ' && *p != '\t' && *p != '\r' &&
                   *p != '\n') {
            break;
        }
        p++;
    }
    return p;
}

/* RFC 2045 token characters. */
static bool is_token_char(char c)
{
    return c > ' ' && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

static const char *token(const char *p, const char *end, const char **t,
                         size_t *len)
{
    *t = p;
    while (p < end && is_token_char(*p))
        p++;
    *len = (size_t)(p - *t);
    return p;
}

static bool token_is(const char *t, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(t, word, len) == 0;
}

static void parse_cte(const char *v, const char *end, struct mime_head *h)
{
    const char *t;
    size_t len;

    token(skip_cfws(v, end), end, &t, &len);
    if (token_is(t, len, "7bit"))
        h->cte = CTE_7BIT;
    else if (token_is(t, len, "8bit"))
        h->cte = CTE_8BIT;
    else if (token_is(t, len, "binary"))
        h->cte = CTE_BINARY;
    else
        h->cte = CTE_OTHER;
}

/* type/subtype; boundary="..." */
static void parse_ctype(const char *v, const char *end, struct mime_head *h)
{
    const char *type, *sub, *p;
    size_t tlen, slen;

    p = token(skip_cfws(v, end), end, &type, &tlen);
    p = skip_cfws(p, end);
    if (p >= end || *p != '/')
        return;
    p = token(skip_cfws(p + 1, end), end, &sub, &slen);
    if (token_is(type, tlen, "multipart"))
        h->kind = MIME_MULTIPART;
    else if (token_is(type, tlen, "message") && token_is(sub, slen, "rfc822"))
        h->kind = MIME_MESSAGE;
    else
        h->kind = MIME_LEAF;
    while ((p = skip_cfws(p, end)) < end && *p == ';') {
        const char *name, *val;
        size_t nlen, vlen = 0;
        char tmp[SMTP_MIME_BOUNDARY_MAX + 1];

        p = token(skip_cfws(p + 1, end), end, &name, &nlen);
        p = skip_cfws(p, end);
        if (p >= end || *p != '=')
            return;
        p = skip_cfws(p + 1, end);
        if (p < end && *p == '"') {
            for (p++; p < end && *p != '"'; p++) {
                if (*p == '\\' && p + 1 < end)
                    p++;
                if (vlen < sizeof(tmp) - 1 && *p != '\n' && *p != '\r')
                    tmp[vlen++] = *p;
                else if (*p != '\n' && *p != '\r')
                    vlen = sizeof(tmp); /* too long: no boundary */
            }
            if (p < end)
                p++;
        } else {
            p = token(p, end, &val, &vlen);
            if (vlen < sizeof(tmp))
                memcpy(tmp, val, vlen);
        }
        if (token_is(name, nlen, "boundary") && vlen > 0 &&
            vlen <= SMTP_MIME_BOUNDARY_MAX) {
            memcpy(h->boundary, tmp, vlen);
            h->boundary[vlen] = 0;
        }
    }
}

/* Does the field starting at f (through fend) have this name? */
static const char *field_value(const char *f, const char *fend,
                               const char *name)
{
    size_t n = strlen(name);

    if ((size_t)(fend - f) > n && strncasecmp(f, name, n) == 0 && f[n] == ':')
        return f + n + 1;
    return NULL;
}

/* End of the field that starts at p: its continuation lines included. */
static const char *field_end(const char *p, const char *end)
{
    p = line_end(p, end);
    while (p < end && (*p == ' ' || *p == '\t'))
        p = line_end(p, end);
    return p;
}

static void parse_head(const char *p, const char *end, struct mime_head *h)
{
    memset(h, 0, sizeof(*h));
    h->kind = MIME_LEAF;
    while (p < end) {
        const char *fend, *v;

        if (*p == '\n') {
            h->end = p;
            h->body = p + 1;
            h->separator = true;
            return;
        }
        if (!is_field_start(p, end))
            break;
        fend = field_end(p, end);
        if ((size_t)(fend - p) <= SMTP_MIME_FIELD_MAX) {
            if ((v = field_value(p, fend, "mime-version")) != NULL)
                h->mime_version = true;
            else if ((v = field_value(p, fend, "content-type")) != NULL)
                parse_ctype(v, fend, h);
            else if ((v = field_value(p, fend, "content-transfer-encoding")))
                parse_cte(v, fend, h);
        }
        p = fend;
    }
    h->end = p;
    h->body = p;
}

/* The header lines with every Content-Transfer-Encoding field left out. */
static void copy_head_without_cte(const char *p, const char *end,
                                  struct buf *out)
{
    while (p < end) {
        const char *fend = field_end(p, end);

        if (field_value(p, fend, "content-transfer-encoding") == NULL)
            buf_append(out, p, (size_t)(fend - p));
        p = fend;
    }
}

/* ---- quoted-printable ---- */

static void qp_encode(const char *p, const char *end, struct buf *out)
{
    static const char hex[] = "0123456789ABCDEF";

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *stop = eol ? eol : end;
        size_t col = 0;
        bool soft = false; /* the output line follows a soft break */

        for (; p < stop; p++) {
            unsigned char c = (unsigned char)*p;
            bool last = p + 1 == stop;
            /* Trailing white space would be lost in transit. */
            bool literal = c != '=' && c < 0x7f && (c >= ' ' || c == '\t') &&
                           !(last && (c == ' ' || c == '\t'));
            size_t n = literal ? 1 : 3;

            /* Room for a soft break "=" unless this ends the line. */
            if (col + n > (last ? SMTP_QP_LINE_MAX : SMTP_QP_LINE_MAX - 1)) {
                buf_append(out, "=\n", 2);
                col = 0;
                soft = true;
            }
            /* A line the encoding starts must not look like "--boundary". */
            if (col == 0 && soft && c == '-')
                literal = false;
            if (literal) {
                buf_putc(out, c);
                col++;
            } else {
                buf_putc(out, '=');
                buf_putc(out, hex[c >> 4]);
                buf_putc(out, hex[c & 15]);
                col += 3;
            }
        }
        if (eol == NULL)
            break;
        buf_putc(out, '\n');
        p = eol + 1;
    }
}

/* ---- entities ---- */

static size_t entity(const char *p, const char *end, int depth, bool top,
                     struct buf *out);

/* "--boundary" (close: "--boundary--") then only white space. */
static int delimiter(const char *p, const char *eol, const char *b, size_t blen)
{
    int kind = 1;

    if ((size_t)(eol - p) < blen + 2 || p[0] != '-' || p[1] != '-' ||
        memcmp(p + 2, b, blen) != 0)
        return 0;
    p += blen + 2;
    if (eol - p >= 2 && p[0] == '-' && p[1] == '-') {
        kind = 2;
        p += 2;
    }
    for (; p < eol; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            return 0;
    return kind;
}

/* The body of a multipart entity, part by part. */
static size_t multipart_body(const char *p, const char *end, const char *b,
                             int depth, struct buf *out)
{
    size_t blen = strlen(b), count = 0;
    const char *part = NULL; /* start of the current part */
    bool closed = false;

    while (p < end) {
        const char *eol = line_end(p, end);
        int kind = closed ? 0 : delimiter(p, eol, b, blen);

        if (kind == 0) {
            if (part == NULL)
                buf_append(out, p, (size_t)(eol - p)); /* preamble, epilogue */
            p = eol;
            continue;
        }
        if (part != NULL)
            count += entity(part, p, depth + 1, false, out);
        buf_append(out, p, (size_t)(eol - p));
        part = kind == 1 ? eol : NULL;
        closed = kind == 2;
        p = eol;
    }
    if (part != NULL)
        count += entity(part, end, depth + 1, false, out);
    return count;
}

static size_t entity(const char *p, const char *end, int depth, bool top,
                     struct buf *out)
{
    struct mime_head h;
    size_t count = 0, mark;
    const char *label = NULL;

    parse_head(p, end, &h);
    if ((top && !h.mime_version) || depth > SMTP_MIME_DEPTH_MAX)
        goto copy;
    switch (h.kind) {
    case MIME_LEAF:
        if (h.cte == CTE_OTHER ||
            !smtp_text_8bit(h.body, (size_t)(end - h.body)))
            goto copy;
        copy_head_without_cte(p, h.end, out);
        buf_puts(out, "Content-Transfer-Encoding: quoted-printable\n\n");
        qp_encode(h.body, end, out);
        return 1;
    case MIME_MULTIPART:
        if (h.boundary[0] == 0)
            goto copy;
        break;
    case MIME_MESSAGE:
        break;
    }
    /* A container: its header now, its label fixed when 8bit/binary. */
    if (h.cte == CTE_8BIT || h.cte == CTE_BINARY)
        label = "Content-Transfer-Encoding: 7bit\n";
    mark = out->len;
    if (label != NULL) {
        copy_head_without_cte(p, h.end, out);
        buf_puts(out, label);
    } else {
        buf_append(out, p, (size_t)(h.end - p));
    }
    buf_append(out, h.end, (size_t)(h.body - h.end));
    if (h.kind == MIME_MULTIPART)
        count = multipart_body(h.body, end, h.boundary, depth, out);
    else
        count = entity(h.body, end, depth + 1, false, out);
    if (count == 0 && label != NULL) {
        /* Nothing inside changed: keep the original bytes. */
        buf_truncate(out, mark);
        goto copy;
    }
    return count + (label != NULL);
copy:
    buf_append(out, p, (size_t)(end - p));
    return 0;
}

size_t smtp_mime_downgrade(const char *in, size_t len, struct buf *out)
{
    size_t mark = out->len, count;

    if (len == 0)
        return 0;
    count = entity(in, in + len, 0, true, out);

    if (count == 0)
        buf_truncate(out, mark);
    return count;
}
