/*
 * cmd_conf - `posthorn conf`, Postfix's postconf for posthorn.
 *
 *   posthorn conf [-d | -n] [-x] [-h] [name ...]
 *       all parameters as "name = value" (raw, as written), or the named
 *       ones; -d defaults, -n only those set in main.cf, -x expand $name,
 *       -h values only.
 *   posthorn conf check
 *       load and check main.cf, master.cf, each service's -o overrides
 *       and that each service's program exists; warnings and errors on
 *       stderr, exit 1 on any error.
 *   posthorn conf -D
 *       the parameter reference as Markdown (docs/parameters.md).
 *
 * It reads the configuration directory given with -c and trusts it no more
 * than the daemons do: everything goes through config_load/config_check
 * and mastercf_parse.  Output goes to stdout, diagnostics to stderr.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "global/config.h"
#include "global/mastercf.h"
#include "util/argv.h"
#include "util/mem.h"

struct conf_opts {
    bool defaults;   /* -d */
    bool nondefault; /* -n */
    bool expand;     /* -x */
    bool value_only; /* -h */
};

static void conf_usage(void)
{
    fprintf(stderr, "usage: posthorn [-c config_dir] conf [-d | -n] [-x] [-h] "
                    "[name ...]\n"
                    "       posthorn [-c config_dir] conf check\n"
                    "       posthorn [-c config_dir] conf -D\n");
}

static void conf_warn(const char *msg)
{
    fprintf(stderr, "posthorn: warning: %s\n", msg);
}

static void conf_error(const char *msg)
{
    fprintf(stderr, "posthorn: error: %s\n", msg);
}

/* Load main.cf; print its warnings when loud.  NULL after an error. */
static struct config *conf_load(const char *confdir, bool loud)
{
    struct config *cfg = config_new();
    struct argv warnings = ARGV_INIT;
    char err[1024];
    int rc;

    rc = config_load(cfg, confdir, &warnings, err, sizeof(err));
    if (loud)
        for (size_t i = 0; i < warnings.n; i++)
            conf_warn(warnings.v[i]);
    argv_free(&warnings);
    if (rc < 0) {
        conf_error(err);
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

static void conf_print(struct config *cfg, const struct conf_opts *o,
                       const char *name)
{
    const char *raw = config_raw(cfg, name);
    char *expanded = NULL;
    const char *value = raw != NULL ? raw : "";

    if (o->expand) {
        if (param_find(name) != NULL)
            value = config_str(cfg, name);
        else
            value = expanded = config_expand(cfg, value);
    }
    if (o->value_only)
        printf("%s\n", value);
    else if (*value == 0)
        printf("%s =\n", name);
    else
        printf("%s = %s\n", name, value);
    free(expanded);
}

/* Everything in the table plus what main.cf set beyond it, sorted. */
static void conf_print_all(struct config *cfg, const struct conf_opts *o)
{
    struct argv set = ARGV_INIT;
    size_t i = 0, k = 0;

    config_names_set(cfg, &set);
    while (i < param_table_count || k < set.n) {
        int cmp;

        if (k >= set.n)
            cmp = -1;
        else if (i >= param_table_count)
            cmp = 1;
        else
            cmp = strcmp(param_table[i].name, set.v[k]);
        if (cmp <= 0) {
            conf_print(cfg, o, param_table[i].name);
            if (cmp == 0)
                k++;
            i++;
        } else {
            conf_print(cfg, o, set.v[k++]);
        }
    }
    argv_free(&set);
}

static int conf_show(const char *confdir, const struct conf_opts *o, int argc,
                     char **argv)
{
    struct config *cfg;
    char err[1024];
    int status = 0;

    if (o->defaults)
        cfg = config_new();
    else if ((cfg = conf_load(confdir, false)) == NULL)
        return 1;
    if (o->expand && config_check(cfg, err, sizeof(err)) < 0) {
        conf_error(err);
        config_free(cfg);
        return 1;
    }
    if (argc > 0) {
        for (int i = 0; i < argc; i++) {
            if (param_find(argv[i]) != NULL ||
                (!o->defaults && config_raw(cfg, argv[i]) != NULL)) {
                if (!o->nondefault || config_is_set(cfg, argv[i]))
                    conf_print(cfg, o, argv[i]);
            } else {
                fprintf(stderr, "posthorn: warning: %s: %s\n", argv[i],
                        postfix_param_known(argv[i])
                            ? "a Postfix parameter posthorn does not implement"
                            : "unknown parameter");
                status = 1;
            }
        }
    } else if (o->nondefault) {
        struct argv set = ARGV_INIT;

        config_names_set(cfg, &set);
        for (size_t i = 0; i < set.n; i++)
            conf_print(cfg, o, set.v[i]);
        argv_free(&set);
    } else {
        conf_print_all(cfg, o);
    }
    config_free(cfg);
    return status;
}

/* The directory master runs daemons from: daemon_directory or ours. */
static char *conf_daemon_dir(struct config *cfg)
{
    const char *dir = config_str(cfg, "daemon_directory");
    char self[PATH_MAX];
    ssize_t n;
    char *slash;

    if (*dir != 0)
        return xstrdup(dir);
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return NULL;
    self[n] = 0;
    if ((slash = strrchr(self, '/')) == NULL)
        return NULL;
    *slash = 0;
    return xstrdup(self);
}

/* Each service's -o overrides applied to a fresh main.cf, then checked. */
static int conf_check_service(const char *confdir,
                              const struct master_service *svc)
{
    struct config *cfg = conf_load(confdir, false);
    struct argv warnings = ARGV_INIT;
    char where[PATH_MAX + 64];
    char err[1024];
    int rc = 0;

    if (cfg == NULL)
        return -1;
    snprintf(where, sizeof(where), "%s:%d: service %s -o", svc->file, svc->line,
             svc->name);
    for (size_t i = 0; i < svc->overrides.n && rc == 0; i++) {
        const char *o = svc->overrides.v[i];
        const char *eq = strchr(o, '=');
        char *name = xstrndup(o, (size_t)(eq - o));

        if (config_set(cfg, name, eq + 1, where, err, sizeof(err)) < 0) {
            conf_error(err);
            rc = -1;
        }
        free(name);
    }
    config_take_warnings(cfg, &warnings);
    for (size_t i = 0; i < warnings.n; i++)
        conf_warn(warnings.v[i]);
    argv_free(&warnings);
    if (rc == 0 && config_check(cfg, err, sizeof(err)) < 0) {
        /* A main.cf value may break only under this service's overrides. */
        char *msg = strstr(err, where) == err
                        ? xstrdup(err)
                        : xasprintf("%s (with the -o overrides of %s:%d)", err,
                                    svc->file, svc->line);
        conf_error(msg);
        free(msg);
        rc = -1;
    }
    config_free(cfg);
    return rc;
}

static int conf_check(const char *confdir)
{
    struct master_service *svc = NULL;
    struct config *cfg;
    size_t n = 0;
    char err[1024];
    char *path, *daemon_dir = NULL;
    bool main_ok = false;
    int status = 0;

    /* Report as much as can be checked: main.cf, then master.cf. */
    if ((cfg = conf_load(confdir, true)) == NULL) {
        status = 1;
    } else if (config_check(cfg, err, sizeof(err)) < 0) {
        conf_error(err);
        status = 1;
    } else {
        main_ok = true;
        daemon_dir = conf_daemon_dir(cfg);
    }
    path = xasprintf("%s/master.cf", confdir);
    if (mastercf_parse(path, &svc, &n, err, sizeof(err)) < 0) {
        conf_error(err);
        status = 1;
    }
    for (size_t i = 0; i < n && main_ok; i++) {
        char *prog;

        if (svc[i].overrides.n > 0 && conf_check_service(confdir, &svc[i]) < 0)
            status = 1;
        if (daemon_dir == NULL)
            continue;
        prog = svc[i].command[0] == '/'
                   ? xstrdup(svc[i].command)
                   : xasprintf("%s/%s", daemon_dir, svc[i].command);
        if (access(prog, X_OK) < 0) {
            char *msg =
                xasprintf("%s:%d: service %s: cannot run %s: %s", svc[i].file,
                          svc[i].line, svc[i].name, prog, strerror(errno));
            conf_error(msg);
            free(msg);
            status = 1;
        }
        free(prog);
    }
    mastercf_free(svc, n);
    free(path);
    free(daemon_dir);
    config_free(cfg);
    return status;
}

/* Markdown table cells must not contain '|' or line breaks. */
static void md_cell(const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", stdout);
        else if (*s == '\n' || *s == '\r')
            putchar(' ');
        else
            putchar(*s);
    }
}

static const char *md_type(const struct param_def *p, char *buf, size_t size)
{
    static const char *const names[] = {
        [PARAM_STR] = "text",  [PARAM_INT] = "integer", [PARAM_BOOL] = "yes/no",
        [PARAM_TIME] = "time", [PARAM_SIZE] = "size",   [PARAM_LIST] = "list",
    };
    size_t len;

    snprintf(buf, size, "%s", names[p->type]);
    len = strlen(buf);
    if (p->type == PARAM_TIME && len < size)
        snprintf(buf + len, size - len, " (unit %c)",
                 p->time_unit ? p->time_unit : 's');
    len = strlen(buf);
    if ((p->type == PARAM_INT || p->type == PARAM_TIME ||
         p->type == PARAM_SIZE) &&
        (p->min != 0 || p->max != 0) && len < size) {
        if (p->max != 0)
            snprintf(buf + len, size - len, ", %lld to %lld", p->min, p->max);
        else
            snprintf(buf + len, size - len, ", at least %lld", p->min);
    }
    len = strlen(buf);
    if (p->values != NULL && len < size)
        snprintf(buf + len, size - len, ": %s", p->values);
    return buf;
}

static int conf_markdown(void)
{
    char type[160];

    printf("# posthorn parameter reference\n\n"
           "Generated by `posthorn conf -D` from the parameter table in "
           "`src/global/params.c`;\nedit the table, not this file.\n\n"
           "`main.cf` holds lines `name = value`. A line starting with "
           "whitespace continues\nthe one before; `#` starts a comment line. "
           "Values may refer to other\nparameters as `$name`, `${name}` or "
           "`$(name)`; `${name?text}` gives `text`\nwhen `$name` is not "
           "empty, `${name:text}` when it is, and\n`${name?{a}:{b}}` "
           "chooses between two texts. `$$` is a dollar sign.\n\n"
           "Types: *time* values take a unit suffix `s`, `m`, `h`, `d` or "
           "`w`; the unit\nin the table applies when none is given. *size* "
           "values are bytes and may end\nin `k`, `m` or `g` (binary). "
           "*list* values are separated by commas and/or\nwhitespace; a "
           "`{ ... }` group (as in `inline:{a=b, c=d}`) is one element.\n\n"
           "A name posthorn does not know is an error naming file and line, "
           "unless another\nvalue refers to it as `$name` (a user-defined "
           "parameter, as in Postfix's\n`mua_client_restrictions` idiom). A "
           "name that Postfix knows but posthorn does\nnot implement is a "
           "warning and is otherwise ignored, so a Postfix `main.cf`\ncan be "
           "migrated step by step. Parameters marked *not implemented yet* "
           "accept\nonly their default without a warning. A `$name` that "
           "nobody defines is an\nerror (Postfix would quietly expand it to "
           "nothing).\n\n"
           "| Parameter | Type | Default | Description |\n"
           "|---|---|---|---|\n");
    for (size_t i = 0; i < param_table_count; i++) {
        const struct param_def *p = &param_table[i];

        printf("| `%s` | ", p->name);
        md_cell(md_type(p, type, sizeof(type)));
        fputs(" | ", stdout);
        if (p->def == NULL) {
            fputs("*(computed)*", stdout);
        } else if (*p->def == 0) {
            fputs("*(empty)*", stdout);
        } else {
            putchar('`');
            md_cell(p->def);
            putchar('`');
        }
        fputs(" | ", stdout);
        md_cell(p->doc);
        if (p->flags & PARAM_NOT_YET)
            fputs(" *Not implemented yet.*", stdout);
        fputs(" |\n", stdout);
    }
    return ferror(stdout) ? 1 : 0;
}

int cmd_conf(const char *confdir, int argc, char **argv)
{
    struct conf_opts o = {false, false, false, false};
    int i;

    for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] != 0; i++) {
        const char *opt = argv[i];

        if (strcmp(opt, "--") == 0) {
            i++;
            break;
        }
        for (const char *c = opt + 1; *c; c++) {
            switch (*c) {
            case 'd':
                o.defaults = true;
                break;
            case 'n':
                o.nondefault = true;
                break;
            case 'x':
                o.expand = true;
                break;
            case 'h':
                o.value_only = true;
                break;
            case 'D':
                if (argc != 2 || strcmp(opt, "-D") != 0) {
                    conf_usage();
                    return 2;
                }
                return conf_markdown();
            default:
                conf_usage();
                return 2;
            }
        }
    }
    if (o.defaults && o.nondefault) {
        conf_usage();
        return 2;
    }
    if (i < argc && strcmp(argv[i], "check") == 0) {
        if (i + 1 != argc || i != 1) {
            conf_usage();
            return 2;
        }
        return conf_check(confdir);
    }
    return conf_show(confdir, &o, argc - i, argv + i);
}
