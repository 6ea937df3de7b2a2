/*
 * test_smtpd_check - smtpd's restriction lists: which names start-up
 * accepts or refuses, and the reply each recipient gets from the default
 * relay rule, reject_unauth_destination and the unlisted-user checks,
 * against a real resolver over texthash maps.
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

/* The daemon's files are not in a library: compile them in. */
#include "global/cidr.h"
#include "global/config.h"
#include "smtpd/smtpd.h"
#include "smtpd/smtpd_check.c"

static char tmpdir[64];
static char err[512];

static int setup(void **state)
{
    char path[128];
    FILE *fp;

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_smtpd_check.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/vmailbox", tmpdir);
    if ((fp = fopen(path, "w")) == NULL)
        return -1;
    fputs("alice@virt.test alice/\n", fp);
    fclose(fp);
    snprintf(path, sizeof(path), "%s/virtual", tmpdir);
    if ((fp = fopen(path, "w")) == NULL)
        return -1;
    fputs("info@alias.test alice@virt.test\n", fp);
    fclose(fp);
    snprintf(path, sizeof(path), "%s/aliases", tmpdir);
    if ((fp = fopen(path, "w")) == NULL)
        return -1;
    fputs("postmaster: root\n", fp);
    fclose(fp);
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void set(struct config *cfg, const char *name, const char *value)
{
    if (config_set(cfg, name, value, "test", err, sizeof(err)) < 0)
        fail_msg("config_set %s = %s: %s", name, value, err);
}

static struct smtpd_restrictions *parse_list(const char *text)
{
    struct argv list = ARGV_INIT;
    struct smtpd_restrictions *r;

    argv_split(&list, text, ", \t");
    r = smtpd_restrictions_parse("smtpd_recipient_restrictions", &list, err,
                                 sizeof(err));
    argv_free(&list);
    return r;
}

static void test_parse_names(void **state)
{
    struct smtpd_restrictions *r;

    r = parse_list("permit_mynetworks, permit_sasl_authenticated, "
                   "defer_unauth_destination");
    assert_non_null(r);
    assert_true(smtpd_restrictions_guard_relay(r));
    smtpd_restrictions_free(r);

    r = parse_list("permit_mynetworks REJECT_UNLISTED_RECIPIENT");
    assert_non_null(r);
    assert_false(smtpd_restrictions_guard_relay(r));
    smtpd_restrictions_free(r);

    r = parse_list("");
    assert_non_null(r);
    assert_false(smtpd_restrictions_guard_relay(r));
    smtpd_restrictions_free(r);

    assert_null(parse_list("permit_mynetworks, permit_everyone"));
    assert_string_equal(err, "smtpd_recipient_restrictions: unknown "
                             "restriction 'permit_everyone'");
    assert_null(parse_list("check_client_access hash:/etc/access"));
    assert_non_null(strstr(err, "'check_client_access' is not implemented"));
    assert_null(parse_list("reject_rbl_client zen.example"));
    assert_non_null(strstr(err, "'reject_rbl_client' is not implemented"));
    assert_null(parse_list("hash:/etc/postfix/access"));
    assert_non_null(strstr(err, "access table 'hash:/etc/postfix/access'"));
}

struct fixture {
    struct config *cfg;
    struct smtpd_config sc;
    struct buf reply;
};

static void fixture_open(struct fixture *f, const char *relay,
                         const char *recipient)
{
    char v[200];

    memset(f, 0, sizeof(*f));
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
    f->sc.relay_restrictions = parse_list(relay);
    f->sc.recipient_restrictions = parse_list(recipient);
    assert_non_null(f->sc.relay_restrictions);
    assert_non_null(f->sc.recipient_restrictions);
    f->sc.reject_unlisted_recipient = true;
    f->sc.unknown_local_code = 550;
    f->sc.unknown_virtual_alias_code = 550;
    f->sc.unknown_virtual_mailbox_code = 550;
    f->sc.relay_reject_code = 554;
}

static void fixture_close(struct fixture *f)
{
    smtpd_restrictions_free(f->sc.relay_restrictions);
    smtpd_restrictions_free(f->sc.recipient_restrictions);
    cidr_list_free(f->sc.mynetworks);
    resolver_close(f->sc.resolver);
    config_free(f->cfg);
    buf_free(&f->reply);
}

/* Check addr from client ip; returns the code, reply text in f->reply. */
static int check(struct fixture *f, const char *ip, const char *path)
{
    struct smtpd_check_client client = {ip, false};
    struct mailaddr a;
    size_t used;
    const char *why;
    int code;

    if (addr_parse_path(path, strlen(path), false, true, &a, &used, &why) < 0)
        fail_msg("%s: %s", path, why);
    code = smtpd_check_rcpt(&f->sc, &client, &a, &f->reply);
    addr_free(&a);
    return code;
}

static void test_default_relay_rule(void **state)
{
    struct fixture f;

    fixture_open(&f,
                 "permit_mynetworks, permit_sasl_authenticated, "
                 "defer_unauth_destination",
                 "");
    /* Our domains, known users: accepted from anywhere. */
    assert_int_equal(check(&f, "192.0.2.1", "<alice@virt.test>"), 0);
    assert_int_equal(check(&f, "192.0.2.1", "<ALICE@virt.test>"), 0);
    assert_int_equal(check(&f, "192.0.2.1", "<info@alias.test>"), 0);
    assert_int_equal(check(&f, "192.0.2.1", "<postmaster@example.test>"), 0);
    /* Foreign domain from outside mynetworks: 454 (defer). */
    assert_int_equal(check(&f, "192.0.2.1", "<x@elsewhere.test>"), 454);
    assert_string_equal(f.reply.data,
                        "454 4.7.1 <x@elsewhere.test>: Relay access denied");
    assert_int_equal(check(&f, "192.0.2.1", "<x@[192.0.2.9]>"), 454);
    /* ... and from inside: relayed. */
    assert_int_equal(check(&f, "10.1.2.3", "<x@elsewhere.test>"), 0);
    assert_int_equal(check(&f, "::1", "<x@elsewhere.test>"), 0);
    /* relay_domains are ours to relay to, without routing tricks. */
    assert_int_equal(check(&f, "192.0.2.1", "<x@relay.test>"), 0);
    assert_int_equal(check(&f, "192.0.2.1", "<\"x@evil\"@relay.test>"), 454);
    assert_int_equal(check(&f, "192.0.2.1", "<x%evil@relay.test>"), 454);
    /* Unknown users in each class, even from mynetworks. */
    assert_int_equal(check(&f, "10.1.2.3", "<bob@virt.test>"), 550);
    assert_string_equal(f.reply.data,
                        "550 5.1.1 <bob@virt.test>: Recipient address "
                        "rejected: User unknown in virtual mailbox table");
    assert_int_equal(check(&f, "192.0.2.1", "<bob@alias.test>"), 550);
    assert_string_equal(f.reply.data,
                        "550 5.1.1 <bob@alias.test>: Recipient address "
                        "rejected: User unknown in virtual alias table");
    assert_int_equal(check(&f, "192.0.2.1", "<bob@example.test>"), 550);
    assert_string_equal(f.reply.data,
                        "550 5.1.1 <bob@example.test>: Recipient address "
                        "rejected: User unknown in local recipient table");
    fixture_close(&f);
}

static void test_reject_unauth_and_lists(void **state)
{
    struct fixture f;

    fixture_open(&f, "", "permit_mynetworks, reject_unauth_destination");
    assert_int_equal(check(&f, "192.0.2.1", "<x@elsewhere.test>"), 554);
    assert_string_equal(f.reply.data,
                        "554 5.7.1 <x@elsewhere.test>: Relay access denied");
    assert_int_equal(check(&f, "10.0.0.1", "<x@elsewhere.test>"), 0);
    fixture_close(&f);

    /* A permit in the relay list does not skip the recipient list. */
    fixture_open(&f, "permit", "reject");
    assert_int_equal(check(&f, "10.0.0.1", "<alice@virt.test>"), 554);
    assert_string_equal(f.reply.data,
                        "554 5.7.1 <alice@virt.test>: Recipient address "
                        "rejected: Access denied");
    fixture_close(&f);

    /* Without the implicit unlisted check, unknown users pass. */
    fixture_open(&f, "reject_unauth_destination", "");
    f.sc.reject_unlisted_recipient = false;
    assert_int_equal(check(&f, "192.0.2.1", "<bob@virt.test>"), 0);
    fixture_close(&f);

    /* A 4xx unknown-user code gives a 4.x.x enhanced code. */
    fixture_open(&f, "reject_unauth_destination", "");
    f.sc.unknown_virtual_mailbox_code = 450;
    assert_int_equal(check(&f, "192.0.2.1", "<bob@virt.test>"), 450);
    assert_non_null(strstr(f.reply.data, "450 4.1.1 <bob@virt.test>"));
    fixture_close(&f);
}

static void test_unlisted_sender(void **state)
{
    struct smtpd_check_client client = {"192.0.2.1", false};
    struct fixture f;
    struct mailaddr a;
    size_t used;
    const char *why;

    fixture_open(&f, "reject_unauth_destination", "");
    f.sc.reject_unlisted_sender = true;
    assert_int_equal(
        addr_parse_path("<bob@virt.test>", 15, true, false, &a, &used, &why),
        0);
    assert_int_equal(smtpd_check_sender(&f.sc, &client, &a, &f.reply), 550);
    assert_string_equal(f.reply.data,
                        "550 5.1.0 <bob@virt.test>: Sender address rejected: "
                        "User unknown in virtual mailbox table");
    addr_free(&a);
    assert_int_equal(addr_parse_path("<>", 2, true, false, &a, &used, &why), 0);
    assert_int_equal(smtpd_check_sender(&f.sc, &client, &a, &f.reply), 0);
    addr_free(&a);
    assert_int_equal(
        addr_parse_path("<x@elsewhere.test>", 18, true, false, &a, &used, &why),
        0);
    assert_int_equal(smtpd_check_sender(&f.sc, &client, &a, &f.reply), 0);
    addr_free(&a);
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_names),
        cmocka_unit_test(test_default_relay_rule),
        cmocka_unit_test(test_reject_unauth_and_lists),
        cmocka_unit_test(test_unlisted_sender),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
