/*
 * maildir - Maildir file names and the tmp -> fsync -> new write path.
 * See maildir.h for the naming rules.
 *
 * Trusts its caller for the directory (already resolved from a trusted
 * map) and for running under the mailbox owner's ids.  Talks to nobody
 * but the file system.  Fails by returning -1 with errno preserved and
 * the tmp file removed, so a failed delivery leaves nothing behind and
 * the caller can retry later.
 */
#include "global/maildir.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <stdlib.h>
#include <unistd.h>

#include "util/argv.h"
#include "util/fsutil.h"
#include "util/groupsync.h"
#include "util/mem.h"
#include "util/procpid.h"

/* Bytes collected before a write(2); content arrives in chunks anyway. */
#define MAILDIR_WRITE_BUF (64 * 1024)
/* tmp names that already exist (a stale file with our pid) are skipped. */
#define MAILDIR_TMP_TRIES 16

struct maildir_writer {
    char *dir; /* Maildir without trailing '/' */
    struct buf tmp_path;
    int fd;
    struct buf out;  /* bytes not yet written */
    int write_errno; /* first write error, sticky */
    long long crlf_extra; /* LFs without a CR before them (for ,W=) */
    int last;             /* last byte written, -1 before the first */
    long long sec;   /* creation time, reused in the final name */
};

static unsigned long maildir_count;

void maildir_host_name(struct buf *out, const char *host)
{
    for (const char *p = host; *p; p++) {
        if (*p == '/')
            buf_puts(out, "\\057");
        else if (*p == ':')
            buf_puts(out, "\\072");
        else
            buf_putc(out, *p);
    }
}

void maildir_tmp_name(struct buf *out, long long sec, long pid,
                      unsigned long count, const char *host)
{
    buf_printf(out, "%lld.P%ldQ%lu.%s", sec, pid, count, host);
}

void maildir_unique_name(struct buf *out, long long sec, unsigned long long dev,
                         unsigned long long ino, long usec, const char *host,
                         long long size, long long vsize)
{
    buf_printf(out, "%lld.V%llxI%llxM%ld.%s,S=%lld", sec, dev, ino, usec, host,
               size);
    if (vsize >= 0)
        buf_printf(out, ",W=%lld", vsize);
}

/* The safe host name, computed once per process. */
static const char *maildir_host(void)
{
    static struct buf host = BUF_INIT;
    char name[256];

    if (host.len == 0) {
        if (gethostname(name, sizeof(name)) < 0 || name[0] == 0)
            snprintf(name, sizeof(name), "localhost");
        name[sizeof(name) - 1] = 0;
        maildir_host_name(&host, name);
    }
    return host.data;
}

/* dir without trailing slashes ("/" stays "/"). */
static char *maildir_dir_copy(const char *dir)
{
    size_t len = strlen(dir);

    while (len > 1 && dir[len - 1] == '/')
        len--;
    return xstrndup(dir, len);
}

static void maildir_err(char *err, size_t errlen, const char *op,
                        const char *path)
{
    int saved = errno;

    if (err && errlen)
        snprintf(err, errlen, "%s %s: %s", op, path, strerror(saved));
    errno = saved;
}

/* fsync dir/.. and upward to (including) the directory `stop`. */
static int maildir_sync_parents(const char *dir, size_t stop_len)
{
    char *path = xstrdup(dir);
    char *slash;
    int rc = 0;

    while ((slash = strrchr(path, '/')) != NULL) {
        if (slash == path)
            slash[1] = 0; /* the root directory */
        else
            *slash = 0;
        if (fsync_dir(path) < 0) {
            rc = -1;
            break;
        }
        if (strlen(path) <= stop_len || slash == path)
            break;
    }
    free(path);
    return rc;
}

int maildir_create(const char *dir_arg, char *err, size_t errlen)
{
    static const char *const subdirs[] = {MAILDIR_TMP, MAILDIR_NEW,
                                          MAILDIR_CUR};
    char *dir = maildir_dir_copy(dir_arg);
    struct buf path = BUF_INIT;
    struct stat st;
    size_t existing_len;
    int created = 0;
    int rc = -1;

    /* Find the deepest existing ancestor so that every new entry gets
     * its parent fsynced: a Maildir that vanishes on power loss would
     * take a "delivered" message with it. */
    buf_puts(&path, dir);
    while (stat(path.data, &st) < 0) {
        char *slash = strrchr(path.data, '/');

        if (errno != ENOENT || slash == NULL || slash == path.data) {
            maildir_err(err, errlen, "stat", path.data);
            goto out;
        }
        buf_truncate(&path, (size_t)(slash - path.data));
    }
    existing_len = path.len;
    if (existing_len < strlen(dir)) {
        if (mkdir_p(dir, 0700) < 0) {
            maildir_err(err, errlen, "mkdir", dir);
            goto out;
        }
        created = 1;
    } else if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        maildir_err(err, errlen, "open", dir);
        goto out;
    }
    for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
        buf_reset(&path);
        buf_printf(&path, "%s/%s", dir, subdirs[i]);
        if (mkdir(path.data, 0700) == 0)
            created = 1;
        else if (errno != EEXIST) {
            maildir_err(err, errlen, "mkdir", path.data);
            goto out;
        }
    }
    if (created) {
        if (fsync_dir(dir) < 0) {
            maildir_err(err, errlen, "fsync", dir);
            goto out;
        }
        if (existing_len < strlen(dir) &&
            maildir_sync_parents(dir, existing_len) < 0) {
            maildir_err(err, errlen, "fsync parent of", dir);
            goto out;
        }
    }
    rc = 0;
out:
    buf_free(&path);
    free(dir);
    return rc;
}

static int maildir_open_tmp(struct maildir_writer *w, char *err, size_t errlen)
{
    for (int i = 0; i < MAILDIR_TMP_TRIES; i++) {
        buf_reset(&w->tmp_path);
        buf_printf(&w->tmp_path, "%s/" MAILDIR_TMP "/", w->dir);
        maildir_tmp_name(&w->tmp_path, w->sec, (long)proc_pid(), ++maildir_count,
                         maildir_host());
        w->fd = open(w->tmp_path.data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                     0600);
        if (w->fd >= 0)
            return 0;
        if (errno != EEXIST)
            break;
    }
    maildir_err(err, errlen, "create", w->tmp_path.data);
    return -1;
}

struct maildir_writer *maildir_writer_open(const char *dir, char *err,
                                           size_t errlen)
{
    struct maildir_writer *w = xcalloc(1, sizeof(*w));

    w->dir = maildir_dir_copy(dir);
    w->fd = -1;
    w->last = -1;
    w->sec = (long long)time(NULL);
    if (maildir_open_tmp(w, err, errlen) < 0) {
        if (errno != ENOENT)
            goto fail;
        /* First delivery: the Maildir (or its tmp/) does not exist. */
        if (maildir_create(w->dir, err, errlen) < 0 ||
            maildir_open_tmp(w, err, errlen) < 0)
            goto fail;
    }
    return w;

fail:;
    int saved = errno;

    buf_free(&w->tmp_path);
    free(w->dir);
    free(w);
    errno = saved;
    return NULL;
}

static int maildir_flush(struct maildir_writer *w)
{
    if (w->write_errno == 0 && w->out.len > 0) {
        if (write_all(w->fd, w->out.data, w->out.len) < 0)
            w->write_errno = errno ? errno : EIO;
        buf_reset(&w->out);
    }
    if (w->write_errno) {
        errno = w->write_errno;
        return -1;
    }
    return 0;
}

long long maildir_vsize(long long size, long long crlf_extra, int last)
{
    return size + crlf_extra + (last >= 0 && last != '\n' ? 2 : 0);
}

/* Count what CRLF line ends add, across write boundaries. */
static void maildir_count_lines(struct maildir_writer *w, const char *p,
                                size_t len)
{
    const char *end = p + len, *nl;

    if (len == 0)
        return;
    while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        int before = nl > p ? (unsigned char)nl[-1] : w->last;

        if (before != '\r')
            w->crlf_extra++;
        w->last = '\n';
        p = nl + 1;
    }
    if (p < end)
        w->last = (unsigned char)end[-1];
}

int maildir_writer_write(struct maildir_writer *w, const void *data, size_t len)
{
    maildir_count_lines(w, data, len);
    if (w->write_errno) {
        errno = w->write_errno;
        return -1;
    }
    if (w->out.len + len > MAILDIR_WRITE_BUF && maildir_flush(w) < 0)
        return -1;
    if (len >= MAILDIR_WRITE_BUF) {
        if (write_all(w->fd, data, len) < 0) {
            w->write_errno = errno ? errno : EIO;
            return -1;
        }
        return 0;
    }
    buf_append(&w->out, data, len);
    return 0;
}

static void maildir_writer_free(struct maildir_writer *w)
{
    buf_free(&w->tmp_path);
    buf_free(&w->out);
    free(w->dir);
    free(w);
}

void maildir_writer_abort(struct maildir_writer *w)
{
    int saved = errno;

    if (w->fd >= 0)
        close(w->fd);
    unlink(w->tmp_path.data);
    maildir_writer_free(w);
    errno = saved;
}

/* Hard link, or rename where the file system has no hard links. */
static int maildir_link(const char *from, const char *to)
{
    if (link(from, to) == 0)
        return 0;
    if (errno == EPERM || errno == ENOSYS || errno == EOPNOTSUPP)
        return rename(from, to);
    return -1;
}

static struct groupsync *maildir_gsync;

void maildir_set_groupsync(struct groupsync *g)
{
    maildir_gsync = g;
}

static int maildir_commit(struct maildir_writer *w, const char *subdir,
                          const char *info, struct buf *name,
                          struct argv *batch, char *err, size_t errlen)
{
    struct buf final = BUF_INIT;
    struct buf target_dir = BUF_INIT;
    size_t name_start;
    struct timeval tv;
    struct stat st;
    int fd = w->fd;
    int deferred = 0;
    bool group;

    if (maildir_flush(w) < 0) {
        maildir_err(err, errlen, "write", w->tmp_path.data);
        goto fail;
    }
    if (fstat(fd, &st) < 0) {
        maildir_err(err, errlen, "fstat", w->tmp_path.data);
        goto fail;
    }
    /* One shared syncfs() after the link covers data and name alike. */
    group = maildir_gsync != NULL && st.st_dev == groupsync_dev(maildir_gsync);
    if (!group && fsync(fd) < 0) {
        maildir_err(err, errlen, "fsync", w->tmp_path.data);
        goto fail;
    }
    /* The batch's round may well be run by someone else (qmgr_sync.c):
     * start writing the data now so that it need not wait for it. */
    if (group && batch != NULL)
        (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    w->fd = -1;
    /* close() reports deferred write errors on network file systems. */
    if (close(fd) < 0) {
        maildir_err(err, errlen, "close", w->tmp_path.data);
        goto fail;
    }
    gettimeofday(&tv, NULL);
    buf_printf(&target_dir, "%s/%s", w->dir, subdir);
    buf_printf(&final, "%s/", target_dir.data);
    name_start = final.len;
    maildir_unique_name(&final, w->sec, (unsigned long long)st.st_dev,
                        (unsigned long long)st.st_ino, (long)tv.tv_usec,
                        maildir_host(), (long long)st.st_size,
                        maildir_vsize((long long)st.st_size, w->crlf_extra,
                                      w->last));
    if (info)
        buf_puts(&final, info);
    if (maildir_link(w->tmp_path.data, final.data) < 0) {
        /* new/ or cur/ removed under us: recreate once and retry. */
        if (errno != ENOENT || maildir_create(w->dir, err, errlen) < 0 ||
            maildir_link(w->tmp_path.data, final.data) < 0) {
            maildir_err(err, errlen, "link", final.data);
            goto fail;
        }
    }
    /* A leftover tmp file is harmless (readers ignore tmp/). */
    (void)unlink(w->tmp_path.data);
    if (group && batch != NULL) {
        argv_add(batch, final.data);
        deferred = 1;
    } else if ((group ? groupsync_sync(maildir_gsync)
                      : fsync_dir(target_dir.data)) < 0) {
        /* Not durable: take it back so that the retry does not make a
         * duplicate. */
        maildir_err(err, errlen, "fsync", target_dir.data);
        int saved = errno;
        (void)unlink(final.data);
        errno = saved;
        goto fail;
    }
    if (name)
        buf_append(name, final.data + name_start, final.len - name_start);
    buf_free(&final);
    buf_free(&target_dir);
    maildir_writer_free(w);
    return deferred;

fail:
    maildir_writer_abort(w); /* keeps errno */
    buf_free(&final);
    buf_free(&target_dir);
    return -1;
}

int maildir_writer_commit(struct maildir_writer *w, const char *subdir,
                          const char *info, struct buf *name, char *err,
                          size_t errlen)
{
    return maildir_commit(w, subdir, info, name, NULL, err, errlen);
}

int maildir_writer_commit_batch(struct maildir_writer *w, const char *subdir,
                                const char *info, struct buf *name,
                                struct argv *batch, char *err, size_t errlen)
{
    return maildir_commit(w, subdir, info, name, batch, err, errlen);
}

int maildir_batch_sync(struct argv *batch, char *err, size_t errlen)
{
    int rc = 0;

    if (batch->n > 0 && groupsync_sync(maildir_gsync) < 0) {
        int saved = errno;

        snprintf(err, errlen, "sync: %s", strerror(saved));
        /* Not durable: take them back so that the retries do not make
         * duplicates. */
        for (size_t i = 0; i < batch->n; i++)
            (void)unlink(batch->v[i]);
        errno = saved;
        rc = -1;
    }
    argv_free(batch);
    return rc;
}

int maildir_batch_ticket(struct argv *batch, uint64_t *ticket, char *err,
                         size_t errlen)
{
    *ticket = 0;
    if (batch->n > 0 && (*ticket = groupsync_ticket(maildir_gsync)) > 0) {
        argv_free(batch);
        return 0;
    }
    return maildir_batch_sync(batch, err, errlen);
}
