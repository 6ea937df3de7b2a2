/*
 * map_static - every lookup finds the same value: static:5000,
 * static:{text with spaces} (braces and the blanks inside them are
 * dropped, as in Postfix).  Used for virtual_uid_maps and the like.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "global/map_impl.h"
#include "util/mem.h"
#include "util/str.h"

int map_static_open(struct map *m, const char *name, char *err, size_t errlen)
{
    size_t n = strlen(name);
    char *value;

    if (name[0] == '{') {
        if (n < 2 || name[n - 1] != '}') {
            snprintf(err, errlen, "static:%s: missing '}'", name);
            return -1;
        }
        char *inner = xstrndup(name + 1, n - 2);

        value = xstrdup(str_trim(inner));
        free(inner);
    } else {
        value = xstrdup(name);
    }
    if (*value == 0) {
        snprintf(err, errlen, "static:%s: empty value", name);
        free(value);
        return -1;
    }
    m->ctx = value;
    return 0;
}

enum map_result map_static_lookup(struct map *m, const char *key,
                                  struct buf *result, char *err, size_t errlen)
{
    buf_puts(result, m->ctx);
    return MAP_FOUND;
}

void map_static_close(struct map *m)
{
    free(m->ctx);
}
