/*
 * test_attr - the internal frame protocol: a round trip with NUL bytes,
 * empty values and repeated names; back-to-back frames; then every way a
 * peer can break the grammar, each of which must be refused with an
 * error (never a crash, never a half-filled list).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/attr.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/stream.h"

#define MAX_TOTAL 4096

/* Feed raw bytes through a socketpair whose far end is then closed. */
static enum stream_status feed(const void *data, size_t len, size_t max_total,
                               struct attr_list *list, const char **err)
{
    enum stream_status st;
    struct stream *s;
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(write_all(sv[1], data, len), 0);
    close(sv[1]);
    s = stream_open(sv[0]);
    stream_set_timeout(s, 2000);
    st = attr_read(s, list, max_total, err);
    stream_close(s);
    return st;
}

static enum stream_status feed_str(const char *data, struct attr_list *list,
                                   const char **err)
{
    return feed(data, strlen(data), MAX_TOTAL, list, err);
}

static void test_round_trip(void **state)
{
    struct buf frame = BUF_INIT;
    struct attr_list list = ATTR_LIST_INIT;
    const char *err = "unset";
    long long v;
    int sv[2];
    struct stream *s;

    attr_put_str(&frame, "queue_id", "4F2A1B3C9D");
    attr_put(&frame, "data", "a\0b\nc", 5);
    attr_put_str(&frame, "rcpt", "one@example.com");
    attr_put_str(&frame, "rcpt", "two@example.com");
    attr_put_str(&frame, "empty", "");
    attr_put_int(&frame, "size", -1234567890123LL);
    attr_put_int(&frame, "status", 0);
    attr_end(&frame);
    /* A second, empty frame follows on the same stream. */
    attr_end(&frame);

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    s = stream_open(sv[0]);
    stream_set_timeout(s, 2000);
    assert_int_equal(write_all(sv[1], frame.data, frame.len), 0);
    close(sv[1]);

    assert_int_equal(attr_read(s, &list, MAX_TOTAL, &err), STREAM_OK);
    assert_int_equal(list.n, 7);
    assert_string_equal(list.v[0].name, "queue_id");
    assert_string_equal(attr_get(&list, "queue_id"), "4F2A1B3C9D");
    assert_int_equal(attr_find(&list, "data")->len, 5);
    assert_memory_equal(attr_find(&list, "data")->value, "a\0b\nc", 6);
    /* Repeated names keep their order; attr_find returns the first. */
    assert_string_equal(list.v[2].name, "rcpt");
    assert_string_equal(list.v[2].value, "one@example.com");
    assert_string_equal(list.v[3].name, "rcpt");
    assert_string_equal(list.v[3].value, "two@example.com");
    assert_string_equal(attr_get(&list, "rcpt"), "one@example.com");
    assert_string_equal(attr_get(&list, "empty"), "");
    assert_int_equal(attr_find(&list, "empty")->len, 0);
    assert_true(attr_get_int(&list, "size", &v));
    assert_true(v == -1234567890123LL);
    assert_true(attr_get_int(&list, "status", &v));
    assert_int_equal(v, 0);
    assert_false(attr_get_int(&list, "queue_id", &v));
    assert_false(attr_get_int(&list, "data", &v));
    assert_false(attr_get_int(&list, "missing", &v));
    assert_null(attr_get(&list, "missing"));
    assert_null(attr_find(&list, "missing"));

    /* The empty frame, then clean EOF; the list is cleared each time. */
    assert_int_equal(attr_read(s, &list, MAX_TOTAL, &err), STREAM_OK);
    assert_int_equal(list.n, 0);
    assert_int_equal(attr_read(s, &list, MAX_TOTAL, &err), STREAM_EOF);
    assert_int_equal(list.n, 0);

    stream_close(s);
    attr_list_free(&list);
    buf_free(&frame);
}

static void test_wire_format(void **state)
{
    struct buf frame = BUF_INIT;

    attr_put_str(&frame, "queue_id", "4F2A1B3C9D");
    attr_put_int(&frame, "status", 0);
    attr_end(&frame);
    assert_string_equal(buf_cstr(&frame),
                        "queue_id:10:4F2A1B3C9D\nstatus:1:0\n\n");
    buf_free(&frame);
}

static void test_list_add(void **state)
{
    struct attr_list list = ATTR_LIST_INIT;
    int i;

    for (i = 0; i < 100; i++)
        attr_list_add(&list, "n", "v\0w", 3);
    assert_int_equal(list.n, 100);
    assert_int_equal(list.v[99].len, 3);
    assert_memory_equal(list.v[99].value, "v\0w", 4);
    attr_list_clear(&list);
    assert_int_equal(list.n, 0);
    attr_list_free(&list);
    assert_null(list.v);
}

static void test_clean_eof(void **state)
{
    struct attr_list list = ATTR_LIST_INIT;
    const char *err = NULL;

    assert_int_equal(feed("", 0, MAX_TOTAL, &list, &err), STREAM_EOF);
    assert_int_equal(list.n, 0);
    attr_list_free(&list);
}

/* Each of these must be STREAM_ERROR with a reason and an empty list. */
static void test_grammar_violations(void **state)
{
    static const struct {
        const char *input;
        const char *why;
    } bad[] = {
        {"Name:1:x\n\n", "uppercase in name"},
        {"na-me:1:x\n\n", "dash in name"},
        {"na me:1:x\n\n", "blank in name"},
        {"n\xc3\xa4me:1:x\n\n", "non-ASCII in name"},
        {":1:x\n\n", "empty name"},
        {"name1x\n\n", "missing colon after name"},
        {"name\n\n", "missing colon, newline in name"},
        {"name:1x\n\n", "missing colon after length"},
        {"name::x\n\n", "missing length"},
        {"name:01:x\n\n", "leading zero"},
        {"name:00:\n\n", "double zero"},
        {"name:+1:x\n\n", "plus sign"},
        {"name:-1:x\n\n", "minus sign"},
        {"name: 1:x\n\n", "blank before length"},
        {"name:0x1:x\n\n", "hex length"},
        {"name:12345678901:x\n\n", "eleven-digit length"},
        {"name:2:abc\n\n", "length shorter than value"},
        {"name:1:x", "no newline after value"},
        {"name:1:xy\n\n", "value longer than length"},
        {"a:1:x\nb:1:y", "truncated second attribute"},
        {"a:1:x\n", "missing end of frame"},
        {"a:1:x\nb", "truncated name"},
        {"a:1", "truncated length"},
        {"a:5:ab", "truncated value"},
        {"a", "truncated after one byte"},
    };
    struct attr_list list = ATTR_LIST_INIT;
    const char *err;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = NULL;
        if (feed_str(bad[i].input, &list, &err) != STREAM_ERROR)
            fail_msg("accepted or misclassified: %s", bad[i].why);
        if (err == NULL || *err == 0)
            fail_msg("no reason given: %s", bad[i].why);
        assert_int_equal(list.n, 0);
    }
    attr_list_free(&list);
}

static void test_truncated_reason(void **state)
{
    struct attr_list list = ATTR_LIST_INIT;
    const char *err = NULL;

    assert_int_equal(feed_str("a:1:x\nb:3:ab", &list, &err), STREAM_ERROR);
    assert_string_equal(err, "truncated frame");
    assert_int_equal(feed_str("a:1:x\n", &list, &err), STREAM_ERROR);
    assert_string_equal(err, "truncated frame");
    assert_int_equal(list.n, 0);
    attr_list_free(&list);
}

static void test_name_length(void **state)
{
    struct attr_list list = ATTR_LIST_INIT;
    struct buf in = BUF_INIT;
    const char *err = NULL;
    char name[ATTR_NAME_MAX + 2];

    memset(name, 'n', ATTR_NAME_MAX);
    name[ATTR_NAME_MAX] = 0;
    buf_printf(&in, "%s:1:x\n\n", name);
    assert_int_equal(feed(in.data, in.len, MAX_TOTAL, &list, &err), STREAM_OK);
    assert_string_equal(list.v[0].name, name);
    /* One past the limit. */
    name[ATTR_NAME_MAX] = 'n';
    name[ATTR_NAME_MAX + 1] = 0;
    buf_reset(&in);
    buf_printf(&in, "%s:1:x\n\n", name);
    assert_int_equal(feed(in.data, in.len, MAX_TOTAL, &list, &err),
                     STREAM_ERROR);
    assert_int_equal(list.n, 0);
    buf_free(&in);
    attr_list_free(&list);
}

static void test_size_limits(void **state)
{
    struct attr_list list = ATTR_LIST_INIT;
    struct buf in = BUF_INIT;
    const char *err = NULL;
    char value[3000];

    memset(value, 'v', sizeof(value));
    /* A huge announced length is refused before anything is read. */
    assert_int_equal(feed_str("a:9999999999:x\n\n", &list, &err),
                     STREAM_TOOLONG);
    assert_string_not_equal(err, "");
    /* Exactly max_total in two values is fine... */
    attr_put(&in, "a", value, 2048);
    attr_put(&in, "b", value, 2048);
    attr_end(&in);
    assert_int_equal(feed(in.data, in.len, 4096, &list, &err), STREAM_OK);
    assert_int_equal(list.n, 2);
    /* ...one byte more is not. */
    assert_int_equal(feed(in.data, in.len, 4095, &list, &err), STREAM_TOOLONG);
    assert_int_equal(list.n, 0);
    buf_reset(&in);
    attr_put(&in, "a", value, 3000);
    attr_put(&in, "b", value, 3000);
    attr_end(&in);
    assert_int_equal(feed(in.data, in.len, MAX_TOTAL, &list, &err),
                     STREAM_TOOLONG);
    assert_int_equal(list.n, 0);
    /* Zero-length values count nothing against the total. */
    assert_int_equal(feed_str("a:0:\nb:0:\n\n", &list, &err), STREAM_OK);
    assert_int_equal(list.n, 2);
    assert_int_equal(feed("a:0:\n\n", 6, 0, &list, &err), STREAM_OK);
    buf_free(&in);
    attr_list_free(&list);
}

static void test_timeout(void **state)
{
    struct attr_list list = ATTR_LIST_INIT;
    const char *err = NULL;
    struct stream *s;
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    s = stream_open(sv[0]);
    stream_set_timeout(s, 100);
    /* Silent peer at a frame boundary... */
    assert_int_equal(attr_read(s, &list, MAX_TOTAL, &err), STREAM_TIMEOUT);
    stream_close(s);
    close(sv[1]);
    /* ...and in the middle of a frame. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    s = stream_open(sv[0]);
    stream_set_timeout(s, 100);
    assert_int_equal(write(sv[1], "a:1:x\nb:", 8), 8);
    assert_int_equal(attr_read(s, &list, MAX_TOTAL, &err), STREAM_TIMEOUT);
    assert_int_equal(list.n, 0);
    assert_string_equal(err, "timeout");
    stream_close(s);
    close(sv[1]);
    attr_list_free(&list);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_wire_format),
        cmocka_unit_test(test_list_add),
        cmocka_unit_test(test_clean_eof),
        cmocka_unit_test(test_grammar_violations),
        cmocka_unit_test(test_truncated_reason),
        cmocka_unit_test(test_name_length),
        cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
