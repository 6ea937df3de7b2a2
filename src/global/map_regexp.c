/*
 * map_regexp - regexp:/path, POSIX regular expression tables (Postfix's
 * regexp_table(5)).  The rule file is map_pattern.c's; patterns are
 * compiled by the C library's regcomp(3), as Postfix does, so a table
 * moved from Postfix on the same C library matches exactly the same keys
 * (POSIX leftmost-longest matching, [[:classes:]], no Perl escapes).
 *
 * Flags toggle, with Postfix's defaults: i (REG_ICASE, on), x
 * (REG_EXTENDED, on: off gives basic regular expressions), m
 * (REG_NEWLINE: ^ and $ also match at embedded newlines, off).  Daemons
 * never call setlocale(), so matching is on bytes.
 *
 * The C library's matcher has no step limit; the patterns are the
 * administrator's, and pcre: is the table type with bounded matching.
 */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>

#include "global/map_pattern.h"
#include "util/mem.h"

static void *regexp_compile_one(const char *pattern, const char *flags,
                                size_t *ngroups, char *err, size_t errlen)
{
    int cflags = REG_EXTENDED | REG_ICASE, rc;
    regex_t *re;
    char msg[256];

    for (const char *f = flags; *f != 0; f++) {
        switch (*f) {
        case 'i':
            cflags ^= REG_ICASE;
            break;
        case 'x':
            cflags ^= REG_EXTENDED;
            break;
        case 'm':
            cflags ^= REG_NEWLINE;
            break;
        default:
            snprintf(err, errlen, "unknown pattern flag '%c'", *f);
            return NULL;
        }
    }
    re = xmalloc(sizeof(*re));
    if ((rc = regcomp(re, pattern, cflags)) != 0) {
        regerror(rc, re, msg, sizeof(msg));
        snprintf(err, errlen, "error in regex: %s", msg);
        free(re);
        return NULL;
    }
    *ngroups = re->re_nsub;
    return re;
}

static int regexp_match_one(void *pattern, const char *key, size_t keylen,
                            const void *prepared, struct map_pattern_cap *caps,
                            size_t ncaps, char *err, size_t errlen)
{
    regmatch_t pm[MAP_PATTERN_SUB_MAX + 1];
    char msg[256];
    int rc;

    rc = regexec(pattern, key, ncaps, ncaps ? pm : NULL, 0);
    if (rc == REG_NOMATCH)
        return 0;
    if (rc != 0) {
        regerror(rc, pattern, msg, sizeof(msg));
        snprintf(err, errlen, "matching failed: %s", msg);
        return -1;
    }
    for (size_t i = 0; i < ncaps; i++) {
        if (pm[i].rm_so < 0 || pm[i].rm_eo < pm[i].rm_so ||
            (size_t)pm[i].rm_eo > keylen)
            continue;
        caps[i].start = (size_t)pm[i].rm_so;
        caps[i].end = (size_t)pm[i].rm_eo;
    }
    return 1;
}

static void regexp_free_one(void *pattern)
{
    regfree(pattern);
    free(pattern);
}

static const struct map_pattern_engine regexp_engine = {
    .type = "regexp",
    .delimited = true,
    .compile = regexp_compile_one,
    .prepare = NULL,
    .match = regexp_match_one,
    .free = regexp_free_one,
};

int map_regexp_open(struct map *m, const char *name, char *err, size_t errlen)
{
    return map_pattern_open(m, name, &regexp_engine, err, errlen);
}
