/*
 * test_qmgr_proto - what qmgr reads from other processes and files: the
 * incremental attribute-frame parser used on delivery-agent replies
 * (complete, partial and hostile input), and the defer/ID reason log
 * (sanitised on write, distrusted on read).
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

#include "global/attr_scan.h"
#include "global/defer_log.h"
#include "util/attr.h"
#include "util/buf.h"

static int scan(const char *data, size_t len, size_t max,
                struct attr_list *list, size_t *consumed, const char **err)
{
    *consumed = 0;
    *err = NULL;
    return attr_scan_frame(data, len, max, list, consumed, err);
}

static void test_frame_complete(void **state)
{
    struct attr_list list = ATTR_LIST_INIT;
    struct buf f = BUF_INIT;
    const char *err;
    size_t used;

    attr_put_int(&f, "offset", 123);
    attr_put_int(&f, "status", 2);
    attr_put_str(&f, "dsn", "2.0.0");
    attr_put(&f, "reason", "a\0b\nc", 5);
    attr_end(&f);
    buf_puts(&f, "next"); /* the start of another frame */
    assert_int_equal(scan(f.data, f.len, 1 << 20, &list, &used, &err), 1);
    assert_int_equal(used, f.len - 4);
    assert_int_equal(list.n, 4);
    assert_string_equal(list.v[0].name, "offset");
    assert_string_equal(list.v[0].value, "123");
    assert_string_equal(list.v[2].value, "2.0.0");
    assert_int_equal(list.v[3].len, 5);
    assert_memory_equal(list.v[3].value, "a\0b\nc", 5);
    /* The same bytes through util/attr's own helpers agree. */
    assert_string_equal(attr_get(&list, "dsn"), "2.0.0");
    attr_list_free(&list);
    buf_free(&f);
}

static void test_frame_partial(void **state)
{
    struct attr_list list = ATTR_LIST_INIT;
    const char *full = "status:1:2\nreason:5:hello\n\n";
    size_t len = strlen(full);
    const char *err;
    size_t used;

    /* Every proper prefix asks for more; the whole is one frame. */
    for (size_t i = 0; i < len; i++) {
        assert_int_equal(scan(full, i, 1 << 20, &list, &used, &err), 0);
        assert_int_equal(list.n, 0);
    }
    assert_int_equal(scan(full, len, 1 << 20, &list, &used, &err), 1);
    assert_int_equal(used, len);
    assert_int_equal(list.n, 2);
    /* An empty frame is valid. */
    assert_int_equal(scan("\n", 1, 10, &list, &used, &err), 1);
    assert_int_equal(list.n, 0);
    assert_int_equal(used, 1);
    attr_list_free(&list);
}

static void test_frame_bad(void **state)
{
    static const char *const bad[] = {
        "Status:1:2\n\n",       /* upper case name */
        ":1:2\n\n",             /* empty name */
        "status:x:2\n\n",       /* length not decimal */
        "status::2\n\n",        /* empty length */
        "status:1:22\n\n",      /* value longer than declared */
        "status-x:1:2\n\n",     /* bad name character */
        "status:12345678901:x", /* absurd length */
        "garbage without structure\n",
    };
    struct attr_list list = ATTR_LIST_INIT;
    const char *err;
    size_t used;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(
            scan(bad[i], strlen(bad[i]), 1 << 20, &list, &used, &err), -1);
        assert_non_null(err);
        assert_int_equal(list.n, 0);
    }
}

static void test_frame_limits(void **state)
{
    struct attr_list list = ATTR_LIST_INIT;
    struct buf name = BUF_INIT;
    const char *err;
    size_t used;

    /* Over the total before the value arrives: refused at once. */
    assert_int_equal(scan("reason:100:", 11, 99, &list, &used, &err), -1);
    assert_int_equal(scan("reason:99:", 10, 99, &list, &used, &err), 0);
    assert_int_equal(scan("a:60:", 5, 100, &list, &used, &err), 0);
    assert_int_equal(scan("a:60:", 5, 100, &list, &used, &err), 0);
    /* Name length: 64 fine, 65 refused, even before the colon. */
    for (int i = 0; i < 64; i++)
        buf_putc(&name, 'n');
    assert_int_equal(scan(name.data, name.len, 10, &list, &used, &err), 0);
    buf_puts(&name, ":0:\n\n");
    assert_int_equal(scan(name.data, name.len, 10, &list, &used, &err), 1);
    buf_reset(&name);
    for (int i = 0; i < 65; i++)
        buf_putc(&name, 'n');
    assert_int_equal(scan(name.data, name.len, 10, &list, &used, &err), -1);
    buf_free(&name);
    attr_list_free(&list);
}

static void test_defer_line(void **state)
{
    struct buf b = BUF_INIT;
    struct defer_log_entry *e;
    size_t n;

    defer_log_line(&b, "a@example.test", "connect: refused");
    defer_log_line(&b, "b\t@x",
                   "two\nlines\tand\001"
                   "ctl");
    assert_string_equal(b.data, "a@example.test\tconnect: refused\n"
                                "b @x\ttwo lines and?ctl\n");
    n = defer_log_parse(b.data, b.len, &e);
    assert_int_equal(n, 2);
    assert_string_equal(e[0].addr, "a@example.test");
    assert_string_equal(e[0].reason, "connect: refused");
    assert_string_equal(e[1].reason, "two lines and?ctl");
    defer_log_free(e, n);
    buf_free(&b);
}

static void test_defer_parse_hostile(void **state)
{
    static const char data[] = "no tab here\n"
                               "\tempty address\n"
                               "ok@x\treason\n"
                               "nul@x\tre\0ason\n"
                               "last@x\tno newline";
    struct defer_log_entry *e;
    size_t n;

    n = defer_log_parse(data, sizeof(data) - 1, &e);
    assert_int_equal(n, 2);
    assert_string_equal(e[0].addr, "ok@x");
    assert_string_equal(e[1].addr, "last@x");
    assert_string_equal(e[1].reason, "no newline");
    defer_log_free(e, n);
    n = defer_log_parse("", 0, &e);
    assert_int_equal(n, 0);
    defer_log_free(e, n);
}

static void test_defer_file(void **state)
{
    char dir[64], sub[128], err[256];
    struct defer_log_entry *e;
    struct buf b = BUF_INIT;
    long n;

    snprintf(dir, sizeof(dir), "/tmp/test_qmgr_proto.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(sub, sizeof(sub), "%s/defer", dir);
    assert_int_equal(mkdir(sub, 0700), 0);

    assert_int_equal(defer_log_read(dir, "ABC123", &e, err, sizeof(err)), 0);
    defer_log_line(&b, "r@x", "why");
    assert_int_equal(defer_log_write(dir, "ABC123", &b, err, sizeof(err)), 0);
    n = defer_log_read(dir, "ABC123", &e, err, sizeof(err));
    assert_int_equal(n, 1);
    assert_string_equal(e[0].reason, "why");
    defer_log_free(e, (size_t)n);
    /* IDs are checked: no path tricks. */
    assert_int_equal(defer_log_write(dir, "../x", &b, err, sizeof(err)), -1);
    assert_int_equal(defer_log_read(dir, "a/b", &e, err, sizeof(err)), -1);
    assert_int_equal(defer_log_remove(dir, "ABC123", err, sizeof(err)), 0);
    assert_int_equal(defer_log_remove(dir, "ABC123", err, sizeof(err)), 0);
    assert_int_equal(defer_log_read(dir, "ABC123", &e, err, sizeof(err)), 0);
    assert_int_equal(rmdir(sub), 0);
    assert_int_equal(rmdir(dir), 0);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_complete),
        cmocka_unit_test(test_frame_partial),
        cmocka_unit_test(test_frame_bad),
        cmocka_unit_test(test_frame_limits),
        cmocka_unit_test(test_defer_line),
        cmocka_unit_test(test_defer_parse_hostile),
        cmocka_unit_test(test_defer_file),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
