/*
 * sendmail_drop - write one message into maildrop/ (mail_proto.h) so that
 * it survives a crash once sendmail has exited 0.
 *
 * The file is a queue file in qfile.h's format with the maildrop subset
 * of its grammar: V T S R+ M B* Z E.  qfile's writer cannot be used: it
 * commits into incoming/, which only mail_owner may write, so the records
 * are encoded here (type byte, varint length, data) -- and the finished
 * file is read back with qfile_read_envelope() before it is renamed into
 * place, so a file this code writes is one every posthorn reader accepts.
 *
 * Steps: create maildrop/.<24 random hex digits> with O_EXCL (0600: no
 * one else reads it while it grows), write (at least once a minute, so
 * its mtime shows a live writer), fchmod 0644 (pickup runs as mail_owner
 * and must read it; the directory is not listable, so the random name
 * keeps it from other users), fsync, check, rename to the name without
 * the dot, then make the rename durable: fsync of maildrop/ when we may
 * open it, syncfs() otherwise (an ordinary user may only write and
 * search the 1733 directory).  Any failure removes the file.
 *
 * A signal (SIGINT, SIGHUP, SIGTERM, SIGPIPE while reading) removes the
 * unfinished file and exits EX_TEMPFAIL; the commit runs with those
 * signals blocked.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "global/mail_proto.h"
#include "global/qfile.h"
#include "sendmail/sendmail.h"
#include "util/fsutil.h"
#include "util/mem.h"

/* Write when this much is buffered, and at least this often (seconds). */
#define DROP_FLUSH (64 * 1024)
#define DROP_FLUSH_INTERVAL 60
#define DROP_RANDOM_BYTES 12
#define DROP_VARINT_MAX 5

struct sendmail_drop {
    int fd;
    char *dir;      /* queue_dir/maildrop */
    char *tmp_path; /* dir/.<name> */
    char name[2 * DROP_RANDOM_BYTES + 1];
    struct buf out;   /* encoded records not yet written */
    struct buf chunk; /* content not yet in a 'B' record */
    long long size;   /* content bytes */
    time_t last_write;
    char error[1024]; /* first failure */
};

/* The file a signal must remove: set while one is being written. */
static char drop_signal_path[4096];

static void drop_on_signal(int sig)
{
    if (drop_signal_path[0])
        (void)unlink(drop_signal_path);
    _exit(EX_TEMPFAIL);
}

static void drop_signals(void (*handler)(int))
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
}

static void drop_fail(struct sendmail_drop *d, const char *what)
{
    if (!d->error[0])
        snprintf(d->error, sizeof(d->error), "%s %s: %s", what, d->tmp_path,
                 strerror(errno));
}

static void drop_flush(struct sendmail_drop *d)
{
    if (!d->error[0] && d->out.len > 0 &&
        write_all(d->fd, d->out.data, d->out.len) < 0)
        drop_fail(d, "write");
    buf_reset(&d->out);
    d->last_write = time(NULL);
}

static void drop_record(struct sendmail_drop *d, int type, const void *data,
                        size_t len)
{
    unsigned char hdr[1 + DROP_VARINT_MAX];
    size_t n = 1, v = len;

    hdr[0] = (unsigned char)type;
    do {
        hdr[n] = v & 0x7f;
        v >>= 7;
        if (v)
            hdr[n] |= 0x80;
        n++;
    } while (v);
    buf_append(&d->out, hdr, n);
    if (len)
        buf_append(&d->out, data, len);
    if (d->out.len >= DROP_FLUSH ||
        time(NULL) - d->last_write >= DROP_FLUSH_INTERVAL)
        drop_flush(d);
}

static void drop_record_str(struct sendmail_drop *d, int type, const char *s)
{
    drop_record(d, type, s, strlen(s));
}

static int drop_random_name(char *out, size_t size)
{
    unsigned char r[DROP_RANDOM_BYTES];
    size_t got = 0;

    while (got < sizeof(r)) {
        ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof(r) && 2 * i + 2 < size; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    return 0;
}

struct sendmail_drop *sendmail_drop_open(const struct sendmail_cfg *cfg,
                                         const char *sender,
                                         const struct argv *rcpts, char *err,
                                         size_t errlen)
{
    struct sendmail_drop *d = xcalloc(1, sizeof(*d));
    char num[32];

    d->fd = -1;
    d->dir = xasprintf("%s/%s", cfg->queue_dir, MAIL_QUEUE_MAILDROP);
    if (drop_random_name(d->name, sizeof(d->name)) < 0) {
        snprintf(err, errlen, "no random numbers: %s", strerror(errno));
        free(d->dir);
        free(d);
        return NULL;
    }
    d->tmp_path = xasprintf("%s/.%s", d->dir, d->name);
    if (strlen(d->tmp_path) < sizeof(drop_signal_path))
        memcpy(drop_signal_path, d->tmp_path, strlen(d->tmp_path) + 1);
    drop_signals(drop_on_signal);
    d->fd = open(d->tmp_path,
                 O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (d->fd < 0) {
        snprintf(err, errlen, "create %s: %s", d->tmp_path, strerror(errno));
        drop_signal_path[0] = 0;
        free(d->tmp_path);
        free(d->dir);
        free(d);
        return NULL;
    }
    d->last_write = time(NULL);
    drop_record_str(d, QREC_VERSION, QFILE_VERSION);
    snprintf(num, sizeof(num), "%lld", (long long)time(NULL));
    drop_record_str(d, QREC_TIME, num);
    drop_record_str(d, QREC_SENDER, sender);
    for (size_t i = 0; i < rcpts->n; i++) {
        struct buf rec = BUF_INIT;

        /* addr NUL orig NUL notify NUL orcpt: only the address is ours. */
        buf_puts(&rec, rcpts->v[i]);
        buf_append(&rec, "\0\0\0", 3);
        drop_record(d, QREC_RCPT, rec.data, rec.len);
        buf_free(&rec);
    }
    drop_record(d, QREC_MESSAGE, "", 0);
    return d;
}

void sendmail_drop_write(struct sendmail_drop *d, const char *data, size_t len)
{
    d->size += (long long)len;
    buf_append(&d->chunk, data, len);
    while (d->chunk.len >= QFILE_CHUNK_MAX) {
        drop_record(d, QREC_BODY, d->chunk.data, QFILE_CHUNK_MAX);
        buf_consume(&d->chunk, QFILE_CHUNK_MAX);
    }
}

long long sendmail_drop_size(const struct sendmail_drop *d)
{
    return d->size;
}

static void drop_free(struct sendmail_drop *d)
{
    if (d->fd >= 0)
        close(d->fd);
    drop_signal_path[0] = 0;
    buf_free(&d->out);
    buf_free(&d->chunk);
    free(d->tmp_path);
    free(d->dir);
    free(d);
}

void sendmail_drop_abort(struct sendmail_drop *d)
{
    if (d == NULL)
        return;
    if (unlink(d->tmp_path) < 0 && errno != ENOENT)
        sendmail_warn("remove %s: %s", d->tmp_path, strerror(errno));
    drop_free(d);
}

/* The rename on stable storage, with or without read access to the dir. */
static int drop_sync_dir(struct sendmail_drop *d)
{
    int dfd = open(d->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc;

    if (dfd >= 0) {
        rc = fsync(dfd);
        close(dfd);
        return rc;
    }
    if (errno != EACCES && errno != EPERM)
        return -1;
    return syncfs(d->fd);
}

int sendmail_drop_commit(struct sendmail_drop *d, char *err, size_t errlen)
{
    struct qfile_envelope env;
    sigset_t block, saved;
    char *final_path = NULL;
    char size[32], why[256];
    bool corrupt;
    int rc = -1;

    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGQUIT);
    sigprocmask(SIG_BLOCK, &block, &saved);

    if (d->chunk.len > 0)
        drop_record(d, QREC_BODY, d->chunk.data, d->chunk.len);
    snprintf(size, sizeof(size), "%lld", d->size);
    drop_record_str(d, QREC_SIZE, size);
    drop_record(d, QREC_END, "", 0);
    drop_flush(d);
    if (!d->error[0] && fchmod(d->fd, 0644) < 0)
        drop_fail(d, "chmod");
    if (!d->error[0] && fsync(d->fd) < 0)
        drop_fail(d, "fsync");
    if (!d->error[0]) {
        /* The reader pickup will use; a failure here is a bug in us. */
        if (qfile_read_envelope(d->fd, &env, &corrupt, why, sizeof(why)) < 0)
            snprintf(d->error, sizeof(d->error), "check %s: %s", d->tmp_path,
                     why);
        else
            qfile_envelope_free(&env);
    }
    if (!d->error[0]) {
        final_path = xasprintf("%s/%s", d->dir, d->name);
        if (renameat2(AT_FDCWD, d->tmp_path, AT_FDCWD, final_path,
                      RENAME_NOREPLACE) < 0 &&
            ((errno != EINVAL && errno != ENOSYS) ||
             link(d->tmp_path, final_path) < 0 || unlink(d->tmp_path) < 0))
            drop_fail(d, "rename");
    }
    if (!d->error[0]) {
        /* From here on the file is pickup's, whatever happens to us. */
        drop_signal_path[0] = 0;
        if (drop_sync_dir(d) < 0) {
            /* Not durable: take it back if pickup has not yet. */
            snprintf(d->error, sizeof(d->error), "sync %s: %s", d->dir,
                     strerror(errno));
            if (unlink(final_path) < 0 && errno == ENOENT)
                d->error[0] = 0; /* pickup has it: it is in the queue */
        }
    }
    if (d->error[0]) {
        snprintf(err, errlen, "%s", d->error);
        sendmail_drop_abort(d);
    } else {
        rc = 0;
        drop_free(d);
    }
    free(final_path);
    sigprocmask(SIG_SETMASK, &saved, NULL);
    return rc;
}
