/*
 * map_cidr - cidr:/path, network tables (Postfix's cidr_table(5)):
 *
 *     192.168.1.1        OK          a single address
 *     192.168.0.0/16     REJECT      a network; host bits must be zero
 *     [2001:db8::]/32    REJECT      IPv6, brackets optional
 *     !10.0.0.0/8        ...         negation, if/endif (map_pattern.c)
 *
 * First match in file order wins; results are taken literally (no $n).
 * The key is an address as text; a key that is not an address is simply
 * not found.  A rule of the other address family never applies, negated
 * or not (Postfix's rule).  Addresses and networks are parsed by
 * global/cidr.c, so an IPv4-mapped IPv6 client address matches IPv4
 * entries (Postfix would need an IPv6 entry for it).
 */
#include <stdio.h>
#include <stdlib.h>

#include "global/cidr.h"
#include "global/map_pattern.h"
#include "util/mem.h"

struct cidr_key {
    int family;
    unsigned char addr[16];
};

static void *cidr_compile_one(const char *pattern, const char *flags,
                              size_t *ngroups, char *err, size_t errlen)
{
    struct cidr_net *net = xmalloc(sizeof(*net));

    if (cidr_parse(pattern, net, err, errlen) < 0) {
        free(net);
        return NULL;
    }
    *ngroups = 0;
    return net;
}

static bool cidr_prepare(const char *key, void **prepared)
{
    struct cidr_key *k = xmalloc(sizeof(*k));

    if (cidr_addr_parse(key, &k->family, k->addr) < 0) {
        free(k);
        return false;
    }
    *prepared = k;
    return true;
}

static int cidr_match_one(void *pattern, const char *key, size_t keylen,
                          const void *prepared, struct map_pattern_cap *caps,
                          size_t ncaps, char *err, size_t errlen)
{
    const struct cidr_key *k = prepared;
    const struct cidr_net *net = pattern;

    /* Postfix's rule: not even "!network" matches the other family. */
    if (net->family != k->family)
        return MAP_PATTERN_SKIP;
    return cidr_net_match(net, k->family, k->addr) ? 1 : 0;
}

static const struct map_pattern_engine cidr_engine = {
    .type = "cidr",
    .delimited = false,
    .compile = cidr_compile_one,
    .prepare = cidr_prepare,
    .match = cidr_match_one,
    .free = free,
};

int map_cidr_open(struct map *m, const char *name, char *err, size_t errlen)
{
    return map_pattern_open(m, name, &cidr_engine, err, errlen);
}
