/*
 * str - small string helpers and value parsers.
 *
 * The parsers take untrusted text (main.cf values, protocol arguments) and
 * either produce a value or return false: whole-string match, no silent
 * truncation, every multiplication checked for overflow.  ASCII only; the
 * current locale is never consulted.
 */
#include "util/str.h"

#include <limits.h>
#include <string.h>

size_t str_lcpy(char *dst, const char *src, size_t size)
{
    size_t len = strlen(src);

    if (size > 0) {
        size_t n = len < size - 1 ? len : size - 1;
        memcpy(dst, src, n);
        dst[n] = 0;
    }
    return len;
}

size_t str_lcat(char *dst, const char *src, size_t size)
{
    size_t dlen = strnlen(dst, size);

    if (dlen == size)
        return size + strlen(src);
    return dlen + str_lcpy(dst + dlen, src, size - dlen);
}

static int ascii_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

static bool ascii_blank(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
           c == '\f';
}

void str_lower(char *s)
{
    for (; *s; s++)
        *s = (char)ascii_lower((unsigned char)*s);
}

char *str_trim(char *s)
{
    size_t len;

    while (ascii_blank((unsigned char)*s))
        s++;
    len = strlen(s);
    while (len > 0 && ascii_blank((unsigned char)s[len - 1]))
        len--;
    s[len] = 0;
    return s;
}

bool str_has_prefix_ci(const char *s, const char *prefix)
{
    for (; *prefix; s++, prefix++)
        if (*s == 0 || ascii_lower((unsigned char)*s) !=
                           ascii_lower((unsigned char)*prefix))
            return false;
    return true;
}

bool str_eq_ci(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (ascii_lower((unsigned char)*a) != ascii_lower((unsigned char)*b))
            return false;
    return *a == *b;
}

/* Leading decimal digits of s into *out; *end after them.  No sign. */
static bool str_digits(const char *s, const char **end, long long *out)
{
    long long v = 0;
    const char *p = s;

    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        int d = *p - '0';
        if (v > (LLONG_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *end = p;
    *out = v;
    return true;
}

bool str_to_llong(const char *s, long long *out)
{
    const char *end;
    long long v;
    bool neg = false;

    if (s == NULL)
        return false;
    if (*s == '-') {
        neg = true;
        s++;
    }
    if (!str_digits(s, &end, &v) || *end != 0)
        return false;
    *out = neg ? -v : v;
    return true;
}

static bool str_scale(long long v, long long mult, long long *out)
{
    if (v > LLONG_MAX / mult)
        return false;
    *out = v * mult;
    return true;
}

bool str_to_size(const char *s, long long *out)
{
    const char *end;
    long long v, mult;

    if (s == NULL || !str_digits(s, &end, &v))
        return false;
    switch (ascii_lower((unsigned char)*end)) {
    case 0:
        *out = v;
        return true;
    case 'k':
        mult = 1024LL;
        break;
    case 'm':
        mult = 1024LL * 1024;
        break;
    case 'g':
        mult = 1024LL * 1024 * 1024;
        break;
    default:
        return false;
    }
    if (end[1] != 0)
        return false;
    return str_scale(v, mult, out);
}

static long long str_time_unit(int unit)
{
    switch (unit) {
    case 's':
        return 1;
    case 'm':
        return 60;
    case 'h':
        return 3600;
    case 'd':
        return 86400;
    case 'w':
        return 7 * 86400;
    default:
        return 0;
    }
}

bool str_to_time(const char *s, char default_unit, long long *out)
{
    const char *end;
    long long v, mult;

    if (s == NULL || !str_digits(s, &end, &v))
        return false;
    if (*end == 0) {
        mult = str_time_unit(ascii_lower((unsigned char)default_unit));
    } else {
        if (end[1] != 0)
            return false;
        mult = str_time_unit(ascii_lower((unsigned char)*end));
    }
    if (mult == 0)
        return false;
    return str_scale(v, mult, out);
}

bool str_to_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"yes", "true", "1", "on"};
    static const char *const no[] = {"no", "false", "0", "off"};
    size_t i;

    if (s == NULL)
        return false;
    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (str_eq_ci(s, yes[i])) {
            *out = true;
            return true;
        }
        if (str_eq_ci(s, no[i])) {
            *out = false;
            return true;
        }
    }
    return false;
}
