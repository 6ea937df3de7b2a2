/*
 * dns - MX and address lookups through c-ares.  See dns.h.
 *
 * Given names from the queue and the configuration; checks their syntax
 * before any query.  Trusts c-ares to parse the wire format (no DNS
 * packet code here) and bounds what it hands back: at most DNS_MX_MAX MX
 * and DNS_ADDR_MAX address records per answer, and MX host names must be
 * valid host names or they are dropped.  Every lookup is bounded in time:
 * c-ares retransmits per its timeout and tries, and a hard deadline above
 * that cancels whatever is still outstanding.
 */
#include "global/dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <ares.h>

#include "util/buf.h"
#include "util/mem.h"
#include "util/str.h"

#define DNS_CLASS_IN 1
#define DNS_TYPE_A 1
#define DNS_TYPE_PTR 12
#define DNS_TYPE_MX 15
#define DNS_TYPE_TXT 16
#define DNS_TYPE_AAAA 28

struct dns_resolver {
    ares_channel channel;
    long long lookup_max_ms; /* hard deadline for one lookup */
};

/* One outstanding query and, when done, its answer. */
struct dns_query {
    bool done;
    int status; /* ARES_* */
    unsigned char *abuf;
    int alen;
};

const char *dns_status_text(enum dns_status st)
{
    switch (st) {
    case DNS_OK:
        return "Success";
    case DNS_NOTFOUND:
        return "Host not found";
    case DNS_NODATA:
        return "Host found but no data record of requested type";
    case DNS_NULLMX:
        return "Domain does not accept mail (nullMX)";
    case DNS_TEMPFAIL:
        return "Host not found, try again";
    case DNS_INVALID:
        return "Malformed domain name";
    }
    return "Unknown error";
}

bool dns_name_ok(const char *name)
{
    size_t len = strlen(name), label = 0;

    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len > DNS_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];

        if (c == '.') {
            if (label == 0 || name[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
        if (c == '-' && label == 0)
            return false;
        if (++label > 63)
            return false;
    }
    return name[len - 1] != '-';
}

bool dns_server_format(const char *entry, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN + 8];
    const char *port = NULL;
    struct in6_addr a6;
    struct in_addr a4;
    long long p;

    if (entry[0] == '[') {
        const char *end = strchr(entry, ']');

        if (end == NULL || (size_t)(end - entry - 1) >= sizeof(host))
            return false;
        memcpy(host, entry + 1, (size_t)(end - entry - 1));
        host[end - entry - 1] = 0;
        if (end[1] == ':')
            port = end + 2;
        else if (end[1] != 0)
            return false;
    } else {
        const char *colon = strchr(entry, ':');

        /* Two colons or more: a bare IPv6 address without a port. */
        if (colon && strchr(colon + 1, ':') == NULL) {
            if ((size_t)(colon - entry) >= sizeof(host))
                return false;
            memcpy(host, entry, (size_t)(colon - entry));
            host[colon - entry] = 0;
            port = colon + 1;
        } else if (str_lcpy(host, entry, sizeof(host)) >= sizeof(host)) {
            return false;
        }
    }
    if (port != NULL && (!str_to_llong(port, &p) || p < 1 || p > 65535))
        return false;
    if (port == NULL)
        p = 53;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return snprintf(out, outlen, "%s:%lld", host, p) < (int)outlen;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return snprintf(out, outlen, "[%s]:%lld", host, p) < (int)outlen;
    return false;
}

static bool dns_library_ready(char *err, size_t errlen)
{
    static bool ready;
    int rc;

    if (ready)
        return true;
    if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares initialisation: %s", ares_strerror(rc));
        return false;
    }
    ready = true;
    return true;
}

struct dns_resolver *dns_open(const struct argv *servers, int timeout_ms,
                              int tries, char *err, size_t errlen)
{
    struct ares_options opts;
    struct ares_addr_port_node *list = NULL;
    struct dns_resolver *r;
    struct buf csv = BUF_INIT;
    size_t nservers = 0;
    int rc;

    if (!dns_library_ready(err, errlen))
        return NULL;
    if (timeout_ms < 1)
        timeout_ms = 1;
    if (tries < 1)
        tries = 1;
    for (size_t i = 0; servers != NULL && i < servers->n; i++) {
        char one[INET6_ADDRSTRLEN + 16];

        if (!dns_server_format(servers->v[i], one, sizeof(one))) {
            snprintf(err, errlen,
                     "dns_server_addresses: bad entry '%s' "
                     "(want ip, ip:port or [ipv6]:port)",
                     servers->v[i]);
            buf_free(&csv);
            return NULL;
        }
        if (csv.len)
            buf_putc(&csv, ',');
        buf_puts(&csv, one);
    }
    memset(&opts, 0, sizeof(opts));
    opts.timeout = timeout_ms;
    opts.tries = tries;
    opts.flags = ARES_FLAG_NOSEARCH;
    r = xcalloc(1, sizeof(*r));
    rc =
        ares_init_options(&r->channel, &opts,
                          ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
        free(r);
        buf_free(&csv);
        return NULL;
    }
    if (csv.len > 0 && (rc = ares_set_servers_ports_csv(
                            r->channel, csv.data)) != ARES_SUCCESS) {
        snprintf(err, errlen, "dns_server_addresses: %s", ares_strerror(rc));
        ares_destroy(r->channel);
        free(r);
        buf_free(&csv);
        return NULL;
    }
    buf_free(&csv);
    if (ares_get_servers_ports(r->channel, &list) == ARES_SUCCESS) {
        for (struct ares_addr_port_node *p = list; p; p = p->next)
            nservers++;
        ares_free_data(list);
    }
    if (nservers == 0)
        nservers = 1;
    /* c-ares' own schedule, plus a second of slack, then we cancel. */
    r->lookup_max_ms =
        (long long)timeout_ms * tries * (long long)nservers + 1000;
    return r;
}

void dns_close(struct dns_resolver *r)
{
    if (r == NULL)
        return;
    ares_destroy(r->channel);
    free(r);
}

static long long dns_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void dns_callback(void *arg, int status, int timeouts,
                         unsigned char *abuf, int alen)
{
    struct dns_query *q = arg;

    (void)timeouts;
    q->done = true;
    q->status = status;
    if (status == ARES_SUCCESS && abuf != NULL && alen > 0) {
        q->abuf = xmalloc((size_t)alen);
        memcpy(q->abuf, abuf, (size_t)alen);
        q->alen = alen;
    }
}

static bool dns_all_done(struct dns_query *q, size_t nq)
{
    for (size_t i = 0; i < nq; i++)
        if (!q[i].done)
            return false;
    return true;
}

/* Drive c-ares until every query in q[] has called back. */
static void dns_wait(struct dns_resolver *r, struct dns_query *q, size_t nq)
{
    long long deadline = dns_now_ms() + r->lookup_max_ms;

    while (!dns_all_done(q, nq)) {
        ares_socket_t socks[ARES_GETSOCK_MAXNUM];
        struct pollfd pfd[ARES_GETSOCK_MAXNUM];
        struct timeval maxtv, tv, *tvp;
        long long left = deadline - dns_now_ms();
        unsigned bits;
        int nfds = 0, wait_ms, n;

        if (left <= 0) {
            /* Every outstanding query calls back with ARES_ECANCELLED. */
            ares_cancel(r->channel);
            break;
        }
        bits = (unsigned)ares_getsock(r->channel, socks, ARES_GETSOCK_MAXNUM);
        for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
            short ev = 0;

            /* ARES_GETSOCK_*() shift a signed 1 into the sign bit. */
            if (bits & (1u << i))
                ev |= POLLIN;
            if (bits & (1u << (i + ARES_GETSOCK_MAXNUM)))
                ev |= POLLOUT;
            if (ev == 0)
                continue;
            pfd[nfds].fd = socks[i];
            pfd[nfds].events = ev;
            pfd[nfds].revents = 0;
            nfds++;
        }
        maxtv.tv_sec = left / 1000;
        maxtv.tv_usec = (left % 1000) * 1000;
        tvp = ares_timeout(r->channel, &maxtv, &tv);
        wait_ms = (int)(tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000);
        n = poll(pfd, (nfds_t)nfds, wait_ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* Let c-ares handle its retransmission timers. */
            ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
            continue;
        }
        for (int i = 0; i < nfds; i++) {
            short re = pfd[i].revents;

            if (re == 0)
                continue;
            ares_process_fd(r->channel,
                            re & (POLLIN | POLLHUP | POLLERR) ? pfd[i].fd
                                                              : ARES_SOCKET_BAD,
                            re & POLLOUT ? pfd[i].fd : ARES_SOCKET_BAD);
        }
    }
    /* Belt and braces: a query c-ares never answered counts as timed out. */
    for (size_t i = 0; i < nq; i++)
        if (!q[i].done) {
            q[i].done = true;
            q[i].status = ARES_ETIMEOUT;
        }
}

static enum dns_status dns_map_status(int status)
{
    switch (status) {
    case ARES_SUCCESS:
        return DNS_OK;
    case ARES_ENOTFOUND:
        return DNS_NOTFOUND;
    case ARES_ENODATA:
        return DNS_NODATA;
    case ARES_EBADNAME:
        return DNS_INVALID;
    default:
        /* SERVFAIL, REFUSED, timeouts, connection and parse errors. */
        return DNS_TEMPFAIL;
    }
}

static void dns_error(char *err, size_t errlen, const char *name,
                      const char *type, enum dns_status st)
{
    snprintf(err, errlen, "Name service error for name=%s type=%s: %s", name,
             type, dns_status_text(st));
}

/* The name as we query it: no trailing dot. */
static char *dns_query_name(const char *name)
{
    size_t len = strlen(name);

    if (len > 0 && name[len - 1] == '.')
        len--;
    return xstrndup(name, len);
}

char *dns_clean_host(const char *host)
{
    char *h = dns_query_name(host);

    str_lower(h);
    return h;
}

enum dns_status dns_lookup_mx(struct dns_resolver *r, const char *domain,
                              struct dns_mx **mx, size_t *n, char *err,
                              size_t errlen)
{
    struct dns_query q;
    struct ares_mx_reply *reply = NULL;
    enum dns_status st;
    char *name;
    size_t count = 0, nrec = 0;
    bool null_mx = false;
    int rc;

    *mx = NULL;
    *n = 0;
    if (!dns_name_ok(domain)) {
        dns_error(err, errlen, domain, "MX", DNS_INVALID);
        return DNS_INVALID;
    }
    name = dns_query_name(domain);
    memset(&q, 0, sizeof(q));
    ares_query(r->channel, name, DNS_CLASS_IN, DNS_TYPE_MX, dns_callback, &q);
    dns_wait(r, &q, 1);
    st = dns_map_status(q.status);
    if (st == DNS_OK) {
        rc = ares_parse_mx_reply(q.abuf, q.alen, &reply);
        st = rc == ARES_SUCCESS ? DNS_OK : dns_map_status(rc);
        if (rc == ARES_EBADRESP)
            st = DNS_TEMPFAIL;
    }
    free(q.abuf);
    if (st != DNS_OK) {
        dns_error(err, errlen, name, "MX", st);
        free(name);
        return st;
    }
    for (struct ares_mx_reply *p = reply; p != NULL; p = p->next) {
        nrec++;
        if (p->host == NULL || p->host[0] == 0 || strcmp(p->host, ".") == 0) {
            null_mx = true;
            continue;
        }
        if (count >= DNS_MX_MAX || !dns_name_ok(p->host))
            continue;
        *mx = xreallocarray(*mx, count + 1, sizeof(**mx));
        (*mx)[count].host = dns_clean_host(p->host);
        (*mx)[count].pref = p->priority;
        count++;
    }
    ares_free_data(reply);
    /* RFC 7505: a null MX is the domain's only MX record. */
    if (null_mx && nrec == 1) {
        dns_error(err, errlen, name, "MX", DNS_NULLMX);
        free(name);
        return DNS_NULLMX;
    }
    free(name);
    if (count == 0) {
        /* Only unusable names (or a null MX among others). */
        dns_error(err, errlen, domain, "MX", DNS_NODATA);
        return DNS_NODATA;
    }
    *n = count;
    return DNS_OK;
}

void dns_mx_free(struct dns_mx *mx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(mx[i].host);
    free(mx);
}

/* Append the A or AAAA records of one answer. */
static enum dns_status dns_parse_addrs(const struct dns_query *q, int family,
                                       struct dns_addr **addrs, size_t *n)
{
    enum dns_status st = dns_map_status(q->status);
    int rc, naddr = DNS_ADDR_MAX;

    if (st != DNS_OK)
        return st;
    if (family == AF_INET) {
        struct ares_addrttl ttl[DNS_ADDR_MAX];

        rc = ares_parse_a_reply(q->abuf, q->alen, NULL, ttl, &naddr);
        if (rc != ARES_SUCCESS)
            return rc == ARES_EBADRESP ? DNS_TEMPFAIL : dns_map_status(rc);
        for (int i = 0; i < naddr && *n < DNS_ADDR_MAX; i++) {
            struct dns_addr *a;

            *addrs = xreallocarray(*addrs, *n + 1, sizeof(**addrs));
            a = &(*addrs)[(*n)++];
            memset(a, 0, sizeof(*a));
            a->family = AF_INET;
            a->a.v4 = ttl[i].ipaddr;
            inet_ntop(AF_INET, &a->a.v4, a->text, sizeof(a->text));
        }
    } else {
        struct ares_addr6ttl ttl[DNS_ADDR_MAX];

        rc = ares_parse_aaaa_reply(q->abuf, q->alen, NULL, ttl, &naddr);
        if (rc != ARES_SUCCESS)
            return rc == ARES_EBADRESP ? DNS_TEMPFAIL : dns_map_status(rc);
        for (int i = 0; i < naddr && *n < DNS_ADDR_MAX; i++) {
            struct dns_addr *a;

            *addrs = xreallocarray(*addrs, *n + 1, sizeof(**addrs));
            a = &(*addrs)[(*n)++];
            memset(a, 0, sizeof(*a));
            a->family = AF_INET6;
            memcpy(&a->a.v6, &ttl[i].ip6addr, sizeof(a->a.v6));
            inet_ntop(AF_INET6, &a->a.v6, a->text, sizeof(a->text));
        }
    }
    return naddr > 0 ? DNS_OK : DNS_NODATA;
}

/* Of two failures, the one that matters most for routing. */
static enum dns_status dns_worse(enum dns_status a, enum dns_status b)
{
    if (a == DNS_TEMPFAIL || b == DNS_TEMPFAIL)
        return DNS_TEMPFAIL;
    if (a == DNS_NOTFOUND || b == DNS_NOTFOUND)
        return DNS_NOTFOUND;
    return a == DNS_OK ? b : a;
}

enum dns_status dns_lookup_addr(struct dns_resolver *r, const char *host,
                                int family, struct dns_addr **addrs, size_t *n,
                                char *err, size_t errlen)
{
    struct dns_query q[2];
    enum dns_status st4 = DNS_NODATA, st6 = DNS_NODATA, st;
    bool want4 = family == AF_INET || family == AF_UNSPEC;
    bool want6 = family == AF_INET6 || family == AF_UNSPEC;
    char *name;

    *addrs = NULL;
    *n = 0;
    if (!dns_name_ok(host)) {
        dns_error(err, errlen, host, want4 ? "A" : "AAAA", DNS_INVALID);
        return DNS_INVALID;
    }
    name = dns_query_name(host);
    memset(q, 0, sizeof(q));
    q[0].done = !want4;
    q[1].done = !want6;
    if (want4)
        ares_query(r->channel, name, DNS_CLASS_IN, DNS_TYPE_A, dns_callback,
                   &q[0]);
    if (want6)
        ares_query(r->channel, name, DNS_CLASS_IN, DNS_TYPE_AAAA, dns_callback,
                   &q[1]);
    dns_wait(r, q, 2);
    if (want4)
        st4 = dns_parse_addrs(&q[0], AF_INET, addrs, n);
    if (want6)
        st6 = dns_parse_addrs(&q[1], AF_INET6, addrs, n);
    free(q[0].abuf);
    free(q[1].abuf);
    if (*n > 0) {
        free(name);
        return DNS_OK;
    }
    st = want4 && want6 ? dns_worse(st4, st6) : want4 ? st4 : st6;
    if (st == DNS_OK)
        st = DNS_NODATA;
    /* Name the type that failed the way Postfix does (the last tried). */
    dns_error(err, errlen, name, want6 && (st6 == st || !want4) ? "AAAA" : "A",
              st);
    free(name);
    return st;
}

void dns_mx_sort(struct dns_mx *mx, size_t n, unsigned (*rnd)(void *ctx),
                 void *ctx)
{
    /* Shuffle, then a stable sort keeps equal preferences shuffled. */
    for (size_t i = n; i > 1; i--) {
        size_t j = rnd(ctx) % i;
        struct dns_mx t = mx[i - 1];

        mx[i - 1] = mx[j];
        mx[j] = t;
    }
    for (size_t i = 1; i < n; i++) {
        struct dns_mx t = mx[i];
        size_t j = i;

        while (j > 0 && mx[j - 1].pref > t.pref) {
            mx[j] = mx[j - 1];
            j--;
        }
        mx[j] = t;
    }
}

bool dns_reverse_labels(const char *addr, char *out, size_t outlen,
                        int *family)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char a6[16];
    struct in_addr a4;
    size_t o = 0;

    if (inet_pton(AF_INET, addr, &a4) == 1) {
        const unsigned char *b = (const unsigned char *)&a4;

        *family = AF_INET;
        return snprintf(out, outlen, "%u.%u.%u.%u", b[3], b[2], b[1], b[0]) <
               (int)outlen;
    }
    if (inet_pton(AF_INET6, addr, a6) != 1)
        return false;
    if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)a6)) {
        *family = AF_INET;
        return snprintf(out, outlen, "%u.%u.%u.%u", a6[15], a6[14], a6[13],
                        a6[12]) < (int)outlen;
    }
    *family = AF_INET6;
    if (outlen < 64)
        return false;
    for (int i = 15; i >= 0; i--) {
        out[o++] = hex[a6[i] & 15];
        out[o++] = '.';
        out[o++] = hex[a6[i] >> 4];
        out[o++] = i > 0 ? '.' : 0;
    }
    return true;
}

enum dns_status dns_lookup_ptr(struct dns_resolver *r, const char *addr,
                               char **name, char *err, size_t errlen)
{
    char labels[80], query[96];
    unsigned char bin[16];
    struct hostent *host = NULL;
    struct dns_query q;
    enum dns_status st;
    int family, rc;

    *name = NULL;
    if (!dns_reverse_labels(addr, labels, sizeof(labels), &family)) {
        dns_error(err, errlen, addr, "PTR", DNS_INVALID);
        return DNS_INVALID;
    }
    snprintf(query, sizeof(query), "%s.%s", labels,
             family == AF_INET ? "in-addr.arpa" : "ip6.arpa");
    /* c-ares copies the address into the hostent it builds. */
    memset(bin, 0, sizeof(bin));
    if (inet_pton(AF_INET, addr, bin) != 1) {
        unsigned char m[16];

        if (inet_pton(AF_INET6, addr, m) == 1)
            memcpy(bin, family == AF_INET ? m + 12 : m,
                   family == AF_INET ? 4 : 16);
    }
    memset(&q, 0, sizeof(q));
    ares_query(r->channel, query, DNS_CLASS_IN, DNS_TYPE_PTR, dns_callback,
               &q);
    dns_wait(r, &q, 1);
    st = dns_map_status(q.status);
    if (st == DNS_OK) {
        rc = ares_parse_ptr_reply(q.abuf, q.alen, bin,
                                  family == AF_INET ? 4 : 16, family, &host);
        st = rc == ARES_SUCCESS    ? DNS_OK
             : rc == ARES_EBADRESP ? DNS_TEMPFAIL
                                   : dns_map_status(rc);
    }
    free(q.abuf);
    if (st == DNS_OK) {
        /* The canonical name first, then any aliases (more PTR records). */
        if (host->h_name != NULL && dns_name_ok(host->h_name))
            *name = dns_clean_host(host->h_name);
        for (int i = 0; *name == NULL && host->h_aliases != NULL &&
                        host->h_aliases[i] != NULL;
             i++)
            if (dns_name_ok(host->h_aliases[i]))
                *name = dns_clean_host(host->h_aliases[i]);
        if (*name == NULL)
            st = DNS_NODATA;
    }
    if (host != NULL)
        ares_free_hostent(host);
    if (st != DNS_OK)
        dns_error(err, errlen, query, "PTR", st);
    return st;
}

enum dns_status dns_lookup_txt(struct dns_resolver *r, const char *name,
                               struct argv *txt, char *err, size_t errlen)
{
    struct ares_txt_ext *reply = NULL;
    struct dns_query q;
    struct buf one = BUF_INIT;
    enum dns_status st;
    char *qname;
    size_t count = 0;
    int rc;

    if (!dns_name_ok(name)) {
        dns_error(err, errlen, name, "TXT", DNS_INVALID);
        return DNS_INVALID;
    }
    qname = dns_query_name(name);
    memset(&q, 0, sizeof(q));
    ares_query(r->channel, qname, DNS_CLASS_IN, DNS_TYPE_TXT, dns_callback,
               &q);
    dns_wait(r, &q, 1);
    st = dns_map_status(q.status);
    if (st == DNS_OK) {
        rc = ares_parse_txt_reply_ext(q.abuf, q.alen, &reply);
        st = rc == ARES_SUCCESS    ? DNS_OK
             : rc == ARES_EBADRESP ? DNS_TEMPFAIL
                                   : dns_map_status(rc);
    }
    free(q.abuf);
    /* A record is one or more strings; record_start marks the first. */
    for (struct ares_txt_ext *p = st == DNS_OK ? reply : NULL; p != NULL;
         p = p->next) {
        if (p->record_start && one.len > 0) {
            if (count++ < DNS_TXT_MAX)
                argv_add(txt, one.data);
            buf_reset(&one);
        }
        for (size_t i = 0; i < p->length && one.len < DNS_TXT_LEN_MAX; i++) {
            unsigned char c = p->txt[i];

            buf_putc(&one, c >= 0x20 && c < 0x7f ? c : '?');
        }
    }
    if (one.len > 0 && count++ < DNS_TXT_MAX)
        argv_add(txt, one.data);
    buf_free(&one);
    if (reply != NULL)
        ares_free_data(reply);
    if (st == DNS_OK && count == 0)
        st = DNS_NODATA;
    if (st != DNS_OK)
        dns_error(err, errlen, qname, "TXT", st);
    free(qname);
    return st;
}
