/*
 * str - small string helpers and value parsers used by config and protocols.
 */
#ifndef UTIL_STR_H
#define UTIL_STR_H

#include <stdbool.h>
#include <stddef.h>

/* Bounded copy/concat, always NUL-terminate, return strlen(src) (BSD). */
size_t str_lcpy(char *dst, const char *src, size_t size);
size_t str_lcat(char *dst, const char *src, size_t size);

void str_lower(char *s);                    /* ASCII only, in place */
char *str_trim(char *s);                    /* strip ASCII blanks both ends */
bool str_has_prefix_ci(const char *s, const char *prefix);
bool str_eq_ci(const char *a, const char *b);

/*
 * Parse a decimal integer; whole string must match, no sign unless allowed.
 * Return false on syntax error or overflow.
 */
bool str_to_llong(const char *s, long long *out);
/* "10240000", also "10k", "10m", "10g" suffixes (binary) */
bool str_to_size(const char *s, long long *out);
/* Postfix time values: "300", "300s", "5m", "2h", "5d", "1w" -> seconds.
 * default_unit is the unit when none is given ('s','m','h','d','w'). */
bool str_to_time(const char *s, char default_unit, long long *out);
/* yes/no/true/false/1/0/on/off, case-insensitive */
bool str_to_bool(const char *s, bool *out);

#endif
