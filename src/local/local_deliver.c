/*
 * local_deliver - one delivery request: open active/<ID>, read and check
 * the envelope, look at the header block once for Delivered-To loops,
 * then deliver each requested recipient into its Maildir.
 *
 * Trusts: the queue file structure as qfile_read_envelope() validates it,
 * the resolver's answer (configuration and administrator's tables).  The
 * request from qmgr only selects recipients: each must be a not-yet-done
 * recipient record of the queue file, at the offset qmgr names.
 *
 * Privileges: when running as root the delivery runs with the mailbox
 * owner's uid, gid and a single supplementary group (seteuid/setegid),
 * and switches back afterwards; uid 0 is refused, and for virtual
 * mailboxes so is a uid below virtual_minimum_uid.  If switching back
 * fails the process exits at once rather than go on with the wrong ids.
 *
 * Failures (status 4, mail stays queued): queue file unreadable, lookup
 * errors, every file system error (dsn 4.2.2 for a full disk or quota,
 * 4.3.0 otherwise).  Status 5 only for an unknown mailbox (5.1.1) and a
 * Delivered-To loop (5.4.6).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "local/local.h"
#include "global/addr.h"
#include "global/delivered_to.h"
#include "global/maildir.h"
#include "global/qfile.h"
#include "util/argv.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* Header bytes searched for Delivered-To (the headers we add come first,
 * so a loop shows within the first few lines anyway). */
#define LOCAL_HEADER_SCAN_MAX (256 * 1024)
#define LOCAL_MAX_GROUPS 256

static void local_result(struct local_rcpt *r, int status, const char *dsn,
                         const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void local_result(struct local_rcpt *r, int status, const char *dsn,
                         const char *fmt, ...)
{
    va_list ap;

    r->status = status;
    str_lcpy(r->dsn, dsn, sizeof(r->dsn));
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
    va_end(ap);
}

/* ---- privileges ---- */

static bool local_is_root(void)
{
    return getuid() == 0;
}

static void local_restore_ids(const gid_t *groups, int ngroups, gid_t egid)
{
    if (seteuid(0) < 0 || setegid(egid) < 0 ||
        setgroups((size_t)ngroups, groups) < 0)
        log_fatal("cannot switch back to root: %s", strerror(errno));
}

/* ---- reading the content ---- */

struct local_headers {
    struct buf data;
    bool complete;
};

static int local_header_chunk(const char *data, size_t len, void *ctx)
{
    struct local_headers *h = ctx;
    size_t room = LOCAL_HEADER_SCAN_MAX - h->data.len;

    buf_append(&h->data, data, len < room ? len : room);
    (void)header_block_length(h->data.data, h->data.len, &h->complete);
    /* Stop reading as soon as the header block is known. */
    return h->complete || h->data.len >= LOCAL_HEADER_SCAN_MAX ? -1 : 0;
}

struct local_copy {
    struct maildir_writer *w;
    int write_errno; /* 0 = the reader failed, not the writer */
};

static int local_copy_chunk(const char *data, size_t len, void *ctx)
{
    struct local_copy *c = ctx;

    if (maildir_writer_write(c->w, data, len) < 0) {
        c->write_errno = errno;
        return -1;
    }
    return 0;
}

/* Header field text: the envelope address with control bytes replaced,
 * so a hostile queue file cannot add header lines. */
static void local_header_value(struct buf *out, const char *s)
{
    for (; *s; s++)
        buf_putc(out, (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

static void local_fs_error(struct local_rcpt *r, int err, const char *what)
{
    if (err == ENOSPC || err == EDQUOT)
        local_result(r, 4, "4.2.2", "mailbox full: %s", what);
    else
        local_result(r, 4, "4.3.0", "maildir delivery failed: %s", what);
}

/* Write the message into dir as the current (effective) user. */
static void local_maildir(struct local_rcpt *r, const char *dir, int fd,
                          const struct qfile_envelope *env,
                          const char *queue_id, struct argv *batch)
{
    int rc;

    struct local_copy copy = {NULL, 0};
    struct buf head = BUF_INIT;
    struct buf name = BUF_INIT;
    char err[512];

    copy.w = maildir_writer_open(dir, err, sizeof(err));
    if (copy.w == NULL) {
        local_fs_error(r, errno, err);
        return;
    }
    buf_puts(&head, "Return-Path: <");
    local_header_value(&head, env->sender);
    buf_puts(&head, ">\nDelivered-To: ");
    local_header_value(&head, r->addr);
    buf_putc(&head, '\n');
    if (maildir_writer_write(copy.w, head.data, head.len) < 0) {
        copy.write_errno = errno;
        snprintf(err, sizeof(err), "write: %s", strerror(errno));
        goto fail;
    }
    if (qfile_read_content(fd, env, local_copy_chunk, &copy, err, sizeof(err)) <
        0) {
        if (copy.write_errno) {
            snprintf(err, sizeof(err), "write to %s: %s", dir,
                     strerror(copy.write_errno));
            goto fail;
        }
        maildir_writer_abort(copy.w);
        local_result(r, 4, "4.3.0", "cannot read queue file: %s", err);
        goto out;
    }
    rc = maildir_writer_commit_batch(copy.w, MAILDIR_NEW, NULL, &name, batch,
                                     err, sizeof(err));
    if (rc < 0) {
        local_fs_error(r, errno, err);
        goto out;
    }
    r->sync_pending = rc > 0;
    log_debug("%s: delivered to %s/new/%s", queue_id, dir, name.data);
    local_result(r, 2, "2.0.0", "delivered to maildir");
    goto out;
fail:
    maildir_writer_abort(copy.w);
    local_fs_error(r, copy.write_errno, err);
out:
    buf_free(&head);
    buf_free(&name);
}

/* One recipient, already matched against the queue file. */
static void local_deliver_rcpt(struct local_rcpt *r, int fd,
                               const struct qfile_envelope *env,
                               const struct argv *delivered,
                               const char *queue_id, struct argv *batch)
{
    static gid_t groups[LOCAL_MAX_GROUPS];
    struct buf path = BUF_INIT;
    enum map_result res;
    char *folded;
    char err[512];
    uid_t uid = 0;
    gid_t gid = 0;
    int ngroups;
    gid_t egid;

    if (delivered_to_match(delivered, r->addr)) {
        local_result(r, 5, "5.4.6", "mail forwarding loop for %s", r->addr);
        return;
    }
    /* Mailbox lookups ignore case, as Postfix's local does. */
    folded = addr_fold(r->addr);
    res = resolve_mailbox(local_resolver, folded, &path, &uid, &gid, err,
                          sizeof(err));
    free(folded);
    if (res == MAP_NOTFOUND) {
        local_result(r, 5, "5.1.1", "%s", *err ? err : "unknown user");
        goto out;
    }
    if (res != MAP_FOUND) {
        local_result(r, 4, "4.3.0", "mailbox lookup failed: %s", err);
        goto out;
    }
    if (!local_is_root()) {
        /* Development set-up: everything runs as the invoking user. */
        local_maildir(r, path.data, fd, env, queue_id, batch);
        goto out;
    }
    if (uid == 0) {
        local_result(r, 4, "4.3.0", "refusing to deliver to %s as root (uid 0)",
                     path.data);
        goto out;
    }
    {
        long at = addr_split(r->addr);
        char *domain = xstrdup(at >= 0 ? r->addr + at + 1 : "");
        int cls;

        str_lower(domain);
        cls = resolve_class(local_resolver, domain, err, sizeof(err));
        free(domain);
        if (cls == ADDR_CLASS_VIRTUAL_MAILBOX &&
            (long long)uid < local_minimum_uid) {
            local_result(r, 4, "4.3.0",
                         "mailbox uid %ld is below virtual_minimum_uid %lld",
                         (long)uid, local_minimum_uid);
            goto out;
        }
    }
    egid = getegid();
    ngroups = getgroups(LOCAL_MAX_GROUPS, groups);
    if (ngroups < 0) {
        local_result(r, 4, "4.3.0", "getgroups: %s", strerror(errno));
        goto out;
    }
    if (setgroups(1, &gid) < 0 || setegid(gid) < 0 || seteuid(uid) < 0) {
        int saved = errno;

        local_restore_ids(groups, ngroups, egid);
        local_result(r, 4, "4.3.0", "cannot switch to uid %ld gid %ld: %s",
                     (long)uid, (long)gid, strerror(saved));
        goto out;
    }
    local_maildir(r, path.data, fd, env, queue_id, batch);
    local_restore_ids(groups, ngroups, egid);
out:
    buf_free(&path);
}

static void local_fail_all(struct local_request *req, const char *fmt,
                           const char *arg)
{
    for (size_t i = 0; i < req->nrcpt; i++)
        local_result(&req->rcpts[i], 4, "4.3.0", fmt, arg);
}

void local_batch_failed(struct local_request *req, int err, const char *why)
{
    for (size_t i = 0; i < req->nrcpt; i++) {
        if (req->rcpts[i].sync_pending) {
            req->rcpts[i].sync_pending = false;
            local_fs_error(&req->rcpts[i], err, why);
        }
    }
}

void local_deliver(struct local_request *req, struct argv *batch)
{
    struct qfile_envelope env;
    struct local_headers headers = {BUF_INIT, false};
    struct argv delivered = ARGV_INIT;
    struct buf path = BUF_INIT;
    bool corrupt = false;
    bool *used = NULL;
    char err[512];
    int fd;

    memset(&env, 0, sizeof(env));
    buf_printf(&path, "%s/%s/%s", local_queue_dir, MAIL_QUEUE_ACTIVE,
               req->queue_id);
    fd = open(path.data, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        snprintf(err, sizeof(err), "%s", strerror(errno));
        local_fail_all(req, "cannot open queue file: %s", err);
        buf_free(&path);
        return;
    }
    if (qfile_read_envelope(fd, &env, &corrupt, err, sizeof(err)) < 0) {
        local_fail_all(req, "cannot read queue file: %s", err);
        goto out;
    }
    /* The header block is read once for every recipient of the request;
     * qfile_read_content stops early (-1) when we have seen enough. */
    if (qfile_read_content(fd, &env, local_header_chunk, &headers, err,
                           sizeof(err)) < 0 &&
        !headers.complete && headers.data.len < LOCAL_HEADER_SCAN_MAX) {
        local_fail_all(req, "cannot read queue file: %s", err);
        goto out;
    }
    delivered_to_collect(buf_cstr(&headers.data), headers.data.len, &delivered,
                         DELIVERED_TO_MAX);

    used = xcalloc(env.nrcpt ? env.nrcpt : 1, sizeof(*used));
    for (size_t i = 0; i < req->nrcpt; i++) {
        struct local_rcpt *r = &req->rcpts[i];
        size_t k;

        for (k = 0; k < env.nrcpt; k++)
            if ((long long)env.rcpts[k].offset == r->offset)
                break;
        if (k == env.nrcpt || strcmp(env.rcpts[k].addr, r->addr) != 0) {
            local_result(r, 4, "4.3.0",
                         "recipient is not in the queue file at offset %lld",
                         r->offset);
            continue;
        }
        if (used[k]) {
            local_result(r, 4, "4.3.0", "recipient repeated in the request");
            continue;
        }
        used[k] = true;
        if (env.rcpts[k].done) {
            local_result(r, 2, "2.0.0", "already delivered");
            continue;
        }
        local_deliver_rcpt(r, fd, &env, &delivered, req->queue_id, batch);
    }
out:
    free(used);
    argv_free(&delivered);
    buf_free(&headers.data);
    qfile_envelope_free(&env);
    buf_free(&path);
    close(fd);
}
