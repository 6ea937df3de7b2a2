/*
 * qmgr_bounce - delivery status notifications for a message whose pass
 * is over: which ones it needs, their text (global/dsn.c), and their
 * submission to cleanup over private/cleanup, as smtpd submits mail
 * (the smtpd -> cleanup protocol of global/mail_proto.h).
 *
 * Going through cleanup, as Postfix's bounce daemon does, gives a
 * notification the same treatment as any mail: virtual and local alias
 * expansion (a sender that is an alias, postmaster -> root), a Received
 * header, a durable queue file that qmgr then delivers like any other.
 *
 *   failure     recipients that bounced or expired and whose NOTIFY asks
 *               for it (default: yes), from <> to the sender;
 *               "ID: sender non-delivery notification: NEWID"
 *   postmaster  the same for a message with the null sender (itself a
 *               notification), from double_bounce_sender to
 *               2bounce_notice_recipient, headers only;
 *               "ID: postmaster non-delivery notification: NEWID".  A
 *               failing message from double_bounce_sender is dropped
 *               ("ID: undeliverable postmaster notification discarded"),
 *               which ends every loop.
 *   delay       once per message, when it is older than
 *               delay_warning_time and recipients are still deferred
 *               (NOTIFY DELAY, default yes), headers only;
 *               "ID: sender delay notification: NEWID".  The mark that
 *               it was sent is the QMGR_MODE_WARNED bit of the queue
 *               file's mode.
 *   success     recipients delivered with NOTIFY=SUCCESS (Action:
 *               delivered for local-type transports, relayed otherwise),
 *               headers only; "ID: sender delivery status notification:
 *               NEWID".
 *
 * The original message is attached in full when it is at most
 * bounce_size_limit bytes and RET is not HDRS; otherwise its header
 * block only (text/rfc822-headers).
 *
 * Failures: a failure or postmaster notification that cleanup does not
 * accept (cannot connect, timeout, 4xx) turns its recipients into
 * deferrals, so they and their notification are tried again later; a
 * permanent refusal (cleanup status 5) is logged and not retried.  A
 * delay notification that fails is tried at the next pass; a success
 * notification that fails is logged and dropped.  At most
 * QMGR_BOUNCE_CONCURRENCY submissions run at once; the rest wait.
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

#include "qmgr/qmgr.h"
#include "global/attr_scan.h"
#include "util/attr.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

#define QMGR_BOUNCE_CONCURRENCY 4
#define QMGR_BOUNCE_TIMEOUT 300
/* The header block attached is cut here (header_size_limit is less). */
#define QMGR_BOUNCE_HEADERS_MAX (1024 * 1024)

struct notice {
    struct qmgr_message *m;
    enum dsn_kind kind;
    size_t *idx; /* recipients reported on */
    size_t n;
    struct buf request; /* every frame for cleanup */
    struct bufferevent *bev;
    bool running;
    TAILQ_ENTRY(notice) link;
};

TAILQ_HEAD(notice_list, notice);

static struct notice_list notices_waiting =
    TAILQ_HEAD_INITIALIZER(notices_waiting);
static struct notice_list notices_running =
    TAILQ_HEAD_INITIALIZER(notices_running);
static size_t notices_nrunning;
static struct event *notices_pump_ev;
static unsigned long notices_counter;

static void notice_pump(evutil_socket_t fd, short what, void *ctx);

void qmgr_bounce_init(void)
{
    notices_pump_ev = event_new(qmgr_base, -1, 0, notice_pump, NULL);
}

static void notice_kick(void)
{
    if (notices_pump_ev)
        event_active(notices_pump_ev, EV_TIMEOUT, 0);
}

/* ---- the original message ---- */

struct orig_reader {
    struct buf *out;
    bool headers_only;
    bool complete; /* stopped on purpose: enough read */
};

static int orig_chunk(const char *data, size_t len, void *ctx)
{
    struct orig_reader *o = ctx;

    buf_append(o->out, data, len);
    if (o->headers_only) {
        size_t h = dsn_header_length(o->out->data, o->out->len);

        if (h < o->out->len || o->out->len >= QMGR_BOUNCE_HEADERS_MAX) {
            if (h > QMGR_BOUNCE_HEADERS_MAX)
                h = QMGR_BOUNCE_HEADERS_MAX;
            buf_truncate(o->out, h);
            o->complete = true;
            return -1;
        }
    }
    return 0;
}

/* The part of the original a notification attaches; false: none. */
static bool orig_read(struct qmgr_message *m, bool headers_only,
                      struct buf *out)
{
    struct orig_reader o = {out, headers_only, false};
    char err[256];

    if (qfile_read_content(m->fd, &m->env, orig_chunk, &o, err, sizeof(err)) <
            0 &&
        !o.complete) {
        log_warn("%s: cannot read the message for its notification: %s", m->id,
                 err);
        buf_reset(out);
        return false;
    }
    if (headers_only)
        buf_truncate(out, dsn_header_length(out->data, out->len));
    return true;
}

/* ---- building ---- */

static const char *notice_name(enum dsn_kind kind)
{
    switch (kind) {
    case DSN_DELAY:
        return "sender delay notification";
    case DSN_SUCCESS:
        return "sender delivery status notification";
    case DSN_POSTMASTER:
        return "postmaster non-delivery notification";
    default:
        return "sender non-delivery notification";
    }
}

static bool addr_8bit(const char *s)
{
    return dsn_has_8bit(s, strlen(s));
}

static void notice_build(struct notice *n)
{
    struct qmgr_message *m = n->m;
    const char *ret = qfile_attr(&m->env, "ret");
    const char *utf8 = qfile_attr(&m->env, "smtputf8");
    struct dsn_rcpt *rc = xcalloc(n->n, sizeof(*rc));
    struct dsn_report r;
    struct buf orig = BUF_INIT, content = BUF_INIT, msgid = BUF_INIT;
    time_t now = time(NULL);
    struct tm tm;
    char stamp[32];

    memset(&r, 0, sizeof(r));
    r.kind = n->kind;
    r.myhostname = qmgr_params.myhostname;
    r.queue_id = m->id;
    r.sender = m->env.sender;
    r.to = n->kind == DSN_POSTMASTER ? qmgr_params.notice_rcpt : m->env.sender;
    r.envid = qfile_attr(&m->env, "envid");
    r.arrival = m->env.arrival;
    r.now = now;
    r.warn_after = qmgr_params.delay_warning;
    if (n->kind == DSN_DELAY && qmgr_params.max_lifetime > 0)
        r.retry_until = m->env.arrival + (time_t)qmgr_params.max_lifetime;
    r.headers_only = n->kind != DSN_FAILURE ||
                     (ret != NULL && strcmp(ret, "HDRS") == 0) ||
                     m->env.content_size > qmgr_params.bounce_size_limit;
    r.smtputf8 = (utf8 != NULL && strcmp(utf8, "1") == 0) || addr_8bit(r.to) ||
                 addr_8bit(r.sender);
    for (size_t k = 0; k < n->n; k++) {
        const struct qmgr_rcpt *q = &m->rcpts[n->idx[k]];

        rc[k].addr = q->q->addr;
        rc[k].orig = q->q->orig;
        rc[k].orcpt = q->q->orcpt;
        rc[k].status = q->dsn;
        rc[k].reason = q->reason;
        rc[k].action = n->kind == DSN_DELAY ? "delayed"
                       : n->kind == DSN_SUCCESS
                           ? (q->local_agent ? "delivered" : "relayed")
                           : "failed";
        r.smtputf8 |= addr_8bit(rc[k].addr) || addr_8bit(rc[k].orig);
    }
    r.rcpts = rc;
    r.nrcpt = n->n;
    localtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
    buf_printf(&msgid, "%s.%s.%lu@%s", stamp, m->id, ++notices_counter,
               qmgr_params.myhostname);
    r.message_id = msgid.data;
    orig_read(m, r.headers_only, &orig);
    dsn_format(&content, &r, orig.data, orig.len);

    /* The smtpd -> cleanup protocol: envelope, content, end. */
    attr_put_str(&n->request, "request", "submit");
    attr_put_str(&n->request, "sender",
                 n->kind == DSN_POSTMASTER ? qmgr_params.double_bounce : "");
    attr_put_str(&n->request, "smtputf8", r.smtputf8 ? "1" : "0");
    if (dsn_has_8bit(content.data, content.len))
        attr_put_str(&n->request, "body", "8BITMIME");
    attr_put_int(&n->request, "arrival", (long long)now);
    attr_put_str(&n->request, "rcpt", r.to);
    attr_end(&n->request);
    for (size_t off = 0; off < content.len; off += MAIL_PROTO_CHUNK) {
        size_t len = content.len - off < MAIL_PROTO_CHUNK ? content.len - off
                                                          : MAIL_PROTO_CHUNK;

        attr_put(&n->request, "data", content.data + off, len);
        attr_end(&n->request);
    }
    attr_put_str(&n->request, "end", "1");
    attr_end(&n->request);
    buf_free(&orig);
    buf_free(&content);
    buf_free(&msgid);
    free(rc);
}

static void notice_new(struct qmgr_message *m, enum dsn_kind kind, size_t *idx,
                       size_t n)
{
    struct notice *no = xcalloc(1, sizeof(*no));

    no->m = m;
    no->kind = kind;
    no->idx = idx;
    no->n = n;
    notice_build(no);
    TAILQ_INSERT_TAIL(&notices_waiting, no, link);
    m->n_notices++;
}

/* Indices of recipients for which want(r) holds; NULL when none. */
static size_t *select_rcpts(struct qmgr_message *m,
                            bool (*want)(const struct qmgr_rcpt *r), size_t *n)
{
    size_t *idx = NULL;

    *n = 0;
    for (size_t i = 0; i < m->env.nrcpt; i++) {
        if (!want(&m->rcpts[i]))
            continue;
        if (idx == NULL)
            idx = xreallocarray(NULL, m->env.nrcpt, sizeof(*idx));
        idx[(*n)++] = i;
    }
    return idx;
}

static bool want_failure(const struct qmgr_rcpt *r)
{
    return r->state == QMGR_RCPT_FINISHED && r->notice;
}

static bool want_delay(const struct qmgr_rcpt *r)
{
    return r->state == QMGR_RCPT_DEFERRED &&
           dsn_notify_wants(r->q->notify, DSN_DELAY);
}

static bool want_success(const struct qmgr_rcpt *r)
{
    return r->state == QMGR_RCPT_FINISHED && r->status == 2 &&
           dsn_notify_wants(r->q->notify, DSN_SUCCESS);
}

static void set_warned(struct qmgr_message *m)
{
    struct stat st;

    m->warned = true;
    if (fstat(m->fd, &st) < 0 ||
        fchmod(m->fd, (st.st_mode & 07777) | QMGR_MODE_WARNED) < 0)
        log_warn("%s: cannot record that the delay notification was sent: "
                 "%s; it may be sent again",
                 m->id, strerror(errno));
}

bool qmgr_bounce_start(struct qmgr_message *m)
{
    const char *sender = m->env.sender;
    bool null_sender = *sender == 0;
    bool ours = str_eq_ci(sender, qmgr_params.double_bounce);
    size_t *idx, n;

    if (ours) {
        for (size_t i = 0; i < m->env.nrcpt; i++) {
            if (m->rcpts[i].state == QMGR_RCPT_FINISHED &&
                m->rcpts[i].status != 2) {
                log_info("%s: undeliverable postmaster notification "
                         "discarded",
                         m->id);
                break;
            }
        }
        return false;
    }
    if ((idx = select_rcpts(m, want_failure, &n)) != NULL)
        notice_new(m, null_sender ? DSN_POSTMASTER : DSN_FAILURE, idx, n);
    if (!null_sender && qmgr_params.delay_warning > 0 && !m->warned &&
        m->n_deferred > 0 &&
        (long long)(time(NULL) - m->env.arrival) >= qmgr_params.delay_warning) {
        if ((idx = select_rcpts(m, want_delay, &n)) != NULL)
            notice_new(m, DSN_DELAY, idx, n);
        else
            set_warned(m); /* nobody wants one: do not look again */
    }
    if (!null_sender && (idx = select_rcpts(m, want_success, &n)) != NULL)
        notice_new(m, DSN_SUCCESS, idx, n);
    if (m->n_notices == 0)
        return false;
    notice_kick();
    return true;
}

/* ---- submission ---- */

static void notice_free(struct notice *n)
{
    if (n->running) {
        TAILQ_REMOVE(&notices_running, n, link);
        notices_nrunning--;
    } else {
        TAILQ_REMOVE(&notices_waiting, n, link);
    }
    if (n->bev)
        bufferevent_free(n->bev);
    buf_free(&n->request);
    free(n->idx);
    free(n);
}

/* The notification's fate is known: ok, or why not (temporary unless
 * permanent). */
static void notice_done(struct notice *n, const char *newid, const char *why,
                        bool permanent)
{
    struct qmgr_message *m = n->m;
    enum dsn_kind kind = n->kind;

    if (newid != NULL) {
        log_info("%s: %s: %s", m->id, notice_name(kind), newid);
        if (kind == DSN_DELAY)
            set_warned(m);
    } else if (permanent || kind == DSN_SUCCESS) {
        log_warn("%s: %s not sent: %s", m->id, notice_name(kind), why);
    } else {
        log_warn("%s: %s not sent: %s; trying again later", m->id,
                 notice_name(kind), why);
        /* Failed recipients stay to do, with their notification. */
        for (size_t k = 0;
             k < n->n && (kind == DSN_FAILURE || kind == DSN_POSTMASTER); k++) {
            struct qmgr_rcpt *r = &m->rcpts[n->idx[k]];

            if (r->state == QMGR_RCPT_FINISHED && r->notice) {
                r->state = QMGR_RCPT_DEFERRED;
                r->notice = false;
                m->n_deferred++;
            }
        }
    }
    notice_free(n);
    notice_kick();
    if (--m->n_notices == 0)
        qmgr_message_notified(m);
}

static void notice_read(struct bufferevent *bev, void *ctx)
{
    struct notice *n = ctx;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct attr_list list = ATTR_LIST_INIT;
    size_t len = evbuffer_get_length(in), consumed = 0;
    const char *err = NULL, *status, *id, *reason;
    char why[600];
    int rc;

    rc = attr_scan_frame((const char *)evbuffer_pullup(in, -1), len,
                         MAIL_PROTO_FRAME_MAX, &list, &consumed, &err);
    if (rc == 0) {
        attr_list_free(&list);
        return;
    }
    if (rc < 0) {
        attr_list_free(&list);
        notice_done(n, NULL, "protocol error from cleanup", false);
        return;
    }
    status = attr_get(&list, "status");
    id = attr_get(&list, "queue_id");
    reason = attr_get(&list, "reason");
    if (status != NULL && strcmp(status, "0") == 0 && id != NULL &&
        mail_queue_id_ok(id)) {
        char newid[MAIL_QUEUE_ID_MAX];

        str_lcpy(newid, id, sizeof(newid));
        attr_list_free(&list);
        notice_done(n, newid, NULL, false);
        return;
    }
    log_printable(why, sizeof(why), reason ? reason : "no reason given",
                  strlen(reason ? reason : "no reason given"));
    rc = status != NULL && strcmp(status, "5") == 0;
    attr_list_free(&list);
    notice_done(n, NULL, why, rc);
}

static void notice_event(struct bufferevent *bev, short what, void *ctx)
{
    notice_done(ctx, NULL,
                what & BEV_EVENT_TIMEOUT ? "timeout talking to cleanup"
                                         : "lost connection with cleanup",
                false);
}

static bool notice_connect(struct notice *n, char *err, size_t errlen)
{
    struct timeval tmo = {QMGR_BOUNCE_TIMEOUT, 0};
    struct sockaddr_un sun;
    char path[sizeof(sun.sun_path) + 256];
    int fd;

    mail_private_socket(path, sizeof(path), MAIL_SERVICE_CLEANUP);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "socket path too long: %.200s", path);
        return false;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return false;
    }
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        snprintf(err, errlen, "connect to %s/%s: %s", MAIL_QUEUE_PRIVATE,
                 MAIL_SERVICE_CLEANUP, strerror(errno));
        close(fd);
        return false;
    }
    n->bev = bufferevent_socket_new(qmgr_base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (n->bev == NULL) {
        close(fd);
        snprintf(err, errlen, "cannot create buffer event");
        return false;
    }
    bufferevent_setcb(n->bev, notice_read, NULL, notice_event, n);
    bufferevent_set_timeouts(n->bev, &tmo, &tmo);
    bufferevent_enable(n->bev, EV_READ | EV_WRITE);
    bufferevent_write(n->bev, n->request.data, n->request.len);
    buf_free(&n->request);
    return true;
}

static void notice_pump(evutil_socket_t fd, short what, void *ctx)
{
    struct notice *n;
    char err[512];

    while (notices_nrunning < QMGR_BOUNCE_CONCURRENCY &&
           (n = TAILQ_FIRST(&notices_waiting)) != NULL) {
        TAILQ_REMOVE(&notices_waiting, n, link);
        TAILQ_INSERT_TAIL(&notices_running, n, link);
        n->running = true;
        notices_nrunning++;
        if (!notice_connect(n, err, sizeof(err)))
            notice_done(n, NULL, err, false);
    }
}

void qmgr_bounce_forget(struct qmgr_message *m)
{
    struct notice *n, *next;

    for (n = TAILQ_FIRST(&notices_waiting); n != NULL; n = next) {
        next = TAILQ_NEXT(n, link);
        if (n->m == m)
            notice_free(n);
    }
    for (n = TAILQ_FIRST(&notices_running); n != NULL; n = next) {
        next = TAILQ_NEXT(n, link);
        if (n->m == m)
            notice_free(n);
    }
    m->n_notices = 0;
}

void qmgr_bounce_shutdown(void)
{
    while (TAILQ_FIRST(&notices_waiting) != NULL)
        notice_free(TAILQ_FIRST(&notices_waiting));
    while (TAILQ_FIRST(&notices_running) != NULL)
        notice_free(TAILQ_FIRST(&notices_running));
    if (notices_pump_ev)
        event_free(notices_pump_ev);
    notices_pump_ev = NULL;
}
