/*
 * pop3d_maildir - the mailbox of one POP3 session: the lock, the
 * snapshot of the Maildir taken at login, unique-ids, sizes, and the
 * UPDATE state's removals.
 *
 * Runs as the mailbox owner (pop3d_login switched to it).  Trusts the
 * Maildir's layout as local (global/maildir.h) writes it, and nothing
 * else about the file names in it: a name that is no valid unique-id
 * gets a hashed one, an entry that is no regular file is skipped.
 *
 * Choices, Dovecot's where it has one:
 *   - the lock is flock() on POP3D_LOCK_FILE in the Maildir, held for the
 *     session: the kernel drops it when the process ends, so a crash
 *     never leaves a stale lock behind;
 *   - at login new/ is moved to cur/ (":2," added), as Dovecot does when
 *     it opens a mailbox, and cur/ is the snapshot: mail delivered later
 *     waits for the next session;
 *   - the UIDL is the file's base name (the name up to ":2,"), which the
 *     move and flag changes by IMAP clients keep; RETR'd messages that
 *     stay get the Seen flag at QUIT (Dovecot's pop3_no_flag_updates=no);
 *   - sizes are Dovecot's ",W=<n>" from the name when present, else
 *     counted by reading the file once, then kept for the session.
 *
 * Another program may rename a message (flags) while we hold it: opens
 * and removals then look the base name up in cur/ again.  A message
 * removed by someone else counts as removed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "global/maildir.h"
#include "pop3d/pop3d.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/htable.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* ---------------------------------------------------------- names */

size_t pop3d_base_len(const char *name)
{
    const char *colon = strchr(name, ':');

    return colon != NULL ? (size_t)(colon - name) : strlen(name);
}

void pop3d_uidl(const char *name, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    size_t len = pop3d_base_len(name);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    bool ok = len > 0 && len <= POP3D_UIDL_MAX;
    size_t i;

    for (i = 0; ok && i < len; i++)
        if ((unsigned char)name[i] < 0x21 || (unsigned char)name[i] > 0x7e)
            ok = false;
    if (ok) {
        snprintf(out, outlen, "%.*s", (int)len, name);
        return;
    }
    if (EVP_Digest(name, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
        mdlen < 16)
        log_panic("SHA-256 digest failed");
    if (outlen < 34)
        log_panic("pop3d_uidl: output buffer too small");
    out[0] = 'H';
    for (i = 0; i < 16; i++) {
        out[1 + 2 * i] = hex[md[i] >> 4];
        out[2 + 2 * i] = hex[md[i] & 15];
    }
    out[33] = 0;
}

long long pop3d_name_vsize(const char *name)
{
    size_t base = pop3d_base_len(name);
    const char *p = name;

    while ((p = strstr(p, ",W=")) != NULL && (size_t)(p - name) < base) {
        long long n = 0;
        const char *d = p + 3;

        if (*d >= '0' && *d <= '9') {
            for (; *d >= '0' && *d <= '9' && n < (1LL << 50); d++)
                n = n * 10 + (*d - '0');
            if ((*d == ',' || *d == ':' || *d == 0) && n < (1LL << 50))
                return n;
        }
        p += 3;
    }
    return -1;
}

/* Ordering keys: "<sec>.…M<usec>…": local's names sort by delivery. */
static void name_time(const char *name, long long *sec, long long *usec)
{
    const char *p = name, *end;

    *sec = 0;
    *usec = 0;
    for (; *p >= '0' && *p <= '9' && *sec < (1LL << 40); p++)
        *sec = *sec * 10 + (*p - '0');
    if (*p != '.')
        return;
    end = strchr(p + 1, '.');
    for (p++; end != NULL && p < end; p++) {
        if (*p == 'M' && p[1] >= '0' && p[1] <= '9') {
            for (p++; *p >= '0' && *p <= '9' && *usec < 10000000; p++)
                *usec = *usec * 10 + (*p - '0');
            return;
        }
    }
}

static int msg_cmp(const void *a, const void *b)
{
    const struct pop3d_msg *x = a, *y = b;

    if (x->sec != y->sec)
        return x->sec < y->sec ? -1 : 1;
    if (x->usec != y->usec)
        return x->usec < y->usec ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* ---------------------------------------------------------- lock */

int pop3d_mbox_lock(const char *dir, int *fd, char *err, size_t errlen)
{
    struct buf path = BUF_INIT;
    int lfd;

    buf_printf(&path, "%s%s", dir, POP3D_LOCK_FILE);
    lfd = open(path.data, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lfd < 0) {
        snprintf(err, errlen, "open %s: %s", path.data, strerror(errno));
        buf_free(&path);
        return -1;
    }
    if (flock(lfd, LOCK_EX | LOCK_NB) < 0) {
        int saved = errno;

        close(lfd);
        if (saved == EWOULDBLOCK) {
            buf_free(&path);
            return 0;
        }
        snprintf(err, errlen, "lock %s: %s", path.data, strerror(saved));
        buf_free(&path);
        return -1;
    }
    buf_free(&path);
    *fd = lfd;
    return 1;
}

/* ---------------------------------------------------------- scan */

static bool entry_wanted(const struct dirent *d)
{
    if (d->d_name[0] == '.')
        return false;
    return d->d_type == DT_REG || d->d_type == DT_UNKNOWN;
}

/* new/X -> cur/X:2, for every message in new/. */
static void mbox_move_new(struct pop3d_mbox *m)
{
    struct buf from = BUF_INIT, to = BUF_INIT;
    DIR *d;
    struct dirent *e;

    buf_printf(&from, "%s%s", m->dir, MAILDIR_NEW);
    if ((d = opendir(from.data)) == NULL) {
        if (errno != ENOENT)
            log_warn("opendir %s: %m", from.data);
        buf_free(&from);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (!entry_wanted(e))
            continue;
        buf_reset(&from);
        buf_reset(&to);
        buf_printf(&from, "%s%s/%s", m->dir, MAILDIR_NEW, e->d_name);
        buf_printf(&to, "%s%s/%s%s", m->dir, MAILDIR_CUR, e->d_name,
                   strchr(e->d_name, ':') ? "" : ":2,");
        if (rename(from.data, to.data) < 0 && errno != ENOENT)
            log_warn("rename %s to %s: %m", from.data, to.data);
    }
    closedir(d);
    buf_free(&from);
    buf_free(&to);
}

static bool regular_file(const char *dir, const char *name)
{
    struct buf path = BUF_INIT;
    struct stat st;
    bool ok;

    buf_printf(&path, "%s%s/%s", dir, MAILDIR_CUR, name);
    ok = lstat(path.data, &st) == 0 && S_ISREG(st.st_mode);
    buf_free(&path);
    return ok;
}

int pop3d_mbox_scan(struct pop3d_mbox *m, char *err, size_t errlen)
{
    struct buf path = BUF_INIT;
    struct htable *seen;
    size_t cap = 0;
    DIR *d;
    struct dirent *e;

    m->msgs = NULL;
    m->n = 0;
    mbox_move_new(m);
    buf_printf(&path, "%s%s", m->dir, MAILDIR_CUR);
    if ((d = opendir(path.data)) == NULL) {
        int saved = errno;

        if (saved == ENOENT) {
            buf_free(&path);
            return 0;
        }
        snprintf(err, errlen, "opendir %s: %s", path.data, strerror(saved));
        buf_free(&path);
        return -1;
    }
    seen = htable_new(64);
    while ((e = readdir(d)) != NULL) {
        struct pop3d_msg *msg;
        char uidl[POP3D_UIDL_MAX + 1];

        if (!entry_wanted(e))
            continue;
        if (e->d_type == DT_UNKNOWN && !regular_file(m->dir, e->d_name))
            continue;
        if (m->n >= POP3D_MESSAGES_MAX) {
            log_warn("%s: more than %d messages; the rest wait for the next "
                     "session",
                     path.data, POP3D_MESSAGES_MAX);
            break;
        }
        pop3d_uidl(e->d_name, uidl, sizeof(uidl));
        /* Two links of one message (a crash inside someone's rename). */
        if (htable_get(seen, uidl) != NULL)
            continue;
        htable_put(seen, uidl, seen);
        if (m->n == cap) {
            cap = cap ? cap * 2 : 64;
            m->msgs = xreallocarray(m->msgs, cap, sizeof(*m->msgs));
        }
        msg = &m->msgs[m->n++];
        memset(msg, 0, sizeof(*msg));
        msg->name = xstrdup(e->d_name);
        str_lcpy(msg->uidl, uidl, sizeof(msg->uidl));
        msg->vsize = pop3d_name_vsize(e->d_name);
        name_time(e->d_name, &msg->sec, &msg->usec);
    }
    closedir(d);
    htable_free(seen, NULL);
    buf_free(&path);
    if (m->n > 1)
        qsort(m->msgs, m->n, sizeof(*m->msgs), msg_cmp);
    return 0;
}

/* Someone renamed message i (new flags): find its base name in cur/. */
static bool mbox_relocate(struct pop3d_mbox *m, size_t i)
{
    struct pop3d_msg *msg = &m->msgs[i];
    size_t base = pop3d_base_len(msg->name);
    struct buf path = BUF_INIT;
    struct dirent *e;
    bool found = false;
    DIR *d;

    buf_printf(&path, "%s%s", m->dir, MAILDIR_CUR);
    d = opendir(path.data);
    buf_free(&path);
    if (d == NULL)
        return false;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, msg->name, base) == 0 &&
            (e->d_name[base] == ':' || e->d_name[base] == 0) &&
            strcmp(e->d_name, msg->name) != 0) {
            free(msg->name);
            msg->name = xstrdup(e->d_name);
            found = true;
            break;
        }
    }
    closedir(d);
    return found;
}

static void msg_path(const struct pop3d_mbox *m, size_t i, struct buf *path)
{
    buf_reset(path);
    buf_printf(path, "%s%s/%s", m->dir, MAILDIR_CUR, m->msgs[i].name);
}

int pop3d_mbox_open(struct pop3d_mbox *m, size_t i, char *err, size_t errlen)
{
    struct buf path = BUF_INIT;
    struct stat st;
    int fd;

    msg_path(m, i, &path);
    fd = open(path.data, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT && mbox_relocate(m, i)) {
        msg_path(m, i, &path);
        fd = open(path.data, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    }
    if (fd < 0) {
        snprintf(err, errlen, "open %s: %s", path.data, strerror(errno));
        buf_free(&path);
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path.data);
        close(fd);
        buf_free(&path);
        return -1;
    }
    buf_free(&path);
    return fd;
}

long long pop3d_mbox_vsize(struct pop3d_mbox *m, size_t i, char *err,
                           size_t errlen)
{
    struct pop3d_msg *msg = &m->msgs[i];
    int fd;

    if (msg->vsize >= 0)
        return msg->vsize;
    if ((fd = pop3d_mbox_open(m, i, err, errlen)) < 0)
        return -1;
    msg->vsize = pop3d_xfer_size(fd);
    if (msg->vsize < 0)
        snprintf(err, errlen, "read %s: %s", msg->name, strerror(errno));
    close(fd);
    return msg->vsize;
}

/* ---------------------------------------------------------- update */

/* The name with 'S' among its flags (kept in ASCII order), or NULL. */
static char *name_with_seen(const char *name)
{
    const char *info = strstr(name, ":2,");
    struct buf out = BUF_INIT;
    const char *f;

    if (info == NULL) {
        if (strchr(name, ':') != NULL)
            return NULL; /* an info we do not know: leave it alone */
        buf_printf(&out, "%s:2,S", name);
        return buf_steal(&out);
    }
    if (strchr(info + 3, 'S') != NULL)
        return NULL;
    buf_append(&out, name, (size_t)(info + 3 - name));
    for (f = info + 3; *f && *f < 'S'; f++)
        buf_putc(&out, *f);
    buf_putc(&out, 'S');
    buf_puts(&out, f);
    return buf_steal(&out);
}

size_t pop3d_mbox_update(struct pop3d_mbox *m, size_t *deleted)
{
    struct buf path = BUF_INIT, to = BUF_INIT;
    size_t failed = 0;
    bool changed = false;

    *deleted = 0;
    for (size_t i = 0; i < m->n; i++) {
        struct pop3d_msg *msg = &m->msgs[i];

        if (msg->deleted) {
            int e;

            msg_path(m, i, &path);
            e = unlink(path.data) < 0 ? errno : 0;
            if (e == ENOENT && mbox_relocate(m, i)) {
                msg_path(m, i, &path);
                e = unlink(path.data) < 0 ? errno : 0;
            }
            if (e == 0 || e == ENOENT) {
                (*deleted)++; /* ENOENT: someone else removed it */
                changed = true;
            } else {
                log_warn("cannot remove %s: %s", path.data, strerror(e));
                failed++;
            }
        } else if (msg->retrieved) {
            char *seen = name_with_seen(msg->name);

            if (seen == NULL)
                continue;
            msg_path(m, i, &path);
            buf_reset(&to);
            buf_printf(&to, "%s%s/%s", m->dir, MAILDIR_CUR, seen);
            if (rename(path.data, to.data) < 0)
                log_warn("rename %s to %s: %m", path.data, to.data);
            else
                changed = true;
            free(seen);
        }
    }
    if (changed) {
        buf_reset(&path);
        buf_printf(&path, "%s%s", m->dir, MAILDIR_CUR);
        if (fsync_dir(path.data) < 0)
            log_warn("fsync %s: %m", path.data);
    }
    buf_free(&path);
    buf_free(&to);
    return failed;
}

void pop3d_mbox_free(struct pop3d_mbox *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->msgs[i].name);
    free(m->msgs);
    m->msgs = NULL;
    m->n = 0;
    if (m->lock_fd >= 0)
        close(m->lock_fd);
    m->lock_fd = -1;
    free(m->dir);
    m->dir = NULL;
}
