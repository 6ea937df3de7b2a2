/*
 * pop3d_cmd - the POP3 command table, CAPA (RFC 2449) and STLS (RFC
 * 2595).
 *
 * A new command is one row here plus its handler.  The session loop
 * (pop3d.c) checks the state and the TLS requirement from the row
 * before the handler runs.  CAPA lists only what this server does, and
 * leaves out USER and SASL where pop3d_tls_auth_only would refuse them.
 * STLS refuses a client that sent more commands behind it before the
 * handshake: bytes that arrived in plaintext must not be taken as if
 * they had come through TLS (the STARTTLS injection attacks).
 */
#include <stdlib.h>
#include <string.h>

#include "global/sasl_server.h"
#include "pop3d/pop3d.h"
#include "util/log.h"

#define AUTH_STATE POP3D_AUTHORIZATION
#define TRANS_STATE POP3D_TRANSACTION

static const struct pop3d_cmd pop3d_cmds[] = {
    {"APOP", AUTH_STATE, false, pop3d_cmd_apop},
    {"AUTH", AUTH_STATE, false, pop3d_cmd_auth},
    {"CAPA", AUTH_STATE | TRANS_STATE, true, pop3d_cmd_capa},
    {"DELE", TRANS_STATE, false, pop3d_cmd_dele},
    {"LIST", TRANS_STATE, false, pop3d_cmd_list},
    {"NOOP", TRANS_STATE, false, pop3d_cmd_noop},
    {"PASS", AUTH_STATE, false, pop3d_cmd_pass},
    {"QUIT", AUTH_STATE | TRANS_STATE, true, pop3d_cmd_quit},
    {"RETR", TRANS_STATE, false, pop3d_cmd_retr},
    {"RSET", TRANS_STATE, false, pop3d_cmd_rset},
    {"STAT", TRANS_STATE, false, pop3d_cmd_stat},
    {"STLS", AUTH_STATE, true, pop3d_cmd_stls},
    {"TOP", TRANS_STATE, false, pop3d_cmd_top},
    {"UIDL", TRANS_STATE, false, pop3d_cmd_uidl},
    {"USER", AUTH_STATE, false, pop3d_cmd_user},
};

const struct pop3d_cmd *pop3d_cmd_find(const char *keyword)
{
    for (size_t i = 0; i < sizeof(pop3d_cmds) / sizeof(pop3d_cmds[0]); i++)
        if (strcmp(pop3d_cmds[i].name, keyword) == 0)
            return &pop3d_cmds[i];
    return NULL;
}

int pop3d_cmd_capa(struct pop3d_session *s, struct pop3d_command *c)
{
    const struct pop3d_config *cfg = s->cfg;
    bool tls_missing = cfg->tls_level == POP3D_TLS_ENCRYPT && s->tls == NULL;
    bool passwords = !tls_missing && (!cfg->tls_auth_only || pop3d_secured(s));

    if (c->nargs != 0) {
        pop3d_err(s, "CAPA takes no arguments.");
        return -1;
    }
    pop3d_ok(s, "Capability list follows");
    stream_puts(s->client, "TOP\r\n");
    if (passwords)
        stream_puts(s->client, "USER\r\n");
    if (passwords && cfg->sasl_ok) {
        /* The mechanisms sasl_mechanisms allows, as AUTH lists them. */
        char err[256];
        struct xsasl_server *x =
            xsasl_server_create(POP3D_SERVICE, s->addr, NULL, err, sizeof(err));

        if (x != NULL && *xsasl_server_mechs(x))
            stream_printf(s->client, "SASL %s\r\n", xsasl_server_mechs(x));
        xsasl_server_free(x);
    }
    stream_puts(s->client, "RESP-CODES\r\n"
                           "AUTH-RESP-CODE\r\n"
                           "PIPELINING\r\n"
                           "UIDL\r\n");
    if (s->state == POP3D_AUTHORIZATION && cfg->tls != NULL && s->tls == NULL)
        stream_puts(s->client, "STLS\r\n");
    stream_puts(s->client, "IMPLEMENTATION posthorn\r\n.\r\n");
    return 0;
}

int pop3d_tls_start(struct pop3d_session *s)
{
    struct tls_start_opts opts;
    char err[512];

    memset(&opts, 0, sizeof(opts));
    opts.timeout_ms = s->cfg->timeout_ms;
    s->tls = tls_start(s->cfg->tls, s->client, &opts, err, sizeof(err));
    if (s->tls == NULL) {
        log_info("TLS handshake failed: %s, rip=%s, lip=%s", err, s->addr,
                 s->laddr);
        return -1;
    }
    return 0;
}

int pop3d_cmd_stls(struct pop3d_session *s, struct pop3d_command *c)
{
    if (c->nargs != 0) {
        pop3d_err(s, "STLS takes no arguments.");
        return -1;
    }
    if (s->tls != NULL) {
        pop3d_err(s, "TLS is already active.");
        return -1;
    }
    if (s->cfg->tls == NULL) {
        pop3d_err(s, "STLS is not available.");
        return -1;
    }
    pop3d_ok(s, "Begin TLS negotiation now.");
    pop3d_flush(s);
    if (stream_read_pending(s->client) > 0) {
        log_warn("rip=%s: commands pipelined behind STLS; disconnecting",
                 s->addr);
        s->end_reason = "Plaintext injected after STLS";
        s->hangup = true;
        return -1;
    }
    if (pop3d_tls_start(s) < 0) {
        s->end_reason = "TLS handshake failed";
        s->hangup = true;
        return -1;
    }
    /* RFC 2595: nothing learned before the handshake carries over. */
    free(s->user);
    s->user = NULL;
    return 0;
}
