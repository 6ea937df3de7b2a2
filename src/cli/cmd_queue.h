/*
 * cmd_queue.h - what the queue sub-commands (queue, super, cat) share.
 * Implemented in cmd_queue.c, so that file stays whole on its own (its
 * unit test compiles it alone).
 *
 * Queue files are found by name under queue_directory: QUEUE/ID, or
 * QUEUE/X/ID when the queue is hashed one level deep by one hex digit
 * (Postfix's hash_queue_names; posthorn's qmgr keeps queues flat, copied
 * trees may not be).
 */
#ifndef CLI_CMD_QUEUE_H
#define CLI_CMD_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "util/buf.h"

struct config;

struct queue_item {
    const char *queue; /* static name: MAIL_QUEUE_* */
    char *id;
    char *path;
};

struct queue_items {
    struct queue_item *v;
    size_t n, cap;
};

/*
 * Collect the queue files (names that are valid queue IDs) of one queue
 * directory `dir`, descending into one-hex-digit hash directories when
 * top, sorted by ID.  A missing directory is an empty queue.  Returns 0
 * or -1 (message on stderr).
 */
int queue_scan(const char *queue, const char *dir, bool top,
               struct queue_items *out);
void queue_items_free(struct queue_items *l);

/*
 * Where queue file `id` is in `queue` right now: path set (reset first)
 * and true, or false when it is in neither place.
 */
bool queue_locate(const char *queue_dir, const char *queue, const char *id,
                  struct buf *path);

/* asctime() layout without the locale: "Mon Nov 23 10:18:01 2026". */
void queue_format_time(char *out, size_t size, time_t t);

/*
 * Load and check main.cf from confdir and make it the process-wide
 * configuration.  NULL after printing "prog: error" on stderr.
 */
struct config *queue_load_config(const char *confdir, const char *prog);

/*
 * Send one request (mail_proto.h: "F", "S<site>\n", "Q<ID>\n", "D", "I")
 * to qmgr's socket and hang up.  Needs queue_load_config() first.
 * Returns 0, or -1 with err set (qmgr not running, no permission).
 */
int queue_trigger(const char *request, size_t len, char *err, size_t errlen);

#endif
