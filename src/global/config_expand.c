/*
 * config_expand - $name expansion in main.cf values, Postfix's mac_expand
 * rules: $name, ${name}, $(name), "$$", ${name?text}, ${name:text} and the
 * Postfix 3.0 forms ${name?{a}:{b}} / ${name:{a}}.  Relational ${{...}}
 * expressions are refused rather than guessed at.
 *
 * Input is any main.cf or master.cf text; every name is bounded
 * (CONFIG_NAME_MAX), nesting is bounded (EXPAND_DEPTH_MAX), and a
 * parameter met again while it is being expanded is a loop, reported with
 * the chain of names.  In walk mode (no output buffer) every reference in
 * every branch is reported to a callback instead: config_check uses that
 * to find typos, config_load to find user-defined parameters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "global/config_impl.h"
#include "util/str.h"

static int expand_loop_error(struct config_expand_ctx *x, const char *name)
{
    struct buf chain = BUF_INIT;
    int from = 0;

    for (int i = 0; i < x->depth; i++)
        if (strcmp(x->stack[i], name) == 0)
            from = i;
    str_lcpy(x->culprit, name, sizeof(x->culprit));
    for (int i = x->depth - 1; i >= from; i--)
        if (config_is_set(x->cfg, x->stack[i]))
            str_lcpy(x->culprit, x->stack[i], sizeof(x->culprit));
    for (int i = from; i < x->depth; i++)
        buf_printf(&chain, "$%s -> ", x->stack[i]);
    buf_printf(&chain, "$%s", name);
    config_fmt_err(x->err, x->errlen, "expansion loop: %s", buf_cstr(&chain));
    buf_free(&chain);
    return -1;
}

/* The expanded value of a parameter ("" when nobody defines it). */
int config_macro_value(struct config_expand_ctx *x, const char *name,
                       const char **val)
{
    const struct param_def *p;
    struct config_entry *e = config_entry_lookup(x->cfg, name, &p);
    struct buf b = BUF_INIT;
    const char *raw;
    int rc;

    if (e == NULL) {
        *val = "";
        return 0;
    }
    if (e->expanded != NULL) {
        *val = e->expanded;
        return 0;
    }
    if (e->busy)
        return expand_loop_error(x, name);
    if (x->depth >= EXPAND_DEPTH_MAX) {
        config_fmt_err(x->err, x->errlen,
                       "unreasonable nesting of $name at $%s", name);
        return -1;
    }
    e->busy = true;
    x->stack[x->depth++] = p != NULL ? p->name : name;
    if ((raw = config_entry_text(e, p)) != NULL) {
        rc = config_macro_expand(x, raw, strlen(raw), &b);
    } else {
        struct config_expand_ctx *saved = x->cfg->active;
        char *v;

        if (e->computed == NULL) {
            x->cfg->active = x;
            v = p->compute(x->cfg);
            x->cfg->active = saved;
            if (x->failed)
                free(v);
            else
                e->computed = v;
        }
        rc = x->failed ? -1 : (buf_puts(&b, e->computed), 0);
    }
    x->depth--;
    e->busy = false;
    if (rc < 0) {
        buf_free(&b);
        return -1;
    }
    e->expanded = buf_steal(&b);
    *val = e->expanded;
    return 0;
}

static int expand_ref(struct config_expand_ctx *x, const char *name, size_t len,
                      struct buf *out, const char **val)
{
    char nbuf[CONFIG_NAME_MAX + 1];

    *val = "";
    if (len > CONFIG_NAME_MAX) {
        config_fmt_err(x->err, x->errlen, "parameter name too long: $%.20s...",
                       name);
        return -1;
    }
    memcpy(nbuf, name, len);
    nbuf[len] = 0;
    if (out == NULL)
        return x->on_ref != NULL ? x->on_ref(x->arg, nbuf) : 0;
    return config_macro_value(x, nbuf, val);
}

/* [s, end) is "{...}" after blanks: set the inside (trimmed) and *next. */
static bool braced_part(const char *s, const char *end, const char **in,
                        size_t *inlen, const char **next)
{
    int depth = 0;
    const char *p;

    while (s < end && config_blank((unsigned char)*s))
        s++;
    if (s >= end || *s != '{')
        return false;
    for (p = s; p < end; p++) {
        if (*p == '{')
            depth++;
        else if (*p == '}' && --depth == 0)
            break;
    }
    if (p >= end)
        return false;
    *in = s + 1;
    *inlen = (size_t)(p - s - 1);
    while (*inlen > 0 && config_blank((unsigned char)**in)) {
        (*in)++;
        (*inlen)--;
    }
    while (*inlen > 0 && config_blank((unsigned char)(*in)[*inlen - 1]))
        (*inlen)--;
    *next = p + 1;
    return true;
}

/* s[*pos] is '$' followed by '{' or '('. */
static int expand_braced(struct config_expand_ctx *x, const char *s, size_t len,
                         size_t *pos, struct buf *out)
{
    char open = s[*pos + 1], close = open == '{' ? '}' : ')';
    size_t j = *pos + 2, start, k;
    const char *arg, *argend, *v1, *v2 = NULL, *next, *val;
    size_t v1len, v2len = 0;
    int depth = 1, rc = 0;
    char op;

    if (j < len && s[j] == '{') {
        config_fmt_err(x->err, x->errlen,
                       "${{...}} expressions are not supported");
        return -1;
    }
    for (start = j; j < len && config_name_char((unsigned char)s[j]); j++)
        ;
    if (j == start) {
        config_fmt_err(x->err, x->errlen, "missing parameter name after '$%c'",
                       open);
        return -1;
    }
    if (j >= len) {
        config_fmt_err(x->err, x->errlen, "missing '%c' after $%c%.*s", close,
                       open, (int)(j - start), s + start);
        return -1;
    }
    if (s[j] == close) {
        if (expand_ref(x, s + start, j - start, out, &val) < 0)
            return -1;
        if (out != NULL)
            buf_puts(out, val);
        *pos = j + 1;
        return 0;
    }
    op = s[j];
    if (op != '?' && op != ':') {
        config_fmt_err(x->err, x->errlen, "unexpected '%c' after $%c%.*s", op,
                       open, (int)(j - start), s + start);
        return -1;
    }
    for (k = j + 1; k < len; k++) {
        if (s[k] == open)
            depth++;
        else if (s[k] == close && --depth == 0)
            break;
    }
    if (k >= len) {
        config_fmt_err(x->err, x->errlen, "missing '%c' after $%c%.*s%c...",
                       close, open, (int)(j - start), s + start, op);
        return -1;
    }
    arg = s + j + 1;
    argend = s + k;
    /* Postfix 3.0: ${name?{a}} ${name?{a}:{b}} ${name:{a}}; else legacy. */
    if (braced_part(arg, argend, &v1, &v1len, &next)) {
        while (next < argend && config_blank((unsigned char)*next))
            next++;
        if (op == '?' && next < argend && *next == ':') {
            if (!braced_part(next + 1, argend, &v2, &v2len, &next)) {
                config_fmt_err(x->err, x->errlen,
                               "missing '{...}' after ':' in "
                               "$%c%.*s?...",
                               open, (int)(j - start), s + start);
                return -1;
            }
            while (next < argend && config_blank((unsigned char)*next))
                next++;
        }
        if (next != argend) {
            config_fmt_err(x->err, x->errlen,
                           "unexpected text after '}' in "
                           "$%c%.*s%c...",
                           open, (int)(j - start), s + start, op);
            return -1;
        }
    } else {
        v1 = arg;
        v1len = (size_t)(argend - arg);
    }
    if (expand_ref(x, s + start, j - start, out, &val) < 0)
        return -1;
    *pos = k + 1;
    if (x->nest >= EXPAND_DEPTH_MAX) {
        config_fmt_err(x->err, x->errlen,
                       "unreasonable nesting of ${name?...} at $%c%.*s", open,
                       (int)(j - start), s + start);
        return -1;
    }
    x->nest++;
    if (out == NULL) {
        rc = config_macro_expand(x, v1, v1len, NULL);
        if (rc == 0 && v2 != NULL)
            rc = config_macro_expand(x, v2, v2len, NULL);
    } else if ((op == '?') == (*val != 0)) {
        rc = config_macro_expand(x, v1, v1len, out);
    } else if (v2 != NULL) {
        rc = config_macro_expand(x, v2, v2len, out);
    }
    x->nest--;
    return rc;
}

/* Expand s into out; out == NULL walks every reference (x->on_ref). */
int config_macro_expand(struct config_expand_ctx *x, const char *s, size_t len,
                        struct buf *out)
{
    size_t i = 0, j;
    const char *val;

    while (i < len) {
        const char *dollar = memchr(s + i, '$', len - i);
        size_t lit = dollar != NULL ? (size_t)(dollar - (s + i)) : len - i;

        if (out != NULL && lit > 0)
            buf_append(out, s + i, lit);
        i += lit;
        if (i >= len)
            break;
        if (i + 1 < len && s[i + 1] == '$') {
            if (out != NULL)
                buf_putc(out, '$');
            i += 2;
        } else if (i + 1 < len && config_name_char((unsigned char)s[i + 1])) {
            for (j = i + 1; j < len && config_name_char((unsigned char)s[j]);
                 j++)
                ;
            if (expand_ref(x, s + i + 1, j - i - 1, out, &val) < 0)
                return -1;
            if (out != NULL)
                buf_puts(out, val);
            i = j;
        } else if (i + 1 < len && (s[i + 1] == '{' || s[i + 1] == '(')) {
            if (expand_braced(x, s, len, &i, out) < 0)
                return -1;
        } else {
            /* A '$' before anything else stands for itself. */
            if (out != NULL)
                buf_putc(out, '$');
            i++;
        }
    }
    return 0;
}

void config_macro_init(struct config_expand_ctx *x, struct config *cfg,
                       char *err, size_t errlen)
{
    memset(x, 0, sizeof(*x));
    x->cfg = cfg;
    x->err = err;
    x->errlen = errlen;
}
