/*
 * test_fsutil - file helpers: mkdir -p over existing and new components,
 * reading a file at its size limit and one past it, atomic replacement
 * with the requested mode, and the error cases (missing file, a file in
 * the way of a directory).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/fsutil.h"

static char dir[64];

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/test_fsutil.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_mkdir_p(void **state)
{
    char path[256], file[256];
    struct stat st;

    snprintf(path, sizeof(path), "%s/a/b//c/", dir);
    assert_int_equal(mkdir_p(path, 0750), 0);
    snprintf(path, sizeof(path), "%s/a/b/c", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    /* Existing is fine. */
    assert_int_equal(mkdir_p(path, 0750), 0);
    assert_int_equal(fsync_dir(path), 0);
    /* A file in the way is not. */
    snprintf(file, sizeof(file), "%s/a/file", dir);
    assert_int_equal(file_write_atomic(file, "x", 1, 0600), 0);
    snprintf(path, sizeof(path), "%s/a/file/sub", dir);
    errno = 0;
    assert_int_equal(mkdir_p(path, 0750), -1);
    assert_int_equal(errno, ENOTDIR);
    assert_int_equal(mkdir_p("", 0750), -1);
    assert_int_equal(fsync_dir(file), -1);
}

static void test_write_read(void **state)
{
    char path[256];
    struct buf b = BUF_INIT;
    struct stat st;
    DIR *d;
    struct dirent *de;
    int entries = 0;

    snprintf(path, sizeof(path), "%s/data", dir);
    assert_int_equal(file_write_atomic(path, "hello\0world", 11, 0640), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    buf_puts(&b, "pre:");
    assert_int_equal(file_read_all(path, &b, 11), 0);
    assert_int_equal(b.len, 15);
    assert_memory_equal(b.data, "pre:hello\0world", 15);
    /* One byte over the limit: EFBIG and b untouched. */
    errno = 0;
    assert_int_equal(file_read_all(path, &b, 10), -1);
    assert_int_equal(errno, EFBIG);
    assert_int_equal(b.len, 15);
    /* Replacement leaves no temporary files behind. */
    assert_int_equal(file_write_atomic(path, "new", 3, 0600), 0);
    buf_reset(&b);
    assert_int_equal(file_read_all(path, &b, 100), 0);
    assert_string_equal(buf_cstr(&b), "new");
    d = opendir(dir);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            entries++;
    closedir(d);
    assert_int_equal(entries, 1);
    /* Missing file. */
    snprintf(path, sizeof(path), "%s/missing", dir);
    errno = 0;
    assert_int_equal(file_read_all(path, &b, 100), -1);
    assert_int_equal(errno, ENOENT);
    /* Directory that does not exist. */
    snprintf(path, sizeof(path), "%s/no/such/file", dir);
    assert_int_equal(file_write_atomic(path, "x", 1, 0600), -1);
    buf_free(&b);
}

static void test_big_file(void **state)
{
    static char data[200000];
    char path[256];
    struct buf b = BUF_INIT;
    size_t i;

    for (i = 0; i < sizeof(data); i++)
        data[i] = (char)(i * 7);
    snprintf(path, sizeof(path), "%s/big", dir);
    assert_int_equal(file_write_atomic(path, data, sizeof(data), 0600), 0);
    assert_int_equal(file_read_all(path, &b, sizeof(data)), 0);
    assert_int_equal(b.len, sizeof(data));
    assert_memory_equal(b.data, data, sizeof(data));
    buf_reset(&b);
    assert_int_equal(file_read_all(path, &b, sizeof(data) - 1), -1);
    assert_int_equal(errno, EFBIG);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

static void test_write_all_read_full(void **state)
{
    static char data[300000], back[300000];
    int p[2];
    pid_t pid;
    size_t i;

    for (i = 0; i < sizeof(data); i++)
        data[i] = (char)i;
    assert_int_equal(pipe(p), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        _exit(write_all(p[1], data, sizeof(data)) == 0 ? 0 : 1);
    }
    close(p[1]);
    /* A pipe delivers in pieces; read_full puts them together. */
    assert_int_equal(read_full(p[0], back, sizeof(back)), sizeof(back));
    assert_memory_equal(back, data, sizeof(data));
    /* At EOF: a short count, then zero. */
    assert_int_equal(read_full(p[0], back, 10), 0);
    close(p[0]);
    assert_int_equal(read_full(-1, back, 10), -1);
    assert_int_equal(write_all(-1, data, 10), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mkdir_p, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_all_read_full, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
