/*
 * delivered_to - mail-loop detection with the "Delivered-To:" header, as
 * Postfix's local agent does it: before delivering to a recipient, look at
 * the message's header block; if it already says "Delivered-To: <rcpt>",
 * the message has been here before (an alias or forward loop) and must be
 * bounced ("5.4.6 mail forwarding loop for <rcpt>") instead of delivered
 * once more.
 *
 * The header block is untrusted message content: it is scanned with
 * explicit lengths (no NUL termination needed), folded lines are unfolded,
 * and the number of values kept is bounded.
 */
#ifndef GLOBAL_DELIVERED_TO_H
#define GLOBAL_DELIVERED_TO_H

#include <stdbool.h>
#include <stddef.h>

#include "util/argv.h"

/* Values kept per message; more Delivered-To headers are ignored. */
#define DELIVERED_TO_MAX 1000

/*
 * Length of the header block at the start of data: up to and including
 * the empty line that ends it.  *complete is false when data ends before
 * that empty line (more data may follow, or the message has no body).
 */
size_t header_block_length(const char *data, size_t len, bool *complete);

/*
 * Append to out the value of every Delivered-To header in the header
 * block data[0..len): unfolded, blanks and enclosing "<>" removed,
 * lowercased (ASCII).  At most max values in total end up in out.
 */
void delivered_to_collect(const char *data, size_t len, struct argv *out,
                          size_t max);

/* true when rcpt equals one of values, ignoring ASCII case. */
bool delivered_to_match(const struct argv *values, const char *rcpt);

#endif
