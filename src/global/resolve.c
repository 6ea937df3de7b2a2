/*
 * resolve - recipient address classes, existence and mailbox location.
 *
 * Everything comes from the configuration (trusted) and lookup tables
 * (administrator data, still checked: a mailbox path from a table may not
 * be absolute or climb out of virtual_mailbox_base with ".."); addresses
 * come from the network through the SMTP parser.  Lookup failures are
 * MAP_ERROR so callers defer instead of rejecting good mail; a table that
 * cannot be opened makes resolver_open fail, naming the parameter, so a
 * daemon with a broken configuration does not start.
 *
 * Domain lists (mydestination, virtual_*_domains, relay_domains) hold
 * names, ".parent" patterns that match every subdomain, and type:table
 * entries in which the domain is looked up as a key.
 *
 * With passdb set, an account of the password database is a virtual
 * mailbox recipient too (one list of users for smtpd, local and the
 * POP3/IMAP logins).  Only auth reads that file, so the resolver asks it
 * (auth_lookup, no password in the answer) after virtual_mailbox_maps had
 * no entry; no answer is MAP_ERROR, a temporary failure.  Nothing is
 * cached: auth answers from memory, and an account added or removed
 * counts from the next recipient on.
 */
#include "global/resolve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "global/addr.h"
#include "global/auth_client.h"
#include "util/argv.h"
#include "util/mem.h"
#include "util/str.h"

struct domain_list {
    struct argv names;      /* lowercased names and ".parent" patterns */
    struct maplist *tables; /* NULL when the list has none */
};

struct resolver {
    struct domain_list mydestination;
    struct domain_list virtual_alias_domains;
    struct domain_list virtual_mailbox_domains;
    struct domain_list relay_domains;
    struct maplist *virtual_mailbox_maps;
    struct maplist *virtual_alias_maps;
    struct maplist *alias_maps;
    struct maplist *local_recipient_maps;
    struct maplist *virtual_uid_maps;
    struct maplist *virtual_gid_maps;
    struct map *passwd;
    char *delimiters;
    char *mailbox_base;
    char *home_mailbox;
    long long minimum_uid;
    bool passdb; /* passdb is set: ask auth about accounts */
};

const char *addr_class_name(enum addr_class c)
{
    switch (c) {
    case ADDR_CLASS_LOCAL:
        return "local";
    case ADDR_CLASS_VIRTUAL_ALIAS:
        return "virtual_alias";
    case ADDR_CLASS_VIRTUAL_MAILBOX:
        return "virtual_mailbox";
    case ADDR_CLASS_RELAY:
        return "relay";
    case ADDR_CLASS_DEFAULT:
        return "default";
    }
    return "unknown";
}

static int domain_list_open(struct domain_list *dl, struct config *cfg,
                            const char *param, char *err, size_t errlen)
{
    struct argv items = ARGV_INIT;
    struct buf tables = BUF_INIT;
    char sub[256];
    int rc = -1;

    if (maps_split_list(config_str(cfg, param), &items, sub, sizeof(sub)) < 0) {
        snprintf(err, errlen, "%s: %s", param, sub);
        goto out;
    }
    for (size_t i = 0; i < items.n; i++) {
        const char *item = items.v[i];

        if (item[0] == '/' || item[0] == '!') {
            snprintf(err, errlen,
                     "%s: '%s': files and negation are not supported in "
                     "domain lists",
                     param, item);
            goto out;
        }
        if (strchr(item, ':') != NULL && item[0] != '[') {
            buf_printf(&tables, "%s%s", tables.len ? " " : "", item);
        } else {
            char *name = addr_fold(item);

            argv_add(&dl->names, name);
            free(name);
        }
    }
    if (tables.len > 0 && (dl->tables = maplist_open(buf_cstr(&tables), sub,
                                                     sizeof(sub))) == NULL) {
        snprintf(err, errlen, "%s: %s", param, sub);
        goto out;
    }
    rc = 0;
out:
    argv_free(&items);
    buf_free(&tables);
    return rc;
}

static void domain_list_close(struct domain_list *dl)
{
    argv_free(&dl->names);
    maplist_close(dl->tables);
}

/* 1 match, 0 no match, -1 lookup error. */
static int domain_list_match(struct domain_list *dl, const char *domain,
                             char *err, size_t errlen)
{
    size_t dlen = strlen(domain);
    struct buf value = BUF_INIT;
    enum map_result r;

    for (size_t i = 0; i < dl->names.n; i++) {
        const char *name = dl->names.v[i];
        size_t nlen = strlen(name);

        if (str_eq_ci(name, domain))
            return 1;
        if (name[0] == '.' && dlen > nlen &&
            str_eq_ci(domain + dlen - nlen, name))
            return 1;
    }
    if (dl->tables == NULL)
        return 0;
    r = maplist_lookup(dl->tables, domain, &value, err, errlen);
    buf_free(&value);
    return r == MAP_FOUND ? 1 : r == MAP_NOTFOUND ? 0 : -1;
}

static int resolver_maps(struct maplist **out, struct config *cfg,
                         const char *param, char *err, size_t errlen)
{
    char sub[256];

    if ((*out = maplist_open(config_str(cfg, param), sub, sizeof(sub))) ==
        NULL) {
        snprintf(err, errlen, "%s: %s", param, sub);
        return -1;
    }
    return 0;
}

struct resolver *resolver_open(struct config *cfg, char *err, size_t errlen)
{
    struct resolver *r = xcalloc(1, sizeof(*r));
    const struct {
        const char *param;
        struct domain_list *list;
    } domains[] = {
        {"mydestination", &r->mydestination},
        {"virtual_alias_domains", &r->virtual_alias_domains},
        {"virtual_mailbox_domains", &r->virtual_mailbox_domains},
        {"relay_domains", &r->relay_domains},
    };
    const struct {
        const char *param;
        struct maplist **maps;
    } tables[] = {
        {"virtual_mailbox_maps", &r->virtual_mailbox_maps},
        {"virtual_alias_maps", &r->virtual_alias_maps},
        {"alias_maps", &r->alias_maps},
        {"local_recipient_maps", &r->local_recipient_maps},
        {"virtual_uid_maps", &r->virtual_uid_maps},
        {"virtual_gid_maps", &r->virtual_gid_maps},
    };
    char sub[256];

    for (size_t i = 0; i < sizeof(domains) / sizeof(domains[0]); i++)
        if (domain_list_open(domains[i].list, cfg, domains[i].param, err,
                             errlen) < 0)
            goto fail;
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
        if (resolver_maps(tables[i].maps, cfg, tables[i].param, err, errlen) <
            0)
            goto fail;
    if ((r->passwd = map_open("unix:passwd.byname", sub, sizeof(sub))) ==
        NULL) {
        snprintf(err, errlen, "%s", sub);
        goto fail;
    }
    r->delimiters = xstrdup(config_str(cfg, "recipient_delimiter"));
    r->mailbox_base = xstrdup(config_str(cfg, "virtual_mailbox_base"));
    r->home_mailbox = xstrdup(config_str(cfg, "home_mailbox"));
    r->minimum_uid = config_int(cfg, "virtual_minimum_uid");
    r->passdb = *config_str(cfg, "passdb") != 0;
    return r;

fail:
    resolver_close(r);
    return NULL;
}

void resolver_close(struct resolver *r)
{
    if (r == NULL)
        return;
    domain_list_close(&r->mydestination);
    domain_list_close(&r->virtual_alias_domains);
    domain_list_close(&r->virtual_mailbox_domains);
    domain_list_close(&r->relay_domains);
    maplist_close(r->virtual_mailbox_maps);
    maplist_close(r->virtual_alias_maps);
    maplist_close(r->alias_maps);
    maplist_close(r->local_recipient_maps);
    maplist_close(r->virtual_uid_maps);
    maplist_close(r->virtual_gid_maps);
    map_close(r->passwd);
    free(r->delimiters);
    free(r->mailbox_base);
    free(r->home_mailbox);
    free(r);
}

struct maplist *resolve_virtual_alias_maps(struct resolver *r)
{
    return r->virtual_alias_maps;
}

struct maplist *resolve_alias_maps(struct resolver *r)
{
    return r->alias_maps;
}

int resolve_class(struct resolver *r, const char *domain, char *err,
                  size_t errlen)
{
    struct domain_list *lists[] = {
        &r->mydestination,
        &r->virtual_alias_domains,
        &r->virtual_mailbox_domains,
        &r->relay_domains,
    };
    static const enum addr_class classes[] = {
        ADDR_CLASS_LOCAL,
        ADDR_CLASS_VIRTUAL_ALIAS,
        ADDR_CLASS_VIRTUAL_MAILBOX,
        ADDR_CLASS_RELAY,
    };

    if (*domain == 0)
        return ADDR_CLASS_LOCAL;
    /* Postfix's precedence: the first list that has the domain wins. */
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        int m = domain_list_match(lists[i], domain, err, errlen);

        if (m != 0)
            return m < 0 ? -1 : (int)classes[i];
    }
    return ADDR_CLASS_DEFAULT;
}

/* The lowercased domain of an internal-form address ("" when none). */
static char *resolve_domain(const char *addr)
{
    long at = addr_split(addr);

    return addr_fold(at >= 0 ? addr + at + 1 : "");
}

/* Lookup in one maplist with the address search order. */
static enum map_result resolve_find(struct resolver *r, struct maplist *l,
                                    const char *addr, bool is_local,
                                    struct buf *value, char *err, size_t errlen)
{
    return maplist_lookup_addr(l, addr, r->delimiters, is_local, value, err,
                               errlen);
}

/*
 * The passdb account of a virtual mailbox address: the address as given,
 * then without its recipient_delimiter extension (user+ext@domain).
 */
static enum map_result resolve_passdb(struct resolver *r, const char *addr,
                                      struct auth_result *acct, char *err,
                                      size_t errlen)
{
    long at = addr_split(addr);
    int rc;

    if (!r->passdb)
        return MAP_NOTFOUND;
    rc = auth_lookup(addr, false, acct, err, errlen);
    if (rc == AUTH_FAIL && at > 0) {
        char *local = xstrndup(addr, (size_t)at);
        size_t ext = addr_ext_offset(local, r->delimiters);

        if (ext < (size_t)at) {
            char *base = xasprintf("%.*s%s", (int)ext, addr, addr + at);

            rc = auth_lookup(base, false, acct, err, errlen);
            free(base);
        }
        free(local);
    }
    if (rc == AUTH_TEMPFAIL)
        return MAP_ERROR;
    return rc == AUTH_OK ? MAP_FOUND : MAP_NOTFOUND;
}

enum map_result resolve_recipient_known(struct resolver *r, const char *addr,
                                        char *err, size_t errlen)
{
    char *domain = resolve_domain(addr);
    int cls = resolve_class(r, domain, err, errlen);
    struct buf value = BUF_INIT;
    enum map_result res;

    free(domain);
    if (cls < 0)
        return MAP_ERROR;
    if (cls == ADDR_CLASS_RELAY || cls == ADDR_CLASS_DEFAULT)
        return MAP_FOUND;
    /* As in Postfix, a virtual alias makes any address known. */
    res = resolve_find(r, r->virtual_alias_maps, addr, cls == ADDR_CLASS_LOCAL,
                       &value, err, errlen);
    if (res == MAP_NOTFOUND) {
        switch (cls) {
        case ADDR_CLASS_LOCAL:
            if (maplist_empty(r->local_recipient_maps)) {
                res = MAP_FOUND;
                break;
            }
            res = resolve_find(r, r->local_recipient_maps, addr, true, &value,
                               err, errlen);
            if (res == MAP_NOTFOUND)
                res = resolve_find(r, r->alias_maps, addr, true, &value, err,
                                   errlen);
            break;
        case ADDR_CLASS_VIRTUAL_MAILBOX:
            res = resolve_find(r, r->virtual_mailbox_maps, addr, false, &value,
                               err, errlen);
            if (res == MAP_NOTFOUND) {
                struct auth_result acct;

                res = resolve_passdb(r, addr, &acct, err, errlen);
            }
            break;
        default:
            break;
        }
    }
    buf_free(&value);
    return res;
}

/*
 * A mailbox path from a table or home_mailbox: relative, no ".."
 * component.  Returns NULL if fine, else the complaint.
 */
static const char *resolve_bad_path(const char *p)
{
    if (*p == '/')
        return "is an absolute path";
    for (const char *s = p; *s != 0;) {
        size_t n = strcspn(s, "/");

        if (n == 2 && s[0] == '.' && s[1] == '.')
            return "contains a '..' component";
        s += n;
        if (*s == '/')
            s++;
    }
    return NULL;
}

/* dir "/" rel, without doubling a slash at the join. */
static void resolve_join(struct buf *path, const char *dir, const char *rel)
{
    size_t n = strlen(dir);

    while (n > 1 && dir[n - 1] == '/')
        n--;
    buf_reset(path);
    buf_append(path, dir, n);
    if (n == 0 || dir[n - 1] != '/')
        buf_putc(path, '/');
    buf_puts(path, rel);
}

/* An id from virtual_uid_maps / virtual_gid_maps, or our own. */
static enum map_result resolve_id(struct resolver *r, struct maplist *l,
                                  const char *param, const char *addr,
                                  long long own, long long minimum,
                                  long long *id, char *err, size_t errlen)
{
    struct buf value = BUF_INIT;
    enum map_result res;

    if (maplist_empty(l)) {
        *id = own;
        return MAP_FOUND;
    }
    res = resolve_find(r, l, addr, false, &value, err, errlen);
    if (res == MAP_NOTFOUND) {
        snprintf(err, errlen, "recipient %s: no entry in %s", addr, param);
        res = MAP_ERROR;
    } else if (res == MAP_FOUND && (!str_to_llong(buf_cstr(&value), id) ||
                                    *id < minimum || *id > 0x7fffffffLL)) {
        snprintf(err, errlen, "recipient %s: bad id '%s' in %s", addr,
                 buf_cstr(&value), param);
        res = MAP_ERROR;
    }
    buf_free(&value);
    return res;
}

/*
 * The mailbox of a passdb account: its home + "/Maildir/", or
 * virtual_mailbox_base/domain/user/ when it has none; its uid and gid,
 * or virtual_uid_maps / virtual_gid_maps where the account has none.
 */
static enum map_result
resolve_passdb_mailbox(struct resolver *r, const char *addr,
                       const struct auth_result *acct, struct buf *path,
                       uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
    enum map_result res = MAP_FOUND;
    const char *bad;
    long long u = acct->uid, g = acct->gid;

    if (*acct->home != 0) {
        if ((bad = resolve_bad_path(acct->home + 1)) != NULL ||
            acct->home[0] != '/') {
            snprintf(err, errlen, "passdb home '%s' of %s %s", acct->home, addr,
                     bad ? bad : "is not absolute");
            return MAP_ERROR;
        }
        resolve_join(path, acct->home, "Maildir/");
    } else {
        struct buf rel = BUF_INIT;
        long at;

        if (*r->mailbox_base == 0) {
            snprintf(err, errlen,
                     "passdb account %s has no home and "
                     "virtual_mailbox_base is not set",
                     addr);
            return MAP_ERROR;
        }
        /* The account's own name: the address may carry an extension. */
        at = addr_split(acct->user);
        buf_printf(&rel, "%s/%.*s/", at >= 0 ? acct->user + at + 1 : "",
                   (int)(at >= 0 ? at : (long)strlen(acct->user)), acct->user);
        if ((bad = resolve_bad_path(rel.data)) != NULL) {
            snprintf(err, errlen, "mailbox '%s' of passdb account %s %s",
                     rel.data, addr, bad);
            buf_free(&rel);
            return MAP_ERROR;
        }
        resolve_join(path, r->mailbox_base, rel.data);
        buf_free(&rel);
    }
    if (u < 0)
        res = resolve_id(r, r->virtual_uid_maps, "virtual_uid_maps", addr,
                         geteuid(), r->minimum_uid, &u, err, errlen);
    else if (u < r->minimum_uid) {
        snprintf(err, errlen,
                 "passdb uid %lld of %s is below "
                 "virtual_minimum_uid",
                 u, addr);
        res = MAP_ERROR;
    }
    if (res == MAP_FOUND && g < 0)
        res = resolve_id(r, r->virtual_gid_maps, "virtual_gid_maps", addr,
                         getegid(), 0, &g, err, errlen);
    if (res == MAP_FOUND) {
        *uid = (uid_t)u;
        *gid = (gid_t)g;
    }
    return res;
}

static enum map_result
resolve_virtual_mailbox(struct resolver *r, const char *addr, struct buf *path,
                        uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
    struct buf value = BUF_INIT;
    enum map_result res;
    const char *bad, *mbox;
    long long u, g;

    if (*r->mailbox_base == 0 && !r->passdb) {
        snprintf(err, errlen, "virtual_mailbox_base is not set");
        return MAP_ERROR;
    }
    res = resolve_find(r, r->virtual_mailbox_maps, addr, false, &value, err,
                       errlen);
    if (res == MAP_NOTFOUND) {
        struct auth_result acct;

        res = resolve_passdb(r, addr, &acct, err, errlen);
        if (res == MAP_FOUND)
            res = resolve_passdb_mailbox(r, addr, &acct, path, uid, gid, err,
                                         errlen);
        else if (res == MAP_NOTFOUND)
            snprintf(err, errlen, "unknown virtual mailbox %s", addr);
        goto out;
    }
    if (res != MAP_FOUND)
        goto out;
    if (*r->mailbox_base == 0) {
        snprintf(err, errlen, "virtual_mailbox_base is not set");
        res = MAP_ERROR;
        goto out;
    }
    mbox = buf_cstr(&value);
    if ((bad = resolve_bad_path(mbox)) != NULL) {
        snprintf(err, errlen, "virtual_mailbox_maps result '%s' for %s %s",
                 mbox, addr, bad);
        res = MAP_ERROR;
        goto out;
    }
    if (mbox[strlen(mbox) - 1] != '/') {
        snprintf(err, errlen,
                 "mailbox file (mbox) delivery is not supported: '%s'", mbox);
        res = MAP_NOTFOUND;
        goto out;
    }
    if ((res = resolve_id(r, r->virtual_uid_maps, "virtual_uid_maps", addr,
                          geteuid(), r->minimum_uid, &u, err, errlen)) !=
            MAP_FOUND ||
        (res = resolve_id(r, r->virtual_gid_maps, "virtual_gid_maps", addr,
                          getegid(), 0, &g, err, errlen)) != MAP_FOUND)
        goto out;
    resolve_join(path, r->mailbox_base, mbox);
    *uid = (uid_t)u;
    *gid = (gid_t)g;
out:
    buf_free(&value);
    return res;
}

/*
 * Fields of a unix:passwd.byname result "name:pw:uid:gid:gecos:home:shell",
 * taken from both ends so that a gecos field holding ':' (possible with
 * NSS back ends) cannot shift the others.
 */
static bool resolve_passwd_fields(char *line, long long *uid, long long *gid,
                                  char **home)
{
    char *f[4], *p = line, *shell;

    for (int i = 0; i < 4; i++) {
        f[i] = p;
        if ((p = strchr(p, ':')) == NULL)
            return false;
        *p++ = 0;
    }
    if ((shell = strrchr(p, ':')) == NULL)
        return false;
    *shell = 0;
    if ((*home = strrchr(p, ':')) == NULL)
        return false;
    (*home)++;
    return str_to_llong(f[2], uid) && str_to_llong(f[3], gid) && **home != 0;
}

static enum map_result resolve_local_mailbox(struct resolver *r,
                                             const char *addr, struct buf *path,
                                             uid_t *uid, gid_t *gid, char *err,
                                             size_t errlen)
{
    long at = addr_split(addr);
    char *local = xstrndup(addr, at >= 0 ? (size_t)at : strlen(addr));
    struct buf value = BUF_INIT;
    enum map_result res;
    const char *bad;
    long long u, g;
    char *home;

    local[addr_ext_offset(local, r->delimiters)] = 0;
    res = map_lookup(r->passwd, local, &value, err, errlen);
    if (res == MAP_NOTFOUND)
        snprintf(err, errlen, "unknown user: \"%s\"", local);
    if (res != MAP_FOUND)
        goto out;
    if (!resolve_passwd_fields(value.data, &u, &g, &home)) {
        snprintf(err, errlen, "user %s: malformed password entry", local);
        res = MAP_ERROR;
        goto out;
    }
    if (*r->home_mailbox == 0 ||
        r->home_mailbox[strlen(r->home_mailbox) - 1] != '/') {
        snprintf(err, errlen,
                 "mailbox file (mbox) delivery is not supported: "
                 "home_mailbox = '%s'",
                 r->home_mailbox);
        res = MAP_NOTFOUND;
        goto out;
    }
    if ((bad = resolve_bad_path(r->home_mailbox)) != NULL) {
        snprintf(err, errlen, "home_mailbox '%s' %s", r->home_mailbox, bad);
        res = MAP_ERROR;
        goto out;
    }
    resolve_join(path, home, r->home_mailbox);
    *uid = (uid_t)u;
    *gid = (gid_t)g;
out:
    buf_free(&value);
    free(local);
    return res;
}

enum map_result resolve_mailbox(struct resolver *r, const char *addr,
                                struct buf *path, uid_t *uid, gid_t *gid,
                                char *err, size_t errlen)
{
    char *domain = resolve_domain(addr);
    int cls = resolve_class(r, domain, err, errlen);

    free(domain);
    if (cls < 0)
        return MAP_ERROR;
    if (cls == ADDR_CLASS_VIRTUAL_MAILBOX)
        return resolve_virtual_mailbox(r, addr, path, uid, gid, err, errlen);
    if (cls == ADDR_CLASS_LOCAL)
        return resolve_local_mailbox(r, addr, path, uid, gid, err, errlen);
    snprintf(err, errlen, "%s: %s domain has no mailboxes here", addr,
             addr_class_name((enum addr_class)cls));
    return MAP_NOTFOUND;
}
