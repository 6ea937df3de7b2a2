/*
 * test_cidr - mynetworks-style network lists: the syntax Postfix
 * accepts (bare and bracketed IPv6, single hosts, IPv4-mapped networks),
 * the mistakes it refuses (bad masks, host bits set, names, tables), and
 * which client addresses match, IPv4-mapped IPv6 clients included.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "global/cidr.h"

static char err[256];

static void test_parse_entries(void **state)
{
    struct cidr_net n;

    assert_int_equal(cidr_parse("127.0.0.0/8", &n, err, sizeof(err)), 0);
    assert_int_equal(n.family, AF_INET);
    assert_int_equal(n.prefix, 8);
    assert_int_equal(n.addr[0], 127);

    assert_int_equal(cidr_parse("192.168.1.5", &n, err, sizeof(err)), 0);
    assert_int_equal(n.prefix, 32);

    assert_int_equal(cidr_parse("[::1]/128", &n, err, sizeof(err)), 0);
    assert_int_equal(n.family, AF_INET6);
    assert_int_equal(n.prefix, 128);
    assert_int_equal(n.addr[15], 1);

    assert_int_equal(cidr_parse("[::1]", &n, err, sizeof(err)), 0);
    assert_int_equal(n.prefix, 128);
    assert_int_equal(cidr_parse("2001:db8::/32", &n, err, sizeof(err)), 0);
    assert_int_equal(n.prefix, 32);
    assert_int_equal(cidr_parse("0.0.0.0/0", &n, err, sizeof(err)), 0);
    assert_int_equal(n.prefix, 0);
    assert_int_equal(cidr_parse("[::]/0", &n, err, sizeof(err)), 0);

    /* IPv4-mapped networks become IPv4 networks. */
    assert_int_equal(cidr_parse("[::ffff:127.0.0.0]/104", &n, err, sizeof(err)),
                     0);
    assert_int_equal(n.family, AF_INET);
    assert_int_equal(n.prefix, 8);
    assert_int_equal(n.addr[0], 127);
    assert_int_equal(n.addr[1], 0);
}

static void expect_bad(const char *text, const char *fragment)
{
    struct cidr_net n;

    err[0] = 0;
    if (cidr_parse(text, &n, err, sizeof(err)) == 0)
        fail_msg("'%s' accepted", text);
    if (strstr(err, fragment) == NULL)
        fail_msg("'%s': error '%s' lacks '%s'", text, err, fragment);
    /* The entry is named so the administrator can find it. */
    assert_non_null(strstr(err, text));
}

static void test_parse_errors(void **state)
{
    expect_bad("127.0.0.0/33", "bad network mask");
    expect_bad("[::1]/129", "bad network mask");
    expect_bad("10.0.0.0/", "bad network mask");
    expect_bad("10.0.0.0/-1", "bad network mask");
    expect_bad("10.0.0.0/+8", "bad network mask");
    expect_bad("10.0.0.0/8x", "bad network mask");
    expect_bad("10.0.0.0/99999999999999999999", "bad network mask");
    expect_bad("256.0.0.0/8", "not a network address");
    expect_bad("10.0.0/8", "not a network address");
    expect_bad("127.1", "not a network address");
    expect_bad("localhost", "not a network address");
    expect_bad("hash:/etc/postfix/network_table", "not a network address");
    expect_bad("/etc/networks", "not a network address");
    expect_bad("[10.0.0.0/8", "not a network address");
    expect_bad("", "not a network address");
    expect_bad("fe80::1%eth0/64", "not a network address");
    expect_bad("127.0.0.1/8",
               "non-null host address bits, perhaps you should use "
               "'127.0.0.0/8' instead");
    expect_bad("10.1.2.3/12", "'10.0.0.0/12'");
    expect_bad("192.168.1.1/31", "'192.168.1.0/31'");
    expect_bad("[2001:db8::1]/32", "'[2001:db8::]/32'");
    expect_bad("[2001:db8:ffff::]/33", "'[2001:db8:8000::]/33'");
}

static void test_list_match(void **state)
{
    struct cidr_list *l =
        cidr_list_parse("127.0.0.0/8 [::1]/128, 192.168.1.5,10.0.0.0/8\n"
                        "  [::ffff:172.16.0.0]/108 2001:db8:1::/48",
                        err, sizeof(err));

    assert_non_null(l);
    assert_int_equal(cidr_list_count(l), 6);
    assert_true(cidr_list_match(l, "127.0.0.1"));
    assert_true(cidr_list_match(l, "127.255.255.255"));
    assert_false(cidr_list_match(l, "128.0.0.1"));
    assert_true(cidr_list_match(l, "::1"));
    assert_true(cidr_list_match(l, "[::1]"));
    assert_false(cidr_list_match(l, "::2"));
    assert_true(cidr_list_match(l, "192.168.1.5"));
    assert_false(cidr_list_match(l, "192.168.1.4"));
    assert_false(cidr_list_match(l, "192.168.1.6"));
    assert_true(cidr_list_match(l, "10.200.3.4"));
    assert_false(cidr_list_match(l, "11.0.0.0"));
    /* 172.16.0.0/12 written as a mapped network. */
    assert_true(cidr_list_match(l, "172.16.0.1"));
    assert_true(cidr_list_match(l, "172.31.255.255"));
    assert_false(cidr_list_match(l, "172.32.0.0"));
    /* IPv4-mapped client addresses match IPv4 entries. */
    assert_true(cidr_list_match(l, "::ffff:127.0.0.1"));
    assert_true(cidr_list_match(l, "::ffff:10.1.1.1"));
    assert_false(cidr_list_match(l, "::ffff:8.8.8.8"));
    /* Prefix boundary inside a byte: /48 then bit 49 set. */
    assert_true(cidr_list_match(l, "2001:db8:1:ffff::1"));
    assert_false(cidr_list_match(l, "2001:db8:2::1"));
    /* A zone does not hide the address. */
    assert_true(cidr_list_match(l, "::1%lo"));
    /* Garbage never matches. */
    assert_false(cidr_list_match(l, ""));
    assert_false(cidr_list_match(l, "local"));
    assert_false(cidr_list_match(l, "127.0.0.1 "));
    assert_false(cidr_list_match(l, "127.0.0.1/8"));
    cidr_list_free(l);
}

static void test_list_edges(void **state)
{
    struct cidr_list *l = cidr_list_parse("", err, sizeof(err));

    assert_non_null(l);
    assert_int_equal(cidr_list_count(l), 0);
    assert_false(cidr_list_match(l, "127.0.0.1"));
    cidr_list_free(l);

    l = cidr_list_parse("0.0.0.0/0", err, sizeof(err));
    assert_true(cidr_list_match(l, "203.0.113.9"));
    assert_false(cidr_list_match(l, "2001:db8::1"));
    cidr_list_free(l);

    l = cidr_list_parse("192.168.0.0/23", err, sizeof(err));
    assert_true(cidr_list_match(l, "192.168.1.255"));
    assert_false(cidr_list_match(l, "192.168.2.0"));
    cidr_list_free(l);

    /* One bad entry fails the list and is named. */
    assert_null(
        cidr_list_parse("127.0.0.0/8 10.0.0.1/8 ::1", err, sizeof(err)));
    assert_non_null(strstr(err, "10.0.0.1/8"));
    assert_null(cidr_list_parse("127.0.0.0/8, $mynetworks", err, sizeof(err)));
    assert_non_null(strstr(err, "$mynetworks"));
}

static void test_addr_parse(void **state)
{
    unsigned char a[16];
    int fam;

    assert_int_equal(cidr_addr_parse("::ffff:1.2.3.4", &fam, a), 0);
    assert_int_equal(fam, AF_INET);
    assert_int_equal(a[0], 1);
    assert_int_equal(a[3], 4);
    assert_int_equal(cidr_addr_parse("2001:db8::1", &fam, a), 0);
    assert_int_equal(fam, AF_INET6);
    assert_int_equal(cidr_addr_parse("1.2.3.04", &fam, a), -1);
    assert_int_equal(cidr_addr_parse("1.2.3.4.5", &fam, a), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_entries),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_list_match),
        cmocka_unit_test(test_list_edges),
        cmocka_unit_test(test_addr_parse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
