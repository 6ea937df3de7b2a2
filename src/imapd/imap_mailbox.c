/*
 * imap_mailbox - one session's view of an open mailbox (SELECT/EXAMINE):
 * the sequence-number -> UID list, flags as the session last saw them,
 * and the sync that tells the session what others changed.
 *
 * A sync re-reads the Maildir only when new/ or cur/ changed since this
 * view last looked (directory mtimes; a directory changed within the
 * last second is always re-read, since its mtime cannot tell two
 * changes in one tick apart); a new view skips the read too when the
 * mtimes are those the index recorded after its last complete scan
 * (SELECT of a known mailbox), and re-reads the index only when its
 * HIGHESTMODSEQ or UIDNEXT moved.  Every change anyone makes bumps one
 * of them, so an idle session costs two stat(2) calls per sync.
 *
 * \Recent: the index keeps the highest UID any writable session has
 * claimed; a writable view that first sees messages above it claims
 * them in the same write transaction, so exactly one session sees each
 * message as \Recent (RFC 3501 2.3.2).
 *
 * A view can hibernate (a session in IDLE or quiet between commands):
 * it lets go of the LMDB index, whose environment is closed when no
 * other view of the process holds it, and keeps only its own arrays.
 * Everything that needs the index reopens it first (imap_mailbox_wake);
 * an index file replaced in between ends the view like a deleted one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "imapd/imap_mime.h"
#include "imapd/imap_store.h"
#include "imapd/imap_store_impl.h"
#include "imapd/imap_mailbox_impl.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/mem.h"

/* ---- open/close and simple accessors ---- */

struct imap_mailbox *imap_mailbox_open(struct imap_store *st, const char *name,
                                       unsigned flags, int *status, char *err,
                                       size_t errlen)
{
    struct imap_mailbox *mb;
    struct imap_sync sync;
    char *dir = imap_store_mailbox_dir(st, name);
    struct stat sb;
    int rc;

    if (dir == NULL) {
        snprintf(err, errlen, "invalid mailbox name");
        *status = IMAP_STORE_BADNAME;
        return NULL;
    }
    if (!imap_store_mailbox_exists(st, name) || stat(dir, &sb) < 0) {
        snprintf(err, errlen, "no such mailbox");
        *status = IMAP_STORE_NONEXISTENT;
        free(dir);
        return NULL;
    }
    mb = xcalloc(1, sizeof(*mb));
    mb->st = st;
    mb->dir = dir;
    mb->name = imap_mailbox_is_inbox(name) ? xstrdup("INBOX") : xstrdup(name);
    mb->watch[0] = xasprintf("%s/new", dir);
    mb->watch[1] = xasprintf("%s/cur", dir);
    mb->readonly = (flags & IMAP_OPEN_READONLY) != 0;
    mb->dir_dev = sb.st_dev;
    mb->dir_ino = sb.st_ino;
    mb->ix = imap_index_open(st, dir, err, errlen);
    if (mb->ix == NULL) {
        *status = IMAP_STORE_ERR;
        imap_mailbox_close(mb);
        return NULL;
    }
    rc = imap_mailbox_sync(mb, IMAP_SYNC_EXPUNGE, &sync, err, errlen);
    imap_sync_free(&sync);
    if (rc != IMAP_STORE_OK) {
        *status = rc == IMAP_STORE_GONE ? IMAP_STORE_NONEXISTENT : rc;
        imap_mailbox_close(mb);
        return NULL;
    }
    *status = IMAP_STORE_OK;
    return mb;
}

void imap_mailbox_close(struct imap_mailbox *mb)
{
    if (mb == NULL)
        return;
    imap_mailbox_cache_flush(mb);
    free(mb->pending);
    imap_index_release(mb->ix, true);
    for (size_t i = 0; i < mb->n_keywords; i++)
        free(mb->keywords[i]);
    free(mb->msgs);
    free(mb->watch[0]);
    free(mb->watch[1]);
    free(mb->name);
    free(mb->dir);
    free(mb);
}

void imap_mailbox_hibernate(struct imap_mailbox *mb)
{
    if (mb == NULL || mb->ix == NULL)
        return;
    imap_mailbox_cache_flush(mb);
    mb->ix_dev = mb->ix->dev;
    mb->ix_ino = mb->ix->ino;
    imap_index_release(mb->ix, false);
    mb->ix = NULL;
}

bool imap_mailbox_hibernating(const struct imap_mailbox *mb)
{
    return mb->ix == NULL;
}

int imap_mailbox_wake(struct imap_mailbox *mb, char *err, size_t errlen)
{
    char *path;
    struct stat sb;
    int rc;

    if (mb->ix != NULL)
        return IMAP_STORE_OK;
    /* A removed or rebuilt index means new UIDs: the view is void. */
    path = xasprintf("%s/%s", mb->dir, IMAP_INDEX_FILE);
    rc = stat(path, &sb);
    free(path);
    if (rc < 0 || sb.st_dev != mb->ix_dev || sb.st_ino != mb->ix_ino) {
        snprintf(err, errlen, "mailbox %s: index removed or replaced",
                 mb->name);
        return IMAP_STORE_GONE;
    }
    mb->ix = imap_index_open(mb->st, mb->dir, err, errlen);
    if (mb->ix == NULL)
        return IMAP_STORE_ERR;
    if (mb->ix->dev != mb->ix_dev || mb->ix->ino != mb->ix_ino) {
        snprintf(err, errlen, "mailbox %s: index removed or replaced",
                 mb->name);
        imap_index_release(mb->ix, true);
        mb->ix = NULL;
        return IMAP_STORE_GONE;
    }
    return IMAP_STORE_OK;
}

const char *imap_mailbox_name(const struct imap_mailbox *mb)
{
    return mb->name;
}

bool imap_mailbox_readonly(const struct imap_mailbox *mb)
{
    return mb->readonly;
}

uint32_t imap_mailbox_count(const struct imap_mailbox *mb)
{
    return (uint32_t)mb->n;
}

uint32_t imap_mailbox_recent(const struct imap_mailbox *mb)
{
    uint32_t n = 0;

    for (size_t i = 0; i < mb->n; i++)
        if (mb->msgs[i].flags & IMAP_FLAG_RECENT)
            n++;
    return n;
}

uint32_t imap_mailbox_uidvalidity(const struct imap_mailbox *mb)
{
    return mb->uidvalidity;
}

uint32_t imap_mailbox_uidnext(const struct imap_mailbox *mb)
{
    return mb->uidnext;
}

uint64_t imap_mailbox_highestmodseq(const struct imap_mailbox *mb)
{
    return mb->highestmodseq;
}

uint32_t imap_mailbox_first_unseen(const struct imap_mailbox *mb)
{
    for (size_t i = 0; i < mb->n; i++)
        if (!(mb->msgs[i].flags & IMAP_FLAG_SEEN))
            return (uint32_t)i + 1;
    return 0;
}

const struct imap_msg *imap_mailbox_msg(const struct imap_mailbox *mb,
                                        uint32_t seq)
{
    if (seq == 0 || seq > mb->n)
        return NULL;
    return &mb->msgs[seq - 1];
}

/* Index of the first message with uid >= u. */
static size_t lower_bound(const struct imap_mailbox *mb, uint32_t u)
{
    size_t lo = 0, hi = mb->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (mb->msgs[mid].uid < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

uint32_t imap_mailbox_seq_of_uid(const struct imap_mailbox *mb, uint32_t uid)
{
    size_t i = lower_bound(mb, uid);

    return i < mb->n && mb->msgs[i].uid == uid ? (uint32_t)i + 1 : 0;
}

bool imap_mailbox_uid_range(const struct imap_mailbox *mb, uint32_t lo,
                            uint32_t hi, uint32_t *seq_lo, uint32_t *seq_hi)
{
    size_t a, b;

    if (lo > hi) {
        uint32_t t = lo;

        lo = hi;
        hi = t;
    }
    a = lower_bound(mb, lo);
    b = hi == UINT32_MAX ? mb->n : lower_bound(mb, hi + 1);
    if (a >= b)
        return false;
    *seq_lo = (uint32_t)a + 1;
    *seq_hi = (uint32_t)b;
    return true;
}

void imap_mailbox_watch_dirs(const struct imap_mailbox *mb, const char *dirs[2])
{
    dirs[0] = mb->watch[0];
    dirs[1] = mb->watch[1];
}

/* ---- keywords ---- */

size_t imap_mailbox_keyword_count(const struct imap_mailbox *mb)
{
    return mb->n_keywords;
}

const char *imap_mailbox_keyword(const struct imap_mailbox *mb, size_t i)
{
    return i < mb->n_keywords ? mb->keywords[i] : NULL;
}

bool imap_keyword_valid(const char *kw)
{
    size_t n = strlen(kw);

    if (n == 0 || n > IMAP_KEYWORD_LEN_MAX || kw[0] == '\\')
        return false;
    for (const char *p = kw; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
            strchr("(){%*\"\\]", *p))
            return false;
    return true;
}

/* Index of kw in meta; -1 if not there. */
int imap_meta_keyword(const struct imap_index_meta *m, const char *kw)
{
    for (size_t i = 0; i < m->n_keywords; i++)
        if (strcasecmp(m->keywords[i], kw) == 0)
            return (int)i;
    return -1;
}

void imap_mailbox_take_keywords(struct imap_mailbox *mb,
                                const struct imap_index_meta *m,
                                bool *changed)
{
    bool diff = m->n_keywords != mb->n_keywords;

    for (size_t i = 0; !diff && i < m->n_keywords; i++)
        diff = strcmp(m->keywords[i], mb->keywords[i]) != 0;
    if (!diff)
        return;
    for (size_t i = 0; i < mb->n_keywords; i++)
        free(mb->keywords[i]);
    for (size_t i = 0; i < m->n_keywords; i++)
        mb->keywords[i] = xstrdup(m->keywords[i]);
    mb->n_keywords = m->n_keywords;
    if (changed)
        *changed = true;
}

int imap_mailbox_keyword_index(struct imap_mailbox *mb, const char *kw,
                               bool create, unsigned *idx, char *err,
                               size_t errlen)
{
    struct imap_index_meta m;
    MDB_txn *txn;
    int i, rc;

    if (!imap_keyword_valid(kw)) {
        snprintf(err, errlen, "invalid keyword");
        return IMAP_STORE_BADNAME;
    }
    for (size_t j = 0; j < mb->n_keywords; j++)
        if (strcasecmp(mb->keywords[j], kw) == 0) {
            *idx = (unsigned)j;
            return IMAP_STORE_OK;
        }
    if (!create) {
        snprintf(err, errlen, "no such keyword");
        return IMAP_STORE_NONEXISTENT;
    }
    if (mb->readonly) {
        snprintf(err, errlen, "mailbox is read-only");
        return IMAP_STORE_CANNOT;
    }
    if ((rc = imap_mailbox_wake(mb, err, errlen)) != IMAP_STORE_OK)
        return rc;
    for (int attempt = 0; attempt < 3; attempt++) {
        if (imap_index_begin(mb->ix, true, &txn, err, errlen) < 0)
            return IMAP_STORE_ERR;
        if (imap_index_meta_get(mb->ix, txn, &m) < 0) {
            mdb_txn_abort(txn);
            snprintf(err, errlen, "index %s: no meta data", mb->ix->path);
            return IMAP_STORE_ERR;
        }
        i = imap_meta_keyword(&m, kw);
        if (i < 0) {
            if (m.n_keywords >= IMAP_KEYWORDS_MAX) {
                mdb_txn_abort(txn);
                imap_index_meta_free(&m);
                snprintf(err, errlen, "too many keywords in this mailbox");
                return IMAP_STORE_LIMIT;
            }
            i = (int)m.n_keywords;
            m.keywords[m.n_keywords++] = xstrdup(kw);
            if (imap_index_meta_put(mb->ix, txn, &m) < 0) {
                mdb_txn_abort(txn);
                imap_index_meta_free(&m);
                if (imap_index_retry(mb->ix))
                    continue;
                snprintf(err, errlen, "index %s: write", mb->ix->path);
                return IMAP_STORE_ERR;
            }
            rc = imap_index_commit(mb->ix, txn, err, errlen);
        } else {
            mdb_txn_abort(txn);
            rc = 0;
        }
        imap_mailbox_take_keywords(mb, &m, NULL);
        imap_index_meta_free(&m);
        if (rc < 0) {
            if (imap_index_retry(mb->ix))
                continue;
            return IMAP_STORE_ERR;
        }
        *idx = (unsigned)i;
        return IMAP_STORE_OK;
    }
    snprintf(err, errlen, "index %s: cannot grow", mb->ix->path);
    return IMAP_STORE_ERR;
}

/* ---- sync ---- */

void imap_sync_free(struct imap_sync *s)
{
    free(s->expunged_seqs);
    free(s->expunged_uids);
    free(s->changed_seqs);
    memset(s, 0, sizeof(*s));
}

static bool same_time(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/* Do the mtimes the index recorded (dirtimes) match the directories? */
static bool index_current(struct imap_mailbox *mb, const struct stat *sn,
                          const struct stat *sc)
{
    struct timespec t[2];
    MDB_txn *txn;
    char err[256];
    int rc;

    if (imap_index_begin(mb->ix, false, &txn, err, sizeof(err)) < 0)
        return false;
    rc = imap_index_dirtimes_get(mb->ix, txn, t);
    mdb_txn_abort(txn);
    return rc == 0 && same_time(&t[0], &sn->st_mtim) &&
           same_time(&t[1], &sc->st_mtim);
}

/*
 * Scan the Maildir into the index if new/ or cur/ changed since this
 * view, or for a new view since the index, last looked.  Mtimes are
 * trusted only once they are safely in the past: a directory changed
 * twice within one clock tick keeps the mtime of the first change.
 * Returns IMAP_STORE_* .
 */
static int maybe_scan(struct imap_mailbox *mb, bool force, char *err,
                      size_t errlen)
{
    struct stat sn, sc;
    time_t now = time(NULL);
    bool settled;

    if (stat(mb->watch[0], &sn) < 0 || stat(mb->watch[1], &sc) < 0) {
        snprintf(err, errlen, "mailbox %s is gone", mb->name);
        return IMAP_STORE_GONE;
    }
    if (!force && mb->mtimes_valid && same_time(&sn.st_mtim, &mb->new_mtime) &&
        same_time(&sc.st_mtim, &mb->cur_mtime))
        return IMAP_STORE_OK;
    settled = sn.st_mtim.tv_sec < now - 1 && sc.st_mtim.tv_sec < now - 1;
    /* A login into a known mailbox: no directory read at all. */
    if (!force && settled && index_current(mb, &sn, &sc)) {
        mb->new_mtime = sn.st_mtim;
        mb->cur_mtime = sc.st_mtim;
        mb->mtimes_valid = true;
        return IMAP_STORE_OK;
    }
    for (int attempt = 0; attempt < 6; attempt++) {
        struct imap_index_meta m;
        struct timespec seen[2] = {sn.st_mtim, sc.st_mtim}, had[2];
        MDB_txn *txn;
        bool changed = false, record = false;
        int rc;

        if (imap_index_begin(mb->ix, true, &txn, err, errlen) < 0)
            return IMAP_STORE_ERR;
        if (imap_index_meta_get(mb->ix, txn, &m) < 0) {
            mdb_txn_abort(txn);
            snprintf(err, errlen, "index %s: no meta data", mb->ix->path);
            return IMAP_STORE_ERR;
        }
        rc = imap_maildir_scan(mb->st, mb->ix, txn, mb->dir, !mb->readonly, &m,
                               &changed, err, errlen);
        if (rc == IMAP_STORE_OK && changed &&
            imap_index_meta_put(mb->ix, txn, &m) < 0)
            rc = IMAP_STORE_ERR;
        /*
         * The index now holds everything the directories held when we
         * stat()ed them (later changes move the mtimes on).  Only a
         * writable view records that: it has moved new/ to cur/.
         */
        if (rc == IMAP_STORE_OK && settled && !mb->readonly &&
            (imap_index_dirtimes_get(mb->ix, txn, had) < 0 ||
             !same_time(&had[0], &seen[0]) || !same_time(&had[1], &seen[1]))) {
            record = true;
            if (imap_index_dirtimes_put(mb->ix, txn, seen) < 0)
                rc = IMAP_STORE_ERR;
        }
        imap_index_meta_free(&m);
        if (rc != IMAP_STORE_OK) {
            mdb_txn_abort(txn);
            if (imap_index_retry(mb->ix))
                continue;
            return rc;
        }
        if (!changed && !record) {
            mdb_txn_abort(txn);
        } else if (imap_index_commit(mb->ix, txn, err, errlen) < 0) {
            if (imap_index_retry(mb->ix))
                continue;
            return IMAP_STORE_ERR;
        }
        mb->new_mtime = sn.st_mtim;
        mb->cur_mtime = sc.st_mtim;
        mb->mtimes_valid = settled;
        return IMAP_STORE_OK;
    }
    snprintf(err, errlen, "index %s: cannot grow", mb->ix->path);
    return IMAP_STORE_ERR;
}

static bool has_expunged(const struct imap_mailbox *mb)
{
    for (size_t i = 0; i < mb->n; i++)
        if (mb->msgs[i].expunged)
            return true;
    return false;
}

static void push_u32(uint32_t **v, size_t *n, uint32_t x)
{
    *v = xreallocarray(*v, *n + 1, sizeof(**v));
    (*v)[(*n)++] = x;
}

/* A new slot at the end of the view being built. */
static struct imap_msg *view_slot(struct imap_msg **nv, size_t *nn,
                                  size_t *cap)
{
    if (*nn == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *nv = xreallocarray(*nv, *cap, sizeof(**nv));
    }
    return &(*nv)[(*nn)++];
}

/* A view message gone from the store: reported now, or kept as expunged. */
static void view_gone(const struct imap_msg *x, bool expunge,
                      struct imap_msg **nv, size_t *nn, size_t *cap,
                      uint32_t **removed, size_t *n_removed)
{
    struct imap_msg *slot;

    if (expunge) {
        push_u32(removed, n_removed, x->uid);
        return;
    }
    slot = view_slot(nv, nn, cap);
    *slot = *x;
    slot->expunged = true;
}

/* Merge the index into the view (records in uid order). */
static int refresh(struct imap_mailbox *mb, unsigned flags,
                   struct imap_sync *out, char *err, size_t errlen)
{
    struct imap_index_meta m;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    struct imap_msg *nv = NULL;
    size_t nn = 0, cap = 0, i = 0;
    uint32_t *removed_uids = NULL, *changed_uids = NULL;
    size_t n_removed = 0, n_changed = 0;
    uint32_t last_uid = mb->n ? mb->msgs[mb->n - 1].uid : 0;
    uint32_t claim_from;
    bool write = false;
    int rc;

    for (int attempt = 0;; attempt++) {
        if (imap_index_begin(mb->ix, write, &txn, err, errlen) < 0)
            return IMAP_STORE_ERR;
        if (imap_index_meta_get(mb->ix, txn, &m) < 0) {
            mdb_txn_abort(txn);
            snprintf(err, errlen, "index %s: no meta data", mb->ix->path);
            return IMAP_STORE_ERR;
        }
        if (m.uidvalidity != mb->uidvalidity && mb->uidvalidity != 0) {
            mdb_txn_abort(txn);
            imap_index_meta_free(&m);
            snprintf(err, errlen, "mailbox %s: UIDVALIDITY changed", mb->name);
            out->gone = true;
            return IMAP_STORE_GONE;
        }
        if (m.highestmodseq == mb->highestmodseq && m.uidnext == mb->uidnext &&
            !((flags & IMAP_SYNC_EXPUNGE) && has_expunged(mb))) {
            mdb_txn_abort(txn);
            imap_index_meta_free(&m);
            return IMAP_STORE_OK;
        }
        /* A writable view claims \Recent for what nobody has seen. */
        if (!write && !mb->readonly && m.recent_uid + 1 < m.uidnext &&
            attempt == 0) {
            mdb_txn_abort(txn);
            imap_index_meta_free(&m);
            write = true;
            continue;
        }
        break;
    }
    claim_from = m.recent_uid;
    if (mdb_cursor_open(txn, mb->ix->uids, &cur) != 0) {
        mdb_txn_abort(txn);
        imap_index_meta_free(&m);
        snprintf(err, errlen, "index %s: cursor", mb->ix->path);
        return IMAP_STORE_ERR;
    }
    for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
        struct imap_rec r;

        if (imap_index_rec_decode(&k, &v, &r) < 0)
            continue;
        /* View messages below this record are gone from the store. */
        while (i < mb->n && mb->msgs[i].uid < r.uid)
            view_gone(&mb->msgs[i++], flags & IMAP_SYNC_EXPUNGE, &nv, &nn,
                      &cap, &removed_uids, &n_removed);
        if (i < mb->n && mb->msgs[i].uid == r.uid) {
            struct imap_msg *x = &mb->msgs[i++];
            struct imap_msg *slot = view_slot(&nv, &nn, &cap);

            *slot = *x;
            if (x->modseq != r.modseq) {
                slot->flags = r.flags | (x->flags & IMAP_FLAG_RECENT);
                slot->keywords = r.keywords;
                slot->modseq = r.modseq;
                if (x->flags != slot->flags || x->keywords != r.keywords)
                    push_u32(&changed_uids, &n_changed, r.uid);
            }
        } else if (r.uid > last_uid) {
            bool recent = r.uid > claim_from;
            struct imap_msg *slot = view_slot(&nv, &nn, &cap);

            memset(slot, 0, sizeof(*slot));
            slot->uid = r.uid;
            slot->flags = r.flags | (recent ? IMAP_FLAG_RECENT : 0);
            slot->keywords = r.keywords;
            slot->modseq = r.modseq;
            slot->internaldate = (time_t)r.internaldate;
            out->exists_changed = true;
            if (recent)
                out->recent_changed = true;
        }
        imap_rec_free(&r);
    }
    mdb_cursor_close(cur);
    while (i < mb->n)
        view_gone(&mb->msgs[i++], flags & IMAP_SYNC_EXPUNGE, &nv, &nn, &cap,
                  &removed_uids, &n_removed);
    rc = IMAP_STORE_OK;
    if (write) {
        m.recent_uid = m.uidnext - 1;
        if (imap_index_meta_put(mb->ix, txn, &m) < 0) {
            mdb_txn_abort(txn);
            log_warn("imap: index %s: cannot record \\Recent", mb->ix->path);
        } else if (imap_index_commit(mb->ix, txn, err, errlen) < 0) {
            log_warn("imap: %s", err);
        }
    } else {
        mdb_txn_abort(txn);
    }
    /* Expunged seqs as the client counts them: descending, old numbers. */
    if (n_removed > 0) {
        out->expunged_seqs = xreallocarray(NULL, n_removed, sizeof(uint32_t));
        out->expunged_uids = xreallocarray(NULL, n_removed, sizeof(uint32_t));
        for (size_t j = n_removed; j-- > 0;) {
            out->expunged_seqs[out->n_expunged] =
                imap_mailbox_seq_of_uid(mb, removed_uids[j]);
            out->expunged_uids[out->n_expunged++] = removed_uids[j];
        }
    }
    free(mb->msgs);
    mb->msgs = nv;
    mb->n = nn;
    for (size_t j = 0; j < n_changed; j++)
        push_u32(&out->changed_seqs, &out->n_changed,
                 imap_mailbox_seq_of_uid(mb, changed_uids[j]));
    if (!mb->uidvalidity)
        mb->uidvalidity = m.uidvalidity;
    mb->uidnext = m.uidnext;
    mb->highestmodseq = m.highestmodseq;
    imap_mailbox_take_keywords(mb, &m, &out->keywords_changed);
    imap_index_meta_free(&m);
    free(removed_uids);
    free(changed_uids);
    return rc;
}

int imap_mailbox_sync(struct imap_mailbox *mb, unsigned flags,
                      struct imap_sync *out, char *err, size_t errlen)
{
    struct stat sb;
    int rc;

    memset(out, 0, sizeof(*out));
    imap_mailbox_cache_flush(mb);
    if (stat(mb->dir, &sb) < 0 || sb.st_ino != mb->dir_ino ||
        sb.st_dev != mb->dir_dev) {
        snprintf(err, errlen, "mailbox %s was deleted or renamed", mb->name);
        out->gone = true;
        return IMAP_STORE_GONE;
    }
    rc = imap_mailbox_wake(mb, err, errlen);
    if (rc == IMAP_STORE_OK && imap_index_stale(mb->ix)) {
        snprintf(err, errlen, "mailbox %s was deleted or renamed", mb->name);
        rc = IMAP_STORE_GONE;
    }
    if (rc == IMAP_STORE_GONE)
        out->gone = true;
    if (rc != IMAP_STORE_OK)
        return rc;
    rc = maybe_scan(mb, false, err, errlen);
    if (rc == IMAP_STORE_GONE)
        out->gone = true;
    if (rc != IMAP_STORE_OK)
        return rc;
    return refresh(mb, flags, out, err, errlen);
}

/* Force a scan (a file we expected was not there). */
int imap_mailbox_rescan(struct imap_mailbox *mb, char *err, size_t errlen)
{
    int rc = imap_mailbox_wake(mb, err, errlen);

    if (rc != IMAP_STORE_OK)
        return rc;
    return maybe_scan(mb, true, err, errlen);
}
