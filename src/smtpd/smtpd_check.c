/*
 * smtpd_check - restriction lists and recipient checks.
 *
 * Given the parsed configuration (resolver, mynetworks, reject codes) and
 * a recipient that already passed the RFC 5321 syntax check.  Trusts the
 * resolver and the CIDR matcher for answers, never the client.  Lookup
 * errors become temporary failures (451 4.3.0), never an accept.
 *
 * Adding a restriction is one handler and one row in restriction_table.
 * Postfix restrictions that exist but are not implemented here are listed
 * in postfix_pending so a migrated main.cf fails loudly at start-up
 * instead of running without the rule its administrator relies on.
 */
#include "smtpd/smtpd_check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "global/cidr.h"
#include "global/resolve.h"
#include "smtpd/smtpd.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

enum check_status { CHECK_DUNNO, CHECK_PERMIT, CHECK_REJECT };

/* Facts about one recipient, computed at most once per check. */
struct check_ctx {
    const struct smtpd_config *cfg;
    const struct smtpd_check_client *client;
    const struct mailaddr *rcpt;
    int class;          /* enum addr_class, or -1 before lookup */
    bool unlisted_done; /* reject_unlisted_recipient already ran */
    int code;           /* reply code of a rejection */
};

typedef enum check_status (*check_fn)(struct check_ctx *c, struct buf *reply);

struct restriction_def {
    const char *name;
    check_fn fn;
    bool guards_relay; /* counts as the mandatory relay guard */
};

struct smtpd_restrictions {
    const struct restriction_def **v;
    size_t n;
};

static void reject(struct check_ctx *c, struct buf *reply, int code,
                   const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void reject(struct check_ctx *c, struct buf *reply, int code,
                   const char *dsn, const char *fmt, ...)
{
    va_list ap;

    c->code = code;
    buf_reset(reply);
    buf_printf(reply, "%d %s <%s>: ", code, dsn, c->rcpt->text);
    va_start(ap, fmt);
    buf_vprintf(reply, fmt, ap);
    va_end(ap);
}

/* The recipient's address class; -1 (and a 451 reply) on lookup error. */
static int rcpt_class(struct check_ctx *c, struct buf *reply)
{
    char err[256];

    if (c->class >= 0)
        return c->class;
    if (c->rcpt->domain[0] == '[') {
        /* Address literals are never one of our domains (yet). */
        c->class = ADDR_CLASS_DEFAULT;
        return c->class;
    }
    c->class =
        resolve_class(c->cfg->resolver, c->rcpt->domain, err, sizeof(err));
    if (c->class < 0) {
        log_warn("domain lookup for %s failed: %s", c->rcpt->domain, err);
        reject(c, reply, 451, "4.3.0", "Temporary lookup failure");
    }
    return c->class;
}

static enum check_status check_permit(struct check_ctx *c, struct buf *reply)
{
    return CHECK_PERMIT;
}

static enum check_status check_reject(struct check_ctx *c, struct buf *reply)
{
    reject(c, reply, 554, "5.7.1", "Recipient address rejected: Access denied");
    return CHECK_REJECT;
}

static enum check_status check_permit_mynetworks(struct check_ctx *c,
                                                 struct buf *reply)
{
    if (c->cfg->mynetworks &&
        cidr_list_match(c->cfg->mynetworks, c->client->addr))
        return CHECK_PERMIT;
    return CHECK_DUNNO;
}

static enum check_status check_permit_sasl(struct check_ctx *c,
                                           struct buf *reply)
{
    return c->client->sasl_authenticated ? CHECK_PERMIT : CHECK_DUNNO;
}

/*
 * Is the destination ours (local, virtual, relay_domains) and free of
 * sender-specified routing?  1 yes, 0 no, -1 lookup error.
 */
static int destination_ok(struct check_ctx *c, struct buf *reply)
{
    int class = rcpt_class(c, reply);

    if (class < 0)
        return -1;
    if (class == ADDR_CLASS_DEFAULT)
        return 0;
    /* "user@elsewhere"@relay.example or user%elsewhere@relay.example */
    if (class == ADDR_CLASS_RELAY && strpbrk(c->rcpt->local, "@!%") != NULL)
        return 0;
    return 1;
}

static enum check_status unauth_destination(struct check_ctx *c,
                                            struct buf *reply, bool defer)
{
    int ok = destination_ok(c, reply);

    if (ok < 0)
        return CHECK_REJECT;
    if (ok)
        return CHECK_DUNNO;
    if (defer)
        reject(c, reply, 454, "4.7.1", "Relay access denied");
    else
        reject(c, reply, c->cfg->relay_reject_code,
               c->cfg->relay_reject_code / 100 == 4 ? "4.7.1" : "5.7.1",
               "Relay access denied");
    return CHECK_REJECT;
}

static enum check_status check_reject_unauth(struct check_ctx *c,
                                             struct buf *reply)
{
    return unauth_destination(c, reply, false);
}

static enum check_status check_defer_unauth(struct check_ctx *c,
                                            struct buf *reply)
{
    return unauth_destination(c, reply, true);
}

/*
 * Is an address in one of our domains a known user?  Used for recipients
 * (reject_unlisted_recipient) and senders (smtpd_reject_unlisted_sender),
 * with Postfix's per-class reply codes and table names.
 */
static enum check_status unlisted(struct check_ctx *c, struct buf *reply,
                                  bool sender)
{
    const struct smtpd_config *cfg = c->cfg;
    char err[256], *local, *addr;
    enum map_result r;
    const char *table;
    int class, code;

    class = rcpt_class(c, reply);
    if (class < 0)
        return CHECK_REJECT;
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
    default:
        return CHECK_DUNNO; /* relay_recipient_maps: not yet */
    }
    local = addr_local_unquote(c->rcpt->local);
    addr = xasprintf("%s@%s", local, c->rcpt->domain);
    r = resolve_recipient_known(cfg->resolver, addr, err, sizeof(err));
    free(local);
    free(addr);
    if (r == MAP_FOUND)
        return CHECK_DUNNO;
    if (r == MAP_ERROR) {
        log_warn("address lookup for <%s> failed: %s", c->rcpt->text, err);
        reject(c, reply, 451, "4.3.0", "Temporary lookup failure");
        return CHECK_REJECT;
    }
    if (sender)
        reject(c, reply, code, code / 100 == 4 ? "4.1.0" : "5.1.0",
               "Sender address rejected: User unknown in %s", table);
    else
        reject(c, reply, code, code / 100 == 4 ? "4.1.1" : "5.1.1",
               "Recipient address rejected: User unknown in %s", table);
    return CHECK_REJECT;
}

static enum check_status check_unlisted(struct check_ctx *c, struct buf *reply)
{
    c->unlisted_done = true;
    return unlisted(c, reply, false);
}

static const struct restriction_def restriction_table[] = {
    {"permit", check_permit, false},
    {"reject", check_reject, true},
    {"permit_mynetworks", check_permit_mynetworks, false},
    {"permit_sasl_authenticated", check_permit_sasl, false},
    {"reject_unauth_destination", check_reject_unauth, true},
    {"defer_unauth_destination", check_defer_unauth, true},
    {"reject_unlisted_recipient", check_unlisted, false},
    {"check_recipient_maps", check_unlisted, false}, /* Postfix's old name */
};

/* Postfix restrictions that posthorn does not implement yet. */
static const char *const postfix_pending[] = {
    "defer",
    "defer_if_permit",
    "defer_if_reject",
    "warn_if_reject",
    "sleep",
    "check_client_access",
    "check_reverse_client_hostname_access",
    "check_helo_access",
    "check_sender_access",
    "check_recipient_access",
    "check_ccert_access",
    "check_sasl_access",
    "check_policy_service",
    "check_client_mx_access",
    "check_client_ns_access",
    "check_client_a_access",
    "check_reverse_client_hostname_mx_access",
    "check_reverse_client_hostname_ns_access",
    "check_reverse_client_hostname_a_access",
    "check_helo_mx_access",
    "check_helo_ns_access",
    "check_helo_a_access",
    "check_sender_mx_access",
    "check_sender_ns_access",
    "check_sender_a_access",
    "check_recipient_mx_access",
    "check_recipient_ns_access",
    "check_recipient_a_access",
    "check_address_map",
    "check_relay_domains",
    "permit_tls_clientcerts",
    "permit_tls_all_clientcerts",
    "permit_auth_destination",
    "permit_mx_backup",
    "permit_inet_interfaces",
    "permit_naked_ip_address",
    "permit_dnswl_client",
    "permit_rhswl_client",
    "reject_unknown_client_hostname",
    "reject_unknown_client",
    "reject_unknown_reverse_client_hostname",
    "reject_rbl_client",
    "reject_rhsbl_client",
    "reject_rhsbl_reverse_client",
    "reject_rhsbl_helo",
    "reject_rhsbl_sender",
    "reject_rhsbl_recipient",
    "reject_maps_rbl",
    "reject_rbl",
    "reject_unauth_pipelining",
    "reject_plaintext_session",
    "reject_invalid_helo_hostname",
    "reject_invalid_hostname",
    "reject_non_fqdn_helo_hostname",
    "reject_non_fqdn_hostname",
    "reject_unknown_helo_hostname",
    "reject_unknown_hostname",
    "reject_non_fqdn_sender",
    "reject_non_fqdn_recipient",
    "reject_unknown_sender_domain",
    "reject_unknown_recipient_domain",
    "reject_unknown_address",
    "reject_unlisted_sender",
    "reject_unverified_sender",
    "reject_unverified_recipient",
    "reject_sender_login_mismatch",
    "reject_authenticated_sender_login_mismatch",
    "reject_known_sender_login_mismatch",
    "reject_unauthenticated_sender_login_mismatch",
    "reject_multi_recipient_bounce",
    "reject_auth_destination",
};

static const struct restriction_def *restriction_find(const char *name)
{
    for (size_t i = 0;
         i < sizeof(restriction_table) / sizeof(restriction_table[0]); i++)
        if (str_eq_ci(name, restriction_table[i].name))
            return &restriction_table[i];
    return NULL;
}

static bool restriction_pending(const char *name)
{
    for (size_t i = 0; i < sizeof(postfix_pending) / sizeof(postfix_pending[0]);
         i++)
        if (str_eq_ci(name, postfix_pending[i]))
            return true;
    return false;
}

struct smtpd_restrictions *smtpd_restrictions_parse(const char *param,
                                                    const struct argv *list,
                                                    char *err, size_t errlen)
{
    struct smtpd_restrictions *r = xcalloc(1, sizeof(*r));

    r->v = xcalloc(list->n + 1, sizeof(*r->v));
    for (size_t i = 0; i < list->n; i++) {
        const char *name = list->v[i];
        const struct restriction_def *def = restriction_find(name);

        if (def != NULL) {
            r->v[r->n++] = def;
            continue;
        }
        if (restriction_pending(name))
            snprintf(err, errlen,
                     "%s: restriction '%s' is not implemented yet; "
                     "remove it to start",
                     param, name);
        else if (strchr(name, ':') != NULL)
            snprintf(err, errlen,
                     "%s: access table '%s' as a restriction is not "
                     "implemented yet; remove it to start",
                     param, name);
        else
            snprintf(err, errlen, "%s: unknown restriction '%s'", param, name);
        smtpd_restrictions_free(r);
        return NULL;
    }
    return r;
}

void smtpd_restrictions_free(struct smtpd_restrictions *r)
{
    if (r == NULL)
        return;
    free(r->v);
    free(r);
}

bool smtpd_restrictions_guard_relay(const struct smtpd_restrictions *r)
{
    for (size_t i = 0; r && i < r->n; i++)
        if (r->v[i]->guards_relay)
            return true;
    return false;
}

/* Run one list: CHECK_PERMIT (explicit or end of list) or CHECK_REJECT. */
static enum check_status run_list(const struct smtpd_restrictions *r,
                                  struct check_ctx *c, struct buf *reply)
{
    for (size_t i = 0; r && i < r->n; i++) {
        enum check_status st = r->v[i]->fn(c, reply);

        if (st != CHECK_DUNNO)
            return st;
    }
    return CHECK_PERMIT;
}

int smtpd_check_rcpt(const struct smtpd_config *cfg,
                     const struct smtpd_check_client *client,
                     const struct mailaddr *rcpt, struct buf *reply)
{
    struct check_ctx c = {cfg, client, rcpt, -1, false, 0};

    buf_reset(reply);
    if (run_list(cfg->relay_restrictions, &c, reply) == CHECK_REJECT ||
        run_list(cfg->recipient_restrictions, &c, reply) == CHECK_REJECT)
        return c.code;
    if (cfg->reject_unlisted_recipient && !c.unlisted_done &&
        check_unlisted(&c, reply) == CHECK_REJECT)
        return c.code;
    return 0;
}

int smtpd_check_sender(const struct smtpd_config *cfg,
                       const struct smtpd_check_client *client,
                       const struct mailaddr *sender, struct buf *reply)
{
    struct check_ctx c = {cfg, client, sender, -1, false, 0};

    buf_reset(reply);
    if (!cfg->reject_unlisted_sender || sender->is_null)
        return 0;
    return unlisted(&c, reply, true) == CHECK_REJECT ? c.code : 0;
}
