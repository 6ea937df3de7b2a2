/*
 * config_impl - what config.c, config_expand.c and config_value.c share:
 * the in-memory configuration and the helpers between the three files.
 * Nothing outside those files includes it; everyone else uses config.h.
 */
#ifndef GLOBAL_CONFIG_IMPL_H
#define GLOBAL_CONFIG_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "global/config.h"
#include "util/argv.h"
#include "util/buf.h"

struct htable;

#define CONFIG_NAME_MAX 128  /* longest parameter name */
#define EXPAND_DEPTH_MAX 100 /* nested $name evaluations */
#define VALUE_SHOWN_MAX 80   /* bytes of a bad value in a message */
#define LIST_SEPARATORS ", \t\r\n"

struct config_entry {
    char *raw;         /* value as set; NULL = the default */
    char *origin;      /* "path:line" or config_set's where */
    char *computed;    /* computed default, once asked for */
    char *expanded;    /* cache */
    struct argv *list; /* cache */
    bool busy;         /* being expanded: a second visit is a loop */
};

/* Caches replaced by config_set; freed with the configuration. */
struct config_retired {
    struct config_retired *next;
    char *text;
    struct argv *list;
};

struct config {
    char *dir;
    struct config_entry *params; /* parallel to param_table */
    struct htable *extra;        /* name -> entry: Postfix-only, user-defined */
    struct argv warnings;        /* from config_set */
    struct config_retired *retired;
    /* the expansion running a computed default (config_macro_value) */
    struct config_expand_ctx *active;
};

struct config_expand_ctx {
    struct config *cfg;
    const char *stack[EXPAND_DEPTH_MAX]; /* names being evaluated */
    int depth;
    int nest; /* ${name?...} groups inside each other */
    /* walk mode (no output): called for each $name in every branch */
    int (*on_ref)(void *arg, const char *name);
    void *arg;
    char *err;
    size_t errlen;
    /* set when a getter called by a computed default failed */
    bool failed;
    /* after a loop: the member to blame (first one set in a file) */
    char culprit[CONFIG_NAME_MAX + 1];
};

/* config.c: the entry for name (table or extra), NULL if none. */
struct config_entry *config_entry_lookup(struct config *cfg, const char *name,
                                         const struct param_def **pp);
/* config.c: what a $name refers to before expansion: e->raw or the table
 * default; NULL for a computed default (config_macro_value computes it). */
const char *config_entry_text(const struct config_entry *e,
                              const struct param_def *p);

/* config_expand.c */
void config_macro_init(struct config_expand_ctx *x, struct config *cfg,
                       char *err, size_t errlen);
/* Expand s into out; out == NULL walks every reference (x->on_ref). */
int config_macro_expand(struct config_expand_ctx *x, const char *s, size_t len,
                        struct buf *out);
/*
 * The expanded value of a parameter ("" when nobody defines it).  A
 * computed default is computed here, with x active so that the getters its
 * function calls report failure through x instead of exiting.
 */
int config_macro_value(struct config_expand_ctx *x, const char *name,
                       const char **val);

/* config_value.c */
bool config_name_char(int c);
bool config_blank(int c);
void config_fmt_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A value quoted in a message: printable and bounded. */
const char *config_shown(char *dst, size_t size, const char *s);
/* Split a list value; separators inside "{...}" do not count. */
void config_list_split(struct argv *a, const char *s);
/* A numeric value of p's type, range-checked; false with msg on error. */
bool config_param_number(const struct param_def *p, const char *v,
                         long long *out, char *msg, size_t msglen);
/* Check a literal or expanded value against p: 0, or -1 with msg. */
int config_param_check(const struct param_def *p, const char *v, char *msg,
                       size_t msglen);

#endif
