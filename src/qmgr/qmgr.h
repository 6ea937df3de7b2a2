/*
 * qmgr - internal interfaces of the queue manager.
 *
 *   qmgr.c            the event loop: triggers, timers, inotify, start-up
 *   qmgr_queue.c      the queue directories: scans, recovery, clean-up,
 *                     moving files between queues, per-site and
 *                     per-message flushes
 *   qmgr_message.c    one message in the active queue: recipients,
 *                     outcomes, removal or deferral
 *   qmgr_route.c      recipient -> transport and next hop (address class,
 *                     relayhost, transport_maps); no I/O but lookups
 *   qmgr_transport.c  the delivery agents: a pool of reused connections
 *                     per master.cf service, per-destination queues,
 *                     concurrency windows, batching, replies
 *   qmgr_feedback.c   pure: the concurrency window arithmetic
 *   qmgr_bounce.c     delivery status notifications: built with
 *                     global/dsn.c, submitted to cleanup
 *
 * qmgr is one long-lived, single-threaded process (maxproc 1).  It is the
 * only process that renames files between queue directories (cleanup
 * only creates them in incoming/).  Nothing it does may lose a message:
 * every error path leaves the file in some queue directory.
 */
#ifndef QMGR_QMGR_H
#define QMGR_QMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>
#include <time.h>

#include <sys/stat.h>

#include "global/config.h"
#include "global/dsn.h"
#include "global/mail_proto.h"
#include "global/qfile.h"
#include "global/resolve.h"
#include "util/buf.h"

struct event_base;

/* Parameters, read once at start (qmgr restarts on reload). */
struct qmgr_params {
    char *queue_dir;
    char *myhostname;
    long long min_backoff;          /* minimal_backoff_time */
    long long max_backoff;          /* maximal_backoff_time */
    long long max_lifetime;         /* maximal_queue_lifetime */
    long long bounce_lifetime;      /* bounce_queue_lifetime */
    long long queue_run_delay;      /* queue_run_delay */
    long long active_limit;         /* qmgr_message_active_limit */
    long long local_rcpt_limit;     /* local_destination_concurrency_limit */
    long long virtual_domain_limit; /* virtual_destination_concurrency_limit */
    long long delay_warning;        /* delay_warning_time, 0 = off */
    long long bounce_size_limit;    /* bounce_size_limit */
    long long sync_delay_ms;        /* queue_delivery_sync_delay */
    char *notice_rcpt;   /* 2bounce_notice_recipient, with a domain */
    char *double_bounce; /* double_bounce_sender, with a domain */
};

extern struct qmgr_params qmgr_params;
extern struct event_base *qmgr_base;
extern struct resolver *qmgr_resolver;
extern struct qmgr_router *qmgr_router;

/* Wall-clock time with sub-second precision. */
double qmgr_now(void);

/* ---- qmgr_queue.c ---- */

/* "queue_dir/queue/id" into path (reset first). */
void qmgr_queue_path(struct buf *path, const char *queue, const char *id);
/* Start-up, before any scan: active/ back to incoming/. */
void qmgr_queue_recover(void);
/* Set up the scan timers (deferred retry, hourly housekeeping). */
void qmgr_queue_init(void);
void qmgr_queue_shutdown(void);
/* Remove stale tmp/ files and defer logs without a queue file. */
void qmgr_queue_housekeeping(void);
/* Take what incoming/ holds while the active queue has room. */
void qmgr_queue_scan_incoming(void);
/* Take the due files of deferred/ (all of them with ignore_time). */
void qmgr_queue_scan_deferred(bool ignore_time);
/* Make every file in deferred/ due now and take them ('F' trigger). */
void qmgr_queue_flush_deferred(void);
/*
 * Make the deferred messages due now that have a recipient still to do
 * whose domain or next hop is `site` ('S' trigger), and take them.
 */
void qmgr_queue_flush_site(const char *site);
/* Schedule one message now, from deferred/ or incoming/ ('Q' trigger). */
void qmgr_queue_flush_message(const char *id);
/* One new file in incoming/ (inotify). */
void qmgr_queue_take_incoming(const char *id);
/* A message became deferred until `when`: make sure we wake up then. */
void qmgr_queue_deferred_at(time_t when);
/* The active queue has room again: refill soon (never re-entrant). */
void qmgr_queue_room(void);
/*
 * Move active/id to deferred/ with retry time `when` (mtime), for a file
 * that could not be read now.  Logs what it does.
 */
void qmgr_queue_retry_later(const char *id, time_t when);
/* Move active/id to corrupt/ and log why. */
void qmgr_queue_corrupt(const char *id, const char *why);
/* rename(2) from queue_dir/from/id to queue_dir/to/id without replacing
 * an existing file.  0 or -1 (errno). */
int qmgr_queue_move(const char *from, const char *to, const char *id);

/* ---- qmgr_route.c ---- */

/* Where one recipient goes. */
struct qmgr_route {
    char *transport; /* master.cf service, or the built-in error/discard */
    char *nexthop;   /* as the agent reads it; error/discard: the text */
    int cls;         /* enum addr_class */
};

#define QMGR_TRANSPORT_ERROR "error"
#define QMGR_TRANSPORT_DISCARD "discard"

struct qmgr_router;

/*
 * Read the routing parameters (local_transport, virtual_transport,
 * relay_transport, default_transport, relayhost, transport_maps,
 * myhostname, recipient_delimiter, double_bounce_sender with myorigin).
 * res is used, not owned.  NULL on error (a table that cannot be opened).
 */
struct qmgr_router *qmgr_router_open(struct config *cfg, struct resolver *res,
                                     char *err, size_t errlen);
void qmgr_router_close(struct qmgr_router *rt);
/*
 * Route an internal-form address.  Returns 0 (out filled; free with
 * qmgr_route_free) or -1 on a lookup error (err set; defer).
 */
int qmgr_route_addr(struct qmgr_router *rt, const char *addr,
                    struct qmgr_route *out, char *err, size_t errlen);
void qmgr_route_free(struct qmgr_route *r);
/* Split "transport:nexthop" (either may be empty) into allocated parts. */
void qmgr_route_split(const char *value, char **transport, char **nexthop);
/*
 * Whether a route or a domain belongs to `site` (the 'S' trigger): the
 * domain, the next hop, or the next hop's host without [] and :port.
 */
bool qmgr_route_site_match(const char *site, const char *domain,
                           const char *nexthop);

/* ---- qmgr_feedback.c ---- */

/*
 * One destination's concurrency window, Postfix's way: start at
 * initial_destination_concurrency, +1 per delivery without site trouble
 * (while the window is in use), -1 per delivery with it (never below 1);
 * each failure adds 1/window to a failed-cohort count that a success
 * clears, and when that count reaches the cohort limit the destination
 * is dead.
 */
struct qmgr_feedback {
    int window;
    int limit;
    int initial;
    int cohort_limit; /* 0 = never dead */
    double fail_cohorts;
};

void qmgr_feedback_init(struct qmgr_feedback *f, int initial, int limit,
                        int cohort_limit);
/* A delivery without site trouble; busy = requests in flight. */
void qmgr_feedback_success(struct qmgr_feedback *f, int busy);
/* A delivery with site trouble.  true when the destination is now dead. */
bool qmgr_feedback_failure(struct qmgr_feedback *f);
/* Back to the start (a dead destination gets another chance). */
void qmgr_feedback_reset(struct qmgr_feedback *f);

/* ---- qmgr_message.c ---- */

enum qmgr_rcpt_state {
    QMGR_RCPT_DONE,     /* done in the file before this pass */
    QMGR_RCPT_QUEUED,   /* waiting for a delivery slot */
    QMGR_RCPT_BUSY,     /* in a request to a delivery agent */
    QMGR_RCPT_FINISHED, /* sent, bounced or expired in this pass */
    QMGR_RCPT_DEFERRED, /* temporary failure in this pass */
};

struct qmgr_lkey;
struct qmgr_rcpt {
    struct qfile_rcpt *q; /* into msg->env */
    struct qmgr_lkey *lkey; /* local-type concurrency key (qmgr_transport.c) */
    enum qmgr_rcpt_state state;
    bool virtual_mailbox; /* limited per domain, not per recipient */
    bool local_agent;     /* delivered by a local-type transport */
    int status;           /* 2, 4 or 5: the outcome in this pass */
    bool expired;         /* a deferral turned final by the lifetime */
    bool notice;          /* failed: waits for its notification before it
                             may be marked done */
    char dsn[16];
    char *reason;
};

struct qmgr_entry;
TAILQ_HEAD(qmgr_entry_list, qmgr_entry);

struct qmgr_message {
    char id[MAIL_QUEUE_ID_MAX];
    int fd; /* active/ID, read-write */
    struct qfile_envelope env;
    struct qmgr_rcpt *rcpts; /* env.nrcpt entries */
    size_t n_open;           /* QUEUED + BUSY */
    size_t n_left;           /* not done in the file (incl. deferred) */
    size_t n_deferred;
    double t_active;                /* when it entered active/ */
    unsigned lost_connections;      /* requests that got no reply */
    bool warned;                    /* a delay notification was sent */
    bool notifying;                 /* notifications are being submitted */
    bool notified;                  /* ... and have all been answered */
    size_t n_notices;               /* notifications in flight */
    struct qmgr_entry_list entries; /* qmgr_transport.c */
    TAILQ_ENTRY(qmgr_message) all_link;
};

/* Messages in the active queue (in memory). */
size_t qmgr_message_count(void);
bool qmgr_message_known(const char *id);
/* Open active/id (already renamed there) and start working on it. */
void qmgr_message_start(const char *id);

/*
 * Record the outcome for recipient i: status 2 (sent), 4 (deferred) or 5
 * (bounced); delays as in delivery_report.h.  logged: the agent already
 * logged this recipient's status line (qmgr logs it only when it turns
 * a deferral into an expiry).  May finish (and free) the message when
 * this was its last open recipient.
 */
void qmgr_message_outcome(struct qmgr_message *m, size_t i, int status,
                          const char *dsn, const char *reason,
                          const char *relay, const double delays[4],
                          bool logged);
/* The delays a/b/c/d of an outcome decided in qmgr right now. */
void qmgr_message_delays(const struct qmgr_message *m, double delays[4]);
/* Notifications of m are all answered (qmgr_bounce.c): finish it. */
void qmgr_message_notified(struct qmgr_message *m);
/* Free every message without touching the files (shutdown). */
void qmgr_message_free_all(void);

/* ---- qmgr_transport.c ---- */

/* Read master.cf (which services exist, their maxproc and program). */
void qmgr_transport_init(struct config *cfg);
/*
 * Queue recipient i of m (state QUEUED) for its route.  Dispatch follows
 * from the event loop; an outcome decided at once (transport or
 * destination known to be down) may be recorded inside this call.
 */
void qmgr_transport_enqueue(struct qmgr_message *m, size_t i,
                            const struct qmgr_route *route);
/* Forget a message that is being freed (must have no BUSY recipients). */
void qmgr_transport_forget(struct qmgr_message *m);
/* Give dead destinations another chance: all, or those of `site`. */
void qmgr_transport_revive(const char *site);
void qmgr_transport_shutdown(void);

/* ---- qmgr_bounce.c ---- */

/*
 * A queue file whose mode has this bit got its delay notification: the
 * mark survives moves between queue directories and restarts, and costs
 * neither a record in the file nor another file.
 */
#define QMGR_MODE_WARNED S_IXUSR

void qmgr_bounce_init(void);
/*
 * After a pass over m: submit the notifications it needs (non-delivery
 * to the sender or to the postmaster, delay warning, success) to
 * cleanup.  Returns false when none is needed; otherwise
 * qmgr_message_notified(m) follows from the event loop once every
 * submission is answered, with failed ones already turned into
 * deferrals.
 */
bool qmgr_bounce_start(struct qmgr_message *m);
/* Forget m's submissions (shutdown). */
void qmgr_bounce_forget(struct qmgr_message *m);
void qmgr_bounce_shutdown(void);

#endif
