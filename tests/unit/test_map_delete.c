/*
 * test_map_delete - map_delete (`posthorn map -d`) on lmdb: tables: the
 * key goes, other keys stay, a reader that has the table open sees the
 * change at its next lookup, the key is lowercased like lookups, a key
 * stored Postfix's way (trailing NUL) goes too, an absent key is 0, and
 * tables that cannot change say so.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "global/maps.h"
#include "util/buf.h"

static char tmpdir[256];
static char src[300];
static char spec[400];
static char err[512];

static int setup(void **state)
{
    FILE *fp;

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_map_delete.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(src, sizeof(src), "%s/access", tmpdir);
    if ((fp = fopen(src, "w")) == NULL)
        return -1;
    fputs("alice@example.org OK\nbob@example.org REJECT\n"
          "carol@example.org DUNNO\n",
          fp);
    fclose(fp);
    snprintf(spec, sizeof(spec), "lmdb:%s", src);
    return map_build("lmdb", src, err, sizeof(err));
}

static int teardown(void **state)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static enum map_result look(struct map *m, const char *key)
{
    struct buf v = BUF_INIT;
    enum map_result r = map_lookup(m, key, &v, err, sizeof(err));

    buf_free(&v);
    return r;
}

static void test_delete(void **state)
{
    struct map *reader = map_open(spec, err, sizeof(err));
    struct map *writer = map_open(spec, err, sizeof(err));

    assert_non_null(reader);
    assert_non_null(writer);
    assert_int_equal(look(reader, "bob@example.org"), MAP_FOUND);
    /* Lowercased like a lookup. */
    assert_int_equal(map_delete(writer, "Bob@Example.ORG", err, sizeof(err)),
                     1);
    assert_int_equal(look(reader, "bob@example.org"), MAP_NOTFOUND);
    assert_int_equal(look(reader, "alice@example.org"), MAP_FOUND);
    assert_int_equal(look(reader, "carol@example.org"), MAP_FOUND);
    /* Gone already, or never there. */
    assert_int_equal(map_delete(writer, "bob@example.org", err, sizeof(err)),
                     0);
    assert_int_equal(map_delete(writer, "nobody@x", err, sizeof(err)), 0);
    assert_int_equal(map_delete(writer, "", err, sizeof(err)), 0);
    map_close(writer);
    map_close(reader);
}

static void test_postfix_nul_key(void **state)
{
    char path[400];
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {.mv_size = 9, .mv_data = "dave@x.y"};
    MDB_val v = {.mv_size = 3, .mv_data = "OK"};
    struct map *m;

    /* Postfix writes "key\0" -> "value\0". */
    snprintf(path, sizeof(path), "%s.lmdb", src);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_open(env, path, MDB_NOSUBDIR | MDB_NOLOCK, 0644),
                     0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    m = map_open(spec, err, sizeof(err));
    assert_non_null(m);
    assert_int_equal(look(m, "dave@x.y"), MAP_FOUND);
    assert_int_equal(map_delete(m, "dave@x.y", err, sizeof(err)), 1);
    assert_int_equal(look(m, "dave@x.y"), MAP_NOTFOUND);
    map_close(m);
}

static void test_read_only_types(void **state)
{
    struct map *m = map_open("inline:{a=b}", err, sizeof(err));

    assert_non_null(m);
    assert_int_equal(map_delete(m, "a", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot be changed"));
    map_close(m);
    m = map_open("static:x", err, sizeof(err));
    assert_non_null(m);
    assert_int_equal(map_delete(m, "a", err, sizeof(err)), -1);
    map_close(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_postfix_nul_key),
        cmocka_unit_test(test_read_only_types),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
