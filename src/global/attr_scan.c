/*
 * attr_scan - incremental attribute-frame parser.  See attr_scan.h.
 * Input comes from another process and is not trusted: every element is
 * bounded before it is waited for, so a peer cannot make us buffer
 * without limit by sending a frame that never ends.
 */
#include "global/attr_scan.h"

#include <string.h>

/* Longest decimal length field ("1048576" needs 7). */
#define ATTR_SCAN_LEN_DIGITS 10

static int attr_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

int attr_scan_frame(const char *data, size_t len, size_t max_total,
                    struct attr_list *list, size_t *consumed, const char **err)
{
    size_t pos = 0;
    size_t total = 0;
    size_t count = 0;

    attr_list_clear(list);
    for (;;) {
        size_t name_start = pos;
        size_t name_len;
        size_t value_len = 0;
        size_t digits = 0;

        if (pos >= len)
            goto more;
        if (data[pos] == '\n') {
            *consumed = pos + 1;
            return 1;
        }
        while (pos < len && attr_name_char(data[pos])) {
            if (pos - name_start >= ATTR_NAME_MAX) {
                *err = "attribute name too long";
                goto bad;
            }
            pos++;
        }
        if (pos >= len)
            goto more;
        name_len = pos - name_start;
        if (name_len == 0 || data[pos] != ':') {
            *err = "bad attribute name";
            goto bad;
        }
        pos++;
        while (pos < len && data[pos] >= '0' && data[pos] <= '9') {
            if (++digits > ATTR_SCAN_LEN_DIGITS) {
                *err = "attribute length too long";
                goto bad;
            }
            value_len = value_len * 10 + (size_t)(data[pos] - '0');
            pos++;
        }
        if (pos >= len)
            goto more;
        if (digits == 0 || data[pos] != ':') {
            *err = "bad attribute length";
            goto bad;
        }
        pos++;
        if (value_len > max_total || total + value_len > max_total) {
            *err = "frame too large";
            goto bad;
        }
        if (++count > ATTR_COUNT_MAX) {
            *err = "too many attributes";
            goto bad;
        }
        total += value_len;
        if (len - pos < value_len + 1)
            goto more;
        if (data[pos + value_len] != '\n') {
            *err = "attribute value not followed by newline";
            goto bad;
        }
        char name[ATTR_NAME_MAX + 1];
        memcpy(name, data + name_start, name_len);
        name[name_len] = 0;
        attr_list_add(list, name, data + pos, value_len);
        pos += value_len + 1;
    }
more:
    attr_list_clear(list);
    return 0;
bad:
    attr_list_clear(list);
    return -1;
}
