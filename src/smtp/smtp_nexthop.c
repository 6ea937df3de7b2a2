/*
 * smtp_nexthop - the syntax of a delivery request's next hop, as Postfix
 * writes it in relayhost and transport_maps:
 *
 *   example.org            smtp: MX lookup (A/AAAA when there is no MX)
 *   example.org:2525       the same, on another port
 *   [mx.example.org]       no MX lookup: the host's own addresses
 *   [mx.example.org]:2525
 *   [192.0.2.1]:2525       a numeric address: no lookup at all
 *   [ipv6:2001:db8::1]     IPv6 (the "ipv6:" tag is optional in brackets)
 *   inet:host:port         the "inet:" prefix is accepted and ignored
 *   unix:/path/socket      lmtp only: a unix-domain socket; a relative
 *                          path is relative to queue_directory
 *
 * For lmtp a host is never looked up as MX (Postfix's lmtp does no MX
 * lookups), brackets or not.  Without ":port" the port is 25 for smtp and
 * 24 for lmtp, and port_given is false so that the caller may apply
 * smtp_tcp_port / lmtp_tcp_port.  Input comes from qmgr (transport_maps,
 * relayhost): it is checked here and a bad next hop is an error return,
 * never a guess.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "smtp/smtp.h"
#include "global/dns.h"
#include "util/str.h"

#define SMTP_NEXTHOP_TEXT_MAX 300

static int nexthop_port(const char *s, unsigned *port)
{
    long long v;

    if (strcmp(s, "smtp") == 0) {
        *port = SMTP_PORT;
        return 0;
    }
    if (strcmp(s, "lmtp") == 0) {
        *port = LMTP_PORT;
        return 0;
    }
    if (!str_to_llong(s, &v) || v < 1 || v > 65535)
        return -1;
    *port = (unsigned)v;
    return 0;
}

/* Host part (brackets removed) into out; bracketed = no MX lookup. */
static int nexthop_host(const char *host, bool bracketed, bool lmtp,
                        struct smtp_nexthop *out, const char **err)
{
    struct in6_addr a6;
    struct in_addr a4;
    size_t len;

    if (bracketed && strncasecmp(host, "ipv6:", 5) == 0) {
        host += 5;
        if (inet_pton(AF_INET6, host, &a6) != 1) {
            *err = "malformed IPv6 address";
            return -1;
        }
    }
    if (inet_pton(AF_INET, host, &a4) == 1) {
        out->kind = SMTP_NEXTHOP_ADDR;
        out->family = AF_INET;
        str_lcpy(out->name, host, sizeof(out->name));
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        if (!bracketed) {
            *err = "an IPv6 address must be written in brackets";
            return -1;
        }
        out->kind = SMTP_NEXTHOP_ADDR;
        out->family = AF_INET6;
        inet_ntop(AF_INET6, &a6, out->name, sizeof(out->name));
        return 0;
    }
    if (!dns_name_ok(host)) {
        *err = "malformed host or domain name";
        return -1;
    }
    len = strlen(host);
    if (host[len - 1] == '.')
        len--;
    memcpy(out->name, host, len);
    out->name[len] = 0;
    str_lower(out->name);
    out->kind = bracketed || lmtp ? SMTP_NEXTHOP_HOST : SMTP_NEXTHOP_MX;
    return 0;
}

int smtp_nexthop_parse(const char *text, bool lmtp, struct smtp_nexthop *out,
                       const char **err)
{
    char tmp[SMTP_NEXTHOP_TEXT_MAX + 1];
    char *host, *port = NULL;
    bool bracketed = false;

    memset(out, 0, sizeof(*out));
    out->port = lmtp ? LMTP_PORT : SMTP_PORT;
    if (str_lcpy(tmp, text, sizeof(tmp)) >= sizeof(tmp)) {
        *err = "next hop too long";
        return -1;
    }
    for (const char *p = tmp; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            *err = "control character or space in next hop";
            return -1;
        }
    }
    host = tmp;
    if (strncmp(host, "unix:", 5) == 0) {
        if (!lmtp) {
            *err = "unix: next hops are for lmtp only";
            return -1;
        }
        host += 5;
        if (*host == 0 || strlen(host) > SMTP_UNIX_PATH_MAX) {
            *err = "bad unix socket path";
            return -1;
        }
        out->kind = SMTP_NEXTHOP_UNIX;
        out->port = 0;
        str_lcpy(out->name, host, sizeof(out->name));
        return 0;
    }
    if (strncmp(host, "inet:", 5) == 0)
        host += 5;
    if (*host == '[') {
        char *end = strchr(host, ']');

        if (end == NULL) {
            *err = "missing ']' in next hop";
            return -1;
        }
        *end = 0;
        if (end[1] == ':')
            port = end + 2;
        else if (end[1] != 0) {
            *err = "garbage after ']' in next hop";
            return -1;
        }
        host++;
        bracketed = true;
    } else {
        char *colon = strchr(host, ':');

        if (colon != NULL) {
            if (strchr(colon + 1, ':') != NULL) {
                *err = "an IPv6 address must be written in brackets";
                return -1;
            }
            *colon = 0;
            port = colon + 1;
        }
    }
    if (*host == 0) {
        *err = "empty host in next hop";
        return -1;
    }
    if (port != NULL && nexthop_port(port, &out->port) < 0) {
        *err = "bad port in next hop";
        return -1;
    }
    out->port_given = port != NULL;
    return nexthop_host(host, bracketed, lmtp, out, err);
}
