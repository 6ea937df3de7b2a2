/*
 * passdb - the password database in Dovecot's passwd-file format, password
 * verification and hash creation.
 *
 * The database is named by the passdb parameter, "passwd-file:/path".
 * One account per line:
 *
 *     user:password:uid:gid:gecos:home:shell:extra fields
 *     alice@example.test:{SHA512-CRYPT}$6$salt$hash:5000:5000::/srv/mail/alice::
 *
 * Only user and password are required; missing trailing fields are empty.
 * Blank lines and lines whose first non-blank character is "#" are
 * comments.  A password is "{SCHEME}data", or a bare crypt(3) string
 * (scheme CRYPT, as in Dovecot), or empty (the account exists for mail
 * delivery but cannot log in).  uid and gid are decimal numbers, home an
 * absolute path without ".." components; gecos and shell are ignored and
 * the extra fields are kept as text.  User names are folded to lower case
 * (Dovecot's auth_username_format = %Lu), so "Alice@Example.Test" and
 * "alice@example.test" are the same account; two lines for one account
 * are an error.
 *
 * Schemes (case-insensitive):
 *   SHA512-CRYPT ($6$), SHA256-CRYPT ($5$), BLF-CRYPT / BCRYPT ($2y$,
 *   $2b$, $2a$), YESCRYPT ($y$), MD5-CRYPT ($1$, verification only),
 *   CRYPT (any string libxcrypt's crypt(3) accepts), PLAIN / CLEAR /
 *   CLEARTEXT (the password itself; for tests and for mechanisms that
 *   need the secret).
 *
 * A file with any malformed line is refused as a whole, naming file and
 * line: a mistyped account must not turn into "unknown user" (a bounce)
 * for its mail.  A database that loaded once keeps its content when a
 * later version is broken.
 *
 * Everything here may be called from any thread except the struct passdb
 * functions, which belong to the thread that opened it.
 */
#ifndef GLOBAL_PASSDB_H
#define GLOBAL_PASSDB_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

/* Longest user name, home directory, line and file accepted. */
#define PASSDB_USER_MAX 255
#define PASSDB_HOME_MAX 1023
#define PASSDB_LINE_MAX 4096
#define PASSDB_FILE_MAX (64 * 1024 * 1024)
/* Longest password verified or hashed: libxcrypt's limit, less the NUL. */
#define PASSDB_PASSWORD_MAX 511

enum passdb_scheme {
    PASSDB_SCHEME_NONE, /* empty password field: no login */
    PASSDB_SCHEME_PLAIN,
    PASSDB_SCHEME_CRYPT,
    PASSDB_SCHEME_MD5_CRYPT,
    PASSDB_SCHEME_SHA256_CRYPT,
    PASSDB_SCHEME_SHA512_CRYPT,
    PASSDB_SCHEME_BLF_CRYPT,
    PASSDB_SCHEME_YESCRYPT,
};

/* One account.  Strings are never NULL ("" when the field is empty). */
struct passdb_entry {
    const char *user; /* lower case */
    enum passdb_scheme scheme;
    const char *secret; /* the password field without "{SCHEME}" */
    long long uid;      /* -1 when empty */
    long long gid;      /* -1 when empty */
    const char *home;
    const char *extra; /* everything after the seventh ':' */
    unsigned line;     /* line number in the file */
};

/*
 * One line without its newline.  Returns 1 and fills e (its strings point
 * into line, which is modified: user folded, fields cut), 0 for a comment
 * or blank line, -1 with err set (no file:line prefix) when malformed.
 */
int passdb_parse_line(char *line, struct passdb_entry *e, char *err,
                      size_t errlen);

/* "passwd-file:/path" -> the path, or NULL with err set. */
const char *passdb_spec_path(const char *spec, char *err, size_t errlen);

struct passdb;

/* Checks the spec; the file is read by the first passdb_refresh(). */
struct passdb *passdb_open(const char *spec, char *err, size_t errlen);
void passdb_close(struct passdb *db);
const char *passdb_path(const struct passdb *db);

/*
 * Read the file if it changed (device, inode, size or modification time)
 * since the last successful load.  Returns 1 when it was (re)loaded, 0
 * when unchanged, -1 with err set ("path:line: ...", or the system error)
 * when it cannot be read or is malformed: the previous content, if any,
 * stays in use.
 */
int passdb_refresh(struct passdb *db, char *err, size_t errlen);
/* Whether some version of the file loaded. */
bool passdb_loaded(const struct passdb *db);
size_t passdb_count(const struct passdb *db);
/* The account (user folded here), or NULL.  Valid until the next refresh. */
const struct passdb_entry *passdb_find(const struct passdb *db,
                                       const char *user);
/* Accounts in file order, i < passdb_count(). */
const struct passdb_entry *passdb_entry_at(const struct passdb *db, size_t i);

/*
 * Scheme by name (without braces, case-insensitive, aliases accepted);
 * false if unknown.  passdb_scheme_name gives the name written in files.
 */
bool passdb_scheme_from_name(const char *name, enum passdb_scheme *out);
const char *passdb_scheme_name(enum passdb_scheme scheme);

/*
 * Check password against an entry's scheme and secret, in time that does
 * not depend on where they differ.  Returns 1 match, 0 mismatch (also
 * for PASSDB_SCHEME_NONE, a password with a NUL or one longer than
 * PASSDB_PASSWORD_MAX), -1 with err set when the check itself failed
 * (out of memory, a hash libxcrypt cannot handle).  Thread-safe.
 */
int passdb_verify(enum passdb_scheme scheme, const char *secret,
                  const char *password, size_t passlen, char *err,
                  size_t errlen);

/*
 * A new password field for password: "{SHA512-CRYPT}$6$...", with a fresh
 * salt from libxcrypt.  YESCRYPT is written "{CRYPT}$y$..." and CRYPT
 * uses libxcrypt's preferred method, so Dovecot reads every result.
 * MD5-CRYPT and NONE cannot be created.  The password must be 1 to
 * PASSDB_PASSWORD_MAX bytes; for PLAIN it may not hold ':' or control
 * characters (they would break the file).  Returns 0, or -1 with err set.
 */
int passdb_hash(enum passdb_scheme scheme, const char *password,
                struct buf *out, char *err, size_t errlen);

#endif
