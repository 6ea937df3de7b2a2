/*
 * cleanup_expand - turn the envelope recipients into the recipients that
 * go into the queue file: virtual_alias_maps, then alias_maps for
 * recipients of the local class, recursively, then duplicates removed.
 *
 * The algorithm is Postfix's cleanup_map1n: each recipient starts a list;
 * every list slot is looked up again and again, the first result
 * replacing the slot and the others appended, until a lookup finds
 * nothing, or the address expanded into itself (it is then final: "bob:
 * bob, alice" keeps bob and adds alice).  Nesting per slot is bounded by
 * virtual_alias_recursion_limit and the list size by
 * virtual_alias_expansion_limit; going over either, like a lookup error,
 * fails the whole message with a temporary error, never a silent loss.
 *
 * One expansion step tries virtual_alias_maps (Postfix's address search
 * order) and, when that finds nothing and the domain is local, alias_maps
 * keyed by the lowercased local part (with, then without the
 * recipient_delimiter extension).  Alias values are address lists; the
 * Postfix forms "|command", "/file" and ":include:/file" are not
 * supported yet: each such element is logged and dropped, and an alias
 * left with nothing usable leaves the recipient as it was, so that local
 * delivery decides (and reports) what happens to it.
 *
 * Tables come in through struct cleanup_expand_ops; nothing here does I/O
 * except logging warnings.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup/cleanup.h"
#include "global/addr.h"
#include "util/htable.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

#define REASON_EXPANSION "4.6.0 Alias expansion error"
#define REASON_LOOKUP "4.3.0 Error: temporary lookup failure"

void cleanup_split_targets(const char *value, struct argv *out)
{
    const char *p = value;

    while (*p) {
        const char *start;
        bool quoted = false;
        size_t n;

        while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (*p == 0)
            break;
        start = p;
        for (; *p; p++) {
            if (*p == '\\' && quoted && p[1] != 0) {
                p++;
                continue;
            }
            if (*p == '"')
                quoted = !quoted;
            else if (!quoted && (*p == ',' || *p == ' ' || *p == '\t' ||
                                 *p == '\r' || *p == '\n'))
                break;
        }
        n = (size_t)(p - start);
        if (n >= 2 && start[0] == '<' && start[n - 1] == '>') {
            start++;
            n -= 2;
        }
        if (n > 0)
            argv_addn(out, start, n);
    }
}

struct expander {
    const struct cleanup_expand_cfg *cfg;
    const struct cleanup_expand_ops *ops;
    const char *prefix;
    struct buf result;
};

/*
 * A table result element as an internal-form address: bare names get
 * "@$myorigin", the domain is lowercased.  NULL if it is not an address.
 */
static char *target_address(struct expander *x, const char *elem)
{
    char *addr;
    long at;

    if (strchr(elem, '@') == NULL)
        addr = xasprintf("%s@%s", elem, x->cfg->myorigin);
    else
        addr = xstrdup(elem);
    at = addr_split(addr);
    if (at >= 0)
        str_lower(addr + at + 1);
    if (!cleanup_addr_ok(addr, true)) {
        free(addr);
        return NULL;
    }
    return addr;
}

static bool unsupported_target(const char *elem)
{
    const char *p = elem;

    if (*p == '"')
        p++;
    return *p == '|' || *p == '/' || strncasecmp(p, ":include:", 9) == 0;
}

/* Table value -> addresses appended to out. */
static void expand_value(struct expander *x, const char *table, const char *key,
                         const char *value, bool is_alias, struct argv *out)
{
    struct argv elems = ARGV_INIT;
    char *addr;

    cleanup_split_targets(value, &elems);
    for (size_t i = 0; i < elems.n; i++) {
        if (is_alias && unsupported_target(elems.v[i])) {
            log_warn("%s: %s: alias %s: unsupported delivery type: %.100s "
                     "(only addresses are supported); element ignored",
                     x->prefix, table, key, elems.v[i]);
            continue;
        }
        if ((addr = target_address(x, elems.v[i])) == NULL) {
            log_warn("%s: %s: %s: bad address \"%.100s\" in lookup result; "
                     "element ignored",
                     x->prefix, table, key, elems.v[i]);
            continue;
        }
        argv_add(out, addr);
        free(addr);
    }
    argv_free(&elems);
}

/*
 * One expansion step for addr.  CLEANUP_FOUND with *out filled (possibly
 * empty when every element was unusable), CLEANUP_NOTFOUND, or
 * CLEANUP_LOOKUP_ERROR (logged).
 */
static enum cleanup_lookup expand_step(struct expander *x, const char *addr,
                                       struct argv *out)
{
    long at = addr_split(addr);
    const char *domain = at >= 0 ? addr + at + 1 : "";
    enum cleanup_lookup r;
    char *local, *key;
    size_t base;
    int is_local;

    if ((is_local = x->ops->is_local(x->ops->ctx, domain)) < 0) {
        log_warn("%s: address class lookup for %s failed -- "
                 "message not accepted, try again later",
                 x->prefix, addr);
        return CLEANUP_LOOKUP_ERROR;
    }
    r = x->ops->virtual_alias(x->ops->ctx, addr, is_local > 0, &x->result);
    if (r == CLEANUP_LOOKUP_ERROR) {
        log_warn("%s: virtual_alias_maps lookup for %s failed -- "
                 "message not accepted, try again later",
                 x->prefix, addr);
        return r;
    }
    if (r == CLEANUP_FOUND) {
        expand_value(x, "virtual_alias_maps", addr, buf_cstr(&x->result), false,
                     out);
        return r;
    }
    if (!is_local || x->ops->alias == NULL || at <= 0)
        return CLEANUP_NOTFOUND;

    local = xstrndup(addr, (size_t)at);
    key = addr_local_unquote(local);
    str_lower(key);
    r = x->ops->alias(x->ops->ctx, key, &x->result);
    base = addr_ext_offset(key, x->cfg->delimiters);
    if (r == CLEANUP_NOTFOUND && base < strlen(key)) {
        key[base] = 0;
        r = x->ops->alias(x->ops->ctx, key, &x->result);
    }
    if (r == CLEANUP_LOOKUP_ERROR)
        log_warn("%s: alias_maps lookup for %s failed -- "
                 "message not accepted, try again later",
                 x->prefix, key);
    else if (r == CLEANUP_FOUND)
        expand_value(x, "alias_maps", key, buf_cstr(&x->result), true, out);
    free(key);
    free(local);
    return r;
}

/* Expand one envelope recipient into list (Postfix's map1n). */
static int expand_one(struct expander *x, const char *rcpt, struct argv *list,
                      int *status, const char **reason)
{
    struct htable *been_here = htable_new(16);
    int rc = 0;

    argv_add(list, rcpt);
    for (size_t arg = 0; arg < list->n && rc == 0; arg++) {
        if ((long)list->n > x->cfg->expansion_limit) {
            log_warn("%s: unreasonable virtual_alias_maps map expansion size "
                     "for %s -- message not accepted, try again later",
                     x->prefix, rcpt);
            *status = 4;
            *reason = REASON_EXPANSION;
            rc = -1;
            break;
        }
        for (long count = 0;; count++) {
            struct argv results = ARGV_INIT;
            enum cleanup_lookup r;
            char *lhs, *folded;

            folded = addr_fold(list->v[arg]);
            if (htable_get(been_here, folded) != NULL) {
                free(folded);
                break;
            }
            if (count >= x->cfg->recursion_limit) {
                log_warn("%s: unreasonable virtual_alias_maps map nesting "
                         "for %s -- message not accepted, try again later",
                         x->prefix, rcpt);
                *status = 4;
                *reason = REASON_EXPANSION;
                rc = -1;
                free(folded);
                break;
            }
            r = expand_step(x, list->v[arg], &results);
            if (r != CLEANUP_FOUND) {
                if (r == CLEANUP_LOOKUP_ERROR) {
                    *status = 4;
                    *reason = REASON_LOOKUP;
                    rc = -1;
                }
                free(folded);
                argv_free(&results);
                break;
            }
            if (results.n == 0) {
                log_warn("%s: no usable address in the expansion of %s; "
                         "keeping it as the recipient",
                         x->prefix, list->v[arg]);
                htable_put(been_here, folded, been_here);
                free(folded);
                break;
            }
            lhs = list->v[arg];
            list->v[arg] = xstrdup(results.v[0]);
            for (size_t i = 1; i < results.n; i++)
                argv_add(list, results.v[i]);
            /* An address may expand into itself once; then it is final. */
            for (size_t i = 0; i < results.n; i++)
                if (strcasecmp(results.v[i], lhs) == 0)
                    htable_put(been_here, folded, been_here);
            free(lhs);
            free(folded);
            argv_free(&results);
        }
    }
    htable_free(been_here, NULL);
    return rc;
}

int cleanup_expand(const struct cleanup_expand_cfg *cfg,
                   const struct cleanup_expand_ops *ops,
                   const struct cleanup_rcpt_list *in,
                   struct cleanup_rcpt_list *out, const char *log_prefix,
                   int *status, const char **reason)
{
    struct expander x = {cfg, ops, log_prefix, BUF_INIT};
    struct htable *dups = htable_new(in->n * 2 + 8);
    int rc = 0;

    for (size_t i = 0; i < in->n && rc == 0; i++) {
        const struct cleanup_rcpt *r = &in->v[i];
        const char *orig = *r->orig ? r->orig : r->addr;
        struct argv list = ARGV_INIT;

        rc = expand_one(&x, r->addr, &list, status, reason);
        for (size_t k = 0; k < list.n && rc == 0; k++) {
            char *folded = addr_fold(list.v[k]);

            /* Postfix's duplicate filter forgets beyond its limit. */
            if (htable_get(dups, folded) != NULL) {
                free(folded);
                continue;
            }
            if ((long)htable_count(dups) < cfg->duplicate_limit)
                htable_put(dups, folded, dups);
            free(folded);
            cleanup_rcpt_add(out, list.v[k], cfg->keep_orig ? orig : "",
                             r->notify, r->orcpt);
        }
        argv_free(&list);
    }
    htable_free(dups, NULL);
    buf_free(&x.result);
    return rc;
}
