/*
 * test_server_args - the worker command line master builds (server.h):
 * every option, the defaults, and each malformed form refused with a
 * message rather than accepted or crashed on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "global/server.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

static int parse(int argc, char **argv, struct server_args *args, char *err,
                 size_t errlen)
{
    err[0] = 0;
    return server_parse_args(argc, argv, "smtpd", args, err, errlen);
}

static void test_master_command_line(void **state)
{
    char *argv[] = {"smtpd",
                    "-c",
                    "/etc/ph",
                    "-n",
                    "127.0.0.1:2525",
                    "-t",
                    "inet",
                    "-o",
                    "smtpd_banner=hi there",
                    "-o",
                    "max_use=5",
                    "-v",
                    "-v"};
    struct server_args args;
    char err[256];

    (void)state;
    assert_int_equal(parse(ARGC(argv), argv, &args, err, sizeof(err)), 0);
    assert_string_equal(args.config_dir, "/etc/ph");
    assert_string_equal(args.service, "127.0.0.1:2525");
    assert_string_equal(args.type, "inet");
    assert_int_equal(args.overrides.n, 2);
    assert_string_equal(args.overrides.v[0], "smtpd_banner=hi there");
    assert_string_equal(args.overrides.v[1], "max_use=5");
    assert_int_equal(args.verbose, 2);
    assert_false(args.keep_root);
    assert_false(args.standalone);
    server_args_free(&args);
}

static void test_defaults(void **state)
{
    char *argv[] = {"smtpd"};
    struct server_args args;
    char err[256];

    (void)state;
    unsetenv("POSTHORN_CONFIG_DIR");
    assert_int_equal(parse(ARGC(argv), argv, &args, err, sizeof(err)), 0);
    assert_string_equal(args.config_dir, POSTHORN_CONFIG_DIR);
    assert_string_equal(args.service, "smtpd");
    assert_string_equal(args.type, "unix");
    assert_int_equal(args.overrides.n, 0);
    assert_int_equal(args.verbose, 0);
    server_args_free(&args);

    setenv("POSTHORN_CONFIG_DIR", "/srv/mail/etc", 1);
    assert_int_equal(parse(ARGC(argv), argv, &args, err, sizeof(err)), 0);
    assert_string_equal(args.config_dir, "/srv/mail/etc");
    server_args_free(&args);
    unsetenv("POSTHORN_CONFIG_DIR");
}

static void test_flags_and_attached_values(void **state)
{
    char *argv[] = {"local",  "-us",   "-cdir", "-nlocal",
                    "-tunix", "-oa=b", "-vv"};
    struct server_args args;
    char err[256];

    (void)state;
    assert_int_equal(parse(ARGC(argv), argv, &args, err, sizeof(err)), 0);
    assert_true(args.keep_root);
    assert_true(args.standalone);
    assert_string_equal(args.config_dir, "dir");
    assert_string_equal(args.service, "local");
    assert_string_equal(args.type, "unix");
    assert_int_equal(args.overrides.n, 1);
    assert_string_equal(args.overrides.v[0], "a=b");
    assert_int_equal(args.verbose, 2);
    server_args_free(&args);
}

static void expect_error(char **argv, int argc, const char *what)
{
    struct server_args args;
    char err[256];

    assert_int_equal(parse(argc, argv, &args, err, sizeof(err)), -1);
    assert_non_null(strstr(err, what));
    server_args_free(&args);
}

static void test_errors(void **state)
{
    char *unknown[] = {"smtpd", "-x"};
    char *positional[] = {"smtpd", "extra"};
    char *lone_dash[] = {"smtpd", "-"};
    char *missing[] = {"smtpd", "-c"};
    char *missing_o[] = {"smtpd", "-n", "smtp", "-o"};
    char *no_equals[] = {"smtpd", "-o", "max_use"};
    char *no_name[] = {"smtpd", "-o", "=5"};
    char *bad_type[] = {"smtpd", "-t", "fifo"};
    char *empty_dir[] = {"smtpd", "-c", ""};
    char *empty_name[] = {"smtpd", "-n", ""};
    char *slash_name[] = {"smtpd", "-n", "../x"};
    char *space_name[] = {"smtpd", "-n", "a b"};

    (void)state;
    expect_error(unknown, ARGC(unknown), "unknown option -x");
    expect_error(positional, ARGC(positional), "unexpected argument 'extra'");
    expect_error(lone_dash, ARGC(lone_dash), "unexpected argument");
    expect_error(missing, ARGC(missing), "-c needs a value");
    expect_error(missing_o, ARGC(missing_o), "-o needs a value");
    expect_error(no_equals, ARGC(no_equals), "expected name=value");
    expect_error(no_name, ARGC(no_name), "expected name=value");
    expect_error(bad_type, ARGC(bad_type), "unsupported service type 'fifo'");
    expect_error(empty_dir, ARGC(empty_dir), "empty directory");
    expect_error(empty_name, ARGC(empty_name), "bad service name");
    expect_error(slash_name, ARGC(slash_name), "bad service name");
    expect_error(space_name, ARGC(space_name), "bad service name");
}

static void test_service_name_limit(void **state)
{
    char name[300];
    char *argv[] = {"smtpd", "-n", name};
    struct server_args args;
    char err[256];

    (void)state;
    memset(name, 'a', 255);
    name[255] = 0;
    assert_int_equal(parse(ARGC(argv), argv, &args, err, sizeof(err)), 0);
    assert_int_equal(strlen(args.service), 255);
    server_args_free(&args);
    name[255] = 'a';
    name[256] = 0;
    expect_error(argv, ARGC(argv), "bad service name");
}

static void test_short_error_buffer(void **state)
{
    char *argv[] = {"smtpd", "-t", "a-very-long-unsupported-type-name"};
    struct server_args args;
    char err[8];

    (void)state;
    assert_int_equal(parse(ARGC(argv), argv, &args, err, sizeof(err)), -1);
    assert_int_equal(strlen(err), sizeof(err) - 1);
    server_args_free(&args);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_master_command_line),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_flags_and_attached_values),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_service_name_limit),
        cmocka_unit_test(test_short_error_buffer),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
