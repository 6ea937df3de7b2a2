/*
 * delivery_report - the per-recipient status line every delivery path
 * logs, in Postfix's wording so existing log tools (pflogsumm & co) work:
 *
 *   to=<r>, orig_to=<o>, relay=local, delay=0.12, delays=0.01/0/0/0.11,
 *   dsn=2.0.0, status=sent (delivered to maildir)
 *
 * orig_to is left out when it is empty or equal to to.  delay is the
 * whole time since arrival; delays are a/b/c/d = before the active queue,
 * waiting in the active queue, connection setup, transmission.  Times are
 * printed with two significant digits and at most two decimals ("0",
 * "0.01", "0.5", "1.2", "12", "345"), as Postfix does.  Addresses and the
 * reason are made printable (they come from the network).
 */
#ifndef GLOBAL_DELIVERY_REPORT_H
#define GLOBAL_DELIVERY_REPORT_H

#include "util/buf.h"

struct delivery_report {
    const char *rcpt;
    const char *orig_rcpt; /* NULL or "" = same as rcpt */
    const char *relay;     /* "local", "none", "host[ip]:port" */
    double delay;
    double delays[4];
    const char *dsn;    /* "2.0.0" */
    const char *status; /* sent, deferred, bounced, expired */
    const char *reason; /* text in parentheses */
};

/* Append a delay value in the format above (negative counts as 0). */
void delivery_delay_format(struct buf *out, double seconds);
/* Append the whole status line (without queue ID). */
void delivery_report_format(struct buf *out, const struct delivery_report *r);

#endif
