/*
 * imap_store - one user's Maildir++ store: mailbox names, folders
 * (create, delete, rename, subscriptions, LIST), STATUS and APPEND.
 * The per-session view of an open mailbox is imap_mailbox.c, the index
 * imap_index.c, the file scan imap_maildir.c.
 *
 * Mailbox names come from the client: they are checked (modified
 * UTF-7, no empty level, no "/") before any path is made from them,
 * so a name can never leave the Maildir root.  The process runs as the
 * mailbox owner; nothing here changes privileges.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "global/maildir.h"
#include "imapd/imap_store.h"
#include "imapd/imap_store_impl.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/procpid.h"

static const struct {
    const char *name;
    unsigned attr;
} special_use[] = {{"Drafts", IMAP_LIST_DRAFTS},
                   {"Sent", IMAP_LIST_SENT},
                   {"Trash", IMAP_LIST_TRASH},
                   {"Junk", IMAP_LIST_JUNK},
                   {"Archive", IMAP_LIST_ARCHIVE}};

#define N_SPECIAL (sizeof(special_use) / sizeof(special_use[0]))

/* ---- the store ---- */

struct imap_store *imap_store_open(const char *root, char *err, size_t errlen)
{
    struct imap_store *st;
    struct buf host = BUF_INIT;
    char name[256];

    if (maildir_create(root, err, errlen) < 0)
        return NULL;
    st = xcalloc(1, sizeof(*st));
    st->root = xstrdup(root);
    if (gethostname(name, sizeof(name)) < 0 || name[0] == 0)
        str_lcpy(name, "localhost", sizeof(name));
    name[sizeof(name) - 1] = 0;
    maildir_host_name(&host, name);
    st->host = buf_steal(&host);
    return st;
}

void imap_store_close(struct imap_store *st)
{
    if (st == NULL)
        return;
    free(st->root);
    free(st->host);
    free(st);
}

const char *imap_store_root(const struct imap_store *st)
{
    return st->root;
}

void imap_store_unique_name(struct imap_store *st, struct buf *out,
                            long long size)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    buf_printf(out, "%lld.M%ldP%ldQ%lu.%s,S=%lld", (long long)tv.tv_sec,
               (long)tv.tv_usec, (long)proc_pid(), ++st->counter, st->host,
               size);
}

/* ---- modified UTF-7 (RFC 3501 5.1.3) ---- */

static const char mb64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static void put_utf8(struct buf *out, uint32_t cp)
{
    if (cp < 0x80) {
        buf_putc(out, (char)cp);
    } else if (cp < 0x800) {
        buf_putc(out, (char)(0xc0 | (cp >> 6)));
        buf_putc(out, (char)(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
        buf_putc(out, (char)(0xe0 | (cp >> 12)));
        buf_putc(out, (char)(0x80 | ((cp >> 6) & 0x3f)));
        buf_putc(out, (char)(0x80 | (cp & 0x3f)));
    } else {
        buf_putc(out, (char)(0xf0 | (cp >> 18)));
        buf_putc(out, (char)(0x80 | ((cp >> 12) & 0x3f)));
        buf_putc(out, (char)(0x80 | ((cp >> 6) & 0x3f)));
        buf_putc(out, (char)(0x80 | (cp & 0x3f)));
    }
}

int imap_mutf7_to_utf8(const char *in, struct buf *out)
{
    const unsigned char *p = (const unsigned char *)in;

    while (*p) {
        uint32_t acc = 0, hi = 0;
        int bits = 0;
        size_t units = 0;

        if (*p < 0x20 || *p > 0x7e)
            return -1;
        if (*p != '&') {
            buf_putc(out, (char)*p++);
            continue;
        }
        p++;
        if (*p == '-') {
            buf_putc(out, '&');
            p++;
            continue;
        }
        for (; *p && *p != '-'; p++) {
            const char *q = strchr(mb64, *p);

            if (q == NULL || *p == 0)
                return -1;
            acc = (acc << 6) | (uint32_t)(q - mb64);
            bits += 6;
            if (bits >= 16) {
                uint32_t u;

                bits -= 16;
                u = (acc >> bits) & 0xffff;
                units++;
                if (hi) {
                    if (u < 0xdc00 || u > 0xdfff)
                        return -1;
                    put_utf8(out, 0x10000 + ((hi - 0xd800) << 10) +
                                      (u - 0xdc00));
                    hi = 0;
                } else if (u >= 0xd800 && u <= 0xdbff) {
                    hi = u;
                } else if (u >= 0xdc00 && u <= 0xdfff) {
                    return -1;
                } else if (u >= 0x20 && u <= 0x7e) {
                    return -1; /* printable ASCII must not be encoded */
                } else {
                    put_utf8(out, u);
                }
            }
        }
        /* Terminated by '-', no dangling surrogate, zero padding bits. */
        if (*p != '-' || hi || units == 0 || bits >= 6 ||
            (acc & ((1u << bits) - 1)) != 0)
            return -1;
        p++;
    }
    return 0;
}

static void flush_b64(struct buf *out, const uint16_t *u, size_t n)
{
    uint32_t acc = 0;
    int bits = 0;

    buf_putc(out, '&');
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 16) | u[i];
        bits += 16;
        while (bits >= 6) {
            bits -= 6;
            buf_putc(out, mb64[(acc >> bits) & 0x3f]);
        }
    }
    if (bits > 0)
        buf_putc(out, mb64[(acc << (6 - bits)) & 0x3f]);
    buf_putc(out, '-');
}

int imap_utf8_to_mutf7(const char *in, struct buf *out)
{
    const unsigned char *p = (const unsigned char *)in;
    uint16_t units[256];
    size_t n = 0;

    while (*p) {
        uint32_t cp;
        int len;

        if (*p >= 0x20 && *p <= 0x7e) {
            if (n) {
                flush_b64(out, units, n);
                n = 0;
            }
            if (*p == '&')
                buf_puts(out, "&-");
            else
                buf_putc(out, (char)*p);
            p++;
            continue;
        }
        if (*p < 0x80)
            return -1; /* control characters */
        if ((*p & 0xe0) == 0xc0)
            cp = *p & 0x1f, len = 1;
        else if ((*p & 0xf0) == 0xe0)
            cp = *p & 0x0f, len = 2;
        else if ((*p & 0xf8) == 0xf0)
            cp = *p & 0x07, len = 3;
        else
            return -1;
        for (int i = 1; i <= len; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return -1;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if (cp < 0x80 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return -1;
        p += len + 1;
        if (n + 2 > sizeof(units) / sizeof(units[0])) {
            flush_b64(out, units, n);
            n = 0;
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            units[n++] = (uint16_t)(0xd800 + (cp >> 10));
            units[n++] = (uint16_t)(0xdc00 + (cp & 0x3ff));
        } else {
            units[n++] = (uint16_t)cp;
        }
    }
    if (n)
        flush_b64(out, units, n);
    return 0;
}

/* ---- names ---- */

bool imap_mailbox_is_inbox(const char *name)
{
    return strcasecmp(name, "INBOX") == 0;
}

bool imap_mailbox_name_valid(const char *name)
{
    struct buf u = BUF_INIT;
    size_t len = strlen(name), levels = 1;
    bool ok;

    if (len == 0 || len > IMAP_MAILBOX_NAME_MAX || name[0] == '~' ||
        name[0] == IMAP_HIERARCHY_SEP || name[len - 1] == IMAP_HIERARCHY_SEP)
        return false;
    for (const char *p = name; *p; p++) {
        if (*p == '/' || *p == '*' || *p == '%' || *p == '\\')
            return false;
        if (*p == IMAP_HIERARCHY_SEP) {
            if (p[1] == IMAP_HIERARCHY_SEP)
                return false;
            levels++;
        }
    }
    if (levels > IMAP_MAILBOX_LEVELS_MAX)
        return false;
    ok = imap_mutf7_to_utf8(name, &u) == 0;
    buf_free(&u);
    return ok;
}

/* The name with a leading "inbox" level spelled "INBOX"; NULL: invalid. */
static char *canonical_name(const char *name)
{
    char *c;

    if (!imap_mailbox_name_valid(name))
        return NULL;
    c = xstrdup(name);
    if (strncasecmp(c, "INBOX", 5) == 0 &&
        (c[5] == 0 || c[5] == IMAP_HIERARCHY_SEP))
        memcpy(c, "INBOX", 5);
    return c;
}

char *imap_store_mailbox_dir(struct imap_store *st, const char *name)
{
    char *c = canonical_name(name), *dir;

    if (c == NULL)
        return NULL;
    if (strcmp(c, "INBOX") == 0)
        dir = xstrdup(st->root);
    else
        dir = xasprintf("%s/.%s", st->root, c);
    free(c);
    return dir;
}

static bool is_maildir(const char *dir)
{
    char *cur = xasprintf("%s/cur", dir);
    struct stat sb;
    bool ok = stat(cur, &sb) == 0 && S_ISDIR(sb.st_mode);

    free(cur);
    return ok;
}

bool imap_store_mailbox_exists(struct imap_store *st, const char *name)
{
    char *dir = imap_store_mailbox_dir(st, name);
    bool ok = dir && is_maildir(dir);

    free(dir);
    return ok;
}

/* ---- listing the folders on disk ---- */

struct names {
    char **v;
    size_t n;
};

static void names_free(struct names *n)
{
    for (size_t i = 0; i < n->n; i++)
        free(n->v[i]);
    free(n->v);
    n->v = NULL;
    n->n = 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Folder names (without INBOX) found under the root, sorted. */
static int folder_names(struct imap_store *st, struct names *out, char *err,
                        size_t errlen)
{
    DIR *d = opendir(st->root);
    struct dirent *de;

    memset(out, 0, sizeof(*out));
    if (d == NULL) {
        snprintf(err, errlen, "opendir %s: %s", st->root, strerror(errno));
        return IMAP_STORE_ERR;
    }
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        char *path;
        bool ok;

        if (n[0] != '.' || n[1] == 0 || n[1] == '.' ||
            !imap_mailbox_name_valid(n + 1))
            continue;
        if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN &&
            de->d_type != DT_LNK)
            continue;
        path = xasprintf("%s/%s", st->root, n);
        ok = is_maildir(path);
        free(path);
        if (!ok || out->n >= IMAP_FOLDERS_MAX * 2)
            continue;
        out->v = xreallocarray(out->v, out->n + 1, sizeof(*out->v));
        out->v[out->n++] = xstrdup(n + 1);
    }
    closedir(d);
    if (out->n)
        qsort(out->v, out->n, sizeof(*out->v), cmp_str);
    return IMAP_STORE_OK;
}

/* ---- subscriptions ---- */

static int lock_root(struct imap_store *st)
{
    int fd = open(st->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd >= 0)
        flock(fd, LOCK_EX);
    return fd;
}

static void unlock_root(int fd)
{
    if (fd >= 0)
        close(fd);
}

static void read_subscriptions(struct imap_store *st, struct names *out)
{
    char *path = xasprintf("%s/%s", st->root, IMAP_SUBSCRIPTIONS_FILE);
    struct buf b = BUF_INIT;
    char *line, *save = NULL;

    memset(out, 0, sizeof(*out));
    if (file_read_all(path, &b, 4 * 1024 * 1024) == 0 && b.data) {
        for (line = strtok_r(b.data, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
            size_t l = strlen(line);

            if (l && line[l - 1] == '\r')
                line[--l] = 0;
            /* Dovecot 2.3 "V\t2" header lines and tabs are not names. */
            if (l == 0 || strchr(line, '\t') || !imap_mailbox_name_valid(line))
                continue;
            if (out->n >= IMAP_FOLDERS_MAX * 2)
                break;
            out->v = xreallocarray(out->v, out->n + 1, sizeof(*out->v));
            out->v[out->n++] = xstrdup(line);
        }
    }
    buf_free(&b);
    free(path);
}

static int write_subscriptions(struct imap_store *st, const struct names *n,
                               char *err, size_t errlen)
{
    char *path = xasprintf("%s/%s", st->root, IMAP_SUBSCRIPTIONS_FILE);
    struct buf b = BUF_INIT;
    int rc = IMAP_STORE_OK;

    for (size_t i = 0; i < n->n; i++)
        buf_printf(&b, "%s\n", n->v[i]);
    if (file_write_atomic(path, b.data ? b.data : "", b.len, 0600) < 0) {
        snprintf(err, errlen, "write %s: %s", path, strerror(errno));
        rc = IMAP_STORE_ERR;
    }
    buf_free(&b);
    free(path);
    return rc;
}

static int subscribe_locked(struct imap_store *st, const char *name, bool on,
                            char *err, size_t errlen)
{
    struct names n;
    size_t i;
    int rc = IMAP_STORE_OK;

    read_subscriptions(st, &n);
    for (i = 0; i < n.n && strcmp(n.v[i], name) != 0; i++)
        ;
    if (on && i == n.n) {
        if (n.n >= IMAP_FOLDERS_MAX * 2) {
            snprintf(err, errlen, "too many subscriptions");
            names_free(&n);
            return IMAP_STORE_LIMIT;
        }
        n.v = xreallocarray(n.v, n.n + 1, sizeof(*n.v));
        n.v[n.n++] = xstrdup(name);
        rc = write_subscriptions(st, &n, err, errlen);
    } else if (!on && i < n.n) {
        free(n.v[i]);
        memmove(&n.v[i], &n.v[i + 1], (n.n - i - 1) * sizeof(*n.v));
        n.n--;
        rc = write_subscriptions(st, &n, err, errlen);
    }
    names_free(&n);
    return rc;
}

int imap_store_subscribe(struct imap_store *st, const char *name, bool on,
                         char *err, size_t errlen)
{
    char *c = canonical_name(name);
    int fd, rc;

    if (c == NULL) {
        snprintf(err, errlen, "invalid mailbox name");
        return IMAP_STORE_BADNAME;
    }
    fd = lock_root(st);
    rc = subscribe_locked(st, c, on, err, errlen);
    unlock_root(fd);
    free(c);
    return rc;
}

/* ---- create, delete, rename ---- */

static int make_folder(const char *dir, char *err, size_t errlen)
{
    char *marker;
    int fd;

    if (maildir_create(dir, err, errlen) < 0)
        return IMAP_STORE_ERR;
    marker = xasprintf("%s/%s", dir, IMAP_MAILDIRFOLDER_FILE);
    fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    free(marker);
    return IMAP_STORE_OK;
}

int imap_store_create(struct imap_store *st, const char *name, char *err,
                      size_t errlen)
{
    char *c = canonical_name(name), *dir;
    struct names existing;
    int rc;

    if (c == NULL) {
        snprintf(err, errlen, "invalid mailbox name");
        return IMAP_STORE_BADNAME;
    }
    if (strcmp(c, "INBOX") == 0) {
        free(c);
        snprintf(err, errlen, "INBOX always exists");
        return IMAP_STORE_EXISTS;
    }
    if (folder_names(st, &existing, err, errlen) != IMAP_STORE_OK) {
        free(c);
        return IMAP_STORE_ERR;
    }
    if (existing.n >= IMAP_FOLDERS_MAX) {
        names_free(&existing);
        free(c);
        snprintf(err, errlen, "too many folders");
        return IMAP_STORE_LIMIT;
    }
    names_free(&existing);
    dir = xasprintf("%s/.%s", st->root, c);
    if (mkdir(dir, 0700) < 0) {
        rc = errno == EEXIST ? IMAP_STORE_EXISTS : IMAP_STORE_ERR;
        if (rc == IMAP_STORE_EXISTS && !is_maildir(dir))
            rc = make_folder(dir, err, errlen); /* a half-made folder */
        else
            snprintf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
        free(dir);
        free(c);
        return rc;
    }
    rc = make_folder(dir, err, errlen);
    free(dir);
    /* Superior levels are created too (RFC 3501 6.3.3). */
    for (char *p = strrchr(c, IMAP_HIERARCHY_SEP); rc == IMAP_STORE_OK && p;
         p = strrchr(c, IMAP_HIERARCHY_SEP)) {
        *p = 0;
        if (strcmp(c, "INBOX") == 0)
            break;
        dir = xasprintf("%s/.%s", st->root, c);
        if (!is_maildir(dir))
            rc = make_folder(dir, err, errlen);
        free(dir);
    }
    free(c);
    return rc;
}

/* rm -r of a directory we renamed out of the way (bounded depth). */
static void remove_tree(const char *path, int depth)
{
    DIR *d = opendir(path);
    struct dirent *de;

    if (d != NULL && depth < 4) {
        while ((de = readdir(d)) != NULL) {
            char *p;
            struct stat sb;

            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            p = xasprintf("%s/%s", path, de->d_name);
            if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
                remove_tree(p, depth + 1);
            else if (unlink(p) < 0)
                log_warn("imap: unlink %s: %m", p);
            free(p);
        }
    }
    if (d)
        closedir(d);
    if (rmdir(path) < 0)
        log_warn("imap: rmdir %s: %m", path);
}

static bool has_children(const struct names *n, const char *name)
{
    size_t l = strlen(name);

    for (size_t i = 0; i < n->n; i++)
        if (strncmp(n->v[i], name, l) == 0 && n->v[i][l] == IMAP_HIERARCHY_SEP)
            return true;
    return false;
}

int imap_store_delete(struct imap_store *st, const char *name, char *err,
                      size_t errlen)
{
    char *c = canonical_name(name), *dir = NULL, *trash = NULL;
    struct names n = {NULL, 0};
    int rc = IMAP_STORE_OK;

    if (c == NULL) {
        snprintf(err, errlen, "invalid mailbox name");
        return IMAP_STORE_BADNAME;
    }
    if (strcmp(c, "INBOX") == 0) {
        snprintf(err, errlen, "INBOX cannot be deleted");
        rc = IMAP_STORE_CANNOT;
        goto out;
    }
    dir = xasprintf("%s/.%s", st->root, c);
    if (!is_maildir(dir)) {
        snprintf(err, errlen, "no such mailbox");
        rc = IMAP_STORE_NONEXISTENT;
        goto out;
    }
    if ((rc = folder_names(st, &n, err, errlen)) != IMAP_STORE_OK)
        goto out;
    if (has_children(&n, c)) {
        snprintf(err, errlen, "mailbox has children, delete them first");
        rc = IMAP_STORE_CANNOT;
        goto out;
    }
    /* Out of sight first (atomic), then removed at leisure. */
    trash = xasprintf("%s/..posthorn-deleted.%ld.%lu", st->root,
                      (long)proc_pid(), ++st->counter);
    if (rename(dir, trash) < 0) {
        snprintf(err, errlen, "rename %s: %s", dir, strerror(errno));
        rc = errno == ENOENT ? IMAP_STORE_NONEXISTENT : IMAP_STORE_ERR;
        goto out;
    }
    remove_tree(trash, 0);
out:
    names_free(&n);
    free(trash);
    free(dir);
    free(c);
    return rc;
}

/* Move every message file of INBOX into the folder at to (RFC 3501). */
static int rename_inbox(struct imap_store *st, const char *to, char *err,
                        size_t errlen)
{
    static const char *const subs[] = {"cur", "new"};

    for (size_t i = 0; i < 2; i++) {
        char *from_dir = xasprintf("%s/%s", st->root, subs[i]);
        DIR *d = opendir(from_dir);
        struct dirent *de;

        if (d == NULL) {
            snprintf(err, errlen, "opendir %s: %s", from_dir, strerror(errno));
            free(from_dir);
            return IMAP_STORE_ERR;
        }
        while ((de = readdir(d)) != NULL) {
            char *a, *b;

            if (de->d_name[0] == '.')
                continue;
            a = xasprintf("%s/%s", from_dir, de->d_name);
            b = xasprintf("%s/%s/%s", to, subs[i], de->d_name);
            if (rename(a, b) < 0 && errno != ENOENT)
                log_warn("imap: rename %s to %s: %m", a, b);
            free(a);
            free(b);
        }
        closedir(d);
        free(from_dir);
    }
    return IMAP_STORE_OK;
}

int imap_store_rename(struct imap_store *st, const char *from, const char *to,
                      char *err, size_t errlen)
{
    char *f = canonical_name(from), *t = canonical_name(to);
    char *fdir = NULL, *tdir = NULL, *parent = NULL;
    struct names n = {NULL, 0}, subs = {NULL, 0};
    size_t flen;
    int rc = IMAP_STORE_OK, fd = -1;

    if (f == NULL || t == NULL) {
        snprintf(err, errlen, "invalid mailbox name");
        rc = IMAP_STORE_BADNAME;
        goto out;
    }
    flen = strlen(f);
    if (strcmp(t, "INBOX") == 0) {
        snprintf(err, errlen, "INBOX already exists");
        rc = IMAP_STORE_EXISTS;
        goto out;
    }
    if (strncmp(t, f, flen) == 0 && (t[flen] == 0 || t[flen] == '.')) {
        snprintf(err, errlen, "cannot rename a mailbox into itself");
        rc = IMAP_STORE_CANNOT;
        goto out;
    }
    tdir = xasprintf("%s/.%s", st->root, t);
    if (is_maildir(tdir)) {
        snprintf(err, errlen, "target mailbox exists");
        rc = IMAP_STORE_EXISTS;
        goto out;
    }
    if (strcmp(f, "INBOX") == 0) {
        rc = imap_store_create(st, t, err, errlen);
        if (rc == IMAP_STORE_OK)
            rc = rename_inbox(st, tdir, err, errlen);
        goto out;
    }
    fdir = xasprintf("%s/.%s", st->root, f);
    if (!is_maildir(fdir)) {
        snprintf(err, errlen, "no such mailbox");
        rc = IMAP_STORE_NONEXISTENT;
        goto out;
    }
    if ((rc = folder_names(st, &n, err, errlen)) != IMAP_STORE_OK)
        goto out;
    /* Parents of the new name first, then the folder, then children. */
    parent = xstrdup(t);
    if (strrchr(parent, '.')) {
        *strrchr(parent, '.') = 0;
        if (strcmp(parent, "INBOX") != 0 &&
            (rc = imap_store_create(st, parent, err, errlen)) != IMAP_STORE_OK &&
            rc != IMAP_STORE_EXISTS)
            goto out;
        rc = IMAP_STORE_OK;
    }
    if (rename(fdir, tdir) < 0) {
        snprintf(err, errlen, "rename %s: %s", fdir, strerror(errno));
        rc = errno == ENOENT ? IMAP_STORE_NONEXISTENT : IMAP_STORE_ERR;
        goto out;
    }
    for (size_t i = 0; i < n.n; i++) {
        if (strncmp(n.v[i], f, flen) == 0 && n.v[i][flen] == '.') {
            char *a = xasprintf("%s/.%s", st->root, n.v[i]);
            char *b = xasprintf("%s/.%s%s", st->root, t, n.v[i] + flen);

            if (rename(a, b) < 0)
                log_warn("imap: rename %s to %s: %m", a, b);
            free(a);
            free(b);
        }
    }
    /* Subscriptions follow the folder and its children. */
    fd = lock_root(st);
    read_subscriptions(st, &subs);
    {
        bool dirty = false;

        for (size_t i = 0; i < subs.n; i++) {
            if (strncmp(subs.v[i], f, flen) == 0 &&
                (subs.v[i][flen] == 0 || subs.v[i][flen] == '.')) {
                char *nn = xasprintf("%s%s", t, subs.v[i] + flen);

                free(subs.v[i]);
                subs.v[i] = nn;
                dirty = true;
            }
        }
        if (dirty)
            write_subscriptions(st, &subs, err, errlen);
    }
    unlock_root(fd);
out:
    names_free(&n);
    names_free(&subs);
    free(parent);
    free(fdir);
    free(tdir);
    free(f);
    free(t);
    return rc;
}

int imap_store_ensure_special(struct imap_store *st, char *err, size_t errlen)
{
    for (size_t i = 0; i < N_SPECIAL; i++) {
        int rc;

        if (imap_store_mailbox_exists(st, special_use[i].name))
            continue;
        rc = imap_store_create(st, special_use[i].name, err, errlen);
        if (rc != IMAP_STORE_OK && rc != IMAP_STORE_EXISTS)
            return rc;
        rc = imap_store_subscribe(st, special_use[i].name, true, err, errlen);
        if (rc != IMAP_STORE_OK)
            return rc;
    }
    return IMAP_STORE_OK;
}

/* ---- LIST ---- */

static unsigned special_attr(const char *name)
{
    for (size_t i = 0; i < N_SPECIAL; i++)
        if (strcmp(name, special_use[i].name) == 0)
            return special_use[i].attr;
    return 0;
}

static bool names_has(const struct names *n, const char *name)
{
    return n->n > 0 &&
           bsearch(&name, n->v, n->n, sizeof(*n->v), cmp_str) != NULL;
}

static void list_add(struct imap_list *l, const char *name, unsigned attrs)
{
    l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
    l->v[l->n].name = xstrdup(name);
    l->v[l->n].attrs = attrs;
    l->n++;
}

static int cmp_entry(const void *a, const void *b)
{
    const struct imap_list_entry *x = a, *y = b;
    bool xi = strcmp(x->name, "INBOX") == 0, yi = strcmp(y->name, "INBOX") == 0;

    if (xi != yi)
        return xi ? -1 : 1;
    return strcmp(x->name, y->name);
}

int imap_store_list(struct imap_store *st, bool subscribed,
                    struct imap_list *out, char *err, size_t errlen)
{
    struct names folders, subs, all = {NULL, 0};
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = folder_names(st, &folders, err, errlen)) != IMAP_STORE_OK)
        return rc;
    read_subscriptions(st, &subs);
    if (subs.n)
        qsort(subs.v, subs.n, sizeof(*subs.v), cmp_str);
    /* Every existing name plus the missing levels above them. */
    for (size_t i = 0; i < folders.n; i++) {
        const char *f = folders.v[i];

        all.v = xreallocarray(all.v, all.n + IMAP_MAILBOX_LEVELS_MAX + 1,
                              sizeof(*all.v));
        all.v[all.n++] = xstrdup(f);
        for (const char *p = strchr(f, '.'); p; p = strchr(p + 1, '.'))
            all.v[all.n++] = xstrndup(f, (size_t)(p - f));
    }
    if (all.n) {
        size_t j = 0;

        qsort(all.v, all.n, sizeof(*all.v), cmp_str);
        for (size_t i = 0; i < all.n; i++) {
            if (j > 0 && strcmp(all.v[j - 1], all.v[i]) == 0)
                free(all.v[i]);
            else
                all.v[j++] = all.v[i];
        }
        all.n = j;
    }
    if (!subscribed) {
        bool inbox_kids = has_children(&folders, "INBOX");

        list_add(out, "INBOX",
                 (inbox_kids ? IMAP_LIST_HASCHILDREN : IMAP_LIST_HASNOCHILDREN) |
                     (names_has(&subs, "INBOX") ? IMAP_LIST_SUBSCRIBED : 0));
        for (size_t i = 0; i < all.n; i++) {
            const char *name = all.v[i];
            unsigned a = has_children(&all, name) ? IMAP_LIST_HASCHILDREN
                                                  : IMAP_LIST_HASNOCHILDREN;

            if (strcmp(name, "INBOX") == 0)
                continue; /* a stray ".INBOX" directory */
            if (!names_has(&folders, name))
                a |= IMAP_LIST_NOSELECT;
            if (names_has(&subs, name))
                a |= IMAP_LIST_SUBSCRIBED;
            list_add(out, name, a | special_attr(name));
        }
    } else {
        for (size_t i = 0; i < subs.n; i++) {
            const char *name = subs.v[i];
            bool exists = strcmp(name, "INBOX") == 0 || names_has(&folders, name);
            unsigned a = IMAP_LIST_SUBSCRIBED | special_attr(name);

            if (!exists)
                a |= names_has(&all, name) ? IMAP_LIST_NOSELECT
                                           : IMAP_LIST_NONEXISTENT;
            if (has_children(&all, name))
                a |= IMAP_LIST_HASCHILDREN;
            else
                a |= IMAP_LIST_HASNOCHILDREN;
            list_add(out, name, a);
        }
    }
    if (out->n)
        qsort(out->v, out->n, sizeof(*out->v), cmp_entry);
    names_free(&folders);
    names_free(&subs);
    names_free(&all);
    return IMAP_STORE_OK;
}

void imap_list_free(struct imap_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].name);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static bool match_from(const char *pat, const char *name, int depth)
{
    if (depth > 64)
        return false;
    for (; *pat; pat++, name++) {
        if (*pat == '*' || *pat == '%') {
            /* Try every split; '%' does not cross the separator. */
            for (const char *n = name;; n++) {
                if (match_from(pat + 1, n, depth + 1))
                    return true;
                if (*n == 0 || (*pat == '%' && *n == IMAP_HIERARCHY_SEP))
                    return false;
            }
        }
        if (*name == 0 || *pat != *name)
            return false;
    }
    return *name == 0;
}

bool imap_list_match(const char *pattern, const char *name)
{
    char *p = xstrdup(pattern);
    bool ok;

    /* "INBOX" is case-insensitive in patterns as in names. */
    if (strncasecmp(p, "INBOX", 5) == 0 &&
        (p[5] == 0 || p[5] == IMAP_HIERARCHY_SEP || p[5] == '*' || p[5] == '%'))
        memcpy(p, "INBOX", 5);
    ok = match_from(p, name, 0);
    free(p);
    return ok;
}

void imap_list_attrs_format(unsigned attrs, struct buf *out)
{
    static const struct {
        unsigned bit;
        const char *text;
    } names[] = {{IMAP_LIST_NOSELECT, "\\Noselect"},
                 {IMAP_LIST_NONEXISTENT, "\\NonExistent"},
                 {IMAP_LIST_HASCHILDREN, "\\HasChildren"},
                 {IMAP_LIST_HASNOCHILDREN, "\\HasNoChildren"},
                 {IMAP_LIST_SUBSCRIBED, "\\Subscribed"},
                 {IMAP_LIST_DRAFTS, "\\Drafts"},
                 {IMAP_LIST_SENT, "\\Sent"},
                 {IMAP_LIST_TRASH, "\\Trash"},
                 {IMAP_LIST_JUNK, "\\Junk"},
                 {IMAP_LIST_ARCHIVE, "\\Archive"}};
    bool first = true;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!(attrs & names[i].bit))
            continue;
        if (!first)
            buf_putc(out, ' ');
        buf_puts(out, names[i].text);
        first = false;
    }
}

/* ---- STATUS ---- */

int imap_store_status(struct imap_store *st, const char *name,
                      struct imap_status *out, char *err, size_t errlen)
{
    int status;
    struct imap_mailbox *mb =
        imap_mailbox_open(st, name, IMAP_OPEN_READONLY, &status, err, errlen);
    uint32_t n;

    if (mb == NULL)
        return status;
    memset(out, 0, sizeof(*out));
    n = imap_mailbox_count(mb);
    out->messages = n;
    out->recent = imap_mailbox_recent(mb);
    out->uidnext = imap_mailbox_uidnext(mb);
    out->uidvalidity = imap_mailbox_uidvalidity(mb);
    out->highestmodseq = imap_mailbox_highestmodseq(mb);
    for (uint32_t i = 1; i <= n; i++)
        if (!(imap_mailbox_msg(mb, i)->flags & IMAP_FLAG_SEEN))
            out->unseen++;
    imap_mailbox_close(mb);
    return IMAP_STORE_OK;
}
