/*
 * imap_mailbox_msg - message data and changes through a session view:
 * reading a message (CRLF form), the cached RFC822.SIZE / ENVELOPE /
 * BODYSTRUCTURE, STORE (flags renamed into the file name, keywords in
 * the index) and EXPUNGE (unlink).
 *
 * Another process may have renamed a file since our index saw it (flag
 * change by mutt, by another imapd) -- then the open or rename finds
 * nothing, we rescan once and retry; still nothing means expunged.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imapd/imap_mailbox_impl.h"
#include "imapd/imap_mime.h"
#include "imapd/imap_store.h"
#include "imapd/imap_store_impl.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/mem.h"

/* Record of uid: IMAP_STORE_OK, IMAP_STORE_EXPUNGED, IMAP_STORE_ERR. */
static int load_rec(struct imap_mailbox *mb, uint32_t uid, struct imap_rec *r,
                    char *err, size_t errlen)
{
    MDB_txn *txn;
    int rc;

    if ((rc = imap_mailbox_wake(mb, err, errlen)) != IMAP_STORE_OK)
        return rc;
    if (imap_index_begin(mb->ix, false, &txn, err, errlen) < 0)
        return IMAP_STORE_ERR;
    rc = imap_index_rec_get(mb->ix, txn, uid, r);
    mdb_txn_abort(txn);
    if (rc == 1) {
        snprintf(err, errlen, "message UID %u has been expunged", uid);
        return IMAP_STORE_EXPUNGED;
    }
    if (rc < 0) {
        snprintf(err, errlen, "index %s: bad record for UID %u", mb->ix->path,
                 uid);
        return IMAP_STORE_ERR;
    }
    return IMAP_STORE_OK;
}

/* Open the message file of seq; the rec is left in r (caller frees). */
static int open_msg(struct imap_mailbox *mb, uint32_t seq, struct imap_rec *r,
                    int *fd, char *err, size_t errlen)
{
    const struct imap_msg *m = imap_mailbox_msg(mb, seq);

    if (m == NULL) {
        snprintf(err, errlen, "no message %u", seq);
        return IMAP_STORE_NONEXISTENT;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        struct buf path = BUF_INIT;
        int rc = load_rec(mb, m->uid, r, err, errlen);

        if (rc != IMAP_STORE_OK)
            return rc;
        imap_maildir_path(&path, mb->dir, r);
        *fd = open(path.data, O_RDONLY | O_CLOEXEC);
        if (*fd >= 0) {
            buf_free(&path);
            return IMAP_STORE_OK;
        }
        rc = errno;
        snprintf(err, errlen, "open %s: %s", path.data, strerror(rc));
        buf_free(&path);
        imap_rec_free(r);
        if (rc != ENOENT)
            return IMAP_STORE_ERR;
        /* Renamed or removed by someone else: look again. */
        if ((rc = imap_mailbox_rescan(mb, err, errlen)) != IMAP_STORE_OK)
            return rc;
    }
    snprintf(err, errlen, "message UID %u has been expunged", m->uid);
    return IMAP_STORE_EXPUNGED;
}

static int read_raw(struct imap_mailbox *mb, uint32_t seq, struct buf *raw,
                    char *err, size_t errlen)
{
    struct imap_rec r;
    struct stat sb;
    int fd, rc = open_msg(mb, seq, &r, &fd, err, errlen);
    ssize_t got;

    if (rc != IMAP_STORE_OK)
        return rc;
    imap_rec_free(&r);
    if (fstat(fd, &sb) < 0) {
        snprintf(err, errlen, "fstat: %s", strerror(errno));
        close(fd);
        return IMAP_STORE_ERR;
    }
    if ((uint64_t)sb.st_size > IMAP_MESSAGE_MAX) {
        snprintf(err, errlen, "message of %lld bytes is too big",
                 (long long)sb.st_size);
        close(fd);
        return IMAP_STORE_TOOBIG;
    }
    buf_reserve(raw, (size_t)sb.st_size + 1);
    got = read_full(fd, raw->data + raw->len, (size_t)sb.st_size);
    close(fd);
    if (got < 0) {
        snprintf(err, errlen, "read: %s", strerror(errno));
        return IMAP_STORE_ERR;
    }
    raw->len += (size_t)got;
    raw->data[raw->len] = 0;
    return IMAP_STORE_OK;
}

int imap_mailbox_msg_read_raw(struct imap_mailbox *mb, uint32_t seq,
                              struct buf *out, char *err, size_t errlen)
{
    size_t from = out->len;
    int rc = read_raw(mb, seq, out, err, errlen);

    if (rc != IMAP_STORE_OK)
        buf_truncate(out, from);
    return rc;
}

int imap_mailbox_msg_read(struct imap_mailbox *mb, uint32_t seq,
                          struct buf *out, char *err, size_t errlen)
{
    size_t from = out->len;
    int rc = read_raw(mb, seq, out, err, errlen);

    /* One buffer, one pass: the file is read where its CRLF form goes. */
    if (rc == IMAP_STORE_OK)
        imap_mime_crlf_inplace(out, from);
    else
        buf_truncate(out, from);
    return rc;
}

static void cache_free(struct imap_cache *c)
{
    buf_free(&c->envelope);
    buf_free(&c->body);
    buf_free(&c->bodystructure);
    buf_free(&c->search);
}

static void cache_copy(struct imap_cache *to, const struct imap_cache *from,
                       unsigned want)
{
    to->size = from->size;
    if (want & IMAP_CACHE_ENVELOPE)
        buf_append(&to->envelope, from->envelope.data, from->envelope.len);
    if (want & IMAP_CACHE_BODY)
        buf_append(&to->body, from->body.data, from->body.len);
    if (want & IMAP_CACHE_BODYSTRUCTURE)
        buf_append(&to->bodystructure, from->bodystructure.data,
                   from->bodystructure.len);
    if (want & IMAP_CACHE_SEARCH)
        buf_append(&to->search, from->search.data, from->search.len);
}

void imap_mailbox_cache_flush(struct imap_mailbox *mb)
{
    char err[256];

    if (mb->n_pending == 0)
        return;
    for (int attempt = 0; attempt < 2 && mb->ix != NULL; attempt++) {
        MDB_txn *txn;
        bool ok = true;

        if (imap_index_begin(mb->ix, true, &txn, err, sizeof(err)) < 0)
            break;
        for (size_t i = 0; i < mb->n_pending && ok; i++) {
            struct imap_cache_pending *p = &mb->pending[i];
            struct imap_rec r;

            /* Expunged meanwhile: its record is gone, keep no cache. */
            if (imap_index_rec_get(mb->ix, txn, p->uid, &r) != 0)
                continue;
            imap_rec_free(&r);
            ok = imap_index_cache_put(mb->ix, txn, p->uid, &p->c) == 0;
        }
        if (ok) {
            if (imap_index_commit(mb->ix, txn, err, sizeof(err)) == 0 ||
                !imap_index_retry(mb->ix))
                break;
        } else {
            mdb_txn_abort(txn);
            if (!imap_index_retry(mb->ix))
                break;
        }
    }
    for (size_t i = 0; i < mb->n_pending; i++)
        cache_free(&mb->pending[i].c);
    mb->n_pending = 0;
}

/*
 * The parts in want of the cache entry of seq, computed when missing
 * (or, for the SEARCH block, when the entry predates it) and written
 * with the next batch.
 */
static int get_cache(struct imap_mailbox *mb, uint32_t seq, unsigned want,
                     struct imap_cache *c, char *err, size_t errlen)
{
    const struct imap_msg *m = imap_mailbox_msg(mb, seq);
    struct imap_cache_pending *p;
    struct buf msg = BUF_INIT;
    struct imap_mime *mime;
    MDB_txn *txn;
    int rc;

    memset(c, 0, sizeof(*c));
    if (m == NULL) {
        snprintf(err, errlen, "no message %u", seq);
        return IMAP_STORE_NONEXISTENT;
    }
    /* Newest first: FETCH (ENVELOPE BODY) asks twice in a row. */
    for (size_t i = mb->n_pending; i-- > 0;) {
        if (mb->pending[i].uid == m->uid) {
            cache_copy(c, &mb->pending[i].c, want);
            return IMAP_STORE_OK;
        }
    }
    if ((rc = imap_mailbox_wake(mb, err, errlen)) != IMAP_STORE_OK)
        return rc;
    if (imap_index_begin(mb->ix, false, &txn, err, errlen) < 0)
        return IMAP_STORE_ERR;
    rc = imap_index_cache_get(mb->ix, txn, m->uid, want, c);
    mdb_txn_abort(txn);
    if (rc == 0 && (!(want & IMAP_CACHE_SEARCH) || c->search.len > 0))
        return IMAP_STORE_OK;
    cache_free(c);
    if ((rc = imap_mailbox_msg_read(mb, seq, &msg, err, errlen)) != 0) {
        buf_free(&msg);
        return rc;
    }
    if (mb->n_pending >= IMAP_CACHE_BATCH)
        imap_mailbox_cache_flush(mb);
    if (mb->pending == NULL)
        mb->pending = xreallocarray(NULL, IMAP_CACHE_BATCH,
                                    sizeof(*mb->pending));
    p = &mb->pending[mb->n_pending++];
    memset(p, 0, sizeof(*p));
    p->uid = m->uid;
    mime = imap_mime_parse(msg.data ? msg.data : "", msg.len);
    p->c.size = msg.len;
    imap_mime_envelope(mime, &p->c.envelope);
    imap_mime_bodystructure(mime, false, &p->c.body);
    imap_mime_bodystructure(mime, true, &p->c.bodystructure);
    imap_mime_search_cache(mime, &p->c.search);
    imap_mime_free(mime);
    buf_free(&msg);
    cache_copy(c, &p->c, want);
    return IMAP_STORE_OK;
}

int imap_mailbox_msg_size(struct imap_mailbox *mb, uint32_t seq,
                          uint64_t *size, char *err, size_t errlen)
{
    struct imap_cache c;
    int rc = get_cache(mb, seq, 0, &c, err, errlen);

    if (rc == IMAP_STORE_OK)
        *size = c.size;
    cache_free(&c);
    return rc;
}

/* Append the one cached part `what` (an IMAP_CACHE_* bit) of seq. */
static int msg_cached_part(struct imap_mailbox *mb, uint32_t seq,
                           unsigned what, struct buf *out, char *err,
                           size_t errlen)
{
    struct imap_cache c;
    int rc = get_cache(mb, seq, what, &c, err, errlen);

    if (rc == IMAP_STORE_OK) {
        const struct buf *part = what == IMAP_CACHE_ENVELOPE ? &c.envelope
                                 : what == IMAP_CACHE_BODY   ? &c.body
                                 : what == IMAP_CACHE_BODYSTRUCTURE
                                     ? &c.bodystructure
                                     : &c.search;

        buf_append(out, part->data, part->len);
    }
    cache_free(&c);
    return rc;
}

int imap_mailbox_msg_envelope(struct imap_mailbox *mb, uint32_t seq,
                              struct buf *out, char *err, size_t errlen)
{
    return msg_cached_part(mb, seq, IMAP_CACHE_ENVELOPE, out, err, errlen);
}

int imap_mailbox_msg_bodystructure(struct imap_mailbox *mb, uint32_t seq,
                                   bool extended, struct buf *out, char *err,
                                   size_t errlen)
{
    return msg_cached_part(
        mb, seq, extended ? IMAP_CACHE_BODYSTRUCTURE : IMAP_CACHE_BODY, out,
        err, errlen);
}

int imap_mailbox_msg_search_cache(struct imap_mailbox *mb, uint32_t seq,
                                  struct buf *out, char *err, size_t errlen)
{
    return msg_cached_part(mb, seq, IMAP_CACHE_SEARCH, out, err, errlen);
}

/* ---- STORE ---- */

static unsigned new_flags(enum imap_flags_mode mode, unsigned old, unsigned f)
{
    switch (mode) {
    case IMAP_FLAGS_ADD:
        return old | f;
    case IMAP_FLAGS_REMOVE:
        return old & ~f;
    default:
        return f;
    }
}

static uint64_t new_keywords(enum imap_flags_mode mode, uint64_t old,
                             uint64_t k)
{
    switch (mode) {
    case IMAP_FLAGS_ADD:
        return old | k;
    case IMAP_FLAGS_REMOVE:
        return old & ~k;
    default:
        return k;
    }
}

/*
 * Rename r's file to carry flags; on ENOENT rescan inside txn and try
 * once more.  0 ok, 1 the message is gone, -1 error.
 */
static int rename_flags(struct imap_mailbox *mb, MDB_txn *txn,
                        struct imap_index_meta *meta, struct imap_rec *r,
                        unsigned flags, char *err, size_t errlen)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        struct buf from = BUF_INIT, to = BUF_INIT;
        bool changed;
        int rc;

        imap_maildir_path(&from, mb->dir, r);
        buf_printf(&to, "%s/cur/", mb->dir);
        imap_maildir_name(&to, r->base, flags, r->info);
        rc = rename(from.data, to.data);
        if (rc < 0)
            rc = errno;
        buf_free(&from);
        buf_free(&to);
        if (rc == 0) {
            r->in_new = false;
            return 0;
        }
        if (rc != ENOENT) {
            snprintf(err, errlen, "rename in %s: %s", mb->dir, strerror(rc));
            return -1;
        }
        if (imap_maildir_scan(mb->st, mb->ix, txn, mb->dir, false, meta,
                              &changed, err, errlen) != IMAP_STORE_OK)
            return -1;
        imap_rec_free(r);
        rc = imap_index_rec_get(mb->ix, txn, r->uid, r);
        if (rc != 0)
            return rc < 0 ? -1 : 1;
    }
    return 1;
}

int imap_mailbox_store_flags(struct imap_mailbox *mb, const uint32_t *seqs,
                             size_t n, enum imap_flags_mode mode,
                             unsigned flags, uint64_t keywords,
                             uint64_t unchangedsince, uint32_t **modified,
                             size_t *n_modified, char *err, size_t errlen)
{
    struct imap_index_meta meta;
    MDB_txn *txn;
    bool keywords_only_change = false, any = false;
    int rc = IMAP_STORE_OK;

    if (modified) {
        *modified = NULL;
        *n_modified = 0;
    }
    if (mb->readonly) {
        snprintf(err, errlen, "mailbox is read-only");
        return IMAP_STORE_CANNOT;
    }
    flags &= IMAP_FLAGS_STORED;
    if ((rc = imap_mailbox_wake(mb, err, errlen)) != IMAP_STORE_OK)
        return rc;
    if (imap_index_begin(mb->ix, true, &txn, err, errlen) < 0)
        return IMAP_STORE_ERR;
    if (imap_index_meta_get(mb->ix, txn, &meta) < 0) {
        mdb_txn_abort(txn);
        snprintf(err, errlen, "index %s: no meta data", mb->ix->path);
        return IMAP_STORE_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        struct imap_msg *m;
        struct imap_rec r;
        unsigned nf;
        uint64_t nk;
        int got;

        if (seqs[i] == 0 || seqs[i] > mb->n)
            continue;
        m = &mb->msgs[seqs[i] - 1];
        if (m->expunged)
            continue;
        got = imap_index_rec_get(mb->ix, txn, m->uid, &r);
        if (got < 0) {
            rc = IMAP_STORE_ERR;
            snprintf(err, errlen, "index %s: bad record", mb->ix->path);
            break;
        }
        if (got == 1)
            continue; /* expunged meanwhile: the next sync says so */
        if (unchangedsince && r.modseq > unchangedsince) {
            if (modified) {
                *modified = xreallocarray(*modified, *n_modified + 1,
                                          sizeof(**modified));
                (*modified)[(*n_modified)++] = seqs[i];
            }
            imap_rec_free(&r);
            continue;
        }
        nf = new_flags(mode, r.flags, flags);
        nk = new_keywords(mode, r.keywords, keywords);
        if (nf == r.flags && nk == r.keywords) {
            /* Nothing to do, but the view learns the current state. */
            m->flags = r.flags | (m->flags & IMAP_FLAG_RECENT);
            m->keywords = r.keywords;
            imap_rec_free(&r);
            continue;
        }
        if (nf != r.flags || r.in_new) {
            got = rename_flags(mb, txn, &meta, &r, nf, err, errlen);
            if (got < 0) {
                imap_rec_free(&r);
                rc = IMAP_STORE_ERR;
                break;
            }
            if (got == 1)
                continue;
        } else {
            keywords_only_change = true;
        }
        r.flags = nf;
        r.keywords = nk;
        r.modseq = ++meta.highestmodseq;
        if (imap_index_rec_put(mb->ix, txn, &r) < 0) {
            imap_rec_free(&r);
            rc = IMAP_STORE_ERR;
            snprintf(err, errlen, "index %s: write", mb->ix->path);
            break;
        }
        any = true;
        m->flags = nf | (m->flags & IMAP_FLAG_RECENT);
        m->keywords = nk;
        m->modseq = r.modseq;
        imap_rec_free(&r);
    }
    if (rc == IMAP_STORE_OK && any && imap_index_meta_put(mb->ix, txn, &meta) < 0)
        rc = IMAP_STORE_ERR;
    imap_index_meta_free(&meta);
    if (rc != IMAP_STORE_OK) {
        /* Files already renamed are picked up by the next scan. */
        mdb_txn_abort(txn);
        imap_index_retry(mb->ix);
        return rc;
    }
    if (!any) {
        mdb_txn_abort(txn);
        return IMAP_STORE_OK;
    }
    if (imap_index_commit(mb->ix, txn, err, errlen) < 0) {
        imap_index_retry(mb->ix);
        return IMAP_STORE_ERR;
    }
    if (keywords_only_change)
        imap_maildir_touch(mb->dir);
    return IMAP_STORE_OK;
}

/* ---- EXPUNGE ---- */

static bool uid_listed(const uint32_t *uids, size_t n, uint32_t uid)
{
    if (uids == NULL)
        return true;
    for (size_t i = 0; i < n; i++)
        if (uids[i] == uid)
            return true;
    return false;
}

int imap_mailbox_expunge(struct imap_mailbox *mb, const uint32_t *uids,
                         size_t n_uids, struct imap_sync *out, char *err,
                         size_t errlen)
{
    struct imap_index_meta meta;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    struct imap_rec *gone = NULL;
    size_t n_gone = 0;
    bool changed = false;
    int rc;

    memset(out, 0, sizeof(*out));
    if (mb->readonly) {
        snprintf(err, errlen, "mailbox is read-only");
        return IMAP_STORE_CANNOT;
    }
    if ((rc = imap_mailbox_wake(mb, err, errlen)) != IMAP_STORE_OK)
        return rc;
    if (imap_index_begin(mb->ix, true, &txn, err, errlen) < 0)
        return IMAP_STORE_ERR;
    if (imap_index_meta_get(mb->ix, txn, &meta) < 0) {
        mdb_txn_abort(txn);
        snprintf(err, errlen, "index %s: no meta data", mb->ix->path);
        return IMAP_STORE_ERR;
    }
    /* The files say which messages are \Deleted right now. */
    rc = imap_maildir_scan(mb->st, mb->ix, txn, mb->dir, true, &meta, &changed,
                           err, errlen);
    if (rc == IMAP_STORE_OK && mdb_cursor_open(txn, mb->ix->uids, &cur) == 0) {
        for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, op) == 0;
             op = MDB_NEXT) {
            struct imap_rec r;

            if (imap_index_rec_decode(&k, &v, &r) < 0)
                continue;
            if ((r.flags & IMAP_FLAG_DELETED) && uid_listed(uids, n_uids, r.uid)) {
                gone = xreallocarray(gone, n_gone + 1, sizeof(*gone));
                gone[n_gone++] = r;
            } else {
                imap_rec_free(&r);
            }
        }
        mdb_cursor_close(cur);
    } else if (rc == IMAP_STORE_OK) {
        rc = IMAP_STORE_ERR;
        snprintf(err, errlen, "index %s: cursor", mb->ix->path);
    }
    for (size_t i = 0; rc == IMAP_STORE_OK && i < n_gone; i++) {
        struct buf path = BUF_INIT;

        imap_maildir_path(&path, mb->dir, &gone[i]);
        if (unlink(path.data) < 0 && errno != ENOENT)
            log_warn("imap: unlink %s: %m", path.data);
        buf_free(&path);
        if (imap_index_rec_del(mb->ix, txn, &gone[i]) < 0) {
            rc = IMAP_STORE_ERR;
            snprintf(err, errlen, "index %s: delete", mb->ix->path);
        }
    }
    if (n_gone > 0)
        meta.highestmodseq++;
    if (rc == IMAP_STORE_OK && (n_gone > 0 || changed) &&
        imap_index_meta_put(mb->ix, txn, &meta) < 0)
        rc = IMAP_STORE_ERR;
    imap_index_meta_free(&meta);
    for (size_t i = 0; i < n_gone; i++)
        imap_rec_free(&gone[i]);
    free(gone);
    if (rc != IMAP_STORE_OK) {
        mdb_txn_abort(txn);
        imap_index_retry(mb->ix);
        return rc;
    }
    if (imap_index_commit(mb->ix, txn, err, errlen) < 0) {
        imap_index_retry(mb->ix);
        return IMAP_STORE_ERR;
    }
    return imap_mailbox_sync(mb, IMAP_SYNC_EXPUNGE, out, err, errlen);
}
