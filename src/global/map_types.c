/*
 * map_types - the table of lookup-map types.  A new type is one file
 * (map_<type>.c) and one row here; maps.c finds rows by the text before
 * the first ':' of a table name.  hash: and btree: are the same LMDB code
 * so that Postfix configurations work unchanged.
 */
#include <string.h>

#include "global/map_impl.h"

const struct map_type map_types[] = {
    {"lmdb", map_lmdb_open, map_lmdb_lookup, map_lmdb_close, map_lmdb_build,
     map_lmdb_walk},
    {"hash", map_lmdb_open, map_lmdb_lookup, map_lmdb_close, map_lmdb_build,
     map_lmdb_walk},
    {"btree", map_lmdb_open, map_lmdb_lookup, map_lmdb_close, map_lmdb_build,
     map_lmdb_walk},
    {"texthash", map_texthash_open, map_texthash_lookup, map_texthash_close,
     NULL, map_texthash_walk},
    {"inline", map_inline_open, map_texthash_lookup, map_texthash_close, NULL,
     map_texthash_walk},
    {"static", map_static_open, map_static_lookup, map_static_close, NULL,
     NULL},
    {"unix", map_unix_open, map_unix_lookup, map_unix_close, NULL, NULL},
};

const size_t map_types_count = sizeof(map_types) / sizeof(map_types[0]);

const struct map_type *map_type_find(const char *name)
{
    for (size_t i = 0; i < map_types_count; i++)
        if (strcmp(map_types[i].name, name) == 0)
            return &map_types[i];
    return NULL;
}
