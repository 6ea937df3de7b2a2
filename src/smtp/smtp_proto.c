/*
 * smtp_proto - one mail transaction on an open session: MAIL FROM, RCPT
 * TO for each recipient still to do, DATA and the content, then the
 * reply to the end of data (SMTP: one; LMTP: one per accepted recipient,
 * RFC 2033 4.2).
 *
 * With PIPELINING (RFC 2920) MAIL, every RCPT and DATA leave in one
 * write and the replies are read back in order; without it each command
 * waits for its reply.  ESMTP parameters are sent only when the server
 * announced them: SIZE=, BODY=8BITMIME for 8-bit content, SMTPUTF8 when
 * the envelope asks for it, and RET/ENVID/NOTIFY/ORCPT with DSN.
 *
 * Content goes as DATA with dot-stuffing and CRLF (smtp_text.c), never
 * BDAT: DATA works with every server and the queue's "\n" lines need the
 * conversion anyway.  8-bit content to a server without 8BITMIME has its
 * 8-bit MIME parts converted to quoted-printable (smtp_mime.c) unless
 * disable_mime_output_conversion is set; what cannot be converted (not
 * MIME, 8-bit headers) is sent unchanged, as Postfix does.  Before
 * anything is sent, a message larger than the server's SIZE fails with
 * 5.3.4, and for a server without SMTPUTF8 a message that needs it fails
 * with 5.6.7: UTF-8 in the sender (all recipients) or a recipient (that
 * one), or SMTPUTF8 requested and 8-bit bytes in the header (all, as
 * Postfix's DELIVERY_REQUESTS_SMTPUTF8).
 *
 * The server is not trusted: every reply is bounded and checked by
 * smtp_session_reply(), and after a half-failed transaction the session
 * is reset (RSET) before anyone may reuse it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/stream.h"

#define STAGE_MAIL "sending MAIL FROM"
#define STAGE_RCPT "sending RCPT TO"
#define STAGE_DATA "sending DATA command"
#define STAGE_BODY "sending message body"
#define STAGE_DOT "sending end of data -- message may be sent more than once"

/* Converted content goes to the stream in pieces of this size. */
#define SMTP_DATA_CHUNK 65536

/* The text of a reply, safe for the reason field. */
static const char *xfer_text(const struct smtp_reply *r, char *tmp, size_t size)
{
    return log_printable(tmp, size, buf_cstr(&r->text), r->text.len);
}

/* Every selected recipient gets the same error. */
static void fail_selected(struct smtp_session *s, struct smtp_delivery *d,
                          const size_t *sel, size_t nsel,
                          const struct smtp_error *e)
{
    for (size_t i = 0; i < nsel; i++) {
        struct smtp_rcpt *r = &d->req->rcpts[sel[i]];

        if (!r->final)
            smtp_rcpt_result(r, s->relay, e->status, e->dsn, "%s", e->reason);
    }
}

/* The accepted recipients among the selected get the same error. */
static void fail_accepted(struct smtp_session *s, struct smtp_delivery *d,
                          const size_t *sel, size_t nsel,
                          const struct smtp_error *e)
{
    for (size_t i = 0; i < nsel; i++) {
        struct smtp_rcpt *r = &d->req->rcpts[sel[i]];

        if (r->accepted && !r->final)
            smtp_rcpt_result(r, s->relay, e->status, e->dsn, "%s", e->reason);
    }
}

static void reply_error(struct smtp_session *s, const struct smtp_reply *rp,
                        const char *command, struct smtp_error *e)
{
    char tmp[SMTP_REASON_MAX];

    smtp_error_set(e, smtp_reply_status(rp->code), rp->dsn,
                   "host %s said: %s (in reply to %s command)", s->namaddr,
                   xfer_text(rp, tmp, sizeof(tmp)), command);
}

static void queue_mail(struct smtp_session *s, const struct smtp_message *m,
                       const char *sender, bool utf8)
{
    struct buf cmd = BUF_INIT;

    buf_printf(&cmd, "MAIL FROM:<%s>", sender);
    if (s->features & SMTP_FEATURE_SIZE)
        buf_printf(&cmd, " SIZE=%lld", m->size);
    if (m->eightbit && (s->features & SMTP_FEATURE_8BITMIME))
        buf_puts(&cmd, " BODY=8BITMIME");
    if (utf8 && (s->features & SMTP_FEATURE_SMTPUTF8))
        buf_puts(&cmd, " SMTPUTF8");
    if (s->features & SMTP_FEATURE_DSN) {
        if (m->ret != NULL)
            buf_printf(&cmd, " RET=%s", m->ret);
        if (m->envid != NULL && *m->envid) {
            buf_puts(&cmd, " ENVID=");
            smtp_xtext_encode(&cmd, m->envid);
        }
    }
    smtp_session_cmd(s, "%s", cmd.data);
    buf_free(&cmd);
}

static void queue_rcpt(struct smtp_session *s, const struct smtp_rcpt *r)
{
    struct buf cmd = BUF_INIT;

    buf_printf(&cmd, "RCPT TO:<%s>", r->addr);
    if (s->features & SMTP_FEATURE_DSN) {
        const char *semi = strchr(r->orcpt, ';');

        if (*r->notify)
            buf_printf(&cmd, " NOTIFY=%s", r->notify);
        if (semi != NULL && !smtp_text_8bit(r->orcpt, strlen(r->orcpt))) {
            buf_printf(&cmd, " ORCPT=%.*s;", (int)(semi - r->orcpt), r->orcpt);
            smtp_xtext_encode(&cmd, semi + 1);
        } else if (*r->orig && !smtp_text_8bit(r->orig, strlen(r->orig))) {
            buf_puts(&cmd, " ORCPT=rfc822;");
            smtp_xtext_encode(&cmd, r->orig);
        }
    }
    smtp_session_cmd(s, "%s", cmd.data);
    buf_free(&cmd);
}

/* Apply the reply to one RCPT TO. */
static void rcpt_reply(struct smtp_session *s, struct smtp_rcpt *r,
                       struct smtp_reply *rp)
{
    struct smtp_error e;

    if (rp->code / 100 == 2) {
        r->accepted = true;
        return;
    }
    /*
     * RFC 5321 4.5.3.1.10: 552 to RCPT means "too many recipients", a
     * temporary condition (Postfix treats it as 452 too).
     */
    if (rp->code == 552) {
        rp->code = 452;
        rp->dsn[0] = '4';
    }
    reply_error(s, rp, "RCPT TO", &e);
    smtp_rcpt_result(r, s->relay, e.status, e.dsn, "%s", e.reason);
}

struct content_ctx {
    struct smtp_session *s;
    struct smtp_dot dot;
    struct buf out;
    bool failed;
};

static int content_chunk(const char *data, size_t len, void *ctx)
{
    struct content_ctx *c = ctx;

    buf_reset(&c->out);
    smtp_dot_feed(&c->dot, data, len, &c->out);
    stream_write(c->s->stream, c->out.data, c->out.len);
    if (stream_status(c->s->stream) != STREAM_OK) {
        c->failed = true;
        return -1;
    }
    return 0;
}

static int content_to_memory(const char *data, size_t len, void *ctx)
{
    buf_append(ctx, data, len);
    return 0;
}

/*
 * The content converted to 7 bits (smtp_mime.c), sent in pieces through
 * content_chunk.  The whole message is read into memory first: cleanup
 * bounded its size, and MIME structure needs look-ahead.
 */
static int send_downgraded(struct smtp_delivery *d, struct content_ctx *c,
                           char *err, size_t errlen)
{
    struct buf raw = BUF_INIT, conv = BUF_INIT;
    const struct buf *src = &raw;
    int rc;

    rc = qfile_read_content(d->msg->fd, &d->msg->env, content_to_memory, &raw,
                            err, errlen);
    if (rc == 0 && raw.len > 0 &&
        smtp_mime_downgrade(raw.data, raw.len, &conv) > 0)
        src = &conv;
    for (size_t off = 0; rc == 0 && off < src->len;) {
        size_t n =
            src->len - off < SMTP_DATA_CHUNK ? src->len - off : SMTP_DATA_CHUNK;

        rc = content_chunk(src->data + off, n, c);
        off += n;
    }
    buf_free(&raw);
    buf_free(&conv);
    return rc;
}

/* Send the content and the final dot.  0, or -1 with e filled. */
static int send_content(struct smtp_session *s, struct smtp_delivery *d,
                        struct smtp_error *e)
{
    struct content_ctx c;
    char err[512];
    int rc;

    memset(&c, 0, sizeof(c));
    c.s = s;
    smtp_dot_init(&c.dot, smtp_params.line_length_limit);
    stream_set_timeout(s->stream, smtp_params.data_xfer_timeout * 1000);
    if (d->msg->eightbit && !(s->features & SMTP_FEATURE_8BITMIME) &&
        smtp_params.mime_conversion)
        rc = send_downgraded(d, &c, err, sizeof(err));
    else
        rc = qfile_read_content(d->msg->fd, &d->msg->env, content_chunk, &c,
                                err, sizeof(err));
    if (rc < 0) {
        buf_free(&c.out);
        if (c.failed) {
            /* The stream's sticky error says how the write failed. */
            if (smtp_session_send(s, smtp_params.data_xfer_timeout, STAGE_BODY,
                                  e) == 0)
                smtp_error_set(e, 4, "4.4.2",
                               "lost connection with %s while %s", s->namaddr,
                               STAGE_BODY);
            s->reusable = false;
            return -1;
        }
        /*
         * Our queue file broke mid-message: the server has a partial
         * message that it must not accept, so the connection goes.
         */
        s->reusable = false;
        smtp_error_set(e, 4, "4.3.0", "cannot read queue file: %s", err);
        return -1;
    }
    buf_reset(&c.out);
    smtp_dot_end(&c.dot, &c.out);
    stream_write(s->stream, c.out.data, c.out.len);
    buf_free(&c.out);
    return smtp_session_send(s, smtp_params.data_xfer_timeout, STAGE_BODY, e);
}

/* After DATA's 354: content, dot, and the reply(s). */
static void xfer_data(struct smtp_session *s, struct smtp_delivery *d,
                      const size_t *sel, size_t nsel)
{
    struct smtp_reply rp;
    struct smtp_error e;
    char tmp[SMTP_REASON_MAX];

    if (send_content(s, d, &e) < 0) {
        fail_accepted(s, d, sel, nsel, &e);
        return;
    }
    smtp_reply_init(&rp);
    for (size_t i = 0; i < nsel; i++) {
        struct smtp_rcpt *r = &d->req->rcpts[sel[i]];

        if (!r->accepted || r->final)
            continue;
        if (smtp_session_reply(s, smtp_params.data_done_timeout, STAGE_DOT, &rp,
                               &e) < 0) {
            fail_accepted(s, d, sel, nsel, &e);
            break;
        }
        if (rp.code / 100 == 2) {
            smtp_rcpt_result(r, s->relay, 2, rp.dsn, "%s",
                             xfer_text(&rp, tmp, sizeof(tmp)));
        } else {
            reply_error(s, &rp, "end of DATA", &e);
            if (!d->lmtp) {
                fail_accepted(s, d, sel, nsel, &e);
                break;
            }
            smtp_rcpt_result(r, s->relay, e.status, e.dsn, "%s", e.reason);
        }
        /* SMTP: one reply settles every accepted recipient. */
        if (!d->lmtp) {
            for (size_t k = i + 1; k < nsel; k++) {
                struct smtp_rcpt *o = &d->req->rcpts[sel[k]];

                if (o->accepted && !o->final)
                    smtp_rcpt_result(o, s->relay, 2, rp.dsn, "%s",
                                     xfer_text(&rp, tmp, sizeof(tmp)));
            }
            break;
        }
    }
    smtp_reply_free(&rp);
}

/*
 * Choose the recipients this server may get; the others fail here.
 * Returns how many were selected into sel.
 */
static size_t select_rcpts(struct smtp_session *s, struct smtp_delivery *d,
                           size_t *sel, bool *utf8)
{
    struct smtp_message *m = d->msg;
    bool sender_utf8 = smtp_text_8bit(d->req->sender, strlen(d->req->sender));
    bool have_utf8 = s->features & SMTP_FEATURE_SMTPUTF8;
    /* Postfix: requested, and the message really has UTF-8 headers. */
    bool header_utf8 = m->smtputf8 && m->header_8bit;
    size_t nsel = 0;

    *utf8 = m->smtputf8 || sender_utf8;
    for (size_t i = 0; i < d->req->nrcpt; i++) {
        struct smtp_rcpt *r = &d->req->rcpts[i];
        bool rcpt_utf8;

        if (r->final)
            continue;
        r->accepted = false;
        if (s->size_max > 0 && m->size > s->size_max) {
            smtp_rcpt_result(r, s->relay, 5, "5.3.4",
                             "message size %lld exceeds size limit %lld of "
                             "server %s",
                             m->size, s->size_max, s->namaddr);
            continue;
        }
        rcpt_utf8 = smtp_text_8bit(r->addr, strlen(r->addr));
        if ((sender_utf8 || rcpt_utf8 || header_utf8) && !have_utf8) {
            smtp_rcpt_result(r, s->relay, 5, "5.6.7",
                             "SMTPUTF8 is required, but was not offered by "
                             "host %s",
                             s->namaddr);
            continue;
        }
        *utf8 = *utf8 || rcpt_utf8;
        sel[nsel++] = i;
    }
    return nsel;
}

void smtp_xfer(struct smtp_session *s, struct smtp_delivery *d)
{
    size_t *sel = xcalloc(d->req->nrcpt ? d->req->nrcpt : 1, sizeof(*sel));
    bool pipelining = s->features & SMTP_FEATURE_PIPELINING;
    bool utf8, mail_ok = false, clean = false;
    size_t nsel, naccepted = 0;
    struct smtp_reply rp;
    struct smtp_error e;

    smtp_reply_init(&rp);
    nsel = select_rcpts(s, d, sel, &utf8);
    if (nsel == 0) {
        clean = true;
        goto out;
    }
    s->use_count++;
    for (size_t i = 0; i < nsel; i++)
        d->req->rcpts[sel[i]].conn_use = s->use_count;

    queue_mail(s, d->msg, d->req->sender, utf8);
    if (pipelining) {
        for (size_t i = 0; i < nsel; i++)
            queue_rcpt(s, &d->req->rcpts[sel[i]]);
        smtp_session_cmd(s, "DATA");
    }
    if (smtp_session_reply(s, smtp_params.mail_timeout, STAGE_MAIL, &rp, &e) <
        0) {
        fail_selected(s, d, sel, nsel, &e);
        goto out;
    }
    if (rp.code / 100 == 2) {
        mail_ok = true;
    } else {
        reply_error(s, &rp, "MAIL FROM", &e);
        fail_selected(s, d, sel, nsel, &e);
        if (!pipelining)
            goto reset;
    }
    for (size_t i = 0; i < nsel; i++) {
        struct smtp_rcpt *r = &d->req->rcpts[sel[i]];

        if (!pipelining)
            queue_rcpt(s, r);
        if (smtp_session_reply(s, smtp_params.rcpt_timeout, STAGE_RCPT, &rp,
                               &e) < 0) {
            /*
             * Keep what the server already said (a refused MAIL, refused
             * RCPTs); the accepted and the unanswered ones lose.
             */
            if (mail_ok) {
                fail_accepted(s, d, sel, i, &e);
                fail_selected(s, d, sel + i, nsel - i, &e);
            }
            goto out;
        }
        /* After a refused MAIL the RCPT replies say nothing new. */
        if (!mail_ok)
            continue;
        rcpt_reply(s, r, &rp);
        if (r->accepted)
            naccepted++;
    }
    if (!pipelining) {
        if (naccepted == 0)
            goto reset;
        smtp_session_cmd(s, "DATA");
    }
    if (smtp_session_reply(s, smtp_params.data_init_timeout, STAGE_DATA, &rp,
                           &e) < 0) {
        fail_accepted(s, d, sel, nsel, &e);
        goto out;
    }
    if (rp.code != 354) {
        if (naccepted > 0) {
            reply_error(s, &rp, "DATA", &e);
            /* A 2xx here is a protocol violation: not a delivery. */
            if (e.status == 2) {
                e.status = 4;
                str_lcpy(e.dsn, "4.5.0", sizeof(e.dsn));
            }
            fail_accepted(s, d, sel, nsel, &e);
        }
        goto reset;
    }
    if (naccepted == 0) {
        /*
         * Pipelined DATA accepted although no recipient was: end the
         * empty message at once; the server must refuse it.
         */
        smtp_session_cmd(s, ".");
        if (smtp_session_reply(s, smtp_params.data_done_timeout, STAGE_DOT, &rp,
                               &e) < 0)
            goto out;
        if (rp.code / 100 == 2)
            s->reusable = false; /* it took an empty message: odd */
        goto reset;
    }
    xfer_data(s, d, sel, nsel);
    clean = true;
    goto out;
reset:
    /* Leave the session in a known state for whoever reuses it. */
    if (s->reusable && smtp_session_rset(s) == 0)
        clean = true;
out:
    if (!clean)
        s->reusable = false;
    smtp_reply_free(&rp);
    free(sel);
}
