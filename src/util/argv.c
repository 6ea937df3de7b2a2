/*
 * argv - a growable NULL-terminated vector of owned strings.
 *
 * Used for command lines and Postfix list parameters.  Strings are always
 * copied, so the vector never points into caller memory; v[n] is kept NULL
 * so a.v can be handed to execv().  Allocation failure is fatal (mem.c).
 */
#include "util/argv.h"

#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

static void argv_grow(struct argv *a)
{
    /* Room for one more string plus the NULL terminator. */
    if (a->n + 2 > a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 8;
        a->v = xreallocarray(a->v, ncap, sizeof(*a->v));
        a->cap = ncap;
    }
}

void argv_addn(struct argv *a, const char *s, size_t n)
{
    argv_grow(a);
    a->v[a->n++] = xstrndup(s, n);
    a->v[a->n] = NULL;
}

void argv_add(struct argv *a, const char *s)
{
    argv_addn(a, s, strlen(s));
}

void argv_free(struct argv *a)
{
    size_t i;

    for (i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    a->v = NULL;
    a->n = 0;
    a->cap = 0;
}

void argv_split(struct argv *a, const char *s, const char *seps)
{
    size_t len;

    for (;;) {
        s += strspn(s, seps);
        if (*s == 0)
            break;
        len = strcspn(s, seps);
        argv_addn(a, s, len);
        s += len;
    }
}
