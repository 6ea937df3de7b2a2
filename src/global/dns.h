/*
 * dns - MX, address, PTR and TXT lookups for mail routing and the SMTP
 * server's client checks, through c-ares.
 *
 * One resolver per process (dns_open), used synchronously: each lookup
 * sends its queries and waits, with poll(), until c-ares has answers or
 * the lookup's deadline passes.  Names are looked up as given, never
 * completed with the resolv.conf search list (a mail domain is always
 * fully qualified, as in Postfix).
 *
 * Servers: the system's resolv.conf, or the dns_server_addresses list
 * ("192.0.2.1", "192.0.2.1:5353", "[2001:db8::1]:53", "::1"), which lets
 * tests and special set-ups point at one particular server.
 *
 * Results distinguish what mail routing must distinguish:
 *   DNS_OK        records found
 *   DNS_NOTFOUND  the name does not exist (NXDOMAIN): permanent
 *   DNS_NODATA    the name exists but has no record of that type
 *   DNS_NULLMX    (MX only) the domain publishes RFC 7505 "MX 0 ."
 *   DNS_TEMPFAIL  timeout, SERVFAIL, refused, broken reply: try later
 *   DNS_INVALID   the name itself is malformed: permanent
 * and fill err with Postfix's wording, e.g. "Name service error for
 * name=example.org type=MX: Host not found, try again".
 */
#ifndef GLOBAL_DNS_H
#define GLOBAL_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <netinet/in.h>

#include "util/argv.h"

/* Bounds on what one answer may give us. */
#define DNS_MX_MAX 100
#define DNS_ADDR_MAX 100
#define DNS_NAME_MAX 253

enum dns_status {
    DNS_OK = 0,
    DNS_NOTFOUND,
    DNS_NODATA,
    DNS_NULLMX,
    DNS_TEMPFAIL,
    DNS_INVALID,
};

struct dns_mx {
    char *host; /* lowercased, no trailing dot */
    unsigned pref;
};

struct dns_addr {
    int family; /* AF_INET or AF_INET6 */
    union {
        struct in_addr v4;
        struct in6_addr v6;
    } a;
    char text[INET6_ADDRSTRLEN];
};

struct dns_resolver;

/*
 * servers: NULL or empty = resolv.conf.  timeout_ms per try, tries per
 * server (c-ares' retransmission), both >= 1.  NULL on error (err set:
 * a malformed server entry names it).
 */
struct dns_resolver *dns_open(const struct argv *servers, int timeout_ms,
                              int tries, char *err, size_t errlen);
void dns_close(struct dns_resolver *r);

/*
 * MX records of domain, in answer order (sort with dns_mx_sort).  On
 * DNS_OK *mx holds *n >= 1 entries (free with dns_mx_free).
 */
enum dns_status dns_lookup_mx(struct dns_resolver *r, const char *domain,
                              struct dns_mx **mx, size_t *n, char *err,
                              size_t errlen);
void dns_mx_free(struct dns_mx *mx, size_t n);

/*
 * Addresses of host: family AF_INET, AF_INET6 or AF_UNSPEC (both; A
 * records first, then AAAA).  On DNS_OK *addrs holds *n >= 1 entries
 * (free()).  With AF_UNSPEC, one family failing temporarily while the
 * other gave addresses is DNS_OK: routing uses what it has.
 */
enum dns_status dns_lookup_addr(struct dns_resolver *r, const char *host,
                                int family, struct dns_addr **addrs, size_t *n,
                                char *err, size_t errlen);

/*
 * Sort by preference, lowest first; records with equal preference end up
 * in random order (rnd(ctx) returns a uniformly random unsigned value;
 * tests pass a fixed sequence).
 */
void dns_mx_sort(struct dns_mx *mx, size_t n, unsigned (*rnd)(void *ctx),
                 void *ctx);

/*
 * A syntactically valid host or domain name for a query: LDH labels of
 * 1..63 characters separated by dots, at most DNS_NAME_MAX characters,
 * one optional trailing dot, ASCII only (no IDNA conversion).
 */
bool dns_name_ok(const char *name);

/*
 * One dns_server_addresses entry into c-ares' "ip:port" form ("[v6]:port"
 * for IPv6); false if it is not a numeric address with an optional port.
 */
bool dns_server_format(const char *entry, char *out, size_t outlen);

/*
 * The labels a reverse lookup puts in front of its zone: "4.3.2.1" for
 * 1.2.3.4, the 32 nibbles "b.a.9.8. ... .0" for an IPv6 address (an
 * IPv4-mapped IPv6 address counts as IPv4).  dns_lookup_ptr appends
 * in-addr.arpa / ip6.arpa; DNS block lists append their own zone.  false
 * if addr is not a numeric address; *family gets AF_INET or AF_INET6.
 */
bool dns_reverse_labels(const char *addr, char *out, size_t outlen,
                        int *family);

/*
 * PTR lookup of a numeric address.  On DNS_OK *name is the first PTR
 * target that is a valid host name, lowercased, without the trailing dot
 * (free()); a PTR answer with no valid name is DNS_NODATA.
 */
enum dns_status dns_lookup_ptr(struct dns_resolver *r, const char *addr,
                               char **name, char *err, size_t errlen);

/* A host name as DNS answers give it: lowercased, no trailing dot. */
char *dns_clean_host(const char *host);

/*
 * The hosts file (/etc/hosts; dns_hosts.c) instead of DNS, as the
 * system's resolver asks it first: dns_hosts_name gives the first valid
 * name of the first line that lists a numeric address (*name as
 * dns_lookup_ptr's, free()), DNS_NOTFOUND if no line does;
 * dns_hosts_has_addr is true when a line of family gives name (any case)
 * the address addr (an IPv4-mapped IPv6 address counts as IPv4).  The
 * file is parsed once and read again when it changes, looked at no more
 * than once a second; a missing file lists nothing.
 */
enum dns_status dns_hosts_name(const char *addr, char **name);
bool dns_hosts_has_addr(const char *name, int family, const char *addr);
/* Another file instead of /etc/hosts (tests); forgets what was read. */
void dns_hosts_set_path(const char *path);

/*
 * TXT records of name, each record's strings joined, into txt (appended,
 * at most DNS_TXT_MAX records of at most DNS_TXT_LEN_MAX bytes each,
 * non-printable bytes replaced by '?').
 */
#define DNS_TXT_MAX 10
#define DNS_TXT_LEN_MAX 512
enum dns_status dns_lookup_txt(struct dns_resolver *r, const char *name,
                               struct argv *txt, char *err, size_t errlen);

/* Static text of a status ("Host not found, try again", ...). */
const char *dns_status_text(enum dns_status st);

#endif
