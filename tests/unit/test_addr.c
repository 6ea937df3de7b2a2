/*
 * test_addr - RFC 5321 paths as they follow "MAIL FROM:" and "RCPT TO:":
 * what parses (and into what), what is refused (and with which text),
 * including the length limits at the limit and one past it, source
 * routes, address literals, SMTPUTF8 on and off, and bytes a hostile
 * client may send.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "global/addr.h"

struct good {
    const char *in;
    bool utf8;
    const char *local;
    const char *domain;
    size_t consumed; /* 0: the whole input */
};

struct bad {
    const char *in;
    bool utf8;
    const char *err;
};

static void check_good(const struct good *g)
{
    struct mailaddr a;
    const char *err = NULL;
    size_t used = 0;
    size_t want = g->consumed ? g->consumed : strlen(g->in);

    if (addr_parse_path(g->in, strlen(g->in), true, g->utf8, &a, &used, &err) !=
        0)
        fail_msg("path %s (utf8=%d) refused: %s", g->in, g->utf8, err);
    assert_string_equal(a.local, g->local);
    assert_string_equal(a.domain, g->domain);
    assert_int_equal(used, want);
    assert_false(a.is_null);
    {
        char text[600];

        snprintf(text, sizeof(text), "%s@%s", g->local, g->domain);
        assert_string_equal(a.text, text);
    }
    addr_free(&a);
}

static void check_bad(const struct bad *b)
{
    struct mailaddr a;
    const char *err = NULL;
    size_t used = 0;

    if (addr_parse_path(b->in, strlen(b->in), true, b->utf8, &a, &used, &err) ==
        0)
        fail_msg("path %s (utf8=%d) accepted as %s", b->in, b->utf8, a.text);
    assert_non_null(err);
    if (strcmp(err, b->err) != 0)
        fail_msg("path %s: error '%s', expected '%s'", b->in, err, b->err);
    /* A failed parse leaves nothing to free, and freeing is harmless. */
    assert_null(a.text);
    addr_free(&a);
}

static void test_valid(void **state)
{
    static const struct good cases[] = {
        {"<user@example.com>", false, "user", "example.com", 0},
        {"<User.Name@Example.COM>", false, "User.Name", "example.com", 0},
        {"<a@b>", false, "a", "b", 0},
        {"<first.m.last@sub.example.co.uk>", false, "first.m.last",
         "sub.example.co.uk", 0},
        {"<!#$%&'*+-/=?^_`{|}~@example.com>", false, "!#$%&'*+-/=?^_`{|}~",
         "example.com", 0},
        {"<user+tag@example.com>", false, "user+tag", "example.com", 0},
        {"<\"john doe\"@example.com>", false, "\"john doe\"", "example.com", 0},
        {"<\"a\\\"b\"@example.com>", false, "\"a\\\"b\"", "example.com", 0},
        {"<\"a\\\\b\"@example.com>", false, "\"a\\\\b\"", "example.com", 0},
        {"<\"\"@example.com>", false, "\"\"", "example.com", 0},
        {"<\"a..b.\"@example.com>", false, "\"a..b.\"", "example.com", 0},
        {"<\"@\"@example.com>", false, "\"@\"", "example.com", 0},
        {"<user@x-y.example>", false, "user", "x-y.example", 0},
        {"<user@1.2.3.example>", false, "user", "1.2.3.example", 0},
        {"<user@xn--bcher-kva.example>", false, "user", "xn--bcher-kva.example",
         0},
        {"<user@[192.0.2.1]>", false, "user", "[192.0.2.1]", 0},
        {"<user@[IPv6:2001:db8::1]>", false, "user", "[ipv6:2001:db8::1]", 0},
        {"<user@[ipv6:::1]>", false, "user", "[ipv6:::1]", 0},
        {"<user@[IPv6:::ffff:192.0.2.1]>", false, "user",
         "[ipv6:::ffff:192.0.2.1]", 0},
        /* ESMTP parameters follow after one space: not consumed. */
        {"<user@example.com> SIZE=100", false, "user", "example.com", 18},
        {"<user@example.com> ", false, "user", "example.com", 18},
        /* SMTPUTF8: UTF-8 in local part, quoted string and domain. */
        {"<j\xc3\xbcrgen@example.com>", true, "j\xc3\xbcrgen", "example.com",
         0},
        {"<\"j\xc3\xbc rgen\"@example.com>", true, "\"j\xc3\xbc rgen\"",
         "example.com", 0},
        {"<user@b\xc3\xbc"
         "cher.example>",
         true, "user",
         "b\xc3\xbc"
         "cher.example",
         0},
        {"<\xe2\x82\xac@\xf0\x9f\x93\xa7.example>", true, "\xe2\x82\xac",
         "\xf0\x9f\x93\xa7.example", 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_good(&cases[i]);
}

static void test_invalid(void **state)
{
    static const struct bad cases[] = {
        {"", false, "Bad address syntax"},
        {"user@example.com", false, "Bad address syntax"},
        {"<user@example.com", false, "Bad address syntax"},
        {"<user@example.com>junk", false, "Bad address syntax"},
        {"<user@example.com>>", false, "Bad address syntax"},
        {"<>x", false, "Bad address syntax"},
        {"< user@example.com>", false, "Bad address syntax"},
        {"<user @example.com>", false, "Bad address syntax"},
        {"<user@ example.com>", false, "Bad address syntax"},
        {"<user@example.com >", false, "Bad address syntax"},
        {"<user\t@example.com>", false, "Bad address syntax"},
        {"<user>", false, "Address needs a domain"},
        {"<user@>", false, "Bad address syntax"},
        {"<@example.com>", false, "Source routes are not supported"},
        {"<@a,@b:user@example.com>", false, "Source routes are not supported"},
        {"<@a:user@example.com>", false, "Source routes are not supported"},
        /* dot-string rules */
        {"<.user@example.com>", false, "Bad address syntax"},
        {"<user.@example.com>", false, "Bad address syntax"},
        {"<us..er@example.com>", false, "Bad address syntax"},
        {"<a\"b@example.com>", false, "Bad address syntax"},
        {"<a(b)@example.com>", false, "Bad address syntax"},
        {"<a,b@example.com>", false, "Bad address syntax"},
        {"<a@b@example.com>", false, "Bad address syntax"},
        /* quoted strings */
        {"<\"unterminated@example.com>", false, "Bad address syntax"},
        {"<\"a\"b@example.com>", false, "Bad address syntax"},
        {"<\"a\tb\"@example.com>", false, "Bad address syntax"},
        {"<\"a\\\xc3\xbc\"@example.com>", true, "Bad address syntax"},
        {"<\"a\"\"b\"@example.com>", false, "Bad address syntax"},
        /* domains */
        {"<user@-example.com>", false, "Bad address syntax"},
        {"<user@example-.com>", false, "Bad address syntax"},
        {"<user@example..com>", false, "Bad address syntax"},
        {"<user@.example.com>", false, "Bad address syntax"},
        {"<user@example.com.>", false, "Bad address syntax"},
        {"<user@exa_mple.com>", false, "Bad address syntax"},
        /* literals */
        {"<user@[300.0.0.1]>", false, "Bad address literal"},
        {"<user@[192.0.2]>", false, "Bad address literal"},
        {"<user@[192.0.2.1>", false, "Bad address syntax"},
        {"<user@[IPv6:2001:db8::g]>", false, "Bad address literal"},
        {"<user@[2001:db8::1]>", false, "Bad address literal"},
        {"<user@[IPv6:192.0.2.1]>", false, "Bad address literal"},
        {"<user@[x400:foo]>", false, "Bad address literal"},
        {"<user@[]>", false, "Bad address literal"},
        {"<user@[192.0.2.1]x>", false, "Bad address syntax"},
        /* 8-bit text without SMTPUTF8, and malformed UTF-8 with it */
        {"<j\xc3\xbcrgen@example.com>", false,
         "Non-ASCII address requires SMTPUTF8"},
        {"<user@b\xc3\xbc"
         "cher.example>",
         false, "Non-ASCII address requires SMTPUTF8"},
        {"<\"\xc3\xbc\"@example.com>", false,
         "Non-ASCII address requires SMTPUTF8"},
        {"<\xc3@example.com>", true, "Malformed UTF-8 in address"},
        {"<\xc0\xaf@example.com>", true, "Malformed UTF-8 in address"},
        {"<\xed\xa0\x80@example.com>", true, "Malformed UTF-8 in address"},
        {"<\xf4\x90\x80\x80@example.com>", true, "Malformed UTF-8 in address"},
        {"<\xff@example.com>", true, "Malformed UTF-8 in address"},
        {"<user@\x80.example>", true, "Malformed UTF-8 in address"},
        /* control characters */
        {"<us\rer@example.com>", false, "Bad address syntax"},
        {"<user@exam\nple.com>", false, "Bad address syntax"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_bad(&cases[i]);
}

static void test_null_path(void **state)
{
    struct mailaddr a;
    const char *err = NULL;
    size_t used = 0;

    assert_int_equal(addr_parse_path("<>", 2, true, false, &a, &used, &err), 0);
    assert_true(a.is_null);
    assert_string_equal(a.text, "");
    assert_string_equal(a.local, "");
    assert_string_equal(a.domain, "");
    assert_int_equal(used, 2);
    addr_free(&a);

    assert_int_equal(
        addr_parse_path("<> BODY=8BITMIME", 16, true, false, &a, &used, &err),
        0);
    assert_true(a.is_null);
    assert_int_equal(used, 2);
    addr_free(&a);

    assert_int_equal(addr_parse_path("<>", 2, false, false, &a, &used, &err),
                     -1);
    assert_string_equal(err, "Null address not allowed here");
}

/* Builds "<" local "@" domain ">" with the given part lengths. */
static char *make_path(size_t local_len, size_t label_len, size_t labels)
{
    size_t cap = local_len + labels * (label_len + 1) + 8;
    char *p = malloc(cap), *o = p;

    *o++ = '<';
    memset(o, 'l', local_len);
    o += local_len;
    *o++ = '@';
    for (size_t i = 0; i < labels; i++) {
        if (i > 0)
            *o++ = '.';
        memset(o, 'd', label_len);
        o += label_len;
    }
    *o++ = '>';
    *o = 0;
    return p;
}

static int parse(const char *s, const char **err)
{
    struct mailaddr a;
    size_t used;
    int rc = addr_parse_path(s, strlen(s), true, false, &a, &used, err);

    if (rc == 0)
        addr_free(&a);
    return rc;
}

static void test_lengths(void **state)
{
    const char *err = NULL;
    char *p;

    /* Local part: 64 octets is the limit (RFC 5321 4.5.3.1.1). */
    p = make_path(64, 10, 1);
    assert_int_equal(parse(p, &err), 0);
    free(p);
    p = make_path(65, 10, 1);
    assert_int_equal(parse(p, &err), -1);
    assert_string_equal(err, "Local part too long");
    free(p);

    /* A quoted local part counts its quotes: 1 + 62 + 1 = 64. */
    {
        char q[128];

        snprintf(q, sizeof(q), "<\"%.*s\"@example.com>", 62,
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                 "aaaaaaaaa");
        assert_int_equal(parse(q, &err), 0);
        snprintf(q, sizeof(q), "<\"%.*s\"@example.com>", 63,
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                 "aaaaaaaaa");
        assert_int_equal(parse(q, &err), -1);
        assert_string_equal(err, "Local part too long");
    }

    /* Label: 63 octets. */
    p = make_path(1, 63, 2);
    assert_int_equal(parse(p, &err), 0);
    free(p);
    p = make_path(1, 64, 2);
    assert_int_equal(parse(p, &err), -1);
    assert_string_equal(err, "Domain label too long");
    free(p);

    /*
     * Whole path: 256 octets with the brackets (4.5.3.1.3).  Four labels
     * of 62 and three dots make a 251-octet domain; "<" local "@" ... ">"
     * adds 3 plus the local part.
     */
    p = make_path(4, 62, 4); /* 258 */
    assert_int_equal(strlen(p), 258);
    assert_int_equal(parse(p, &err), -1);
    assert_string_equal(err, "Address too long");
    free(p);
    p = make_path(2, 62, 4); /* 256 */
    assert_int_equal(strlen(p), 256);
    assert_int_equal(parse(p, &err), 0);
    free(p);
    p = make_path(3, 62, 4); /* 257 */
    assert_int_equal(parse(p, &err), -1);
    assert_string_equal(err, "Address too long");
    free(p);

    /*
     * A domain over 255 octets cannot fit in a 256-octet path, so the
     * path limit is what the client hears.
     */
    p = make_path(1, 63, 5); /* 319-octet domain */
    assert_int_equal(parse(p, &err), -1);
    assert_string_equal(err, "Address too long");
    free(p);

    /* A megabyte of local part is refused without scanning it all. */
    p = make_path(1024 * 1024, 3, 1);
    assert_int_equal(parse(p, &err), -1);
    assert_string_equal(err, "Address too long");
    free(p);
}

static void test_length_counted(void **state)
{
    struct mailaddr a;
    const char *err = NULL;
    size_t used = 0;
    const char with_nul[] = "<us\0er@example.com>";

    /* A NUL inside the counted input is just a bad byte. */
    assert_int_equal(addr_parse_path(with_nul, sizeof(with_nul) - 1, true,
                                     false, &a, &used, &err),
                     -1);
    assert_string_equal(err, "Bad address syntax");
    assert_int_equal(
        addr_parse_path("<user@[1.2.3.4\0]>", 17, true, false, &a, &used, &err),
        -1);
    assert_string_equal(err, "Bad address literal");
    /* Only len bytes are looked at: the path is cut short here. */
    assert_int_equal(
        addr_parse_path("<user@example.com>", 17, true, false, &a, &used, &err),
        -1);
    assert_int_equal(
        addr_parse_path("<user@example.com>", 18, true, false, &a, &used, &err),
        0);
    addr_free(&a);
}

static void test_utf8_flag(void **state)
{
    struct mailaddr a;
    const char *err = NULL;
    size_t used;
    const char *p = "<j\xc3\xbcrgen@example.com>";

    assert_int_equal(addr_parse_path(p, strlen(p), true, true, &a, &used, &err),
                     0);
    assert_true(a.has_utf8);
    addr_free(&a);
    assert_int_equal(addr_parse_path("<a@b.c>", 7, true, true, &a, &used, &err),
                     0);
    assert_false(a.has_utf8);
    addr_free(&a);
}

static void test_unquote(void **state)
{
    char *s;

    s = addr_local_unquote("\"john doe\"");
    assert_string_equal(s, "john doe");
    free(s);
    s = addr_local_unquote("\"a\\\"b\\\\c\"");
    assert_string_equal(s, "a\"b\\c");
    free(s);
    s = addr_local_unquote("\"\"");
    assert_string_equal(s, "");
    free(s);
    s = addr_local_unquote("plain.user");
    assert_string_equal(s, "plain.user");
    free(s);
    s = addr_local_unquote("\"");
    assert_string_equal(s, "\"");
    free(s);
    s = addr_local_unquote("");
    assert_string_equal(s, "");
    free(s);
}

static void test_split_fold(void **state)
{
    char *s;

    assert_int_equal(addr_split("user@example.com"), 4);
    assert_int_equal(addr_split("\"a@b\"@example.com"), 5);
    assert_int_equal(addr_split("user"), -1);
    assert_int_equal(addr_split("@example.com"), 0);
    s = addr_fold("User@Example.COM");
    assert_string_equal(s, "user@example.com");
    free(s);
    s = addr_fold("J\xc3\x9cRGEN@x"); /* only ASCII folds */
    assert_string_equal(s, "j\xc3\x9crgen@x");
    free(s);
}

static void test_ext_offset(void **state)
{
    assert_int_equal(addr_ext_offset("user+foo", "+"), 4);
    assert_int_equal(addr_ext_offset("user+foo+bar", "+"), 4);
    assert_int_equal(addr_ext_offset("user-foo", "+-"), 4);
    assert_int_equal(addr_ext_offset("user", "+"), 4);
    assert_int_equal(addr_ext_offset("user+foo", ""), 8);
    assert_int_equal(addr_ext_offset("user+foo", NULL), 8);
    assert_int_equal(addr_ext_offset("+foo", "+"), 4);
    assert_int_equal(addr_ext_offset("postmaster", "+"), 10);
    assert_int_equal(addr_ext_offset("MAILER-DAEMON", "-"), 13);
    assert_int_equal(addr_ext_offset("owner-list", "-"), 10);
    assert_int_equal(addr_ext_offset("list-request", "-"), 12);
    assert_int_equal(addr_ext_offset("owner-list", "+"), 10);
    assert_int_equal(addr_ext_offset("owner+x", "+"), 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_null_path),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_length_counted),
        cmocka_unit_test(test_utf8_flag),
        cmocka_unit_test(test_unquote),
        cmocka_unit_test(test_split_fold),
        cmocka_unit_test(test_ext_offset),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
