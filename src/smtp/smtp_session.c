/*
 * smtp_session - one connection to one SMTP or LMTP server: connect,
 * greeting, EHLO (HELO when EHLO is refused) or LHLO, STARTTLS per
 * smtp_tls_security_level, and the small commands around transactions
 * (RSET, QUIT).  Also the single cached connection that is kept open
 * between requests for the next message to the same next hop.
 *
 * Talks to the remote server, which is trusted with nothing: every reply
 * is parsed by smtp_reply.c and bounded, every wait has a timeout, text
 * from the server reaches the logs only through log_printable (in
 * delivery_report) or here explicitly.  STARTTLS refuses to start when
 * the server sent anything after its "220" (a command injection).
 *
 * Failures fill a struct smtp_error with Postfix's wording and DSN:
 *   connect to host[addr]:port: Connection refused             4.4.1
 *   conversation with host[addr] timed out while <stage>       4.4.2
 *   lost connection with host[addr] while <stage>              4.4.2
 *   host host[addr] refused to talk to me: <greeting>          reply's
 *   TLS is required, but was not offered by host host[addr]    4.7.4
 *   Server certificate not verified                            4.7.5
 * and mark the session unusable when the connection state is unknown.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "smtp/smtp.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/sock.h"
#include "util/str.h"
#include "util/stream.h"
#include "util/tls.h"

double smtp_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void smtp_error_set(struct smtp_error *e, int status, const char *dsn,
                    const char *fmt, ...)
{
    va_list ap;

    e->status = status;
    str_lcpy(e->dsn, dsn, sizeof(e->dsn));
    va_start(ap, fmt);
    vsnprintf(e->reason, sizeof(e->reason), fmt, ap);
    va_end(ap);
}

/* The reply text, safe for logs and for the reason field. */
static const char *reply_text(const struct smtp_reply *r, char *tmp,
                              size_t size)
{
    return log_printable(tmp, size, r->text.data ? r->text.data : "",
                         r->text.len);
}

void smtp_session_cmd(struct smtp_session *s, const char *fmt, ...)
{
    va_list ap;
    struct buf line = BUF_INIT;

    va_start(ap, fmt);
    buf_vprintf(&line, fmt, ap);
    va_end(ap);
    if (log_verbose_level() > 0) {
        char tmp[512];

        log_debug("> %s: %s", s->namaddr,
                  log_printable(tmp, sizeof(tmp), line.data, line.len));
    }
    buf_append(&line, "\r\n", 2);
    stream_write(s->stream, line.data, line.len);
    buf_free(&line);
}

static void stream_failure(struct smtp_session *s, const char *stage,
                           struct smtp_error *e)
{
    s->reusable = false;
    if (stream_status(s->stream) == STREAM_TIMEOUT)
        smtp_error_set(e, 4, "4.4.2", "conversation with %s timed out while %s",
                       s->namaddr, stage);
    else
        smtp_error_set(e, 4, "4.4.2", "lost connection with %s while %s",
                       s->namaddr, stage);
}

int smtp_session_send(struct smtp_session *s, int timeout_s, const char *stage,
                      struct smtp_error *e)
{
    stream_set_timeout(s->stream, timeout_s * 1000);
    if (stream_flush(s->stream) != STREAM_OK) {
        stream_failure(s, stage, e);
        return -1;
    }
    return 0;
}

int smtp_session_reply(struct smtp_session *s, int timeout_s, const char *stage,
                       struct smtp_reply *r, struct smtp_error *e)
{
    struct buf line = BUF_INIT;
    enum stream_status st;
    int rc;

    /* Whatever was queued must be out before we wait for an answer. */
    if (smtp_session_send(s, timeout_s, stage, e) < 0)
        return -1;
    smtp_reply_free(r);
    smtp_reply_init(r);
    for (;;) {
        st = stream_read_line(s->stream, &line, SMTP_REPLY_LINE_MAX, NULL);
        if (st != STREAM_OK && st != STREAM_TOOLONG) {
            stream_failure(s, stage, e);
            buf_free(&line);
            return -1;
        }
        rc = smtp_reply_line(r, line.data ? line.data : "", line.len);
        if (rc < 0) {
            char tmp[200];

            s->reusable = false;
            smtp_error_set(
                e, 4, "4.5.0", "host %s sent a malformed reply while %s: %s",
                s->namaddr, stage,
                log_printable(tmp, sizeof(tmp), buf_cstr(&line), line.len));
            buf_free(&line);
            return -1;
        }
        if (rc == 1)
            break;
    }
    buf_free(&line);
    smtp_reply_finish(r);
    /* 421: the server is closing the connection (RFC 5321 3.8). */
    if (r->code == 421)
        s->reusable = false;
    if (log_verbose_level() > 0) {
        char tmp[512];

        log_debug("< %s: %s", s->namaddr, reply_text(r, tmp, sizeof(tmp)));
    }
    return 0;
}

/* "host X said: <reply> (in reply to CMD command)" with the reply's DSN. */
static void reply_failure(struct smtp_session *s, const struct smtp_reply *r,
                          const char *command, struct smtp_error *e)
{
    char tmp[SMTP_REASON_MAX];

    smtp_error_set(e, smtp_reply_status(r->code), r->dsn,
                   "host %s said: %s (in reply to %s command)", s->namaddr,
                   reply_text(r, tmp, sizeof(tmp)), command);
}

static struct smtp_session *session_new(const struct smtp_target *t, int fd,
                                        bool lmtp)
{
    struct smtp_session *s = xcalloc(1, sizeof(*s));

    s->stream = stream_open(fd);
    s->target = *t;
    s->lmtp = lmtp;
    s->reusable = true;
    s->t_open = smtp_now();
    snprintf(s->namaddr, sizeof(s->namaddr), "%s[%s]", t->host, t->addr);
    if (t->family == AF_UNIX)
        str_lcpy(s->relay, s->namaddr, sizeof(s->relay));
    else
        snprintf(s->relay, sizeof(s->relay), "%s[%s]:%u", t->host, t->addr,
                 t->port);
    return s;
}

static void session_free(struct smtp_session *s)
{
    if (s->tls)
        tls_stop(s->tls, s->stream);
    stream_close(s->stream);
    free(s->key);
    free(s);
}

void smtp_session_close(struct smtp_session *s, bool quit)
{
    if (s == NULL)
        return;
    if (quit && s->reusable) {
        struct smtp_error e;

        /* Postfix does not wait for the reply to QUIT either. */
        smtp_session_cmd(s, "QUIT");
        (void)smtp_session_send(s, smtp_params.quit_timeout, "sending QUIT",
                                &e);
    }
    session_free(s);
}

int smtp_session_rset(struct smtp_session *s)
{
    struct smtp_reply r;
    struct smtp_error e;
    int rc = -1;

    smtp_reply_init(&r);
    smtp_session_cmd(s, "RSET");
    if (smtp_session_reply(s, smtp_params.rset_timeout, "sending RSET", &r,
                           &e) == 0 &&
        r.code / 100 == 2)
        rc = 0;
    if (rc < 0)
        s->reusable = false;
    smtp_reply_free(&r);
    return rc;
}

/* EHLO (HELO if refused) or LHLO.  0, or -1 with e filled. */
static int session_hello(struct smtp_session *s, struct smtp_error *e)
{
    struct smtp_reply r;
    const char *verb = s->lmtp ? "LHLO" : "EHLO";
    char stage[64];
    int rc = -1;

    smtp_reply_init(&r);
    snprintf(stage, sizeof(stage), "performing the %s handshake", verb);
    smtp_session_cmd(s, "%s %s", verb, smtp_params.helo_name);
    if (smtp_session_reply(s, smtp_params.helo_timeout, stage, &r, e) < 0)
        goto out;
    if (r.code / 100 == 2) {
        s->features = smtp_ehlo_features(&r, &s->size_max);
        rc = 0;
        goto out;
    }
    if (s->lmtp || r.code / 100 != 5) {
        reply_failure(s, &r, verb, e);
        goto out;
    }
    /* RFC 5321 4.1.4: an old server that does not know EHLO. */
    smtp_session_cmd(s, "HELO %s", smtp_params.helo_name);
    if (smtp_session_reply(s, smtp_params.helo_timeout,
                           "performing the HELO handshake", &r, e) < 0)
        goto out;
    if (r.code / 100 != 2) {
        reply_failure(s, &r, "HELO", e);
        goto out;
    }
    s->features = 0;
    s->size_max = 0;
    rc = 0;
out:
    smtp_reply_free(&r);
    return rc;
}

static void tls_log_established(const struct smtp_session *s)
{
    static const char *const trust[] = {"Untrusted", "Trusted", "Verified"};
    int alg = 0, bits = tls_conn_bits(s->tls, &alg);

    log_info("%s TLS connection established to %s: %s with cipher %s "
             "(%d/%d bits)",
             trust[tls_conn_trust(s->tls)], s->relay, tls_conn_protocol(s->tls),
             tls_conn_cipher(s->tls), bits, alg);
    if (smtp_params.tls_loglevel >= 2 && *tls_conn_peer_cn(s->tls))
        log_info("%s: subject_CN=%s%s%s", s->relay, tls_conn_peer_cn(s->tls),
                 *tls_conn_verify_error(s->tls) ? ", verify error: " : "",
                 tls_conn_verify_error(s->tls));
}

/*
 * STARTTLS per the security level.  Returns SMTP_OPEN_OK (TLS on, or
 * plaintext allowed), SMTP_OPEN_HANDSHAKE (required TLS failed) or
 * SMTP_OPEN_RETRY_PLAIN (opportunistic TLS failed mid-handshake; the
 * connection is unusable, a new plaintext one may be tried).
 */
static enum smtp_open_result session_starttls(struct smtp_session *s,
                                              const char *queue_id,
                                              struct smtp_error *e)
{
    enum smtp_tls_level level = smtp_params.tls_level;
    bool required = level >= SMTP_TLS_ENCRYPT;
    struct tls_start_opts o;
    struct smtp_reply r;
    char err[512], tmp[SMTP_REASON_MAX];

    if (!(s->features & SMTP_FEATURE_STARTTLS)) {
        if (!required)
            return SMTP_OPEN_OK;
        smtp_error_set(e, 4, "4.7.4",
                       "TLS is required, but was not offered by host %s",
                       s->namaddr);
        return SMTP_OPEN_HANDSHAKE;
    }
    if (smtp_tls_ctx == NULL) {
        if (!required)
            return SMTP_OPEN_OK;
        smtp_error_set(e, 4, "4.7.5", "TLS is required, but unavailable: %s",
                       smtp_tls_ctx_error);
        return SMTP_OPEN_HANDSHAKE;
    }
    smtp_reply_init(&r);
    smtp_session_cmd(s, "STARTTLS");
    if (smtp_session_reply(s, smtp_params.starttls_timeout,
                           "sending the STARTTLS command", &r, e) < 0) {
        smtp_reply_free(&r);
        return SMTP_OPEN_HANDSHAKE;
    }
    if (r.code / 100 != 2) {
        if (!required) {
            /* Opportunistic: the session goes on in plaintext. */
            log_info("%s: host %s refused STARTTLS: %s; continuing without "
                     "TLS",
                     queue_id, s->namaddr, reply_text(&r, tmp, sizeof(tmp)));
            smtp_reply_free(&r);
            return SMTP_OPEN_OK;
        }
        smtp_error_set(e, 4, "4.7.4",
                       "TLS is required, but host %s refused to start TLS: %s",
                       s->namaddr, reply_text(&r, tmp, sizeof(tmp)));
        smtp_reply_free(&r);
        return SMTP_OPEN_HANDSHAKE;
    }
    smtp_reply_free(&r);
    memset(&o, 0, sizeof(o));
    o.timeout_ms = smtp_params.starttls_timeout * 1000;
    if (s->target.host_is_addr) {
        if (level == SMTP_TLS_VERIFY)
            o.match_ip = s->target.host;
    } else {
        o.sni = s->target.host;
        if (level == SMTP_TLS_VERIFY)
            o.match_host = s->target.host;
    }
    s->tls = tls_start(smtp_tls_ctx, s->stream, &o, err, sizeof(err));
    if (s->tls == NULL) {
        s->reusable = false;
        log_warn("TLS handshake with %s failed: %s", s->relay, err);
        if (!required)
            return SMTP_OPEN_RETRY_PLAIN;
        smtp_error_set(e, 4, "4.7.5", "Cannot start TLS: handshake failure");
        return SMTP_OPEN_HANDSHAKE;
    }
    if (level == SMTP_TLS_VERIFY &&
        tls_conn_trust(s->tls) != TLS_TRUST_VERIFIED) {
        log_info("server certificate verification failed for %s: %s", s->relay,
                 tls_conn_verify_error(s->tls));
        smtp_error_set(e, 4, "4.7.5", "Server certificate not verified");
        return SMTP_OPEN_HANDSHAKE;
    }
    if (smtp_params.tls_loglevel >= 1)
        tls_log_established(s);
    /* RFC 3207 4.2: forget what the server said before TLS. */
    s->features = 0;
    s->size_max = 0;
    if (session_hello(s, e) < 0)
        return SMTP_OPEN_HANDSHAKE;
    return SMTP_OPEN_OK;
}

enum smtp_open_result smtp_session_open(const struct smtp_target *t, bool lmtp,
                                        bool tls_allowed, const char *queue_id,
                                        struct smtp_session **out,
                                        struct smtp_error *e)
{
    struct smtp_session *s;
    struct smtp_reply r;
    enum smtp_open_result res = SMTP_OPEN_HANDSHAKE;
    char err[256], port[8];
    int fd;

    *out = NULL;
    snprintf(port, sizeof(port), "%u", t->port);
    if (t->family == AF_UNIX)
        fd = sock_connect_unix(t->addr, smtp_params.connect_timeout * 1000, err,
                               sizeof(err));
    else
        fd =
            sock_connect_inet(t->addr, port, smtp_params.connect_timeout * 1000,
                              err, sizeof(err));
    if (fd < 0) {
        const char *why = strerror(errno);

        if (t->family == AF_UNIX)
            smtp_error_set(e, 4, "4.4.1", "connect to %s[%s]: %s", t->host,
                           t->addr, why);
        else
            smtp_error_set(e, 4, "4.4.1", "connect to %s[%s]:%u: %s", t->host,
                           t->addr, t->port, why);
        return SMTP_OPEN_CONNECT;
    }
    s = session_new(t, fd, lmtp);
    smtp_reply_init(&r);
    if (smtp_session_reply(s, smtp_params.helo_timeout,
                           "receiving the initial server greeting", &r, e) < 0)
        goto fail;
    if (r.code / 100 != 2) {
        char tmp[SMTP_REASON_MAX];
        int status = smtp_reply_status(r.code);
        char dsn[SMTP_DSN_MAX];

        str_lcpy(dsn, r.dsn, sizeof(dsn));
        /* smtp_skip_5xx_greeting: a broken server, not a verdict. */
        if (status == 5 && smtp_params.skip_5xx_greeting) {
            status = 4;
            dsn[0] = '4';
        }
        smtp_error_set(e, status, dsn, "host %s refused to talk to me: %s",
                       s->namaddr, reply_text(&r, tmp, sizeof(tmp)));
        goto fail;
    }
    if (session_hello(s, e) < 0)
        goto fail;
    if (tls_allowed && t->family != AF_UNIX &&
        smtp_params.tls_level != SMTP_TLS_NONE) {
        res = session_starttls(s, queue_id, e);
        if (res != SMTP_OPEN_OK)
            goto fail;
    }
    smtp_reply_free(&r);
    *out = s;
    return SMTP_OPEN_OK;
fail:
    smtp_reply_free(&r);
    smtp_session_close(s, res != SMTP_OPEN_RETRY_PLAIN);
    return res;
}

/* ---- the connection cache ---- */

static struct smtp_session *smtp_cached;

void smtp_cache_close(void)
{
    if (smtp_cached == NULL)
        return;
    log_debug("closing cached connection to %s", smtp_cached->relay);
    smtp_session_close(smtp_cached, true);
    smtp_cached = NULL;
}

static bool cache_fresh(const struct smtp_session *s, double now)
{
    return s->reusable &&
           now - s->t_open < (double)smtp_params.reuse_time_limit &&
           now - s->t_idle < (double)smtp_params.cache_time_limit;
}

struct smtp_session *smtp_cache_take(const char *key)
{
    struct smtp_session *s = smtp_cached;

    if (s == NULL)
        return NULL;
    smtp_cached = NULL;
    if (strcmp(s->key, key) != 0 || !cache_fresh(s, smtp_now())) {
        smtp_session_close(s, true);
        return NULL;
    }
    /* The server may have hung up while idle: ask before we use it. */
    if (smtp_session_rset(s) < 0) {
        log_debug("cached connection to %s is gone", s->relay);
        smtp_session_close(s, false);
        return NULL;
    }
    return s;
}

void smtp_cache_put(struct smtp_session *s)
{
    smtp_cache_close();
    s->t_idle = smtp_now();
    if (!cache_fresh(s, s->t_idle)) {
        smtp_session_close(s, true);
        return;
    }
    smtp_cached = s;
}

double smtp_cache_deadline(void)
{
    double idle_end, reuse_end;

    if (smtp_cached == NULL)
        return 0;
    idle_end = smtp_cached->t_idle + (double)smtp_params.cache_time_limit;
    reuse_end = smtp_cached->t_open + (double)smtp_params.reuse_time_limit;
    return idle_end < reuse_end ? idle_end : reuse_end;
}
