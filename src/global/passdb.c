/*
 * passdb - Dovecot passwd-file parsing, password checks with libxcrypt,
 * hash creation for `posthorn passwd` and `posthorn user`.
 *
 * The file is administrator data but still bounded and checked (line and
 * file size, field syntax, hash syntax by crypt_checksalt) because a
 * broken line must be reported, not half-used.  Passwords come from the
 * network through auth: they are bounded, never logged, and wiped from
 * memory this module allocated once they are no longer needed.
 *
 * The struct passdb keeps one copy of the file text; entries point into
 * it, so a reload swaps one allocation, one vector and one hash table.
 * passdb_verify() and passdb_hash() touch no shared state (crypt_rn with
 * a private work area), so auth may run them in worker threads.
 */
#include "global/passdb.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "util/htable.h"
#include "util/mem.h"
#include "util/str.h"

#define PASSDB_SPEC_PREFIX "passwd-file:"

/* ------------------------------------------------------------ schemes */

struct passdb_scheme_info {
    const char *name; /* as written between braces */
    enum passdb_scheme scheme;
    const char *prefix;  /* a hash must start with one of these
                            ("|"-separated); "" any; NULL not crypt */
    const char *gensalt; /* crypt_gensalt prefix; NULL cannot create;
                            "" libxcrypt's preferred method */
    const char *written; /* name hash output carries */
    unsigned long cost;  /* crypt_gensalt count; 0 libxcrypt's */
};

/* The first row of each scheme is its canonical name. */
static const struct passdb_scheme_info passdb_schemes[] = {
    {"SHA512-CRYPT", PASSDB_SCHEME_SHA512_CRYPT, "$6$", "$6$", "SHA512-CRYPT",
     0},
    {"SHA256-CRYPT", PASSDB_SCHEME_SHA256_CRYPT, "$5$", "$5$", "SHA256-CRYPT",
     0},
    /* libxcrypt's (and Dovecot's) bcrypt default cost 5 takes about 2 ms
       today; 10 is the usual recommendation. */
    {"BLF-CRYPT", PASSDB_SCHEME_BLF_CRYPT, "$2y$|$2b$|$2a$", "$2y$",
     "BLF-CRYPT", 10},
    {"BCRYPT", PASSDB_SCHEME_BLF_CRYPT, "$2y$|$2b$|$2a$", "$2y$", "BLF-CRYPT",
     10},
    {"YESCRYPT", PASSDB_SCHEME_YESCRYPT, "$y$", "$y$", "CRYPT", 0},
    {"MD5-CRYPT", PASSDB_SCHEME_MD5_CRYPT, "$1$", NULL, "MD5-CRYPT", 0},
    {"CRYPT", PASSDB_SCHEME_CRYPT, "", "", "CRYPT", 0},
    {"PLAIN", PASSDB_SCHEME_PLAIN, NULL, NULL, "PLAIN", 0},
    {"CLEAR", PASSDB_SCHEME_PLAIN, NULL, NULL, "PLAIN", 0},
    {"CLEARTEXT", PASSDB_SCHEME_PLAIN, NULL, NULL, "PLAIN", 0},
};
#define PASSDB_NSCHEMES (sizeof(passdb_schemes) / sizeof(passdb_schemes[0]))

static const struct passdb_scheme_info *passdb_scheme_info(enum passdb_scheme s)
{
    for (size_t i = 0; i < PASSDB_NSCHEMES; i++)
        if (passdb_schemes[i].scheme == s)
            return &passdb_schemes[i];
    return NULL;
}

bool passdb_scheme_from_name(const char *name, enum passdb_scheme *out)
{
    for (size_t i = 0; i < PASSDB_NSCHEMES; i++) {
        if (str_eq_ci(name, passdb_schemes[i].name)) {
            *out = passdb_schemes[i].scheme;
            return true;
        }
    }
    return false;
}

const char *passdb_scheme_name(enum passdb_scheme scheme)
{
    const struct passdb_scheme_info *info = passdb_scheme_info(scheme);

    return info != NULL ? info->name : "NONE";
}

/* Does hash start with one of the "|"-separated prefixes? */
static bool passdb_prefix_ok(const char *hash, const char *prefixes)
{
    const char *p = prefixes;

    if (*p == 0)
        return true;
    while (*p != 0) {
        size_t n = strcspn(p, "|");

        if (strncmp(hash, p, n) == 0)
            return true;
        p += n;
        if (*p == '|')
            p++;
    }
    return false;
}

/* ------------------------------------------------------------ parsing */

/* What missing trailing fields point to; never written. */
static char passdb_empty[1];

static bool passdb_text_ok(const char *s, bool allow_space)
{
    for (; *s != 0; s++) {
        unsigned char c = (unsigned char)*s;

        if (c < 0x20 || c == 0x7f || (c == ' ' && !allow_space))
            return false;
    }
    return true;
}

static bool passdb_id(const char *s, long long *out)
{
    if (*s == 0) {
        *out = -1;
        return true;
    }
    return str_to_llong(s, out) && *out >= 0 && *out <= 0x7fffffffLL;
}

/* Absolute, bounded, printable, no ".." component. */
static const char *passdb_bad_home(const char *home)
{
    if (*home == 0)
        return NULL;
    if (*home != '/')
        return "is not an absolute path";
    if (strlen(home) > PASSDB_HOME_MAX)
        return "is too long";
    if (!passdb_text_ok(home, true))
        return "contains control characters";
    for (const char *s = home; *s != 0;) {
        size_t n = strcspn(s, "/");

        if (n == 2 && s[0] == '.' && s[1] == '.')
            return "contains a '..' component";
        s += n;
        if (*s == '/')
            s++;
    }
    return NULL;
}

static int passdb_parse_password(char *field, struct passdb_entry *e, char *err,
                                 size_t errlen)
{
    const struct passdb_scheme_info *info = NULL;
    char *data = field;

    if (*field == 0) {
        e->scheme = PASSDB_SCHEME_NONE;
        e->secret = field;
        return 0;
    }
    if (*field == '{') {
        char *end = strchr(field, '}');

        if (end == NULL) {
            snprintf(err, errlen, "password: '{' without '}'");
            return -1;
        }
        *end = 0;
        for (size_t i = 0; i < PASSDB_NSCHEMES; i++)
            if (str_eq_ci(field + 1, passdb_schemes[i].name))
                info = &passdb_schemes[i];
        if (info == NULL) {
            snprintf(err, errlen, "unknown password scheme {%.40s}", field + 1);
            return -1;
        }
        data = end + 1;
    } else {
        info = passdb_scheme_info(PASSDB_SCHEME_CRYPT);
    }
    e->scheme = info->scheme;
    e->secret = data;
    if (info->prefix == NULL) {
        if (strlen(data) > PASSDB_PASSWORD_MAX) {
            snprintf(err, errlen, "{%s} password is longer than %d bytes",
                     info->name, PASSDB_PASSWORD_MAX);
            return -1;
        }
        return 0;
    }
    if (!passdb_prefix_ok(data, info->prefix)) {
        snprintf(err, errlen, "{%s} hash does not start with %s", info->name,
                 info->prefix);
        return -1;
    }
    switch (crypt_checksalt(data)) {
    case CRYPT_SALT_OK:
    case CRYPT_SALT_METHOD_LEGACY:
    case CRYPT_SALT_TOO_CHEAP:
        return 0;
    default:
        snprintf(err, errlen,
                 "{%s} hash is malformed or of a method this "
                 "system's crypt(3) does not support",
                 info->name);
        return -1;
    }
}

int passdb_parse_line(char *line, struct passdb_entry *e, char *err,
                      size_t errlen)
{
    char *field[7];
    char *p = line;
    size_t nfields = 0;
    const char *bad;

    memset(e, 0, sizeof(*e));
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == 0 || *p == '#')
        return 0;
    if (strlen(line) > PASSDB_LINE_MAX) {
        snprintf(err, errlen, "line longer than %d bytes", PASSDB_LINE_MAX);
        return -1;
    }
    /* Seven ':'-separated fields; the rest of the line is the extra part. */
    p = line;
    e->extra = "";
    while (nfields < 7) {
        char *colon = strchr(p, ':');

        field[nfields++] = p;
        if (colon == NULL) {
            p = NULL;
            break;
        }
        *colon = 0;
        p = colon + 1;
    }
    if (nfields == 7 && p != NULL)
        e->extra = p;
    for (size_t i = nfields; i < 7; i++)
        field[i] = passdb_empty;

    if (nfields < 2) {
        snprintf(err, errlen,
                 "expected user:password[:uid:gid:gecos:home:"
                 "shell:extra]");
        return -1;
    }
    if (*field[0] == 0 || strlen(field[0]) > PASSDB_USER_MAX ||
        !passdb_text_ok(field[0], false) || strchr(field[0], '/') != NULL) {
        snprintf(err, errlen,
                 "bad user name (1 to %d printable characters, no blanks "
                 "or '/')",
                 PASSDB_USER_MAX);
        return -1;
    }
    str_lower(field[0]);
    e->user = field[0];
    if (!passdb_text_ok(field[1], true)) {
        snprintf(err, errlen,
                 "user %s: password field holds control "
                 "characters",
                 e->user);
        return -1;
    }
    if (passdb_parse_password(field[1], e, err, errlen) < 0) {
        char inner[256];

        str_lcpy(inner, err, sizeof(inner));
        snprintf(err, errlen, "user %s: %s", e->user, inner);
        return -1;
    }
    if (!passdb_id(field[2], &e->uid) || !passdb_id(field[3], &e->gid)) {
        snprintf(err, errlen,
                 "user %s: uid and gid must be empty or numbers "
                 "from 0 to 2147483647",
                 e->user);
        return -1;
    }
    if ((bad = passdb_bad_home(field[5])) != NULL) {
        snprintf(err, errlen, "user %s: home '%.200s' %s", e->user, field[5],
                 bad);
        return -1;
    }
    e->home = field[5];
    if (!passdb_text_ok(e->extra, true)) {
        snprintf(err, errlen, "user %s: extra fields hold control characters",
                 e->user);
        return -1;
    }
    return 1;
}

/* ------------------------------------------------------------ the file */

struct passdb {
    char *path;
    char *text; /* the file, entries point into it */
    size_t text_len;
    struct passdb_entry *v;
    size_t n;
    struct htable *users;
    bool loaded;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

const char *passdb_spec_path(const char *spec, char *err, size_t errlen)
{
    size_t n = strlen(PASSDB_SPEC_PREFIX);

    if (strncmp(spec, PASSDB_SPEC_PREFIX, n) != 0) {
        snprintf(err, errlen,
                 "passdb '%.200s': expected passwd-file:/path (the only "
                 "type supported)",
                 spec);
        return NULL;
    }
    if (spec[n] != '/') {
        snprintf(err, errlen, "passdb '%.200s': the path must be absolute",
                 spec);
        return NULL;
    }
    return spec + n;
}

struct passdb *passdb_open(const char *spec, char *err, size_t errlen)
{
    const char *path = passdb_spec_path(spec, err, errlen);
    struct passdb *db;

    if (path == NULL)
        return NULL;
    db = xcalloc(1, sizeof(*db));
    db->path = xstrdup(path);
    return db;
}

static void passdb_forget(char *text, size_t len, struct passdb_entry *v,
                          struct htable *users)
{
    if (text != NULL) {
        explicit_bzero(text, len);
        free(text);
    }
    free(v);
    if (users != NULL)
        htable_free(users, NULL);
}

void passdb_close(struct passdb *db)
{
    if (db == NULL)
        return;
    passdb_forget(db->text, db->text_len, db->v, db->users);
    free(db->path);
    free(db);
}

const char *passdb_path(const struct passdb *db)
{
    return db->path;
}

bool passdb_loaded(const struct passdb *db)
{
    return db->loaded;
}

size_t passdb_count(const struct passdb *db)
{
    return db->n;
}

const struct passdb_entry *passdb_entry_at(const struct passdb *db, size_t i)
{
    return i < db->n ? &db->v[i] : NULL;
}

const struct passdb_entry *passdb_find(const struct passdb *db,
                                       const char *user)
{
    char key[PASSDB_USER_MAX + 1];

    if (!db->loaded || strlen(user) > PASSDB_USER_MAX)
        return NULL;
    str_lcpy(key, user, sizeof(key));
    str_lower(key);
    return htable_get(db->users, key);
}

/* Read fd (at most PASSDB_FILE_MAX bytes) into a NUL-terminated copy. */
static char *passdb_read_fd(int fd, size_t size, size_t *len, char *err,
                            size_t errlen, const char *path)
{
    size_t cap = size + 1, n = 0;
    char *text = xmalloc(cap + 1);

    for (;;) {
        ssize_t r;

        if (n == cap) {
            if (cap > PASSDB_FILE_MAX)
                break;
            text = xrealloc(text, cap * 2 + 1);
            cap *= 2;
        }
        r = read(fd, text + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "read %s: %s", path, strerror(errno));
            explicit_bzero(text, n);
            free(text);
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > PASSDB_FILE_MAX) {
        snprintf(err, errlen, "%s: file larger than %d bytes", path,
                 PASSDB_FILE_MAX);
        explicit_bzero(text, n);
        free(text);
        return NULL;
    }
    text[n] = 0;
    *len = n;
    return text;
}

/* Parse text (modified in place) into a vector and table. */
static int passdb_parse_text(const char *path, char *text, size_t len,
                             struct passdb_entry **out_v, size_t *out_n,
                             struct htable **out_users, char *err,
                             size_t errlen)
{
    struct passdb_entry *v = NULL;
    size_t n = 0, cap = 0;
    struct htable *users = htable_new(64);
    char *line = text, *end = text + len;
    unsigned lineno = 0;
    char why[512];

    if (memchr(text, 0, len) != NULL) {
        snprintf(err, errlen, "%s: file contains a NUL byte", path);
        goto fail;
    }
    while (line < end) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        char *next = nl != NULL ? nl + 1 : end;
        struct passdb_entry e;
        int r;

        lineno++;
        if (nl != NULL)
            *nl = 0;
        if (nl != NULL && nl > line && nl[-1] == '\r')
            nl[-1] = 0;
        r = passdb_parse_line(line, &e, why, sizeof(why));
        if (r < 0) {
            snprintf(err, errlen, "%s:%u: %s", path, lineno, why);
            goto fail;
        }
        if (r > 0) {
            const struct passdb_entry *dup = htable_get(users, e.user);

            if (dup != NULL) {
                snprintf(err, errlen, "%s:%u: user %s is also on line %u", path,
                         lineno, e.user, dup->line);
                goto fail;
            }
            e.line = lineno;
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                v = xreallocarray(v, cap, sizeof(*v));
                /* The table points into v: rebuild it after a move. */
                htable_free(users, NULL);
                users = htable_new(cap);
                for (size_t i = 0; i < n; i++)
                    htable_put(users, v[i].user, &v[i]);
            }
            v[n] = e;
            htable_put(users, v[n].user, &v[n]);
            n++;
        }
        line = next;
    }
    *out_v = v;
    *out_n = n;
    *out_users = users;
    return 0;
fail:
    free(v);
    htable_free(users, NULL);
    return -1;
}

int passdb_refresh(struct passdb *db, char *err, size_t errlen)
{
    struct passdb_entry *v;
    struct htable *users;
    struct stat st;
    size_t len, n;
    char *text;
    int fd;

    if (stat(db->path, &st) < 0) {
        snprintf(err, errlen, "passdb %s: %s", db->path, strerror(errno));
        return -1;
    }
    if (db->loaded && st.st_dev == db->dev && st.st_ino == db->ino &&
        st.st_size == db->size && st.st_mtim.tv_sec == db->mtime.tv_sec &&
        st.st_mtim.tv_nsec == db->mtime.tv_nsec)
        return 0;
    if ((fd = open(db->path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
        snprintf(err, errlen, "passdb %s: %s", db->path, strerror(errno));
        return -1;
    }
    /* What we read is what we remember: stat the descriptor, not the path. */
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "passdb %s: %s", db->path,
                 S_ISREG(st.st_mode) ? strerror(errno) : "not a regular file");
        close(fd);
        return -1;
    }
    text = passdb_read_fd(fd, (size_t)st.st_size, &len, err, errlen, db->path);
    close(fd);
    if (text == NULL)
        return -1;
    if (passdb_parse_text(db->path, text, len, &v, &n, &users, err, errlen) <
        0) {
        explicit_bzero(text, len);
        free(text);
        return -1;
    }
    passdb_forget(db->text, db->text_len, db->v, db->users);
    db->text = text;
    db->text_len = len;
    db->v = v;
    db->n = n;
    db->users = users;
    db->loaded = true;
    db->dev = st.st_dev;
    db->ino = st.st_ino;
    db->size = st.st_size;
    db->mtime = st.st_mtim;
    return 1;
}

/* ------------------------------------------------------------ checking */

/* Equal in time independent of content and of the lengths. */
static int passdb_plain_equal(const char *a, size_t alen, const char *b,
                              size_t blen, char *err, size_t errlen)
{
    unsigned char da[EVP_MAX_MD_SIZE], db[EVP_MAX_MD_SIZE];
    unsigned int la = 0, lb = 0;
    int eq;

    if (EVP_Digest(a, alen, da, &la, EVP_sha256(), NULL) != 1 ||
        EVP_Digest(b, blen, db, &lb, EVP_sha256(), NULL) != 1 || la != lb) {
        snprintf(err, errlen, "SHA-256 failed");
        return -1;
    }
    eq = CRYPTO_memcmp(da, db, la) == 0;
    explicit_bzero(da, sizeof(da));
    explicit_bzero(db, sizeof(db));
    return eq;
}

int passdb_verify(enum passdb_scheme scheme, const char *secret,
                  const char *password, size_t passlen, char *err,
                  size_t errlen)
{
    struct crypt_data *work;
    const char *out;
    size_t slen;
    int rc;

    if (scheme == PASSDB_SCHEME_NONE || passlen > PASSDB_PASSWORD_MAX ||
        memchr(password, 0, passlen) != NULL)
        return 0;
    if (scheme == PASSDB_SCHEME_PLAIN)
        return passdb_plain_equal(password, passlen, secret, strlen(secret),
                                  err, errlen);
    /* crypt(3) wants a C string; password may not be terminated. */
    work = xcalloc(1, sizeof(*work) + passlen + 1);
    {
        char *phrase = (char *)(work + 1);

        memcpy(phrase, password, passlen);
        errno = 0;
        out = crypt_rn(phrase, secret, work, (int)sizeof(*work));
        if (out == NULL || out[0] == '*') {
            snprintf(err, errlen, "crypt(3) cannot check this hash: %s",
                     errno ? strerror(errno) : "unsupported method");
            rc = -1;
        } else {
            slen = strlen(secret);
            rc = strlen(out) == slen && CRYPTO_memcmp(out, secret, slen) == 0;
        }
    }
    explicit_bzero(work, sizeof(*work) + passlen + 1);
    free(work);
    return rc;
}

int passdb_hash(enum passdb_scheme scheme, const char *password,
                struct buf *out, char *err, size_t errlen)
{
    const struct passdb_scheme_info *info = passdb_scheme_info(scheme);
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *work;
    size_t len = strlen(password);
    const char *prefix, *hash;
    int rc = -1;

    if (info == NULL || (info->gensalt == NULL && info->prefix != NULL)) {
        snprintf(err, errlen, "passwords cannot be created with scheme %s",
                 passdb_scheme_name(scheme));
        return -1;
    }
    if (len == 0 || len > PASSDB_PASSWORD_MAX) {
        snprintf(err, errlen, "a password must have 1 to %d bytes",
                 PASSDB_PASSWORD_MAX);
        return -1;
    }
    if (scheme == PASSDB_SCHEME_PLAIN) {
        if (strchr(password, ':') != NULL || !passdb_text_ok(password, true)) {
            snprintf(err, errlen,
                     "a {PLAIN} password may not contain ':' "
                     "or control characters");
            return -1;
        }
        buf_printf(out, "{%s}%s", info->written, password);
        return 0;
    }
    prefix = *info->gensalt ? info->gensalt : crypt_preferred_method();
    errno = 0;
    /* NULL entropy: libxcrypt reads its own from the kernel. */
    if (crypt_gensalt_rn(prefix, info->cost, NULL, 0, setting,
                         sizeof(setting)) == NULL ||
        setting[0] == '*') {
        snprintf(err, errlen, "crypt_gensalt(%s): %s", prefix,
                 errno ? strerror(errno) : "method not supported");
        return -1;
    }
    work = xcalloc(1, sizeof(*work));
    errno = 0;
    hash = crypt_rn(password, setting, work, (int)sizeof(*work));
    if (hash == NULL || hash[0] == '*') {
        snprintf(err, errlen, "crypt(3) with %s: %s", prefix,
                 errno ? strerror(errno) : "failed");
    } else {
        buf_printf(out, "{%s}%s", info->written, hash);
        rc = 0;
    }
    explicit_bzero(work, sizeof(*work));
    free(work);
    return rc;
}
