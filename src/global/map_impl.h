/*
 * map_impl - what a lookup-table type provides to the maps layer.  Private
 * to src/global/map*.c; everybody else uses maps.h.
 *
 * A type is one row in map_types[] (map_types.c) and one file
 * (map_<type>.c) holding its functions.  The maps layer has already
 * lowercased the key and checked its length before lookup() runs, and it
 * resets the result buffer; lookup() fills it only on MAP_FOUND.  Pattern
 * types (MAP_TYPE_PATTERN: pcre:, regexp:, cidr:, socketmap:) get the key
 * exactly as given (not lowercased), up to MAP_PATTERN_KEY_MAX bytes, as
 * Postfix does for its pattern tables.
 */
#ifndef GLOBAL_MAP_IMPL_H
#define GLOBAL_MAP_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "global/maps.h"
#include "util/buf.h"

/* Longest key the layer passes on; longer keys are simply not found. */
#define MAP_KEY_MAX 4096

struct map_type {
    const char *name;
    /* Fill m->ctx from `name` (the text after "type:").  0 or -1 + err. */
    int (*open)(struct map *m, const char *name, char *err, size_t errlen);
    enum map_result (*lookup)(struct map *m, const char *key,
                              struct buf *result, char *err, size_t errlen);
    void (*close)(struct map *m);
    /* Compile the source file `path` (NULL: the type needs no building). */
    int (*build)(const char *path, char *err, size_t errlen);
    /* Visit every entry (NULL: the type cannot be listed). */
    int (*walk)(struct map *m, map_walk_fn fn, void *ctx, char *err,
                size_t errlen);
    /* Remove key: 1 removed, 0 absent, -1 + err (NULL: read-only type). */
    int (*del)(struct map *m, const char *key, char *err, size_t errlen);
    unsigned flags; /* MAP_TYPE_* */
};

#define MAP_TYPE_PATTERN 1 /* keys as given: no lowercasing, longer bound */

struct map {
    const struct map_type *type;
    char *spec; /* "type:name" as given */
    void *ctx;  /* the type's state */
};

extern const struct map_type map_types[];
extern const size_t map_types_count;

const struct map_type *map_type_find(const char *name);

/* The type functions (one file each). */
int map_lmdb_open(struct map *m, const char *name, char *err, size_t errlen);
enum map_result map_lmdb_lookup(struct map *m, const char *key,
                                struct buf *result, char *err, size_t errlen);
void map_lmdb_close(struct map *m);
int map_lmdb_build(const char *path, char *err, size_t errlen);
int map_lmdb_walk(struct map *m, map_walk_fn fn, void *ctx, char *err,
                  size_t errlen);
int map_lmdb_delete(struct map *m, const char *key, char *err, size_t errlen);

int map_texthash_open(struct map *m, const char *name, char *err,
                      size_t errlen);
enum map_result map_texthash_lookup(struct map *m, const char *key,
                                    struct buf *result, char *err,
                                    size_t errlen);
void map_texthash_close(struct map *m);
int map_texthash_walk(struct map *m, map_walk_fn fn, void *ctx, char *err,
                      size_t errlen);

/* inline: builds texthash's in-memory table; the rest is texthash's. */
int map_inline_open(struct map *m, const char *name, char *err, size_t errlen);

int map_static_open(struct map *m, const char *name, char *err, size_t errlen);
enum map_result map_static_lookup(struct map *m, const char *key,
                                  struct buf *result, char *err, size_t errlen);
void map_static_close(struct map *m);

int map_unix_open(struct map *m, const char *name, char *err, size_t errlen);
enum map_result map_unix_lookup(struct map *m, const char *key,
                                struct buf *result, char *err, size_t errlen);
void map_unix_close(struct map *m);

int map_pcre_open(struct map *m, const char *name, char *err, size_t errlen);
int map_regexp_open(struct map *m, const char *name, char *err, size_t errlen);
int map_cidr_open(struct map *m, const char *name, char *err, size_t errlen);
/* The three above share their rule engine (map_pattern.c). */
enum map_result map_pattern_lookup(struct map *m, const char *key,
                                   struct buf *result, char *err,
                                   size_t errlen);
void map_pattern_close(struct map *m);

int map_socketmap_open(struct map *m, const char *name, char *err,
                       size_t errlen);
enum map_result map_socketmap_lookup(struct map *m, const char *key,
                                     struct buf *result, char *err,
                                     size_t errlen);
void map_socketmap_close(struct map *m);
/* socketmap_timeout, set through maps_configure(). */
extern int map_socketmap_timeout_ms;

/*
 * The logical-line reader under map_source_read and the pattern tables:
 * skips comment lines ("#" as first non-blank), ends an entry at an empty
 * line, joins a line that starts with whitespace to the previous one (one
 * blank between them), strips the line ends, and calls fn with each
 * logical line and
 * the number of its first physical line.  fn may modify text.  Bounds and
 * errors as map_source_read.  Returns 0 or -1.
 */
typedef int (*map_source_line_fn)(char *text, const char *path, long line,
                                  void *ctx, char *err, size_t errlen);
int map_source_lines(const char *path, map_source_line_fn fn, void *ctx,
                     char *err, size_t errlen);

/*
 * The source-file reader shared by lmdb builds and texthash: calls fn for
 * every "key value" entry in file order, with the key lowercased and
 * unquoted and a trailing ':' stripped (alias files), the value trimmed.
 * fn returns 0 to go on or -1 to stop (with err filled).  Errors name
 * "path:line".  Returns 0 or -1.
 */
#define MAP_SOURCE_SIZE_MAX (256L * 1024 * 1024)
#define MAP_SOURCE_LINE_MAX (1024 * 1024)

typedef int (*map_source_fn)(const char *key, const char *value,
                             const char *path, long line, void *ctx, char *err,
                             size_t errlen);
int map_source_read(const char *path, map_source_fn fn, void *ctx, char *err,
                    size_t errlen);

#endif
