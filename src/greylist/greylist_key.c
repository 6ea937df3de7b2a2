/*
 * greylist_key - what makes two delivery attempts "the same" for
 * greylisting (postgrey's rules): the client's network rather than its
 * address, because big senders retry from another host of the same
 * farm; the sender with the parts that change per message masked; the
 * recipient as given.
 *
 * Given: strings from the policy request, i.e. from smtpd, i.e. from the
 * network.  Nothing here fails on odd input: an address that does not
 * parse is reported to the caller, any other text just makes a key.
 * Keys longer than GREYLIST_KEY_MAX bytes (LMDB allows 511) are replaced
 * by "T:#" and their SHA-256, so every triplet has a key of its own.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <openssl/evp.h>

#include "global/cidr.h"
#include "greylist/greylist.h"

int greylist_client_net(const char *addr, int v4_prefix, int v6_prefix,
                        char *out, size_t outlen)
{
    unsigned char bytes[16];
    char text[INET6_ADDRSTRLEN];
    int family, prefix, nbytes;

    if (addr == NULL || cidr_addr_parse(addr, &family, bytes) < 0)
        return -1;
    prefix = family == AF_INET ? v4_prefix : v6_prefix;
    nbytes = family == AF_INET ? 4 : 16;
    for (int i = 0; i < nbytes; i++) {
        int keep = prefix - i * 8;

        if (keep >= 8)
            continue;
        bytes[i] &= keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
    }
    if (inet_ntop(family, bytes, text, sizeof(text)) == NULL)
        return -1;
    snprintf(out, outlen, "%s/%d", text, prefix);
    return 0;
}

void greylist_sender_key(const char *sender, const char *delimiters,
                         struct buf *out)
{
    const char *at, *local = sender, *end;
    const char *delims = delimiters != NULL && *delimiters ? delimiters : "+";
    bool in_digits = false;
    size_t skip;

    buf_reset(out);
    if (sender == NULL || *sender == 0) {
        buf_puts(out, "<>");
        return;
    }
    at = strrchr(sender, '@');
    end = at != NULL ? at : sender + strlen(sender);
    /* BATV: "prvs=tag=user" (and Microsoft's "msprvs1=tag=user"). */
    if ((skip = strncasecmp(local, "prvs=", 5) == 0      ? 5
                : strncasecmp(local, "msprvs1=", 8) == 0 ? 8
                                                         : 0) > 0) {
        const char *eq =
            memchr(local + skip, '=', (size_t)(end - local) - skip);

        if (eq != NULL)
            local = eq + 1;
    }
    for (const char *p = local; p < end; p++) {
        unsigned char c = (unsigned char)*p;

        if (strchr(delims, c) != NULL && p > local)
            break;
        if (isdigit(c)) {
            if (!in_digits)
                buf_putc(out, '#');
            in_digits = true;
            continue;
        }
        in_digits = false;
        buf_putc(out, tolower(c));
    }
    for (const char *p = end; *p; p++)
        buf_putc(out, tolower((unsigned char)*p));
}

void greylist_triplet_key(const char *net, const char *sender,
                          const char *recipient, struct buf *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    struct buf raw = BUF_INIT;

    /* NUL separates the parts: none of them can contain one. */
    buf_puts(&raw, "T:");
    buf_puts(&raw, net);
    buf_putc(&raw, 0);
    buf_puts(&raw, sender);
    buf_putc(&raw, 0);
    for (const char *p = recipient; *p; p++)
        buf_putc(&raw, tolower((unsigned char)*p));
    buf_reset(out);
    if (raw.len <= GREYLIST_KEY_MAX) {
        buf_append(out, raw.data, raw.len);
    } else {
        EVP_Digest(raw.data, raw.len, md, &mdlen, EVP_sha256(), NULL);
        buf_puts(out, "T:#");
        for (unsigned int i = 0; i < mdlen; i++)
            buf_printf(out, "%02x", md[i]);
    }
    buf_free(&raw);
}
