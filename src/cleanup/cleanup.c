/*
 * cleanup - turn what smtpd received into a durable queue file.
 *
 * Runs under the single-server skeleton (global/server.h); serve() gets
 * one connection from smtpd that may carry several messages, each as
 * envelope frame, content frames and an end (or abort) frame (protocol in
 * global/mail_proto.h).  For each message it
 *   1. validates the envelope (cleanup_envelope.c) -- smtpd is not trusted
 *      more than a network client;
 *   2. expands recipients through virtual_alias_maps and alias_maps
 *      (cleanup_expand.c, tables via global/resolve.h and maps.h);
 *   3. creates the queue file (global/qfile.h), whose ID is known at once,
 *      writes the envelope records, then streams the content through the
 *      header parser (cleanup_content.c): a Received: header goes first,
 *      missing Message-ID:/Date:/From: go after the original headers
 *      (always for local clients, for others when
 *      always_add_missing_headers = yes, as Postfix does);
 *   4. enforces message_size_limit and hopcount_limit;
 *   5. commits (fsync file, rename into incoming/, fsync incoming/) and
 *      only then replies status=0 queue_id=ID.  qmgr watches incoming/.
 *
 * Failures: a bad envelope or a lookup/queue error is a temporary error
 * (status=4) after the message has been read to its end frame; a size or
 * hop-count violation is permanent (status=5); an abort frame discards
 * the file without reply; a broken frame or EOF mid-message discards the
 * file and drops the connection.  Nothing is acknowledged that is not on
 * stable storage.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup/cleanup.h"
#include "global/config.h"
#include "global/mail_proto.h"
#include "global/maps.h"
#include "global/qfile.h"
#include "global/resolve.h"
#include "global/server.h"
#include "util/attr.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/stream.h"

#define REASON_PROTOCOL "4.3.0 Error: internal protocol error"
#define REASON_WRITE "4.3.0 Error: queue file write error"
#define REASON_TOO_BIG "5.3.4 Message file too big"
#define REASON_HOPS "5.4.6 Too many hops"

/* Settings read once per process. */
static struct {
    const char *queue_dir;
    const char *myhostname;
    const char *mail_name;
    long long message_size_limit; /* 0 = none */
    long long header_size_limit;
    long long hopcount_limit;
    long long ipc_timeout; /* seconds */
    bool always_add_headers;
    struct cleanup_expand_cfg expand;
    struct resolver *resolver;
    struct cleanup_expand_ops ops;
} cl;

/* One message in progress. */
struct cleanup_msg {
    struct cleanup_envelope env;
    struct cleanup_rcpt_list rcpts; /* after expansion */
    struct qfile_writer *w;
    struct cleanup_content *content;
    char id[MAIL_QUEUE_ID_MAX];
    struct buf chunk;       /* content not yet in a record */
    long long client_bytes; /* content as smtpd sent it */
    long long queued_bytes; /* content in the queue file */
    int status;             /* 0, 4 or 5 */
    const char *reason;
};

/* ---- table access for cleanup_expand ---- */

static int ops_is_local(void *ctx, const char *domain)
{
    char err[256];
    int c = resolve_class(cl.resolver, domain, err, sizeof(err));

    if (c < 0) {
        log_warn("resolve %s: %s", domain, err);
        return -1;
    }
    return c == ADDR_CLASS_LOCAL;
}

static enum cleanup_lookup map_to_lookup(enum map_result r, const char *what,
                                         const char *err)
{
    if (r == MAP_ERROR) {
        log_warn("%s: %s", what, err);
        return CLEANUP_LOOKUP_ERROR;
    }
    return r == MAP_FOUND ? CLEANUP_FOUND : CLEANUP_NOTFOUND;
}

static enum cleanup_lookup ops_virtual_alias(void *ctx, const char *addr,
                                             bool is_local, struct buf *out)
{
    struct maplist *l = resolve_virtual_alias_maps(cl.resolver);
    char err[256] = "";

    if (maplist_empty(l))
        return CLEANUP_NOTFOUND;
    return map_to_lookup(maplist_lookup_addr(l, addr, cl.expand.delimiters,
                                             is_local, out, err, sizeof(err)),
                         "virtual_alias_maps", err);
}

static enum cleanup_lookup ops_alias(void *ctx, const char *key,
                                     struct buf *out)
{
    struct maplist *l = resolve_alias_maps(cl.resolver);
    char err[256] = "";

    if (maplist_empty(l))
        return CLEANUP_NOTFOUND;
    return map_to_lookup(maplist_lookup(l, key, out, err, sizeof(err)),
                         "alias_maps", err);
}

/* ---- start-up ---- */

static void cleanup_pre_init(void)
{
    struct config *cfg = config_global();
    char err[512];

    cl.queue_dir = config_str(cfg, "queue_directory");
    cl.myhostname = config_str(cfg, "myhostname");
    cl.mail_name = config_str(cfg, "mail_name");
    cl.message_size_limit = config_size(cfg, "message_size_limit");
    cl.header_size_limit = config_size(cfg, "header_size_limit");
    cl.hopcount_limit = config_int(cfg, "hopcount_limit");
    cl.ipc_timeout = config_time(cfg, "ipc_timeout");
    cl.always_add_headers = config_bool(cfg, "always_add_missing_headers");
    cl.expand.myorigin = config_str(cfg, "myorigin");
    cl.expand.delimiters = config_str(cfg, "recipient_delimiter");
    cl.expand.recursion_limit =
        config_int(cfg, "virtual_alias_recursion_limit");
    cl.expand.expansion_limit =
        config_int(cfg, "virtual_alias_expansion_limit");
    cl.expand.duplicate_limit = config_int(cfg, "duplicate_filter_limit");
    cl.expand.keep_orig = config_bool(cfg, "enable_original_recipient");
    /* Tables are opened while still privileged. */
    cl.resolver = resolver_open(cfg, err, sizeof(err));
    if (cl.resolver == NULL)
        log_fatal("%s", err);
    qfile_set_groupsync(mail_queue_groupsync());
    cl.ops.is_local = ops_is_local;
    cl.ops.virtual_alias = ops_virtual_alias;
    cl.ops.alias = ops_alias;
    cl.ops.ctx = NULL;
}

/* ---- one message ---- */

static void msg_fail(struct cleanup_msg *m, int status, const char *reason)
{
    if (m->status == 0) {
        m->status = status;
        m->reason = reason;
    }
    /* Nothing more is written; the tmp file goes now. */
    qfile_writer_abort(m->w);
    m->w = NULL;
}

/*
 * Content output.  Pieces arrive line by line around the header block and
 * frame by frame after it; they are gathered into full QFILE_CHUNK_MAX
 * 'B' records so that readers see few, large records.
 */
static int msg_put_content(const char *data, size_t len, void *ctx)
{
    struct cleanup_msg *m = ctx;

    if (m->w == NULL)
        return -1;
    buf_append(&m->chunk, data, len);
    m->queued_bytes += (long long)len;
    while (m->chunk.len >= QFILE_CHUNK_MAX) {
        qfile_put(m->w, QREC_BODY, m->chunk.data, QFILE_CHUNK_MAX);
        buf_consume(&m->chunk, QFILE_CHUNK_MAX);
    }
    return 0;
}

static void msg_flush_content(struct cleanup_msg *m)
{
    if (m->chunk.len > 0)
        qfile_put(m->w, QREC_BODY, m->chunk.data, m->chunk.len);
    buf_reset(&m->chunk);
}

static bool client_is_local(const struct cleanup_envelope *env)
{
    struct in6_addr a6;
    struct in_addr a4;

    /* No client address: a local submission. */
    if (env->client_addr == NULL)
        return true;
    if (inet_pton(AF_INET, env->client_addr, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, env->client_addr, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) ||
               (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return false;
}

/* The header block is complete: write it with what cleanup adds. */
static int msg_headers_done(struct cleanup_content *cc, void *ctx)
{
    struct cleanup_msg *m = ctx;
    const struct cleanup_envelope *env = &m->env;
    struct cleanup_received r = {0};
    struct buf h = BUF_INIT;
    const struct buf *block = cleanup_content_header_block(cc);
    bool add = cl.always_add_headers || client_is_local(env);
    char logbuf[1000];
    unsigned hops = cleanup_content_received_count(cc);

    if (hops >= (unsigned long long)cl.hopcount_limit) {
        log_info("%s: reject: hopcount exceeded (%u Received: headers); "
                 "from=<%s>",
                 m->id, hops, env->sender);
        msg_fail(m, 5, REASON_HOPS);
        return -1;
    }
    r.helo = env->helo;
    r.client_name = env->client_name;
    r.client_addr = env->client_addr;
    r.tls = env->tls;
    r.myhostname = cl.myhostname;
    r.mail_name = cl.mail_name;
    r.protocol = env->protocol;
    r.queue_id = m->id;
    r.rcpt = env->rcpts.n == 1 ? env->rcpts.v[0].addr : NULL;
    r.when = env->arrival;
    cleanup_format_received(&h, &r);
    msg_put_content(h.data, h.len, m);
    msg_put_content(block->data, block->len, m);

    buf_reset(&h);
    if (cleanup_content_has(cc, HDR_MESSAGE_ID)) {
        const char *v = cleanup_content_message_id(cc);
        log_info("%s: message-id=%s", m->id,
                 log_printable(logbuf, sizeof(logbuf), v, strlen(v)));
    } else if (add) {
        cleanup_format_message_id(&h, env->arrival, m->id, cl.myhostname);
        /* "Message-ID: <...>\n" -> log the <...> part. */
        log_info("%s: message-id=%.*s", m->id, (int)(h.len - 13), h.data + 12);
    } else {
        log_info("%s: message-id=<>", m->id);
    }
    if (add && !cleanup_content_has(cc, HDR_DATE)) {
        buf_puts(&h, "Date: ");
        cleanup_format_date(&h, env->arrival);
        buf_putc(&h, '\n');
    }
    if (add && !cleanup_content_has(cc, HDR_FROM))
        buf_printf(&h, "From: %s\n",
                   *env->sender ? env->sender : "MAILER-DAEMON");
    msg_put_content(h.data, h.len, m);
    buf_free(&h);
    return 0;
}

/* Envelope records; the file exists and the recipients are expanded. */
static void msg_write_envelope(struct cleanup_msg *m)
{
    const struct cleanup_envelope *env = &m->env;
    struct buf a = BUF_INIT;
    static const struct {
        const char *name;
        size_t offset;
    } attrs[] = {
#define A(n) {#n, offsetof(struct cleanup_envelope, n)}
        A(client_name), A(client_addr), A(client_port),
        A(helo),        A(protocol),    A(body),
        A(envid),       A(ret),         A(sasl_username),
#undef A
    };

    qfile_put_str(m->w, QREC_VERSION, QFILE_VERSION);
    buf_printf(&a, "%lld", (long long)env->arrival);
    qfile_put_str(m->w, QREC_TIME, a.data);
    qfile_put_str(m->w, QREC_SENDER, env->sender);
    for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
        const char *v = *(char *const *)((const char *)env + attrs[i].offset);
        if (v == NULL)
            continue;
        buf_reset(&a);
        buf_printf(&a, "%s=%s", attrs[i].name, v);
        qfile_put(m->w, QREC_ATTR, a.data, a.len);
    }
    qfile_put_str(m->w, QREC_ATTR, env->smtputf8 ? "smtputf8=1" : "smtputf8=0");
    for (size_t i = 0; i < m->rcpts.n; i++) {
        const struct cleanup_rcpt *r = &m->rcpts.v[i];
        qfile_put_rcpt(m->w, r->addr, r->orig, r->notify, r->orcpt);
    }
    qfile_put_str(m->w, QREC_MESSAGE, "");
    buf_free(&a);
}

/* Everything before the first content frame. */
static void msg_start(struct cleanup_msg *m, const struct attr_list *frame)
{
    const char *why;
    char err[512];

    if (cleanup_envelope_parse(frame, time(NULL), &m->env, &why) < 0) {
        log_warn("bad envelope from smtpd: %s", why);
        msg_fail(m, 4, REASON_PROTOCOL);
        return;
    }
    m->w = qfile_writer_open(cl.queue_dir, err, sizeof(err));
    if (m->w == NULL) {
        log_warn("%s", err);
        msg_fail(m, 4, REASON_WRITE);
        return;
    }
    snprintf(m->id, sizeof(m->id), "%s", qfile_writer_id(m->w));
    if (cleanup_expand(&cl.expand, &cl.ops, &m->env.rcpts, &m->rcpts, m->id,
                       &m->status, &m->reason) < 0) {
        msg_fail(m, m->status, m->reason);
        return;
    }
    if (m->rcpts.n == 0) { /* cannot happen: expansion keeps something */
        msg_fail(m, 4, REASON_PROTOCOL);
        return;
    }
    msg_write_envelope(m);
    m->content = cleanup_content_new((size_t)cl.header_size_limit,
                                     msg_put_content, msg_headers_done, m);
}

static void msg_data(struct cleanup_msg *m, const char *data, size_t len)
{
    m->client_bytes += (long long)len;
    if (m->status != 0)
        return; /* draining a message that already failed */
    if (cl.message_size_limit > 0 && m->client_bytes > cl.message_size_limit) {
        log_info("%s: reject: message size exceeds message_size_limit "
                 "(%lld bytes); from=<%s>",
                 m->id, cl.message_size_limit, m->env.sender);
        msg_fail(m, 5, REASON_TOO_BIG);
        return;
    }
    /* A failure inside has already called msg_fail(). */
    (void)cleanup_content_feed(m->content, data, len);
}

static void msg_end(struct cleanup_msg *m)
{
    char err[512], size[32];

    if (m->status == 0)
        (void)cleanup_content_finish(m->content);
    if (m->status != 0)
        return;
    msg_flush_content(m);
    snprintf(size, sizeof(size), "%lld", m->queued_bytes);
    qfile_put_str(m->w, QREC_SIZE, size);
    if (qfile_writer_commit(m->w, m->id, err, sizeof(err)) < 0) {
        m->w = NULL; /* commit freed it */
        log_warn("%s: %s", m->id, err);
        msg_fail(m, 4, REASON_WRITE);
        return;
    }
    m->w = NULL;
    /* "from=<...>, size=N, nrcpt=N (queue active)" is qmgr's line, as in
     * Postfix: it is logged when the message enters the active queue. */
}

static void msg_free(struct cleanup_msg *m)
{
    qfile_writer_abort(m->w);
    cleanup_content_free(m->content);
    buf_free(&m->chunk);
    cleanup_envelope_free(&m->env);
    cleanup_rcpt_list_free(&m->rcpts);
}

static bool frame_flag(const struct attr *a)
{
    return a->len == 1 && a->value[0] == '1';
}

/*
 * One message, its envelope frame already read.  Returns 0 when the
 * connection may carry another message, -1 when it must be dropped.
 */
static int cleanup_one(struct stream *s, struct attr_list *frame)
{
    struct cleanup_msg m = {0};
    const char *err;
    enum stream_status st;
    int rc = -1;

    msg_start(&m, frame);
    for (;;) {
        const struct attr *a;

        st = attr_read(s, frame, MAIL_PROTO_CHUNK, &err);
        if (st != STREAM_OK) {
            log_warn("%s%slost message content from smtpd: %s", m.id,
                     *m.id ? ": " : "", err);
            break;
        }
        a = &frame->v[0];
        if (frame->n == 1 && strcmp(a->name, "data") == 0) {
            msg_data(&m, a->value, a->len);
            continue;
        }
        if (frame->n == 1 && strcmp(a->name, "abort") == 0 && frame_flag(a)) {
            rc = 0; /* smtpd changed its mind: no reply */
            break;
        }
        if (frame->n == 1 && strcmp(a->name, "end") == 0 && frame_flag(a)) {
            struct buf reply = BUF_INIT;

            msg_end(&m);
            if (m.status == 0) {
                attr_put_str(&reply, "status", "0");
                attr_put_str(&reply, "queue_id", m.id);
            } else {
                attr_put_int(&reply, "status", m.status);
                attr_put_str(&reply, "reason", m.reason);
            }
            attr_end(&reply);
            stream_write(s, reply.data, reply.len);
            buf_free(&reply);
            if (stream_flush(s) != STREAM_OK)
                log_warn("%s%ssending reply to smtpd: %s", m.id,
                         *m.id ? ": " : "", stream_error(s));
            else
                rc = 0;
            break;
        }
        log_warn("%s%sunexpected frame from smtpd (%zu attributes, "
                 "first \"%.64s\")",
                 m.id, *m.id ? ": " : "", frame->n, frame->n ? a->name : "");
        break;
    }
    msg_free(&m);
    return rc;
}

static void cleanup_serve(int fd)
{
    struct stream *s = stream_open(fd);
    struct attr_list frame = ATTR_LIST_INIT;
    const char *err;

    stream_set_timeout(
        s, cl.ipc_timeout > 0
               ? (int)(cl.ipc_timeout > 86400 ? 86400 : cl.ipc_timeout) * 1000
               : -1);
    for (;;) {
        enum stream_status st =
            attr_read(s, &frame, MAIL_PROTO_FRAME_MAX, &err);
        if (st == STREAM_EOF)
            break;
        if (st != STREAM_OK) {
            log_warn("reading envelope from smtpd: %s", err);
            break;
        }
        if (cleanup_one(s, &frame) < 0)
            break;
    }
    attr_list_free(&frame);
    /* The skeleton closes fd. */
    stream_release_fd(s);
    stream_close(s);
}

int main(int argc, char **argv)
{
    static const struct server_opts opts = {
        .name = "cleanup",
        .pre_init = cleanup_pre_init,
        .serve = cleanup_serve,
    };

    return server_main(argc, argv, &opts);
}
