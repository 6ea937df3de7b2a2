/*
 * smtpd_tls - TLS in the SMTP server: STARTTLS (RFC 3207), the implicit
 * TLS of the submissions port (smtpd_tls_wrappermode), the "must use
 * TLS" rule of smtpd_tls_security_level = encrypt, and what the
 * Received: header and the log say about a TLS session.
 *
 * The certificate and key are loaded once per process, in pre_init while
 * still privileged (the key may be readable by root only).  When they do
 * not load, the process keeps running: with level may STARTTLS is simply
 * not offered (a warning at start-up says why); where TLS is mandatory
 * (encrypt, wrapper mode) each session is refused with a logged error,
 * so a broken certificate is one clear line per connection rather than a
 * worker that dies and is respawned in a loop.
 *
 * Trusts nothing the client sends: the handshake is OpenSSL's and is
 * bounded by smtpd_starttls_timeout; a failed handshake ends that session
 * only.  Commands a client pipelined behind STARTTLS were sent in
 * plaintext and could have been injected by anyone on the path, so they
 * are thrown away, and everything learned before the handshake (HELO,
 * transaction, AUTH) is forgotten (RFC 3207 4.2).
 */
#include "smtpd/smtpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "global/config.h"
#include "util/log.h"
#include "util/str.h"
#include "util/tls.h"

enum smtpd_tls_level { SMTPD_TLS_NONE, SMTPD_TLS_MAY, SMTPD_TLS_ENCRYPT };

static struct {
    enum smtpd_tls_level level;
    bool wrappermode;
    bool auth_only;
    bool received_header;
    int loglevel;
    int timeout_ms;
    struct tls_ctx *ctx; /* NULL: TLS unavailable */
    char ctx_error[512]; /* why ctx is NULL */
} smtpd_tls;

/* ---------------------------------------------------------- configuration */

/* "medium" + smtpd_tls_exclude_ciphers -> an OpenSSL cipher string. */
static char *cipher_list(struct config *cfg, bool mandatory)
{
    const char *grade = config_str(
        cfg, mandatory ? "smtpd_tls_mandatory_ciphers" : "smtpd_tls_ciphers");
    const char *base =
        config_str(cfg, strcmp(grade, "high") == 0 ? "tls_high_cipherlist"
                                                   : "tls_medium_cipherlist");
    const struct argv *ex[2];
    struct buf out = BUF_INIT;

    ex[0] = config_list(cfg, "smtpd_tls_exclude_ciphers");
    ex[1] = mandatory ? config_list(cfg, "smtpd_tls_mandatory_exclude_ciphers")
                      : NULL;
    buf_puts(&out, base);
    for (size_t k = 0; k < 2; k++)
        for (size_t i = 0; ex[k] != NULL && i < ex[k]->n; i++)
            buf_printf(&out, ":!%s", ex[k]->v[i]);
    return buf_steal(&out);
}

void smtpd_tls_init(void)
{
    struct config *cfg = config_global();
    const char *level = config_str(cfg, "smtpd_tls_security_level");
    struct tls_ctx_opts o;
    bool mandatory;
    char *ciphers;

    memset(&smtpd_tls, 0, sizeof(smtpd_tls));
    if (strcmp(level, "encrypt") == 0)
        smtpd_tls.level = SMTPD_TLS_ENCRYPT;
    else if (strcmp(level, "may") == 0)
        smtpd_tls.level = SMTPD_TLS_MAY;
    else
        smtpd_tls.level = SMTPD_TLS_NONE; /* "none" or Postfix's empty */
    smtpd_tls.wrappermode = config_bool(cfg, "smtpd_tls_wrappermode");
    /* Postfix: with mandatory TLS, AUTH is offered only under TLS too. */
    smtpd_tls.auth_only = config_bool(cfg, "smtpd_tls_auth_only") ||
                          smtpd_tls.level == SMTPD_TLS_ENCRYPT;
    smtpd_tls.received_header = config_bool(cfg, "smtpd_tls_received_header");
    smtpd_tls.loglevel = (int)config_int(cfg, "smtpd_tls_loglevel");
    smtpd_tls.timeout_ms =
        (int)(config_time(cfg, "smtpd_starttls_timeout") * 1000);
    if (smtpd_tls.wrappermode && smtpd_tls.level == SMTPD_TLS_NONE)
        log_warn("smtpd_tls_wrappermode = yes: TLS is used although "
                 "smtpd_tls_security_level is '%s'",
                 level);
    if (smtpd_tls.level == SMTPD_TLS_NONE && !smtpd_tls.wrappermode)
        return;

    mandatory = smtpd_tls.level == SMTPD_TLS_ENCRYPT || smtpd_tls.wrappermode;
    ciphers = cipher_list(cfg, mandatory);
    memset(&o, 0, sizeof(o));
    o.role = TLS_ROLE_SERVER;
    o.cert_file = config_str(cfg, "smtpd_tls_cert_file");
    o.key_file = config_str(cfg, "smtpd_tls_key_file");
    o.chain_files = config_str(cfg, "smtpd_tls_chain_files");
    o.protocols = config_str(cfg, mandatory ? "smtpd_tls_mandatory_protocols"
                                            : "smtpd_tls_protocols");
    o.cipher_list = ciphers;
    smtpd_tls.ctx =
        tls_ctx_new(&o, smtpd_tls.ctx_error, sizeof(smtpd_tls.ctx_error));
    free(ciphers);
    if (smtpd_tls.ctx != NULL)
        return;
    if (mandatory)
        log_error("TLS is required (%s) but unavailable: %s; every "
                  "session will be refused until this is fixed",
                  smtpd_tls.wrappermode ? "smtpd_tls_wrappermode = yes"
                                        : "smtpd_tls_security_level = encrypt",
                  smtpd_tls.ctx_error);
    else
        log_warn("TLS is unavailable: %s; STARTTLS is not offered",
                 smtpd_tls.ctx_error);
}

/* ---------------------------------------------------------- sessions */

bool smtpd_tls_offered(const struct smtpd_session *s)
{
    return s->tls == NULL && smtpd_tls.ctx != NULL &&
           smtpd_tls.level != SMTPD_TLS_NONE &&
           !(s->cfg->ehlo_discard & SMTPD_EHLO_STARTTLS);
}

bool smtpd_tls_required(const struct smtpd_session *s)
{
    return s->tls == NULL && smtpd_tls.level == SMTPD_TLS_ENCRYPT;
}

bool smtpd_tls_auth_allowed(const struct smtpd_session *s)
{
    return s->tls != NULL || !smtpd_tls.auth_only;
}

/* The handshake on the client stream; false (logged) when it failed. */
static bool handshake(struct smtpd_session *s)
{
    struct tls_start_opts o = {.timeout_ms = smtpd_tls.timeout_ms};
    char err[512];
    int alg_bits = 0, bits;

    s->tls = tls_start(smtpd_tls.ctx, s->client, &o, err, sizeof(err));
    if (s->tls == NULL) {
        log_info("SSL_accept error from %s: %s", s->namaddr, err);
        return false;
    }
    if (smtpd_tls.loglevel >= 1) {
        bits = tls_conn_bits(s->tls, &alg_bits);
        log_info("Anonymous TLS connection established from %s: %s with "
                 "cipher %s (%d/%d bits)",
                 s->namaddr, tls_conn_protocol(s->tls), tls_conn_cipher(s->tls),
                 bits, alg_bits);
    }
    return true;
}

bool smtpd_tls_session_start(struct smtpd_session *s)
{
    if (smtpd_tls.wrappermode) {
        if (smtpd_tls.ctx == NULL) {
            log_error("%s: refusing the session: TLS wrapper mode but TLS is "
                      "unavailable: %s",
                      s->namaddr, smtpd_tls.ctx_error);
            return false;
        }
        s->where = "CONNECT";
        return handshake(s);
    }
    if (smtpd_tls.level == SMTPD_TLS_ENCRYPT && smtpd_tls.ctx == NULL) {
        log_error("%s: refusing the session: TLS is required but "
                  "unavailable: %s",
                  s->namaddr, smtpd_tls.ctx_error);
        smtpd_reply(s,
                    "421 4.7.0 %s Error: TLS is required but not "
                    "available due to local problem",
                    s->cfg->myhostname);
        return false;
    }
    return true;
}

void smtpd_tls_session_end(struct smtpd_session *s)
{
    if (s->tls == NULL)
        return;
    tls_stop(s->tls, s->client);
    s->tls = NULL;
}

int smtpd_cmd_starttls(struct smtpd_session *s, const char *args)
{
    struct buf junk = BUF_INIT;
    size_t pending;

    if (*args != 0) {
        smtpd_reply(s, "501 5.5.4 Syntax: STARTTLS");
        return -1;
    }
    if (s->tls != NULL) {
        smtpd_reply(s, "554 5.5.1 Error: TLS already active");
        return -1;
    }
    if (smtpd_tls.level == SMTPD_TLS_NONE ||
        (s->cfg->ehlo_discard & SMTPD_EHLO_STARTTLS)) {
        smtpd_reply(s, "502 5.5.1 Error: command not implemented");
        return -1;
    }
    if (smtpd_tls.ctx == NULL) {
        smtpd_reply(s, "454 4.7.0 TLS not available due to local problem");
        return -1;
    }
    if (s->xact.active) {
        smtpd_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
        return -1;
    }
    smtpd_reply(s, "220 2.0.0 Ready to start TLS");
    smtpd_flush(s);
    /* Plaintext that came with STARTTLS: possibly injected, never used. */
    pending = stream_read_pending(s->client);
    if (pending > 0) {
        (void)stream_read_exact(s->client, &junk, pending);
        buf_free(&junk);
        log_info("%s: discarding %zu bytes of plaintext input pipelined "
                 "after STARTTLS",
                 s->namaddr, pending);
    }
    if (!handshake(s)) {
        s->hangup = true;
        return -1;
    }
    /* RFC 3207 4.2: start over as if the client had just connected. */
    smtpd_xact_reset(s);
    free(s->helo);
    s->helo = NULL;
    s->esmtp = false;
    smtpd_auth_reset(s);
    return 0;
}

/* ---------------------------------------------------------- reporting */

void smtpd_tls_received_text(const struct smtpd_session *s, struct buf *out)
{
    int alg_bits = 0, bits;

    if (s->tls == NULL || !smtpd_tls.received_header)
        return;
    bits = tls_conn_bits(s->tls, &alg_bits);
    buf_printf(out, "(using %s with cipher %s (%d/%d bits))",
               tls_conn_protocol(s->tls), tls_conn_cipher(s->tls), bits,
               alg_bits);
}
