/*
 * smtp_deliver - one delivery request: read the queue file, work out the
 * server addresses of the next hop, and try them in order until every
 * recipient has an answer (Postfix's smtp_connect.c loop):
 *
 *   - the connection cached from the previous request is tried first
 *     when it is for the same transport and next hop;
 *   - then at most smtp_mx_address_limit addresses, and at most
 *     smtp_mx_session_limit sessions that got past greeting and EHLO;
 *   - 2xx and 5xx answers are final; a 4xx answer, a failed connection
 *     or handshake leaves the recipient for the next address, and the
 *     last such answer is its reason when no address is left;
 *   - opportunistic TLS that fails mid-handshake is retried once on a new
 *     plaintext connection to the same address;
 *   - recipients still undecided after the next hop's servers (or whose
 *     next hop was not found) go to each smtp_fallback_relay in turn
 *     (smtp only; never for a domain we are an MX host of).
 *
 * Trusts the queue file as qfile_read_envelope() validates it, and the
 * request only to select recipients: each must be a recipient record of
 * that file at the offset qmgr names.  Addresses that could break a
 * command line are refused here (5.1.3 / 5.1.7).
 *
 * Every recipient is logged here, in Postfix's words:
 *   ID: to=<r>, relay=h[ip]:25, delay=1.2, delays=0.1/0/0.5/0.6,
 *       dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X)
 * (conn_use=N after the relay when the connection was reused).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "smtp/smtp.h"
#include "global/delivery_report.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

void smtp_rcpt_result(struct smtp_rcpt *r, const char *relay, int status,
                      const char *dsn, const char *fmt, ...)
{
    va_list ap;

    r->status = status;
    r->final = status != 4;
    /* The DSN class must agree with the status we report. */
    if (dsn != NULL && dsn[0] == '0' + status && dsn[1] == '.')
        str_lcpy(r->dsn, dsn, sizeof(r->dsn));
    else
        snprintf(r->dsn, sizeof(r->dsn), "%d.0.0", status);
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
    va_end(ap);
    str_lcpy(r->relay, relay ? relay : "none", sizeof(r->relay));
}

static double wall_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t pending_count(const struct smtp_request *req)
{
    size_t n = 0;

    for (size_t i = 0; i < req->nrcpt; i++)
        if (!req->rcpts[i].final)
            n++;
    return n;
}

/* Every recipient not yet final gets e. */
static void fail_pending(struct smtp_request *req, const char *relay,
                         const struct smtp_error *e)
{
    for (size_t i = 0; i < req->nrcpt; i++)
        if (!req->rcpts[i].final)
            smtp_rcpt_result(&req->rcpts[i], relay, e->status, e->dsn, "%s",
                             e->reason);
}

/* ---- the queue file ---- */

static int measure_chunk(const char *data, size_t len, void *ctx)
{
    smtp_measure_feed(ctx, data, len);
    return 0;
}

/* Open and check the file, match the recipients.  -1: all failed. */
static int message_open(struct smtp_request *req, struct smtp_message *m)
{
    struct smtp_measure meas;
    struct smtp_error e;
    struct buf path = BUF_INIT;
    const char *v;
    bool corrupt = false, *used;
    char err[512];

    buf_printf(&path, "%s/%s/%s", smtp_params.queue_dir, req->queue,
               req->queue_id);
    m->fd = open(path.data, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    buf_free(&path);
    if (m->fd < 0) {
        smtp_error_set(&e, 4, "4.3.0", "cannot open queue file: %s",
                       strerror(errno));
        fail_pending(req, NULL, &e);
        return -1;
    }
    if (qfile_read_envelope(m->fd, &m->env, &corrupt, err, sizeof(err)) < 0) {
        smtp_error_set(&e, 4, "4.3.0", "cannot read queue file: %s", err);
        fail_pending(req, NULL, &e);
        return -1;
    }
    /* The queue file wins over what qmgr said. */
    req->sender = m->env.sender;
    used = xcalloc(m->env.nrcpt ? m->env.nrcpt : 1, sizeof(*used));
    for (size_t i = 0; i < req->nrcpt; i++) {
        struct smtp_rcpt *r = &req->rcpts[i];
        size_t k;

        for (k = 0; k < m->env.nrcpt; k++)
            if ((long long)m->env.rcpts[k].offset == r->offset)
                break;
        if (k == m->env.nrcpt || strcmp(m->env.rcpts[k].addr, r->addr) != 0) {
            smtp_rcpt_result(r, NULL, 4, "4.3.0",
                             "recipient is not in the queue file at offset "
                             "%lld",
                             r->offset);
            r->final = true;
            continue;
        }
        if (used[k]) {
            smtp_rcpt_result(r, NULL, 4, "4.3.0",
                             "recipient repeated in the request");
            r->final = true;
            continue;
        }
        used[k] = true;
        r->notify = m->env.rcpts[k].notify;
        r->orcpt = m->env.rcpts[k].orcpt;
        if (*m->env.rcpts[k].orig)
            r->orig = m->env.rcpts[k].orig;
        if (m->env.rcpts[k].done) {
            smtp_rcpt_result(r, NULL, 2, "2.0.0", "already delivered");
            continue;
        }
        if (!smtp_addr_sendable(r->addr))
            smtp_rcpt_result(r, NULL, 5, "5.1.3",
                             "bad recipient address syntax");
    }
    free(used);
    if (!smtp_addr_sendable(req->sender)) {
        smtp_error_set(&e, 5, "5.1.7", "bad sender address syntax");
        fail_pending(req, NULL, &e);
        return -1;
    }
    v = qfile_attr(&m->env, "smtputf8");
    m->smtputf8 = v != NULL && strcmp(v, "1") == 0;
    v = qfile_attr(&m->env, "body");
    m->eightbit = v != NULL &&
                  (strcmp(v, "8BITMIME") == 0 || strcmp(v, "BINARYMIME") == 0);
    v = qfile_attr(&m->env, "ret");
    m->ret = v != NULL && (strcmp(v, "FULL") == 0 || strcmp(v, "HDRS") == 0)
                 ? v
                 : NULL;
    v = qfile_attr(&m->env, "envid");
    m->envid = v != NULL && *v ? v : NULL;
    smtp_measure_init(&meas);
    if (qfile_read_content(m->fd, &m->env, measure_chunk, &meas, err,
                           sizeof(err)) < 0) {
        smtp_error_set(&e, 4, "4.3.0", "cannot read queue file: %s", err);
        fail_pending(req, NULL, &e);
        return -1;
    }
    smtp_measure_end(&meas);
    m->size = meas.size;
    m->eightbit = m->eightbit || meas.eightbit;
    m->header_8bit = meas.header_8bit;
    return 0;
}

/* ---- the loop over servers ---- */

struct attempt {
    bool tried;        /* DNS or a server was asked */
    bool handshake_ok; /* some session got past greeting and EHLO */
    int sessions;
    double t_conn; /* monotonic: first session ready; 0 = none */
};

/* After a transaction: keep the session for the next request, or close. */
static void session_done(struct smtp_session *s, struct smtp_request *req)
{
    if (s->reusable && pending_count(req) == 0)
        smtp_cache_put(s);
    else
        smtp_session_close(s, true);
}

static bool session_limit_reached(const struct attempt *a)
{
    return smtp_params.mx_session_limit > 0 &&
           a->sessions >= smtp_params.mx_session_limit;
}

static void try_targets(struct smtp_delivery *d, const char *key,
                        const struct smtp_target *t, size_t n, bool more_sites,
                        struct attempt *a)
{
    struct smtp_request *req = d->req;

    for (size_t i = 0; i < n && pending_count(req) > 0; i++) {
        enum smtp_open_result res;
        struct smtp_session *s;
        struct smtp_error e;
        char relay[SMTP_RELAY_MAX];

        if (session_limit_reached(a))
            break;
        res = smtp_session_open(&t[i], d->lmtp, true, req->queue_id, &s, &e);
        if (res == SMTP_OPEN_RETRY_PLAIN) {
            log_info("%s: %s[%s]:%u: TLS failed, trying again without TLS",
                     req->queue_id, t[i].host, t[i].addr, t[i].port);
            res =
                smtp_session_open(&t[i], d->lmtp, false, req->queue_id, &s, &e);
        }
        if (res != SMTP_OPEN_OK) {
            if (res == SMTP_OPEN_CONNECT)
                str_lcpy(relay, "none", sizeof(relay));
            else if (t[i].family == AF_UNIX)
                snprintf(relay, sizeof(relay), "%s[%s]", t[i].host, t[i].addr);
            else
                snprintf(relay, sizeof(relay), "%s[%s]:%u", t[i].host,
                         t[i].addr, t[i].port);
            /* Postfix logs why it skips a server it will not report. */
            if (e.status == 4 && (i + 1 < n || more_sites))
                log_info("%s: %s", req->queue_id, e.reason);
            fail_pending(req, relay, &e);
            continue;
        }
        a->sessions++;
        a->handshake_ok = true;
        if (a->t_conn == 0)
            a->t_conn = smtp_now();
        s->key = xstrdup(key);
        smtp_xfer(s, d);
        session_done(s, req);
    }
}

/* Parse one next hop; smtp_tcp_port / lmtp_tcp_port when none is given. */
static int site_parse(const char *text, bool lmtp, struct smtp_nexthop *nh,
                      struct smtp_error *e)
{
    const char *why;
    char tmp[200];

    if (smtp_nexthop_parse(text, lmtp, nh, &why) < 0) {
        smtp_error_set(e, 4, "4.3.5", "bad next hop \"%s\": %s",
                       log_printable(tmp, sizeof(tmp), text, strlen(text)),
                       why);
        return -1;
    }
    if (!nh->port_given && nh->kind != SMTP_NEXTHOP_UNIX)
        nh->port = lmtp ? smtp_params.lmtp_port : smtp_params.smtp_port;
    return 0;
}

/*
 * No server could be found for a site (DNS, a loop, a null MX).  As in
 * Postfix, a hard failure is not final while fallback relays remain to be
 * tried, and a relayhost or fallback relay that does not resolve is a
 * configuration problem: deferred with 4.3.5, never bounced.
 */
static void site_failed(struct smtp_request *req, const struct smtp_error *e,
                        bool more_sites, bool is_fallback, bool is_relayhost)
{
    struct smtp_error soft = *e;

    if (e->status == 5 && (more_sites || is_fallback || is_relayhost)) {
        soft.status = 4;
        soft.dsn[0] = '4';
        if (!more_sites) {
            str_lcpy(soft.dsn, "4.3.5", sizeof(soft.dsn));
            log_warn("%s: %s configuration problem", req->queue_id,
                     is_fallback ? "smtp_fallback_relay" : "relayhost");
        }
    }
    fail_pending(req, NULL, &soft);
}

/*
 * The next hop, then (smtp only) each smtp_fallback_relay in turn for the
 * recipients that are still undecided: the servers were unreachable or
 * answered 4XX, or the next hop was not found.  The address and session
 * limits apply to each site separately, as in Postfix.
 */
static void deliver_remote(struct smtp_delivery *d, struct attempt *a)
{
    struct smtp_request *req = d->req;
    const struct argv *fallback = smtp_params.fallback_relay;
    size_t nsites = 1 + (d->lmtp ? 0 : fallback->n);
    bool is_relayhost = *smtp_params.relayhost != 0 &&
                        strcmp(req->nexthop, smtp_params.relayhost) == 0;
    struct smtp_session *s;
    struct buf key = BUF_INIT;

    for (size_t i = 0; i < nsites && pending_count(req) > 0; i++) {
        const char *site = i == 0 ? req->nexthop : fallback->v[i - 1];
        bool more_sites = i + 1 < nsites, final = false;
        struct smtp_target *t = NULL;
        struct smtp_nexthop nh;
        struct smtp_error e;
        size_t n = 0;

        if (site_parse(site, d->lmtp, &nh, &e) < 0) {
            if (i > 0) {
                log_warn("%s: smtp_fallback_relay: %s", req->queue_id,
                         e.reason);
                continue;
            }
            fail_pending(req, NULL, &e);
            break;
        }
        a->tried = true;
        buf_reset(&key);
        buf_printf(&key, "%s:%s", req->transport, site);
        a->sessions = 0;
        if (i == 0 && (s = smtp_cache_take(key.data)) != NULL) {
            a->sessions++;
            a->handshake_ok = true;
            a->t_conn = smtp_now();
            smtp_xfer(s, d);
            session_done(s, req);
        }
        if (pending_count(req) == 0 || session_limit_reached(a))
            continue;
        if (smtp_targets(&nh, &t, &n, &e, &final) < 0) {
            site_failed(req, &e, more_sites && !final, i > 0,
                        i == 0 && is_relayhost);
        } else {
            try_targets(d, key.data, t, n, more_sites && !final, a);
        }
        free(t);
        if (final)
            break;
    }
    buf_free(&key);
}

static void report(const struct smtp_request *req, double wall_start,
                   double t_start, double t_conn)
{
    double t_end = smtp_now();
    double now = wall_start + (t_end - t_start);
    struct delivery_report rep;
    struct buf line = BUF_INIT;

    memset(&rep, 0, sizeof(rep));
    if (req->active_time > 0) {
        rep.delays[0] = req->active_time - (double)req->arrival;
        rep.delays[1] = wall_start - req->active_time;
    } else {
        rep.delays[0] = wall_start - (double)req->arrival;
    }
    rep.delays[2] = (t_conn > 0 ? t_conn : t_end) - t_start;
    rep.delays[3] = t_conn > 0 ? t_end - t_conn : 0;
    rep.delay = now - (double)req->arrival;
    for (size_t i = 0; i < req->nrcpt; i++) {
        const struct smtp_rcpt *r = &req->rcpts[i];
        char relay[SMTP_RELAY_MAX + 32];

        if (r->conn_use > 1 && strcmp(r->relay, "none") != 0)
            snprintf(relay, sizeof(relay), "%s, conn_use=%u", r->relay,
                     r->conn_use);
        else
            str_lcpy(relay, r->relay, sizeof(relay));
        rep.rcpt = r->addr;
        rep.orig_rcpt = r->orig;
        rep.relay = relay;
        rep.dsn = r->dsn;
        rep.status = r->status == 2   ? "sent"
                     : r->status == 5 ? "bounced"
                                      : "deferred";
        rep.reason = r->reason;
        buf_reset(&line);
        delivery_report_format(&line, &rep);
        log_info("%s: %s", req->queue_id, line.data);
    }
    buf_free(&line);
}

void smtp_deliver(struct smtp_request *req)
{
    struct smtp_message msg;
    struct smtp_delivery d;
    struct attempt a;
    double t_start = smtp_now(), wall_start = wall_now();
    bool deferred = false;

    memset(&msg, 0, sizeof(msg));
    memset(&a, 0, sizeof(a));
    msg.fd = -1;
    d.req = req;
    d.msg = &msg;
    d.lmtp = strcmp(req->transport, "lmtp") == 0;
    req->site_trouble = false;
    if (message_open(req, &msg) == 0 && pending_count(req) > 0)
        deliver_remote(&d, &a);
    for (size_t i = 0; i < req->nrcpt; i++) {
        struct smtp_rcpt *r = &req->rcpts[i];

        if (r->status == 0)
            smtp_rcpt_result(r, NULL, 4, "4.4.1",
                             "no server of %s could be tried", req->nexthop);
        r->final = true;
        if (r->status == 4)
            deferred = true;
    }
    /* Connection or handshake trouble is the site's, not the message's. */
    req->site_trouble = deferred && a.tried && !a.handshake_ok;
    report(req, wall_start, t_start, a.t_conn);
    qfile_envelope_free(&msg.env);
    if (msg.fd >= 0)
        close(msg.fd);
}
