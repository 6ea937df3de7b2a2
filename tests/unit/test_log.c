/*
 * test_log - the maillog_file format: timestamp, host, program[pid],
 * severity prefixes, one line per call even for hostile text, the length
 * cap, verbose gating, fatal/panic termination, and log_printable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/fsutil.h"
#include "util/log.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/test_log.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/maillog", dir);
    log_open("test", LOG_TO_FILE, path);
    log_set_verbose(0);
    return 0;
}

static int teardown(void **state)
{
    log_open("test", LOG_TO_STDERR, NULL);
    unlink(path);
    rmdir(dir);
    return 0;
}

/* The log file as a list of lines (the buf holds them all). */
static void read_log(struct buf *b)
{
    buf_reset(b);
    assert_int_equal(file_read_all(path, b, 1 << 20), 0);
}

static size_t count_lines(const struct buf *b)
{
    size_t i, n = 0;

    for (i = 0; i < b->len; i++)
        n += b->data[i] == '\n';
    return n;
}

static void test_format(void **state)
{
    struct buf b = BUF_INIT;
    char pattern[256];
    regex_t re;
    struct stat st;
    mode_t mask;

    log_info("%s: from=<%s>, size=%d", "ABC123", "a@b", 42);
    read_log(&b);
    snprintf(pattern, sizeof(pattern),
             "^[A-Z][a-z][a-z] [ 0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9] "
             "[^ ]+ posthorn/test\\[%ld\\]: ABC123: from=<a@b>, size=42\n$",
             (long)getpid());
    assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    if (regexec(&re, b.data, 0, NULL, 0) != 0)
        fail_msg("unexpected log line: %s", b.data);
    regfree(&re);
    assert_int_equal(stat(path, &st), 0);
    mask = umask(0);
    umask(mask);
    assert_int_equal(st.st_mode & 0777, 0640 & ~mask);
    buf_free(&b);
}

static void test_levels(void **state)
{
    struct buf b = BUF_INIT;

    log_warn("w %d", 1);
    log_error("e %d", 2);
    log_debug("hidden");
    log_set_verbose(1);
    assert_int_equal(log_verbose_level(), 1);
    log_debug("shown");
    read_log(&b);
    assert_non_null(strstr(b.data, "]: warning: w 1\n"));
    assert_non_null(strstr(b.data, "]: error: e 2\n"));
    assert_null(strstr(b.data, "hidden"));
    assert_non_null(strstr(b.data, "]: shown\n"));
    assert_int_equal(count_lines(&b), 3);
    buf_free(&b);
}

static void test_one_line_and_cap(void **state)
{
    struct buf b = BUF_INIT;
    char *big = malloc(100000);

    log_info("evil\r\nposthorn/smtpd[1]: forged");
    memset(big, 'x', 99999);
    big[99999] = 0;
    log_info("big %s", big);
    log_info("after");
    read_log(&b);
    assert_int_equal(count_lines(&b), 3);
    assert_non_null(strstr(b.data, "evil  posthorn/smtpd[1]: forged\n"));
    /* The capped line still ends in a newline and is far below 100 KB. */
    assert_true(b.len < 3 * 4096);
    assert_non_null(strstr(b.data, "xxx\n"));
    assert_non_null(strstr(b.data, "]: after\n"));
    free(big);
    buf_free(&b);
}

static void test_errno_preserved(void **state)
{
    errno = ENOENT;
    log_info("x");
    assert_int_equal(errno, ENOENT);
}

static void test_fatal_exits(void **state)
{
    struct buf b = BUF_INIT;
    pid_t pid;
    int status;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        log_reinit_pid();
        log_fatal("cannot go on: %s", "reason");
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    read_log(&b);
    assert_non_null(strstr(b.data, "]: fatal: cannot go on: reason\n"));
    /* The child logged under its own pid. */
    {
        char tag[64];
        snprintf(tag, sizeof(tag), "posthorn/test[%ld]: fatal", (long)pid);
        assert_non_null(strstr(b.data, tag));
    }
    buf_free(&b);
}

static void test_panic_aborts(void **state)
{
    struct buf b = BUF_INIT;
    pid_t pid;
    int status;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGABRT, SIG_DFL);
        log_panic("bug %d", 7);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    read_log(&b);
    assert_non_null(strstr(b.data, "]: panic: bug 7\n"));
    buf_free(&b);
}

static void test_printable(void **state)
{
    char dst[16];

    assert_string_equal(log_printable(dst, sizeof(dst), "ok text", 7),
                        "ok text");
    assert_string_equal(log_printable(dst, sizeof(dst), "a\r\nb\0c\x7f", 7),
                        "a??b?c?");
    assert_string_equal(log_printable(dst, sizeof(dst), "\xc3\xa4\t", 3),
                        "???");
    /* Truncated to the destination, always terminated. */
    assert_string_equal(
        log_printable(dst, sizeof(dst), "0123456789abcdefXYZ", 19),
        "0123456789abcde");
    assert_string_equal(log_printable(dst, sizeof(dst), "abc", 2), "ab");
    dst[0] = 'q';
    assert_ptr_equal(log_printable(dst, 0, "abc", 3), dst);
    assert_int_equal(dst[0], 'q');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_line_and_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errno_preserved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fatal_exits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_panic_aborts, setup, teardown),
        cmocka_unit_test(test_printable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
