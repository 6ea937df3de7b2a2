/*
 * smtpd_mail - MAIL and RCPT, and the transaction they build.
 *
 * Addresses are parsed by global/addr (RFC 5321 grammar, source routes
 * refused); ESMTP parameters by smtpd_params.  The sender and each
 * recipient go through the restriction lists (smtpd_check.h: at MAIL
 * or, with smtpd_delay_reject, at each RCPT) before they are accepted;
 * only accepted recipients are kept, at most smtpd_recipient_limit of
 * them.  Rejections of policy (size, relay, unknown user) are logged the
 * way Postfix logs them ("NOQUEUE: reject: RCPT from ...").
 */
#include "smtpd/smtpd.h"

#include <stdlib.h>
#include <string.h>

#include "smtpd/smtpd_check.h"
#include "smtpd/smtpd_cleanup.h"
#include "util/mem.h"

void smtpd_xact_reset(struct smtpd_session *s)
{
    struct smtpd_xact *x = &s->xact;

    if (x->cleanup_open)
        smtpd_cleanup_abort(&s->cleanup);
    smtpd_check_xact_reset(s); /* HOLD, FILTER, ... of this transaction */
    free(x->sender);
    addr_free(&x->sender_addr);
    smtpd_mail_params_free(&x->params);
    for (size_t i = 0; i < x->nrcpt; i++) {
        free(x->rcpt[i].addr);
        free(x->rcpt[i].notify);
        free(x->rcpt[i].orcpt);
    }
    free(x->rcpt);
    memset(x, 0, sizeof(*x));
}

/*
 * Postfix's internal form: the envelope carries the local part without
 * quotes ("alice"@example.test is alice@example.test), so lookups and
 * mailboxes do not depend on how a client chose to quote.
 */
static void smtpd_addr_internalize(struct mailaddr *a)
{
    if (a->is_null || a->local[0] != '"')
        return;
    char *local = addr_local_unquote(a->local);
    free(a->text);
    a->text = xasprintf("%s@%s", local, a->domain);
    free(local);
}

int smtpd_parse_addr(struct smtpd_session *s, const char *path, size_t len,
                     bool allow_null, struct mailaddr *out, const char **err)
{
    bool utf8 = s->cfg->smtputf8_enable;
    struct buf qualified = BUF_INIT;
    size_t consumed;
    int rc;

    rc = addr_parse_path(path, len, allow_null, utf8, out, &consumed, err);
    if (rc == 0 && consumed != len) {
        addr_free(out);
        *err = "Bad address syntax";
        return -1;
    }
    if (rc == 0) {
        smtpd_addr_internalize(out);
        return 0;
    }
    if (len < 3 || memchr(path, '@', len) != NULL)
        return rc;
    /* "<user>": Postfix appends $myorigin (RFC 5321 requires <Postmaster>). */
    buf_append(&qualified, path, len - 1);
    buf_printf(&qualified, "@%s>", s->cfg->myorigin);
    rc = addr_parse_path(qualified.data, qualified.len, allow_null, utf8, out,
                         &consumed, err);
    buf_free(&qualified);
    if (rc == 0)
        smtpd_addr_internalize(out);
    return rc;
}

int smtpd_cmd_mail(struct smtpd_session *s, const char *args)
{
    struct smtpd_xact *x = &s->xact;
    struct smtpd_param_opts opts;
    struct smtpd_mail_params params;
    struct mailaddr addr;
    const char *rest, *err;

    if (x->active) {
        smtpd_reply(s, "503 5.5.1 Error: nested MAIL command");
        return -1;
    }
    if (smtpd_tls_required(s)) {
        smtpd_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
        return -1;
    }
    if (s->cfg->helo_required && s->helo == NULL) {
        smtpd_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
        return -1;
    }
    if (smtpd_extract_path(args, "FROM:", s->cfg->strict_rfc821_envelopes,
                           &s->scratch, &rest) < 0) {
        smtpd_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
        return -1;
    }
    if (smtpd_parse_addr(s, s->scratch.data, s->scratch.len, true, &addr,
                         &err) < 0) {
        smtpd_reply(s, "501 5.1.7 Bad sender address syntax");
        return -1;
    }
    smtpd_param_opts(s, &opts);
    if (smtpd_parse_mail_params(rest, &opts, &params, &s->scratch) < 0) {
        smtpd_reply(s, "%s", s->scratch.data);
        addr_free(&addr);
        return -1;
    }
    /* RFC 4954 5: AUTH= only where AUTH is offered (Postfix's reply). */
    if (params.auth_given && smtpd_auth_mechs(s) == NULL) {
        smtpd_reply(s, "503 5.5.4 Error: authentication disabled");
        smtpd_mail_params_free(&params);
        addr_free(&addr);
        return -1;
    }
    if (params.size_given && s->cfg->message_size_limit > 0 &&
        params.size > s->cfg->message_size_limit) {
        smtpd_reply(s, "552 5.3.4 Message size exceeds fixed limit");
        x->sender = addr.text; /* for the log line only */
        x->active = true;
        smtpd_log_reject(s, "MAIL",
                         "552 5.3.4 Message size exceeds fixed "
                         "limit",
                         NULL);
        x->active = false;
        x->sender = NULL;
        smtpd_mail_params_free(&params);
        addr_free(&addr);
        return -1;
    }
    if (addr.has_utf8 && !params.smtputf8) {
        smtpd_reply(s, "553 5.6.7 Must declare SMTPUTF8 to send unicode "
                       "address");
        smtpd_mail_params_free(&params);
        addr_free(&addr);
        return -1;
    }
    x->active = true;
    x->sender = xstrdup(addr.text);
    x->sender_addr = addr;
    x->params = params;
    x->arrival = time(NULL);
    /*
     * The message rate limit, and the sender restrictions unless
     * smtpd_delay_reject moves them to each RCPT (smtpd_check.h).
     */
    if (smtpd_check_mail(s) < 0) {
        smtpd_xact_reset(s);
        return -1;
    }
    smtpd_reply(s, "250 2.1.0 Ok");
    return 0;
}

static void rcpt_add(struct smtpd_xact *x, const char *addr,
                     const struct smtpd_rcpt_params *p, struct buf *tmp)
{
    struct smtpd_rcpt *r;

    if (x->nrcpt == x->rcpt_cap) {
        x->rcpt_cap = x->rcpt_cap ? 2 * x->rcpt_cap : 8;
        x->rcpt = xreallocarray(x->rcpt, x->rcpt_cap, sizeof(*x->rcpt));
    }
    r = &x->rcpt[x->nrcpt++];
    r->addr = xstrdup(addr);
    r->notify = NULL;
    if (p->notify) {
        smtpd_notify_format(p->notify, tmp);
        r->notify = xstrdup(tmp->data);
    }
    r->orcpt = p->orcpt ? xstrdup(p->orcpt) : NULL;
}

int smtpd_cmd_rcpt(struct smtpd_session *s, const char *args)
{
    struct smtpd_xact *x = &s->xact;
    struct smtpd_param_opts opts;
    struct smtpd_rcpt_params params;
    struct mailaddr addr;
    const char *rest, *err;

    if (!x->active) {
        smtpd_reply(s, "503 5.5.1 Error: need MAIL command");
        return -1;
    }
    if (x->bdat) {
        smtpd_reply(s, "503 5.5.1 Error: RCPT after BDAT");
        return -1;
    }
    if (s->cfg->recipient_limit > 0 &&
        x->nrcpt >= (size_t)s->cfg->recipient_limit) {
        smtpd_reply(s, "452 4.5.3 Error: too many recipients");
        return -1;
    }
    if (smtpd_extract_path(args, "TO:", s->cfg->strict_rfc821_envelopes,
                           &s->scratch, &rest) < 0) {
        smtpd_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
        return -1;
    }
    if (smtpd_parse_addr(s, s->scratch.data, s->scratch.len, false, &addr,
                         &err) < 0) {
        smtpd_reply(s, "501 5.1.3 Bad recipient address syntax");
        return -1;
    }
    smtpd_param_opts(s, &opts);
    if (smtpd_parse_rcpt_params(rest, &opts, &params, &s->scratch) < 0) {
        smtpd_reply(s, "%s", s->scratch.data);
        addr_free(&addr);
        return -1;
    }
    if (addr.has_utf8 && !x->params.smtputf8) {
        smtpd_reply(s, "553 5.6.7 Must declare SMTPUTF8 to send unicode "
                       "address");
        goto fail;
    }
    /* Replies and logs "NOQUEUE: reject: RCPT ..." itself. */
    if (smtpd_check_rcpt(s, &addr, "RCPT") < 0)
        goto fail;
    rcpt_add(x, addr.text, &params, &s->scratch);
    smtpd_rcpt_params_free(&params);
    addr_free(&addr);
    smtpd_reply(s, "250 2.1.5 Ok");
    return 0;
fail:
    smtpd_rcpt_params_free(&params);
    addr_free(&addr);
    return -1;
}
