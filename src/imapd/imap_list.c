/*
 * imap_list - LIST and LSUB (RFC 3501 6.3.8/6.3.9) with the CHILDREN
 * (RFC 3348) and SPECIAL-USE (RFC 6154) attributes the store reports.
 * LIST-EXTENDED selection and return options are not implemented (and
 * not advertised): a LIST with more than two arguments is BAD.
 *
 * The reference and the pattern are joined (reference first) and matched
 * with imap_list_match(), "*" across levels and "%" within one; an empty
 * pattern asks for the hierarchy delimiter.
 */
#include <string.h>

#include "imapd/imapd.h"

static void imap_list_run(struct imap_session *s, struct imap_command *cmd,
                          bool lsub)
{
    const char *what = lsub ? "LSUB" : "LIST";
    const char *ref, *pat;
    struct imap_list list;
    struct buf b = BUF_INIT;
    char *joined, err[512];
    int r;

    if (cmd->nargs != 2 || !imap_arg_astring(&cmd->args[0], &ref) ||
        !imap_arg_astring(&cmd->args[1], &pat)) {
        imap_cmd_done(s, "BAD", "%s needs a reference and a mailbox pattern.",
                      what);
        return;
    }
    if (*pat == 0) {
        if (!lsub)
            imap_reply_printf(s, "* LIST (\\Noselect) \"%c\" \"\"\r\n",
                              IMAP_HIERARCHY_SEP);
        imap_cmd_done(s, "OK", "%s completed.", lsub ? "Lsub" : "List");
        return;
    }
    joined = imap_pool_alloc(&s->pool, strlen(ref) + strlen(pat) + 1);
    memcpy(joined, ref, strlen(ref));
    memcpy(joined + strlen(ref), pat, strlen(pat) + 1);
    if ((r = imap_store_list(s->store, lsub, &list, err, sizeof(err))) < 0) {
        imap_cmd_store_error(s, r, what, err);
        return;
    }
    for (size_t i = 0; i < list.n; i++) {
        const struct imap_list_entry *e = &list.v[i];
        unsigned attrs = e->attrs;

        if (!imap_list_match(joined, e->name))
            continue;
        if (lsub)
            attrs &= IMAP_LIST_NOSELECT;
        buf_printf(&b, "* %s (", what);
        imap_list_attrs_format(attrs, &b);
        buf_printf(&b, ") \"%c\" ", IMAP_HIERARCHY_SEP);
        imap_reply_astring(&b, e->name, strlen(e->name));
        buf_puts(&b, "\r\n");
        if (b.len > IMAP_OUT_LOW) {
            imap_reply_raw(s, b.data, b.len);
            buf_reset(&b);
        }
    }
    imap_list_free(&list);
    if (b.len > 0)
        imap_reply_raw(s, b.data, b.len);
    buf_free(&b);
    imap_cmd_done(s, "OK", "%s completed.", lsub ? "Lsub" : "List");
}

void imap_cmd_list(struct imap_session *s, struct imap_command *cmd)
{
    imap_list_run(s, cmd, false);
}

void imap_cmd_lsub(struct imap_session *s, struct imap_command *cmd)
{
    imap_list_run(s, cmd, true);
}
