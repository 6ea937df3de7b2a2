/*
 * map_pattern - the rule file shared by the pattern tables pcre:,
 * regexp: and cidr: (Postfix's pcre_table(5), regexp_table(5),
 * cidr_table(5)).  Private to src/global/map_*.c.
 *
 * A table is a list of rules tried in file order, first match wins:
 *
 *     PATTERN result          found when PATTERN matches the key
 *     !PATTERN result         found when it does not
 *     if PATTERN / if !PATTERN
 *     ...                     rules tried only when the condition holds
 *     endif                   (nesting allowed)
 *
 * What PATTERN looks like and how it matches is the engine's business
 * (struct map_pattern_engine): "/regex/flags" with any non-alphanumeric
 * delimiter for the regular-expression engines, "network/prefix" for
 * cidr:.  Results of the regular-expression engines may use $1..$99,
 * ${n} and $(n) for captured text and $$ for a dollar sign.
 *
 * Every problem Postfix only warns about (a pattern that does not
 * compile, an unknown flag, a bad $n, an if without endif ...) is an
 * error naming "path:line" here, so a table that opens is a table whose
 * every rule is in force.
 */
#ifndef GLOBAL_MAP_PATTERN_H
#define GLOBAL_MAP_PATTERN_H

#include <stdbool.h>
#include <stddef.h>

#include "global/map_impl.h"

#define MAP_PATTERN_RULES_MAX 100000 /* rules (if/endif count) per file */
#define MAP_PATTERN_NESTING_MAX 100  /* if..endif depth */
#define MAP_PATTERN_SUB_MAX 99       /* largest $n */
#define MAP_PATTERN_RESULT_MAX (128 * 1024) /* a result after substitution */

/* Offsets of a captured group in the key; start == MAP_PATTERN_UNSET: none. */
#define MAP_PATTERN_UNSET ((size_t)-1)
struct map_pattern_cap {
    size_t start;
    size_t end;
};

#define MAP_PATTERN_SKIP 2

struct map_pattern_engine {
    const char *type; /* "pcre" (messages name the file, not the type) */
    /*
     * true: a pattern is "/regex/flags" (any non-alphanumeric delimiter,
     * backslash escapes it) and results may use $n.  false: a pattern is
     * one word and the result is taken literally (cidr:).
     */
    bool delimited;
    /*
     * Compile one pattern (the text between the delimiters, or the word)
     * with its flags ("" when none).  Returns the engine's object and the
     * number of capturing groups in *ngroups, or NULL with err set (the
     * caller adds "path:line: ").
     */
    void *(*compile)(const char *pattern, const char *flags, size_t *ngroups,
                     char *err, size_t errlen);
    /*
     * Turn the key into what match() takes, once per lookup (NULL: the
     * key itself).  A key this engine can never match (cidr: not an
     * address) gives false: the lookup is then "not found".  *prepared is
     * freed with free().
     */
    bool (*prepare)(const char *key, void **prepared);
    /*
     * 1 match, 0 no match, -1 error (err set), or MAP_PATTERN_SKIP: the
     * pattern does not apply to this key at all (cidr: an address of the
     * other family), so neither "PATTERN" nor "!PATTERN" matches and an
     * "if" block is skipped.  On a match caps[0..ncaps) are filled (group
     * 0 = the whole match); caps may be NULL when ncaps is 0.
     */
    int (*match)(void *pattern, const char *key, size_t keylen,
                 const void *prepared, struct map_pattern_cap *caps,
                 size_t ncaps, char *err, size_t errlen);
    void (*free)(void *pattern);
};

/* Read path into m->ctx with engine's rules.  0, or -1 with err set. */
int map_pattern_open(struct map *m, const char *path,
                     const struct map_pattern_engine *engine, char *err,
                     size_t errlen);

#endif
