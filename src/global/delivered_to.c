/*
 * delivered_to - find "Delivered-To:" values in a message header block.
 * See delivered_to.h.
 *
 * Input is message content (untrusted, any bytes, may contain NULs), read
 * with explicit lengths only.  A header line is "name: value" followed by
 * continuation lines that start with a blank; the block ends at the first
 * empty line.  Lines that are not headers (no colon) are skipped.
 */
#include "global/delivered_to.h"

#include <string.h>

#include "util/buf.h"
#include "util/str.h"

#define DELIVERED_TO_NAME "delivered-to"

size_t header_block_length(const char *data, size_t len, bool *complete)
{
    size_t pos = 0;

    while (pos < len) {
        const char *nl = memchr(data + pos, '\n', len - pos);

        if (nl == NULL)
            break;
        size_t line_len = (size_t)(nl - (data + pos));
        /* An empty line ("\n" or a bare "\r\n") ends the block. */
        if (line_len == 0 || (line_len == 1 && data[pos] == '\r')) {
            *complete = true;
            return pos + line_len + 1;
        }
        pos += line_len + 1;
    }
    *complete = false;
    return len;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Does the line [p, end) start with header name `name` (ASCII case
 * folded), optional blanks, then ':'?  Returns the offset after ':' or 0. */
static size_t header_name_match(const char *p, size_t len, const char *name)
{
    size_t n = strlen(name);
    size_t i;

    if (len < n + 1)
        return 0;
    for (i = 0; i < n; i++) {
        char c = p[i];

        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != name[i])
            return 0;
    }
    while (i < len && is_blank(p[i]))
        i++;
    if (i < len && p[i] == ':')
        return i + 1;
    return 0;
}

/* Clean one unfolded value into out: trim, drop "<>", lowercase. */
static void delivered_to_add(struct buf *value, struct argv *out)
{
    const char *s = value->data ? value->data : "";
    size_t start = 0;
    size_t end = value->len;

    while (start < end && (is_blank(s[start]) || s[start] == '\r'))
        start++;
    while (end > start && (is_blank(s[end - 1]) || s[end - 1] == '\r'))
        end--;
    if (end - start >= 2 && s[start] == '<' && s[end - 1] == '>') {
        start++;
        end--;
    }
    if (end == start)
        return;
    argv_addn(out, s + start, end - start);
    str_lower(out->v[out->n - 1]);
}

void delivered_to_collect(const char *data, size_t len, struct argv *out,
                          size_t max)
{
    struct buf value = BUF_INIT;
    bool complete;
    size_t block = header_block_length(data, len, &complete);
    size_t pos = 0;
    bool in_value = false;

    while (pos < block) {
        const char *line = data + pos;
        const char *nl = memchr(line, '\n', block - pos);
        size_t line_len = nl ? (size_t)(nl - line) : block - pos;
        size_t after_colon;

        pos += line_len + (nl ? 1 : 0);
        if (line_len > 0 && is_blank(line[0])) {
            /* Continuation: unfolding removes only the line break. */
            if (in_value)
                buf_append(&value, line, line_len);
            continue;
        }
        if (in_value) {
            if (out->n < max)
                delivered_to_add(&value, out);
            in_value = false;
        }
        after_colon = header_name_match(line, line_len, DELIVERED_TO_NAME);
        if (after_colon) {
            buf_reset(&value);
            buf_append(&value, line + after_colon, line_len - after_colon);
            in_value = true;
        }
    }
    if (in_value && out->n < max)
        delivered_to_add(&value, out);
    buf_free(&value);
}

bool delivered_to_match(const struct argv *values, const char *rcpt)
{
    for (size_t i = 0; i < values->n; i++)
        if (str_eq_ci(values->v[i], rcpt))
            return true;
    return false;
}
