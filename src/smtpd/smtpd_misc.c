/*
 * smtpd_misc - the small commands: RSET, NOOP, QUIT, VRFY, HELP, the
 * ones not implemented yet (ETRN, EXPN), and the command statistics for
 * the "disconnect from" log line.  STARTTLS and AUTH: smtpd_tls.c and
 * smtpd_auth.c.
 *
 * VRFY runs the same recipient checks as RCPT, so it reveals no more than
 * RCPT would (and nothing at all with disable_vrfy_command = yes).
 */
#include "smtpd/smtpd.h"

#include <stdlib.h>
#include <string.h>

#include "smtpd/smtpd_check.h"
#include "util/mem.h"

int smtpd_cmd_rset(struct smtpd_session *s, const char *args)
{
    if (*args != 0) {
        smtpd_reply(s, "501 5.5.4 Syntax: RSET");
        return -1;
    }
    smtpd_xact_reset(s);
    smtpd_reply(s, "250 2.0.0 Ok");
    return 0;
}

int smtpd_cmd_noop(struct smtpd_session *s, const char *args)
{
    /* RFC 5321 4.1.1.9: a NOOP argument is allowed and ignored. */
    smtpd_reply(s, "250 2.0.0 Ok");
    return 0;
}

int smtpd_cmd_quit(struct smtpd_session *s, const char *args)
{
    smtpd_reply(s, "221 2.0.0 Bye");
    s->hangup = true;
    return 0;
}

int smtpd_cmd_help(struct smtpd_session *s, const char *args)
{
    struct buf list = BUF_INIT;

    for (size_t i = 0; i < smtpd_cmd_count; i++) {
        if (smtpd_cmd_table[i].handler == smtpd_cmd_not_implemented ||
            smtpd_cmd_table[i].handler == smtpd_cmd_auth)
            continue;
        buf_printf(&list, " %s", smtpd_cmd_table[i].name);
    }
    smtpd_reply(s, "214 2.0.0 Commands:%s", list.data);
    buf_free(&list);
    return 0;
}

int smtpd_cmd_not_implemented(struct smtpd_session *s, const char *args)
{
    smtpd_reply(s, "502 5.5.1 Error: command not implemented");
    return -1;
}

int smtpd_cmd_vrfy(struct smtpd_session *s, const char *args)
{
    struct buf arg = BUF_INIT;
    struct mailaddr addr;
    const char *rest, *err;
    bool bad;
    size_t n;

    if (s->cfg->disable_vrfy) {
        smtpd_reply(s, "502 5.5.1 VRFY command is disabled");
        return -1;
    }
    if (smtpd_tls_required(s)) {
        smtpd_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
        return -1;
    }
    if (*args == 0) {
        smtpd_reply(s, "501 5.5.4 Syntax: VRFY address");
        return -1;
    }
    if (s->cfg->helo_required && s->helo == NULL) {
        smtpd_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
        return -1;
    }
    /* "VRFY user@domain" or "VRFY <user@domain>": reuse the path parser. */
    buf_puts(&arg, "TO:");
    buf_puts(&arg, args);
    n = arg.len;
    while (n > 3 && (arg.data[n - 1] == ' ' || arg.data[n - 1] == '\t'))
        n--;
    buf_truncate(&arg, n);
    bad = smtpd_extract_path(arg.data, "TO:", false, &s->scratch, &rest) < 0 ||
          *rest != 0 ||
          smtpd_parse_addr(s, s->scratch.data, s->scratch.len, false, &addr,
                           &err) < 0;
    buf_free(&arg);
    if (bad) {
        smtpd_reply(s, "501 5.1.3 Bad recipient address syntax");
        return -1;
    }
    if (smtpd_check_rcpt(s, &addr, "VRFY") < 0) { /* replied, logged */
        addr_free(&addr);
        return -1;
    }
    smtpd_reply(s, "252 2.0.0 %s", addr.text);
    addr_free(&addr);
    return 0;
}

void smtpd_format_counts(const struct smtpd_session *s, struct buf *out)
{
    unsigned ok = 0, total = 0;

    buf_reset(out);
    for (size_t i = 0; i <= smtpd_cmd_count; i++) {
        const struct smtpd_cmd_count *c = &s->counts[i];
        char name[SMTPD_VERB_MAX + 1];
        size_t j;

        if (c->total == 0)
            continue;
        if (i < smtpd_cmd_count) {
            const char *src = smtpd_cmd_table[i].name;

            for (j = 0; j < SMTPD_VERB_MAX && src[j]; j++)
                name[j] = (char)(src[j] | 0x20); /* ASCII letters */
            name[j] = 0;
        } else {
            memcpy(name, "unknown", sizeof("unknown"));
        }
        if (c->ok == c->total)
            buf_printf(out, " %s=%u", name, c->total);
        else
            buf_printf(out, " %s=%u/%u", name, c->ok, c->total);
        ok += c->ok;
        total += c->total;
    }
    if (ok == total)
        buf_printf(out, " commands=%u", total);
    else
        buf_printf(out, " commands=%u/%u", ok, total);
}
