/*
 * imap_mime - the MIME parser and BODY[section] lookup of imapd.
 *
 * Given one message in CRLF form (the caller's buffer, not copied), it
 * builds a tree of parts with byte ranges and the Content-* fields that
 * IMAP reports.  The message comes from a mailbox, i.e. from anyone on
 * the Internet: every loop is bounded by the input length and the
 * IMAP_MIME_* limits; past a limit a part is simply not split further.
 * Where a message is malformed the result follows Dovecot (which most
 * clients are tested against): a multipart without any part gets one
 * empty text/plain part, an unterminated multipart ends at the end of
 * its enclosing part, a header without an empty line is all header.
 * ENVELOPE and BODYSTRUCTURE text are made in imap_mime_struct.c, SEARCH
 * decoding in imap_mime_decode.c.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imapd/imap_mime.h"
#include "imapd/imap_mime_impl.h"
#include "util/mem.h"
#include "util/str.h"

/* ---- header fields ---- */

void mime_hdr_iter_init(struct mime_hdr_iter *it, const char *msg, size_t off,
                        size_t len)
{
    it->msg = msg;
    it->pos = off;
    it->end = off + len;
    it->count = 0;
}

/* End of the line starting at pos (index after its LF, or end). */
static size_t line_end(const char *msg, size_t pos, size_t end)
{
    const char *lf = memchr(msg + pos, '\n', end - pos);

    return lf ? (size_t)(lf - msg) + 1 : end;
}

/* Is [pos, e) an empty line ("\n", "\r\n")? */
static bool line_empty(const char *msg, size_t pos, size_t e)
{
    size_t n = e - pos;

    return (n == 1 && msg[pos] == '\n') ||
           (n == 2 && msg[pos] == '\r' && msg[pos + 1] == '\n');
}

bool mime_hdr_next(struct mime_hdr_iter *it, struct mime_field *f)
{
    const char *msg = it->msg;

    while (it->pos < it->end) {
        size_t start = it->pos, e = line_end(msg, start, it->end);
        size_t colon, vend;

        if (line_empty(msg, start, e) || it->count >= IMAP_MIME_HEADERS_MAX)
            return false;
        /* Continuation lines belong to this field. */
        while (e < it->end && (msg[e] == ' ' || msg[e] == '\t'))
            e = line_end(msg, e, it->end);
        it->pos = e;
        it->count++;
        for (colon = start; colon < e && msg[colon] != ':' &&
                            msg[colon] != '\n';
             colon++)
            ;
        if (colon >= e || msg[colon] != ':')
            continue; /* not a field: skipped like Dovecot does */
        f->name = msg + start;
        f->name_len = colon - start;
        while (f->name_len > 0 && (f->name[f->name_len - 1] == ' ' ||
                                   f->name[f->name_len - 1] == '\t'))
            f->name_len--;
        vend = e;
        if (vend > colon + 1 && msg[vend - 1] == '\n')
            vend--;
        if (vend > colon + 1 && msg[vend - 1] == '\r')
            vend--;
        f->value = msg + colon + 1;
        f->value_len = vend - colon - 1;
        f->off = start;
        f->len = e - start;
        return true;
    }
    return false;
}

void mime_unfold(const char *v, size_t len, struct buf *out)
{
    size_t i = 0, start = out->len, cap = IMAP_MIME_FIELD_MAX;

    while (i < len && (v[i] == ' ' || v[i] == '\t'))
        i++;
    for (; i < len && out->len - start < cap; i++) {
        if (v[i] == '\r' && i + 1 < len && v[i + 1] == '\n')
            continue;
        if (v[i] == '\n')
            continue;
        buf_putc(out, v[i]);
    }
    /* Trailing blanks are folding left-overs, not content. */
    while (out->len > start &&
           (out->data[out->len - 1] == ' ' || out->data[out->len - 1] == '\t'))
        out->len--;
    if (out->data)
        out->data[out->len] = 0;
}

static bool name_is(const struct mime_field *f, const char *name)
{
    size_t n = strlen(name);

    return f->name_len == n && strncasecmp(f->name, name, n) == 0;
}

bool mime_hdr_find(const char *msg, size_t off, size_t len, const char *name,
                   struct buf *out)
{
    struct mime_hdr_iter it;
    struct mime_field f;

    mime_hdr_iter_init(&it, msg, off, len);
    while (mime_hdr_next(&it, &f)) {
        if (name_is(&f, name)) {
            mime_unfold(f.value, f.value_len, out);
            return true;
        }
    }
    return false;
}

/* ---- Content-Type and friends (RFC 2045 tokens, RFC 2231 params) ---- */

struct lexer {
    const char *p, *end;
};

static void skip_cfws(struct lexer *lx)
{
    int depth = 0;

    while (lx->p < lx->end) {
        char c = *lx->p;

        if (depth > 0) {
            if (c == '\\' && lx->p + 1 < lx->end)
                lx->p++;
            else if (c == '(')
                depth++;
            else if (c == ')')
                depth--;
            lx->p++;
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            lx->p++;
        } else if (c == '(') {
            depth = 1;
            lx->p++;
        } else {
            break;
        }
    }
}

static bool is_tspecial(char c)
{
    return strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

/* A token (RFC 2045); NULL when there is none. */
static char *lex_token(struct lexer *lx)
{
    const char *s;

    skip_cfws(lx);
    s = lx->p;
    while (lx->p < lx->end && (unsigned char)*lx->p > ' ' &&
           (unsigned char)*lx->p < 127 && !is_tspecial(*lx->p))
        lx->p++;
    return lx->p > s ? xstrndup(s, (size_t)(lx->p - s)) : NULL;
}

/* A token or a quoted string (quotes and backslashes removed). */
static char *lex_value(struct lexer *lx)
{
    struct buf b = BUF_INIT;

    skip_cfws(lx);
    if (lx->p < lx->end && *lx->p == '"') {
        lx->p++;
        while (lx->p < lx->end && *lx->p != '"') {
            if (*lx->p == '\\' && lx->p + 1 < lx->end)
                lx->p++;
            if (*lx->p != '\r' && *lx->p != '\n')
                buf_putc(&b, *lx->p);
            lx->p++;
        }
        if (lx->p < lx->end)
            lx->p++;
        if (b.data == NULL)
            return xstrdup("");
        return buf_steal(&b);
    }
    /* Be lenient like Dovecot: anything up to ';' or blank. */
    while (lx->p < lx->end && *lx->p != ';' && (unsigned char)*lx->p > ' ')
        buf_putc(&b, *lx->p++);
    return b.data ? buf_steal(&b) : NULL;
}

static void params_add(struct mime_param **v, size_t *n, char *name,
                       char *value)
{
    *v = xreallocarray(*v, *n + 1, sizeof(**v));
    (*v)[*n].name = name;
    (*v)[*n].value = value;
    (*n)++;
}

/*
 * RFC 2231 continuations "name*0", "name*1*" are joined into "name"
 * (or "name*" when any piece is extended, value kept encoded, which is
 * what IMAP clients decode themselves).
 */
static void params_join_2231(struct mime_param **v, size_t *n)
{
    size_t i, j;

    for (i = 0; i < *n; i++) {
        char *star = strchr((*v)[i].name, '*');
        size_t base;
        struct buf val = BUF_INIT;
        bool extended = false;
        unsigned want = 0;

        if (star == NULL || star[1] != '0')
            continue;
        base = (size_t)(star - (*v)[i].name);
        /* Collect pieces 0, 1, 2 ... in order, wherever they are. */
        for (;;) {
            bool found = false;

            for (j = i; j < *n; j++) {
                char *nm = (*v)[j].name, *end;
                unsigned long idx;

                if (strncasecmp(nm, (*v)[i].name, base) != 0 ||
                    nm[base] != '*' || !isdigit((unsigned char)nm[base + 1]))
                    continue;
                idx = strtoul(nm + base + 1, &end, 10);
                if (idx != want || (*end != 0 && strcmp(end, "*") != 0))
                    continue;
                if (*end == '*')
                    extended = true;
                buf_puts(&val, (*v)[j].value);
                if (j != i) {
                    free((*v)[j].name);
                    free((*v)[j].value);
                    memmove(&(*v)[j], &(*v)[j + 1],
                            (*n - j - 1) * sizeof(**v));
                    (*n)--;
                }
                found = true;
                break;
            }
            if (!found || ++want > 1000)
                break;
        }
        (*v)[i].name[base] = 0;
        if (extended) {
            char *nm = xasprintf("%s*", (*v)[i].name);

            free((*v)[i].name);
            (*v)[i].name = nm;
        }
        free((*v)[i].value);
        (*v)[i].value = val.data ? buf_steal(&val) : xstrdup("");
    }
}

static void parse_params(struct lexer *lx, struct mime_param **v, size_t *n)
{
    while (*n < 100) {
        char *name, *value;

        skip_cfws(lx);
        if (lx->p >= lx->end)
            break;
        if (*lx->p != ';') {
            /* Junk between parameters: skip to the next ';'. */
            while (lx->p < lx->end && *lx->p != ';')
                lx->p++;
            continue;
        }
        lx->p++;
        name = lex_token(lx);
        if (name == NULL)
            continue;
        skip_cfws(lx);
        if (lx->p >= lx->end || *lx->p != '=') {
            free(name);
            continue;
        }
        lx->p++;
        value = lex_value(lx);
        if (value == NULL) {
            free(name);
            continue;
        }
        params_add(v, n, name, value);
    }
    params_join_2231(v, n);
}

static void parse_content_type(struct mime_part *p, const char *v, size_t len)
{
    struct lexer lx = {v, v + len};
    char *type = lex_token(&lx), *sub = NULL;

    skip_cfws(&lx);
    if (type && lx.p < lx.end && *lx.p == '/') {
        lx.p++;
        sub = lex_token(&lx);
    }
    if (type == NULL || sub == NULL) {
        /* Unusable: RFC 2045 5.2 says text/plain; us-ascii. */
        free(type);
        free(sub);
        return;
    }
    p->type = type;
    p->subtype = sub;
    parse_params(&lx, &p->params, &p->n_params);
}

static void parse_disposition(struct mime_part *p, const char *v, size_t len)
{
    struct lexer lx = {v, v + len};

    p->disposition = lex_token(&lx);
    if (p->disposition)
        parse_params(&lx, &p->disp_params, &p->n_disp_params);
}

static char *unfolded(const struct mime_field *f)
{
    struct buf b = BUF_INIT;

    mime_unfold(f->value, f->value_len, &b);
    return b.data ? buf_steal(&b) : xstrdup("");
}

static void parse_fields(struct mime_part *p, const char *msg)
{
    struct mime_hdr_iter it;
    struct mime_field f;

    mime_hdr_iter_init(&it, msg, p->hdr_off, p->hdr_len);
    while (mime_hdr_next(&it, &f)) {
        if (f.name_len < 8 || strncasecmp(f.name, "content-", 8) != 0)
            continue;
        if (name_is(&f, "content-type") && p->type == NULL)
            parse_content_type(p, f.value, f.value_len);
        else if (name_is(&f, "content-transfer-encoding") && !p->encoding) {
            struct lexer lx = {f.value, f.value + f.value_len};

            p->encoding = lex_token(&lx);
        } else if (name_is(&f, "content-id") && !p->id)
            p->id = unfolded(&f);
        else if (name_is(&f, "content-description") && !p->description)
            p->description = unfolded(&f);
        else if (name_is(&f, "content-disposition") && !p->disposition)
            parse_disposition(p, f.value, f.value_len);
        else if (name_is(&f, "content-language") && !p->language)
            p->language = unfolded(&f);
        else if (name_is(&f, "content-location") && !p->location)
            p->location = unfolded(&f);
        else if (name_is(&f, "content-md5") && !p->md5)
            p->md5 = unfolded(&f);
    }
}

static const char *param_get(const struct mime_part *p, const char *name)
{
    for (size_t i = 0; i < p->n_params; i++)
        if (strcasecmp(p->params[i].name, name) == 0)
            return p->params[i].value;
    return NULL;
}

/* ---- the tree ---- */

static uint64_t count_lf(const char *s, size_t len)
{
    uint64_t n = 0;
    const char *p = s, *end = s + len, *lf;

    while (p < end && (lf = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        n++;
        p = lf + 1;
    }
    return n;
}

static struct mime_part *parse_part(struct imap_mime *m, size_t off,
                                    size_t end, int depth, bool in_digest);

/* Does the line at pos start with "--" boundary? */
static bool is_boundary(const char *msg, size_t pos, size_t e,
                        const char *boundary, size_t blen, bool *close)
{
    if (e - pos < blen + 2 || msg[pos] != '-' || msg[pos + 1] != '-' ||
        memcmp(msg + pos + 2, boundary, blen) != 0)
        return false;
    *close = e - pos >= blen + 4 && msg[pos + blen + 2] == '-' &&
             msg[pos + blen + 3] == '-';
    return true;
}

static void split_multipart(struct imap_mime *m, struct mime_part *p,
                            const char *boundary, int depth)
{
    const char *msg = m->msg;
    size_t blen = strlen(boundary), pos = p->body_off;
    size_t end = p->body_off + p->body_len, part_start = 0;
    bool in_part = false, close = false;
    struct mime_part **tail = &p->children;

    while (pos < end) {
        size_t e = line_end(msg, pos, end);

        if (is_boundary(msg, pos, e, boundary, blen, &close)) {
            if (in_part) {
                /* The line end before the delimiter belongs to it. */
                size_t pe = pos;

                if (pe > part_start && msg[pe - 1] == '\n')
                    pe--;
                if (pe > part_start && msg[pe - 1] == '\r')
                    pe--;
                *tail = parse_part(m, part_start, pe, depth + 1,
                                   strcasecmp(p->subtype, "digest") == 0);
                tail = &(*tail)->next;
            }
            if (close || m->n_parts >= IMAP_MIME_PARTS_MAX) {
                in_part = false;
                break;
            }
            in_part = true;
            part_start = e;
        }
        pos = e;
    }
    if (in_part) /* unterminated: the last part runs to the end */
        *tail = parse_part(m, part_start, end, depth + 1,
                           strcasecmp(p->subtype, "digest") == 0);
    if (p->children == NULL) {
        /* No part at all: one empty text/plain, as Dovecot reports it. */
        p->children = xcalloc(1, sizeof(*p->children));
        p->children->hdr_off = p->children->body_off = end;
        m->n_parts++;
    }
}

static bool encoding_is_identity(const struct mime_part *p)
{
    return p->encoding == NULL || strcasecmp(p->encoding, "7bit") == 0 ||
           strcasecmp(p->encoding, "8bit") == 0 ||
           strcasecmp(p->encoding, "binary") == 0;
}

static struct mime_part *parse_part(struct imap_mime *m, size_t off,
                                    size_t end, int depth, bool in_digest)
{
    struct mime_part *p = xcalloc(1, sizeof(*p));
    const char *msg = m->msg;
    size_t pos = off;

    m->n_parts++;
    /* Header: up to and including the first empty line. */
    p->hdr_off = off;
    while (pos < end) {
        size_t e = line_end(msg, pos, end);
        bool empty = line_empty(msg, pos, e);

        pos = e;
        if (empty)
            break;
    }
    p->hdr_len = pos - off;
    p->body_off = pos;
    p->body_len = end - pos;
    p->body_lines = count_lf(msg + p->body_off, p->body_len);
    parse_fields(p, msg);

    if (p->type == NULL && in_digest) {
        p->type = xstrdup("message");
        p->subtype = xstrdup("rfc822");
    }
    if (p->type && strcasecmp(p->type, "multipart") == 0) {
        const char *boundary = param_get(p, "boundary");

        if (depth >= IMAP_MIME_DEPTH_MAX || m->n_parts >= IMAP_MIME_PARTS_MAX) {
            /* Too deep: reported as an opaque leaf. */
            free(p->type);
            free(p->subtype);
            p->type = xstrdup("application");
            p->subtype = xstrdup("octet-stream");
        } else {
            p->multipart = true;
            if (boundary && *boundary)
                split_multipart(m, p, boundary, depth);
            else {
                p->children = xcalloc(1, sizeof(*p->children));
                p->children->hdr_off = p->children->body_off = end;
                m->n_parts++;
            }
        }
    } else if (p->type && strcasecmp(p->type, "message") == 0 &&
               strcasecmp(p->subtype, "rfc822") == 0 &&
               encoding_is_identity(p) && depth < IMAP_MIME_DEPTH_MAX &&
               m->n_parts < IMAP_MIME_PARTS_MAX) {
        p->message = true;
        p->inner = parse_part(m, p->body_off, end, depth + 1, false);
    } else if (p->type && strcasecmp(p->type, "message") == 0 &&
               strcasecmp(p->subtype, "rfc822") == 0) {
        free(p->type);
        free(p->subtype);
        p->type = xstrdup("application");
        p->subtype = xstrdup("octet-stream");
    }
    return p;
}

struct imap_mime *imap_mime_parse(const char *msg, size_t len)
{
    struct imap_mime *m = xcalloc(1, sizeof(*m));

    m->msg = msg;
    m->len = len;
    m->root = parse_part(m, 0, len, 0, false);
    return m;
}

static void free_params(struct mime_param *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
}

static void part_free(struct mime_part *p)
{
    while (p) {
        struct mime_part *next = p->next;

        part_free(p->children);
        part_free(p->inner);
        free(p->type);
        free(p->subtype);
        free_params(p->params, p->n_params);
        free_params(p->disp_params, p->n_disp_params);
        free(p->id);
        free(p->description);
        free(p->encoding);
        free(p->md5);
        free(p->location);
        free(p->language);
        free(p->disposition);
        free(p);
        p = next;
    }
}

void imap_mime_free(struct imap_mime *m)
{
    if (m == NULL)
        return;
    part_free(m->root);
    free(m);
}

/* ---- sections ---- */

int imap_section_parse(const char *spec, size_t len, struct imap_section *out)
{
    size_t i = 0;

    memset(out, 0, sizeof(*out));
    out->text = IMAP_SECTION_ALL;
    while (i < len && isdigit((unsigned char)spec[i])) {
        unsigned long v = 0;

        while (i < len && isdigit((unsigned char)spec[i])) {
            v = v * 10 + (unsigned long)(spec[i] - '0');
            if (v > 0xffffffffUL)
                return -1;
            i++;
        }
        if (v == 0 || out->n_part >= IMAP_SECTION_PARTS_MAX)
            return -1;
        out->part[out->n_part++] = (uint32_t)v;
        if (i == len)
            return 0;
        if (spec[i] != '.')
            return -1;
        i++;
        if (i == len)
            return -1; /* "1." */
    }
    if (i == len)
        return 0;
    spec += i;
    len -= i;
#define WORD(w) (len == sizeof(w) - 1 && strncasecmp(spec, w, len) == 0)
    if (WORD("HEADER"))
        out->text = IMAP_SECTION_HEADER;
    else if (WORD("HEADER.FIELDS"))
        out->text = IMAP_SECTION_HEADER_FIELDS;
    else if (WORD("HEADER.FIELDS.NOT"))
        out->text = IMAP_SECTION_HEADER_FIELDS_NOT;
    else if (WORD("TEXT"))
        out->text = IMAP_SECTION_TEXT;
    else if (WORD("MIME") && out->n_part > 0)
        out->text = IMAP_SECTION_MIME;
    else
        return -1;
#undef WORD
    return 0;
}

/*
 * Part n (1-based) below p.  A message/rfc822 part's children are those
 * of the message it carries; a non-multipart has itself as part 1.
 */
static const struct mime_part *subpart(const struct mime_part *p, uint32_t n)
{
    if (p->message)
        p = p->inner;
    if (p->multipart) {
        const struct mime_part *c = p->children;

        while (c && --n > 0)
            c = c->next;
        return c;
    }
    return n == 1 ? p : NULL;
}

static bool field_listed(const struct mime_field *f, const struct imap_section *s)
{
    for (size_t i = 0; i < s->n_fields; i++)
        if (name_is(f, s->fields[i]))
            return true;
    return false;
}

static void header_fields(const struct imap_mime *m, const struct mime_part *p,
                          const struct imap_section *s, bool not,
                          struct buf *out)
{
    struct mime_hdr_iter it;
    struct mime_field f;

    mime_hdr_iter_init(&it, m->msg, p->hdr_off, p->hdr_len);
    while (mime_hdr_next(&it, &f)) {
        if (field_listed(&f, s) == not)
            continue;
        buf_append(out, m->msg + f.off, f.len);
        if (f.len == 0 || m->msg[f.off + f.len - 1] != '\n')
            buf_puts(out, "\r\n"); /* field at the very end of a message */
    }
    buf_puts(out, "\r\n");
}

int imap_mime_section(const struct imap_mime *m, const struct imap_section *s,
                      struct buf *out)
{
    const struct mime_part *p = m->root, *msgpart;
    bool top = s->n_part == 0;

    for (size_t i = 0; i < s->n_part; i++) {
        /* Walking into part 1 of a non-multipart top part: its body. */
        p = subpart(p, s->part[i]);
        if (p == NULL)
            return -1;
    }
    if (s->text == IMAP_SECTION_ALL) {
        if (top)
            buf_append(out, m->msg, m->len);
        else /* a message/rfc822 part's body is the whole message */
            buf_append(out, m->msg + p->body_off, p->body_len);
        return 0;
    }
    if (s->text == IMAP_SECTION_MIME) {
        buf_append(out, m->msg + p->hdr_off, p->hdr_len);
        return 0;
    }
    /* HEADER, HEADER.FIELDS, TEXT: of the message (top or rfc822 part). */
    if (top)
        msgpart = p;
    else if (p->message)
        msgpart = p->inner;
    else
        return -1;
    switch (s->text) {
    case IMAP_SECTION_HEADER:
        buf_append(out, m->msg + msgpart->hdr_off, msgpart->hdr_len);
        break;
    case IMAP_SECTION_HEADER_FIELDS:
    case IMAP_SECTION_HEADER_FIELDS_NOT:
        header_fields(m, msgpart, s, s->text == IMAP_SECTION_HEADER_FIELDS_NOT,
                      out);
        break;
    case IMAP_SECTION_TEXT:
        buf_append(out, m->msg + msgpart->body_off, msgpart->body_len);
        break;
    default:
        return -1;
    }
    return 0;
}

/* ---- text helpers ---- */

/*
 * Both run at memchr() speed: FETCH BODY[] and SEARCH TEXT pass every
 * byte of every message through here.
 */
uint64_t imap_mime_crlf_size(const char *in, size_t len)
{
    const char *p = in, *end = in + len, *nl;
    uint64_t n = len;

    while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        if (nl == in || nl[-1] != '\r')
            n++;
        p = nl + 1;
    }
    return n;
}

void imap_mime_crlf(const char *in, size_t len, struct buf *out)
{
    const char *p = in, *end = in + len, *nl;
    char *o;

    buf_reserve(out, (size_t)imap_mime_crlf_size(in, len));
    o = out->data + out->len;
    while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        size_t n = (size_t)(nl - p);

        memcpy(o, p, n);
        o += n;
        if (nl == in || nl[-1] != '\r')
            *o++ = '\r';
        *o++ = '\n';
        p = nl + 1;
    }
    if (p < end) {
        memcpy(o, p, (size_t)(end - p));
        o += end - p;
    }
    out->len = (size_t)(o - out->data);
    out->data[out->len] = 0;
}

void imap_mime_crlf_inplace(struct buf *b, size_t from)
{
    const char *start;
    char *src, *dst;
    uint64_t add;

    if (b->data == NULL || from >= b->len)
        return;
    add = imap_mime_crlf_size(b->data + from, b->len - from) - (b->len - from);
    if (add == 0)
        return;
    buf_reserve(b, (size_t)add);
    /*
     * From the end backwards: the text still to be moved lies below
     * where it goes, so every byte is read before it is overwritten,
     * and a LF's predecessor is still the original byte.
     */
    start = b->data + from;
    src = b->data + b->len;
    dst = src + add;
    while (dst > src) {
        char *nl = memrchr(start, '\n', (size_t)(src - start));
        size_t n = (size_t)(src - nl - 1);

        dst -= n;
        memmove(dst, nl + 1, n);
        *--dst = '\n';
        if (nl == start || nl[-1] != '\r')
            *--dst = '\r';
        src = nl;
    }
    b->len += (size_t)add;
    b->data[b->len] = 0;
}

void imap_mime_nstring(struct buf *out, const char *data, size_t len)
{
    bool literal = len > 1024;

    if (data == NULL) {
        buf_puts(out, "NIL");
        return;
    }
    for (size_t i = 0; i < len && !literal; i++) {
        unsigned char c = (unsigned char)data[i];

        if (c == 0 || c == '\r' || c == '\n' || c >= 0x80)
            literal = true;
    }
    if (literal) {
        buf_printf(out, "{%zu}\r\n", len);
        buf_append(out, data, len);
        return;
    }
    buf_putc(out, '"');
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '"' || data[i] == '\\')
            buf_putc(out, '\\');
        buf_putc(out, data[i]);
    }
    buf_putc(out, '"');
}
