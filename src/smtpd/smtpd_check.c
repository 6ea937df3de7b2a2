/*
 * smtpd_check - the restriction engine: start-up, the stages, the
 * evaluation loop, rejections and their log lines (see smtpd_check.h for
 * the stages, smtpd_check_impl.h for the pieces).
 *
 * Given the configuration (trusted) and what the client said (not
 * trusted: names, addresses and HELO text only ever become table keys,
 * DNS questions and bounded, printable reply text).  Start-up refuses
 * what it cannot understand: an unknown restriction, a restriction
 * without its argument, a bare table in a list that has no access check
 * to give it meaning.  At run time a configuration problem found late
 * (a table that did not open, a table name inside an access result, a
 * loop of restriction classes) is a warning and "451 4.3.5 Server
 * configuration error", a table or DNS lookup that fails is a temporary
 * error: mail is deferred, never accepted by accident.
 */
#include "smtpd/smtpd_check.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "global/cidr.h"
#include "global/config.h"
#include "global/resolve.h"
#include "smtpd/smtpd_check_impl.h"
#include "util/htable.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/procpid.h"

#define CHECK_SEPARATORS ", \t\r\n"

struct check_config check_cfg;

/* ------------------------------------------------------------ lists */

/* Postfix restrictions posthorn does not have: refused at start-up. */
static const char *const postfix_pending[] = {
    "check_address_map",
    "check_ccert_access",
    "check_client_a_access",
    "check_client_mx_access",
    "check_client_ns_access",
    "check_etrn_access",
    "check_helo_a_access",
    "check_helo_mx_access",
    "check_helo_ns_access",
    "check_recipient_a_access",
    "check_recipient_mx_access",
    "check_recipient_ns_access",
    "check_relay_domains",
    "check_reverse_client_hostname_a_access",
    "check_reverse_client_hostname_mx_access",
    "check_reverse_client_hostname_ns_access",
    "check_sasl_access",
    "check_sender_a_access",
    "check_sender_mx_access",
    "check_sender_ns_access",
    "permit_auth_destination",
    "permit_inet_interfaces",
    "permit_mx_backup",
    "permit_naked_ip_address",
    "permit_rhswl_client",
    "permit_tls_all_clientcerts",
    "permit_tls_clientcerts",
    "reject_auth_destination",
    "reject_maps_rbl",
    "reject_multi_recipient_bounce",
    "reject_plaintext_session",
    "reject_rhsbl_recipient",
    "reject_rhsbl_reverse_client",
    "reject_unknown_address",
    "reject_unverified_recipient",
    "reject_unverified_sender",
};

static bool restriction_pending(const char *name)
{
    for (size_t i = 0; i < sizeof(postfix_pending) / sizeof(postfix_pending[0]);
         i++)
        if (str_eq_ci(name, postfix_pending[i]))
            return true;
    return false;
}

void check_list_free(struct check_list *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].rbl_addr);
        free(l->v[i].arg);
        check_policy_spec_free(l->v[i].policy);
    }
    free(l->v);
    free(l->name);
    free(l);
}

/* The argument of a restriction that takes one; 0 or -1 with err. */
static int parse_arg(const char *name, const struct restriction_def *def,
                     const char *arg, bool allow_tables, struct check_item *it,
                     char *err, size_t errlen)
{
    char *eq;

    switch (def->arg) {
    case ARG_NONE:
        return 0;
    case ARG_TABLE:
        if (strchr(arg, ':') == NULL) {
            snprintf(err, errlen,
                     "%s: restriction %s: bad argument \"%s\": need "
                     "maptype:mapname",
                     name, def->name, arg);
            return -1;
        }
        if (!allow_tables) {
            snprintf(err, errlen, "%s: lookup table %s inside an access result",
                     name, arg);
            return -1;
        }
        it->table = access_table_get(arg);
        return 0;
    case ARG_SERVICE:
        if (strchr(arg, ':') == NULL) {
            snprintf(err, errlen,
                     "%s: restriction %s must be followed by transport:server",
                     name, def->name);
            return -1;
        }
        if (!allow_tables) {
            snprintf(err, errlen,
                     "%s: policy service %s inside an access "
                     "result",
                     name, arg);
            return -1;
        }
        if ((it->policy = check_policy_spec_parse(arg, err, errlen)) == NULL)
            return -1;
        return 0;
    case ARG_NUMBER:
        if (arg[0] == 0 || strspn(arg, "0123456789") != strlen(arg) ||
            strlen(arg) > 6 || atoll(arg) > CHECK_SLEEP_MAX) {
            snprintf(err, errlen,
                     "%s: restriction %s must be followed by a number of "
                     "seconds (at most %d)",
                     name, def->name, CHECK_SLEEP_MAX);
            return -1;
        }
        it->number = atoll(arg);
        return 0;
    case ARG_DOMAIN:
        it->arg = xstrdup(arg);
        /* reject_rbl_client zone=127.0.0.2: only that answer counts. */
        if ((eq = strchr(arg, '=')) != NULL) {
            struct cidr_net net;
            char cerr[128];

            if (cidr_parse(eq + 1, &net, cerr, sizeof(cerr)) < 0 ||
                net.family != AF_INET || net.prefix != 32) {
                snprintf(err, errlen,
                         "%s: restriction %s: bad reply address in \"%s\" "
                         "(want zone=d.d.d.d)",
                         name, def->name, arg);
                return -1;
            }
            it->rbl_addr = xstrdup(eq + 1);
        }
        if (arg == eq || !dns_name_ok(arg) ||
            (eq != NULL && (size_t)(eq - arg) > DNS_NAME_MAX)) {
            bool ok = false;

            if (eq != NULL && eq > arg) {
                char *zone = xstrndup(arg, (size_t)(eq - arg));

                ok = dns_name_ok(zone);
                free(zone);
            }
            if (!ok) {
                snprintf(err, errlen,
                         "%s: restriction %s: bad domain name \"%s\"", name,
                         def->name, arg);
                return -1;
            }
        }
        return 0;
    }
    return 0;
}

struct check_list *check_list_parse(const char *name, const struct argv *words,
                                    bool allow_tables, char *err, size_t errlen)
{
    struct check_list *l = xcalloc(1, sizeof(*l));

    l->name = xstrdup(name);
    l->v = xcalloc(words->n + 1, sizeof(*l->v));
    for (size_t i = 0; i < words->n; i++) {
        const char *w = words->v[i];
        struct check_item *it = &l->v[l->n];
        const struct restriction_def *def;
        const struct check_list *cls = NULL;

        if (str_eq_ci(w, restriction_warn_if_reject.name)) {
            it->def = &restriction_warn_if_reject;
        } else if ((def = restriction_find(w)) != NULL) {
            it->def = def;
            if (def->arg != ARG_NONE) {
                if (i + 1 >= words->n) {
                    snprintf(err, errlen,
                             "%s: restriction %s needs an argument", name,
                             def->name);
                    goto fail;
                }
                if (parse_arg(name, def, words->v[++i], allow_tables, it, err,
                              errlen) < 0)
                    goto fail;
            }
        } else if (check_cfg.classes != NULL &&
                   (cls = htable_get(check_cfg.classes, w)) != NULL) {
            it->cls = cls;
        } else if (strchr(w, ':') != NULL) {
            if (!allow_tables) {
                snprintf(err, errlen,
                         "%s: lookup table %s inside an access "
                         "result",
                         name, w);
                goto fail;
            }
            it->table = access_table_get(w);
        } else if (restriction_pending(w)) {
            snprintf(err, errlen,
                     "%s: restriction '%s' is not implemented; remove it to "
                     "start",
                     name, w);
            goto fail;
        } else {
            snprintf(err, errlen, "%s: unknown restriction '%s'", name, w);
            goto fail;
        }
        l->n++;
    }
    return l;
fail:
    l->n++; /* the element that failed may own an argument already */
    check_list_free(l);
    return NULL;
}

/* Does l (or a class it uses) stop open relaying?  depth bounds loops. */
static bool guards_relay(const struct check_list *l, int depth)
{
    for (size_t i = 0; l != NULL && i < l->n && depth < CHECK_RECURSION_MAX;
         i++) {
        if (l->v[i].def == &restriction_warn_if_reject) {
            i++; /* what follows only warns */
            continue;
        }
        if (l->v[i].def != NULL && l->v[i].def->guards_relay)
            return true;
        if (l->v[i].cls != NULL && guards_relay(l->v[i].cls, depth + 1))
            return true;
    }
    return false;
}

/* Do the list's bare tables have an access check to belong to? */
static bool bare_tables_ok(const struct check_list *l, const char *def_acl,
                           char *err, size_t errlen)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i].def == NULL && l->v[i].cls == NULL && def_acl == NULL) {
            snprintf(err, errlen,
                     "%s: specify one of check_client_access, "
                     "check_helo_access, check_sender_access, "
                     "check_recipient_access before the table %s",
                     l->name, l->v[i].table->spec);
            return false;
        }
    }
    return true;
}

static struct check_list *parse_param(struct config *cfg, const char *param,
                                      const char *value, const char *def_acl)
{
    struct argv words = ARGV_INIT;
    struct check_list *l;
    char err[600];

    /* maps_split_list keeps "inline:{a=b, c=d}" and "{ ... }" whole. */
    if (maps_split_list(value, &words, err, sizeof(err)) < 0)
        log_fatal("%s: %s", param, err);
    l = check_list_parse(param, &words, true, err, sizeof(err));
    argv_free(&words);
    if (l == NULL || !bare_tables_ok(l, def_acl, err, sizeof(err)))
        log_fatal("%s", err);
    return l;
}

/* smtpd_restriction_classes: names first, so classes may use each other. */
static void parse_classes(struct config *cfg)
{
    struct argv names = ARGV_INIT;

    check_cfg.classes = htable_new(16);
    argv_split(&names, config_str(cfg, "smtpd_restriction_classes"),
               CHECK_SEPARATORS);
    for (size_t i = 0; i < names.n; i++) {
        struct check_list *l = xcalloc(1, sizeof(*l));

        if (restriction_find(names.v[i]) != NULL)
            log_fatal("smtpd_restriction_classes: %s is the name of a "
                      "restriction",
                      names.v[i]);
        l->name = xstrdup(names.v[i]);
        htable_put(check_cfg.classes, names.v[i], l);
    }
    for (size_t i = 0; i < names.n; i++) {
        struct check_list *l = htable_get(check_cfg.classes, names.v[i]);
        const char *raw = config_raw(cfg, names.v[i]);
        struct argv words = ARGV_INIT;
        struct check_list *parsed;
        char err[600], *value;

        if (raw == NULL || *raw == 0)
            log_fatal("restriction class '%s' needs a definition", names.v[i]);
        value = config_expand(cfg, raw);
        if (maps_split_list(value, &words, err, sizeof(err)) < 0)
            log_fatal("%s: %s", names.v[i], err);
        free(value);
        parsed = check_list_parse(names.v[i], &words, true, err, sizeof(err));
        argv_free(&words);
        if (parsed == NULL)
            log_fatal("%s", err);
        /* Move the items into the registered (and referenced) list. */
        l->v = parsed->v;
        l->n = parsed->n;
        parsed->v = NULL;
        parsed->n = 0;
        check_list_free(parsed);
    }
    argv_free(&names);
}

static int config_code(struct config *cfg, const char *name)
{
    long long n = config_int(cfg, name);

    if (n < 400 || n > 599)
        log_fatal("%s: %lld is not a 4xx or 5xx reply code", name, n);
    return (int)n;
}

static bool list_has(struct config *cfg, const char *param, const char *word)
{
    const struct argv *l = config_list(cfg, param);

    for (size_t i = 0; i < l->n; i++)
        if (str_eq_ci(l->v[i], word))
            return true;
    return false;
}

void smtpd_check_init(struct config *cfg, const struct smtpd_config *c)
{
    struct check_config *k = &check_cfg;
    char err[512];
    const char *v;

    k->smtpd = c;
    k->delay_reject = c->delay_reject;
    k->peername_lookup = config_bool(cfg, "smtpd_peername_lookup");
    k->peername_hosts = config_bool(cfg, "smtpd_peername_hosts");
    k->access_parent_style =
        list_has(cfg, "parent_domain_matches_subdomains", "smtpd_access_maps");
    k->allow_untrusted_routing = config_bool(cfg, "allow_untrusted_routing");
    k->null_key = config_str(cfg, "smtpd_null_access_lookup_key");
    k->delimiters = config_str(cfg, "recipient_delimiter");
    k->access_reject_code = config_code(cfg, "access_map_reject_code");
    k->access_defer_code = config_code(cfg, "access_map_defer_code");
    k->reject_code = config_code(cfg, "reject_code");
    k->defer_code = config_code(cfg, "defer_code");
    k->unknown_client_code = config_code(cfg, "unknown_client_reject_code");
    k->unknown_hostname_code = config_code(cfg, "unknown_hostname_reject_code");
    k->unknown_address_code = config_code(cfg, "unknown_address_reject_code");
    k->non_fqdn_code = config_code(cfg, "non_fqdn_reject_code");
    k->invalid_hostname_code = config_code(cfg, "invalid_hostname_reject_code");
    k->rbl_code = config_code(cfg, "maps_rbl_reject_code");
    k->conn_count_limit =
        config_int(cfg, "smtpd_client_connection_count_limit");
    /* The policy/anvil rows live in params_policy.inc. */
    k->conn_rate_limit =
        param_find("smtpd_client_connection_rate_limit")
            ? config_int(cfg, "smtpd_client_connection_rate_limit")
            : 0;
    k->msg_rate_limit = param_find("smtpd_client_message_rate_limit")
                            ? config_int(cfg, "smtpd_client_message_rate_limit")
                            : 0;
    k->rcpt_rate_limit =
        param_find("smtpd_client_recipient_rate_limit")
            ? config_int(cfg, "smtpd_client_recipient_rate_limit")
            : 0;
    k->policy_context =
        param_find("smtpd_policy_service_policy_context")
            ? config_str(cfg, "smtpd_policy_service_policy_context")
            : "";
    k->policy_default_action =
        param_find("smtpd_policy_service_default_action")
            ? config_str(cfg, "smtpd_policy_service_default_action")
            : "451 4.3.5 Server configuration problem";
    v = param_find("smtpd_client_event_limit_exceptions")
            ? config_str(cfg, "smtpd_client_event_limit_exceptions")
            : config_str(cfg, "mynetworks");
    if ((k->limit_exceptions = cidr_list_parse(v, err, sizeof(err))) == NULL)
        log_fatal("smtpd_client_event_limit_exceptions: %s", err);
    v = config_str(cfg, "service_name");
    k->service = *v ? v : "smtpd";

    k->tables = htable_new(16);
    v = config_str(cfg, "smtpd_sender_login_maps");
    k->sender_login_maps = maplist_open(v, err, sizeof(err));
    if (k->sender_login_maps == NULL) {
        log_error("smtpd_sender_login_maps: %s", err);
        k->sender_login_error = xstrdup(err);
    }

    v = config_str(cfg, "relay_recipient_maps");
    k->relay_rcpt_maps = maplist_open(v, err, sizeof(err));
    if (k->relay_rcpt_maps == NULL) {
        log_error("relay_recipient_maps: %s", err);
        k->relay_rcpt_error = xstrdup(err);
    }

    parse_classes(cfg);
    k->client = parse_param(cfg, "smtpd_client_restrictions",
                            config_str(cfg, "smtpd_client_restrictions"),
                            "check_client_access");
    k->helo = parse_param(cfg, "smtpd_helo_restrictions",
                          config_str(cfg, "smtpd_helo_restrictions"),
                          "check_helo_access");
    k->sender = parse_param(cfg, "smtpd_sender_restrictions",
                            config_str(cfg, "smtpd_sender_restrictions"),
                            "check_sender_access");
    k->relay = parse_param(cfg, "smtpd_relay_restrictions",
                           config_str(cfg, "smtpd_relay_restrictions"),
                           "check_recipient_access");
    k->recipient = parse_param(cfg, "smtpd_recipient_restrictions",
                               config_str(cfg, "smtpd_recipient_restrictions"),
                               "check_recipient_access");
    k->data = parse_param(cfg, "smtpd_data_restrictions",
                          config_str(cfg, "smtpd_data_restrictions"), NULL);
    k->eod =
        parse_param(cfg, "smtpd_end_of_data_restrictions",
                    config_str(cfg, "smtpd_end_of_data_restrictions"), NULL);
    if (!guards_relay(k->relay, 0) && !guards_relay(k->recipient, 0))
        log_fatal("in smtpd_relay_restrictions or "
                  "smtpd_recipient_restrictions, specify at least one of: "
                  "reject_unauth_destination, defer_unauth_destination, "
                  "reject, defer, defer_if_permit");
    v = config_str(cfg, "smtpd_etrn_restrictions");
    if (v[strspn(v, CHECK_SEPARATORS)] != 0)
        log_fatal("smtpd_etrn_restrictions: ETRN is not implemented; remove "
                  "'smtpd_etrn_restrictions = %s' to start",
                  v);

    {
        const struct argv *servers = config_list(cfg, "dns_server_addresses");
        long long t = config_time(cfg, "smtpd_dns_timeout");

        k->dns = dns_open(servers, (int)t * 1000, 1, err, sizeof(err));
        if (k->dns == NULL)
            log_fatal("%s", err);
    }
}

/* ------------------------------------------------------------ replies */

/* "D.DDD.DDD" followed by a blank or the end: its length, else 0. */
static size_t dsn_len(const char *t)
{
    const char *p = t;

    if (*p < '2' || *p > '5' || p[1] != '.')
        return 0;
    p += 2;
    for (int part = 0; part < 2; part++) {
        int n = 0;

        while (isdigit((unsigned char)*p) && n < 4) {
            p++;
            n++;
        }
        if (n == 0 || n > 3 || (part == 0 && *p++ != '.'))
            return 0;
    }
    return (*p == 0 || *p == ' ' || *p == '\t') ? (size_t)(p - t) : 0;
}

void check_log(struct check_run *r, const char *what, const char *text)
{
    struct smtpd_session *s = r->s;
    struct buf line = BUF_INIT;
    char safe[CHECK_REPLY_MAX + 1];

    buf_printf(&line, "NOQUEUE: %s: %s from %s: %s;", what, r->where,
               s->namaddr,
               log_printable(safe, sizeof(safe), text, strlen(text)));
    if (r->sender != NULL)
        buf_printf(&line, " from=<%s>", r->sender->text);
    if (r->recipient != NULL)
        buf_printf(&line, " to=<%s>", r->recipient);
    buf_printf(&line, " proto=%s", s->esmtp ? "ESMTP" : "SMTP");
    if (s->helo != NULL)
        buf_printf(&line, " helo=<%s>", s->helo);
    log_info("%s", line.data);
    buf_free(&line);
}

enum check_status check_reject(struct check_run *r, enum check_error class,
                               int code, const char *dsn, const char *fmt, ...)
{
    struct smtpd_check_state *st = r->st;
    bool warn = r->warn_if_reject > 0 && class != CHECK_ERR_SOFTWARE;
    struct buf text = BUF_INIT;
    va_list ap;

    buf_printf(&text, "%d %s ", code, dsn);
    va_start(ap, fmt);
    buf_vprintf(&text, fmt, ap);
    va_end(ap);
    if (code < 400 || code > 599) {
        log_warn("SMTP reply code configuration error: %s", text.data);
        buf_reset(&text);
        buf_puts(&text, "450 4.7.1 Service unavailable");
    } else if (dsn_len(text.data + 4) == 0) {
        log_warn("DSN detail code configuration error: %s", text.data);
        buf_reset(&text);
        buf_puts(&text, "450 4.7.1 Service unavailable");
    }
    /* One line of printable text within the RFC 5321 limit. */
    buf_truncate(&text, CHECK_REPLY_MAX);
    for (size_t i = 0; i < text.len; i++)
        if ((unsigned char)text.data[i] < 0x20 ||
            (unsigned char)text.data[i] > 0x7e)
            text.data[i] = ' ';
    /* An earlier temporary doubt turns this 5xx into that 4xx. */
    if (!warn && st->defer_if_reject.active && text.data[0] == '5') {
        struct check_defer *d = &st->defer_if_reject;
        enum check_status res;

        d->active = false;
        r->warn_if_reject = 0;
        res = check_reject(r, d->class, d->code, d->dsn, "%s", d->reason.data);
        buf_free(&text);
        return res;
    }
    /* The enhanced code's class follows the reply code's. */
    text.data[4] = text.data[0];
    check_log(r, warn ? "reject_warning" : "reject", text.data);
    if (!warn) {
        buf_reset(r->reply);
        buf_append(r->reply, text.data, text.len);
        r->code = atoi(text.data);
    }
    buf_free(&text);
    return warn ? CHECK_DUNNO : CHECK_REJECT;
}

static void defer_vset(struct check_defer *d, enum check_error class, int code,
                       const char *dsn, const char *fmt, va_list ap)
{
    if (d->active)
        return; /* the first reason is the one reported */
    d->active = true;
    d->class = class;
    d->code = code;
    str_lcpy(d->dsn, dsn, sizeof(d->dsn));
    buf_reset(&d->reason);
    buf_vprintf(&d->reason, fmt, ap);
}

void check_defer_if(struct check_run *r, struct check_defer *d,
                    enum check_error class, int code, const char *dsn,
                    const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    defer_vset(d, class, code, dsn, fmt, ap);
    va_end(ap);
}

void check_defer_if_permit(struct check_run *r, enum check_error class,
                           int code, const char *dsn, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (r->warn_if_reject == 0) {
        defer_vset(&r->st->defer_if_permit, class, code, dsn, fmt, ap);
    } else {
        struct buf text = BUF_INIT;

        buf_vprintf(&text, fmt, ap);
        (void)check_reject(r, class, code, dsn, "%s", text.data);
        buf_free(&text);
    }
    va_end(ap);
}

enum check_status check_config_error(struct check_run *r)
{
    return check_reject(r, CHECK_ERR_SOFTWARE, 451, "4.3.5",
                        "Server configuration error");
}

/* ------------------------------------------------------------ engine */

enum check_status check_run_list(struct check_run *r,
                                 const struct check_list *l)
{
    enum check_status status = CHECK_DUNNO;
    int saved = r->recursion++;

    if (r->recursion > CHECK_RECURSION_MAX) {
        log_warn("restriction class %s causes unreasonable recursion", l->name);
        r->recursion = saved;
        return check_config_error(r);
    }
    for (size_t i = 0; i < l->n; i++) {
        const struct check_item *it = &l->v[i];

        /* DISCARD accepts the transaction: nothing else matters. */
        if (r->st->discard)
            break;
        if (it->def == &restriction_warn_if_reject) {
            if (r->warn_if_reject == 0)
                r->warn_if_reject = r->recursion;
            continue;
        }
        if (it->def != NULL) {
            status = it->def->fn(r, it);
        } else if (it->cls != NULL) {
            status = check_run_list(r, it->cls);
        } else {
            /* A bare table: the list's own access check. */
            const struct restriction_def *def =
                r->def_acl ? restriction_find(r->def_acl) : NULL;

            if (def == NULL) {
                log_warn("specify one of (check_client_access, "
                         "check_helo_access, check_sender_access, "
                         "check_recipient_access) before %s restriction "
                         "\"%s\"",
                         r->reply_class, it->table->spec);
                status = check_config_error(r);
            } else {
                status = def->fn(r, it);
            }
        }
        if (r->warn_if_reject >= r->recursion)
            r->warn_if_reject = 0;
        if (status != CHECK_DUNNO)
            break;
        if (r->st->defer_if_permit.active && r->st->defer_if_reject.active)
            break;
    }
    r->recursion = saved;
    return status;
}

/* ------------------------------------------------------------ recipients */

int check_addr_class(struct check_run *r, const struct mailaddr *a,
                     enum check_status *st)
{
    char err[256];
    int class;

    /* Address literals are never one of our domains (yet). */
    if (a->domain[0] == '[')
        return ADDR_CLASS_DEFAULT;
    class =
        resolve_class(check_cfg.smtpd->resolver, a->domain, err, sizeof(err));
    if (class < 0) {
        log_warn("domain lookup for %s failed: %s", a->domain, err);
        *st = check_reject(r, CHECK_ERR_RESOURCE, 451, "4.3.0",
                           "<%s>: Temporary lookup failure", a->text);
    }
    return class;
}

int check_rcpt_class(struct check_run *r, enum check_status *st)
{
    if (r->rcpt_class < 0)
        r->rcpt_class = check_addr_class(r, r->rcpt, st);
    return r->rcpt_class;
}

int check_destination_ok(struct check_run *r, enum check_status *st)
{
    int class = check_rcpt_class(r, st);

    if (class < 0)
        return -1;
    if (class == ADDR_CLASS_DEFAULT)
        return 0;
    /* "user@elsewhere"@relay.example or user%elsewhere@relay.example */
    if (class == ADDR_CLASS_RELAY && !check_cfg.allow_untrusted_routing &&
        strpbrk(r->rcpt->local, "@!%") != NULL)
        return 0;
    return 1;
}

/*
 * A recipient in $relay_domains: with relay_recipient_maps set, it must
 * be listed there (user@domain, or @domain for the whole domain), or be
 * a virtual alias (Postfix accepts those too); an empty list knows no
 * recipients and accepts them all (MAP_FOUND).
 */
static enum map_result relay_rcpt_known(const struct mailaddr *a, char *err,
                                        size_t errlen)
{
    struct buf out = BUF_INIT;
    enum map_result res;

    if (check_cfg.relay_rcpt_error != NULL) {
        snprintf(err, errlen, "relay_recipient_maps: %s",
                 check_cfg.relay_rcpt_error);
        return MAP_ERROR;
    }
    if (check_cfg.relay_rcpt_maps == NULL ||
        maplist_empty(check_cfg.relay_rcpt_maps))
        return MAP_FOUND;
    res = maplist_lookup_addr(check_cfg.relay_rcpt_maps, a->text,
                              check_cfg.delimiters, false, &out, err, errlen);
    if (res == MAP_NOTFOUND) {
        struct maplist *aliases =
            resolve_virtual_alias_maps(check_cfg.smtpd->resolver);

        if (aliases != NULL && !maplist_empty(aliases))
            res = maplist_lookup_addr(aliases, a->text, check_cfg.delimiters,
                                      false, &out, err, errlen);
    }
    buf_free(&out);
    return res;
}

/*
 * Is an address in one of our domains a known user?  Recipients
 * (reject_unlisted_recipient, smtpd_reject_unlisted_recipient) and
 * senders (reject_unlisted_sender, smtpd_reject_unlisted_sender), with
 * Postfix's per-class reply codes and table names.
 */
enum check_status check_unlisted(struct check_run *r, bool sender)
{
    const struct smtpd_config *cfg = check_cfg.smtpd;
    const struct mailaddr *a = sender ? r->sender : r->rcpt;
    enum check_status st = CHECK_DUNNO;
    char err[256], *local, *addr;
    enum map_result res;
    const char *table;
    int class, code;

    if (a == NULL || a->is_null)
        return CHECK_DUNNO;
    if (sender)
        r->unlisted_sender_done = true;
    else
        r->unlisted_done = true;
    class = sender ? check_addr_class(r, a, &st) : check_rcpt_class(r, &st);
    if (class < 0)
        return st;
    switch (class) {
    case ADDR_CLASS_LOCAL:
        table = "local recipient table";
        code = cfg->unknown_local_code;
        break;
    case ADDR_CLASS_VIRTUAL_ALIAS:
        table = "virtual alias table";
        code = cfg->unknown_virtual_alias_code;
        break;
    case ADDR_CLASS_VIRTUAL_MAILBOX:
        table = "virtual mailbox table";
        code = cfg->unknown_virtual_mailbox_code;
        break;
    case ADDR_CLASS_RELAY:
        if (sender)
            return CHECK_DUNNO; /* Postfix checks relay senders not at all */
        table = "relay recipient table";
        code = cfg->unknown_relay_recipient_code;
        break;
    default:
        return CHECK_DUNNO;
    }
    if (class == ADDR_CLASS_RELAY) {
        res = relay_rcpt_known(a, err, sizeof(err));
    } else {
        local = addr_local_unquote(a->local);
        addr = xasprintf("%s@%s", local, a->domain);
        res = resolve_recipient_known(cfg->resolver, addr, err, sizeof(err));
        free(local);
        free(addr);
    }
    if (res == MAP_FOUND)
        return CHECK_DUNNO;
    if (res == MAP_ERROR) {
        log_warn("address lookup for <%s> failed: %s", a->text, err);
        return check_reject(r, CHECK_ERR_RESOURCE, 451, "4.3.0",
                            "<%s>: Temporary lookup failure", a->text);
    }
    return check_reject(r, CHECK_ERR_POLICY, code, sender ? "5.1.0" : "5.1.1",
                        "<%s>: %s rejected: User unknown in %s", a->text,
                        sender ? CHECK_CLASS_SENDER : CHECK_CLASS_RECIPIENT,
                        table);
}

/* ------------------------------------------------------------ stages */

static void run_init(struct check_run *r, struct smtpd_session *s,
                     const char *where, struct buf *reply)
{
    memset(r, 0, sizeof(*r));
    r->s = s;
    r->st = s->check;
    r->where = where;
    r->reply = reply;
    r->rcpt_class = -1;
    r->sender = s->xact.active ? &s->xact.sender_addr : NULL;
    r->size = s->xact.params.size_given ? s->xact.params.size : 0;
}

/* Postfix's SMTPD_CHECK_RESET before each list. */
static void run_reset(struct check_run *r)
{
    r->recursion = 0;
    r->warn_if_reject = 0;
    r->st->defer_if_reject.active = false;
}

/* A permit that an earlier defer_if_permit turns into a 4xx. */
static enum check_status force_defer(struct check_run *r,
                                     enum check_status status)
{
    struct check_defer *d = &r->st->defer_if_permit;

    if (status != CHECK_REJECT && d->active)
        return check_reject(r, d->class, d->code, d->dsn, "%s", d->reason.data);
    return status;
}

static enum check_status stage_client(struct check_run *r)
{
    struct smtpd_check_state *st = r->st;
    enum check_status status;

    st->defer_if_permit.active = false;
    run_reset(r);
    r->reply_name = r->s->namaddr;
    r->reply_class = CHECK_CLASS_CLIENT;
    r->def_acl = "check_client_access";
    status = check_run_list(r, check_cfg.client);
    st->dip_client = st->defer_if_permit.active;
    return status;
}

static enum check_status stage_helo(struct check_run *r)
{
    struct smtpd_check_state *st = r->st;
    enum check_status status = CHECK_DUNNO;

    st->defer_if_permit.active = st->dip_client;
    if (r->s->helo != NULL) {
        run_reset(r);
        r->reply_name = r->s->helo;
        r->reply_class = CHECK_CLASS_HELO;
        r->def_acl = "check_helo_access";
        status = check_run_list(r, check_cfg.helo);
    }
    st->dip_helo = st->defer_if_permit.active;
    return status;
}

static enum check_status stage_sender(struct check_run *r)
{
    struct smtpd_check_state *st = r->st;
    enum check_status status = CHECK_DUNNO;

    st->defer_if_permit.active = st->dip_client || st->dip_helo;
    if (r->sender != NULL) {
        run_reset(r);
        r->reply_name = r->sender->text;
        r->reply_class = CHECK_CLASS_SENDER;
        r->def_acl = "check_sender_access";
        status = check_run_list(r, check_cfg.sender);
        if (status != CHECK_REJECT && check_cfg.smtpd->reject_unlisted_sender &&
            !r->unlisted_sender_done && !st->discard)
            status =
                check_unlisted(r, true) == CHECK_REJECT ? CHECK_REJECT : status;
    }
    st->dip_sender = st->defer_if_permit.active;
    return status;
}

/* Send a rejection the run produced; -1 for the command handlers. */
static int stage_failed(struct smtpd_session *s, struct buf *reply)
{
    smtpd_reply(s, "%s", reply->data);
    return -1;
}

int smtpd_check_helo(struct smtpd_session *s)
{
    struct check_run r;
    struct buf reply = BUF_INIT;
    int rc = 0;

    if (check_cfg.delay_reject || s->check == NULL)
        return 0;
    run_init(&r, s, s->esmtp ? "EHLO" : "HELO", &reply);
    r.sender = NULL;
    if (stage_helo(&r) == CHECK_REJECT)
        rc = stage_failed(s, &reply);
    buf_free(&reply);
    return rc;
}

/* "instance" of the policy protocol: unique per transaction. */
static void new_instance(struct smtpd_check_state *st)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(st->instance, sizeof(st->instance), "%lx.%llx.%lx.%x",
             (unsigned long)proc_pid(), (unsigned long long)ts.tv_sec,
             (unsigned long)(ts.tv_nsec / 1000), st->instance_seq++);
}

int smtpd_check_mail(struct smtpd_session *s)
{
    struct check_run r;
    struct buf reply = BUF_INIT;
    int rc = 0;

    if (s->check == NULL)
        return 0;
    new_instance(s->check);
    if (check_rate(s, CHECK_RATE_MESSAGE) < 0)
        return -1;
    if (check_cfg.delay_reject)
        return 0;
    run_init(&r, s, "MAIL", &reply);
    s->check->defer_if_permit.active = false;
    if (stage_sender(&r) == CHECK_REJECT)
        rc = stage_failed(s, &reply);
    buf_free(&reply);
    return rc;
}

int smtpd_check_rcpt(struct smtpd_session *s, const struct mailaddr *rcpt,
                     const char *where)
{
    struct smtpd_check_state *st = s->check;
    struct check_run r;
    struct buf reply = BUF_INIT;
    enum check_status status;
    int rc = 0;

    if (st == NULL)
        return 0;
    if (strcmp(where, "RCPT") == 0 && check_rate(s, CHECK_RATE_RECIPIENT) < 0)
        return -1;
    run_init(&r, s, where, &reply);
    r.rcpt = rcpt;
    r.recipient = rcpt->text;
    if (check_cfg.delay_reject &&
        (stage_client(&r) == CHECK_REJECT || stage_helo(&r) == CHECK_REJECT ||
         stage_sender(&r) == CHECK_REJECT)) {
        rc = stage_failed(s, &reply);
        goto done;
    }
    st->defer_if_permit.active =
        r.sender != NULL ? st->dip_sender : st->dip_client || st->dip_helo;
    r.reply_name = rcpt->text;
    r.reply_class = CHECK_CLASS_RECIPIENT;
    r.def_acl = "check_recipient_access";
    run_reset(&r);
    status = check_run_list(&r, check_cfg.relay);
    if (status != CHECK_REJECT) {
        run_reset(&r);
        status = check_run_list(&r, check_cfg.recipient);
    }
    status = force_defer(&r, status);
    if (status != CHECK_REJECT && check_cfg.smtpd->reject_unlisted_recipient &&
        !r.unlisted_done && !st->discard)
        status = check_unlisted(&r, false);
    if (status == CHECK_REJECT)
        rc = stage_failed(s, &reply);
done:
    buf_free(&reply);
    return rc;
}

/* DATA and end of data: no recipient, unless there is only one. */
static int stage_message(struct smtpd_session *s, const struct check_list *l,
                         const char *where, const char *class, long long size,
                         struct buf *reply)
{
    struct check_run r;
    enum check_status status;

    run_init(&r, s, where, reply);
    if (s->xact.nrcpt == 1)
        r.recipient = s->xact.rcpt[0].addr;
    if (size >= 0)
        r.size = size;
    s->check->defer_if_permit.active = false;
    run_reset(&r);
    r.reply_name = where;
    r.reply_class = class;
    r.def_acl = NULL;
    status = force_defer(&r, check_run_list(&r, l));
    return status == CHECK_REJECT ? -1 : 0;
}

int smtpd_check_data(struct smtpd_session *s, struct buf *reply)
{
    if (s->check == NULL)
        return 0;
    return stage_message(s, check_cfg.data, "DATA", CHECK_CLASS_DATA, -1,
                         reply);
}

int smtpd_check_eod(struct smtpd_session *s, long long size, struct buf *reply)
{
    if (s->check == NULL)
        return 0;
    return stage_message(s, check_cfg.eod, "END-OF-MESSAGE", CHECK_CLASS_EOD,
                         size, reply);
}

/* The client stage at connect time (smtpd_delay_reject = no). */
int check_connect_stage(struct smtpd_session *s, struct buf *reply)
{
    struct check_run r;

    run_init(&r, s, "CONNECT", reply);
    r.sender = NULL;
    return stage_client(&r) == CHECK_REJECT ? -1 : 0;
}
