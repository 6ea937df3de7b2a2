/*
 * imap_cmd - the command table: one row per IMAP command with the states
 * it is valid in, whether it has a UID form, whether untagged EXPUNGE
 * must wait after it, and its handler.  A new command is a handler and a
 * row here.  Also the helpers several handlers share: UID dispatch,
 * sequence sets resolved against the selected mailbox, store errors.
 */
#include <string.h>
#include <strings.h>

#include "imapd/imapd.h"
#include "util/log.h"

#define ANY (IMAP_STATE_NOTAUTH | IMAP_STATE_AUTH | IMAP_STATE_SELECTED)
#define AUTHED (IMAP_STATE_AUTH | IMAP_STATE_SELECTED)
#define SEL IMAP_STATE_SELECTED
#define NOTAUTH IMAP_STATE_NOTAUTH

static const struct imap_cmd_def imap_cmds[] = {
    {"APPEND", AUTHED, 0, imap_cmd_append},
    {"AUTHENTICATE", NOTAUTH, 0, imap_cmd_authenticate},
    {"CAPABILITY", ANY, 0, imap_cmd_capability},
    {"CHECK", SEL, 0, imap_cmd_check},
    {"CLOSE", SEL, 0, imap_cmd_close},
    {"COPY", SEL, IMAP_CMD_UID, imap_cmd_copy},
    {"CREATE", AUTHED, 0, imap_cmd_create},
    {"DELETE", AUTHED, 0, imap_cmd_delete},
    {"ENABLE", AUTHED, 0, imap_cmd_enable},
    {"EXAMINE", AUTHED, 0, imap_cmd_examine},
    {"EXPUNGE", SEL, IMAP_CMD_UID, imap_cmd_expunge},
    {"FETCH", SEL, IMAP_CMD_UID | IMAP_CMD_NOEXPUNGE, imap_cmd_fetch},
    {"ID", ANY, 0, imap_cmd_id},
    {"IDLE", AUTHED, 0, imap_cmd_idle},
    {"LIST", AUTHED, 0, imap_cmd_list},
    {"LOGIN", NOTAUTH, 0, imap_cmd_login},
    {"LOGOUT", ANY, 0, imap_cmd_logout},
    {"LSUB", AUTHED, 0, imap_cmd_lsub},
    {"MOVE", SEL, IMAP_CMD_UID, imap_cmd_move},
    {"NAMESPACE", AUTHED, 0, imap_cmd_namespace},
    {"NOOP", ANY, 0, imap_cmd_noop},
    {"RENAME", AUTHED, 0, imap_cmd_rename},
    {"SEARCH", SEL, IMAP_CMD_UID | IMAP_CMD_NOEXPUNGE, imap_cmd_search},
    {"SELECT", AUTHED, 0, imap_cmd_select},
    {"STARTTLS", NOTAUTH, 0, imap_cmd_starttls},
    {"STATUS", AUTHED, 0, imap_cmd_status},
    {"STORE", SEL, IMAP_CMD_UID | IMAP_CMD_NOEXPUNGE, imap_cmd_store},
    {"SUBSCRIBE", AUTHED, 0, imap_cmd_subscribe},
    {"UID", SEL, 0, imap_cmd_uid},
    {"UNSELECT", SEL, 0, imap_cmd_unselect},
    {"UNSUBSCRIBE", AUTHED, 0, imap_cmd_unsubscribe},
};

const struct imap_cmd_def *imap_cmd_find(const char *name)
{
    for (size_t i = 0; i < sizeof(imap_cmds) / sizeof(imap_cmds[0]); i++)
        if (strcmp(imap_cmds[i].name, name) == 0)
            return &imap_cmds[i];
    return NULL;
}

void imap_cmd_uid(struct imap_session *s, struct imap_command *cmd)
{
    const struct imap_cmd_def *def;
    char *name;

    if (cmd->nargs < 1 || cmd->args[0].type != IMAP_ARG_ATOM) {
        imap_cmd_done(s, "BAD", "UID needs a command.");
        return;
    }
    name = cmd->args[0].str;
    for (char *c = name; *c; c++)
        if (*c >= 'a' && *c <= 'z')
            *c = (char)(*c - 'a' + 'A');
    def = imap_cmd_find(name);
    if (def == NULL || !(def->flags & IMAP_CMD_UID)) {
        imap_cmd_done(s, "BAD", "Unknown UID command.");
        return;
    }
    s->cmd = def;
    s->uid_cmd = true;
    cmd->args++;
    cmd->nargs--;
    def->run(s, cmd);
}

int imap_seqset_to_seqs(struct imap_session *s, const struct imap_arg *arg,
                        bool uid, uint32_t **seqs, size_t *n,
                        const char **err)
{
    struct imap_seqset set;
    uint32_t count = imap_mailbox_count(s->mb);
    unsigned char *bits;
    size_t k = 0;

    *seqs = NULL;
    *n = 0;
    if (arg->type != IMAP_ARG_ATOM ||
        imap_parse_seqset(&s->pool, arg->str, &set) < 0) {
        *err = "Invalid message set";
        return -1;
    }
    if (count == 0) {
        if (uid)
            return 0;
        *err = "No messages";
        return -1;
    }
    bits = imap_pool_alloc(&s->pool, count / 8 + 1);
    for (size_t i = 0; i < set.n; i++) {
        uint32_t lo = set.r[i].lo, hi = set.r[i].hi, t;

        if (uid) {
            uint32_t last = imap_mailbox_msg(s->mb, count)->uid;
            uint32_t slo, shi;

            lo = lo == IMAP_SEQ_STAR ? last : lo;
            hi = hi == IMAP_SEQ_STAR ? last : hi;
            if (lo > hi) {
                t = lo;
                lo = hi;
                hi = t;
            }
            if (!imap_mailbox_uid_range(s->mb, lo, hi, &slo, &shi))
                continue;
            lo = slo;
            hi = shi;
        } else {
            lo = lo == IMAP_SEQ_STAR ? count : lo;
            hi = hi == IMAP_SEQ_STAR ? count : hi;
            if (lo > hi) {
                t = lo;
                lo = hi;
                hi = t;
            }
            if (hi > count) {
                *err = "Invalid message set: no such message";
                return -1;
            }
        }
        for (uint32_t q = lo; q <= hi && q != 0; q++) {
            bits[q / 8] |= (unsigned char)(1u << (q % 8));
            if (q == UINT32_MAX)
                break;
        }
    }
    for (uint32_t q = 1; q <= count; q++)
        if (bits[q / 8] & (1u << (q % 8)))
            k++;
    *seqs = imap_pool_allocarray(&s->pool, k + 1, sizeof(**seqs));
    for (uint32_t q = 1; q <= count; q++)
        if (bits[q / 8] & (1u << (q % 8)))
            (*seqs)[(*n)++] = q;
    return 0;
}

void imap_cmd_store_error(struct imap_session *s, int status,
                          const char *what, const char *err)
{
    if (status == IMAP_STORE_ERR) {
        imap_session_log(s, "%s: %s", what, err);
        imap_cmd_done(s, "NO", "[SERVERBUG] Internal error occurred. Refer "
                               "to server log for more information.");
        return;
    }
    log_debug("[%s]: %s: %s", s->addr, what, err);
    switch (status) {
    case IMAP_STORE_NONEXISTENT:
        imap_cmd_done(s, "NO", "%sMailbox doesn't exist.",
                      imap_store_code(status));
        break;
    case IMAP_STORE_EXISTS:
        imap_cmd_done(s, "NO", "%sMailbox already exists.",
                      imap_store_code(status));
        break;
    case IMAP_STORE_BADNAME:
        imap_cmd_done(s, "NO", "%sInvalid mailbox name.",
                      imap_store_code(status));
        break;
    case IMAP_STORE_GONE:
        imap_session_mailbox_gone(s);
        imap_cmd_done(s, "NO", "Mailbox is gone.");
        break;
    default:
        imap_cmd_done(s, "NO", "%s%s failed.", imap_store_code(status), what);
        break;
    }
}
