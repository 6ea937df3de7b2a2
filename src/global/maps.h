/*
 * maps - the lookup-table layer.
 *
 * A table is named "type:name" (Postfix syntax).  Each type is one file
 * (map_<type>.c) and one row in the type table (map_types.c):
 *
 *   lmdb:/path     indexed file /path.lmdb built by `posthorn map /path`
 *   hash:, btree:  aliases of lmdb: so Postfix configurations work
 *   texthash:/path the source file read into memory (no compilation)
 *   inline:{ key=value, key2=value2 }
 *   static:value   every lookup finds value
 *   unix:passwd.byname   the system password file (key = user name)
 *
 * Source file format (lmdb, texthash): "key whitespace value"; "#"
 * comments; a line starting with whitespace continues the previous one;
 * keys are lowercased unless the table is case-sensitive.  Alias files
 * (alias_maps) also allow "key: value".
 *
 * A maplist is a parameter value holding several tables ("lmdb:/a,
 * texthash:/b"); lookups try each table in order for each key, and for
 * addresses follow Postfix's search order:
 *   user+ext@domain, user@domain, user+ext, user (only when the domain is
 *   local), @domain.
 * Results are copied into a caller buffer.  A lookup error (unreadable
 * file) is MAP_ERROR, which callers turn into a temporary failure.
 */
#ifndef GLOBAL_MAPS_H
#define GLOBAL_MAPS_H

#include <stdbool.h>
#include <stddef.h>

#include "util/argv.h"
#include "util/buf.h"

enum map_result { MAP_FOUND = 0, MAP_NOTFOUND = 1, MAP_ERROR = -1 };

struct map;

struct map *map_open(const char *spec, char *err, size_t errlen);
enum map_result map_lookup(struct map *m, const char *key, struct buf *result,
                           char *err, size_t errlen);
void map_close(struct map *m);
const char *map_spec(const struct map *m);

/* Compile a source file into its indexed form (`posthorn map`). */
int map_build(const char *type, const char *path, char *err, size_t errlen);

/*
 * Visit every entry of a table that can be listed (`posthorn map -s`);
 * fn returns nonzero to stop.  Returns 0, or -1 with err set (also for a
 * type that cannot be listed, such as static: or unix:).
 */
typedef int (*map_walk_fn)(const char *key, const char *value, void *ctx);
int map_walk(struct map *m, map_walk_fn fn, void *ctx, char *err,
             size_t errlen);

/*
 * Initial size of an LMDB file being built (lmdb_map_size); builds double
 * it when it fills up.  Default 16 MiB.
 */
void maps_set_lmdb_map_size(size_t bytes);

/*
 * Split a list parameter into its entries at commas and whitespace that
 * are not inside {braces}, so "inline:{a=b, c=d}" stays one entry.
 * Returns 0, or -1 with err set on unbalanced braces.
 */
int maps_split_list(const char *value, struct argv *out, char *err,
                    size_t errlen);

struct maplist;

/* value: a list parameter's expanded text; empty gives an empty list. */
struct maplist *maplist_open(const char *value, char *err, size_t errlen);
void maplist_close(struct maplist *l);
bool maplist_empty(const struct maplist *l);
enum map_result maplist_lookup(struct maplist *l, const char *key,
                               struct buf *result, char *err, size_t errlen);
/*
 * Address lookup with the Postfix search order above.  delimiters is
 * recipient_delimiter's value ("" = none).  is_local: the domain is one of
 * mydestination (enables the bare user forms).
 */
enum map_result maplist_lookup_addr(struct maplist *l, const char *addr,
                                    const char *delimiters, bool is_local,
                                    struct buf *result, char *err,
                                    size_t errlen);

#endif
