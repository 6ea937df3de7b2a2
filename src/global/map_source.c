/*
 * map_source - read a table source file (postmap format) for lmdb builds
 * and texthash tables; its logical-line reader (comments, continuation
 * lines, bounds) also reads the pattern tables' rule files.
 *
 * Format, as Postfix's:
 *   key  whitespace  value
 *   # a comment (first non-blank character), skipped
 *     a line starting with whitespace continues the previous entry
 *   (an empty line ends an entry)
 * Alias files also work: "name: value" (a trailing ':' on the key is
 * dropped) and "name:value" (split at the first ':' when no whitespace
 * separates a value).  Keys may be "quoted" to hold whitespace; they are
 * lowercased, as every table type is case-insensitive.
 *
 * The file is administrator data but still bounded: MAP_SOURCE_SIZE_MAX
 * bytes in all, MAP_SOURCE_LINE_MAX per entry, no NUL bytes.  Every
 * error names "path:line".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "global/map_impl.h"
#include "util/buf.h"
#include "util/mem.h"
#include "util/str.h"

static bool is_blank(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* Split one logical line into key and value and hand them to fn. */
static int source_entry(char *text, const char *path, long line,
                        map_source_fn fn, void *ctx, char *err, size_t errlen)
{
    struct buf key = BUF_INIT;
    char *p = text, *value;
    int rc;

    if (*p == '"') {
        for (p++; *p != '"'; p++) {
            if (*p == 0) {
                snprintf(err, errlen, "%s:%ld: missing '\"' after key", path,
                         line);
                buf_free(&key);
                return -1;
            }
            if (*p == '\\' && p[1] != 0)
                p++;
            buf_putc(&key, *p);
        }
        p++;
        if (*p == ':')
            p++;
        if (*p != 0 && !is_blank(*p)) {
            snprintf(err, errlen, "%s:%ld: text after quoted key", path, line);
            buf_free(&key);
            return -1;
        }
    } else {
        while (*p != 0 && !is_blank(*p))
            p++;
        buf_append(&key, text, p - text);
        if (key.len > 1 && key.data[key.len - 1] == ':')
            buf_truncate(&key, key.len - 1);
    }
    value = str_trim(p);
    if (*value == 0 && *text != '"' && key.len > 0) {
        /* "name:value" alias syntax without blanks: split the key copy. */
        char *colon = strchr(key.data, ':');

        if (colon != NULL && colon != key.data) {
            *colon = 0;
            key.len = colon - key.data;
            value = str_trim(colon + 1);
        }
    }
    if (key.len == 0 || *value == 0) {
        snprintf(err, errlen, "%s:%ld: expected \"key value\"", path, line);
        buf_free(&key);
        return -1;
    }
    str_lower(key.data);
    rc = fn(key.data, value, path, line, ctx, err, errlen);
    buf_free(&key);
    return rc;
}

int map_source_lines(const char *path, map_source_line_fn fn, void *ctx,
                     char *err, size_t errlen)
{
    FILE *fp;
    struct stat st;
    char *line = NULL;
    size_t cap = 0, total = 0;
    ssize_t n;
    long lineno = 0, entry_line = 0;
    struct buf entry = BUF_INIT;
    int rc = 0;

    if ((fp = fopen(path, "re")) == NULL) {
        snprintf(err, errlen, "open %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        fclose(fp);
        return -1;
    }
    if (st.st_size > MAP_SOURCE_SIZE_MAX) {
        snprintf(err, errlen, "%s: larger than %ld bytes", path,
                 (long)MAP_SOURCE_SIZE_MAX);
        fclose(fp);
        return -1;
    }
    /* The size check bounds getline's allocation even for one long line. */
    while (rc == 0 && (n = getline(&line, &cap, fp)) >= 0) {
        char *p = line;

        lineno++;
        total += n;
        if (total > (size_t)MAP_SOURCE_SIZE_MAX) {
            snprintf(err, errlen, "%s: larger than %ld bytes", path,
                     (long)MAP_SOURCE_SIZE_MAX);
            rc = -1;
            break;
        }
        if (memchr(line, 0, n) != NULL) {
            snprintf(err, errlen, "%s:%ld: NUL byte in line", path, lineno);
            rc = -1;
            break;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        while (is_blank(*p))
            p++;
        if (*p == '#')
            continue;
        if (*p == 0) {
            if (entry.len > 0)
                rc = fn(entry.data, path, entry_line, ctx, err, errlen);
            buf_reset(&entry);
            continue;
        }
        if (p != line) {
            if (entry.len == 0) {
                snprintf(err, errlen,
                         "%s:%ld: continuation line without an entry", path,
                         lineno);
                rc = -1;
                break;
            }
            buf_putc(&entry, ' ');
        } else {
            if (entry.len > 0)
                rc = fn(entry.data, path, entry_line, ctx, err, errlen);
            buf_reset(&entry);
            entry_line = lineno;
            if (rc < 0)
                break;
        }
        buf_puts(&entry, p);
        if (entry.len > MAP_SOURCE_LINE_MAX) {
            snprintf(err, errlen, "%s:%ld: entry longer than %d bytes", path,
                     entry_line, MAP_SOURCE_LINE_MAX);
            rc = -1;
        }
    }
    if (rc == 0 && ferror(fp)) {
        snprintf(err, errlen, "read %s: %s", path, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && entry.len > 0)
        rc = fn(entry.data, path, entry_line, ctx, err, errlen);
    free(line);
    buf_free(&entry);
    fclose(fp);
    return rc;
}

struct source_ctx {
    map_source_fn fn;
    void *ctx;
};

static int source_line(char *text, const char *path, long line, void *ctx,
                       char *err, size_t errlen)
{
    struct source_ctx *sc = ctx;

    return source_entry(text, path, line, sc->fn, sc->ctx, err, errlen);
}

int map_source_read(const char *path, map_source_fn fn, void *ctx, char *err,
                    size_t errlen)
{
    struct source_ctx sc = {fn, ctx};

    return map_source_lines(path, source_line, &sc, err, errlen);
}
