/*
 * cidr - parse and match network lists (mynetworks and the like).
 *
 * Entries come from main.cf; addresses to match come from the socket
 * layer (numeric text).  Both are parsed with inet_pton only: no name
 * lookups, no "127.1" shorthand, no octal.  A bad entry is an error that
 * names it, so a typo in mynetworks stops the daemon instead of silently
 * opening or closing the relay.
 */
#include "global/cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/argv.h"
#include "util/mem.h"
#include "util/str.h"

#define CIDR_TEXT_MAX 128
#define CIDR_LIST_MAX 100000

static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0,    0,
                                           0, 0, 0, 0, 0xff, 0xff};

/*
 * inet_pton on text that may be "[bracketed]" and may carry a "%zone".
 * Returns the family, or 0.
 */
static int cidr_pton(const char *text, size_t len, unsigned char out[16],
                     bool allow_zone)
{
    char buf[CIDR_TEXT_MAX];
    char *pct;

    if (len >= 2 && text[0] == '[' && text[len - 1] == ']') {
        text++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof(buf))
        return 0;
    memcpy(buf, text, len);
    buf[len] = 0;
    if (strlen(buf) != len)
        return 0;
    if (allow_zone && (pct = strchr(buf, '%')) != NULL)
        *pct = 0;
    if (inet_pton(AF_INET, buf, out) == 1)
        return AF_INET;
    if (inet_pton(AF_INET6, buf, out) == 1)
        return AF_INET6;
    return 0;
}

int cidr_addr_parse(const char *text, int *family, unsigned char addr[16])
{
    unsigned char bin[16];
    int fam = cidr_pton(text, strlen(text), bin, true);

    if (fam == 0)
        return -1;
    memset(addr, 0, 16);
    if (fam == AF_INET6 && memcmp(bin, v4mapped, 12) == 0) {
        memcpy(addr, bin + 12, 4);
        fam = AF_INET;
    } else {
        memcpy(addr, bin, fam == AF_INET ? 4 : 16);
    }
    *family = fam;
    return 0;
}

/* Are the bits of addr below prefix all zero? */
static bool cidr_host_bits_zero(const unsigned char *addr, unsigned bytes,
                                unsigned prefix)
{
    for (unsigned i = 0; i < bytes; i++) {
        unsigned bit = i * 8;
        unsigned char mask;

        if (bit + 8 <= prefix)
            continue;
        mask = bit >= prefix ? 0xff : (unsigned char)(0xff >> (prefix - bit));
        if (addr[i] & mask)
            return false;
    }
    return true;
}

static void cidr_format(const struct cidr_net *net, const unsigned char *addr,
                        char *out, size_t outlen)
{
    char a[INET6_ADDRSTRLEN];

    inet_ntop(net->family, addr, a, sizeof(a));
    if (net->family == AF_INET6)
        snprintf(out, outlen, "[%s]/%u", a, net->prefix);
    else
        snprintf(out, outlen, "%s/%u", a, net->prefix);
}

int cidr_parse(const char *text, struct cidr_net *net, char *err, size_t errlen)
{
    const char *slash = strrchr(text, '/');
    size_t alen = slash != NULL ? (size_t)(slash - text) : strlen(text);
    unsigned char bin[16];
    unsigned maxbits;
    long long prefix;
    int fam;

    memset(net, 0, sizeof(*net));
    if ((fam = cidr_pton(text, alen, bin, false)) == 0) {
        snprintf(err, errlen, "'%s': not a network address", text);
        return -1;
    }
    maxbits = fam == AF_INET ? 32 : 128;
    if (slash == NULL) {
        prefix = maxbits;
    } else if (slash[1] < '0' || slash[1] > '9' ||
               !str_to_llong(slash + 1, &prefix) || prefix > maxbits) {
        snprintf(err, errlen, "'%s': bad network mask (0..%u)", text, maxbits);
        return -1;
    }
    net->family = fam;
    net->prefix = (unsigned)prefix;
    memcpy(net->addr, bin, fam == AF_INET ? 4 : 16);
    if (!cidr_host_bits_zero(net->addr, maxbits / 8, net->prefix)) {
        struct cidr_net fixed = *net;
        char suggest[CIDR_TEXT_MAX];

        for (unsigned i = 0; i < maxbits / 8; i++) {
            unsigned bit = i * 8;

            if (bit >= fixed.prefix)
                fixed.addr[i] = 0;
            else if (bit + 8 > fixed.prefix)
                fixed.addr[i] &=
                    (unsigned char)(0xff << (8 - (fixed.prefix - bit)));
        }
        cidr_format(&fixed, fixed.addr, suggest, sizeof(suggest));
        snprintf(err, errlen,
                 "'%s': non-null host address bits, perhaps you should use "
                 "'%s' instead",
                 text, suggest);
        return -1;
    }
    if (fam == AF_INET6 && net->prefix >= 96 &&
        memcmp(net->addr, v4mapped, 12) == 0) {
        memmove(net->addr, net->addr + 12, 4);
        memset(net->addr + 4, 0, 12);
        net->family = AF_INET;
        net->prefix -= 96;
    }
    return 0;
}

bool cidr_net_match(const struct cidr_net *net, int family,
                    const unsigned char addr[16])
{
    unsigned full = net->prefix / 8, rest = net->prefix % 8;

    if (family != net->family)
        return false;
    if (memcmp(net->addr, addr, full) != 0)
        return false;
    if (rest != 0) {
        unsigned char mask = (unsigned char)(0xff << (8 - rest));

        if ((net->addr[full] & mask) != (addr[full] & mask))
            return false;
    }
    return true;
}

struct cidr_list {
    struct cidr_net *v;
    size_t n;
};

struct cidr_list *cidr_list_parse(const char *value, char *err, size_t errlen)
{
    struct argv items = ARGV_INIT;
    struct cidr_list *l = xcalloc(1, sizeof(*l));

    argv_split(&items, value, ", \t\r\n");
    if (items.n > CIDR_LIST_MAX) {
        snprintf(err, errlen, "more than %d networks in one list",
                 CIDR_LIST_MAX);
        goto fail;
    }
    if (items.n > 0)
        l->v = xcalloc(items.n, sizeof(*l->v));
    for (size_t i = 0; i < items.n; i++) {
        if (cidr_parse(items.v[i], &l->v[i], err, errlen) < 0)
            goto fail;
        l->n++;
    }
    argv_free(&items);
    return l;

fail:
    argv_free(&items);
    cidr_list_free(l);
    return NULL;
}

void cidr_list_free(struct cidr_list *l)
{
    if (l == NULL)
        return;
    free(l->v);
    free(l);
}

size_t cidr_list_count(const struct cidr_list *l)
{
    return l != NULL ? l->n : 0;
}

bool cidr_list_match(const struct cidr_list *l, const char *addr)
{
    unsigned char bin[16];
    int family;

    if (l == NULL || l->n == 0 || cidr_addr_parse(addr, &family, bin) < 0)
        return false;
    for (size_t i = 0; i < l->n; i++)
        if (cidr_net_match(&l->v[i], family, bin))
            return true;
    return false;
}
