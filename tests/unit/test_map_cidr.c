/*
 * test_map_cidr - cidr: tables (cidr_table(5)): first match in file
 * order, single addresses and networks, IPv4 and IPv6, negation and
 * if/endif with Postfix's rule that an entry of the other address family
 * never applies (checked against Postfix 3.7's postmap -q), keys that are
 * not addresses, literal results, errors with path:line.
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

#define MAP_TEST_NAME "test_map_cidr"
#include "map_test.h"

static void test_first_match(void **state)
{
    struct map *m = open_ok("cidr", "# allow one host, refuse its network\n"
                                    "192.168.1.1        OK\n"
                                    "192.168.0.0/16     REJECT no $1 here\n"
                                    "[2001:db8::1]      V6-HOST\n"
                                    "2001:db8::/32      V6-NET\n"
                                    "0.0.0.0/0          ANY4\n");

    expect(m, "192.168.1.1", "OK");
    expect(m, "192.168.7.9", "REJECT no $1 here");
    expect(m, "10.1.2.3", "ANY4");
    expect(m, "2001:db8::1", "V6-HOST");
    expect(m, "2001:DB8:0:0::2", "V6-NET");
    expect(m, "2001:db9::1", NULL);
    /* An IPv4-mapped client address matches the IPv4 entries. */
    expect(m, "::ffff:192.168.1.1", "OK");
    expect(m, "[192.168.1.1]", "OK");
    /* Not an address: not found, never an error. */
    expect(m, "mail.example.org", NULL);
    expect(m, "", NULL);
    expect(m, "192.168.1", NULL);
    map_close(m);
}

static void test_negation_and_families(void **state)
{
    /* Results as Postfix 3.7 gives them for the same file. */
    struct map *m = open_ok("cidr", "192.168.1.1 OK\n"
                                    "!10.0.0.0/8 OUT\n"
                                    "2001:db8::/32 V6\n");

    expect(m, "192.168.1.1", "OK");
    expect(m, "10.1.1.1", NULL);
    expect(m, "1.2.3.4", "OUT");
    /* !10.0.0.0/8 does not apply to an IPv6 key at all. */
    expect(m, "2001:db8::1", "V6");
    map_close(m);

    m = open_ok("cidr", "if !10.0.0.0/8\n"
                        "::/0 V6-IN-IF\n"
                        "0.0.0.0/0 V4-IN-IF\n"
                        "endif\n"
                        "::/0 V6-AFTER\n");
    expect(m, "1.2.3.4", "V4-IN-IF");
    expect(m, "2001:db8::1", "V6-AFTER");
    expect(m, "10.0.0.1", NULL);
    map_close(m);

    m = open_ok("cidr", "IF 10.0.0.0/8\nif 10.1.0.0/16\n10.1.2.3 DEEP\n"
                        "endif\n10.0.0.0/8 SHALLOW\nENDIF\n");
    expect(m, "10.1.2.3", "DEEP");
    expect(m, "10.1.2.4", "SHALLOW");
    expect(m, "11.0.0.1", NULL);
    map_close(m);
}

static void test_errors(void **state)
{
    open_fails("cidr", "10.0.0.0/8 A\n10.0.0.1/8 B\n", "2", "10.0.0.1/8");
    open_fails("cidr", "10.0.0.0/33 A\n", "1", "10.0.0.0/33");
    open_fails("cidr", "example.org A\n", "1", "example.org");
    open_fails("cidr", "10.0.0.0/8\n", "1", "missing result");
    open_fails("cidr", "if 10.0.0.0/8\n10.1.1.1 A\n", "1", "if without endif");
    open_fails("cidr", "endif\n", "1", "endif without if");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_match),
        cmocka_unit_test(test_negation_and_families),
        cmocka_unit_test(test_errors),
    };

    return cmocka_run_group_tests(tests, map_test_setup, map_test_teardown);
}
