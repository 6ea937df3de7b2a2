/*
 * buf - growable, length-counted byte buffer.
 *
 * data is always NUL-terminated (data[len] == 0) so it can be used as a C
 * string when it holds text, but len is authoritative: a buf may hold NULs.
 * A zeroed struct buf (BUF_INIT) is a valid empty buffer.
 */
#ifndef UTIL_BUF_H
#define UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

#define BUF_INIT {NULL, 0, 0}

void buf_init(struct buf *b);
void buf_free(struct buf *b);
/* Make room for at least `extra` more bytes after len. */
void buf_reserve(struct buf *b, size_t extra);
void buf_reset(struct buf *b);                  /* len = 0 */
void buf_truncate(struct buf *b, size_t len);   /* len = min(len, b->len) */
void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, int c);
void buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Remove the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* Empty string "" when the buffer has never been allocated. */
const char *buf_cstr(const struct buf *b);
/* Detach the data (caller frees); the buf becomes empty. */
char *buf_steal(struct buf *b);

#endif
