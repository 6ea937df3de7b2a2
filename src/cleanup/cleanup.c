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
 *   4. applies header_checks, mime_header_checks, nested_header_checks
 *      and body_checks (cleanup_checks.c, cleanup_body.c) on the way:
 *      REJECT fails the message, DISCARD acknowledges it but queues
 *      nothing, HOLD queues it into hold/, IGNORE/REPLACE/PREPEND edit
 *      the content, WARN/INFO only log;
 *   5. enforces message_size_limit and hopcount_limit;
 *   6. commits (fsync file, rename into incoming/, fsync incoming/) and
 *      only then replies status=0 queue_id=ID.  qmgr watches incoming/.
 *
 * Failures: a bad envelope or a lookup/queue error is a temporary error
 * (status=4) after the message has been read to its end frame; a size or
 * hop-count violation is permanent (status=5), a content-check REJECT
 * as its text says (5.7.1 unless given); a content-check table that
 * could not be opened at start (a pattern that does not compile) defers
 * every message with a log line naming file and line, as Postfix defers
 * when a table cannot be read; an abort frame discards
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
#define REASON_CONFIG "4.3.5 Error: server configuration problem"
#define REASON_LOOKUP "4.3.0 Error: temporary lookup failure"

/* Longest header or body line given to a content-check table. */
#define CHECK_KEY_MAX MAP_PATTERN_KEY_MAX

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
    /* Content checks: NULL = none.  Equal parameter values share one. */
    struct maplist *checks[CLEANUP_CHECK_LISTS];
    bool any_checks;
    char checks_error[600]; /* a table that did not open */
    struct cleanup_body_limits body_limits;
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
    char reason_buf[CLEANUP_REASON_MAX + 1];
    /* Content checks. */
    struct cleanup_body *body;  /* NULL: body passes untouched */
    struct cleanup_ctype ctype; /* of the primary header block */
    bool discard;               /* DISCARD: acknowledge, queue nothing */
    bool hold;                  /* HOLD: commit into hold/ */
    long long edit_budget;      /* header bytes PREPEND/REPLACE may add */
    long long body_budget;      /* body bytes they may add (-1: no limit) */
    struct buf key;
    struct buf value;
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

/*
 * Open the four content-check lists.  mime_ and nested_header_checks
 * default to $header_checks: a list with the same value as an earlier one
 * shares its tables.  A table that does not open is remembered, not
 * fatal: every message is then deferred with that error in the log.
 */
static void cleanup_checks_open(struct config *cfg)
{
    const char *values[CLEANUP_CHECK_LISTS];
    bool done[CLEANUP_CHECK_LISTS];
    char err[512];

    for (int i = 0; i < CLEANUP_CHECK_LISTS; i++) {
        values[i] = config_str(cfg, cleanup_check_names[i]);
        cl.checks[i] = NULL;
        done[i] = *values[i] == 0;
        for (int j = 0; j < i && !done[i]; j++) {
            if (strcmp(values[i], values[j]) == 0) {
                cl.checks[i] = cl.checks[j]; /* NULL if it failed */
                done[i] = true;
            }
        }
        if (done[i])
            continue;
        if ((cl.checks[i] = maplist_open(values[i], err, sizeof(err))) ==
            NULL) {
            log_error("%s: %s", cleanup_check_names[i], err);
            if (cl.checks_error[0] == 0)
                snprintf(cl.checks_error, sizeof(cl.checks_error), "%s: %s",
                         cleanup_check_names[i], err);
            continue;
        }
        if (maplist_empty(cl.checks[i])) {
            maplist_close(cl.checks[i]);
            cl.checks[i] = NULL;
        }
    }
    for (int i = 0; i < CLEANUP_CHECK_LISTS; i++)
        cl.any_checks |= cl.checks[i] != NULL;
    cl.body_limits.line_max = (size_t)config_int(cfg, "line_length_limit");
    cl.body_limits.header_max = (size_t)cl.header_size_limit;
    cl.body_limits.check_max =
        (size_t)config_size(cfg, "body_checks_size_limit");
}

static void cleanup_pre_init(void)
{
    struct config *cfg = config_global();
    char err[512];

    server_keep_heap();
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
    cleanup_checks_open(cfg);
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

/* ---- content checks ---- */

/* Postfix's log line of a fired action (reject, discard, hold, ...). */
static void msg_check_log(struct cleanup_msg *m, const char *what,
                          enum cleanup_part part, const char *text)
{
    struct buf line = BUF_INIT;

    cleanup_check_log_line(&line, m->id, what,
                           part == CLEANUP_PART_BODY ? "body" : "header",
                           m->key.data, m->key.len, &m->env, text);
    log_info("%s", line.data);
    buf_free(&line);
}

/* May an edit add len bytes?  Header edits are held in memory. */
static bool msg_edit_allowed(struct cleanup_msg *m, enum cleanup_part part,
                             size_t len, enum cleanup_check_list which)
{
    long long *budget =
        part == CLEANUP_PART_BODY ? &m->body_budget : &m->edit_budget;

    if (*budget < 0)
        return true;
    if ((long long)len > *budget) {
        log_warn("%s: %s map: PREPEND/REPLACE text beyond %s, ignored", m->id,
                 cleanup_check_names[which],
                 part == CLEANUP_PART_BODY ? "message_size_limit"
                                           : "header_size_limit");
        return false;
    }
    *budget -= (long long)len;
    return true;
}

/* The check hook (cleanup.h): look the line up and do what it says. */
static int msg_check(void *ctx, enum cleanup_part part, struct buf *text,
                     struct buf *prepend)
{
    struct cleanup_msg *m = ctx;
    bool header = part != CLEANUP_PART_BODY;
    enum cleanup_check_list which;
    struct cleanup_action a;
    char err[512] = "", safe[300];
    enum map_result r;

    if (m->status != 0 || m->discard)
        return -1;
    if (part == CLEANUP_PART_PRIMARY)
        cleanup_ctype_note(&m->ctype, text->data, text->len);
    which = cleanup_check_list_for(part, text->data, text->len);
    if (cl.checks[which] == NULL)
        return CLEANUP_KEEP;
    if (header) {
        cleanup_header_unfold(&m->key, text->data, text->len, CHECK_KEY_MAX);
    } else {
        buf_reset(&m->key);
        buf_append(&m->key, text->data,
                   text->len > CHECK_KEY_MAX ? CHECK_KEY_MAX : text->len);
    }
    r = maplist_lookup(cl.checks[which], buf_cstr(&m->key), &m->value, err,
                       sizeof(err));
    if (r == MAP_ERROR) {
        log_warn("%s: %s map lookup problem -- message not accepted, try "
                 "again later: %s",
                 m->id, cleanup_check_names[which], err);
        msg_fail(m, 4, REASON_LOOKUP);
        return -1;
    }
    if (r == MAP_NOTFOUND)
        return CLEANUP_KEEP;
    cleanup_action_parse(buf_cstr(&m->value), header, &a);
    switch (a.kind) {
    case CLEANUP_ACT_REJECT:
        snprintf(m->reason_buf, sizeof(m->reason_buf), "%s", a.reason);
        msg_check_log(m, "reject", part, m->reason_buf);
        msg_fail(m, a.status, m->reason_buf);
        return -1;
    case CLEANUP_ACT_DISCARD:
        msg_check_log(m, "discard", part, a.text);
        m->discard = true;
        qfile_writer_abort(m->w);
        m->w = NULL;
        return -1;
    case CLEANUP_ACT_HOLD:
        msg_check_log(m, "hold", part, a.text);
        m->hold = true;
        return CLEANUP_KEEP;
    case CLEANUP_ACT_IGNORE:
        return CLEANUP_DROP;
    case CLEANUP_ACT_PREPEND:
        if (msg_edit_allowed(m, part, strlen(a.text) + 1, which)) {
            buf_puts(prepend, a.text);
            buf_putc(prepend, '\n');
        }
        return CLEANUP_KEEP;
    case CLEANUP_ACT_REPLACE:
        if (msg_edit_allowed(m, part, strlen(a.text) + 1, which)) {
            buf_reset(text);
            buf_puts(text, a.text);
            if (header)
                buf_putc(text, '\n');
        }
        return CLEANUP_KEEP;
    case CLEANUP_ACT_WARN:
        msg_check_log(m, "warning", part, a.text);
        return CLEANUP_KEEP;
    case CLEANUP_ACT_INFO:
        msg_check_log(m, "info", part, a.text);
        return CLEANUP_KEEP;
    case CLEANUP_ACT_DUNNO:
    default:
        if (a.problem != NULL)
            log_warn(
                "%s: %s map: %s: %s", m->id, cleanup_check_names[which],
                a.problem,
                log_printable(safe, sizeof(safe), m->value.data, m->value.len));
        return CLEANUP_KEEP;
    }
}

/* Content after the primary headers: through body checks when any. */
static int msg_put_body(const char *data, size_t len, void *ctx)
{
    struct cleanup_msg *m = ctx;

    if (m->body != NULL)
        return cleanup_body_feed(m->body, data, len);
    return msg_put_content(data, len, ctx);
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
    /* smtpd's PREPEND headers go above our Received:, as in Postfix. */
    for (size_t i = 0; i < env->prepend.n; i++) {
        buf_puts(&h, env->prepend.v[i]);
        buf_putc(&h, '\n');
    }
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
    if (cl.any_checks)
        m->body = cleanup_body_new(&cl.body_limits, &m->ctype, msg_check, m,
                                   msg_put_content, m);
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
    /* smtpd's FILTER: qmgr sends every recipient to this transport. */
    if (env->filter != NULL) {
        buf_reset(&a);
        buf_printf(&a, "content_filter=%s", env->filter);
        qfile_put(m->w, QREC_ATTR, a.data, a.len);
    }
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
    /* smtpd's DISCARD: read to the end, acknowledge, queue nothing. */
    if (m->env.discard) {
        log_info("%s: discard: requested by smtpd access restrictions; "
                 "from=<%s>",
                 m->id, m->env.sender);
        m->discard = true;
        return;
    }
    m->hold = m->env.hold;
    /* smtpd's REDIRECT: one recipient instead of all (then expanded). */
    if (m->env.redirect != NULL) {
        log_info("%s: redirect: to <%s> by smtpd access restrictions",
                 m->id, m->env.redirect);
        cleanup_rcpt_list_free(&m->env.rcpts);
        cleanup_rcpt_add(&m->env.rcpts, m->env.redirect, "", "", "");
    }
    if (cl.checks_error[0] != 0) {
        log_warn("%s: message not accepted, try again later: %s", m->id,
                 cl.checks_error);
        msg_fail(m, 4, REASON_CONFIG);
        return;
    }
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
    m->content = cleanup_content_new((size_t)cl.header_size_limit, msg_put_body,
                                     msg_headers_done, m);
    if (cl.any_checks)
        cleanup_content_set_check(m->content, msg_check, m);
    m->edit_budget = cl.header_size_limit;
    m->body_budget = cl.message_size_limit > 0 ? cl.message_size_limit : -1;
}

static void msg_data(struct cleanup_msg *m, const char *data, size_t len)
{
    m->client_bytes += (long long)len;
    if (m->status != 0 || m->discard)
        return; /* draining a message that already failed or was dropped */
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

    if (m->status == 0 && !m->discard &&
        cleanup_content_finish(m->content) == 0 && m->body != NULL)
        (void)cleanup_body_finish(m->body);
    if (m->status != 0 || m->discard)
        return; /* a discarded message is acknowledged, not queued */
    msg_flush_content(m);
    snprintf(size, sizeof(size), "%lld", m->queued_bytes);
    qfile_put_str(m->w, QREC_SIZE, size);
    if (qfile_writer_commit_to(m->w,
                               m->hold ? MAIL_QUEUE_HOLD : MAIL_QUEUE_INCOMING,
                               m->id, err, sizeof(err)) < 0) {
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
    cleanup_body_free(m->body);
    buf_free(&m->key);
    buf_free(&m->value);
    buf_free(&m->chunk);
    cleanup_envelope_free(&m->env);
    cleanup_rcpt_list_free(&m->rcpts);
}

static bool frame_flag(const struct attr *a)
{
    return a->len == 1 && a->value[0] == '1';
}

/*
 * What smtpd decided after the content (smtpd_end_of_data_restrictions):
 * hold=1, discard=1 after "end=1".  0, or -1 for anything else.
 */
static int end_frame_extras(struct cleanup_msg *m,
                            const struct attr_list *frame)
{
    for (size_t i = 1; i < frame->n; i++) {
        const struct attr *x = &frame->v[i];

        if (!frame_flag(x))
            return -1;
        if (strcmp(x->name, "hold") == 0) {
            m->hold = true;
        } else if (strcmp(x->name, "discard") == 0) {
            if (!m->discard && m->status == 0)
                log_info("%s: discard: requested by smtpd end-of-data "
                         "restrictions; from=<%s>",
                         m->id, m->env.sender);
            m->discard = true;
        } else {
            return -1;
        }
    }
    return 0;
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
        if (frame->n >= 1 && strcmp(a->name, "end") == 0 && frame_flag(a) &&
            end_frame_extras(&m, frame) == 0) {
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
