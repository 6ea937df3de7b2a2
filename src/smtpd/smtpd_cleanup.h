/*
 * smtpd_cleanup - the smtpd side of the smtpd -> cleanup protocol
 * (global/mail_proto.h): one connection per session, reused for each
 * message while it stays healthy, reopened after any error.
 */
#ifndef SMTPD_CLEANUP_H
#define SMTPD_CLEANUP_H

#include <stddef.h>

#include "global/mail_proto.h"
#include "util/buf.h"

/* cleanup may take this long to commit (fsync) before we give up. */
#define SMTPD_CLEANUP_TIMEOUT_MS (3600 * 1000)
/* Longest cleanup reason text we pass on to the client. */
#define SMTPD_CLEANUP_REASON_MAX 400

struct smtpd_cleanup;

/* The outcome of a message, from cleanup's reply frame. */
struct smtpd_cleanup_result {
    int status; /* 0, 4 or 5 */
    char queue_id[MAIL_QUEUE_ID_MAX + 1];
    char reason[SMTPD_CLEANUP_REASON_MAX + 1]; /* "4.3.0 text" */
};

/*
 * Start a message: connect unless *cp holds a usable connection, and
 * queue the envelope frame (built by the caller with attr_put and
 * attr_end); it is sent with the first content or the end frame.
 * Returns 0, or -1 with err set (connection closed).
 */
int smtpd_cleanup_begin(struct smtpd_cleanup **cp, const char *path,
                        const struct buf *envelope, char *err, size_t errlen);
/* Queue content; full MAIL_PROTO_CHUNK frames are sent as they fill. */
int smtpd_cleanup_write(struct smtpd_cleanup *c, const char *data, size_t len,
                        char *err, size_t errlen);
/*
 * Send the rest and the end frame, wait for the verdict.  extra: more
 * attributes for the end frame (attr_put'ed, no attr_end), or NULL.
 * Returns 0 with res filled (any status), or -1 with err set when the
 * exchange itself failed (I/O error, malformed reply); the connection is
 * then closed.
 */
int smtpd_cleanup_end(struct smtpd_cleanup **cp, const struct buf *extra,
                      struct smtpd_cleanup_result *res, char *err,
                      size_t errlen);
/* Forget the message (abort=1, no reply expected). */
void smtpd_cleanup_abort(struct smtpd_cleanup **cp);
void smtpd_cleanup_close(struct smtpd_cleanup **cp);

/*
 * Validate a reply frame's values (exposed for the unit test).  Returns
 * 0 and fills res, or -1 with err set.
 */
struct attr_list;
int smtpd_cleanup_parse_reply(const struct attr_list *reply,
                              struct smtpd_cleanup_result *res, char *err,
                              size_t errlen);

#endif
