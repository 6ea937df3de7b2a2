/*
 * anvil - internal interfaces of the connection and rate counting
 * service (Postfix's anvil).
 *
 *   anvil.c        start-up, the event loop, the periodic tick (expiry,
 *                  statistics, exit checks)
 *   anvil_conn.c   client connections: frames in, answers out, and which
 *                  connections each client holds (dropped when it hangs up)
 *   anvil_table.c  the counters per ident: concurrent connections and the
 *                  connection, message and recipient rates; peak values
 *                  for the statistics lines
 *
 * One long-lived process (an event server), so every smtpd's counts meet
 * in one place without shared files.  The protocol is in
 * global/mail_proto.h; the client in global/anvil_client.h.
 */
#ifndef ANVIL_ANVIL_H
#define ANVIL_ANVIL_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "util/attr.h"
#include "util/buf.h"

struct event_base;

/* Longest ident ("service:address"); printable ASCII, no blanks. */
#define ANVIL_IDENT_MAX 255
/* Largest request frame (sum of values) and buffered input per client. */
#define ANVIL_FRAME_MAX 1024
#define ANVIL_INPUT_MAX (4 * ANVIL_FRAME_MAX)
/* Answers waiting for a client that does not read; reading pauses. */
#define ANVIL_OUTPUT_MAX 16384
/* Most clients at once (each smtpd process holds one connection). */
#define ANVIL_CONN_MAX 2000
/* Distinct idents one client connection may hold connections for. */
#define ANVIL_HOLD_MAX 1000
/* Most idents tracked at once; the longest-idle one makes room. */
#define ANVIL_TABLE_MAX 100000

extern struct event_base *anvil_base;

/* ---- anvil_table.c ---- */

struct anvil_table;

/* The counters of one ident after an event. */
struct anvil_counts {
    int count;     /* concurrent connections */
    int rate;      /* connections in the current time unit */
    int message;   /* MAIL FROM in the current time unit */
    int recipient; /* RCPT TO in the current time unit */
};

/*
 * time_unit: anvil_rate_time_unit in seconds; max: ANVIL_TABLE_MAX
 * (smaller in tests).  Every call takes `now`, a monotonic time in
 * seconds, so the counting rules can be tested without waiting.
 */
struct anvil_table *anvil_table_new(long long time_unit, size_t max);
void anvil_table_free(struct anvil_table *t);

/*
 * Count one event for ident.  Returns 0 with *out set, or -1 when the
 * table is full of idents that hold connections (nothing counted).
 */
int anvil_table_connect(struct anvil_table *t, const char *ident, long long now,
                        struct anvil_counts *out);
int anvil_table_message(struct anvil_table *t, const char *ident, long long now,
                        struct anvil_counts *out);
int anvil_table_recipient(struct anvil_table *t, const char *ident,
                          long long now, struct anvil_counts *out);
/* One connection of ident ended (ignored if it has none). */
void anvil_table_disconnect(struct anvil_table *t, const char *ident,
                            long long now);
/* The counters as they are (all 0 for an unknown ident). */
void anvil_table_lookup(struct anvil_table *t, const char *ident, long long now,
                        struct anvil_counts *out);
/* Forget idents without connections and idle for a whole time unit. */
void anvil_table_expire(struct anvil_table *t, long long now);
size_t anvil_table_size(const struct anvil_table *t);
/* Idents dropped to make room since the last call. */
size_t anvil_table_take_evicted(struct anvil_table *t);

/*
 * Log Postfix's "statistics: max ..." lines for the peaks seen since the
 * last call (only those that are not zero), then start over.
 */
void anvil_table_log_stats(struct anvil_table *t);

/* ---- anvil_conn.c ---- */

void anvil_conn_accept(int fd, struct anvil_table *table);
void anvil_conn_free_all(void);
size_t anvil_conn_count(void);

/*
 * Answer one request frame into reply; `holds` is the connection's
 * record of the connections it holds (see anvil_conn.c).  Exposed for
 * the unit tests.
 */
struct anvil_holds;
struct anvil_holds *anvil_holds_new(void);
/* Release every connection still held (the client hung up). */
void anvil_holds_free(struct anvil_holds *h, struct anvil_table *table,
                      long long now);
void anvil_request(struct anvil_table *table, struct anvil_holds *holds,
                   const struct attr_list *req, long long now,
                   struct buf *reply);

/* Monotonic seconds. */
long long anvil_now(void);

#endif
