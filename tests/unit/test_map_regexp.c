/*
 * test_map_regexp - regexp: tables: the same rule syntax as pcre: with the
 * C library's POSIX regular expressions; results checked against what
 * Postfix 3.7's postmap -q gives for the same file and keys.  Flags i, x
 * (basic REs when off) and m; if/endif; $n forms; errors with path:line.
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

#define MAP_TEST_NAME "test_map_regexp"
#include "map_test.h"

static void test_like_postfix(void **state)
{
    /* The keys and results were checked against Postfix's postmap -q. */
    struct map *m = open_ok("regexp", "# comment\n"
                                      "/a\\/b/ slash\n"
                                      "/^(x)(y)?z$/ got[$1][$2]\n"
                                      "/^pre(.*)/ ${1}post\n"
                                      "/^dol(.*)/ $$ and $(1) and $1 x\n"
                                      "/^CaSe$/i exact-case\n"
                                      "/^multi/\n"
                                      "  continued result\n"
                                      "if !/^skip/\n"
                                      "/^in(.*)/ inside $1\n"
                                      "endif\n"
                                      "/[[:digit:]]{3}/ three-digits\n"
                                      "/^a|b$/x basic-re\n"
                                      "!/^zz/ not-zz\n");

    expect(m, "a/b", "slash");
    expect(m, "xz", "got[x][]");
    expect(m, "xyz", "got[x][y]");
    expect(m, "prefoo", "foopost");
    expect(m, "dolbar", "$ and bar and bar x");
    expect(m, "CaSe", "exact-case");
    expect(m, "case", "not-zz");
    expect(m, "multi", "continued result");
    expect(m, "inx", "inside x");
    expect(m, "skipinx", "not-zz");
    expect(m, "ab123", "three-digits");
    expect(m, "a|b", "basic-re");
    expect(m, "zzz", NULL);
    expect(m, "b", "not-zz");
    map_close(m);
}

static void test_multiline_flag(void **state)
{
    struct map *m = open_ok("regexp", "/^b$/m MULTI\n/^c$/ PLAIN\n");

    expect(m, "a\nb", "MULTI");
    expect(m, "a\nc", NULL);
    expect(m, "c", "PLAIN");
    map_close(m);
}

static void test_errors(void **state)
{
    open_fails("regexp", "/ok/ A\n/a(b/ B\n", "2", "error in regex");
    open_fails("regexp", "/x/s B\n", "1", "unknown pattern flag 's'");
    open_fails("regexp", "/(a)/ $2\n", "1", "has 1 group");
    open_fails("regexp", "/a/ A\nendif\n", "2", "endif without if");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_like_postfix),
        cmocka_unit_test(test_multiline_flag),
        cmocka_unit_test(test_errors),
    };

    return cmocka_run_group_tests(tests, map_test_setup, map_test_teardown);
}
