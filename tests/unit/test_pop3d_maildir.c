/*
 * test_pop3d_maildir - the POP3 session's mailbox: UIDLs (the base name,
 * hashed when it is no valid unique-id, stable across new/ -> cur/ and
 * flag changes), Dovecot's ,W= size hint, the lock (a second holder is
 * refused, a closed one frees it), the snapshot (new/ moved to cur/,
 * oldest first, other entries skipped) and UPDATE (removals, the Seen
 * flag, a message renamed or removed by someone else meanwhile).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pop3d/pop3d_maildir.c"
#include "pop3d/pop3d_xfer.c"

static char dir[64];

static void put(const char *sub, const char *name, const char *text)
{
    char path[512];
    FILE *fp;

    snprintf(path, sizeof(path), "%s%s/%s", dir, sub, name);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static bool exists(const char *sub, const char *name)
{
    char path[512];

    snprintf(path, sizeof(path), "%s%s/%s", dir, sub, name);
    return access(path, F_OK) == 0;
}

static int setup(void **state)
{
    char err[256];

    (void)state;
    strcpy(dir, "/tmp/test_pop3d_maildir.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    strcat(dir, "/");
    return maildir_create(dir, err, sizeof(err));
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_uidl(void **state)
{
    char u[POP3D_UIDL_MAX + 1];
    char longname[200];

    (void)state;
    pop3d_uidl("1700000000.V801I2aM123456.mx.example.test,S=42", u, sizeof(u));
    assert_string_equal(u, "1700000000.V801I2aM123456.mx.example.test,S=42");
    /* The info part does not count: stable across flag changes. */
    pop3d_uidl("1700000000.V801I2aM1.host:2,", u, sizeof(u));
    assert_string_equal(u, "1700000000.V801I2aM1.host");
    pop3d_uidl("1700000000.V801I2aM1.host:2,RS", u, sizeof(u));
    assert_string_equal(u, "1700000000.V801I2aM1.host");

    /* Over 70 characters or outside 0x21..0x7E: hashed, still stable. */
    memset(longname, 'a', 71);
    longname[71] = 0;
    pop3d_uidl(longname, u, sizeof(u));
    assert_int_equal(strlen(u), 33);
    assert_int_equal(u[0], 'H');
    strcat(longname, ":2,S");
    {
        char u2[POP3D_UIDL_MAX + 1];

        pop3d_uidl(longname, u2, sizeof(u2));
        assert_string_equal(u, u2);
    }
    memset(longname, 'a', 70);
    longname[70] = 0;
    pop3d_uidl(longname, u, sizeof(u));
    assert_string_equal(u, longname);
    pop3d_uidl("123.with space.host", u, sizeof(u));
    assert_int_equal(u[0], 'H');
    pop3d_uidl("123.caf\xc3\xa9.host", u, sizeof(u));
    assert_int_equal(u[0], 'H');
}

static void test_name_vsize(void **state)
{
    (void)state;
    assert_int_equal(pop3d_name_vsize("1.V1I2M3.host,S=100,W=104:2,S"), 104);
    assert_int_equal(pop3d_name_vsize("1.V1I2M3.host,W=7"), 7);
    assert_int_equal(pop3d_name_vsize("1.V1I2M3.host,S=100"), -1);
    assert_int_equal(pop3d_name_vsize("1.V1I2M3.host,W=:2,"), -1);
    assert_int_equal(pop3d_name_vsize("1.V1I2M3.host,W=12x"), -1);
    /* In the info part it is not a size hint. */
    assert_int_equal(pop3d_name_vsize("1.V1I2M3.host:2,W=5"), -1);
    assert_int_equal(pop3d_name_vsize("1.host,W=99999999999999999999"), -1);
}

static void test_lock(void **state)
{
    char err[256];
    int fd1 = -1, fd2 = -1;

    (void)state;
    assert_int_equal(pop3d_mbox_lock(dir, &fd1, err, sizeof(err)), 1);
    assert_int_equal(pop3d_mbox_lock(dir, &fd2, err, sizeof(err)), 0);
    assert_int_equal(fd2, -1);
    close(fd1);
    /* Released with the descriptor: no stale lock. */
    assert_int_equal(pop3d_mbox_lock(dir, &fd2, err, sizeof(err)), 1);
    close(fd2);
    assert_int_equal(
        pop3d_mbox_lock("/nonexistent/dir/", &fd1, err, sizeof(err)), -1);
}

static void test_scan_moves_and_sorts(void **state)
{
    struct pop3d_mbox m = {xstrdup(dir), -1, NULL, 0};
    char err[256];

    (void)state;
    put("new", "1700000005.V1I2M500.host,S=6", "b\n\nx\n");
    put("new", "1700000001.V1I3M900.host,S=6", "a\n\nx\n");
    put("cur", "1700000005.V1I4M400.host,S=6:2,S", "c\n\nx\n");
    put("cur", ".hidden", "ignored");
    assert_int_equal(mkdir(strcat(strcpy(err, dir), "cur/subdir"), 0700), 0);
    put("tmp", "1700000000.P1Q1.host", "in delivery\n");

    assert_int_equal(pop3d_mbox_scan(&m, err, sizeof(err)), 0);
    assert_int_equal(m.n, 3);
    assert_string_equal(m.msgs[0].uidl, "1700000001.V1I3M900.host,S=6");
    assert_string_equal(m.msgs[1].uidl, "1700000005.V1I4M400.host,S=6");
    assert_string_equal(m.msgs[2].uidl, "1700000005.V1I2M500.host,S=6");
    assert_string_equal(m.msgs[0].name, "1700000001.V1I3M900.host,S=6:2,");
    assert_false(exists("new", "1700000005.V1I2M500.host,S=6"));
    assert_true(exists("cur", "1700000005.V1I2M500.host,S=6:2,"));
    /* Sizes: counted once in transfer form (CRLF). */
    assert_int_equal(pop3d_mbox_vsize(&m, 0, err, sizeof(err)), 8);
    assert_int_equal(m.msgs[0].vsize, 8);
    pop3d_mbox_free(&m);

    /* A later session sees the same UIDLs. */
    m.dir = xstrdup(dir);
    put("new", "1700000009.V1I9M1.host,S=3", "d\n\n");
    assert_int_equal(pop3d_mbox_scan(&m, err, sizeof(err)), 0);
    assert_int_equal(m.n, 4);
    assert_string_equal(m.msgs[0].uidl, "1700000001.V1I3M900.host,S=6");
    assert_string_equal(m.msgs[3].uidl, "1700000009.V1I9M1.host,S=3");
    pop3d_mbox_free(&m);
}

static void test_missing_maildir_is_empty(void **state)
{
    struct pop3d_mbox m = {xstrdup("/nonexistent/maildir/"), -1, NULL, 0};
    char err[256];

    (void)state;
    assert_int_equal(pop3d_mbox_scan(&m, err, sizeof(err)), 0);
    assert_int_equal(m.n, 0);
    pop3d_mbox_free(&m);
}

static void test_update(void **state)
{
    struct pop3d_mbox m = {xstrdup(dir), -1, NULL, 0};
    char err[256], from[512], to[512];
    size_t deleted = 0;
    int fd;

    (void)state;
    put("cur", "1.V1I1M1.h:2,", "one\n");
    put("cur", "2.V1I2M1.h:2,F", "two\n");
    put("cur", "3.V1I3M1.h:2,", "three\n");
    put("cur", "4.V1I4M1.h:2,T", "four\n");
    put("cur", "5.V1I5M1.h:2,", "five\n");
    assert_int_equal(pop3d_mbox_scan(&m, err, sizeof(err)), 0);
    assert_int_equal(m.n, 5);

    /* Someone renames 3 (IMAP flag change) and removes 4 meanwhile. */
    snprintf(from, sizeof(from), "%scur/3.V1I3M1.h:2,", dir);
    snprintf(to, sizeof(to), "%scur/3.V1I3M1.h:2,R", dir);
    assert_int_equal(rename(from, to), 0);
    snprintf(from, sizeof(from), "%scur/4.V1I4M1.h:2,T", dir);
    assert_int_equal(unlink(from), 0);
    /* Opening follows the rename. */
    fd = pop3d_mbox_open(&m, 2, err, sizeof(err));
    assert_true(fd >= 0);
    close(fd);
    assert_string_equal(m.msgs[2].name, "3.V1I3M1.h:2,R");

    m.msgs[0].deleted = true;
    m.msgs[1].retrieved = true;
    m.msgs[2].retrieved = true;
    m.msgs[3].deleted = true;
    m.msgs[4].retrieved = true;
    m.msgs[4].deleted = true;
    assert_int_equal(pop3d_mbox_update(&m, &deleted), 0);
    assert_int_equal(deleted, 3);
    assert_false(exists("cur", "1.V1I1M1.h:2,"));
    assert_false(exists("cur", "5.V1I5M1.h:2,"));
    assert_true(exists("cur", "2.V1I2M1.h:2,FS"));
    assert_true(exists("cur", "3.V1I3M1.h:2,RS"));
    pop3d_mbox_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uidl),
        cmocka_unit_test(test_name_vsize),
        cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_moves_and_sorts, setup,
                                        teardown),
        cmocka_unit_test(test_missing_maildir_is_empty),
        cmocka_unit_test_setup_teardown(test_update, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
