/*
 * imap_cmd_any - commands valid in every state: CAPABILITY, NOOP,
 * LOGOUT, ID (RFC 2971), and the ones around it: ENABLE (RFC 5161, only
 * CONDSTORE can be enabled), STARTTLS, CHECK.
 */
#include <string.h>

#include "imapd/imapd.h"
#include "util/log.h"

/* ID: at most this many field/value pairs, each string this long. */
#define IMAP_ID_PAIRS_MAX 30
#define IMAP_ID_VALUE_MAX 1024

void imap_cmd_capability(struct imap_session *s, struct imap_command *cmd)
{
    struct buf caps = BUF_INIT;

    if (cmd->nargs != 0) {
        imap_cmd_done(s, "BAD", "CAPABILITY takes no arguments.");
        return;
    }
    imap_capabilities(s, &caps);
    imap_reply_printf(s, "* CAPABILITY %s\r\n", caps.data);
    buf_free(&caps);
    imap_cmd_done(s, "OK", "Capability completed.");
}

void imap_cmd_noop(struct imap_session *s, struct imap_command *cmd)
{
    if (cmd->nargs != 0) {
        imap_cmd_done(s, "BAD", "NOOP takes no arguments.");
        return;
    }
    imap_cmd_done(s, "OK", "NOOP completed.");
}

void imap_cmd_check(struct imap_session *s, struct imap_command *cmd)
{
    if (cmd->nargs != 0) {
        imap_cmd_done(s, "BAD", "CHECK takes no arguments.");
        return;
    }
    /* Every change is on disk when its command ends: nothing to do. */
    imap_cmd_done(s, "OK", "CHECK completed.");
}

void imap_cmd_logout(struct imap_session *s, struct imap_command *cmd)
{
    if (cmd->nargs != 0) {
        imap_cmd_done(s, "BAD", "LOGOUT takes no arguments.");
        return;
    }
    imap_reply_printf(s, "* BYE Logging out\r\n");
    s->mode = IMAP_MODE_CLOSE;
    imap_cmd_done(s, "OK", "Logout completed.");
    s->state = IMAP_STATE_LOGOUT;
}

void imap_cmd_id(struct imap_session *s, struct imap_command *cmd)
{
    const struct imap_arg *a = cmd->args;

    if (cmd->nargs != 1 ||
        !(imap_arg_is_nil(a) ||
          (a->type == IMAP_ARG_LIST && a->count % 2 == 0 &&
           a->count <= 2 * IMAP_ID_PAIRS_MAX))) {
        imap_cmd_done(s, "BAD", "ID needs NIL or a list of field/value pairs.");
        return;
    }
    if (a->type == IMAP_ARG_LIST) {
        for (size_t i = 0; i < a->count; i++) {
            const char *v;

            if ((i % 2 == 0 && !imap_arg_string(&a->list[i], &v)) ||
                (i % 2 == 1 && !imap_arg_is_nil(&a->list[i]) &&
                 !imap_arg_string(&a->list[i], &v)) ||
                a->list[i].len > IMAP_ID_VALUE_MAX) {
                imap_cmd_done(s, "BAD", "Invalid ID field.");
                return;
            }
        }
        for (size_t i = 0; i + 1 < a->count; i += 2) {
            char name[64], value[128];

            if (strcasecmp(a->list[i].str, "name") != 0 &&
                strcasecmp(a->list[i].str, "version") != 0)
                continue;
            log_printable(name, sizeof(name), a->list[i].str,
                          a->list[i].len);
            log_printable(value, sizeof(value), a->list[i + 1].str,
                          a->list[i + 1].len);
            log_debug("[%s]: client ID %s=%s", s->addr, name, value);
        }
    }
    imap_reply_printf(s, "* ID (\"name\" \"posthorn\")\r\n");
    imap_cmd_done(s, "OK", "ID completed.");
}

void imap_cmd_enable(struct imap_session *s, struct imap_command *cmd)
{
    struct buf enabled = BUF_INIT;

    if (cmd->nargs == 0) {
        imap_cmd_done(s, "BAD", "ENABLE needs capability names.");
        return;
    }
    for (size_t i = 0; i < cmd->nargs; i++) {
        if (cmd->args[i].type != IMAP_ARG_ATOM) {
            buf_free(&enabled);
            imap_cmd_done(s, "BAD", "ENABLE takes capability names.");
            return;
        }
        if (imap_arg_is_atom(&cmd->args[i], "CONDSTORE") &&
            strstr(enabled.data ? enabled.data : "", "CONDSTORE") == NULL) {
            s->enabled_condstore = true;
            buf_puts(&enabled, " CONDSTORE");
        }
    }
    imap_reply_printf(s, "* ENABLED%s\r\n", buf_cstr(&enabled));
    buf_free(&enabled);
    imap_cmd_done(s, "OK", "Enabled.");
}

void imap_cmd_starttls(struct imap_session *s, struct imap_command *cmd)
{
    if (cmd->nargs != 0) {
        imap_cmd_done(s, "BAD", "STARTTLS takes no arguments.");
        return;
    }
    if (s->conn.state != IMAP_CONN_PLAIN) {
        imap_cmd_done(s, "BAD", "TLS is already active.");
        return;
    }
    if (imapd_tls == NULL || imapd_params.tls_level == IMAP_TLS_NONE) {
        imap_cmd_done(s, "BAD", "TLS support isn't enabled.");
        return;
    }
    imap_cmd_done(s, "OK", "Begin TLS negotiation now.");
    /* imap_session_process() starts the handshake once the OK is out. */
    s->mode = IMAP_MODE_STARTTLS;
}
