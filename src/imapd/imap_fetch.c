/*
 * imap_fetch - FETCH and UID FETCH (RFC 3501 6.4.5; MODSEQ and
 * CHANGEDSINCE of CONDSTORE, RFC 7162).
 *
 * The command runs message by message and suspends whenever the output
 * waiting for the client passes IMAP_OUT_HIGH (imap_cmd_suspend), so
 * fetching a whole mailbox from a slow client holds at most one
 * message's response plus the high-water mark, and never blocks other
 * sessions.  Each message's response is built whole before it is
 * queued, so a read error in the middle cannot leave half a response.
 *
 * Message text comes from the store in CRLF form (imap_mailbox_msg_read)
 * and is parsed by imap_mime only when a section below the whole message
 * is asked for; whole messages (BODY[], RFC822) are read as stored and
 * converted to CRLF as they are copied into the output, in one pass;
 * ENVELOPE, BODY[STRUCTURE] and RFC822.SIZE come from the store's cache.
 * A non-PEEK body fetch sets \Seen (not in a read-only mailbox) and
 * reports the new FLAGS in the same response.
 *
 * Expunged messages (gone from the store but still numbered in this
 * session, since EXPUNGE may not be sent during FETCH) are skipped and
 * the command ends with NO [EXPUNGEISSUED], as Dovecot does; the
 * EXPUNGE itself follows after the next command that allows it.  A
 * section that does not exist in a message is NIL.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "imapd/imap_mime.h"
#include "imapd/imapd.h"

/* A message buffer bigger than this is not kept for the next message. */
#define IMAP_FETCH_MSG_KEEP (1024 * 1024)

struct imap_fetch_state {
    struct imap_fetch_atts atts;
    uint32_t *seqs;
    size_t n, next;
    bool body;        /* some attribute needs the message text */
    bool mime;        /* some section needs the MIME tree */
    bool set_seen;    /* some non-PEEK body attribute */
    bool has_flags;   /* FLAGS was asked for */
    bool expunged;    /* skipped an expunged message */
    bool failed;      /* a store error */
    bool stored_form; /* msg is as stored: only whole-message literals
                         without <partial> need it, converted to CRLF as
                         they are copied into the output */
    struct buf msg;   /* the current message, kept for the next */
};

static void imap_fetch_date(struct buf *b, time_t t)
{
    static const char *const mon[12] = {"Jan", "Feb", "Mar", "Apr",
                                        "May", "Jun", "Jul", "Aug",
                                        "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    long off;

    localtime_r(&t, &tm);
    off = tm.tm_gmtoff / 60;
    buf_printf(b, "\"%02d-%s-%04d %02d:%02d:%02d %c%02ld%02ld\"", tm.tm_mday,
               mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
               tm.tm_sec, off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
}

/*
 * "BODY[1.TEXT]<0>" data: a literal of the (partial) text, or NIL.
 * stored: data is the message as stored, sent in CRLF form (no partial).
 */
static void imap_fetch_literal(struct buf *b, const char *label,
                               const struct imap_fetch_att *att,
                               const char *data, size_t len, bool exists,
                               bool stored)
{
    buf_puts(b, label);
    if (att->partial)
        buf_printf(b, "<%u>", att->partial_off);
    buf_putc(b, ' ');
    if (!exists) {
        buf_puts(b, "NIL");
        return;
    }
    if (stored) {
        assert(!att->partial);
        buf_printf(b, "{%llu}\r\n",
                   (unsigned long long)imap_mime_crlf_size(data, len));
        imap_mime_crlf(data, len, b);
        return;
    }
    if (att->partial) {
        size_t off = att->partial_off < len ? att->partial_off : len;
        size_t n = len - off < att->partial_len ? len - off : att->partial_len;

        data += off;
        len = n;
    }
    buf_printf(b, "{%zu}\r\n", len);
    buf_append(b, data, len);
}

/*
 * One message's response appended to b; false on a store error (b's
 * new part undefined: the caller cuts it off).  Skipping an expunged
 * message appends nothing.
 */
static bool imap_fetch_one(struct imap_session *s, struct imap_fetch_state *st,
                           uint32_t seq, struct buf *b)
{
    struct buf part = BUF_INIT, msg;
    struct imap_mime *mime = NULL;
    const struct imap_msg *m = imap_mailbox_msg(s->mb, seq);
    bool ok = true, first = true, seen_set = false;
    char err[512];
    int r;

    buf_reset(&st->msg);
    if (st->body) {
        r = st->stored_form
                ? imap_mailbox_msg_read_raw(s->mb, seq, &st->msg, err,
                                            sizeof(err))
                : imap_mailbox_msg_read(s->mb, seq, &st->msg, err,
                                        sizeof(err));
        if (r == IMAP_STORE_EXPUNGED) {
            st->expunged = true;
            return true;
        }
        if (r < 0) {
            imap_session_log(s, "FETCH %u: %s", seq, err);
            return false;
        }
        if (st->mime)
            mime = imap_mime_parse(st->msg.data, st->msg.len);
    }
    msg = st->msg;
    if (st->set_seen && !(m->flags & IMAP_FLAG_SEEN) &&
        !imap_mailbox_readonly(s->mb)) {
        r = imap_mailbox_store_flags(s->mb, &seq, 1, IMAP_FLAGS_ADD,
                                     IMAP_FLAG_SEEN, 0, 0, NULL, NULL, err,
                                     sizeof(err));
        if (r < 0)
            imap_session_log(s, "FETCH %u: setting \\Seen: %s", seq, err);
        else
            seen_set = true;
        m = imap_mailbox_msg(s->mb, seq);
    }
    buf_printf(b, "* %u FETCH (", seq);
    if (s->uid_cmd) {
        buf_printf(b, "UID %u", m->uid);
        first = false;
    }
    for (size_t i = 0; i < st->atts.n && ok; i++) {
        const struct imap_fetch_att *att = &st->atts.v[i];
        uint64_t size;

        if (att->item == IMAP_FETCH_UID && s->uid_cmd)
            continue;
        if (!first)
            buf_putc(b, ' ');
        first = false;
        switch (att->item) {
        case IMAP_FETCH_UID:
            buf_printf(b, "UID %u", m->uid);
            break;
        case IMAP_FETCH_FLAGS:
            buf_puts(b, "FLAGS ");
            imap_reply_flags(s->mb, m, b);
            break;
        case IMAP_FETCH_INTERNALDATE:
            buf_puts(b, "INTERNALDATE ");
            imap_fetch_date(b, m->internaldate);
            break;
        case IMAP_FETCH_RFC822_SIZE:
            r = imap_mailbox_msg_size(s->mb, seq, &size, err, sizeof(err));
            if ((ok = r == 0))
                buf_printf(b, "RFC822.SIZE %llu", (unsigned long long)size);
            break;
        case IMAP_FETCH_ENVELOPE:
            buf_puts(b, "ENVELOPE ");
            r = imap_mailbox_msg_envelope(s->mb, seq, b, err, sizeof(err));
            ok = r == 0;
            break;
        case IMAP_FETCH_BODY:
        case IMAP_FETCH_BODYSTRUCTURE:
            buf_puts(b, att->item == IMAP_FETCH_BODY ? "BODY "
                                                     : "BODYSTRUCTURE ");
            r = imap_mailbox_msg_bodystructure(
                s->mb, seq, att->item == IMAP_FETCH_BODYSTRUCTURE, b, err,
                sizeof(err));
            ok = r == 0;
            break;
        case IMAP_FETCH_MODSEQ:
            buf_printf(b, "MODSEQ (%llu)", (unsigned long long)m->modseq);
            break;
        case IMAP_FETCH_RFC822:
            imap_fetch_literal(b, "RFC822", att, msg.data, msg.len, true,
                               st->stored_form);
            break;
        case IMAP_FETCH_RFC822_HEADER:
        case IMAP_FETCH_RFC822_TEXT:
        case IMAP_FETCH_SECTION: {
            struct imap_section sec;
            const struct imap_section *use = &att->section;
            char label[64];
            struct buf lab = BUF_INIT;
            bool exists;

            if (att->item != IMAP_FETCH_SECTION) {
                memset(&sec, 0, sizeof(sec));
                sec.text = att->item == IMAP_FETCH_RFC822_HEADER
                               ? IMAP_SECTION_HEADER
                               : IMAP_SECTION_TEXT;
                use = &sec;
                snprintf(label, sizeof(label), "%s",
                         att->item == IMAP_FETCH_RFC822_HEADER
                             ? "RFC822.HEADER"
                             : "RFC822.TEXT");
                buf_puts(&lab, label);
            } else {
                buf_printf(&lab, "BODY[%s]", att->section_text);
            }
            if (use->n_part == 0 && use->text == IMAP_SECTION_ALL) {
                imap_fetch_literal(b, lab.data, att, msg.data, msg.len, true,
                                   st->stored_form);
            } else {
                buf_reset(&part);
                exists = imap_mime_section(mime, use, &part) == 0;
                imap_fetch_literal(b, lab.data, att, part.data, part.len,
                                   exists, false);
            }
            buf_free(&lab);
            break;
        }
        }
        if (!ok)
            imap_session_log(s, "FETCH %u: %s", seq, err);
    }
    if (ok && seen_set && !st->has_flags) {
        buf_puts(b, first ? "FLAGS " : " FLAGS ");
        imap_reply_flags(s->mb, m, b);
    }
    buf_puts(b, ")\r\n");
    if (mime != NULL)
        imap_mime_free(mime);
    buf_free(&part);
    return ok;
}

static void imap_fetch_resume(struct imap_session *s)
{
    struct imap_fetch_state *st = s->cmd_state;
    struct buf *out = &s->conn.out;

    while (st->next < st->n) {
        uint32_t seq = st->seqs[st->next++];
        const struct imap_msg *m = imap_mailbox_msg(s->mb, seq);
        size_t mark = out->len;

        if (m == NULL)
            continue;
        if (m->expunged) {
            st->expunged = true;
            continue;
        }
        if (st->atts.changedsince && m->modseq <= st->atts.changedsince_modseq)
            continue;
        /* Built in place; nothing is sent before it is whole. */
        if (!imap_fetch_one(s, st, seq, out)) {
            buf_truncate(out, mark);
            st->failed = true;
            continue;
        }
        if (st->msg.cap > IMAP_FETCH_MSG_KEEP)
            buf_free(&st->msg);
        /*
         * Send as we go: the client works on the first responses while
         * the next are made, instead of waiting for a buffer full.
         */
        if ((imap_conn_pending_out(&s->conn) >= IMAP_OUT_FLUSH &&
             !imap_conn_flush(&s->conn)) ||
            imap_conn_pending_out(&s->conn) > IMAP_OUT_HIGH) {
            /* A write error ends the session; the pool goes with it,
             * so nothing malloc'ed may stay in st. */
            buf_free(&st->msg);
            imap_cmd_suspend(s, imap_fetch_resume);
            return;
        }
    }
    buf_free(&st->msg);
    if (st->failed)
        imap_cmd_done(s, "NO", "[SERVERBUG] Internal error occurred. Refer "
                               "to server log for more information.");
    else if (st->expunged)
        imap_cmd_done(s, "NO", "[EXPUNGEISSUED] Some messages were "
                               "expunged.");
    else
        imap_cmd_done(s, "OK", "Fetch completed.");
}

void imap_cmd_fetch(struct imap_session *s, struct imap_command *cmd)
{
    struct imap_fetch_state *st;
    const char *err = NULL;

    if (cmd->nargs < 2) {
        imap_cmd_done(s, "BAD", "FETCH needs a message set and attributes.");
        return;
    }
    st = imap_pool_alloc(&s->pool, sizeof(*st));
    if (imap_parse_fetch_atts(&s->pool, cmd->args + 1, cmd->nargs - 1,
                              &st->atts, &err) < 0) {
        imap_cmd_done(s, "BAD", "Error in FETCH: %s.", err);
        return;
    }
    if (imap_seqset_to_seqs(s, &cmd->args[0], s->uid_cmd, &st->seqs, &st->n,
                            &err) < 0) {
        imap_cmd_done(s, "BAD", "%s.", err);
        return;
    }
    for (size_t i = 0; i < st->atts.n; i++) {
        const struct imap_fetch_att *a = &st->atts.v[i];

        switch (a->item) {
        case IMAP_FETCH_SECTION:
            st->body = true;
            if (a->section.n_part > 0 || a->section.text != IMAP_SECTION_ALL)
                st->mime = true;
            if (!a->peek)
                st->set_seen = true;
            break;
        case IMAP_FETCH_RFC822:
            st->body = true;
            st->set_seen = true;
            break;
        case IMAP_FETCH_RFC822_TEXT:
            st->set_seen = true;
            /* FALLTHROUGH */
        case IMAP_FETCH_RFC822_HEADER:
            st->body = true;
            st->mime = true;
            break;
        case IMAP_FETCH_FLAGS:
            st->has_flags = true;
            break;
        case IMAP_FETCH_MODSEQ:
            s->enabled_condstore = true;
            break;
        default:
            break;
        }
    }
    /* The stored form serves only whole messages sent as they are. */
    st->stored_form = st->body && !st->mime;
    for (size_t i = 0; i < st->atts.n; i++)
        if (st->atts.v[i].partial)
            st->stored_form = false;
    s->cmd_state = st;
    imap_fetch_resume(s);
}
