/*
 * qmgr_route - where a recipient goes: a transport (the name of a
 * master.cf service, or the built-in error and discard) and a next hop,
 * by Postfix's precedence, lowest first:
 *
 *   1. the recipient domain
 *   2. relayhost, for the relay and default classes ("[host]:port" skips
 *      the MX lookup; that is the agent's business)
 *   3. the class transport, "transport[:nexthop]":
 *        local            local_transport     (local:$myhostname)
 *        virtual_mailbox  virtual_transport   (local)
 *        relay            relay_transport     (relay)
 *        default          default_transport   (smtp)
 *        virtual_alias    error:5.1.1 User unknown in virtual alias table
 *                         (cleanup found no alias; transport_maps cannot
 *                         revive such an address)
 *   4. transport_maps, transport(5) syntax, keys tried in this order:
 *        user+ext@domain, user@domain, domain, .parent.domain ...  ".tld",
 *        "*"; the result "transport:nexthop": an empty transport keeps
 *        the transport, an empty nexthop resets it to the recipient
 *        domain (both empty: keep everything); "error:text" bounces with
 *        that text, "discard:text" drops the recipient (status=sent).
 *
 * Mail for double_bounce_sender is discarded before any of this, as
 * Postfix does, so a notification that comes back to it ends the loop.
 *
 * Trusts the configuration; addresses come from queue files (validated
 * by cleanup).  A table lookup error is a temporary failure of that
 * recipient, never a guess.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "qmgr/qmgr.h"
#include "global/addr.h"
#include "global/maps.h"
#include "util/mem.h"
#include "util/str.h"

struct qmgr_router {
    struct resolver *res;
    struct maplist *transport_maps;
    char *delimiters;
    char *myhostname;
    char *class_transport[5]; /* by enum addr_class */
    char *relayhost;
    char *double_bounce;
};

/* "name" or "name@domain" -> lowercased "name@domain". */
static char *qmgr_route_qualify(const char *name, const char *domain)
{
    char *q =
        strchr(name, '@') ? xstrdup(name) : xasprintf("%s@%s", name, domain);
    char *f = addr_fold(q);

    free(q);
    return f;
}

struct qmgr_router *qmgr_router_open(struct config *cfg, struct resolver *res,
                                     char *err, size_t errlen)
{
    struct qmgr_router *rt = xcalloc(1, sizeof(*rt));
    char sub[256];

    rt->res = res;
    rt->transport_maps =
        maplist_open(config_str(cfg, "transport_maps"), sub, sizeof(sub));
    if (rt->transport_maps == NULL) {
        snprintf(err, errlen, "transport_maps: %s", sub);
        free(rt);
        return NULL;
    }
    rt->delimiters = xstrdup(config_str(cfg, "recipient_delimiter"));
    rt->myhostname = addr_fold(config_str(cfg, "myhostname"));
    rt->class_transport[ADDR_CLASS_LOCAL] =
        xstrdup(config_str(cfg, "local_transport"));
    rt->class_transport[ADDR_CLASS_VIRTUAL_MAILBOX] =
        xstrdup(config_str(cfg, "virtual_transport"));
    rt->class_transport[ADDR_CLASS_VIRTUAL_ALIAS] =
        xstrdup(QMGR_TRANSPORT_ERROR ":5.1.1 User unknown in virtual alias "
                                     "table");
    rt->class_transport[ADDR_CLASS_RELAY] =
        xstrdup(config_str(cfg, "relay_transport"));
    rt->class_transport[ADDR_CLASS_DEFAULT] =
        xstrdup(config_str(cfg, "default_transport"));
    rt->relayhost = xstrdup(config_str(cfg, "relayhost"));
    str_trim(rt->relayhost);
    rt->double_bounce = qmgr_route_qualify(
        config_str(cfg, "double_bounce_sender"), config_str(cfg, "myorigin"));
    return rt;
}

void qmgr_router_close(struct qmgr_router *rt)
{
    if (rt == NULL)
        return;
    maplist_close(rt->transport_maps);
    free(rt->delimiters);
    free(rt->myhostname);
    for (size_t i = 0; i < 5; i++)
        free(rt->class_transport[i]);
    free(rt->relayhost);
    free(rt->double_bounce);
    free(rt);
}

void qmgr_route_free(struct qmgr_route *r)
{
    free(r->transport);
    free(r->nexthop);
    r->transport = r->nexthop = NULL;
}

void qmgr_route_split(const char *value, char **transport, char **nexthop)
{
    const char *colon = strchr(value, ':');
    char *t = colon ? xstrndup(value, (size_t)(colon - value)) : xstrdup(value);
    char *n = xstrdup(colon ? colon + 1 : "");
    char *tt = str_trim(t), *nt = str_trim(n);

    *transport = xstrdup(tt);
    *nexthop = xstrdup(nt);
    free(t);
    free(n);
}

static bool qmgr_route_builtin(const char *transport)
{
    return strcmp(transport, QMGR_TRANSPORT_ERROR) == 0 ||
           strcmp(transport, QMGR_TRANSPORT_DISCARD) == 0;
}

/*
 * Apply a "transport:nexthop" value (class default or table result).
 * `domain_hop` is what an empty next hop resets to.
 */
static void qmgr_route_apply(struct qmgr_route *out, const char *value,
                             const char *domain_hop)
{
    char *t, *n;

    qmgr_route_split(value, &t, &n);
    if (*t == 0 && *n == 0) {
        free(t);
        free(n);
        return;
    }
    if (*t != 0) {
        free(out->transport);
        out->transport = t;
        free(out->nexthop);
        /* The built-ins take text, not a host: no domain for them. */
        out->nexthop =
            *n != 0 || qmgr_route_builtin(t) ? n : xstrdup(domain_hop);
        if (out->nexthop != n)
            free(n);
        return;
    }
    free(t);
    free(out->nexthop);
    out->nexthop = n;
}

/* transport_maps: 1 found (value set), 0 not found, -1 error. */
static int qmgr_route_table(struct qmgr_router *rt, const char *addr,
                            const char *domain, struct buf *value, char *err,
                            size_t errlen)
{
    struct argv keys = ARGV_INIT;
    long at = addr_split(addr);
    int rc = 0;

    if (maplist_empty(rt->transport_maps))
        return 0;
    if (at > 0) {
        char *local = xstrndup(addr, (size_t)at);
        size_t ext = addr_ext_offset(local, rt->delimiters);

        argv_add(&keys, addr);
        if (ext < strlen(local)) {
            char *plain = xasprintf("%.*s@%s", (int)ext, local, domain);

            argv_add(&keys, plain);
            free(plain);
        }
        free(local);
    }
    if (*domain != 0) {
        /* The domain itself, then ".parent" forms (strict subdomains). */
        argv_add(&keys, domain);
        for (const char *p = strchr(domain, '.'); p != NULL && p[1] != 0;
             p = strchr(p + 1, '.'))
            argv_add(&keys, p);
    }
    argv_add(&keys, "*");
    for (size_t i = 0; i < keys.n && rc == 0; i++) {
        enum map_result r =
            maplist_lookup(rt->transport_maps, keys.v[i], value, err, errlen);

        if (r == MAP_FOUND)
            rc = 1;
        else if (r == MAP_ERROR)
            rc = -1;
    }
    argv_free(&keys);
    return rc;
}

int qmgr_route_addr(struct qmgr_router *rt, const char *addr,
                    struct qmgr_route *out, char *err, size_t errlen)
{
    char *folded = addr_fold(addr);
    long at = addr_split(folded);
    const char *domain = at >= 0 ? folded + at + 1 : "";
    const char *domain_hop = *domain ? domain : rt->myhostname;
    struct buf value = BUF_INIT;
    int cls, found, rc = -1;

    memset(out, 0, sizeof(*out));
    if (strcmp(folded, rt->double_bounce) == 0) {
        out->transport = xstrdup(QMGR_TRANSPORT_DISCARD);
        out->nexthop = xstrdup("");
        out->cls = ADDR_CLASS_DEFAULT;
        free(folded);
        return 0;
    }
    cls = resolve_class(rt->res, domain, err, errlen);
    if (cls < 0)
        goto out;
    out->cls = cls;
    out->transport = xstrdup("");
    out->nexthop = xstrdup(domain_hop);
    if ((cls == ADDR_CLASS_RELAY || cls == ADDR_CLASS_DEFAULT) &&
        *rt->relayhost != 0) {
        free(out->nexthop);
        out->nexthop = xstrdup(rt->relayhost);
    }
    /* The class transport: its own next hop, if any, beats relayhost. */
    {
        char *t, *n;

        qmgr_route_split(rt->class_transport[cls], &t, &n);
        free(out->transport);
        out->transport = t;
        if (*n != 0) {
            free(out->nexthop);
            out->nexthop = n;
        } else {
            free(n);
        }
    }
    if (cls != ADDR_CLASS_VIRTUAL_ALIAS) {
        found = qmgr_route_table(rt, folded, domain, &value, err, errlen);
        if (found < 0)
            goto out;
        if (found)
            qmgr_route_apply(out, buf_cstr(&value), domain_hop);
    }
    if (*out->transport == 0) {
        snprintf(err, errlen, "no transport for class %s",
                 addr_class_name((enum addr_class)cls));
        goto out;
    }
    rc = 0;
out:
    if (rc < 0)
        qmgr_route_free(out);
    buf_free(&value);
    free(folded);
    return rc;
}

bool qmgr_route_site_match(const char *site, const char *domain,
                           const char *nexthop)
{
    const char *host = nexthop;
    size_t len;

    if (domain != NULL && str_eq_ci(site, domain))
        return true;
    if (nexthop == NULL || *nexthop == 0)
        return false;
    if (str_eq_ci(site, nexthop))
        return true;
    if (str_has_prefix_ci(host, "inet:"))
        host += 5;
    if (*host == '[') {
        const char *end = strchr(host, ']');

        if (end == NULL)
            return false;
        host++;
        len = (size_t)(end - host);
    } else {
        const char *colon = strrchr(host, ':');

        len = colon ? (size_t)(colon - host) : strlen(host);
    }
    return len == strlen(site) && strncasecmp(site, host, len) == 0;
}
