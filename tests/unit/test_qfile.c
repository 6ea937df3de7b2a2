/*
 * test_qfile - queue file writer and reader: a round trip through a real
 * queue directory, then hand-made corrupt files that the reader must
 * refuse as corrupt (never crash, never accept).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "global/qfile.h"
#include "global/mail_proto.h"
#include "global/server.h"
#include "util/buf.h"
#include "util/mem.h"

static char qdir[64];

static void make_queue_dir(void)
{
    static const char *const subs[] = {"incoming", "active",  "deferred",
                                       "hold",     "corrupt", "tmp"};
    char path[128];

    snprintf(qdir, sizeof(qdir), "/tmp/test_qfile.XXXXXX");
    assert_non_null(mkdtemp(qdir));
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", qdir, subs[i]);
        assert_int_equal(mkdir(path, 0700), 0);
    }
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    char sub[512];

    if (d == NULL) {
        unlink(path);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        remove_tree(sub);
    }
    closedir(d);
    rmdir(path);
}

static int setup(void **state)
{
    make_queue_dir();
    return 0;
}

static int teardown(void **state)
{
    remove_tree(qdir);
    return 0;
}

static int count_entries(const char *sub)
{
    char path[128];
    struct dirent *e;
    int n = 0;
    DIR *d;

    snprintf(path, sizeof(path), "%s/%s", qdir, sub);
    d = opendir(path);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static int open_queued(const char *id, int flags)
{
    char path[128];

    snprintf(path, sizeof(path), "%s/incoming/%s", qdir, id);
    return open(path, flags);
}

static void put_envelope(struct qfile_writer *w, const char *sender)
{
    qfile_put_str(w, QREC_VERSION, QFILE_VERSION);
    qfile_put_str(w, QREC_TIME, "1790158681");
    qfile_put_str(w, QREC_SENDER, sender);
    qfile_put_str(w, QREC_ATTR, "client_name=mx.example.org");
    qfile_put_str(w, QREC_ATTR, "helo=mx.example.org");
}

static int collect(const char *data, size_t len, void *ctx)
{
    buf_append(ctx, data, len);
    return 0;
}

static int stop_at_first(const char *data, size_t len, void *ctx)
{
    (*(int *)ctx)++;
    return -1;
}

/* Write a small valid message and return its committed ID. */
static void write_small(char id[MAIL_QUEUE_ID_MAX])
{
    char err[256];
    struct qfile_writer *w = qfile_writer_open(qdir, err, sizeof(err));

    assert_non_null(w);
    put_envelope(w, "alice@example.org");
    qfile_put_rcpt(w, "bob@example.test", "bob@example.test", "", "");
    qfile_put_rcpt(w, "carol@example.test", "list@example.test",
                   "SUCCESS,FAILURE", "rfc822;list@example.test");
    qfile_put_str(w, QREC_MESSAGE, "");
    qfile_put_str(w, QREC_BODY, "Subject: hi\n\nbody\n");
    qfile_put_str(w, QREC_SIZE, "18");
    assert_int_equal(qfile_writer_commit(w, id, err, sizeof(err)), 0);
}

static void test_round_trip(void **state)
{
    char id[MAIL_QUEUE_ID_MAX], err[256], early[MAIL_QUEUE_ID_MAX];
    struct qfile_envelope env;
    struct buf content = BUF_INIT, big = BUF_INIT;
    struct qfile_writer *w;
    struct stat st;
    bool corrupt = true;
    int fd;

    w = qfile_writer_open(qdir, err, sizeof(err));
    assert_non_null(w);
    snprintf(early, sizeof(early), "%s", qfile_writer_id(w));
    assert_true(strlen(early) > 5);
    assert_int_equal(strspn(early, "0123456789ABCDEF"), strlen(early));
    assert_int_equal(count_entries("tmp"), 1);

    put_envelope(w, "");
    qfile_put_rcpt(w, "bob@example.test", "bob@example.test", NULL, NULL);
    qfile_put_rcpt(w, "carol@example.test", "list@example.test", "NEVER",
                   "rfc822;list@example.test");
    qfile_put_str(w, QREC_MESSAGE, "");
    /* More than one flush and several maximal chunks. */
    for (int i = 0; i < 5000; i++)
        buf_printf(&big, "line %d of a long message body................\n", i);
    for (size_t off = 0; off < big.len; off += QFILE_CHUNK_MAX) {
        size_t n =
            big.len - off < QFILE_CHUNK_MAX ? big.len - off : QFILE_CHUNK_MAX;
        qfile_put(w, QREC_BODY, big.data + off, n);
    }
    char size[32];
    snprintf(size, sizeof(size), "%zu", big.len);
    qfile_put_str(w, QREC_SIZE, size);
    assert_int_equal(qfile_writer_commit(w, id, err, sizeof(err)), 0);
    assert_string_equal(id, early);
    assert_int_equal(count_entries("tmp"), 0);
    assert_int_equal(count_entries("incoming"), 1);

    fd = open_queued(id, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(qfile_read_envelope(fd, &env, &corrupt, err, sizeof(err)),
                     0);
    assert_string_equal(env.sender, "");
    assert_int_equal(env.arrival, 1790158681);
    assert_int_equal(env.attrs.n, 2);
    assert_string_equal(qfile_attr(&env, "client_name"), "mx.example.org");
    assert_string_equal(qfile_attr(&env, "helo"), "mx.example.org");
    assert_null(qfile_attr(&env, "client"));
    assert_null(qfile_attr(&env, "protocol"));
    assert_int_equal(env.nrcpt, 2);
    assert_string_equal(env.rcpts[0].addr, "bob@example.test");
    assert_string_equal(env.rcpts[0].orig, "bob@example.test");
    assert_string_equal(env.rcpts[0].notify, "");
    assert_string_equal(env.rcpts[0].orcpt, "");
    assert_false(env.rcpts[0].done);
    assert_string_equal(env.rcpts[1].addr, "carol@example.test");
    assert_string_equal(env.rcpts[1].orig, "list@example.test");
    assert_string_equal(env.rcpts[1].notify, "NEVER");
    assert_string_equal(env.rcpts[1].orcpt, "rfc822;list@example.test");
    assert_false(env.rcpts[1].done);
    assert_int_equal(env.content_size, (long long)big.len);

    assert_int_equal(
        qfile_read_content(fd, &env, collect, &content, err, sizeof(err)), 0);
    assert_int_equal(content.len, big.len);
    assert_memory_equal(content.data, big.data, big.len);
    int calls = 0;
    assert_int_equal(
        qfile_read_content(fd, &env, stop_at_first, &calls, err, sizeof(err)),
        -1);
    assert_int_equal(calls, 1);

    /* Mark the second recipient done; idempotent; refuses a non-R byte. */
    off_t off1 = env.rcpts[1].offset;
    assert_int_equal(qfile_mark_done(fd, off1, err, sizeof(err)), 0);
    assert_int_equal(qfile_mark_done(fd, off1, err, sizeof(err)), 0);
    assert_int_equal(qfile_mark_done(fd, env.content_offset, err, sizeof(err)),
                     -1);
    assert_int_equal(qfile_mark_done(fd, 0, err, sizeof(err)), -1);
    assert_int_equal(qfile_mark_done(fd, st.st_size + 10, err, sizeof(err)),
                     -1);
    qfile_envelope_free(&env);

    assert_int_equal(qfile_read_envelope(fd, &env, &corrupt, err, sizeof(err)),
                     0);
    assert_int_equal(env.nrcpt, 2);
    assert_false(env.rcpts[0].done);
    assert_true(env.rcpts[1].done);
    assert_string_equal(env.rcpts[1].addr, "carol@example.test");
    qfile_envelope_free(&env);
    close(fd);
    buf_free(&content);
    buf_free(&big);
}

static void test_abort_and_writer_checks(void **state)
{
    char id[MAIL_QUEUE_ID_MAX], err[256];
    struct qfile_writer *w;
    char longaddr[QFILE_ADDR_MAX + 2];

    w = qfile_writer_open(qdir, err, sizeof(err));
    assert_non_null(w);
    put_envelope(w, "a@b");
    qfile_writer_abort(w);
    assert_int_equal(count_entries("tmp"), 0);
    assert_int_equal(count_entries("incoming"), 0);

    /* Out of order: content before any recipient. */
    w = qfile_writer_open(qdir, err, sizeof(err));
    assert_non_null(w);
    put_envelope(w, "a@b");
    qfile_put_str(w, QREC_MESSAGE, "");
    qfile_put_str(w, QREC_SIZE, "0");
    assert_int_equal(qfile_writer_commit(w, id, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "out of order"));
    assert_int_equal(count_entries("tmp"), 0);
    assert_int_equal(count_entries("incoming"), 0);

    /* A sender the reader would refuse is refused by the writer. */
    memset(longaddr, 'x', sizeof(longaddr) - 1);
    longaddr[sizeof(longaddr) - 1] = 0;
    w = qfile_writer_open(qdir, err, sizeof(err));
    assert_non_null(w);
    put_envelope(w, longaddr);
    qfile_put_rcpt(w, "b@c", "", "", "");
    qfile_put_str(w, QREC_MESSAGE, "");
    qfile_put_str(w, QREC_SIZE, "0");
    assert_int_equal(qfile_writer_commit(w, id, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "too long"));

    /* A size that does not match is the caller's bug, caught on reading;
     * a commit without 'Z' is refused outright. */
    w = qfile_writer_open(qdir, err, sizeof(err));
    assert_non_null(w);
    put_envelope(w, "a@b");
    qfile_put_rcpt(w, "b@c", "", "", "");
    qfile_put_str(w, QREC_MESSAGE, "");
    assert_int_equal(qfile_writer_commit(w, id, err, sizeof(err)), -1);
    assert_int_equal(count_entries("incoming"), 0);
    assert_int_equal(count_entries("tmp"), 0);

    /* Missing queue directory. */
    assert_null(qfile_writer_open("/nonexistent/queue", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/queue"));
}

/* incoming/<ID> appears between open and commit: commit picks another ID. */
static void test_id_collision(void **state)
{
    char id[MAIL_QUEUE_ID_MAX], err[256], path[160], early[MAIL_QUEUE_ID_MAX];
    struct qfile_writer *w;
    int fd;

    w = qfile_writer_open(qdir, err, sizeof(err));
    assert_non_null(w);
    snprintf(early, sizeof(early), "%s", qfile_writer_id(w));
    snprintf(path, sizeof(path), "%s/incoming/%s", qdir, early);
    fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    put_envelope(w, "a@b");
    qfile_put_rcpt(w, "b@c", "", "", "");
    qfile_put_str(w, QREC_MESSAGE, "");
    qfile_put_str(w, QREC_SIZE, "0");
    assert_int_equal(qfile_writer_commit(w, id, err, sizeof(err)), 0);
    assert_string_not_equal(id, early);
    assert_int_equal(count_entries("incoming"), 2);

    struct stat st1, st2;
    assert_int_equal(stat(path, &st1), 0);
    assert_int_equal(st1.st_size, 0); /* the squatter was not replaced */
    snprintf(path, sizeof(path), "%s/incoming/%s", qdir, id);
    assert_int_equal(stat(path, &st2), 0);
    assert_true(st2.st_size > 0);
}

/* Write a message with a body of n bytes of c; returns the committed ID. */
static void write_body(char id[MAIL_QUEUE_ID_MAX], size_t n, char c)
{
    char err[256], size[32];
    struct qfile_writer *w = qfile_writer_open(qdir, err, sizeof(err));
    char *body = xmalloc(n);

    assert_non_null(w);
    memset(body, c, n);
    put_envelope(w, "alice@example.org");
    qfile_put_rcpt(w, "bob@example.test", "bob@example.test", "", "");
    qfile_put_str(w, QREC_MESSAGE, "");
    for (size_t off = 0; off < n; off += QFILE_CHUNK_MAX)
        qfile_put(w, QREC_BODY, body + off,
                  n - off < QFILE_CHUNK_MAX ? n - off : QFILE_CHUNK_MAX);
    snprintf(size, sizeof(size), "%zu", n);
    qfile_put_str(w, QREC_SIZE, size);
    assert_int_equal(qfile_writer_commit(w, id, err, sizeof(err)), 0);
    free(body);
}

/* Retire incoming/id through active/; returns the highest full slot. */
static int retire(const char *id, long long size, struct stat *st)
{
    char from[160], to[160], slot[160], err[512];
    struct dirent *e;
    int found = -1;
    DIR *d;

    snprintf(from, sizeof(from), "%s/incoming/%s", qdir, id);
    snprintf(to, sizeof(to), "%s/active/%s", qdir, id);
    assert_int_equal(rename(from, to), 0);
    assert_int_equal(qfile_retire(qdir, "active", id, size, err, sizeof(err)),
                     0);
    assert_int_equal(access(to, F_OK), -1);
    snprintf(slot, sizeof(slot), "%s/recycle", qdir);
    d = opendir(slot);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' && atoi(e->d_name) > found)
            found = atoi(e->d_name);
    closedir(d);
    assert_true(found >= 0);
    snprintf(slot, sizeof(slot), "%s/recycle/%d", qdir, found);
    assert_int_equal(stat(slot, st), 0);
    return found;
}

/*
 * A retired small file keeps its blocks and the next writer takes it:
 * the new, shorter message must come back exact, with nothing of the old
 * one after it.  A large file is emptied when it is retired.
 */
static void test_recycled_files(void **state)
{
    char id[MAIL_QUEUE_ID_MAX], id2[MAIL_QUEUE_ID_MAX], err[256];
    char from[160], to[160];
    struct qfile_envelope env;
    struct buf content = BUF_INIT;
    struct stat old, st;
    bool corrupt = true;
    int slot, fd;

    snprintf(from, sizeof(from), "%s/recycle", qdir);
    assert_int_equal(mkdir(from, 0700), 0);

    write_body(id, 20000, 'x');
    slot = retire(id, 20000, &old);
    assert_true(old.st_size > 20000); /* kept, not emptied */
    /* The writer's cursor probes the slot after the one qmgr used. */
    snprintf(from, sizeof(from), "%s/recycle/%d", qdir, slot);
    snprintf(to, sizeof(to), "%s/recycle/%d", qdir,
             (slot + 1) % MAIL_QUEUE_RECYCLE_SLOTS);
    assert_int_equal(rename(from, to), 0);

    write_body(id2, 100, 'y');
    assert_int_equal(count_entries("recycle"), 0);
    fd = open_queued(id2, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_ino, old.st_ino); /* the recycled file */
    assert_true(st.st_size < 1000);          /* the old tail is cut */
    assert_int_equal(qfile_read_envelope(fd, &env, &corrupt, err, sizeof(err)),
                     0);
    assert_int_equal(
        qfile_read_content(fd, &env, collect, &content, err, sizeof(err)), 0);
    assert_int_equal(content.len, 100);
    for (size_t i = 0; i < content.len; i++)
        assert_int_equal(content.data[i], 'y');
    qfile_envelope_free(&env);
    close(fd);

    /* Over MAIL_QUEUE_RECYCLE_KEEP_MAX, or of unknown size: emptied. */
    slot = retire(id2, MAIL_QUEUE_RECYCLE_KEEP_MAX + 1, &st);
    assert_int_equal(st.st_size, 0);
    snprintf(from, sizeof(from), "%s/recycle/%d", qdir, slot);
    assert_int_equal(unlink(from), 0);
    write_body(id, 5000, 'z');
    slot = retire(id, -1, &st);
    assert_int_equal(st.st_size, 0);
    buf_free(&content);
}

/* The slot map master shares, on SERVER_GROUPSYNC_FD as master passes it. */
static int map_setup(void **state)
{
    int fd = memfd_create("test-state", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    if (fd < 0 || ftruncate(fd, MAIL_QUEUE_STATE_BYTES) < 0)
        return -1;
    if (fd != SERVER_GROUPSYNC_FD) {
        if (dup2(fd, SERVER_GROUPSYNC_FD) < 0)
            return -1;
        close(fd);
    }
    setenv(SERVER_GROUPSYNC_ENV, SERVER_GROUPSYNC_FD_TEXT, 1);
    mail_queue_recycle_map_forget();
    return setup(state);
}

static int map_teardown(void **state)
{
    unsetenv(SERVER_GROUPSYNC_ENV);
    close(SERVER_GROUPSYNC_FD);
    mail_queue_recycle_map_forget();
    return teardown(state);
}

static bool map_bit(unsigned slot)
{
    return (mail_queue_recycle_map()[slot / 64] >> (slot % 64)) & 1;
}

/*
 * With the shared map: retire takes the lowest free slot and marks it,
 * a writer takes the lowest marked one and unmarks it; a stale mark
 * (file removed behind qmgr's back) falls back to a new file; a file
 * beyond the first KEEP_SLOTS slots is emptied; a restarted qmgr finds
 * parked files again (qfile_recycle_scan).
 */
static void test_recycle_map(void **state)
{
    char id[MAIL_QUEUE_ID_MAX], id2[MAIL_QUEUE_ID_MAX], path[160];
    struct stat old, st;
    int fd;

    snprintf(path, sizeof(path), "%s/recycle", qdir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_non_null(mail_queue_recycle_map());

    write_body(id, 3000, 'x');
    assert_int_equal(retire(id, 3000, &old), 0);
    assert_true(map_bit(0));
    assert_true(old.st_size > 3000); /* blocks kept */
    write_body(id2, 100, 'y');        /* takes slot 0 */
    assert_false(map_bit(0));
    assert_int_equal(count_entries("recycle"), 0);
    fd = open_queued(id2, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_ino, old.st_ino);
    close(fd);

    /* A stale mark: the writer finds nothing there and creates a file. */
    assert_int_equal(retire(id2, 100, &old), 0);
    snprintf(path, sizeof(path), "%s/recycle/0", qdir);
    assert_int_equal(unlink(path), 0);
    write_body(id, 100, 'z');
    assert_false(map_bit(0));
    assert_int_equal(count_entries("tmp"), 0);
    fd = open_queued(id, O_RDONLY);
    assert_true(fd >= 0);
    close(fd);

    /* Slot 0 full but unmarked (lost with master): retire marks it and
     * uses the next; a slot past KEEP_SLOTS keeps no blocks. */
    assert_int_equal(close(open(path, O_CREAT | O_WRONLY, 0600)), 0);
    for (unsigned i = 1; i < MAIL_QUEUE_RECYCLE_KEEP_SLOTS; i++)
        __atomic_fetch_or(&mail_queue_recycle_map()[i / 64], 1ULL << (i % 64),
                          __ATOMIC_RELAXED);
    assert_int_equal(retire(id, 100, &st), MAIL_QUEUE_RECYCLE_KEEP_SLOTS);
    assert_true(map_bit(0));
    assert_int_equal(st.st_size, 0);

    /* A new map (master restarted): the scan marks what is there. */
    memset(mail_queue_recycle_map(), 0, MAIL_QUEUE_RECYCLE_MAP_BYTES);
    qfile_recycle_scan(qdir);
    assert_true(map_bit(0));
    assert_true(map_bit(MAIL_QUEUE_RECYCLE_KEEP_SLOTS));
    assert_false(map_bit(1));
}

/* A write error (here: file size limit) fails the commit, leaves nothing. */
static void test_write_error(void **state)
{
    char id[MAIL_QUEUE_ID_MAX], err[256];
    static char chunk[QFILE_CHUNK_MAX];
    struct rlimit saved, small;
    struct qfile_writer *w;

    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    small = saved;
    small.rlim_cur = 100000;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    w = qfile_writer_open(qdir, err, sizeof(err));
    assert_non_null(w);
    put_envelope(w, "a@b");
    qfile_put_rcpt(w, "b@c", "", "", "");
    qfile_put_str(w, QREC_MESSAGE, "");
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 4; i++)
        qfile_put(w, QREC_BODY, chunk, sizeof(chunk));
    qfile_put_str(w, QREC_SIZE, "262144");
    assert_int_equal(qfile_writer_commit(w, id, err, sizeof(err)), -1);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    assert_non_null(strstr(err, "write"));
    assert_int_equal(count_entries("tmp"), 0);
    assert_int_equal(count_entries("incoming"), 0);
}

/* Writers for two queue directories at once keep their own directory. */
static void test_two_queue_dirs(void **state)
{
    char other[sizeof(qdir)], id[MAIL_QUEUE_ID_MAX], err[256], path[160];
    struct qfile_writer *a, *b;
    struct stat st;

    snprintf(other, sizeof(other), "%s", qdir);
    make_queue_dir(); /* qdir is now a second queue directory */
    a = qfile_writer_open(other, err, sizeof(err));
    assert_non_null(a);
    b = qfile_writer_open(qdir, err, sizeof(err));
    assert_non_null(b);
    for (int i = 0; i < 2; i++) {
        struct qfile_writer *w = i == 0 ? a : b;
        put_envelope(w, "a@b");
        qfile_put_rcpt(w, "b@c", "", "", "");
        qfile_put_str(w, QREC_MESSAGE, "");
        qfile_put_str(w, QREC_SIZE, "0");
    }
    assert_int_equal(qfile_writer_commit(a, id, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/incoming/%s", other, id);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(qfile_writer_commit(b, id, err, sizeof(err)), 0);
    assert_int_equal(count_entries("incoming"), 1);
    remove_tree(other);
}

/* ---- corrupt files ---- */

static void rec(struct buf *b, int type, const void *data, size_t len)
{
    size_t v = len;

    buf_putc(b, type);
    do {
        buf_putc(b, (int)((v & 0x7f) | (v > 0x7f ? 0x80 : 0)));
        v >>= 7;
    } while (v);
    buf_append(b, data, len);
}

static void rec_str(struct buf *b, int type, const char *s)
{
    rec(b, type, s, strlen(s));
}

/* Fill b with a valid file, with hooks for damage. */
enum damage {
    DMG_NONE,
    DMG_VERSION,
    DMG_ORDER_S_BEFORE_T,
    DMG_DUP_VERSION,
    DMG_DUP_TIME,
    DMG_DUP_SENDER,
    DMG_NO_RCPT,
    DMG_RCPT_2_NUL,
    DMG_RCPT_4_NUL,
    DMG_RCPT_EMPTY_ADDR,
    DMG_NO_Z,
    DMG_Z_MISMATCH,
    DMG_Z_NOT_NUMBER,
    DMG_NO_E,
    DMG_TRAILING,
    DMG_ATTR_AFTER_RCPT,
    DMG_BODY_BEFORE_M,
    DMG_EMPTY_BODY,
    DMG_UNKNOWN_TYPE,
    DMG_TIME_NOT_NUMBER,
    DMG_ATTR_NO_EQ,
    DMG_NUL_IN_SENDER,
    DMG_E_NOT_EMPTY,
};

static void build(struct buf *b, enum damage d)
{
    buf_reset(b);
    if (d == DMG_VERSION)
        rec_str(b, 'V', "posthorn-queue-2");
    else
        rec_str(b, 'V', QFILE_VERSION);
    if (d == DMG_DUP_VERSION)
        rec_str(b, 'V', QFILE_VERSION);
    if (d == DMG_ORDER_S_BEFORE_T) {
        rec_str(b, 'S', "a@b");
        rec_str(b, 'T', "100");
    } else {
        rec_str(b, 'T', d == DMG_TIME_NOT_NUMBER ? "1x0" : "100");
        if (d == DMG_DUP_TIME)
            rec_str(b, 'T', "100");
        if (d == DMG_NUL_IN_SENDER)
            rec(b, 'S', "a\0b", 3);
        else
            rec_str(b, 'S', "a@b");
    }
    if (d == DMG_DUP_SENDER)
        rec_str(b, 'S', "a@b");
    rec_str(b, 'A', d == DMG_ATTR_NO_EQ ? "helo" : "helo=x");
    if (d != DMG_NO_RCPT) {
        if (d == DMG_RCPT_2_NUL)
            rec(b, 'R', "r@x\0o\0n", 7);
        else if (d == DMG_RCPT_4_NUL)
            rec(b, 'R', "r@x\0o\0n\0c\0d", 11);
        else if (d == DMG_RCPT_EMPTY_ADDR)
            rec(b, 'R', "\0o\0n\0c", 6);
        else
            rec(b, 'R', "r@x\0\0\0", 6);
        rec(b, 'D', "s@x\0\0\0", 6);
    }
    if (d == DMG_ATTR_AFTER_RCPT)
        rec_str(b, 'A', "late=1");
    if (d == DMG_BODY_BEFORE_M)
        rec_str(b, 'B', "x\n");
    if (d == DMG_UNKNOWN_TYPE)
        rec_str(b, 'Q', "");
    rec_str(b, 'M', "");
    rec_str(b, 'B', "hello\n");
    if (d == DMG_EMPTY_BODY)
        rec_str(b, 'B', "");
    rec_str(b, 'B', "world\n");
    if (d == DMG_Z_MISMATCH)
        rec_str(b, 'Z', "11");
    else if (d == DMG_Z_NOT_NUMBER)
        rec_str(b, 'Z', "+12");
    else if (d != DMG_NO_Z)
        rec_str(b, 'Z', "12");
    if (d == DMG_E_NOT_EMPTY)
        rec_str(b, 'E', "x");
    else if (d != DMG_NO_E)
        rec_str(b, 'E', "");
    if (d == DMG_TRAILING)
        buf_putc(b, 'E');
}

static int file_with(const void *data, size_t len)
{
    char path[] = "/tmp/test_qfile_c.XXXXXX";
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    unlink(path);
    if (len)
        assert_int_equal(write(fd, data, len), (ssize_t)len);
    return fd;
}

/* Expect the reader to refuse the bytes as corrupt (and leak nothing). */
static void expect_corrupt(const void *data, size_t len, const char *what)
{
    struct qfile_envelope env;
    bool corrupt = false;
    char err[256];
    int fd = file_with(data, len);

    if (qfile_read_envelope(fd, &env, &corrupt, err, sizeof(err)) == 0)
        fail_msg("%s: accepted a corrupt file", what);
    if (!corrupt)
        fail_msg("%s: not flagged corrupt (%s)", what, err);
    if (strncmp(err, "record grammar: ", 16) != 0)
        fail_msg("%s: error text '%s'", what, err);
    assert_null(env.rcpts);
    assert_null(env.sender);
    close(fd);
}

static void test_valid_handmade(void **state)
{
    struct qfile_envelope env;
    struct buf b = BUF_INIT, content = BUF_INIT;
    bool corrupt = true;
    char err[256];
    int fd;

    build(&b, DMG_NONE);
    fd = file_with(b.data, b.len);
    assert_int_equal(qfile_read_envelope(fd, &env, &corrupt, err, sizeof(err)),
                     0);
    assert_false(corrupt);
    assert_string_equal(env.sender, "a@b");
    assert_int_equal(env.nrcpt, 2);
    assert_false(env.rcpts[0].done);
    assert_true(env.rcpts[1].done);
    assert_int_equal(env.content_size, 12);
    assert_int_equal(
        qfile_read_content(fd, &env, collect, &content, err, sizeof(err)), 0);
    assert_string_equal(buf_cstr(&content), "hello\nworld\n");
    qfile_envelope_free(&env);
    close(fd);
    buf_free(&b);
    buf_free(&content);
}

static void test_every_truncation(void **state)
{
    char id[MAIL_QUEUE_ID_MAX], what[64];
    struct buf whole = BUF_INIT, hand = BUF_INIT;
    struct stat st;
    int fd;

    write_small(id);
    fd = open_queued(id, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    buf_reserve(&whole, (size_t)st.st_size);
    assert_int_equal(read(fd, whole.data, (size_t)st.st_size), st.st_size);
    whole.len = (size_t)st.st_size;
    close(fd);
    for (size_t k = 0; k < whole.len; k++) {
        snprintf(what, sizeof(what), "truncated at %zu of %zu", k, whole.len);
        expect_corrupt(whole.data, k, what);
    }
    build(&hand, DMG_NONE);
    for (size_t k = 0; k < hand.len; k++) {
        snprintf(what, sizeof(what), "hand-made truncated at %zu", k);
        expect_corrupt(hand.data, k, what);
    }
    buf_free(&whole);
    buf_free(&hand);
}

static void test_damaged_records(void **state)
{
    static const struct {
        enum damage d;
        const char *what;
    } cases[] = {
        {DMG_VERSION, "bad version"},
        {DMG_ORDER_S_BEFORE_T, "S before T"},
        {DMG_DUP_VERSION, "duplicate V"},
        {DMG_DUP_TIME, "duplicate T"},
        {DMG_DUP_SENDER, "duplicate S"},
        {DMG_NO_RCPT, "no recipient"},
        {DMG_RCPT_2_NUL, "R with 3 fields"},
        {DMG_RCPT_4_NUL, "R with 5 fields"},
        {DMG_RCPT_EMPTY_ADDR, "R with empty address"},
        {DMG_NO_Z, "missing Z"},
        {DMG_Z_MISMATCH, "Z not the content size"},
        {DMG_Z_NOT_NUMBER, "Z not a number"},
        {DMG_NO_E, "missing E"},
        {DMG_TRAILING, "data after E"},
        {DMG_ATTR_AFTER_RCPT, "A after R"},
        {DMG_BODY_BEFORE_M, "B before M"},
        {DMG_EMPTY_BODY, "empty B"},
        {DMG_UNKNOWN_TYPE, "unknown record type"},
        {DMG_TIME_NOT_NUMBER, "T not a number"},
        {DMG_ATTR_NO_EQ, "A without ="},
        {DMG_NUL_IN_SENDER, "NUL in S"},
        {DMG_E_NOT_EMPTY, "E with data"},
    };
    struct buf b = BUF_INIT;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        build(&b, cases[i].d);
        expect_corrupt(b.data, b.len, cases[i].what);
    }
    buf_free(&b);
}

static void test_bad_lengths(void **state)
{
    struct buf b = BUF_INIT;
    char big[QFILE_CHUNK_MAX + 1];
    static const unsigned char six[] = {'V',  0x90, 0x80, 0x80,
                                        0x80, 0x80, 0x00};
    static const unsigned char nonminimal[] = {'V', 0x90, 0x00};

    expect_corrupt("", 0, "empty file");
    expect_corrupt(six, sizeof(six), "varint of 6 bytes");
    expect_corrupt(nonminimal, sizeof(nonminimal), "non-minimal varint");

    /* A sender one byte over its bound. */
    memset(big, 'x', sizeof(big));
    rec_str(&b, 'V', QFILE_VERSION);
    rec_str(&b, 'T', "100");
    rec(&b, 'S', big, QFILE_ADDR_MAX + 1);
    expect_corrupt(b.data, b.len, "oversize sender");

    /* A content chunk one byte over QFILE_CHUNK_MAX. */
    buf_reset(&b);
    rec_str(&b, 'V', QFILE_VERSION);
    rec_str(&b, 'T', "100");
    rec_str(&b, 'S', "");
    rec(&b, 'R', "r@x\0\0\0", 6);
    rec_str(&b, 'M', "");
    rec(&b, 'B', big, sizeof(big));
    rec_str(&b, 'Z', "65537");
    rec_str(&b, 'E', "");
    expect_corrupt(b.data, b.len, "oversize chunk");

    /* The same with a chunk of exactly QFILE_CHUNK_MAX is fine. */
    buf_reset(&b);
    rec_str(&b, 'V', QFILE_VERSION);
    rec_str(&b, 'T', "100");
    rec_str(&b, 'S', "");
    rec(&b, 'R', "r@x\0\0\0", 6);
    rec_str(&b, 'M', "");
    rec(&b, 'B', big, QFILE_CHUNK_MAX);
    rec_str(&b, 'Z', "65536");
    rec_str(&b, 'E', "");
    {
        struct qfile_envelope env;
        bool corrupt;
        char err[256];
        int fd = file_with(b.data, b.len);
        assert_int_equal(
            qfile_read_envelope(fd, &env, &corrupt, err, sizeof(err)), 0);
        assert_int_equal(env.content_size, QFILE_CHUNK_MAX);
        qfile_envelope_free(&env);
        close(fd);
    }

    /* A length that runs past the end of the file. */
    buf_reset(&b);
    rec_str(&b, 'V', QFILE_VERSION);
    buf_putc(&b, 'T');
    buf_putc(&b, 10);
    buf_append(&b, "100", 3);
    expect_corrupt(b.data, b.len, "length past EOF");

    /* An oversize recipient field. */
    buf_reset(&b);
    rec_str(&b, 'V', QFILE_VERSION);
    rec_str(&b, 'T', "100");
    rec_str(&b, 'S', "");
    {
        struct buf r = BUF_INIT;
        buf_append(&r, big, QFILE_ADDR_MAX + 1);
        buf_append(&r, "\0\0\0", 3);
        rec(&b, 'R', r.data, r.len);
        buf_free(&r);
    }
    expect_corrupt(b.data, b.len, "oversize recipient");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_and_writer_checks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_id_collision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recycled_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recycle_map, map_setup,
                                        map_teardown),
        cmocka_unit_test_setup_teardown(test_two_queue_dirs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_error, setup, teardown),
        cmocka_unit_test(test_valid_handmade),
        cmocka_unit_test_setup_teardown(test_every_truncation, setup, teardown),
        cmocka_unit_test(test_damaged_records),
        cmocka_unit_test(test_bad_lengths),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
