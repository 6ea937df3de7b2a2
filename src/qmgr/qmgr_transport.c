/*
 * qmgr_transport - the scheduler's view of delivery: transports (master.cf
 * services), destinations (transport + next hop) with their queues and
 * concurrency, and the choice of what to send next over which connection.
 * See qmgr_transport.h for the words and qmgr_conn.c for the protocol.
 *
 * Transports.  The name is the master.cf service; its socket is
 * private/<name> (or public/<name>).  A service whose program is "local"
 * is local-type: one destination, and instead of a window the limits of
 * the local delivery agent:
 *   local_destination_concurrency_limit    requests in flight containing
 *                                          the same local recipient
 *   virtual_destination_concurrency_limit  recipients in flight of the
 *                                          same virtual mailbox domain
 *   connections: default_destination_concurrency_limit, and never more
 *   than the service's maxproc (each connection holds one agent)
 * and batching of every recipient of a message that has room, up to
 * QMGR_LOCAL_BATCH_MAX.  Other transports are next-hop transports: a
 * destination per next hop with a feedback window (qmgr_feedback.c) from
 * initial_destination_concurrency up to <transport>_destination_
 * concurrency_limit (else default_destination_concurrency_limit), at
 * most <transport>_destination_recipient_limit recipients per request,
 * and at most maxproc connections in all.  Destinations with waiting mail
 * take turns (round robin), messages within one destination go in order.
 *
 * A reply with site_trouble=1 is negative feedback; enough of it in a
 * row (default_destination_concurrency_failed_cohort_limit cohorts)
 * makes the destination dead: what waits for it is deferred at once
 * ("delivery temporarily suspended: <reason>"), and so is new mail for
 * it, until minimal_backoff_time has passed or a flush ('F', or 'S' for
 * its site) revives it.
 *
 * Failures of the agent side: a socket that does not exist defers with
 * "4.3.0 mail transport unavailable" (no such service in master.cf);
 * another connect error with "delivery temporarily suspended: connect to
 * transport ..."; a full listen queue is retried after 200 ms.  A
 * connection lost with a request in flight puts the recipients back, at
 * most QMGR_RETRIES times per message and pass, then defers them (the
 * agent may have delivered some already: a retry can duplicate, never
 * lose).  No reply within the timeout or a reply that does not match the
 * request defers the recipients.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "qmgr/qmgr_transport.h"
#include "global/addr.h"
#include "global/mastercf.h"
#include "util/htable.h"
#include "util/log.h"
#include "util/mem.h"

#define QMGR_LOCAL_BATCH_MAX 1000
/* Keep a request frame well below the agent's frame limit. */
#define QMGR_BATCH_BYTES (MAIL_PROTO_FRAME_MAX / 2)
#define QMGR_RETRIES 2
/* maxproc 0 (no limit) still gets a bound. */
#define QMGR_CONN_UNLIMITED 1000

/* What master.cf says about one unix service. */
struct qmgr_service {
    char *name;
    char *program;
    long long maxproc; /* already resolved: > 0 */
};

static struct qmgr_service *services;
static size_t nservices;
static struct htable *transports; /* name -> qmgr_transport */
static struct config *tr_cfg;

static void tr_dispatch(evutil_socket_t fd, short what, void *ctx);
static void waiting_add(struct qmgr_transport *tr, struct qmgr_rcpt *r,
                        int delta);

void qmgr_transport_kick(struct qmgr_transport *tr)
{
    if (tr->dispatch_ev)
        event_active(tr->dispatch_ev, EV_TIMEOUT, 0);
}

/* ---- set-up ---- */

void qmgr_transport_init(struct config *cfg)
{
    struct master_service *svc = NULL;
    struct buf path = BUF_INIT;
    size_t n = 0;
    char err[512];

    tr_cfg = cfg;
    transports = htable_new(16);
    buf_printf(&path, "%s/master.cf", config_dir(cfg));
    if (mastercf_parse(path.data, &svc, &n, err, sizeof(err)) < 0) {
        /* master checked it at start; a broken edit since then must not
         * stop delivery: every transport gets the defaults. */
        log_warn("%s; using default transport limits", err);
        buf_free(&path);
        return;
    }
    services = xcalloc(n ? n : 1, sizeof(*services));
    for (size_t i = 0; i < n; i++) {
        const char *prog = strrchr(svc[i].command, '/');
        long long maxproc = svc[i].maxproc;

        if (strcmp(svc[i].type, "unix") != 0)
            continue;
        if (maxproc < 0)
            maxproc = config_int(cfg, "default_process_limit");
        if (maxproc == 0)
            maxproc = QMGR_CONN_UNLIMITED;
        services[nservices].name = xstrdup(svc[i].name);
        services[nservices].program = xstrdup(prog ? prog + 1 : svc[i].command);
        services[nservices].maxproc = maxproc;
        nservices++;
    }
    mastercf_free(svc, n);
    buf_free(&path);
}

static const struct qmgr_service *service_find(const char *name)
{
    for (size_t i = 0; i < nservices; i++)
        if (strcmp(services[i].name, name) == 0)
            return &services[i];
    return NULL;
}

/* <transport>_<suffix> when the table has it, else default_<suffix>. */
static long long transport_param(const char *name, const char *suffix)
{
    char pname[256];

    snprintf(pname, sizeof(pname), "%s_%s", name, suffix);
    if (param_find(pname) == NULL)
        snprintf(pname, sizeof(pname), "default_%s", suffix);
    return config_int(tr_cfg, pname);
}

static struct qmgr_transport *transport_get(const char *name)
{
    struct qmgr_transport *tr = htable_get(transports, name);
    const struct qmgr_service *svc;

    if (tr != NULL)
        return tr;
    svc = service_find(name);
    tr = xcalloc(1, sizeof(*tr));
    tr->name = xstrdup(name);
    tr->local = svc != NULL && strcmp(svc->program, "local") == 0;
    TAILQ_INIT(&tr->idle);
    TAILQ_INIT(&tr->busy);
    TAILQ_INIT(&tr->ready);
    tr->dests = htable_new(64);
    tr->conn_limit =
        svc ? svc->maxproc : config_int(tr_cfg, "default_process_limit");
    if (tr->local) {
        long long total =
            config_int(tr_cfg, "default_destination_concurrency_limit");

        /* A connection holds one agent process for as long as it is
         * open: more connections than processes would wait unserved. */
        if (tr->conn_limit < total)
            log_info("at most %lld connections to %s: its maxproc in "
                     "master.cf",
                     tr->conn_limit, name);
        else
            tr->conn_limit = total;
        tr->rcpt_limit = QMGR_LOCAL_BATCH_MAX;
        tr->inflight = htable_new(256);
    } else {
        tr->rcpt_limit = (int)transport_param(name, "destination_recipient_"
                                                    "limit");
    }
    if (tr->conn_limit < 1)
        tr->conn_limit = 1;
    if (tr->rcpt_limit < 1)
        tr->rcpt_limit = 1;
    mail_private_socket(tr->socket, sizeof(tr->socket), name);
    tr->dispatch_ev = event_new(qmgr_base, -1, 0, tr_dispatch, tr);
    tr->retry_ev = evtimer_new(qmgr_base, tr_dispatch, tr);
    htable_put(transports, name, tr);
    return tr;
}

/* ---- destinations ---- */

static void dest_revive_timer(evutil_socket_t fd, short what, void *ctx);

static struct qmgr_dest *dest_get(struct qmgr_transport *tr,
                                  const char *nexthop)
{
    struct qmgr_dest *d = htable_get(tr->dests, nexthop);

    if (d != NULL)
        return d;
    d = xcalloc(1, sizeof(*d));
    d->tr = tr;
    d->nexthop = xstrdup(nexthop);
    qmgr_feedback_init(
        &d->fb, (int)config_int(tr_cfg, "initial_destination_concurrency"),
        (int)transport_param(tr->name, "destination_concurrency_limit"),
        (int)config_int(tr_cfg,
                        "default_destination_concurrency_failed_cohort_limit"));
    TAILQ_INIT(&d->entries);
    htable_put(tr->dests, d->nexthop, d);
    return d;
}

static void dest_free(struct qmgr_dest *d)
{
    htable_del(d->tr->dests, d->nexthop);
    if (d->revive_ev)
        event_free(d->revive_ev);
    free(d->dead_reason);
    free(d->nexthop);
    free(d);
}

/* Forget a destination nothing refers to (its window starts over). */
static void dest_maybe_free(struct qmgr_dest *d)
{
    if (d->dead || d->busy > 0 || d->held > 0 || d->busy_unheld > 0 ||
        !TAILQ_EMPTY(&d->entries))
        return;
    if (d->on_ready) {
        TAILQ_REMOVE(&d->tr->ready, d, ready_link);
        d->on_ready = false;
    }
    dest_free(d);
}

/* Connections and requests that count against the window. */
static int dest_occupancy(const struct qmgr_dest *d)
{
    return d->held + d->busy_unheld;
}

static void dest_ready(struct qmgr_dest *d)
{
    if (!d->on_ready && !TAILQ_EMPTY(&d->entries)) {
        TAILQ_INSERT_TAIL(&d->tr->ready, d, ready_link);
        d->on_ready = true;
    }
    if (d->on_ready && TAILQ_EMPTY(&d->entries)) {
        TAILQ_REMOVE(&d->tr->ready, d, ready_link);
        d->on_ready = false;
    }
}

/* ---- entries ---- */

/* The entry's recipients leave a local-type transport's queue. */
static void entry_unwait(struct qmgr_entry *e)
{
    if (!e->dest->tr->local)
        return;
    for (size_t k = 0; k < e->n; k++)
        waiting_add(e->dest->tr, &e->msg->rcpts[e->idx[k]], -1);
}

static void entry_free(struct qmgr_entry *e)
{
    if (e->idx != NULL)
        entry_unwait(e);
    TAILQ_REMOVE(&e->dest->entries, e, dest_link);
    TAILQ_REMOVE(&e->msg->entries, e, msg_link);
    free(e->idx);
    free(e);
}

static void entry_add(struct qmgr_message *m, struct qmgr_dest *d, size_t i)
{
    struct qmgr_entry *e;

    for (e = TAILQ_FIRST(&m->entries); e != NULL; e = TAILQ_NEXT(e, msg_link))
        if (e->dest == d)
            break;
    if (e == NULL) {
        e = xcalloc(1, sizeof(*e));
        e->msg = m;
        e->dest = d;
        TAILQ_INSERT_TAIL(&d->entries, e, dest_link);
        TAILQ_INSERT_TAIL(&m->entries, e, msg_link);
    }
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 4;
        e->idx = xreallocarray(e->idx, e->cap, sizeof(*e->idx));
    }
    e->idx[e->n++] = i;
    if (d->tr->local)
        waiting_add(d->tr, &m->rcpts[i], +1);
    dest_ready(d);
}

/*
 * Defer everything that waits for d.  Outcomes may finish (and free)
 * messages: each entry is taken off its lists before its outcomes.
 */
static void dest_defer_waiting(struct qmgr_dest *d, const char *dsn,
                               const char *reason)
{
    struct qmgr_entry *e;

    while ((e = TAILQ_FIRST(&d->entries)) != NULL) {
        struct qmgr_message *m = e->msg;
        size_t *idx = e->idx, n = e->n;
        double delays[4];

        entry_unwait(e);
        e->idx = NULL;
        entry_free(e);
        qmgr_message_delays(m, delays);
        /* The last outcome may free m; the indices are ours now. */
        for (size_t k = 0; k < n; k++)
            qmgr_message_outcome(m, idx[k], 4, dsn, reason, "none", delays,
                                 false);
        free(idx);
    }
    dest_ready(d);
}

static void dest_kill(struct qmgr_dest *d, const char *why)
{
    struct timeval tv = {(time_t)qmgr_params.min_backoff, 0};
    char reason[QMGR_REASON_MAX + 64];

    d->dead = true;
    free(d->dead_reason);
    snprintf(reason, sizeof(reason), "delivery temporarily suspended: %s",
             why && *why ? why : "destination is not responding");
    d->dead_reason = xstrdup(reason);
    if (d->revive_ev == NULL)
        d->revive_ev = evtimer_new(qmgr_base, dest_revive_timer, d);
    evtimer_add(d->revive_ev, &tv);
}

static void dest_revive(struct qmgr_dest *d)
{
    if (!d->dead)
        return;
    d->dead = false;
    free(d->dead_reason);
    d->dead_reason = NULL;
    if (d->revive_ev)
        evtimer_del(d->revive_ev);
    qmgr_feedback_reset(&d->fb);
    dest_maybe_free(d);
}

static void dest_revive_timer(evutil_socket_t fd, short what, void *ctx)
{
    dest_revive(ctx);
}

struct revive_walk {
    const char *site;
    struct qmgr_dest **found;
    size_t n, cap;
};

static int revive_collect(const char *key, void *value, void *ctx)
{
    struct revive_walk *w = ctx;
    struct qmgr_dest *d = value;

    if (d->dead &&
        (w->site == NULL || qmgr_route_site_match(w->site, NULL, d->nexthop))) {
        if (w->n == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 8;
            w->found = xreallocarray(w->found, w->cap, sizeof(*w->found));
        }
        w->found[w->n++] = d;
    }
    return 0;
}

static int revive_transport(const char *key, void *value, void *ctx)
{
    struct qmgr_transport *tr = value;
    struct revive_walk *w = ctx;

    w->n = 0;
    htable_walk(tr->dests, revive_collect, w);
    /* Reviving may free a destination: not inside the walk. */
    for (size_t i = 0; i < w->n; i++)
        dest_revive(w->found[i]);
    return 0;
}

void qmgr_transport_revive(const char *site)
{
    struct revive_walk w = {site, NULL, 0, 0};

    if (transports != NULL)
        htable_walk(transports, revive_transport, &w);
    free(w.found);
}

/* ---- local-type limits ---- */

/* The concurrency key: the user for local, "@domain" for virtual. */
static char *rcpt_key(const struct qmgr_rcpt *r)
{
    char *key = addr_fold(r->q->addr);
    long at;

    if (r->virtual_mailbox && (at = addr_split(key)) >= 0)
        memmove(key, key + at, strlen(key + at) + 1);
    return key;
}

static long long rcpt_limit(const struct qmgr_rcpt *r)
{
    return r->virtual_mailbox ? qmgr_params.virtual_domain_limit
                              : qmgr_params.local_rcpt_limit;
}

/*
 * A concurrency key with its counts, shared by every recipient with that
 * key (r->lkey, one reference each): recipients in flight and recipients
 * waiting in the transport's queue.  A key is open when it has mail
 * waiting and room under its limit; the transport counts its open keys,
 * so the dispatcher stops scanning a long queue as soon as nothing in it
 * can go (without this a backlog for one domain at its limit was scanned
 * whole after every delivery).  Freed when nothing refers to it and
 * nothing is in flight.
 */
struct qmgr_lkey {
    struct qmgr_transport *tr;
    char *name;
    long long limit;
    size_t inflight;
    size_t waiting;
    size_t refs;
    bool open;
};

static void lkey_update(struct qmgr_lkey *lk)
{
    bool open = lk->waiting > 0 && (long long)lk->inflight < lk->limit;

    if (open != lk->open) {
        lk->open = open;
        if (open)
            lk->tr->open_keys++;
        else
            lk->tr->open_keys--;
    }
}

static void lkey_maybe_free(struct qmgr_lkey *lk)
{
    if (lk->refs > 0 || lk->inflight > 0)
        return;
    htable_del(lk->tr->inflight, lk->name);
    free(lk->name);
    free(lk);
}

static void lkey_drop(struct qmgr_rcpt *r)
{
    struct qmgr_lkey *lk = r->lkey;

    if (lk == NULL)
        return;
    r->lkey = NULL;
    lk->refs--;
    lkey_maybe_free(lk);
}

static struct qmgr_lkey *rcpt_lkey(struct qmgr_transport *tr,
                                   struct qmgr_rcpt *r)
{
    struct qmgr_lkey *lk = r->lkey;
    char *key;

    if (lk != NULL && lk->tr == tr)
        return lk;
    lkey_drop(r);
    key = rcpt_key(r);
    if ((lk = htable_get(tr->inflight, key)) == NULL) {
        lk = xcalloc(1, sizeof(*lk));
        lk->tr = tr;
        lk->name = key;
        lk->limit = rcpt_limit(r);
        htable_put(tr->inflight, lk->name, lk);
    } else {
        free(key);
    }
    lk->refs++;
    r->lkey = lk;
    return lk;
}

/* One of lk's counts up (delta > 0) or down, never below zero. */
static void lkey_count(struct qmgr_lkey *lk, size_t *count, int delta)
{
    if (delta > 0)
        (*count)++;
    else if (*count > 0)
        (*count)--;
    lkey_update(lk);
}

static void inflight_add(struct qmgr_transport *tr, struct qmgr_rcpt *r,
                         int delta)
{
    struct qmgr_lkey *lk = rcpt_lkey(tr, r);

    lkey_count(lk, &lk->inflight, delta);
}

/* Recipient r of a local-type transport joins (+1) or leaves the queue. */
static void waiting_add(struct qmgr_transport *tr, struct qmgr_rcpt *r,
                        int delta)
{
    struct qmgr_lkey *lk = rcpt_lkey(tr, r);

    lkey_count(lk, &lk->waiting, delta);
}

/* ---- jobs ---- */

void qmgr_job_free(struct qmgr_job *job)
{
    free(job->idx);
    free(job);
}

/*
 * Take recipients of entry e for one request: local-type, those with
 * room under their per-recipient limit; otherwise the first ones up to
 * the recipient limit.  NULL when none may go now.
 */
static struct qmgr_job *job_build(struct qmgr_entry *e)
{
    struct qmgr_transport *tr = e->dest->tr;
    struct qmgr_message *m = e->msg;
    struct qmgr_job *job = NULL;
    size_t bytes = 0, kept = 0;

    for (size_t k = 0; k < e->n; k++) {
        struct qmgr_rcpt *r = &m->rcpts[e->idx[k]];
        bool take = job == NULL || (job->n < (size_t)tr->rcpt_limit &&
                                    bytes < QMGR_BATCH_BYTES);

        if (take && tr->local)
            take = (long long)rcpt_lkey(tr, r)->inflight < rcpt_limit(r);
        if (!take) {
            e->idx[kept++] = e->idx[k];
            continue;
        }
        if (job == NULL) {
            job = xcalloc(1, sizeof(*job));
            job->msg = m;
            job->dest = e->dest;
            job->idx = xreallocarray(NULL, e->n, sizeof(size_t));
            job->t_start = qmgr_now();
        }
        job->idx[job->n++] = e->idx[k];
        bytes += strlen(r->q->addr) + strlen(r->q->orig) + 64;
        if (tr->local) {
            waiting_add(tr, r, -1);
            inflight_add(tr, r, +1);
        }
        r->state = QMGR_RCPT_BUSY;
    }
    e->n = kept;
    if (e->n == 0) {
        struct qmgr_dest *d = e->dest;

        entry_free(e);
        dest_ready(d);
    }
    return job;
}

/* The job is over (reply or loss): give back what it counted. */
static void job_release(struct qmgr_conn *c, struct qmgr_job *job,
                        bool keep_session)
{
    struct qmgr_transport *tr = c->tr;
    struct qmgr_dest *d = job->dest;

    if (tr->local) {
        for (size_t k = 0; k < job->n; k++)
            inflight_add(tr, &job->msg->rcpts[job->idx[k]], -1);
    }
    d->busy--;
    if (tr->local || c->held == d)
        return;
    d->busy_unheld--;
    if (c->held != NULL) {
        struct qmgr_dest *old = c->held;

        c->held = NULL;
        old->held--;
        dest_maybe_free(old);
    }
    if (keep_session) {
        c->held = d;
        d->held++;
    }
}

/* Put a job's recipients back in the queue (no outcome yet). */
static void job_requeue(struct qmgr_job *job)
{
    struct qmgr_message *m = job->msg;

    for (size_t k = 0; k < job->n; k++) {
        m->rcpts[job->idx[k]].state = QMGR_RCPT_QUEUED;
        entry_add(m, job->dest, job->idx[k]);
    }
}

/* Same temporary outcome for every recipient of the job; frees job. */
static void job_fail(struct qmgr_job *job, const char *reason)
{
    struct qmgr_message *m = job->msg;
    double now = qmgr_now();
    double delays[4];
    size_t n = job->n;
    size_t *idx = job->idx;

    delays[0] = m->t_active - (double)m->env.arrival;
    delays[1] = job->t_start - m->t_active;
    delays[2] = job->t_sent > 0 ? job->t_sent - job->t_start : 0;
    delays[3] = job->t_sent > 0 ? now - job->t_sent : 0;
    free(job);
    /* The last outcome may free m: nothing of m is used after it. */
    for (size_t k = 0; k < n; k++)
        qmgr_message_outcome(m, idx[k], 4, "4.3.0", reason, "none", delays,
                             false);
    free(idx);
}

static void job_send(struct qmgr_conn *c, struct qmgr_job *job)
{
    struct qmgr_dest *d = job->dest;

    d->busy++;
    if (!c->tr->local && c->held != d)
        d->busy_unheld++;
    qmgr_conn_send(c, job);
}

/* ---- connection callbacks ---- */

void qmgr_job_outcomes(struct qmgr_job *job, const struct qmgr_result *res,
                       const double delays[4])
{
    /* The last outcome may free job->msg. */
    for (size_t k = 0; k < job->n; k++)
        qmgr_message_outcome(job->msg, job->idx[k], res[k].status,
                             res[k].dsn, res[k].reason, res[k].relay, delays,
                             res[k].logged);
    qmgr_job_free(job);
}

void qmgr_transport_reply(struct qmgr_conn *c, struct qmgr_result *res,
                          bool site_trouble, uint64_t sync_ticket)
{
    struct qmgr_transport *tr = c->tr;
    struct qmgr_job *job = c->job;
    struct qmgr_message *m = job->msg;
    struct qmgr_dest *d = job->dest;
    const char *trouble = NULL;
    bool killed = false;
    double now = qmgr_now(), delays[4];

    qmgr_sync_check();
    /* Feedback first: the destination is surely alive while the job
     * still counts in it. */
    if (!tr->local) {
        for (size_t k = 0; k < job->n && trouble == NULL; k++)
            if (res[k].status == 4)
                trouble = res[k].reason;
        if (site_trouble) {
            if (qmgr_feedback_failure(&d->fb) && !d->dead) {
                dest_kill(d, trouble);
                killed = true;
                log_info("%s: destination %s of transport %s is not "
                         "responding: deferring its mail for %llds",
                         m->id, d->nexthop, tr->name, qmgr_params.min_backoff);
            }
        } else {
            qmgr_feedback_success(&d->fb, d->busy - 1);
        }
    }
    delays[0] = m->t_active - (double)m->env.arrival;
    delays[1] = job->t_start - m->t_active;
    delays[2] = job->t_sent - job->t_start;
    delays[3] = now - job->t_sent;
    job_release(c, job, true);
    c->job = job->next;
    if (c->job == NULL)
        c->job_tail = NULL;
    c->njobs--;
    for (size_t k = 0; k < job->n; k++)
        if (!res[k].relay[0])
            snprintf(res[k].relay, sizeof(res[k].relay), "%s",
                     tr->local ? tr->name : "none");
    /* Deliveries that are not durable yet count once they are; the
     * connection and the concurrency they took are free already. */
    if (sync_ticket > 0) {
        qmgr_sync_wait(job, res, delays, sync_ticket);
    } else {
        qmgr_job_outcomes(job, res, delays);
        free(res);
    }
    if (killed)
        dest_defer_waiting(d, "4.4.1", d->dead_reason);
    /* A next-hop destination is held by c now: closing c (when it is
     * old) is what may free it, so c goes last. */
    if (tr->local)
        dest_maybe_free(d);
    if (c->job == NULL)
        qmgr_conn_make_idle(c);
    qmgr_transport_kick(tr);
}

void qmgr_transport_conn_gone(struct qmgr_conn *c)
{
    struct qmgr_dest *held = c->held;

    if (held != NULL) {
        c->held = NULL;
        held->held--;
        dest_maybe_free(held);
    }
}

void qmgr_transport_lost(struct qmgr_conn *c, const char *why, bool retry)
{
    struct qmgr_transport *tr = c->tr;
    struct qmgr_job *job = c->job, *next;
    char reason[600];

    c->job = c->job_tail = NULL;
    c->njobs = 0;
    for (; job != NULL; job = next) {
        struct qmgr_message *m = job->msg;
        struct qmgr_dest *d = job->dest;

        next = job->next;
        /* c may still hold d: d stays valid until c is closed below.  A
         * later job of d still counts in d->busy, so d outlives it too. */
        job_release(c, job, false);
        if (retry && m->lost_connections++ < QMGR_RETRIES) {
            log_warn("%s: lost connection with %s/%s (%s); trying again", m->id,
                     MAIL_QUEUE_PRIVATE, tr->name, why);
            job_requeue(job);
            qmgr_job_free(job);
        } else {
            snprintf(reason, sizeof(reason),
                     "lost connection with %s delivery agent: %s", tr->name,
                     why);
            job_fail(job, reason);
        }
        dest_maybe_free(d);
    }
    qmgr_conn_close(c);
    qmgr_transport_kick(tr);
}

/* ---- dispatch ---- */

/* The agent cannot be reached: defer everything that waits for tr. */
static void transport_defer_waiting(struct qmgr_transport *tr, bool missing,
                                    const char *why)
{
    struct qmgr_dest *d;
    char reason[600];

    if (missing)
        snprintf(reason, sizeof(reason), "mail transport unavailable");
    else
        snprintf(reason, sizeof(reason), "delivery temporarily suspended: %s",
                 why);
    while ((d = TAILQ_FIRST(&tr->ready)) != NULL) {
        dest_defer_waiting(d, "4.3.0", reason);
        dest_maybe_free(d);
    }
}

enum conn_get { CONN_OK, CONN_SKIP, CONN_WAIT, CONN_FAIL };

/*
 * Requests in flight on one local connection, and how old the oldest may
 * be for another to join it: a delivery that takes longer (a huge
 * message, a slow file system) keeps later mail off its connection.
 */
#define QMGR_LOCAL_PIPELINE 16
#define QMGR_LOCAL_PIPELINE_AGE 0.5

/*
 * A connection for a request to d.  Next-hop transports send while the
 * requests in flight are fewer than d's window; they prefer a connection
 * whose agent may still hold a session to d; a connection that may open a
 * new session is taken only while the connections d holds plus its
 * requests elsewhere leave room in the window; at the connection limit an
 * idle connection held by another destination is taken over (the least
 * recently used).
 */
static enum conn_get conn_get(struct qmgr_transport *tr, struct qmgr_dest *d,
                              struct qmgr_conn **out, bool *missing, char *err,
                              size_t errlen)
{
    struct qmgr_conn *c, *other = NULL;
    bool busy;

    *out = NULL;
    *missing = false;
    if (!tr->local) {
        if (d->busy >= d->fb.window)
            return CONN_SKIP;
        for (c = TAILQ_FIRST(&tr->idle); c != NULL; c = TAILQ_NEXT(c, link)) {
            if (c->held == d) {
                *out = c;
                return CONN_OK;
            }
        }
        if (dest_occupancy(d) >= d->fb.window)
            return CONN_SKIP;
    }
    if (tr->local) {
        /*
         * Pipeline onto a connection whose agent is at work on recent
         * requests: it delivers whatever waits as one batch under one
         * group commit, instead of one process per message.
         */
        double now = qmgr_now();

        TAILQ_FOREACH(c, &tr->busy, link) {
            if (c->job != NULL && c->njobs < QMGR_LOCAL_PIPELINE &&
                now - c->job->t_sent < QMGR_LOCAL_PIPELINE_AGE) {
                *out = c;
                return CONN_OK;
            }
        }
    }
    for (c = TAILQ_FIRST(&tr->idle); c != NULL; c = TAILQ_NEXT(c, link)) {
        if (tr->local || c->held == NULL) {
            *out = c;
            return CONN_OK;
        }
        other = c; /* the last one is the least recently used */
    }
    if ((long long)tr->nconns < tr->conn_limit) {
        c = qmgr_conn_new(tr, &busy, missing, err, errlen);
        if (c != NULL) {
            *out = c;
            return CONN_OK;
        }
        if (busy) {
            struct timeval soon = {0, 200 * 1000};

            evtimer_add(tr->retry_ev, &soon);
            return CONN_WAIT;
        }
        return CONN_FAIL;
    }
    if (other != NULL) {
        *out = other;
        return CONN_OK;
    }
    return CONN_WAIT;
}

/* A fresh connection that got no request goes to the idle list. */
static void conn_unused(struct qmgr_conn *c)
{
    if (c != NULL && !c->idle && c->job == NULL)
        qmgr_conn_make_idle(c);
}

static void local_dispatch(struct qmgr_transport *tr)
{
    struct qmgr_dest *d = TAILQ_FIRST(&tr->ready);
    struct qmgr_entry *e, *next;
    struct qmgr_conn *c = NULL;
    char err[512];
    bool missing;

    if (d == NULL)
        return;
    for (e = TAILQ_FIRST(&d->entries); e != NULL && tr->open_keys > 0;
         e = next) {
        struct qmgr_job *job;

        next = TAILQ_NEXT(e, dest_link);
        if (c == NULL) {
            switch (conn_get(tr, d, &c, &missing, err, sizeof(err))) {
            case CONN_OK:
                break;
            case CONN_FAIL:
                log_warn("%s", err);
                transport_defer_waiting(tr, missing, err);
                return;
            default:
                return;
            }
        }
        if ((job = job_build(e)) == NULL)
            continue; /* every recipient at its limit */
        job_send(c, job);
        c = NULL;
    }
    conn_unused(c);
}

static void nexthop_dispatch(struct qmgr_transport *tr)
{
    bool progress = true;
    char err[512];
    bool missing;

    while (progress) {
        struct qmgr_dest *d;
        size_t n = 0;

        progress = false;
        for (d = TAILQ_FIRST(&tr->ready); d != NULL;
             d = TAILQ_NEXT(d, ready_link))
            n++;
        for (size_t k = 0; k < n && (d = TAILQ_FIRST(&tr->ready)) != NULL;
             k++) {
            struct qmgr_conn *c;
            struct qmgr_job *job;

            /* Round robin: each destination sends one request per turn. */
            TAILQ_REMOVE(&tr->ready, d, ready_link);
            TAILQ_INSERT_TAIL(&tr->ready, d, ready_link);
            switch (conn_get(tr, d, &c, &missing, err, sizeof(err))) {
            case CONN_OK:
                break;
            case CONN_SKIP:
                continue;
            case CONN_WAIT:
                return;
            case CONN_FAIL:
                log_warn("%s", err);
                transport_defer_waiting(tr, missing, err);
                return;
            }
            job = job_build(TAILQ_FIRST(&d->entries));
            if (job == NULL) {
                conn_unused(c);
                continue;
            }
            job_send(c, job);
            progress = true;
        }
    }
}

static void tr_dispatch(evutil_socket_t fd, short what, void *ctx)
{
    struct qmgr_transport *tr = ctx;

    if (tr->local)
        local_dispatch(tr);
    else
        nexthop_dispatch(tr);
}

/* ---- the interface ---- */

/* An outcome decided here, for a recipient that never reaches an agent. */
static void builtin_outcome(struct qmgr_message *m, size_t i,
                            const struct qmgr_route *route)
{
    const char *text = route->nexthop;
    char dsn[16] = "5.0.0";
    double delays[4];
    size_t len;

    qmgr_message_delays(m, delays);
    if (strcmp(route->transport, QMGR_TRANSPORT_DISCARD) == 0) {
        qmgr_message_outcome(m, i, 2, "2.0.0", *text ? text : "discarded",
                             "none", delays, false);
        return;
    }
    /* "error:5.7.1 text": the code becomes the DSN status. */
    len = strspn(text, "0123456789.");
    if (len >= 5 && len < sizeof(dsn) && text[0] == '5' && text[1] == '.' &&
        (text[len] == ' ' || text[len] == 0)) {
        memcpy(dsn, text, len);
        dsn[len] = 0;
        text += len;
        while (*text == ' ')
            text++;
    }
    qmgr_message_outcome(m, i, 5, dsn, *text ? text : "delivery disabled",
                         "none", delays, false);
}

void qmgr_transport_enqueue(struct qmgr_message *m, size_t i,
                            const struct qmgr_route *route)
{
    struct qmgr_transport *tr;
    struct qmgr_dest *d;

    if (strcmp(route->transport, QMGR_TRANSPORT_ERROR) == 0 ||
        strcmp(route->transport, QMGR_TRANSPORT_DISCARD) == 0) {
        builtin_outcome(m, i, route);
        return;
    }
    tr = transport_get(route->transport);
    d = dest_get(tr, tr->local ? "" : route->nexthop);
    m->rcpts[i].virtual_mailbox = route->cls == ADDR_CLASS_VIRTUAL_MAILBOX;
    m->rcpts[i].local_agent = tr->local;
    if (d->dead) {
        double delays[4];

        qmgr_message_delays(m, delays);
        qmgr_message_outcome(m, i, 4, "4.4.1", d->dead_reason, "none", delays,
                             false);
        return;
    }
    entry_add(m, d, i);
    qmgr_transport_kick(tr);
}

void qmgr_transport_forget(struct qmgr_message *m)
{
    struct qmgr_entry *e;

    while ((e = TAILQ_FIRST(&m->entries)) != NULL) {
        struct qmgr_dest *d = e->dest;

        entry_free(e);
        dest_ready(d);
    }
    for (size_t i = 0; i < m->env.nrcpt; i++)
        lkey_drop(&m->rcpts[i]);
}

static int transport_free(const char *key, void *value, void *ctx)
{
    struct qmgr_transport *tr = value;
    struct qmgr_conn *c;

    (void)key;
    (void)ctx;
    while ((c = TAILQ_FIRST(&tr->busy)) != NULL) {
        struct qmgr_job *job, *next;

        for (job = c->job; job != NULL; job = next) {
            next = job->next;
            qmgr_job_free(job);
        }
        c->job = c->job_tail = NULL;
        qmgr_conn_close(c);
    }
    while ((c = TAILQ_FIRST(&tr->idle)) != NULL)
        qmgr_conn_close(c);
    return 0;
}

static void dest_free_value(void *value)
{
    struct qmgr_dest *d = value;
    struct qmgr_entry *e;

    while ((e = TAILQ_FIRST(&d->entries)) != NULL)
        entry_free(e);
    if (d->revive_ev)
        event_free(d->revive_ev);
    free(d->dead_reason);
    free(d->nexthop);
    free(d);
}

/* At exit, after the messages: what is left has requests in flight. */
static void lkey_free_value(void *value)
{
    struct qmgr_lkey *lk = value;

    free(lk->name);
    free(lk);
}

static void transport_free_value(void *value)
{
    struct qmgr_transport *tr = value;

    htable_free(tr->dests, dest_free_value);
    if (tr->inflight)
        htable_free(tr->inflight, lkey_free_value);
    event_free(tr->dispatch_ev);
    event_free(tr->retry_ev);
    free(tr->name);
    free(tr);
}

void qmgr_transport_shutdown(void)
{
    if (transports != NULL) {
        htable_walk(transports, transport_free, NULL);
        htable_free(transports, transport_free_value);
    }
    transports = NULL;
    for (size_t i = 0; i < nservices; i++) {
        free(services[i].name);
        free(services[i].program);
    }
    free(services);
    services = NULL;
    nservices = 0;
}
