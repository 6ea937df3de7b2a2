/*
 * smtpd_check_hooks - where the restriction engine meets the session:
 * the client's name and the anvil limits at connect, the rate limits at
 * MAIL and RCPT, the end of the session, check_policy_service, and the
 * transaction's actions (HOLD, DISCARD, FILTER, REDIRECT, BCC, PREPEND)
 * as attributes of cleanup's envelope and end frames.
 *
 * Talks to the DNS (smtpd_dns.c), to anvil (global/anvil_client.h) and
 * to policy servers (smtpd_policy.h).  anvil that cannot be reached is a
 * warning and no limit, as in Postfix: the limits are a defence against
 * floods, not an accounting that may lose mail.  A policy server that
 * cannot be reached, times out or answers garbage gives
 * smtpd_policy_service_default_action, with a warning.
 */
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "global/anvil_client.h"
#include "global/cidr.h"
#include "smtpd/smtpd_check_impl.h"
#include "smtpd/smtpd_policy.h"
#include "util/attr.h"
#include "util/htable.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/sock.h"
#include "util/str.h"
#include "util/tls.h"

/* ------------------------------------------------------------ session */

/* The stand-alone mode (-s on a pipe) has no network peer to ask about. */
static bool network_peer(const struct smtpd_session *s)
{
    return strcmp(s->port, "0") != 0;
}

void smtpd_check_peer(struct smtpd_session *s)
{
    struct smtpd_check_state *st = xcalloc(1, sizeof(*st));

    s->check = st;
    if (network_peer(s) && check_cfg.peername_lookup) {
        smtpd_dns_client_names(st, s->addr);
    } else {
        str_lcpy(st->name, s->name, sizeof(st->name));
        str_lcpy(st->reverse_name, s->name, sizeof(st->reverse_name));
        st->name_status = st->reverse_status =
            network_peer(s) ? CHECK_PEER_PERM : CHECK_PEER_OK;
    }
    s->name = st->name;
}

bool check_input_pending(struct smtpd_session *s)
{
    struct pollfd pfd = {stream_fd(s->client), POLLIN, 0};

    if (stream_read_pending(s->client) > 0)
        return true;
    if (s->tls != NULL && tls_conn_pending(s->tls) > 0)
        return true;
    return poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLIN);
}

bool smtpd_check_input_pending(struct smtpd_session *s)
{
    return check_input_pending(s);
}

static bool limit_exempt(const struct smtpd_session *s)
{
    return !network_peer(s) ||
           cidr_list_match(check_cfg.limit_exceptions, s->addr);
}

static void anvil_ident(const struct smtpd_session *s, char *out, size_t n)
{
    snprintf(out, n, "%s:%s", check_cfg.service, s->addr);
}

/* Once per process: anvil missing from master.cf is a setup matter. */
static void anvil_unreachable(const char *err)
{
    static bool warned;

    if (!warned)
        log_warn("%s; client limits are not enforced", err);
    warned = true;
}

/* Connection count and rate: 0, or -1 when the client is over a limit. */
static int anvil_connect_check(struct smtpd_session *s)
{
    struct smtpd_check_state *st = s->check;
    char ident[128], err[256];
    int count = 0, rate = 0;

    if (limit_exempt(s) ||
        (check_cfg.conn_count_limit == 0 && check_cfg.conn_rate_limit == 0))
        return 0;
    anvil_ident(s, ident, sizeof(ident));
    if (anvil_connect(ident, &count, &rate, err, sizeof(err)) < 0) {
        anvil_unreachable(err);
        return 0;
    }
    st->anvil_connected = true;
    if (check_cfg.conn_count_limit > 0 && count > check_cfg.conn_count_limit) {
        log_warn("Connection concurrency limit exceeded: %d from %s for "
                 "service %s",
                 count, s->namaddr, check_cfg.service);
        return -1;
    }
    if (check_cfg.conn_rate_limit > 0 && rate > check_cfg.conn_rate_limit) {
        log_warn("Connection rate limit exceeded: %d from %s for service %s",
                 rate, s->namaddr, check_cfg.service);
        return -1;
    }
    return 0;
}

int check_rate(struct smtpd_session *s, enum check_rate what)
{
    bool msg = what == CHECK_RATE_MESSAGE;
    long long limit =
        msg ? check_cfg.msg_rate_limit : check_cfg.rcpt_rate_limit;
    char ident[128], err[256];
    int rate = 0, rc;

    if (limit == 0 || limit_exempt(s))
        return 0;
    anvil_ident(s, ident, sizeof(ident));
    rc = msg ? anvil_message(ident, &rate, err, sizeof(err))
             : anvil_recipient(ident, &rate, err, sizeof(err));
    if (rc < 0) {
        anvil_unreachable(err);
        return 0;
    }
    if (rate <= limit)
        return 0;
    if (msg) {
        log_warn("Message delivery request rate limit exceeded: %d from %s "
                 "for service %s",
                 rate, s->namaddr, check_cfg.service);
        smtpd_reply(s, "450 4.7.1 Error: too much mail from %s", s->addr);
    } else {
        log_warn("Recipient address rate limit exceeded: %d from %s for "
                 "service %s",
                 rate, s->namaddr, check_cfg.service);
        smtpd_reply(s, "450 4.7.1 Error: too many recipients from %s", s->addr);
    }
    return -1;
}

enum smtpd_check_greet smtpd_check_connect(struct smtpd_session *s)
{
    struct smtpd_check_state *st;
    struct buf reply = BUF_INIT;
    enum smtpd_check_greet res = SMTPD_CHECK_GREET;

    if (s->check == NULL)
        smtpd_check_peer(s);
    st = s->check;
    if (network_peer(s))
        (void)sock_local_name(stream_fd(s->client), st->server_addr,
                              sizeof(st->server_addr), st->server_port,
                              sizeof(st->server_port));
    if (anvil_connect_check(s) < 0) {
        smtpd_reply(s, "421 4.7.0 %s Error: too many connections from %s",
                    s->cfg->myhostname, s->addr);
        return SMTPD_CHECK_HANGUP;
    }
    /* Anything the client said before our greeting is pipelining. */
    st->pregreet = network_peer(s) && check_input_pending(s);
    if (!check_cfg.delay_reject && check_connect_stage(s, &reply) < 0) {
        st->denied = buf_steal(&reply);
        smtpd_reply(s, "%s", st->denied);
        res = SMTPD_CHECK_DENIED;
    }
    buf_free(&reply);
    return res;
}

const char *smtpd_check_denied(const struct smtpd_session *s)
{
    return s->check != NULL ? s->check->denied : NULL;
}

void smtpd_check_disconnect(struct smtpd_session *s)
{
    struct smtpd_check_state *st = s->check;
    char ident[128], err[256];

    if (st == NULL)
        return;
    if (st->anvil_connected) {
        anvil_ident(s, ident, sizeof(ident));
        if (anvil_disconnect(ident, err, sizeof(err)) < 0)
            anvil_unreachable(err);
    }
    smtpd_check_xact_reset(s);
    smtpd_dns_cache_free(st);
    buf_free(&st->defer_if_permit.reason);
    buf_free(&st->defer_if_reject.reason);
    argv_free(&st->prepend);
    free(st->denied);
    /* s->name points into st. */
    s->name = "unknown";
    free(st);
    s->check = NULL;
}

/* ------------------------------------------------------------ actions */

void smtpd_check_xact_reset(struct smtpd_session *s)
{
    struct smtpd_check_state *st = s->check;

    if (st == NULL)
        return;
    st->hold = st->discard = false;
    free(st->filter);
    free(st->redirect);
    free(st->bcc);
    st->filter = st->redirect = st->bcc = NULL;
    argv_free(&st->prepend);
}

bool smtpd_check_discarding(const struct smtpd_session *s)
{
    return s->check != NULL && s->check->discard;
}

void smtpd_check_envelope(struct smtpd_session *s, struct buf *frame)
{
    struct smtpd_check_state *st = s->check;

    if (st == NULL)
        return;
    if (st->hold)
        attr_put_str(frame, "hold", "1");
    if (st->discard)
        attr_put_str(frame, "discard", "1");
    if (st->filter != NULL)
        attr_put_str(frame, "filter", st->filter);
    if (st->redirect != NULL)
        attr_put_str(frame, "redirect", st->redirect);
    for (size_t i = 0; i < st->prepend.n; i++)
        attr_put_str(frame, "prepend", st->prepend.v[i]);
    /* BCC: one more recipient, without delivery notifications. */
    if (st->bcc != NULL) {
        attr_put_str(frame, "rcpt", st->bcc);
        attr_put_str(frame, "notify", "NEVER");
    }
}

void smtpd_check_end_frame(struct smtpd_session *s, struct buf *frame)
{
    struct smtpd_check_state *st = s->check;

    if (st == NULL)
        return;
    if (st->hold)
        attr_put_str(frame, "hold", "1");
    if (st->discard)
        attr_put_str(frame, "discard", "1");
}

/* ------------------------------------------------------------ policy */

/*
 * "inet:host:port", or Postfix 3.0's "{ inet:host:port, timeout=10s,
 * default_action=DUNNO, policy_context=x, ... }"; a value with blanks
 * goes in inner braces: "{ default_action = 451 4.3.5 text }".
 */
struct check_policy_spec {
    char *endpoint;
    struct smtpd_policy_opts opts;
    char *default_action;
    char *policy_context;
};

static int spec_setting(struct check_policy_spec *p, const char *item,
                        char *err, size_t errlen)
{
    static const struct {
        const char *name;
        size_t offset;
        bool time;
    } nums[] = {
        {"timeout", offsetof(struct smtpd_policy_opts, timeout), true},
        {"max_idle", offsetof(struct smtpd_policy_opts, max_idle), true},
        {"max_ttl", offsetof(struct smtpd_policy_opts, max_ttl), true},
        {"request_limit", offsetof(struct smtpd_policy_opts, request_limit),
         false},
        {"try_limit", offsetof(struct smtpd_policy_opts, try_limit), false},
        {"retry_delay", offsetof(struct smtpd_policy_opts, retry_delay), true},
    };
    char *copy = xstrdup(item), *name, *value, *eq;
    int rc = -1;

    if (copy[0] == '{') {
        size_t n = strlen(copy);

        if (n < 2 || copy[n - 1] != '}')
            goto done;
        copy[n - 1] = 0;
        memmove(copy, copy + 1, n - 1);
    }
    if ((eq = strchr(copy, '=')) == NULL)
        goto done;
    *eq = 0;
    name = str_trim(copy);
    value = str_trim(eq + 1);
    if (strcmp(name, "default_action") == 0 && *value) {
        free(p->default_action);
        p->default_action = xstrdup(value);
        rc = 0;
    } else if (strcmp(name, "policy_context") == 0) {
        free(p->policy_context);
        p->policy_context = xstrdup(value);
        rc = 0;
    } else {
        for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
            long long v;

            if (strcmp(name, nums[i].name) != 0)
                continue;
            if (nums[i].time ? str_to_time(value, 's', &v)
                             : str_to_llong(value, &v)) {
                if (v >= 0) {
                    *(long long *)((char *)&p->opts + nums[i].offset) = v;
                    rc = 0;
                }
            }
        }
    }
done:
    if (rc < 0)
        snprintf(err, errlen, "check_policy_service: bad setting \"%s\"", item);
    free(copy);
    return rc;
}

void check_policy_spec_free(struct check_policy_spec *p)
{
    if (p == NULL)
        return;
    free(p->endpoint);
    free(p->default_action);
    free(p->policy_context);
    free(p);
}

struct check_policy_spec *check_policy_spec_parse(const char *arg, char *err,
                                                  size_t errlen)
{
    struct check_policy_spec *p = xcalloc(1, sizeof(*p));
    struct smtpd_policy_opts init = SMTPD_POLICY_OPTS_INIT;
    struct argv items = ARGV_INIT;
    char sub[256];

    p->opts = init;
    if (arg[0] == '{') {
        size_t n = strlen(arg);
        char *inner;

        if (n < 2 || arg[n - 1] != '}') {
            snprintf(err, errlen, "check_policy_service: missing '}' in %s",
                     arg);
            goto fail;
        }
        inner = xstrndup(arg + 1, n - 2);
        if (maps_split_list(inner, &items, sub, sizeof(sub)) < 0) {
            free(inner);
            snprintf(err, errlen, "check_policy_service: %s", sub);
            goto fail;
        }
        free(inner);
        if (items.n == 0) {
            snprintf(err, errlen, "check_policy_service: no endpoint in %s",
                     arg);
            goto fail;
        }
        p->endpoint = xstrdup(items.v[0]);
        for (size_t i = 1; i < items.n; i++)
            if (spec_setting(p, items.v[i], err, errlen) < 0)
                goto fail;
    } else {
        p->endpoint = xstrdup(arg);
    }
    if (smtpd_policy_service_ok(p->endpoint, sub, sizeof(sub)) < 0) {
        snprintf(err, errlen, "check_policy_service %s: %s", p->endpoint, sub);
        goto fail;
    }
    argv_free(&items);
    return p;
fail:
    argv_free(&items);
    check_policy_spec_free(p);
    return NULL;
}

enum check_status check_policy(struct check_run *r,
                               const struct check_policy_spec *p)
{
    struct smtpd_session *s = r->s;
    struct smtpd_check_state *st = r->st;
    struct smtpd_policy_request req;
    struct buf action = BUF_INIT;
    enum check_status status;
    bool message = strcmp(r->where, "DATA") == 0 ||
                   strcmp(r->where, "END-OF-MESSAGE") == 0;
    char err[512];
    int alg_bits = 0;

    memset(&req, 0, sizeof(req));
    req.protocol_state = r->where;
    req.protocol_name = s->esmtp ? "ESMTP" : "SMTP";
    req.helo_name = s->helo;
    req.sender = r->sender != NULL ? r->sender->text : NULL;
    req.recipient = r->recipient;
    req.recipient_count = message ? (long long)s->xact.nrcpt : 0;
    req.client_address = s->addr;
    req.client_name = st->name;
    req.reverse_client_name = st->reverse_name;
    req.instance = s->xact.active ? st->instance : NULL;
    req.sasl_method = s->sasl_method;
    req.sasl_username = s->sasl_username;
    req.size = r->size;
    if (s->tls != NULL) {
        req.encryption_protocol = tls_conn_protocol(s->tls);
        req.encryption_cipher = tls_conn_cipher(s->tls);
        req.encryption_keysize = tls_conn_bits(s->tls, &alg_bits);
    }
    req.client_port = s->port;
    req.server_address = st->server_addr[0] ? st->server_addr : NULL;
    req.server_port = st->server_port[0] ? st->server_port : NULL;
    req.policy_context = p->policy_context;
    if (smtpd_policy_query_opts(p->endpoint, &p->opts, &req, &action, err,
                                sizeof(err)) == 0) {
        status =
            access_result(r, p->endpoint, buf_cstr(&action), "policy query");
    } else {
        const char *def = p->default_action ? p->default_action
                                            : check_cfg.policy_default_action;

        log_warn("problem talking to policy server %s: %s; using "
                 "smtpd_policy_service_default_action \"%s\"",
                 p->endpoint, err, def);
        status = access_result(r, p->endpoint, def, "policy query");
    }
    buf_free(&action);
    return status;
}
