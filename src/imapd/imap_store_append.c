/*
 * imap_store_append - new messages in a mailbox: APPEND (data from the
 * client) and COPY/MOVE (hard links to the source files).
 *
 * The destination's index write transaction is held while the file is
 * linked into cur/, so no other imapd can give the file a UID first and
 * the UID returned (APPENDUID/COPYUID) is the one every session sees.
 * The file is on disk (fsynced, directory fsynced) before the index
 * commits; if the commit fails, the next scan gives the file a UID, so
 * a message is never lost, at worst reported with an error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "global/maildir.h"
#include "imapd/imap_mailbox_impl.h"
#include "imapd/imap_store.h"
#include "imapd/imap_store_impl.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/mem.h"

/*
 * Messages are stored with LF line ends (what mutt and `local` write)
 * when that converts back to the client's bytes exactly: every LF is
 * preceded by CR and there is no other CR.
 */
static bool crlf_only(const char *d, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (d[i] == '\r' && (i + 1 >= len || d[i + 1] != '\n'))
            return false;
        if (d[i] == '\n' && (i == 0 || d[i - 1] != '\r'))
            return false;
    }
    return true;
}

static int write_body(struct maildir_writer *w, const char *d, size_t len)
{
    size_t start = 0;

    if (!crlf_only(d, len))
        return maildir_writer_write(w, d, len);
    for (size_t i = 0; i < len; i++) {
        if (d[i] == '\r') {
            if (maildir_writer_write(w, d + start, i - start) < 0)
                return -1;
            start = i + 1;
        }
    }
    return maildir_writer_write(w, d + start, len - start);
}

/* Map keyword names into meta (added when new); unknown beyond the max
 * are dropped with a log line.  Returns the bit set. */
static uint64_t keyword_bits(struct imap_index_meta *meta,
                             const char *const *kw, size_t n, bool *added)
{
    uint64_t bits = 0;

    for (size_t i = 0; i < n; i++) {
        int idx;

        if (!imap_keyword_valid(kw[i]))
            continue;
        idx = imap_meta_keyword(meta, kw[i]);
        if (idx < 0) {
            if (meta->n_keywords >= IMAP_KEYWORDS_MAX) {
                log_warn("imap: keyword %s dropped: mailbox has %d", kw[i],
                         IMAP_KEYWORDS_MAX);
                continue;
            }
            idx = (int)meta->n_keywords;
            meta->keywords[meta->n_keywords++] = xstrdup(kw[i]);
            *added = true;
        }
        bits |= (uint64_t)1 << idx;
    }
    return bits;
}

int imap_store_append(struct imap_store *st, const char *name,
                      const struct imap_append *msg, uint32_t *uidvalidity,
                      uint32_t *uid, char *err, size_t errlen)
{
    char *dir = imap_store_mailbox_dir(st, name);
    struct imap_index *ix = NULL;
    struct imap_index_meta meta;
    struct maildir_writer *w = NULL;
    struct buf info = BUF_INIT, fname = BUF_INIT;
    MDB_txn *txn = NULL;
    struct imap_rec r;
    bool added = false;
    int rc = IMAP_STORE_ERR;

    memset(&meta, 0, sizeof(meta));
    if (dir == NULL) {
        snprintf(err, errlen, "invalid mailbox name");
        return IMAP_STORE_BADNAME;
    }
    if (!imap_store_mailbox_exists(st, name)) {
        snprintf(err, errlen, "no such mailbox");
        free(dir);
        return IMAP_STORE_NONEXISTENT;
    }
    if (msg->len > IMAP_MESSAGE_MAX) {
        snprintf(err, errlen, "message too big");
        free(dir);
        return IMAP_STORE_TOOBIG;
    }
    if ((ix = imap_index_open(st, dir, err, errlen)) == NULL)
        goto out;
    /* Data first, outside the index lock; linked under it. */
    if ((w = maildir_writer_open(dir, err, errlen)) == NULL)
        goto out;
    if (write_body(w, msg->data, msg->len) < 0) {
        snprintf(err, errlen, "write: %s", strerror(errno));
        goto out;
    }
    if (imap_index_begin(ix, true, &txn, err, errlen) < 0)
        goto out;
    if (imap_index_meta_get(ix, txn, &meta) < 0) {
        snprintf(err, errlen, "index %s: no meta data", ix->path);
        goto out;
    }
    memset(&r, 0, sizeof(r));
    r.flags = msg->flags & IMAP_FLAGS_STORED;
    r.keywords = keyword_bits(&meta, msg->keywords, msg->n_keywords, &added);
    buf_puts(&info, ":2,");
    {
        struct buf full = BUF_INIT;

        imap_maildir_name(&full, "", r.flags, "");
        buf_puts(&info, full.data + 3);
        buf_free(&full);
    }
    if (maildir_writer_commit(w, MAILDIR_CUR, info.data, &fname, err,
                              errlen) < 0) {
        w = NULL;
        goto out;
    }
    w = NULL;
    {
        char *path = xasprintf("%s/cur/%s", dir, fname.data);
        struct timespec ts[2];

        ts[0].tv_sec = ts[1].tv_sec = msg->internaldate ? msg->internaldate
                                                        : time(NULL);
        ts[0].tv_nsec = ts[1].tv_nsec = 0;
        if (msg->internaldate && utimensat(AT_FDCWD, path, ts, 0) < 0)
            log_warn("imap: utimensat %s: %m", path);
        r.internaldate = ts[0].tv_sec;
        free(path);
    }
    *strchr(fname.data, ':') = 0;
    r.base = fname.data;
    r.info = "";
    r.uid = meta.uidnext++;
    r.modseq = ++meta.highestmodseq;
    if (imap_index_rec_put(ix, txn, &r) < 0 ||
        imap_index_meta_put(ix, txn, &meta) < 0) {
        snprintf(err, errlen, "index %s: write failed; the message is stored "
                 "and gets its UID at the next sync", ix->path);
        imap_index_retry(ix);
        goto out;
    }
    if (imap_index_commit(ix, txn, err, errlen) < 0) {
        txn = NULL;
        imap_index_retry(ix);
        goto out;
    }
    txn = NULL;
    *uidvalidity = meta.uidvalidity;
    *uid = r.uid;
    rc = IMAP_STORE_OK;
out:
    if (txn)
        mdb_txn_abort(txn);
    if (w)
        maildir_writer_abort(w);
    imap_index_meta_free(&meta);
    imap_index_release(ix, true);
    buf_free(&info);
    buf_free(&fname);
    free(dir);
    return rc;
}

void imap_copy_result_free(struct imap_copy_result *r)
{
    free(r->src_uids);
    free(r->dst_uids);
    memset(r, 0, sizeof(*r));
}

/* What we need of one source message. */
struct copy_src {
    struct imap_rec rec;
    char *path;
    const char **kw;
    size_t n_kw;
};

/* Hard link (or copy across file systems) src to dst. */
static int link_or_copy(const char *src, const char *dst, char *err,
                        size_t errlen)
{
    struct buf data = BUF_INIT;
    int fd;

    if (link(src, dst) == 0)
        return 0;
    if (errno != EXDEV && errno != EPERM && errno != EMLINK) {
        snprintf(err, errlen, "link %s: %s", src, strerror(errno));
        return errno == ENOENT ? 1 : -1;
    }
    if (file_read_all(src, &data, IMAP_MESSAGE_MAX) < 0) {
        snprintf(err, errlen, "read %s: %s", src, strerror(errno));
        buf_free(&data);
        return -1;
    }
    fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write_all(fd, data.data, data.len) < 0 || fsync(fd) < 0) {
        snprintf(err, errlen, "write %s: %s", dst, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(dst);
        }
        buf_free(&data);
        return -1;
    }
    close(fd);
    buf_free(&data);
    return 0;
}

int imap_mailbox_copy(struct imap_mailbox *mb, const uint32_t *seqs, size_t n,
                      const char *dest, bool move, struct imap_copy_result *res,
                      struct imap_sync *expunged, char *err, size_t errlen)
{
    char *ddir = imap_store_mailbox_dir(mb->st, dest);
    struct imap_index *dix = NULL;
    struct imap_index_meta meta;
    struct copy_src *src = NULL;
    MDB_txn *txn = NULL;
    size_t n_src = 0;
    bool added = false, linked_any = false;
    int rc = IMAP_STORE_ERR;

    memset(res, 0, sizeof(*res));
    memset(&meta, 0, sizeof(meta));
    if (expunged)
        memset(expunged, 0, sizeof(*expunged));
    if ((rc = imap_mailbox_wake(mb, err, errlen)) != IMAP_STORE_OK) {
        free(ddir);
        return rc;
    }
    if (ddir == NULL) {
        snprintf(err, errlen, "invalid mailbox name");
        return IMAP_STORE_BADNAME;
    }
    if (!imap_store_mailbox_exists(mb->st, dest)) {
        snprintf(err, errlen, "no such mailbox");
        free(ddir);
        return IMAP_STORE_NONEXISTENT;
    }
    if (move && mb->readonly) {
        snprintf(err, errlen, "mailbox is read-only");
        free(ddir);
        return IMAP_STORE_CANNOT;
    }
    /* 1. The sources, from a read transaction on our index. */
    {
        MDB_txn *rtxn;

        if (imap_index_begin(mb->ix, false, &rtxn, err, errlen) < 0)
            goto out;
        src = xcalloc(n ? n : 1, sizeof(*src));
        for (size_t i = 0; i < n; i++) {
            const struct imap_msg *m = imap_mailbox_msg(mb, seqs[i]);
            struct buf p = BUF_INIT;
            int got;

            if (m == NULL || m->expunged ||
                (got = imap_index_rec_get(mb->ix, rtxn, m->uid,
                                          &src[n_src].rec)) == 1) {
                mdb_txn_abort(rtxn);
                snprintf(err, errlen, "message %u has been expunged", seqs[i]);
                rc = IMAP_STORE_EXPUNGED;
                goto out;
            }
            if (got < 0) {
                mdb_txn_abort(rtxn);
                snprintf(err, errlen, "index %s: bad record", mb->ix->path);
                goto out;
            }
            imap_maildir_path(&p, mb->dir, &src[n_src].rec);
            src[n_src].path = buf_steal(&p);
            src[n_src].kw = xcalloc(IMAP_KEYWORDS_MAX, sizeof(char *));
            for (size_t b = 0; b < mb->n_keywords; b++)
                if (m->keywords & ((uint64_t)1 << b))
                    src[n_src].kw[src[n_src].n_kw++] = mb->keywords[b];
            n_src++;
        }
        mdb_txn_abort(rtxn);
    }
    /* 2. Link into the destination under its write lock. */
    if ((dix = imap_index_open(mb->st, ddir, err, errlen)) == NULL)
        goto out;
    if (imap_index_begin(dix, true, &txn, err, errlen) < 0)
        goto out;
    if (imap_index_meta_get(dix, txn, &meta) < 0) {
        snprintf(err, errlen, "index %s: no meta data", dix->path);
        goto out;
    }
    res->src_uids = xcalloc(n_src ? n_src : 1, sizeof(uint32_t));
    res->dst_uids = xcalloc(n_src ? n_src : 1, sizeof(uint32_t));
    for (size_t i = 0; i < n_src; i++) {
        struct imap_rec r;
        struct buf base = BUF_INIT, to = BUF_INIT;
        struct stat sb;
        int lr;

        if (stat(src[i].path, &sb) < 0) {
            snprintf(err, errlen, "message UID %u has been expunged or "
                     "renamed", src[i].rec.uid);
            rc = errno == ENOENT ? IMAP_STORE_EXPUNGED : IMAP_STORE_ERR;
            goto out;
        }
        imap_store_unique_name(mb->st, &base, (long long)sb.st_size);
        buf_printf(&to, "%s/cur/", ddir);
        imap_maildir_name(&to, base.data, src[i].rec.flags, src[i].rec.info);
        lr = link_or_copy(src[i].path, to.data, err, errlen);
        buf_free(&to);
        if (lr != 0) {
            buf_free(&base);
            rc = lr == 1 ? IMAP_STORE_EXPUNGED : IMAP_STORE_ERR;
            goto out;
        }
        linked_any = true;
        memset(&r, 0, sizeof(r));
        r.uid = meta.uidnext++;
        r.modseq = ++meta.highestmodseq;
        r.internaldate = src[i].rec.internaldate;
        r.flags = src[i].rec.flags;
        r.keywords = keyword_bits(&meta, src[i].kw, src[i].n_kw, &added);
        r.base = base.data;
        r.info = src[i].rec.info;
        if (imap_index_rec_put(dix, txn, &r) < 0) {
            buf_free(&base);
            snprintf(err, errlen, "index %s: write", dix->path);
            imap_index_retry(dix);
            goto out;
        }
        buf_free(&base);
        res->src_uids[res->n] = src[i].rec.uid;
        res->dst_uids[res->n++] = r.uid;
    }
    if (imap_index_meta_put(dix, txn, &meta) < 0) {
        snprintf(err, errlen, "index %s: write", dix->path);
        imap_index_retry(dix);
        goto out;
    }
    {
        char *cur = xasprintf("%s/cur", ddir);

        if (linked_any && fsync_dir(cur) < 0)
            log_warn("imap: fsync %s: %m", cur);
        free(cur);
    }
    if (imap_index_commit(dix, txn, err, errlen) < 0) {
        txn = NULL;
        imap_index_retry(dix);
        goto out;
    }
    txn = NULL;
    res->uidvalidity = meta.uidvalidity;
    rc = IMAP_STORE_OK;

    /* 3. MOVE: the originals go, as by EXPUNGE. */
    if (move) {
        struct imap_index_meta sm;
        MDB_txn *stx;

        if (imap_index_begin(mb->ix, true, &stx, err, errlen) < 0) {
            rc = IMAP_STORE_ERR;
            goto out;
        }
        if (imap_index_meta_get(mb->ix, stx, &sm) < 0) {
            mdb_txn_abort(stx);
            rc = IMAP_STORE_ERR;
            goto out;
        }
        for (size_t i = 0; i < n_src; i++) {
            struct imap_rec cur;

            /* The file may have been renamed meanwhile: current name. */
            if (imap_index_rec_get(mb->ix, stx, src[i].rec.uid, &cur) == 0) {
                struct buf p = BUF_INIT;

                imap_maildir_path(&p, mb->dir, &cur);
                if (unlink(p.data) < 0 && errno != ENOENT)
                    log_warn("imap: unlink %s: %m", p.data);
                buf_free(&p);
                imap_index_rec_del(mb->ix, stx, &cur);
                imap_rec_free(&cur);
            }
        }
        sm.highestmodseq++;
        if (imap_index_meta_put(mb->ix, stx, &sm) < 0 ||
            imap_index_commit(mb->ix, stx, err, errlen) < 0) {
            log_warn("imap: MOVE from %s: %s (the next sync removes them)",
                     mb->dir, err);
        }
        imap_index_meta_free(&sm);
        rc = imap_mailbox_sync(mb, IMAP_SYNC_EXPUNGE, expunged, err, errlen);
    }
out:
    if (txn)
        mdb_txn_abort(txn);
    if (rc != IMAP_STORE_OK && rc != IMAP_STORE_GONE && !(move && res->n)) {
        /* Linked files without an index entry get UIDs at the next
         * scan; say so rather than hide it. */
        if (linked_any)
            log_warn("imap: COPY into %s failed after linking: %s", ddir, err);
        imap_copy_result_free(res);
    }
    imap_index_meta_free(&meta);
    for (size_t i = 0; i < n_src; i++) {
        imap_rec_free(&src[i].rec);
        free(src[i].path);
        free(src[i].kw);
    }
    free(src);
    imap_index_release(dix, true);
    free(ddir);
    return rc;
}
