/*
 * test_sendmail_addr - sendmail's address handling (RFC 5322 lists to
 * internal form) and its input reader (lines of any length in bounded
 * pieces, CRLF never split), on the edge cases a To: header or a pipe
 * produces.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sendmail/sendmail_addr.c"
#include "sendmail/sendmail_input.c"
#include "util/fsutil.h"

/* The two functions sendmail.c provides; not reached by these tests. */
void sendmail_fatal(int status, const char *fmt, ...)
{
    (void)fmt;
    exit(status);
}

void sendmail_warn(const char *fmt, ...)
{
    (void)fmt;
}

static const struct sendmail_cfg cfg = {
    .myorigin = "mx.example.test",
    .append_at_myorigin = true,
};

/* Parse text, expect exactly the addr-specs in want (NULL-terminated). */
static void expect_list(const char *text, const char *const *want)
{
    struct argv out = ARGV_INIT;
    size_t n = 0;

    sendmail_addr_list(text, strlen(text), &out);
    for (; want[n]; n++) {
        assert_true(n < out.n);
        assert_string_equal(out.v[n], want[n]);
    }
    assert_int_equal(out.n, n);
    argv_free(&out);
}

static void test_lists(void **state)
{
    (void)state;
    expect_list("alice@example.test",
                (const char *[]){"alice@example.test", NULL});
    expect_list(
        " Alice <alice@example.test> , bob@example.test (Bob)",
        (const char *[]){"alice@example.test", "bob@example.test", NULL});
    /* A comma inside a quoted display name or a comment splits nothing. */
    expect_list("\"Doe, John\" <jd@example.test>, x@y.test (a, b)",
                (const char *[]){"jd@example.test", "x@y.test", NULL});
    /* Groups: the name goes, the members stay; an empty group is nothing. */
    expect_list("undisclosed-recipients:;", (const char *[]){NULL});
    expect_list("team: a@x.test, b@x.test; c@x.test",
                (const char *[]){"a@x.test", "b@x.test", "c@x.test", NULL});
    /* Source route dropped, domain literal with colons kept whole. */
    expect_list("<@relay.test:u@x.test>, v@[IPv6:::1]",
                (const char *[]){"u@x.test", "v@[IPv6:::1]", NULL});
    /* Quoted local part keeps its blanks; unquoted blanks go. */
    expect_list("\"a b\"@x.test, c @ x.test",
                (const char *[]){"\"a b\"@x.test", "c@x.test", NULL});
    expect_list("<>", (const char *[]){"", NULL});
    expect_list("", (const char *[]){NULL});
    expect_list(" , ,, ", (const char *[]){NULL});
    /* Nested comments and an escaped parenthesis. */
    expect_list("a@x.test (one (two) \\) three), b@x.test",
                (const char *[]){"a@x.test", "b@x.test", NULL});
}

static void expect_internal(const char *spec, bool allow_null, const char *want)
{
    const char *why = NULL;
    char *got = sendmail_addr_internal(&cfg, spec, allow_null, &why);

    if (want == NULL) {
        assert_null(got);
        assert_non_null(why);
    } else {
        assert_non_null(got);
        assert_string_equal(got, want);
        free(got);
    }
}

static void test_internal(void **state)
{
    struct sendmail_cfg strict = cfg;
    const char *why = NULL;

    (void)state;
    expect_internal("alice@Example.TEST", false, "alice@example.test");
    expect_internal("root", false, "root@mx.example.test");
    expect_internal("\"a b\"", false, "\"a b\"@mx.example.test");
    expect_internal("\"x@y\"", false, "\"x@y\"@mx.example.test");
    expect_internal("jösé@example.test", false, "jösé@example.test");
    expect_internal("", true, "");
    expect_internal("", false, NULL);
    expect_internal("a@@b", false, NULL);
    expect_internal("a b@x.test", false, NULL);
    expect_internal("a@x.test>junk", false, NULL);
    expect_internal("a@-bad-.test", false, NULL);
    /* 64 octets of local part are fine, 65 are not. */
    char local[80];
    memset(local, 'l', 65);
    local[65] = 0;
    expect_internal(local, false, NULL);
    local[64] = 0;
    {
        char *want = xasprintf("%s@mx.example.test", local);
        expect_internal(local, false, want);
        free(want);
    }
    strict.append_at_myorigin = false;
    assert_null(sendmail_addr_internal(&strict, "root", false, &why));
    assert_non_null(strstr(why, "append_at_myorigin"));
}

/* Read all pieces of input through a pipe. */
static void pieces(const char *data, size_t len, struct buf *out)
{
    int p[2];
    struct sendmail_input *in;
    const char *d;
    size_t n;
    bool ls, le;

    assert_int_equal(pipe(p), 0);
    if (fork() == 0) {
        close(p[0]);
        (void)write_all(p[1], data, len);
        _exit(0);
    }
    close(p[1]);
    in = sendmail_input_open(p[0], 10000);
    while (sendmail_input_next(in, &d, &n, &ls, &le) == PIECE_OK) {
        assert_true(n > 0 && n <= SENDMAIL_PIECE_MAX);
        /* A piece ends a line exactly when its last byte is "\n". */
        assert_int_equal(le, d[n - 1] == '\n');
        buf_printf(out, "[%c%c%zu]", ls ? 'S' : '-', le ? 'E' : '-', n);
    }
    sendmail_input_close(in);
    close(p[0]);
}

static void test_input_pieces(void **state)
{
    struct buf out = BUF_INIT;
    size_t big = SENDMAIL_PIECE_MAX + 10;
    char *data = xmalloc(big + 8);
    char want[128];

    (void)state;
    pieces("a\nbc\r\n\nlast", 11, &out);
    assert_string_equal(out.data, "[SE2][SE4][SE1][S-4]");

    /* A line longer than a piece: several pieces, one line start. */
    buf_reset(&out);
    memset(data, 'x', big);
    data[big] = '\n';
    pieces(data, big + 1, &out);
    snprintf(want, sizeof(want), "[S-%d][-E11]", SENDMAIL_PIECE_MAX);
    assert_string_equal(out.data, want);

    /* CR at the piece boundary stays with its LF. */
    buf_reset(&out);
    memset(data, 'y', big);
    data[SENDMAIL_PIECE_MAX - 1] = '\r';
    data[SENDMAIL_PIECE_MAX] = '\n';
    pieces(data, SENDMAIL_PIECE_MAX + 1, &out);
    snprintf(want, sizeof(want), "[S-%d][-E2]", SENDMAIL_PIECE_MAX - 1);
    assert_string_equal(out.data, want);

    buf_reset(&out);
    pieces("", 0, &out);
    assert_int_equal(out.len, 0);
    buf_free(&out);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_internal),
        cmocka_unit_test(test_input_pieces),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
