/*
 * test_resolve - address classes, "does this recipient exist" (what
 * smtpd answers with 250 or 550 5.1.1) and where mail goes, from a
 * configuration built with config_set: domain lists with names, .parent
 * patterns and tables; virtual mailboxes with recipient_delimiter "+";
 * local users from the password file and aliases; mailbox paths that must
 * stay under virtual_mailbox_base; mbox results refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "global/config.h"
#include "global/resolve.h"
#include "util/buf.h"

static char tmpdir[256];
static char err[512];

static const char *tmpfile_path(const char *name)
{
    static char paths[8][320];
    static int slot;
    char *p = paths[slot++ % 8];

    snprintf(p, 320, "%s/%s", tmpdir, name);
    return p;
}

static void write_file(const char *name, const char *text)
{
    FILE *fp = fopen(tmpfile_path(name), "w");

    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

static int setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_resolve.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    write_file("vmailbox",
               "# address             mailbox under virtual_mailbox_base\n"
               "demo@example.test     example.test/demo/\n"
               "Other@Example.Test    example.test/other/\n"
               "mbox@example.test     example.test/mbox\n"
               "evil@example.test     example.test/../../etc/\n"
               "abs@example.test      /var/mail/abs/\n"
               "dots@example.test     example.test/..hidden/\n"
               "@vdomain.test         vdomain.test/catchall/\n");
    write_file("virtual", "info@example.test     demo@example.test\n"
                          "x@alias.test          demo@example.test\n"
                          "fwd@localhost         demo@example.test\n");
    write_file("aliases", "listname: demo@example.test\n");
    return 0;
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

static struct config *base_config(void)
{
    struct config *cfg = config_new();
    char v[400];

    set(cfg, "myhostname", "mail.example.test");
    set(cfg, "mydomain", "example.test");
    set(cfg, "mydestination", "$myhostname, localhost, .sub.example.test");
    set(cfg, "virtual_mailbox_domains",
        "example.test, inline:{vdomain.test=yes}");
    set(cfg, "virtual_alias_domains", "Alias.Test");
    set(cfg, "relay_domains", "relay.test");
    snprintf(v, sizeof(v), "texthash:%s", tmpfile_path("vmailbox"));
    set(cfg, "virtual_mailbox_maps", v);
    snprintf(v, sizeof(v), "texthash:%s", tmpfile_path("virtual"));
    set(cfg, "virtual_alias_maps", v);
    snprintf(v, sizeof(v), "texthash:%s", tmpfile_path("aliases"));
    set(cfg, "alias_maps", v);
    set(cfg, "recipient_delimiter", "+");
    snprintf(v, sizeof(v), "%s/mail/", tmpdir);
    set(cfg, "virtual_mailbox_base", v);
    return cfg;
}

static struct resolver *open_resolver(struct config *cfg)
{
    struct resolver *r = resolver_open(cfg, err, sizeof(err));

    if (r == NULL)
        fail_msg("resolver_open: %s", err);
    return r;
}

static void test_classes(void **state)
{
    struct config *cfg = base_config();
    struct resolver *r = open_resolver(cfg);
    static const struct {
        const char *domain;
        enum addr_class cls;
    } cases[] = {
        {"", ADDR_CLASS_LOCAL},
        {"localhost", ADDR_CLASS_LOCAL},
        {"mail.example.test", ADDR_CLASS_LOCAL},
        {"MAIL.Example.TEST", ADDR_CLASS_LOCAL},
        {"a.sub.example.test", ADDR_CLASS_LOCAL},
        {"b.a.sub.example.test", ADDR_CLASS_LOCAL},
        {"sub.example.test", ADDR_CLASS_DEFAULT},
        {"example.test", ADDR_CLASS_VIRTUAL_MAILBOX},
        {"vdomain.test", ADDR_CLASS_VIRTUAL_MAILBOX},
        {"alias.test", ADDR_CLASS_VIRTUAL_ALIAS},
        {"relay.test", ADDR_CLASS_RELAY},
        {"other.org", ADDR_CLASS_DEFAULT},
        {"xexample.test", ADDR_CLASS_DEFAULT},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int c = resolve_class(r, cases[i].domain, err, sizeof(err));

        if (c != (int)cases[i].cls)
            fail_msg("domain '%s': class %d, expected %s", cases[i].domain, c,
                     addr_class_name(cases[i].cls));
    }
    assert_string_equal(addr_class_name(ADDR_CLASS_VIRTUAL_MAILBOX),
                        "virtual_mailbox");
    assert_non_null(resolve_virtual_alias_maps(r));
    assert_non_null(resolve_alias_maps(r));
    assert_false(maplist_empty(resolve_alias_maps(r)));
    resolver_close(r);
    config_free(cfg);
}

static void known(struct resolver *r, const char *addr, enum map_result want)
{
    enum map_result got = resolve_recipient_known(r, addr, err, sizeof(err));

    if (got != want)
        fail_msg("RCPT TO:<%s>: %d, expected %d (%s)", addr, got, want, err);
}

static void test_known(void **state)
{
    struct config *cfg = base_config();
    struct resolver *r = open_resolver(cfg);

    /* virtual mailbox domain */
    known(r, "demo@example.test", MAP_FOUND);
    known(r, "DEMO@Example.Test", MAP_FOUND);
    known(r, "demo+folder@example.test", MAP_FOUND);
    known(r, "other@example.test", MAP_FOUND);
    known(r, "info@example.test", MAP_FOUND); /* a virtual alias */
    known(r, "nobody@example.test", MAP_NOTFOUND);
    known(r, "demo-x@example.test", MAP_NOTFOUND);
    known(r, "anyone@vdomain.test", MAP_FOUND); /* @domain catch-all */
    /* virtual alias domain */
    known(r, "x@alias.test", MAP_FOUND);
    known(r, "x+tag@alias.test", MAP_FOUND);
    known(r, "y@alias.test", MAP_NOTFOUND);
    /* local: passwd (unix:passwd.byname in the default) and aliases */
    known(r, "root@localhost", MAP_FOUND);
    known(r, "ROOT@mail.example.test", MAP_FOUND);
    known(r, "root+ext@localhost", MAP_FOUND);
    known(r, "root", MAP_FOUND);
    known(r, "listname@localhost", MAP_FOUND);
    known(r, "fwd@localhost", MAP_FOUND);
    known(r, "no-such-user-xyz@localhost", MAP_NOTFOUND);
    /* relay and default are not this question */
    known(r, "anyone@relay.test", MAP_FOUND);
    known(r, "anyone@other.org", MAP_FOUND);
    resolver_close(r);

    /* Empty local_recipient_maps accepts every local address. */
    set(cfg, "local_recipient_maps", "");
    r = open_resolver(cfg);
    known(r, "no-such-user-xyz@localhost", MAP_FOUND);
    known(r, "nobody@example.test", MAP_NOTFOUND);
    resolver_close(r);
    config_free(cfg);
}

static void mailbox(struct resolver *r, const char *addr, enum map_result want,
                    const char *want_path, const char *want_err)
{
    struct buf path = BUF_INIT;
    uid_t uid = (uid_t)-1;
    gid_t gid = (gid_t)-1;
    enum map_result got;

    err[0] = 0;
    got = resolve_mailbox(r, addr, &path, &uid, &gid, err, sizeof(err));
    if (got != want)
        fail_msg("mailbox of %s: %d (%s), expected %d", addr, got, err, want);
    if (want_path != NULL)
        assert_string_equal(buf_cstr(&path), want_path);
    if (want_err != NULL && strstr(err, want_err) == NULL)
        fail_msg("mailbox of %s: error '%s' lacks '%s'", addr, err, want_err);
    buf_free(&path);
}

static void test_mailbox_virtual(void **state)
{
    struct config *cfg = base_config();
    struct resolver *r = open_resolver(cfg);
    struct buf path = BUF_INIT;
    char want[400];
    uid_t uid;
    gid_t gid;

    /* No uid/gid maps: the mailbox belongs to whoever we run as. */
    snprintf(want, sizeof(want), "%s/mail/example.test/demo/", tmpdir);
    assert_int_equal(resolve_mailbox(r, "demo+x@example.test", &path, &uid,
                                     &gid, err, sizeof(err)),
                     MAP_FOUND);
    assert_string_equal(buf_cstr(&path), want);
    assert_int_equal(uid, geteuid());
    assert_int_equal(gid, getegid());
    buf_free(&path);

    snprintf(want, sizeof(want), "%s/mail/vdomain.test/catchall/", tmpdir);
    mailbox(r, "who@vdomain.test", MAP_FOUND, want, NULL);
    mailbox(r, "mbox@example.test", MAP_NOTFOUND, NULL,
            "mailbox file (mbox) delivery is not supported");
    mailbox(r, "evil@example.test", MAP_ERROR, NULL, "'..'");
    mailbox(r, "abs@example.test", MAP_ERROR, NULL, "absolute");
    snprintf(want, sizeof(want), "%s/mail/example.test/..hidden/", tmpdir);
    mailbox(r, "dots@example.test", MAP_FOUND, want, NULL);
    mailbox(r, "nobody@example.test", MAP_NOTFOUND, NULL, NULL);
    mailbox(r, "x@relay.test", MAP_NOTFOUND, NULL, "relay");
    mailbox(r, "x@other.org", MAP_NOTFOUND, NULL, NULL);
    mailbox(r, "x@alias.test", MAP_NOTFOUND, NULL, NULL);
    resolver_close(r);

    /* Fixed ownership from static maps, checked against the minimum. */
    set(cfg, "virtual_uid_maps", "static:5000");
    set(cfg, "virtual_gid_maps", "static:{ 5001 }");
    r = open_resolver(cfg);
    assert_int_equal(resolve_mailbox(r, "demo@example.test", &path, &uid, &gid,
                                     err, sizeof(err)),
                     MAP_FOUND);
    assert_int_equal(uid, 5000);
    assert_int_equal(gid, 5001);
    buf_free(&path);
    resolver_close(r);

    set(cfg, "virtual_uid_maps", "static:50");
    r = open_resolver(cfg);
    mailbox(r, "demo@example.test", MAP_ERROR, NULL, "bad id '50'");
    resolver_close(r);

    set(cfg, "virtual_uid_maps", "inline:{other@example.test=6000}");
    r = open_resolver(cfg);
    mailbox(r, "demo@example.test", MAP_ERROR, NULL, "virtual_uid_maps");
    assert_int_equal(resolve_mailbox(r, "other@example.test", &path, &uid, &gid,
                                     err, sizeof(err)),
                     MAP_FOUND);
    assert_int_equal(uid, 6000);
    buf_free(&path);
    resolver_close(r);

    set(cfg, "virtual_uid_maps", "static:abc");
    r = open_resolver(cfg);
    mailbox(r, "demo@example.test", MAP_ERROR, NULL, "bad id");
    resolver_close(r);

    set(cfg, "virtual_uid_maps", "");
    set(cfg, "virtual_mailbox_base", "");
    r = open_resolver(cfg);
    mailbox(r, "demo@example.test", MAP_ERROR, NULL, "virtual_mailbox_base");
    resolver_close(r);
    config_free(cfg);
}

static void test_mailbox_local(void **state)
{
    struct config *cfg = base_config();
    struct resolver *r = open_resolver(cfg);
    struct passwd *pw = getpwnam("root");
    struct buf path = BUF_INIT;
    char want[400];
    uid_t uid;
    gid_t gid;

    assert_non_null(pw);
    snprintf(want, sizeof(want), "%s%sMaildir/", pw->pw_dir,
             strcmp(pw->pw_dir, "/") == 0 ? "" : "/");
    assert_int_equal(resolve_mailbox(r, "Root+ext@localhost", &path, &uid, &gid,
                                     err, sizeof(err)),
                     MAP_FOUND);
    assert_string_equal(buf_cstr(&path), want);
    assert_int_equal(uid, 0);
    assert_int_equal(gid, 0);
    buf_free(&path);
    mailbox(r, "no-such-user-xyz@localhost", MAP_NOTFOUND, NULL,
            "unknown user");
    resolver_close(r);

    set(cfg, "home_mailbox", "Mailbox");
    r = open_resolver(cfg);
    mailbox(r, "root@localhost", MAP_NOTFOUND, NULL, "mbox");
    resolver_close(r);
    set(cfg, "home_mailbox", "../x/");
    r = open_resolver(cfg);
    mailbox(r, "root@localhost", MAP_ERROR, NULL, "'..'");
    resolver_close(r);
    config_free(cfg);
}

static void test_open_errors(void **state)
{
    struct config *cfg = base_config();

    set(cfg, "virtual_mailbox_maps", "lmdb:/nonexistent/vmailbox");
    assert_null(resolver_open(cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "virtual_mailbox_maps"));
    assert_non_null(strstr(err, "/nonexistent/vmailbox.lmdb"));
    config_free(cfg);

    cfg = base_config();
    set(cfg, "mydestination", "localhost, /etc/posthorn/destinations");
    assert_null(resolver_open(cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "mydestination"));
    config_free(cfg);

    cfg = base_config();
    set(cfg, "relay_domains", "example.org bogus:table");
    assert_null(resolver_open(cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "relay_domains"));
    assert_non_null(strstr(err, "unsupported map type 'bogus'"));
    config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_known),
        cmocka_unit_test(test_mailbox_virtual),
        cmocka_unit_test(test_mailbox_local),
        cmocka_unit_test(test_open_errors),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
