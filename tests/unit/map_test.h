/*
 * map_test.h - fixtures shared by the unit tests of the file-based table
 * types (test_map_pcre.c, test_map_regexp.c, test_map_cidr.c): a
 * temporary directory per test binary, a table written from a string,
 * and lookups that name the key and what came back when they fail.
 * Included by those test files only (static functions).
 */
#ifndef TESTS_UNIT_MAP_TEST_H
#define TESTS_UNIT_MAP_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "global/maps.h"
#include "util/buf.h"

static char tmpdir[256];
static char err[512];
static char spec[600];

/* The group fixtures: MAP_TEST_NAME names the directory. */
static int map_test_setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/%s.XXXXXX", MAP_TEST_NAME);
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int map_test_teardown(void **state)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Write text to a new file and return "type:path" (in spec). */
static const char *table(const char *type, const char *text)
{
    static int n;
    char path[400];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/t%d", tmpdir, n++);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
    snprintf(spec, sizeof(spec), "%s:%s", type, path);
    return spec;
}

static struct map *open_ok(const char *type, const char *text)
{
    struct map *m = map_open(table(type, text), err, sizeof(err));

    if (m == NULL)
        fail_msg("open %s failed: %s", spec, err);
    return m;
}

/* Open must fail with an error naming path:line and containing want. */
static void open_fails(const char *type, const char *text, const char *line,
                       const char *want)
{
    struct map *m = map_open(table(type, text), err, sizeof(err));
    char where[700];

    if (m != NULL) {
        map_close(m);
        fail_msg("open of %s succeeded, expected '%s'", text, want);
    }
    snprintf(where, sizeof(where), "%s:%s: ", strchr(spec, ':') + 1, line);
    if (strstr(err, where) == NULL || strstr(err, want) == NULL)
        fail_msg("error '%s': expected '%s' and '%s'", err, where, want);
}

/* Look key up; want NULL means "not found". */
static void expect(struct map *m, const char *key, const char *want)
{
    struct buf v = BUF_INIT;
    enum map_result r = map_lookup(m, key, &v, err, sizeof(err));

    if (want == NULL) {
        if (r != MAP_NOTFOUND)
            fail_msg("key '%.60s' gave %d '%s', expected not found", key, r,
                     buf_cstr(&v));
    } else {
        if (r != MAP_FOUND)
            fail_msg("key '%.60s' gave %d (%s), expected '%s'", key, r, err,
                     want);
        assert_string_equal(buf_cstr(&v), want);
    }
    buf_free(&v);
}

#endif
