/*
 * map_types - the table of lookup-map types.  A new type is one file
 * (map_<type>.c) and one row here; maps.c finds rows by the text before
 * the first ':' of a table name.  hash: and btree: are the same LMDB code
 * so that Postfix configurations work unchanged.  Columns: name, open,
 * lookup, close, build, walk, delete, flags (map_impl.h).
 */
#include <string.h>

#include "global/map_impl.h"

const struct map_type map_types[] = {
    {"lmdb", map_lmdb_open, map_lmdb_lookup, map_lmdb_close, map_lmdb_build,
     map_lmdb_walk, map_lmdb_delete, 0},
    {"hash", map_lmdb_open, map_lmdb_lookup, map_lmdb_close, map_lmdb_build,
     map_lmdb_walk, map_lmdb_delete, 0},
    {"btree", map_lmdb_open, map_lmdb_lookup, map_lmdb_close, map_lmdb_build,
     map_lmdb_walk, map_lmdb_delete, 0},
    {"texthash", map_texthash_open, map_texthash_lookup, map_texthash_close,
     NULL, map_texthash_walk, NULL, 0},
    {"inline", map_inline_open, map_texthash_lookup, map_texthash_close, NULL,
     map_texthash_walk, NULL, 0},
    {"static", map_static_open, map_static_lookup, map_static_close, NULL, NULL,
     NULL, 0},
    {"unix", map_unix_open, map_unix_lookup, map_unix_close, NULL, NULL, NULL,
     0},
    {"pcre", map_pcre_open, map_pattern_lookup, map_pattern_close, NULL, NULL,
     NULL, MAP_TYPE_PATTERN},
    {"regexp", map_regexp_open, map_pattern_lookup, map_pattern_close, NULL,
     NULL, NULL, MAP_TYPE_PATTERN},
    {"cidr", map_cidr_open, map_pattern_lookup, map_pattern_close, NULL, NULL,
     NULL, MAP_TYPE_PATTERN},
    {"socketmap", map_socketmap_open, map_socketmap_lookup, map_socketmap_close,
     NULL, NULL, NULL, MAP_TYPE_PATTERN},
};

const size_t map_types_count = sizeof(map_types) / sizeof(map_types[0]);

const struct map_type *map_type_find(const char *name)
{
    for (size_t i = 0; i < map_types_count; i++)
        if (strcmp(map_types[i].name, name) == 0)
            return &map_types[i];
    return NULL;
}
