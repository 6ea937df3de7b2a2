/*
 * test_master_pid - the pid file lock that decides "is posthorn running":
 * held lock = running (also across fork, as master detaches), released by
 * close or by the death of the process (kill -9 included), a stale file
 * alone = not running; and the queue-ID and socket-path helpers of
 * mail_proto.h (a socket is found in private/ or, failing that, public/).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "global/config.h"
#include "global/mail_proto.h"
#include "global/master_pid.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test_master_pid.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/master.pid", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    rmdir(dir);
    return 0;
}

static void write_file(const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_not_running_without_file(void **state)
{
    char err[256];
    pid_t pid = 1;

    (void)state;
    assert_int_equal(master_pid_check(path, &pid, err, sizeof(err)), 0);
    assert_int_equal(pid, 0);
}

static void test_stale_file_is_not_running(void **state)
{
    char err[256];
    pid_t pid;

    (void)state;
    write_file("12345\n");
    assert_int_equal(master_pid_check(path, &pid, err, sizeof(err)), 0);
}

static void test_lock_write_check_release(void **state)
{
    char err[256];
    pid_t pid, holder;
    int fd, fd2;

    (void)state;
    write_file("99999\n"); /* left by a dead master */
    fd = master_pid_lock(path, &holder, err, sizeof(err));
    assert_true(fd >= 0);
    /* Locked but not written yet: running, pid unknown (stale pid gone). */
    assert_int_equal(master_pid_check(path, &pid, err, sizeof(err)), 1);
    assert_int_equal(pid, 0);

    assert_int_equal(master_pid_write(fd, 4242, err, sizeof(err)), 0);
    assert_int_equal(master_pid_check(path, &pid, err, sizeof(err)), 1);
    assert_int_equal(pid, 4242);

    /* A second master is refused and told who holds the lock. */
    errno = 0;
    fd2 = master_pid_lock(path, &holder, err, sizeof(err));
    assert_int_equal(fd2, -1);
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(holder, 4242);
    assert_non_null(strstr(err, "locked"));

    close(fd);
    assert_int_equal(master_pid_check(path, &pid, err, sizeof(err)), 0);
}

static void test_lock_survives_fork_and_dies_with_holder(void **state)
{
    char err[256];
    pid_t pid, holder, child;
    int fd, status, sync[2];
    char c;

    (void)state;
    fd = master_pid_lock(path, &holder, err, sizeof(err));
    assert_true(fd >= 0);
    assert_int_equal(pipe(sync), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        /* Like master after detaching: the parent's lock is ours now. */
        close(sync[0]);
        master_pid_write(fd, getpid(), err, sizeof(err));
        if (write(sync[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    close(sync[1]);
    close(fd);
    assert_int_equal(read(sync[0], &c, 1), 1);
    close(sync[0]);
    assert_int_equal(master_pid_check(path, &pid, err, sizeof(err)), 1);
    assert_int_equal(pid, child);

    kill(child, SIGKILL);
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_int_equal(master_pid_check(path, &pid, err, sizeof(err)), 0);
}

static void test_garbage_pid_is_unknown(void **state)
{
    char err[256];
    pid_t pid, holder;
    int fd;

    (void)state;
    fd = master_pid_lock(path, &holder, err, sizeof(err));
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "12ab\n", 5, 0), 5);
    assert_int_equal(master_pid_check(path, &pid, err, sizeof(err)), 1);
    assert_int_equal(pid, 0);
    assert_int_equal(pwrite(fd, "-5\n\n", 4, 0), 4);
    assert_int_equal(master_pid_check(path, &pid, err, sizeof(err)), 1);
    assert_int_equal(pid, 0);
    close(fd);
}

static void test_lock_error_names_path(void **state)
{
    char err[256];
    pid_t holder;

    (void)state;
    assert_int_equal(master_pid_lock("/nonexistent/dir/master.pid", &holder,
                                     err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "/nonexistent/dir/master.pid"));
}

static void test_pid_path_and_socket_path(void **state)
{
    struct config *cfg = config_new();
    char err[256], buf[128], tiny[16];

    (void)state;
    assert_int_equal(
        config_set(cfg, "queue_directory", "/var/q", "test", err, sizeof(err)),
        0);
    assert_int_equal(master_pid_path(cfg, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "/var/q/pid/master.pid");
    assert_int_equal(master_pid_path(cfg, tiny, sizeof(tiny)), -1);

    config_set_global(cfg);
    assert_string_equal(mail_private_socket(buf, sizeof(buf), "cleanup"),
                        "/var/q/private/cleanup");
    config_set_global(NULL);
    config_free(cfg);
}

static void bind_socket(const char *sockpath)
{
    struct sockaddr_un sun;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    assert_true(strlen(sockpath) < sizeof(sun.sun_path));
    strcpy(sun.sun_path, sockpath);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    close(fd);
}

/* private/NAME when it is there, else public/NAME (master.cf private=n). */
static void test_socket_found_where_master_put_it(void **state)
{
    struct config *cfg = config_new();
    char err[256], buf[256], want[256], sub[160];

    (void)state;
    assert_int_equal(
        config_set(cfg, "queue_directory", dir, "test", err, sizeof(err)), 0);
    config_set_global(cfg);
    snprintf(sub, sizeof(sub), "%s/private", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(sub, sizeof(sub), "%s/public", dir);
    assert_int_equal(mkdir(sub, 0755), 0);

    /* Neither exists: the usual place, so the connect error names it. */
    snprintf(want, sizeof(want), "%s/private/cleanup", dir);
    assert_string_equal(mail_private_socket(buf, sizeof(buf), "cleanup"), want);

    snprintf(want, sizeof(want), "%s/public/cleanup", dir);
    bind_socket(want);
    assert_string_equal(mail_private_socket(buf, sizeof(buf), "cleanup"), want);

    /* A plain file in private/ is not a socket: still public/. */
    snprintf(sub, sizeof(sub), "%s/private/cleanup", dir);
    close(open(sub, O_CREAT | O_WRONLY, 0600));
    assert_string_equal(mail_private_socket(buf, sizeof(buf), "cleanup"), want);
    unlink(sub);

    snprintf(want, sizeof(want), "%s/private/cleanup", dir);
    bind_socket(want);
    assert_string_equal(mail_private_socket(buf, sizeof(buf), "cleanup"), want);

    unlink(want);
    snprintf(sub, sizeof(sub), "%s/public/cleanup", dir);
    unlink(sub);
    snprintf(sub, sizeof(sub), "%s/private", dir);
    rmdir(sub);
    snprintf(sub, sizeof(sub), "%s/public", dir);
    rmdir(sub);
    config_set_global(NULL);
    config_free(cfg);
}

static void test_queue_id_ok(void **state)
{
    char longest[MAIL_QUEUE_ID_MAX];

    (void)state;
    assert_true(mail_queue_id_ok("4F2A1B3C9D"));
    assert_true(mail_queue_id_ok("abcXYZ019"));
    assert_false(mail_queue_id_ok(""));
    assert_false(mail_queue_id_ok(NULL));
    assert_false(mail_queue_id_ok("../etc"));
    assert_false(mail_queue_id_ok("ABC.DEF"));
    assert_false(mail_queue_id_ok("ABC/DEF"));
    assert_false(mail_queue_id_ok("ABC DEF"));
    assert_false(mail_queue_id_ok("ABC\n"));
    assert_false(mail_queue_id_ok("\xc3\xa9"));
    /* Exactly fills a char[MAIL_QUEUE_ID_MAX] with its NUL; one more not. */
    memset(longest, 'A', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = 0;
    assert_true(mail_queue_id_ok(longest));
    {
        char too_long[MAIL_QUEUE_ID_MAX + 1];

        memset(too_long, 'A', sizeof(too_long) - 1);
        too_long[sizeof(too_long) - 1] = 0;
        assert_false(mail_queue_id_ok(too_long));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_not_running_without_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stale_file_is_not_running, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lock_write_check_release, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_lock_survives_fork_and_dies_with_holder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_pid_is_unknown, setup,
                                        teardown),
        cmocka_unit_test(test_lock_error_names_path),
        cmocka_unit_test(test_pid_path_and_socket_path),
        cmocka_unit_test_setup_teardown(test_socket_found_where_master_put_it,
                                        setup, teardown),
        cmocka_unit_test(test_queue_id_ok),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
