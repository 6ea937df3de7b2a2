/*
 * local - the local delivery agent: delivers messages in the active queue
 * into Maildirs, for local (mydestination) and virtual_mailbox
 * recipients.  master runs it as a single server (master.cf: unpriv n, so
 * it keeps root when master has it and switches to each mailbox owner's
 * ids per delivery); each connection comes from qmgr and carries many
 * requests (the qmgr -> local protocol of mail_proto.h), one at a time or
 * pipelined; what waits is delivered as one batch under one group commit.
 *
 * Trust: qmgr is another process, so each request is checked as if it
 * came from the network (grammar, queue ID syntax, queue name, offsets),
 * and local delivers only recipients that the queue file itself lists.
 * A malformed request ends the connection without a reply to it (the
 * requests before it in the batch are answered); qmgr then treats it as
 * failed and tries again later.
 *
 * Failures are temporary unless the recipient is unknown or the message
 * loops: a delivery is reported as done (status 2) once the Maildir file
 * is linked into new/.  It is not durable yet: the reply carries a group
 * commit ticket (sync_ticket) and qmgr counts the deliveries only once a
 * syncfs() round has covered it, usually the next one cleanup runs for
 * new mail, so local itself does not wait for the disk.  Without the
 * shared group-commit state the batch is synced here before the reply.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "local/local.h"
#include "global/config.h"
#include "global/maildir.h"
#include "global/mail_proto.h"
#include "global/server.h"
#include "util/argv.h"
#include "util/attr.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/stream.h"

/* A single read or write of a request or reply. */
#define LOCAL_IO_TIMEOUT_MS (300 * 1000)
/* qmgr closes idle connections much sooner; this only bounds a hung one. */
#define LOCAL_IDLE_MAX_MS (3600 * 1000)
/* How often an idle connection looks at server_should_exit(). */
#define LOCAL_IDLE_TICK_MS 1000
/* Pipelined requests delivered under one group commit. */
#define LOCAL_BATCH_MAX 32

struct local_slot {
    struct attr_list list;
    struct local_request req;
};

struct resolver *local_resolver;
const char *local_queue_dir;
long long local_minimum_uid;

/* Wait for the next request; false when it is time to hang up. */
static bool local_wait_request(struct stream *s)
{
    long long waited = 0;

    while (stream_read_pending(s) == 0) {
        struct pollfd pfd = {.fd = stream_fd(s), .events = POLLIN};
        int n;

        if (server_should_exit() || waited >= LOCAL_IDLE_MAX_MS)
            return false;
        n = poll(&pfd, 1, LOCAL_IDLE_TICK_MS);
        if (n > 0)
            return true;
        if (n < 0 && errno != EINTR)
            return false;
        waited += LOCAL_IDLE_TICK_MS;
    }
    return true;
}

/* Validate a request frame.  Returns NULL or what is wrong with it. */
static const char *local_parse_request(const struct attr_list *list,
                                       struct local_request *req)
{
    const char *request = NULL, *queue = NULL;
    struct local_rcpt *cur = NULL;
    size_t cap = 0;

    memset(req, 0, sizeof(*req));
    for (size_t i = 0; i < list->n; i++) {
        const struct attr *a = &list->v[i];
        const char *v = attr_text(a);

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
            cur->offset = -1;
        } else if (strcmp(a->name, "orig_rcpt") == 0) {
            if (cur == NULL)
                return "orig_rcpt before rcpt";
            cur->orig = v;
        } else if (strcmp(a->name, "offset") == 0) {
            char *end;

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
            queue = v;
        } else if (strcmp(a->name, "sender") == 0) {
            req->sender = v;
        }
    }
    if (request == NULL || strcmp(request, "deliver") != 0)
        return "not a delivery request";
    if (req->queue_id == NULL || !mail_queue_id_ok(req->queue_id))
        return "bad queue ID";
    if (queue == NULL || strcmp(queue, MAIL_QUEUE_ACTIVE) != 0)
        return "queue is not \"active\"";
    if (req->nrcpt == 0)
        return "no recipients";
    for (size_t i = 0; i < req->nrcpt; i++)
        if (req->rcpts[i].offset < 0)
            return "recipient without offset";
    return NULL;
}

static void local_reply(struct buf *frame, const struct local_request *req,
                        uint64_t ticket)
{
    if (ticket > 0)
        attr_put_int(frame, "sync_ticket", (long long)ticket);
    for (size_t i = 0; i < req->nrcpt; i++) {
        const struct local_rcpt *r = &req->rcpts[i];

        attr_put_int(frame, "offset", r->offset);
        attr_put_int(frame, "status", r->status);
        attr_put_str(frame, "dsn", r->dsn);
        attr_put_str(frame, "reason", r->reason);
    }
    attr_end(frame);
}

/* Has qmgr sent more than we have read (a pipelined request, or EOF)? */
static bool local_more_pending(struct stream *s)
{
    struct pollfd pfd = {.fd = stream_fd(s), .events = POLLIN};

    return stream_read_pending(s) > 0 || poll(&pfd, 1, 0) > 0;
}

/* Read and check one request into slot; false (logged) to hang up. */
static bool local_read_request(struct stream *s, struct local_slot *slot)
{
    const char *err = NULL;
    enum stream_status st;

    st = attr_read(s, &slot->list, MAIL_PROTO_FRAME_MAX, &err);
    if (st == STREAM_EOF)
        return false;
    if (st != STREAM_OK) {
        log_warn("reading request from qmgr: %s",
                 st == STREAM_TIMEOUT   ? "timeout"
                 : st == STREAM_TOOLONG ? "request too large"
                 : err                  ? err
                                        : stream_error(s));
        return false;
    }
    if ((err = local_parse_request(&slot->list, &slot->req)) != NULL) {
        log_warn("bad request from qmgr: %s", err);
        free(slot->req.rcpts);
        slot->req.rcpts = NULL;
        return false;
    }
    return true;
}

/*
 * Requests come one at a time, or pipelined when qmgr has several
 * messages for us: everything that is already waiting is delivered as one
 * batch, made durable by one group commit, and answered in order.
 */
static void local_serve(int fd)
{
    struct stream *s = stream_open(fd);
    static struct local_slot slots[LOCAL_BATCH_MAX];
    struct argv batch = ARGV_INIT;
    struct buf frame = BUF_INIT;
    bool more = true;

    stream_set_timeout(s, LOCAL_IO_TIMEOUT_MS);
    while (more && local_wait_request(s)) {
        char err[512];
        uint64_t ticket;
        size_t n = 0;

        do {
            if (!local_read_request(s, &slots[n])) {
                more = false;
                break;
            }
            local_deliver(&slots[n].req, &batch);
            n++;
        } while (n < LOCAL_BATCH_MAX && local_more_pending(s));
        if (maildir_batch_ticket(&batch, &ticket, err, sizeof(err)) < 0) {
            int saved = errno;

            log_warn("maildir delivery: %s", err);
            for (size_t i = 0; i < n; i++)
                local_batch_failed(&slots[i].req, saved, err);
        }
        buf_reset(&frame);
        for (size_t i = 0; i < n; i++) {
            local_reply(&frame, &slots[i].req, ticket);
            free(slots[i].req.rcpts);
            slots[i].req.rcpts = NULL;
        }
        if (n == 0)
            break;
        stream_write(s, frame.data, frame.len);
        if (stream_flush(s) != STREAM_OK) {
            /* qmgr went away: it will retry what it did not hear about. */
            log_warn("writing reply to qmgr: %s", stream_error(s));
            break;
        }
    }
    for (size_t i = 0; i < LOCAL_BATCH_MAX; i++)
        attr_list_free(&slots[i].list);
    buf_free(&frame);
    /* The skeleton closes fd. */
    (void)stream_release_fd(s);
    stream_close(s);
}

static void local_pre_init(void)
{
    struct config *cfg = config_global();
    char err[512];

    server_keep_heap();
    local_queue_dir = config_str(cfg, "queue_directory");
    local_minimum_uid = config_int(cfg, "virtual_minimum_uid");
    local_resolver = resolver_open(cfg, err, sizeof(err));
    if (local_resolver == NULL)
        log_fatal("%s", err);
    maildir_set_groupsync(mail_queue_groupsync());
}

int main(int argc, char **argv)
{
    static const struct server_opts opts = {
        .name = "local",
        .pre_init = local_pre_init,
        .serve = local_serve,
    };

    return server_main(argc, argv, &opts);
}
