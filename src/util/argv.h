/*
 * argv - a growable NULL-terminated vector of owned strings.
 */
#ifndef UTIL_ARGV_H
#define UTIL_ARGV_H

#include <stddef.h>

struct argv {
    char **v;      /* v[n] == NULL always (when v != NULL) */
    size_t n;
    size_t cap;
};

#define ARGV_INIT {NULL, 0, 0}

void argv_add(struct argv *a, const char *s);          /* copies s */
void argv_addn(struct argv *a, const char *s, size_t n);
void argv_free(struct argv *a);
/*
 * Split s on any character in `seps` (e.g. ", \t\r\n"), skipping empty
 * fields, appending each field to a.  Used for Postfix list parameters.
 */
void argv_split(struct argv *a, const char *s, const char *seps);

#endif
