/*
 * test_cmd_queue - `posthorn queue -p / -j` over a real queue directory:
 * every queue, hashed deferred/, hold and active markers, delay reasons
 * from defer/, done recipients hidden, corrupt files skipped, and JSON
 * string escaping (control characters, invalid UTF-8).
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
#include <time.h>
#include <unistd.h>

#include "cli/cmd_queue.c"

static char qdir[64];

static void rm_rf(const char *path)
{
    char *cmd = xasprintf("rm -rf '%s'", path);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

static int setup(void **state)
{
    static const char *const subs[] = {
        "incoming", "active", "deferred", "deferred/7", "hold", "tmp", "defer"};
    char path[128];

    setenv("TZ", "UTC", 1);
    tzset();
    snprintf(qdir, sizeof(qdir), "/tmp/test_cmd_queue.XXXXXX");
    assert_non_null(mkdtemp(qdir));
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", qdir, subs[i]);
        assert_int_equal(mkdir(path, 0700), 0);
    }
    return 0;
}

static int teardown(void **state)
{
    rm_rf(qdir);
    return 0;
}

/* Commit a message and move it to queue (a path under qdir). */
static void make_message(const char *sender, const char *const *rcpts,
                         size_t body_len, const char *dest, char *id)
{
    char err[256], from[160], to[160];
    struct qfile_writer *w = qfile_writer_open(qdir, err, sizeof(err));
    char *body = xmalloc(body_len + 1);
    char size[32];

    assert_non_null(w);
    memset(body, 'x', body_len);
    qfile_put_str(w, QREC_VERSION, QFILE_VERSION);
    qfile_put_str(w, QREC_TIME, "1795429081");
    qfile_put_str(w, QREC_SENDER, sender);
    for (; *rcpts; rcpts += 2)
        qfile_put_rcpt(w, rcpts[0], rcpts[1], "", "");
    qfile_put_str(w, QREC_MESSAGE, "");
    qfile_put(w, QREC_BODY, body, body_len);
    snprintf(size, sizeof(size), "%zu", body_len);
    qfile_put_str(w, QREC_SIZE, size);
    assert_int_equal(qfile_writer_commit(w, id, err, sizeof(err)), 0);
    free(body);
    if (strcmp(dest, "incoming") != 0) {
        snprintf(from, sizeof(from), "%s/incoming/%s", qdir, id);
        snprintf(to, sizeof(to), "%s/%s/%s", qdir, dest, id);
        assert_int_equal(rename(from, to), 0);
    }
}

static char *list(bool json, int *rc)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    assert_non_null(f);
    *rc = queue_list(qdir, json, f);
    fclose(f);
    return text;
}

static void test_empty(void **state)
{
    int rc;
    char *out = list(false, &rc);

    assert_int_equal(rc, 0);
    assert_string_equal(out, "Mail queue is empty\n");
    free(out);
    out = list(true, &rc);
    assert_string_equal(out, "");
    free(out);
}

static void test_listing(void **state)
{
    char a[MAIL_QUEUE_ID_MAX], b[MAIL_QUEUE_ID_MAX], c[MAIL_QUEUE_ID_MAX];
    char want[4096], path[160], err[256];
    struct buf defer = BUF_INIT;
    struct qfile_envelope env;
    bool corrupt;
    int rc, fd;
    char *out, *a_st, *b_st;

    make_message("alice@example.org",
                 (const char *const[]){"bob@example.test", "bob@example.test",
                                       "carol@example.test",
                                       "list@example.test", NULL},
                 1500, "active", a);
    make_message("", (const char *const[]){"dave@remote.test", "", NULL}, 100,
                 "hold", b);
    make_message("erin@example.org",
                 (const char *const[]){"f1@remote.test", "f1@remote.test",
                                       "f2@remote.test", "f2@remote.test",
                                       "f3@remote.test", "f3@remote.test",
                                       NULL},
                 2000, "deferred/7", c);

    /* c: f1 delivered; f2 deferred with a reason; f3 not tried yet. */
    snprintf(path, sizeof(path), "%s/deferred/7/%s", qdir, c);
    fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(qfile_read_envelope(fd, &env, &corrupt, err, sizeof(err)),
                     0);
    assert_int_equal(qfile_mark_done(fd, env.rcpts[0].offset, err, sizeof(err)),
                     0);
    qfile_envelope_free(&env);
    close(fd);
    defer_log_line(&defer, "f2@remote.test",
                   "connect to mx.remote.test[192.0.2.9]:25: "
                   "Connection refused");
    assert_int_equal(defer_log_write(qdir, c, &defer, err, sizeof(err)), 0);
    buf_free(&defer);

    /* Junk that must not show: a corrupt file and a non-ID name. */
    snprintf(path, sizeof(path), "%s/incoming/ABCDEF123", qdir);
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    assert_int_equal(write(fd, "garbage", 7), 7);
    close(fd);
    snprintf(path, sizeof(path), "%s/incoming/not.an.id", qdir);
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    close(fd);

    out = list(false, &rc);
    assert_int_equal(rc, 0);
    a_st = xasprintf("%s*", a);
    b_st = xasprintf("%s!", b);
    snprintf(want, sizeof(want),
             "-Queue ID-  --Size-- ----Arrival Time---- "
             "-Sender/Recipient-------\n"
             "%-11s %7d Mon Nov 23 10:18:01  alice@example.org\n"
             "%40s bob@example.test\n"
             "%40s carol@example.test\n"
             "\n"
             "%-11s %7d Mon Nov 23 10:18:01  erin@example.org\n"
             "%*s(connect to mx.remote.test[192.0.2.9]:25: "
             "Connection refused)\n"
             "%40s f2@remote.test\n"
             "%*s(reason unavailable)\n"
             "%40s f3@remote.test\n"
             "\n"
             "%-11s %7d Mon Nov 23 10:18:01  MAILER-DAEMON\n"
             "%40s dave@remote.test\n"
             "\n"
             "-- 3 Kbytes in 3 Requests.\n",
             a_st, 1500, "", "", c, 2000,
             76 - (int)strlen("connect to mx.remote.test[192.0.2.9]:25: "
                              "Connection refused"),
             "", "", 76 - (int)strlen("reason unavailable"), "", "", b_st, 100,
             "");
    assert_string_equal(out, want);
    free(out);
    free(a_st);
    free(b_st);

    out = list(true, &rc);
    snprintf(want, sizeof(want),
             "{\"queue_name\": \"active\", \"queue_id\": \"%s\", "
             "\"arrival_time\": 1795429081, \"message_size\": 1500, "
             "\"forced_expire\": false, \"sender\": \"alice@example.org\", "
             "\"recipients\": [{\"address\": \"bob@example.test\"}, "
             "{\"address\": \"carol@example.test\", "
             "\"orig_address\": \"list@example.test\"}]}\n"
             "{\"queue_name\": \"deferred\", \"queue_id\": \"%s\", "
             "\"arrival_time\": 1795429081, \"message_size\": 2000, "
             "\"forced_expire\": false, \"sender\": \"erin@example.org\", "
             "\"recipients\": [{\"address\": \"f2@remote.test\", "
             "\"delay_reason\": \"connect to mx.remote.test[192.0.2.9]:25: "
             "Connection refused\"}, {\"address\": \"f3@remote.test\"}]}\n"
             "{\"queue_name\": \"hold\", \"queue_id\": \"%s\", "
             "\"arrival_time\": 1795429081, \"message_size\": 100, "
             "\"forced_expire\": false, \"sender\": \"MAILER-DAEMON\", "
             "\"recipients\": [{\"address\": \"dave@remote.test\"}]}\n",
             a, c, b);
    assert_string_equal(out, want);
    free(out);
}

static void test_one_request(void **state)
{
    char a[MAIL_QUEUE_ID_MAX];
    int rc;
    char *out;

    make_message("a@b.test", (const char *const[]){"c@d.test", "", NULL}, 10,
                 "incoming", a);
    out = list(false, &rc);
    assert_non_null(strstr(out, "\n-- 0 Kbytes in 1 Request.\n"));
    free(out);
}

static void expect_json(const char *in, const char *want)
{
    struct buf b = BUF_INIT;

    json_string(&b, in);
    assert_string_equal(buf_cstr(&b), want);
    buf_free(&b);
}

static void test_json_string(void **state)
{
    expect_json("plain", "\"plain\"");
    expect_json("q\"b\\s/", "\"q\\\"b\\\\s/\"");
    expect_json("\b\f\n\r\t\x01\x1f\x7f", "\"\\b\\f\\n\\r\\t\\u0001\\u001f"
                                          "\\u007f\"");
    /* Valid UTF-8 passes through: é, €, U+1F600. */
    expect_json("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
                "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    /* Invalid: lone continuation, truncated sequence, overlong,
     * surrogate, above U+10FFFF, 0xFF. */
    expect_json("a\x80z", "\"a\\ufffdz\"");
    expect_json("\xc3", "\"\\ufffd\"");
    expect_json("\xe2\x82", "\"\\ufffd\\ufffd\"");
    expect_json("\xc0\xaf", "\"\\ufffd\\ufffd\"");
    expect_json("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");
    expect_json("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
    expect_json("\xff", "\"\\ufffd\"");
}

static void test_usage(void **state)
{
    char *bad1[] = {"queue", NULL};
    char *bad2[] = {"queue", "-x", NULL};

    assert_int_equal(cmd_queue("/nonexistent", 1, bad1), 2);
    assert_int_equal(cmd_queue("/nonexistent", 2, bad2), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_request, setup, teardown),
        cmocka_unit_test(test_json_string),
        cmocka_unit_test(test_usage),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
