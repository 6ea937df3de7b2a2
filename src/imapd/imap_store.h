/*
 * imap_store - one user's IMAP mail store over Maildir++.
 *
 * Layout (docs/imap.md "Message store"): INBOX is the Maildir root;
 * folder "A.B" is the directory ROOT/.A.B with tmp/ new/ cur/ and an
 * empty "maildirfolder" file; "." is the hierarchy separator; names
 * are kept in modified UTF-7 (RFC 3501 5.1.3) exactly as on the wire,
 * also in directory names (as Dovecot does).  ROOT/subscriptions lists
 * subscribed names one per line (Dovecot's file).
 *
 * Each mailbox directory holds posthorn-index.lmdb (+ -lock), an LMDB
 * index with UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, the keyword names and
 * per message: UID <-> Maildir base name, flags, keywords, MODSEQ,
 * INTERNALDATE, and a cache of RFC822.SIZE, ENVELOPE, BODYSTRUCTURE and
 * the decoded header fields SEARCH uses most.
 * The file names are the truth for messages and system flags
 * (":2,DFRST"); the index is only trusted for what the files cannot
 * say (UIDs, keywords, MODSEQ) and is rebuilt from the files when it is
 * missing or unreadable (with a new UIDVALIDITY).
 *
 * Concurrency: any number of imapd processes, sessions in one process,
 * `local` deliveries and other Maildir tools may work on a mailbox at
 * once.  Index changes happen in LMDB write transactions, which
 * serialise between processes; one LMDB environment per file per
 * process is shared by all sessions of the process (LMDB's rule).
 * Nothing here blocks for long: no transaction is held across calls.
 *
 * Sequence numbers: each open mailbox (struct imap_mailbox) is one
 * session's view.  It changes only in imap_mailbox_sync(),
 * imap_mailbox_expunge() and imap_mailbox_copy(move), which report
 * what the session has to tell the client (EXISTS, EXPUNGE, FETCH
 * FLAGS).  Other calls never renumber.
 *
 * Errors: functions return IMAP_STORE_OK (0) or a negative
 * enum imap_store_status and write a text for the log into err; the
 * status says which IMAP response code fits.  Bad names from clients
 * are IMAP_STORE_BADNAME, never a crash.
 *
 * Changes:
 *   (none yet)
 */
#ifndef IMAPD_IMAP_STORE_H
#define IMAPD_IMAP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/buf.h"

#define IMAP_HIERARCHY_SEP '.'
/* Bytes of a mailbox name (modified UTF-7, as on the wire). */
#define IMAP_MAILBOX_NAME_MAX 400
/* Hierarchy levels of a mailbox name. */
#define IMAP_MAILBOX_LEVELS_MAX 16
/* Folders a user may have (CREATE beyond: IMAP_STORE_LIMIT). */
#define IMAP_FOLDERS_MAX 2000
/* Distinct keywords per mailbox (bit i of imap_msg.keywords). */
#define IMAP_KEYWORDS_MAX 64
/* Bytes of one keyword (an IMAP atom). */
#define IMAP_KEYWORD_LEN_MAX 128
/* Bytes of a message read into memory for FETCH/SEARCH/APPEND. */
#define IMAP_MESSAGE_MAX (256u * 1024 * 1024)

/* System flags; IMAP_FLAG_RECENT is per session and never stored. */
#define IMAP_FLAG_SEEN 0x01     /* S */
#define IMAP_FLAG_ANSWERED 0x02 /* R */
#define IMAP_FLAG_FLAGGED 0x04  /* F */
#define IMAP_FLAG_DELETED 0x08  /* T */
#define IMAP_FLAG_DRAFT 0x10    /* D */
#define IMAP_FLAG_RECENT 0x20
#define IMAP_FLAGS_STORED 0x1f

enum imap_store_status {
    IMAP_STORE_OK = 0,
    IMAP_STORE_ERR = -1,         /* I/O or index trouble: NO [SERVERBUG] */
    IMAP_STORE_NONEXISTENT = -2, /* no such mailbox: NO [NONEXISTENT] */
    IMAP_STORE_EXISTS = -3,      /* CREATE/RENAME target: [ALREADYEXISTS] */
    IMAP_STORE_BADNAME = -4,     /* invalid name: NO [CANNOT] */
    IMAP_STORE_LIMIT = -5,       /* a bound above was hit: NO [LIMIT] */
    IMAP_STORE_GONE = -6,        /* selected mailbox deleted/renamed: BYE */
    IMAP_STORE_EXPUNGED = -7,    /* message gone: NO [EXPUNGEISSUED] */
    IMAP_STORE_CANNOT = -8,      /* not allowed (delete INBOX, folder
                                    with children...): NO [CANNOT] */
    IMAP_STORE_TOOBIG = -9,      /* message larger than IMAP_MESSAGE_MAX
                                    or the caller's limit: NO [TOOBIG] */
};

/* ---- the store (one per logged-in user) ---- */

struct imap_store;

/*
 * Open the Maildir++ store at root (created when missing, mode 0700).
 * The process must already run as the mailbox owner.  NULL on error.
 */
struct imap_store *imap_store_open(const char *root, char *err, size_t errlen);
void imap_store_close(struct imap_store *st);
const char *imap_store_root(const struct imap_store *st);
/*
 * Create the SPECIAL-USE folders Drafts, Sent, Trash, Junk, Archive that
 * do not exist yet, and subscribe them (call at login; like Dovecot's
 * "auto = subscribe": a deleted one comes back at the next login).
 */
int imap_store_ensure_special(struct imap_store *st, char *err, size_t errlen);

/*
 * Close the mailbox indexes no session has used for IMAP_INDEX_KEEP_SECS
 * (imapd's tick).  Released indexes stay open that long, at most
 * IMAP_INDEX_KEEP_MAX of them, so a client that logs in, reads and logs
 * out over and over does not reopen its index each time.  now = 0
 * closes all of them (shutdown).
 */
void imap_store_expire(time_t now);
#define IMAP_INDEX_KEEP_SECS 10
#define IMAP_INDEX_KEEP_MAX 64

/* ---- names ---- */

/* "INBOX" in any letter case. */
bool imap_mailbox_is_inbox(const char *name);
/*
 * A name this store accepts for CREATE/RENAME: valid modified UTF-7,
 * printable, no empty level ("a..b", leading or trailing "."), no "/"
 * or "~" at the start, within IMAP_MAILBOX_NAME_MAX/LEVELS_MAX.
 */
bool imap_mailbox_name_valid(const char *name);
/* Modified UTF-7 <-> UTF-8.  Return 0, or -1 for invalid input. */
int imap_mutf7_to_utf8(const char *in, struct buf *out);
int imap_utf8_to_mutf7(const char *in, struct buf *out);

/* ---- folders ---- */

/* CREATE (missing parents are created too).  "INBOX": EXISTS. */
int imap_store_create(struct imap_store *st, const char *name, char *err,
                      size_t errlen);
/* DELETE: CANNOT for INBOX and for a folder with children. */
int imap_store_delete(struct imap_store *st, const char *name, char *err,
                      size_t errlen);
/*
 * RENAME, children included ("A.B" follows "A"); subscriptions follow.
 * Renaming INBOX moves its messages into the new folder (RFC 3501) and
 * leaves INBOX empty.
 */
int imap_store_rename(struct imap_store *st, const char *from, const char *to,
                      char *err, size_t errlen);
/* SUBSCRIBE (on) / UNSUBSCRIBE: the subscriptions file. */
int imap_store_subscribe(struct imap_store *st, const char *name, bool on,
                         char *err, size_t errlen);

/* LIST attributes. */
#define IMAP_LIST_NOSELECT 0x001      /* parent level without a folder */
#define IMAP_LIST_HASCHILDREN 0x002
#define IMAP_LIST_HASNOCHILDREN 0x004
#define IMAP_LIST_SUBSCRIBED 0x008    /* LIST-EXTENDED; for LSUB data */
#define IMAP_LIST_NONEXISTENT 0x010   /* subscribed but not there */
#define IMAP_LIST_DRAFTS 0x100
#define IMAP_LIST_SENT 0x200
#define IMAP_LIST_TRASH 0x400
#define IMAP_LIST_JUNK 0x800
#define IMAP_LIST_ARCHIVE 0x1000
#define IMAP_LIST_SPECIAL_USE 0x1f00

struct imap_list_entry {
    char *name; /* modified UTF-7; "INBOX" for the inbox */
    unsigned attrs;
};

struct imap_list {
    struct imap_list_entry *v; /* sorted by name, INBOX first */
    size_t n;
};

/*
 * Every mailbox: INBOX, each folder, and each missing parent level of a
 * folder (NOSELECT).  HAS[NO]CHILDREN, SUBSCRIBED and special-use
 * attributes are set.  subscribed = true lists the subscriptions
 * instead (for LSUB/LIST (SUBSCRIBED)): subscribed names, with
 * NONEXISTENT (and NOSELECT) for those that are not there.
 */
int imap_store_list(struct imap_store *st, bool subscribed,
                    struct imap_list *out, char *err, size_t errlen);
void imap_list_free(struct imap_list *l);
/*
 * LIST pattern match (RFC 3501 6.3.8): "*" matches anything, "%" anything
 * but the separator; "INBOX" matches case-insensitively.  The caller
 * joins reference and pattern first.
 */
bool imap_list_match(const char *pattern, const char *name);
/* Append "\HasNoChildren \Sent" etc. (space separated). */
void imap_list_attrs_format(unsigned attrs, struct buf *out);

/* ---- STATUS (without opening a session view) ---- */

struct imap_status {
    uint32_t messages;
    uint32_t recent; /* messages nobody has claimed as \Recent yet */
    uint32_t uidnext;
    uint32_t uidvalidity;
    uint32_t unseen;
    uint64_t highestmodseq;
};

/* Brings the index up to date with the files (new mail gets UIDs). */
int imap_store_status(struct imap_store *st, const char *name,
                      struct imap_status *out, char *err, size_t errlen);

/* ---- APPEND ---- */

struct imap_append {
    const char *data; /* the message as the client sent it (CRLF) */
    size_t len;
    unsigned flags;   /* IMAP_FLAG_* (RECENT ignored) */
    const char *const *keywords;
    size_t n_keywords;
    time_t internaldate; /* 0: now */
};

/*
 * Write the message (tmp/, fsync, link into cur/ with its flags, mtime =
 * internaldate) and index it.  uidvalidity/uid get APPENDUID data.
 * A session that has the mailbox selected sees it at its next sync.
 * Messages are stored with LF line ends when that round-trips exactly
 * (the message had only CRLF line ends), else as sent.
 */
int imap_store_append(struct imap_store *st, const char *name,
                      const struct imap_append *msg, uint32_t *uidvalidity,
                      uint32_t *uid, char *err, size_t errlen);

/* ---- an open mailbox: one session's view ---- */

struct imap_mailbox;

/*
 * One message of the view; valid until the next view-changing call.
 * Ordered to fill 32 bytes: an idle session keeps one per message.
 */
struct imap_msg {
    uint64_t keywords;     /* bit i: imap_mailbox_keyword(mb, i) */
    uint64_t modseq;
    time_t internaldate;
    uint32_t uid;
    uint16_t flags;        /* IMAP_FLAG_*, RECENT for this session */
    bool expunged;         /* gone from the store, still numbered here
                              (sync without IMAP_SYNC_EXPUNGE) */
};

#define IMAP_OPEN_READONLY 0x01 /* EXAMINE: no \Recent claimed, no writes
                                   of flags/expunge through this view */

/*
 * SELECT/EXAMINE.  Syncs once; a writable open claims \Recent for the
 * messages nobody has seen yet and moves new/ files to cur/.
 */
struct imap_mailbox *imap_mailbox_open(struct imap_store *st, const char *name,
                                       unsigned flags, int *status, char *err,
                                       size_t errlen);
void imap_mailbox_close(struct imap_mailbox *mb);
/*
 * Hibernate: let go of the mailbox's LMDB index (the environment is
 * closed, its maps and buffers freed, when no other view of this
 * process uses it).  The view (UIDs, flags, MODSEQs, keywords) stays,
 * so nothing changes for the caller: the next call that needs the
 * index reopens it and a sync reports what changed meanwhile.
 */
void imap_mailbox_hibernate(struct imap_mailbox *mb);
bool imap_mailbox_hibernating(const struct imap_mailbox *mb);
const char *imap_mailbox_name(const struct imap_mailbox *mb);
bool imap_mailbox_readonly(const struct imap_mailbox *mb);

uint32_t imap_mailbox_count(const struct imap_mailbox *mb);      /* EXISTS */
uint32_t imap_mailbox_recent(const struct imap_mailbox *mb);     /* RECENT */
uint32_t imap_mailbox_uidvalidity(const struct imap_mailbox *mb);
uint32_t imap_mailbox_uidnext(const struct imap_mailbox *mb);
uint64_t imap_mailbox_highestmodseq(const struct imap_mailbox *mb);
/* Sequence number of the first message without \Seen; 0 if none. */
uint32_t imap_mailbox_first_unseen(const struct imap_mailbox *mb);
/* seq 1..count; NULL outside. */
const struct imap_msg *imap_mailbox_msg(const struct imap_mailbox *mb,
                                        uint32_t seq);
/* Sequence number of uid, 0 if not in the view. */
uint32_t imap_mailbox_seq_of_uid(const struct imap_mailbox *mb, uint32_t uid);
/*
 * First and last sequence numbers whose UIDs lie in [lo, hi]; returns
 * false when none does (UID sets with "*": the caller maps "*" to the
 * last UID first).
 */
bool imap_mailbox_uid_range(const struct imap_mailbox *mb, uint32_t lo,
                            uint32_t hi, uint32_t *seq_lo, uint32_t *seq_hi);

/* Keywords known in this mailbox (FLAGS / PERMANENTFLAGS). */
size_t imap_mailbox_keyword_count(const struct imap_mailbox *mb);
const char *imap_mailbox_keyword(const struct imap_mailbox *mb, size_t i);
/*
 * Index of keyword kw (case-insensitive, as IMAP compares flags);
 * create = true adds it to the mailbox's list.  Returns 0 (idx set),
 * IMAP_STORE_NONEXISTENT (not known, create false), IMAP_STORE_LIMIT
 * (IMAP_KEYWORDS_MAX reached), IMAP_STORE_BADNAME (not an atom).
 */
int imap_mailbox_keyword_index(struct imap_mailbox *mb, const char *kw,
                               bool create, unsigned *idx, char *err,
                               size_t errlen);

/* ---- sync: what others changed ---- */

#define IMAP_SYNC_EXPUNGE 0x01 /* may renumber: report and drop expunged
                                  messages (not during FETCH/STORE/SEARCH) */

struct imap_sync {
    uint32_t *expunged_seqs; /* descending: send "* n EXPUNGE" in order */
    uint32_t *expunged_uids; /* same order (VANISHED / logging) */
    size_t n_expunged;
    uint32_t *changed_seqs;  /* flags/keywords changed by others (after
                                the expunges above), ascending */
    size_t n_changed;
    bool exists_changed;     /* send "* n EXISTS" (and RECENT) */
    bool recent_changed;
    bool keywords_changed;   /* send FLAGS / PERMANENTFLAGS again */
    bool gone;               /* mailbox deleted or renamed under us */
};

/*
 * Bring the view up to date with the store: new messages appended (with
 * \Recent for a writable view that claims them), flag changes noticed,
 * expunges reported and removed when IMAP_SYNC_EXPUNGE, else kept with
 * expunged = true.  Cheap when nothing changed (directory mtimes).
 * Returns 0 (out filled; free with imap_sync_free) or an error;
 * IMAP_STORE_GONE when the mailbox no longer exists (out->gone).
 */
int imap_mailbox_sync(struct imap_mailbox *mb, unsigned flags,
                      struct imap_sync *out, char *err, size_t errlen);
void imap_sync_free(struct imap_sync *s);
/*
 * Directories to watch with inotify (IN_CREATE | IN_MOVED_TO |
 * IN_MOVED_FROM | IN_DELETE | IN_ATTRIB) to learn that a sync is due:
 * new/ (deliveries) and cur/ (flag renames, expunges; index-only changes
 * such as keywords also touch cur/'s mtime).  dirs[0], dirs[1] stay
 * valid while mb is open.  Use one inotify fd per process, not per
 * mailbox: fs.inotify.max_user_instances is small.
 */
void imap_mailbox_watch_dirs(const struct imap_mailbox *mb,
                             const char *dirs[2]);

/* ---- message data ---- */

/*
 * Append the whole message of seq in CRLF form (BODY[], the buffer to
 * hand to imap_mime_parse).  IMAP_STORE_EXPUNGED when the file is gone.
 */
int imap_mailbox_msg_read(struct imap_mailbox *mb, uint32_t seq,
                          struct buf *out, char *err, size_t errlen);
/*
 * The same as stored (LF or CRLF line ends): for a caller that converts
 * while it copies anyway (imap_mime_crlf into the output of FETCH).
 */
int imap_mailbox_msg_read_raw(struct imap_mailbox *mb, uint32_t seq,
                              struct buf *out, char *err, size_t errlen);
/* RFC822.SIZE (CRLF size); cached in the index. */
int imap_mailbox_msg_size(struct imap_mailbox *mb, uint32_t seq,
                          uint64_t *size, char *err, size_t errlen);
/*
 * Append ENVELOPE, BODY (extended = false) or BODYSTRUCTURE (true);
 * computed once per message and cached in the index.
 */
int imap_mailbox_msg_envelope(struct imap_mailbox *mb, uint32_t seq,
                              struct buf *out, char *err, size_t errlen);
int imap_mailbox_msg_bodystructure(struct imap_mailbox *mb, uint32_t seq,
                                   bool extended, struct buf *out, char *err,
                                   size_t errlen);
/*
 * Append the SEARCH block of seq (imap_mime_search_cache: the decoded
 * header fields FROM/TO/CC/BCC/SUBJECT search and the Date:), from the
 * same cache, so header searches need not open the message.
 */
int imap_mailbox_msg_search_cache(struct imap_mailbox *mb, uint32_t seq,
                                  struct buf *out, char *err, size_t errlen);

/* ---- changes through this view ---- */

enum imap_flags_mode {
    IMAP_FLAGS_REPLACE, /* FLAGS */
    IMAP_FLAGS_ADD,     /* +FLAGS */
    IMAP_FLAGS_REMOVE,  /* -FLAGS */
};

/*
 * STORE on seqs[0..n): system flags (renames the files) and keywords
 * (index), MODSEQ bumped for every message that changed.  The view is
 * updated; the caller sends FETCH for seqs (unless .SILENT).
 * unchangedsince (CONDSTORE; 0 = none): messages whose MODSEQ is higher
 * are left alone and their seqs appended to *modified (may be NULL
 * when unchangedsince is 0; caller frees).  Expunged messages are
 * skipped (not an error).  READONLY view: IMAP_STORE_CANNOT.
 */
int imap_mailbox_store_flags(struct imap_mailbox *mb, const uint32_t *seqs,
                             size_t n, enum imap_flags_mode mode,
                             unsigned flags, uint64_t keywords,
                             uint64_t unchangedsince, uint32_t **modified,
                             size_t *n_modified, char *err, size_t errlen);

/*
 * EXPUNGE (uids == NULL) or UID EXPUNGE (only those UIDs): unlink the
 * \Deleted messages, drop them from the index, and sync with
 * IMAP_SYNC_EXPUNGE into out (which also carries expunges by others).
 */
int imap_mailbox_expunge(struct imap_mailbox *mb, const uint32_t *uids,
                         size_t n_uids, struct imap_sync *out, char *err,
                         size_t errlen);

struct imap_copy_result {
    uint32_t uidvalidity; /* of the destination */
    uint32_t *src_uids;   /* COPYUID source set, ascending */
    uint32_t *dst_uids;   /* matching destination UIDs */
    size_t n;
};

/*
 * COPY / MOVE seqs[0..n) into mailbox dest (hard links when possible;
 * flags, keywords and INTERNALDATE kept, \Recent in dest).  move = true
 * also removes them here and reports that in expunged (may not be NULL
 * then), like an expunge.  Expunged messages in seqs: IMAP_STORE_EXPUNGED
 * and nothing copied.  Free res with imap_copy_result_free.
 */
int imap_mailbox_copy(struct imap_mailbox *mb, const uint32_t *seqs, size_t n,
                      const char *dest, bool move, struct imap_copy_result *res,
                      struct imap_sync *expunged, char *err, size_t errlen);
void imap_copy_result_free(struct imap_copy_result *r);

#endif
