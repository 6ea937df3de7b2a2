/*
 * qfile - write and read queue files (format in qfile.h).
 *
 * Writer (cleanup): creates tmp/<usec>.<pid> with O_EXCL, mode 0600, and
 * buffers records in memory, writing every QFILE_FLUSH bytes and at least
 * once a minute (so qmgr can tell a live tmp file from a dead one).
 * Commit appends 'E', writes the rest, fsync()s the file, renames it to
 * incoming/<ID> (or hold/<ID>: header_checks HOLD) with RENAME_NOREPLACE
 * and fsync()s that directory.  Only then
 * is the message acknowledged; a crash before that leaves a file in tmp/
 * that nobody acknowledged, which recovery removes.  The queue directory
 * and incoming/ stay open (O_DIRECTORY) for the life of the process and
 * are reopened when the path or the directory changes.
 *
 * Reader (qmgr, local, posthorn queue): trusts nothing in the file.  One
 * state machine, shared with the writer, enforces the record order; every
 * record is checked against its own bound and syntax; content is skipped
 * by offset, not read, while validating.  Bad grammar -> -1 with
 * *corrupt = true and an error text starting "record grammar: " and
 * naming the offset; I/O errors -> -1 with *corrupt = false.
 */
#include "global/qfile.h"

#include <stdbool.h>

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/groupsync.h"
#include "util/mem.h"
#include "util/procpid.h"

#define QFILE_FLUSH (64 * 1024)
/*
 * Also write at least this often (seconds) while data trickles in, so the
 * tmp file's mtime shows a live writer: qmgr removes tmp/ files that have
 * not changed for minutes.
 */
#define QFILE_FLUSH_INTERVAL 60
#define QFILE_VARINT_MAX 5
#define QFILE_READ_BUF (64 * 1024)
/* Attempts at a fresh name before giving up (each one a new usec). */
#define QFILE_NAME_TRIES 1000

/* ---- grammar: shared by writer and reader ---- */

enum qstate {
    QS_START,   /* expect V */
    QS_VERSION, /* expect T */
    QS_TIME,    /* expect S */
    QS_SENDER,  /* A, R, D */
    QS_RCPT,    /* R, D, M */
    QS_CONTENT, /* B, Z */
    QS_SIZE,    /* E */
    QS_END,     /* nothing */
};

/* Next state after a record of `type`, or -1 when it may not come here. */
static int qstate_next(enum qstate s, int type)
{
    switch (s) {
    case QS_START:
        return type == QREC_VERSION ? QS_VERSION : -1;
    case QS_VERSION:
        return type == QREC_TIME ? QS_TIME : -1;
    case QS_TIME:
        return type == QREC_SENDER ? QS_SENDER : -1;
    case QS_SENDER:
        if (type == QREC_ATTR)
            return QS_SENDER;
        return type == QREC_RCPT || type == QREC_DONE ? QS_RCPT : -1;
    case QS_RCPT:
        if (type == QREC_RCPT || type == QREC_DONE)
            return QS_RCPT;
        return type == QREC_MESSAGE ? QS_CONTENT : -1;
    case QS_CONTENT:
        if (type == QREC_BODY)
            return QS_CONTENT;
        return type == QREC_SIZE ? QS_SIZE : -1;
    case QS_SIZE:
        return type == QREC_END ? QS_END : -1;
    case QS_END:
        return -1;
    }
    return -1;
}

static const char *qrec_name(int type, char tmp[8])
{
    if (type > 0x20 && type < 0x7f)
        snprintf(tmp, 8, "'%c'", type);
    else
        snprintf(tmp, 8, "0x%02x", (unsigned)type & 0xff);
    return tmp;
}

static bool qrec_known(int type)
{
    return type != 0 && strchr("VTSARDMBZE", type) != NULL;
}

/* Largest data length allowed for a record type. */
static size_t qrec_max_len(int type)
{
    switch (type) {
    case QREC_VERSION:
        return sizeof(QFILE_VERSION) - 1;
    case QREC_TIME:
    case QREC_SIZE:
        return QFILE_NUMBER_MAX;
    case QREC_SENDER:
        return QFILE_ADDR_MAX;
    case QREC_ATTR:
        return QFILE_ATTR_MAX;
    case QREC_RCPT:
    case QREC_DONE:
        return QFILE_RCPT_MAX;
    case QREC_BODY:
        return QFILE_CHUNK_MAX;
    default:
        return 0; /* M, E (and unknown types, refused by the grammar) */
    }
}

static bool parse_decimal(const char *s, size_t len, long long *out)
{
    long long v = 0;

    if (len == 0 || len > QFILE_NUMBER_MAX)
        return false;
    if (len > 1 && s[0] == '0')
        return false; /* one spelling per number */
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (v > (INT64_MAX - (s[i] - '0')) / 10)
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/*
 * Check one record's data on its own (not its position).  Returns NULL when
 * fine, else a static description of what is wrong.
 */
static const char *qrec_check(int type, const char *data, size_t len)
{
    long long n;
    size_t nuls = 0, field = 0;

    if (len > qrec_max_len(type))
        return "record too long";
    switch (type) {
    case QREC_VERSION:
        if (len != sizeof(QFILE_VERSION) - 1 ||
            memcmp(data, QFILE_VERSION, len) != 0)
            return "unsupported version";
        return NULL;
    case QREC_TIME:
    case QREC_SIZE:
        return parse_decimal(data, len, &n) ? NULL : "bad number";
    case QREC_SENDER:
        return memchr(data, 0, len) ? "NUL in sender" : NULL;
    case QREC_ATTR: {
        const char *eq = memchr(data, '=', len);
        if (memchr(data, 0, len))
            return "NUL in attribute";
        return eq == NULL || eq == data ? "attribute without name=" : NULL;
    }
    case QREC_RCPT:
    case QREC_DONE:
        for (size_t i = 0; i < len; i++) {
            if (data[i] != 0) {
                field++;
                continue;
            }
            if (nuls == 0 && field == 0)
                return "empty recipient address";
            nuls++;
            field = 0;
            if (nuls > 3)
                break;
        }
        if (nuls != 3)
            return "recipient record needs 4 fields";
        /* Each field is bounded on its own, like the sender. */
        for (size_t i = 0, start = 0; i <= len; i++) {
            if (i == len || data[i] == 0) {
                if (i - start > QFILE_ADDR_MAX)
                    return "recipient field too long";
                start = i + 1;
            }
        }
        return NULL;
    case QREC_BODY:
        return len == 0 ? "empty content record" : NULL;
    case QREC_MESSAGE:
    case QREC_END:
        return NULL; /* length 0 enforced by qrec_max_len */
    default:
        return "unknown record type";
    }
}

static size_t varint_put(unsigned char *out, size_t v)
{
    size_t n = 0;

    do {
        out[n] = v & 0x7f;
        v >>= 7;
        if (v)
            out[n] |= 0x80;
        n++;
    } while (v);
    return n;
}

/* ---- writer ---- */

struct qfile_writer {
    int fd;
    int qdir_fd; /* own duplicate of the cached queue directory */
    char *queue_dir;
    char tmp_name[64]; /* "tmp/<usec>.<pid>" relative to qdir_fd */
    char id[MAIL_QUEUE_ID_MAX];
    unsigned long usec;
    unsigned long long ino;
    struct buf out;
    time_t last_write;
    enum qstate state;
    off_t written;  /* bytes written so far, from offset 0 */
    off_t old_size; /* a recycled file's length before we wrote */
    dev_t dev;
    char error[160]; /* first failure; "" while all is well */
};

/*
 * One open queue directory and incoming/ per process.  Reopened when the
 * path changes or incoming/ is no longer the directory we hold (a test
 * that recreates the queue, an administrator who moved it).
 */
static struct {
    char *path;
    int qdir_fd;
    int incoming_fd;
    dev_t dev;
    ino_t ino;
    bool one_fs; /* every queue on incoming/'s file system */
} qdir_cache = {NULL, -1, -1, 0, 0, false};

/*
 * Are the queues qmgr moves files between all on one file system?  Then a
 * queue ID (microseconds + inode number) cannot name two live files, and
 * the per-message probe of every queue for the new ID can be skipped.  A
 * queue that does not exist yet counts as on the same file system: it
 * will be created next to the others.
 */
static bool qdir_one_fs(int qdir_fd, dev_t dev)
{
    static const char *const queues[] = {
        MAIL_QUEUE_ACTIVE, MAIL_QUEUE_DEFERRED, MAIL_QUEUE_HOLD,
        MAIL_QUEUE_CORRUPT,
    };
    struct stat st;

    for (size_t i = 0; i < sizeof(queues) / sizeof(queues[0]); i++) {
        if (fstatat(qdir_fd, queues[i], &st, 0) < 0) {
            if (errno != ENOENT)
                return false;
        } else if (st.st_dev != dev) {
            return false;
        }
    }
    return true;
}

static void qdir_cache_close(void)
{
    if (qdir_cache.incoming_fd >= 0)
        close(qdir_cache.incoming_fd);
    if (qdir_cache.qdir_fd >= 0)
        close(qdir_cache.qdir_fd);
    free(qdir_cache.path);
    qdir_cache.path = NULL;
    qdir_cache.qdir_fd = qdir_cache.incoming_fd = -1;
}

static int qdir_cache_get(const char *queue_dir, char *err, size_t errlen)
{
    struct stat st;
    char *incoming;
    int rc;

    incoming = xasprintf("%s/%s", queue_dir, MAIL_QUEUE_INCOMING);
    rc = stat(incoming, &st);
    if (rc < 0) {
        snprintf(err, errlen, "stat %s: %s", incoming, strerror(errno));
        free(incoming);
        return -1;
    }
    if (qdir_cache.path != NULL && strcmp(qdir_cache.path, queue_dir) == 0 &&
        st.st_dev == qdir_cache.dev && st.st_ino == qdir_cache.ino) {
        free(incoming);
        return 0;
    }
    qdir_cache_close();
    qdir_cache.qdir_fd = open(queue_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (qdir_cache.qdir_fd < 0) {
        snprintf(err, errlen, "open %s: %s", queue_dir, strerror(errno));
        free(incoming);
        return -1;
    }
    qdir_cache.incoming_fd = openat(qdir_cache.qdir_fd, MAIL_QUEUE_INCOMING,
                                    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (qdir_cache.incoming_fd < 0 || fstat(qdir_cache.incoming_fd, &st) < 0) {
        snprintf(err, errlen, "open %s: %s", incoming, strerror(errno));
        free(incoming);
        qdir_cache_close();
        return -1;
    }
    free(incoming);
    qdir_cache.path = xstrdup(queue_dir);
    qdir_cache.dev = st.st_dev;
    qdir_cache.ino = st.st_ino;
    qdir_cache.one_fs = qdir_one_fs(qdir_cache.qdir_fd, st.st_dev);
    return 0;
}

/*
 * Postfix short ID: 5 hex digits of microseconds, then the inode in hex.
 * The inode is unique among files that exist, and the fixed-width usec
 * part makes the split unambiguous, so a live queue file cannot share it.
 */
static void qfile_make_id(struct qfile_writer *w)
{
    snprintf(w->id, sizeof(w->id), "%05lX%llX", w->usec, w->ino);
}

/* Does a queue file of that name exist anywhere qmgr might move it? */
static bool qfile_id_in_use(int qdir_fd, const char *id)
{
    static const char *const queues[] = {
        MAIL_QUEUE_INCOMING, MAIL_QUEUE_ACTIVE,  MAIL_QUEUE_DEFERRED,
        MAIL_QUEUE_HOLD,     MAIL_QUEUE_CORRUPT,
    };
    char path[128];

    for (size_t i = 0; i < sizeof(queues) / sizeof(queues[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", queues[i], id);
        if (faccessat(qdir_fd, path, F_OK, AT_EACCESS) == 0)
            return true;
    }
    /* deferred/ may be hashed one level deep by the first ID character. */
    snprintf(path, sizeof(path), "%s/%c/%s", MAIL_QUEUE_DEFERRED, id[0], id);
    return faccessat(qdir_fd, path, F_OK, AT_EACCESS) == 0;
}

/* Slots tried per take or retire before giving up (see mail_proto.h). */
#define QFILE_RECYCLE_TRIES 4
#define QFILE_MAP_WORDS (MAIL_QUEUE_RECYCLE_SLOTS / 64)

/*
 * Without the shared slot map: where this process probes recycle/ next.
 * Each process starts at its own place so concurrent cleanups rarely race
 * for one slot; a lost race is only an ENOENT and the next slot.
 */
static unsigned qfile_recycle_cursor(void)
{
    static unsigned cursor;
    static pid_t cursor_pid;

    if (cursor_pid != proc_pid()) {
        cursor_pid = proc_pid();
        cursor = (unsigned)cursor_pid * 37u;
    }
    return cursor++ % MAIL_QUEUE_RECYCLE_KEEP_SLOTS;
}

/*
 * The lowest slot at or after *from whose bit is `set` (1) or clear (0),
 * or -1; *from moves past it.  Low slots first: they keep their blocks.
 */
static int qfile_map_find(const uint64_t *map, unsigned *from, int set)
{
    for (unsigned w = *from / 64; w < QFILE_MAP_WORDS; w++) {
        uint64_t bits = __atomic_load_n(&map[w], __ATOMIC_RELAXED);

        if (!set)
            bits = ~bits;
        if (w == *from / 64)
            bits &= ~0ULL << (*from % 64);
        if (bits != 0) {
            unsigned slot = w * 64 + (unsigned)__builtin_ctzll(bits);

            *from = slot + 1;
            return (int)slot;
        }
    }
    return -1;
}

static void qfile_map_set(uint64_t *map, unsigned slot)
{
    __atomic_fetch_or(&map[slot / 64], 1ULL << (slot % 64), __ATOMIC_RELEASE);
}

/* 1 when this call cleared the slot's bit (the file is the caller's). */
static int qfile_map_claim(uint64_t *map, unsigned slot)
{
    uint64_t bit = 1ULL << (slot % 64);

    return (__atomic_fetch_and(&map[slot / 64], ~bit, __ATOMIC_ACQUIRE) &
            bit) != 0;
}

/*
 * The next slot to take a file from: one whose bit this process cleared,
 * or with no map a guess.  -1 when none is (probably) full.
 */
static int qfile_take_slot(uint64_t *map, unsigned *from)
{
    int slot;

    if (map == NULL)
        return (int)qfile_recycle_cursor();
    while ((slot = qfile_map_find(map, from, 1)) >= 0)
        if (qfile_map_claim(map, (unsigned)slot))
            return slot;
    return -1;
}

/*
 * Take a retired queue file from recycle/ as tmp_name, opened for
 * writing, not truncated: the writer overwrites it from the start and
 * cuts what is left at commit (*old_size).  -1 (errno ENOENT) when no
 * slot held one; the caller then creates a file.  A slot that holds
 * anything but a plain file of ours with one link is removed.
 */
static int qfile_recycled_open(int qdir_fd, const char *tmp_name,
                               struct stat *stp)
{
    uint64_t *map = mail_queue_recycle_map();
    unsigned from = 0;
    char slot[64];
    struct stat st;
    int fd, n;

    for (int i = 0; i < QFILE_RECYCLE_TRIES; i++) {
        if ((n = qfile_take_slot(map, &from)) < 0)
            break;
        snprintf(slot, sizeof(slot), "%s/%d", MAIL_QUEUE_RECYCLE, n);
        if (renameat2(qdir_fd, slot, qdir_fd, tmp_name, RENAME_NOREPLACE) < 0)
            continue;
        fd = openat(qdir_fd, tmp_name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
            st.st_nlink == 1 && st.st_uid == geteuid() &&
            ((st.st_mode & 07777) == 0600 || fchmod(fd, 0600) == 0)) {
            *stp = st;
            return fd;
        }
        if (fd >= 0)
            close(fd);
        (void)unlinkat(qdir_fd, tmp_name, 0);
    }
    errno = ENOENT;
    return -1;
}

int qfile_retire(const char *queue_dir, const char *queue, const char *id,
                 long long size, char *err, size_t errlen)
{
    uint64_t *map = mail_queue_recycle_map();
    char path[4096], slot[4200];
    unsigned from = 0;
    int n;

    snprintf(path, sizeof(path), "%s/%s/%s", queue_dir, queue, id);
    for (int i = 0; i < QFILE_RECYCLE_TRIES; i++) {
        n = map != NULL ? qfile_map_find(map, &from, 0)
                        : (int)qfile_recycle_cursor();
        if (n < 0)
            break;
        snprintf(slot, sizeof(slot), "%s/%s/%d", queue_dir, MAIL_QUEUE_RECYCLE,
                 n);
        if (renameat2(AT_FDCWD, path, AT_FDCWD, slot, RENAME_NOREPLACE) == 0) {
            /*
             * Emptied only now that the name is gone: a crash before the
             * rename leaves the message whole in its queue.  By path, not
             * by descriptor: should a cleanup have taken the file already,
             * the slot is empty (ENOENT) and its new content is safe; only
             * qmgr fills slots, so nothing else can be there.  A small
             * file in a low slot keeps its blocks for the next writer
             * (recycle/ is as private as the queues).
             */
            if (size < 0 || size > MAIL_QUEUE_RECYCLE_KEEP_MAX ||
                n >= MAIL_QUEUE_RECYCLE_KEEP_SLOTS)
                (void)truncate(slot, 0);
            if (map != NULL)
                qfile_map_set(map, (unsigned)n);
            return 0;
        }
        if (errno != EEXIST)
            break;
        /*
         * Full but unmarked: a writer is taking it this moment (then the
         * bit costs it one failed rename), or its bit was lost with an
         * earlier master; either way marking it is right.
         */
        if (map != NULL)
            qfile_map_set(map, (unsigned)n);
    }
    if (unlink(path) == 0)
        return 0;
    snprintf(err, errlen, "unlink %s: %s", path, strerror(errno));
    return -1;
}

void qfile_recycle_scan(const char *queue_dir)
{
    uint64_t *map = mail_queue_recycle_map();
    char path[4096];
    struct dirent *e;
    DIR *d;

    if (map == NULL)
        return;
    snprintf(path, sizeof(path), "%s/%s", queue_dir, MAIL_QUEUE_RECYCLE);
    if ((d = opendir(path)) == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        char *end;
        unsigned long n = strtoul(e->d_name, &end, 10);

        if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && *end == '\0' &&
            n < MAIL_QUEUE_RECYCLE_SLOTS)
            qfile_map_set(map, (unsigned)n);
    }
    closedir(d);
}

struct qfile_writer *qfile_writer_open(const char *queue_dir, char *err,
                                       size_t errlen)
{
    struct qfile_writer *w;
    struct timeval tv;
    struct stat st;
    int tries;

    if (qdir_cache_get(queue_dir, err, errlen) < 0)
        return NULL;
    w = xcalloc(1, sizeof(*w));
    w->fd = -1;
    w->queue_dir = xstrdup(queue_dir);
    /* Its own descriptor: another writer may reopen the cache meanwhile. */
    w->qdir_fd = fcntl(qdir_cache.qdir_fd, F_DUPFD_CLOEXEC, 0);
    if (w->qdir_fd < 0) {
        snprintf(err, errlen, "dup %s: %s", queue_dir, strerror(errno));
        goto fail;
    }
    buf_init(&w->out);
    w->state = QS_START;
    w->last_write = time(NULL);
    gettimeofday(&tv, NULL);
    w->usec = (unsigned long)tv.tv_usec % 1000000;
    for (tries = 0; tries < QFILE_NAME_TRIES; tries++) {
        snprintf(w->tmp_name, sizeof(w->tmp_name), "%s/%lu.%ld", MAIL_QUEUE_TMP,
                 w->usec, (long)proc_pid());
        w->fd = qfile_recycled_open(w->qdir_fd, w->tmp_name, &st);
        if (w->fd >= 0) {
            w->old_size = st.st_size;
            break;
        }
        w->fd = openat(w->qdir_fd, w->tmp_name,
                       O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (w->fd >= 0) {
            if (fstat(w->fd, &st) < 0) {
                snprintf(err, errlen, "fstat %s/%s: %s", queue_dir,
                         w->tmp_name, strerror(errno));
                unlinkat(w->qdir_fd, w->tmp_name, 0);
                goto fail;
            }
            break;
        }
        if (errno != EEXIST)
            break;
        w->usec = (w->usec + 1) % 1000000;
    }
    if (w->fd < 0) {
        snprintf(err, errlen, "create %s/%s: %s", queue_dir, w->tmp_name,
                 tries == QFILE_NAME_TRIES ? "no free name" : strerror(errno));
        goto fail;
    }
    w->ino = (unsigned long long)st.st_ino;
    w->dev = st.st_dev;
    qfile_make_id(w);
    for (tries = 0;
         tries < QFILE_NAME_TRIES && !qdir_cache.one_fs &&
         qfile_id_in_use(w->qdir_fd, w->id);
         tries++) {
        w->usec = (w->usec + 1) % 1000000;
        qfile_make_id(w);
    }
    return w;

fail:
    if (w->fd >= 0)
        close(w->fd);
    if (w->qdir_fd >= 0)
        close(w->qdir_fd);
    free(w->queue_dir);
    free(w);
    return NULL;
}

const char *qfile_writer_id(const struct qfile_writer *w)
{
    return w->id;
}

static void qfile_fail(struct qfile_writer *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void qfile_fail(struct qfile_writer *w, const char *fmt, ...)
{
    va_list ap;

    if (w->error[0])
        return; /* the first failure is the one worth reporting */
    va_start(ap, fmt);
    vsnprintf(w->error, sizeof(w->error), fmt, ap);
    va_end(ap);
}

static void qfile_flush(struct qfile_writer *w)
{
    size_t off = 0;

    while (!w->error[0] && off < w->out.len) {
        ssize_t n = write(w->fd, w->out.data + off, w->out.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            qfile_fail(w, "write %s/%s: %s", w->queue_dir, w->tmp_name,
                       n < 0 ? strerror(errno) : "no progress");
            break;
        }
        off += (size_t)n;
        w->written += n;
    }
    buf_reset(&w->out);
    w->last_write = time(NULL);
}

void qfile_put(struct qfile_writer *w, int type, const void *data, size_t len)
{
    unsigned char hdr[1 + QFILE_VARINT_MAX + 5];
    const char *why;
    char tn[8];
    int next;
    size_t n;

    if (w->error[0])
        return;
    if (type == QREC_BODY && len == 0)
        return; /* nothing to store; an empty 'B' is not in the grammar */
    next = qstate_next(w->state, type);
    if (next < 0) {
        qfile_fail(w, "record %s out of order", qrec_name(type, tn));
        return;
    }
    if ((why = qrec_check(type, data, len)) != NULL) {
        qfile_fail(w, "record %s: %s", qrec_name(type, tn), why);
        return;
    }
    w->state = (enum qstate)next;
    hdr[0] = (unsigned char)type;
    n = 1 + varint_put(hdr + 1, len);
    buf_append(&w->out, hdr, n);
    if (len)
        buf_append(&w->out, data, len);
    if (w->out.len >= QFILE_FLUSH ||
        time(NULL) - w->last_write >= QFILE_FLUSH_INTERVAL)
        qfile_flush(w);
}

void qfile_put_str(struct qfile_writer *w, int type, const char *s)
{
    qfile_put(w, type, s, strlen(s));
}

void qfile_put_rcpt(struct qfile_writer *w, const char *addr, const char *orig,
                    const char *notify, const char *orcpt)
{
    struct buf rec = BUF_INIT;
    const char *f[4] = {addr, orig, notify, orcpt};

    for (int i = 0; i < 4; i++) {
        const char *s = f[i] ? f[i] : "";
        buf_append(&rec, s, strlen(s) + (i < 3)); /* NUL between fields */
    }
    qfile_put(w, QREC_RCPT, rec.data, rec.len);
    buf_free(&rec);
}

static void qfile_writer_free(struct qfile_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    if (w->qdir_fd >= 0)
        close(w->qdir_fd);
    buf_free(&w->out);
    free(w->queue_dir);
    free(w);
}

void qfile_writer_abort(struct qfile_writer *w)
{
    if (w == NULL)
        return;
    if (unlinkat(w->qdir_fd, w->tmp_name, 0) < 0 && errno != ENOENT)
        log_warn("remove %s/%s: %s", w->queue_dir, w->tmp_name,
                 strerror(errno));
    qfile_writer_free(w);
}

/* rename tmp -> incoming/<id> without replacing an existing file. */
static int qfile_rename_noreplace(struct qfile_writer *w, const char *dst)
{
    if (renameat2(w->qdir_fd, w->tmp_name, w->qdir_fd, dst, RENAME_NOREPLACE) ==
        0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    /* File systems without RENAME_NOREPLACE: link(2) also refuses EEXIST. */
    if (linkat(w->qdir_fd, w->tmp_name, w->qdir_fd, dst, 0) < 0)
        return -1;
    if (unlinkat(w->qdir_fd, w->tmp_name, 0) < 0)
        log_warn("remove %s/%s: %s", w->queue_dir, w->tmp_name,
                 strerror(errno));
    return 0;
}

/*
 * fsync the queue directory we renamed into: for incoming/ the cached
 * descriptor when it is that directory (the normal case, no open per
 * message), else a fresh one.
 */
static int qfile_fsync_queue(struct qfile_writer *w, const char *queue)
{
    struct stat st;
    int fd, rc, saved;

    if (strcmp(queue, MAIL_QUEUE_INCOMING) == 0 &&
        qdir_cache.incoming_fd >= 0 &&
        fstatat(w->qdir_fd, MAIL_QUEUE_INCOMING, &st, 0) == 0 &&
        st.st_dev == qdir_cache.dev && st.st_ino == qdir_cache.ino)
        return fsync(qdir_cache.incoming_fd);
    fd = openat(w->qdir_fd, queue, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    rc = fsync(fd);
    saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

static struct groupsync *qfile_gsync;

void qfile_set_groupsync(struct groupsync *g)
{
    qfile_gsync = g;
}

/* Group commit applies when the shared syncfs() covers the queue. */
static bool qfile_use_groupsync(const struct qfile_writer *w)
{
    return qfile_gsync != NULL && w->dev == groupsync_dev(qfile_gsync);
}

int qfile_writer_commit(struct qfile_writer *w, char id[MAIL_QUEUE_ID_MAX],
                        char *err, size_t errlen)
{
    return qfile_writer_commit_to(w, MAIL_QUEUE_INCOMING, id, err, errlen);
}

int qfile_writer_commit_to(struct qfile_writer *w, const char *queue,
                           char id[MAIL_QUEUE_ID_MAX], char *err, size_t errlen)
{
    char dst[MAIL_QUEUE_ID_MAX + 16];
    int tries;
    bool group = qfile_use_groupsync(w);

    assert(strcmp(queue, MAIL_QUEUE_INCOMING) == 0 ||
           strcmp(queue, MAIL_QUEUE_HOLD) == 0);

    qfile_put(w, QREC_END, "", 0);
    if (!w->error[0] && w->state != QS_END)
        qfile_fail(w, "queue file incomplete");
    qfile_flush(w);
    /* A recycled file may hold the tail of an older, longer message. */
    if (!w->error[0] && w->old_size > w->written &&
        ftruncate(w->fd, w->written) < 0)
        qfile_fail(w, "ftruncate %s/%s: %s", w->queue_dir, w->tmp_name,
                   strerror(errno));
    /*
     * With group commit, one syncfs() after the rename makes both the
     * content and the directory entry durable.  qmgr may see the file
     * before that; delivering mail that is not yet acknowledged is
     * harmless (if the sync fails the client retries: a duplicate, the
     * safe direction).
     */
    if (!w->error[0] && !group && fsync(w->fd) < 0)
        qfile_fail(w, "fsync %s/%s: %s", w->queue_dir, w->tmp_name,
                   strerror(errno));
    for (tries = 0; !w->error[0]; tries++) {
        snprintf(dst, sizeof(dst), "%s/%s", queue, w->id);
        if (qfile_rename_noreplace(w, dst) == 0)
            break;
        if (errno != EEXIST || tries >= QFILE_NAME_TRIES) {
            qfile_fail(w, "rename %s/%s to %s: %s", w->queue_dir, w->tmp_name,
                       dst, strerror(errno));
            break;
        }
        /* Someone put a file of that name there; take another usec. */
        log_warn("queue ID %s already in use, choosing another", w->id);
        w->usec = (w->usec + 1) % 1000000;
        qfile_make_id(w);
    }
    if (w->error[0]) {
        snprintf(err, errlen, "%s", w->error);
        qfile_writer_abort(w);
        return -1;
    }
    /*
     * Without a durable directory entry we may not acknowledge, so the
     * client hears a failure and the file goes again.  Should the unlink
     * not survive a crash either, the client's retry makes a duplicate,
     * which is the safe direction.
     */
    if ((group ? groupsync_sync(qfile_gsync) : qfile_fsync_queue(w, queue)) <
        0) {
        snprintf(err, errlen, "fsync %s/%s: %s", w->queue_dir, queue,
                 strerror(errno));
        if (unlinkat(w->qdir_fd, dst, 0) < 0)
            log_warn("remove %s/%s: %s", w->queue_dir, dst, strerror(errno));
        qfile_writer_free(w);
        return -1;
    }
    snprintf(id, MAIL_QUEUE_ID_MAX, "%s", w->id);
    qfile_writer_free(w);
    return 0;
}

/* ---- reader ---- */

struct qreader {
    int fd;
    off_t size; /* from fstat at start */
    off_t pos;  /* next byte to parse */
    char *buf;
    off_t buf_off; /* file offset of buf[0] */
    size_t buf_len;
    char *err;
    size_t errlen;
    bool *corrupt;
};

static int rd_corrupt(struct qreader *r, off_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int rd_corrupt(struct qreader *r, off_t at, const char *fmt, ...)
{
    char text[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    snprintf(r->err, r->errlen, "record grammar: %s at offset %lld", text,
             (long long)at);
    *r->corrupt = true;
    return -1;
}

static int rd_ioerr(struct qreader *r, const char *what)
{
    snprintf(r->err, r->errlen, "%s: %s", what, strerror(errno));
    *r->corrupt = false;
    return -1;
}

/*
 * Make bytes [pos, pos+n) available in r->buf (n <= QFILE_READ_BUF).
 * Returns a pointer, or NULL with *short_read = true at end of file, or
 * NULL with an I/O error reported.
 */
static const char *rd_need(struct qreader *r, size_t n, bool *short_read)
{
    size_t got = 0;

    *short_read = false;
    if (r->pos >= r->buf_off &&
        r->pos + (off_t)n <= r->buf_off + (off_t)r->buf_len)
        return r->buf + (r->pos - r->buf_off);
    r->buf_off = r->pos;
    r->buf_len = 0;
    while (got < QFILE_READ_BUF) {
        ssize_t k = pread(r->fd, r->buf + got, QFILE_READ_BUF - got,
                          r->pos + (off_t)got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            rd_ioerr(r, "read queue file");
            return NULL;
        }
        if (k == 0)
            break;
        got += (size_t)k;
        if (got >= n)
            break; /* enough for now; the rest comes with the next fill */
    }
    r->buf_len = got;
    if (got < n) {
        *short_read = true;
        return NULL;
    }
    return r->buf;
}

/*
 * Read one record header at r->pos: type and length; r->pos moves past
 * the header.  *data gets the record's bytes, except for 'B' records when
 * skip_body (then the data is only checked to lie within the file).
 * Returns 0 or -1.
 */
static int rd_record(struct qreader *r, int *type, size_t *len,
                     const char **data, bool skip_body)
{
    off_t start = r->pos;
    const unsigned char *p;
    bool short_read;
    size_t v = 0;
    int i;

    p = (const unsigned char *)rd_need(r, 1, &short_read);
    if (p == NULL)
        return short_read ? rd_corrupt(r, start, "premature end of file") : -1;
    *type = p[0];
    r->pos++;
    if (!qrec_known(*type)) {
        char tn[8];
        return rd_corrupt(r, start, "unknown record type %s",
                          qrec_name(*type, tn));
    }
    for (i = 0;; i++) {
        if (i == QFILE_VARINT_MAX)
            return rd_corrupt(r, start, "length field longer than %d bytes",
                              QFILE_VARINT_MAX);
        p = (const unsigned char *)rd_need(r, 1, &short_read);
        if (p == NULL)
            return short_read ? rd_corrupt(r, start, "premature end of file")
                              : -1;
        r->pos++;
        v |= (size_t)(p[0] & 0x7f) << (7 * i);
        if ((p[0] & 0x80) == 0) {
            if (p[0] == 0 && i > 0)
                return rd_corrupt(r, start, "non-minimal length field");
            break;
        }
    }
    if (v > qrec_max_len(*type)) {
        char tn[8];
        return rd_corrupt(r, start, "record %s length %zu exceeds %zu",
                          qrec_name(*type, tn), v, qrec_max_len(*type));
    }
    if ((off_t)v > r->size - r->pos)
        return rd_corrupt(r, start, "record extends past end of file");
    *len = v;
    *data = "";
    if (skip_body && *type == QREC_BODY) {
        r->pos += (off_t)v;
        return 0;
    }
    if (v > 0) {
        *data = rd_need(r, v, &short_read);
        if (*data == NULL)
            return short_read ? rd_corrupt(r, start, "premature end of file")
                              : -1;
        r->pos += (off_t)v;
    }
    return 0;
}

static int rd_open(struct qreader *r, int fd, bool *corrupt, char *err,
                   size_t errlen)
{
    struct stat st;

    memset(r, 0, sizeof(*r));
    r->fd = fd;
    r->err = err;
    r->errlen = errlen;
    r->corrupt = corrupt;
    *corrupt = false;
    if (fstat(fd, &st) < 0)
        return rd_ioerr(r, "fstat queue file");
    r->size = st.st_size;
    r->buf = xmalloc(QFILE_READ_BUF);
    return 0;
}

static void rcpt_free(struct qfile_rcpt *rc)
{
    free(rc->addr);
    free(rc->orig);
    free(rc->notify);
    free(rc->orcpt);
}

void qfile_envelope_free(struct qfile_envelope *env)
{
    free(env->sender);
    argv_free(&env->attrs);
    for (size_t i = 0; i < env->nrcpt; i++)
        rcpt_free(&env->rcpts[i]);
    free(env->rcpts);
    memset(env, 0, sizeof(*env));
}

static void env_add_rcpt(struct qfile_envelope *env, size_t *cap,
                         const char *data, size_t len, off_t offset, bool done)
{
    struct qfile_rcpt *rc;
    const char *f = data;
    char **dst[4];

    if (env->nrcpt == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        env->rcpts = xreallocarray(env->rcpts, *cap, sizeof(*env->rcpts));
    }
    rc = &env->rcpts[env->nrcpt++];
    memset(rc, 0, sizeof(*rc));
    dst[0] = &rc->addr;
    dst[1] = &rc->orig;
    dst[2] = &rc->notify;
    dst[3] = &rc->orcpt;
    /* qrec_check guaranteed exactly three NULs. */
    for (int i = 0; i < 4; i++) {
        size_t n = i < 3 ? strlen(f) : len - (size_t)(f - data);
        *dst[i] = xstrndup(f, n);
        f += n + 1;
    }
    rc->offset = offset;
    rc->done = done;
}

int qfile_read_envelope(int fd, struct qfile_envelope *env, bool *corrupt,
                        char *err, size_t errlen)
{
    struct qreader r;
    enum qstate state = QS_START;
    long long body_total = 0, n;
    size_t rcpt_cap = 0, len;
    const char *data, *why;
    char tn[8];
    int type, next;

    memset(env, 0, sizeof(*env));
    if (rd_open(&r, fd, corrupt, err, errlen) < 0)
        return -1;
    while (state != QS_END) {
        off_t at = r.pos;
        /* Content is skipped: only its framing is validated here. */
        if (rd_record(&r, &type, &len, &data, true) < 0)
            goto fail;
        next = qstate_next(state, type);
        if (next < 0) {
            rd_corrupt(&r, at, "unexpected record %s", qrec_name(type, tn));
            goto fail;
        }
        if (type == QREC_BODY) {
            if (len == 0) {
                rd_corrupt(&r, at, "empty content record");
                goto fail;
            }
            body_total += (long long)len;
        } else if ((why = qrec_check(type, data, len)) != NULL) {
            rd_corrupt(&r, at, "record %s: %s", qrec_name(type, tn), why);
            goto fail;
        }
        switch (type) {
        case QREC_TIME:
            parse_decimal(data, len, &n);
            env->arrival = (time_t)n;
            break;
        case QREC_SENDER:
            env->sender = xstrndup(data, len);
            break;
        case QREC_ATTR:
            argv_addn(&env->attrs, data, len);
            break;
        case QREC_RCPT:
        case QREC_DONE:
            env_add_rcpt(env, &rcpt_cap, data, len, at, type == QREC_DONE);
            break;
        case QREC_MESSAGE:
            env->content_offset = r.pos;
            break;
        case QREC_SIZE:
            parse_decimal(data, len, &n);
            if (n != body_total) {
                rd_corrupt(&r, at, "size %lld does not match content %lld", n,
                           body_total);
                goto fail;
            }
            env->content_size = n;
            break;
        }
        state = (enum qstate)next;
    }
    if (r.pos != r.size) {
        rd_corrupt(&r, r.pos, "data after end record");
        goto fail;
    }
    free(r.buf);
    return 0;

fail:
    free(r.buf);
    qfile_envelope_free(env);
    return -1;
}

const char *qfile_attr(const struct qfile_envelope *env, const char *name)
{
    size_t nlen = strlen(name);

    for (size_t i = 0; i < env->attrs.n; i++) {
        const char *a = env->attrs.v[i];
        if (strncmp(a, name, nlen) == 0 && a[nlen] == '=')
            return a + nlen + 1;
    }
    return NULL;
}

int qfile_read_content(int fd, const struct qfile_envelope *env,
                       int (*fn)(const char *data, size_t len, void *ctx),
                       void *ctx, char *err, size_t errlen)
{
    struct qreader r;
    long long total = 0, n;
    bool corrupt;
    const char *data;
    size_t len;
    char tn[8];
    int type, rc = -1;

    if (rd_open(&r, fd, &corrupt, err, errlen) < 0)
        return -1;
    r.pos = env->content_offset;
    for (;;) {
        off_t at = r.pos;
        if (rd_record(&r, &type, &len, &data, false) < 0)
            break;
        if (type == QREC_BODY && len > 0) {
            total += (long long)len;
            if (fn(data, len, ctx) < 0) {
                snprintf(err, errlen, "content consumer stopped");
                break;
            }
            continue;
        }
        if (type == QREC_SIZE && parse_decimal(data, len, &n) && n == total &&
            n == env->content_size) {
            rc = 0;
            break;
        }
        rd_corrupt(&r, at, "unexpected record %s in content",
                   qrec_name(type, tn));
        break;
    }
    free(r.buf);
    return rc;
}

int qfile_mark_done(int fd, off_t offset, char *err, size_t errlen)
{
    char c;
    ssize_t n;

    do
        n = pread(fd, &c, 1, offset);
    while (n < 0 && errno == EINTR);
    if (n != 1) {
        snprintf(err, errlen, "read recipient at offset %lld: %s",
                 (long long)offset, n < 0 ? strerror(errno) : "end of file");
        return -1;
    }
    if (c == QREC_DONE)
        return 0;
    if (c != QREC_RCPT) {
        snprintf(err, errlen, "no recipient record at offset %lld",
                 (long long)offset);
        return -1;
    }
    c = QREC_DONE;
    do
        n = pwrite(fd, &c, 1, offset);
    while (n < 0 && errno == EINTR);
    if (n != 1) {
        snprintf(err, errlen, "mark recipient done at offset %lld: %s",
                 (long long)offset, n < 0 ? strerror(errno) : "no progress");
        return -1;
    }
    return 0;
}
