/*
 * test_groupsync - group commit across processes: many writers get their
 * syncs answered, a damaged state file is repaired, a dead leader does not
 * block the others, and bad paths are errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/groupsync.h"

static char dir[64];
static char state[128];

static int setup(void **unused)
{
    snprintf(dir, sizeof(dir), "/tmp/test_groupsync.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(state, sizeof(state), "%s/state", dir);
    return 0;
}

static int teardown(void **unused)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd);
}

static void test_single_sync(void **unused)
{
    char err[256];
    struct groupsync *g = groupsync_open(state, dir, err, sizeof(err));

    assert_non_null(g);
    assert_int_equal(groupsync_sync(g), 0);
    assert_int_equal(groupsync_sync(g), 0);
    groupsync_close(g);
}

/*
 * A ticket is covered by the first round that starts after it, whoever
 * runs it, and not before.
 */
static void test_ticket(void **unused)
{
    char err[256];
    struct groupsync *a = groupsync_open(state, dir, err, sizeof(err));
    struct groupsync *b = groupsync_open(state, dir, err, sizeof(err));
    uint64_t t1, t2;

    assert_non_null(a);
    assert_non_null(b);
    t1 = groupsync_ticket(a);
    assert_true(t1 > 0);
    assert_false(groupsync_covered(a, t1));
    assert_false(groupsync_covered(b, t1));
    /* Someone else's round covers it. */
    assert_int_equal(groupsync_sync(b), 0);
    assert_true(groupsync_covered(a, t1));
    t2 = groupsync_ticket(a);
    assert_true(t2 > t1);
    assert_false(groupsync_covered(a, t2));
    assert_true(groupsync_covered(a, t1));
    assert_int_equal(groupsync_sync(a), 0);
    assert_true(groupsync_covered(b, t2));
    groupsync_close(a);
    groupsync_close(b);
}

static void test_bad_paths(void **unused)
{
    char err[256] = "";

    assert_null(groupsync_open("/nonexistent/dir/state", dir, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/dir/state"));
    err[0] = 0;
    assert_null(groupsync_open(state, "/nonexistent/x", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/x"));
}

/* Eight processes write and sync 50 files each; every sync succeeds and
 * the whole run is bounded in time. */
static void test_many_writers(void **unused)
{
    enum { PROCS = 8, FILES = 50 };
    time_t start = time(NULL);
    pid_t pids[PROCS];

    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            char err[256], path[256];
            struct groupsync *g = groupsync_open(state, dir, err, sizeof(err));
            if (g == NULL)
                _exit(2);
            for (int i = 0; i < FILES; i++) {
                snprintf(path, sizeof(path), "%s/f%d.%d", dir, p, i);
                int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
                if (fd < 0 || write(fd, "data\n", 5) != 5)
                    _exit(3);
                close(fd);
                if (groupsync_sync(g) != 0)
                    _exit(4);
            }
            groupsync_close(g);
            _exit(0);
        }
    }
    for (int p = 0; p < PROCS; p++) {
        int st;
        assert_int_equal(waitpid(pids[p], &st, 0), pids[p]);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    assert_true(time(NULL) - start < 60);
}

/* Garbage in the state file is replaced by a fresh state block. */
static void test_damaged_state(void **unused)
{
    char err[256], junk[512];
    int fd = open(state, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    memset(junk, 0xa5, sizeof(junk));
    assert_true(fd >= 0);
    assert_int_equal(write(fd, junk, sizeof(junk)), (int)sizeof(junk));
    close(fd);
    struct groupsync *g = groupsync_open(state, dir, err, sizeof(err));
    assert_non_null(g);
    assert_int_equal(groupsync_sync(g), 0);
    groupsync_close(g);
}

/* A process killed while it holds the shared mutex does not block the
 * next one (robust mutex). */
static void test_holder_killed(void **unused)
{
    char err[256];
    struct groupsync *g = groupsync_open(state, dir, err, sizeof(err));
    int pipefd[2];

    assert_non_null(g);
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Many syncs in a loop: the kill lands at a random point, often
         * inside the critical section or the leader's syncfs. */
        struct groupsync *c = groupsync_open(state, dir, err, sizeof(err));
        if (write(pipefd[1], "x", 1) != 1)
            _exit(1);
        for (;;)
            (void)groupsync_sync(c);
    }
    char x;
    assert_int_equal(read(pipefd[0], &x, 1), 1);
    usleep(20000);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    time_t start = time(NULL);
    assert_int_equal(groupsync_sync(g), 0);
    assert_true(time(NULL) - start <= 2 * GROUPSYNC_LEADER_TIMEOUT_MS / 1000 + 1);
    groupsync_close(g);
    close(pipefd[0]);
    close(pipefd[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_single_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ticket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_holder_killed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
