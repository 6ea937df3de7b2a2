/*
 * attr_scan - parse one attribute frame (the grammar of util/attr.h) out
 * of bytes already in memory, for event-driven readers that cannot block
 * in attr_read() until a frame is complete (qmgr reading the replies of
 * its delivery agents from a libevent buffer).
 *
 * The grammar and limits are exactly attr_read()'s; only the input side
 * differs.  It has no mail knowledge and could move into util/attr.c.
 */
#ifndef GLOBAL_ATTR_SCAN_H
#define GLOBAL_ATTR_SCAN_H

#include <stddef.h>

#include "util/attr.h"

/*
 * Look for one complete frame at the start of data[0..len).
 *   1   a frame was parsed into list (cleared first); *consumed = bytes
 *   0   the bytes so far are a valid prefix: wait for more
 *  -1   grammar violation, too many attributes, or values totalling more
 *       than max_total (*err = static text); the peer is broken
 */
int attr_scan_frame(const char *data, size_t len, size_t max_total,
                    struct attr_list *list, size_t *consumed, const char **err);

#endif
