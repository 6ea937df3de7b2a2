/*
 * qmgr_conn - connections from qmgr to delivery agents (local, smtp,
 * lmtp ...): requests in flight per connection, non-blocking I/O with
 * libevent bufferevents so the scheduler never waits for a delivery.
 *
 * Delivery agents that deliver in batches (local) may get several
 * requests pipelined on one connection; replies come back in order.
 *
 * Protocol (global/mail_proto.h): request=deliver, queue_id, queue,
 * sender, arrival, nexthop, active_time, then rcpt/orig_rcpt/offset per
 * recipient.  The reply is one frame: an optional site_trouble=0|1, then
 * per recipient in request order offset/status/dsn/reason and optionally
 * relay and logged.  The agent is not trusted: a reply that does not
 * match the request exactly (count, offsets, status values) is a
 * protocol error, the connection is dropped and the recipients are
 * treated like a lost connection; text fields are bounded and a relay
 * name that is not one printable token is replaced by "none".
 *
 * Connections are kept between requests, closed after
 * QMGR_CONN_IDLE_TIMEOUT seconds of idleness (so agents can retire) and
 * replaced after QMGR_CONN_TTL seconds or QMGR_CONN_MAX_REQUESTS requests
 * (so a reloaded configuration reaches the agents).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "qmgr/qmgr_transport.h"
#include "global/attr_scan.h"
#include "util/log.h"
#include "util/mem.h"

/* One request may deliver many recipients, each with an fsync, or wait
 * for several remote servers' timeouts. */
#define QMGR_CONN_REPLY_TIMEOUT 3600
#define QMGR_CONN_IDLE_TIMEOUT 10
#define QMGR_CONN_TTL 600
#define QMGR_CONN_MAX_REQUESTS 1000

static void conn_read(struct bufferevent *bev, void *ctx);
static void conn_event(struct bufferevent *bev, short what, void *ctx);

struct qmgr_conn *qmgr_conn_new(struct qmgr_transport *tr, bool *busy,
                                bool *missing, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    struct qmgr_conn *c;
    int fd;

    *busy = *missing = false;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(tr->socket) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "socket path too long: %.200s", tr->socket);
        return NULL;
    }
    memcpy(sun.sun_path, tr->socket, strlen(tr->socket) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        *busy = errno == EMFILE || errno == ENFILE;
        return NULL;
    }
    /* A Unix-domain connect completes at once or fails at once; EAGAIN
     * means the listen queue is full. */
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        snprintf(err, errlen, "connect to transport %s/%s: %s",
                 MAIL_QUEUE_PRIVATE, tr->name, strerror(errno));
        *busy = errno == EAGAIN || errno == EINTR;
        *missing = errno == ENOENT;
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
    c->tr = tr;
    c->created = qmgr_now();
    bufferevent_setcb(c->bev, conn_read, NULL, conn_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    tr->nconns++;
    c->idle = false;
    TAILQ_INSERT_TAIL(&tr->busy, c, link);
    return c;
}

void qmgr_conn_close(struct qmgr_conn *c)
{
    struct qmgr_transport *tr = c->tr;

    qmgr_transport_conn_gone(c);
    if (c->idle)
        TAILQ_REMOVE(&tr->idle, c, link);
    else
        TAILQ_REMOVE(&tr->busy, c, link);
    bufferevent_free(c->bev);
    tr->nconns--;
    free(c);
}

void qmgr_conn_make_idle(struct qmgr_conn *c)
{
    struct timeval idle = {QMGR_CONN_IDLE_TIMEOUT, 0};
    struct qmgr_transport *tr = c->tr;

    c->job = c->job_tail = NULL;
    c->njobs = 0;
    if (qmgr_now() - c->created > QMGR_CONN_TTL ||
        c->requests >= QMGR_CONN_MAX_REQUESTS) {
        qmgr_conn_close(c);
        return;
    }
    if (!c->idle) {
        TAILQ_REMOVE(&tr->busy, c, link);
        TAILQ_INSERT_HEAD(&tr->idle, c, link);
        c->idle = true;
    }
    /* An idle connection only waits for EOF or its idle timeout. */
    bufferevent_set_timeouts(c->bev, &idle, NULL);
}

void qmgr_conn_send(struct qmgr_conn *c, struct qmgr_job *job)
{
    struct timeval tmo = {QMGR_CONN_REPLY_TIMEOUT, 0};
    struct qmgr_transport *tr = c->tr;
    struct qmgr_message *m = job->msg;
    struct buf frame = BUF_INIT;
    char tmp[64];

    attr_put_str(&frame, "request", "deliver");
    attr_put_str(&frame, "queue_id", m->id);
    attr_put_str(&frame, "queue", MAIL_QUEUE_ACTIVE);
    attr_put_str(&frame, "sender", m->env.sender);
    attr_put_int(&frame, "arrival", (long long)m->env.arrival);
    if (*job->dest->nexthop)
        attr_put_str(&frame, "nexthop", job->dest->nexthop);
    snprintf(tmp, sizeof(tmp), "%.3f", m->t_active);
    attr_put_str(&frame, "active_time", tmp);
    for (size_t k = 0; k < job->n; k++) {
        const struct qfile_rcpt *q = m->rcpts[job->idx[k]].q;

        attr_put_str(&frame, "rcpt", q->addr);
        attr_put_str(&frame, "orig_rcpt", q->orig);
        attr_put_int(&frame, "offset", (long long)q->offset);
    }
    attr_end(&frame);
    if (c->idle) {
        TAILQ_REMOVE(&tr->idle, c, link);
        TAILQ_INSERT_TAIL(&tr->busy, c, link);
        c->idle = false;
    }
    job->next = NULL;
    if (c->job == NULL)
        c->job = job;
    else
        c->job_tail->next = job;
    c->job_tail = job;
    c->njobs++;
    c->requests++;
    job->t_sent = qmgr_now();
    bufferevent_set_timeouts(c->bev, &tmo, &tmo);
    bufferevent_write(c->bev, frame.data, frame.len);
    buf_free(&frame);
}

/* A syntactically valid "X.Y.Z" whose class digit matches status. */
static bool dsn_code_ok(const char *dsn, int status)
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

/* Copy at most max bytes of an attribute value as text. */
static void reply_text(char *dst, size_t max, const struct attr *at)
{
    size_t len = at->len < max ? at->len : max;

    memcpy(dst, at->value, len);
    dst[len] = 0;
}

/* One printable token ("host[ip]:port", "local"), else "none". */
static void reply_relay(char *dst, const struct attr *at)
{
    bool ok = at->len > 0 && at->len <= QMGR_RELAY_MAX;

    for (size_t i = 0; ok && i < at->len; i++)
        ok = at->value[i] > 0x20 && at->value[i] < 0x7f;
    if (ok)
        reply_text(dst, QMGR_RELAY_MAX, at);
    else
        snprintf(dst, QMGR_RELAY_MAX + 1, "none");
}

const char *qmgr_reply_parse(const struct qmgr_job *job,
                             const struct attr_list *list,
                             struct qmgr_result *res, bool *site_trouble,
                             uint64_t *sync_ticket)
{
    long long group = -1;

    *site_trouble = false;
    *sync_ticket = 0;
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
            memset(&res[group], 0, sizeof(res[group]));
        } else if (group < 0) {
            if (strcmp(at->name, "site_trouble") == 0)
                *site_trouble = at->len == 1 && at->value[0] == '1';
            else if (strcmp(at->name, "sync_ticket") == 0) {
                unsigned long long t;

                errno = 0;
                t = strtoull(at->value, &end, 10);
                if (errno || end == at->value || *end || *at->value == '-' ||
                    at->len != strlen(at->value) || t == 0)
                    return "bad sync_ticket";
                *sync_ticket = t;
            }
            /* other leading attributes: a newer agent */
        } else if (strcmp(at->name, "status") == 0) {
            if (at->len != 1 || (at->value[0] != '2' && at->value[0] != '4' &&
                                 at->value[0] != '5'))
                return "bad status value";
            res[group].status = at->value[0] - '0';
        } else if (strcmp(at->name, "dsn") == 0) {
            reply_text(res[group].dsn, sizeof(res[group].dsn) - 1, at);
        } else if (strcmp(at->name, "reason") == 0) {
            reply_text(res[group].reason, QMGR_REASON_MAX, at);
        } else if (strcmp(at->name, "relay") == 0) {
            reply_relay(res[group].relay, at);
        } else if (strcmp(at->name, "logged") == 0) {
            res[group].logged = at->len == 1 && at->value[0] == '1';
        }
    }
    if ((size_t)(group + 1) != job->n)
        return "fewer results than recipients";
    for (size_t k = 0; k < job->n; k++) {
        if (res[k].status == 0)
            return "result without status";
        if (!dsn_code_ok(res[k].dsn, res[k].status))
            snprintf(res[k].dsn, sizeof(res[k].dsn), "%d.0.0", res[k].status);
    }
    return NULL;
}

/* One reply to c->job; false when c may be gone or is being dropped. */
static bool conn_read_one(struct qmgr_conn *c, struct evbuffer *in)
{
    struct attr_list list = ATTR_LIST_INIT;
    struct qmgr_result *res;
    struct qmgr_job *job = c->job;
    const char *err = NULL;
    size_t len = evbuffer_get_length(in);
    size_t consumed = 0;
    bool site_trouble, more;
    uint64_t sync_ticket;
    int rc;

    if (job == NULL) {
        log_warn("%s/%s: unexpected data on an idle connection",
                 MAIL_QUEUE_PRIVATE, c->tr->name);
        qmgr_transport_lost(c, "protocol error", false);
        return false;
    }
    rc = attr_scan_frame((const char *)evbuffer_pullup(in, -1), len,
                         MAIL_PROTO_FRAME_MAX, &list, &consumed, &err);
    if (rc == 0) {
        attr_list_free(&list);
        return false; /* wait for the rest */
    }
    if (rc < 0 || (consumed != len && job->next == NULL)) {
        log_warn("%s: protocol error from %s/%s: %s", job->msg->id,
                 MAIL_QUEUE_PRIVATE, c->tr->name,
                 rc < 0 ? err : "data after the reply");
        attr_list_free(&list);
        qmgr_transport_lost(c, "protocol error", false);
        return false;
    }
    evbuffer_drain(in, consumed);
    res = xcalloc(job->n, sizeof(*res));
    if ((err = qmgr_reply_parse(job, &list, res, &site_trouble,
                                &sync_ticket)) != NULL) {
        log_warn("%s: protocol error from %s/%s: %s", job->msg->id,
                 MAIL_QUEUE_PRIVATE, c->tr->name, err);
        attr_list_free(&list);
        free(res);
        qmgr_transport_lost(c, "protocol error", false);
        return false;
    }
    attr_list_free(&list);
    /* With no request left in flight, c may be closed by the reply. */
    more = job->next != NULL && consumed != len;
    qmgr_transport_reply(c, res, site_trouble, sync_ticket);
    return more;
}

static void conn_read(struct bufferevent *bev, void *ctx)
{
    struct qmgr_conn *c = ctx;
    struct evbuffer *in = bufferevent_get_input(bev);

    while (conn_read_one(c, in))
        ;
}

static void conn_event(struct bufferevent *bev, short what, void *ctx)
{
    struct qmgr_conn *c = ctx;
    struct qmgr_transport *tr = c->tr;

    if (c->job == NULL) {
        /* idle: the agent went away or the idle timeout passed */
        qmgr_transport_lost(c, NULL, false);
        qmgr_transport_kick(tr);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT)
        qmgr_transport_lost(c, "timeout waiting for the reply", false);
    else if (what & BEV_EVENT_EOF)
        qmgr_transport_lost(c, "connection closed by the agent", true);
    else
        qmgr_transport_lost(c,
                            evutil_socket_error_to_string(
                                evutil_socket_geterror(bufferevent_getfd(bev))),
                            true);
}
