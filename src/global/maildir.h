/*
 * maildir - write one message into a Maildir the way qmail defined it and
 * mutt, Dovecot and backup tools expect it:
 *
 *   DIR/tmp/<sec>.P<pid>Q<count>.<host>       written and fsynced here,
 *   DIR/new/<sec>.V<dev>I<ino>M<usec>.<host>,S=<size>,W=<vsize>
 *                                             then hard-linked here (or into
 *                                             cur/ with an info suffix such
 *                                             as ":2,S"), the tmp name
 *                                             unlinked and new/ fsynced.
 *
 * dev and ino are those of the file itself (lowercase hex), so the final
 * name is unique on the host; ",S=<size>" is Dovecot's size hint (the
 * exact byte count of the file) and ",W=<vsize>" Dovecot's "virtual size":
 * the size with every line ending in CRLF, as POP3 and IMAP count it
 * (pop3d lists messages without reading them).  <host> is the host name with "/" and ":"
 * written as "\057" and "\072" as the Maildir convention asks.
 *
 * A message is delivered when maildir_writer_commit() returns 0: the data
 * and the directory entry are on stable storage.  Every failure returns -1
 * with errno kept from the failing call (so callers can tell "disk full"
 * from "permission denied") and a text in err naming the operation and the
 * path; the tmp file is removed.  Nothing here changes privileges: the
 * caller runs as the mailbox owner.
 */
#ifndef GLOBAL_MAILDIR_H
#define GLOBAL_MAILDIR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "util/buf.h"

#define MAILDIR_TMP "tmp"
#define MAILDIR_NEW "new"
#define MAILDIR_CUR "cur"

/* Append host with '/' -> "\057" and ':' -> "\072" (Maildir rule). */
void maildir_host_name(struct buf *out, const char *host);
/* Append "<sec>.P<pid>Q<count>.<host>" (host already made safe). */
void maildir_tmp_name(struct buf *out, long long sec, long pid,
                      unsigned long count, const char *host);
/*
 * Append "<sec>.V<dev>I<ino>M<usec>.<host>,S=<size>,W=<vsize>" (hex dev
 * and ino); without ",W=" when vsize < 0.
 */
void maildir_unique_name(struct buf *out, long long sec, unsigned long long dev,
                         unsigned long long ino, long usec, const char *host,
                         long long size, long long vsize);
/*
 * The CRLF size of content with size bytes: each LF not preceded by CR
 * adds one byte, a last line without LF adds two (the CRLF a reader
 * appends).  crlf_extra is that count for the LFs, last the final byte
 * (-1 for none).
 */
long long maildir_vsize(long long size, long long crlf_extra, int last);

/*
 * Create dir (and missing parents) plus tmp/, new/ and cur/, mode 0700.
 * Existing directories are fine.  Returns 0 or -1 (errno, err set).
 */
int maildir_create(const char *dir, char *err, size_t errlen);

struct maildir_writer;

/*
 * Open a new file in dir/tmp; creates the Maildir first when it does not
 * exist.  NULL on error (errno, err set).
 */
struct maildir_writer *maildir_writer_open(const char *dir, char *err,
                                           size_t errlen);
/* Buffered append.  Returns 0 or -1 (errno set; sticky until commit). */
int maildir_writer_write(struct maildir_writer *w, const void *data,
                         size_t len);
/*
 * Use group commit (util/groupsync.h) instead of fsync of the file and of
 * the target directory, for files on that file system.  NULL: off.
 */
struct groupsync;
void maildir_set_groupsync(struct groupsync *g);

/*
 * Flush, fsync, link into dir/subdir (MAILDIR_NEW or MAILDIR_CUR) under
 * the unique name plus info (NULL or e.g. ":2,S"), unlink the tmp name and
 * fsync the target directory.  The final file name (without directory) is
 * appended to name when it is not NULL.  Frees w in all cases.  Returns 0
 * or -1 (errno, err set; nothing is left behind).
 */
int maildir_writer_commit(struct maildir_writer *w, const char *subdir,
                          const char *info, struct buf *name, char *err,
                          size_t errlen);
/*
 * Several deliveries, one sync: like maildir_writer_commit, except that
 * when the group commit covers the file, the final sync is left to
 * maildir_batch_sync() and the file's path is remembered in batch.
 * Returns 1 (linked, not yet durable), 0 (committed and durable: group
 * commit does not apply) or -1 as maildir_writer_commit.  A delivery
 * that returned 1 counts only once maildir_batch_sync() returned 0.
 */
struct argv;
int maildir_writer_commit_batch(struct maildir_writer *w, const char *subdir,
                                const char *info, struct buf *name,
                                struct argv *batch, char *err, size_t errlen);
/*
 * Make every file of batch durable with one group commit.  On failure
 * the files are removed again (their deliveries did not happen) and -1
 * is returned with err set.  Empties batch either way.
 */
int maildir_batch_sync(struct argv *batch, char *err, size_t errlen);
/*
 * The same without waiting: *ticket is a group-commit ticket for the
 * batch (groupsync_ticket) whose deliveries count once a round has
 * covered it; 0 when the batch was empty or had to be synced here and
 * now, as maildir_batch_sync() does (and with its result).
 */
int maildir_batch_ticket(struct argv *batch, uint64_t *ticket, char *err,
                         size_t errlen);
/* Forget the message: unlink the tmp file, free w.  Keeps errno. */
void maildir_writer_abort(struct maildir_writer *w);

#endif
