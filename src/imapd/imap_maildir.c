/*
 * imap_maildir - bring a mailbox's index in line with its Maildir.
 *
 * The files are the truth: a message exists while a file with its base
 * name is in new/ or cur/, and its system flags are the letters after
 * ":2," (D draft, F flagged, R replied, S seen, T trashed; P and the
 * lowercase letters Dovecot uses for keywords are kept untouched).
 * The scan runs inside an LMDB write transaction, which serialises it
 * with every other imapd process; `local` and other tools do not take
 * that lock, so a file may be renamed while we read the directories:
 * records whose file seems gone are checked against a second reading
 * before they are dropped.  New files get UIDs in delivery order
 * (mtime, then name).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imapd/imap_store_impl.h"
#include "util/htable.h"
#include "util/log.h"
#include "util/mem.h"

static const struct {
    char letter;
    unsigned flag;
} info_letters[] = {{'D', IMAP_FLAG_DRAFT},
                    {'F', IMAP_FLAG_FLAGGED},
                    {'R', IMAP_FLAG_ANSWERED},
                    {'S', IMAP_FLAG_SEEN},
                    {'T', IMAP_FLAG_DELETED}};

unsigned imap_maildir_info_flags(const char *info, struct buf *extra)
{
    unsigned flags = 0;

    for (const char *p = info; *p; p++) {
        bool sys = false;

        for (size_t i = 0; i < sizeof(info_letters) / sizeof(info_letters[0]);
             i++)
            if (*p == info_letters[i].letter) {
                flags |= info_letters[i].flag;
                sys = true;
            }
        if (!sys && extra && *p >= 0x21 && *p < 0x7f && *p != '/' &&
            memchr(extra->data ? extra->data : "", *p, extra->len) == NULL)
            buf_putc(extra, *p);
    }
    return flags;
}

void imap_maildir_name(struct buf *out, const char *base, unsigned flags,
                       const char *extra)
{
    buf_puts(out, base);
    buf_puts(out, ":2,");
    /* Maildir wants the letters in ASCII order. */
    for (int c = 0x21; c < 0x7f; c++) {
        bool on = false;

        for (size_t i = 0; i < sizeof(info_letters) / sizeof(info_letters[0]);
             i++)
            if (info_letters[i].letter == c && (flags & info_letters[i].flag))
                on = true;
        if (!on && extra && strchr(extra, c) && c != ',')
            on = true;
        if (on)
            buf_putc(out, (char)c);
    }
}

void imap_maildir_path(struct buf *out, const char *dir,
                       const struct imap_rec *r)
{
    buf_printf(out, "%s/%s/", dir, r->in_new ? "new" : "cur");
    if (r->in_new)
        buf_puts(out, r->base);
    else
        imap_maildir_name(out, r->base, r->flags, r->info);
}

void imap_maildir_touch(const char *dir)
{
    char *cur = xasprintf("%s/cur", dir);

    if (utimensat(AT_FDCWD, cur, NULL, 0) < 0 && errno != ENOENT)
        log_warn("imap: touch %s: %m", cur);
    free(cur);
}

/* One file found by the scan. */
struct scan_entry {
    char *base;
    char *info;     /* the letters after ":2," (all of them) */
    bool in_new;
    bool has_info;  /* the name had ":2," (cur/ names normally do) */
    bool matched;   /* an index record has it */
    time_t mtime;
};

struct scan {
    struct scan_entry *v;
    size_t n, cap;
    struct htable *by_base;
};

static void scan_free(struct scan *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].base);
        free(s->v[i].info);
    }
    free(s->v);
    if (s->by_base)
        htable_free(s->by_base, NULL);
    memset(s, 0, sizeof(*s));
}

static void scan_add(struct scan *s, const char *name, bool in_new)
{
    const char *colon = strchr(name, ':');
    struct scan_entry *e;
    char *base;
    uintptr_t prev;

    base = colon ? xstrndup(name, (size_t)(colon - name)) : xstrdup(name);
    prev = (uintptr_t)htable_get(s->by_base, base);
    if (prev != 0) {
        /* Same message in new/ and cur/ (caught mid-move): cur/ wins. */
        e = &s->v[prev - 1];
        if (!in_new && e->in_new) {
            free(e->info);
            e->info = xstrdup(colon && strncmp(colon, ":2,", 3) == 0
                                  ? colon + 3
                                  : "");
            e->in_new = false;
            e->has_info = colon != NULL;
        }
        free(base);
        return;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->v = xreallocarray(s->v, s->cap, sizeof(*s->v));
    }
    e = &s->v[s->n++];
    memset(e, 0, sizeof(*e));
    e->base = base;
    e->info = xstrdup(colon && strncmp(colon, ":2,", 3) == 0 ? colon + 3 : "");
    e->in_new = in_new;
    e->has_info = colon != NULL;
    htable_put(s->by_base, base, (void *)(uintptr_t)s->n);
}

/* Read dir/sub into s; move_new renames new/ files into cur/ first. */
static int scan_dir(struct scan *s, const char *dir, const char *sub,
                    bool move_new, char *err, size_t errlen)
{
    char *path = xasprintf("%s/%s", dir, sub);
    DIR *d = opendir(path);
    struct dirent *de;
    bool is_new = strcmp(sub, "new") == 0;

    if (d == NULL) {
        snprintf(err, errlen, "opendir %s: %s", path, strerror(errno));
        free(path);
        return errno == ENOENT ? IMAP_STORE_GONE : IMAP_STORE_ERR;
    }
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;

        if (name[0] == '.' || strlen(name) > IMAP_MAILDIR_NAME_MAX)
            continue;
        if (s->n >= IMAP_MAILDIR_FILES_MAX) {
            snprintf(err, errlen, "%s: more than %d files", path,
                     IMAP_MAILDIR_FILES_MAX);
            closedir(d);
            free(path);
            return IMAP_STORE_LIMIT;
        }
        if (is_new && move_new) {
            char *from = xasprintf("%s/new/%s", dir, name);
            char *to = strchr(name, ':')
                           ? xasprintf("%s/cur/%s", dir, name)
                           : xasprintf("%s/cur/%s:2,", dir, name);

            if (rename(from, to) == 0) {
                scan_add(s, strrchr(to, '/') + 1, false);
            } else if (errno != ENOENT) {
                log_warn("imap: rename %s to %s: %m", from, to);
                scan_add(s, name, true);
            }
            /* ENOENT: someone else moved it; cur/ is read next. */
            free(from);
            free(to);
            continue;
        }
        scan_add(s, name, is_new);
    }
    closedir(d);
    free(path);
    return IMAP_STORE_OK;
}

static int scan_read(struct scan *s, const char *dir, bool move_new, char *err,
                     size_t errlen)
{
    int rc;

    s->by_base = htable_new(1024);
    /* new/ before cur/: a file moving from one to the other is seen. */
    rc = scan_dir(s, dir, "new", move_new, err, errlen);
    if (rc == IMAP_STORE_OK)
        rc = scan_dir(s, dir, "cur", false, err, errlen);
    return rc;
}

static struct scan_entry *scan_find(struct scan *s, const char *base)
{
    uintptr_t i = (uintptr_t)htable_get(s->by_base, base);

    return i ? &s->v[i - 1] : NULL;
}

/* Update r from the file entry e; true when the record changed. */
static bool adopt(struct imap_rec *r, const struct scan_entry *e,
                  struct imap_index_meta *meta)
{
    struct buf extra = BUF_INIT;
    unsigned flags = imap_maildir_info_flags(e->info, &extra);
    bool changed = false;
    const char *x = extra.data ? extra.data : "";

    if (flags != r->flags) {
        r->flags = flags;
        r->modseq = ++meta->highestmodseq;
        changed = true;
    }
    if (strcmp(x, r->info) != 0 || r->in_new != e->in_new ||
        (!e->in_new && !e->has_info)) {
        free(r->info);
        r->info = xstrdup(x);
        r->in_new = e->in_new;
        changed = true;
    }
    buf_free(&extra);
    return changed;
}

static int cmp_new(const void *a, const void *b)
{
    const struct scan_entry *x = *(struct scan_entry *const *)a;
    const struct scan_entry *y = *(struct scan_entry *const *)b;

    if (x->mtime != y->mtime)
        return x->mtime < y->mtime ? -1 : 1;
    return strcmp(x->base, y->base);
}

/* A cur/ file without ":2," gets one so that flags can be set later. */
static void add_info(const char *dir, struct scan_entry *e)
{
    char *from = xasprintf("%s/cur/%s", dir, e->base);
    char *to = xasprintf("%s/cur/%s:2,", dir, e->base);

    if (rename(from, to) == 0)
        e->has_info = true;
    free(from);
    free(to);
}

int imap_maildir_scan(struct imap_store *st, struct imap_index *ix,
                      MDB_txn *txn, const char *dir, bool move_new,
                      struct imap_index_meta *meta, bool *changed, char *err,
                      size_t errlen)
{
    struct scan s, again;
    struct imap_rec *recs = NULL, **missing = NULL;
    struct scan_entry **fresh = NULL;
    size_t n_recs = 0, cap = 0, n_missing = 0, n_fresh = 0;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint32_t max_uid = 0;
    int rc;

    memset(&s, 0, sizeof(s));
    memset(&again, 0, sizeof(again));
    *changed = false;
    rc = scan_read(&s, dir, move_new, err, errlen);
    if (rc != IMAP_STORE_OK)
        goto out;

    /* Every record: still there?  renamed? */
    if (mdb_cursor_open(txn, ix->uids, &cur) != 0) {
        snprintf(err, errlen, "index %s: cursor", ix->path);
        rc = IMAP_STORE_ERR;
        goto out;
    }
    for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
        if (n_recs == cap) {
            cap = cap ? cap * 2 : 256;
            recs = xreallocarray(recs, cap, sizeof(*recs));
        }
        if (imap_index_rec_decode(&k, &v, &recs[n_recs]) < 0) {
            log_warn("imap: index %s: bad record, dropped", ix->path);
            continue;
        }
        n_recs++;
    }
    mdb_cursor_close(cur);

    for (size_t i = 0; i < n_recs; i++) {
        struct imap_rec *r = &recs[i];
        struct scan_entry *e = scan_find(&s, r->base);

        if (r->uid > max_uid)
            max_uid = r->uid;
        if (e == NULL) {
            missing = xreallocarray(missing, n_missing + 1, sizeof(*missing));
            missing[n_missing++] = r;
            continue;
        }
        e->matched = true;
        if (!e->in_new && !e->has_info)
            add_info(dir, e);
        if (adopt(r, e, meta)) {
            if (imap_index_rec_put(ix, txn, r) < 0)
                goto index_error;
            *changed = true;
        }
    }
    if (n_missing > 0) {
        /* Renamed while we read?  A second look before expunging. */
        rc = scan_read(&again, dir, false, err, errlen);
        if (rc != IMAP_STORE_OK)
            goto out;
        for (size_t i = 0; i < n_missing; i++) {
            struct imap_rec *r = missing[i];
            struct scan_entry *e = scan_find(&again, r->base);

            if (e != NULL) {
                if (adopt(r, e, meta) && imap_index_rec_put(ix, txn, r) < 0)
                    goto index_error;
                *changed = true;
                continue;
            }
            if (imap_index_rec_del(ix, txn, r) < 0)
                goto index_error;
            *changed = true;
        }
        meta->highestmodseq++; /* expunges are changes too */
    }

    /* Files without a record: new mail, UIDs in delivery order. */
    for (size_t i = 0; i < s.n; i++) {
        struct scan_entry *e = &s.v[i];
        struct stat sb;
        char *path;

        if (e->matched)
            continue;
        path = e->in_new ? xasprintf("%s/new/%s", dir, e->base)
                         : e->has_info
                               ? xasprintf("%s/cur/%s:2,%s", dir, e->base,
                                           e->info)
                               : xasprintf("%s/cur/%s", dir, e->base);
        if (stat(path, &sb) < 0) {
            free(path);
            continue; /* gone again already */
        }
        free(path);
        e->mtime = sb.st_mtime;
        if (!e->in_new && !e->has_info)
            add_info(dir, e);
        fresh = xreallocarray(fresh, n_fresh + 1, sizeof(*fresh));
        fresh[n_fresh++] = e;
    }
    if (meta->uidnext <= max_uid) {
        log_warn("imap: index %s: UIDNEXT %u not above UID %u, repaired",
                 ix->path, meta->uidnext, max_uid);
        meta->uidnext = max_uid + 1;
        *changed = true;
    }
    if (n_fresh > 0)
        qsort(fresh, n_fresh, sizeof(*fresh), cmp_new);
    for (size_t i = 0; i < n_fresh; i++) {
        struct scan_entry *e = fresh[i];
        struct imap_rec r;
        struct buf extra = BUF_INIT;

        if (meta->uidnext == UINT32_MAX) {
            snprintf(err, errlen, "%s: UIDs exhausted", dir);
            rc = IMAP_STORE_LIMIT;
            goto out;
        }
        memset(&r, 0, sizeof(r));
        r.uid = meta->uidnext++;
        r.modseq = ++meta->highestmodseq;
        r.internaldate = e->mtime;
        r.flags = imap_maildir_info_flags(e->info, &extra);
        r.in_new = e->in_new;
        r.base = e->base;
        r.info = extra.data ? extra.data : "";
        if (imap_index_rec_put(ix, txn, &r) < 0) {
            buf_free(&extra);
            goto index_error;
        }
        buf_free(&extra);
        *changed = true;
    }
    rc = IMAP_STORE_OK;
    goto out;

index_error:
    snprintf(err, errlen, "index %s: write: %s", ix->path,
             mdb_strerror(ix->last_rc));
    rc = IMAP_STORE_ERR;
out:
    for (size_t i = 0; i < n_recs; i++)
        imap_rec_free(&recs[i]);
    free(recs);
    free(missing);
    free(fresh);
    scan_free(&s);
    scan_free(&again);
    (void)st;
    return rc;
}
