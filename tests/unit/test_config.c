/*
 * test_config - main.cf parsing, expansion and validation (global/config.c,
 * params.c, postfix_names.c).  Each test writes a main.cf (and sometimes a
 * master.cf) into a fresh temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "global/config.h"
#include "util/argv.h"
#include "util/buf.h"
#include "util/mem.h"

struct fixture {
    char dir[64];
    char maincf[128];
    char mastercf[128];
    struct config *cfg;
    struct argv warnings;
    char err[1024];
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/test_config.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->maincf, sizeof(f->maincf), "%s/main.cf", f->dir);
    snprintf(f->mastercf, sizeof(f->mastercf), "%s/master.cf", f->dir);
    f->cfg = config_new();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    config_free(f->cfg);
    argv_free(&f->warnings);
    unlink(f->maincf);
    unlink(f->mastercf);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

/* Write main.cf and load it; returns config_load's result. */
static int load(struct fixture *f, const char *text)
{
    write_file(f->maincf, text);
    f->err[0] = 0;
    return config_load(f->cfg, f->dir, &f->warnings, f->err, sizeof(f->err));
}

/* The expected "path:line: message" for this fixture. */
static void assert_err_at(struct fixture *f, int line, const char *msg)
{
    char want[512];

    snprintf(want, sizeof(want), "%s:%d: %s", f->maincf, line, msg);
    if (strstr(f->err, want) != f->err) {
        print_error("error   '%s'\nexpected '%s...'\n", f->err, want);
        fail();
    }
}

static void test_table_sorted_and_defaults_valid(void **state)
{
    (void)param_find(""); /* the table is sorted at first use */
    struct fixture *f = *state;

    for (size_t i = 1; i < param_table_count; i++)
        assert_true(strcmp(param_table[i - 1].name, param_table[i].name) < 0);
    for (size_t i = 0; i < param_table_count; i++) {
        assert_ptr_equal(param_find(param_table[i].name), &param_table[i]);
        assert_non_null(param_table[i].doc);
        assert_true(param_table[i].def != NULL ||
                    param_table[i].compute != NULL);
    }
    assert_null(param_find("no_such_parameter"));
    assert_null(param_find(""));
    /* Every default, once expanded, satisfies its own type. */
    assert_int_equal(config_check(f->cfg, f->err, sizeof(f->err)), 0);
    assert_string_equal(config_str(f->cfg, "queue_directory"),
                        "/var/spool/posthorn");
    assert_int_equal(config_int(f->cfg, "smtpd_recipient_limit"), 1000);
    assert_int_equal(config_time(f->cfg, "max_idle"), 100);
    assert_int_equal(config_time(f->cfg, "maximal_queue_lifetime"), 5 * 86400);
    assert_int_equal(config_size(f->cfg, "message_size_limit"), 10240000);
    assert_false(config_bool(f->cfg, "smtpd_helo_required"));
    assert_true(config_bool(f->cfg, "smtpd_reject_unlisted_recipient"));
    assert_string_equal(config_str(f->cfg, "daemon_directory"), "");
}

static void test_postfix_names(void **state)
{
    (void)state;
    assert_true(postfix_param_known("smtpd_tls_cert_file"));
    assert_true(postfix_param_known("smtpd_tls_CAfile"));
    assert_true(postfix_param_known("2bounce_notice_recipient"));
    assert_true(postfix_param_known("virtual_transport"));
    assert_false(postfix_param_known("myhostnme"));
    assert_false(postfix_param_known(""));
    assert_false(postfix_param_known("smtpd_tls_cafile"));
}

static void test_syntax(void **state)
{
    struct fixture *f = *state;
    const struct argv *l;

    assert_int_equal(load(f, "# comment\n"
                             "\n"
                             "   \n"
                             "myhostname=mail.example.test\n"
                             "mydomain    =    example.test   \n"
                             "  # an indented comment is a comment\n"
                             "mydestination = $myhostname,\n"
                             "    localhost.$mydomain,\n"
                             "# comments do not end a continued value\n"
                             "\tlocalhost\n"
                             "smtpd_banner = first\r\n"
                             "smtpd_banner = $myhostname says # not a comment\n"
                             "relayhost =\n"),
                     0);
    assert_int_equal(f->warnings.n, 0);
    assert_string_equal(config_raw(f->cfg, "mydomain"), "example.test");
    assert_string_equal(config_raw(f->cfg, "mydestination"),
                        "$myhostname, localhost.$mydomain, localhost");
    /* duplicate: last wins, and its line is the one remembered */
    assert_string_equal(config_str(f->cfg, "smtpd_banner"),
                        "mail.example.test says # not a comment");
    {
        char want[160];
        snprintf(want, sizeof(want), "%s:12", f->maincf);
        assert_string_equal(config_origin(f->cfg, "smtpd_banner"), want);
    }
    assert_string_equal(config_str(f->cfg, "relayhost"), "");
    assert_true(config_is_set(f->cfg, "relayhost"));
    assert_false(config_is_set(f->cfg, "relay_domains"));
    l = config_list(f->cfg, "mydestination");
    assert_int_equal(l->n, 3);
    assert_string_equal(l->v[0], "mail.example.test");
    assert_string_equal(l->v[1], "localhost.example.test");
    assert_string_equal(l->v[2], "localhost");
    assert_string_equal(config_dir(f->cfg), f->dir);
    assert_int_equal(config_check(f->cfg, f->err, sizeof(f->err)), 0);
}

static void test_load_file_path(void **state)
{
    struct fixture *f = *state;

    write_file(f->maincf, "mail_owner = nobody\n");
    assert_int_equal(
        config_load(f->cfg, f->maincf, NULL, f->err, sizeof(f->err)), 0);
    assert_string_equal(config_dir(f->cfg), f->dir);
    assert_string_equal(config_str(f->cfg, "mail_owner"), "nobody");
    assert_string_equal(config_str(f->cfg, "config_directory"), f->dir);
}

static void test_missing_file(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(config_load(f->cfg, f->dir, NULL, f->err, sizeof(f->err)),
                     -1);
    assert_non_null(strstr(f->err, "main.cf: cannot read"));
}

static void test_syntax_errors(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load(f, "myhostname = a.b\nthis line has no equals\n"),
                     -1);
    assert_err_at(f, 2, "missing '='");

    assert_int_equal(load(f, "  indented = 1\n"), -1);
    assert_err_at(f, 1, "continuation line");

    assert_int_equal(load(f, "my-hostname = x\n"), -1);
    assert_err_at(f, 1, "bad parameter name 'my-hostname'");

    assert_int_equal(load(f, " = x\n"), -1);
    assert_err_at(f, 1, "continuation line");

    assert_int_equal(load(f, "\n= x\n"), -1);
    assert_err_at(f, 2, "bad parameter name ''");

    {
        FILE *fp = fopen(f->maincf, "w");
        assert_non_null(fp);
        fwrite("mail_name = x\nmail_owner = a\0b\n", 1, 31, fp);
        fclose(fp);
    }
    assert_int_equal(config_load(f->cfg, f->dir, NULL, f->err, sizeof(f->err)),
                     -1);
    assert_err_at(f, 2, "NUL byte");
}

static void test_unknown_name(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load(f, "# typo below\n"
                             "mail_owner = nobody\n"
                             "myhostnme = mail.example.test\n"),
                     -1);
    assert_err_at(f, 3, "unknown parameter 'myhostnme'");
}

static void test_postfix_known_warning(void **state)
{
    struct fixture *f = *state;
    char want[256];

    assert_int_equal(load(f, "mail_owner = nobody\n"
                             "smtpd_tls_dh1024_param_file = /etc/ssl/dh.pem\n"
                             "mytransport_destination_concurrency_limit = 3\n"),
                     0);
    assert_int_equal(f->warnings.n, 2);
    snprintf(want, sizeof(want),
             "%s:2: parameter 'smtpd_tls_dh1024_param_file' is a Postfix "
             "parameter "
             "posthorn does not implement; ignored",
             f->maincf);
    assert_string_equal(f->warnings.v[0], want);
    assert_non_null(strstr(f->warnings.v[1],
                           "'mytransport_destination_concurrency_limit'"));
    /* kept, so $references and `conf -n` still see it */
    assert_string_equal(config_raw(f->cfg, "smtpd_tls_dh1024_param_file"),
                        "/etc/ssl/dh.pem");
    assert_null(config_raw(f->cfg, "smtpd_tls_eecdh_grade"));
    assert_int_equal(config_check(f->cfg, f->err, sizeof(f->err)), 0);
}

static void test_not_yet_warning(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load(f, "biff = NO\ndelay_warning_time = 0s\n"
                             "mynetworks_style = subnet\n"),
                     0);
    assert_int_equal(f->warnings.n, 1);
    assert_non_null(strstr(f->warnings.v[0], "'mynetworks_style' is not "
                                             "implemented yet"));
    assert_non_null(strstr(f->warnings.v[0], ":3: "));
}

static void test_user_defined_referenced(void **state)
{
    struct fixture *f = *state;
    const struct argv *l;

    write_file(f->mastercf,
               "submission inet n - n - - smtpd\n"
               "  -o smtpd_client_restrictions=$mua_client_restrictions\n");
    assert_int_equal(
        load(f, "my_networks_extra = 10.0.0.0/8\n"
                "mynetworks = 127.0.0.0/8 $my_networks_extra\n"
                "mua_client_restrictions = permit_sasl_authenticated, "
                "reject\n"),
        0);
    assert_int_equal(f->warnings.n, 0);
    l = config_list(f->cfg, "mynetworks");
    assert_int_equal(l->n, 2);
    assert_string_equal(l->v[1], "10.0.0.0/8");
    assert_int_equal(config_set(f->cfg, "smtpd_client_restrictions",
                                "$mua_client_restrictions", "test -o", f->err,
                                sizeof(f->err)),
                     0);
    l = config_list(f->cfg, "smtpd_client_restrictions");
    assert_int_equal(l->n, 2);
    assert_string_equal(l->v[0], "permit_sasl_authenticated");
    assert_int_equal(config_check(f->cfg, f->err, sizeof(f->err)), 0);
}

static void test_expansion(void **state)
{
    struct fixture *f = *state;
    char *s;

    assert_int_equal(
        load(f, "myhostname = mail.example.test\n"
                "mydomain = ${myhostname}\n"
                "myorigin = $(mydomain)\n"
                "smtpd_banner = $myhostname ESMTP $$5 $mail_name$\n"
                "relayhost = ${relay_domains?{has relay}:{no relay}}\n"
                "recipient_delimiter = ${relay_domains:+}\n"
                "mail_name = ${myorigin?found $myorigin}\n"
                "syslog_name = ${mynetworks_style?{ $mail_version }}x\n"
                "data_directory = $(relay_domains:{/var/empty})\n"
                "command_directory = $virtual_maps\n"),
        0);
    assert_int_equal(config_check(f->cfg, f->err, sizeof(f->err)), 0);
    assert_string_equal(config_str(f->cfg, "myorigin"), "mail.example.test");
    assert_string_equal(config_str(f->cfg, "mail_name"),
                        "found mail.example.test");
    assert_string_equal(config_str(f->cfg, "smtpd_banner"),
                        "mail.example.test ESMTP $5 found mail.example.test$");
    assert_string_equal(config_str(f->cfg, "relayhost"), "no relay");
    assert_string_equal(config_str(f->cfg, "recipient_delimiter"), "+");
    assert_string_equal(config_str(f->cfg, "syslog_name"), "0.1x");
    assert_string_equal(config_str(f->cfg, "data_directory"), "/var/empty");
    assert_string_equal(config_str(f->cfg, "command_directory"), "");
    /* raw values stay as written */
    assert_string_equal(config_raw(f->cfg, "myorigin"), "$(mydomain)");

    s = config_expand(f->cfg, "postmaster@$mydomain ${no_such_thing}.");
    assert_string_equal(s, "postmaster@mail.example.test .");
    free(s);
}

static void test_expansion_errors(void **state)
{
    struct fixture *f = *state;

    /* an undefined $name is a typo: config_check says so with file:line */
    assert_int_equal(load(f, "mail_owner = nobody\n"
                             "smtpd_banner = $myhostnme ESMTP\n"),
                     0);
    assert_string_equal(config_str(f->cfg, "smtpd_banner"), " ESMTP");
    assert_int_equal(config_check(f->cfg, f->err, sizeof(f->err)), -1);
    assert_err_at(f, 2,
                  "parameter 'smtpd_banner': $myhostnme is not a known "
                  "parameter");

    config_free(f->cfg);
    f->cfg = config_new();
    assert_int_equal(load(f, "smtpd_banner = ${myhostname\n"), 0);
    assert_int_equal(config_check(f->cfg, f->err, sizeof(f->err)), -1);
    assert_err_at(f, 1, "parameter 'smtpd_banner': missing '}'");

    config_free(f->cfg);
    f->cfg = config_new();
    assert_int_equal(load(f, "smtpd_banner = ${{$a} == {b} ? {c}}\n"), 0);
    assert_int_equal(config_check(f->cfg, f->err, sizeof(f->err)), -1);
    assert_non_null(strstr(f->err, "not supported"));

    config_free(f->cfg);
    f->cfg = config_new();
    assert_int_equal(load(f, "relayhost = ${mail_name?{a}x}\n"), 0);
    assert_int_equal(config_check(f->cfg, f->err, sizeof(f->err)), -1);
    assert_err_at(f, 1, "parameter 'relayhost': unexpected text after '}'");
}

static void test_loops(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load(f, "mail_owner = nobody\n"
                             "myorigin = $mydomain\n"
                             "mydomain = $myorigin.test\n"),
                     0);
    assert_int_equal(config_check(f->cfg, f->err, sizeof(f->err)), -1);
    assert_non_null(strstr(f->err, "expansion loop: "));
    assert_non_null(strstr(f->err, "$mydomain -> $myorigin"));

    /* through a default value: mydestination's default uses $myhostname */
    config_free(f->cfg);
    f->cfg = config_new();
    assert_int_equal(load(f, "myhostname = $mydestination\n"), 0);
    assert_int_equal(config_check(f->cfg, f->err, sizeof(f->err)), -1);
    assert_non_null(strstr(f->err, "expansion loop"));

    config_free(f->cfg);
    f->cfg = config_new();
    assert_int_equal(load(f, "relayhost = $relayhost\n"), 0);
    assert_int_equal(config_check(f->cfg, f->err, sizeof(f->err)), -1);
    assert_err_at(f, 1,
                  "parameter 'relayhost': expansion loop: $relayhost -> "
                  "$relayhost");
}

static void test_nesting_limit(void **state)
{
    struct fixture *f = *state;
    struct buf text = BUF_INIT;

    /* 50 nested groups are fine, 150 are refused (bounded recursion) */
    buf_puts(&text, "relayhost = ");
    for (int i = 0; i < 50; i++)
        buf_puts(&text, "${mail_name?");
    buf_puts(&text, "x");
    for (int i = 0; i < 50; i++)
        buf_puts(&text, "}");
    buf_puts(&text, "\n");
    assert_int_equal(load(f, buf_cstr(&text)), 0);
    assert_int_equal(config_check(f->cfg, f->err, sizeof(f->err)), 0);
    assert_string_equal(config_str(f->cfg, "relayhost"), "x");

    config_free(f->cfg);
    f->cfg = config_new();
    buf_reset(&text);
    buf_puts(&text, "relayhost = ");
    for (int i = 0; i < 150; i++)
        buf_puts(&text, "${mail_name?");
    for (int i = 0; i < 150; i++)
        buf_puts(&text, "}");
    buf_puts(&text, "\n");
    assert_int_equal(load(f, buf_cstr(&text)), 0);
    assert_int_equal(config_check(f->cfg, f->err, sizeof(f->err)), -1);
    assert_err_at(f, 1, "parameter 'relayhost': unreasonable nesting");
    buf_free(&text);
}

/*
 * myhostname = $mydomain with mydomain unset: mydomain's computed default
 * needs myhostname.  config_check must report the loop, not recurse until
 * the stack overflows nor exit from inside the getter the default uses.
 */
static void test_computed_loop(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load(f, "mail_owner = x\nmyhostname = $mydomain\n"), 0);
    assert_int_equal(config_check(f->cfg, f->err, sizeof(f->err)), -1);
    assert_err_at(f, 2, "parameter 'myhostname': expansion loop: ");
    assert_non_null(strstr(f->err, "$mydomain"));
    /* and again: nothing half-computed was cached */
    assert_int_equal(config_check(f->cfg, f->err, sizeof(f->err)), -1);
    assert_err_at(f, 2, "parameter 'myhostname': expansion loop: ");

    /* fixed by an override: the computed default follows */
    assert_int_equal(config_set(f->cfg, "myhostname", "mx.example.test", "t",
                                f->err, sizeof(f->err)),
                     0);
    assert_int_equal(config_check(f->cfg, f->err, sizeof(f->err)), 0);
    assert_string_equal(config_raw(f->cfg, "mydomain"), "example.test");
}

static void test_bad_values(void **state)
{
    static const struct {
        const char *line;
        const char *msg;
    } cases[] = {
        {"smtpd_recipient_limit = lots\n",
         "parameter 'smtpd_recipient_limit': bad value 'lots'"},
        {"smtpd_recipient_limit = -1\n",
         "parameter 'smtpd_recipient_limit': bad value '-1'"},
        {"smtpd_recipient_limit = 0\n",
         "parameter 'smtpd_recipient_limit': value '0' out of range"},
        {"smtpd_recipient_limit = 99999999999\n",
         "parameter 'smtpd_recipient_limit': value '99999999999' out of range"},
        {"smtpd_helo_required = maybe\n",
         "parameter 'smtpd_helo_required': bad value 'maybe': expected yes or "
         "no"},
        {"max_idle = 10x\n", "parameter 'max_idle': bad value '10x'"},
        {"max_idle = 1.5h\n", "parameter 'max_idle': bad value '1.5h'"},
        {"message_size_limit = 10q\n",
         "parameter 'message_size_limit': bad value '10q'"},
        {"smtpd_forbid_bare_newline = sometimes\n",
         "parameter 'smtpd_forbid_bare_newline': bad value 'sometimes'"},
        {"inet_protocols = ipv4, ipv5\n",
         "parameter 'inet_protocols': bad value 'ipv5'"},
        {"virtual_alias_maps = inline:{a=b\n",
         "parameter 'virtual_alias_maps': unbalanced"},
        {"unknown_local_recipient_reject_code = 250\n",
         "parameter 'unknown_local_recipient_reject_code': value '250' out of "
         "range (400...599)"},
    };
    struct fixture *f = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[256];

        config_free(f->cfg);
        f->cfg = config_new();
        snprintf(text, sizeof(text), "# case\nmail_owner = x\n%s",
                 cases[i].line);
        assert_int_equal(load(f, text), -1);
        assert_err_at(f, 3, cases[i].msg);
    }
}

static void test_good_unit_values(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load(f, "max_idle = 5m\n"
                             "maximal_queue_lifetime = 2\n"
                             "delay_warning_time = 4\n"
                             "message_size_limit = 10m\n"
                             "smtpd_helo_required = YES\n"
                             "ipc_timeout = 1w\n"),
                     0);
    assert_int_equal(config_time(f->cfg, "max_idle"), 300);
    assert_int_equal(config_time(f->cfg, "maximal_queue_lifetime"), 2 * 86400);
    assert_int_equal(config_time(f->cfg, "delay_warning_time"), 4 * 3600);
    assert_int_equal(config_size(f->cfg, "message_size_limit"), 10 * 1048576);
    assert_true(config_bool(f->cfg, "smtpd_helo_required"));
    assert_int_equal(config_time(f->cfg, "ipc_timeout"), 7 * 86400);
}

static void test_bad_value_after_expansion(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load(f, "mail_owner = x\n"
                             "smtpd_recipient_limit = $mail_owner\n"),
                     0);
    assert_int_equal(config_check(f->cfg, f->err, sizeof(f->err)), -1);
    assert_err_at(f, 2,
                  "parameter 'smtpd_recipient_limit' (from "
                  "'$mail_owner'): bad value 'x'");
}

static void test_config_set(void **state)
{
    struct fixture *f = *state;
    const char *before, *banner;
    struct argv w = ARGV_INIT;

    assert_int_equal(load(f, "myhostname = one.example\n"), 0);
    before = config_str(f->cfg, "myhostname");
    banner = config_str(f->cfg, "smtpd_banner");
    assert_string_equal(banner, "one.example ESMTP posthorn");
    assert_int_equal(config_set(f->cfg, "myhostname", "two.example",
                                "service smtp -o", f->err, sizeof(f->err)),
                     0);
    /* old pointers stay valid; new values follow the override */
    assert_string_equal(before, "one.example");
    assert_string_equal(banner, "one.example ESMTP posthorn");
    assert_string_equal(config_str(f->cfg, "smtpd_banner"),
                        "two.example ESMTP posthorn");
    assert_string_equal(config_origin(f->cfg, "myhostname"), "service smtp -o");

    assert_int_equal(config_set(f->cfg, "smtpd_timeout", "ten",
                                "service smtp -o", f->err, sizeof(f->err)),
                     -1);
    assert_string_equal(f->err, "service smtp -o: parameter 'smtpd_timeout': "
                                "bad value 'ten': expected a time (e.g. 300s, "
                                "5m, 2h, 5d, 1w)");
    assert_int_equal(config_set(f->cfg, "smtpd_timout", "10s",
                                "service smtp -o", f->err, sizeof(f->err)),
                     -1);
    assert_string_equal(f->err,
                        "service smtp -o: unknown parameter 'smtpd_timout'");
    assert_int_equal(config_set(f->cfg, "smtpd_timeout", " 10s ",
                                "service smtp -o", f->err, sizeof(f->err)),
                     0);
    assert_int_equal(config_time(f->cfg, "smtpd_timeout"), 10);

    /* a Postfix-only name is accepted with a warning kept for the caller */
    assert_int_equal(config_set(f->cfg, "smtpd_tls_eecdh_grade", "strong",
                                "service smtps -o", f->err, sizeof(f->err)),
                     0);
    config_take_warnings(f->cfg, &w);
    assert_int_equal(w.n, 1);
    assert_non_null(strstr(w.v[0], "'smtpd_tls_eecdh_grade' is a Postfix "
                                   "parameter"));
    argv_free(&w);
    config_take_warnings(f->cfg, &w);
    assert_int_equal(w.n, 0);
    assert_int_equal(config_check(f->cfg, f->err, sizeof(f->err)), 0);
}

static void test_list_split(void **state)
{
    struct fixture *f = *state;
    const struct argv *l;

    assert_int_equal(load(f, "virtual_alias_maps = inline:{a=b, c=d},"
                             "lmdb:/x\n"
                             "transport_maps = inline:{ {x=y z}, w=v }  "
                             "texthash:/etc/t,,, static:{a b}\n"
                             "smtpd_discard_ehlo_keywords =\n"),
                     0);
    l = config_list(f->cfg, "virtual_alias_maps");
    assert_int_equal(l->n, 2);
    assert_string_equal(l->v[0], "inline:{a=b, c=d}");
    assert_string_equal(l->v[1], "lmdb:/x");
    /* virtual_alias_domains defaults to $virtual_alias_maps */
    l = config_list(f->cfg, "virtual_alias_domains");
    assert_int_equal(l->n, 2);
    l = config_list(f->cfg, "transport_maps");
    assert_int_equal(l->n, 3);
    assert_string_equal(l->v[0], "inline:{ {x=y z}, w=v }");
    assert_string_equal(l->v[1], "texthash:/etc/t");
    assert_string_equal(l->v[2], "static:{a b}");
    /* cached: the same vector twice */
    assert_ptr_equal(config_list(f->cfg, "transport_maps"), l);
    l = config_list(f->cfg, "smtpd_discard_ehlo_keywords");
    assert_int_equal(l->n, 0);
}

static void test_computed_defaults(void **state)
{
    struct fixture *f = *state;
    const char *host;

    host = config_str(f->cfg, "myhostname");
    assert_non_null(strchr(host, '.'));
    assert_int_equal(load(f, "myhostname = mail.example.test\n"), 0);
    assert_string_equal(config_str(f->cfg, "mydomain"), "example.test");
    assert_string_equal(config_str(f->cfg, "mydestination"),
                        "mail.example.test, localhost.example.test, localhost");
    assert_int_equal(config_set(f->cfg, "myhostname", "host.test", "t", f->err,
                                sizeof(f->err)),
                     0);
    assert_string_equal(config_str(f->cfg, "mydomain"), "localdomain");
    assert_string_equal(config_str(f->cfg, "local_transport"),
                        "local:host.test");
}

static void test_names_set(void **state)
{
    struct fixture *f = *state;
    struct argv names = ARGV_INIT;

    assert_int_equal(load(f, "relayhost = [relay.example]:587\n"
                             "smtpd_tls_cert_file = /c\n"
                             "alias_maps = lmdb:/etc/aliases\n"),
                     0);
    config_names_set(f->cfg, &names);
    assert_int_equal(names.n, 3);
    assert_string_equal(names.v[0], "alias_maps");
    assert_string_equal(names.v[1], "relayhost");
    assert_string_equal(names.v[2], "smtpd_tls_cert_file");
    argv_free(&names);
}

static void test_global(void **state)
{
    struct fixture *f = *state;

    config_set_global(f->cfg);
    assert_ptr_equal(config_global(), f->cfg);
    config_set_global(NULL);
}

/* A getter with a name outside the table is a bug: it panics. */
static void test_getter_panics(void **state)
{
    struct fixture *f = *state;
    pid_t pid = fork();
    int status;

    assert_true(pid >= 0);
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        (void)config_str(f->cfg, "no_such_parameter");
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_table_sorted_and_defaults_valid,
                                        setup, teardown),
        cmocka_unit_test(test_postfix_names),
        cmocka_unit_test_setup_teardown(test_syntax, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_postfix_known_warning, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_not_yet_warning, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_defined_referenced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_expansion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expansion_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nesting_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_computed_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_good_unit_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_value_after_expansion, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_computed_defaults, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_names_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_global, setup, teardown),
        cmocka_unit_test_setup_teardown(test_getter_panics, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
