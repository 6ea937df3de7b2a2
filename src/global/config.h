/*
 * config - main.cf: the parameter table and the parser.
 *
 * Every parameter is declared once in param_table (params.c) with its name,
 * type, default and a one-line doc; validation, `posthorn conf -d` and
 * docs/parameters.md all come from those rows.
 *
 * main.cf syntax is Postfix's: "name = value", "#" comments on lines of
 * their own, a line starting with whitespace continues the previous one,
 * "$name" / "${name}" / "$(name)" expansion at use time (recursive, loop
 * checked).  Errors name file and line:  "main.cf:12: unknown parameter
 * 'myhostnme'".  A name Postfix has but posthorn does not implement yet is a
 * warning (collected in `warnings`), never a refusal to start.
 *
 * Values are validated by type when loaded and again after expansion by
 * config_check().  Getters panic on a name not in the table: that is a bug
 * in the caller, not bad input.
 */
#ifndef GLOBAL_CONFIG_H
#define GLOBAL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "util/argv.h"

enum param_type {
    PARAM_STR,   /* free text */
    PARAM_INT,   /* decimal integer, >= 0 */
    PARAM_BOOL,  /* yes / no */
    PARAM_TIME,  /* Postfix time: 300s, 5m, 2h, 5d, 1w (unit char in def) */
    PARAM_SIZE,  /* byte count */
    PARAM_LIST,  /* comma and/or whitespace separated list */
};

struct config;

/* param_def.flags */
#define PARAM_NOT_YET 1   /* declared, feature not implemented: a value
                             other than the default is a warning */

struct param_def {
    const char *name;
    enum param_type type;
    const char *def;      /* default value, may contain $name */
    char time_unit;       /* PARAM_TIME: unit when none given ('s','h','d') */
    const char *doc;      /* one line */
    /*
     * Fields below are optional (zero in most rows).
     *
     * compute: def is NULL and the default depends on the host or on other
     * parameters (myhostname from gethostname(), mydomain from
     * myhostname).  Returns an allocated literal (not $-expanded).
     */
    char *(*compute)(struct config *cfg);
    long long min;        /* numeric types: smallest value allowed */
    long long max;        /* numeric types: largest, 0 = INT_MAX for INT
                             and TIME, LLONG_MAX for SIZE */
    const char *values;   /* STR/LIST: allowed words "a|b|c" (NULL = any;
                             "" may be one of them: "|none|may") */
    unsigned flags;       /* PARAM_NOT_YET */
};

/* Sorted by name once param_find() or config_new() has run. */
extern const struct param_def *param_table;
extern const size_t param_table_count;

const struct param_def *param_find(const char *name);

/*
 * Every parameter name Postfix 3.7 knows (postfix_names.c, generated from
 * `postconf -d` with Postfix's stock master.cf).  A main.cf name that is
 * here but not in param_table is a warning, not an error.
 */
bool postfix_param_known(const char *name);

struct config;

struct config *config_new(void);
void config_free(struct config *cfg);

/*
 * Load DIR/main.cf (the file must exist); path is DIR or the file itself.
 * Returns 0, or -1 with err set to "path:line: message".  Warnings
 * (known-but-unimplemented Postfix names) are appended to `warnings` (may
 * be NULL) as "path:line: ..." strings.
 *
 * A name in neither param_table nor Postfix's list is an error, except a
 * name that main.cf or DIR/master.cf references as $name: that is a
 * user-defined parameter (Postfix's "mua_client_restrictions" idiom).
 * Load into a fresh config_new(): a reload that reuses a configuration
 * would keep values whose lines were since deleted.
 */
int config_load(struct config *cfg, const char *path, struct argv *warnings,
                char *err, size_t errlen);

/*
 * Set one value (a master.cf "-o name=value" override or a test).  Same
 * validation as a main.cf line; `where` names the origin for messages.
 */
int config_set(struct config *cfg, const char *name, const char *value,
               const char *where, char *err, size_t errlen);

/*
 * Warnings noticed by config_set() (a Postfix-only name in a -o override)
 * are kept in cfg; this moves them to `out` (appended).
 */
void config_take_warnings(struct config *cfg, struct argv *out);

/*
 * Validate every value after $name expansion: types and ranges, $name
 * references to names nobody defines (a typo: error, where Postfix would
 * quietly expand to ""), expansion loops, unbalanced "{" in lists.
 * Returns 0 or -1.
 */
int config_check(struct config *cfg, char *err, size_t errlen);

/* The configuration directory (where main.cf was loaded from). */
const char *config_dir(const struct config *cfg);

/*
 * Raw value as written (or the default), and whether it was set.  Unlike
 * the getters below these accept any name: a name that is not in
 * param_table gives its main.cf value, or NULL / false when not set.
 */
const char *config_raw(struct config *cfg, const char *name);
bool config_is_set(struct config *cfg, const char *name);
/* "path:line" (or config_set's `where`) of a set value; NULL if unset. */
const char *config_origin(struct config *cfg, const char *name);
/* Append the names of every value set (table or not), sorted. */
void config_names_set(struct config *cfg, struct argv *names);

/*
 * Expanded values.  Returned pointers stay valid until config_free.  The
 * numeric getters accept any of INT, TIME (seconds) and SIZE (bytes); a
 * getter on a name not in the table panics, and so does config_bool or a
 * numeric getter on a parameter of another type.  A value
 * config_check() would refuse is fatal here (log_fatal with file:line).
 * config_list splits on ", \t\r\n" outside "{...}" groups, so
 * "inline:{a=b, c=d}, lmdb:/x" is two elements.
 */
const char *config_str(struct config *cfg, const char *name);
long long config_int(struct config *cfg, const char *name);
bool config_bool(struct config *cfg, const char *name);
long long config_time(struct config *cfg, const char *name);   /* seconds */
long long config_size(struct config *cfg, const char *name);   /* bytes */
const struct argv *config_list(struct config *cfg, const char *name);

/* Expand $name references in an arbitrary string (caller frees). */
char *config_expand(struct config *cfg, const char *text);

/*
 * The process-wide configuration used by daemons (set by the server
 * skeleton or a command after loading).
 */
void config_set_global(struct config *cfg);
struct config *config_global(void);

#endif
