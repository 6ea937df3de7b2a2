/*
 * smtpd_data - DATA and BDAT: receive the message and hand it to cleanup.
 *
 * The client's bytes are untrusted and unbounded in number, so content is
 * streamed: each line (DATA) or piece of a chunk (BDAT) is decoded by
 * smtpd_content and written to cleanup at once.  A message that grows
 * past message_size_limit is read to its end and discarded (cleanup is
 * told to abort); the client then gets 552 and nothing reaches the queue.
 * The client hears "250 ... queued as ID" only after cleanup's status=0,
 * which means the queue file is on stable storage.  Any trouble with
 * cleanup becomes 451 4.3.0 after the data has been read, so the session
 * stays in step with the client.
 *
 * A DATA line is read whole (stream_read_line with a bound of the size
 * limit), so lines longer than line_length_limit are kept intact in the
 * queue, as Postfix delivers them.
 */
#include "smtpd/smtpd.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd/smtpd_check.h"
#include "smtpd/smtpd_cleanup.h"
#include "util/attr.h"
#include "util/log.h"
#include "util/mem.h"

/* Bound on one DATA line when message_size_limit is 0 (unlimited). */
#define SMTPD_DATA_LINE_MAX (64LL * 1024 * 1024)
/* Once a message is refused we only look for its end: short reads. */
#define SMTPD_DISCARD_LINE_MAX 1024
/* BDAT chunks are read in pieces of this size. */
#define SMTPD_BDAT_PIECE (64 * 1024)

/* The envelope frame for cleanup (mail_proto.h, step 1). */
static void build_envelope(struct smtpd_session *s, struct buf *frame)
{
    const struct smtpd_xact *x = &s->xact;

    attr_put_str(frame, "request", "submit");
    attr_put_str(frame, "sender", x->sender);
    attr_put_str(frame, "client_name", s->name);
    attr_put_str(frame, "client_addr", s->addr);
    attr_put_str(frame, "client_port", s->port);
    if (s->helo != NULL)
        attr_put_str(frame, "helo", s->helo);
    attr_put_str(frame, "protocol", smtpd_received_protocol(s));
    attr_put_str(frame, "smtputf8", x->params.smtputf8 ? "1" : "0");
    if (x->params.body != SMTPD_BODY_NONE)
        attr_put_str(frame, "body", smtpd_body_name(x->params.body));
    if (x->params.envid != NULL)
        attr_put_str(frame, "envid", x->params.envid);
    if (x->params.ret != SMTPD_RET_NONE)
        attr_put_str(frame, "ret",
                     x->params.ret == SMTPD_RET_FULL ? "FULL" : "HDRS");
    smtpd_security_envelope(s, frame); /* sasl_username, tls */
    attr_put_int(frame, "arrival", (long long)x->arrival);
    for (size_t i = 0; i < x->nrcpt; i++) {
        attr_put_str(frame, "rcpt", x->rcpt[i].addr);
        if (x->rcpt[i].notify != NULL)
            attr_put_str(frame, "notify", x->rcpt[i].notify);
        if (x->rcpt[i].orcpt != NULL)
            attr_put_str(frame, "orcpt", x->rcpt[i].orcpt);
    }
    /* HOLD, DISCARD, FILTER, REDIRECT, PREPEND, BCC of the checks. */
    smtpd_check_envelope(s, frame);
    attr_end(frame);
}

/* Connect to cleanup and send the envelope; false (logged) on failure. */
static bool open_cleanup(struct smtpd_session *s)
{
    struct buf frame = BUF_INIT;
    char err[512];
    int rc;

    build_envelope(s, &frame);
    rc = smtpd_cleanup_begin(&s->cleanup, s->cfg->cleanup_path, &frame, err,
                             sizeof(err));
    buf_free(&frame);
    if (rc < 0) {
        log_warn("%s: cleanup service: %s", s->namaddr, err);
        return false;
    }
    s->xact.cleanup_open = true;
    return true;
}

/* Content for cleanup, unless the message is already refused. */
static void write_content(struct smtpd_session *s, const char *data, size_t len)
{
    struct smtpd_xact *x = &s->xact;
    char err[512];

    if (x->too_big || x->cleanup_failed)
        return;
    x->size += (long long)len;
    if (s->cfg->message_size_limit > 0 &&
        x->size > s->cfg->message_size_limit) {
        x->too_big = true;
    } else if (smtpd_cleanup_write(s->cleanup, data, len, err, sizeof(err)) <
               0) {
        log_warn("%s: cleanup service: %s", s->namaddr, err);
        smtpd_cleanup_close(&s->cleanup);
        x->cleanup_open = false;
        x->cleanup_failed = true;
        return;
    }
    if (x->too_big) {
        smtpd_cleanup_abort(&s->cleanup);
        x->cleanup_open = false;
    }
}

/*
 * The end of a message: ask cleanup for its verdict and answer the
 * client.  bdat_bytes >= 0 gives Postfix's BDAT wording.  Always ends
 * the transaction.  Returns 0 when the message was queued.
 */
static int finish_message(struct smtpd_session *s, long long bdat_bytes)
{
    struct smtpd_xact *x = &s->xact;
    struct smtpd_cleanup_result res;
    char err[512];
    int rc = -1;

    if (x->too_big) {
        smtpd_reply(s, "552 5.3.4 Error: message file too big");
        smtpd_log_reject(s, "END-OF-MESSAGE",
                         "552 5.3.4 Error: message file too big", NULL);
    } else if (x->cleanup_failed || !x->cleanup_open) {
        smtpd_reply(s, "451 4.3.0 Error: queue file write error");
    } else if (smtpd_check_eod(s, x->size, &s->scratch) < 0) {
        /* smtpd_end_of_data_restrictions: nothing is queued. */
        char *reply = buf_steal(&s->scratch);

        smtpd_cleanup_abort(&s->cleanup);
        x->cleanup_open = false;
        smtpd_reply(s, "%s", reply);
        free(reply);
    } else {
        struct buf extra = BUF_INIT;
        int ended;

        x->cleanup_open = false;
        smtpd_check_end_frame(s, &extra); /* HOLD, DISCARD after content */
        ended =
            smtpd_cleanup_end(&s->cleanup, &extra, &res, err, sizeof(err));

        buf_free(&extra);
        if (ended < 0) {
            log_warn("%s: cleanup service: %s", s->namaddr, err);
            smtpd_reply(s, "451 4.3.0 Error: queue file write error");
        } else if (res.status == 0) {
            smtpd_log_client(s, res.queue_id);
            if (bdat_bytes >= 0)
                smtpd_reply(s, "250 2.0.0 Ok: %lld bytes queued as %s",
                            bdat_bytes, res.queue_id);
            else
                smtpd_reply(s, "250 2.0.0 Ok: queued as %s", res.queue_id);
            /* Errors count only while a client delivers no mail. */
            s->error_count = 0;
            s->junk_count = 0;
            rc = 0;
        } else {
            /* Postfix's codes: size 552, hop count 554, content 550. */
            int code = res.status == 4                         ? 451
                       : strncmp(res.reason, "5.3.4 ", 6) == 0 ? 552
                       : strncmp(res.reason, "5.4.", 4) == 0   ? 554
                                                               : 550;

            buf_reset(&s->scratch);
            buf_printf(&s->scratch, "%d %s", code, res.reason);
            smtpd_reply(s, "%s", s->scratch.data);
            smtpd_log_reject(s, "END-OF-MESSAGE", s->scratch.data, NULL);
        }
    }
    smtpd_xact_reset(s);
    return rc;
}

/* The client went away or timed out in the middle of content. */
static void content_read_failed(struct smtpd_session *s, enum stream_status st,
                                const char *cmd)
{
    if (st == STREAM_TIMEOUT) {
        log_info("timeout after %s (%lld bytes) from %s", cmd, s->xact.received,
                 s->namaddr);
        smtpd_reply(s, "421 4.4.2 %s Error: timeout exceeded",
                    s->cfg->myhostname);
    } else {
        log_info("lost connection after %s (%lld bytes) from %s", cmd,
                 s->xact.received, s->namaddr);
    }
    smtpd_xact_reset(s); /* aborts the cleanup transaction */
    s->hangup = true;
}

int smtpd_cmd_data(struct smtpd_session *s, const char *args)
{
    struct smtpd_xact *x = &s->xact;
    struct smtpd_data_state dot;
    struct buf out = BUF_INIT;
    enum stream_status st;
    size_t max;
    bool crlf;
    int rc;

    if (!x->active) {
        smtpd_reply(s, "503 5.5.1 Error: need RCPT command");
        return -1;
    }
    if (x->bdat) {
        smtpd_reply(s, "503 5.5.1 Error: DATA after BDAT");
        return -1;
    }
    if (x->nrcpt == 0) {
        smtpd_reply(s, "554 5.5.1 Error: no valid recipients");
        return -1;
    }
    if (*args != 0) {
        smtpd_reply(s, "501 5.5.4 Syntax: DATA");
        return -1;
    }
    if (x->params.body == SMTPD_BODY_BINARYMIME) {
        /* RFC 3030 3: BINARYMIME content can only be sent with BDAT. */
        smtpd_reply(s, "503 5.5.1 Error: BODY=BINARYMIME requires BDAT");
        return -1;
    }
    if (smtpd_check_data(s, &s->scratch) < 0) { /* smtpd_data_restrictions */
        smtpd_reply(s, "%s", s->scratch.data);
        return -1;
    }
    if (!open_cleanup(s)) {
        smtpd_reply(s, "451 4.3.0 Error: queue file write error");
        return -1;
    }
    smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
    smtpd_flush(s);
    s->where = "DATA";

    max = s->cfg->message_size_limit > 0
              ? (size_t)s->cfg->message_size_limit + 1
              : (size_t)SMTPD_DATA_LINE_MAX;
    smtpd_data_init(&dot);
    for (;;) {
        bool refused = x->too_big || x->cleanup_failed;
        const char *ahead;
        size_t n = refused ? 0 : stream_buffered(s->client, &ahead);

        /* The complete lines already read, in one go; what is left (a
         * line cut by the buffer's end, an over-long one) goes below. */
        if (n > 0) {
            bool end;

            buf_reset(&out);
            n = smtpd_data_lines(&dot, ahead, n, max, &out, &end);
            stream_skip(s->client, n);
            x->received += (long long)n;
            if (out.len > 0)
                write_content(s, out.data, out.len);
            if (end)
                break;
            if (n > 0)
                continue;
        }
        st = stream_read_line(s->client, &s->line,
                              refused ? SMTPD_DISCARD_LINE_MAX : max, &crlf);
        if (st == STREAM_TOOLONG) {
            /* Longer than the whole size limit: the message is refused. */
            x->received += (long long)s->line.len;
            if (!refused) {
                x->too_big = true;
                smtpd_cleanup_abort(&s->cleanup);
                x->cleanup_open = false;
            }
            dot.prev_crlf = crlf;
            continue;
        }
        if (st != STREAM_OK) {
            buf_free(&out);
            content_read_failed(s, st, "DATA");
            return -1;
        }
        x->received += (long long)s->line.len + (crlf ? 2 : 1);
        buf_reset(&out);
        if (smtpd_data_line(&dot, s->line.data, s->line.len, crlf, &out))
            break;
        write_content(s, out.data, out.len);
    }
    buf_free(&out);
    s->where = "END-OF-MESSAGE";
    rc = finish_message(s, -1);
    s->where = "DATA";
    return rc;
}

/* Read and drop a chunk we will not use; false when the client is gone. */
static bool discard_chunk(struct smtpd_session *s, long long size)
{
    enum stream_status st;

    while (size > 0) {
        size_t n = size > SMTPD_BDAT_PIECE ? SMTPD_BDAT_PIECE : (size_t)size;

        buf_reset(&s->scratch);
        st = stream_read_exact(s->client, &s->scratch, n);
        if (st != STREAM_OK) {
            content_read_failed(s, st, "BDAT");
            return false;
        }
        size -= (long long)n;
    }
    return true;
}

/* A BDAT error: the chunk is consumed, later chunks are refused. */
static int bdat_fail(struct smtpd_session *s, long long size, bool last,
                     const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int bdat_fail(struct smtpd_session *s, long long size, bool last,
                     const char *fmt, ...)
{
    va_list ap;
    char text[256];

    if (!discard_chunk(s, size))
        return -1;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    smtpd_reply(s, "%s", text);
    if (s->xact.active) {
        if (last) {
            smtpd_xact_reset(s);
        } else {
            if (s->xact.cleanup_open) {
                smtpd_cleanup_abort(&s->cleanup);
                s->xact.cleanup_open = false;
            }
            s->xact.bdat = true;
            s->xact.bdat_failed = true;
        }
    }
    return -1;
}

int smtpd_cmd_bdat(struct smtpd_session *s, const char *args)
{
    struct smtpd_xact *x = &s->xact;
    struct buf out = BUF_INIT;
    enum stream_status st;
    long long size, left;
    bool last;

    if (smtpd_parse_bdat(args, &size, &last) < 0) {
        /* We cannot know how many bytes follow: stop here. */
        smtpd_reply(s, "521 5.5.4 Syntax: BDAT count [LAST]");
        s->hangup = true;
        return -1;
    }
    if (s->cfg->ehlo_discard & SMTPD_EHLO_CHUNKING)
        return bdat_fail(s, size, last,
                         "502 5.5.1 Error: command not "
                         "implemented");
    if (x->bdat_failed)
        return bdat_fail(s, size, last,
                         "503 5.5.1 Error: discarded %lld "
                         "bytes after earlier error",
                         size);
    if (!x->active)
        return bdat_fail(s, size, last, "503 5.5.1 Error: need RCPT command");
    if (x->nrcpt == 0)
        return bdat_fail(s, size, last,
                         "554 5.5.1 Error: no valid "
                         "recipients");
    if (size == 0 && !last)
        return bdat_fail(s, size, last, "551 5.7.1 Null BDAT request");
    if (!x->bdat) {
        /* smtpd_data_restrictions apply to the first chunk. */
        if (smtpd_check_data(s, &out) < 0) {
            char *reply = buf_steal(&out);
            int rc = bdat_fail(s, size, last, "%s", reply);

            free(reply);
            return rc;
        }
        if (!open_cleanup(s))
            return bdat_fail(s, size, last,
                             "451 4.3.0 Error: queue file "
                             "write error");
        x->bdat = true;
        smtpd_bdat_init(&x->bdat_state);
    }
    s->where = "BDAT";
    for (left = size; left > 0;) {
        size_t n = left > SMTPD_BDAT_PIECE ? SMTPD_BDAT_PIECE : (size_t)left;

        buf_reset(&s->scratch);
        st = stream_read_exact(s->client, &s->scratch, n);
        if (st != STREAM_OK) {
            buf_free(&out);
            content_read_failed(s, st, "BDAT");
            return -1;
        }
        left -= (long long)n;
        x->received += (long long)n;
        buf_reset(&out);
        smtpd_bdat_decode(&x->bdat_state, s->scratch.data, n, &out);
        write_content(s, out.data, out.len);
    }
    if (last) {
        buf_reset(&out);
        smtpd_bdat_finish(&x->bdat_state, &out);
        write_content(s, out.data, out.len);
    }
    buf_free(&out);
    if (x->too_big) {
        smtpd_log_reject(s, "BDAT", "552 5.3.4 Error: message file too big",
                         NULL);
        return bdat_fail(s, 0, last, "552 5.3.4 Error: message file too big");
    }
    if (x->cleanup_failed)
        return bdat_fail(s, 0, last,
                         "451 4.3.0 Error: queue file write "
                         "error");
    if (!last) {
        smtpd_reply(s, "250 2.0.0 Ok: %lld bytes", size);
        return 0;
    }
    return finish_message(s, x->received);
}
