/*
 * greylist_db - the greylist state in one LMDB file ($greylist_database,
 * by default $data_directory/greylist.lmdb, with its "-lock" file next
 * to it), shared by every greylist process.
 *
 * Keys and values (values are decimal text, so a damaged or foreign
 * value is recognised and replaced instead of misread):
 *
 *   "T:" net NUL sender NUL recipient   "first last passed"
 *        (or "T:#" sha256-hex when that is longer than GREYLIST_KEY_MAX)
 *        first: time of the first try, last: of the latest, passed: 0/1
 *   "C:" net                            "passes last"
 *        triplets of that client network that passed (auto-allow)
 *   "M:clean"                           "next_sweep cursor-key"
 *        where the incremental clean-up stands
 *
 * Times are wall-clock seconds: the state outlives the process and the
 * machine.  Each decision is one write transaction (read, decide, write),
 * so concurrent greylist processes never lose an update; LMDB serialises
 * writers with its lock file and survives a process killed at any point.
 * MDB_NOMETASYNC: a power cut may forget the latest decisions (a triplet
 * gets greylisted once more), never corrupt the file.  A full map is
 * doubled (up to GREYLIST_MAP_MAX); another process's growth is picked up
 * on MDB_MAP_RESIZED.
 *
 * The clean-up never runs as one big transaction, which would stall every
 * other greylist process: each call walks at most GREYLIST_CLEAN_BATCH
 * entries from the stored cursor and stores the cursor again, so any
 * process continues the sweep where another stopped.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "greylist/greylist.h"
#include "util/fsutil.h"
#include "util/mem.h"

/* The map doubles up to this size; then writes fail (logged). */
#define GREYLIST_MAP_MAX ((size_t)4 << 30)
/* Entries looked at per clean-up step, and the pause between sweeps. */
#define GREYLIST_CLEAN_BATCH 1000
#define GREYLIST_CLEAN_INTERVAL 3600
/* One reader slot per process; master may run many greylist workers. */
#define GREYLIST_MAX_READERS 1024

#define GREYLIST_META_CLEAN "M:clean"
/* Longest value we write ("first last passed"): three numbers. */
#define GREYLIST_VALUE_MAX 64

struct greylist_db {
    MDB_env *env;
    MDB_dbi dbi;
    char *path;
};

/* fn's return: an LMDB code, or this to abort quietly. */
#define GREYLIST_TXN_SKIP (-1)

typedef int (*greylist_txn_fn)(struct greylist_db *db, MDB_txn *txn, void *ctx);

static void greylist_db_err(struct greylist_db *db, char *err, size_t errlen,
                            const char *what, int rc)
{
    snprintf(err, errlen, "%s: %s: %s", db->path, what, mdb_strerror(rc));
}

static int greylist_db_grow(struct greylist_db *db)
{
    MDB_envinfo info;

    if (mdb_env_info(db->env, &info) != 0 ||
        info.me_mapsize >= GREYLIST_MAP_MAX)
        return -1;
    return mdb_env_set_mapsize(db->env, info.me_mapsize * 2) == 0 ? 0 : -1;
}

/*
 * Run fn in a write transaction, retrying after a map resize by another
 * process or after growing a full map.  0, 1 (fn skipped), or -1.
 */
static int greylist_db_write(struct greylist_db *db, greylist_txn_fn fn,
                             void *ctx, char *err, size_t errlen)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(db->env, NULL, 0, &txn);

        if (rc == MDB_MAP_RESIZED) {
            mdb_env_set_mapsize(db->env, 0);
            continue;
        }
        if (rc != 0) {
            greylist_db_err(db, err, errlen, "begin transaction", rc);
            return -1;
        }
        rc = fn(db, txn, ctx);
        if (rc == GREYLIST_TXN_SKIP) {
            mdb_txn_abort(txn);
            return 1;
        }
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
        if (rc == 0)
            return 0;
        if (rc == MDB_MAP_FULL && greylist_db_grow(db) == 0)
            continue;
        greylist_db_err(db, err, errlen, "update", rc);
        return -1;
    }
    snprintf(err, errlen, "%s: update: gave up after repeated retries",
             db->path);
    return -1;
}

struct greylist_db *greylist_db_open(const char *path, size_t map_size,
                                     char *err, size_t errlen)
{
    struct greylist_db *db = xcalloc(1, sizeof(*db));
    char *dir = xstrdup(path), *slash = strrchr(dir, '/');
    MDB_txn *txn;
    int rc, dead;

    db->path = xstrdup(path);
    if (slash != NULL && slash != dir) {
        *slash = 0;
        if (mkdir_p(dir, 0700) < 0) {
            snprintf(err, errlen, "create directory %s: %s", dir,
                     strerror(errno));
            free(dir);
            greylist_db_close(db);
            return NULL;
        }
    }
    free(dir);
    if ((rc = mdb_env_create(&db->env)) != 0 ||
        (rc = mdb_env_set_mapsize(db->env, map_size)) != 0 ||
        (rc = mdb_env_set_maxreaders(db->env, GREYLIST_MAX_READERS)) != 0 ||
        (rc = mdb_env_open(db->env, path, MDB_NOSUBDIR | MDB_NOMETASYNC,
                           0600)) != 0) {
        greylist_db_err(db, err, errlen, "open", rc);
        greylist_db_close(db);
        return NULL;
    }
    /* Reader slots of processes killed while reading. */
    (void)mdb_reader_check(db->env, &dead);
    if ((rc = mdb_txn_begin(db->env, NULL, 0, &txn)) != 0) {
        greylist_db_err(db, err, errlen, "open", rc);
        greylist_db_close(db);
        return NULL;
    }
    if ((rc = mdb_dbi_open(txn, NULL, 0, &db->dbi)) != 0 ||
        (rc = mdb_txn_commit(txn)) != 0) {
        if (rc != 0)
            mdb_txn_abort(txn);
        greylist_db_err(db, err, errlen, "open", rc);
        greylist_db_close(db);
        return NULL;
    }
    return db;
}

void greylist_db_close(struct greylist_db *db)
{
    if (db == NULL)
        return;
    if (db->env != NULL)
        mdb_env_close(db->env);
    free(db->path);
    free(db);
}

/* ------------------------------------------------------------ values */

/* Up to three numbers of a value; false when it is not ours. */
static bool greylist_parse(const MDB_val *v, int want, long long out[3])
{
    char text[GREYLIST_VALUE_MAX];
    char *p = text, *end;

    if (v->mv_size == 0 || v->mv_size >= sizeof(text))
        return false;
    memcpy(text, v->mv_data, v->mv_size);
    text[v->mv_size] = 0;
    for (int i = 0; i < want; i++) {
        if (i > 0 && *p++ != ' ')
            return false;
        if (*p < '0' || *p > '9')
            return false;
        errno = 0;
        out[i] = strtoll(p, &end, 10);
        if (errno != 0)
            return false;
        p = end;
    }
    return *p == 0;
}

static int greylist_put(struct greylist_db *db, MDB_txn *txn, const void *key,
                        size_t keylen, const char *value)
{
    MDB_val k = {keylen, (void *)key};
    MDB_val v = {strlen(value), (void *)value};

    return mdb_put(txn, db->dbi, &k, &v, 0);
}

/* ------------------------------------------------------------ decisions */

struct greylist_check {
    const struct greylist_rules *r;
    const char *net;
    const struct buf *key;
    time_t now;
    struct greylist_result *res;
};

static void greylist_client_key(const char *net, struct buf *out)
{
    buf_reset(out);
    buf_puts(out, "C:");
    buf_puts(out, net);
}

/* The network's passes, 0 when unknown, malformed or expired. */
static long long greylist_passes(struct greylist_db *db, MDB_txn *txn,
                                 const struct buf *ckey,
                                 const struct greylist_rules *r, time_t now)
{
    MDB_val k = {ckey->len, ckey->data}, v;
    long long n[3];

    if (mdb_get(txn, db->dbi, &k, &v) != 0 || !greylist_parse(&v, 2, n) ||
        now - n[1] > r->max_age)
        return 0;
    return n[0];
}

static int greylist_check_txn(struct greylist_db *db, MDB_txn *txn, void *arg)
{
    struct greylist_check *c = arg;
    const struct greylist_rules *r = c->r;
    long long now = (long long)c->now, first, passed, n[3];
    struct buf ckey = BUF_INIT;
    char value[GREYLIST_VALUE_MAX];
    MDB_val k = {c->key->len, c->key->data}, v;
    bool fresh;
    int rc = 0;

    memset(c->res, 0, sizeof(*c->res));
    greylist_client_key(c->net, &ckey);
    if (r->auto_allow > 0) {
        long long passes = greylist_passes(db, txn, &ckey, r, c->now);

        if (passes >= r->auto_allow) {
            c->res->verdict = GREYLIST_PASS_AUTO;
            snprintf(value, sizeof(value), "%lld %lld", passes, now);
            rc = greylist_put(db, txn, ckey.data, ckey.len, value);
            goto out;
        }
    }
    rc = mdb_get(txn, db->dbi, &k, &v);
    if (rc != 0 && rc != MDB_NOTFOUND)
        goto out;
    fresh = rc == MDB_NOTFOUND || !greylist_parse(&v, 3, n) ||
            (n[2] != 0 && now - n[1] > r->max_age) ||
            (n[2] == 0 && now - n[0] > r->retry_window);
    first = fresh ? now : n[0];
    passed = fresh ? 0 : n[2];
    /* A clock that went back must not make the wait longer than delay. */
    if (first > now)
        first = now;
    if (passed) {
        c->res->verdict = GREYLIST_PASS;
    } else if (now - first < r->delay) {
        c->res->verdict = fresh ? GREYLIST_DEFER_NEW : GREYLIST_DEFER_EARLY;
        c->res->wait = r->delay - (now - first);
    } else {
        c->res->verdict = GREYLIST_PASS_FIRST;
        c->res->delayed = now - first;
        passed = 1;
        if (r->auto_allow > 0) {
            long long passes = greylist_passes(db, txn, &ckey, r, c->now);

            snprintf(value, sizeof(value), "%lld %lld", passes + 1, now);
            if ((rc = greylist_put(db, txn, ckey.data, ckey.len, value)) != 0)
                goto out;
        }
    }
    snprintf(value, sizeof(value), "%lld %lld %lld", first, now, passed);
    rc = greylist_put(db, txn, c->key->data, c->key->len, value);
out:
    buf_free(&ckey);
    return rc;
}

int greylist_db_check(struct greylist_db *db, const struct greylist_rules *r,
                      const char *net, const struct buf *key, time_t now,
                      struct greylist_result *res, char *err, size_t errlen)
{
    struct greylist_check c = {r, net, key, now, res};

    return greylist_db_write(db, greylist_check_txn, &c, err, errlen) < 0 ? -1
                                                                          : 0;
}

/* ------------------------------------------------------------ clean-up */

struct greylist_clean {
    const struct greylist_rules *r;
    long long now;
    long removed;
};

static bool greylist_expired(const struct greylist_rules *r, long long now,
                             const MDB_val *k, const MDB_val *v)
{
    const char *key = k->mv_data;
    long long n[3];

    if (k->mv_size >= 2 && memcmp(key, "T:", 2) == 0) {
        if (!greylist_parse(v, 3, n))
            return true;
        return n[2] != 0 ? now - n[1] > r->max_age
                         : now - n[0] > r->retry_window;
    }
    if (k->mv_size >= 2 && memcmp(key, "C:", 2) == 0)
        return !greylist_parse(v, 2, n) || now - n[1] > r->max_age;
    return false; /* "M:" and anything we did not write */
}

static long long greylist_clean_interval(const struct greylist_rules *r)
{
    long long every = GREYLIST_CLEAN_INTERVAL;

    if (r->max_age < every)
        every = r->max_age;
    if (r->retry_window < every)
        every = r->retry_window;
    return every > 0 ? every : 1;
}

static int greylist_clean_txn(struct greylist_db *db, MDB_txn *txn, void *arg)
{
    struct greylist_clean *c = arg;
    MDB_val mk = {strlen(GREYLIST_META_CLEAN), GREYLIST_META_CLEAN}, mv, k, v;
    struct buf meta = BUF_INIT;
    long long next = 0;
    const char *cursor_key = NULL;
    size_t cursor_len = 0;
    MDB_cursor *cur;
    int rc, n;

    c->removed = 0;
    if (mdb_get(txn, db->dbi, &mk, &mv) == 0) {
        const char *data = mv.mv_data, *sp = memchr(data, ' ', mv.mv_size);

        if (sp != NULL) {
            for (const char *p = data; p < sp && *p >= '0' && *p <= '9'; p++)
                next = next < LLONG_MAX / 10 ? next * 10 + (*p - '0') : next;
            cursor_key = sp + 1;
            cursor_len = mv.mv_size - (size_t)(sp + 1 - data);
        }
    }
    if (cursor_len == 0 && c->now < next)
        return GREYLIST_TXN_SKIP;
    if ((rc = mdb_cursor_open(txn, db->dbi, &cur)) != 0)
        return rc;
    if (cursor_len > 0) {
        /* The cursor key lives in the map: copy it before any write. */
        buf_append(&meta, cursor_key, cursor_len);
        k.mv_size = meta.len;
        k.mv_data = meta.data;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    } else {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }
    for (n = 0; rc == 0 && n < GREYLIST_CLEAN_BATCH; n++) {
        if (greylist_expired(c->r, c->now, &k, &v)) {
            if ((rc = mdb_cursor_del(cur, 0)) != 0)
                break;
            c->removed++;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    buf_reset(&meta);
    if (rc == MDB_NOTFOUND) {
        /* Sweep done: the next one after the interval. */
        buf_printf(&meta, "%lld ", c->now + greylist_clean_interval(c->r));
        rc = 0;
    } else if (rc == 0) {
        buf_printf(&meta, "%lld ", next);
        buf_append(&meta, k.mv_data, k.mv_size);
    }
    mdb_cursor_close(cur);
    if (rc == 0) {
        mv.mv_size = meta.len;
        mv.mv_data = meta.data;
        rc = mdb_put(txn, db->dbi, &mk, &mv, 0);
    }
    buf_free(&meta);
    return rc;
}

long greylist_db_clean(struct greylist_db *db, const struct greylist_rules *r,
                       time_t now, char *err, size_t errlen)
{
    struct greylist_clean c = {r, (long long)now, 0};
    int rc = greylist_db_write(db, greylist_clean_txn, &c, err, errlen);

    if (rc < 0)
        return -1;
    return rc == 0 ? c.removed : 0;
}
