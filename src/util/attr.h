/*
 * attr - the framed attribute protocol every posthorn process speaks.
 *
 * A frame is a list of attributes followed by an empty line:
 *
 *     name ":" decimal-length ":" value-bytes "\n"
 *     ...
 *     "\n"
 *
 * Names are 1..64 characters of [a-z0-9_]; values are arbitrary bytes
 * (NUL included) because the length is explicit.  Names may repeat (for
 * lists such as recipients) and order is kept.  A reader bounds the total
 * size of a frame and the number of attributes, and rejects anything that
 * does not follow the grammar exactly: peers are not trusted.
 *
 * Example:  "queue_id:10:4F2A1B3C9D\nstatus:1:0\n\n"
 */
#ifndef UTIL_ATTR_H
#define UTIL_ATTR_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/stream.h"

#define ATTR_NAME_MAX 64
#define ATTR_COUNT_MAX 100000

struct attr {
    char *name;    /* NUL-terminated */
    char *value;   /* NUL-terminated copy; may contain NULs, see len */
    size_t len;
};

struct attr_list {
    struct attr *v;
    size_t n;
    size_t cap;
};

#define ATTR_LIST_INIT {NULL, 0, 0}

/* Building a frame (into a buf, then stream_write it or use attr_send). */
void attr_put(struct buf *frame, const char *name, const void *value,
              size_t len);
void attr_put_str(struct buf *frame, const char *name, const char *value);
void attr_put_int(struct buf *frame, const char *name, long long value);
void attr_end(struct buf *frame);  /* appends the terminating "\n" */

/*
 * Read one frame.  max_total bounds the sum of value lengths.
 * Returns STREAM_OK, or STREAM_EOF (clean EOF before any byte of a frame),
 * STREAM_TIMEOUT, STREAM_ERROR (includes grammar violations; *err set),
 * STREAM_TOOLONG (frame exceeded max_total).
 * The list is cleared first.
 */
enum stream_status attr_read(struct stream *s, struct attr_list *list,
                             size_t max_total, const char **err);

void attr_list_clear(struct attr_list *list);
void attr_list_free(struct attr_list *list);
void attr_list_add(struct attr_list *list, const char *name,
                   const void *value, size_t len);

/* First attribute with that name, or NULL. */
const struct attr *attr_find(const struct attr_list *list, const char *name);
/* The value as text, or NULL if it holds a NUL byte. */
const char *attr_text(const struct attr *a);
/* Value as string, or NULL if absent. */
const char *attr_get(const struct attr_list *list, const char *name);
/* Value as integer; false if absent or not a decimal number. */
bool attr_get_int(const struct attr_list *list, const char *name,
                  long long *out);

#endif
