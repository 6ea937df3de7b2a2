/*
 * imap_store_impl - what imap_store.c (folders), imap_index.c (LMDB),
 * imap_maildir.c (scanning the files) and imap_mailbox.c (session
 * views) share.  Not for use outside imap_store*, imap_index*,
 * imap_maildir*, imap_mailbox*.
 */
#ifndef IMAPD_IMAP_STORE_IMPL_H
#define IMAPD_IMAP_STORE_IMPL_H

#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "imapd/imap_store.h"
#include "util/buf.h"

#define IMAP_INDEX_FILE "posthorn-index.lmdb"
#define IMAP_INDEX_VERSION 1
#define IMAP_UIDVALIDITY_FILE "posthorn-uidvalidity"
#define IMAP_SUBSCRIPTIONS_FILE "subscriptions"
#define IMAP_MAILDIRFOLDER_FILE "maildirfolder"
/* Files one Maildir may hold before a scan gives up (LIMIT). */
#define IMAP_MAILDIR_FILES_MAX 2000000
/* Bytes of a Maildir file name we accept (longer: ignored). */
#define IMAP_MAILDIR_NAME_MAX 255

struct imap_store {
    char *root;
    char *host; /* for new Maildir names, already made safe */
    unsigned long counter;
};

/* ---- imap_index.c: one LMDB environment per mailbox directory ---- */

struct imap_index {
    MDB_env *env;
    MDB_dbi meta, uids, names, cache;
    dev_t dev;
    ino_t ino;
    char *path;   /* the .lmdb file */
    int refs;     /* sessions of this process using it */
    time_t unused_since; /* refs == 0: kept open for the next login */
    struct timespec kept_ctime; /* the file when it was let go: */
    off_t kept_size;            /* changed since, it is opened anew */
    int last_rc;  /* of the last write (MDB_MAP_FULL: grow, retry) */
    struct imap_index *next;
};

/*
 * Index record of one message (value in the uids DB, key = uid).
 * base[] holds the Maildir base name, NUL, then the info part after
 * ":2," as last seen ("FRS" plus letters other tools keep there), NUL.
 */
struct imap_index_rec {
    uint64_t modseq;
    int64_t internaldate;
    uint64_t keywords;
    uint8_t flags;  /* IMAP_FLAGS_STORED as the file name says */
    uint8_t in_new; /* the file is in new/, not cur/ */
    uint16_t base_len;
    uint32_t pad;
};

/* The message's record in memory. */
struct imap_rec {
    uint32_t uid;
    uint64_t modseq;
    int64_t internaldate;
    uint64_t keywords;
    unsigned flags;
    bool in_new;
    char *base;
    char *info; /* after ":2," without the system flag letters */
};

/* Mailbox-wide values (meta DB). */
struct imap_index_meta {
    uint32_t uidvalidity, uidnext, recent_uid;
    uint64_t highestmodseq;
    char *keywords[IMAP_KEYWORDS_MAX];
    size_t n_keywords;
};

/*
 * Open (or share) the index of the mailbox directory dir; a missing or
 * unreadable index is created anew (uidvalidity from the store).
 * Returns NULL on error.
 */
struct imap_index *imap_index_open(struct imap_store *st, const char *dir,
                                   char *err, size_t errlen);
/*
 * Done with ix.  keep = true leaves the environment open for a while
 * when nobody else uses it (imap_store_expire), so the next session of
 * the same mailbox does not map and read the file again; false closes
 * it now (a hibernating view gives its memory back).
 */
void imap_index_release(struct imap_index *ix, bool keep);
/* Has the index file been replaced or removed since it was opened? */
bool imap_index_stale(const struct imap_index *ix);

/* Transactions, map size growth and MDB_MAP_RESIZED handled inside. */
int imap_index_begin(struct imap_index *ix, bool write, MDB_txn **txn,
                     char *err, size_t errlen);
/* Commit: 0 or -1 (txn freed either way). */
int imap_index_commit(struct imap_index *ix, MDB_txn *txn, char *err,
                      size_t errlen);
/*
 * After a failed write transaction (aborted): was the map full?  Then it
 * has been grown and the caller redoes the transaction.
 */
bool imap_index_retry(struct imap_index *ix);

int imap_index_meta_get(struct imap_index *ix, MDB_txn *txn,
                        struct imap_index_meta *m);
int imap_index_meta_put(struct imap_index *ix, MDB_txn *txn,
                        const struct imap_index_meta *m);
void imap_index_meta_free(struct imap_index_meta *m);
/*
 * The mtimes of new/ and cur/ (in that order) that the index last fully
 * reflected: a writable view whose scan found the directories unchanged
 * since records them, so later views of any process skip the scan while
 * both still match.  get: 0, or -1 when none are recorded.
 */
int imap_index_dirtimes_get(struct imap_index *ix, MDB_txn *txn,
                            struct timespec t[2]);
int imap_index_dirtimes_put(struct imap_index *ix, MDB_txn *txn,
                            const struct timespec t[2]);

/* 0 found, 1 not found, -1 error. */
int imap_index_rec_get(struct imap_index *ix, MDB_txn *txn, uint32_t uid,
                       struct imap_rec *r);
int imap_index_rec_put(struct imap_index *ix, MDB_txn *txn,
                       const struct imap_rec *r);
int imap_index_rec_del(struct imap_index *ix, MDB_txn *txn,
                       const struct imap_rec *r);
/* uid of a base name: 0 found, 1 not found, -1 error. */
int imap_index_name_get(struct imap_index *ix, MDB_txn *txn, const char *base,
                        uint32_t *uid);
void imap_rec_free(struct imap_rec *r);
/* Decode the uids DB value (from a cursor). */
int imap_index_rec_decode(const MDB_val *key, const MDB_val *val,
                          struct imap_rec *r);

/*
 * Cached RFC822.SIZE, ENVELOPE, BODY, BODYSTRUCTURE and the header
 * fields SEARCH looks at most (imap_mime_search_cache; empty in records
 * written before it was kept).
 */
struct imap_cache {
    uint64_t size;
    struct buf envelope, body, bodystructure, search;
};
/* Parts of a cache record a caller wants copied out (size always is). */
#define IMAP_CACHE_ENVELOPE 0x01
#define IMAP_CACHE_BODY 0x02
#define IMAP_CACHE_BODYSTRUCTURE 0x04
#define IMAP_CACHE_SEARCH 0x08
/* 0 found (the parts in want appended to c), 1 not cached, -1 error. */
int imap_index_cache_get(struct imap_index *ix, MDB_txn *txn, uint32_t uid,
                         unsigned want, struct imap_cache *c);
int imap_index_cache_put(struct imap_index *ix, MDB_txn *txn, uint32_t uid,
                         const struct imap_cache *c);

/* Next UIDVALIDITY of this user (ROOT/posthorn-uidvalidity). */
uint32_t imap_store_next_uidvalidity(struct imap_store *st);

/* ---- imap_maildir.c: file names and scans ---- */

/* Flags from the info after ":2," ; other letters go to extra. */
unsigned imap_maildir_info_flags(const char *info, struct buf *extra);
/* "base:2,<letters>" with flags + extra letters in ASCII order. */
void imap_maildir_name(struct buf *out, const char *base, unsigned flags,
                       const char *extra);
/* Path of a record's file under dir. */
void imap_maildir_path(struct buf *out, const char *dir,
                       const struct imap_rec *r);

/*
 * Make the index agree with the files of the Maildir dir, inside the
 * write transaction txn (meta is read and written back by the caller):
 * move new/ to cur/ (move_new), adopt renames, drop records of files
 * that are gone, give new files UIDs.  *changed says whether anything
 * changed in the index.
 */
int imap_maildir_scan(struct imap_store *st, struct imap_index *ix,
                      MDB_txn *txn, const char *dir, bool move_new,
                      struct imap_index_meta *meta, bool *changed, char *err,
                      size_t errlen);
/* Wake IDLE watchers of dir for an index-only change (touch cur/). */
void imap_maildir_touch(const char *dir);

/* ---- imap_store.c ---- */

/* Directory of mailbox name (NULL: invalid name). Caller frees. */
char *imap_store_mailbox_dir(struct imap_store *st, const char *name);
/* Does the mailbox exist (a Maildir with cur/)? */
bool imap_store_mailbox_exists(struct imap_store *st, const char *name);
/* A new unique Maildir base name (no info, with ,S=size). */
void imap_store_unique_name(struct imap_store *st, struct buf *out,
                            long long size);

#endif
