/*
 * test_mastercf - master.cf parsing (global/mastercf.c): columns, "-"
 * defaults, continuation lines, both -o forms, and every error naming
 * file and line.
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

#include "global/mastercf.h"
#include "util/mem.h"

struct fixture {
    char path[64];
    struct master_service *svc;
    size_t n;
    char err[1024];
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    int fd;

    snprintf(f->path, sizeof(f->path), "/tmp/test_mastercf.XXXXXX");
    fd = mkstemp(f->path);
    assert_true(fd >= 0);
    close(fd);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    mastercf_free(f->svc, f->n);
    unlink(f->path);
    free(f);
    return 0;
}

static int parse(struct fixture *f, const char *text)
{
    FILE *fp = fopen(f->path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
    mastercf_free(f->svc, f->n);
    f->svc = NULL;
    f->n = 0;
    f->err[0] = 0;
    return mastercf_parse(f->path, &f->svc, &f->n, f->err, sizeof(f->err));
}

static void assert_err_at(struct fixture *f, int line, const char *msg)
{
    char want[512];

    snprintf(want, sizeof(want), "%s:%d: %s", f->path, line, msg);
    if (strstr(f->err, want) != f->err) {
        print_error("error   '%s'\nexpected '%s...'\n", f->err, want);
        fail();
    }
}

static void test_columns_and_defaults(void **state)
{
    struct fixture *f = *state;
    const struct master_service *s;

    assert_int_equal(
        parse(f,
              "# service type  private unpriv chroot wakeup maxproc command\n"
              "127.0.0.1:2525 inet  n       -      n      -      -  smtpd\n"
              "cleanup   unix  n       -      n      -      0       cleanup\n"
              "\n"
              "qmgr      unix  n       -      n      300    1       qmgr\n"
              "local     unix  -       n      n      -      -       local\n"
              "flush     unix  n       -      y      1000?  0       flush\n"
              "smtp      inet  y       y      -      -      25      smtpd\n"
              "[::1]:submission inet n -      n      -      -       smtpd\n"),
        0);
    assert_int_equal(f->n, 7);

    s = &f->svc[0];
    assert_string_equal(s->name, "127.0.0.1:2525");
    assert_string_equal(s->type, "inet");
    assert_string_equal(s->host, "127.0.0.1");
    assert_string_equal(s->port, "2525");
    assert_false(s->private_);
    assert_true(s->unpriv);
    assert_false(s->chroot);
    assert_int_equal(s->wakeup, 0);
    assert_int_equal(s->maxproc, -1);
    assert_string_equal(s->command, "smtpd");
    assert_int_equal(s->args.n, 0);
    assert_int_equal(s->overrides.n, 0);
    assert_string_equal(s->file, f->path);
    assert_int_equal(s->line, 2);

    s = &f->svc[1];
    assert_string_equal(s->name, "cleanup");
    assert_string_equal(s->type, "unix");
    assert_null(s->port);
    assert_int_equal(s->maxproc, 0);
    assert_int_equal(s->line, 3);

    s = &f->svc[2];
    assert_int_equal(s->wakeup, 300);
    assert_false(s->wakeup_used);
    assert_int_equal(s->maxproc, 1);
    assert_int_equal(s->line, 5);

    s = &f->svc[3];
    assert_true(s->private_);
    assert_false(s->unpriv);

    s = &f->svc[4];
    assert_true(s->chroot);
    assert_int_equal(s->wakeup, 1000);
    assert_true(s->wakeup_used);

    s = &f->svc[5];
    assert_string_equal(s->host, "");
    assert_string_equal(s->port, "smtp");
    assert_int_equal(s->maxproc, 25);
    assert_true(s->private_);

    s = &f->svc[6];
    assert_string_equal(s->host, "::1");
    assert_string_equal(s->port, "submission");
}

static void test_continuation_and_overrides(void **state)
{
    struct fixture *f = *state;
    const struct master_service *s;

    assert_int_equal(
        parse(f, "submission inet n - n - - smtpd\n"
                 "  -o syslog_name=posthorn/submission\n"
                 "# a comment between continuation lines\n"
                 "\n"
                 "  -o { smtpd_client_restrictions = permit_sasl_authenticated,"
                 " reject }\n"
                 "\t-o smtpd_tls_security_level=encrypt -v\n"
                 "  -osmtpd_helo_required=yes\n"
                 "  -o {smtpd_banner=$myhostname  ESMTP}\n"
                 "  { an argument with spaces }\n"
                 "local unix - n n - - local\n"),
        0);
    assert_int_equal(f->n, 2);
    s = &f->svc[0];
    assert_int_equal(s->line, 1);
    assert_int_equal(s->overrides.n, 5);
    assert_string_equal(s->overrides.v[0], "syslog_name=posthorn/submission");
    assert_string_equal(s->overrides.v[1], "smtpd_client_restrictions="
                                           "permit_sasl_authenticated, reject");
    assert_string_equal(s->overrides.v[2], "smtpd_tls_security_level=encrypt");
    assert_string_equal(s->overrides.v[3], "smtpd_helo_required=yes");
    assert_string_equal(s->overrides.v[4], "smtpd_banner=$myhostname  ESMTP");
    /* args keep everything after the command, -o normalised */
    assert_int_equal(s->args.n, 12);
    assert_string_equal(s->args.v[0], "-o");
    assert_string_equal(s->args.v[1], "syslog_name=posthorn/submission");
    assert_string_equal(s->args.v[2], "-o");
    assert_string_equal(s->args.v[3], "smtpd_client_restrictions="
                                      "permit_sasl_authenticated, reject");
    assert_string_equal(s->args.v[6], "-v");
    assert_string_equal(s->args.v[7], "-o");
    assert_string_equal(s->args.v[8], "smtpd_helo_required=yes");
    assert_string_equal(s->args.v[11], "an argument with spaces");
    assert_null(s->args.v[12]);
    assert_string_equal(f->svc[1].name, "local");
    assert_int_equal(f->svc[1].line, 10);
}

static void test_empty_file(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(parse(f, "# nothing\n\n"), 0);
    assert_int_equal(f->n, 0);
}

static void test_errors(void **state)
{
    static const struct {
        const char *entry;
        const char *msg;
    } cases[] = {
        {"smtp inet n - n - smtpd\n", "expected at least 8 fields"},
        {"smtp inet n - n -\n", "expected at least 8 fields"},
        {"smtp inet n - n - lots smtpd\n", "bad maxproc field 'lots'"},
        {"smtp inet n - n - -1 smtpd\n", "bad maxproc field '-1'"},
        {"smtp inet n - n - 99999999999 smtpd\n",
         "bad maxproc field '99999999999'"},
        {"smtp inet n - n soon - smtpd\n", "bad wakeup field 'soon'"},
        {"smtp inet n - n ? - smtpd\n", "bad wakeup field '?'"},
        {"smtp inet yes - n - - smtpd\n", "bad private field 'yes'"},
        {"smtp inet n x n - - smtpd\n", "bad unpriv field 'x'"},
        {"smtp inet n - Y - - smtpd\n", "bad chroot field 'Y'"},
        {"postlog unix-dgram n - n - 1 postlogd\n",
         "service type 'unix-dgram' is not supported"},
        {"smtp pass - - n - - smtpd\n", "service type 'pass' is not supported"},
        {"pickup fifo n - n 60 1 pickup\n",
         "service type 'fifo' is not supported"},
        {"smtp tcp n - n - - smtpd\n", "unknown service type 'tcp'"},
        {"127.0.0.1:99999 inet n - n - - smtpd\n", "bad port '99999'"},
        {"127.0.0.1:0 inet n - n - - smtpd\n", "bad port '0'"},
        {"127.0.0.1: inet n - n - - smtpd\n", "unknown port ''"},
        {"no-such-service-name inet n - n - - smtpd\n",
         "unknown port 'no-such-service-name'"},
        {"::1:25 inet n - n - - smtpd\n", "bad inet service '::1:25'"},
        {"[::1]25 inet n - n - - smtpd\n", "bad inet service '[::1]25'"},
        {"private/x unix n - n - - cleanup\n", "bad unix service name"},
        {"smtp inet n - n - - smtpd -o\n", "-o without name=value"},
        {"smtp inet n - n - - smtpd -o novalue\n", "bad -o 'novalue'"},
        {"smtp inet n - n - - smtpd -o =x\n", "bad parameter name in -o"},
        {"smtp inet n - n - - smtpd -o { a = b\n", "unbalanced"},
    };
    struct fixture *f = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[512];

        snprintf(text, sizeof(text),
                 "# first\ncleanup unix n - n - 0 cleanup\n"
                 "%s",
                 cases[i].entry);
        assert_int_equal(parse(f, text), -1);
        assert_err_at(f, 3, cases[i].msg);
        assert_null(f->svc);
        assert_int_equal(f->n, 0);
    }
}

static void test_structural_errors(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(parse(f, "  -o x=y\n"), -1);
    assert_err_at(f, 1, "continuation line");

    assert_int_equal(parse(f, "smtp inet n - n - - smtpd\n"
                              "cleanup unix n - n - 0 cleanup\n"
                              "smtp inet n - n - - smtpd\n"),
                     -1);
    assert_err_at(f, 3,
                  "duplicate service 'smtp' type inet (first defined "
                  "at line 1)");

    /* the same name with another type is a different service */
    assert_int_equal(parse(f, "smtp inet n - n - - smtpd\n"
                              "smtp unix - - n - - smtp\n"),
                     0);
    assert_int_equal(f->n, 2);

    /* an error in a continued entry names the entry's first line */
    assert_int_equal(parse(f, "cleanup unix n - n - 0 cleanup\n"
                              "smtp inet n - n - - smtpd\n"
                              "   -o bad\n"),
                     -1);
    assert_err_at(f, 2, "bad -o 'bad'");
}

static void test_missing_file(void **state)
{
    struct fixture *f = *state;

    unlink(f->path);
    assert_int_equal(
        mastercf_parse(f->path, &f->svc, &f->n, f->err, sizeof(f->err)), -1);
    assert_non_null(strstr(f->err, "cannot read"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_columns_and_defaults, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_continuation_and_overrides, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_empty_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_structural_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
