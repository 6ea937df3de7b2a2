/*
 * test_map_pcre - pcre: tables (pcre_table(5) syntax): flags and their
 * defaults, negation, if/endif nesting, $n substitution and its forms,
 * continuation lines and comments, keys matched as given (not
 * lowercased, not bounded to 4096 bytes), every file error naming
 * path:line, and the bounds (result size, rule count, nesting, PCRE2's
 * match limit as a lookup error).
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

#include "global/map_pattern.h"
#include "util/mem.h"

#define MAP_TEST_NAME "test_map_pcre"
#include "map_test.h"

static void test_basic_and_case(void **state)
{
    struct map *m = open_ok("pcre", "# header checks\n"
                                    "/^Subject: buy now/   REJECT spam\n"
                                    "\n"
                                    "/^X-Case: Exact$/i    CASE\n"
                                    "/^X-Dot: a.b$/        DOT\n"
                                    "  # a comment between rules\n"
                                    "/^X-Long/\n"
                                    "  REJECT continued\n"
                                    "  text\n");

    /* i is on by default: caseless. */
    expect(m, "Subject: BUY NOW please", "REJECT spam");
    expect(m, "subject: buy now", "REJECT spam");
    /* The key is matched as given (no lowercasing): i toggled off. */
    expect(m, "X-Case: Exact", "CASE");
    expect(m, "X-Case: exact", NULL);
    /* s is on by default: '.' matches a newline. */
    expect(m, "X-Dot: a\nb", "DOT");
    expect(m, "X-Long: x", "REJECT continued text");
    expect(m, "Other: header", NULL);
    map_close(m);
}

static void test_flags(void **state)
{
    struct map *m = open_ok("pcre", "/^b$/m        MULTI\n"
                                    "/^c.d$/s      NODOTALL\n"
                                    "/^e f$/x      EXT\n"
                                    "/f/A          ANCHORED\n"
                                    "/^g$/E        DOLLAR_END\n"
                                    "/^h(a+)/U     short=$1\n"
                                    "/^i/X         OBSOLETE-X\n");

    expect(m, "a\nb\nc", "MULTI");
    expect(m, "c\nd", NULL);
    expect(m, "cxd", "NODOTALL");
    expect(m, "ef", "EXT");
    expect(m, "fxx", "ANCHORED");
    expect(m, "xxf", NULL);
    expect(m, "g\n", NULL); /* without E, $ would match before a final \n */
    expect(m, "g", "DOLLAR_END");
    expect(m, "haaa", "short=a");
    expect(m, "ix", "OBSOLETE-X");
    map_close(m);

    m = open_ok("pcre", "/^g$/ NO-E\n");
    expect(m, "g\n", "NO-E");
    map_close(m);
}

static void test_negation_and_if(void **state)
{
    struct map *m = open_ok("pcre", "if /^user@/\n"
                                    "if !/example\\.org$/\n"
                                    "/^user@(.*)$/ OUTSIDE $1\n"
                                    "endif\n"
                                    "/^user@/ INSIDE\n"
                                    "endif\n"
                                    "IF /^x/\n"
                                    "!/^xy/ X-NOT-Y\n"
                                    "ENDIF\n"
                                    "! ! /^dbl/ DOUBLE-NEGATION\n"
                                    "!/^z/ NOT-Z\n");

    expect(m, "user@other.net", "OUTSIDE other.net");
    expect(m, "user@example.org", "INSIDE");
    expect(m, "xa", "X-NOT-Y");
    /* The if block is passed over: the rule after it applies. */
    expect(m, "xy", "NOT-Z");
    expect(m, "dbl", "DOUBLE-NEGATION");
    expect(m, "zzz", NULL);
    map_close(m);
}

static void test_substitution(void **state)
{
    struct map *m = open_ok("pcre", "/^(a)(b)?(c)$/  [$1][$2][$3]\n"
                                    "/^d(.*)$/       ${1}x $(1)y $$1 $$\n"
                                    "/^(e)(f)(g)(h)(i)(j)(k)(l)(m)(n)(o)$/ "
                                    "$11$10${1}1\n"
                                    "/^p(.*)/        ok $1\n");

    expect(m, "ac", "[a][][c]");
    expect(m, "abc", "[a][b][c]");
    expect(m, "dzz", "zzx zzy $1 $");
    expect(m, "efghijklmno", "one1");
    /* Captured text is copied as is, '$' included: no second expansion. */
    expect(m, "p$1", "ok $1");
    map_close(m);
}

static void test_long_key_not_folded(void **state)
{
    struct map *m = open_ok("pcre", "/^Subject: .*MARKER$/ FOUND\n");
    size_t n = 200000;
    char *key = xmalloc(n + 1);

    memcpy(key, "Subject: ", 9);
    memset(key + 9, 'x', n - 9 - 6);
    memcpy(key + n - 6, "MARKER", 6);
    key[n] = 0;
    /* Far beyond the 4096 bytes of the indexed types. */
    expect(m, key, "FOUND");
    free(key);
    map_close(m);
}

static void test_address_search_whole_key(void **state)
{
    struct maplist *l;
    struct buf v = BUF_INIT;
    char list[700];

    snprintf(list, sizeof(list), "%s",
             table("pcre", "/^user@example\\.org$/ BASE\n"
                           "/^@example\\.org$/ DOMAIN\n"
                           "/^USER\\+(.*)@/ EXT=$1\n"));
    l = maplist_open(list, err, sizeof(err));
    assert_non_null(l);
    /* Only the whole address is tried: no user@domain, no @domain. */
    assert_int_equal(maplist_lookup_addr(l, "user+Tag@example.org", "+", true,
                                         &v, err, sizeof(err)),
                     MAP_FOUND);
    assert_string_equal(v.data, "EXT=Tag");
    assert_int_equal(maplist_lookup_addr(l, "other+x@example.org", "+", true,
                                         &v, err, sizeof(err)),
                     MAP_NOTFOUND);
    maplist_close(l);
    buf_free(&v);
}

static void test_file_errors(void **state)
{
    open_fails("pcre", "/ok/ A\n/a(b/ B\n", "2", "error in regex at offset");
    open_fails("pcre", "/ok/ A\n\n/x/q B\n", "3", "unknown pattern flag 'q'");
    open_fails("pcre", "/abc B\n", "1", "no closing delimiter '/'");
    open_fails("pcre", "/abc/\n", "1", "missing result");
    open_fails("pcre", "/(a)/ x $2\n", "1", "has 1 group");
    open_fails("pcre", "/a/ x $1\n", "1", "has 0 groups");
    open_fails("pcre", "!/(a)/ x $1\n", "1", "negated pattern");
    open_fails("pcre", "/(a)/ cost $\n", "1", "without a group number");
    open_fails("pcre", "/(a)/ $1st\n", "1", "non-numeric reference");
    open_fails("pcre", "/(a)/ ${1\n", "1", "unterminated reference");
    open_fails("pcre", "/(a)/ $0\n", "1", "out of range");
    open_fails("pcre", "if /a/\n/b/ B\n", "1", "if without endif");
    open_fails("pcre", "/a/ A\nendif\n", "2", "endif without if");
    open_fails("pcre", "if /a/\n /b/ B\nendif\n", "1",
               "text after the if pattern");
    open_fails("pcre", "if /a/\nendif x\n", "2", "text after endif");
    open_fails("pcre", "hello world\n", "1", "expected \"/pattern/ result\"");
    open_fails("pcre", "  /indented/ A\n", "1",
               "continuation line without an entry");
    /* A missing file is an error too, never an empty table. */
    assert_null(map_open("pcre:/nonexistent/x.pcre", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/x.pcre"));
}

static void test_bounds(void **state)
{
    struct buf text = BUF_INIT, v = BUF_INIT;
    struct map *m;

    /* Nesting: MAP_PATTERN_NESTING_MAX ifs open, one more is refused. */
    for (int i = 0; i < MAP_PATTERN_NESTING_MAX; i++)
        buf_puts(&text, "if /a/\n");
    buf_puts(&text, "/a/ DEEP\n");
    for (int i = 0; i < MAP_PATTERN_NESTING_MAX; i++)
        buf_puts(&text, "endif\n");
    m = open_ok("pcre", text.data);
    expect(m, "a", "DEEP");
    map_close(m);
    buf_reset(&text);
    for (int i = 0; i <= MAP_PATTERN_NESTING_MAX; i++)
        buf_puts(&text, "if /a/\n");
    assert_null(map_open(table("pcre", text.data), err, sizeof(err)));
    assert_non_null(strstr(err, "nested deeper than"));

    /* Rule count: the limit is fine, one more is refused. */
    buf_reset(&text);
    for (int i = 0; i < MAP_PATTERN_RULES_MAX; i++)
        buf_puts(&text, "/^zz/ X\n");
    m = open_ok("pcre", text.data);
    map_close(m);
    buf_puts(&text, "/^zz/ X\n");
    assert_null(map_open(table("pcre", text.data), err, sizeof(err)));
    assert_non_null(strstr(err, "more than"));

    buf_free(&text);
    buf_free(&v);
}

static void test_result_too_long(void **state)
{
    struct map *m = open_ok("pcre", "/^(.*)$/ $1$1$1$1$1\n");
    struct buf key = BUF_INIT, v = BUF_INIT;

    for (int i = 0; i < MAP_PATTERN_RESULT_MAX / 5; i++)
        buf_putc(&key, 'y');
    assert_int_equal(map_lookup(m, key.data, &v, err, sizeof(err)), MAP_FOUND);
    assert_int_equal(v.len, (MAP_PATTERN_RESULT_MAX / 5) * 5);
    buf_putc(&key, 'y');
    assert_int_equal(map_lookup(m, key.data, &v, err, sizeof(err)), MAP_ERROR);
    assert_non_null(strstr(err, "result longer than"));
    assert_non_null(strstr(err, "line 1"));
    assert_int_equal(v.len, 0);
    buf_free(&key);
    buf_free(&v);
    map_close(m);
}

static void test_match_limit_is_error(void **state)
{
    /* Catastrophic backtracking: nested repeats against a's and a '!'. */
    struct map *m = open_ok("pcre", "/^(a|a)+$/ NEVER\n/^a/ LATER\n");
    struct buf key = BUF_INIT, v = BUF_INIT;

    for (int i = 0; i < 40; i++)
        buf_putc(&key, 'a');
    buf_putc(&key, '!');
    /* Not "not found" and not the later rule: a key must not slip by. */
    assert_int_equal(map_lookup(m, key.data, &v, err, sizeof(err)), MAP_ERROR);
    assert_non_null(strstr(err, "line 1"));
    buf_free(&key);
    buf_free(&v);
    map_close(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_and_case),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_negation_and_if),
        cmocka_unit_test(test_substitution),
        cmocka_unit_test(test_long_key_not_folded),
        cmocka_unit_test(test_address_search_whole_key),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_result_too_long),
        cmocka_unit_test(test_match_limit_is_error),
    };

    return cmocka_run_group_tests(tests, map_test_setup, map_test_teardown);
}
