/*
 * defer_log - queue_directory/defer/<ID>: why the recipients of a deferred
 * message are still waiting.  Written by qmgr each time it moves a message
 * to deferred/, read by the queue listing (`posthorn queue -p / -j`) for
 * delay_reason, removed with the message.
 *
 * Format: one line per deferred recipient,  "address" TAB "reason" LF.
 * The reason is the text logged in "status=deferred (reason)" without the
 * DSN code.  Writers replace TAB, CR, LF and other control characters in
 * both fields with '?'/' ' so the format cannot be broken by what a remote
 * server said; readers still treat the file as untrusted (bounded size,
 * bounded line length, malformed lines skipped).
 *
 * The file is replaced atomically (tmp + rename), so a reader sees the old
 * or the new list, never a torn one.
 */
#ifndef GLOBAL_DEFER_LOG_H
#define GLOBAL_DEFER_LOG_H

#include <stddef.h>

#include "util/buf.h"

/* Reasons are cut to this many bytes; files larger than this are cut. */
#define DEFER_LOG_REASON_MAX 1000
#define DEFER_LOG_FILE_MAX (4 * 1024 * 1024)

struct defer_log_entry {
    char *addr;
    char *reason;
};

/* Append one sanitised "addr\treason\n" line to out. */
void defer_log_line(struct buf *out, const char *addr, const char *reason);

/*
 * Replace queue_dir/defer/id with `content` (lines made by defer_log_line).
 * Returns 0 or -1 (err set).
 */
int defer_log_write(const char *queue_dir, const char *id,
                    const struct buf *content, char *err, size_t errlen);

/* Remove queue_dir/defer/id; a missing file is fine.  0 or -1 (err). */
int defer_log_remove(const char *queue_dir, const char *id, char *err,
                     size_t errlen);

/*
 * Parse a defer log's text (untrusted).  Returns the number of entries
 * (*entries is allocated, free with defer_log_free).
 */
size_t defer_log_parse(const char *data, size_t len,
                       struct defer_log_entry **entries);
/*
 * Read queue_dir/defer/id.  Returns the number of entries, 0 when the file
 * does not exist, -1 on other errors (err set).
 */
long defer_log_read(const char *queue_dir, const char *id,
                    struct defer_log_entry **entries, char *err, size_t errlen);
void defer_log_free(struct defer_log_entry *entries, size_t n);

#endif
