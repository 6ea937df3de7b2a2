/*
 * smtpd_auth - SMTP AUTH (RFC 4954): the AUTH command, the mechanisms
 * EHLO announces, and what a login leaves behind (sasl_method and
 * sasl_username on the session, the "client=" log line, the queue file
 * and, when smtpd_sasl_authenticated_header = yes, the Received: header).
 *
 * The mechanisms are libsasl2's (PLAIN, LOGIN) through global/sasl_server;
 * every password is checked by the auth service, never here.  Which
 * mechanisms a session may use follows smtpd_sasl_security_options, or
 * smtpd_sasl_tls_security_options once TLS is on; with
 * smtpd_tls_auth_only (or level encrypt) AUTH is neither announced nor
 * accepted before STARTTLS, and the command is answered as if AUTH were
 * off, as Postfix does.
 *
 * Everything the client sends is bounded (XSASL_LINE_MAX per response,
 * SMTPD_AUTH_MECH_MAX per mechanism name) and wiped after use, since it
 * carries a password.  A failure is an error for the session's error
 * counters, so smtpd_soft_error_limit slows a password guesser down on
 * top of auth's own failure delay.  Failures are logged the way Postfix
 * logs them ("SASL LOGIN authentication failed: ..."), which is what
 * fail2ban and similar tools look for.
 */
#include "smtpd/smtpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "global/config.h"
#include "global/sasl_server.h"
#include "util/attr.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* RFC 4422 3.1: a mechanism name is 1 to 20 of [A-Z0-9-_]. */
#define SMTPD_AUTH_MECH_MAX 20
#define SMTPD_AUTH_MECHS_MAX 256

static struct {
    bool enable;
    bool available; /* libsasl2 has mechanisms for us */
    bool broken_clients;
    bool authenticated_header;
    unsigned security_plain, security_tls; /* XSASL_SEC_* */
    char mechs_plain[SMTPD_AUTH_MECHS_MAX], mechs_tls[SMTPD_AUTH_MECHS_MAX];
    char service[32];
} smtpd_auth;

static unsigned parse_security(struct config *cfg, const char *name)
{
    unsigned flags;
    char err[256];

    if (xsasl_security_parse(config_str(cfg, name), &flags, err, sizeof(err)) <
        0)
        log_fatal("%s: %s", name, err);
    return flags;
}

void smtpd_auth_init(void)
{
    struct config *cfg = config_global();
    struct xsasl_server *x;
    char err[512];

    memset(&smtpd_auth, 0, sizeof(smtpd_auth));
    smtpd_auth.enable = config_bool(cfg, "smtpd_sasl_auth_enable");
    smtpd_auth.broken_clients = config_bool(cfg, "broken_sasl_auth_clients");
    smtpd_auth.authenticated_header =
        config_bool(cfg, "smtpd_sasl_authenticated_header");
    if (!smtpd_auth.enable)
        return;
    if (str_lcpy(smtpd_auth.service, config_str(cfg, "smtpd_sasl_service"),
                 sizeof(smtpd_auth.service)) >= sizeof(smtpd_auth.service))
        log_fatal("smtpd_sasl_service: name longer than %zu bytes",
                  sizeof(smtpd_auth.service) - 1);
    smtpd_auth.security_plain =
        parse_security(cfg, "smtpd_sasl_security_options");
    smtpd_auth.security_tls =
        parse_security(cfg, "smtpd_sasl_tls_security_options");

    /* libsasl2 loads its plugins now, while we may still be root. */
    x = xsasl_server_create(smtpd_auth.service, "", NULL, err, sizeof(err));
    if (x == NULL) {
        log_error("SASL: %s; AUTH is not offered", err);
        return;
    }
    if (xsasl_server_set_security(x, smtpd_auth.security_plain, err,
                                  sizeof(err)) < 0) {
        log_error("SASL: %s; AUTH is not offered", err);
        xsasl_server_free(x);
        return;
    }
    str_lcpy(smtpd_auth.mechs_plain, xsasl_server_mechs(x),
             sizeof(smtpd_auth.mechs_plain));
    if (xsasl_server_set_security(x, smtpd_auth.security_tls, err,
                                  sizeof(err)) < 0) {
        log_error("SASL: %s; AUTH is not offered", err);
        xsasl_server_free(x);
        return;
    }
    str_lcpy(smtpd_auth.mechs_tls, xsasl_server_mechs(x),
             sizeof(smtpd_auth.mechs_tls));
    xsasl_server_free(x);
    if (smtpd_auth.mechs_plain[0] == 0 && smtpd_auth.mechs_tls[0] == 0)
        log_warn("smtpd_sasl_security_options and "
                 "smtpd_sasl_tls_security_options leave no SASL mechanism; "
                 "AUTH is not offered");
    smtpd_auth.available = true;
}

const char *smtpd_auth_mechs(const struct smtpd_session *s)
{
    const char *m;

    if (!smtpd_auth.available || !smtpd_tls_auth_allowed(s) ||
        (s->cfg->ehlo_discard & SMTPD_EHLO_AUTH))
        return NULL;
    m = s->tls != NULL ? smtpd_auth.mechs_tls : smtpd_auth.mechs_plain;
    return *m ? m : NULL;
}

bool smtpd_auth_broken_clients(void)
{
    return smtpd_auth.broken_clients;
}

void smtpd_auth_reset(struct smtpd_session *s)
{
    free(s->sasl_method);
    free(s->sasl_username);
    s->sasl_method = NULL;
    s->sasl_username = NULL;
}

/* Is mech (already upper case) one of the space-separated names? */
static bool mech_listed(const char *list, const char *mech)
{
    size_t n = strlen(mech);

    for (const char *p = list; *p;) {
        size_t len = strcspn(p, " ");

        if (len == n && strncmp(p, mech, n) == 0)
            return true;
        p += len;
        p += strspn(p, " ");
    }
    return false;
}

/* "MECH [initial-response]": 0, or -1 for bad syntax. */
static int parse_auth_args(const char *args, char *mech, const char **initial)
{
    size_t len = strcspn(args, " \t");
    const char *rest;

    if (len == 0 || len > SMTPD_AUTH_MECH_MAX)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = args[i];

        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_'))
            return -1;
        mech[i] = c;
    }
    mech[len] = 0;
    rest = args + len;
    rest += strspn(rest, " \t");
    *initial = NULL;
    if (*rest != 0) {
        if (strcspn(rest, " \t") != strlen(rest))
            return -1;
        *initial = rest;
    }
    return 0;
}

/*
 * RFC 4954 4: a response that is not base64 gets 501; one that decodes
 * but makes no sense to the mechanism is a failed login (535).
 */
static bool base64_ok(const char *text)
{
    size_t n =
        strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789+/");
    size_t pad = strspn(text + n, "=");

    if (strcmp(text, "=") == 0)
        return true; /* an empty initial response */
    return text[n + pad] == 0 && pad <= 2 && (n + pad) % 4 == 0;
}

/* Forget what the client sent: it holds a password. */
static void wipe_line(struct smtpd_session *s)
{
    if (s->line.data != NULL)
        explicit_bzero(s->line.data, s->line.len);
}

/* An AUTH refused before the exchange; the line may hold a password. */
static int refuse(struct smtpd_session *s, const char *reply)
{
    wipe_line(s);
    smtpd_reply(s, "%s", reply);
    return -1;
}

/* The 334 rounds; returns the final status, or -1 if the session ended. */
static int exchange(struct smtpd_session *s, struct xsasl_server *x,
                    const char *mech, enum xsasl_status st, struct buf *out,
                    char *err, size_t errlen)
{
    enum stream_status rs;

    while (st == XSASL_CONTINUE) {
        buf_reset(&s->reply);
        buf_printf(&s->reply, "334 %s", out->data ? out->data : "");
        smtpd_reply_raw(s, s->reply.data);
        smtpd_flush(s);
        rs = stream_read_line(s->client, &s->line, XSASL_LINE_MAX, NULL);
        if (rs == STREAM_TOOLONG) {
            wipe_line(s);
            log_warn("%s: SASL %s authentication failed: response longer "
                     "than %d bytes",
                     s->namaddr, mech, XSASL_LINE_MAX);
            smtpd_reply(s, "500 5.5.6 Authentication exchange line is too "
                           "long");
            return -2;
        }
        if (rs != STREAM_OK) {
            if (rs == STREAM_TIMEOUT) {
                log_info("timeout after AUTH from %s", s->namaddr);
                smtpd_reply(s, "421 4.4.2 %s Error: timeout exceeded",
                            s->cfg->myhostname);
            } else {
                log_info("lost connection after AUTH from %s", s->namaddr);
            }
            s->hangup = true;
            return -1;
        }
        if (strcmp(s->line.data, "*") == 0) {
            log_warn("%s: SASL %s authentication aborted", s->namaddr, mech);
            smtpd_reply(s, "501 5.7.0 Authentication aborted");
            return -2;
        }
        if (!base64_ok(s->line.data)) {
            wipe_line(s);
            log_warn("%s: SASL %s authentication failed: malformed base64 "
                     "in response",
                     s->namaddr, mech);
            smtpd_reply(s, "501 5.5.2 Cannot decode response");
            return -2;
        }
        st = xsasl_server_next(x, s->line.data, out, err, errlen);
        wipe_line(s);
    }
    return (int)st;
}

int smtpd_cmd_auth(struct smtpd_session *s, const char *args)
{
    char mech[SMTPD_AUTH_MECH_MAX + 1], err[512], printable[256];
    const char *initial, *mechs = smtpd_auth_mechs(s);
    struct xsasl_server *x;
    struct buf out = BUF_INIT;
    int st;

    if (s->cfg->helo_required && s->helo == NULL)
        return refuse(s, "503 5.5.1 Error: send HELO/EHLO first");
    if (mechs == NULL)
        return refuse(s, "503 5.5.1 Error: authentication not enabled");
    if (s->sasl_username != NULL)
        return refuse(s, "503 5.5.1 Error: already authenticated");
    if (s->xact.active)
        return refuse(s, "503 5.5.1 Error: MAIL transaction in progress");
    if (parse_auth_args(args, mech, &initial) < 0)
        return refuse(s, "501 5.5.4 Syntax: AUTH mechanism");
    if (initial != NULL && !base64_ok(initial)) {
        wipe_line(s);
        log_warn("%s: SASL %s authentication failed: malformed base64 in "
                 "initial response",
                 s->namaddr, mech);
        smtpd_reply(s, "501 5.5.2 Cannot decode response");
        return -1;
    }
    if (!mech_listed(mechs, mech)) {
        wipe_line(s);
        log_warn("%s: SASL %s authentication failed: mechanism not offered",
                 s->namaddr, mech);
        smtpd_reply(s, "504 5.5.4 Unrecognized authentication type");
        return -1;
    }
    x = xsasl_server_create(smtpd_auth.service, s->addr, NULL, err,
                            sizeof(err));
    if (x == NULL ||
        xsasl_server_set_security(x,
                                  s->tls != NULL ? smtpd_auth.security_tls
                                                 : smtpd_auth.security_plain,
                                  err, sizeof(err)) < 0) {
        wipe_line(s);
        xsasl_server_free(x);
        log_warn("%s: SASL %s authentication failed: %s", s->namaddr, mech,
                 err);
        smtpd_reply(s, "454 4.7.0 Temporary authentication failure");
        return -1;
    }
    err[0] = 0;
    st = (int)xsasl_server_first(x, mech, initial, &out, err, sizeof(err));
    wipe_line(s);
    st = exchange(s, x, mech, (enum xsasl_status)st, &out, err, sizeof(err));
    log_printable(printable, sizeof(printable), err, strlen(err));
    switch (st) {
    case XSASL_OK:
        s->sasl_method = xstrdup(mech);
        s->sasl_username = xstrdup(xsasl_server_username(x));
        smtpd_reply(s, "235 2.7.0 Authentication successful");
        break;
    case XSASL_FAIL:
    case XSASL_BADPROT: /* base64 was fine: the content was not */
        log_warn("%s: SASL %s authentication failed: %s", s->namaddr, mech,
                 printable);
        smtpd_reply(s, "535 5.7.8 Error: authentication failed: "
                       "authentication failure");
        break;
    case XSASL_TEMPFAIL:
        log_warn("%s: SASL %s authentication failed: %s", s->namaddr, mech,
                 printable);
        smtpd_reply(s, "454 4.7.0 Temporary authentication failure");
        break;
    default:
        break; /* answered (or the session ended) in exchange() */
    }
    xsasl_server_free(x);
    buf_free(&out);
    return st == XSASL_OK ? 0 : -1;
}

/* ---------------------------------------------------------- reporting */

void smtpd_log_client(const struct smtpd_session *s, const char *queue_id)
{
    char user[AUTH_USER_MAX + 1];

    if (s->sasl_username == NULL) {
        log_info("%s: client=%s", queue_id, s->namaddr);
        return;
    }
    log_printable(user, sizeof(user), s->sasl_username,
                  strlen(s->sasl_username));
    log_info("%s: client=%s, sasl_method=%s, sasl_username=%s", queue_id,
             s->namaddr, s->sasl_method, user);
}

void smtpd_security_envelope(const struct smtpd_session *s, struct buf *frame)
{
    struct buf text = BUF_INIT;

    if (s->sasl_username != NULL)
        attr_put_str(frame, "sasl_username", s->sasl_username);
    smtpd_tls_received_text(s, &text);
    if (s->sasl_username != NULL && smtpd_auth.authenticated_header)
        buf_printf(&text, "%s(Authenticated sender: %s)", text.len ? " " : "",
                   s->sasl_username);
    if (text.len > 0)
        attr_put_str(frame, "tls", text.data);
    buf_free(&text);
}
