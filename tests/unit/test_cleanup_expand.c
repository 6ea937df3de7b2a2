/*
 * test_cleanup_expand - recipient expansion in cleanup: virtual aliases,
 * local aliases, self-reference, loops and limits, duplicates, and the
 * original recipient each result keeps.  Tables are in-memory fakes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "cleanup/cleanup_envelope.c"
#include "cleanup/cleanup_expand.c"

struct entry {
    const char *key, *value;
};

struct tables {
    const struct entry *virtual;
    const struct entry *alias;
    const char *fail_key; /* lookups of this key are errors */
    int lookups;
};

static const char *find(const struct entry *t, const char *key)
{
    for (; t && t->key; t++)
        if (strcasecmp(t->key, key) == 0)
            return t->value;
    return NULL;
}

static int fake_is_local(void *ctx, const char *domain)
{
    if (strcmp(domain, "broken.test") == 0)
        return -1;
    return strcmp(domain, "local.test") == 0 ||
           strcmp(domain, "origin.test") == 0;
}

/* Exact address, then @domain: enough of Postfix's order for these tests. */
static enum cleanup_lookup fake_virtual(void *ctx, const char *addr,
                                        bool is_local, struct buf *out)
{
    struct tables *t = ctx;
    const char *v, *at = strrchr(addr, '@');

    t->lookups++;
    if (t->fail_key && strcmp(addr, t->fail_key) == 0)
        return CLEANUP_LOOKUP_ERROR;
    if ((v = find(t->virtual, addr)) == NULL && at != NULL)
        v = find(t->virtual, at);
    if (v == NULL)
        return CLEANUP_NOTFOUND;
    buf_reset(out);
    buf_puts(out, v);
    return CLEANUP_FOUND;
}

static enum cleanup_lookup fake_alias(void *ctx, const char *key,
                                      struct buf *out)
{
    struct tables *t = ctx;
    const char *v;

    t->lookups++;
    if (t->fail_key && strcmp(key, t->fail_key) == 0)
        return CLEANUP_LOOKUP_ERROR;
    if ((v = find(t->alias, key)) == NULL)
        return CLEANUP_NOTFOUND;
    buf_reset(out);
    buf_puts(out, v);
    return CLEANUP_FOUND;
}

static struct cleanup_expand_cfg cfg = {
    .myorigin = "origin.test",
    .delimiters = "+",
    .recursion_limit = 1000,
    .expansion_limit = 1000,
    .duplicate_limit = 1000,
    .keep_orig = true,
};

static int expand(struct tables *t, const char *const *rcpts,
                  struct cleanup_rcpt_list *out, int *status,
                  const char **reason)
{
    struct cleanup_expand_ops ops = {fake_is_local, fake_virtual, fake_alias,
                                     t};
    struct cleanup_rcpt_list in = {0};
    int rc;

    for (; *rcpts; rcpts++)
        cleanup_rcpt_add(&in, *rcpts, "", "", "");
    memset(out, 0, sizeof(*out));
    *status = 0;
    *reason = NULL;
    rc = cleanup_expand(&cfg, &ops, &in, out, "TESTID", status, reason);
    cleanup_rcpt_list_free(&in);
    return rc;
}

/* out must be exactly want (pairs of addr, orig), in order. */
static void expect(const struct cleanup_rcpt_list *out, const char *const *want)
{
    size_t n = 0;

    for (; want[2 * n]; n++) {
        if (n >= out->n)
            fail_msg("missing result %s", want[2 * n]);
        assert_string_equal(out->v[n].addr, want[2 * n]);
        assert_string_equal(out->v[n].orig, want[2 * n + 1]);
    }
    if (out->n != n)
        fail_msg("%zu results, want %zu (extra: %s)", out->n, n,
                 out->v[n].addr);
}

#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_no_tables(void **state)
{
    struct tables t = {0};
    struct cleanup_rcpt_list out;
    const char *reason;
    int status;

    assert_int_equal(expand(&t, LIST("a@remote.test", "b@local.test"), &out,
                            &status, &reason),
                     0);
    expect(&out, LIST("a@remote.test", "a@remote.test", "b@local.test",
                      "b@local.test"));
    cleanup_rcpt_list_free(&out);
}

static void test_virtual(void **state)
{
    static const struct entry virt[] = {
        {"list@virt.test", "a@remote.test, b@virt.test c"},
        {"b@virt.test", "<real-b@remote.test>"},
        {"@catch.test", "catchall@remote.test"},
        {NULL, NULL},
    };
    struct tables t = {virt, NULL, NULL, 0};
    struct cleanup_rcpt_list out;
    const char *reason;
    int status;

    assert_int_equal(expand(&t, LIST("list@virt.test", "x@catch.test"), &out,
                            &status, &reason),
                     0);
    /* Recursive; bare "c" gets @$myorigin; each keeps its original. */
    expect(&out, LIST("a@remote.test", "list@virt.test", "real-b@remote.test",
                      "list@virt.test", "c@origin.test", "list@virt.test",
                      "catchall@remote.test", "x@catch.test"));
    cleanup_rcpt_list_free(&out);
}

static void test_self_reference(void **state)
{
    static const struct entry virt[] = {
        {"bob@local.test", "bob@local.test, alice@remote.test"},
        {NULL, NULL},
    };
    static const struct entry alias[] = {
        {"carol", "carol, dave"},
        {"dave", "DAVE@Origin.Test"},
        {NULL, NULL},
    };
    struct tables t = {virt, alias, NULL, 0};
    struct cleanup_rcpt_list out;
    const char *reason;
    int status;

    assert_int_equal(expand(&t, LIST("bob@local.test", "carol@origin.test"),
                            &out, &status, &reason),
                     0);
    /* bob stays and is not looked up again; dave expands into itself. */
    expect(&out,
           LIST("bob@local.test", "bob@local.test", "alice@remote.test",
                "bob@local.test", "carol@origin.test", "carol@origin.test",
                "DAVE@origin.test", "carol@origin.test"));
    cleanup_rcpt_list_free(&out);
}

static void test_alias(void **state)
{
    static const struct entry alias[] = {
        {"bob", "alice, \"|/usr/bin/procmail\", /var/mail/bob, "
                ":include:/etc/list, carol@remote.test, bad@@address"},
        {"pipe", "|/bin/cat"},
        {"root", "bob"},
        {NULL, NULL},
    };
    struct tables t = {NULL, alias, NULL, 0};
    struct cleanup_rcpt_list out;
    const char *reason;
    int status;

    /* Aliases apply to local domains only, keyed by the lowercased local
     * part without extension; unsupported targets are dropped. */
    assert_int_equal(expand(&t,
                            LIST("Root@local.test", "bob+tag@origin.test",
                                 "bob@remote.test"),
                            &out, &status, &reason),
                     0);
    expect(&out,
           LIST("alice@origin.test", "Root@local.test", "carol@remote.test",
                "Root@local.test", "bob@remote.test", "bob@remote.test"));
    cleanup_rcpt_list_free(&out);

    /* Nothing usable: the recipient stays as it was. */
    assert_int_equal(
        expand(&t, LIST("pipe@local.test"), &out, &status, &reason), 0);
    expect(&out, LIST("pipe@local.test", "pipe@local.test"));
    cleanup_rcpt_list_free(&out);
}

static void test_duplicates_and_orig(void **state)
{
    static const struct entry virt[] = {
        {"x@virt.test", "z@remote.test"},
        {"y@virt.test", "Z@REMOTE.TEST"},
        {NULL, NULL},
    };
    struct tables t = {virt, NULL, NULL, 0};
    struct cleanup_rcpt_list out;
    const char *reason;
    int status;

    assert_int_equal(expand(&t,
                            LIST("x@virt.test", "y@virt.test", "z@remote.test"),
                            &out, &status, &reason),
                     0);
    expect(&out, LIST("z@remote.test", "x@virt.test"));
    cleanup_rcpt_list_free(&out);

    cfg.keep_orig = false;
    assert_int_equal(expand(&t, LIST("x@virt.test"), &out, &status, &reason),
                     0);
    expect(&out, LIST("z@remote.test", ""));
    cleanup_rcpt_list_free(&out);
    cfg.keep_orig = true;

    /* A duplicate filter of 0 remembers nothing. */
    cfg.duplicate_limit = 0;
    assert_int_equal(
        expand(&t, LIST("x@virt.test", "y@virt.test"), &out, &status, &reason),
        0);
    assert_int_equal(out.n, 2);
    cleanup_rcpt_list_free(&out);
    cfg.duplicate_limit = 1000;
}

static void test_dsn_propagates(void **state)
{
    static const struct entry virt[] = {
        {"x@virt.test", "a@remote.test b@remote.test"},
        {NULL, NULL},
    };
    struct tables t = {virt, NULL, NULL, 0};
    struct cleanup_expand_ops ops = {fake_is_local, fake_virtual, fake_alias,
                                     &t};
    struct cleanup_rcpt_list in = {0}, out = {0};
    const char *reason;
    int status = 0;

    cleanup_rcpt_add(&in, "x@virt.test", "", "FAILURE", "rfc822;x@virt.test");
    assert_int_equal(
        cleanup_expand(&cfg, &ops, &in, &out, "ID", &status, &reason), 0);
    assert_int_equal(out.n, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(out.v[i].notify, "FAILURE");
        assert_string_equal(out.v[i].orcpt, "rfc822;x@virt.test");
        assert_string_equal(out.v[i].orig, "x@virt.test");
    }
    cleanup_rcpt_list_free(&in);
    cleanup_rcpt_list_free(&out);
}

static void test_loops_and_limits(void **state)
{
    static const struct entry loop[] = {
        {"a@virt.test", "b@virt.test"},
        {"b@virt.test", "a@virt.test"},
        {NULL, NULL},
    };
    static const struct entry wide[] = {
        {"w@virt.test", "1@r.test 2@r.test 3@r.test 4@r.test 5@r.test "
                        "6@r.test"},
        {NULL, NULL},
    };
    static const struct entry deep[] = {
        {"d1@virt.test", "d2@virt.test"},
        {"d2@virt.test", "d3@virt.test"},
        {"d3@virt.test", "d4@virt.test"},
        {NULL, NULL},
    };
    struct tables t = {loop, NULL, NULL, 0};
    struct cleanup_rcpt_list out;
    const char *reason;
    int status;

    /* A loop ends at the recursion limit with a temporary error. */
    assert_int_equal(expand(&t, LIST("a@virt.test"), &out, &status, &reason),
                     -1);
    assert_int_equal(status, 4);
    assert_string_equal(reason, "4.6.0 Alias expansion error");
    assert_true(t.lookups >= 1000 && t.lookups < 1100);
    cleanup_rcpt_list_free(&out);

    /* Expansion size: 6 results fit a limit of 6, not of 5. */
    t.virtual = wide;
    cfg.expansion_limit = 6;
    assert_int_equal(expand(&t, LIST("w@virt.test"), &out, &status, &reason),
                     0);
    assert_int_equal(out.n, 6);
    cleanup_rcpt_list_free(&out);
    cfg.expansion_limit = 5;
    assert_int_equal(expand(&t, LIST("w@virt.test"), &out, &status, &reason),
                     -1);
    assert_string_equal(reason, "4.6.0 Alias expansion error");
    cleanup_rcpt_list_free(&out);
    cfg.expansion_limit = 1000;

    /* Nesting: 3 steps need a recursion limit of 4 (the last finds
     * nothing). */
    t.virtual = deep;
    cfg.recursion_limit = 4;
    assert_int_equal(expand(&t, LIST("d1@virt.test"), &out, &status, &reason),
                     0);
    expect(&out, LIST("d4@virt.test", "d1@virt.test"));
    cleanup_rcpt_list_free(&out);
    cfg.recursion_limit = 3;
    assert_int_equal(expand(&t, LIST("d1@virt.test"), &out, &status, &reason),
                     -1);
    assert_int_equal(status, 4);
    cleanup_rcpt_list_free(&out);
    cfg.recursion_limit = 1000;
}

static void test_lookup_errors(void **state)
{
    static const struct entry alias[] = {{"x", "y"}, {NULL, NULL}};
    struct tables t = {NULL, alias, "b@remote.test", 0};
    struct cleanup_rcpt_list out;
    const char *reason;
    int status;

    assert_int_equal(expand(&t, LIST("a@remote.test", "b@remote.test"), &out,
                            &status, &reason),
                     -1);
    assert_int_equal(status, 4);
    assert_string_equal(reason, "4.3.0 Error: temporary lookup failure");
    cleanup_rcpt_list_free(&out);

    t.fail_key = "x";
    assert_int_equal(expand(&t, LIST("x@local.test"), &out, &status, &reason),
                     -1);
    assert_int_equal(status, 4);
    cleanup_rcpt_list_free(&out);

    t.fail_key = NULL;
    assert_int_equal(expand(&t, LIST("x@broken.test"), &out, &status, &reason),
                     -1);
    assert_int_equal(status, 4);
    cleanup_rcpt_list_free(&out);
}

static void test_split_targets(void **state)
{
    struct argv a = ARGV_INIT;

    cleanup_split_targets(" a@b ,c,, <d@e>\t\"x y\"@z, \"|cmd arg\"\n f", &a);
    assert_int_equal(a.n, 6);
    assert_string_equal(a.v[0], "a@b");
    assert_string_equal(a.v[1], "c");
    assert_string_equal(a.v[2], "d@e");
    assert_string_equal(a.v[3], "\"x y\"@z");
    assert_string_equal(a.v[4], "\"|cmd arg\"");
    assert_string_equal(a.v[5], "f");
    argv_free(&a);
    cleanup_split_targets("", &a);
    cleanup_split_targets(" , ", &a);
    assert_int_equal(a.n, 0);
    argv_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_tables),
        cmocka_unit_test(test_virtual),
        cmocka_unit_test(test_self_reference),
        cmocka_unit_test(test_alias),
        cmocka_unit_test(test_duplicates_and_orig),
        cmocka_unit_test(test_dsn_propagates),
        cmocka_unit_test(test_loops_and_limits),
        cmocka_unit_test(test_lookup_errors),
        cmocka_unit_test(test_split_targets),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
