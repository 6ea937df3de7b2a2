/*
 * test_passdb - Dovecot passwd-file lines (full, minimal, comments,
 * every malformed field, the line and user-name limits at the edge and
 * one past it), password checks for every scheme with the right and a
 * wrong password (hashes made by passdb_hash and by crypt(3) itself),
 * hash creation errors, and the file: load, lookup without regard to
 * case, duplicates and bad lines named by file:line, reload after a
 * rename, a broken new version that leaves the old one in use.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "global/passdb.h"
#include "util/buf.h"

static char tmpdir[256];
static char err[512];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_passdb.XXXXXX");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    char cmd[300];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Write name atomically (as an editor or `posthorn user` would). */
static const char *write_file(const char *name, const char *text)
{
    static char path[400];
    char tmp[420];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    fp = fopen(tmp, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(rename(tmp, path), 0);
    return path;
}

/* Parse a copy of text; returns the result, entry in *e (into *copy). */
static int parse(const char *text, struct passdb_entry *e, char **copy)
{
    free(*copy);
    *copy = strdup(text);
    err[0] = 0;
    return passdb_parse_line(*copy, e, err, sizeof(err));
}

static void test_parse_good(void **state)
{
    struct passdb_entry e;
    char *copy = NULL;

    (void)state;
    assert_int_equal(parse("Alice@Example.Test:{SHA512-CRYPT}$6$abcdefgh$"
                           "xyz:5000:5001:Alice A.:/srv/mail/alice:/bin/false:"
                           "userdb_quota_rule=*:storage=1G",
                           &e, &copy),
                     1);
    assert_string_equal(e.user, "alice@example.test");
    assert_int_equal(e.scheme, PASSDB_SCHEME_SHA512_CRYPT);
    assert_string_equal(e.secret, "$6$abcdefgh$xyz");
    assert_int_equal(e.uid, 5000);
    assert_int_equal(e.gid, 5001);
    assert_string_equal(e.home, "/srv/mail/alice");
    /* The extra part keeps its own ':'s. */
    assert_string_equal(e.extra, "userdb_quota_rule=*:storage=1G");

    assert_int_equal(parse("bob:{plain}pass word", &e, &copy), 1);
    assert_string_equal(e.user, "bob");
    assert_int_equal(e.scheme, PASSDB_SCHEME_PLAIN);
    assert_string_equal(e.secret, "pass word");
    assert_int_equal(e.uid, -1);
    assert_int_equal(e.gid, -1);
    assert_string_equal(e.home, "");
    assert_string_equal(e.extra, "");

    assert_int_equal(parse("carol@example.test:{CLEAR}x::::::", &e, &copy), 1);
    assert_int_equal(e.scheme, PASSDB_SCHEME_PLAIN);

    /* Empty password: the account exists, nobody can log in. */
    assert_int_equal(parse("list@example.test:", &e, &copy), 1);
    assert_int_equal(e.scheme, PASSDB_SCHEME_NONE);

    /* A bare crypt string is {CRYPT}, as in Dovecot. */
    assert_int_equal(parse("dave:abNANd1rDfiNc", &e, &copy), 1);
    assert_int_equal(e.scheme, PASSDB_SCHEME_CRYPT);
    assert_string_equal(e.secret, "abNANd1rDfiNc");

    assert_int_equal(parse("# a comment", &e, &copy), 0);
    assert_int_equal(parse("   # indented comment", &e, &copy), 0);
    assert_int_equal(parse("", &e, &copy), 0);
    assert_int_equal(parse(" \t ", &e, &copy), 0);
    free(copy);
}

static void test_parse_bad(void **state)
{
    static const struct {
        const char *line;
        const char *complaint;
    } cases[] = {
        {"nopassword", "expected user:password"},
        {":{PLAIN}x", "bad user name"},
        {"a b@example.test:{PLAIN}x", "bad user name"},
        {"../etc@example.test:{PLAIN}x", "bad user name"},
        {"u:{NOSUCH}x", "unknown password scheme {NOSUCH}"},
        {"u:{PLAIN", "'{' without '}'"},
        {"u:{SHA512-CRYPT}$5$abc$def", "does not start with $6$"},
        {"u:{BLF-CRYPT}$6$abc$def", "does not start with"},
        {"u:{CRYPT}$6$x$!!!", "malformed"},
        {"u:{PLAIN}x:12a", "uid and gid"},
        {"u:{PLAIN}x:1:-5", "uid and gid"},
        {"u:{PLAIN}x:1:99999999999", "uid and gid"},
        {"u:{PLAIN}x:1:1::relative/home", "not an absolute path"},
        {"u:{PLAIN}x:1:1::/srv/../etc", "'..' component"},
        {"u:{PLAIN}x\x01y", "control characters"},
        {"u:{PLAIN}x::::/h::extra\x01", "control characters"},
    };
    struct passdb_entry e;
    char *copy = NULL;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int r = parse(cases[i].line, &e, &copy);

        if (r != -1 || strstr(err, cases[i].complaint) == NULL)
            fail_msg("'%s': got %d '%s', wanted -1 '%s'", cases[i].line, r, err,
                     cases[i].complaint);
    }
    free(copy);
}

static void test_parse_limits(void **state)
{
    struct passdb_entry e;
    char *copy = NULL;
    char user[PASSDB_USER_MAX + 2];
    struct buf line = BUF_INIT;

    (void)state;
    memset(user, 'u', sizeof(user));
    user[PASSDB_USER_MAX] = 0;
    buf_printf(&line, "%s:{PLAIN}x", user);
    assert_int_equal(parse(line.data, &e, &copy), 1);
    user[PASSDB_USER_MAX] = 'u';
    user[PASSDB_USER_MAX + 1] = 0;
    buf_reset(&line);
    buf_printf(&line, "%s:{PLAIN}x", user);
    assert_int_equal(parse(line.data, &e, &copy), -1);
    assert_non_null(strstr(err, "bad user name"));

    /* The longest line, then one byte more (in the extra fields). */
    buf_reset(&line);
    buf_puts(&line, "u:{PLAIN}x::::::");
    while (line.len < PASSDB_LINE_MAX)
        buf_putc(&line, 'e');
    assert_int_equal(parse(line.data, &e, &copy), 1);
    buf_putc(&line, 'e');
    assert_int_equal(parse(line.data, &e, &copy), -1);
    assert_non_null(strstr(err, "line longer than"));
    buf_free(&line);
    free(copy);
}

static void test_schemes_by_name(void **state)
{
    enum passdb_scheme s;

    (void)state;
    assert_true(passdb_scheme_from_name("sha512-crypt", &s));
    assert_int_equal(s, PASSDB_SCHEME_SHA512_CRYPT);
    assert_true(passdb_scheme_from_name("BCRYPT", &s));
    assert_int_equal(s, PASSDB_SCHEME_BLF_CRYPT);
    assert_true(passdb_scheme_from_name("Clear", &s));
    assert_int_equal(s, PASSDB_SCHEME_PLAIN);
    assert_false(passdb_scheme_from_name("SHA1", &s));
    assert_string_equal(passdb_scheme_name(PASSDB_SCHEME_BLF_CRYPT),
                        "BLF-CRYPT");
}

/* Hash with passdb_hash, parse the result back, check good and bad. */
static void check_scheme(enum passdb_scheme scheme, const char *prefix,
                         const char *crypt_prefix)
{
    struct buf field = BUF_INIT, line = BUF_INIT;
    struct passdb_entry e;
    char *copy = NULL;

    assert_int_equal(
        passdb_hash(scheme, "correct horse", &field, err, sizeof(err)), 0);
    if (strncmp(field.data, prefix, strlen(prefix)) != 0)
        fail_msg("%s: hash '%s' does not start with %s",
                 passdb_scheme_name(scheme), field.data, prefix);
    buf_printf(&line, "user@example.test:%s", field.data);
    assert_int_equal(parse(line.data, &e, &copy), 1);
    if (crypt_prefix != NULL)
        assert_int_equal(strncmp(e.secret, crypt_prefix, strlen(crypt_prefix)),
                         0);
    assert_int_equal(passdb_verify(e.scheme, e.secret, "correct horse", 13, err,
                                   sizeof(err)),
                     1);
    assert_int_equal(passdb_verify(e.scheme, e.secret, "correct horsE", 13, err,
                                   sizeof(err)),
                     0);
    assert_int_equal(
        passdb_verify(e.scheme, e.secret, "correct hors", 12, err, sizeof(err)),
        0);
    assert_int_equal(passdb_verify(e.scheme, e.secret, "", 0, err, sizeof(err)),
                     0);
    /* A NUL inside the password never matches. */
    assert_int_equal(passdb_verify(e.scheme, e.secret, "correct horse\0x", 15,
                                   err, sizeof(err)),
                     0);
    buf_free(&field);
    buf_free(&line);
    free(copy);
}

static void test_verify_created(void **state)
{
    (void)state;
    check_scheme(PASSDB_SCHEME_SHA512_CRYPT, "{SHA512-CRYPT}$6$", "$6$");
    check_scheme(PASSDB_SCHEME_SHA256_CRYPT, "{SHA256-CRYPT}$5$", "$5$");
    check_scheme(PASSDB_SCHEME_BLF_CRYPT, "{BLF-CRYPT}$2y$10$", "$2y$");
    check_scheme(PASSDB_SCHEME_YESCRYPT, "{CRYPT}$y$", "$y$");
    check_scheme(PASSDB_SCHEME_CRYPT, "{CRYPT}$", NULL);
    check_scheme(PASSDB_SCHEME_PLAIN, "{PLAIN}correct horse", NULL);
}

/* Hashes made elsewhere: crypt(3) directly, the $2b$ variant, DES, MD5. */
static void test_verify_foreign(void **state)
{
    static const char *settings[] = {"$1$saltsalt$",
                                     "$2b$04$abcdefghijklmnop"
                                     "qrstuu",
                                     "ab", "$5$rounds=1000$salt$"};
    static const enum passdb_scheme schemes[] = {
        PASSDB_SCHEME_MD5_CRYPT, PASSDB_SCHEME_BLF_CRYPT, PASSDB_SCHEME_CRYPT,
        PASSDB_SCHEME_SHA256_CRYPT};
    struct crypt_data data;

    (void)state;
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
        char hash[CRYPT_OUTPUT_SIZE];
        const char *h;

        memset(&data, 0, sizeof(data));
        h = crypt_rn("secret", settings[i], &data, sizeof(data));
        assert_non_null(h);
        assert_true(h[0] != '*');
        snprintf(hash, sizeof(hash), "%s", h);
        assert_int_equal(
            passdb_verify(schemes[i], hash, "secret", 6, err, sizeof(err)), 1);
        assert_int_equal(
            passdb_verify(schemes[i], hash, "Secret", 6, err, sizeof(err)), 0);
    }
    /* Login disabled: nothing matches, not even the empty password. */
    assert_int_equal(
        passdb_verify(PASSDB_SCHEME_NONE, "", "", 0, err, sizeof(err)), 0);
    /* Longer than libxcrypt takes: a mismatch, not an error. */
    {
        char big[PASSDB_PASSWORD_MAX + 2];

        memset(big, 'p', sizeof(big));
        assert_int_equal(passdb_verify(PASSDB_SCHEME_PLAIN, "p", big,
                                       sizeof(big), err, sizeof(err)),
                         0);
    }
    /* A hash crypt(3) cannot use is an error, not a mismatch. */
    assert_int_equal(passdb_verify(PASSDB_SCHEME_CRYPT, "$9$nonsense", "secret",
                                   6, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "crypt(3)"));
}

static void test_hash_errors(void **state)
{
    struct buf out = BUF_INIT;
    char longpw[PASSDB_PASSWORD_MAX + 2];

    (void)state;
    assert_int_equal(
        passdb_hash(PASSDB_SCHEME_SHA512_CRYPT, "", &out, err, sizeof(err)),
        -1);
    memset(longpw, 'x', sizeof(longpw));
    longpw[PASSDB_PASSWORD_MAX] = 0;
    assert_int_equal(
        passdb_hash(PASSDB_SCHEME_SHA512_CRYPT, longpw, &out, err, sizeof(err)),
        0);
    buf_reset(&out);
    longpw[PASSDB_PASSWORD_MAX] = 'x';
    longpw[PASSDB_PASSWORD_MAX + 1] = 0;
    assert_int_equal(
        passdb_hash(PASSDB_SCHEME_SHA512_CRYPT, longpw, &out, err, sizeof(err)),
        -1);
    assert_non_null(strstr(err, "1 to 511 bytes"));
    assert_int_equal(
        passdb_hash(PASSDB_SCHEME_PLAIN, "a:b", &out, err, sizeof(err)), -1);
    assert_int_equal(
        passdb_hash(PASSDB_SCHEME_PLAIN, "a\nb", &out, err, sizeof(err)), -1);
    assert_int_equal(
        passdb_hash(PASSDB_SCHEME_MD5_CRYPT, "x", &out, err, sizeof(err)), -1);
    assert_int_equal(
        passdb_hash(PASSDB_SCHEME_NONE, "x", &out, err, sizeof(err)), -1);
    /* Two hashes of one password differ: fresh salt each time. */
    {
        struct buf a = BUF_INIT, b = BUF_INIT;

        assert_int_equal(
            passdb_hash(PASSDB_SCHEME_SHA512_CRYPT, "pw", &a, err, sizeof(err)),
            0);
        assert_int_equal(
            passdb_hash(PASSDB_SCHEME_SHA512_CRYPT, "pw", &b, err, sizeof(err)),
            0);
        assert_string_not_equal(a.data, b.data);
        buf_free(&a);
        buf_free(&b);
    }
    buf_free(&out);
}

static void test_spec(void **state)
{
    (void)state;
    assert_null(passdb_open("/etc/posthorn/users", err, sizeof(err)));
    assert_non_null(strstr(err, "passwd-file:"));
    assert_null(passdb_open("passwd-file:users", err, sizeof(err)));
    assert_non_null(strstr(err, "absolute"));
    assert_null(passdb_open("ldap:/etc/x", err, sizeof(err)));
    assert_string_equal(passdb_spec_path("passwd-file:/a/b", err, sizeof(err)),
                        "/a/b");
}

static void test_file(void **state)
{
    const char *path;
    struct passdb *db;
    const struct passdb_entry *e;
    char spec[450];

    (void)state;
    path = write_file("users", "# accounts\n"
                               "alice@example.test:{PLAIN}one:1000:1000::"
                               "/srv/alice::\r\n"
                               "\n"
                               "Bob@Example.Test:{PLAIN}two\n"
                               "list@example.test:\n");
    snprintf(spec, sizeof(spec), "passwd-file:%s", path);
    db = passdb_open(spec, err, sizeof(err));
    assert_non_null(db);
    assert_false(passdb_loaded(db));
    assert_int_equal(passdb_refresh(db, err, sizeof(err)), 1);
    assert_true(passdb_loaded(db));
    assert_int_equal(passdb_count(db), 3);
    /* Unchanged: not read again. */
    assert_int_equal(passdb_refresh(db, err, sizeof(err)), 0);

    e = passdb_find(db, "ALICE@example.test");
    assert_non_null(e);
    assert_string_equal(e->secret, "one");
    assert_string_equal(e->home, "/srv/alice");
    assert_int_equal(e->line, 2);
    e = passdb_find(db, "bob@example.test");
    assert_non_null(e);
    assert_int_equal(e->line, 4);
    assert_null(passdb_find(db, "carol@example.test"));
    assert_string_equal(passdb_entry_at(db, 2)->user, "list@example.test");
    assert_null(passdb_entry_at(db, 3));

    /* A new version replaces the old one. */
    write_file("users", "carol@example.test:{PLAIN}three\n");
    assert_int_equal(passdb_refresh(db, err, sizeof(err)), 1);
    assert_int_equal(passdb_count(db), 1);
    assert_null(passdb_find(db, "alice@example.test"));
    assert_non_null(passdb_find(db, "carol@example.test"));

    /* A broken version is refused, naming file and line; the old stays. */
    write_file("users", "dave@example.test:{PLAIN}four\n"
                        "erin@example.test:{MD4}x\n");
    assert_int_equal(passdb_refresh(db, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/users:2: user erin@example.test: unknown "
                                "password scheme {MD4}"));
    assert_non_null(passdb_find(db, "carol@example.test"));
    assert_null(passdb_find(db, "dave@example.test"));

    /* Two lines for one account (after case folding). */
    write_file("users", "dave@example.test:{PLAIN}four\n"
                        "# x\n"
                        "DAVE@example.test:{PLAIN}five\n");
    assert_int_equal(passdb_refresh(db, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/users:3: user dave@example.test is also "
                                "on line 1"));

    /* Gone: an error, and still the old content. */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(passdb_refresh(db, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "No such file"));
    assert_non_null(passdb_find(db, "carol@example.test"));
    passdb_close(db);

    /* Never loaded: nothing to find. */
    db = passdb_open(spec, err, sizeof(err));
    assert_int_equal(passdb_refresh(db, err, sizeof(err)), -1);
    assert_false(passdb_loaded(db));
    assert_null(passdb_find(db, "carol@example.test"));
    passdb_close(db);
}

static void test_file_many(void **state)
{
    struct buf text = BUF_INIT;
    struct passdb *db;
    char spec[450];
    const char *path;

    (void)state;
    for (int i = 0; i < 2000; i++)
        buf_printf(&text,
                   "user%d@example.test:{PLAIN}pw%d:%d:%d::/home/u%d::\n", i, i,
                   1000 + i, 1000, i);
    path = write_file("many", text.data);
    snprintf(spec, sizeof(spec), "passwd-file:%s", path);
    db = passdb_open(spec, err, sizeof(err));
    assert_int_equal(passdb_refresh(db, err, sizeof(err)), 1);
    assert_int_equal(passdb_count(db), 2000);
    for (int i = 0; i < 2000; i += 97) {
        char user[64], pw[16];
        const struct passdb_entry *e;

        snprintf(user, sizeof(user), "user%d@example.test", i);
        snprintf(pw, sizeof(pw), "pw%d", i);
        e = passdb_find(db, user);
        assert_non_null(e);
        assert_int_equal(e->uid, 1000 + i);
        assert_int_equal(passdb_verify(e->scheme, e->secret, pw, strlen(pw),
                                       err, sizeof(err)),
                         1);
    }
    passdb_close(db);
    buf_free(&text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_schemes_by_name),
        cmocka_unit_test(test_verify_created),
        cmocka_unit_test(test_verify_foreign),
        cmocka_unit_test(test_hash_errors),
        cmocka_unit_test(test_spec),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_file_many),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
