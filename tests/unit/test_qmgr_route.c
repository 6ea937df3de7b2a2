/*
 * test_qmgr_route - where qmgr sends a recipient: the class transports
 * (local_transport, virtual_transport, relay_transport,
 * default_transport), relayhost for the relay and default classes and its
 * "[host]:port" and "host" forms, a class transport's own next hop over
 * relayhost, transport_maps over everything with transport(5)'s key order
 * (user+ext@domain, user@domain, domain, .parent, *) and its empty-field
 * rules, the built-in error and discard, double_bounce_sender, and the
 * site match of the 'S' flush trigger.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The daemon's files are not in a library: compile it in. */
#include "qmgr/qmgr_route.c"

static char tmpdir[256];
static char err[512];

static int setup(void **state)
{
    FILE *fp;
    char path[400];

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_qmgr_route.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/transport", tmpdir);
    if ((fp = fopen(path, "w")) == NULL)
        return -1;
    fputs("# transport(5)\n"
          "vip+list@table.test     lmtp:unix:private/list\n"
          "vip@table.test          smtp:[vip.gw]:2525\n"
          "table.test              relay:[table.gw]\n"
          ".sub.table.test         :[subs.gw]\n"
          "reset.test              smtp:\n"
          "keep.test               :\n"
          "blocked.test            error:5.7.1 no mail for you\n"
          "plain-error.test        error:\n"
          "void.test               discard:\n"
          "example.test            lmtp:[mailstore]:24\n"
          "*                       smtp:[wild.gw]\n",
          fp);
    return fclose(fp) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void set(struct config *cfg, const char *name, const char *value)
{
    if (config_set(cfg, name, value, "test", err, sizeof(err)) < 0)
        fail_msg("config_set %s = %s: %s", name, value, err);
}

struct world {
    struct config *cfg;
    struct resolver *res;
    struct qmgr_router *rt;
};

static struct config *base_config(void)
{
    struct config *cfg = config_new();

    set(cfg, "myhostname", "mail.example.test");
    set(cfg, "mydomain", "example.test");
    set(cfg, "mydestination", "$myhostname, localhost");
    set(cfg, "virtual_mailbox_domains", "example.test, vhost.test");
    set(cfg, "virtual_alias_domains", "alias.test");
    set(cfg, "relay_domains", "relay.test");
    set(cfg, "recipient_delimiter", "+");
    set(cfg, "alias_maps", "");
    set(cfg, "local_recipient_maps", "");
    return cfg;
}

static void open_world(struct world *w, struct config *cfg)
{
    w->cfg = cfg;
    w->res = resolver_open(cfg, err, sizeof(err));
    if (w->res == NULL)
        fail_msg("resolver_open: %s", err);
    w->rt = qmgr_router_open(cfg, w->res, err, sizeof(err));
    if (w->rt == NULL)
        fail_msg("qmgr_router_open: %s", err);
}

static void close_world(struct world *w)
{
    qmgr_router_close(w->rt);
    resolver_close(w->res);
    config_free(w->cfg);
}

static void expect(struct world *w, const char *addr, const char *transport,
                   const char *nexthop)
{
    struct qmgr_route r;

    if (qmgr_route_addr(w->rt, addr, &r, err, sizeof(err)) < 0)
        fail_msg("%s: %s", addr, err);
    if (strcmp(r.transport, transport) != 0 || strcmp(r.nexthop, nexthop) != 0)
        fail_msg("%s: got %s:%s, expected %s:%s", addr, r.transport, r.nexthop,
                 transport, nexthop);
    qmgr_route_free(&r);
}

static void test_class_transports(void **state)
{
    struct world w;

    open_world(&w, base_config());
    /* local_transport = local:$myhostname */
    expect(&w, "root@mail.example.test", "local", "mail.example.test");
    expect(&w, "root@localhost", "local", "mail.example.test");
    expect(&w, "root", "local", "mail.example.test");
    /* virtual_transport = local (posthorn's default) */
    expect(&w, "demo@example.test", "local", "example.test");
    expect(&w, "Demo@VHost.Test", "local", "vhost.test");
    /* relay_transport = relay, default_transport = smtp: the domain */
    expect(&w, "x@relay.test", "relay", "relay.test");
    expect(&w, "x@Remote.Test", "smtp", "remote.test");
    /* cleanup found no alias: a permanent error */
    expect(&w, "nobody@alias.test", "error",
           "5.1.1 User unknown in virtual alias table");
    /* mail to double_bounce_sender is discarded (loop breaker) */
    expect(&w, "double-bounce@mail.example.test", "discard", "");
    expect(&w, "Double-Bounce@Mail.Example.Test", "discard", "");
    close_world(&w);
}

static void test_relayhost(void **state)
{
    struct config *cfg = base_config();
    struct world w;

    set(cfg, "relayhost", "[gw.example.net]:2525");
    open_world(&w, cfg);
    expect(&w, "x@remote.test", "smtp", "[gw.example.net]:2525");
    expect(&w, "x@relay.test", "relay", "[gw.example.net]:2525");
    /* Never for local or virtual mailboxes. */
    expect(&w, "demo@example.test", "local", "example.test");
    expect(&w, "root@localhost", "local", "mail.example.test");
    close_world(&w);

    /* The MX form is passed on as it is: the agent looks it up. */
    cfg = base_config();
    set(cfg, "relayhost", " isp.example.net ");
    open_world(&w, cfg);
    expect(&w, "x@remote.test", "smtp", "isp.example.net");
    close_world(&w);

    /* A class transport with a next hop beats relayhost. */
    cfg = base_config();
    set(cfg, "relayhost", "[gw.example.net]");
    set(cfg, "default_transport", "smtp:[fallback.example.net]:587");
    set(cfg, "relay_transport", "lmtp");
    set(cfg, "virtual_transport", "virtual");
    open_world(&w, cfg);
    expect(&w, "x@remote.test", "smtp", "[fallback.example.net]:587");
    expect(&w, "x@relay.test", "lmtp", "[gw.example.net]");
    expect(&w, "demo@example.test", "virtual", "example.test");
    close_world(&w);
}

static void test_transport_maps(void **state)
{
    struct config *cfg = base_config();
    struct world w;
    char v[400];

    snprintf(v, sizeof(v), "texthash:%s/transport", tmpdir);
    set(cfg, "transport_maps", v);
    set(cfg, "relayhost", "[gw.example.net]");
    open_world(&w, cfg);
    /* Key order: the full address with extension first ... */
    expect(&w, "vip+list@table.test", "lmtp", "unix:private/list");
    /* ... then without the extension ... */
    expect(&w, "vip+other@table.test", "smtp", "[vip.gw]:2525");
    expect(&w, "VIP@Table.Test", "smtp", "[vip.gw]:2525");
    /* ... then the domain ... */
    expect(&w, "someone@table.test", "relay", "[table.gw]");
    /* ... then .parent, which matches subdomains only; an empty
     * transport keeps the class transport. */
    expect(&w, "a@x.sub.table.test", "smtp", "[subs.gw]");
    expect(&w, "a@sub.table.test", "smtp", "[wild.gw]");
    /* A transport with an empty next hop resets it to the domain, even
     * over relayhost. */
    expect(&w, "a@reset.test", "smtp", "reset.test");
    /* Both empty: as if the table did not have it. */
    expect(&w, "a@keep.test", "smtp", "[gw.example.net]");
    /* The built-ins keep their text. */
    expect(&w, "a@blocked.test", "error", "5.7.1 no mail for you");
    expect(&w, "a@plain-error.test", "error", "");
    expect(&w, "a@void.test", "discard", "");
    /* The table overrides the virtual class too ... */
    expect(&w, "demo@example.test", "lmtp", "[mailstore]:24");
    /* ... and "*" catches the rest, local mail included. */
    expect(&w, "root@localhost", "smtp", "[wild.gw]");
    expect(&w, "x@remote.test", "smtp", "[wild.gw]");
    /* An address cleanup could not expand stays an error. */
    expect(&w, "nobody@alias.test", "error",
           "5.1.1 User unknown in virtual alias table");
    close_world(&w);
}

static void test_lookup_error(void **state)
{
    struct config *cfg = base_config();
    struct qmgr_route r;
    struct world w;
    char v[400];

    /* A socketmap server that is not there: the lookup fails. */
    snprintf(v, sizeof(v), "socketmap:unix:%s/no-such-socket:transport",
             tmpdir);
    set(cfg, "transport_maps", v);
    open_world(&w, cfg);
    assert_int_equal(
        qmgr_route_addr(w.rt, "x@remote.test", &r, err, sizeof(err)), -1);
    assert_null(r.transport);
    assert_true(strlen(err) > 0);
    close_world(&w);

    /* A table that cannot be opened stops qmgr at start. */
    cfg = base_config();
    snprintf(v, sizeof(v), "texthash:%s/missing", tmpdir);
    set(cfg, "transport_maps", v);
    w.res = resolver_open(cfg, err, sizeof(err));
    assert_non_null(w.res);
    assert_null(qmgr_router_open(cfg, w.res, err, sizeof(err)));
    assert_non_null(strstr(err, "transport_maps"));
    resolver_close(w.res);
    config_free(cfg);
}

static void test_split(void **state)
{
    static const struct {
        const char *in, *t, *n;
    } cases[] = {
        {"smtp:[h]:25", "smtp", "[h]:25"},
        {"smtp", "smtp", ""},
        {":[h]", "", "[h]"},
        {":", "", ""},
        {" relay : gw ", "relay", "gw"},
        {"lmtp:unix:/run/lmtp", "lmtp", "unix:/run/lmtp"},
        {"error:5.1.1 text: with colon", "error", "5.1.1 text: with colon"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *t, *n;

        qmgr_route_split(cases[i].in, &t, &n);
        assert_string_equal(t, cases[i].t);
        assert_string_equal(n, cases[i].n);
        free(t);
        free(n);
    }
}

static void test_site_match(void **state)
{
    assert_true(qmgr_route_site_match("example.org", "Example.ORG", NULL));
    assert_false(qmgr_route_site_match("example.org", "sub.example.org", ""));
    assert_true(qmgr_route_site_match("gw.test", NULL, "[gw.test]:2525"));
    assert_true(
        qmgr_route_site_match("[gw.test]:2525", NULL, "[gw.test]:2525"));
    assert_true(qmgr_route_site_match("gw.test", NULL, "gw.test:2525"));
    assert_true(qmgr_route_site_match("127.0.0.1", NULL, "[127.0.0.1]:2526"));
    assert_true(qmgr_route_site_match("gw.test", NULL, "inet:[gw.test]"));
    assert_false(qmgr_route_site_match("gw", NULL, "[gw.test]"));
    assert_false(qmgr_route_site_match("gw.test", NULL, "[gw.test"));
    assert_false(qmgr_route_site_match("gw.test", NULL, NULL));
    assert_false(qmgr_route_site_match("gw.test", NULL, ""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_class_transports),
        cmocka_unit_test(test_relayhost),
        cmocka_unit_test(test_transport_maps),
        cmocka_unit_test(test_lookup_error),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_site_match),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
