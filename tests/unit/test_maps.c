/*
 * test_maps - the lookup-table layer: each map type, the source-file
 * format (comments, continuation lines, alias "key: value" syntax, case
 * folding, errors with file:line), lmdb builds in a temporary directory
 * (rebuild while open, growth past the initial map size), inline and
 * static syntax, and Postfix's address search order over a list of
 * tables with recipient_delimiter "+".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "global/maps.h"
#include "util/argv.h"
#include "util/buf.h"

static char tmpdir[256];
static char err[512];

static int setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_maps.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Write a file under tmpdir; returns its path (static buffer per slot). */
static const char *write_file(const char *name, const char *text)
{
    static char paths[8][300];
    static int slot;
    char *path = paths[slot++ % 8];
    FILE *fp;

    snprintf(path, 300, "%s/%s", tmpdir, name);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
    return path;
}

/* Look key up in the table named spec and compare with want (NULL = not found).
 */
static void expect(struct map *m, const char *key, const char *want)
{
    struct buf v = BUF_INIT;
    enum map_result r = map_lookup(m, key, &v, err, sizeof(err));

    if (want == NULL) {
        if (r != MAP_NOTFOUND)
            fail_msg("%s: key '%s' gave %d '%s', expected not found",
                     map_spec(m), key, r, buf_cstr(&v));
    } else {
        if (r != MAP_FOUND)
            fail_msg("%s: key '%s' gave %d (%s), expected '%s'", map_spec(m),
                     key, r, err, want);
        assert_string_equal(buf_cstr(&v), want);
    }
    buf_free(&v);
}

static const char *source_text = "# aliases-style and postmap-style entries\n"
                                 "root: admin\n"
                                 "postmaster:root\n"
                                 "Alice     alice@example.com\n"
                                 "\n"
                                 "  # an indented comment\n"
                                 "list   a@example.com,\n"
                                 "       b@example.com,\n"
                                 "# a comment between continuation lines\n"
                                 "\tc@example.com\n"
                                 "\"quoted key\"  spaced\n"
                                 "User@Example.COM   Mixed/Case/Value/\n"
                                 "dup   first\n"
                                 "DUP   second\n"
                                 "ipv6:addr   2001:db8::1\n"
                                 "hash   # value that starts with a hash sign\n"
                                 "trailing   value with blanks   \n";

static void check_source_entries(struct map *m)
{
    expect(m, "root", "admin");
    expect(m, "postmaster", "root");
    expect(m, "alice", "alice@example.com");
    expect(m, "ALICE", "alice@example.com");
    expect(m, "list", "a@example.com, b@example.com, c@example.com");
    expect(m, "quoted key", "spaced");
    expect(m, "user@example.com", "Mixed/Case/Value/");
    expect(m, "USER@example.com", "Mixed/Case/Value/");
    expect(m, "dup", "first");
    expect(m, "ipv6:addr", "2001:db8::1");
    expect(m, "hash", "# value that starts with a hash sign");
    expect(m, "trailing", "value with blanks");
    expect(m, "nobody", NULL);
    expect(m, "", NULL);
    expect(m, "# aliases-style", NULL);
}

static int count_entry(const char *key, const char *value, void *ctx)
{
    (*(int *)ctx)++;
    assert_true(*key != 0);
    assert_true(*value != 0);
    return 0;
}

static void test_lmdb_build_lookup(void **state)
{
    const char *src = write_file("aliases", source_text);
    char spec[400], dbpath[400];
    struct map *m;
    struct stat st;
    int n = 0;

    assert_int_equal(map_build("lmdb", src, err, sizeof(err)), 0);
    snprintf(dbpath, sizeof(dbpath), "%s.lmdb", src);
    assert_int_equal(stat(dbpath, &st), 0);
    /* No temporary file is left behind. */
    snprintf(spec, sizeof(spec), "%s.lmdb.tmp", src);
    assert_int_equal(stat(spec, &st), -1);

    snprintf(spec, sizeof(spec), "lmdb:%s", src);
    m = map_open(spec, err, sizeof(err));
    assert_non_null(m);
    assert_string_equal(map_spec(m), spec);
    check_source_entries(m);
    assert_int_equal(map_walk(m, count_entry, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 10);
    map_close(m);

    /* hash: and btree: are the same files. */
    snprintf(spec, sizeof(spec), "hash:%s", src);
    m = map_open(spec, err, sizeof(err));
    assert_non_null(m);
    expect(m, "root", "admin");
    map_close(m);
    snprintf(spec, sizeof(spec), "btree:%s", src);
    m = map_open(spec, err, sizeof(err));
    assert_non_null(m);
    expect(m, "list", "a@example.com, b@example.com, c@example.com");
    map_close(m);
    /* proxy: is accepted and reads the same table. */
    snprintf(spec, sizeof(spec), "proxy:hash:%s", src);
    m = map_open(spec, err, sizeof(err));
    assert_non_null(m);
    expect(m, "root", "admin");
    map_close(m);
}

static void test_lmdb_rebuild_while_open(void **state)
{
    const char *src = write_file("virtual", "a@x  one\n");
    char spec[400];
    struct map *m;

    assert_int_equal(map_build("hash", src, err, sizeof(err)), 0);
    snprintf(spec, sizeof(spec), "hash:%s", src);
    m = map_open(spec, err, sizeof(err));
    assert_non_null(m);
    expect(m, "a@x", "one");
    expect(m, "b@x", NULL);

    write_file("virtual", "a@x  two\nb@x  three\n");
    assert_int_equal(map_build("hash", src, err, sizeof(err)), 0);
    expect(m, "a@x", "two");
    expect(m, "b@x", "three");

    /* A failed rebuild leaves the old table in place. */
    write_file("virtual", "a@x  four\n  \n bad continuation\n");
    assert_int_equal(map_build("hash", src, err, sizeof(err)), -1);
    expect(m, "a@x", "two");
    map_close(m);
}

static void test_lmdb_grows(void **state)
{
    struct buf text = BUF_INIT;
    const char *src;
    char spec[400], key[64];
    struct map *m;
    int n = 0;

    for (int i = 0; i < 20000; i++)
        buf_printf(&text, "key%05d@example.com  value-%d-%s\n", i, i,
                   "padding padding padding padding padding padding");
    src = write_file("big", buf_cstr(&text));
    buf_free(&text);
    maps_set_lmdb_map_size(64 * 1024);
    assert_int_equal(map_build("lmdb", src, err, sizeof(err)), 0);
    maps_set_lmdb_map_size(0);
    snprintf(spec, sizeof(spec), "lmdb:%s", src);
    m = map_open(spec, err, sizeof(err));
    assert_non_null(m);
    expect(m, "key00000@example.com",
           "value-0-padding padding padding padding padding padding");
    snprintf(key, sizeof(key), "KEY19999@EXAMPLE.COM");
    expect(m, key,
           "value-19999-padding padding padding padding padding padding");
    assert_int_equal(map_walk(m, count_entry, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 20000);
    map_close(m);
}

/*
 * Several processes rebuild the same table while this one reads it:
 * every build succeeds, every lookup finds one complete version (never a
 * miss or an error), and no temporary file is left.
 */
static void test_lmdb_concurrent_builds(void **state)
{
    struct buf text = BUF_INIT;
    const char *src;
    char spec[400], tmp[400];
    pid_t pids[4];
    struct map *m;
    struct stat st;
    int status;

    for (int i = 0; i < 2000; i++)
        buf_printf(&text, "k%d v%d\n", i, i);
    src = write_file("shared", buf_cstr(&text));
    buf_free(&text);
    assert_int_equal(map_build("lmdb", src, err, sizeof(err)), 0);
    snprintf(spec, sizeof(spec), "lmdb:%s", src);
    m = map_open(spec, err, sizeof(err));
    assert_non_null(m);
    for (int p = 0; p < 4; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            for (int i = 0; i < 10; i++)
                if (map_build("lmdb", src, err, sizeof(err)) < 0) {
                    fprintf(stderr, "build: %s\n", err);
                    _exit(1);
                }
            _exit(0);
        }
    }
    for (int i = 0; i < 300; i++) {
        char key[32], want[32];

        snprintf(key, sizeof(key), "k%d", (i * 7) % 2000);
        snprintf(want, sizeof(want), "v%d", (i * 7) % 2000);
        expect(m, key, want);
    }
    for (int p = 0; p < 4; p++) {
        assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    expect(m, "k1999", "v1999");
    map_close(m);
    snprintf(tmp, sizeof(tmp), "%s.lmdb.tmp", src);
    assert_int_equal(stat(tmp, &st), -1);
}

static void expect_build_error(const char *name, const char *text,
                               const char *want)
{
    const char *src = write_file(name, text);
    char full[600];

    assert_int_equal(map_build("lmdb", src, err, sizeof(err)), -1);
    snprintf(full, sizeof(full), "%s/%s", tmpdir, want);
    if (strcmp(err, full) != 0)
        fail_msg("build of %s: error '%s', expected '%s'", name, err, full);
}

static void test_lmdb_build_errors(void **state)
{
    char path[400];
    char longkey[700];

    expect_build_error("e1", "  leading continuation\n",
                       "e1:1: continuation line without an entry");
    expect_build_error("e2", "# c\nok value\nlonely\n",
                       "e2:3: expected \"key value\"");
    expect_build_error("e3", "ok value\n\"unterminated value\n",
                       "e3:2: missing '\"' after key");
    expect_build_error("e4", "a b\n:\n", "e4:2: expected \"key value\"");
    memset(longkey, 'k', 600);
    longkey[600] = 0;
    strcat(longkey, " v\n");
    expect_build_error("e5", longkey, "e5:1: key longer than 511 bytes");

    /* NUL bytes are refused with their line. */
    {
        FILE *fp;

        snprintf(path, sizeof(path), "%s/e6", tmpdir);
        fp = fopen(path, "w");
        fwrite("a b\nc d\0e\n", 1, 10, fp);
        fclose(fp);
        assert_int_equal(map_build("lmdb", path, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "e6:2: NUL byte in line"));
    }

    /* Missing source file. */
    snprintf(path, sizeof(path), "%s/absent", tmpdir);
    assert_int_equal(map_build("lmdb", path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "absent"));
    assert_non_null(strstr(err, "No such file"));

    /* Types that are not built. */
    assert_int_equal(map_build("texthash", path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "needs no building"));
    assert_int_equal(map_build("nosuch", path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unsupported map type"));
}

/* LMDB's key limit (511 bytes) at the limit and one past it. */
static void test_lmdb_key_limit(void **state)
{
    char line[700], key[600], spec[400];
    const char *src;
    struct map *m;

    memset(key, 'k', 511);
    key[511] = 0;
    snprintf(line, sizeof(line), "%s value\n", key);
    src = write_file("keylimit", line);
    assert_int_equal(map_build("lmdb", src, err, sizeof(err)), 0);
    snprintf(spec, sizeof(spec), "lmdb:%s", src);
    m = map_open(spec, err, sizeof(err));
    assert_non_null(m);
    expect(m, key, "value");
    strcat(key, "k");
    expect(m, key, NULL);
    map_close(m);
    snprintf(line, sizeof(line), "%s value\n", key);
    expect_build_error("keylimit2", line,
                       "keylimit2:1: key longer than 511 bytes");
}

static void test_lmdb_missing_file(void **state)
{
    char spec[400];

    snprintf(spec, sizeof(spec), "lmdb:%s/never-built", tmpdir);
    assert_null(map_open(spec, err, sizeof(err)));
    assert_non_null(strstr(err, "never-built.lmdb"));
    assert_non_null(strstr(err, "posthorn map"));
}

static void test_texthash(void **state)
{
    const char *src = write_file("thash", source_text);
    char spec[400];
    struct map *m;
    int n = 0;

    snprintf(spec, sizeof(spec), "texthash:%s", src);
    m = map_open(spec, err, sizeof(err));
    assert_non_null(m);
    check_source_entries(m);
    assert_int_equal(map_walk(m, count_entry, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 10);
    map_close(m);

    snprintf(spec, sizeof(spec), "texthash:%s/absent", tmpdir);
    assert_null(map_open(spec, err, sizeof(err)));
    assert_non_null(strstr(err, "absent"));

    src = write_file("thash-bad", "good value\n\nbad\n");
    snprintf(spec, sizeof(spec), "texthash:%s", src);
    assert_null(map_open(spec, err, sizeof(err)));
    assert_non_null(strstr(err, "thash-bad:3: expected \"key value\""));
}

static void test_inline(void **state)
{
    struct map *m;

    m = map_open("inline:{a=1, B=2,c=3 d=4}", err, sizeof(err));
    if (m == NULL)
        fail_msg("inline: %s", err);
    expect(m, "a", "1");
    expect(m, "b", "2");
    expect(m, "C", "3");
    expect(m, "d", "4");
    expect(m, "e", NULL);
    map_close(m);

    m = map_open("inline:{ { key = value with spaces, and a comma }, "
                 "k2={ braced value }, k3=x=y, k3=last }",
                 err, sizeof(err));
    if (m == NULL)
        fail_msg("inline: %s", err);
    expect(m, "key", "value with spaces, and a comma");
    expect(m, "k2", "braced value");
    expect(m, "k3", "last");
    map_close(m);

    m = map_open("inline:{k=x=y}", err, sizeof(err));
    assert_non_null(m);
    expect(m, "k", "x=y");
    map_close(m);

    static const char *bad[] = {
        "inline:{}",     "inline:{ }",        "inline:{a}",
        "inline:{a=1",   "inline:a=1",        "inline:{a=1}x",
        "inline:{=x}",   "inline:{a=}",       "inline:{a=1}}",
        "inline:{{a=1}", "inline:{ {a=1}b }", "inline:{a=1} {b=2}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        m = map_open(bad[i], err, sizeof(err));
        if (m != NULL) {
            map_close(m);
            fail_msg("'%s' was accepted", bad[i]);
        }
        assert_non_null(strstr(err, "inline:"));
    }
}

static void test_static(void **state)
{
    struct map *m;

    m = map_open("static:5000", err, sizeof(err));
    assert_non_null(m);
    expect(m, "anything", "5000");
    expect(m, "", "5000");
    map_close(m);
    m = map_open("static:{ text with spaces }", err, sizeof(err));
    assert_non_null(m);
    expect(m, "x", "text with spaces");
    map_close(m);
    assert_null(map_open("static:{unterminated", err, sizeof(err)));
    assert_null(map_open("static:{ }", err, sizeof(err)));
    assert_non_null(strstr(err, "empty"));
    assert_null(map_open("static:", err, sizeof(err)));
    assert_non_null(strstr(err, "missing table name"));
    /* static: cannot be listed. */
    m = map_open("static:x", err, sizeof(err));
    assert_int_equal(map_walk(m, count_entry, NULL, err, sizeof(err)), -1);
    map_close(m);
}

static void test_unix(void **state)
{
    struct map *m = map_open("unix:passwd.byname", err, sizeof(err));
    struct buf v = BUF_INIT;

    assert_non_null(m);
    assert_int_equal(map_lookup(m, "root", &v, err, sizeof(err)), MAP_FOUND);
    assert_true(strncmp(buf_cstr(&v), "root:", 5) == 0);
    assert_non_null(strstr(buf_cstr(&v), ":0:0:"));
    /* Keys are case-folded like every other table. */
    assert_int_equal(map_lookup(m, "ROOT", &v, err, sizeof(err)), MAP_FOUND);
    assert_int_equal(map_lookup(m, "no-such-user-here", &v, err, sizeof(err)),
                     MAP_NOTFOUND);
    assert_int_equal(map_lookup(m, "", &v, err, sizeof(err)), MAP_NOTFOUND);
    map_close(m);

    m = map_open("unix:group.byname", err, sizeof(err));
    assert_non_null(m);
    assert_int_equal(map_lookup(m, "root", &v, err, sizeof(err)), MAP_FOUND);
    assert_true(strncmp(buf_cstr(&v), "root:", 5) == 0);
    map_close(m);

    assert_null(map_open("unix:shadow.byname", err, sizeof(err)));
    assert_non_null(strstr(err, "unknown table"));
    buf_free(&v);
}

static void test_open_errors(void **state)
{
    assert_null(map_open("nocolon", err, sizeof(err)));
    assert_non_null(strstr(err, "expected type:name"));
    assert_null(map_open(":x", err, sizeof(err)));
    assert_null(map_open("bogus:x", err, sizeof(err)));
    assert_non_null(strstr(err, "unsupported map type 'bogus'"));
    assert_null(map_open("averyveryveryverylongtypenamethatgoeson:x", err,
                         sizeof(err)));
}

static void test_long_key(void **state)
{
    struct map *m = map_open("static:v", err, sizeof(err));
    struct buf v = BUF_INIT;
    char *key = malloc(5000);

    memset(key, 'a', 4999);
    key[4999] = 0;
    assert_int_equal(map_lookup(m, key, &v, err, sizeof(err)), MAP_NOTFOUND);
    key[4096] = 0;
    assert_int_equal(map_lookup(m, key, &v, err, sizeof(err)), MAP_FOUND);
    free(key);
    buf_free(&v);
    map_close(m);
}

static void test_split_list(void **state)
{
    struct argv a = ARGV_INIT;

    assert_int_equal(maps_split_list("lmdb:/a, texthash:/b\tinline:{x=1, "
                                     "{ y = 2 }}  static:{a b},,",
                                     &a, err, sizeof(err)),
                     0);
    assert_int_equal(a.n, 4);
    assert_string_equal(a.v[0], "lmdb:/a");
    assert_string_equal(a.v[1], "texthash:/b");
    assert_string_equal(a.v[2], "inline:{x=1, { y = 2 }}");
    assert_string_equal(a.v[3], "static:{a b}");
    argv_free(&a);
    assert_int_equal(maps_split_list("", &a, err, sizeof(err)), 0);
    assert_int_equal(a.n, 0);
    assert_int_equal(maps_split_list("inline:{a=1", &a, err, sizeof(err)), -1);
    argv_free(&a);
    assert_int_equal(maps_split_list("static:a}", &a, err, sizeof(err)), -1);
    argv_free(&a);
}

static void expect_list(struct maplist *l, const char *addr, bool is_local,
                        const char *delim, const char *want)
{
    struct buf v = BUF_INIT;
    enum map_result r =
        maplist_lookup_addr(l, addr, delim, is_local, &v, err, sizeof(err));

    if (want == NULL) {
        if (r != MAP_NOTFOUND)
            fail_msg("%s (local=%d): got '%s', expected not found", addr,
                     is_local, buf_cstr(&v));
    } else if (r != MAP_FOUND || strcmp(buf_cstr(&v), want) != 0) {
        fail_msg("%s (local=%d): got %d '%s', expected '%s'", addr, is_local, r,
                 buf_cstr(&v), want);
    }
    buf_free(&v);
}

static void test_maplist(void **state)
{
    struct maplist *l;
    struct buf v = BUF_INIT;

    l = maplist_open("", err, sizeof(err));
    assert_non_null(l);
    assert_true(maplist_empty(l));
    assert_int_equal(maplist_lookup(l, "x", &v, err, sizeof(err)),
                     MAP_NOTFOUND);
    maplist_close(l);

    l = maplist_open("inline:{a=first}, inline:{a=second, b=only-second}", err,
                     sizeof(err));
    assert_non_null(l);
    assert_false(maplist_empty(l));
    assert_int_equal(maplist_lookup(l, "A", &v, err, sizeof(err)), MAP_FOUND);
    assert_string_equal(buf_cstr(&v), "first");
    assert_int_equal(maplist_lookup(l, "b", &v, err, sizeof(err)), MAP_FOUND);
    assert_string_equal(buf_cstr(&v), "only-second");
    assert_int_equal(maplist_lookup(l, "c", &v, err, sizeof(err)),
                     MAP_NOTFOUND);
    assert_int_equal(v.len, 0);
    maplist_close(l);

    /* One bad table fails the whole list, naming it. */
    assert_null(
        maplist_open("inline:{a=1} lmdb:/nonexistent/table", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/table.lmdb"));
    assert_null(maplist_open("inline:{a=1", err, sizeof(err)));
    buf_free(&v);
}

static void test_address_order(void **state)
{
    struct maplist *l;

    /* Each form in its own table, so table order cannot decide. */
    l = maplist_open("inline:{@example.com=catchall} "
                     "inline:{user=bare} "
                     "inline:{user+ext=bare-ext} "
                     "inline:{user@example.com=full} "
                     "inline:{user+ext@example.com=full-ext}",
                     err, sizeof(err));
    assert_non_null(l);
    expect_list(l, "user+ext@example.com", false, "+", "full-ext");
    expect_list(l, "User+Ext@Example.COM", false, "+", "full-ext");
    expect_list(l, "user+other@example.com", false, "+", "full");
    expect_list(l, "user@example.com", false, "+", "full");
    expect_list(l, "someone@example.com", false, "+", "catchall");
    expect_list(l, "someone@elsewhere.org", false, "+", NULL);
    /* Without a delimiter, user+other is a name of its own. */
    expect_list(l, "user+other@example.com", false, "", "catchall");
    maplist_close(l);

    /* The bare forms only for local domains, before @domain. */
    l = maplist_open("inline:{@example.com=catchall, user=bare, "
                     "user+ext=bare-ext}",
                     err, sizeof(err));
    assert_non_null(l);
    expect_list(l, "user+ext@example.com", true, "+", "bare-ext");
    expect_list(l, "user+zzz@example.com", true, "+", "bare");
    expect_list(l, "user@example.com", true, "+", "bare");
    expect_list(l, "user+ext@example.com", false, "+", "catchall");
    expect_list(l, "other@example.com", true, "+", "catchall");
    /* No domain: the bare forms. */
    expect_list(l, "user+ext", false, "+", "bare-ext");
    expect_list(l, "user+q", false, "+", "bare");
    /* Several delimiter characters. */
    expect_list(l, "user-q@example.com", true, "+-", "bare");
    maplist_close(l);

    l = maplist_open("inline:{postmaster=pm}", err, sizeof(err));
    expect_list(l, "postmaster@example.com", true, "+", "pm");
    expect_list(l, "postmaster+x@example.com", true, "+", "pm");
    maplist_close(l);
    /* With "-" as delimiter, owner-list stays whole (Postfix's rule). */
    l = maplist_open("inline:{owner=wrong, owner-list=right}", err,
                     sizeof(err));
    expect_list(l, "owner-list@example.com", true, "-", "right");
    expect_list(l, "owner-x@example.com", true, "-", NULL);
    maplist_close(l);
}

static void test_lookup_error_propagates(void **state)
{
    const char *src = write_file("gone", "k v\n");
    char spec[400], path[400];
    struct maplist *l;
    struct buf v = BUF_INIT;

    assert_int_equal(map_build("lmdb", src, err, sizeof(err)), 0);
    snprintf(spec, sizeof(spec), "lmdb:%s inline:{k=w}", src);
    l = maplist_open(spec, err, sizeof(err));
    assert_non_null(l);
    /* Replace the database with garbage: lookups must fail, not "miss". */
    snprintf(path, sizeof(path), "%s.lmdb", src);
    unlink(path);
    write_file("gone.lmdb", "this is not an lmdb file, not at all, no\n");
    assert_int_equal(maplist_lookup(l, "k", &v, err, sizeof(err)), MAP_ERROR);
    assert_non_null(strstr(err, "gone.lmdb"));
    maplist_close(l);
    buf_free(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lmdb_build_lookup),
        cmocka_unit_test(test_lmdb_rebuild_while_open),
        cmocka_unit_test(test_lmdb_grows),
        cmocka_unit_test(test_lmdb_concurrent_builds),
        cmocka_unit_test(test_lmdb_build_errors),
        cmocka_unit_test(test_lmdb_key_limit),
        cmocka_unit_test(test_lmdb_missing_file),
        cmocka_unit_test(test_texthash),
        cmocka_unit_test(test_inline),
        cmocka_unit_test(test_static),
        cmocka_unit_test(test_unix),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_long_key),
        cmocka_unit_test(test_split_list),
        cmocka_unit_test(test_maplist),
        cmocka_unit_test(test_address_order),
        cmocka_unit_test(test_lookup_error_propagates),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
