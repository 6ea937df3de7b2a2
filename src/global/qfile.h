/*
 * qfile - the queue file: one file per message, named by its queue ID.
 *
 * Layout: a sequence of records, each
 *     type (1 byte)  length (varint: 7 bits per byte, low bits first,
 *                    high bit = more bytes follow, at most 5 bytes)
 *     data (length bytes)
 * in this grammar (anything else is a corrupt file):
 *     'V' "posthorn-queue-1"             version, first record
 *     'T' arrival time, decimal seconds
 *     'S' sender ("" = null sender)
 *     'A' "name=value" attributes*       client_name, client_addr, helo,
 *                                        protocol, envid, ret, smtputf8,
 *                                        body, sasl_username,
 *                                        content_filter (smtpd's FILTER:
 *                                        qmgr sends every recipient to
 *                                        that transport:nexthop) ...
 *     ('R' | 'D')+ recipients            data: addr NUL orig_rcpt NUL
 *                                        notify NUL orcpt (3 NULs exactly);
 *                                        'R' = to do, 'D' = done.  The type
 *                                        byte is flipped R->D in place.
 *     'M' (empty)                        start of content
 *     'B' content chunk*                 at most QFILE_CHUNK_MAX bytes each,
 *                                        lines end in "\n"
 *     'Z' content size, decimal
 *     'E' (empty)                        end; mandatory
 *
 * Writing (cleanup): the caller puts every record from 'V' through 'Z' in
 * grammar order (the writer checks order and bounds and fails the commit
 * otherwise); commit adds 'E'.
 * The file is created in tmp/, written, fsynced, then
 * renamed to incoming/<ID> (no replace) and incoming/ is fsynced.  Only
 * after qfile_writer_commit() returns 0 may anyone acknowledge the
 * message.  The ID is derived from the arrival microseconds and the inode
 * number ([0-9A-F], like Postfix's short IDs), so it is unique among
 * existing queue files.
 *
 * Reading: qfile_read_envelope() parses and validates the whole file
 * structure (skipping content with lseek), so a torn or foreign file is
 * rejected as a whole; such files belong in corrupt/.
 */
#ifndef GLOBAL_QFILE_H
#define GLOBAL_QFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "global/mail_proto.h"
#include "util/argv.h"

#define QFILE_VERSION "posthorn-queue-1"
#define QFILE_CHUNK_MAX (64 * 1024)

/* Reader bounds (data bytes per record); the writer enforces them too. */
#define QFILE_ADDR_MAX 4096     /* S; each field of R/D */
#define QFILE_RCPT_MAX (4 * QFILE_ADDR_MAX + 3)
#define QFILE_ATTR_MAX 8192     /* A */
#define QFILE_NUMBER_MAX 20     /* T, Z: decimal digits */

#define QREC_VERSION 'V'
#define QREC_TIME 'T'
#define QREC_SENDER 'S'
#define QREC_ATTR 'A'
#define QREC_RCPT 'R'
#define QREC_DONE 'D'
#define QREC_MESSAGE 'M'
#define QREC_BODY 'B'
#define QREC_SIZE 'Z'
#define QREC_END 'E'

struct qfile_writer;

/* Create a new file under queue_dir/tmp.  NULL on error (err set). */
struct qfile_writer *qfile_writer_open(const char *queue_dir, char *err,
                                       size_t errlen);
/*
 * The queue ID this message will get (derived at open from the arrival
 * microseconds and the tmp file's inode), so cleanup can put it in the
 * Received: and Message-ID: headers before commit.  Commit keeps it unless
 * incoming/ already holds that name (only possible when queue files were
 * copied in from elsewhere); then commit picks another and fills it in.
 */
const char *qfile_writer_id(const struct qfile_writer *w);
/*
 * Append a record (buffered; write errors surface at commit).  A record
 * the reader would refuse (over its length bound, see QFILE_*_MAX) makes
 * the commit fail rather than produce an unreadable file.
 */
void qfile_put(struct qfile_writer *w, int type, const void *data, size_t len);
void qfile_put_str(struct qfile_writer *w, int type, const char *s);
/* Convenience: 'R' record from its four fields (NULL = ""). */
void qfile_put_rcpt(struct qfile_writer *w, const char *addr,
                    const char *orig, const char *notify, const char *orcpt);
/*
 * Write the 'E' record, fsync, rename into incoming/, fsync incoming/.
 * Fills id.  Frees w in all cases.  Returns 0 or -1 (err set; the tmp file
 * is removed).
 */
int qfile_writer_commit(struct qfile_writer *w, char id[MAIL_QUEUE_ID_MAX],
                        char *err, size_t errlen);
/*
 * The same into another queue: MAIL_QUEUE_INCOMING (what commit does) or
 * MAIL_QUEUE_HOLD (header_checks HOLD: the message waits there, unseen
 * by qmgr, until the administrator releases or deletes it).
 */
int qfile_writer_commit_to(struct qfile_writer *w, const char *queue,
                           char id[MAIL_QUEUE_ID_MAX], char *err,
                           size_t errlen);
/*
 * Use group commit (util/groupsync.h) for commits on that file system
 * instead of fsync of the file and of incoming/.  NULL turns it off.
 */
struct groupsync;
void qfile_set_groupsync(struct groupsync *g);
/* Forget the message: unlink the tmp file, free w. */
void qfile_writer_abort(struct qfile_writer *w);

/*
 * A finished message leaves the queue: queue_dir/queue/id is parked in
 * recycle/ for a later qfile_writer_open, or removed when recycle/ is
 * full.  It is emptied unless size (the message's content size, -1 when
 * unknown) is at most MAIL_QUEUE_RECYCLE_KEEP_MAX.  Either way the name
 * is gone on return 0; -1 with err set when the file could not be
 * removed.
 */
int qfile_retire(const char *queue_dir, const char *queue, const char *id,
                 long long size, char *err, size_t errlen);
/*
 * Mark every file in recycle/ in the shared slot map (mail_proto.h), as
 * qmgr does when it starts: files parked before master restarted.
 */
void qfile_recycle_scan(const char *queue_dir);

struct qfile_rcpt {
    char *addr;
    char *orig;     /* original recipient before alias expansion, or "" */
    char *notify;   /* DSN NOTIFY= value or "" */
    char *orcpt;    /* DSN ORCPT= value or "" */
    off_t offset;   /* offset of the record's type byte */
    bool done;
};

struct qfile_envelope {
    char *sender;
    time_t arrival;
    struct argv attrs;            /* "name=value" */
    struct qfile_rcpt *rcpts;
    size_t nrcpt;
    off_t content_offset;         /* offset of the first 'B' record */
    long long content_size;       /* from the 'Z' record */
};

/*
 * Parse and validate fd from offset 0.  Returns 0, or -1 with err set
 * ("record grammar: ..." for a corrupt file, an errno text otherwise).
 * *corrupt is set true when the failure is a grammar/validation error (the
 * file should go to corrupt/), false for I/O errors.
 */
int qfile_read_envelope(int fd, struct qfile_envelope *env, bool *corrupt,
                        char *err, size_t errlen);
void qfile_envelope_free(struct qfile_envelope *env);
/* Value of attribute `name` or NULL. */
const char *qfile_attr(const struct qfile_envelope *env, const char *name);

/*
 * Feed the content to fn, chunk by chunk, in order.  fn returns 0 to go on,
 * -1 to stop (then this returns -1).  Returns 0 or -1 (err set).
 */
int qfile_read_content(int fd, const struct qfile_envelope *env,
                       int (*fn)(const char *data, size_t len, void *ctx),
                       void *ctx, char *err, size_t errlen);

/*
 * Flip the recipient record at offset from 'R' to 'D' (pwrite).  The byte
 * there must be 'R' or 'D' (already done: no-op), else -1.  No fsync: the
 * caller syncs once per batch (a lost flip means a duplicate delivery,
 * never a lost one).
 */
int qfile_mark_done(int fd, off_t offset, char *err, size_t errlen);

#endif
