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

struct param_def {
    const char *name;
    enum param_type type;
    const char *def;      /* default value, may contain $name */
    char time_unit;       /* PARAM_TIME: unit when none given ('s','h','d') */
    const char *doc;      /* one line */
};

extern const struct param_def param_table[];
extern const size_t param_table_count;

const struct param_def *param_find(const char *name);

struct config;

struct config *config_new(void);
void config_free(struct config *cfg);

/*
 * Load DIR/main.cf (the file must exist).  Returns 0, or -1 with err set to
 * "path:line: message".  Warnings (known-but-unimplemented Postfix names)
 * are appended to `warnings` (may be NULL) as "path:line: ..." strings.
 */
int config_load(struct config *cfg, const char *path, struct argv *warnings,
                char *err, size_t errlen);

/*
 * Set one value (a master.cf "-o name=value" override or a test).  Same
 * validation as a main.cf line; `where` names the origin for messages.
 */
int config_set(struct config *cfg, const char *name, const char *value,
               const char *where, char *err, size_t errlen);

/* Validate every value after $name expansion.  Returns 0 or -1. */
int config_check(struct config *cfg, char *err, size_t errlen);

/* The configuration directory (where main.cf was loaded from). */
const char *config_dir(const struct config *cfg);

/* Raw value as written (or the default), and whether it was set. */
const char *config_raw(struct config *cfg, const char *name);
bool config_is_set(struct config *cfg, const char *name);

/* Expanded values.  Returned pointers stay valid until config_free. */
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
