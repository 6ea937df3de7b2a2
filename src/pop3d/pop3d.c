/*
 * pop3d - the POP3 server: RFC 1939 with CAPA (RFC 2449), AUTH (RFC
 * 5034, SASL through global/sasl_server.h), STLS (RFC 2595) and
 * implicit TLS (port 995, pop3d_tls_wrappermode), on the Maildirs that
 * local fills.
 *
 * Runs under the worker skeleton (global/server.h), one client at a
 * time; "pop3d -c DIR -s" serves fd 0 once for tests.  Reads main.cf
 * once at start-up.  Trusts nothing the client sends: every line is
 * bounded by POP3D_LINE_MAX, every read and write by pop3d_timeout,
 * every malformed or misplaced command gets -ERR and counts towards
 * pop3d_hard_error_limit.  Passwords are checked by the auth service
 * (global/auth_client.h), never here; auth also slows down guessing.
 *
 * Privileges (master.cf unpriv=n, master running as root): before
 * login the process runs with mail_owner's effective ids, after login
 * it becomes the account's uid and gid for good (like Dovecot's
 * post-login process) and exits when the session ends, so the next
 * client gets a fresh process.  Started as an ordinary user everything
 * runs as that user.  See docs/pop3.md.
 *
 * This file: configuration, the session loop, replies.  The commands
 * are in pop3d_cmd.c (table, CAPA, STLS), pop3d_auth.c (USER, PASS,
 * APOP, AUTH, login) and pop3d_trans.c (the mailbox commands).
 */
#include "pop3d/pop3d.h"

#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "global/config.h"
#include "global/sasl_server.h"
#include "global/server.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/sock.h"
#include "util/str.h"

static struct pop3d_config pop3d_cfg;

/* ---------------------------------------------------------- configuration */

static void pop3d_tls_config(struct config *cfg, struct pop3d_config *c)
{
    const char *level = config_str(cfg, "pop3d_tls_security_level");
    const char *cert = config_str(cfg, "pop3d_tls_cert_file");
    const char *key = config_str(cfg, "pop3d_tls_key_file");
    bool required;
    struct tls_ctx_opts opts;
    char err[512];

    if (*level == 0 || strcmp(level, "none") == 0)
        c->tls_level = POP3D_TLS_NONE;
    else if (strcmp(level, "may") == 0)
        c->tls_level = POP3D_TLS_MAY;
    else if (strcmp(level, "encrypt") == 0)
        c->tls_level = POP3D_TLS_ENCRYPT;
    else
        log_fatal("pop3d_tls_security_level: bad value '%s'", level);
    c->wrappermode = config_bool(cfg, "pop3d_tls_wrappermode");
    if (c->tls_level == POP3D_TLS_NONE && !c->wrappermode)
        return;
    /* Without TLS these services would be open doors or dead ports. */
    required = c->wrappermode || c->tls_level == POP3D_TLS_ENCRYPT;
    if (*cert == 0) {
        if (required)
            log_fatal("pop3d_tls_wrappermode or pop3d_tls_security_level = "
                      "encrypt needs pop3d_tls_cert_file");
        log_warn("pop3d_tls_cert_file is empty: STLS is not offered");
        c->tls_level = POP3D_TLS_NONE;
        return;
    }
    memset(&opts, 0, sizeof(opts));
    opts.role = TLS_ROLE_SERVER;
    opts.cert_file = cert;
    opts.key_file = key;
    c->tls = tls_ctx_new(&opts, err, sizeof(err));
    if (c->tls == NULL) {
        if (required)
            log_fatal("TLS: %s", err);
        log_warn("TLS: %s: STLS is not offered", err);
        c->tls_level = POP3D_TLS_NONE;
    }
}

static void pop3d_config_load(void)
{
    struct config *cfg = config_global();
    struct pop3d_config *c = &pop3d_cfg;
    long long t;
    char err[512];

    c->banner = config_str(cfg, "pop3d_banner");
    t = config_time(cfg, "pop3d_timeout");
    c->timeout_ms = t > INT_MAX / 1000 ? INT_MAX : (int)(t * 1000);
    c->hard_error_limit = config_int(cfg, "pop3d_hard_error_limit");
    c->tls_auth_only = config_bool(cfg, "pop3d_tls_auth_only");
    c->apop_enable = config_bool(cfg, "pop3d_apop_enable");
    c->myhostname = config_str(cfg, "myhostname");
    c->minimum_uid = config_int(cfg, "virtual_minimum_uid");
    c->plaintext_networks = cidr_list_parse(
        config_str(cfg, "pop3d_plaintext_auth_networks"), err, sizeof(err));
    if (c->plaintext_networks == NULL)
        log_fatal("pop3d_plaintext_auth_networks: %s", err);
    pop3d_tls_config(cfg, c);
    c->resolver = resolver_open(cfg, err, sizeof(err));
    if (c->resolver == NULL)
        log_fatal("%s", err);
    if (xsasl_server_init(err, sizeof(err)) < 0)
        log_warn("SASL: %s: AUTH is not offered", err);
    else
        c->sasl_ok = true;
}

/* Keys and maps may need root to open: read everything before the drop. */
static void pop3d_pre_init(void)
{
    pop3d_config_load();
}

/* Decided after the skeleton's drop: only a process still root switches. */
static void pop3d_post_init(void)
{
    struct pop3d_config *c = &pop3d_cfg;
    const char *owner;
    struct passwd *pw;

    if (geteuid() != 0)
        return;
    owner = config_str(config_global(), "mail_owner");
    if ((pw = getpwnam(owner)) == NULL)
        log_fatal("mail_owner %s: no such user", owner);
    if (pw->pw_uid == 0)
        log_fatal("mail_owner %s has user ID 0: refusing to serve POP3 as "
                  "root",
                  owner);
    c->privileged = true;
    c->owner_uid = pw->pw_uid;
    c->owner_gid = pw->pw_gid;
}

/* ---------------------------------------------------------- replies */

static void pop3d_reply(struct pop3d_session *s, const char *status,
                        const char *fmt, va_list ap)
{
    size_t start;

    buf_reset(&s->scratch);
    buf_puts(&s->scratch, status);
    buf_putc(&s->scratch, ' ');
    start = s->scratch.len;
    buf_vprintf(&s->scratch, fmt, ap);
    if (s->scratch.len == start)
        buf_truncate(&s->scratch, start - 1); /* a bare "+OK" */
    buf_puts(&s->scratch, "\r\n");
    stream_write(s->client, s->scratch.data, s->scratch.len);
}

void pop3d_ok(struct pop3d_session *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    pop3d_reply(s, "+OK", fmt, ap);
    va_end(ap);
}

void pop3d_err(struct pop3d_session *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    pop3d_reply(s, "-ERR", fmt, ap);
    va_end(ap);
}

void pop3d_flush(struct pop3d_session *s)
{
    (void)stream_flush(s->client);
}

bool pop3d_secured(const struct pop3d_session *s)
{
    return s->tls != NULL || s->trusted_net;
}

bool pop3d_plaintext_ok(struct pop3d_session *s)
{
    if (!s->cfg->tls_auth_only || pop3d_secured(s))
        return true;
    pop3d_err(s, "[AUTH] Plaintext authentication disallowed on non-secure "
                 "(SSL/TLS) connections.");
    return false;
}

/* ---------------------------------------------------------- session */

static void session_command(struct pop3d_session *s)
{
    struct pop3d_command cmd;
    const struct pop3d_cmd *c;

    switch (pop3d_parse_command(s->line.data, s->line.len, &cmd)) {
    case POP3D_PARSE_OK:
        break;
    case POP3D_PARSE_ARGS:
        pop3d_err(s, "Too many arguments.");
        s->error_count++;
        return;
    case POP3D_PARSE_BADCHAR:
        pop3d_err(s, "Invalid characters in command.");
        s->error_count++;
        return;
    default:
        pop3d_err(s, "Unknown command.");
        s->error_count++;
        return;
    }
    if ((c = pop3d_cmd_find(cmd.keyword)) == NULL) {
        pop3d_err(s, "Unknown command.");
        s->error_count++;
        return;
    }
    if (!(c->states & s->state)) {
        pop3d_err(s, "Command not valid in %s state.",
                  s->state == POP3D_AUTHORIZATION ? "AUTHORIZATION"
                                                  : "TRANSACTION");
        s->error_count++;
        return;
    }
    if (s->cfg->tls_level == POP3D_TLS_ENCRYPT && s->tls == NULL &&
        !c->before_tls) {
        pop3d_err(s, "Must issue a STLS command first.");
        s->error_count++;
        return;
    }
    if (c->handler(s, &cmd) < 0)
        s->error_count++;
}

static void session_loop(struct pop3d_session *s)
{
    enum stream_status st;

    while (!s->hangup) {
        if (s->error_count >= s->cfg->hard_error_limit) {
            pop3d_err(s, "Too many bad commands.");
            s->end_reason = "Too many bad commands";
            break;
        }
        if (stream_read_pending(s->client) == 0)
            pop3d_flush(s);
        if (stream_status(s->client) != STREAM_OK) {
            s->end_reason = "Connection closed";
            break;
        }
        st = stream_read_line(s->client, &s->line, POP3D_LINE_MAX, NULL);
        if (st == STREAM_TOOLONG) {
            pop3d_err(s, "Line too long.");
            s->error_count++;
            continue;
        }
        if (st == STREAM_TIMEOUT) {
            pop3d_err(s, "Disconnected for inactivity.");
            s->end_reason = "Inactivity";
            break;
        }
        if (st != STREAM_OK) {
            s->end_reason = "Connection closed";
            break;
        }
        session_command(s);
    }
}

/* RFC 1939's "<process-ID.clock@hostname>", with randomness added. */
static void session_apop_stamp(struct pop3d_session *s)
{
    unsigned char rnd[4] = {0, 0, 0, 0};

    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        log_fatal("RAND_bytes failed");
    snprintf(s->apop_stamp, sizeof(s->apop_stamp),
             "<%ld.%lld.%02x%02x%02x%02x@%.64s>", (long)getpid(),
             (long long)time(NULL), rnd[0], rnd[1], rnd[2], rnd[3],
             s->cfg->myhostname);
}

static void session_peer(struct pop3d_session *s, int fd)
{
    char port[16];

    if (sock_peer_name(fd, s->addr, sizeof(s->addr), port, sizeof(port)) < 0 ||
        strcmp(s->addr, "local") == 0)
        str_lcpy(s->addr, "127.0.0.1", sizeof(s->addr)); /* -s on a pipe */
    if (sock_local_name(fd, s->laddr, sizeof(s->laddr), port, sizeof(port)) <
            0 ||
        strcmp(s->laddr, "local") == 0)
        str_lcpy(s->laddr, "127.0.0.1", sizeof(s->laddr));
    s->trusted_net = cidr_list_match(s->cfg->plaintext_networks, s->addr);
}

static void pop3d_serve(int fd)
{
    struct pop3d_session sess, *s = &sess;

    memset(s, 0, sizeof(*s));
    s->cfg = &pop3d_cfg;
    s->state = POP3D_AUTHORIZATION;
    s->mbox.lock_fd = -1;
    s->end_reason = "Connection closed";
    s->mbox_size = -1;
    session_peer(s, fd);
    if (s->cfg->privileged)
        pop3d_priv_preauth(s->cfg);

    s->client = stream_open(fd);
    stream_set_timeout(s->client, s->cfg->timeout_ms);
    if (s->cfg->wrappermode && pop3d_tls_start(s) < 0) {
        s->end_reason = "TLS handshake failed";
        goto out;
    }
    if (s->cfg->apop_enable) {
        session_apop_stamp(s);
        pop3d_ok(s, "%s %s", s->cfg->banner, s->apop_stamp);
    } else {
        pop3d_ok(s, "%s", s->cfg->banner);
    }
    session_loop(s);
    pop3d_flush(s);
out:
    pop3d_log_disconnect(s);
    if (s->tls != NULL)
        tls_stop(s->tls, s->client);
    pop3d_mbox_free(&s->mbox);
    (void)stream_release_fd(s->client); /* the skeleton closes fd */
    stream_close(s->client);
    free(s->user);
    buf_free(&s->line);
    buf_free(&s->scratch);
    if (s->dropped) {
        /* This process belongs to the account now: never serve another. */
        close(fd);
        exit(0);
    }
    if (s->cfg->privileged)
        pop3d_priv_restore(s->cfg);
}

int main(int argc, char **argv)
{
    static const struct server_opts opts = {
        .name = "pop3d",
        .pre_init = pop3d_pre_init,
        .post_init = pop3d_post_init,
        .serve = pop3d_serve,
    };

    return server_main(argc, argv, &opts);
}
