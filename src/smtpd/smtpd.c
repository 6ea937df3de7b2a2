/*
 * smtpd - the SMTP server (RFC 5321 with PIPELINING, SIZE, 8BITMIME,
 * ENHANCEDSTATUSCODES, DSN, SMTPUTF8, CHUNKING, STARTTLS, AUTH).
 *
 * Runs under the worker skeleton (global/server.h): master hands it one
 * connected client at a time; "smtpd -c DIR -s" serves fd 0 once for
 * tests.  Reads main.cf once at start-up (smtpd_config_load) and refuses
 * to start on a restriction it does not know.  Trusts nothing the client
 * sends: every line is bounded by line_length_limit, every message by
 * message_size_limit, every read by smtpd_timeout, and the error counters
 * end abusive sessions.  Messages go to cleanup (smtpd_cleanup.c); the
 * client hears 250 only after cleanup has committed the queue file.
 *
 * This file: configuration, the session loop, replies and logging.  The
 * commands live in the command table (smtpd_cmd.c) and their files.
 */
#include "smtpd/smtpd.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "global/cidr.h"
#include "global/config.h"
#include "global/mail_proto.h"
#include "global/server.h"
#include "smtpd/smtpd_check.h"
#include "smtpd/smtpd_cleanup.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/sock.h"
#include "util/str.h"

static struct smtpd_config smtpd_cfg;

/* ---------------------------------------------------------- configuration */

static const char *param_str(struct config *cfg, const char *name)
{
    if (param_find(name) == NULL)
        log_fatal("parameter %s is missing from the parameter table", name);
    return config_str(cfg, name);
}

static long long param_llong(struct config *cfg, const char *name)
{
    const char *v = param_str(cfg, name);
    long long n;

    if (!str_to_size(v, &n) || n < 0)
        log_fatal("%s: bad number '%s'", name, v);
    return n;
}

static long long param_seconds(struct config *cfg, const char *name)
{
    const struct param_def *def = param_find(name);
    const char *v = param_str(cfg, name);
    long long n;

    if (!str_to_time(v, def && def->time_unit ? def->time_unit : 's', &n) ||
        n < 0)
        log_fatal("%s: bad time value '%s'", name, v);
    return n;
}

static bool param_bool(struct config *cfg, const char *name)
{
    const char *v = param_str(cfg, name);
    bool b;

    if (!str_to_bool(v, &b))
        log_fatal("%s: bad boolean '%s'", name, v);
    return b;
}

static int param_code(struct config *cfg, const char *name)
{
    long long n = param_llong(cfg, name);

    if (n < 400 || n > 599)
        log_fatal("%s: %lld is not a 4xx or 5xx reply code", name, n);
    return (int)n;
}

static void smtpd_config_load(void)
{
    struct config *cfg = config_global();
    struct smtpd_config *c = &smtpd_cfg;
    struct argv words = ARGV_INIT;
    const char *v;
    char err[512];

    c->myhostname = param_str(cfg, "myhostname");
    c->myorigin = param_str(cfg, "myorigin");
    c->banner = param_str(cfg, "smtpd_banner");
    c->message_size_limit = param_llong(cfg, "message_size_limit");
    c->recipient_limit = param_llong(cfg, "smtpd_recipient_limit");
    c->line_length_limit = param_llong(cfg, "line_length_limit");
    if (c->line_length_limit < 512)
        c->line_length_limit = 512; /* RFC 5321 4.5.3.1.4 minimum */
    c->timeout_ms = (int)(param_seconds(cfg, "smtpd_timeout") * 1000);
    c->soft_error_limit = param_llong(cfg, "smtpd_soft_error_limit");
    c->hard_error_limit = param_llong(cfg, "smtpd_hard_error_limit");
    c->error_sleep_time = param_seconds(cfg, "smtpd_error_sleep_time");
    c->junk_command_limit = param_llong(cfg, "smtpd_junk_command_limit");
    c->disable_vrfy = param_bool(cfg, "disable_vrfy_command");
    c->smtputf8_enable = param_bool(cfg, "smtputf8_enable");
    c->reject_unlisted_recipient =
        param_bool(cfg, "smtpd_reject_unlisted_recipient");
    c->unknown_local_code =
        param_code(cfg, "unknown_local_recipient_reject_code");
    c->unknown_virtual_alias_code =
        param_code(cfg, "unknown_virtual_alias_reject_code");
    c->unknown_virtual_mailbox_code =
        param_code(cfg, "unknown_virtual_mailbox_reject_code");
    c->unknown_relay_recipient_code =
        param_code(cfg, "unknown_relay_recipient_reject_code");
    /* Not in every parameter table yet; Postfix's default otherwise. */
    c->relay_reject_code = param_find("relay_domains_reject_code")
                               ? param_code(cfg, "relay_domains_reject_code")
                               : 554;
    c->strict_rfc821_envelopes = param_bool(cfg, "strict_rfc821_envelopes");
    c->reject_unlisted_sender = param_bool(cfg, "smtpd_reject_unlisted_sender");
    c->delay_reject = param_bool(cfg, "smtpd_delay_reject");
    c->helo_required = param_bool(cfg, "smtpd_helo_required");

    argv_split(&words, param_str(cfg, "smtpd_discard_ehlo_keywords"),
               ", \t\r\n");
    c->ehlo_discard = smtpd_ehlo_mask(&words);
    argv_free(&words);

    v = param_str(cfg, "smtpd_forbid_bare_newline");
    if (str_eq_ci(v, "normalize") || str_eq_ci(v, "no"))
        c->bare_newline = SMTPD_BARE_LF_ALLOW;
    else if (str_eq_ci(v, "yes"))
        c->bare_newline = SMTPD_BARE_LF_REJECT;
    else
        log_fatal("smtpd_forbid_bare_newline: bad value '%s' "
                  "(use normalize, yes or no)",
                  v);

    c->mynetworks =
        cidr_list_parse(param_str(cfg, "mynetworks"), err, sizeof(err));
    if (c->mynetworks == NULL)
        log_fatal("mynetworks: %s", err);

    c->resolver = resolver_open(cfg, err, sizeof(err));
    if (c->resolver == NULL)
        log_fatal("%s", err);
    /* The restriction lists, their tables and classes (smtpd_check.h). */
    smtpd_check_init(cfg, c);
    mail_private_socket(c->cleanup_path, sizeof(c->cleanup_path),
                        MAIL_SERVICE_CLEANUP);
}

/* Maps and TLS keys may need privileges: read everything before the drop. */
static void smtpd_pre_init(void)
{
    smtpd_config_load();
    smtpd_tls_init();
    smtpd_auth_init();
    server_keep_heap();
}

/* ---------------------------------------------------------- replies */

/* "250 2.1.0 Ok" -> "250 Ok" when ENHANCEDSTATUSCODES is discarded. */
static size_t enhanced_code_len(const char *t)
{
    const char *p = t + 4;
    int parts = 0;

    if (strlen(t) < 4 || (t[3] != ' ' && t[3] != '-'))
        return 0;
    if (!(*p >= '2' && *p <= '5') || p[1] != '.')
        return 0;
    p += 2;
    while (parts < 2) {
        const char *d = p;

        while (*p >= '0' && *p <= '9' && p - d < 3)
            p++;
        if (p == d)
            return 0;
        if (parts == 0 && *p++ != '.')
            return 0;
        parts++;
    }
    if (*p != ' ')
        return 0;
    return (size_t)(p + 1 - (t + 4));
}

void smtpd_reply_raw(struct smtpd_session *s, const char *text)
{
    stream_puts(s->client, text);
    stream_write(s->client, "\r\n", 2);
}

void smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
{
    va_list ap;
    size_t ecl;

    buf_reset(&s->reply);
    va_start(ap, fmt);
    buf_vprintf(&s->reply, fmt, ap);
    va_end(ap);
    if ((s->cfg->ehlo_discard & SMTPD_EHLO_ENHANCEDSTATUSCODES) &&
        (ecl = enhanced_code_len(s->reply.data)) > 0) {
        memmove(s->reply.data + 4, s->reply.data + 4 + ecl,
                s->reply.len - 4 - ecl + 1);
        s->reply.len -= ecl;
    }
    /* Tarpit: slow down clients that keep making errors. */
    if ((s->reply.data[0] == '4' || s->reply.data[0] == '5') &&
        s->error_count >= s->cfg->soft_error_limit &&
        s->cfg->error_sleep_time > 0) {
        smtpd_flush(s);
        sleep((unsigned)s->cfg->error_sleep_time);
    }
    smtpd_reply_raw(s, s->reply.data);
}

void smtpd_flush(struct smtpd_session *s)
{
    (void)stream_flush(s->client);
}

void smtpd_flush_if_idle(struct smtpd_session *s)
{
    if (stream_read_pending(s->client) == 0)
        smtpd_flush(s);
}

const char *smtpd_protocol(const struct smtpd_session *s)
{
    if (s->xact.params.smtputf8)
        return "UTF8SMTP";
    return s->esmtp ? "ESMTP" : "SMTP";
}

const char *smtpd_received_protocol(const struct smtpd_session *s)
{
    static char proto[16];
    const char *base = smtpd_protocol(s);

    /* RFC 3848 / RFC 6531: ESMTPS, ESMTPA, ESMTPSA, UTF8SMTPSA ... */
    if (!s->esmtp || (s->tls == NULL && s->sasl_username == NULL))
        return base;
    snprintf(proto, sizeof(proto), "%s%s%s", base, s->tls ? "S" : "",
             s->sasl_username ? "A" : "");
    return proto;
}

void smtpd_param_opts(const struct smtpd_session *s, struct smtpd_param_opts *o)
{
    unsigned d = s->cfg->ehlo_discard;

    o->dsn = !(d & SMTPD_EHLO_DSN);
    o->smtputf8 = s->cfg->smtputf8_enable && !(d & SMTPD_EHLO_SMTPUTF8);
    o->chunking = !(d & SMTPD_EHLO_CHUNKING);
}

void smtpd_log_reject(struct smtpd_session *s, const char *cmd,
                      const char *reply, const char *to)
{
    struct buf line = BUF_INIT;

    buf_printf(&line, "NOQUEUE: reject: %s from %s: %s;", cmd, s->namaddr,
               reply);
    if (s->xact.active)
        buf_printf(&line, " from=<%s>", s->xact.sender);
    if (to != NULL)
        buf_printf(&line, " to=<%s>", to);
    buf_printf(&line, " proto=%s", smtpd_protocol(s));
    if (s->helo != NULL)
        buf_printf(&line, " helo=<%s>", s->helo);
    log_info("%s", line.data);
    buf_free(&line);
}

/* ---------------------------------------------------------- session */

static void session_end_read(struct smtpd_session *s, enum stream_status st)
{
    if (st == STREAM_TIMEOUT) {
        log_info("timeout after %s from %s", s->where, s->namaddr);
        smtpd_reply(s, "421 4.4.2 %s Error: timeout exceeded",
                    s->cfg->myhostname);
    } else {
        log_info("lost connection after %s from %s", s->where, s->namaddr);
    }
    s->hangup = true;
}

/* One command line: checks, then the handler from the table. */
static void session_command(struct smtpd_session *s, bool crlf)
{
    const struct smtpd_cmd *cmd;
    char verb[SMTPD_VERB_MAX + 1], printable[128];
    const char *args;
    size_t idx;

    if (!crlf && s->cfg->bare_newline == SMTPD_BARE_LF_REJECT) {
        log_info("disconnect: bare <LF> received from %s after %s", s->namaddr,
                 s->where);
        smtpd_reply(s, "521 5.5.2 %s Error: bare <LF> received",
                    s->cfg->myhostname);
        s->hangup = true;
        return;
    }
    if (memchr(s->line.data, 0, s->line.len) != NULL ||
        smtpd_split_command(s->line.data, verb, sizeof(verb), &args) < 0) {
        smtpd_reply(s, "500 5.5.2 Error: bad syntax");
        s->error_count++;
        return;
    }
    cmd = smtpd_cmd_find(verb, &idx);
    if (cmd == NULL) {
        s->counts[smtpd_cmd_count].total++;
        if (smtpd_is_foreign_verb(verb)) {
            log_warn("non-SMTP command from %s: %s", s->namaddr,
                     log_printable(printable, sizeof(printable), s->line.data,
                                   s->line.len));
            smtpd_reply(s, "221 2.7.0 Error: I can break rules, too. "
                           "Goodbye.");
            s->hangup = true;
            return;
        }
        smtpd_reply(s, "500 5.5.2 Error: command not recognized");
        s->error_count++;
        return;
    }
    s->where = cmd->name;
    s->counts[idx].total++;
    /* A client rejected at connect (smtpd_delay_reject = no) may only go. */
    if (smtpd_check_denied(s) != NULL && strcmp(cmd->name, "QUIT") != 0) {
        smtpd_reply(s, "503 5.7.0 Error: access denied for %s", s->namaddr);
        s->error_count++;
        return;
    }
    if (cmd->handler(s, args) == 0)
        s->counts[idx].ok++;
    else
        s->error_count++;
    if ((cmd->flags & SMTPD_CMD_JUNK) &&
        s->junk_count++ > s->cfg->junk_command_limit)
        s->error_count++;
}

static void session_loop(struct smtpd_session *s)
{
    enum stream_status st;
    char printable[64];
    bool crlf;

    while (!s->hangup) {
        if (s->error_count >= s->cfg->hard_error_limit) {
            log_info("too many errors after %s from %s", s->where, s->namaddr);
            smtpd_reply(s, "421 4.7.0 %s Error: too many errors",
                        s->cfg->myhostname);
            break;
        }
        smtpd_flush_if_idle(s);
        st = stream_read_line(s->client, &s->line,
                              (size_t)s->cfg->line_length_limit, &crlf);
        if (st == STREAM_TOOLONG) {
            log_warn("%s: request longer than %lld: %s...", s->namaddr,
                     s->cfg->line_length_limit,
                     log_printable(printable, sizeof(printable), s->line.data,
                                   s->line.len));
            smtpd_reply(s, "500 5.5.2 Error: line too long");
            s->counts[smtpd_cmd_count].total++;
            s->error_count++;
            continue;
        }
        if (st != STREAM_OK) {
            session_end_read(s, st);
            break;
        }
        session_command(s, crlf);
    }
}

/*
 * The cleanup connection outlives the session: the next client of this
 * smtpd process reuses it (smtpd_cleanup_begin reconnects when cleanup
 * went away meanwhile), which saves a connect, an accept and a cleanup
 * wake-up per session when every message comes on a new connection.
 */
static struct smtpd_cleanup *smtpd_kept_cleanup;

static void smtpd_serve(int fd)
{
    struct smtpd_session sess, *s = &sess;
    struct buf stats = BUF_INIT;

    memset(s, 0, sizeof(*s));
    s->cleanup = smtpd_kept_cleanup;
    smtpd_kept_cleanup = NULL;
    s->cfg = &smtpd_cfg;
    s->name = "unknown";
    s->where = "CONNECT";
    if (sock_peer_name(fd, s->addr, sizeof(s->addr), s->port, sizeof(s->port)) <
            0 ||
        strcmp(s->addr, "local") == 0) {
        /* Not a network peer (-s on a pipe or socketpair): Postfix's choice. */
        s->name = "localhost";
        str_lcpy(s->addr, "127.0.0.1", sizeof(s->addr));
        str_lcpy(s->port, "0", sizeof(s->port));
    }
    smtpd_check_peer(s); /* the client's name, for "connect from" */
    snprintf(s->namaddr, sizeof(s->namaddr), "%.60s[%.63s]", s->name, s->addr);
    s->counts = xcalloc(smtpd_cmd_count + 1, sizeof(*s->counts));
    log_info("connect from %s", s->namaddr);

    s->client = stream_open(fd);
    stream_set_timeout(s->client, s->cfg->timeout_ms);
    if (smtpd_tls_session_start(s)) {
        switch (smtpd_check_connect(s)) {
        case SMTPD_CHECK_GREET:
            smtpd_reply(s, "220 %s", s->cfg->banner);
            session_loop(s);
            break;
        case SMTPD_CHECK_DENIED: /* the rejection was the greeting */
            session_loop(s);
            break;
        case SMTPD_CHECK_HANGUP:
            break;
        }
    }
    smtpd_flush(s);

    smtpd_format_counts(s, &stats);
    log_info("disconnect from %s%s", s->namaddr, buf_cstr(&stats));
    buf_free(&stats);

    smtpd_xact_reset(s);
    smtpd_check_disconnect(s);
    smtpd_kept_cleanup = s->cleanup; /* the transaction reset aborted any */
    s->cleanup = NULL;
    smtpd_auth_reset(s);
    smtpd_tls_session_end(s); /* close_notify while the fd is open */
    (void)stream_release_fd(s->client); /* the skeleton closes fd */
    stream_close(s->client);
    free(s->helo);
    free(s->counts);
    buf_free(&s->line);
    buf_free(&s->reply);
    buf_free(&s->scratch);
}

int main(int argc, char **argv)
{
    static const struct server_opts opts = {
        .name = "smtpd",
        .pre_init = smtpd_pre_init,
        .serve = smtpd_serve,
    };

    return server_main(argc, argv, &opts);
}
