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
    char *path;
    struct buf pending; /* content not yet framed */
    struct buf frame;   /* frames not yet sent */
    bool reused;        /* the connection carried an earlier message */
    bool sent;          /* something of this message went out */
};

void smtpd_cleanup_close(struct smtpd_cleanup **cp)
{
    struct smtpd_cleanup *c = *cp;

    if (c == NULL)
        return;
    stream_close(c->s);
    free(c->path);
    buf_free(&c->pending);
    buf_free(&c->frame);
    free(c);
    *cp = NULL;
}

static int open_stream(struct smtpd_cleanup *c, char *err, size_t errlen)
{
    int fd = sock_connect_unix(c->path, SMTPD_CLEANUP_TIMEOUT_MS, err, errlen);

    if (fd < 0)
        return -1;
    c->s = stream_open(fd);
    stream_set_timeout(c->s, SMTPD_CLEANUP_TIMEOUT_MS);
    return 0;
}

/*
 * Send the frames built so far.  The envelope is not sent on its own:
 * it goes with the first content (for most messages, all of it and the
 * end frame), so cleanup wakes up once per message.  Should a kept
 * connection turn out dead before anything of this message went out, one
 * fresh connection gets the same bytes.
 */
static int send_frame(struct smtpd_cleanup *c, char *err, size_t errlen)
{
    for (;;) {
        stream_write(c->s, c->frame.data, c->frame.len);
        if (stream_flush(c->s) == STREAM_OK) {
            buf_reset(&c->frame);
            c->sent = true;
            return 0;
        }
        snprintf(err, errlen, "write to cleanup: %s", stream_error(c->s));
        if (c->sent || !c->reused)
            return -1;
        stream_close(c->s);
        c->s = NULL;
        c->reused = false;
        if (open_stream(c, err, errlen) < 0)
            return -1;
    }
}

/* Has cleanup closed (or written to) an idle connection we kept? */
static bool connection_stale(struct smtpd_cleanup *c)
{
    struct pollfd pfd = {stream_fd(c->s), POLLIN, 0};

    if (stream_status(c->s) != STREAM_OK || stream_read_pending(c->s) > 0)
        return true;
    return poll(&pfd, 1, 0) != 0;
}

int smtpd_cleanup_begin(struct smtpd_cleanup **cp, const char *path,
                        const struct buf *envelope, char *err, size_t errlen)
{
    struct smtpd_cleanup *c = *cp;

    if (c != NULL && (strcmp(c->path, path) != 0 || connection_stale(c)))
        smtpd_cleanup_close(cp);
    if ((c = *cp) == NULL) {
        c = xcalloc(1, sizeof(*c));
        c->path = xstrdup(path);
        if (open_stream(c, err, errlen) < 0) {
            free(c->path);
            free(c);
            return -1;
        }
        *cp = c;
    } else {
        c->reused = true;
    }
    c->sent = false;
    buf_reset(&c->pending);
    buf_reset(&c->frame);
    buf_append(&c->frame, envelope->data, envelope->len);
    return 0;
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
    }
    buf_consume(&c->pending, off);
    /* The end frame follows at once: send it all together. */
    if (all)
        return 0;
    return send_frame(c, err, errlen);
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

    flush_content(c, true, err, errlen);
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
    buf_reset(&c->frame);
    /* Nothing of the message went out: cleanup has nothing to forget. */
    if (!c->sent)
        return;
    attr_put_str(&c->frame, "abort", "1");
    attr_end(&c->frame);
    if (send_frame(c, err, sizeof(err)) < 0)
        smtpd_cleanup_close(cp);
}
