/*
 * imap_cmd_selected - commands of the selected state besides FETCH and
 * SEARCH: CLOSE, UNSELECT (RFC 3691), EXPUNGE and UID EXPUNGE (UIDPLUS,
 * RFC 4315), STORE (with CONDSTORE's UNCHANGEDSINCE, RFC 7162), COPY
 * (COPYUID) and MOVE (RFC 6851).
 *
 * Sequence sets are resolved against the session's view of the mailbox
 * (imap_seqset_to_seqs); the store changes files and index and reports
 * what the session must tell the client.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imapd/imapd.h"

static void imap_send_expunges(struct imap_session *s,
                               const struct imap_sync *sy)
{
    struct buf b = BUF_INIT;

    for (size_t i = 0; i < sy->n_expunged; i++)
        buf_printf(&b, "* %u EXPUNGE\r\n", sy->expunged_seqs[i]);
    if (b.len > 0)
        imap_reply_raw(s, b.data, b.len);
    buf_free(&b);
}

void imap_cmd_close(struct imap_session *s, struct imap_command *cmd)
{
    struct imap_sync sy;
    char err[512];

    if (cmd->nargs != 0) {
        imap_cmd_done(s, "BAD", "CLOSE takes no arguments.");
        return;
    }
    memset(&sy, 0, sizeof(sy));
    /* CLOSE expunges without telling (RFC 3501 6.4.2). */
    if (!imap_mailbox_readonly(s->mb)) {
        int r = imap_mailbox_expunge(s->mb, NULL, 0, &sy, err, sizeof(err));

        if (r < 0 && r != IMAP_STORE_GONE)
            imap_session_log(s, "CLOSE: expunge: %s", err);
        imap_sync_free(&sy);
    }
    imap_session_unselect(s);
    imap_cmd_done(s, "OK", "Close completed.");
}

void imap_cmd_unselect(struct imap_session *s, struct imap_command *cmd)
{
    if (cmd->nargs != 0) {
        imap_cmd_done(s, "BAD", "UNSELECT takes no arguments.");
        return;
    }
    imap_session_unselect(s);
    imap_cmd_done(s, "OK", "Unselect completed.");
}

void imap_cmd_expunge(struct imap_session *s, struct imap_command *cmd)
{
    struct imap_sync sy;
    uint32_t *seqs = NULL, *uids = NULL;
    size_t n = 0;
    const char *perr;
    char err[512];
    int r;

    if (cmd->nargs != (s->uid_cmd ? 1u : 0u)) {
        imap_cmd_done(s, "BAD", s->uid_cmd ? "UID EXPUNGE needs a UID set."
                                           : "EXPUNGE takes no arguments.");
        return;
    }
    if (imap_mailbox_readonly(s->mb)) {
        imap_cmd_done(s, "NO", "[READ-ONLY] Mailbox is read-only.");
        return;
    }
    if (s->uid_cmd) {
        if (imap_seqset_to_seqs(s, &cmd->args[0], true, &seqs, &n, &perr) <
            0) {
            imap_cmd_done(s, "BAD", "%s.", perr);
            return;
        }
        if (n == 0) {
            imap_cmd_done(s, "OK", "Expunge completed.");
            return;
        }
        uids = imap_pool_allocarray(&s->pool, n, sizeof(*uids));
        for (size_t i = 0; i < n; i++)
            uids[i] = imap_mailbox_msg(s->mb, seqs[i])->uid;
    }
    memset(&sy, 0, sizeof(sy));
    r = imap_mailbox_expunge(s->mb, uids, n, &sy, err, sizeof(err));
    if (r < 0) {
        imap_sync_free(&sy);
        imap_cmd_store_error(s, r, "EXPUNGE", err);
        return;
    }
    imap_send_expunges(s, &sy);
    imap_sync_free(&sy);
    imap_cmd_done(s, "OK", "Expunge completed.");
}

/* ------------------------------------------------------------ STORE */

static void imap_store_fetch_reply(struct imap_session *s, struct buf *b,
                                   uint32_t seq)
{
    const struct imap_msg *m = imap_mailbox_msg(s->mb, seq);

    if (m == NULL || m->expunged)
        return;
    buf_printf(b, "* %u FETCH (", seq);
    if (s->uid_cmd)
        buf_printf(b, "UID %u ", m->uid);
    buf_puts(b, "FLAGS ");
    imap_reply_flags(s->mb, m, b);
    if (s->enabled_condstore)
        buf_printf(b, " MODSEQ (%llu)", (unsigned long long)m->modseq);
    buf_puts(b, ")\r\n");
}

void imap_cmd_store(struct imap_session *s, struct imap_command *cmd)
{
    const struct imap_arg *a = cmd->args;
    size_t n = cmd->nargs, i = 1, nseqs = 0, nkw = 0, nmod = 0;
    uint32_t *seqs, *modified = NULL;
    uint64_t unchangedsince = 0, kwbits = 0;
    enum imap_flags_mode mode;
    bool silent;
    const char *item, *perr = NULL, **kw;
    struct imap_arg flaglist;
    unsigned flags;
    char err[512];
    int r;

    if (n < 3) {
        imap_cmd_done(s, "BAD", "STORE needs a set, an item and flags.");
        return;
    }
    if (a[i].type == IMAP_ARG_LIST) {
        const struct imap_arg *m = &a[i];

        if (m->count != 2 || !imap_arg_is_atom(&m->list[0], "UNCHANGEDSINCE") ||
            m->list[1].type != IMAP_ARG_ATOM ||
            !imap_parse_number64(m->list[1].str, m->list[1].len,
                                 &unchangedsince)) {
            imap_cmd_done(s, "BAD", "Invalid STORE modifier.");
            return;
        }
        s->enabled_condstore = true;
        i++;
    }
    if (i + 1 >= n || a[i].type != IMAP_ARG_ATOM) {
        imap_cmd_done(s, "BAD", "STORE needs an item and flags.");
        return;
    }
    item = a[i++].str;
    mode = *item == '+'   ? IMAP_FLAGS_ADD
           : *item == '-' ? IMAP_FLAGS_REMOVE
                          : IMAP_FLAGS_REPLACE;
    if (*item == '+' || *item == '-')
        item++;
    if (strcasecmp(item, "FLAGS") == 0)
        silent = false;
    else if (strcasecmp(item, "FLAGS.SILENT") == 0)
        silent = true;
    else {
        imap_cmd_done(s, "BAD", "Unknown STORE item.");
        return;
    }
    /* "(\Seen \Flagged)" or "\Seen \Flagged": one list either way. */
    if (n - i == 1 && a[i].type == IMAP_ARG_LIST) {
        flaglist = a[i];
    } else {
        memset(&flaglist, 0, sizeof(flaglist));
        flaglist.type = IMAP_ARG_LIST;
        flaglist.list = (struct imap_arg *)&a[i];
        flaglist.count = n - i;
    }
    if (imap_parse_flags(&s->pool, &flaglist, &flags, &kw, &nkw, &perr) < 0) {
        imap_cmd_done(s, "BAD", "Invalid flags: %s.", perr);
        return;
    }
    if (imap_seqset_to_seqs(s, &a[0], s->uid_cmd, &seqs, &nseqs, &perr) < 0) {
        imap_cmd_done(s, "BAD", "%s.", perr);
        return;
    }
    if (imap_mailbox_readonly(s->mb)) {
        imap_cmd_done(s, "NO", "[READ-ONLY] Mailbox is read-only.");
        return;
    }
    for (size_t k = 0; k < nkw; k++) {
        unsigned idx;

        r = imap_mailbox_keyword_index(s->mb, kw[k], mode != IMAP_FLAGS_REMOVE,
                                       &idx, err, sizeof(err));
        if (r == IMAP_STORE_NONEXISTENT)
            continue; /* removing a keyword nobody has */
        if (r < 0) {
            imap_cmd_store_error(s, r, "STORE", err);
            return;
        }
        kwbits |= (uint64_t)1 << idx;
    }
    if (nseqs == 0) {
        imap_cmd_done(s, "OK", "Store completed.");
        return;
    }
    r = imap_mailbox_store_flags(s->mb, seqs, nseqs, mode, flags, kwbits,
                                 unchangedsince,
                                 unchangedsince ? &modified : NULL, &nmod,
                                 err, sizeof(err));
    if (r < 0) {
        free(modified);
        imap_cmd_store_error(s, r, "STORE", err);
        return;
    }
    {
        struct buf b = BUF_INIT;
        bool expunged = false;

        for (size_t k = 0; k < nseqs; k++) {
            const struct imap_msg *m = imap_mailbox_msg(s->mb, seqs[k]);
            bool skipped = false;

            if (m == NULL || m->expunged) {
                expunged = true;
                continue;
            }
            for (size_t q = 0; q < nmod && !skipped; q++)
                skipped = modified[q] == seqs[k];
            /* .SILENT still reports MODSEQ to CONDSTORE clients (7162 3.2). */
            if (!skipped && (!silent || s->enabled_condstore))
                imap_store_fetch_reply(s, &b, seqs[k]);
        }
        if (b.len > 0)
            imap_reply_raw(s, b.data, b.len);
        buf_free(&b);
        if (nmod > 0) {
            struct buf set = BUF_INIT;

            /* Sequence numbers for STORE, UIDs for UID STORE. */
            for (size_t q = 0; q < nmod && s->uid_cmd; q++)
                modified[q] = imap_mailbox_msg(s->mb, modified[q])->uid;
            imap_reply_set(&set, modified, nmod);
            free(modified);
            imap_cmd_done(s, "OK", "[MODIFIED %s] Conditional STORE failed.",
                          set.data);
            buf_free(&set);
            return;
        }
        free(modified);
        if (expunged)
            imap_cmd_done(s, "NO", "[EXPUNGEISSUED] Some of the messages "
                                   "no longer exist.");
        else
            imap_cmd_done(s, "OK", "Store completed.");
    }
}

/* ------------------------------------------------------------ COPY/MOVE */

static void imap_copy_run(struct imap_session *s, struct imap_command *cmd,
                          bool move)
{
    const char *what = move ? "MOVE" : "COPY";
    const char *dest, *perr;
    uint32_t *seqs;
    size_t n;
    struct imap_copy_result res;
    struct imap_sync sy;
    struct buf code = BUF_INIT;
    char err[512];
    int r;

    if (cmd->nargs != 2 || !imap_arg_astring(&cmd->args[1], &dest)) {
        imap_cmd_done(s, "BAD", "%s needs a message set and a mailbox.", what);
        return;
    }
    dest = imap_mailbox_arg(&s->pool, dest);
    if (imap_seqset_to_seqs(s, &cmd->args[0], s->uid_cmd, &seqs, &n, &perr) <
        0) {
        imap_cmd_done(s, "BAD", "%s.", perr);
        return;
    }
    if (move && imap_mailbox_readonly(s->mb)) {
        imap_cmd_done(s, "NO", "[READ-ONLY] Mailbox is read-only.");
        return;
    }
    if (n == 0) {
        imap_cmd_done(s, "OK", "No messages found.");
        return;
    }
    memset(&res, 0, sizeof(res));
    memset(&sy, 0, sizeof(sy));
    r = imap_mailbox_copy(s->mb, seqs, n, dest, move, &res,
                          move ? &sy : NULL, err, sizeof(err));
    if (r == IMAP_STORE_NONEXISTENT) {
        imap_copy_result_free(&res);
        imap_sync_free(&sy);
        imap_cmd_done(s, "NO", "[TRYCREATE] Mailbox doesn't exist.");
        return;
    }
    if (r < 0) {
        imap_copy_result_free(&res);
        imap_sync_free(&sy);
        imap_cmd_store_error(s, r, what, err);
        return;
    }
    if (res.n > 0) {
        buf_printf(&code, "[COPYUID %u ", res.uidvalidity);
        imap_reply_set(&code, res.src_uids, res.n);
        buf_putc(&code, ' ');
        imap_reply_set(&code, res.dst_uids, res.n);
        buf_puts(&code, "] ");
    }
    if (move) {
        /* RFC 6851: COPYUID comes untagged, before the expunges. */
        if (code.len > 0)
            imap_reply_printf(s, "* OK %sMoved UIDs.\r\n", code.data);
        imap_send_expunges(s, &sy);
        imap_cmd_done(s, "OK", "Move completed.");
    } else {
        imap_cmd_done(s, "OK", "%sCopy completed.", buf_cstr(&code));
    }
    buf_free(&code);
    imap_copy_result_free(&res);
    imap_sync_free(&sy);
}

void imap_cmd_copy(struct imap_session *s, struct imap_command *cmd)
{
    imap_copy_run(s, cmd, false);
}

void imap_cmd_move(struct imap_session *s, struct imap_command *cmd)
{
    imap_copy_run(s, cmd, true);
}
