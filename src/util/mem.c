/*
 * mem - allocation that never returns NULL.
 *
 * Trusts nothing about sizes: every multiplication is overflow-checked.
 * Talks only to the C library and, on failure, to log_fatal(), which exits.
 * A process that cannot allocate cannot do useful mail work, so dying
 * loudly is better than propagating NULL through every caller.
 */
#include "util/mem.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

static void *mem_check(void *p, size_t size)
{
    if (p == NULL)
        log_fatal("out of memory allocating %zu bytes", size);
    return p;
}

void *xmalloc(size_t size)
{
    /* malloc(0) may return NULL legitimately; ask for one byte instead. */
    return mem_check(malloc(size ? size : 1), size);
}

void *xcalloc(size_t nmemb, size_t size)
{
    if (nmemb == 0 || size == 0)
        nmemb = size = 1;
    if (nmemb > SIZE_MAX / size)
        log_fatal("allocation overflow: %zu * %zu", nmemb, size);
    return mem_check(calloc(nmemb, size), nmemb * size);
}

void *xrealloc(void *ptr, size_t size)
{
    return mem_check(realloc(ptr, size ? size : 1), size);
}

void *xreallocarray(void *ptr, size_t nmemb, size_t size)
{
    if (size != 0 && nmemb > SIZE_MAX / size)
        log_fatal("allocation overflow: %zu * %zu", nmemb, size);
    return xrealloc(ptr, nmemb * size);
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p;

    if (len == SIZE_MAX)
        log_fatal("allocation overflow in xstrndup");
    p = xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = 0;
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *p;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (n < 0)
        log_fatal("out of memory in xasprintf");
    return p;
}
