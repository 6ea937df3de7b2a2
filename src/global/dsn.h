/*
 * dsn - delivery status notifications (RFC 3464): the message qmgr sends
 * back to a sender when recipients failed, were delayed or (with
 * NOTIFY=SUCCESS) were delivered, and the copy for the postmaster when a
 * notification cannot be returned.  Postfix's layout and wording:
 *
 *   From: MAILER-DAEMON@$myhostname (Mail Delivery System)
 *   Subject: Undelivered Mail Returned to Sender
 *   Content-Type: multipart/report; report-type=delivery-status
 *     1. text/plain           "This is the mail system at host ..." and
 *                             one "<rcpt>: reason" paragraph per recipient
 *     2. message/delivery-status  Reporting-MTA, Arrival-Date, then per
 *                             recipient Final-Recipient, Original-Recipient,
 *                             Action, Status, Remote-MTA, Diagnostic-Code
 *     3. message/rfc822       the original message, or text/rfc822-headers
 *                             with its header block only
 *
 * Pure formatting: no I/O and no configuration; everything comes in the
 * report structure.  Addresses, reasons and the original message come
 * from the network: control characters never reach a header or a report
 * line (they become spaces or '?'), non-ASCII text only where the report
 * is marked smtputf8 (then with RFC 6533's message/global-* types), and
 * long lines are folded, so a remote reply cannot forge report fields.
 * Lines end in "\n", as everything in the queue does.
 */
#ifndef GLOBAL_DSN_H
#define GLOBAL_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "util/buf.h"

enum dsn_kind {
    DSN_FAILURE,    /* recipients failed or expired: Action: failed */
    DSN_DELAY,      /* delay_warning_time passed: Action: delayed */
    DSN_SUCCESS,    /* NOTIFY=SUCCESS: Action: delivered or relayed */
    DSN_POSTMASTER, /* undeliverable null-sender mail: postmaster's copy */
};

struct dsn_rcpt {
    const char *addr;   /* final recipient, internal form */
    const char *orig;   /* before alias expansion; NULL/"" = addr */
    const char *orcpt;  /* ORCPT "type;address" (decoded) or NULL/"" */
    const char *action; /* failed, delayed, delivered, relayed */
    const char *status; /* "5.1.1" */
    const char *reason; /* the text logged as status=... (reason) */
};

struct dsn_report {
    enum dsn_kind kind;
    const char *myhostname;
    const char *queue_id;   /* of the message reported on */
    const char *sender;     /* its envelope sender ("" = <>) */
    const char *to;         /* the notification's recipient (To:) */
    const char *envid;      /* ENVID or NULL/"" */
    const char *message_id; /* of the notification, without <> */
    time_t arrival;
    time_t now;
    long long warn_after; /* DSN_DELAY: delay_warning_time (seconds) */
    time_t retry_until;   /* DSN_DELAY: arrival + lifetime (0 = unknown) */
    bool headers_only;    /* attach text/rfc822-headers */
    bool smtputf8;        /* addresses may be UTF-8 (RFC 6533 types) */
    const struct dsn_rcpt *rcpts;
    size_t nrcpt;
};

/* Longest line in the notification (RFC 5322 allows 998). */
#define DSN_LINE_MAX 78

/*
 * The whole notification message into out (appended).  orig[0..len) is
 * the original message content, or its header block when headers_only;
 * len 0 leaves the third part out.
 */
void dsn_format(struct buf *out, const struct dsn_report *r, const char *orig,
                size_t len);

/* Postfix's mail_date(): "Mon,  1 Jan 2024 12:00:00 +0000 (UTC)". */
void dsn_format_date(struct buf *out, time_t t);

/*
 * A reason the smtp agent reports for a server reply, "host H[ip] said:
 * TEXT (in reply to X command)", split into the server's name ("H") and
 * TEXT; false (nothing appended) for any other reason.
 */
bool dsn_remote_reply(const char *reason, struct buf *mta, struct buf *text);

/*
 * Whether a recipient's NOTIFY value (RFC 3461, as stored in the queue
 * file; "" = not given) asks for this kind of notification.  Not given
 * means FAILURE,DELAY, as in Postfix.
 */
bool dsn_notify_wants(const char *notify, enum dsn_kind kind);

/*
 * Length of the header block at the start of a message, including the
 * empty line that ends it (all of data when there is none).
 */
size_t dsn_header_length(const char *data, size_t len);

/* Whether data has a byte >= 0x80. */
bool dsn_has_8bit(const char *data, size_t len);

#endif
