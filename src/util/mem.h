/*
 * mem - allocation that never returns NULL.
 *
 * Every allocation in posthorn goes through these.  On failure they log a
 * fatal error and exit; callers never check for NULL.  xreallocarray checks
 * nmemb*size for overflow the way OpenBSD's reallocarray does.
 */
#ifndef UTIL_MEM_H
#define UTIL_MEM_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Like asprintf, but never fails. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
