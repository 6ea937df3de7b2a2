/*
 * imap_cmd_auth - commands of the authenticated state (valid when a
 * mailbox is selected too): SELECT, EXAMINE, CREATE, DELETE, RENAME,
 * SUBSCRIBE, UNSUBSCRIBE, STATUS, APPEND, NAMESPACE, IDLE.  LIST and
 * LSUB are in imap_list.c.
 *
 * Mailbox names arrive as astrings in modified UTF-7 and go to the store
 * unchanged (imap_store.h checks them; a bad one is NO [CANNOT]).
 * Store failures become NO with the response code that fits
 * (imap_cmd_store_error).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "imapd/imapd.h"
#include "util/log.h"

/* One mailbox-name argument; NULL after answering BAD. */
static const char *imap_cmd_mailbox(struct imap_session *s,
                                    const struct imap_arg *a)
{
    const char *name;

    if (!imap_arg_astring(a, &name)) {
        imap_cmd_done(s, "BAD", "Invalid mailbox name argument.");
        return NULL;
    }
    return imap_mailbox_arg(&s->pool, name);
}

/* Is name the mailbox s has selected? */
static bool imap_cmd_is_selected(struct imap_session *s, const char *name)
{
    return s->mb != NULL && strcmp(imap_mailbox_name(s->mb), name) == 0;
}

static void imap_cmd_open(struct imap_session *s, struct imap_command *cmd,
                          bool readonly)
{
    const char *name;
    struct imap_mailbox *mb;
    struct buf b = BUF_INIT;
    char err[512];
    int status = 0;
    uint32_t unseen;

    if (cmd->nargs < 1 || cmd->nargs > 2) {
        imap_cmd_done(s, "BAD", "%s needs a mailbox name.",
                      readonly ? "EXAMINE" : "SELECT");
        return;
    }
    if (cmd->nargs == 2) {
        const struct imap_arg *p = &cmd->args[1];

        if (p->type != IMAP_ARG_LIST || p->count != 1 ||
            !imap_arg_is_atom(&p->list[0], "CONDSTORE")) {
            imap_cmd_done(s, "BAD", "Unknown SELECT parameter.");
            return;
        }
        s->enabled_condstore = true;
    }
    if ((name = imap_cmd_mailbox(s, &cmd->args[0])) == NULL)
        return;
    /* A SELECT, even a failing one, leaves the mailbox selected before. */
    imap_session_unselect(s);
    mb = imap_mailbox_open(s->store, name, readonly ? IMAP_OPEN_READONLY : 0,
                           &status, err, sizeof(err));
    if (mb == NULL) {
        imap_cmd_store_error(s, status, readonly ? "EXAMINE" : "SELECT", err);
        return;
    }
    s->mb = mb;
    s->state = IMAP_STATE_SELECTED;
    imap_reply_flags_lists(s, &b);
    buf_printf(&b, "* %u EXISTS\r\n* %u RECENT\r\n", imap_mailbox_count(mb),
               imap_mailbox_recent(mb));
    if ((unseen = imap_mailbox_first_unseen(mb)) != 0)
        buf_printf(&b, "* OK [UNSEEN %u] First unseen.\r\n", unseen);
    buf_printf(&b,
               "* OK [UIDVALIDITY %u] UIDs valid\r\n"
               "* OK [UIDNEXT %u] Predicted next UID\r\n"
               "* OK [HIGHESTMODSEQ %llu] Highest\r\n",
               imap_mailbox_uidvalidity(mb), imap_mailbox_uidnext(mb),
               (unsigned long long)imap_mailbox_highestmodseq(mb));
    imap_reply_raw(s, b.data, b.len);
    buf_free(&b);
    imap_cmd_done(s, "OK", "[%s] %s completed.",
                  imap_mailbox_readonly(mb) ? "READ-ONLY" : "READ-WRITE",
                  readonly ? "Examine" : "Select");
}

void imap_cmd_select(struct imap_session *s, struct imap_command *cmd)
{
    imap_cmd_open(s, cmd, false);
}

void imap_cmd_examine(struct imap_session *s, struct imap_command *cmd)
{
    imap_cmd_open(s, cmd, true);
}

void imap_cmd_create(struct imap_session *s, struct imap_command *cmd)
{
    const char *name;
    char err[512], *copy;
    size_t len;
    int r;

    if (cmd->nargs != 1) {
        imap_cmd_done(s, "BAD", "CREATE needs a mailbox name.");
        return;
    }
    if ((name = imap_cmd_mailbox(s, &cmd->args[0])) == NULL)
        return;
    /* "a.b." declares that names will be created below "a.b". */
    copy = imap_pool_strdup(&s->pool, name);
    len = strlen(copy);
    if (len > 1 && copy[len - 1] == IMAP_HIERARCHY_SEP)
        copy[len - 1] = 0;
    if ((r = imap_store_create(s->store, copy, err, sizeof(err))) < 0) {
        imap_cmd_store_error(s, r, "CREATE", err);
        return;
    }
    imap_cmd_done(s, "OK", "Create completed.");
}

void imap_cmd_delete(struct imap_session *s, struct imap_command *cmd)
{
    const char *name;
    char err[512];
    int r;

    if (cmd->nargs != 1) {
        imap_cmd_done(s, "BAD", "DELETE needs a mailbox name.");
        return;
    }
    if ((name = imap_cmd_mailbox(s, &cmd->args[0])) == NULL)
        return;
    if (imap_cmd_is_selected(s, name) && strcmp(name, "INBOX") != 0)
        imap_session_unselect(s); /* as Dovecot: close it, then delete */
    if ((r = imap_store_delete(s->store, name, err, sizeof(err))) < 0) {
        imap_cmd_store_error(s, r, "DELETE", err);
        return;
    }
    imap_cmd_done(s, "OK", "Delete completed.");
}

void imap_cmd_rename(struct imap_session *s, struct imap_command *cmd)
{
    const char *from, *to;
    char err[512];
    int r;

    if (cmd->nargs != 2) {
        imap_cmd_done(s, "BAD", "RENAME needs two mailbox names.");
        return;
    }
    if ((from = imap_cmd_mailbox(s, &cmd->args[0])) == NULL ||
        (to = imap_cmd_mailbox(s, &cmd->args[1])) == NULL)
        return;
    if (imap_cmd_is_selected(s, from) && strcmp(from, "INBOX") != 0)
        imap_session_unselect(s);
    if ((r = imap_store_rename(s->store, from, to, err, sizeof(err))) < 0) {
        imap_cmd_store_error(s, r, "RENAME", err);
        return;
    }
    imap_cmd_done(s, "OK", "Rename completed.");
}

static void imap_cmd_subscription(struct imap_session *s,
                                  struct imap_command *cmd, bool on)
{
    const char *name;
    char err[512];
    int r;

    if (cmd->nargs != 1) {
        imap_cmd_done(s, "BAD", "%s needs a mailbox name.",
                      on ? "SUBSCRIBE" : "UNSUBSCRIBE");
        return;
    }
    if ((name = imap_cmd_mailbox(s, &cmd->args[0])) == NULL)
        return;
    if ((r = imap_store_subscribe(s->store, name, on, err, sizeof(err))) < 0) {
        imap_cmd_store_error(s, r, on ? "SUBSCRIBE" : "UNSUBSCRIBE", err);
        return;
    }
    imap_cmd_done(s, "OK", "%s completed.", on ? "Subscribe" : "Unsubscribe");
}

void imap_cmd_subscribe(struct imap_session *s, struct imap_command *cmd)
{
    imap_cmd_subscription(s, cmd, true);
}

void imap_cmd_unsubscribe(struct imap_session *s, struct imap_command *cmd)
{
    imap_cmd_subscription(s, cmd, false);
}

void imap_cmd_status(struct imap_session *s, struct imap_command *cmd)
{
    const char *name;
    const struct imap_arg *items;
    struct imap_status st;
    struct buf b = BUF_INIT;
    char err[512];
    int r;

    if (cmd->nargs != 2 || cmd->args[1].type != IMAP_ARG_LIST ||
        cmd->args[1].count == 0) {
        imap_cmd_done(s, "BAD", "STATUS needs a mailbox and a list of items.");
        return;
    }
    if ((name = imap_cmd_mailbox(s, &cmd->args[0])) == NULL)
        return;
    items = &cmd->args[1];
    for (size_t i = 0; i < items->count; i++) {
        static const char *const known[] = {"MESSAGES", "RECENT", "UIDNEXT",
                                            "UIDVALIDITY", "UNSEEN",
                                            "HIGHESTMODSEQ"};
        bool ok = false;

        for (size_t k = 0; k < sizeof(known) / sizeof(known[0]) && !ok; k++)
            ok = imap_arg_is_atom(&items->list[i], known[k]);
        if (!ok) {
            imap_cmd_done(s, "BAD", "Unknown STATUS item.");
            return;
        }
    }
    if ((r = imap_store_status(s->store, name, &st, err, sizeof(err))) < 0) {
        imap_cmd_store_error(s, r, "STATUS", err);
        return;
    }
    buf_puts(&b, "* STATUS ");
    imap_reply_astring(&b, name, strlen(name));
    buf_puts(&b, " (");
    for (size_t i = 0; i < items->count; i++) {
        const struct imap_arg *it = &items->list[i];

        if (i > 0)
            buf_putc(&b, ' ');
        if (imap_arg_is_atom(it, "MESSAGES"))
            buf_printf(&b, "MESSAGES %u", st.messages);
        else if (imap_arg_is_atom(it, "RECENT"))
            buf_printf(&b, "RECENT %u", st.recent);
        else if (imap_arg_is_atom(it, "UIDNEXT"))
            buf_printf(&b, "UIDNEXT %u", st.uidnext);
        else if (imap_arg_is_atom(it, "UIDVALIDITY"))
            buf_printf(&b, "UIDVALIDITY %u", st.uidvalidity);
        else if (imap_arg_is_atom(it, "UNSEEN"))
            buf_printf(&b, "UNSEEN %u", st.unseen);
        else
            buf_printf(&b, "HIGHESTMODSEQ %llu",
                       (unsigned long long)st.highestmodseq);
    }
    buf_puts(&b, ")\r\n");
    imap_reply_raw(s, b.data, b.len);
    buf_free(&b);
    imap_cmd_done(s, "OK", "Status completed.");
}

void imap_cmd_append(struct imap_session *s, struct imap_command *cmd)
{
    struct imap_append msg;
    const struct imap_arg *a = cmd->args;
    size_t n = cmd->nargs, i = 1;
    const char *name, *err_text = NULL;
    const char **kw = NULL;
    uint32_t uidvalidity = 0, uid = 0;
    char err[512];
    int r;

    memset(&msg, 0, sizeof(msg));
    if (n < 2 || n > 4) {
        imap_cmd_done(s, "BAD", "APPEND needs a mailbox and a message.");
        return;
    }
    if ((name = imap_cmd_mailbox(s, &a[0])) == NULL)
        return;
    if (i < n - 1 && a[i].type == IMAP_ARG_LIST) {
        if (imap_parse_flags(&s->pool, &a[i], &msg.flags, &kw,
                             &msg.n_keywords, &err_text) < 0) {
            imap_cmd_done(s, "BAD", "Invalid flags: %s.", err_text);
            return;
        }
        msg.keywords = kw;
        i++;
    }
    if (i < n - 1) {
        const char *date;

        if (a[i].type != IMAP_ARG_QUOTED || !imap_arg_string(&a[i], &date) ||
            imap_parse_datetime(date, &msg.internaldate) < 0) {
            imap_cmd_done(s, "BAD", "Invalid internal date.");
            return;
        }
        i++;
    }
    if (i != n - 1 || a[i].type == IMAP_ARG_LIST ||
        a[i].type == IMAP_ARG_ATOM) {
        imap_cmd_done(s, "BAD", "APPEND needs the message as a literal.");
        return;
    }
    if (a[i].len == 0) {
        imap_cmd_done(s, "NO", "Can't save a zero byte message.");
        return;
    }
    msg.data = a[i].str;
    msg.len = a[i].len;
    r = imap_store_append(s->store, name, &msg, &uidvalidity, &uid, err,
                          sizeof(err));
    if (r == IMAP_STORE_NONEXISTENT) {
        imap_cmd_done(s, "NO", "[TRYCREATE] Mailbox doesn't exist.");
        return;
    }
    if (r < 0) {
        imap_cmd_store_error(s, r, "APPEND", err);
        return;
    }
    imap_cmd_done(s, "OK", "[APPENDUID %u %u] Append completed.", uidvalidity,
                  uid);
}

void imap_cmd_namespace(struct imap_session *s, struct imap_command *cmd)
{
    if (cmd->nargs != 0) {
        imap_cmd_done(s, "BAD", "NAMESPACE takes no arguments.");
        return;
    }
    imap_reply_printf(s, "* NAMESPACE ((\"\" \"%c\")) NIL NIL\r\n",
                      IMAP_HIERARCHY_SEP);
    imap_cmd_done(s, "OK", "Namespace completed.");
}

/* ---------------------------------------------------------------- IDLE */

void imap_cmd_idle(struct imap_session *s, struct imap_command *cmd)
{
    if (cmd->nargs != 0) {
        imap_cmd_done(s, "BAD", "IDLE takes no arguments.");
        return;
    }
    if (s->mb != NULL)
        imap_session_sync(s, true);
    if (s->mode == IMAP_MODE_CLOSE)
        return;
    imap_reply_printf(s, "+ idling\r\n");
    (void)imap_notify_watch(s);
    s->mode = IMAP_MODE_IDLE;
    /* Changes reopen the index (imap_idle_wake); until then an IDLE
     * session holds no LMDB maps.  A wake leaves it open until the next
     * tick, so sessions sharing a mailbox share one reopening. */
    imap_session_hibernate(s);
}

void imap_idle_wake(struct imap_session *s)
{
    if (s->mode != IMAP_MODE_IDLE || s->mb == NULL)
        return;
    imap_session_sync(s, true);
    /* Send it now, and close if the mailbox went away. */
    imap_session_on_drain(s);
}

void imap_idle_done(struct imap_session *s, const char *line, size_t len)
{
    imap_notify_unwatch(s);
    s->mode = IMAP_MODE_BUSY;
    if (len == 4 && strncasecmp(line, "DONE", 4) == 0)
        imap_cmd_done(s, "OK", "Idle completed.");
    else
        imap_cmd_done(s, "BAD", "Expected DONE.");
}
