/*
 * test_cleanup_envelope - cleanup's check of the envelope frame smtpd
 * sends: what is accepted, and that each kind of bad frame is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "cleanup/cleanup_envelope.c"

#define NOW 1795429081

static void add(struct attr_list *l, const char *name, const char *value)
{
    attr_list_add(l, name, value, strlen(value));
}

/* A complete, valid frame; tests then damage or extend it. */
static void base_frame(struct attr_list *l)
{
    attr_list_clear(l);
    add(l, "request", "submit");
    add(l, "sender", "alice@example.org");
    add(l, "client_name", "mx.example.org");
    add(l, "client_addr", "192.0.2.1");
    add(l, "client_port", "40000");
    add(l, "helo", "mx.example.org");
    add(l, "protocol", "ESMTP");
    add(l, "smtputf8", "0");
    add(l, "body", "8BITMIME");
    add(l, "arrival", "1795429000");
    add(l, "rcpt", "bob@example.test");
    add(l, "notify", "SUCCESS,DELAY");
    add(l, "orcpt", "rfc822;bob@example.test");
    add(l, "rcpt", "carol@example.test");
}

static void test_valid(void **state)
{
    struct attr_list l = ATTR_LIST_INIT;
    struct cleanup_envelope env;
    const char *why;

    base_frame(&l);
    add(&l, "future_attribute", "ignored");
    assert_int_equal(cleanup_envelope_parse(&l, NOW, &env, &why), 0);
    assert_string_equal(env.sender, "alice@example.org");
    assert_string_equal(env.client_name, "mx.example.org");
    assert_string_equal(env.client_addr, "192.0.2.1");
    assert_string_equal(env.client_port, "40000");
    assert_string_equal(env.helo, "mx.example.org");
    assert_string_equal(env.protocol, "ESMTP");
    assert_string_equal(env.body, "8BITMIME");
    assert_null(env.envid);
    assert_null(env.tls);
    assert_false(env.smtputf8);
    assert_int_equal(env.arrival, 1795429000);
    assert_int_equal(env.rcpts.n, 2);
    assert_string_equal(env.rcpts.v[0].addr, "bob@example.test");
    assert_string_equal(env.rcpts.v[0].notify, "SUCCESS,DELAY");
    assert_string_equal(env.rcpts.v[0].orcpt, "rfc822;bob@example.test");
    assert_string_equal(env.rcpts.v[1].addr, "carol@example.test");
    assert_string_equal(env.rcpts.v[1].notify, "");
    assert_string_equal(env.rcpts.v[1].orcpt, "");
    cleanup_envelope_free(&env);

    /* Minimal: null sender, no client, no arrival (now is used). */
    attr_list_clear(&l);
    add(&l, "request", "submit");
    add(&l, "sender", "");
    add(&l, "rcpt", "\"john doe\"@example.test");
    assert_int_equal(cleanup_envelope_parse(&l, NOW, &env, &why), 0);
    assert_string_equal(env.sender, "");
    assert_null(env.client_addr);
    assert_int_equal(env.arrival, NOW);
    cleanup_envelope_free(&env);

    /* UTF-8 addresses only with smtputf8=1. */
    attr_list_clear(&l);
    add(&l, "request", "submit");
    add(&l, "sender", "");
    add(&l, "rcpt", "j\xc3\xb6rg@example.test");
    assert_int_equal(cleanup_envelope_parse(&l, NOW, &env, &why), -1);
    cleanup_envelope_free(&env);
    add(&l, "smtputf8", "1");
    assert_int_equal(cleanup_envelope_parse(&l, NOW, &env, &why), 0);
    assert_true(env.smtputf8);
    cleanup_envelope_free(&env);
    attr_list_free(&l);
}

/* base_frame with attribute `name` replaced by value (or appended). */
static int parse_with(const char *name, const char *value, bool append)
{
    struct attr_list l = ATTR_LIST_INIT;
    struct cleanup_envelope env;
    const char *why = NULL;
    int rc;

    base_frame(&l);
    if (append) {
        add(&l, name, value);
    } else {
        for (size_t i = 0; i < l.n; i++) {
            if (strcmp(l.v[i].name, name) == 0) {
                free(l.v[i].value);
                l.v[i].value = xstrdup(value);
                l.v[i].len = strlen(value);
                break;
            }
        }
    }
    rc = cleanup_envelope_parse(&l, NOW, &env, &why);
    if (rc < 0)
        assert_non_null(why);
    cleanup_envelope_free(&env);
    attr_list_free(&l);
    return rc;
}

static void test_bad_fields(void **state)
{
    static const struct {
        const char *name, *value;
        bool append;
    } bad[] = {
        {"request", "deliver", false},
        {"request", "submit", true}, /* repeated */
        {"sender", "x@y", true},     /* repeated */
        {"sender", "no-domain", false},
        {"sender", "a@Example.org", false}, /* not internal form */
        {"sender", "<a@example.org>", false},
        {"sender", "a@b@c", false},
        {"rcpt", "", true},
        {"rcpt", "@route:a@b", true},
        {"notify", "SUCCESS,SUCCESS", false},
        {"notify", "SUCCESS,", false},
        {"notify", "SOMETIMES", false},
        {"orcpt", "no-semicolon", false},
        {"client_addr", "192.0.2.300", false},
        {"client_addr", "mx.example.org", false},
        {"client_port", "70000", false},
        {"client_port", "-1", false},
        {"client_name", "two words", false},
        {"helo", "line\nbreak", false},
        {"protocol", "esmtp", false},
        {"smtputf8", "yes", false},
        {"body", "9BIT", false},
        {"ret", "ALL", true},
        {"arrival", "12x", false},
        {"arrival", "100", false},        /* 1970 */
        {"arrival", "2795429081", false}, /* far future */
        {"envid", "has\ttab", true},
        {"client_name", "again.example.org", true},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (parse_with(bad[i].name, bad[i].value, bad[i].append) != -1)
            fail_msg("accepted %s=%s", bad[i].name, bad[i].value);
    /* And the good ones next to them. */
    assert_int_equal(parse_with("notify", "never", false), 0);
    assert_int_equal(parse_with("client_addr", "2001:db8::1", false), 0);
    assert_int_equal(parse_with("ret", "HDRS", true), 0);
    assert_int_equal(parse_with("envid", "QQ+2B123", true), 0);
    assert_int_equal(parse_with("helo", "[192.0.2.1]", false), 0);
}

static void test_structure(void **state)
{
    struct attr_list l = ATTR_LIST_INIT;
    struct cleanup_envelope env;
    const char *why;

    /* notify before any rcpt */
    add(&l, "request", "submit");
    add(&l, "sender", "");
    add(&l, "notify", "NEVER");
    add(&l, "rcpt", "a@b.test");
    assert_int_equal(cleanup_envelope_parse(&l, NOW, &env, &why), -1);
    cleanup_envelope_free(&env);

    /* two notify for one rcpt */
    attr_list_clear(&l);
    add(&l, "request", "submit");
    add(&l, "sender", "");
    add(&l, "rcpt", "a@b.test");
    add(&l, "notify", "NEVER");
    add(&l, "notify", "NEVER");
    assert_int_equal(cleanup_envelope_parse(&l, NOW, &env, &why), -1);
    cleanup_envelope_free(&env);
    /* one each after two rcpts is fine */
    attr_list_clear(&l);
    add(&l, "request", "submit");
    add(&l, "sender", "");
    add(&l, "rcpt", "a@b.test");
    add(&l, "notify", "NEVER");
    add(&l, "rcpt", "c@b.test");
    add(&l, "notify", "FAILURE");
    assert_int_equal(cleanup_envelope_parse(&l, NOW, &env, &why), 0);
    assert_string_equal(env.rcpts.v[1].notify, "FAILURE");
    cleanup_envelope_free(&env);

    /* no recipients */
    attr_list_clear(&l);
    add(&l, "request", "submit");
    add(&l, "sender", "");
    assert_int_equal(cleanup_envelope_parse(&l, NOW, &env, &why), -1);
    assert_string_equal(why, "no recipients");
    cleanup_envelope_free(&env);

    /* missing sender / request */
    attr_list_clear(&l);
    add(&l, "request", "submit");
    add(&l, "rcpt", "a@b.test");
    assert_int_equal(cleanup_envelope_parse(&l, NOW, &env, &why), -1);
    cleanup_envelope_free(&env);
    attr_list_clear(&l);
    add(&l, "sender", "");
    add(&l, "rcpt", "a@b.test");
    assert_int_equal(cleanup_envelope_parse(&l, NOW, &env, &why), -1);
    cleanup_envelope_free(&env);

    /* a NUL inside a value */
    attr_list_clear(&l);
    add(&l, "request", "submit");
    attr_list_add(&l, "sender", "a@b.test\0x", 10);
    add(&l, "rcpt", "a@b.test");
    assert_int_equal(cleanup_envelope_parse(&l, NOW, &env, &why), -1);
    cleanup_envelope_free(&env);

    /* an over-long address (local part > 64) */
    attr_list_clear(&l);
    add(&l, "request", "submit");
    add(&l, "sender", "");
    add(&l, "rcpt",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaa@b.test");
    assert_int_equal(cleanup_envelope_parse(&l, NOW, &env, &why), -1);
    cleanup_envelope_free(&env);
    attr_list_free(&l);

    assert_true(cleanup_addr_ok("a.b@example.test", false));
    assert_false(cleanup_addr_ok("a..b@example.test", false));
    assert_false(cleanup_addr_ok("", false));
    assert_true(cleanup_addr_ok("a@[192.0.2.1]", false));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_bad_fields),
        cmocka_unit_test(test_structure),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
