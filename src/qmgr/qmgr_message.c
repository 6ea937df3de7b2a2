/*
 * qmgr_message - one message in the active queue, from the moment its
 * file is in active/ until it is removed or moved to deferred/.
 *
 * The queue file is read with qfile_read_envelope(), which validates the
 * whole record structure: a file that fails goes to corrupt/, one that
 * cannot be read now goes to deferred/ for a later try.  Each recipient
 * not yet done is routed (qmgr_route.c) and queued for its transport and
 * destination (qmgr_transport.c), or decided at once (error, discard,
 * lookup failure).
 *
 * Outcomes: sent recipients, and failed ones nobody needs to hear about,
 * are marked done in the file (R -> D) at once, except the last one,
 * whose file is about to be removed anyway.  A failed recipient whose
 * sender asked for a notification (NOTIFY, default FAILURE) is marked
 * only after its notification was accepted by cleanup, so a crash in
 * between sends the notification again rather than never.  Deferred
 * ones are written to defer/ID and the file moves to deferred/ with its
 * retry time as mtime (backoff.h).  A temporary failure of a message
 * older than maximal_queue_lifetime (bounce_queue_lifetime for
 * notifications: null sender or double_bounce_sender) is final
 * (status=expired) and returned to the sender.
 *
 * Notifications (qmgr_bounce.c) are sent once every recipient of the
 * pass has its outcome; the message stays in memory until cleanup has
 * answered.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qmgr/qmgr.h"
#include "global/addr.h"
#include "global/backoff.h"
#include "global/defer_log.h"
#include "global/delivery_report.h"
#include "util/htable.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* Longest address shown in a log line. */
#define QMGR_LOG_TEXT_MAX 600

static struct htable *qmgr_messages;
TAILQ_HEAD(qmgr_message_list, qmgr_message);

static struct qmgr_message_list qmgr_all = TAILQ_HEAD_INITIALIZER(qmgr_all);
static size_t qmgr_nmessages;

size_t qmgr_message_count(void)
{
    return qmgr_nmessages;
}

bool qmgr_message_known(const char *id)
{
    return qmgr_messages != NULL && htable_get(qmgr_messages, id) != NULL;
}

static void qmgr_message_free(struct qmgr_message *m)
{
    qmgr_transport_forget(m);
    qmgr_bounce_forget(m);
    htable_del(qmgr_messages, m->id);
    TAILQ_REMOVE(&qmgr_all, m, all_link);
    qmgr_nmessages--;
    for (size_t i = 0; i < m->env.nrcpt; i++)
        free(m->rcpts[i].reason);
    free(m->rcpts);
    qfile_envelope_free(&m->env);
    if (m->fd >= 0)
        close(m->fd);
    free(m);
}

void qmgr_message_free_all(void)
{
    struct qmgr_message *m;

    while ((m = TAILQ_FIRST(&qmgr_all)) != NULL)
        qmgr_message_free(m);
    if (qmgr_messages)
        htable_free(qmgr_messages, NULL);
    qmgr_messages = NULL;
}

/* Every recipient done: the message leaves the queue. */
static void qmgr_message_remove(struct qmgr_message *m)
{
    char err[4400];

    if (qfile_retire(qmgr_params.queue_dir, MAIL_QUEUE_ACTIVE, m->id,
                     m->env.content_size, err, sizeof(err)) < 0) {
        /* The last recipient is not marked done: it would be delivered
         * again after a restart.  Nothing better to do than say so. */
        log_warn("%s: cannot remove: %s", m->id, err);
        return;
    }
    if (defer_log_remove(qmgr_params.queue_dir, m->id, err, sizeof(err)) < 0)
        log_warn("%s: %s", m->id, err);
    log_info("%s: removed", m->id);
}

/* Some recipients must be tried again later. */
static void qmgr_message_defer(struct qmgr_message *m)
{
    struct buf reasons = BUF_INIT;
    time_t now = time(NULL);
    time_t when = backoff_next_retry(
        now, m->env.arrival, qmgr_params.min_backoff, qmgr_params.max_backoff);
    char err[512];

    for (size_t i = 0; i < m->env.nrcpt; i++)
        if (m->rcpts[i].state == QMGR_RCPT_DEFERRED)
            defer_log_line(&reasons, m->rcpts[i].q->addr, m->rcpts[i].reason);
    /* The reasons are for the queue listing; the message is safe without
     * them. */
    if (defer_log_write(qmgr_params.queue_dir, m->id, &reasons, err,
                        sizeof(err)) < 0)
        log_warn("%s: %s", m->id, err);
    buf_free(&reasons);
    /* The done marks are what keeps a retry from delivering twice; make
     * them survive a power cut too before the file changes queues. */
    if (fdatasync(m->fd) < 0)
        log_warn("%s: fdatasync queue file: %s", m->id, strerror(errno));
    qmgr_queue_retry_later(m->id, when);
}

static void qmgr_message_mark(struct qmgr_message *m, struct qmgr_rcpt *r)
{
    char err[512];

    if (qfile_mark_done(m->fd, r->q->offset, err, sizeof(err)) < 0)
        log_warn("%s: cannot mark recipient done: %s; it may be delivered "
                 "again",
                 m->id, err);
}

/* The notifications are out (or none was needed): wrap up the pass. */
static void qmgr_message_complete(struct qmgr_message *m)
{
    bool expired = false;

    for (size_t i = 0; i < m->env.nrcpt; i++) {
        struct qmgr_rcpt *r = &m->rcpts[i];

        expired |= r->expired && r->state == QMGR_RCPT_FINISHED;
        if (!r->notice || r->state != QMGR_RCPT_FINISHED)
            continue;
        r->notice = false;
        m->n_left--;
        /* Marks matter only when the file stays. */
        if (m->n_deferred > 0)
            qmgr_message_mark(m, r);
    }
    if (expired) {
        char sender[QMGR_LOG_TEXT_MAX + 1];

        log_printable(sender, sizeof(sender), m->env.sender,
                      strlen(m->env.sender));
        log_info("%s: from=<%s>, status=expired, returned to sender", m->id,
                 sender);
    }
    if (m->n_deferred == 0)
        qmgr_message_remove(m);
    else
        qmgr_message_defer(m);
    qmgr_message_free(m);
    qmgr_queue_room();
}

static void qmgr_message_finish(struct qmgr_message *m)
{
    if (!m->notifying) {
        m->notifying = true;
        if (qmgr_bounce_start(m))
            return; /* qmgr_message_notified() follows */
    }
    qmgr_message_complete(m);
}

void qmgr_message_notified(struct qmgr_message *m)
{
    qmgr_message_complete(m);
}

/* Notifications (null sender, or our postmaster notices) expire sooner. */
static bool qmgr_message_is_notice(const struct qmgr_message *m)
{
    return *m->env.sender == 0 ||
           str_eq_ci(m->env.sender, qmgr_params.double_bounce);
}

void qmgr_message_outcome(struct qmgr_message *m, size_t i, int status,
                          const char *dsn, const char *reason,
                          const char *relay, const double delays[4],
                          bool logged)
{
    struct qmgr_rcpt *r = &m->rcpts[i];
    long long lifetime = qmgr_message_is_notice(m) ? qmgr_params.bounce_lifetime
                                                   : qmgr_params.max_lifetime;
    double now = qmgr_now();
    bool expired = false;

    if (r->state != QMGR_RCPT_QUEUED && r->state != QMGR_RCPT_BUSY)
        log_panic("%s: outcome for recipient %zu in state %d", m->id, i,
                  (int)r->state);
    m->n_open--;
    if (status == 4 && backoff_expired((time_t)now, m->env.arrival, lifetime))
        expired = true;

    if (!logged || expired) {
        struct delivery_report rep;
        struct buf line = BUF_INIT;

        memset(&rep, 0, sizeof(rep));
        rep.rcpt = r->q->addr;
        rep.orig_rcpt = r->q->orig;
        rep.relay = relay;
        rep.delay = now - (double)m->env.arrival;
        memcpy(rep.delays, delays, sizeof(rep.delays));
        rep.dsn = dsn;
        rep.status = status == 2   ? "sent"
                     : status == 5 ? "bounced"
                     : expired     ? "expired"
                                   : "deferred";
        rep.reason = reason;
        delivery_report_format(&line, &rep);
        log_info("%s: %s", m->id, line.data);
        buf_free(&line);
    }

    r->status = status;
    r->expired = expired;
    snprintf(r->dsn, sizeof(r->dsn), "%s", dsn);
    free(r->reason);
    r->reason = xstrdup(reason ? reason : "");
    if (status == 4 && !expired) {
        r->state = QMGR_RCPT_DEFERRED;
        m->n_deferred++;
    } else {
        r->state = QMGR_RCPT_FINISHED;
        /* A failure the sender wants to hear about stays to do until the
         * notification is accepted (qmgr_message_complete). */
        r->notice = status != 2 &&
                    !str_eq_ci(m->env.sender, qmgr_params.double_bounce) &&
                    (*m->env.sender == 0 ||
                     dsn_notify_wants(r->q->notify, DSN_FAILURE));
        if (!r->notice) {
            m->n_left--;
            /* The last one is not marked: the file is removed right
             * away. */
            if (m->n_left > 0)
                qmgr_message_mark(m, r);
        }
    }
    if (m->n_open == 0)
        qmgr_message_finish(m);
}

void qmgr_message_delays(const struct qmgr_message *m, double delays[4])
{
    double now = qmgr_now();

    delays[0] = m->t_active - (double)m->env.arrival;
    delays[1] = now - m->t_active;
    delays[2] = 0;
    delays[3] = 0;
}

/* Decide where recipient i goes; immediate outcomes are recorded here. */
static void qmgr_message_route(struct qmgr_message *m, size_t i)
{
    const char *filter;
    struct qmgr_route route;
    double delays[4];
    char err[512];
    char reason[600];

    if (qmgr_route_addr(qmgr_router, m->rcpts[i].q->addr, &route, err,
                        sizeof(err)) < 0) {
        snprintf(reason, sizeof(reason), "address resolver failure: %s", err);
        qmgr_message_delays(m, delays);
        qmgr_message_outcome(m, i, 4, "4.3.0", reason, "none", delays, false);
        return;
    }
    /*
     * smtpd's FILTER action (cleanup wrote content_filter=transport:dest):
     * every recipient goes to the filter, as Postfix does; an empty
     * destination is $myhostname.
     */
    if ((filter = qfile_attr(&m->env, "content_filter")) != NULL) {
        qmgr_route_free(&route);
        qmgr_route_split(filter, &route.transport, &route.nexthop);
        if (*route.nexthop == 0) {
            free(route.nexthop);
            route.nexthop = xstrdup(qmgr_params.myhostname);
        }
    }
    qmgr_transport_enqueue(m, i, &route);
    qmgr_route_free(&route);
}

void qmgr_message_start(const char *id)
{
    struct qmgr_message *m;
    struct buf path = BUF_INIT;
    struct qfile_envelope env;
    struct stat st;
    char err[512];
    char sender[QMGR_LOG_TEXT_MAX + 1];
    bool corrupt = false;
    int fd;

    qmgr_queue_path(&path, MAIL_QUEUE_ACTIVE, id);
    fd = open(path.data, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) {
            log_warn("%s: open %s: %s; trying again later", id, path.data,
                     strerror(errno));
            qmgr_queue_retry_later(id, time(NULL) + qmgr_params.min_backoff);
        }
        buf_free(&path);
        return;
    }
    buf_free(&path);
    memset(&env, 0, sizeof(env));
    if (qfile_read_envelope(fd, &env, &corrupt, err, sizeof(err)) < 0) {
        close(fd);
        if (corrupt) {
            qmgr_queue_corrupt(id, err);
        } else {
            log_warn("%s: cannot read queue file: %s; trying again later", id,
                     err);
            qmgr_queue_retry_later(id, time(NULL) + qmgr_params.min_backoff);
        }
        return;
    }

    m = xcalloc(1, sizeof(*m));
    str_lcpy(m->id, id, sizeof(m->id));
    m->fd = fd;
    m->env = env;
    m->t_active = qmgr_now();
    /* The delay warning mark (see qmgr_bounce.c) lives in the mode. */
    m->warned = fstat(fd, &st) == 0 && (st.st_mode & QMGR_MODE_WARNED);
    TAILQ_INIT(&m->entries);
    m->rcpts = xcalloc(env.nrcpt ? env.nrcpt : 1, sizeof(*m->rcpts));
    if (qmgr_messages == NULL)
        qmgr_messages = htable_new(1024);
    htable_put(qmgr_messages, m->id, m);
    TAILQ_INSERT_TAIL(&qmgr_all, m, all_link);
    qmgr_nmessages++;

    log_printable(sender, sizeof(sender), env.sender, strlen(env.sender));
    log_info("%s: from=<%s>, size=%lld, nrcpt=%zu (queue active)", m->id,
             sender, env.content_size, env.nrcpt);

    for (size_t i = 0; i < env.nrcpt; i++) {
        m->rcpts[i].q = &m->env.rcpts[i];
        if (m->env.rcpts[i].done) {
            m->rcpts[i].state = QMGR_RCPT_DONE;
        } else {
            m->rcpts[i].state = QMGR_RCPT_QUEUED;
            m->n_open++;
            m->n_left++;
        }
    }
    /* Hold the message open while routing: an immediate outcome for the
     * last recipient must not free it under this loop. */
    m->n_open++;
    for (size_t i = 0; i < m->env.nrcpt; i++)
        if (m->rcpts[i].state == QMGR_RCPT_QUEUED)
            qmgr_message_route(m, i);
    if (--m->n_open == 0)
        qmgr_message_finish(m);
}
