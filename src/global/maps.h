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
 *   pcre:/path     "/regex/flags result" rules, first match wins (PCRE2)
 *   regexp:/path   the same syntax with POSIX regular expressions
 *   cidr:/path     "network/prefix result" rules, first match wins
 *   socketmap:inet:host:port:name, socketmap:unix:/path:name
 *                  Postfix's socketmap protocol (netstrings) to a server
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
 *
 * Pattern tables (pcre:, regexp:, cidr:, socketmap:) see the key as
 * given, neither lowercased nor split (an address search gives them the
 * whole address only, as Postfix does), up to MAP_PATTERN_KEY_MAX bytes
 * (longer keys are not found: callers that match long text such as
 * message headers cut it to that length first).  The other types
 * lowercase keys and find none longer than 4096 bytes.
 */
#ifndef GLOBAL_MAPS_H
#define GLOBAL_MAPS_H

#include <stdbool.h>
#include <stddef.h>

#include "util/argv.h"
#include "util/buf.h"

enum map_result { MAP_FOUND = 0, MAP_NOTFOUND = 1, MAP_ERROR = -1 };

#define MAP_PATTERN_KEY_MAX (1024 * 1024)

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
 * Remove key from a table that can be changed in place (lmdb:, hash:,
 * btree:; `posthorn map -d`).  The key is lowercased as lookups do.
 * Returns 1 removed, 0 not there, -1 with err set (also for a type that
 * cannot be changed).
 */
int map_delete(struct map *m, const char *key, char *err, size_t errlen);

/*
 * Initial size of an LMDB file being built (lmdb_map_size); builds double
 * it when it fills up.  Default 16 MiB.
 */
void maps_set_lmdb_map_size(size_t bytes);

/*
 * Apply the main.cf settings of the table layer: lmdb_map_size and
 * socketmap_timeout.  Called once after main.cf is loaded (the server
 * skeleton, `posthorn map`); without it the defaults apply.
 */
struct config;
void maps_configure(struct config *cfg);

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
