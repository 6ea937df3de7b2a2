/*
 * maps - the lookup-table layer: "type:name" to an open table, lookups,
 * and lists of tables with Postfix's address search order.
 *
 * Table names come from main.cf (trusted administrator text, but still
 * checked: unknown types and bad syntax are errors naming the table).
 * Keys come from the network: they are bounded (MAP_KEY_MAX; longer keys
 * are never found) and lowercased here once, since every indexed type is
 * case-insensitive.  Pattern types (pcre:, regexp:, cidr:, socketmap:)
 * get the key as given, as Postfix passes them, with the larger bound
 * MAP_PATTERN_KEY_MAX.  A table that cannot be read is MAP_ERROR, which
 * callers turn into a temporary failure, never into "not found".
 *
 * "proxy:type:name" opens type:name directly: Postfix's proxymap exists
 * to reach tables from a chroot, and posthorn workers read tables
 * in-process, so accepting the prefix keeps migrated configurations
 * working without changing what is looked up.
 */
#include "global/maps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "global/addr.h"
#include "global/config.h"
#include "global/map_impl.h"
#include "util/mem.h"
#include "util/str.h"

#define MAPLIST_MAX 100 /* tables in one list parameter */

struct map *map_open(const char *spec, char *err, size_t errlen)
{
    const char *colon, *name = spec;
    const struct map_type *type;
    char tname[32];
    struct map *m;

    if (strncmp(name, "proxy:", 6) == 0)
        name += 6;
    colon = strchr(name, ':');
    if (colon == NULL || colon == name) {
        snprintf(err, errlen, "table '%s': expected type:name", spec);
        return NULL;
    }
    if ((size_t)(colon - name) >= sizeof(tname)) {
        snprintf(err, errlen, "table '%s': unsupported map type", spec);
        return NULL;
    }
    memcpy(tname, name, colon - name);
    tname[colon - name] = 0;
    if ((type = map_type_find(tname)) == NULL) {
        snprintf(err, errlen, "table '%s': unsupported map type '%s'", spec,
                 tname);
        return NULL;
    }
    if (colon[1] == 0) {
        snprintf(err, errlen, "table '%s': missing table name", spec);
        return NULL;
    }
    m = xcalloc(1, sizeof(*m));
    m->type = type;
    m->spec = xstrdup(spec);
    if (type->open(m, colon + 1, err, errlen) < 0) {
        free(m->spec);
        free(m);
        return NULL;
    }
    return m;
}

enum map_result map_lookup(struct map *m, const char *key, struct buf *result,
                           char *err, size_t errlen)
{
    enum map_result r;
    char *folded;

    buf_reset(result);
    if (m->type->flags & MAP_TYPE_PATTERN) {
        if (strnlen(key, MAP_PATTERN_KEY_MAX + 1) > MAP_PATTERN_KEY_MAX)
            return MAP_NOTFOUND;
        r = m->type->lookup(m, key, result, err, errlen);
        if (r != MAP_FOUND)
            buf_reset(result);
        return r;
    }
    if (strnlen(key, MAP_KEY_MAX + 1) > MAP_KEY_MAX)
        return MAP_NOTFOUND;
    folded = addr_fold(key);
    r = m->type->lookup(m, folded, result, err, errlen);
    free(folded);
    if (r != MAP_FOUND)
        buf_reset(result);
    return r;
}

void map_close(struct map *m)
{
    if (m == NULL)
        return;
    m->type->close(m);
    free(m->spec);
    free(m);
}

const char *map_spec(const struct map *m)
{
    return m->spec;
}

int map_walk(struct map *m, map_walk_fn fn, void *ctx, char *err, size_t errlen)
{
    if (m->type->walk == NULL) {
        snprintf(err, errlen, "table '%s': a %s: table cannot be listed",
                 m->spec, m->type->name);
        return -1;
    }
    return m->type->walk(m, fn, ctx, err, errlen);
}

int map_delete(struct map *m, const char *key, char *err, size_t errlen)
{
    char *folded;
    int rc;

    if (m->type->del == NULL) {
        snprintf(err, errlen, "table '%s': a %s: table cannot be changed",
                 m->spec, m->type->name);
        return -1;
    }
    if (strnlen(key, MAP_KEY_MAX + 1) > MAP_KEY_MAX)
        return 0;
    folded = addr_fold(key);
    rc = m->type->del(m, folded, err, errlen);
    free(folded);
    return rc;
}

void maps_configure(struct config *cfg)
{
    long long t = config_time(cfg, "socketmap_timeout");

    maps_set_lmdb_map_size((size_t)config_size(cfg, "lmdb_map_size"));
    map_socketmap_timeout_ms = t > 3600 ? 3600 * 1000 : (int)t * 1000;
}

int map_build(const char *type, const char *path, char *err, size_t errlen)
{
    const struct map_type *t;

    if (type == NULL || *type == 0)
        type = "lmdb";
    if ((t = map_type_find(type)) == NULL) {
        snprintf(err, errlen, "unsupported map type '%s'", type);
        return -1;
    }
    if (t->build == NULL) {
        snprintf(err, errlen,
                 "a %s: table is read as it is and needs no building", type);
        return -1;
    }
    return t->build(path, err, errlen);
}

int maps_split_list(const char *value, struct argv *out, char *err,
                    size_t errlen)
{
    const char *p = value, *start = NULL;
    int depth = 0;

    for (;; p++) {
        char c = *p;

        if (c == 0 || (depth == 0 && strchr(", \t\r\n", c) != NULL)) {
            if (start != NULL)
                argv_addn(out, start, p - start);
            start = NULL;
            if (c == 0)
                break;
            continue;
        }
        if (start == NULL)
            start = p;
        if (c == '{') {
            depth++;
        } else if (c == '}' && --depth < 0) {
            snprintf(err, errlen, "unbalanced '}' in '%s'", value);
            return -1;
        }
    }
    if (depth != 0) {
        snprintf(err, errlen, "missing '}' in '%s'", value);
        return -1;
    }
    return 0;
}

struct maplist {
    struct map **v;
    size_t n;
};

struct maplist *maplist_open(const char *value, char *err, size_t errlen)
{
    struct argv names = ARGV_INIT;
    struct maplist *l = xcalloc(1, sizeof(*l));

    if (maps_split_list(value, &names, err, errlen) < 0)
        goto fail;
    if (names.n > MAPLIST_MAX) {
        snprintf(err, errlen, "more than %d tables in '%s'", MAPLIST_MAX,
                 value);
        goto fail;
    }
    if (names.n > 0)
        l->v = xcalloc(names.n, sizeof(*l->v));
    for (size_t i = 0; i < names.n; i++) {
        if ((l->v[i] = map_open(names.v[i], err, errlen)) == NULL)
            goto fail;
        l->n++;
    }
    argv_free(&names);
    return l;

fail:
    argv_free(&names);
    maplist_close(l);
    return NULL;
}

void maplist_close(struct maplist *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++)
        map_close(l->v[i]);
    free(l->v);
    free(l);
}

bool maplist_empty(const struct maplist *l)
{
    return l == NULL || l->n == 0;
}

enum map_result maplist_lookup(struct maplist *l, const char *key,
                               struct buf *result, char *err, size_t errlen)
{
    buf_reset(result);
    for (size_t i = 0; l != NULL && i < l->n; i++) {
        enum map_result r = map_lookup(l->v[i], key, result, err, errlen);

        if (r != MAP_NOTFOUND)
            return r;
    }
    return MAP_NOTFOUND;
}

enum map_result maplist_lookup_addr(struct maplist *l, const char *addr,
                                    const char *delimiters, bool is_local,
                                    struct buf *result, char *err,
                                    size_t errlen)
{
    struct argv keys = ARGV_INIT;
    enum map_result r = MAP_NOTFOUND;
    long at = addr_split(addr);
    size_t local_len = at >= 0 ? (size_t)at : strlen(addr);
    const char *domain = at >= 0 ? addr + at + 1 : NULL;
    char *local = xstrndup(addr, local_len);
    size_t base = addr_ext_offset(local, delimiters);
    bool has_ext = base < local_len;

    /* Postfix's order: each key is tried in every table before the next. */
    if (domain != NULL && local_len > 0) {
        argv_add(&keys, addr);
        if (has_ext) {
            char *k = xasprintf("%.*s@%s", (int)base, local, domain);
            argv_add(&keys, k);
            free(k);
        }
    }
    if ((is_local || domain == NULL) && local_len > 0) {
        argv_add(&keys, local);
        if (has_ext)
            argv_addn(&keys, local, base);
    }
    if (domain != NULL && *domain != 0) {
        char *k = xasprintf("@%s", domain);
        argv_add(&keys, k);
        free(k);
    }
    /*
     * Pattern tables see the whole address only, never the partial keys
     * (Postfix: "user@domain mail addresses are not broken up").
     */
    buf_reset(result);
    for (size_t i = 0; i < keys.n && r == MAP_NOTFOUND; i++)
        for (size_t t = 0; l != NULL && t < l->n && r == MAP_NOTFOUND; t++)
            if (i == 0 || !(l->v[t]->type->flags & MAP_TYPE_PATTERN))
                r = map_lookup(l->v[t], keys.v[i], result, err, errlen);
    argv_free(&keys);
    free(local);
    return r;
}
