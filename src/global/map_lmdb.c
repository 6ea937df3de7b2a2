/*
 * map_lmdb - the indexed file table (lmdb:, and hash:/btree: as aliases).
 *
 * lmdb:/etc/posthorn/aliases reads /etc/posthorn/aliases.lmdb, built from
 * the source file by `posthorn map` (map_lmdb_build).  Keys are stored
 * lowercased and without a trailing NUL; values never contain NUL.  Files
 * that Postfix built with a trailing NUL on keys and values are still
 * read, as Postfix reads both forms.
 *
 * Locking: files are opened MDB_NOLOCK (LMDB's lock file would have to be
 * writable by every reader), so each read transaction holds a shared
 * fcntl lock on the file.  A build writes "<file>.lmdb.tmp" under an
 * exclusive lock and renames it over the old file: readers that still map
 * the old file keep a consistent view, and each lookup notices the new
 * inode and reopens, so long-running daemons see rebuilt tables without a
 * reload.
 *
 * Failure: an unreadable or corrupt file is MAP_ERROR (the caller defers);
 * a build either replaces the file completely or leaves it untouched.
 */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "global/map_impl.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/mem.h"

#define LMDB_SUFFIX ".lmdb"
#define LMDB_DEFAULT_SIZE ((size_t)16 * 1024 * 1024)
/* A build never needs more than a few times its source file. */
#define LMDB_SIZE_MAX ((size_t)16 * MAP_SOURCE_SIZE_MAX)
#define LMDB_LOCK_TRIES 1000 /* each retry means another build finished */

static size_t lmdb_map_size = LMDB_DEFAULT_SIZE;

void maps_set_lmdb_map_size(size_t bytes)
{
    lmdb_map_size = bytes > 0 ? bytes : LMDB_DEFAULT_SIZE;
}

struct lmdb_map {
    char *path;
    MDB_env *env;
    MDB_dbi dbi;
    dev_t dev;
    ino_t ino;
};

static int lmdb_lock(int fd, short type)
{
    struct flock fl;
    int rc;

    memset(&fl, 0, sizeof(fl));
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    while ((rc = fcntl(fd, F_SETLKW, &fl)) < 0 && errno == EINTR)
        ;
    return rc;
}

static void lmdb_env_close(struct lmdb_map *lm)
{
    if (lm->env != NULL)
        mdb_env_close(lm->env);
    lm->env = NULL;
}

/* Open lm->path read-only and remember which file that was. */
static int lmdb_env_open(struct lmdb_map *lm, char *err, size_t errlen)
{
    MDB_txn *txn;
    struct stat st;
    int rc, fd;

    if ((rc = mdb_env_create(&lm->env)) != 0) {
        snprintf(err, errlen, "%s: %s", lm->path, mdb_strerror(rc));
        lm->env = NULL;
        return -1;
    }
    rc = mdb_env_open(lm->env, lm->path,
                      MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK | MDB_NORDAHEAD,
                      0644);
    if (rc != 0) {
        snprintf(err, errlen, "open %s: %s%s", lm->path, mdb_strerror(rc),
                 rc == ENOENT ? " (build it with: posthorn map SOURCE)" : "");
        lmdb_env_close(lm);
        return -1;
    }
    if (mdb_env_get_fd(lm->env, &fd) != 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "open %s: cannot stat", lm->path);
        lmdb_env_close(lm);
        return -1;
    }
    lm->dev = st.st_dev;
    lm->ino = st.st_ino;
    if (lmdb_lock(fd, F_RDLCK) < 0) {
        snprintf(err, errlen, "lock %s: %s", lm->path, strerror(errno));
        lmdb_env_close(lm);
        return -1;
    }
    rc = mdb_txn_begin(lm->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0) {
        rc = mdb_dbi_open(txn, NULL, 0, &lm->dbi);
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    lmdb_lock(fd, F_UNLCK);
    if (rc != 0) {
        snprintf(err, errlen, "open %s: %s", lm->path, mdb_strerror(rc));
        lmdb_env_close(lm);
        return -1;
    }
    return 0;
}

int map_lmdb_open(struct map *m, const char *name, char *err, size_t errlen)
{
    struct lmdb_map *lm = xcalloc(1, sizeof(*lm));

    lm->path = xasprintf("%s%s", name, LMDB_SUFFIX);
    if (lmdb_env_open(lm, err, errlen) < 0) {
        free(lm->path);
        free(lm);
        return -1;
    }
    m->ctx = lm;
    return 0;
}

void map_lmdb_close(struct map *m)
{
    struct lmdb_map *lm = m->ctx;

    lmdb_env_close(lm);
    free(lm->path);
    free(lm);
}

/* A rebuilt table is a new inode (rename): switch to it. */
static int lmdb_refresh(struct lmdb_map *lm, char *err, size_t errlen)
{
    struct stat st;

    if (stat(lm->path, &st) < 0 ||
        (st.st_dev == lm->dev && st.st_ino == lm->ino))
        return lm->env != NULL ? 0 : lmdb_env_open(lm, err, errlen);
    lmdb_env_close(lm);
    return lmdb_env_open(lm, err, errlen);
}

/* Begin a read transaction under a shared lock; *fd for the unlock. */
static int lmdb_read_begin(struct lmdb_map *lm, MDB_txn **txn, int *fd,
                           char *err, size_t errlen)
{
    int rc;

    if (lmdb_refresh(lm, err, errlen) < 0)
        return -1;
    mdb_env_get_fd(lm->env, fd);
    if (lmdb_lock(*fd, F_RDLCK) < 0) {
        snprintf(err, errlen, "lock %s: %s", lm->path, strerror(errno));
        return -1;
    }
    if ((rc = mdb_txn_begin(lm->env, NULL, MDB_RDONLY, txn)) != 0) {
        lmdb_lock(*fd, F_UNLCK);
        snprintf(err, errlen, "read %s: %s", lm->path, mdb_strerror(rc));
        return -1;
    }
    return 0;
}

static void lmdb_read_end(MDB_txn *txn, int fd)
{
    mdb_txn_abort(txn);
    lmdb_lock(fd, F_UNLCK);
}

/* Copy an LMDB datum as text: up to its first NUL (Postfix's trailer). */
static void lmdb_put_text(struct buf *out, const MDB_val *v)
{
    const char *nul = memchr(v->mv_data, 0, v->mv_size);

    buf_append(out, v->mv_data,
               nul != NULL ? (size_t)(nul - (const char *)v->mv_data)
                           : v->mv_size);
}

enum map_result map_lmdb_lookup(struct map *m, const char *key,
                                struct buf *result, char *err, size_t errlen)
{
    struct lmdb_map *lm = m->ctx;
    size_t klen = strlen(key), maxkey;
    MDB_txn *txn;
    MDB_val k, v;
    int rc, fd;

    if (lmdb_read_begin(lm, &txn, &fd, err, errlen) < 0)
        return MAP_ERROR;
    maxkey = (size_t)mdb_env_get_maxkeysize(lm->env);
    if (klen == 0 || klen > maxkey) {
        lmdb_read_end(txn, fd);
        return MAP_NOTFOUND;
    }
    k.mv_data = (void *)key;
    k.mv_size = klen;
    rc = mdb_get(txn, lm->dbi, &k, &v);
    if (rc == MDB_NOTFOUND && klen < maxkey) {
        k.mv_size = klen + 1; /* as Postfix writes it */
        rc = mdb_get(txn, lm->dbi, &k, &v);
    }
    if (rc == 0)
        lmdb_put_text(result, &v);
    lmdb_read_end(txn, fd);
    if (rc == MDB_NOTFOUND)
        return MAP_NOTFOUND;
    if (rc != 0) {
        snprintf(err, errlen, "read %s: %s", lm->path, mdb_strerror(rc));
        return MAP_ERROR;
    }
    return MAP_FOUND;
}

int map_lmdb_walk(struct map *m, map_walk_fn fn, void *ctx, char *err,
                  size_t errlen)
{
    struct lmdb_map *lm = m->ctx;
    struct buf key = BUF_INIT, value = BUF_INIT;
    MDB_cursor *cur;
    MDB_txn *txn;
    MDB_val k, v;
    int rc, fd;

    if (lmdb_read_begin(lm, &txn, &fd, err, errlen) < 0)
        return -1;
    if ((rc = mdb_cursor_open(txn, lm->dbi, &cur)) != 0) {
        lmdb_read_end(txn, fd);
        snprintf(err, errlen, "read %s: %s", lm->path, mdb_strerror(rc));
        return -1;
    }
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        buf_reset(&key);
        buf_reset(&value);
        lmdb_put_text(&key, &k);
        lmdb_put_text(&value, &v);
        if (fn(buf_cstr(&key), buf_cstr(&value), ctx) != 0) {
            rc = MDB_NOTFOUND;
            break;
        }
    }
    mdb_cursor_close(cur);
    lmdb_read_end(txn, fd);
    buf_free(&key);
    buf_free(&value);
    if (rc != MDB_NOTFOUND) {
        snprintf(err, errlen, "read %s: %s", lm->path, mdb_strerror(rc));
        return -1;
    }
    return 0;
}

/* ---- removing one key (posthorn map -d) ---- */

/*
 * Open the table's current file for writing under an exclusive lock,
 * which waits for readers to finish their transactions (they hold shared
 * locks around each one).  A build that renamed a new file into place
 * while we waited makes us start over on that file.
 */
static int lmdb_open_write(const char *path, MDB_env **envp, int *fdp,
                           char *err, size_t errlen)
{
    for (int i = 0; i < LMDB_LOCK_TRIES; i++) {
        struct stat fst, pst;
        MDB_envinfo info;
        MDB_env *env;
        int rc, fd;

        if ((rc = mdb_env_create(&env)) != 0) {
            snprintf(err, errlen, "open %s: %s", path, mdb_strerror(rc));
            return -1;
        }
        if ((rc = mdb_env_open(env, path, MDB_NOSUBDIR | MDB_NOLOCK, 0644)) !=
                0 ||
            (rc = mdb_env_get_fd(env, &fd)) != 0) {
            snprintf(err, errlen, "open %s: %s", path, mdb_strerror(rc));
            mdb_env_close(env);
            return -1;
        }
        if (lmdb_lock(fd, F_WRLCK) < 0) {
            snprintf(err, errlen, "lock %s: %s", path, strerror(errno));
            mdb_env_close(env);
            return -1;
        }
        if (fstat(fd, &fst) == 0 && stat(path, &pst) == 0 &&
            fst.st_dev == pst.st_dev && fst.st_ino == pst.st_ino) {
            /* Room for the copy-on-write pages of the change. */
            if (mdb_env_info(env, &info) == 0)
                (void)mdb_env_set_mapsize(env, info.me_mapsize * 2);
            *envp = env;
            *fdp = fd;
            return 0;
        }
        mdb_env_close(env); /* drops the lock */
    }
    snprintf(err, errlen, "lock %s: file keeps changing", path);
    return -1;
}

int map_lmdb_delete(struct map *m, const char *key, char *err, size_t errlen)
{
    struct lmdb_map *lm = m->ctx;
    size_t klen = strlen(key), maxkey;
    int removed = 0, rc, fd;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;

    if (lmdb_open_write(lm->path, &env, &fd, err, errlen) < 0)
        return -1;
    maxkey = (size_t)mdb_env_get_maxkeysize(env);
    if (klen == 0 || klen > maxkey) {
        mdb_env_close(env);
        return 0;
    }
    if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0) {
        snprintf(err, errlen, "write %s: %s", lm->path, mdb_strerror(rc));
        mdb_env_close(env);
        return -1;
    }
    if ((rc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0) {
        mdb_txn_abort(txn);
        snprintf(err, errlen, "write %s: %s", lm->path, mdb_strerror(rc));
        mdb_env_close(env);
        return -1;
    }
    /* Both spellings: ours, and Postfix's with a trailing NUL. */
    for (size_t extra = 0; extra < 2 && klen + extra <= maxkey; extra++) {
        MDB_val k = {.mv_size = klen + extra, .mv_data = (void *)key};

        rc = mdb_del(txn, dbi, &k, NULL);
        if (rc == 0)
            removed = 1;
        else if (rc != MDB_NOTFOUND)
            break;
        rc = 0;
    }
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    if (rc == 0)
        rc = mdb_env_sync(env, 1);
    mdb_env_close(env); /* also releases the lock */
    if (rc != 0) {
        snprintf(err, errlen, "write %s: %s", lm->path, mdb_strerror(rc));
        return -1;
    }
    return removed;
}

/* ---- building ---- */

struct lmdb_build {
    MDB_txn *txn;
    MDB_dbi dbi;
    size_t maxkey;
    int mdb_rc;       /* LMDB error that stopped the pass, or 0 */
    long warned_line; /* duplicates already reported (passes repeat) */
};

static int lmdb_build_put(const char *key, const char *value, const char *path,
                          long line, void *ctx, char *err, size_t errlen)
{
    struct lmdb_build *b = ctx;
    MDB_val k, v;
    int rc;

    k.mv_data = (void *)key;
    k.mv_size = strlen(key);
    v.mv_data = (void *)value;
    v.mv_size = strlen(value);
    if (k.mv_size > b->maxkey) {
        snprintf(err, errlen, "%s:%ld: key longer than %zu bytes", path, line,
                 b->maxkey);
        return -1;
    }
    rc = mdb_put(b->txn, b->dbi, &k, &v, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) {
        /* Postfix's postmap: warn and keep the first entry. */
        if (line > b->warned_line) {
            log_warn("%s:%ld: duplicate entry: \"%s\"", path, line, key);
            b->warned_line = line;
        }
        return 0;
    }
    if (rc != 0) {
        b->mdb_rc = rc;
        snprintf(err, errlen, "%s:%ld: %s", path, line, mdb_strerror(rc));
        return -1;
    }
    return 0;
}

/*
 * Open and exclusively lock the temporary file.  A builder that waited
 * for the lock may find that the file it locked was renamed into place by
 * the previous builder meanwhile; it then starts over with a fresh file.
 */
static int lmdb_lock_tmp(const char *tmp, mode_t mode, char *err, size_t errlen)
{
    for (int i = 0; i < LMDB_LOCK_TRIES; i++) {
        struct stat fst, pst;
        int fd = open(tmp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode);

        if (fd < 0) {
            snprintf(err, errlen, "create %s: %s", tmp, strerror(errno));
            return -1;
        }
        if (lmdb_lock(fd, F_WRLCK) < 0) {
            snprintf(err, errlen, "lock %s: %s", tmp, strerror(errno));
            close(fd);
            return -1;
        }
        if (fstat(fd, &fst) == 0 && stat(tmp, &pst) == 0 &&
            fst.st_dev == pst.st_dev && fst.st_ino == pst.st_ino)
            return fd;
        close(fd);
    }
    snprintf(err, errlen, "lock %s: file keeps changing", tmp);
    return -1;
}

static int lmdb_build_fail(MDB_env *env, const char *tmp, int fd)
{
    /*
     * Unlink while still locked so a waiting builder starts over; closing
     * the environment closes a descriptor of the file, which drops the lock.
     */
    unlink(tmp);
    if (env != NULL)
        mdb_env_close(env);
    close(fd);
    return -1;
}

int map_lmdb_build(const char *path, char *err, size_t errlen)
{
    char *target = xasprintf("%s%s", path, LMDB_SUFFIX);
    char *tmp = xasprintf("%s%s.tmp", path, LMDB_SUFFIX);
    char *dir, *slash;
    struct lmdb_build b;
    struct stat st;
    MDB_env *env = NULL;
    size_t size = lmdb_map_size;
    int fd, rc = -1, mrc;

    if (stat(path, &st) < 0) {
        snprintf(err, errlen, "open %s: %s", path, strerror(errno));
        goto out;
    }
    if ((fd = lmdb_lock_tmp(tmp, st.st_mode & 0666, err, errlen)) < 0)
        goto out;
    if (ftruncate(fd, 0) < 0 || fchmod(fd, st.st_mode & 0666) < 0) {
        snprintf(err, errlen, "truncate %s: %s", tmp, strerror(errno));
        rc = lmdb_build_fail(NULL, tmp, fd);
        goto out;
    }
    if ((mrc = mdb_env_create(&env)) != 0) {
        snprintf(err, errlen, "create %s: %s", tmp, mdb_strerror(mrc));
        rc = lmdb_build_fail(NULL, tmp, fd);
        goto out;
    }
    if ((mrc = mdb_env_set_mapsize(env, size)) != 0 ||
        (mrc = mdb_env_open(env, tmp, MDB_NOSUBDIR | MDB_NOLOCK,
                            st.st_mode & 0666)) != 0) {
        snprintf(err, errlen, "create %s: %s", tmp, mdb_strerror(mrc));
        rc = lmdb_build_fail(env, tmp, fd);
        goto out;
    }
    memset(&b, 0, sizeof(b));
    b.maxkey = (size_t)mdb_env_get_maxkeysize(env);
    for (;;) {
        b.mdb_rc = 0;
        if ((mrc = mdb_txn_begin(env, NULL, 0, &b.txn)) != 0) {
            snprintf(err, errlen, "write %s: %s", tmp, mdb_strerror(mrc));
            rc = lmdb_build_fail(env, tmp, fd);
            goto out;
        }
        if ((mrc = mdb_dbi_open(b.txn, NULL, 0, &b.dbi)) != 0) {
            mdb_txn_abort(b.txn);
            snprintf(err, errlen, "write %s: %s", tmp, mdb_strerror(mrc));
            rc = lmdb_build_fail(env, tmp, fd);
            goto out;
        }
        if (map_source_read(path, lmdb_build_put, &b, err, errlen) == 0)
            mrc = mdb_txn_commit(b.txn);
        else {
            mrc = b.mdb_rc != 0 ? b.mdb_rc : -1;
            mdb_txn_abort(b.txn);
        }
        b.txn = NULL;
        if (mrc == 0)
            break;
        if (mrc != MDB_MAP_FULL || size >= LMDB_SIZE_MAX) {
            if (mrc != -1 && b.mdb_rc == 0)
                snprintf(err, errlen, "write %s: %s", tmp, mdb_strerror(mrc));
            rc = lmdb_build_fail(env, tmp, fd);
            goto out;
        }
        /* No transaction is active, so the map may grow in place. */
        size *= 2;
        if ((mrc = mdb_env_set_mapsize(env, size)) != 0) {
            snprintf(err, errlen, "write %s: %s", tmp, mdb_strerror(mrc));
            rc = lmdb_build_fail(env, tmp, fd);
            goto out;
        }
    }
    if ((mrc = mdb_env_sync(env, 1)) != 0) {
        snprintf(err, errlen, "sync %s: %s", tmp, mdb_strerror(mrc));
        rc = lmdb_build_fail(env, tmp, fd);
        goto out;
    }
    /* Rename before closing: closing any descriptor drops our lock. */
    if (rename(tmp, target) < 0) {
        snprintf(err, errlen, "rename %s: %s", tmp, strerror(errno));
        rc = lmdb_build_fail(env, tmp, fd);
        goto out;
    }
    slash = strrchr(target, '/');
    if (slash == NULL)
        dir = xstrdup(".");
    else
        dir = xstrndup(target, slash == target ? 1 : (size_t)(slash - target));
    if (fsync_dir(dir) < 0)
        log_warn("fsync directory %s: %s", dir, strerror(errno));
    free(dir);
    mdb_env_close(env);
    close(fd);
    rc = 0;
out:
    free(target);
    free(tmp);
    return rc;
}
