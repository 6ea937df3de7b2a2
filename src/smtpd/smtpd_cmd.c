/*
 * smtpd_cmd - the SMTP command table: one row per command, with its
 * handler and whether it counts toward smtpd_junk_command_limit.  A new
 * command is one handler and one row here.  The row order is also the
 * order of the counters on the "disconnect from" log line (Postfix's).
 */
#include "smtpd/smtpd.h"

#include "util/str.h"

const struct smtpd_cmd smtpd_cmd_table[] = {
    {"HELO", smtpd_cmd_helo, SMTPD_CMD_JUNK},
    {"EHLO", smtpd_cmd_ehlo, SMTPD_CMD_JUNK},
    {"STARTTLS", smtpd_cmd_starttls, 0},
    {"AUTH", smtpd_cmd_auth, 0},
    {"MAIL", smtpd_cmd_mail, 0},
    {"RCPT", smtpd_cmd_rcpt, 0},
    {"DATA", smtpd_cmd_data, 0},
    {"BDAT", smtpd_cmd_bdat, 0},
    {"RSET", smtpd_cmd_rset, SMTPD_CMD_JUNK},
    {"NOOP", smtpd_cmd_noop, SMTPD_CMD_JUNK},
    {"VRFY", smtpd_cmd_vrfy, SMTPD_CMD_JUNK},
    {"ETRN", smtpd_cmd_not_implemented, SMTPD_CMD_JUNK},
    {"EXPN", smtpd_cmd_not_implemented, SMTPD_CMD_JUNK},
    {"HELP", smtpd_cmd_help, SMTPD_CMD_JUNK},
    {"QUIT", smtpd_cmd_quit, 0},
};

const size_t smtpd_cmd_count =
    sizeof(smtpd_cmd_table) / sizeof(smtpd_cmd_table[0]);

const struct smtpd_cmd *smtpd_cmd_find(const char *verb, size_t *index)
{
    for (size_t i = 0; i < smtpd_cmd_count; i++) {
        if (str_eq_ci(verb, smtpd_cmd_table[i].name)) {
            *index = i;
            return &smtpd_cmd_table[i];
        }
    }
    return NULL;
}
