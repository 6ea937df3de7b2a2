/*
 * cidr - network lists such as mynetworks: "127.0.0.0/8 [::1]/128
 * 192.168.1.5, 2001:db8::/32".
 *
 * An entry is an IPv4 or IPv6 address (IPv6 optionally in [brackets], as
 * Postfix recommends) with an optional "/prefix"; without one the entry
 * is a single host.  Host bits below the prefix must be zero (Postfix's
 * rule: "127.0.0.1/8" is an error that suggests "127.0.0.0/8").  An
 * IPv4-mapped IPv6 network ("[::ffff:127.0.0.0]/104") is stored as the
 * IPv4 network, and an IPv4-mapped client address matches IPv4 entries,
 * so dual-stack listeners need no duplicate entries.
 */
#ifndef GLOBAL_CIDR_H
#define GLOBAL_CIDR_H

#include <stdbool.h>
#include <stddef.h>

struct cidr_net {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* network; 4 bytes used for AF_INET */
    unsigned prefix;        /* 0..32 or 0..128 */
};

/* One entry.  Returns 0, or -1 with err naming the entry and the fault. */
int cidr_parse(const char *text, struct cidr_net *net, char *err,
               size_t errlen);
/*
 * An address as text ("10.1.2.3", "::1", "[::1]", "fe80::1%eth0"); an
 * IPv4-mapped IPv6 address comes back as AF_INET.  Returns 0 or -1.
 */
int cidr_addr_parse(const char *text, int *family, unsigned char addr[16]);
bool cidr_net_match(const struct cidr_net *net, int family,
                    const unsigned char addr[16]);

struct cidr_list;

/* Entries separated by commas and/or whitespace; "" is an empty list. */
struct cidr_list *cidr_list_parse(const char *value, char *err, size_t errlen);
void cidr_list_free(struct cidr_list *l);
size_t cidr_list_count(const struct cidr_list *l);
/* False for an empty list or an address that does not parse. */
bool cidr_list_match(const struct cidr_list *l, const char *addr);

#endif
