/*
 * qmgr_local - the local transport as seen from qmgr: a pool of reused
 * connections to queue_directory/private/local (the local delivery
 * agent), one request in flight per connection, non-blocking I/O with
 * libevent bufferevents so the scheduler never waits for a delivery.
 *
 * Limits:
 *   default_destination_concurrency_limit  connections in total
 *   local_destination_concurrency_limit    requests in flight that
 *                                          contain the same local
 *                                          (mydestination) recipient
 *                                          (Postfix's local: per user)
 *   virtual_destination_concurrency_limit  requests in flight for the
 *                                          same virtual mailbox domain
 *                                          (Postfix's virtual: per domain)
 * Batching: all queued recipients of one message that have room under
 * the per-recipient limit travel in one request (Postfix's local sends
 * one recipient per delivery; the content is read once per request here,
 * and the agent replies per recipient anyway).  A request carries at most
 * QMGR_LOCAL_BATCH_MAX recipients.
 *
 * Protocol (mail_proto.h): request=deliver ... rcpt/orig_rcpt/offset per
 * recipient; the reply is one frame with offset/status/dsn/reason per
 * recipient in request order.  The agent is not trusted: a reply that
 * does not match the request exactly (count, offsets, status values) is
 * a protocol error, the connection is dropped and the recipients are
 * treated like a lost connection.
 *
 * Failures: a connection that cannot be made defers the waiting
 * recipients ("delivery temporarily suspended").  A connection lost with
 * a request in flight (agent crashed or was stopped) puts the recipients
 * back for another try, at most QMGR_LOCAL_RETRIES times per message in
 * this pass, then defers them: the agent may have delivered some of them
 * already, so a retry can duplicate (at-least-once), never lose.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "qmgr/qmgr.h"
#include "global/addr.h"
#include "global/attr_scan.h"
#include "util/attr.h"
#include "util/htable.h"
#include "util/log.h"
#include "util/mem.h"

#define QMGR_LOCAL_BATCH_MAX 1000
/* Keep a request frame well below the agent's frame limit. */
#define QMGR_LOCAL_BATCH_BYTES (MAIL_PROTO_FRAME_MAX / 2)
/* One request may deliver many recipients, each with an fsync. */
#define QMGR_LOCAL_REPLY_TIMEOUT 3600
/* Idle connections are closed so the agents can retire. */
#define QMGR_LOCAL_IDLE_TIMEOUT 10
/* Connections are replaced after this long / this many requests, so a
 * reloaded configuration reaches the agents. */
#define QMGR_LOCAL_CONN_TTL 600
#define QMGR_LOCAL_CONN_MAX_REQUESTS 1000
#define QMGR_LOCAL_RETRIES 2
#define QMGR_LOCAL_REASON_MAX 1000

struct local_job {
    struct qmgr_message *msg;
    size_t *idx; /* recipients, in request order */
    size_t n;
    double t_start; /* batch formed */
    double t_sent;  /* request handed to a connection */
};

struct local_conn {
    struct bufferevent *bev;
    struct local_job *job; /* NULL when idle */
    double created;
    unsigned requests;
    bool idle;
    TAILQ_ENTRY(local_conn) link;
};

TAILQ_HEAD(local_conn_list, local_conn);

static struct local_conn_list local_idle = TAILQ_HEAD_INITIALIZER(local_idle);
static struct local_conn_list local_busy = TAILQ_HEAD_INITIALIZER(local_busy);
static struct qmgr_message_list local_ready =
    TAILQ_HEAD_INITIALIZER(local_ready);
static size_t local_nconns;
static struct htable *local_inflight; /* folded address -> count */
static struct event *local_dispatch_ev;
static struct event *local_retry_ev;
static char local_socket[512];

static void local_dispatch(evutil_socket_t fd, short what, void *ctx);

static void local_kick(void)
{
    if (local_dispatch_ev)
        event_active(local_dispatch_ev, EV_TIMEOUT, 0);
}

void qmgr_local_init(void)
{
    local_inflight = htable_new(256);
    local_dispatch_ev = event_new(qmgr_base, -1, 0, local_dispatch, NULL);
    local_retry_ev = evtimer_new(qmgr_base, local_dispatch, NULL);
    snprintf(local_socket, sizeof(local_socket), "%s/%s/%s",
             qmgr_params.queue_dir, MAIL_QUEUE_PRIVATE, MAIL_SERVICE_LOCAL);
}

void qmgr_local_enqueue(struct qmgr_message *m, size_t i)
{
    (void)i; /* already QUEUED; the message carries the list */
    if (!m->on_ready_list) {
        TAILQ_INSERT_TAIL(&local_ready, m, ready_link);
        m->on_ready_list = true;
    }
    local_kick();
}

void qmgr_local_forget(struct qmgr_message *m)
{
    if (m->on_ready_list) {
        TAILQ_REMOVE(&local_ready, m, ready_link);
        m->on_ready_list = false;
    }
}

/* ---- per-recipient concurrency ---- */

static size_t inflight_get(const char *key)
{
    return (size_t)(uintptr_t)htable_get(local_inflight, key);
}

/* The concurrency key: the user for local, the domain for virtual. */
static char *rcpt_key(const struct qmgr_rcpt *r)
{
    char *key = addr_fold(r->q->addr);
    long at;

    if (r->virtual_mailbox && (at = addr_split(key)) >= 0)
        memmove(key, key + at, strlen(key + at) + 1); /* "@domain" */
    return key;
}

static long long rcpt_limit(const struct qmgr_rcpt *r)
{
    return r->virtual_mailbox ? qmgr_params.virtual_domain_limit
                              : qmgr_params.local_rcpt_limit;
}

static void inflight_add(const struct qmgr_rcpt *r, int delta)
{
    char *key = rcpt_key(r);
    size_t n = inflight_get(key);

    if (delta > 0)
        n++;
    else if (n > 0)
        n--;
    if (n == 0)
        htable_del(local_inflight, key);
    else
        htable_put(local_inflight, key, (void *)(uintptr_t)n);
    free(key);
}

static void job_release(struct local_job *job)
{
    for (size_t k = 0; k < job->n; k++)
        inflight_add(&job->msg->rcpts[job->idx[k]], -1);
}

static void job_free(struct local_job *job)
{
    free(job->idx);
    free(job);
}

/* Pick the recipients of m that have room; NULL when none has. */
static struct local_job *job_build(struct qmgr_message *m)
{
    struct local_job *job = NULL;
    size_t bytes = 0;

    for (size_t i = 0; i < m->env.nrcpt && m->n_queued > 0; i++) {
        struct qmgr_rcpt *r = &m->rcpts[i];
        char *key;
        size_t busy;

        if (r->state != QMGR_RCPT_QUEUED)
            continue;
        key = rcpt_key(r);
        busy = inflight_get(key);
        free(key);
        if ((long long)busy >= rcpt_limit(r))
            continue;
        if (job &&
            (job->n >= QMGR_LOCAL_BATCH_MAX || bytes >= QMGR_LOCAL_BATCH_BYTES))
            break;
        if (job == NULL) {
            job = xcalloc(1, sizeof(*job));
            job->msg = m;
            job->idx = xreallocarray(NULL, m->n_queued, sizeof(size_t));
            job->t_start = qmgr_now();
        }
        job->idx[job->n++] = i;
        bytes += strlen(r->q->addr) + strlen(r->q->orig) + 64;
        inflight_add(r, +1);
        r->state = QMGR_RCPT_BUSY;
        m->n_queued--;
    }
    return job;
}

/* Put a job's recipients back in the queue (no outcome yet). */
static void job_requeue(struct local_job *job)
{
    struct qmgr_message *m = job->msg;

    for (size_t k = 0; k < job->n; k++) {
        m->rcpts[job->idx[k]].state = QMGR_RCPT_QUEUED;
        m->n_queued++;
    }
    qmgr_local_enqueue(m, job->idx[0]);
}

/* Same outcome for every recipient of the job; frees job. */
static void job_fail(struct local_job *job, const char *reason)
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
        qmgr_message_outcome(m, idx[k], 4, "4.3.0", reason, "local", delays);
    free(idx);
}

/* ---- connections ---- */

static void conn_read(struct bufferevent *bev, void *ctx);
static void conn_event(struct bufferevent *bev, short what, void *ctx);

static void conn_close(struct local_conn *c)
{
    if (c->idle)
        TAILQ_REMOVE(&local_idle, c, link);
    else
        TAILQ_REMOVE(&local_busy, c, link);
    bufferevent_free(c->bev);
    local_nconns--;
    free(c);
}

/*
 * A new connection, or NULL: *busy when the agent's listen queue is full
 * (try again shortly), otherwise err says why it failed.
 */
static struct local_conn *conn_new(bool *busy, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    struct local_conn *c;
    int fd;

    *busy = false;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(local_socket) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "socket path too long: %.200s", local_socket);
        return NULL;
    }
    memcpy(sun.sun_path, local_socket, strlen(local_socket) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        *busy = errno == EMFILE || errno == ENFILE;
        return NULL;
    }
    /* A Unix-domain connect completes at once or fails at once; EAGAIN
     * means the listen queue is full. */
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        snprintf(err, errlen, "connect to %s/%s: %s", MAIL_QUEUE_PRIVATE,
                 MAIL_SERVICE_LOCAL, strerror(errno));
        *busy = errno == EAGAIN || errno == EINTR;
        close(fd);
        return NULL;
    }
    c = xcalloc(1, sizeof(*c));
    c->bev = bufferevent_socket_new(qmgr_base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        close(fd);
        free(c);
        snprintf(err, errlen, "cannot create buffer event");
        return NULL;
    }
    c->created = qmgr_now();
    bufferevent_setcb(c->bev, conn_read, NULL, conn_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    local_nconns++;
    c->idle = false;
    TAILQ_INSERT_TAIL(&local_busy, c, link);
    return c;
}

static void conn_make_idle(struct local_conn *c)
{
    struct timeval idle = {QMGR_LOCAL_IDLE_TIMEOUT, 0};

    if (qmgr_now() - c->created > QMGR_LOCAL_CONN_TTL ||
        c->requests >= QMGR_LOCAL_CONN_MAX_REQUESTS) {
        conn_close(c);
        return;
    }
    TAILQ_REMOVE(&local_busy, c, link);
    TAILQ_INSERT_HEAD(&local_idle, c, link);
    c->idle = true;
    c->job = NULL;
    /* An idle connection only waits for EOF or its idle timeout. */
    bufferevent_set_timeouts(c->bev, &idle, NULL);
}

/* The connection ended or misbehaved; what was in flight is retried or
 * deferred. */
static void conn_lost(struct local_conn *c, const char *why, bool retry)
{
    struct local_job *job = c->job;
    char reason[600];

    c->job = NULL;
    conn_close(c);
    if (job) {
        struct qmgr_message *m = job->msg;

        job_release(job);
        if (retry && m->lost_connections++ < QMGR_LOCAL_RETRIES) {
            log_warn("%s: lost connection with %s/%s (%s); trying again", m->id,
                     MAIL_QUEUE_PRIVATE, MAIL_SERVICE_LOCAL, why);
            job_requeue(job);
            job_free(job);
        } else {
            snprintf(reason, sizeof(reason),
                     "lost connection with local delivery agent: %s", why);
            job_fail(job, reason);
        }
    }
    local_kick();
}

static void conn_send(struct local_conn *c, struct local_job *job)
{
    struct timeval tmo = {QMGR_LOCAL_REPLY_TIMEOUT, 0};
    struct qmgr_message *m = job->msg;
    struct buf frame = BUF_INIT;

    attr_put_str(&frame, "request", "deliver");
    attr_put_str(&frame, "queue_id", m->id);
    attr_put_str(&frame, "queue", MAIL_QUEUE_ACTIVE);
    attr_put_str(&frame, "sender", m->env.sender);
    attr_put_int(&frame, "arrival", (long long)m->env.arrival);
    for (size_t k = 0; k < job->n; k++) {
        const struct qfile_rcpt *q = m->rcpts[job->idx[k]].q;

        attr_put_str(&frame, "rcpt", q->addr);
        attr_put_str(&frame, "orig_rcpt", q->orig);
        attr_put_int(&frame, "offset", (long long)q->offset);
    }
    attr_end(&frame);
    if (c->idle) {
        TAILQ_REMOVE(&local_idle, c, link);
        TAILQ_INSERT_TAIL(&local_busy, c, link);
        c->idle = false;
    }
    c->job = job;
    c->requests++;
    job->t_sent = qmgr_now();
    bufferevent_set_timeouts(c->bev, &tmo, &tmo);
    bufferevent_write(c->bev, frame.data, frame.len);
    buf_free(&frame);
}

/* A syntactically valid "X.Y.Z" whose class digit matches status. */
static bool dsn_ok(const char *dsn, int status)
{
    const char *p = dsn;
    int digits;

    if (p[0] != '0' + status || p[1] != '.')
        return false;
    p += 2;
    for (int part = 0; part < 2; part++) {
        for (digits = 0; *p >= '0' && *p <= '9'; p++)
            if (++digits > 3)
                return false;
        if (digits == 0)
            return false;
        if (part == 0 && *p++ != '.')
            return false;
    }
    return *p == 0;
}

struct local_result {
    int status;
    char dsn[16];
    char reason[QMGR_LOCAL_REASON_MAX + 1];
};

/* Check the reply against the request.  NULL on success, else why not. */
static const char *reply_parse(const struct local_job *job,
                               const struct attr_list *list,
                               struct local_result *res)
{
    long long group = -1;

    for (size_t a = 0; a < list->n; a++) {
        const struct attr *at = &list->v[a];
        long long v;
        char *end;

        if (strcmp(at->name, "offset") == 0) {
            if ((size_t)++group >= job->n)
                return "more results than recipients";
            errno = 0;
            v = strtoll(at->value, &end, 10);
            if (errno || end == at->value || *end ||
                at->len != strlen(at->value) ||
                v != (long long)job->msg->rcpts[job->idx[group]].q->offset)
                return "result offset does not match the request";
            res[group].status = 0;
        } else if (group < 0) {
            continue; /* unknown leading attributes: newer agent */
        } else if (strcmp(at->name, "status") == 0) {
            if (at->len != 1 || (at->value[0] != '2' && at->value[0] != '4' &&
                                 at->value[0] != '5'))
                return "bad status value";
            res[group].status = at->value[0] - '0';
        } else if (strcmp(at->name, "dsn") == 0) {
            snprintf(res[group].dsn, sizeof(res[group].dsn), "%.*s",
                     (int)(at->len < 15 ? at->len : 15), at->value);
        } else if (strcmp(at->name, "reason") == 0) {
            size_t len = at->len < QMGR_LOCAL_REASON_MAX
                             ? at->len
                             : QMGR_LOCAL_REASON_MAX;
            memcpy(res[group].reason, at->value, len);
            res[group].reason[len] = 0;
        }
    }
    if ((size_t)(group + 1) != job->n)
        return "fewer results than recipients";
    for (size_t k = 0; k < job->n; k++) {
        if (res[k].status == 0)
            return "result without status";
        if (!dsn_ok(res[k].dsn, res[k].status))
            snprintf(res[k].dsn, sizeof(res[k].dsn), "%d.0.0", res[k].status);
    }
    return NULL;
}

static void conn_read(struct bufferevent *bev, void *ctx)
{
    struct local_conn *c = ctx;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct attr_list list = ATTR_LIST_INIT;
    struct local_result *res;
    struct local_job *job = c->job;
    struct qmgr_message *m;
    const char *err = NULL;
    size_t len = evbuffer_get_length(in);
    size_t consumed = 0;
    double now, delays[4];
    int rc;

    if (job == NULL) {
        log_warn("%s/%s: unexpected data on an idle connection",
                 MAIL_QUEUE_PRIVATE, MAIL_SERVICE_LOCAL);
        conn_lost(c, "protocol error", false);
        return;
    }
    rc = attr_scan_frame((const char *)evbuffer_pullup(in, -1), len,
                         MAIL_PROTO_FRAME_MAX, &list, &consumed, &err);
    if (rc == 0) {
        attr_list_free(&list);
        return; /* wait for the rest */
    }
    if (rc < 0 || consumed != len) {
        log_warn("%s: protocol error from %s/%s: %s", job->msg->id,
                 MAIL_QUEUE_PRIVATE, MAIL_SERVICE_LOCAL,
                 rc < 0 ? err : "data after the reply");
        attr_list_free(&list);
        conn_lost(c, "protocol error", false);
        return;
    }
    evbuffer_drain(in, consumed);
    res = xcalloc(job->n, sizeof(*res));
    if ((err = reply_parse(job, &list, res)) != NULL) {
        log_warn("%s: protocol error from %s/%s: %s", job->msg->id,
                 MAIL_QUEUE_PRIVATE, MAIL_SERVICE_LOCAL, err);
        attr_list_free(&list);
        free(res);
        conn_lost(c, "protocol error", false);
        return;
    }
    attr_list_free(&list);

    m = job->msg;
    now = qmgr_now();
    delays[0] = m->t_active - (double)m->env.arrival;
    delays[1] = job->t_start - m->t_active;
    delays[2] = job->t_sent - job->t_start;
    delays[3] = now - job->t_sent;
    job_release(job);
    conn_make_idle(c);
    /* The last outcome may free m. */
    for (size_t k = 0; k < job->n; k++)
        qmgr_message_outcome(m, job->idx[k], res[k].status, res[k].dsn,
                             res[k].reason, "local", delays);
    free(res);
    job_free(job);
    local_kick();
}

static void conn_event(struct bufferevent *bev, short what, void *ctx)
{
    struct local_conn *c = ctx;

    if (c->job == NULL) {
        conn_close(c); /* idle: agent went away or idle timeout */
        local_kick();
        return;
    }
    if (what & BEV_EVENT_TIMEOUT)
        conn_lost(c, "timeout waiting for the reply", false);
    else if (what & BEV_EVENT_EOF)
        conn_lost(c, "connection closed by the agent", true);
    else
        conn_lost(c,
                  evutil_socket_error_to_string(
                      evutil_socket_geterror(bufferevent_getfd(bev))),
                  true);
}

/* The agent cannot be reached: defer everything that waits for it. */
static void local_defer_waiting(const char *why)
{
    struct qmgr_message *m;
    char reason[600];
    double delays[4];

    snprintf(reason, sizeof(reason), "delivery temporarily suspended: %s", why);
    while ((m = TAILQ_FIRST(&local_ready)) != NULL) {
        size_t n = m->env.nrcpt;
        size_t left = m->n_queued;

        qmgr_local_forget(m);
        delays[0] = m->t_active - (double)m->env.arrival;
        delays[1] = qmgr_now() - m->t_active;
        delays[2] = delays[3] = 0;
        /* Test `left` first: after the last outcome m may be gone. */
        for (size_t i = 0; left > 0 && i < n; i++) {
            if (m->rcpts[i].state != QMGR_RCPT_QUEUED)
                continue;
            left--;
            qmgr_message_outcome(m, i, 4, "4.3.0", reason, "none", delays);
        }
    }
}

static struct local_conn *conn_get(bool *stop, char *err, size_t errlen)
{
    struct local_conn *c = TAILQ_FIRST(&local_idle);
    bool busy;

    *stop = false;
    if (c)
        return c;
    if ((long long)local_nconns >= qmgr_params.local_total_limit) {
        *stop = true;
        return NULL;
    }
    c = conn_new(&busy, err, errlen);
    if (c == NULL && busy) {
        struct timeval soon = {0, 200 * 1000};

        *stop = true;
        evtimer_add(local_retry_ev, &soon);
    }
    return c;
}

static void local_dispatch(evutil_socket_t fd, short what, void *ctx)
{
    struct qmgr_message *m, *next;
    struct local_conn *c = NULL;
    char err[512];
    bool stop;

    for (m = TAILQ_FIRST(&local_ready); m != NULL; m = next) {
        struct local_job *job;

        next = TAILQ_NEXT(m, ready_link);
        if (c == NULL) {
            c = conn_get(&stop, err, sizeof(err));
            if (c == NULL) {
                if (!stop) {
                    log_warn("cannot deliver locally: %s", err);
                    local_defer_waiting(err);
                }
                return;
            }
        }
        if ((job = job_build(m)) == NULL)
            continue; /* every recipient at its limit */
        if (m->n_queued == 0)
            qmgr_local_forget(m);
        conn_send(c, job);
        c = NULL;
    }
    /* A connection made for a message that then had no room. */
    if (c && !c->idle && c->job == NULL)
        conn_make_idle(c);
}

void qmgr_local_shutdown(void)
{
    struct local_conn *c;

    while ((c = TAILQ_FIRST(&local_busy)) != NULL) {
        if (c->job)
            job_free(c->job);
        conn_close(c);
    }
    while ((c = TAILQ_FIRST(&local_idle)) != NULL)
        conn_close(c);
    while (TAILQ_FIRST(&local_ready) != NULL)
        qmgr_local_forget(TAILQ_FIRST(&local_ready));
    if (local_dispatch_ev)
        event_free(local_dispatch_ev);
    if (local_retry_ev)
        event_free(local_retry_ev);
    local_dispatch_ev = local_retry_ev = NULL;
    if (local_inflight)
        htable_free(local_inflight, NULL);
    local_inflight = NULL;
}
