/*
 * config - main.cf: loading, setting, the getters and config_check().
 *
 * Given a configuration directory (or a main.cf path) it reads main.cf,
 * which it trusts no more than any other input: every line is checked
 * against the parameter table (params.c) and Postfix's list of names
 * (postfix_names.c); every literal value is checked for its type at once
 * (config_value.c), and every value again after $name expansion
 * (config_expand.c) by config_check().  Errors come back as
 * "path:line: message" for the caller to log; only a getter called with a
 * name that is not in the table panics (a bug), and a getter that meets a
 * value config_check() would have refused is fatal.
 *
 * A name nobody defines expands to "" as in Postfix, but config_check()
 * reports it as the typo it almost always is.  Expanded values are cached;
 * a later config_set() retires the caches without freeing them, so
 * pointers handed out stay valid until config_free().
 */
#include "global/config.h"
#include "global/config_impl.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "global/cf_lines.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/htable.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* Bounds on what main.cf may make us do. */
#define MAINCF_SIZE_MAX (16 * 1024 * 1024)

static struct config *config_global_ptr;

/* ---- small helpers ---- */

static bool name_valid(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > CONFIG_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!config_name_char((unsigned char)name[i]))
            return false;
    return true;
}

/*
 * Postfix derives per-transport names from default_* parameters
 * (mytransport_destination_concurrency_limit from
 * default_destination_concurrency_limit) for any master.cf service.
 */
static bool postfix_derived_name(const char *name)
{
    const char *us = strchr(name, '_');
    char buf[CONFIG_NAME_MAX + 16];

    if (us == NULL || us == name || us[1] == 0)
        return false;
    if ((size_t)snprintf(buf, sizeof(buf), "default_%s", us + 1) >= sizeof(buf))
        return false;
    return postfix_param_known(buf);
}

/* ---- entries ---- */

static void entry_clear_cache(struct config *cfg, struct config_entry *e)
{
    if (e->expanded == NULL && e->list == NULL)
        return;
    struct config_retired *r = xmalloc(sizeof(*r));
    r->text = e->expanded;
    r->list = e->list;
    r->next = cfg->retired;
    cfg->retired = r;
    e->expanded = NULL;
    e->list = NULL;
}

static int extra_clear_cache(const char *key, void *value, void *ctx)
{
    (void)key;
    entry_clear_cache(ctx, value);
    return 0;
}

/* Any value may feed any other through $name: forget every expansion. */
static void config_clear_caches(struct config *cfg)
{
    for (size_t i = 0; i < param_table_count; i++) {
        entry_clear_cache(cfg, &cfg->params[i]);
        /* mydomain's default follows myhostname */
        if (cfg->params[i].computed != NULL) {
            struct config_retired *r = xcalloc(1, sizeof(*r));
            r->text = cfg->params[i].computed;
            r->next = cfg->retired;
            cfg->retired = r;
            cfg->params[i].computed = NULL;
        }
    }
    htable_walk(cfg->extra, extra_clear_cache, cfg);
}

static void entry_free(struct config_entry *e)
{
    free(e->raw);
    free(e->origin);
    free(e->computed);
    free(e->expanded);
    if (e->list != NULL) {
        argv_free(e->list);
        free(e->list);
    }
}

static void extra_free(void *value)
{
    entry_free(value);
    free(value);
}

/* The entry for name (table or extra), NULL if none; *pp the table row. */
struct config_entry *config_entry_lookup(struct config *cfg, const char *name,
                                         const struct param_def **pp)
{
    const struct param_def *p = param_find(name);

    if (pp != NULL)
        *pp = p;
    if (p != NULL)
        return &cfg->params[p - param_table];
    return htable_get(cfg->extra, name);
}

const char *config_entry_text(const struct config_entry *e,
                              const struct param_def *p)
{
    if (e->raw != NULL)
        return e->raw;
    return p != NULL ? p->def : "";
}

static void entry_store(struct config *cfg, struct config_entry *e,
                        const char *value, const char *origin)
{
    free(e->raw);
    free(e->origin);
    e->raw = xstrdup(value);
    e->origin = xstrdup(origin);
    config_clear_caches(cfg);
}

/* ---- setting values ---- */

static bool same_as_default(const struct param_def *p, const char *value)
{
    const char *def = p->def != NULL ? p->def : "";
    bool a, b;

    long long m, n;
    char msg[256];

    if (p->type == PARAM_BOOL && str_to_bool(value, &a) && str_to_bool(def, &b))
        return a == b;
    if ((p->type == PARAM_INT || p->type == PARAM_TIME ||
         p->type == PARAM_SIZE) &&
        config_param_number(p, value, &m, msg, sizeof(msg)) &&
        config_param_number(p, def, &n, msg, sizeof(msg)))
        return m == n;
    return strcmp(value, def) == 0;
}

/*
 * Store name = value from `origin`.  pending (config_load only) collects
 * names nobody knows, to be accepted later if something references them;
 * without it such a name is an error.
 */
static int config_assign(struct config *cfg, const char *name,
                         const char *value, const char *origin,
                         struct argv *warnings, struct argv *pending, char *err,
                         size_t errlen)
{
    const struct param_def *p;
    struct config_entry *e = config_entry_lookup(cfg, name, &p);
    char msg[512];
    char sv[VALUE_SHOWN_MAX];

    if (p != NULL) {
        /* Values with $name are checked once expanded (config_check). */
        if (strchr(value, '$') == NULL &&
            config_param_check(p, value, msg, sizeof(msg)) < 0) {
            config_fmt_err(err, errlen, "%s: parameter '%s': %s", origin, name,
                           msg);
            return -1;
        }
        if ((p->flags & PARAM_NOT_YET) && warnings != NULL &&
            !same_as_default(p, value)) {
            const char *def = p->def != NULL ? p->def : "";
            char *w =
                xasprintf("%s: parameter '%s' is not implemented yet; "
                          "the value '%s' is ignored%s%s%s",
                          origin, name, config_shown(sv, sizeof(sv), value),
                          *def ? " (only '" : "", def, *def ? "' is)" : "");
            argv_add(warnings, w);
            free(w);
        }
        entry_store(cfg, e, value, origin);
        return 0;
    }
    if (e == NULL) {
        if (postfix_param_known(name) || postfix_derived_name(name)) {
            if (warnings != NULL) {
                char *w = xasprintf("%s: parameter '%s' is a Postfix "
                                    "parameter posthorn does not implement; "
                                    "ignored",
                                    origin, name);
                argv_add(warnings, w);
                free(w);
            }
        } else if (pending != NULL) {
            argv_add(pending, name);
        } else {
            config_fmt_err(err, errlen, "%s: unknown parameter '%s'", origin,
                           name);
            return -1;
        }
        e = xcalloc(1, sizeof(*e));
        htable_put(cfg->extra, name, e);
    }
    entry_store(cfg, e, value, origin);
    return 0;
}

/* ---- the public interface ---- */

struct config *config_new(void)
{
    struct config *cfg = xcalloc(1, sizeof(*cfg));

    (void)param_find(""); /* sorts param_table on first use */
    cfg->params = xcalloc(param_table_count, sizeof(*cfg->params));
    cfg->extra = htable_new(16);
    return cfg;
}

void config_free(struct config *cfg)
{
    if (cfg == NULL)
        return;
    if (config_global_ptr == cfg)
        config_global_ptr = NULL;
    for (size_t i = 0; i < param_table_count; i++)
        entry_free(&cfg->params[i]);
    free(cfg->params);
    htable_free(cfg->extra, extra_free);
    while (cfg->retired != NULL) {
        struct config_retired *r = cfg->retired;
        cfg->retired = r->next;
        free(r->text);
        if (r->list != NULL) {
            argv_free(r->list);
            free(r->list);
        }
        free(r);
    }
    argv_free(&cfg->warnings);
    free(cfg->dir);
    free(cfg);
}

/* Collects referenced names into an htable (walk mode callback). */
static int collect_ref(void *arg, const char *name)
{
    htable_put(arg, name, "");
    return 0;
}

static int collect_extra_refs(const char *key, void *value, void *ctx)
{
    struct config_expand_ctx *x = ctx;
    struct config_entry *e = value;

    (void)key;
    /* Syntax errors are config_check's to report. */
    config_macro_expand(x, e->raw, strlen(e->raw), NULL);
    return 0;
}

/* Names referenced as $name by main.cf values and by DIR/master.cf. */
static struct htable *config_references(struct config *cfg)
{
    struct htable *refs = htable_new(32);
    struct config_expand_ctx x;
    char err[256];
    struct buf master = BUF_INIT;
    const char *classes;
    char *path;

    config_macro_init(&x, cfg, err, sizeof(err));
    x.on_ref = collect_ref;
    x.arg = refs;
    for (size_t i = 0; i < param_table_count; i++)
        if (cfg->params[i].raw != NULL)
            config_macro_expand(&x, cfg->params[i].raw,
                                strlen(cfg->params[i].raw), NULL);
    htable_walk(cfg->extra, collect_extra_refs, &x);
    /* Names in smtpd_restriction_classes are parameters too (Postfix). */
    if ((classes = config_raw(cfg, "smtpd_restriction_classes")) != NULL) {
        struct argv names = ARGV_INIT;

        argv_split(&names, classes, ", \t\r\n");
        for (size_t i = 0; i < names.n; i++)
            htable_put(refs, names.v[i], "");
        argv_free(&names);
    }
    /* master.cf "-o x=$mua_..." overrides define uses too. */
    path = xasprintf("%s/master.cf", cfg->dir);
    if (file_read_all(path, &master, MAINCF_SIZE_MAX) == 0)
        config_macro_expand(&x, buf_cstr(&master), master.len, NULL);
    free(path);
    buf_free(&master);
    return refs;
}

/* Parse one logical line "name = value". */
static int config_line(struct config *cfg, const char *file, int lineno,
                       char *text, struct argv *warnings, struct argv *pending,
                       struct argv *pending_origin, char *err, size_t errlen)
{
    char *eq = strchr(text, '=');
    char *name, *value;
    char origin[PATH_MAX + 32];
    char sv[VALUE_SHOWN_MAX];
    size_t before;
    int rc;

    snprintf(origin, sizeof(origin), "%s:%d", file, lineno);
    if (eq == NULL) {
        config_fmt_err(err, errlen,
                       "%s: missing '=' in '%s' (expected name = value)",
                       origin, config_shown(sv, sizeof(sv), str_trim(text)));
        return -1;
    }
    *eq = 0;
    name = str_trim(text);
    value = str_trim(eq + 1);
    if (!name_valid(name)) {
        config_fmt_err(err, errlen, "%s: bad parameter name '%s'", origin,
                       config_shown(sv, sizeof(sv), name));
        return -1;
    }
    before = pending->n;
    rc =
        config_assign(cfg, name, value, origin, warnings, pending, err, errlen);
    if (rc == 0 && pending->n > before)
        argv_add(pending_origin, origin);
    return rc;
}

struct config_parse {
    struct config *cfg;
    const char *file;
    struct argv *warnings;
    struct argv pending; /* unknown names, for config_references */
    struct argv pending_origin;
    char *err;
    size_t errlen;
};

static int config_parse_entry(void *ctx, int line, char *text)
{
    struct config_parse *cp = ctx;

    return config_line(cp->cfg, cp->file, line, text, cp->warnings,
                       &cp->pending, &cp->pending_origin, cp->err, cp->errlen);
}

int config_load(struct config *cfg, const char *path, struct argv *warnings,
                char *err, size_t errlen)
{
    struct config_parse cp = {cfg,       NULL, warnings, ARGV_INIT,
                              ARGV_INIT, err,  errlen};
    struct buf text = BUF_INIT;
    struct stat st;
    char *file, *slash;
    int rc = -1;

    free(cfg->dir);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        file = xasprintf("%s/main.cf", path);
        cfg->dir = xstrdup(path);
    } else {
        file = xstrdup(path);
        cfg->dir = xstrdup(path);
        if ((slash = strrchr(cfg->dir, '/')) == NULL) {
            free(cfg->dir);
            cfg->dir = xstrdup(".");
        } else {
            slash[slash == cfg->dir ? 1 : 0] = 0;
        }
    }
    cp.file = file;
    if (file_read_all(file, &text, MAINCF_SIZE_MAX) < 0) {
        config_fmt_err(err, errlen, "%s: cannot read: %s", file,
                       errno == EFBIG ? "file too large" : strerror(errno));
        goto out;
    }
    if (cf_lines(file, &text, config_parse_entry, &cp, err, errlen) < 0)
        goto out;
    if (cp.pending.n > 0) {
        struct htable *refs = config_references(cfg);

        for (size_t i = 0; i < cp.pending.n; i++) {
            if (htable_get(refs, cp.pending.v[i]) == NULL) {
                config_fmt_err(err, errlen, "%s: unknown parameter '%s'",
                               cp.pending_origin.v[i], cp.pending.v[i]);
                htable_free(refs, NULL);
                goto out;
            }
        }
        htable_free(refs, NULL);
    }
    rc = 0;
out:
    argv_free(&cp.pending);
    argv_free(&cp.pending_origin);
    buf_free(&text);
    free(file);
    return rc;
}

int config_set(struct config *cfg, const char *name, const char *value,
               const char *where, char *err, size_t errlen)
{
    char sv[VALUE_SHOWN_MAX];
    char *v;
    int rc;

    if (!name_valid(name)) {
        config_fmt_err(err, errlen, "%s: bad parameter name '%s'", where,
                       config_shown(sv, sizeof(sv), name));
        return -1;
    }
    v = xstrdup(value);
    rc = config_assign(cfg, name, str_trim(v), where, &cfg->warnings, NULL, err,
                       errlen);
    free(v);
    return rc;
}

void config_take_warnings(struct config *cfg, struct argv *out)
{
    for (size_t i = 0; i < cfg->warnings.n; i++)
        argv_add(out, cfg->warnings.v[i]);
    argv_free(&cfg->warnings);
}

const char *config_dir(const struct config *cfg)
{
    return cfg->dir;
}

const char *config_raw(struct config *cfg, const char *name)
{
    const struct param_def *p;
    struct config_entry *e = config_entry_lookup(cfg, name, &p);
    const char *text;

    if (e == NULL)
        return NULL;
    if ((text = config_entry_text(e, p)) != NULL)
        return text;
    /* A computed default is its own expansion. */
    return config_str(cfg, name);
}

bool config_is_set(struct config *cfg, const char *name)
{
    struct config_entry *e = config_entry_lookup(cfg, name, NULL);

    return e != NULL && e->raw != NULL;
}

const char *config_origin(struct config *cfg, const char *name)
{
    struct config_entry *e = config_entry_lookup(cfg, name, NULL);

    return e != NULL ? e->origin : NULL;
}

static int collect_set_name(const char *key, void *value, void *ctx)
{
    (void)value;
    argv_add(ctx, key);
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void config_names_set(struct config *cfg, struct argv *names)
{
    struct argv found = ARGV_INIT;

    for (size_t i = 0; i < param_table_count; i++)
        if (cfg->params[i].raw != NULL)
            argv_add(&found, param_table[i].name);
    htable_walk(cfg->extra, collect_set_name, &found);
    if (found.n > 1)
        qsort(found.v, found.n, sizeof(found.v[0]), name_cmp);
    for (size_t i = 0; i < found.n; i++)
        argv_add(names, found.v[i]);
    argv_free(&found);
}

/* The table row for a getter; an unknown name is the caller's bug. */
static const struct param_def *getter_param(const char *name)
{
    const struct param_def *p = param_find(name);

    if (p == NULL)
        log_panic("config: parameter '%s' is not in the parameter table", name);
    return p;
}

static const char *origin_text(const struct config_entry *e)
{
    return e->origin != NULL ? e->origin : "default";
}

/* Expanded value of a table parameter; 0 or -1 with "origin: ..." err. */
static int config_expand_param(struct config *cfg, const struct param_def *p,
                               const char **val, char *err, size_t errlen)
{
    struct config_entry *e = &cfg->params[p - param_table];
    struct config_expand_ctx x;
    char msg[512];

    if (e->expanded != NULL) {
        *val = e->expanded;
        return 0;
    }
    if (cfg->active != NULL) {
        /* Called by a computed default: its expansion reports the error. */
        if (config_macro_value(cfg->active, p->name, val) < 0) {
            cfg->active->failed = true;
            *val = "";
        }
        return 0;
    }
    config_macro_init(&x, cfg, msg, sizeof(msg));
    if (config_macro_value(&x, p->name, val) < 0) {
        const char *name = p->name;
        struct config_entry *blame;

        /* A loop is reported where it was written, not where it was met. */
        if (x.culprit[0] != 0 &&
            (blame = config_entry_lookup(cfg, x.culprit, NULL)) != NULL) {
            e = blame;
            name = x.culprit;
        }
        config_fmt_err(err, errlen, "%s: parameter '%s': %s", origin_text(e),
                       name, msg);
        return -1;
    }
    return 0;
}

const char *config_str(struct config *cfg, const char *name)
{
    const struct param_def *p = getter_param(name);
    const char *val;
    char err[768];

    if (config_expand_param(cfg, p, &val, err, sizeof(err)) < 0)
        log_fatal("%s", err);
    return val;
}

static long long config_number(struct config *cfg, const char *name)
{
    const struct param_def *p = getter_param(name);
    const char *val = config_str(cfg, name);
    char msg[512];
    long long n;

    if (p->type != PARAM_INT && p->type != PARAM_TIME && p->type != PARAM_SIZE)
        log_panic("config: parameter '%s' is not a number", name);
    if (cfg->active != NULL && cfg->active->failed)
        return 0;
    if (!config_param_number(p, val, &n, msg, sizeof(msg)))
        log_fatal("%s: parameter '%s': %s",
                  origin_text(&cfg->params[p - param_table]), name, msg);
    return n;
}

long long config_int(struct config *cfg, const char *name)
{
    return config_number(cfg, name);
}

long long config_time(struct config *cfg, const char *name)
{
    return config_number(cfg, name);
}

long long config_size(struct config *cfg, const char *name)
{
    return config_number(cfg, name);
}

bool config_bool(struct config *cfg, const char *name)
{
    const struct param_def *p = getter_param(name);
    const char *val = config_str(cfg, name);
    bool b;

    if (p->type != PARAM_BOOL)
        log_panic("config: parameter '%s' is not yes/no", name);
    if (cfg->active != NULL && cfg->active->failed)
        return false;
    if (!str_to_bool(val, &b)) {
        char sv[VALUE_SHOWN_MAX];

        log_fatal("%s: parameter '%s': bad value '%s': expected yes or no",
                  origin_text(&cfg->params[p - param_table]), name,
                  config_shown(sv, sizeof(sv), val));
    }
    return b;
}

const struct argv *config_list(struct config *cfg, const char *name)
{
    const struct param_def *p = getter_param(name);
    struct config_entry *e = &cfg->params[p - param_table];
    const char *val = config_str(cfg, name);

    if (e->list == NULL) {
        e->list = xcalloc(1, sizeof(*e->list));
        config_list_split(e->list, val);
    }
    return e->list;
}

char *config_expand(struct config *cfg, const char *text)
{
    struct config_expand_ctx x;
    struct buf b = BUF_INIT;
    char msg[512];

    config_macro_init(&x, cfg, msg, sizeof(msg));
    if (config_macro_expand(&x, text, strlen(text), &b) < 0) {
        log_warn("cannot expand '%s': %s", text, msg);
        buf_free(&b);
        return xstrdup(text);
    }
    return buf_steal(&b);
}

/* ---- config_check ---- */

struct check_ref {
    struct config *cfg;
    const char *bad; /* first undefined name */
    char name[CONFIG_NAME_MAX + 1];
};

static int check_ref(void *arg, const char *name)
{
    struct check_ref *c = arg;

    if (config_entry_lookup(c->cfg, name, NULL) != NULL ||
        postfix_param_known(name) || postfix_derived_name(name))
        return 0;
    str_lcpy(c->name, name, sizeof(c->name));
    c->bad = c->name;
    return -1;
}

/* Syntax and references of one raw value. */
static int check_raw(struct config *cfg, const char *name, const char *origin,
                     const char *raw, char *err, size_t errlen)
{
    struct check_ref c = {cfg, NULL, {0}};
    struct config_expand_ctx x;
    char msg[512];

    config_macro_init(&x, cfg, msg, sizeof(msg));
    x.on_ref = check_ref;
    x.arg = &c;
    if (config_macro_expand(&x, raw, strlen(raw), NULL) < 0) {
        if (c.bad != NULL)
            config_fmt_err(err, errlen,
                           "%s: parameter '%s': $%s is not a known "
                           "parameter",
                           origin, name, c.bad);
        else
            config_fmt_err(err, errlen, "%s: parameter '%s': %s", origin, name,
                           msg);
        return -1;
    }
    return 0;
}

struct check_extra {
    struct config *cfg;
    char *err;
    size_t errlen;
    int rc;
};

static int check_extra_entry(const char *key, void *value, void *ctx)
{
    struct check_extra *c = ctx;
    struct config_entry *e = value;

    if (check_raw(c->cfg, key, origin_text(e), e->raw, c->err, c->errlen) < 0) {
        c->rc = -1;
        return 1;
    }
    return 0;
}

int config_check(struct config *cfg, char *err, size_t errlen)
{
    struct check_extra ce = {cfg, err, errlen, 0};
    char msg[512];

    for (size_t i = 0; i < param_table_count; i++) {
        const struct param_def *p = &param_table[i];
        struct config_entry *e = &cfg->params[i];
        const char *val;
        const char *raw = config_entry_text(e, p); /* NULL: computed */

        if (raw != NULL &&
            check_raw(cfg, p->name, origin_text(e), raw, err, errlen) < 0)
            return -1;
        if (config_expand_param(cfg, p, &val, err, errlen) < 0)
            return -1;
        if (config_param_check(p, val, msg, sizeof(msg)) < 0) {
            char sv[VALUE_SHOWN_MAX];

            if (raw == NULL || strcmp(val, raw) == 0)
                config_fmt_err(err, errlen, "%s: parameter '%s': %s",
                               origin_text(e), p->name, msg);
            else
                config_fmt_err(err, errlen,
                               "%s: parameter '%s' (from '%s'): %s",
                               origin_text(e), p->name,
                               config_shown(sv, sizeof(sv), raw), msg);
            return -1;
        }
    }
    htable_walk(cfg->extra, check_extra_entry, &ce);
    return ce.rc;
}

void config_set_global(struct config *cfg)
{
    config_global_ptr = cfg;
}

struct config *config_global(void)
{
    if (config_global_ptr == NULL)
        log_panic("config_global: no configuration loaded");
    return config_global_ptr;
}
