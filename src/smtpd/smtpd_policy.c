/*
 * smtpd_policy - Postfix's policy delegation protocol, client side (see
 * smtpd_policy.h for the protocol and the interface).
 *
 * Given: the request fields smtpd collected (client data from the
 * network, bounded by smtpd's own limits; newlines are masked here) and
 * the endpoint from the administrator's restriction list.  It trusts
 * nothing the policy server says: the answer is read with a byte bound
 * and a deadline, must be name=value lines ended by an empty line, and
 * must carry one non-empty action= without control characters.
 *
 * Talks to: one policy server per endpoint, over a kept connection that
 * is reopened when it is stale (the server hung up while it sat idle),
 * older than max_ttl, idle longer than max_idle, or used request_limit
 * times.  Fails by returning -1 with a one-line reason; the caller logs
 * it and applies smtpd_policy_service_default_action.  Between attempts
 * it sleeps retry_delay, as Postfix does: the SMTP client waits, which is
 * the point of a temporary failure.
 */
#include "smtpd/smtpd_policy.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "global/config.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/sock.h"
#include "util/str.h"
#include "util/stream.h"

/* Longest endpoint text ("inet:host:port", "unix:path"). */
#define SMTPD_POLICY_SERVICE_MAX 1024

struct smtpd_policy_conn {
    char *service;
    struct stream *stream;
    long long opened;    /* monotonic ms */
    long long last_used; /* monotonic ms */
    long long requests;
    struct smtpd_policy_conn *next;
};

static struct smtpd_policy_conn *smtpd_policy_conns;

static long long smtpd_policy_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ endpoint */

struct smtpd_policy_endpoint {
    bool is_unix;
    char path[4096]; /* unix */
    char host[256];  /* inet, without [] */
    char port[64];
};

static int smtpd_policy_parse(const char *service,
                              struct smtpd_policy_endpoint *ep, char *err,
                              size_t errlen)
{
    const char *rest = service;
    const char *colon;
    size_t hostlen;

    memset(ep, 0, sizeof(*ep));
    if (strlen(service) > SMTPD_POLICY_SERVICE_MAX) {
        snprintf(err, errlen, "policy service name too long");
        return -1;
    }
    if (strncmp(service, "unix:", 5) == 0) {
        rest = service + 5;
        if (*rest == 0) {
            snprintf(err, errlen, "%s: empty socket path", service);
            return -1;
        }
        ep->is_unix = true;
        if (*rest == '/') {
            str_lcpy(ep->path, rest, sizeof(ep->path));
        } else {
            const char *qdir = config_str(config_global(), "queue_directory");
            int n = snprintf(ep->path, sizeof(ep->path), "%s/%s", qdir, rest);

            if (n < 0 || (size_t)n >= sizeof(ep->path)) {
                snprintf(err, errlen, "%s: socket path too long", service);
                return -1;
            }
        }
        return 0;
    }
    if (strncmp(service, "inet:", 5) == 0)
        rest = service + 5;
    if (*rest == '[') {
        const char *close = strchr(rest, ']');

        if (close == NULL || close[1] != ':') {
            snprintf(err, errlen, "%s: expected [address]:port", service);
            return -1;
        }
        hostlen = (size_t)(close - rest - 1);
        colon = close + 1;
        rest++;
    } else {
        colon = strrchr(rest, ':');
        if (colon == NULL) {
            snprintf(err, errlen,
                     "%s: expected inet:host:port, host:port or unix:path",
                     service);
            return -1;
        }
        hostlen = (size_t)(colon - rest);
        if (memchr(rest, ':', hostlen) != NULL) {
            snprintf(err, errlen, "%s: write an IPv6 address as [address]:port",
                     service);
            return -1;
        }
    }
    if (hostlen == 0 || hostlen >= sizeof(ep->host) || colon[1] == 0 ||
        strlen(colon + 1) >= sizeof(ep->port)) {
        snprintf(err, errlen, "%s: expected host:port", service);
        return -1;
    }
    memcpy(ep->host, rest, hostlen);
    ep->host[hostlen] = 0;
    str_lcpy(ep->port, colon + 1, sizeof(ep->port));
    return 0;
}

int smtpd_policy_service_ok(const char *service, char *err, size_t errlen)
{
    struct smtpd_policy_endpoint ep;

    return smtpd_policy_parse(service, &ep, err, errlen);
}

/* ------------------------------------------------------------ request */

static void smtpd_policy_put(struct buf *b, const char *name, const char *value)
{
    buf_puts(b, name);
    buf_putc(b, '=');
    if (value != NULL)
        for (const char *p = value; *p; p++)
            buf_putc(b, *p == '\n' || *p == '\r' ? '?' : *p);
    buf_putc(b, '\n');
}

static void smtpd_policy_put_num(struct buf *b, const char *name,
                                 long long value)
{
    buf_printf(b, "%s=%lld\n", name, value);
}

/* Attribute order of Postfix's SMTPD_POLICY_README. */
void smtpd_policy_format(const struct smtpd_policy_request *req,
                         struct buf *out)
{
    struct config *cfg = config_global();
    const char *context = req->policy_context;

    if (context == NULL)
        context = config_str(cfg, "smtpd_policy_service_policy_context");
    smtpd_policy_put(out, "request", "smtpd_access_policy");
    smtpd_policy_put(out, "protocol_state", req->protocol_state);
    smtpd_policy_put(out, "protocol_name", req->protocol_name);
    smtpd_policy_put(out, "helo_name", req->helo_name);
    smtpd_policy_put(out, "queue_id", req->queue_id);
    smtpd_policy_put(out, "sender", req->sender);
    smtpd_policy_put(out, "recipient", req->recipient);
    smtpd_policy_put_num(out, "recipient_count", req->recipient_count);
    smtpd_policy_put(out, "client_address", req->client_address);
    smtpd_policy_put(out, "client_name", req->client_name);
    smtpd_policy_put(out, "reverse_client_name", req->reverse_client_name);
    smtpd_policy_put(out, "instance", req->instance);
    smtpd_policy_put(out, "sasl_method", req->sasl_method);
    smtpd_policy_put(out, "sasl_username", req->sasl_username);
    smtpd_policy_put(out, "sasl_sender", req->sasl_sender);
    smtpd_policy_put_num(out, "size", req->size);
    smtpd_policy_put(out, "ccert_subject", req->ccert_subject);
    smtpd_policy_put(out, "ccert_issuer", req->ccert_issuer);
    smtpd_policy_put(out, "ccert_fingerprint", req->ccert_fingerprint);
    smtpd_policy_put(out, "encryption_protocol", req->encryption_protocol);
    smtpd_policy_put(out, "encryption_cipher", req->encryption_cipher);
    smtpd_policy_put_num(out, "encryption_keysize", req->encryption_keysize);
    smtpd_policy_put(out, "etrn_domain", req->etrn_domain);
    smtpd_policy_put(out, "stress", req->stress);
    smtpd_policy_put(out, "ccert_pubkey_fingerprint",
                     req->ccert_pubkey_fingerprint);
    smtpd_policy_put(out, "client_port", req->client_port);
    smtpd_policy_put(out, "policy_context", context);
    smtpd_policy_put(out, "server_address", req->server_address);
    smtpd_policy_put(out, "server_port", req->server_port);
    smtpd_policy_put(out, "compatibility_level",
                     config_str(cfg, "compatibility_level"));
    smtpd_policy_put(out, "mail_version", config_str(cfg, "mail_version"));
    buf_putc(out, '\n');
}

/* ------------------------------------------------------------ answer */

/*
 * Parse a complete answer data[0..len) (ending with its empty line).
 * Returns 0 with the action in *action, or -1 with err set.
 */
static int smtpd_policy_parse_reply(const char *data, size_t len,
                                    struct buf *action, char *err,
                                    size_t errlen)
{
    const char *p = data, *end = data + len;
    bool found = false;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)(nl - p);
        const char *eq;

        if (n > 0 && p[n - 1] == '\r')
            n--;
        if (n == 0)
            break; /* the empty line */
        eq = memchr(p, '=', n);
        if (eq == NULL || eq == p) {
            snprintf(err, errlen, "malformed answer line (no name=value)");
            return -1;
        }
        if ((size_t)(eq - p) == 6 && memcmp(p, "action", 6) == 0) {
            size_t vlen = n - 7;

            if (found) {
                snprintf(err, errlen, "answer has more than one action=");
                return -1;
            }
            if (vlen == 0) {
                snprintf(err, errlen, "empty action in answer");
                return -1;
            }
            if (vlen > SMTPD_POLICY_ACTION_MAX) {
                snprintf(err, errlen, "action longer than %d bytes",
                         SMTPD_POLICY_ACTION_MAX);
                return -1;
            }
            for (size_t i = 0; i < vlen; i++) {
                unsigned char c = (unsigned char)eq[1 + i];

                if ((c < 0x20 && c != '\t') || c == 0x7f) {
                    snprintf(err, errlen, "control character in action");
                    return -1;
                }
            }
            buf_reset(action);
            buf_append(action, eq + 1, vlen);
            found = true;
        }
        p = nl + 1;
    }
    if (!found) {
        snprintf(err, errlen, "answer without action=");
        return -1;
    }
    return 0;
}

/* Length of the answer up to and including its empty line, or 0. */
static size_t smtpd_policy_reply_end(const char *data, size_t len)
{
    size_t line = 0;

    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\n')
            continue;
        if (i == line || (i == line + 1 && data[line] == '\r'))
            return i + 1;
        line = i + 1;
    }
    return 0;
}

/* Milliseconds left before deadline, at least 1 (0 once it passed). */
static int smtpd_policy_left(long long deadline)
{
    long long left = deadline - smtpd_policy_now_ms();

    if (left <= 0)
        return 0;
    return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

static const char *smtpd_policy_stream_why(struct stream *s,
                                           enum stream_status st)
{
    switch (st) {
    case STREAM_TIMEOUT:
        return "timeout";
    case STREAM_EOF:
        return "connection closed by the server";
    default:
        return stream_error(s);
    }
}

/*
 * One request/answer on conn, all within deadline.  Returns 0 (action
 * set; *trailing says bytes followed the answer) or -1 with err set.
 */
static int smtpd_policy_exchange(struct smtpd_policy_conn *conn,
                                 const struct buf *request, long long deadline,
                                 struct buf *action, bool *trailing, char *err,
                                 size_t errlen)
{
    struct buf in = BUF_INIT;
    enum stream_status st;
    size_t end = 0;
    int left, rc = -1;

    *trailing = false;
    if ((left = smtpd_policy_left(deadline)) == 0) {
        snprintf(err, errlen, "timeout");
        return -1;
    }
    stream_set_timeout(conn->stream, left);
    stream_write(conn->stream, request->data, request->len);
    if ((st = stream_flush(conn->stream)) != STREAM_OK) {
        snprintf(err, errlen, "sending the request: %s",
                 smtpd_policy_stream_why(conn->stream, st));
        return -1;
    }
    while ((end = smtpd_policy_reply_end(in.data, in.len)) == 0) {
        if (in.len >= SMTPD_POLICY_REPLY_MAX) {
            snprintf(err, errlen, "answer longer than %d bytes",
                     SMTPD_POLICY_REPLY_MAX);
            goto out;
        }
        if ((left = smtpd_policy_left(deadline)) == 0) {
            snprintf(err, errlen, "timeout waiting for the answer");
            goto out;
        }
        stream_set_timeout(conn->stream, left);
        st = stream_read_some(conn->stream, &in,
                              SMTPD_POLICY_REPLY_MAX - in.len);
        if (st != STREAM_OK) {
            snprintf(err, errlen, "reading the answer: %s",
                     st == STREAM_TIMEOUT
                         ? "timeout"
                         : smtpd_policy_stream_why(conn->stream, st));
            goto out;
        }
    }
    if (memchr(in.data, 0, end) != NULL) {
        snprintf(err, errlen, "NUL byte in answer");
        goto out;
    }
    rc = smtpd_policy_parse_reply(in.data, end, action, err, errlen);
    *trailing = end < in.len || stream_read_pending(conn->stream) > 0;
out:
    buf_free(&in);
    return rc;
}

/* ------------------------------------------------------------ connections */

static void smtpd_policy_drop(struct smtpd_policy_conn *conn)
{
    struct smtpd_policy_conn **pp;

    for (pp = &smtpd_policy_conns; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == conn) {
            *pp = conn->next;
            break;
        }
    }
    if (conn->stream != NULL)
        stream_close(conn->stream);
    free(conn->service);
    free(conn);
}

void smtpd_policy_close_all(void)
{
    while (smtpd_policy_conns != NULL)
        smtpd_policy_drop(smtpd_policy_conns);
}

static struct smtpd_policy_conn *smtpd_policy_find(const char *service)
{
    for (struct smtpd_policy_conn *c = smtpd_policy_conns; c != NULL;
         c = c->next)
        if (strcmp(c->service, service) == 0)
            return c;
    return NULL;
}

/*
 * A kept connection the server has closed (or written to unasked) shows
 * up as readable while idle: such a connection is not worth a try.
 */
static bool smtpd_policy_stale(struct smtpd_policy_conn *conn)
{
    struct pollfd pfd = {.fd = stream_fd(conn->stream), .events = POLLIN};

    return poll(&pfd, 1, 0) != 0 || stream_read_pending(conn->stream) > 0;
}

struct smtpd_policy_limits {
    long long timeout_ms;
    long long max_idle_ms;
    long long max_ttl_ms;
    long long request_limit;
    long long try_limit;
    long long retry_delay;
};

static long long smtpd_policy_pick(long long value, const char *param)
{
    struct config *cfg = config_global();

    if (value >= 0)
        return value;
    return config_int(cfg, param);
}

static void smtpd_policy_limits(const struct smtpd_policy_opts *opts,
                                struct smtpd_policy_limits *lim)
{
    lim->timeout_ms =
        smtpd_policy_pick(opts->timeout, "smtpd_policy_service_timeout") * 1000;
    lim->max_idle_ms =
        smtpd_policy_pick(opts->max_idle, "smtpd_policy_service_max_idle") *
        1000;
    lim->max_ttl_ms =
        smtpd_policy_pick(opts->max_ttl, "smtpd_policy_service_max_ttl") * 1000;
    lim->request_limit = smtpd_policy_pick(
        opts->request_limit, "smtpd_policy_service_request_limit");
    lim->try_limit =
        smtpd_policy_pick(opts->try_limit, "smtpd_policy_service_try_limit");
    lim->retry_delay = smtpd_policy_pick(opts->retry_delay,
                                         "smtpd_policy_service_retry_delay");
    if (lim->timeout_ms < 1)
        lim->timeout_ms = 1;
    if (lim->try_limit < 1)
        lim->try_limit = 1;
}

/* The kept connection if still good, else a new one; NULL with err. */
static struct smtpd_policy_conn *
smtpd_policy_open(const char *service, const struct smtpd_policy_endpoint *ep,
                  const struct smtpd_policy_limits *lim, long long deadline,
                  char *err, size_t errlen)
{
    struct smtpd_policy_conn *conn = smtpd_policy_find(service);
    long long now = smtpd_policy_now_ms();
    char why[512];
    int fd, left;

    if (conn != NULL) {
        if (now - conn->last_used < lim->max_idle_ms &&
            now - conn->opened < lim->max_ttl_ms && !smtpd_policy_stale(conn))
            return conn;
        smtpd_policy_drop(conn);
    }
    if ((left = smtpd_policy_left(deadline)) == 0) {
        snprintf(err, errlen, "timeout");
        return NULL;
    }
    if (ep->is_unix)
        fd = sock_connect_unix(ep->path, left, why, sizeof(why));
    else
        fd = sock_connect_inet(ep->host, ep->port, left, why, sizeof(why));
    if (fd < 0) {
        snprintf(err, errlen, "%s", why);
        return NULL;
    }
    conn = xcalloc(1, sizeof(*conn));
    conn->service = xstrdup(service);
    conn->stream = stream_open(fd);
    conn->opened = conn->last_used = now;
    conn->next = smtpd_policy_conns;
    smtpd_policy_conns = conn;
    return conn;
}

int smtpd_policy_query_opts(const char *service,
                            const struct smtpd_policy_opts *opts,
                            const struct smtpd_policy_request *req,
                            struct buf *action, char *err, size_t errlen)
{
    struct smtpd_policy_endpoint ep;
    struct smtpd_policy_limits lim;
    struct buf request = BUF_INIT;
    char why[512];
    int rc = -1;

    if (smtpd_policy_parse(service, &ep, err, errlen) < 0)
        return -1;
    smtpd_policy_limits(opts, &lim);
    smtpd_policy_format(req, &request);
    for (long long attempt = 1;; attempt++) {
        long long deadline = smtpd_policy_now_ms() + lim.timeout_ms;
        struct smtpd_policy_conn *conn;
        bool trailing;

        conn =
            smtpd_policy_open(service, &ep, &lim, deadline, why, sizeof(why));
        if (conn != NULL &&
            smtpd_policy_exchange(conn, &request, deadline, action, &trailing,
                                  why, sizeof(why)) == 0) {
            conn->requests++;
            conn->last_used = smtpd_policy_now_ms();
            /* Bytes nobody asked for would be read as the next answer. */
            if (trailing ||
                (lim.request_limit > 0 && conn->requests >= lim.request_limit))
                smtpd_policy_drop(conn);
            rc = 0;
            break;
        }
        if (conn != NULL)
            smtpd_policy_drop(conn);
        if (attempt >= lim.try_limit) {
            snprintf(err, errlen, "%s", why);
            break;
        }
        log_warn("problem talking to policy server %s: %s; trying again",
                 service, why);
        sleep((unsigned)lim.retry_delay);
    }
    buf_free(&request);
    return rc;
}

int smtpd_policy_query(const char *service,
                       const struct smtpd_policy_request *req,
                       struct buf *action, char *err, size_t errlen)
{
    static const struct smtpd_policy_opts defaults = SMTPD_POLICY_OPTS_INIT;

    return smtpd_policy_query_opts(service, &defaults, req, action, err,
                                   errlen);
}
