/*
 * htable - string-keyed hash table (open hashing, grows by doubling).
 * Keys are copied; values are caller-owned pointers.
 */
#ifndef UTIL_HTABLE_H
#define UTIL_HTABLE_H

#include <stddef.h>

struct htable;

struct htable *htable_new(size_t size_hint);
/* Free the table; free_value (may be NULL) is called on each value. */
void htable_free(struct htable *t, void (*free_value)(void *));
/* Insert or replace; returns the previous value or NULL. */
void *htable_put(struct htable *t, const char *key, void *value);
void *htable_get(const struct htable *t, const char *key);
/* Remove; returns the value or NULL. */
void *htable_del(struct htable *t, const char *key);
size_t htable_count(const struct htable *t);
/* Iterate in unspecified order; stop early when fn returns nonzero. */
void htable_walk(const struct htable *t,
                 int (*fn)(const char *key, void *value, void *ctx),
                 void *ctx);

#endif
