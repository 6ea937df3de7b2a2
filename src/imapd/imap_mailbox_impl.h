/*
 * imap_mailbox_impl - the session view struct shared by imap_mailbox.c
 * (open, sync), imap_mailbox_msg.c (message data, STORE, EXPUNGE) and
 * imap_store_append.c (APPEND, COPY, MOVE).  Not for use elsewhere.
 */
#ifndef IMAPD_IMAP_MAILBOX_IMPL_H
#define IMAPD_IMAP_MAILBOX_IMPL_H

#include <stdbool.h>
#include <sys/stat.h>
#include <time.h>

#include "imapd/imap_store.h"
#include "imapd/imap_store_impl.h"

struct imap_mailbox {
    struct imap_store *st;
    struct imap_index *ix; /* NULL while hibernating */
    dev_t ix_dev;          /* the index file ix had open, to notice */
    ino_t ix_ino;          /* a replacement while hibernating */
    char *name, *dir;
    char *watch[2]; /* new/, cur/ */
    bool readonly;
    dev_t dir_dev;
    ino_t dir_ino;
    struct imap_msg *msgs; /* ascending uid */
    size_t n;
    uint32_t uidvalidity, uidnext;
    uint64_t highestmodseq;
    char *keywords[IMAP_KEYWORDS_MAX];
    size_t n_keywords;
    struct timespec new_mtime, cur_mtime;
    bool mtimes_valid;
    /* Cache entries computed but not written yet (one write transaction
     * per batch, not per message: each commit is an fsync). */
    struct imap_cache_pending *pending;
    size_t n_pending;
};

struct imap_cache_pending {
    uint32_t uid;
    struct imap_cache c;
};

/* Cache entries a command computes are written in batches of this many. */
#define IMAP_CACHE_BATCH 256

/* Write the pending cache entries (best effort: a lost one is computed
 * again).  Called when a batch is full, at sync, close and hibernate. */
void imap_mailbox_cache_flush(struct imap_mailbox *mb);

bool imap_keyword_valid(const char *kw);
int imap_meta_keyword(const struct imap_index_meta *m, const char *kw);
void imap_mailbox_take_keywords(struct imap_mailbox *mb,
                                const struct imap_index_meta *m, bool *changed);
/*
 * Reopen the index of a hibernating view (no-op when open): every
 * function that reads or writes mb->ix calls this first.  GONE when the
 * mailbox or its index file was removed or replaced meanwhile.
 */
int imap_mailbox_wake(struct imap_mailbox *mb, char *err, size_t errlen);
/* Scan the Maildir into the index now (a file was not where expected). */
int imap_mailbox_rescan(struct imap_mailbox *mb, char *err, size_t errlen);

#endif
