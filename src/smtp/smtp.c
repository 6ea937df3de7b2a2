/*
 * smtp - the SMTP and LMTP client delivery agent: relays messages in the
 * active queue to the next hop qmgr names, over SMTP (MX lookup, TLS) or
 * LMTP (to a mailbox server over TCP or a unix socket).  master runs it
 * as a single server; each connection comes from qmgr and carries many
 * requests, one at a time (the qmgr -> agent protocol of mail_proto.h,
 * with its nexthop and transport attributes).  The service name decides
 * the transport when the request does not: a master.cf entry named
 * "lmtp" speaks LMTP.
 *
 * Trust: qmgr is another process; each request is checked as if it came
 * from the network (grammar, queue ID, queue name, offsets, next hop),
 * and only recipients that the queue file itself lists are delivered.  A
 * malformed request ends the connection without a reply; qmgr then
 * treats the request as failed and tries again later.
 *
 * Between requests the last SMTP connection stays open for
 * smtp_connection_cache_time_limit (and at most
 * smtp_connection_reuse_time_limit after it was opened), so the next
 * message to the same next hop skips DNS, TCP, greeting and TLS.
 *
 * This agent logs each recipient's "to=<...>, relay=..., status=..."
 * line itself, as Postfix's smtp does, and says so with logged=1 in its
 * reply so qmgr does not log the same line again.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "smtp/smtp.h"
#include "global/config.h"
#include "global/dns.h"
#include "global/mail_proto.h"
#include "global/server.h"
#include "util/attr.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/stream.h"
#include "util/tls.h"

/* A single read or write of a request or reply. */
#define SMTP_IPC_TIMEOUT_MS (300 * 1000)
/* qmgr closes idle connections much sooner; this only bounds a hung one. */
#define SMTP_IDLE_MAX_MS (3600 * 1000)
/* How often an idle connection looks at server_should_exit(). */
#define SMTP_IDLE_TICK_MS 1000
/* DNS: c-ares' per-try timeout and tries (the libc resolver's defaults). */
#define SMTP_DNS_TIMEOUT_MS 5000
#define SMTP_DNS_TRIES 2

struct dns_resolver *smtp_dns;
struct tls_ctx *smtp_tls_ctx;
char smtp_tls_ctx_error[256];

/*
 * Wait for the next request; false when it is time to hang up.  The
 * cached SMTP connection is closed when its time is up meanwhile.
 */
static bool smtp_wait_request(struct stream *s)
{
    long long waited = 0;

    while (stream_read_pending(s) == 0) {
        struct pollfd pfd = {.fd = stream_fd(s), .events = POLLIN};
        double deadline = smtp_cache_deadline();
        int tick = SMTP_IDLE_TICK_MS, n;

        if (server_should_exit() || waited >= SMTP_IDLE_MAX_MS)
            return false;
        if (deadline > 0) {
            double left = deadline - smtp_now();

            if (left <= 0) {
                smtp_cache_close();
                continue;
            }
            if (left * 1000 < tick)
                tick = (int)(left * 1000) + 1;
        }
        n = poll(&pfd, 1, tick);
        if (n > 0)
            return true;
        if (n < 0 && errno != EINTR)
            return false;
        waited += tick;
    }
    return true;
}

static bool parse_time(const char *v, double *out)
{
    char *end;
    double d;

    errno = 0;
    d = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(d) || d < 0 || d > 1e11)
        return false;
    *out = d;
    return true;
}

/* Validate a request frame.  Returns NULL or what is wrong with it. */
static const char *smtp_parse_request(const struct attr_list *list,
                                      struct smtp_request *req)
{
    const char *request = NULL;
    struct smtp_rcpt *cur = NULL;
    size_t cap = 0;

    memset(req, 0, sizeof(req[0]));
    for (size_t i = 0; i < list->n; i++) {
        const struct attr *a = &list->v[i];
        const char *v = attr_text(a);
        char *end;

        if (v == NULL)
            return "attribute value contains NUL";
        if (strcmp(a->name, "rcpt") == 0) {
            if (*v == 0)
                return "empty recipient";
            if (req->nrcpt == cap) {
                cap = cap ? cap * 2 : 8;
                req->rcpts =
                    xreallocarray(req->rcpts, cap, sizeof(*req->rcpts));
            }
            cur = &req->rcpts[req->nrcpt++];
            memset(cur, 0, sizeof(*cur));
            cur->addr = v;
            cur->orig = "";
            cur->notify = "";
            cur->orcpt = "";
            cur->offset = -1;
        } else if (strcmp(a->name, "orig_rcpt") == 0) {
            if (cur == NULL)
                return "orig_rcpt before rcpt";
            cur->orig = v;
        } else if (strcmp(a->name, "offset") == 0) {
            if (cur == NULL)
                return "offset before rcpt";
            errno = 0;
            cur->offset = strtoll(v, &end, 10);
            if (errno || end == v || *end || cur->offset < 0)
                return "bad offset";
        } else if (cur != NULL) {
            continue; /* per-recipient extensions of a newer qmgr */
        } else if (strcmp(a->name, "request") == 0) {
            request = v;
        } else if (strcmp(a->name, "queue_id") == 0) {
            req->queue_id = v;
        } else if (strcmp(a->name, "queue") == 0) {
            req->queue = v;
        } else if (strcmp(a->name, "sender") == 0) {
            req->sender = v;
        } else if (strcmp(a->name, "nexthop") == 0) {
            req->nexthop = v;
        } else if (strcmp(a->name, "transport") == 0) {
            req->transport = v;
        } else if (strcmp(a->name, "arrival") == 0) {
            errno = 0;
            req->arrival = strtoll(v, &end, 10);
            if (errno || end == v || *end || req->arrival < 0)
                return "bad arrival time";
        } else if (strcmp(a->name, "active_time") == 0) {
            if (!parse_time(v, &req->active_time))
                return "bad active_time";
        }
    }
    if (request == NULL || strcmp(request, "deliver") != 0)
        return "not a delivery request";
    if (req->queue_id == NULL || !mail_queue_id_ok(req->queue_id))
        return "bad queue ID";
    if (req->queue == NULL || strcmp(req->queue, MAIL_QUEUE_ACTIVE) != 0)
        return "queue is not \"active\"";
    if (req->nexthop == NULL || *req->nexthop == 0)
        return "no nexthop";
    if (req->transport == NULL)
        req->transport =
            strcmp(server_service_name(), "lmtp") == 0 ? "lmtp" : "smtp";
    if (strcmp(req->transport, "smtp") != 0 &&
        strcmp(req->transport, "lmtp") != 0)
        return "transport is neither smtp nor lmtp";
    if (req->sender == NULL)
        req->sender = "";
    if (req->nrcpt == 0)
        return "no recipients";
    for (size_t i = 0; i < req->nrcpt; i++)
        if (req->rcpts[i].offset < 0)
            return "recipient without offset";
    return NULL;
}

static void smtp_reply_frame(struct buf *frame, const struct smtp_request *req)
{
    attr_put_int(frame, "site_trouble", req->site_trouble ? 1 : 0);
    for (size_t i = 0; i < req->nrcpt; i++) {
        const struct smtp_rcpt *r = &req->rcpts[i];

        attr_put_int(frame, "offset", r->offset);
        attr_put_int(frame, "status", r->status);
        attr_put_str(frame, "dsn", r->dsn);
        attr_put_str(frame, "reason", r->reason);
        attr_put_str(frame, "relay", r->relay);
        attr_put_int(frame, "logged", 1);
    }
    attr_end(frame);
}

static void smtp_serve(int fd)
{
    struct stream *s = stream_open(fd);
    struct attr_list list = ATTR_LIST_INIT;
    struct smtp_request req;
    struct buf frame = BUF_INIT;

    stream_set_timeout(s, SMTP_IPC_TIMEOUT_MS);
    while (smtp_wait_request(s)) {
        const char *err = NULL;
        enum stream_status st;

        st = attr_read(s, &list, MAIL_PROTO_FRAME_MAX, &err);
        if (st == STREAM_EOF)
            break;
        if (st != STREAM_OK) {
            log_warn("reading request from qmgr: %s",
                     st == STREAM_TIMEOUT   ? "timeout"
                     : st == STREAM_TOOLONG ? "request too large"
                     : err                  ? err
                                            : stream_error(s));
            break;
        }
        if ((err = smtp_parse_request(&list, &req)) != NULL) {
            log_warn("bad request from qmgr: %s", err);
            free(req.rcpts);
            break;
        }
        smtp_deliver(&req);
        buf_reset(&frame);
        smtp_reply_frame(&frame, &req);
        free(req.rcpts);
        stream_write(s, frame.data, frame.len);
        if (stream_flush(s) != STREAM_OK) {
            /* qmgr went away: it will retry what it did not hear about. */
            log_warn("writing reply to qmgr: %s", stream_error(s));
            break;
        }
    }
    smtp_cache_close();
    attr_list_free(&list);
    buf_free(&frame);
    /* The skeleton closes fd. */
    (void)stream_release_fd(s);
    stream_close(s);
}

static void smtp_pre_init(void)
{
    char err[512];

    smtp_params_load();
    smtp_dns = dns_open(smtp_params.dns_servers, SMTP_DNS_TIMEOUT_MS,
                        SMTP_DNS_TRIES, err, sizeof(err));
    if (smtp_dns == NULL)
        log_fatal("%s", err);
    if (smtp_params.tls_level != SMTP_TLS_NONE) {
        struct tls_ctx_opts o = {
            .role = TLS_ROLE_CLIENT,
            .ca_file = smtp_params.tls_ca_file,
            .ca_path = smtp_params.tls_ca_path,
        };

        /* Trust anchors are read now, while we may still read them. */
        smtp_tls_ctx =
            tls_ctx_new(&o, smtp_tls_ctx_error, sizeof(smtp_tls_ctx_error));
        if (smtp_tls_ctx == NULL)
            log_warn("TLS is unavailable: %s", smtp_tls_ctx_error);
    }
}

static void smtp_post_init(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    srandom((unsigned)(ts.tv_nsec ^ ts.tv_sec ^ (long)getpid() << 16));
}

int main(int argc, char **argv)
{
    static const struct server_opts opts = {
        .name = "smtp",
        .pre_init = smtp_pre_init,
        .post_init = smtp_post_init,
        .serve = smtp_serve,
    };

    return server_main(argc, argv, &opts);
}
