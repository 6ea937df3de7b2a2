/*
 * smtpd_access - access(5) tables for the restriction lists: the keys
 * Postfix looks up, in its order, and what a result means.
 *
 * Keys come from the client (names, addresses, HELO text) and go to the
 * maps layer, which bounds and case-folds them; pattern tables (pcre,
 * regexp, cidr, socketmap) see only whole strings, never the partial
 * keys (parent domains, networks, user@), as in Postfix.  Results come
 * from the administrator's tables but may carry $1 text from the client
 * through a pattern, so reply text is bounded and made printable by
 * check_reject, and action arguments are bounded and checked before they
 * reach cleanup.  A table that did not open, or a lookup table named
 * inside a result, is a configuration error (451 4.3.5); a lookup that
 * fails is a temporary error (451 4.3.0).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "global/addr.h"
#include "smtpd/smtpd_check_impl.h"
#include "util/htable.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* Table types whose keys are patterns (maps.h lists the same four). */
static bool spec_is_pattern(const char *spec)
{
    static const char *const types[] = {
        "pcre:", "regexp:", "cidr:", "socketmap:"};

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (str_has_prefix_ci(spec, types[i]))
            return true;
    return false;
}

struct check_table *access_table_get(const char *spec)
{
    struct check_table *t;
    char err[512];

    if (check_cfg.tables == NULL)
        check_cfg.tables = htable_new(16);
    if ((t = htable_get(check_cfg.tables, spec)) != NULL)
        return t;
    t = xcalloc(1, sizeof(*t));
    t->spec = xstrdup(spec);
    t->pattern = spec_is_pattern(spec);
    if ((t->map = map_open(spec, err, sizeof(err))) == NULL) {
        /* Every check that needs it will answer 451 4.3.5. */
        log_error("access table %s: %s", spec, err);
        t->error = xstrdup(err);
    }
    htable_put(check_cfg.tables, spec, t);
    return t;
}

static void table_free(void *p)
{
    struct check_table *t = p;

    if (t->map != NULL)
        map_close(t->map);
    free(t->spec);
    free(t->error);
    free(t);
}

void access_tables_free(void)
{
    if (check_cfg.tables != NULL)
        htable_free(check_cfg.tables, table_free);
    check_cfg.tables = NULL;
}

/* ------------------------------------------------------------ results */

/* "5.7.2 text": the DSN into dsn (or def), *text after it. */
static void dsn_split(const char *in, const char *def, char dsn[16],
                      const char **text)
{
    const char *p = in;
    size_t n = 0;

    /* D.DDD.DDD followed by a blank or the end. */
    if (p[0] >= '2' && p[0] <= '5' && p[1] == '.') {
        const char *q = p + 2;
        int part;

        for (part = 0; part < 2; part++) {
            int k = 0;

            while (isdigit((unsigned char)*q) && k < 4) {
                q++;
                k++;
            }
            if (k == 0 || k > 3 || (part == 0 && *q++ != '.'))
                break;
        }
        if (part == 2 && (*q == 0 || *q == ' ' || *q == '\t'))
            n = (size_t)(q - p);
    }
    if (n > 0) {
        memcpy(dsn, p, n);
        dsn[n] = 0;
        p += n;
        while (*p == ' ' || *p == '\t')
            p++;
    } else {
        str_lcpy(dsn, def, 16);
    }
    *text = p;
}

/*
 * Postfix's smtpd_dsn_fix: an address status (X.1.Y) fits what is
 * rejected: sender and recipient codes are swapped for each other, and
 * other classes get X.0.0.
 */
static void dsn_fix(char dsn[16], const char *reply_class)
{
    static const struct {
        char micro;
        const char *sender, *rcpt;
    } map[] = {
        {'1', "4.1.0", "4.1.1"}, {'2', "4.1.8", "4.1.2"},
        {'3', "4.1.7", "4.1.3"}, {'4', "4.1.0", "4.1.4"},
        {'5', "4.1.0", "4.1.5"}, {'6', "4.1.0", "4.1.6"},
        {'7', "4.1.7", "4.1.3"}, {'8', "4.1.8", "4.1.2"},
    };
    const char *result;
    char first = dsn[0];

    if (strncmp(dsn + 1, ".1.", 3) != 0)
        return;
    if (strcmp(reply_class, CHECK_CLASS_SENDER) == 0 ||
        strcmp(reply_class, CHECK_CLASS_RECIPIENT) == 0) {
        bool sender = strcmp(reply_class, CHECK_CLASS_SENDER) == 0;

        result = "4.1.0";
        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
            if (dsn[4] == map[i].micro && dsn[5] == 0)
                result = sender ? map[i].sender : map[i].rcpt;
    } else {
        result = "4.0.0";
    }
    str_lcpy(dsn, result, 16);
    dsn[0] = first;
}

/* The action word (case-insensitive) and the text after it. */
static bool action_is(const char *word, size_t len, const char *name)
{
    return strlen(name) == len && strncasecmp(word, name, len) == 0;
}

/*
 * FILTER, HOLD, DISCARD, REDIRECT, BCC and PREPEND act on the message:
 * they need a transaction (Postfix skips them in client and helo
 * restrictions at connect/HELO time), and after the content the
 * envelope is already with cleanup: only HOLD and DISCARD still work.
 */
static bool can_delegate(struct check_run *r, const char *table,
                         const char *action)
{
    if (r->sender == NULL) {
        log_warn("access table %s: with smtpd_delay_reject=no, action %s is "
                 "always skipped in %s or %s restrictions",
                 table, action, CHECK_CLASS_CLIENT, CHECK_CLASS_HELO);
        return false;
    }
    if (strcmp(r->where, "END-OF-MESSAGE") == 0 &&
        strcasecmp(action, "HOLD") != 0 && strcasecmp(action, "DISCARD") != 0) {
        log_warn("access table %s: action %s is not available in "
                 "smtpd_end_of_data_restrictions (the envelope is already "
                 "written); ignored",
                 table, action);
        return false;
    }
    return true;
}

/* Action text cleanup will carry: bounded, printable, no newline. */
static bool action_text_ok(const char *t)
{
    size_t n = strlen(t);

    if (n == 0 || n > CHECK_ACTION_TEXT_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] < 0x20 || (unsigned char)t[i] == 0x7f)
            return false;
    return true;
}

/* "Name: value": a header cleanup can put in the message. */
static bool text_is_header(const char *t)
{
    size_t n = strcspn(t, ":");

    if (t[n] != ':' || n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
            return false;
    return true;
}

/* An internal-form address (REDIRECT, BCC). */
static bool redirect_addr_ok(const char *t)
{
    struct mailaddr a;
    size_t n = strlen(t), used;
    const char *why;
    char *path;
    bool ok;

    if (strchr(t, '@') == NULL || n > ADDR_PATH_MAX - 2)
        return false;
    path = xasprintf("<%s>", t);
    ok = addr_parse_path(path, n + 2, false, true, &a, &used, &why) == 0;
    if (ok) {
        ok = used == n + 2 && strcmp(a.text, t) == 0 && !a.has_utf8;
        addr_free(&a);
    }
    free(path);
    return ok;
}

static void set_text(char **dst, const char *v)
{
    free(*dst);
    *dst = xstrdup(v);
}

enum check_status access_result(struct check_run *r, const char *table,
                                const char *value, const char *key)
{
    struct smtpd_check_state *st = r->st;
    const char *word = value, *text;
    enum check_status status;
    struct argv words = ARGV_INIT;
    struct check_list *l;
    char dsn[16], err[600];
    size_t wlen;

    while (*word == ' ' || *word == '\t')
        word++;
    wlen = strcspn(word, " \t");
    text = word + wlen;
    while (*text == ' ' || *text == '\t')
        text++;

    if (action_is(word, wlen, "DUNNO"))
        return CHECK_DUNNO;
    if (action_is(word, wlen, "OK") || action_is(word, wlen, "RELAY"))
        return CHECK_OK;
    if (action_is(word, wlen, "REJECT") || action_is(word, wlen, "DEFER")) {
        bool defer = action_is(word, wlen, "DEFER");

        dsn_split(text, defer ? "4.7.1" : "5.7.1", dsn, &text);
        dsn_fix(dsn, r->reply_class);
        return check_reject(r, CHECK_ERR_POLICY,
                            defer ? check_cfg.access_defer_code
                                  : check_cfg.access_reject_code,
                            dsn, "<%s>: %s rejected: %s", r->reply_name,
                            r->reply_class, *text ? text : "Access denied");
    }
    if (action_is(word, wlen, "DEFER_IF_PERMIT") ||
        action_is(word, wlen, "DEFER_IF_REJECT")) {
        dsn_split(text, "4.7.1", dsn, &text);
        dsn_fix(dsn, r->reply_class);
        if (action_is(word, wlen, "DEFER_IF_PERMIT"))
            check_defer_if_permit(r, CHECK_ERR_POLICY, 450, dsn,
                                  "<%s>: %s rejected: %s", r->reply_name,
                                  r->reply_class,
                                  *text ? text : "Service unavailable");
        else
            check_defer_if(r, &st->defer_if_reject, CHECK_ERR_POLICY, 450, dsn,
                           "<%s>: %s rejected: %s", r->reply_name,
                           r->reply_class,
                           *text ? text : "Service unavailable");
        return CHECK_DUNNO;
    }
    if (action_is(word, wlen, "WARN")) {
        check_log(r, "warn", text);
        return CHECK_DUNNO;
    }
    if (action_is(word, wlen, "HOLD") || action_is(word, wlen, "DISCARD")) {
        bool hold = action_is(word, wlen, "HOLD");
        struct buf line = BUF_INIT;

        if (!can_delegate(r, table, hold ? "HOLD" : "DISCARD"))
            return CHECK_DUNNO;
        buf_printf(&line, "<%s>: %s %s", r->reply_name, r->reply_class,
                   *text  ? text
                   : hold ? "triggers HOLD action"
                          : "triggers DISCARD action");
        check_log(r, hold ? "hold" : "discard", line.data);
        buf_free(&line);
        if (hold) {
            st->hold = true;
            return CHECK_DUNNO;
        }
        st->discard = true;
        return CHECK_OK;
    }
    if (action_is(word, wlen, "FILTER") || action_is(word, wlen, "REDIRECT") ||
        action_is(word, wlen, "BCC")) {
        bool filter = action_is(word, wlen, "FILTER");
        bool bcc = action_is(word, wlen, "BCC");
        const char *name = filter ? "FILTER" : bcc ? "BCC" : "REDIRECT";
        struct buf line = BUF_INIT;

        if (!can_delegate(r, table, name))
            return CHECK_DUNNO;
        if (filter ? (strchr(text, ':') == NULL || !action_text_ok(text) ||
                      strpbrk(text, " \t") != NULL)
                   : !redirect_addr_ok(text)) {
            log_warn("access table %s entry \"%s\" requires %s", table, key,
                     filter ? "transport:destination" : "a user@domain target");
            return CHECK_DUNNO;
        }
        if (bcc) {
            /* One BCC per message, as in Postfix: the first one wins. */
            if (st->bcc == NULL)
                st->bcc = xstrdup(text);
            return CHECK_DUNNO;
        }
        buf_printf(&line, "<%s>: %s triggers %s %s", r->reply_name,
                   r->reply_class, name, text);
        check_log(r, filter ? "filter" : "redirect", line.data);
        buf_free(&line);
        set_text(filter ? &st->filter : &st->redirect, text);
        return CHECK_DUNNO;
    }
    if (action_is(word, wlen, "PREPEND")) {
        if (!can_delegate(r, table, "PREPEND"))
            return CHECK_DUNNO;
        if (!text_is_header(text) || !action_text_ok(text)) {
            log_warn("access table %s entry \"%s\" requires header: text",
                     table, key);
            return CHECK_DUNNO;
        }
        /* The same header once, though delayed checks run per RCPT. */
        for (size_t i = 0; i < st->prepend.n; i++)
            if (strcmp(st->prepend.v[i], text) == 0)
                return CHECK_DUNNO;
        if (st->prepend.n >= CHECK_PREPEND_MAX) {
            log_warn("access table %s: more than %d PREPEND headers; \"%s\" "
                     "ignored",
                     table, CHECK_PREPEND_MAX, key);
            return CHECK_DUNNO;
        }
        argv_add(&st->prepend, text);
        return CHECK_DUNNO;
    }
    /* All digits: OK (an out-of-band time stamp, Postfix says). */
    if (wlen > 0 && strspn(value, "0123456789") == strlen(value))
        return CHECK_OK;
    /* 4NN text, 5NN text. */
    if (wlen == 3 && *text && (word[0] == '4' || word[0] == '5') &&
        isdigit((unsigned char)word[1]) && isdigit((unsigned char)word[2])) {
        char def[8];

        snprintf(def, sizeof(def), "%c.7.1", word[0]);
        dsn_split(text, def, dsn, &text);
        dsn_fix(dsn, r->reply_class);
        return check_reject(r, CHECK_ERR_POLICY, atoi(word), dsn,
                            "<%s>: %s rejected: %s", r->reply_name,
                            r->reply_class, *text ? text : "Access denied");
    }
    if (strchr(value, ':') != NULL) {
        log_warn("access table %s has entry with lookup table: %s", table,
                 value);
        log_warn("do not specify lookup tables inside SMTPD access maps");
        log_warn("define a restriction class and specify its name instead.");
        return check_config_error(r);
    }
    if (r->recursion > CHECK_RECURSION_MAX) {
        log_warn("access table %s entry %s causes unreasonable recursion",
                 table, value);
        return check_config_error(r);
    }
    /* Restriction names and classes, evaluated in place. */
    argv_split(&words, value, ", \t\r\n");
    if (words.n == 0) {
        argv_free(&words);
        log_warn("access table %s entry %s has empty value", table, key);
        return CHECK_OK;
    }
    l = check_list_parse(table, &words, false, err, sizeof(err));
    argv_free(&words);
    if (l == NULL) {
        log_warn("access table %s entry \"%s\": %s", table, key, err);
        return check_config_error(r);
    }
    status = check_run_list(r, l);
    check_list_free(l);
    return status;
}

/* ------------------------------------------------------------ lookups */

/*
 * One key in one table.  partial: a derived key (parent domain, network,
 * user@), which pattern tables never see.  1 found (value in val), 0 not
 * found, -1 failed (*st holds the REJECT).
 */
static int table_get(struct check_run *r, struct check_table *t,
                     const char *key, bool partial, struct buf *val,
                     enum check_status *st)
{
    char err[512] = "";
    enum map_result res;

    if (partial && t->pattern)
        return 0;
    if (t->map == NULL) {
        log_warn("access table %s is unavailable: %s", t->spec, t->error);
        *st = check_config_error(r);
        return -1;
    }
    res = map_lookup(t->map, key, val, err, sizeof(err));
    if (res == MAP_FOUND)
        return 1;
    if (res == MAP_NOTFOUND)
        return 0;
    log_warn("access table %s: lookup of \"%s\" failed: %s", t->spec, key, err);
    *st = check_reject(r, CHECK_ERR_RESOURCE, 451, "4.3.0",
                       "<%s>: Temporary lookup failure", r->reply_name);
    return -1;
}

/* Look key up; on a hit evaluate the result.  *found tells a hit. */
static enum check_status lookup(struct check_run *r, struct check_table *t,
                                const char *key, bool partial, bool *found)
{
    enum check_status st = CHECK_DUNNO;
    struct buf val = BUF_INIT;
    int rc = table_get(r, t, key, partial, &val, &st);

    *found = rc != 0;
    if (rc > 0)
        st = access_result(r, t->spec, buf_cstr(&val), key);
    buf_free(&val);
    return st;
}

enum check_status access_key(struct check_run *r, struct check_table *t,
                             const char *key, bool *found)
{
    return lookup(r, t, key, false, found);
}

static bool is_numeric_addr(const char *s)
{
    unsigned char buf[16];

    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* domain, then its parents: .parent (or parent with smtpd_access_maps in
 * parent_domain_matches_subdomains).  first_partial: even the whole name
 * is a derived key (the domain of an address). */
static enum check_status domain_walk(struct check_run *r, struct check_table *t,
                                     const char *domain, bool first_partial,
                                     bool *found)
{
    const char *name = domain, *next;
    bool partial = first_partial;
    enum check_status st;

    *found = false;
    while (*name != 0) {
        st = lookup(r, t, name, partial, found);
        if (st != CHECK_DUNNO || *found)
            return st;
        /* No subdomain magic for numeric host names. */
        if (is_numeric_addr(domain))
            break;
        if ((next = strchr(name + 1, '.')) == NULL)
            break;
        if (check_cfg.access_parent_style)
            next++;
        if (*next == 0 || (next[0] == '.' && next[1] == 0))
            break;
        name = next;
        partial = true;
    }
    return CHECK_DUNNO;
}

enum check_status access_domain(struct check_run *r, struct check_table *t,
                                const char *domain, bool *found)
{
    return domain_walk(r, t, domain, false, found);
}

/* 1.2.3.4, then 1.2.3, 1.2, 1 (IPv6: groups from the right). */
static enum check_status addr_walk(struct check_run *r, struct check_table *t,
                                   const char *addr, bool *found)
{
    char *a = xstrdup(addr);
    char delim = strchr(a, ':') != NULL ? ':' : '.';
    bool partial = false;
    enum check_status st = CHECK_DUNNO;
    char *cut;

    *found = false;
    for (;;) {
        st = lookup(r, t, a, partial, found);
        if (st != CHECK_DUNNO || *found)
            break;
        if ((cut = strrchr(a, delim)) == NULL)
            break;
        *cut = 0;
        /* "2001:db8::" ends in an empty group: cut once more. */
        while (*a && a[strlen(a) - 1] == delim)
            a[strlen(a) - 1] = 0;
        if (*a == 0)
            break;
        partial = true;
    }
    free(a);
    return st;
}

enum check_status access_client(struct check_run *r, struct check_table *t,
                                const char *name, const char *addr)
{
    enum check_status st;
    bool found;

    st = domain_walk(r, t, name, false, &found);
    if (st != CHECK_DUNNO || found)
        return st;
    st = addr_walk(r, t, addr, &found);
    return st;
}

/* Sender-specified routing in a recipient makes an OK too dangerous. */
static enum check_status
suspicious(struct check_run *r, const struct mailaddr *a, enum check_status st)
{
    if (st == CHECK_OK && !check_cfg.allow_untrusted_routing &&
        strcmp(r->reply_class, CHECK_CLASS_RECIPIENT) == 0) {
        long at = addr_split(a->text);
        size_t n = at >= 0 ? (size_t)at : strlen(a->text);

        for (size_t i = 0; i < n; i++)
            if (strchr("@!%", a->text[i]) != NULL)
                return CHECK_DUNNO;
    }
    return st;
}

enum check_status access_mail(struct check_run *r, struct check_table *t,
                              const struct mailaddr *a)
{
    long at = addr_split(a->text);
    size_t llen = at >= 0 ? (size_t)at : strlen(a->text), ext;
    char *local = xstrndup(a->text, llen), *key;
    enum check_status st;
    bool found;

    ext = addr_ext_offset(local, check_cfg.delimiters);
#define MAIL_STEP(expr)                                                        \
    do {                                                                       \
        st = (expr);                                                           \
        if (st != CHECK_DUNNO || found)                                        \
            goto done;                                                         \
    } while (0)

    /* user+ext@domain (user@domain without an extension) */
    MAIL_STEP(lookup(r, t, a->text, false, &found));
    /* user@domain */
    if (ext < llen) {
        key = xasprintf("%.*s@%s", (int)ext, local, a->domain);
        st = lookup(r, t, key, true, &found);
        free(key);
        if (st != CHECK_DUNNO || found)
            goto done;
    }
    /* domain, parent domains */
    MAIL_STEP(domain_walk(r, t, a->domain, true, &found));
    /* user+ext@ */
    key = xasprintf("%s@", local);
    st = lookup(r, t, key, true, &found);
    free(key);
    if (st != CHECK_DUNNO || found)
        goto done;
    /* user@ */
    if (ext < llen) {
        key = xasprintf("%.*s@", (int)ext, local);
        st = lookup(r, t, key, true, &found);
        free(key);
        if (st != CHECK_DUNNO || found)
            goto done;
    }
    st = CHECK_DUNNO;
done:
#undef MAIL_STEP
    free(local);
    return suspicious(r, a, st);
}
