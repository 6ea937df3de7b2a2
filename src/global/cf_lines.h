/*
 * cf_lines - the logical lines of main.cf and master.cf.
 *
 * Postfix's rules for both files: a line whose first non-blank character
 * is "#" is a comment and a blank line is nothing, wherever they appear
 * (also between the parts of a continued entry); a line that starts with
 * whitespace continues the entry before it (joined with one space); any
 * other line starts a new entry.  A continuation with nothing before it
 * and a NUL byte are errors "path:line: ...".
 */
#ifndef GLOBAL_CF_LINES_H
#define GLOBAL_CF_LINES_H

#include <stddef.h>

#include "util/buf.h"

/*
 * Call fn for each entry with the number of its first line and its text
 * (fn may modify text).  Stops at the first fn result < 0 and returns it;
 * fn fills err itself.  Returns 0 when every entry was handed over.
 */
typedef int (*cf_lines_fn)(void *ctx, int line, char *text);

int cf_lines(const char *path, const struct buf *file, cf_lines_fn fn,
             void *ctx, char *err, size_t errlen);

#endif
