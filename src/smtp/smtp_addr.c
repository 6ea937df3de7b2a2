/*
 * smtp_addr - from a next hop to the list of server addresses to try, in
 * order (Postfix's smtp_addr.c):
 *
 *   domain       MX lookup, sorted by preference with ties shuffled; a
 *                domain without MX records is its own mail exchanger
 *                (A/AAAA); a null MX (RFC 7505) refuses mail for good
 *   [host]       the host's A/AAAA records
 *   [address]    that address
 *   unix:path    that socket (lmtp)
 *
 * The addresses of one host are shuffled, then ordered by
 * smtp_address_preference; inet_protocols limits the families looked up.
 * An MX host named like this host ($myhostname) is where the list ends:
 * mail must go to better MX hosts only, and if we are the best one the
 * mail loops (5.4.6).  Either way no fallback relay is tried after it
 * (*final), nor after a null MX.  Posthorn recognises itself by name
 * only (Postfix also compares addresses with its interfaces), so that
 * test set-ups with servers on the loopback addresses keep working.
 *
 * Everything from DNS is bounded (dns.c) and host names are checked
 * there; failures become a status for every recipient: 4.4.3 when DNS
 * failed temporarily, 5.4.4 when the name or its addresses do not exist.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "smtp/smtp.h"
#include "global/dns.h"
#include "util/mem.h"
#include "util/str.h"

/* Hard bound when smtp_mx_address_limit is 0 (no limit). */
#define SMTP_TARGETS_MAX 100

struct target_list {
    struct smtp_target *v;
    size_t n;
    size_t limit;
};

static unsigned smtp_rnd(void *ctx)
{
    (void)ctx;
    return (unsigned)random();
}

static void shuffle_addrs(struct dns_addr *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)random() % i;
        struct dns_addr t = a[i - 1];

        a[i - 1] = a[j];
        a[j] = t;
    }
}

static void list_add(struct target_list *l, const char *host,
                     const struct dns_addr *a, unsigned port)
{
    struct smtp_target *t;

    if (l->n >= l->limit)
        return;
    l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
    t = &l->v[l->n++];
    memset(t, 0, sizeof(*t));
    str_lcpy(t->host, host, sizeof(t->host));
    str_lcpy(t->addr, a->text, sizeof(t->addr));
    t->family = a->family;
    t->port = port;
}

/* Add one host's addresses in the preferred order. */
static void list_add_host(struct target_list *l, const char *host,
                          struct dns_addr *a, size_t n, unsigned port)
{
    int first;

    shuffle_addrs(a, n);
    switch (smtp_params.addr_pref) {
    case SMTP_PREF_IPV4:
        first = AF_INET;
        break;
    case SMTP_PREF_IPV6:
        first = AF_INET6;
        break;
    default:
        /* Shuffled already: keep that order. */
        for (size_t i = 0; i < n; i++)
            list_add(l, host, &a[i], port);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (a[i].family == first)
            list_add(l, host, &a[i], port);
    for (size_t i = 0; i < n; i++)
        if (a[i].family != first)
            list_add(l, host, &a[i], port);
}

/* "Host or domain name not found" with the DNS error, 4.4.3 or 5.4.4. */
static void dns_failure(struct smtp_error *e, enum dns_status st,
                        const char *err)
{
    if (st == DNS_TEMPFAIL)
        smtp_error_set(e, 4, "4.4.3", "Host or domain name not found. %s", err);
    else
        smtp_error_set(e, 5, "5.4.4", "Host or domain name not found. %s", err);
}

/* A/AAAA of one host into l.  Returns the lookup status. */
static enum dns_status lookup_host(struct target_list *l, const char *host,
                                   unsigned port, char *err, size_t errlen)
{
    struct dns_addr *a = NULL;
    enum dns_status st;
    size_t n = 0;

    st = dns_lookup_addr(smtp_dns, host, smtp_params.inet_family, &a, &n, err,
                         errlen);
    if (st == DNS_OK)
        list_add_host(l, host, a, n, port);
    free(a);
    return st;
}

static int targets_mx(const struct smtp_nexthop *nh, struct target_list *l,
                      struct smtp_error *e, bool *final)
{
    struct dns_mx *mx = NULL;
    size_t nmx = 0, use;
    enum dns_status st, worst = DNS_OK;
    char err[512], first_err[512] = "";

    st = dns_lookup_mx(smtp_dns, nh->name, &mx, &nmx, err, sizeof(err));
    switch (st) {
    case DNS_OK:
        break;
    case DNS_NODATA:
        /* RFC 5321 5.1: the domain is its own, implicit, MX. */
        st = lookup_host(l, nh->name, nh->port, err, sizeof(err));
        if (st != DNS_OK) {
            dns_failure(e, st, err);
            return -1;
        }
        return 0;
    case DNS_NULLMX:
        *final = true;
        smtp_error_set(e, 5, "5.1.10",
                       "Domain %s does not accept mail (nullMX)", nh->name);
        return -1;
    default:
        dns_failure(e, st, err);
        return -1;
    }
    dns_mx_sort(mx, nmx, smtp_rnd, NULL);
    use = nmx;
    for (size_t i = 0; i < nmx; i++) {
        if (!str_eq_ci(mx[i].host, smtp_params.myhostname))
            continue;
        /* An MX host must not pass the mail on to a fallback relay. */
        *final = true;
        if (mx[i].pref == mx[0].pref) {
            smtp_error_set(e, 5, "5.4.6", "mail for %s loops back to myself",
                           nh->name);
            dns_mx_free(mx, nmx);
            return -1;
        }
        /* Only MX hosts better than we are. */
        for (use = 0; use < nmx && mx[use].pref < mx[i].pref; use++)
            ;
        break;
    }
    for (size_t i = 0; i < use && l->n < l->limit; i++) {
        st = lookup_host(l, mx[i].host, nh->port, err, sizeof(err));
        if (st == DNS_OK)
            continue;
        /* Report the first failure, or the first temporary one. */
        if (worst == DNS_OK || (st == DNS_TEMPFAIL && worst != DNS_TEMPFAIL)) {
            worst = st;
            str_lcpy(first_err, err, sizeof(first_err));
        }
    }
    dns_mx_free(mx, nmx);
    if (l->n == 0) {
        dns_failure(e, worst == DNS_OK ? DNS_NODATA : worst, first_err);
        return -1;
    }
    return 0;
}

int smtp_targets(const struct smtp_nexthop *nh, struct smtp_target **v,
                 size_t *n, struct smtp_error *e, bool *final)
{
    struct target_list l = {NULL, 0, SMTP_TARGETS_MAX};
    struct dns_addr a;
    char err[512];
    enum dns_status st;
    int rc = 0;

    if (smtp_params.mx_address_limit > 0 &&
        (size_t)smtp_params.mx_address_limit < l.limit)
        l.limit = (size_t)smtp_params.mx_address_limit;
    *v = NULL;
    *n = 0;
    *final = false;
    switch (nh->kind) {
    case SMTP_NEXTHOP_MX:
        rc = targets_mx(nh, &l, e, final);
        break;
    case SMTP_NEXTHOP_HOST:
        st = lookup_host(&l, nh->name, nh->port, err, sizeof(err));
        if (st != DNS_OK) {
            dns_failure(e, st, err);
            rc = -1;
        }
        break;
    case SMTP_NEXTHOP_ADDR:
        memset(&a, 0, sizeof(a));
        a.family = nh->family;
        str_lcpy(a.text, nh->name, sizeof(a.text));
        list_add(&l, nh->name, &a, nh->port);
        l.v[0].host_is_addr = true;
        break;
    case SMTP_NEXTHOP_UNIX: {
        struct smtp_target *t;
        struct buf path = BUF_INIT;

        if (nh->name[0] == '/')
            buf_puts(&path, nh->name);
        else
            buf_printf(&path, "%s/%s", smtp_params.queue_dir, nh->name);
        if (path.len > SMTP_UNIX_PATH_MAX) {
            smtp_error_set(e, 4, "4.3.5", "socket path %s is too long",
                           path.data);
            buf_free(&path);
            rc = -1;
            break;
        }
        l.v = xcalloc(1, sizeof(*l.v));
        l.n = 1;
        t = &l.v[0];
        str_lcpy(t->host, smtp_params.myhostname, sizeof(t->host));
        str_lcpy(t->addr, path.data, sizeof(t->addr));
        t->family = AF_UNIX;
        buf_free(&path);
        break;
    }
    }
    if (rc < 0) {
        free(l.v);
        return -1;
    }
    *v = l.v;
    *n = l.n;
    return 0;
}
