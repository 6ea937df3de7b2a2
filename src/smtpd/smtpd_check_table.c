/*
 * smtpd_check_table - every restriction posthorn knows: one handler and
 * one row in restriction_table each, with Postfix's names and reply
 * texts.
 *
 * A handler sees the run (who the client is, what is being checked:
 * r->reply_name and r->reply_class) and its list element (table, domain,
 * service or number parsed at start-up).  A restriction about data that
 * is not there yet (a sender check before MAIL, a recipient check at
 * HELO) says DUNNO, as in Postfix, so any restriction may appear in any
 * list and takes effect once its data exists.  Client-supplied names
 * only reach the DNS after a syntax check.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "global/cidr.h"
#include "global/resolve.h"
#include "smtpd/smtpd_check_impl.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* ------------------------------------------------------------ generic */

static enum check_status check_permit(struct check_run *r,
                                      const struct check_item *it)
{
    return CHECK_OK;
}

static enum check_status check_reject_all(struct check_run *r,
                                          const struct check_item *it)
{
    return check_reject(r, CHECK_ERR_POLICY, check_cfg.reject_code, "5.7.1",
                        "<%s>: %s rejected: Access denied", r->reply_name,
                        r->reply_class);
}

static enum check_status check_defer_all(struct check_run *r,
                                         const struct check_item *it)
{
    return check_reject(r, CHECK_ERR_POLICY, check_cfg.defer_code, "4.3.2",
                        "<%s>: %s rejected: Try again later", r->reply_name,
                        r->reply_class);
}

static enum check_status check_defer_if_permit_rest(struct check_run *r,
                                                    const struct check_item *it)
{
    check_defer_if_permit(r, CHECK_ERR_POLICY, 450, "4.7.0",
                          "<%s>: %s rejected: defer_if_permit requested",
                          r->reply_name, r->reply_class);
    return CHECK_DUNNO;
}

static enum check_status check_defer_if_reject_rest(struct check_run *r,
                                                    const struct check_item *it)
{
    check_defer_if(r, &r->st->defer_if_reject, CHECK_ERR_POLICY, 450, "4.7.0",
                   "<%s>: %s rejected: defer_if_reject requested",
                   r->reply_name, r->reply_class);
    return CHECK_DUNNO;
}

/* Handled by the evaluation loop; never called. */
static enum check_status check_warn_if_reject(struct check_run *r,
                                              const struct check_item *it)
{
    return CHECK_DUNNO;
}

static enum check_status check_sleep(struct check_run *r,
                                     const struct check_item *it)
{
    /* Let the client hear what it is waiting for before the pause. */
    smtpd_flush(r->s);
    if (it->number > 0)
        sleep((unsigned)it->number);
    return CHECK_DUNNO;
}

static enum check_status check_unauth_pipelining(struct check_run *r,
                                                 const struct check_item *it)
{
    bool improper = r->st->pregreet;

    /*
     * Input waiting now is pipelining: fine with ESMTP PIPELINING,
     * except after DATA, where the client must wait for the 354.
     */
    if (!improper && check_input_pending(r->s))
        improper = !r->s->esmtp || strcmp(r->where, "DATA") == 0;
    if (!improper)
        return CHECK_DUNNO;
    return check_reject(
        r, CHECK_ERR_POLICY, 503, "5.5.0",
        "<%s>: %s rejected: Improper use of SMTP command pipelining",
        r->reply_name, r->reply_class);
}

static enum check_status check_policy_service(struct check_run *r,
                                              const struct check_item *it)
{
    return check_policy(r, it->policy);
}

static enum check_status check_permit_mynetworks(struct check_run *r,
                                                 const struct check_item *it)
{
    const struct smtpd_config *c = check_cfg.smtpd;

    if (c->mynetworks != NULL && cidr_list_match(c->mynetworks, r->s->addr))
        return CHECK_OK;
    return CHECK_DUNNO;
}

static enum check_status check_permit_sasl(struct check_run *r,
                                           const struct check_item *it)
{
    return r->s->sasl_username != NULL ? CHECK_OK : CHECK_DUNNO;
}

/* ------------------------------------------------------------ client */

static enum check_status check_unknown_client(struct check_run *r,
                                              const struct check_item *it)
{
    enum check_peer p = r->st->name_status;

    if (p == CHECK_PEER_OK)
        return CHECK_DUNNO;
    return check_reject(
        r, CHECK_ERR_POLICY,
        p == CHECK_PEER_PERM ? check_cfg.unknown_client_code : 450, "4.7.25",
        "Client host rejected: cannot find your hostname, [%s]", r->s->addr);
}

static enum check_status check_unknown_reverse(struct check_run *r,
                                               const struct check_item *it)
{
    enum check_peer p = r->st->reverse_status;

    if (p == CHECK_PEER_OK)
        return CHECK_DUNNO;
    return check_reject(
        r, CHECK_ERR_POLICY,
        p == CHECK_PEER_PERM ? check_cfg.unknown_client_code : 450, "4.7.1",
        "Client host rejected: cannot find your reverse hostname, [%s]",
        r->s->addr);
}

static enum check_status check_client_access(struct check_run *r,
                                             const struct check_item *it)
{
    const char *name = r->reply_name, *class = r->reply_class;
    enum check_status st;

    r->reply_name = r->s->namaddr;
    r->reply_class = CHECK_CLASS_CLIENT;
    st = access_client(r, it->table, r->st->name, r->s->addr);
    r->reply_name = name;
    r->reply_class = class;
    return st;
}

static enum check_status
check_reverse_client_access(struct check_run *r, const struct check_item *it)
{
    const char *name = r->reply_name, *class = r->reply_class;
    enum check_status st;

    r->reply_name = r->st->reverse_name;
    r->reply_class = "Unverified Client host";
    st = access_client(r, it->table, r->st->reverse_name, r->s->addr);
    r->reply_name = name;
    r->reply_class = class;
    return st;
}

/* The zone of "zone=127.0.0.2" (a copy). */
static char *list_zone(const struct check_item *it)
{
    const char *eq = strchr(it->arg, '=');

    return eq ? xstrndup(it->arg, (size_t)(eq - it->arg)) : xstrdup(it->arg);
}

/*
 * Ask a DNS list about `query`; *txt and the status as smtpd_dns_list.
 * With zone=d.d.d.d only that answer counts as listed.
 */
static enum dns_status list_lookup(struct check_run *r,
                                   const struct check_item *it,
                                   const char *query, const char **txt)
{
    const struct argv *addrs;
    enum dns_status ds = smtpd_dns_list(r->st, query, &addrs, txt);

    if (ds == DNS_OK && it->rbl_addr != NULL) {
        for (size_t i = 0; i < addrs->n; i++)
            if (strcmp(addrs->v[i], it->rbl_addr) == 0)
                return DNS_OK;
        return DNS_NOTFOUND;
    }
    return ds;
}

/* Postfix's default_rbl_reply. */
static enum check_status list_reject(struct check_run *r, const char *zone,
                                     const char *class, const char *what,
                                     const char *txt)
{
    return check_reject(r, CHECK_ERR_POLICY, check_cfg.rbl_code, "4.7.1",
                        "Service unavailable; %s [%s] blocked using %s%s%s",
                        class, what, zone, *txt ? "; " : "", txt);
}

/* Look `what` up under zone as `name.zone`; REJECT when listed. */
static enum check_status list_check(struct check_run *r,
                                    const struct check_item *it,
                                    const char *labels, const char *class,
                                    const char *what)
{
    char *zone = list_zone(it), *query = xasprintf("%s.%s", labels, zone);
    enum check_status st = CHECK_DUNNO;
    const char *txt = "";

    if (list_lookup(r, it, query, &txt) == DNS_OK)
        st = list_reject(r, zone, class, what, txt);
    free(query);
    free(zone);
    return st;
}

static enum check_status check_rbl_client(struct check_run *r,
                                          const struct check_item *it)
{
    char labels[80];
    int family;

    if (!dns_reverse_labels(r->s->addr, labels, sizeof(labels), &family))
        return CHECK_DUNNO;
    return list_check(r, it, labels, CHECK_CLASS_CLIENT, r->s->addr);
}

static enum check_status check_rhsbl_client(struct check_run *r,
                                            const struct check_item *it)
{
    if (r->st->name_status != CHECK_PEER_OK)
        return CHECK_DUNNO;
    return list_check(r, it, r->st->name, CHECK_CLASS_CLIENT, r->st->name);
}

static enum check_status check_dnswl_client(struct check_run *r,
                                            const struct check_item *it)
{
    char labels[80], *zone, *query;
    enum check_status st = CHECK_DUNNO;
    const char *txt;
    enum dns_status ds;
    int family;

    if (!dns_reverse_labels(r->s->addr, labels, sizeof(labels), &family))
        return CHECK_DUNNO;
    zone = list_zone(it);
    query = xasprintf("%s.%s", labels, zone);
    ds = list_lookup(r, it, query, &txt);
    if (ds == DNS_OK) {
        int ok = 1;

        /*
         * An allow list never opens the relay: in the relay and
         * recipient lists it permits only what reject_unauth_destination
         * would let through anyway (Postfix's smtpd_acl_permit).
         */
        if (r->rcpt != NULL &&
            strcmp(r->reply_class, CHECK_CLASS_RECIPIENT) == 0)
            ok = check_destination_ok(r, &st);
        if (ok > 0) {
            check_log(r, "pass", query);
            st = CHECK_OK;
        } else if (ok == 0) {
            st = CHECK_DUNNO;
        }
    } else if (ds == DNS_TEMPFAIL) {
        /* Not knowing must not turn into a rejection by a later rule. */
        check_defer_if(r, &r->st->defer_if_reject, CHECK_ERR_POLICY, 450,
                       "4.7.1", "<%s>: %s rejected: Service unavailable",
                       r->s->addr, CHECK_CLASS_CLIENT);
    }
    free(query);
    free(zone);
    return st;
}

/* ------------------------------------------------------------ helo */

/* Postfix's dup_if_truncate: one trailing dot is not part of the name. */
static char *name_trim_dot(const char *name)
{
    size_t n = strlen(name);

    if (n > 1 && name[n - 1] == '.' && name[n - 2] != '.')
        n--;
    return xstrndup(name, n);
}

/* A host name by Postfix's valid_hostname: LDH labels, not all digits. */
static bool hostname_valid(const char *name)
{
    return dns_name_ok(name) && name[strspn(name, "0123456789.")] != 0 &&
           name[strlen(name) - 1] != '.';
}

/* "[1.2.3.4]" or "[IPv6:...]" with a valid address inside. */
static bool hostaddr_literal_valid(const char *name)
{
    size_t n = strlen(name);
    unsigned char buf[16];
    char *inner;
    const char *a;
    bool ok;

    if (n < 3 || name[0] != '[' || name[n - 1] != ']')
        return false;
    inner = xstrndup(name + 1, n - 2);
    a = inner;
    if (str_has_prefix_ci(a, "IPv6:"))
        ok = inet_pton(AF_INET6, a + 5, buf) == 1;
    else
        ok = inet_pton(AF_INET, a, buf) == 1;
    free(inner);
    return ok;
}

static enum check_status reject_invalid_literal(struct check_run *r)
{
    if (hostaddr_literal_valid(r->s->helo))
        return CHECK_DUNNO;
    return check_reject(r, CHECK_ERR_POLICY, check_cfg.invalid_hostname_code,
                        "5.5.2", "<%s>: %s rejected: invalid ip address",
                        r->s->helo, CHECK_CLASS_HELO);
}

static enum check_status check_helo_access(struct check_run *r,
                                           const struct check_item *it)
{
    const char *name = r->reply_name, *class = r->reply_class;
    enum check_status st;
    bool found;

    if (r->s->helo == NULL)
        return CHECK_DUNNO;
    r->reply_name = r->s->helo;
    r->reply_class = CHECK_CLASS_HELO;
    st = access_domain(r, it->table, r->s->helo, &found);
    r->reply_name = name;
    r->reply_class = class;
    return st;
}

static enum check_status check_invalid_helo(struct check_run *r,
                                            const struct check_item *it)
{
    enum check_status st = CHECK_DUNNO;
    const char *h = r->s->helo;
    char *name;

    if (h == NULL)
        return CHECK_DUNNO;
    if (h[0] == '[')
        return reject_invalid_literal(r);
    name = name_trim_dot(h);
    /* Postfix also takes a bare address (backwards compatibility). */
    if (!hostname_valid(name) && !hostaddr_literal_valid(h)) {
        unsigned char buf[16];

        if (inet_pton(AF_INET, name, buf) != 1 &&
            inet_pton(AF_INET6, name, buf) != 1)
            st = check_reject(
                r, CHECK_ERR_POLICY, check_cfg.invalid_hostname_code, "5.5.2",
                "<%s>: %s rejected: Invalid name", h, CHECK_CLASS_HELO);
    }
    free(name);
    return st;
}

static enum check_status check_non_fqdn_helo(struct check_run *r,
                                             const struct check_item *it)
{
    enum check_status st = CHECK_DUNNO;
    const char *h = r->s->helo;
    char *name;

    if (h == NULL)
        return CHECK_DUNNO;
    if (h[0] == '[')
        return reject_invalid_literal(r);
    name = name_trim_dot(h);
    if (!hostname_valid(name) || strchr(name, '.') == NULL)
        st = check_reject(r, CHECK_ERR_POLICY, check_cfg.non_fqdn_code, "5.5.2",
                          "<%s>: %s rejected: need fully-qualified hostname", h,
                          CHECK_CLASS_HELO);
    free(name);
    return st;
}

static enum check_status check_unknown_helo(struct check_run *r,
                                            const struct check_item *it)
{
    enum check_status st = CHECK_DUNNO;
    const char *h = r->s->helo;
    enum dns_status ds;
    char *name;

    if (h == NULL)
        return CHECK_DUNNO;
    if (h[0] == '[')
        return reject_invalid_literal(r);
    name = name_trim_dot(h);
    /* A name the DNS cannot even be asked about does not exist. */
    ds = dns_name_ok(name) ? smtpd_dns_host(r->st, name) : DNS_NOTFOUND;
    if (ds == DNS_NOTFOUND)
        st = check_reject(r, CHECK_ERR_POLICY, check_cfg.unknown_hostname_code,
                          "4.7.1", "<%s>: %s rejected: Host not found", h,
                          CHECK_CLASS_HELO);
    else if (ds != DNS_OK)
        check_defer_if_permit(r, CHECK_ERR_POLICY, 450, "4.7.1",
                              "<%s>: %s rejected: Host not found", h,
                              CHECK_CLASS_HELO);
    free(name);
    return st;
}

static enum check_status check_rhsbl_helo(struct check_run *r,
                                          const struct check_item *it)
{
    char *name;
    enum check_status st;

    if (r->s->helo == NULL || r->s->helo[0] == '[')
        return CHECK_DUNNO;
    name = name_trim_dot(r->s->helo);
    st = dns_name_ok(name)
             ? list_check(r, it, name, CHECK_CLASS_HELO, r->s->helo)
             : CHECK_DUNNO;
    free(name);
    return st;
}

/* ------------------------------------------------------------ addresses */

static enum check_status with_class(
    struct check_run *r, const struct mailaddr *a, const char *class,
    enum check_status (*fn)(struct check_run *, const struct check_item *,
                            const struct mailaddr *),
    const struct check_item *it)
{
    const char *name = r->reply_name, *saved = r->reply_class;
    enum check_status st;

    r->reply_name = a->text;
    r->reply_class = class;
    st = fn(r, it, a);
    r->reply_name = name;
    r->reply_class = saved;
    return st;
}

static enum check_status mail_access(struct check_run *r,
                                     const struct check_item *it,
                                     const struct mailaddr *a)
{
    bool found;

    if (a->is_null)
        return access_key(r, it->table, check_cfg.null_key, &found);
    return access_mail(r, it->table, a);
}

static enum check_status non_fqdn(struct check_run *r,
                                  const struct check_item *it,
                                  const struct mailaddr *a)
{
    enum check_status st = CHECK_DUNNO;
    char *d;

    if (a->is_null || a->domain[0] == '[')
        return CHECK_DUNNO;
    d = name_trim_dot(a->domain);
    if (*d == 0 || !hostname_valid(d) || strchr(d, '.') == NULL)
        st = check_reject(r, CHECK_ERR_POLICY, check_cfg.non_fqdn_code, "4.5.2",
                          "<%s>: %s rejected: need fully-qualified address",
                          a->text, r->reply_class);
    free(d);
    return st;
}

static enum check_status unknown_domain(struct check_run *r,
                                        const struct check_item *it,
                                        const struct mailaddr *a)
{
    bool sender = strcmp(r->reply_class, CHECK_CLASS_SENDER) == 0;
    const char *dsn = sender ? "4.1.8" : "4.1.2";
    enum check_status st = CHECK_DUNNO;
    enum dns_status ds;
    int class;
    char *d;

    if (a->is_null || a->domain[0] == '[')
        return CHECK_DUNNO;
    /* Our own domains need no DNS (Postfix: RESOLVE_CLASS_FINAL). */
    class = check_addr_class(r, a, &st);
    if (class < 0)
        return st;
    if (class != ADDR_CLASS_DEFAULT && class != ADDR_CLASS_RELAY)
        return CHECK_DUNNO;
    d = name_trim_dot(a->domain);
    ds = dns_name_ok(d) ? smtpd_dns_mail_domain(r->st, d) : DNS_NOTFOUND;
    if (ds == DNS_NOTFOUND)
        st = check_reject(r, CHECK_ERR_POLICY, check_cfg.unknown_address_code,
                          dsn, "<%s>: %s rejected: Domain not found", a->text,
                          r->reply_class);
    else if (ds == DNS_NULLMX)
        st = check_reject(r, CHECK_ERR_POLICY, sender ? 550 : 556,
                          sender ? "5.7.27" : "5.1.10",
                          "<%s>: %s rejected: Domain %s does not accept mail "
                          "(nullMX)",
                          a->text, r->reply_class, d);
    else if (ds != DNS_OK)
        check_defer_if_permit(r, CHECK_ERR_POLICY, 450, dsn,
                              "<%s>: %s rejected: Domain not found", a->text,
                              r->reply_class);
    free(d);
    return st;
}

static enum check_status rhsbl_addr(struct check_run *r,
                                    const struct check_item *it,
                                    const struct mailaddr *a)
{
    if (a->is_null || a->domain[0] == '[' || !dns_name_ok(a->domain))
        return CHECK_DUNNO;
    return list_check(r, it, a->domain, r->reply_class, a->text);
}

static enum check_status unlisted_sender(struct check_run *r,
                                         const struct check_item *it,
                                         const struct mailaddr *a)
{
    return check_unlisted(r, true);
}

/*
 * smtpd_sender_login_maps: the owners of a sender address.  1 and the
 * owners in `out`, 0 when nobody owns it, -1 (REJECT in *st) on error.
 */
static int sender_owners(struct check_run *r, const struct mailaddr *a,
                         struct buf *out, enum check_status *st)
{
    char err[256] = "";
    enum map_result res;

    if (check_cfg.sender_login_maps == NULL) {
        log_warn("smtpd_sender_login_maps: %s", check_cfg.sender_login_error);
        *st = check_config_error(r);
        return -1;
    }
    res =
        maplist_lookup_addr(check_cfg.sender_login_maps, a->text,
                            check_cfg.delimiters, false, out, err, sizeof(err));
    if (res == MAP_ERROR) {
        log_warn("smtpd_sender_login_maps lookup of %s: %s", a->text, err);
        *st = check_reject(r, CHECK_ERR_RESOURCE, 451, "4.3.0",
                           "<%s>: Temporary lookup failure", a->text);
        return -1;
    }
    return res == MAP_FOUND;
}

static bool owner_listed(const char *owners, const char *user)
{
    struct argv l = ARGV_INIT;
    bool found = false;

    argv_split(&l, owners, ", \t\r\n");
    for (size_t i = 0; i < l.n && !found; i++)
        found = str_eq_ci(l.v[i], user);
    argv_free(&l);
    return found;
}

enum login_mismatch { LOGIN_AUTH = 1, LOGIN_UNAUTH = 2, LOGIN_KNOWN = 4 };

static enum check_status
login_mismatch(struct check_run *r, const struct mailaddr *a, unsigned which)
{
    const char *user = r->s->sasl_username;
    struct buf owners = BUF_INIT;
    enum check_status st = CHECK_DUNNO;
    int owned;

    if (a->is_null)
        return CHECK_DUNNO;
    if (user == NULL && !(which & LOGIN_UNAUTH))
        return CHECK_DUNNO;
    if ((owned = sender_owners(r, a, &owners, &st)) < 0)
        goto done;
    if (user != NULL) {
        bool mine = owned && owner_listed(owners.data, user);

        if (!mine && ((which & LOGIN_AUTH) || ((which & LOGIN_KNOWN) && owned)))
            st = check_reject(r, CHECK_ERR_POLICY, 553, "5.7.1",
                              "<%s>: Sender address rejected: not owned by "
                              "user %s",
                              a->text, user);
    } else if (owned) {
        st = check_reject(r, CHECK_ERR_POLICY, 553, "5.7.1",
                          "<%s>: Sender address rejected: not logged in",
                          a->text);
    }
done:
    buf_free(&owners);
    return st;
}

#define SENDER_CHECK(fname, fn)                                                \
    static enum check_status fname(struct check_run *r,                        \
                                   const struct check_item *it)                \
    {                                                                          \
        if (r->sender == NULL)                                                 \
            return CHECK_DUNNO;                                                \
        return with_class(r, r->sender, CHECK_CLASS_SENDER, fn, it);           \
    }

#define RCPT_CHECK(fname, fn)                                                  \
    static enum check_status fname(struct check_run *r,                        \
                                   const struct check_item *it)                \
    {                                                                          \
        if (r->rcpt == NULL)                                                   \
            return CHECK_DUNNO;                                                \
        return with_class(r, r->rcpt, CHECK_CLASS_RECIPIENT, fn, it);          \
    }

SENDER_CHECK(check_sender_access, mail_access)
SENDER_CHECK(check_non_fqdn_sender, non_fqdn)
SENDER_CHECK(check_unknown_sender_domain, unknown_domain)
SENDER_CHECK(check_rhsbl_sender, rhsbl_addr)
SENDER_CHECK(check_unlisted_sender, unlisted_sender)
RCPT_CHECK(check_recipient_access, mail_access)
RCPT_CHECK(check_non_fqdn_recipient, non_fqdn)
RCPT_CHECK(check_unknown_recipient_domain, unknown_domain)

#define LOGIN_CHECK(fname, which)                                              \
    static enum check_status fname(struct check_run *r,                        \
                                   const struct check_item *it)                \
    {                                                                          \
        if (r->sender == NULL)                                                 \
            return CHECK_DUNNO;                                                \
        return login_mismatch(r, r->sender, which);                            \
    }

LOGIN_CHECK(check_login_mismatch, LOGIN_AUTH | LOGIN_UNAUTH)
LOGIN_CHECK(check_auth_login_mismatch, LOGIN_AUTH)
LOGIN_CHECK(check_unauth_login_mismatch, LOGIN_UNAUTH)
LOGIN_CHECK(check_known_login_mismatch, LOGIN_KNOWN)

/* ------------------------------------------------------------ recipient */

static enum check_status unauth_destination(struct check_run *r, bool defer)
{
    enum check_status st = CHECK_DUNNO;
    int ok;
    int code = check_cfg.smtpd->relay_reject_code;

    if (r->rcpt == NULL)
        return CHECK_DUNNO;
    ok = check_destination_ok(r, &st);
    if (ok != 0)
        return ok < 0 ? st : CHECK_DUNNO;
    if (defer)
        code = 454;
    return check_reject(r, CHECK_ERR_POLICY, code, "5.7.1",
                        "<%s>: Relay access denied", r->rcpt->text);
}

static enum check_status check_reject_unauth(struct check_run *r,
                                             const struct check_item *it)
{
    return unauth_destination(r, false);
}

static enum check_status check_defer_unauth(struct check_run *r,
                                            const struct check_item *it)
{
    return unauth_destination(r, true);
}

static enum check_status check_unlisted_rcpt(struct check_run *r,
                                             const struct check_item *it)
{
    if (r->rcpt == NULL || r->unlisted_done)
        return CHECK_DUNNO;
    return check_unlisted(r, false);
}

/* ------------------------------------------------------------ the table */

const struct restriction_def restriction_warn_if_reject = {
    "warn_if_reject", check_warn_if_reject, ARG_NONE, false};

static const struct restriction_def restriction_table[] = {
    /* generic */
    {"permit", check_permit, ARG_NONE, false},
    {"reject", check_reject_all, ARG_NONE, true},
    {"defer", check_defer_all, ARG_NONE, true},
    {"defer_if_permit", check_defer_if_permit_rest, ARG_NONE, true},
    {"defer_if_reject", check_defer_if_reject_rest, ARG_NONE, false},
    {"sleep", check_sleep, ARG_NUMBER, false},
    {"reject_unauth_pipelining", check_unauth_pipelining, ARG_NONE, false},
    {"check_policy_service", check_policy_service, ARG_SERVICE, false},
    {"permit_mynetworks", check_permit_mynetworks, ARG_NONE, false},
    {"permit_sasl_authenticated", check_permit_sasl, ARG_NONE, false},
    /* client */
    {"reject_unknown_client_hostname", check_unknown_client, ARG_NONE, false},
    {"reject_unknown_client", check_unknown_client, ARG_NONE, false},
    {"reject_unknown_reverse_client_hostname", check_unknown_reverse, ARG_NONE,
     false},
    {"check_client_access", check_client_access, ARG_TABLE, false},
    {"check_reverse_client_hostname_access", check_reverse_client_access,
     ARG_TABLE, false},
    {"reject_rbl_client", check_rbl_client, ARG_DOMAIN, false},
    {"reject_rbl", check_rbl_client, ARG_DOMAIN, false},
    {"reject_rhsbl_client", check_rhsbl_client, ARG_DOMAIN, false},
    {"permit_dnswl_client", check_dnswl_client, ARG_DOMAIN, false},
    /* helo */
    {"check_helo_access", check_helo_access, ARG_TABLE, false},
    {"reject_invalid_helo_hostname", check_invalid_helo, ARG_NONE, false},
    {"reject_invalid_hostname", check_invalid_helo, ARG_NONE, false},
    {"reject_non_fqdn_helo_hostname", check_non_fqdn_helo, ARG_NONE, false},
    {"reject_non_fqdn_hostname", check_non_fqdn_helo, ARG_NONE, false},
    {"reject_unknown_helo_hostname", check_unknown_helo, ARG_NONE, false},
    {"reject_unknown_hostname", check_unknown_helo, ARG_NONE, false},
    {"reject_rhsbl_helo", check_rhsbl_helo, ARG_DOMAIN, false},
    /* sender */
    {"check_sender_access", check_sender_access, ARG_TABLE, false},
    {"reject_non_fqdn_sender", check_non_fqdn_sender, ARG_NONE, false},
    {"reject_unknown_sender_domain", check_unknown_sender_domain, ARG_NONE,
     false},
    {"reject_rhsbl_sender", check_rhsbl_sender, ARG_DOMAIN, false},
    {"reject_unlisted_sender", check_unlisted_sender, ARG_NONE, false},
    {"reject_sender_login_mismatch", check_login_mismatch, ARG_NONE, false},
    {"reject_authenticated_sender_login_mismatch", check_auth_login_mismatch,
     ARG_NONE, false},
    {"reject_unauthenticated_sender_login_mismatch",
     check_unauth_login_mismatch, ARG_NONE, false},
    {"reject_known_sender_login_mismatch", check_known_login_mismatch, ARG_NONE,
     false},
    /* recipient */
    {"check_recipient_access", check_recipient_access, ARG_TABLE, false},
    {"reject_unauth_destination", check_reject_unauth, ARG_NONE, true},
    {"defer_unauth_destination", check_defer_unauth, ARG_NONE, true},
    {"reject_non_fqdn_recipient", check_non_fqdn_recipient, ARG_NONE, false},
    {"reject_unknown_recipient_domain", check_unknown_recipient_domain,
     ARG_NONE, false},
    {"reject_unlisted_recipient", check_unlisted_rcpt, ARG_NONE, false},
    {"check_recipient_maps", check_unlisted_rcpt, ARG_NONE, false},
};

const struct restriction_def *restriction_find(const char *name)
{
    for (size_t i = 0;
         i < sizeof(restriction_table) / sizeof(restriction_table[0]); i++)
        if (str_eq_ci(name, restriction_table[i].name))
            return &restriction_table[i];
    return NULL;
}
