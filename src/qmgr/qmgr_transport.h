/*
 * qmgr_transport - the structures shared by qmgr_transport.c (transports,
 * destinations, scheduling) and qmgr_conn.c (connections to delivery
 * agents and their protocol).  Nothing else in qmgr looks inside them.
 *
 *   transport     a master.cf service (smtp, relay, lmtp, local ...):
 *                 a pool of connections to private/<name>, its limits
 *   destination   transport + next hop: a concurrency window with
 *                 feedback, the entries waiting for it, dead or alive.
 *                 A local-type transport (program "local") has one
 *                 destination and limits per recipient (user) or per
 *                 virtual domain instead of a window.
 *   entry         the recipients of one message waiting for one
 *                 destination (indices into msg->rcpts, in order)
 *   job           one request in flight: recipients of one message for
 *                 one destination
 *   connection    to one agent process; between requests it stays open.
 *                 For next-hop transports it is "held" by the
 *                 destination of its last request: the agent may keep
 *                 an SMTP session to that destination open
 *                 (smtp_connection_cache_time_limit), so held
 *                 connections count against that destination's window.
 */
#ifndef QMGR_QMGR_TRANSPORT_H
#define QMGR_QMGR_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "qmgr/qmgr.h"
#include "util/attr.h"

struct bufferevent;
struct event;
struct htable;

/* Text bounds of what an agent reports. */
#define QMGR_REASON_MAX 1000
#define QMGR_RELAY_MAX 300

struct qmgr_transport;
struct qmgr_dest;

struct qmgr_entry {
    struct qmgr_message *msg;
    struct qmgr_dest *dest;
    size_t *idx; /* QUEUED recipients, in order */
    size_t n, cap;
    TAILQ_ENTRY(qmgr_entry) dest_link;
    TAILQ_ENTRY(qmgr_entry) msg_link; /* msg->entries */
};

struct qmgr_job {
    struct qmgr_message *msg;
    struct qmgr_dest *dest;
    size_t *idx; /* BUSY recipients, in request order */
    size_t n;
    double t_start; /* batch formed */
    double t_sent;  /* request handed to a connection */
    struct qmgr_job *next; /* the next request in flight on the connection */
};

struct qmgr_conn {
    struct qmgr_transport *tr;
    struct bufferevent *bev;
    struct qmgr_job *job;   /* oldest request in flight; NULL when idle */
    struct qmgr_job *job_tail; /* newest request in flight */
    unsigned njobs;            /* requests in flight (pipelined: local) */
    struct qmgr_dest *held; /* next-hop transports: last destination */
    double created;
    unsigned requests;
    bool idle;
    TAILQ_ENTRY(qmgr_conn) link;
};

TAILQ_HEAD(qmgr_conn_list, qmgr_conn);
TAILQ_HEAD(qmgr_dest_list, qmgr_dest);

struct qmgr_dest {
    struct qmgr_transport *tr;
    char *nexthop;
    struct qmgr_feedback fb;
    int busy;        /* requests in flight */
    int held;        /* connections held by this destination */
    int busy_unheld; /* requests in flight on connections held elsewhere */
    bool dead;
    char *dead_reason;
    struct event *revive_ev;
    struct qmgr_entry_list entries;
    bool on_ready;
    TAILQ_ENTRY(qmgr_dest) ready_link;
};

struct qmgr_transport {
    char *name;
    bool local;           /* the local program: per-recipient limits */
    long long conn_limit; /* connections at once */
    int rcpt_limit;       /* recipients per request */
    size_t nconns;
    struct qmgr_conn_list idle; /* most recently used first */
    struct qmgr_conn_list busy;
    struct htable *dests;        /* next hop -> qmgr_dest */
    struct qmgr_dest_list ready; /* destinations with entries */
    struct htable *inflight;     /* local: user or @domain -> qmgr_lkey */
    size_t open_keys;            /* local: keys with mail that may go */
    struct event *dispatch_ev;
    struct event *retry_ev;
    char socket[512];
};

/* One recipient's result in an agent's reply. */
struct qmgr_result {
    int status;
    bool logged;
    char dsn[16];
    char reason[QMGR_REASON_MAX + 1];
    char relay[QMGR_RELAY_MAX + 1];
};

/* ---- qmgr_conn.c ---- */

/*
 * A new connection to tr's socket, or NULL: *busy when the agent's listen
 * queue is full (try again shortly), *missing when the socket does not
 * exist (no such service), otherwise err says why.
 */
struct qmgr_conn *qmgr_conn_new(struct qmgr_transport *tr, bool *busy,
                                bool *missing, char *err, size_t errlen);
/* Hand a job to a connection (idle or fresh). */
void qmgr_conn_send(struct qmgr_conn *c, struct qmgr_job *job);
/* After a reply: keep the connection for the next request, or close it
 * when it is old. */
void qmgr_conn_make_idle(struct qmgr_conn *c);
/* Close (any job must have been taken off first; releases what the
 * connection held through qmgr_transport_conn_gone). */
void qmgr_conn_close(struct qmgr_conn *c);
/*
 * Check an agent's reply against the job: one group per recipient, in
 * order, with the offsets of the request.  Fills res[job->n] and
 * *site_trouble.  NULL on success, else what is wrong (static text).
 */
const char *qmgr_reply_parse(const struct qmgr_job *job,
                             const struct attr_list *list,
                             struct qmgr_result *res, bool *site_trouble,
                             uint64_t *sync_ticket);

/* ---- callbacks into qmgr_transport.c ---- */

/*
 * A reply to c->job arrived and was valid: c->job is still set.  res
 * (c->job->n results) is taken over.  sync_ticket > 0: the deliveries are
 * durable once that group-commit ticket is covered (qmgr_sync.c).
 */
void qmgr_transport_reply(struct qmgr_conn *c, struct qmgr_result *res,
                          bool site_trouble, uint64_t sync_ticket);
/* Count the outcome of each of job's recipients; frees job. */
void qmgr_job_outcomes(struct qmgr_job *job, const struct qmgr_result *res,
                       const double delays[4]);
void qmgr_job_free(struct qmgr_job *job);

/* ---- qmgr_sync.c ---- */

void qmgr_sync_init(struct event_base *base);
/* Count job's outcomes once ticket is durable; takes job and res. */
void qmgr_sync_wait(struct qmgr_job *job, struct qmgr_result *res,
                    const double delays[4], uint64_t ticket);
/* Count those that are durable by now. */
void qmgr_sync_check(void);
/* Sync, count, and free what waits. */
void qmgr_sync_shutdown(void);

/* The connection failed (retry: the agent went away, try once more). */
void qmgr_transport_lost(struct qmgr_conn *c, const char *why, bool retry);
/* Dispatch for tr soon (from the event loop). */
void qmgr_transport_kick(struct qmgr_transport *tr);
/* c is being closed: it no longer holds a session for any destination. */
void qmgr_transport_conn_gone(struct qmgr_conn *c);

#endif
