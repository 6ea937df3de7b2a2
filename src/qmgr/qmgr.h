/*
 * qmgr - internal interfaces of the queue manager.
 *
 *   qmgr.c          the event loop: triggers, timers, inotify, start-up
 *   qmgr_queue.c    the queue directories: scans, recovery, clean-up,
 *                   moving files between queues
 *   qmgr_message.c  one message in the active queue: recipients, outcomes,
 *                   removal or deferral
 *   qmgr_local.c    the local transport: connection pool to private/local,
 *                   batching, concurrency limits, replies
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

#include "global/mail_proto.h"
#include "global/qfile.h"
#include "global/resolve.h"
#include "util/buf.h"

struct event_base;

/* Parameters, read once at start (qmgr restarts on reload). */
struct qmgr_params {
    char *queue_dir;
    long long min_backoff;       /* minimal_backoff_time */
    long long max_backoff;       /* maximal_backoff_time */
    long long max_lifetime;      /* maximal_queue_lifetime */
    long long queue_run_delay;   /* queue_run_delay */
    long long active_limit;      /* qmgr_message_active_limit */
    long long local_total_limit; /* default_destination_concurrency_limit */
    long long local_rcpt_limit;  /* local_destination_concurrency_limit */
    long long virtual_domain_limit; /* virtual_destination_concurrency_limit */
};

extern struct qmgr_params qmgr_params;
extern struct event_base *qmgr_base;
extern struct resolver *qmgr_resolver;

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

/* ---- qmgr_message.c ---- */

enum qmgr_rcpt_state {
    QMGR_RCPT_DONE,     /* done in the file before this pass */
    QMGR_RCPT_QUEUED,   /* waiting for a local delivery slot */
    QMGR_RCPT_BUSY,     /* in a request to local */
    QMGR_RCPT_FINISHED, /* sent or bounced in this pass */
    QMGR_RCPT_DEFERRED, /* temporary failure in this pass */
};

struct qmgr_rcpt {
    struct qfile_rcpt *q; /* into msg->env */
    enum qmgr_rcpt_state state;
    bool virtual_mailbox; /* limited per domain, not per recipient */
    char *reason; /* deferral reason (state DEFERRED) */
};

struct qmgr_message {
    char id[MAIL_QUEUE_ID_MAX];
    int fd; /* active/ID, read-write */
    struct qfile_envelope env;
    struct qmgr_rcpt *rcpts; /* env.nrcpt entries */
    size_t n_open;           /* QUEUED + BUSY */
    size_t n_queued;         /* QUEUED */
    size_t n_left;           /* not done in the file (incl. deferred) */
    size_t n_deferred;
    double t_active;           /* when it entered active/ */
    unsigned lost_connections; /* requests that got no reply */
    bool on_ready_list;
    TAILQ_ENTRY(qmgr_message) ready_link; /* qmgr_local.c */
    TAILQ_ENTRY(qmgr_message) all_link;   /* qmgr_message.c */
};

TAILQ_HEAD(qmgr_message_list, qmgr_message);

/* Messages in the active queue (in memory). */
size_t qmgr_message_count(void);
bool qmgr_message_known(const char *id);
/* Open active/id (already renamed there) and start working on it. */
void qmgr_message_start(const char *id);

/*
 * Record the outcome for recipient i: status 2 (sent), 4 (deferred) or 5
 * (bounced); delays as in delivery_report.h.  May finish (and free) the
 * message when this was its last open recipient.
 */
void qmgr_message_outcome(struct qmgr_message *m, size_t i, int status,
                          const char *dsn, const char *reason,
                          const char *relay, const double delays[4]);
/* Free every message without touching the files (shutdown). */
void qmgr_message_free_all(void);

/* ---- qmgr_local.c ---- */

void qmgr_local_init(void);
/* Queue recipient i of m for the local transport (dispatch follows
 * from the event loop, never from inside this call). */
void qmgr_local_enqueue(struct qmgr_message *m, size_t i);
/* Forget a message that is being freed (must have no BUSY recipients). */
void qmgr_local_forget(struct qmgr_message *m);
void qmgr_local_shutdown(void);

#endif
