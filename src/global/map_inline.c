/*
 * map_inline - a table written in main.cf itself, Postfix's syntax:
 *
 *   inline:{ key1=value1, key2=value2 }
 *   inline:{ { key = value with spaces, or commas }, key3={value 3} }
 *
 * Entries are separated by commas or whitespace outside braces; an entry
 * wrapped in {} may hold both, with blanks around "=" ignored.  A value
 * written as {text} loses its braces (a posthorn convenience).  Keys are
 * lowercased; a repeated key replaces the earlier one, as in Postfix.
 * Text is the administrator's, but a malformed table is an open error
 * that quotes it, never a partially filled table.  The parsed table is
 * the same in-memory table texthash uses, so lookups, close and listing
 * are texthash's functions (see map_types.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "global/map_impl.h"
#include "util/argv.h"
#include "util/htable.h"
#include "util/mem.h"
#include "util/str.h"

/* The whole text is one {...} group. */
static bool inline_balanced(const char *s, size_t n)
{
    int depth = 0;

    if (n < 2 || s[0] != '{')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '{')
            depth++;
        else if (s[i] == '}' && --depth == 0)
            return i == n - 1;
    }
    return false;
}

/* Strip one pair of enclosing braces and the blanks inside them. */
static char *inline_unbrace(char *s)
{
    size_t n = strlen(s);

    if (inline_balanced(s, n)) {
        s[n - 1] = 0;
        s++;
    }
    return str_trim(s);
}

static int inline_entry(struct htable *t, char *entry, const char *name,
                        char *err, size_t errlen)
{
    char *eq, *key, *value;

    if (entry[0] == '{') {
        if (!inline_balanced(entry, strlen(entry))) {
            snprintf(err, errlen, "inline:%s: bad syntax in \"%s\"", name,
                     entry);
            return -1;
        }
        entry = inline_unbrace(entry);
    }
    if ((eq = strchr(entry, '=')) == NULL) {
        snprintf(err, errlen, "inline:%s: missing '=' in \"%s\"", name, entry);
        return -1;
    }
    *eq = 0;
    key = str_trim(entry);
    value = str_trim(eq + 1);
    if (value[0] == '{')
        value = inline_unbrace(value);
    if (*key == 0 || *value == 0) {
        snprintf(err, errlen, "inline:%s: expected key=value", name);
        return -1;
    }
    str_lower(key);
    free(htable_put(t, key, xstrdup(value)));
    return 0;
}

int map_inline_open(struct map *m, const char *name, char *err, size_t errlen)
{
    size_t n = strlen(name);
    struct argv entries = ARGV_INIT;
    struct htable *t;
    char *inner;

    if (!inline_balanced(name, n)) {
        snprintf(err, errlen,
                 "inline:%s: bad syntax; need inline:{key=value...}", name);
        return -1;
    }
    inner = xstrndup(name + 1, n - 2);
    if (maps_split_list(inner, &entries, err, errlen) < 0) {
        free(inner);
        return -1;
    }
    free(inner);
    t = htable_new(entries.n + 1);
    for (size_t i = 0; i < entries.n; i++) {
        if (inline_entry(t, entries.v[i], name, err, errlen) < 0) {
            argv_free(&entries);
            htable_free(t, free);
            return -1;
        }
    }
    argv_free(&entries);
    if (htable_count(t) == 0) {
        snprintf(err, errlen, "inline:%s: empty table", name);
        htable_free(t, free);
        return -1;
    }
    m->ctx = t;
    return 0;
}
