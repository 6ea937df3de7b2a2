/*
 * test_smtpd_check - the pure parts of smtpd's restriction engine:
 * which lists start-up accepts or refuses (unknown names, missing or bad
 * arguments, tables inside access results), the relay guard, what each
 * access(5) result does (reply text, codes and DSNs, actions kept for
 * cleanup, defer_if_permit/defer_if_reject), the access lookup order for
 * addresses, hosts and networks, DSN splitting and fixing, reverse
 * labels for DNS lists, and whole RCPT checks (relay rule, unlisted
 * users) against a real resolver over texthash maps, and cleanup's
 * side of the actions (the envelope attributes smtpd sends).  smtpd.c is
 * not linked: smtpd_reply() and smtpd_flush() are recorded here.
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

/* The daemons' files are not in a library: compile them in. */
#include "cleanup/cleanup_envelope.c"
#include "global/cidr.h"
#include "global/config.h"
#include "smtpd/smtpd.h"
#include "smtpd/smtpd_access.c"
#include "smtpd/smtpd_check.c"
#include "smtpd/smtpd_check_hooks.c"
#include "smtpd/smtpd_check_table.c"
#include "smtpd/smtpd_dns.c"
#include "smtpd/smtpd_policy.c"

static char tmpdir[64];
static char err[600];
static struct buf replies = BUF_INIT;

/* smtpd.c's reply functions: recorded, one line each. */
void smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    buf_vprintf(&replies, fmt, ap);
    va_end(ap);
    buf_putc(&replies, '\n');
}

void smtpd_flush(struct smtpd_session *s)
{
}

static void write_file(const char *name, const char *text)
{
    char path[128];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static int setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_smtpd_check.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    write_file("vmailbox", "alice@virt.test alice/\n");
    write_file("virtual", "info@alias.test alice@virt.test\n");
    write_file("aliases", "postmaster: root\n");
    write_file("access", "full@example.org REJECT full\n"
                         "user@example.org REJECT bare\n"
                         "example.net REJECT domain\n"
                         ".sub.example.com REJECT parent\n"
                         "postmaster@ REJECT localpart\n"
                         "ext@ REJECT bare localpart\n"
                         "host.example.org REJECT host\n"
                         ".example.org REJECT host parent\n"
                         "192.0.2 REJECT net\n"
                         "2001:db8 REJECT net6\n");
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];

    access_tables_free();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    buf_free(&replies);
    return system(cmd) == 0 ? 0 : -1;
}

static void set(struct config *cfg, const char *name, const char *value)
{
    if (config_set(cfg, name, value, "test", err, sizeof(err)) < 0)
        fail_msg("config_set %s = %s: %s", name, value, err);
}

static struct check_list *parse(const char *text, bool tables)
{
    struct argv words = ARGV_INIT;
    struct check_list *l;

    err[0] = 0;
    if (maps_split_list(text, &words, err, sizeof(err)) < 0)
        return NULL;
    l = check_list_parse("smtpd_recipient_restrictions", &words, tables, err,
                         sizeof(err));
    argv_free(&words);
    return l;
}

/* ------------------------------------------------------------ parsing */

static void test_parse_lists(void **state)
{
    struct check_list *l;

    l = parse("permit_mynetworks, permit_sasl_authenticated, "
              "defer_unauth_destination",
              true);
    assert_non_null(l);
    assert_int_equal(l->n, 3);
    assert_true(guards_relay(l, 0));
    check_list_free(l);

    l = parse("permit_mynetworks REJECT_UNLISTED_RECIPIENT", true);
    assert_non_null(l);
    assert_false(guards_relay(l, 0));
    check_list_free(l);

    /* What follows warn_if_reject only warns: no guard. */
    l = parse("warn_if_reject reject_unauth_destination", true);
    assert_non_null(l);
    assert_false(guards_relay(l, 0));
    check_list_free(l);

    l = parse("reject_rbl_client zen.example=127.0.0.2, sleep 3, "
              "check_policy_service { inet:127.0.0.1:9, timeout=5s, "
              "default_action=DUNNO }",
              true);
    assert_non_null(l);
    assert_int_equal(l->n, 3);
    assert_string_equal(l->v[0].rbl_addr, "127.0.0.2");
    assert_int_equal(l->v[1].number, 3);
    assert_string_equal(l->v[2].policy->endpoint, "inet:127.0.0.1:9");
    assert_int_equal(l->v[2].policy->opts.timeout, 5);
    assert_string_equal(l->v[2].policy->default_action, "DUNNO");
    check_list_free(l);

    assert_null(parse("permit_mynetworks, permit_everyone", true));
    assert_string_equal(err, "smtpd_recipient_restrictions: unknown "
                             "restriction 'permit_everyone'");
    assert_null(parse("check_client_access", true));
    assert_non_null(strstr(err, "check_client_access needs an argument"));
    assert_null(parse("check_client_access permit", true));
    assert_non_null(strstr(err, "need maptype:mapname"));
    assert_null(parse("sleep soon", true));
    assert_non_null(strstr(err, "must be followed by a number"));
    assert_null(parse("sleep 999999", true));
    assert_null(parse("reject_rbl_client bad..zone", true));
    assert_non_null(strstr(err, "bad domain name"));
    assert_null(parse("reject_rbl_client zen.example=1.2.3", true));
    assert_null(parse("check_policy_service localhost", true));
    assert_non_null(strstr(err, "transport:server"));
    assert_null(parse("check_policy_service { inet:h:1, bogus=1 }", true));
    assert_null(parse("permit_mx_backup", true));
    assert_non_null(strstr(err, "'permit_mx_backup' is not implemented"));
    /* Access results may not name tables. */
    assert_null(parse("check_client_access hash:/etc/access", false));
    assert_non_null(strstr(err, "inside an access result"));
    assert_null(parse("hash:/etc/access", false));
    assert_null(parse("check_policy_service inet:h:1", false));
}

/* ------------------------------------------------------------ results */

struct fixture {
    struct config *cfg;
    struct smtpd_config sc;
    struct smtpd_session s;
    struct smtpd_check_state *st;
    struct buf reply;
    struct check_run r;
    struct mailaddr sender, rcpt;
};

static void addr(struct mailaddr *a, const char *path)
{
    size_t used;
    const char *why;

    if (addr_parse_path(path, strlen(path), true, true, a, &used, &why) < 0)
        fail_msg("%s: %s", path, why);
}

static void fixture_open(struct fixture *f, const char *relay,
                         const char *recipient)
{
    char v[200];

    memset(f, 0, sizeof(*f));
    access_tables_free();
    memset(&check_cfg, 0, sizeof(check_cfg));
    f->cfg = config_new();
    set(f->cfg, "myhostname", "mx.example.test");
    set(f->cfg, "mydestination", "example.test, localhost");
    set(f->cfg, "virtual_mailbox_domains", "virt.test");
    set(f->cfg, "virtual_alias_domains", "alias.test");
    set(f->cfg, "relay_domains", "relay.test");
    snprintf(v, sizeof(v), "texthash:%s/vmailbox", tmpdir);
    set(f->cfg, "virtual_mailbox_maps", v);
    snprintf(v, sizeof(v), "texthash:%s/virtual", tmpdir);
    set(f->cfg, "virtual_alias_maps", v);
    snprintf(v, sizeof(v), "texthash:%s/aliases", tmpdir);
    set(f->cfg, "alias_maps", v);
    set(f->cfg, "local_recipient_maps", "$alias_maps");
    f->sc.resolver = resolver_open(f->cfg, err, sizeof(err));
    if (f->sc.resolver == NULL)
        fail_msg("resolver_open: %s", err);
    f->sc.mynetworks =
        cidr_list_parse("10.0.0.0/8 [::1]/128", err, sizeof(err));
    assert_non_null(f->sc.mynetworks);
    f->sc.reject_unlisted_recipient = true;
    f->sc.unknown_local_code = 550;
    f->sc.unknown_virtual_alias_code = 550;
    f->sc.unknown_virtual_mailbox_code = 550;
    f->sc.relay_reject_code = 554;
    f->sc.delay_reject = true;

    check_cfg.smtpd = &f->sc;
    check_cfg.delay_reject = true;
    check_cfg.access_reject_code = 554;
    check_cfg.access_defer_code = 450;
    check_cfg.reject_code = 554;
    check_cfg.defer_code = 450;
    check_cfg.unknown_client_code = 450;
    check_cfg.non_fqdn_code = 504;
    check_cfg.invalid_hostname_code = 501;
    check_cfg.null_key = "<>";
    check_cfg.delimiters = "+";
    check_cfg.classes = htable_new(4);
    check_cfg.client = parse("", true);
    check_cfg.helo = parse("", true);
    check_cfg.sender = parse("", true);
    check_cfg.relay = parse(relay, true);
    check_cfg.recipient = parse(recipient, true);
    assert_non_null(check_cfg.relay);
    assert_non_null(check_cfg.recipient);

    f->s.cfg = &f->sc;
    f->st = xcalloc(1, sizeof(*f->st));
    f->s.check = f->st;
    str_lcpy(f->s.addr, "192.0.2.1", sizeof(f->s.addr));
    str_lcpy(f->s.port, "1234", sizeof(f->s.port));
    str_lcpy(f->st->name, "unknown", sizeof(f->st->name));
    str_lcpy(f->st->reverse_name, "unknown", sizeof(f->st->reverse_name));
    f->s.name = f->st->name;
    snprintf(f->s.namaddr, sizeof(f->s.namaddr), "unknown[192.0.2.1]");
    f->s.esmtp = true;
    addr(&f->sender, "<s@example.org>");
    f->s.xact.active = true;
    f->s.xact.sender = xstrdup("s@example.org");
    f->s.xact.sender_addr = f->sender;
    buf_reset(&replies);

    /* A run as the recipient stage would make it. */
    addr(&f->rcpt, "<a@b.example>");
    run_init(&f->r, &f->s, "RCPT", &f->reply);
    f->r.rcpt = &f->rcpt;
    f->r.recipient = f->rcpt.text;
    f->r.reply_name = f->rcpt.text;
    f->r.reply_class = CHECK_CLASS_RECIPIENT;
}

static void fixture_close(struct fixture *f)
{
    check_list_free(check_cfg.client);
    check_list_free(check_cfg.helo);
    check_list_free(check_cfg.sender);
    check_list_free(check_cfg.relay);
    check_list_free(check_cfg.recipient);
    htable_free(check_cfg.classes, NULL);
    smtpd_check_disconnect(&f->s);
    free(f->s.xact.sender);
    addr_free(&f->sender);
    addr_free(&f->rcpt);
    cidr_list_free(f->sc.mynetworks);
    resolver_close(f->sc.resolver);
    config_free(f->cfg);
    buf_free(&f->reply);
}

/* access_result on a fresh defer state: status and reply. */
static enum check_status result(struct fixture *f, const char *value)
{
    buf_reset(&f->reply);
    f->st->defer_if_permit.active = false;
    f->st->defer_if_reject.active = false;
    return access_result(&f->r, "texthash:/t", value, "key");
}

static void test_access_results(void **state)
{
    struct fixture f;

    fixture_open(&f, "reject_unauth_destination", "");
    assert_int_equal(result(&f, "OK"), CHECK_OK);
    assert_int_equal(result(&f, "relay"), CHECK_OK);
    assert_int_equal(result(&f, "20240101"), CHECK_OK);
    assert_int_equal(result(&f, "DUNNO whatever"), CHECK_DUNNO);

    assert_int_equal(result(&f, "REJECT"), CHECK_REJECT);
    assert_string_equal(f.reply.data, "554 5.7.1 <a@b.example>: Recipient "
                                      "address rejected: Access denied");
    assert_int_equal(result(&f, "reject 5.7.9 go\taway"), CHECK_REJECT);
    assert_string_equal(f.reply.data, "554 5.7.9 <a@b.example>: Recipient "
                                      "address rejected: go away");
    /* An address status fitted to a recipient. */
    assert_int_equal(result(&f, "REJECT 5.1.7 bad"), CHECK_REJECT);
    assert_non_null(strstr(f.reply.data, "554 5.1.3 "));
    assert_int_equal(result(&f, "DEFER"), CHECK_REJECT);
    assert_string_equal(f.reply.data, "450 4.7.1 <a@b.example>: Recipient "
                                      "address rejected: Access denied");
    assert_int_equal(result(&f, "550 no"), CHECK_REJECT);
    assert_string_equal(f.reply.data, "550 5.7.1 <a@b.example>: Recipient "
                                      "address rejected: no");
    assert_int_equal(result(&f, "421 4.4.2 later"), CHECK_REJECT);
    assert_string_equal(f.reply.data, "421 4.4.2 <a@b.example>: Recipient "
                                      "address rejected: later");
    /* A code out of range, a DSN of the wrong class: Postfix's fixes. */
    assert_int_equal(result(&f, "599 5.7.1 x"), CHECK_REJECT);
    assert_int_equal(result(&f, "550 4.7.1 x"), CHECK_REJECT);
    assert_string_equal(f.reply.data, "550 5.7.1 <a@b.example>: Recipient "
                                      "address rejected: x");
    /* 4NN without text is all digits: OK, as in Postfix. */
    assert_int_equal(result(&f, "450"), CHECK_OK);
    /* Reply text is printable and bounded. */
    {
        char big[2000];

        memset(big, 'x', sizeof(big));
        memcpy(big, "REJECT \x01", 8);
        big[sizeof(big) - 1] = 0;
        assert_int_equal(result(&f, big), CHECK_REJECT);
        assert_int_equal(f.reply.len, CHECK_REPLY_MAX);
        assert_null(strchr(f.reply.data, '\x01'));
    }

    assert_int_equal(result(&f, "DEFER_IF_PERMIT"), CHECK_DUNNO);
    assert_true(f.st->defer_if_permit.active);
    assert_string_equal(f.st->defer_if_permit.reason.data,
                        "<a@b.example>: Recipient address rejected: Service "
                        "unavailable");
    assert_int_equal(result(&f, "DEFER_IF_REJECT 4.7.3 maybe"), CHECK_DUNNO);
    assert_true(f.st->defer_if_reject.active);
    /* A 5xx after defer_if_reject becomes its 4xx. */
    assert_int_equal(check_reject(&f.r, CHECK_ERR_POLICY, 554, "5.7.1", "no"),
                     CHECK_REJECT);
    assert_string_equal(f.reply.data, "450 4.7.3 <a@b.example>: Recipient "
                                      "address rejected: maybe");

    /* Actions kept for cleanup. */
    assert_int_equal(result(&f, "HOLD"), CHECK_DUNNO);
    assert_true(f.st->hold);
    assert_int_equal(result(&f, "FILTER smtp:[127.0.0.1]:10025"), CHECK_DUNNO);
    assert_string_equal(f.st->filter, "smtp:[127.0.0.1]:10025");
    assert_int_equal(result(&f, "FILTER nocolon"), CHECK_DUNNO);
    assert_string_equal(f.st->filter, "smtp:[127.0.0.1]:10025");
    assert_int_equal(result(&f, "REDIRECT x@y.example"), CHECK_DUNNO);
    assert_string_equal(f.st->redirect, "x@y.example");
    assert_int_equal(result(&f, "REDIRECT not-an-address"), CHECK_DUNNO);
    assert_string_equal(f.st->redirect, "x@y.example");
    assert_int_equal(result(&f, "BCC c@y.example"), CHECK_DUNNO);
    assert_int_equal(result(&f, "BCC d@y.example"), CHECK_DUNNO);
    assert_string_equal(f.st->bcc, "c@y.example");
    assert_int_equal(result(&f, "PREPEND X-A: 1"), CHECK_DUNNO);
    assert_int_equal(result(&f, "PREPEND X-A: 1"), CHECK_DUNNO);
    assert_int_equal(result(&f, "PREPEND no header"), CHECK_DUNNO);
    assert_int_equal(f.st->prepend.n, 1);
    for (int i = 0; i < CHECK_PREPEND_MAX + 5; i++) {
        char h[32];

        snprintf(h, sizeof(h), "PREPEND X-N: %d", i);
        (void)result(&f, h);
    }
    assert_int_equal(f.st->prepend.n, CHECK_PREPEND_MAX);
    {
        struct buf frame = BUF_INIT;

        smtpd_check_envelope(&f.s, &frame);
        assert_non_null(memmem(frame.data, frame.len, "hold", 4));
        assert_non_null(memmem(frame.data, frame.len, "filter", 6));
        assert_non_null(memmem(frame.data, frame.len, "c@y.example", 11));
        buf_free(&frame);
    }
    smtpd_check_xact_reset(&f.s);
    assert_false(f.st->hold);
    assert_null(f.st->filter);
    assert_int_equal(f.st->prepend.n, 0);
    assert_int_equal(result(&f, "DISCARD"), CHECK_OK);
    assert_true(f.st->discard);
    smtpd_check_xact_reset(&f.s);

    /* Restriction names, and what a result may not do. */
    assert_int_equal(result(&f, "permit"), CHECK_OK);
    assert_int_equal(result(&f, "reject_unauth_destination"), CHECK_REJECT);
    assert_string_equal(f.reply.data,
                        "554 5.7.1 <a@b.example>: Relay access denied");
    assert_int_equal(result(&f, "check_client_access hash:/x"), CHECK_REJECT);
    assert_string_equal(f.reply.data, "451 4.3.5 Server configuration error");
    assert_int_equal(result(&f, "no_such_restriction"), CHECK_REJECT);
    assert_int_equal(result(&f, ", ,"), CHECK_OK);

    /* Without a transaction the message actions are skipped. */
    f.r.sender = NULL;
    assert_int_equal(result(&f, "HOLD"), CHECK_DUNNO);
    assert_false(f.st->hold);
    fixture_close(&f);
}

/* ------------------------------------------------------------ lookups */

static const char *lookup_mail(struct fixture *f, struct check_table *t,
                               const char *path)
{
    struct mailaddr a;
    enum check_status st;

    addr(&a, path);
    buf_reset(&f->reply);
    f->r.reply_name = a.text;
    st = access_mail(&f->r, t, &a);
    f->r.reply_name = f->rcpt.text;
    addr_free(&a);
    if (st != CHECK_REJECT)
        return st == CHECK_OK ? "OK" : "-";
    return strstr(f->reply.data, "rejected: ") + 10;
}

static const char *lookup_client(struct fixture *f, struct check_table *t,
                                 const char *name, const char *ip)
{
    enum check_status st;

    buf_reset(&f->reply);
    st = access_client(&f->r, t, name, ip);
    if (st != CHECK_REJECT)
        return "-";
    return strstr(f->reply.data, "rejected: ")
               ? strstr(f->reply.data, "rejected: ") + 10
               : f->reply.data;
}

static void test_access_order(void **state)
{
    struct fixture f;
    struct check_table *t;
    char spec[128];

    fixture_open(&f, "reject", "");
    snprintf(spec, sizeof(spec), "texthash:%s/access", tmpdir);
    t = access_table_get(spec);
    assert_non_null(t->map);
    assert_false(t->pattern);
    assert_ptr_equal(access_table_get(spec), t); /* shared */

    assert_string_equal(lookup_mail(&f, t, "<full@example.org>"), "full");
    assert_string_equal(lookup_mail(&f, t, "<FULL@EXAMPLE.ORG>"), "full");
    assert_string_equal(lookup_mail(&f, t, "<user+x@example.org>"), "bare");
    assert_string_equal(lookup_mail(&f, t, "<x@example.net>"), "domain");
    assert_string_equal(lookup_mail(&f, t, "<x@a.sub.example.com>"), "parent");
    assert_string_equal(lookup_mail(&f, t, "<x@sub.example.com>"), "-");
    assert_string_equal(lookup_mail(&f, t, "<postmaster@elsewhere.test>"),
                        "localpart");
    assert_string_equal(lookup_mail(&f, t, "<ext+tag@elsewhere.test>"),
                        "bare localpart");
    assert_string_equal(lookup_mail(&f, t, "<x@elsewhere.test>"), "-");

    assert_string_equal(lookup_client(&f, t, "host.example.org", "10.1.1.1"),
                        "host");
    assert_string_equal(lookup_client(&f, t, "a.b.example.org", "10.1.1.1"),
                        "host parent");
    assert_string_equal(lookup_client(&f, t, "unknown", "192.0.2.77"), "net");
    assert_string_equal(lookup_client(&f, t, "unknown", "2001:db8::1"), "net6");
    assert_string_equal(lookup_client(&f, t, "unknown", "198.51.100.1"), "-");

    /* With smtpd_access_maps in parent_domain_matches_subdomains. */
    check_cfg.access_parent_style = true;
    write_file("parent", "example.com REJECT parent style\n");
    snprintf(spec, sizeof(spec), "texthash:%s/parent", tmpdir);
    t = access_table_get(spec);
    assert_string_equal(lookup_client(&f, t, "a.example.com", "10.1.1.1"),
                        "parent style");
    check_cfg.access_parent_style = false;
    assert_string_equal(lookup_client(&f, t, "a.example.com", "10.1.1.1"), "-");

    /* Pattern tables see whole strings only. */
    write_file("pat.cidr", "192.0.2.0/24 REJECT cidr\n");
    snprintf(spec, sizeof(spec), "cidr:%s/pat.cidr", tmpdir);
    t = access_table_get(spec);
    assert_true(t->pattern);
    assert_string_equal(lookup_client(&f, t, "unknown", "192.0.2.9"), "cidr");

    /* A table that did not open: 451 4.3.5, and the error is kept. */
    t = access_table_get("hash:/nonexistent/table");
    assert_null(t->map);
    assert_non_null(t->error);
    assert_string_equal(lookup_client(&f, t, "unknown", "192.0.2.9"),
                        "451 4.3.5 Server configuration error");

    /* Source routes: an OK for a recipient is not trusted. */
    write_file("ok", "relay.test OK\n");
    snprintf(spec, sizeof(spec), "texthash:%s/ok", tmpdir);
    t = access_table_get(spec);
    assert_string_equal(lookup_mail(&f, t, "<x@relay.test>"), "OK");
    assert_string_equal(lookup_mail(&f, t, "<x%evil@relay.test>"), "-");
    fixture_close(&f);
}

/* ------------------------------------------------------------ pieces */

static void test_dsn_pieces(void **state)
{
    char dsn[16];
    const char *text;

    dsn_split("5.7.9 go away", "5.7.1", dsn, &text);
    assert_string_equal(dsn, "5.7.9");
    assert_string_equal(text, "go away");
    dsn_split("5.7 nope", "5.7.1", dsn, &text);
    assert_string_equal(dsn, "5.7.1");
    assert_string_equal(text, "5.7 nope");
    dsn_split("4.1.1234 x", "4.7.1", dsn, &text);
    assert_string_equal(dsn, "4.7.1");
    dsn_split("", "4.7.1", dsn, &text);
    assert_string_equal(text, "");

    str_lcpy(dsn, "5.1.1", sizeof(dsn));
    dsn_fix(dsn, CHECK_CLASS_SENDER);
    assert_string_equal(dsn, "5.1.0");
    str_lcpy(dsn, "4.1.8", sizeof(dsn));
    dsn_fix(dsn, CHECK_CLASS_RECIPIENT);
    assert_string_equal(dsn, "4.1.2");
    str_lcpy(dsn, "5.1.1", sizeof(dsn));
    dsn_fix(dsn, CHECK_CLASS_CLIENT);
    assert_string_equal(dsn, "5.0.0");
    str_lcpy(dsn, "5.7.1", sizeof(dsn));
    dsn_fix(dsn, CHECK_CLASS_SENDER);
    assert_string_equal(dsn, "5.7.1");
}

static void test_reverse_labels(void **state)
{
    char out[80];
    int family;

    assert_true(dns_reverse_labels("192.0.2.1", out, sizeof(out), &family));
    assert_string_equal(out, "1.2.0.192");
    assert_int_equal(family, AF_INET);
    assert_true(
        dns_reverse_labels("::ffff:127.0.0.2", out, sizeof(out), &family));
    assert_string_equal(out, "2.0.0.127");
    assert_true(dns_reverse_labels("2001:db8::1", out, sizeof(out), &family));
    assert_int_equal(family, AF_INET6);
    assert_string_equal(out, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
                             "0.8.b.d.0.1.0.0.2");
    assert_false(dns_reverse_labels("not-an-ip", out, sizeof(out), &family));
    assert_false(dns_reverse_labels("2001:db8::1", out, 10, &family));
}

/* ------------------------------------------------------------ RCPT */

/* The whole RCPT check: reply line or "" when accepted. */
static const char *rcpt(struct fixture *f, const char *ip, const char *path)
{
    struct mailaddr a;
    int rc;

    addr(&a, path);
    str_lcpy(f->s.addr, ip, sizeof(f->s.addr));
    buf_reset(&replies);
    rc = smtpd_check_rcpt(&f->s, &a, "RCPT");
    addr_free(&a);
    if (rc == 0)
        return "";
    buf_truncate(&replies, replies.len - 1); /* the newline */
    return replies.data;
}

static void test_default_relay_rule(void **state)
{
    struct fixture f;

    fixture_open(&f,
                 "permit_mynetworks, permit_sasl_authenticated, "
                 "defer_unauth_destination",
                 "");
    assert_string_equal(rcpt(&f, "192.0.2.1", "<alice@virt.test>"), "");
    assert_string_equal(rcpt(&f, "192.0.2.1", "<ALICE@virt.test>"), "");
    assert_string_equal(rcpt(&f, "192.0.2.1", "<info@alias.test>"), "");
    assert_string_equal(rcpt(&f, "192.0.2.1", "<postmaster@example.test>"), "");
    assert_string_equal(rcpt(&f, "192.0.2.1", "<x@elsewhere.test>"),
                        "454 4.7.1 <x@elsewhere.test>: Relay access denied");
    assert_string_equal(rcpt(&f, "192.0.2.1", "<x@[192.0.2.9]>"),
                        "454 4.7.1 <x@[192.0.2.9]>: Relay access denied");
    assert_string_equal(rcpt(&f, "10.1.2.3", "<x@elsewhere.test>"), "");
    assert_string_equal(rcpt(&f, "::1", "<x@elsewhere.test>"), "");
    assert_string_equal(rcpt(&f, "192.0.2.1", "<x@relay.test>"), "");
    assert_non_null(strstr(rcpt(&f, "192.0.2.1", "<\"x@evil\"@relay.test>"),
                           "454 4.7.1 <"));
    assert_string_equal(rcpt(&f, "192.0.2.1", "<x%evil@relay.test>"),
                        "454 4.7.1 <x%evil@relay.test>: Relay access denied");
    /* Authenticated clients relay. */
    f.s.sasl_username = "someone";
    assert_string_equal(rcpt(&f, "192.0.2.1", "<x@elsewhere.test>"), "");
    f.s.sasl_username = NULL;
    /* Unknown users in each class, even from mynetworks. */
    assert_string_equal(rcpt(&f, "10.1.2.3", "<bob@virt.test>"),
                        "550 5.1.1 <bob@virt.test>: Recipient address "
                        "rejected: User unknown in virtual mailbox table");
    assert_string_equal(rcpt(&f, "192.0.2.1", "<bob@alias.test>"),
                        "550 5.1.1 <bob@alias.test>: Recipient address "
                        "rejected: User unknown in virtual alias table");
    assert_string_equal(rcpt(&f, "192.0.2.1", "<bob@example.test>"),
                        "550 5.1.1 <bob@example.test>: Recipient address "
                        "rejected: User unknown in local recipient table");
    /* A 4xx unknown-user code gives a 4.x.x enhanced code. */
    f.sc.unknown_virtual_mailbox_code = 450;
    assert_string_equal(rcpt(&f, "192.0.2.1", "<bob@virt.test>"),
                        "450 4.1.1 <bob@virt.test>: Recipient address "
                        "rejected: User unknown in virtual mailbox table");
    f.sc.reject_unlisted_recipient = false;
    assert_string_equal(rcpt(&f, "192.0.2.1", "<bob@virt.test>"), "");
    fixture_close(&f);
}

static void test_lists_and_stages(void **state)
{
    struct fixture f;

    /* A permit in the relay list does not skip the recipient list. */
    fixture_open(&f, "permit", "reject");
    assert_string_equal(rcpt(&f, "10.0.0.1", "<alice@virt.test>"),
                        "554 5.7.1 <alice@virt.test>: Recipient address "
                        "rejected: Access denied");
    fixture_close(&f);

    /* Delayed client checks at RCPT; defer_if_permit carried along. */
    fixture_open(&f, "reject_unauth_destination", "");
    check_list_free(check_cfg.client);
    check_cfg.client = parse("defer_if_permit", true);
    assert_string_equal(rcpt(&f, "192.0.2.1", "<alice@virt.test>"),
                        "450 4.7.0 <unknown[192.0.2.1]>: Client host "
                        "rejected: defer_if_permit requested");
    check_list_free(check_cfg.client);
    check_cfg.client = parse("warn_if_reject reject, permit", true);
    assert_string_equal(rcpt(&f, "192.0.2.1", "<alice@virt.test>"), "");
    check_list_free(check_cfg.client);
    check_cfg.client = parse("", true);
    /* Sender checks with the sender of the transaction. */
    check_list_free(check_cfg.sender);
    check_cfg.sender = parse("reject_non_fqdn_sender", true);
    assert_string_equal(rcpt(&f, "192.0.2.1", "<alice@virt.test>"), "");
    addr_free(&f.s.xact.sender_addr);
    addr(&f.s.xact.sender_addr, "<joe@host>");
    assert_string_equal(rcpt(&f, "192.0.2.1", "<alice@virt.test>"),
                        "504 5.5.2 <joe@host>: Sender address rejected: "
                        "need fully-qualified address");
    f.sender = f.s.xact.sender_addr;
    /* DISCARD accepts every recipient after it. */
    check_list_free(check_cfg.sender);
    check_cfg.sender = parse("", true);
    f.st->discard = true;
    assert_string_equal(rcpt(&f, "192.0.2.1", "<nobody@virt.test>"), "");
    f.st->discard = false;
    fixture_close(&f);
}

static void test_unlisted_sender(void **state)
{
    struct fixture f;

    fixture_open(&f, "reject_unauth_destination", "");
    f.sc.reject_unlisted_sender = true;
    addr_free(&f.s.xact.sender_addr);
    addr(&f.s.xact.sender_addr, "<bob@virt.test>");
    f.sender = f.s.xact.sender_addr;
    assert_string_equal(rcpt(&f, "192.0.2.1", "<alice@virt.test>"),
                        "550 5.1.0 <bob@virt.test>: Sender address rejected: "
                        "User unknown in virtual mailbox table");
    addr_free(&f.s.xact.sender_addr);
    addr(&f.s.xact.sender_addr, "<>");
    f.sender = f.s.xact.sender_addr;
    assert_string_equal(rcpt(&f, "192.0.2.1", "<alice@virt.test>"), "");
    fixture_close(&f);
}

/* ------------------------------------------------------------ cleanup */

static int envelope(const char *name, const char *value,
                    struct cleanup_envelope *env)
{
    struct attr_list l = ATTR_LIST_INIT;
    const char *why;
    int rc;

    attr_list_add(&l, "request", "submit", 6);
    attr_list_add(&l, "sender", "a@example.org", 13);
    attr_list_add(&l, "rcpt", "b@example.test", 14);
    if (name != NULL)
        attr_list_add(&l, name, value, strlen(value));
    rc = cleanup_envelope_parse(&l, time(NULL), env, &why);
    attr_list_free(&l);
    return rc;
}

static void test_cleanup_envelope_actions(void **state)
{
    struct cleanup_envelope env;

    assert_int_equal(envelope("hold", "1", &env), 0);
    assert_true(env.hold);
    assert_false(env.discard);
    cleanup_envelope_free(&env);
    assert_int_equal(envelope("discard", "1", &env), 0);
    assert_true(env.discard);
    cleanup_envelope_free(&env);
    assert_int_equal(envelope("filter", "smtp:[127.0.0.1]:10025", &env), 0);
    assert_string_equal(env.filter, "smtp:[127.0.0.1]:10025");
    cleanup_envelope_free(&env);
    assert_int_equal(envelope("redirect", "c@example.test", &env), 0);
    assert_string_equal(env.redirect, "c@example.test");
    cleanup_envelope_free(&env);
    assert_int_equal(envelope("prepend", "X-Check: yes", &env), 0);
    assert_int_equal(env.prepend.n, 1);
    cleanup_envelope_free(&env);

    /* smtpd is not trusted more than a client. */
    assert_int_equal(envelope("hold", "yes", &env), -1);
    cleanup_envelope_free(&env);
    assert_int_equal(envelope("filter", "no colon", &env), -1);
    cleanup_envelope_free(&env);
    assert_int_equal(envelope("filter", "bad/transport:x", &env), -1);
    cleanup_envelope_free(&env);
    assert_int_equal(envelope("redirect", "not an address", &env), -1);
    cleanup_envelope_free(&env);
    assert_int_equal(envelope("prepend", "no header here", &env), -1);
    cleanup_envelope_free(&env);
    assert_int_equal(envelope("prepend", "X-Bad: line\nInjected: yes", &env),
                     -1);
    cleanup_envelope_free(&env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_lists),
        cmocka_unit_test(test_access_results),
        cmocka_unit_test(test_access_order),
        cmocka_unit_test(test_dsn_pieces),
        cmocka_unit_test(test_reverse_labels),
        cmocka_unit_test(test_default_relay_rule),
        cmocka_unit_test(test_lists_and_stages),
        cmocka_unit_test(test_unlisted_sender),
        cmocka_unit_test(test_cleanup_envelope_actions),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
