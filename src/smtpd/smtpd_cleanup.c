/*
 * smtpd_cleanup - client side of the smtpd -> cleanup protocol.
 *
 * Talks to cleanup over $queue_directory/private/cleanup with the framed
 * attributes of util/attr.h.  cleanup's reply is checked like network
 * input: status must be 0/4/5, a queue ID must look like one, a reason
 * must be short printable text with an enhanced status code of the same
 * class.  Any I/O error or malformed reply closes the connection and is
 * reported to the caller, which answers the client with a 4xx: mail is
 * never acknowledged unless cleanup said status=0 with a queue ID.
 */
#include "smtpd/smtpd_cleanup.h"

#include <ctype.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/attr.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/sock.h"
#include "util/str.h"
#include "util/stream.h"

struct smtpd_cleanup {
    struct stream *s;
    struct buf pending; /* content not yet framed */
    struct buf frame;
};

void smtpd_cleanup_close(struct smtpd_cleanup **cp)
{
    struct smtpd_cleanup *c = *cp;

    if (c == NULL)
        return;
    stream_close(c->s);
    buf_free(&c->pending);
    buf_free(&c->frame);
    free(c);
    *cp = NULL;
}

static int send_frame(struct smtpd_cleanup *c, char *err, size_t errlen)
{
    stream_write(c->s, c->frame.data, c->frame.len);
    buf_reset(&c->frame);
    if (stream_flush(c->s) != STREAM_OK) {
        snprintf(err, errlen, "write to cleanup: %s", stream_error(c->s));
        return -1;
    }
    return 0;
}

/* Has cleanup closed (or written to) an idle connection we kept? */
static bool connection_stale(struct smtpd_cleanup *c)
{
    struct pollfd pfd = {stream_fd(c->s), POLLIN, 0};

    if (stream_status(c->s) != STREAM_OK || stream_read_pending(c->s) > 0)
        return true;
    return poll(&pfd, 1, 0) != 0;
}

static int connect_cleanup(struct smtpd_cleanup **cp, const char *path,
                           char *err, size_t errlen)
{
    struct smtpd_cleanup *c;
    int fd;

    fd = sock_connect_unix(path, SMTPD_CLEANUP_TIMEOUT_MS, err, errlen);
    if (fd < 0)
        return -1;
    c = xcalloc(1, sizeof(*c));
    c->s = stream_open(fd);
    stream_set_timeout(c->s, SMTPD_CLEANUP_TIMEOUT_MS);
    *cp = c;
    return 0;
}

int smtpd_cleanup_begin(struct smtpd_cleanup **cp, const char *path,
                        const struct buf *envelope, char *err, size_t errlen)
{
    bool reused = false;

    if (*cp != NULL && connection_stale(*cp))
        smtpd_cleanup_close(cp);
    for (;;) {
        if (*cp == NULL) {
            if (connect_cleanup(cp, path, err, errlen) < 0)
                return -1;
        } else {
            reused = true;
        }
        buf_reset(&(*cp)->pending);
        buf_reset(&(*cp)->frame);
        buf_append(&(*cp)->frame, envelope->data, envelope->len);
        if (send_frame(*cp, err, errlen) == 0)
            return 0;
        smtpd_cleanup_close(cp);
        /* A kept connection may have died quietly: one fresh try. */
        if (!reused)
            return -1;
        reused = false;
    }
}

static int flush_content(struct smtpd_cleanup *c, bool all, char *err,
                         size_t errlen)
{
    size_t off = 0;

    while (c->pending.len - off >= MAIL_PROTO_CHUNK ||
           (all && c->pending.len > off)) {
        size_t n = c->pending.len - off;

        if (n > MAIL_PROTO_CHUNK)
            n = MAIL_PROTO_CHUNK;
        attr_put(&c->frame, "data", c->pending.data + off, n);
        attr_end(&c->frame);
        off += n;
        stream_write(c->s, c->frame.data, c->frame.len);
        buf_reset(&c->frame);
    }
    buf_consume(&c->pending, off);
    if (stream_flush(c->s) != STREAM_OK) {
        snprintf(err, errlen, "write to cleanup: %s", stream_error(c->s));
        return -1;
    }
    return 0;
}

int smtpd_cleanup_write(struct smtpd_cleanup *c, const char *data, size_t len,
                        char *err, size_t errlen)
{
    buf_append(&c->pending, data, len);
    if (c->pending.len < MAIL_PROTO_CHUNK)
        return 0;
    return flush_content(c, false, err, errlen);
}

static bool enhanced_code_ok(const char *s, int status)
{
    /* class "." 1*3digit "." 1*3digit, class matching the status */
    const char *p = s;

    if (*p != '0' + status || p[1] != '.')
        return false;
    p += 2;
    for (int part = 0; part < 2; part++) {
        int n = 0;

        while (isdigit((unsigned char)*p) && n < 4) {
            p++;
            n++;
        }
        if (n == 0 || n > 3)
            return false;
        if (part == 0 && *p++ != '.')
            return false;
    }
    return *p == ' ';
}

int smtpd_cleanup_parse_reply(const struct attr_list *reply,
                              struct smtpd_cleanup_result *res, char *err,
                              size_t errlen)
{
    const struct attr *id, *reason;
    long long status;

    memset(res, 0, sizeof(*res));
    if (!attr_get_int(reply, "status", &status) ||
        (status != 0 && status != 4 && status != 5)) {
        snprintf(err, errlen, "cleanup reply without a valid status");
        return -1;
    }
    res->status = (int)status;
    if (status == 0) {
        id = attr_find(reply, "queue_id");
        if (id == NULL || id->len != strlen(id->value) ||
            id->len > MAIL_QUEUE_ID_MAX || !mail_queue_id_ok(id->value)) {
            snprintf(err, errlen, "cleanup reply without a valid queue_id");
            return -1;
        }
        str_lcpy(res->queue_id, id->value, sizeof(res->queue_id));
        return 0;
    }
    reason = attr_find(reply, "reason");
    if (reason == NULL || reason->len == 0 ||
        reason->len > SMTPD_CLEANUP_REASON_MAX) {
        snprintf(err, errlen, "cleanup reply without a valid reason");
        return -1;
    }
    for (size_t i = 0; i < reason->len; i++) {
        unsigned char ch = (unsigned char)reason->value[i];

        if (ch < 0x20 || ch > 0x7e) {
            snprintf(err, errlen, "cleanup reason is not printable text");
            return -1;
        }
    }
    if (enhanced_code_ok(reason->value, res->status))
        str_lcpy(res->reason, reason->value, sizeof(res->reason));
    else
        snprintf(res->reason, sizeof(res->reason), "%d.3.0 %s", res->status,
                 reason->value);
    return 0;
}

int smtpd_cleanup_end(struct smtpd_cleanup **cp, const struct buf *extra,
                      struct smtpd_cleanup_result *res, char *err,
                      size_t errlen)
{
    struct smtpd_cleanup *c = *cp;
    struct attr_list reply = ATTR_LIST_INIT;
    enum stream_status st;
    const char *aerr = NULL;
    int rc = -1;

    if (flush_content(c, true, err, errlen) < 0)
        goto done;
    attr_put_str(&c->frame, "end", "1");
    if (extra != NULL)
        buf_append(&c->frame, extra->data, extra->len);
    attr_end(&c->frame);
    if (send_frame(c, err, errlen) < 0)
        goto done;
    st = attr_read(c->s, &reply, MAIL_PROTO_FRAME_MAX, &aerr);
    if (st != STREAM_OK) {
        snprintf(err, errlen, "read from cleanup: %s",
                 aerr               ? aerr
                 : st == STREAM_EOF ? "lost connection"
                                    : stream_error(c->s));
        goto done;
    }
    rc = smtpd_cleanup_parse_reply(&reply, res, err, errlen);
done:
    attr_list_free(&reply);
    if (rc < 0)
        smtpd_cleanup_close(cp);
    return rc;
}

void smtpd_cleanup_abort(struct smtpd_cleanup **cp)
{
    struct smtpd_cleanup *c = *cp;
    char err[256];

    if (c == NULL)
        return;
    buf_reset(&c->pending);
    attr_put_str(&c->frame, "abort", "1");
    attr_end(&c->frame);
    if (send_frame(c, err, sizeof(err)) < 0)
        smtpd_cleanup_close(cp);
}
