/*
 * htable - string-keyed hash table.
 *
 * Separate chaining with FNV-1a hashing; the bucket array doubles when the
 * load factor passes 1.  Keys are copied and owned by the table; values are
 * opaque caller pointers.  Keys may come from the network, so FNV-1a is
 * seeded per table to make precomputed collision sets less useful; the
 * table still works (only slower) under a worst-case key set.
 */
#include "util/htable.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/mem.h"
#include "util/procpid.h"

struct htable_entry {
    struct htable_entry *next;
    uint64_t hash;
    void *value;
    char key[];
};

struct htable {
    struct htable_entry **buckets;
    size_t size; /* power of two */
    size_t count;
    uint64_t seed;
};

static uint64_t htable_hash(const struct htable *t, const char *key)
{
    uint64_t h = 14695981039346656037ULL ^ t->seed;

    for (; *key; key++) {
        h ^= (unsigned char)*key;
        h *= 1099511628211ULL;
    }
    return h;
}

struct htable *htable_new(size_t size_hint)
{
    struct htable *t = xcalloc(1, sizeof(*t));
    size_t size = 16;

    while (size < size_hint && size < ((size_t)1 << 30))
        size *= 2;
    t->buckets = xcalloc(size, sizeof(*t->buckets));
    t->size = size;
    t->seed = ((uint64_t)time(NULL) << 20) ^ (uint64_t)proc_pid() ^
              (uint64_t)(uintptr_t)t;
    return t;
}

void htable_free(struct htable *t, void (*free_value)(void *))
{
    size_t i;
    struct htable_entry *e, *next;

    if (t == NULL)
        return;
    for (i = 0; i < t->size; i++) {
        for (e = t->buckets[i]; e; e = next) {
            next = e->next;
            if (free_value)
                free_value(e->value);
            free(e);
        }
    }
    free(t->buckets);
    free(t);
}

static void htable_grow(struct htable *t)
{
    size_t nsize = t->size * 2, i;
    struct htable_entry **nb, *e, *next;

    if (nsize < t->size)
        return;
    nb = xcalloc(nsize, sizeof(*nb));
    for (i = 0; i < t->size; i++) {
        for (e = t->buckets[i]; e; e = next) {
            next = e->next;
            e->next = nb[e->hash & (nsize - 1)];
            nb[e->hash & (nsize - 1)] = e;
        }
    }
    free(t->buckets);
    t->buckets = nb;
    t->size = nsize;
}

static struct htable_entry **htable_find(const struct htable *t,
                                         const char *key, uint64_t hash)
{
    struct htable_entry **ep = &t->buckets[hash & (t->size - 1)];

    for (; *ep; ep = &(*ep)->next)
        if ((*ep)->hash == hash && strcmp((*ep)->key, key) == 0)
            return ep;
    return ep;
}

void *htable_put(struct htable *t, const char *key, void *value)
{
    uint64_t hash = htable_hash(t, key);
    struct htable_entry **ep = htable_find(t, key, hash), *e;
    size_t klen;
    void *old;

    if (*ep) {
        old = (*ep)->value;
        (*ep)->value = value;
        return old;
    }
    klen = strlen(key);
    e = xmalloc(sizeof(*e) + klen + 1);
    memcpy(e->key, key, klen + 1);
    e->hash = hash;
    e->value = value;
    e->next = NULL;
    *ep = e;
    t->count++;
    if (t->count > t->size)
        htable_grow(t);
    return NULL;
}

void *htable_get(const struct htable *t, const char *key)
{
    struct htable_entry **ep = htable_find(t, key, htable_hash(t, key));

    return *ep ? (*ep)->value : NULL;
}

void *htable_del(struct htable *t, const char *key)
{
    struct htable_entry **ep = htable_find(t, key, htable_hash(t, key)), *e;
    void *value;

    if ((e = *ep) == NULL)
        return NULL;
    *ep = e->next;
    value = e->value;
    free(e);
    t->count--;
    return value;
}

size_t htable_count(const struct htable *t)
{
    return t->count;
}

void htable_walk(const struct htable *t,
                 int (*fn)(const char *key, void *value, void *ctx), void *ctx)
{
    size_t i;
    struct htable_entry *e, *next;

    for (i = 0; i < t->size; i++) {
        for (e = t->buckets[i]; e; e = next) {
            /* Fetch next first so fn may delete the current entry. */
            next = e->next;
            if (fn(e->key, e->value, ctx))
                return;
        }
    }
}
