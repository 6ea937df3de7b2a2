/*
 * map_texthash - a table source file read into memory when the table is
 * opened (texthash:/path): no compiled file, so no `posthorn map` step;
 * a change needs a reload, as in Postfix.  The file format and its bounds
 * are map_source.c's; duplicates keep the first entry with a warning, like
 * an lmdb build.  Open fails (naming file and line) on any syntax error.
 */
#include <stdlib.h>

#include "global/map_impl.h"
#include "util/htable.h"
#include "util/log.h"
#include "util/mem.h"

static int texthash_add(const char *key, const char *value, const char *path,
                        long line, void *ctx, char *err, size_t errlen)
{
    struct htable *t = ctx;

    if (htable_get(t, key) != NULL) {
        log_warn("%s:%ld: duplicate entry: \"%s\"", path, line, key);
        return 0;
    }
    htable_put(t, key, xstrdup(value));
    return 0;
}

int map_texthash_open(struct map *m, const char *name, char *err, size_t errlen)
{
    struct htable *t = htable_new(64);

    if (map_source_read(name, texthash_add, t, err, errlen) < 0) {
        htable_free(t, free);
        return -1;
    }
    m->ctx = t;
    return 0;
}

enum map_result map_texthash_lookup(struct map *m, const char *key,
                                    struct buf *result, char *err,
                                    size_t errlen)
{
    const char *v = htable_get(m->ctx, key);

    if (v == NULL)
        return MAP_NOTFOUND;
    buf_puts(result, v);
    return MAP_FOUND;
}

void map_texthash_close(struct map *m)
{
    htable_free(m->ctx, free);
}

struct walk_ctx {
    map_walk_fn fn;
    void *ctx;
};

static int texthash_visit(const char *key, void *value, void *ctx)
{
    struct walk_ctx *w = ctx;

    return w->fn(key, value, w->ctx);
}

int map_texthash_walk(struct map *m, map_walk_fn fn, void *ctx, char *err,
                      size_t errlen)
{
    struct walk_ctx w = {fn, ctx};

    htable_walk(m->ctx, texthash_visit, &w);
    return 0;
}
