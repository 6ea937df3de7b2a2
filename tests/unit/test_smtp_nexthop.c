/*
 * test_smtp_nexthop - the next-hop syntax of the smtp/lmtp delivery
 * agent: which forms mean an MX lookup, a host lookup, a literal address
 * or a unix socket, the default ports, and what is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* The daemon's files are not in a library: compile them in. */
#include "smtp/smtp_nexthop.c"

static void parse_ok(const char *text, bool lmtp, enum smtp_nexthop_kind kind,
                     const char *name, unsigned port)
{
    struct smtp_nexthop nh;
    const char *err = NULL;

    if (smtp_nexthop_parse(text, lmtp, &nh, &err) != 0)
        fail_msg("'%s' refused: %s", text, err);
    assert_int_equal(nh.kind, kind);
    assert_string_equal(nh.name, name);
    assert_int_equal(nh.port, port);
}

static void parse_bad(const char *text, bool lmtp)
{
    struct smtp_nexthop nh;
    const char *err = NULL;

    if (smtp_nexthop_parse(text, lmtp, &nh, &err) == 0)
        fail_msg("'%s' accepted", text);
    assert_non_null(err);
}

static void test_domain_means_mx(void **state)
{
    (void)state;
    parse_ok("example.org", false, SMTP_NEXTHOP_MX, "example.org", 25);
    parse_ok("Example.ORG.", false, SMTP_NEXTHOP_MX, "example.org", 25);
    parse_ok("example.org:2525", false, SMTP_NEXTHOP_MX, "example.org", 2525);
    parse_ok("inet:example.org:587", false, SMTP_NEXTHOP_MX, "example.org",
             587);
    parse_ok("example.org:smtp", false, SMTP_NEXTHOP_MX, "example.org", 25);
}

static void test_brackets_skip_mx(void **state)
{
    (void)state;
    parse_ok("[mx.example.org]", false, SMTP_NEXTHOP_HOST, "mx.example.org",
             25);
    parse_ok("[MX.example.org]:2525", false, SMTP_NEXTHOP_HOST,
             "mx.example.org", 2525);
    parse_ok("[127.0.0.1]:2525", false, SMTP_NEXTHOP_ADDR, "127.0.0.1", 2525);
    parse_ok("[192.0.2.1]", false, SMTP_NEXTHOP_ADDR, "192.0.2.1", 25);
    /* A bare IPv4 address needs no lookup either. */
    parse_ok("192.0.2.1:26", false, SMTP_NEXTHOP_ADDR, "192.0.2.1", 26);
}

static void test_ipv6(void **state)
{
    struct smtp_nexthop nh;
    const char *err;

    (void)state;
    parse_ok("[ipv6:2001:db8::1]:2525", false, SMTP_NEXTHOP_ADDR, "2001:db8::1",
             2525);
    parse_ok("[::1]", false, SMTP_NEXTHOP_ADDR, "::1", 25);
    parse_ok("[IPv6:2001:DB8::A]", false, SMTP_NEXTHOP_ADDR, "2001:db8::a", 25);
    assert_int_equal(smtp_nexthop_parse("[::1]", false, &nh, &err), 0);
    assert_int_equal(nh.family, AF_INET6);
    parse_bad("2001:db8::1", false); /* must be bracketed */
    parse_bad("[ipv6:example.org]", false);
}

static void test_lmtp(void **state)
{
    (void)state;
    parse_ok("unix:/run/dovecot/lmtp", true, SMTP_NEXTHOP_UNIX,
             "/run/dovecot/lmtp", 0);
    parse_ok("unix:private/dovecot-lmtp", true, SMTP_NEXTHOP_UNIX,
             "private/dovecot-lmtp", 0);
    /* LMTP never looks up MX records. */
    parse_ok("mail.example.org", true, SMTP_NEXTHOP_HOST, "mail.example.org",
             24);
    parse_ok("inet:mail.example.org:2424", true, SMTP_NEXTHOP_HOST,
             "mail.example.org", 2424);
    parse_ok("[127.0.0.1]", true, SMTP_NEXTHOP_ADDR, "127.0.0.1", 24);
    parse_ok("127.0.0.1:lmtp", true, SMTP_NEXTHOP_ADDR, "127.0.0.1", 24);
}

static void test_refused(void **state)
{
    char longpath[200];
    char longname[400];

    (void)state;
    parse_bad("", false);
    parse_bad("[]", false);
    parse_bad("[mx.example.org", false);
    parse_bad("[mx.example.org]x", false);
    parse_bad("[mx.example.org]:", false);
    parse_bad("example.org:0", false);
    parse_bad("example.org:65536", false);
    parse_bad("example.org:-1", false);
    parse_bad("example.org:25x", false);
    parse_bad("exa mple.org", false);
    parse_bad("example.org\r\nRCPT", false);
    parse_bad("-bad-.example.org", false);
    parse_bad("under..dots", false);
    parse_bad("bücher.example", false); /* no IDNA conversion */
    parse_bad("unix:/tmp/x", false);    /* smtp has no unix sockets */
    parse_bad("unix:", true);
    memset(longpath, 'p', sizeof(longpath));
    memcpy(longpath, "unix:/", 6);
    longpath[sizeof(longpath) - 1] = 0;
    parse_bad(longpath, true);
    memset(longname, 'a', sizeof(longname));
    longname[sizeof(longname) - 1] = 0;
    parse_bad(longname, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_domain_means_mx),
        cmocka_unit_test(test_brackets_skip_mx),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_lmtp),
        cmocka_unit_test(test_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
