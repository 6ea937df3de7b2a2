/*
 * defer_log - the per-message delay reasons in queue_directory/defer/.
 * See defer_log.h.  Writers sanitise, readers distrust: the file lives in
 * the queue and may be damaged by a crash or an administrator's editor.
 */
#include "global/defer_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "global/mail_proto.h"
#include "util/fsutil.h"
#include "util/mem.h"

static void defer_log_field(struct buf *out, const char *s, size_t max)
{
    for (size_t i = 0; i < max && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '\t' || c == '\r' || c == '\n')
            buf_putc(out, ' ');
        else if (c < 0x20 || c == 0x7f)
            buf_putc(out, '?');
        else
            buf_putc(out, (char)c);
    }
}

void defer_log_line(struct buf *out, const char *addr, const char *reason)
{
    defer_log_field(out, addr, DEFER_LOG_REASON_MAX);
    buf_putc(out, '\t');
    defer_log_field(out, reason ? reason : "", DEFER_LOG_REASON_MAX);
    buf_putc(out, '\n');
}

static int defer_log_path(struct buf *path, const char *queue_dir,
                          const char *id, char *err, size_t errlen)
{
    if (!mail_queue_id_ok(id)) {
        snprintf(err, errlen, "invalid queue ID");
        return -1;
    }
    buf_printf(path, "%s/" MAIL_QUEUE_DEFER_LOG "/%s", queue_dir, id);
    return 0;
}

int defer_log_write(const char *queue_dir, const char *id,
                    const struct buf *content, char *err, size_t errlen)
{
    struct buf path = BUF_INIT;
    int rc = -1;

    if (defer_log_path(&path, queue_dir, id, err, errlen) < 0)
        goto out;
    if (file_write_atomic(path.data, content->data ? content->data : "",
                          content->len, 0600) < 0) {
        snprintf(err, errlen, "write %s: %s", path.data, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    buf_free(&path);
    return rc;
}

int defer_log_remove(const char *queue_dir, const char *id, char *err,
                     size_t errlen)
{
    struct buf path = BUF_INIT;
    int rc = -1;

    if (defer_log_path(&path, queue_dir, id, err, errlen) < 0)
        goto out;
    if (unlink(path.data) < 0 && errno != ENOENT) {
        snprintf(err, errlen, "unlink %s: %s", path.data, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    buf_free(&path);
    return rc;
}

size_t defer_log_parse(const char *data, size_t len,
                       struct defer_log_entry **entries)
{
    struct defer_log_entry *v = NULL;
    size_t n = 0, cap = 0;
    size_t pos = 0;

    while (pos < len) {
        const char *line = data + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl ? (size_t)(nl - line) : len - pos;
        const char *tab = memchr(line, '\t', line_len);

        pos += line_len + (nl ? 1 : 0);
        /* No tab, an empty address or an embedded NUL: not ours. */
        if (tab == NULL || tab == line || memchr(line, 0, line_len))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            v = xreallocarray(v, cap, sizeof(*v));
        }
        size_t reason_len = line_len - (size_t)(tab + 1 - line);
        if (reason_len > DEFER_LOG_REASON_MAX)
            reason_len = DEFER_LOG_REASON_MAX;
        v[n].addr = xstrndup(line, (size_t)(tab - line));
        v[n].reason = xstrndup(tab + 1, reason_len);
        n++;
    }
    *entries = v;
    return n;
}

long defer_log_read(const char *queue_dir, const char *id,
                    struct defer_log_entry **entries, char *err, size_t errlen)
{
    struct buf path = BUF_INIT;
    struct buf data = BUF_INIT;
    long rc = -1;

    *entries = NULL;
    if (defer_log_path(&path, queue_dir, id, err, errlen) < 0)
        goto out;
    if (file_read_all(path.data, &data, DEFER_LOG_FILE_MAX) < 0) {
        if (errno == ENOENT) {
            rc = 0;
            goto out;
        }
        snprintf(err, errlen, "read %s: %s", path.data, strerror(errno));
        goto out;
    }
    rc = (long)defer_log_parse(data.data ? data.data : "", data.len, entries);
out:
    buf_free(&path);
    buf_free(&data);
    return rc;
}

void defer_log_free(struct defer_log_entry *entries, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(entries[i].addr);
        free(entries[i].reason);
    }
    free(entries);
}
