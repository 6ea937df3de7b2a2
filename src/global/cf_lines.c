/*
 * cf_lines - split main.cf / master.cf text into logical lines (see
 * cf_lines.h).  Works on a buffer already read and bounded by the caller;
 * allocates one growing buffer for the entry being joined.
 */
#include "global/cf_lines.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool cf_blank(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
           c == '\f';
}

int cf_lines(const char *path, const struct buf *file, cf_lines_fn fn,
             void *ctx, char *err, size_t errlen)
{
    struct buf entry = BUF_INIT;
    const char *p = buf_cstr(file), *end = p + file->len;
    int lineno = 0, start_line = 0, rc = 0;

    while (p < end && rc >= 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        size_t skip = 0;

        lineno++;
        if (memchr(p, 0, len) != NULL) {
            snprintf(err, errlen, "%s:%d: NUL byte in line", path, lineno);
            rc = -1;
            break;
        }
        /* trailing blanks (a CR from a DOS editor) are never part of it */
        while (len > 0 && cf_blank((unsigned char)p[len - 1]))
            len--;
        while (skip < len && cf_blank((unsigned char)p[skip]))
            skip++;
        if (skip == len || p[skip] == '#') {
            /* comment or blank: skipped, even inside a continued entry */
        } else if (skip > 0) {
            if (start_line == 0) {
                snprintf(err, errlen,
                         "%s:%d: continuation line (starts "
                         "with whitespace) without an entry before it",
                         path, lineno);
                rc = -1;
                break;
            }
            buf_putc(&entry, ' ');
            buf_append(&entry, p + skip, len - skip);
        } else {
            if (start_line != 0)
                rc = fn(ctx, start_line, entry.data);
            buf_reset(&entry);
            buf_append(&entry, p, len);
            start_line = lineno;
        }
        p = nl != NULL ? nl + 1 : end;
    }
    if (rc >= 0 && start_line != 0)
        rc = fn(ctx, start_line, entry.data);
    buf_free(&entry);
    return rc < 0 ? rc : 0;
}
