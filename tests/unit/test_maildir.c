/*
 * test_maildir - Maildir names and the tmp -> fsync -> new write path:
 * names follow the qmail/Dovecot convention, a committed message is in
 * new/ with exactly the bytes written and a matching ,S= size, and every
 * failure leaves nothing behind in tmp/ or new/.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "global/maildir.h"
#include "util/argv.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/groupsync.h"

static char top[64];

static int setup(void **state)
{
    snprintf(top, sizeof(top), "/tmp/test_maildir.XXXXXX");
    assert_non_null(mkdtemp(top));
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* Names in dir/sub (skipping dot files); returns the count, first in out. */
static int list_dir(const char *dir, const char *sub, struct buf *out)
{
    char path[256];
    struct dirent *de;
    int n = 0;
    DIR *d;

    snprintf(path, sizeof(path), "%s/%s", dir, sub);
    if ((d = opendir(path)) == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n++ == 0 && out)
            buf_puts(out, de->d_name);
    }
    closedir(d);
    return n;
}

static void test_host_name(void **state)
{
    struct buf b = BUF_INIT;

    maildir_host_name(&b, "mail.example.test");
    assert_string_equal(b.data, "mail.example.test");
    buf_reset(&b);
    maildir_host_name(&b, "a/b:c");
    assert_string_equal(b.data, "a\\057b\\072c");
    buf_reset(&b);
    maildir_host_name(&b, "");
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

static void test_names(void **state)
{
    struct buf b = BUF_INIT;

    maildir_tmp_name(&b, 1700000000LL, 4242, 7, "host");
    assert_string_equal(b.data, "1700000000.P4242Q7.host");
    buf_reset(&b);
    maildir_unique_name(&b, 1700000000LL, 0x803, 0x1a2b, 123456, "host", 4711,
                        4800);
    assert_string_equal(b.data,
                        "1700000000.V803I1a2bM123456.host,S=4711,W=4800");
    buf_reset(&b);
    maildir_unique_name(&b, 0, 0, 0, 0, "h", 0, -1);
    assert_string_equal(b.data, "0.V0I0M0.h,S=0");
    assert_int_equal(maildir_vsize(0, 0, -1), 0);
    assert_int_equal(maildir_vsize(5, 2, '\n'), 7);
    assert_int_equal(maildir_vsize(5, 2, 'x'), 9);
    buf_free(&b);
}

static void test_create(void **state)
{
    char dir[256], sub[300];
    struct stat st;
    char err[256];

    snprintf(dir, sizeof(dir), "%s/a/b/Maildir/", top);
    assert_int_equal(maildir_create(dir, err, sizeof(err)), 0);
    for (int i = 0; i < 3; i++) {
        static const char *const subs[] = {"tmp", "new", "cur"};

        snprintf(sub, sizeof(sub), "%s%s", dir, subs[i]);
        assert_int_equal(stat(sub, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 0777, 0700);
    }
    /* Existing Maildir: fine, nothing changes. */
    assert_int_equal(maildir_create(dir, err, sizeof(err)), 0);
}

static void test_create_not_a_directory(void **state)
{
    char file[256], dir[300];
    char err[256];

    snprintf(file, sizeof(file), "%s/plain", top);
    assert_int_equal(file_write_atomic(file, "x", 1, 0600), 0);
    assert_int_equal(maildir_create(file, err, sizeof(err)), -1);
    assert_int_equal(errno, ENOTDIR);
    assert_non_null(strstr(err, "plain"));
    snprintf(dir, sizeof(dir), "%s/plain/Maildir", top);
    assert_int_equal(maildir_create(dir, err, sizeof(err)), -1);
    assert_int_equal(errno, ENOTDIR);
}

static void test_deliver(void **state)
{
    static const char msg[] = "Subject: hi\n\nbody line\n";
    char dir[256], path[600], got[128];
    struct buf name = BUF_INIT, listed = BUF_INIT;
    struct maildir_writer *w;
    struct stat st;
    char err[256];
    char want_size[32];
    FILE *f;
    size_t n;

    snprintf(dir, sizeof(dir), "%s/user/Maildir/", top);
    /* The Maildir does not exist yet: open creates it. */
    w = maildir_writer_open(dir, err, sizeof(err));
    assert_non_null(w);
    assert_int_equal(list_dir(dir, "tmp", NULL), 1);
    assert_int_equal(maildir_writer_write(w, "Subject: hi\n", 12), 0);
    assert_int_equal(maildir_writer_write(w, "\nbody line\n", 11), 0);
    assert_int_equal(
        maildir_writer_commit(w, MAILDIR_NEW, NULL, &name, err, sizeof(err)),
        0);
    assert_int_equal(list_dir(dir, "tmp", NULL), 0);
    assert_int_equal(list_dir(dir, "new", &listed), 1);
    assert_string_equal(listed.data, name.data);
    snprintf(want_size, sizeof(want_size), ",S=%zu", sizeof(msg) - 1);
    assert_non_null(strstr(name.data, want_size));
    assert_non_null(strstr(name.data, ".V"));

    snprintf(path, sizeof(path), "%snew/%s", dir, name.data);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, (off_t)(sizeof(msg) - 1));
    assert_int_equal(st.st_mode & 0777, 0600);
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(got, 1, sizeof(got), f);
    fclose(f);
    assert_int_equal(n, sizeof(msg) - 1);
    assert_memory_equal(got, msg, n);
    buf_free(&name);
    buf_free(&listed);
}

static void test_deliver_large_and_cur(void **state)
{
    char dir[256];
    struct buf name = BUF_INIT;
    struct maildir_writer *w;
    char chunk[10000];
    char err[256];

    memset(chunk, 'x', sizeof(chunk));
    chunk[sizeof(chunk) - 1] = '\n';
    snprintf(dir, sizeof(dir), "%s/big", top);
    w = maildir_writer_open(dir, err, sizeof(err));
    assert_non_null(w);
    /* 200 chunks: several buffer flushes, and one oversized write. */
    for (int i = 0; i < 200; i++)
        assert_int_equal(maildir_writer_write(w, chunk, sizeof(chunk)), 0);
    static char huge[200000];
    memset(huge, 'y', sizeof(huge));
    assert_int_equal(maildir_writer_write(w, huge, sizeof(huge)), 0);
    assert_int_equal(
        maildir_writer_commit(w, MAILDIR_CUR, ":2,S", &name, err, sizeof(err)),
        0);
    /* 200 LFs, and the last line has none: 200 + 2 bytes more in CRLF. */
    assert_non_null(strstr(name.data, ",S=2200000,W=2200202:2,S"));
    assert_int_equal(list_dir(dir, "cur", NULL), 1);
    assert_int_equal(list_dir(dir, "new", NULL), 0);
    buf_free(&name);
}

/* ,W= counts like POP3/IMAP: a CR before an LF in the next write too. */
static void test_vsize_across_writes(void **state)
{
    char dir[256], err[256];
    struct buf name = BUF_INIT;
    struct maildir_writer *w;

    snprintf(dir, sizeof(dir), "%s/vsize", top);
    w = maildir_writer_open(dir, err, sizeof(err));
    assert_non_null(w);
    assert_int_equal(maildir_writer_write(w, "a\r", 2), 0);
    assert_int_equal(maildir_writer_write(w, "\nb\n", 3), 0);
    assert_int_equal(maildir_writer_write(w, "", 0), 0);
    assert_int_equal(maildir_writer_write(w, "c", 1), 0);
    assert_int_equal(
        maildir_writer_commit(w, MAILDIR_NEW, NULL, &name, err, sizeof(err)),
        0);
    /* "a\r\n" "b\r\n" "c\r\n" */
    assert_non_null(strstr(name.data, ",S=6,W=9"));
    buf_free(&name);
}

static void test_unique_names(void **state)
{
    char dir[256];
    struct buf a = BUF_INIT, b = BUF_INIT;
    struct maildir_writer *w1, *w2;
    char err[256];

    snprintf(dir, sizeof(dir), "%s/u", top);
    /* Two open at once in the same second: distinct tmp and final names. */
    w1 = maildir_writer_open(dir, err, sizeof(err));
    w2 = maildir_writer_open(dir, err, sizeof(err));
    assert_non_null(w1);
    assert_non_null(w2);
    assert_int_equal(list_dir(dir, "tmp", NULL), 2);
    assert_int_equal(
        maildir_writer_commit(w1, MAILDIR_NEW, NULL, &a, err, sizeof(err)), 0);
    assert_int_equal(
        maildir_writer_commit(w2, MAILDIR_NEW, NULL, &b, err, sizeof(err)), 0);
    assert_string_not_equal(a.data, b.data);
    assert_int_equal(list_dir(dir, "new", NULL), 2);
    buf_free(&a);
    buf_free(&b);
}

/*
 * Batched commits: without group commit a file is synced at once (0, the
 * batch untouched); with it the file is linked, its path kept in the
 * batch (1), and one maildir_batch_sync makes them all durable.
 */
static void test_commit_batch(void **state)
{
    char dir[256], state_path[300], err[256];
    struct argv batch = ARGV_INIT;
    struct maildir_writer *w;
    struct groupsync *g;

    snprintf(dir, sizeof(dir), "%s/user/Maildir/", top);
    w = maildir_writer_open(dir, err, sizeof(err));
    assert_non_null(w);
    assert_int_equal(maildir_writer_write(w, "a\n", 2), 0);
    assert_int_equal(maildir_writer_commit_batch(w, MAILDIR_NEW, NULL, NULL,
                                                 &batch, err, sizeof(err)),
                     0);
    assert_int_equal(batch.n, 0);

    snprintf(state_path, sizeof(state_path), "%s/groupsync", top);
    g = groupsync_open(state_path, top, err, sizeof(err));
    assert_non_null(g);
    maildir_set_groupsync(g);
    for (int i = 0; i < 3; i++) {
        w = maildir_writer_open(dir, err, sizeof(err));
        assert_non_null(w);
        assert_int_equal(maildir_writer_write(w, "b\n", 2), 0);
        assert_int_equal(maildir_writer_commit_batch(w, MAILDIR_NEW, NULL,
                                                     NULL, &batch, err,
                                                     sizeof(err)),
                         1);
    }
    assert_int_equal(batch.n, 3);
    for (size_t i = 0; i < batch.n; i++)
        assert_int_equal(access(batch.v[i], F_OK), 0);
    assert_int_equal(list_dir(dir, "new", NULL), 4);
    assert_int_equal(list_dir(dir, "tmp", NULL), 0);
    assert_int_equal(maildir_batch_sync(&batch, err, sizeof(err)), 0);
    assert_int_equal(batch.n, 0);
    assert_int_equal(list_dir(dir, "new", NULL), 4);
    /* An empty batch needs no sync and succeeds. */
    assert_int_equal(maildir_batch_sync(&batch, err, sizeof(err)), 0);
    maildir_set_groupsync(NULL);
    groupsync_close(g);
}

static void test_abort(void **state)
{
    char dir[256];
    struct maildir_writer *w;
    char err[256];

    snprintf(dir, sizeof(dir), "%s/ab", top);
    w = maildir_writer_open(dir, err, sizeof(err));
    assert_non_null(w);
    assert_int_equal(maildir_writer_write(w, "data\n", 5), 0);
    errno = EDQUOT;
    maildir_writer_abort(w);
    assert_int_equal(errno, EDQUOT); /* kept for the caller */
    assert_int_equal(list_dir(dir, "tmp", NULL), 0);
    assert_int_equal(list_dir(dir, "new", NULL), 0);
}

static void test_new_removed(void **state)
{
    char dir[256], sub[300];
    struct buf name = BUF_INIT;
    struct maildir_writer *w;
    char err[256];

    snprintf(dir, sizeof(dir), "%s/nn", top);
    w = maildir_writer_open(dir, err, sizeof(err));
    assert_non_null(w);
    /* new/ vanished under us: commit recreates it. */
    snprintf(sub, sizeof(sub), "%s/new", dir);
    assert_int_equal(rmdir(sub), 0);
    assert_int_equal(
        maildir_writer_commit(w, MAILDIR_NEW, NULL, &name, err, sizeof(err)),
        0);
    assert_int_equal(list_dir(dir, "new", NULL), 1);
    buf_free(&name);
}

static void test_open_fails(void **state)
{
    char file[256], dir[300];
    char err[256];

    snprintf(file, sizeof(file), "%s/f", top);
    assert_int_equal(file_write_atomic(file, "x", 1, 0600), 0);
    snprintf(dir, sizeof(dir), "%s/f/Maildir/", top);
    assert_null(maildir_writer_open(dir, err, sizeof(err)));
    assert_int_equal(errno, ENOTDIR);
    assert_true(strlen(err) > 0);
}

static void test_commit_fails_cleanly(void **state)
{
    char dir[256], sub[300];
    struct buf name = BUF_INIT;
    struct maildir_writer *w;
    char err[256];

    snprintf(dir, sizeof(dir), "%s/cf", top);
    w = maildir_writer_open(dir, err, sizeof(err));
    assert_non_null(w);
    assert_int_equal(maildir_writer_write(w, "x\n", 2), 0);
    /* new/ replaced by a file: link fails, nothing stays behind. */
    snprintf(sub, sizeof(sub), "%s/new", dir);
    assert_int_equal(rmdir(sub), 0);
    assert_int_equal(file_write_atomic(sub, "", 0, 0600), 0);
    assert_int_equal(
        maildir_writer_commit(w, MAILDIR_NEW, NULL, &name, err, sizeof(err)),
        -1);
    assert_int_equal(errno, ENOTDIR);
    assert_non_null(strstr(err, "link"));
    assert_int_equal(name.len, 0);
    assert_int_equal(list_dir(dir, "tmp", NULL), 0);
    buf_free(&name);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_name),
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_not_a_directory, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deliver, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deliver_large_and_cur, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unique_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vsize_across_writes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_fails_cleanly, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
