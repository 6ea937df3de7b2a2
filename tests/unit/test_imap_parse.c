/*
 * test_imap_parse - the IMAP command grammar (src/imapd/imap_parse*.c):
 * framing with literals and limits (at the limit and one past), the
 * argument tree, sequence sets, dates, flags, FETCH attributes and
 * SEARCH keys, including the errors a client can provoke.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "imapd/imap_mime.c"
#include "imapd/imap_parse.c"
#include "imapd/imap_parse_fetch.c"
#include "imapd/imap_parse_search.c"
#include "imapd/imap_pool.c"

static const struct imap_limits lim = {100, 50, 1000};

static enum imap_frame_status scan(const char *s, struct imap_frame *f)
{
    return imap_frame_scan(s, strlen(s), &lim, f);
}

static void test_frame_lines(void **state)
{
    struct imap_frame f;

    (void)state;
    assert_int_equal(scan("a NOOP", &f), IMAP_FRAME_MORE);
    assert_int_equal(scan("a NOOP\r\nb NOOP\r\n", &f), IMAP_FRAME_DONE);
    assert_int_equal(f.len, 8);
    /* A bare LF ends a line too. */
    assert_int_equal(scan("a NOOP\n", &f), IMAP_FRAME_DONE);
    assert_int_equal(f.len, 7);
}

static void test_frame_line_limit(void **state)
{
    char line[300];
    struct imap_frame f;

    (void)state;
    /* Exactly max_line bytes before CRLF: fine. */
    memset(line, 'x', 100);
    memcpy(line + 100, "\r\n", 3);
    assert_int_equal(scan(line, &f), IMAP_FRAME_DONE);
    /* One more: too long, and the whole line may be dropped. */
    memset(line, 'x', 101);
    memcpy(line + 101, "\r\nz", 4);
    assert_int_equal(scan(line, &f), IMAP_FRAME_TOOLONG);
    assert_true(f.line_ended);
    assert_int_equal(f.len, 103);
    /* No LF yet but already past the limit: refuse without waiting. */
    memset(line, 'x', 150);
    line[150] = 0;
    assert_int_equal(scan(line, &f), IMAP_FRAME_TOOLONG);
    assert_false(f.line_ended);
}

static void test_frame_literals(void **state)
{
    struct imap_frame f;

    (void)state;
    /* Synchronising literal: "+" wanted right after "{5}\r\n". */
    assert_int_equal(scan("a LOGIN {5}\r\n", &f), IMAP_FRAME_CONTINUE);
    assert_int_equal(f.cont_at, 13);
    assert_int_equal(scan("a LOGIN {5}\r\nab", &f), IMAP_FRAME_CONTINUE);
    assert_int_equal(scan("a LOGIN {5}\r\nalice {3}\r\n", &f),
                      IMAP_FRAME_CONTINUE);
    assert_int_equal(f.cont_at, 24);
    assert_int_equal(scan("a LOGIN {5}\r\nalice {3}\r\npw!\r\n", &f),
                      IMAP_FRAME_DONE);
    assert_int_equal(f.len, 29);
    /* A literal may contain CRLF and braces. */
    assert_int_equal(scan("a X {4}\r\n{1}\n\r\n", &f), IMAP_FRAME_DONE);
    /* LITERAL+: no continuation. */
    assert_int_equal(scan("a LOGIN {5+}\r\nal", &f), IMAP_FRAME_MORE);
    assert_int_equal(scan("a LOGIN {5+}\r\nalice x\r\n", &f),
                      IMAP_FRAME_DONE);
}

static void test_frame_literal_limits(void **state)
{
    struct imap_frame f;

    (void)state;
    assert_int_equal(scan("a X {50}\r\n", &f), IMAP_FRAME_CONTINUE);
    assert_int_equal(scan("a X {51}\r\n", &f), IMAP_FRAME_TOOBIG);
    assert_false(f.nonsync);
    assert_false(f.append);
    assert_int_equal(f.len, 10);
    assert_int_equal(f.literal_size, 51);
    assert_int_equal(scan("a X {51+}\r\n", &f), IMAP_FRAME_TOOBIG);
    assert_true(f.nonsync);
    /* APPEND has its own, larger limit. */
    assert_int_equal(scan("a APPEND INBOX {1000}\r\n", &f),
                      IMAP_FRAME_CONTINUE);
    assert_int_equal(scan("a append INBOX {1001}\r\n", &f),
                      IMAP_FRAME_TOOBIG);
    assert_true(f.append);
    assert_int_equal(scan("a X {99999999999}\r\n", &f), IMAP_FRAME_TOOBIG);
}

static void test_line_scan(void **state)
{
    size_t n, used;
    bool ended;

    (void)state;
    assert_int_equal(imap_line_scan("DONE\r\nx", 7, 10, &n, &used, &ended),
                     IMAP_FRAME_DONE);
    assert_int_equal(n, 4);
    assert_int_equal(used, 6);
    assert_int_equal(imap_line_scan("DON", 3, 10, &n, &used, &ended),
                     IMAP_FRAME_MORE);
    assert_int_equal(imap_line_scan("0123456789AB\n", 13, 10, &n, &used,
                                    &ended),
                     IMAP_FRAME_TOOLONG);
    assert_true(ended);
}

static int parse(struct imap_pool *p, const char *s, struct imap_command *c,
                 const char **err)
{
    return imap_parse_command(p, s, strlen(s), c, err);
}

static void test_parse_basic(void **state)
{
    struct imap_pool p = IMAP_POOL_INIT;
    struct imap_command c;
    const char *err = NULL;

    (void)state;
    assert_int_equal(parse(&p, "a1 noop\r\n", &c, &err), 0);
    assert_string_equal(c.tag, "a1");
    assert_string_equal(c.name, "NOOP");
    assert_int_equal(c.nargs, 0);

    assert_int_equal(parse(&p, "t LOGIN \"al\\\"ice\" {3}\r\np\0w\r\n", &c,
                           &err),
                     -1); /* strlen stops at the NUL: literal cut short */
    {
        static const char cmd[] = "t LOGIN \"al\\\"ice\" {3}\r\np\0w\r\n";

        assert_int_equal(imap_parse_command(&p, cmd, sizeof(cmd) - 1, &c,
                                            &err),
                         0);
    }
    assert_int_equal(c.nargs, 2);
    assert_int_equal(c.args[0].type, IMAP_ARG_QUOTED);
    assert_string_equal(c.args[0].str, "al\"ice");
    assert_int_equal(c.args[1].type, IMAP_ARG_LITERAL);
    assert_int_equal(c.args[1].len, 3);
    assert_memory_equal(c.args[1].str, "p\0w", 3);
    {
        const char *s;

        /* A string with a NUL is no astring. */
        assert_false(imap_arg_astring(&c.args[1], &s));
        assert_true(imap_arg_astring(&c.args[0], &s));
    }
    imap_pool_clear(&p);
}

static void test_parse_lists_and_brackets(void **state)
{
    struct imap_pool p = IMAP_POOL_INIT;
    struct imap_command c;
    const char *err = NULL;

    (void)state;
    assert_int_equal(parse(&p,
                           "x FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From "
                           "To)]<0.100> (a (b)))\r\n",
                           &c, &err),
                     0);
    assert_int_equal(c.nargs, 2);
    assert_string_equal(c.args[0].str, "1:*");
    assert_int_equal(c.args[1].type, IMAP_ARG_LIST);
    assert_int_equal(c.args[1].count, 3);
    assert_string_equal(c.args[1].list[1].str,
                        "BODY.PEEK[HEADER.FIELDS (From To)]<0.100>");
    assert_int_equal(c.args[1].list[2].list[1].list[0].type, IMAP_ARG_ATOM);
    /* "[Gmail]/Sent" is one atom; an unclosed '[' is an ordinary char. */
    assert_int_equal(parse(&p, "x SELECT [Gmail]/Sent\r\n", &c, &err), 0);
    assert_string_equal(c.args[0].str, "[Gmail]/Sent");
    assert_int_equal(parse(&p, "x SELECT a[b c\r\n", &c, &err), 0);
    assert_int_equal(c.nargs, 2);
    /* Empty list. */
    assert_int_equal(parse(&p, "x STORE 1 FLAGS ()\r\n", &c, &err), 0);
    assert_int_equal(c.args[2].count, 0);
    imap_pool_clear(&p);
}

static void test_parse_errors(void **state)
{
    struct imap_pool p = IMAP_POOL_INIT;
    struct imap_command c;
    const char *err = NULL;
    char deep[200];
    size_t n = 0;

    (void)state;
    assert_int_equal(parse(&p, "\r\n", &c, &err), -1);
    assert_null(c.tag);
    assert_int_equal(parse(&p, "a+ NOOP\r\n", &c, &err), -1);
    assert_null(c.tag);
    assert_int_equal(parse(&p, "a\r\n", &c, &err), -1);
    assert_string_equal(c.tag, "a");
    assert_int_equal(parse(&p, "a X \"unterminated\r\n", &c, &err), -1);
    assert_string_equal(c.tag, "a");
    assert_int_equal(parse(&p, "a X \"bad\\q\"\r\n", &c, &err), -1);
    assert_int_equal(parse(&p, "a X (unclosed\r\n", &c, &err), -1);
    assert_int_equal(parse(&p, "a X )\r\n", &c, &err), -1);
    assert_int_equal(parse(&p, "a X  two-spaces\r\n", &c, &err), -1);
    assert_int_equal(parse(&p, "a X {5}\r\nab\r\n", &c, &err), -1);
    assert_int_equal(parse(&p, "a X {2}x\r\nab\r\n", &c, &err), -1);
    assert_int_equal(parse(&p, "a X a\x01\r\n", &c, &err), -1);
    /* Nesting: IMAP_DEPTH_MAX lists parse, one more does not. */
    n += (size_t)snprintf(deep, sizeof(deep), "a X ");
    for (int i = 0; i < IMAP_DEPTH_MAX; i++)
        deep[n++] = '(';
    for (int i = 0; i < IMAP_DEPTH_MAX; i++)
        deep[n++] = ')';
    memcpy(deep + n, "\r\n", 3);
    assert_int_equal(parse(&p, deep, &c, &err), 0);
    n = (size_t)snprintf(deep, sizeof(deep), "a X ");
    for (int i = 0; i <= IMAP_DEPTH_MAX; i++)
        deep[n++] = '(';
    for (int i = 0; i <= IMAP_DEPTH_MAX; i++)
        deep[n++] = ')';
    memcpy(deep + n, "\r\n", 3);
    assert_int_equal(parse(&p, deep, &c, &err), -1);
    /* A tag of IMAP_TAG_MAX is fine, one more is not. */
    memset(deep, 't', IMAP_TAG_MAX);
    memcpy(deep + IMAP_TAG_MAX, " NOOP\r\n", 8);
    assert_int_equal(parse(&p, deep, &c, &err), 0);
    memset(deep, 't', IMAP_TAG_MAX + 1);
    memcpy(deep + IMAP_TAG_MAX + 1, " NOOP\r\n", 8);
    assert_int_equal(parse(&p, deep, &c, &err), -1);
    imap_pool_clear(&p);
}

static void test_seqset(void **state)
{
    struct imap_pool p = IMAP_POOL_INIT;
    struct imap_seqset set;

    (void)state;
    assert_int_equal(imap_parse_seqset(&p, "1,3:5,9:*", &set), 0);
    assert_int_equal(set.n, 3);
    assert_true(imap_seqset_contains(&set, 1, 20));
    assert_false(imap_seqset_contains(&set, 2, 20));
    assert_true(imap_seqset_contains(&set, 4, 20));
    assert_true(imap_seqset_contains(&set, 20, 20));
    /* "*:3" is "3:*". */
    assert_int_equal(imap_parse_seqset(&p, "*:3", &set), 0);
    assert_true(imap_seqset_contains(&set, 7, 10));
    assert_false(imap_seqset_contains(&set, 2, 10));
    assert_int_equal(imap_parse_seqset(&p, "", &set), -1);
    assert_int_equal(imap_parse_seqset(&p, "0", &set), -1);
    assert_int_equal(imap_parse_seqset(&p, "1,", &set), -1);
    assert_int_equal(imap_parse_seqset(&p, "1:2:3", &set), -1);
    assert_int_equal(imap_parse_seqset(&p, "4294967295", &set), -1);
    assert_int_equal(imap_parse_seqset(&p, "4294967294", &set), 0);
    assert_int_equal(imap_parse_seqset(&p, "a", &set), -1);
    imap_pool_clear(&p);
}

static void test_dates(void **state)
{
    struct imap_date d;
    time_t t;

    (void)state;
    assert_int_equal(imap_parse_date("1-Feb-1994", &d), 0);
    assert_int_equal(d.year, 1994);
    assert_int_equal(d.mon, 2);
    assert_int_equal(d.mday, 1);
    assert_int_equal(imap_parse_date("29-feb-2024", &d), 0);
    assert_int_equal(imap_parse_date("29-Feb-2023", &d), -1);
    assert_int_equal(imap_parse_date("32-Jan-2023", &d), -1);
    assert_int_equal(imap_parse_date("1-Foo-2023", &d), -1);
    assert_int_equal(imap_parse_date("1-Jan-23", &d), -1);
    assert_int_equal(imap_date_days(&(struct imap_date){1970, 1, 1}), 0);
    assert_int_equal(imap_date_days(&(struct imap_date){2000, 3, 1}), 11017);
    assert_int_equal(imap_parse_datetime("17-Jul-1996 02:44:25 -0700", &t),
                     0);
    assert_int_equal((long long)t, 837596665LL);
    assert_int_equal(imap_parse_datetime(" 7-Jul-1996 02:44:25 +0000", &t),
                     0);
    assert_int_equal(imap_parse_datetime("17-Jul-1996 24:44:25 -0700", &t),
                     -1);
    assert_int_equal(imap_parse_datetime("17-Jul-1996 02:44:25", &t), -1);
    assert_int_equal(imap_parse_datetime("17-Jul-1996 02:44:25 -07000", &t),
                     -1);
}

static void test_flags(void **state)
{
    struct imap_pool p = IMAP_POOL_INIT;
    struct imap_command c;
    const char *err = NULL, **kw;
    unsigned sys;
    size_t nkw;

    (void)state;
    assert_int_equal(parse(&p, "a X (\\Seen \\deleted $Junk $junk Work)\r\n",
                           &c, &err),
                     0);
    assert_int_equal(imap_parse_flags(&p, &c.args[0], &sys, &kw, &nkw, &err),
                     0);
    assert_int_equal(sys, IMAP_FLAG_SEEN | IMAP_FLAG_DELETED);
    assert_int_equal(nkw, 2);
    assert_string_equal(kw[0], "$Junk");
    assert_string_equal(kw[1], "Work");
    assert_int_equal(parse(&p, "a X (\\Recent)\r\n", &c, &err), 0);
    assert_int_equal(imap_parse_flags(&p, &c.args[0], &sys, &kw, &nkw, &err),
                     -1);
    assert_int_equal(parse(&p, "a X (\\Bogus)\r\n", &c, &err), 0);
    assert_int_equal(imap_parse_flags(&p, &c.args[0], &sys, &kw, &nkw, &err),
                     -1);
    assert_int_equal(parse(&p, "a X (\"quoted\")\r\n", &c, &err), 0);
    assert_int_equal(imap_parse_flags(&p, &c.args[0], &sys, &kw, &nkw, &err),
                     -1);
    imap_pool_clear(&p);
}

static int fetch(struct imap_pool *p, const char *atts,
                 struct imap_fetch_atts *out)
{
    char line[512];
    struct imap_command c;
    const char *err = NULL;

    snprintf(line, sizeof(line), "a FETCH 1 %s\r\n", atts);
    if (parse(p, line, &c, &err) < 0)
        return -2;
    return imap_parse_fetch_atts(p, c.args + 1, c.nargs - 1, out, &err);
}

static void test_fetch_atts(void **state)
{
    struct imap_pool p = IMAP_POOL_INIT;
    struct imap_fetch_atts a;

    (void)state;
    assert_int_equal(fetch(&p, "ALL", &a), 0);
    assert_int_equal(a.n, 4);
    assert_int_equal(a.v[3].item, IMAP_FETCH_ENVELOPE);
    assert_int_equal(fetch(&p, "FAST", &a), 0);
    assert_int_equal(a.n, 3);
    assert_int_equal(fetch(&p, "full", &a), 0);
    assert_int_equal(a.n, 5);
    assert_int_equal(a.v[4].item, IMAP_FETCH_BODY);
    assert_int_equal(fetch(&p, "(UID RFC822.SIZE BODY[])", &a), 0);
    assert_int_equal(a.n, 3);
    assert_int_equal(a.v[2].item, IMAP_FETCH_SECTION);
    assert_false(a.v[2].peek);
    assert_int_equal(a.v[2].section.n_part, 0);
    assert_string_equal(a.v[2].section_text, "");
    assert_int_equal(fetch(&p, "BODY.PEEK[1.2.HEADER.FIELDS.NOT (X-A \"B\")]"
                               "<10.20>",
                           &a),
                     0);
    assert_true(a.v[0].peek);
    assert_int_equal(a.v[0].section.n_part, 2);
    assert_int_equal(a.v[0].section.part[1], 2);
    assert_int_equal(a.v[0].section.text, IMAP_SECTION_HEADER_FIELDS_NOT);
    assert_int_equal(a.v[0].section.n_fields, 2);
    assert_string_equal(a.v[0].section.fields[1], "B");
    assert_true(a.v[0].partial);
    assert_int_equal(a.v[0].partial_off, 10);
    assert_int_equal(a.v[0].partial_len, 20);
    assert_int_equal(fetch(&p, "BODY[3.MIME]", &a), 0);
    assert_int_equal(a.v[0].section.text, IMAP_SECTION_MIME);
    assert_int_equal(fetch(&p, "(FLAGS) (CHANGEDSINCE 12345)", &a), 0);
    assert_true(a.changedsince);
    assert_int_equal(a.changedsince_modseq, 12345);
    assert_int_equal(a.v[a.n - 1].item, IMAP_FETCH_MODSEQ);
    /* Errors. */
    assert_int_equal(fetch(&p, "BOGUS", &a), -1);
    assert_int_equal(fetch(&p, "BODY[MIME]", &a), -1);
    assert_int_equal(fetch(&p, "BODY[0]", &a), -1);
    assert_int_equal(fetch(&p, "BODY[HEADER.FIELDS]", &a), -1);
    assert_int_equal(fetch(&p, "BODY[HEADER.FIELDS ()]", &a), -1);
    assert_int_equal(fetch(&p, "BODY[TEXT]<5>", &a), -1);
    assert_int_equal(fetch(&p, "BODY[TEXT]<5.0>", &a), -1);
    assert_int_equal(fetch(&p, "()", &a), -1);
    assert_int_equal(fetch(&p, "FLAGS (CHANGEDSINCE x)", &a), -1);
    imap_pool_clear(&p);
}

static int search(struct imap_pool *p, const char *keys,
                  struct imap_search *out, bool *badcs)
{
    char line[1024];
    struct imap_command c;
    const char *err = NULL;

    snprintf(line, sizeof(line), "a SEARCH %s\r\n", keys);
    if (parse(p, line, &c, &err) < 0)
        return -2;
    return imap_parse_search(p, c.args, c.nargs, out, badcs, &err);
}

static void test_search_keys(void **state)
{
    struct imap_pool p = IMAP_POOL_INIT;
    struct imap_search q;
    bool bad;

    (void)state;
    assert_int_equal(
        search(&p,
               "ALL ANSWERED BCC x BEFORE 1-Jan-2020 BODY y CC z DELETED DRAFT "
               "FLAGGED FROM a HEADER X-Foo b KEYWORD $Junk LARGER 10 NEW "
               "NOT SEEN OLD ON 2-Jan-2020 OR SEEN UNSEEN RECENT "
               "SENTBEFORE 1-Jan-2020 SENTON 1-Jan-2020 SENTSINCE "
               "\"1-Jan-2020\" SINCE 1-Jan-2020 SMALLER 99 SUBJECT s TEXT t "
               "TO u UID 1:5 UNANSWERED UNDELETED UNDRAFT UNFLAGGED "
               "UNKEYWORD w UNSEEN 1,2:* (SEEN FLAGGED) MODSEQ 5",
               &q, &bad),
        0);
    assert_false(q.esearch);
    assert_null(q.charset);
    assert_true(q.uses_modseq);
    assert_int_equal(q.root->op, IMAP_SEARCH_AND);
    assert_int_equal(q.root->nsub, 37);
    assert_int_equal(q.root->sub[2].op, IMAP_SEARCH_HEADER);
    assert_string_equal(q.root->sub[2].hdr, "Bcc");
    assert_int_equal(q.root->sub[11].op, IMAP_SEARCH_KEYWORD);

    assert_int_equal(search(&p, "CHARSET utf-8 SUBJECT x", &q, &bad), 0);
    assert_string_equal(q.charset, "utf-8");
    assert_int_equal(search(&p, "CHARSET KOI8-R SUBJECT x", &q, &bad), -1);
    assert_true(bad);
    assert_int_equal(search(&p, "RETURN (MIN COUNT) UNSEEN", &q, &bad), 0);
    assert_true(q.esearch);
    assert_int_equal(q.ret, IMAP_SEARCH_RET_MIN | IMAP_SEARCH_RET_COUNT);
    assert_int_equal(search(&p, "RETURN () ALL", &q, &bad), 0);
    assert_int_equal(q.ret, IMAP_SEARCH_RET_ALL);
    /* KEYWORD \Seen is the flag. */
    assert_int_equal(search(&p, "KEYWORD \\Seen", &q, &bad), 0);
    assert_int_equal(q.root->sub[0].op, IMAP_SEARCH_FLAG);
    /* Errors. */
    assert_int_equal(search(&p, "", &q, &bad), -1);
    assert_int_equal(search(&p, "BOGUS", &q, &bad), -1);
    assert_false(bad);
    assert_int_equal(search(&p, "FROM", &q, &bad), -1);
    assert_int_equal(search(&p, "BEFORE 1-Foo-2020", &q, &bad), -1);
    assert_int_equal(search(&p, "LARGER x", &q, &bad), -1);
    assert_int_equal(search(&p, "OR SEEN", &q, &bad), -1);
    assert_int_equal(search(&p, "RETURN (BOGUS) ALL", &q, &bad), -1);
    assert_int_equal(search(&p, "HEADER \"a b\" x", &q, &bad), -1);
    assert_int_equal(search(&p, "()", &q, &bad), -1);
    imap_pool_clear(&p);
}

static void test_search_depth(void **state)
{
    struct imap_pool p = IMAP_POOL_INIT;
    struct imap_search q;
    char keys[800];
    size_t n = 0;
    bool bad;

    (void)state;
    /* NOT NOT NOT ... nests one level per NOT. */
    for (int i = 0; i < IMAP_DEPTH_MAX + 5; i++)
        n += (size_t)snprintf(keys + n, sizeof(keys) - n, "NOT ");
    snprintf(keys + n, sizeof(keys) - n, "SEEN");
    assert_int_equal(search(&p, keys, &q, &bad), -1);
    imap_pool_clear(&p);
}

static void test_pool(void **state)
{
    struct imap_pool p = IMAP_POOL_INIT;
    char *big;

    (void)state;
    for (int i = 0; i < 1000; i++) {
        char *s = imap_pool_strdup(&p, "hello");

        assert_string_equal(s, "hello");
        assert_int_equal((uintptr_t)s % 16, 0);
    }
    big = imap_pool_alloc(&p, 200000);
    big[199999] = 1;
    assert_true(p.total >= 200000);
    imap_pool_clear(&p);
    assert_int_equal(p.total, 0);
    assert_null(p.head);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_lines),
        cmocka_unit_test(test_frame_line_limit),
        cmocka_unit_test(test_frame_literals),
        cmocka_unit_test(test_frame_literal_limits),
        cmocka_unit_test(test_line_scan),
        cmocka_unit_test(test_parse_basic),
        cmocka_unit_test(test_parse_lists_and_brackets),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_seqset),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_fetch_atts),
        cmocka_unit_test(test_search_keys),
        cmocka_unit_test(test_search_depth),
        cmocka_unit_test(test_pool),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
