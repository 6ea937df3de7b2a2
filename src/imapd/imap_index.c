/*
 * imap_index - the per-mailbox LMDB index (DIR/posthorn-index.lmdb).
 *
 * Four databases in one environment: "meta" (UIDVALIDITY, UIDNEXT,
 * HIGHESTMODSEQ, the \Recent high-water mark, keyword names, the
 * directory mtimes of the last complete scan), "uids"
 * (uid -> struct imap_index_rec + base name + info), "names" (base
 * name -> uid) and "cache" (uid -> RFC822.SIZE, ENVELOPE, BODY,
 * BODYSTRUCTURE, and the decoded header fields SEARCH uses most).
 *
 * LMDB allows one environment per file per process, so environments
 * live in a process-wide list keyed by the file's device and inode and
 * are shared by every session of the process (refcounted).  One nobody
 * uses any more stays open for a few seconds (at most
 * IMAP_INDEX_KEEP_MAX of them): opening an environment maps the file and
 * allocates LMDB's transaction tables, closing unmaps it all again, and
 * that was most of the cost of a short session.  The map
 * starts at INDEX_MAP_MIN and doubles when a write finds it full;
 * other processes pick the new size up through MDB_MAP_RESIZED.
 *
 * The index is a cache of what the Maildir says plus the state the
 * Maildir cannot hold.  A file LMDB cannot open (corrupt, other format)
 * or of another record version is removed and built again from the
 * files with a new UIDVALIDITY; sessions holding the old one notice
 * through imap_index_stale().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "imapd/imap_store_impl.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/mem.h"

#define INDEX_MAP_MIN (16u * 1024 * 1024)

static struct imap_index *index_list;
static int index_unused; /* entries with refs == 0, kept open */

/* ---- UIDVALIDITY: unique per user, never reused ---- */

uint32_t imap_store_next_uidvalidity(struct imap_store *st)
{
    char *path = xasprintf("%s/%s", st->root, IMAP_UIDVALIDITY_FILE);
    struct buf b = BUF_INIT;
    unsigned long long last = 0;
    uint32_t next = (uint32_t)time(NULL);
    int fd = open(st->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    /* The root directory's lock serialises processes of this user. */
    if (fd >= 0)
        flock(fd, LOCK_EX);
    if (file_read_all(path, &b, 64) == 0 && b.len > 0)
        last = strtoull(b.data, NULL, 10);
    if (last >= next)
        next = (uint32_t)(last + 1);
    if (next == 0)
        next = 1;
    buf_reset(&b);
    buf_printf(&b, "%u\n", next);
    if (file_write_atomic(path, b.data, b.len, 0600) < 0)
        log_warn("imap: cannot write %s: %m", path);
    if (fd >= 0)
        close(fd);
    buf_free(&b);
    free(path);
    return next;
}

/* ---- environments ---- */

static int open_dbis(struct imap_index *ix, char *err, size_t errlen)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(ix->env, NULL, 0, &txn);

    if (rc == 0)
        rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &ix->meta);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "uids", MDB_CREATE | MDB_INTEGERKEY, &ix->uids);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "names", MDB_CREATE, &ix->names);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "cache", MDB_CREATE | MDB_INTEGERKEY,
                          &ix->cache);
    if (rc == 0)
        return mdb_txn_commit(txn) == 0 ? 0 : -1;
    mdb_txn_abort(txn);
    snprintf(err, errlen, "index %s: %s", ix->path, mdb_strerror(rc));
    return -1;
}

static int meta_u64(struct imap_index *ix, MDB_txn *txn, const char *key,
                    uint64_t *v)
{
    MDB_val k = {strlen(key), (void *)key}, d;

    if (mdb_get(txn, ix->meta, &k, &d) != 0 || d.mv_size != sizeof(*v))
        return -1;
    memcpy(v, d.mv_data, sizeof(*v));
    return 0;
}

static int meta_put_u64(struct imap_index *ix, MDB_txn *txn, const char *key,
                        uint64_t v)
{
    MDB_val k = {strlen(key), (void *)key}, d = {sizeof(v), &v};

    ix->last_rc = mdb_put(txn, ix->meta, &k, &d, 0);
    return ix->last_rc == 0 ? 0 : -1;
}

/*
 * A fresh or foreign index gets version, a new UIDVALIDITY and empty
 * databases.  Returns 0, -1 on error.
 */
static int init_if_needed(struct imap_store *st, struct imap_index *ix,
                          char *err, size_t errlen)
{
    MDB_txn *txn;
    uint64_t version = 0;
    int rc;

    /* The usual case (a good index) needs no write lock: sessions that
     * wake from hibernation reopen their index often. */
    if (imap_index_begin(ix, false, &txn, err, errlen) < 0)
        return -1;
    rc = meta_u64(ix, txn, "version", &version);
    mdb_txn_abort(txn);
    if (rc == 0 && version == IMAP_INDEX_VERSION)
        return 0;
    version = 0;
    if (imap_index_begin(ix, true, &txn, err, errlen) < 0)
        return -1;
    if (meta_u64(ix, txn, "version", &version) == 0 &&
        version == IMAP_INDEX_VERSION) {
        mdb_txn_abort(txn);
        return 0;
    }
    if (version != 0)
        log_warn("imap: index %s has version %llu, rebuilding", ix->path,
                 (unsigned long long)version);
    rc = mdb_drop(txn, ix->meta, 0);
    if (rc == 0)
        rc = mdb_drop(txn, ix->uids, 0);
    if (rc == 0)
        rc = mdb_drop(txn, ix->names, 0);
    if (rc == 0)
        rc = mdb_drop(txn, ix->cache, 0);
    if (rc == 0) {
        struct imap_index_meta m;

        memset(&m, 0, sizeof(m));
        m.uidvalidity = imap_store_next_uidvalidity(st);
        m.uidnext = 1;
        m.highestmodseq = 1;
        if (imap_index_meta_put(ix, txn, &m) < 0 ||
            meta_put_u64(ix, txn, "version", IMAP_INDEX_VERSION) < 0)
            rc = EIO;
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        snprintf(err, errlen, "index %s: init: %s", ix->path, mdb_strerror(rc));
        return -1;
    }
    return imap_index_commit(ix, txn, err, errlen);
}

static struct imap_index *env_open(const char *path, char *err, size_t errlen,
                                   int *lmdb_rc)
{
    struct imap_index *ix = xcalloc(1, sizeof(*ix));
    struct stat sb;
    size_t map = INDEX_MAP_MIN;
    int rc;

    ix->path = xstrdup(path);
    if (stat(path, &sb) == 0) {
        while (map < (size_t)sb.st_size * 2 && map < ((size_t)1 << 40))
            map *= 2;
    }
    rc = mdb_env_create(&ix->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(ix->env, 4);
    if (rc == 0)
        rc = mdb_env_set_mapsize(ix->env, map);
    if (rc == 0)
        rc = mdb_env_open(ix->env, path, MDB_NOSUBDIR, 0600);
    if (rc == 0 && stat(path, &sb) < 0)
        rc = errno;
    *lmdb_rc = rc;
    if (rc != 0) {
        snprintf(err, errlen, "index %s: %s", path, mdb_strerror(rc));
        if (ix->env)
            mdb_env_close(ix->env);
        free(ix->path);
        free(ix);
        return NULL;
    }
    ix->dev = sb.st_dev;
    ix->ino = sb.st_ino;
    if (open_dbis(ix, err, errlen) < 0) {
        mdb_env_close(ix->env);
        free(ix->path);
        free(ix);
        *lmdb_rc = MDB_CORRUPTED;
        return NULL;
    }
    return ix;
}

static void remove_index_files(const char *path)
{
    char *lock = xasprintf("%s-lock", path);

    unlink(path);
    unlink(lock);
    free(lock);
}

static void index_close(struct imap_index *ix);

static bool index_fstat(struct imap_index *ix, struct stat *sb)
{
    int fd;

    return mdb_env_get_fd(ix->env, &fd) == 0 && fstat(fd, sb) == 0;
}

/*
 * May ix serve the file again?  Not when the file was removed (its
 * inode number may now be the new file's), and for one kept unused,
 * not when anything wrote to the file meanwhile: other processes' LMDB
 * commits are harmless, but a file truncated or overwritten under a
 * mapped environment is not, so it is opened anew and checked.
 */
static bool index_file_live(struct imap_index *ix)
{
    struct stat sb;

    if (!index_fstat(ix, &sb) || sb.st_nlink == 0)
        return false;
    return ix->refs > 0 || (sb.st_size == ix->kept_size &&
                            sb.st_ctim.tv_sec == ix->kept_ctime.tv_sec &&
                            sb.st_ctim.tv_nsec == ix->kept_ctime.tv_nsec);
}

struct imap_index *imap_index_open(struct imap_store *st, const char *dir,
                                   char *err, size_t errlen)
{
    char *path = xasprintf("%s/%s", dir, IMAP_INDEX_FILE);
    struct imap_index *ix;
    struct stat sb;
    int rc;

    if (stat(path, &sb) == 0) {
        struct imap_index *next;

        for (ix = index_list; ix; ix = next) {
            next = ix->next;
            if (ix->dev != sb.st_dev || ix->ino != sb.st_ino)
                continue;
            if (!index_file_live(ix)) {
                /* Removed since, and its inode number given to the file
                 * we are after: not the same index. */
                if (ix->refs == 0) {
                    index_unused--;
                    index_close(ix);
                }
                continue;
            }
            if (ix->refs++ == 0)
                index_unused--;
            free(path);
            return ix;
        }
    }
    ix = env_open(path, err, errlen, &rc);
    if (ix == NULL && (rc == MDB_INVALID || rc == MDB_CORRUPTED ||
                       rc == MDB_VERSION_MISMATCH || rc == MDB_PAGE_NOTFOUND)) {
        /* Unusable: the files are the truth, build it again. */
        log_warn("imap: %s; rebuilding the index from the Maildir", err);
        remove_index_files(path);
        ix = env_open(path, err, errlen, &rc);
    }
    free(path);
    if (ix == NULL)
        return NULL;
    if (init_if_needed(st, ix, err, errlen) < 0) {
        mdb_env_close(ix->env);
        free(ix->path);
        free(ix);
        return NULL;
    }
    ix->refs = 1;
    ix->next = index_list;
    index_list = ix;
    return ix;
}

static void index_close(struct imap_index *ix)
{
    struct imap_index **pp;

    for (pp = &index_list; *pp; pp = &(*pp)->next) {
        if (*pp == ix) {
            *pp = ix->next;
            break;
        }
    }
    mdb_env_close(ix->env);
    free(ix->path);
    free(ix);
}

void imap_index_release(struct imap_index *ix, bool keep)
{
    struct imap_index *p, *oldest = NULL;
    struct stat sb;

    if (ix == NULL || --ix->refs > 0)
        return;
    if (!keep || !index_fstat(ix, &sb)) {
        index_close(ix);
        return;
    }
    ix->kept_ctime = sb.st_ctim;
    ix->kept_size = sb.st_size;
    ix->unused_since = time(NULL);
    if (++index_unused <= IMAP_INDEX_KEEP_MAX)
        return;
    for (p = index_list; p; p = p->next)
        if (p->refs == 0 && p != ix &&
            (oldest == NULL || p->unused_since <= oldest->unused_since))
            oldest = p;
    index_unused--;
    index_close(oldest != NULL ? oldest : ix);
}

void imap_store_expire(time_t now)
{
    struct imap_index *p, *next;

    for (p = index_list; p && index_unused > 0; p = next) {
        next = p->next;
        if (p->refs == 0 &&
            (now == 0 || now - p->unused_since >= IMAP_INDEX_KEEP_SECS)) {
            index_unused--;
            index_close(p);
        }
    }
}

bool imap_index_stale(const struct imap_index *ix)
{
    struct stat sb;

    return stat(ix->path, &sb) < 0 || sb.st_dev != ix->dev ||
           sb.st_ino != ix->ino;
}

static void grow(struct imap_index *ix)
{
    MDB_envinfo info;

    mdb_env_info(ix->env, &info);
    mdb_env_set_mapsize(ix->env, info.me_mapsize * 2);
}

/*
 * Keep the map at least twice the data so that one transaction (a scan
 * of a large new Maildir at most) rarely finds it full; when it does,
 * imap_index_retry() grows it for the next attempt.
 */
static void grow_if_needed(struct imap_index *ix)
{
    MDB_envinfo info;
    MDB_stat st;

    if (mdb_env_info(ix->env, &info) != 0 || mdb_env_stat(ix->env, &st) != 0)
        return;
    if ((uint64_t)(info.me_last_pgno + 1) * st.ms_psize * 2 > info.me_mapsize)
        mdb_env_set_mapsize(ix->env, info.me_mapsize * 2);
}

bool imap_index_retry(struct imap_index *ix)
{
    if (ix->last_rc != MDB_MAP_FULL)
        return false;
    ix->last_rc = 0;
    grow(ix);
    return true;
}

int imap_index_begin(struct imap_index *ix, bool write, MDB_txn **txn,
                     char *err, size_t errlen)
{
    int rc;

    if (write)
        grow_if_needed(ix);
    rc = mdb_txn_begin(ix->env, NULL, write ? 0 : MDB_RDONLY, txn);
    if (rc == MDB_MAP_RESIZED) {
        /* Another process grew the map. */
        mdb_env_set_mapsize(ix->env, 0);
        rc = mdb_txn_begin(ix->env, NULL, write ? 0 : MDB_RDONLY, txn);
    }
    if (rc != 0) {
        snprintf(err, errlen, "index %s: begin: %s", ix->path, mdb_strerror(rc));
        return -1;
    }
    return 0;
}

int imap_index_commit(struct imap_index *ix, MDB_txn *txn, char *err,
                      size_t errlen)
{
    int rc = mdb_txn_commit(txn);

    ix->last_rc = rc;
    if (rc != 0) {
        snprintf(err, errlen, "index %s: commit: %s", ix->path,
                 mdb_strerror(rc));
        return -1;
    }
    return 0;
}

/* ---- meta ---- */

int imap_index_meta_get(struct imap_index *ix, MDB_txn *txn,
                        struct imap_index_meta *m)
{
    uint64_t v;
    MDB_val k = {2, "kw"}, d;

    memset(m, 0, sizeof(*m));
    if (meta_u64(ix, txn, "uidvalidity", &v) < 0)
        return -1;
    m->uidvalidity = (uint32_t)v;
    if (meta_u64(ix, txn, "uidnext", &v) < 0)
        return -1;
    m->uidnext = (uint32_t)v;
    if (meta_u64(ix, txn, "recent", &v) < 0)
        return -1;
    m->recent_uid = (uint32_t)v;
    if (meta_u64(ix, txn, "modseq", &m->highestmodseq) < 0)
        return -1;
    if (mdb_get(txn, ix->meta, &k, &d) == 0) {
        const char *p = d.mv_data, *end = p + d.mv_size;

        while (p < end && m->n_keywords < IMAP_KEYWORDS_MAX) {
            const char *z = memchr(p, 0, (size_t)(end - p));

            if (z == NULL)
                break;
            m->keywords[m->n_keywords++] = xstrdup(p);
            p = z + 1;
        }
    }
    return 0;
}

int imap_index_meta_put(struct imap_index *ix, MDB_txn *txn,
                        const struct imap_index_meta *m)
{
    struct buf kw = BUF_INIT;
    MDB_val k = {2, "kw"}, d;
    int rc;

    if (meta_put_u64(ix, txn, "uidvalidity", m->uidvalidity) < 0 ||
        meta_put_u64(ix, txn, "uidnext", m->uidnext) < 0 ||
        meta_put_u64(ix, txn, "recent", m->recent_uid) < 0 ||
        meta_put_u64(ix, txn, "modseq", m->highestmodseq) < 0)
        return -1;
    for (size_t i = 0; i < m->n_keywords; i++)
        buf_append(&kw, m->keywords[i], strlen(m->keywords[i]) + 1);
    d.mv_size = kw.len;
    d.mv_data = kw.data ? kw.data : "";
    rc = ix->last_rc = mdb_put(txn, ix->meta, &k, &d, 0);
    buf_free(&kw);
    return rc == 0 ? 0 : -1;
}

void imap_index_meta_free(struct imap_index_meta *m)
{
    for (size_t i = 0; i < m->n_keywords; i++)
        free(m->keywords[i]);
    m->n_keywords = 0;
}

int imap_index_dirtimes_get(struct imap_index *ix, MDB_txn *txn,
                            struct timespec t[2])
{
    MDB_val k = {8, "dirtimes"}, d;
    int64_t v[4];

    if (mdb_get(txn, ix->meta, &k, &d) != 0 || d.mv_size != sizeof(v))
        return -1;
    memcpy(v, d.mv_data, sizeof(v));
    t[0].tv_sec = (time_t)v[0];
    t[0].tv_nsec = (long)v[1];
    t[1].tv_sec = (time_t)v[2];
    t[1].tv_nsec = (long)v[3];
    return 0;
}

int imap_index_dirtimes_put(struct imap_index *ix, MDB_txn *txn,
                            const struct timespec t[2])
{
    int64_t v[4] = {(int64_t)t[0].tv_sec, (int64_t)t[0].tv_nsec,
                    (int64_t)t[1].tv_sec, (int64_t)t[1].tv_nsec};
    MDB_val k = {8, "dirtimes"}, d = {sizeof(v), v};

    ix->last_rc = mdb_put(txn, ix->meta, &k, &d, 0);
    return ix->last_rc == 0 ? 0 : -1;
}

/* ---- records ---- */

void imap_rec_free(struct imap_rec *r)
{
    free(r->base);
    free(r->info);
    r->base = r->info = NULL;
}

int imap_index_rec_decode(const MDB_val *key, const MDB_val *val,
                          struct imap_rec *r)
{
    struct imap_index_rec h;
    const char *p = val->mv_data;
    size_t rest;
    unsigned int uid;
    const char *z;

    if (key->mv_size != sizeof(uid) || val->mv_size < sizeof(h) + 2)
        return -1;
    memcpy(&uid, key->mv_data, sizeof(uid));
    memcpy(&h, p, sizeof(h));
    p += sizeof(h);
    rest = val->mv_size - sizeof(h);
    if (h.base_len >= rest || p[h.base_len] != 0)
        return -1;
    z = memchr(p + h.base_len + 1, 0, rest - h.base_len - 1);
    if (z == NULL)
        return -1;
    r->uid = uid;
    r->modseq = h.modseq;
    r->internaldate = h.internaldate;
    r->keywords = h.keywords;
    r->flags = h.flags & IMAP_FLAGS_STORED;
    r->in_new = h.in_new != 0;
    r->base = xstrndup(p, h.base_len);
    r->info = xstrdup(p + h.base_len + 1);
    return 0;
}

int imap_index_rec_get(struct imap_index *ix, MDB_txn *txn, uint32_t uid,
                       struct imap_rec *r)
{
    unsigned int u = uid;
    MDB_val k = {sizeof(u), &u}, d;
    int rc = mdb_get(txn, ix->uids, &k, &d);

    if (rc == MDB_NOTFOUND)
        return 1;
    if (rc != 0)
        return -1;
    return imap_index_rec_decode(&k, &d, r);
}

int imap_index_rec_put(struct imap_index *ix, MDB_txn *txn,
                       const struct imap_rec *r)
{
    struct imap_index_rec h;
    struct buf v = BUF_INIT;
    unsigned int u = r->uid;
    size_t blen = strlen(r->base);
    MDB_val k = {sizeof(u), &u}, d, nk = {blen, r->base}, nd = {sizeof(u), &u};
    int rc;

    if (blen == 0 || blen > IMAP_MAILDIR_NAME_MAX)
        return -1;
    memset(&h, 0, sizeof(h));
    h.modseq = r->modseq;
    h.internaldate = r->internaldate;
    h.keywords = r->keywords;
    h.flags = (uint8_t)(r->flags & IMAP_FLAGS_STORED);
    h.in_new = r->in_new;
    h.base_len = (uint16_t)blen;
    buf_append(&v, &h, sizeof(h));
    buf_append(&v, r->base, blen + 1);
    buf_append(&v, r->info ? r->info : "", strlen(r->info ? r->info : "") + 1);
    d.mv_size = v.len;
    d.mv_data = v.data;
    rc = mdb_put(txn, ix->uids, &k, &d, 0);
    if (rc == 0)
        rc = mdb_put(txn, ix->names, &nk, &nd, 0);
    ix->last_rc = rc;
    buf_free(&v);
    return rc == 0 ? 0 : -1;
}

int imap_index_rec_del(struct imap_index *ix, MDB_txn *txn,
                       const struct imap_rec *r)
{
    unsigned int u = r->uid;
    MDB_val k = {sizeof(u), &u}, nk = {strlen(r->base), r->base};
    int rc = mdb_del(txn, ix->uids, &k, NULL);

    if (rc == 0 || rc == MDB_NOTFOUND)
        rc = mdb_del(txn, ix->names, &nk, NULL);
    if (rc == 0 || rc == MDB_NOTFOUND)
        rc = mdb_del(txn, ix->cache, &k, NULL);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : -1;
}

int imap_index_name_get(struct imap_index *ix, MDB_txn *txn, const char *base,
                        uint32_t *uid)
{
    MDB_val k = {strlen(base), (void *)base}, d;
    unsigned int u;
    int rc;

    if (k.mv_size == 0 || k.mv_size > IMAP_MAILDIR_NAME_MAX)
        return 1;
    rc = mdb_get(txn, ix->names, &k, &d);
    if (rc == MDB_NOTFOUND)
        return 1;
    if (rc != 0 || d.mv_size != sizeof(u))
        return -1;
    memcpy(&u, d.mv_data, sizeof(u));
    *uid = u;
    return 0;
}

/* ---- cache ---- */

/*
 * A cache record: size, the lengths of ENVELOPE, BODY, BODYSTRUCTURE,
 * their bytes, then optionally the SEARCH block behind its own length.
 * Records without that tail (written before it existed) still read.
 */
int imap_index_cache_get(struct imap_index *ix, MDB_txn *txn, uint32_t uid,
                         unsigned want, struct imap_cache *c)
{
    unsigned int u = uid;
    MDB_val k = {sizeof(u), &u}, d;
    uint32_t len[3], slen = 0;
    const char *p;
    uint64_t rest, parts;
    int rc = mdb_get(txn, ix->cache, &k, &d);

    if (rc == MDB_NOTFOUND)
        return 1;
    if (rc != 0 || d.mv_size < sizeof(c->size) + sizeof(len))
        return -1;
    p = d.mv_data;
    memcpy(&c->size, p, sizeof(c->size));
    memcpy(len, p + sizeof(c->size), sizeof(len));
    p += sizeof(c->size) + sizeof(len);
    rest = d.mv_size - sizeof(c->size) - sizeof(len);
    parts = (uint64_t)len[0] + len[1] + len[2];
    if (parts > rest)
        return -1;
    if (parts < rest) {
        if (rest - parts < sizeof(slen))
            return -1;
        memcpy(&slen, p + parts, sizeof(slen));
        if ((uint64_t)slen != rest - parts - sizeof(slen))
            return -1;
    }
    if (want & IMAP_CACHE_ENVELOPE)
        buf_append(&c->envelope, p, len[0]);
    if (want & IMAP_CACHE_BODY)
        buf_append(&c->body, p + len[0], len[1]);
    if (want & IMAP_CACHE_BODYSTRUCTURE)
        buf_append(&c->bodystructure, p + len[0] + len[1], len[2]);
    if ((want & IMAP_CACHE_SEARCH) && slen > 0)
        buf_append(&c->search, p + parts + sizeof(slen), slen);
    return 0;
}

int imap_index_cache_put(struct imap_index *ix, MDB_txn *txn, uint32_t uid,
                         const struct imap_cache *c)
{
    unsigned int u = uid;
    uint32_t len[3] = {(uint32_t)c->envelope.len, (uint32_t)c->body.len,
                       (uint32_t)c->bodystructure.len};
    uint32_t slen = (uint32_t)c->search.len;
    struct buf v = BUF_INIT;
    MDB_val k = {sizeof(u), &u}, d;
    int rc;

    buf_append(&v, &c->size, sizeof(c->size));
    buf_append(&v, len, sizeof(len));
    buf_append(&v, c->envelope.data, c->envelope.len);
    buf_append(&v, c->body.data, c->body.len);
    buf_append(&v, c->bodystructure.data, c->bodystructure.len);
    if (slen > 0) {
        buf_append(&v, &slen, sizeof(slen));
        buf_append(&v, c->search.data, slen);
    }
    d.mv_size = v.len;
    d.mv_data = v.data;
    rc = ix->last_rc = mdb_put(txn, ix->cache, &k, &d, 0);
    buf_free(&v);
    return rc == 0 ? 0 : -1;
}
