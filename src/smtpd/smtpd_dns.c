/*
 * smtpd_dns - the DNS questions of the restriction lists: the client's
 * name (/etc/hosts, then PTR; then a forward lookup, again /etc/hosts
 * first, that must lead back to the client address), DNS block and allow lists, and whether a HELO name or a mail
 * domain exists.
 *
 * Names come from the client or from its DNS: they are syntax-checked
 * (dns_name_ok) before any query, and answers are bounded by global/dns.
 * Every lookup is bounded in time (smtpd_dns_timeout per query); a
 * lookup that fails or runs out is DNS_TEMPFAIL, which the callers turn
 * into a temporary rejection or a "not listed", never into an accept.
 * Answers are kept for the session (delayed checks run at each RCPT):
 * at most SMTPD_DNS_CACHE_MAX of them.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd/smtpd_check_impl.h"
#include "util/htable.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

#define SMTPD_DNS_CACHE_MAX 200
/* Postfix's RBL_TXT_LIMIT: TXT text in a reply. */
#define SMTPD_DNS_TXT_LIMIT 500

struct smtpd_dns_answer {
    enum dns_status status;
    struct argv addrs; /* block lists: the A records */
    char *txt;         /* block lists: TXT text or "" */
};

static void answer_free(void *p)
{
    struct smtpd_dns_answer *a = p;

    argv_free(&a->addrs);
    free(a->txt);
    free(a);
}

void smtpd_dns_cache_free(struct smtpd_check_state *st)
{
    if (st->dns_cache != NULL)
        htable_free(st->dns_cache, answer_free);
    st->dns_cache = NULL;
}

static struct smtpd_dns_answer *cache_get(struct smtpd_check_state *st,
                                          const char *key)
{
    return st->dns_cache ? htable_get(st->dns_cache, key) : NULL;
}

static void cache_put(struct smtpd_check_state *st, const char *key,
                      struct smtpd_dns_answer *a)
{
    if (st->dns_cache == NULL)
        st->dns_cache = htable_new(16);
    if (htable_count(st->dns_cache) >= SMTPD_DNS_CACHE_MAX) {
        /* A client that makes us ask this much gets fresh answers. */
        htable_free(st->dns_cache, answer_free);
        st->dns_cache = htable_new(16);
    }
    htable_put(st->dns_cache, key, a);
}

/* Does one of the addresses equal the client's (as numbers)? */
static bool addr_matches(const struct dns_addr *v, size_t n, const char *addr)
{
    unsigned char want[16];
    struct in_addr a4;

    if (inet_pton(AF_INET, addr, &a4) == 1) {
        for (size_t i = 0; i < n; i++)
            if (v[i].family == AF_INET &&
                memcmp(&v[i].a.v4, &a4, sizeof(a4)) == 0)
                return true;
        return false;
    }
    if (inet_pton(AF_INET6, addr, want) != 1)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (v[i].family == AF_INET6 &&
            memcmp(&v[i].a.v6, want, sizeof(want)) == 0)
            return true;
        /* An IPv4-mapped client address matches the A record. */
        if (v[i].family == AF_INET &&
            IN6_IS_ADDR_V4MAPPED((struct in6_addr *)want) &&
            memcmp(&v[i].a.v4, want + 12, 4) == 0)
            return true;
    }
    return false;
}

static enum check_peer peer_code(enum dns_status ds)
{
    return ds == DNS_OK         ? CHECK_PEER_OK
           : ds == DNS_TEMPFAIL ? CHECK_PEER_TEMP
                                : CHECK_PEER_PERM;
}

void smtpd_dns_client_names(struct smtpd_check_state *st, const char *addr)
{
    struct dns_addr *addrs = NULL;
    enum dns_status ds;
    char err[512], *ptr = NULL;
    size_t n = 0;
    int family = AF_UNSPEC;
    char labels[80];

    str_lcpy(st->name, "unknown", sizeof(st->name));
    str_lcpy(st->reverse_name, "unknown", sizeof(st->reverse_name));
    st->name_status = st->reverse_status = CHECK_PEER_PERM;
    if (!dns_reverse_labels(addr, labels, sizeof(labels), &family))
        return;
    /* The hosts file first, as the system's resolver asks it. */
    ds = check_cfg.peername_hosts ? dns_hosts_name(addr, &ptr) : DNS_NOTFOUND;
    if (ds != DNS_OK)
        ds = dns_lookup_ptr(check_cfg.dns, addr, &ptr, err, sizeof(err));
    st->reverse_status = st->name_status = peer_code(ds);
    if (ds != DNS_OK) {
        if (ds == DNS_TEMPFAIL)
            log_warn("%s: address not listed for hostname lookup: %s", addr,
                     err);
        return;
    }
    str_lcpy(st->reverse_name, ptr, sizeof(st->reverse_name));
    /* The name counts only if it leads back to the address. */
    if (check_cfg.peername_hosts &&
        dns_hosts_has_addr(ptr, family, addr)) {
        str_lcpy(st->name, ptr, sizeof(st->name));
        free(ptr);
        return;
    }
    ds = dns_lookup_addr(check_cfg.dns, ptr, family, &addrs, &n, err,
                         sizeof(err));
    if (ds != DNS_OK) {
        st->name_status = peer_code(ds);
        log_warn("hostname %s does not resolve to address %s: %s", ptr, addr,
                 err);
    } else if (!addr_matches(addrs, n, addr)) {
        st->name_status = CHECK_PEER_PERM;
        log_warn("hostname %s does not resolve to address %s", ptr, addr);
    } else {
        str_lcpy(st->name, ptr, sizeof(st->name));
    }
    free(addrs);
    free(ptr);
}

enum dns_status smtpd_dns_list(struct smtpd_check_state *st, const char *query,
                               const struct argv **addrs, const char **txt)
{
    struct smtpd_dns_answer *a;
    struct dns_addr *v = NULL;
    char key[DNS_NAME_MAX + 16], err[512];
    size_t n = 0;

    snprintf(key, sizeof(key), "list:%s", query);
    if ((a = cache_get(st, key)) == NULL) {
        a = xcalloc(1, sizeof(*a));
        a->txt = xstrdup("");
        a->status = dns_name_ok(query)
                        ? dns_lookup_addr(check_cfg.dns, query, AF_INET, &v, &n,
                                          err, sizeof(err))
                        : DNS_NOTFOUND;
        if (a->status == DNS_NODATA || a->status == DNS_INVALID)
            a->status = DNS_NOTFOUND;
        if (a->status == DNS_TEMPFAIL)
            log_warn("%s: RBL lookup error: %s", query, err);
        for (size_t i = 0; i < n; i++)
            argv_add(&a->addrs, v[i].text);
        free(v);
        if (a->status == DNS_OK) {
            struct argv txt_rr = ARGV_INIT;
            struct buf all = BUF_INIT;

            if (dns_lookup_txt(check_cfg.dns, query, &txt_rr, err,
                               sizeof(err)) == DNS_OK) {
                for (size_t i = 0; i < txt_rr.n; i++) {
                    if (i > 0)
                        buf_puts(&all, " / ");
                    buf_puts(&all, txt_rr.v[i]);
                }
                buf_truncate(&all, SMTPD_DNS_TXT_LIMIT);
                free(a->txt);
                a->txt = xstrdup(buf_cstr(&all));
            }
            argv_free(&txt_rr);
            buf_free(&all);
        }
        cache_put(st, key, a);
    }
    *addrs = &a->addrs;
    *txt = a->txt;
    return a->status;
}

/* A cached plain status for key; -1 when not cached. */
static int cached_status(struct smtpd_check_state *st, const char *key)
{
    struct smtpd_dns_answer *a = cache_get(st, key);

    return a ? (int)a->status : -1;
}

static enum dns_status remember(struct smtpd_check_state *st, const char *key,
                                enum dns_status ds)
{
    struct smtpd_dns_answer *a = xcalloc(1, sizeof(*a));

    a->status = ds;
    cache_put(st, key, a);
    return ds;
}

/* A/AAAA lookup: OK, NOTFOUND (incl. no data), TEMPFAIL. */
static enum dns_status any_address(const char *name)
{
    struct dns_addr *v = NULL;
    enum dns_status ds;
    char err[512];
    size_t n = 0;

    ds = dns_lookup_addr(check_cfg.dns, name, AF_UNSPEC, &v, &n, err,
                         sizeof(err));
    free(v);
    if (ds == DNS_TEMPFAIL)
        log_warn("%s", err);
    return ds == DNS_OK         ? DNS_OK
           : ds == DNS_TEMPFAIL ? DNS_TEMPFAIL
                                : DNS_NOTFOUND;
}

enum dns_status smtpd_dns_host(struct smtpd_check_state *st, const char *name)
{
    char key[DNS_NAME_MAX + 16], err[512];
    struct dns_mx *mx = NULL;
    enum dns_status ds;
    size_t n = 0;
    int c;

    snprintf(key, sizeof(key), "host:%s", name);
    if ((c = cached_status(st, key)) >= 0)
        return (enum dns_status)c;
    /* Postfix: an A, AAAA or MX record. */
    ds = any_address(name);
    if (ds == DNS_NOTFOUND) {
        ds = dns_lookup_mx(check_cfg.dns, name, &mx, &n, err, sizeof(err));
        dns_mx_free(mx, n);
        if (ds == DNS_TEMPFAIL)
            log_warn("%s", err);
        ds = ds == DNS_OK || ds == DNS_NULLMX ? DNS_OK
             : ds == DNS_TEMPFAIL             ? DNS_TEMPFAIL
                                              : DNS_NOTFOUND;
    }
    return remember(st, key, ds);
}

enum dns_status smtpd_dns_mail_domain(struct smtpd_check_state *st,
                                      const char *domain)
{
    char key[DNS_NAME_MAX + 16], err[512];
    struct dns_mx *mx = NULL;
    enum dns_status ds;
    size_t n = 0;
    int c;

    snprintf(key, sizeof(key), "domain:%s", domain);
    if ((c = cached_status(st, key)) >= 0)
        return (enum dns_status)c;
    /* MX first; a domain without MX may still take mail at its A/AAAA. */
    ds = dns_lookup_mx(check_cfg.dns, domain, &mx, &n, err, sizeof(err));
    dns_mx_free(mx, n);
    if (ds == DNS_TEMPFAIL)
        log_warn("%s", err);
    if (ds == DNS_NODATA)
        ds = any_address(domain);
    else if (ds == DNS_INVALID)
        ds = DNS_NOTFOUND;
    return remember(st, key, ds);
}
