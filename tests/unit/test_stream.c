/*
 * test_stream - buffered I/O over a socketpair: CRLF/LF lines, the line
 * limit at max and one past it, a 1 MB line that must come back as
 * STREAM_TOOLONG with the next line still readable, exact reads across
 * lines, a silent peer timing out, EOF, write errors without SIGPIPE, a
 * peer that never reads, and a pluggable transport.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/fsutil.h"
#include "util/stream.h"

static int fds[2];
static struct stream *s;

static int setup(void **state)
{
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0)
        return -1;
    s = stream_open(fds[0]);
    stream_set_timeout(s, 5000);
    return 0;
}

static int teardown(void **state)
{
    stream_close(s);
    if (fds[1] >= 0)
        close(fds[1]);
    return 0;
}

static void peer_send(const char *data)
{
    assert_int_equal(write_all(fds[1], data, strlen(data)), 0);
}

static void peer_close(void)
{
    close(fds[1]);
    fds[1] = -1;
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_lines(void **state)
{
    struct buf line = BUF_INIT;
    bool crlf;

    peer_send("EHLO a\r\nMAIL FROM:<b>\nc\r\r\n\n\r\nlast");
    peer_close();
    assert_int_equal(stream_read_line(s, &line, 100, &crlf), STREAM_OK);
    assert_string_equal(buf_cstr(&line), "EHLO a");
    assert_true(crlf);
    assert_int_equal(stream_read_line(s, &line, 100, &crlf), STREAM_OK);
    assert_string_equal(buf_cstr(&line), "MAIL FROM:<b>");
    assert_false(crlf);
    /* Only the final CR belongs to the terminator. */
    assert_int_equal(stream_read_line(s, &line, 100, &crlf), STREAM_OK);
    assert_int_equal(line.len, 2);
    assert_memory_equal(line.data, "c\r", 2);
    assert_true(crlf);
    assert_int_equal(stream_read_line(s, &line, 100, &crlf), STREAM_OK);
    assert_int_equal(line.len, 0);
    assert_false(crlf);
    assert_int_equal(stream_read_line(s, &line, 100, NULL), STREAM_OK);
    assert_int_equal(line.len, 0);
    /* An unterminated last line is not a line. */
    assert_int_equal(stream_read_line(s, &line, 100, &crlf), STREAM_EOF);
    assert_int_equal(stream_status(s), STREAM_EOF);
    assert_string_not_equal(stream_error(s), "");
    /* Sticky. */
    assert_int_equal(stream_read_line(s, &line, 100, &crlf), STREAM_EOF);
    buf_free(&line);
}

static void test_limit_edges(void **state)
{
    struct buf line = BUF_INIT;
    bool crlf;

    /* max = 4: exactly 4 is fine with either terminator, 5 is too long. */
    peer_send("abcd\r\nabcd\nabcde\r\nabcde\nok\n");
    assert_int_equal(stream_read_line(s, &line, 4, &crlf), STREAM_OK);
    assert_string_equal(buf_cstr(&line), "abcd");
    assert_true(crlf);
    assert_int_equal(stream_read_line(s, &line, 4, &crlf), STREAM_OK);
    assert_string_equal(buf_cstr(&line), "abcd");
    assert_int_equal(stream_read_line(s, &line, 4, &crlf), STREAM_TOOLONG);
    assert_string_equal(buf_cstr(&line), "abcd");
    assert_true(crlf);
    assert_int_equal(stream_read_line(s, &line, 4, &crlf), STREAM_TOOLONG);
    assert_string_equal(buf_cstr(&line), "abcd");
    assert_false(crlf);
    assert_int_equal(stream_read_line(s, &line, 4, &crlf), STREAM_OK);
    assert_string_equal(buf_cstr(&line), "ok");
    assert_int_equal(stream_status(s), STREAM_OK);
    buf_free(&line);
}

static void test_toolong_megabyte(void **state)
{
    struct buf line = BUF_INIT;
    size_t big = 1024 * 1024;
    pid_t pid;
    int status;
    bool crlf;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *p = malloc(big + 1);
        memset(p, 'x', big);
        p[big] = '\n';
        if (write_all(fds[1], p, big + 1) < 0 ||
            write_all(fds[1], "QUIT\r\n", 6) < 0)
            _exit(1);
        _exit(0);
    }
    peer_close();
    assert_int_equal(stream_read_line(s, &line, 2048, &crlf), STREAM_TOOLONG);
    assert_int_equal(line.len, 2048);
    assert_int_equal(line.data[0], 'x');
    assert_int_equal(line.data[2047], 'x');
    /* The discarded rest never piles up in the line. */
    assert_true(line.cap < 8192);
    assert_int_equal(stream_read_line(s, &line, 2048, &crlf), STREAM_OK);
    assert_string_equal(buf_cstr(&line), "QUIT");
    assert_true(crlf);
    assert_int_equal(stream_read_line(s, &line, 2048, &crlf), STREAM_EOF);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    buf_free(&line);
}

static void test_read_exact_and_some(void **state)
{
    struct buf line = BUF_INIT, out = BUF_INIT;

    assert_int_equal(write_all(fds[1], "BDAT 5\r\nab\0de", 13), 0);
    peer_send("rest");
    assert_int_equal(stream_read_line(s, &line, 100, NULL), STREAM_OK);
    assert_string_equal(buf_cstr(&line), "BDAT 5");
    assert_int_equal(stream_read_exact(s, &out, 0), STREAM_OK);
    assert_int_equal(out.len, 0);
    assert_int_equal(stream_read_exact(s, &out, 5), STREAM_OK);
    assert_int_equal(out.len, 5);
    assert_memory_equal(out.data, "ab\0de", 5);
    assert_int_equal(stream_read_pending(s), 4);
    buf_reset(&out);
    assert_int_equal(stream_read_some(s, &out, 2), STREAM_OK);
    assert_string_equal(buf_cstr(&out), "re");
    assert_int_equal(stream_read_some(s, &out, 100), STREAM_OK);
    assert_string_equal(buf_cstr(&out), "rest");
    assert_int_equal(stream_read_pending(s), 0);
    /* Asking for more than will ever come ends in EOF. */
    peer_send("xy");
    peer_close();
    buf_reset(&out);
    assert_int_equal(stream_read_exact(s, &out, 3), STREAM_EOF);
    buf_free(&line);
    buf_free(&out);
}

static void test_timeout(void **state)
{
    struct buf line = BUF_INIT;
    long long start, elapsed;

    stream_set_timeout(s, 100);
    start = now_ms();
    assert_int_equal(stream_read_line(s, &line, 100, NULL), STREAM_TIMEOUT);
    elapsed = now_ms() - start;
    assert_true(elapsed >= 90);
    assert_true(elapsed < 2000);
    assert_int_equal(stream_status(s), STREAM_TIMEOUT);
    assert_string_equal(stream_error(s), "timeout");
    /* Sticky for reads even when data turns up later... */
    peer_send("late\r\n");
    assert_int_equal(stream_read_line(s, &line, 100, NULL), STREAM_TIMEOUT);
    /* ...but the write side still works, e.g. for "421 timeout". */
    stream_puts(s, "421 4.4.2 Error: timeout exceeded\r\n");
    assert_int_equal(stream_flush(s), STREAM_OK);
    buf_free(&line);
}

static void test_write_flush(void **state)
{
    struct stream *peer;
    struct buf line = BUF_INIT;
    int i;

    peer = stream_open(fds[1]);
    stream_set_timeout(peer, 5000);
    stream_puts(s, "250-first\r\n");
    stream_printf(s, "250 %s %d\r\n", "second", 2);
    stream_write(s, "x\0y\n", 4);
    /* Nothing leaves before the flush. */
    assert_int_equal(stream_read_pending(peer), 0);
    assert_int_equal(stream_flush(s), STREAM_OK);
    assert_int_equal(stream_read_line(peer, &line, 100, NULL), STREAM_OK);
    assert_string_equal(buf_cstr(&line), "250-first");
    assert_int_equal(stream_read_line(peer, &line, 100, NULL), STREAM_OK);
    assert_string_equal(buf_cstr(&line), "250 second 2");
    assert_int_equal(stream_read_line(peer, &line, 100, NULL), STREAM_OK);
    assert_int_equal(line.len, 3);
    assert_memory_equal(line.data, "x\0y", 3);
    /* Long printf output is not truncated. */
    for (i = 0; i < 3; i++)
        stream_printf(s, "%0*d\n", 3000, i);
    assert_int_equal(stream_flush(s), STREAM_OK);
    for (i = 0; i < 3; i++) {
        assert_int_equal(stream_read_line(peer, &line, 5000, NULL), STREAM_OK);
        assert_int_equal(line.len, 3000);
        assert_int_equal(line.data[2999], '0' + i);
    }
    /* An empty flush is fine. */
    assert_int_equal(stream_flush(s), STREAM_OK);
    stream_close(peer);
    fds[1] = -1;
    buf_free(&line);
}

static void test_write_to_closed_peer(void **state)
{
    /* SIGPIPE must not kill us: send(MSG_NOSIGNAL) gives EPIPE. */
    peer_close();
    stream_puts(s, "hello\r\n");
    assert_int_equal(stream_flush(s), STREAM_ERROR);
    assert_int_equal(stream_status(s), STREAM_ERROR);
    assert_string_not_equal(stream_error(s), "");
    /* Sticky: later writes are dropped and the error stays. */
    stream_puts(s, "more\r\n");
    assert_int_equal(stream_flush(s), STREAM_ERROR);
}

static void test_write_timeout(void **state)
{
    static char chunk[65536];
    long long start;
    int i;

    /* The peer never reads: the socket buffer fills and we give up. */
    stream_set_timeout(s, 100);
    memset(chunk, 'z', sizeof(chunk));
    start = now_ms();
    for (i = 0; i < 200; i++)
        stream_write(s, chunk, sizeof(chunk));
    assert_int_equal(stream_flush(s), STREAM_TIMEOUT);
    assert_true(now_ms() - start < 3000);
    assert_int_equal(stream_status(s), STREAM_TIMEOUT);
}

static void test_pipe(void **state)
{
    struct buf line = BUF_INIT;
    struct stream *r, *w;
    int p[2];

    assert_int_equal(pipe(p), 0);
    r = stream_open(p[0]);
    w = stream_open(p[1]);
    stream_set_timeout(r, 1000);
    stream_puts(w, "through a pipe\n");
    assert_int_equal(stream_flush(w), STREAM_OK);
    stream_close(w);
    assert_int_equal(stream_read_line(r, &line, 100, NULL), STREAM_OK);
    assert_string_equal(buf_cstr(&line), "through a pipe");
    assert_int_equal(stream_read_line(r, &line, 100, NULL), STREAM_EOF);
    stream_close(r);
    buf_free(&line);
}

static void test_release_fd(void **state)
{
    struct stream *t = stream_open(fds[1]);

    assert_int_equal(stream_fd(t), fds[1]);
    assert_int_equal(stream_release_fd(t), fds[1]);
    assert_int_equal(stream_fd(t), -1);
    stream_close(t);
    /* Still open: the peer can talk through it. */
    peer_send("alive\n");
}

/* A transport that reverses case and says EAGAIN every other call. */
struct fake {
    int calls;
    int reads;
};

static ssize_t fake_read(struct stream *st, void *ctx, void *b, size_t len,
                         bool *want_write)
{
    struct fake *f = ctx;
    ssize_t n;
    char *p = b;

    *want_write = false;
    if (f->calls++ % 2 == 0) {
        errno = EAGAIN;
        return -1;
    }
    n = read(stream_fd(st), b, len > 3 ? 3 : len);
    for (ssize_t i = 0; i < n; i++)
        if (p[i] >= 'a' && p[i] <= 'z')
            p[i] = (char)(p[i] - 'a' + 'A');
    f->reads++;
    return n;
}

static ssize_t fake_write(struct stream *st, void *ctx, const void *b,
                          size_t len, bool *want_write)
{
    *want_write = true;
    return write(stream_fd(st), b, len > 2 ? 2 : len);
}

static size_t fake_pending(struct stream *st, void *ctx)
{
    return 7;
}

static void test_custom_ops(void **state)
{
    static const struct stream_ops ops = {fake_read, fake_write, fake_pending};
    struct fake f = {0, 0};
    struct buf line = BUF_INIT;
    char got[16];

    stream_set_ops(s, &ops, &f);
    peer_send("hello world\n");
    assert_int_equal(stream_read_line(s, &line, 100, NULL), STREAM_OK);
    assert_string_equal(buf_cstr(&line), "HELLO WORLD");
    assert_int_equal(f.reads, 4);
    assert_int_equal(stream_read_pending(s), 7);
    stream_puts(s, "small writes");
    assert_int_equal(stream_flush(s), STREAM_OK);
    assert_int_equal(read(fds[1], got, sizeof(got)), 12);
    assert_memory_equal(got, "small writes", 12);
    /* NULL ops restore the plain descriptor transport. */
    stream_set_ops(s, NULL, NULL);
    peer_send("plain\n");
    assert_int_equal(stream_read_line(s, &line, 100, NULL), STREAM_OK);
    assert_string_equal(buf_cstr(&line), "plain");
    buf_free(&line);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_toolong_megabyte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_exact_and_some, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_to_closed_peer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_write_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_custom_ops, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
