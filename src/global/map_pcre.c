/*
 * map_pcre - pcre:/path, Perl-compatible regular expression tables
 * (Postfix's pcre_table(5)) on PCRE2.  The rule file is map_pattern.c's;
 * this file compiles and matches one pattern.
 *
 * Flags toggle PCRE2 options, with Postfix's defaults: i (caseless, on),
 * s (dot matches newline, on), m (multi-line), x (extended), A
 * (anchored), E (dollar matches only at the end), U (ungreedy).  X is
 * accepted and changes nothing: PCRE2 already refuses unknown escapes,
 * which is what PCRE1's EXTRA flag did.  Patterns match bytes (no UTF
 * mode), against the whole key as given.
 *
 * Matching is bounded by MAP_PCRE_MATCH_LIMIT backtracking steps and
 * PCRE2's heap limit; hitting either is a lookup error (the caller
 * defers), not "no match", so a crafted key cannot slip past a rule.
 * Patterns are JIT-compiled when the library can; a JIT stack overflow
 * retries the match with the interpreter.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>

#include "global/map_pattern.h"
#include "util/mem.h"

#define MAP_PCRE_MATCH_LIMIT 1000000

struct pcre_pattern {
    pcre2_code *code;
    pcre2_match_data *md;
};

static pcre2_match_context *pcre_mctx;

static void pcre_error_text(int code, char *buf, size_t len)
{
    if (pcre2_get_error_message(code, (PCRE2_UCHAR *)buf, len) < 0)
        snprintf(buf, len, "PCRE2 error %d", code);
}

static void *pcre_compile_one(const char *pattern, const char *flags,
                              size_t *ngroups, char *err, size_t errlen)
{
    uint32_t options = PCRE2_CASELESS | PCRE2_DOTALL, count;
    struct pcre_pattern *p;
    PCRE2_SIZE offset;
    char msg[256];
    int code;

    for (const char *f = flags; *f != 0; f++) {
        switch (*f) {
        case 'i':
            options ^= PCRE2_CASELESS;
            break;
        case 'm':
            options ^= PCRE2_MULTILINE;
            break;
        case 's':
            options ^= PCRE2_DOTALL;
            break;
        case 'x':
            options ^= PCRE2_EXTENDED;
            break;
        case 'A':
            options ^= PCRE2_ANCHORED;
            break;
        case 'E':
            options ^= PCRE2_DOLLAR_ENDONLY;
            break;
        case 'U':
            options ^= PCRE2_UNGREEDY;
            break;
        case 'X':
            break;
        default:
            snprintf(err, errlen, "unknown pattern flag '%c'", *f);
            return NULL;
        }
    }
    p = xcalloc(1, sizeof(*p));
    p->code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, options,
                            &code, &offset, NULL);
    if (p->code == NULL) {
        pcre_error_text(code, msg, sizeof(msg));
        snprintf(err, errlen, "error in regex at offset %lu: %s",
                 (unsigned long)offset, msg);
        free(p);
        return NULL;
    }
    /* Optional: without JIT support the interpreter runs. */
    (void)pcre2_jit_compile(p->code, PCRE2_JIT_COMPLETE);
    if (pcre2_pattern_info(p->code, PCRE2_INFO_CAPTURECOUNT, &count) != 0)
        count = 0;
    p->md = pcre2_match_data_create_from_pattern(p->code, NULL);
    if (p->md == NULL) {
        pcre2_code_free(p->code);
        free(p);
        snprintf(err, errlen, "out of memory for match data");
        return NULL;
    }
    if (pcre_mctx == NULL) {
        pcre_mctx = pcre2_match_context_create(NULL);
        if (pcre_mctx == NULL) {
            pcre2_match_data_free(p->md);
            pcre2_code_free(p->code);
            free(p);
            snprintf(err, errlen, "out of memory for match context");
            return NULL;
        }
        pcre2_set_match_limit(pcre_mctx, MAP_PCRE_MATCH_LIMIT);
    }
    *ngroups = count;
    return p;
}

static int pcre_match_one(void *pattern, const char *key, size_t keylen,
                          const void *prepared, struct map_pattern_cap *caps,
                          size_t ncaps, char *err, size_t errlen)
{
    struct pcre_pattern *p = pattern;
    PCRE2_SIZE *ov;
    char msg[256];
    int rc;

    rc = pcre2_match(p->code, (PCRE2_SPTR)key, keylen, 0, 0, p->md, pcre_mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
        rc = pcre2_match(p->code, (PCRE2_SPTR)key, keylen, 0, PCRE2_NO_JIT,
                         p->md, pcre_mctx);
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    if (rc < 0) {
        pcre_error_text(rc, msg, sizeof(msg));
        snprintf(err, errlen, "matching failed: %s", msg);
        return -1;
    }
    ov = pcre2_get_ovector_pointer(p->md);
    /* rc == 0: more groups than the ovector holds; cannot happen here. */
    for (size_t i = 0; i < ncaps && rc > 0 && i < (size_t)rc; i++) {
        if (ov[2 * i] == PCRE2_UNSET || ov[2 * i + 1] < ov[2 * i] ||
            ov[2 * i + 1] > keylen)
            continue;
        caps[i].start = ov[2 * i];
        caps[i].end = ov[2 * i + 1];
    }
    return 1;
}

static void pcre_free_one(void *pattern)
{
    struct pcre_pattern *p = pattern;

    pcre2_match_data_free(p->md);
    pcre2_code_free(p->code);
    free(p);
}

static const struct map_pattern_engine pcre_engine = {
    .type = "pcre",
    .delimited = true,
    .compile = pcre_compile_one,
    .prepare = NULL,
    .match = pcre_match_one,
    .free = pcre_free_one,
};

int map_pcre_open(struct map *m, const char *name, char *err, size_t errlen)
{
    return map_pattern_open(m, name, &pcre_engine, err, errlen);
}
