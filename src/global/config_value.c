/*
 * config_value - parameter values: type checks (integer, time, size,
 * yes/no, word lists), list splitting, and the small text helpers the
 * config files share.  Input is untrusted text; output is a verdict and a
 * message quoting at most VALUE_SHOWN_MAX printable bytes of the value.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "global/config_impl.h"
#include "util/log.h"
#include "util/str.h"

bool config_name_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_';
}

bool config_blank(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
           c == '\f';
}

void config_fmt_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A value quoted in a message: printable and bounded. */
const char *config_shown(char *dst, size_t size, const char *s)
{
    size_t len = strlen(s);

    log_printable(dst, size, s, len);
    if (len >= size && size > 4)
        memcpy(dst + size - 4, "...", 4);
    return dst;
}

static bool word_allowed(const char *values, const char *word, size_t len)
{
    const char *p = values;

    for (;;) {
        size_t n = strcspn(p, "|");
        if (n == len && strncmp(p, word, len) == 0)
            return true;
        if (p[n] == 0)
            return false;
        p += n + 1;
    }
}

/* The list splitter: separators outside "{...}" end an element. */
void config_list_split(struct argv *a, const char *s)
{
    for (;;) {
        size_t n = 0;
        int depth = 0;

        s += strspn(s, LIST_SEPARATORS);
        if (*s == 0)
            return;
        for (; s[n] != 0; n++) {
            if (s[n] == '{')
                depth++;
            else if (s[n] == '}' && depth > 0)
                depth--;
            else if (depth == 0 && strchr(LIST_SEPARATORS, s[n]) != NULL)
                break;
        }
        argv_addn(a, s, n);
        s += n;
    }
}

static bool braces_balanced(const char *s)
{
    long depth = 0;

    for (; *s; s++) {
        if (*s == '{')
            depth++;
        else if (*s == '}' && --depth < 0)
            return false;
    }
    return depth == 0;
}

/* Parse a numeric value of p's type; false with msg on error. */
bool config_param_number(const struct param_def *p, const char *v,
                         long long *out, char *msg, size_t msglen)
{
    char sv[VALUE_SHOWN_MAX];
    long long max = p->max;
    bool ok;
    const char *what;

    switch (p->type) {
    case PARAM_INT:
        ok = str_to_llong(v, out) && *out >= 0;
        what = "a number";
        if (max == 0)
            max = INT_MAX;
        break;
    case PARAM_TIME:
        ok = str_to_time(v, p->time_unit ? p->time_unit : 's', out);
        what = "a time (e.g. 300s, 5m, 2h, 5d, 1w)";
        if (max == 0)
            max = INT_MAX;
        break;
    case PARAM_SIZE:
        ok = str_to_size(v, out);
        what = "a size in bytes (e.g. 10240000, 10m)";
        if (max == 0)
            max = LLONG_MAX;
        break;
    default:
        log_panic("config_param_number: %s is not numeric", p->name);
    }
    if (!ok) {
        config_fmt_err(msg, msglen, "bad value '%s': expected %s",
                       config_shown(sv, sizeof(sv), v), what);
        return false;
    }
    if (*out < p->min || *out > max) {
        config_fmt_err(msg, msglen, "value '%s' out of range (%lld...%lld%s)",
                       config_shown(sv, sizeof(sv), v), p->min, max,
                       p->type == PARAM_TIME ? " seconds" : "");
        return false;
    }
    return true;
}

/* Check an (expanded or literal) value against p.  0, or -1 with msg. */
int config_param_check(const struct param_def *p, const char *v, char *msg,
                       size_t msglen)
{
    char sv[VALUE_SHOWN_MAX];
    long long n;
    bool b;

    switch (p->type) {
    case PARAM_INT:
    case PARAM_TIME:
    case PARAM_SIZE:
        return config_param_number(p, v, &n, msg, msglen) ? 0 : -1;
    case PARAM_BOOL:
        if (!str_to_bool(v, &b)) {
            config_fmt_err(msg, msglen, "bad value '%s': expected yes or no",
                           config_shown(sv, sizeof(sv), v));
            return -1;
        }
        return 0;
    case PARAM_STR:
        if (p->values != NULL && !word_allowed(p->values, v, strlen(v))) {
            config_fmt_err(msg, msglen, "bad value '%s': expected one of %s",
                           config_shown(sv, sizeof(sv), v), p->values);
            return -1;
        }
        return 0;
    case PARAM_LIST:
        if (!braces_balanced(v)) {
            config_fmt_err(msg, msglen, "unbalanced '{' or '}' in '%s'",
                           config_shown(sv, sizeof(sv), v));
            return -1;
        }
        if (p->values != NULL) {
            struct argv words = ARGV_INIT;
            int rc = 0;

            config_list_split(&words, v);
            for (size_t i = 0; i < words.n && rc == 0; i++) {
                if (!word_allowed(p->values, words.v[i], strlen(words.v[i]))) {
                    config_fmt_err(msg, msglen, "bad value '%s': expected %s",
                                   config_shown(sv, sizeof(sv), words.v[i]),
                                   p->values);
                    rc = -1;
                }
            }
            argv_free(&words);
            return rc;
        }
        return 0;
    }
    return 0;
}
