/*
 * attr - the framed attribute protocol every posthorn process speaks.
 *
 * Writers build frames into a struct buf; attr_read() parses one frame
 * from a stream.  The reader trusts nothing: the peer may be a compromised
 * or buggy daemon, so the grammar in attr.h is enforced byte by byte
 * (name charset and length, canonical decimal length, separators, the
 * newline after each value), the sum of value lengths is bounded by the
 * caller's max_total before anything is allocated, and the number of
 * attributes by ATTR_COUNT_MAX.  A grammar violation or EOF inside a frame
 * is STREAM_ERROR with a short reason; after any failure the stream is out
 * of step and the caller must drop the connection.  A bad name handed to
 * the writer is a bug and panics.
 */
#include "util/attr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* Decimal digits in a value length: up to 9999999999. */
#define ATTR_LEN_DIGITS 10

static bool attr_name_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

static bool attr_name_ok(const char *name)
{
    size_t i;

    for (i = 0; name[i]; i++)
        if (i >= ATTR_NAME_MAX || !attr_name_char((unsigned char)name[i]))
            return false;
    return i > 0;
}

void attr_put(struct buf *frame, const char *name, const void *value,
              size_t len)
{
    if (!attr_name_ok(name))
        log_panic("attr_put: invalid attribute name \"%.80s\"", name);
    buf_printf(frame, "%s:%zu:", name, len);
    buf_append(frame, value, len);
    buf_putc(frame, '\n');
}

void attr_put_str(struct buf *frame, const char *name, const char *value)
{
    attr_put(frame, name, value, strlen(value));
}

void attr_put_int(struct buf *frame, const char *name, long long value)
{
    char num[32];
    int n = snprintf(num, sizeof(num), "%lld", value);

    attr_put(frame, name, num, (size_t)n);
}

void attr_end(struct buf *frame)
{
    buf_putc(frame, '\n');
}

void attr_list_clear(struct attr_list *list)
{
    size_t i;

    for (i = 0; i < list->n; i++) {
        free(list->v[i].name);
        free(list->v[i].value);
    }
    list->n = 0;
}

void attr_list_free(struct attr_list *list)
{
    attr_list_clear(list);
    free(list->v);
    list->v = NULL;
    list->cap = 0;
}

static void attr_list_grow(struct attr_list *list)
{
    if (list->n == list->cap) {
        size_t ncap = list->cap ? list->cap * 2 : 16;
        list->v = xreallocarray(list->v, ncap, sizeof(*list->v));
        list->cap = ncap;
    }
}

void attr_list_add(struct attr_list *list, const char *name, const void *value,
                   size_t len)
{
    struct attr *a;

    attr_list_grow(list);
    a = &list->v[list->n++];
    a->name = xstrdup(name);
    a->value = xmalloc(len + 1);
    if (len)
        memcpy(a->value, value, len);
    a->value[len] = 0;
    a->len = len;
}

const struct attr *attr_find(const struct attr_list *list, const char *name)
{
    size_t i;

    for (i = 0; i < list->n; i++)
        if (strcmp(list->v[i].name, name) == 0)
            return &list->v[i];
    return NULL;
}

const char *attr_text(const struct attr *a)
{
    return strlen(a->value) == a->len ? a->value : NULL;
}

const char *attr_get(const struct attr_list *list, const char *name)
{
    const struct attr *a = attr_find(list, name);

    return a ? a->value : NULL;
}

bool attr_get_int(const struct attr_list *list, const char *name,
                  long long *out)
{
    const struct attr *a = attr_find(list, name);

    /* An embedded NUL would hide trailing garbage from the parser. */
    if (a == NULL || strlen(a->value) != a->len)
        return false;
    return str_to_llong(a->value, out);
}

/* Reading. */

struct attr_reader {
    struct stream *s;
    struct buf tmp;
    const char *err;
};

/* One byte; EOF here means the frame was cut short. */
static enum stream_status attr_getc(struct attr_reader *r, int *c)
{
    enum stream_status st;

    buf_reset(&r->tmp);
    st = stream_read_exact(r->s, &r->tmp, 1);
    if (st == STREAM_OK) {
        *c = (unsigned char)r->tmp.data[0];
        return STREAM_OK;
    }
    if (st == STREAM_EOF) {
        r->err = "truncated frame";
        return STREAM_ERROR;
    }
    r->err = st == STREAM_TIMEOUT ? "timeout" : stream_error(r->s);
    return st;
}

/* name ":" with the first byte already read; name is NUL-terminated. */
static enum stream_status attr_read_name(struct attr_reader *r, int c,
                                         char *name)
{
    enum stream_status st;
    size_t n = 0;

    while (c != ':') {
        if (!attr_name_char(c)) {
            r->err = "invalid character in attribute name";
            return STREAM_ERROR;
        }
        if (n >= ATTR_NAME_MAX) {
            r->err = "attribute name too long";
            return STREAM_ERROR;
        }
        name[n++] = (char)c;
        if ((st = attr_getc(r, &c)) != STREAM_OK)
            return st;
    }
    if (n == 0) {
        r->err = "empty attribute name";
        return STREAM_ERROR;
    }
    name[n] = 0;
    return STREAM_OK;
}

/* decimal-length ":" in canonical form. */
static enum stream_status attr_read_len(struct attr_reader *r,
                                        unsigned long long *len)
{
    enum stream_status st;
    unsigned long long v = 0;
    size_t digits = 0;
    int c;

    for (;;) {
        if ((st = attr_getc(r, &c)) != STREAM_OK)
            return st;
        if (c == ':')
            break;
        if (c < '0' || c > '9') {
            r->err = "invalid character in attribute length";
            return STREAM_ERROR;
        }
        if (digits == 1 && v == 0) {
            r->err = "leading zero in attribute length";
            return STREAM_ERROR;
        }
        if (++digits > ATTR_LEN_DIGITS) {
            r->err = "attribute length too long";
            return STREAM_ERROR;
        }
        v = v * 10 + (unsigned)(c - '0');
    }
    if (digits == 0) {
        r->err = "missing attribute length";
        return STREAM_ERROR;
    }
    *len = v;
    return STREAM_OK;
}

static enum stream_status
attr_read_frame(struct attr_reader *r, struct attr_list *list, size_t max_total)
{
    char name[ATTR_NAME_MAX + 1];
    unsigned long long len;
    size_t total = 0;
    struct buf value = BUF_INIT;
    enum stream_status st;
    int c;

    /* The only place where EOF is clean: before a frame's first byte. */
    buf_reset(&r->tmp);
    st = stream_read_exact(r->s, &r->tmp, 1);
    if (st == STREAM_EOF)
        return STREAM_EOF;
    if (st != STREAM_OK) {
        r->err = st == STREAM_TIMEOUT ? "timeout" : stream_error(r->s);
        return st;
    }
    c = (unsigned char)r->tmp.data[0];

    while (c != '\n') {
        if (list->n >= ATTR_COUNT_MAX) {
            r->err = "too many attributes in frame";
            st = STREAM_TOOLONG;
            break;
        }
        if ((st = attr_read_name(r, c, name)) != STREAM_OK ||
            (st = attr_read_len(r, &len)) != STREAM_OK)
            break;
        if (len > max_total - total) {
            r->err = "frame too large";
            st = STREAM_TOOLONG;
            break;
        }
        buf_reset(&value);
        st = stream_read_exact(r->s, &value, (size_t)len);
        if (st == STREAM_EOF) {
            r->err = "truncated frame";
            st = STREAM_ERROR;
        } else if (st != STREAM_OK) {
            r->err = st == STREAM_TIMEOUT ? "timeout" : stream_error(r->s);
        }
        if (st != STREAM_OK)
            break;
        total += (size_t)len;
        if ((st = attr_getc(r, &c)) != STREAM_OK)
            break;
        if (c != '\n') {
            r->err = "attribute value length mismatch";
            st = STREAM_ERROR;
            break;
        }
        attr_list_add(list, name, value.data ? value.data : "", value.len);
        if ((st = attr_getc(r, &c)) != STREAM_OK)
            break;
    }
    buf_free(&value);
    return st;
}

enum stream_status attr_read(struct stream *s, struct attr_list *list,
                             size_t max_total, const char **err)
{
    struct attr_reader r = {s, BUF_INIT, NULL};
    enum stream_status st;

    attr_list_clear(list);
    st = attr_read_frame(&r, list, max_total);
    buf_free(&r.tmp);
    if (st != STREAM_OK)
        attr_list_clear(list);
    if (err)
        *err = st == STREAM_EOF ? "end of file" : r.err;
    return st;
}
