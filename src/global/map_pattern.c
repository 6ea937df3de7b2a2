/*
 * map_pattern - rule files of the pattern tables (pcre:, regexp:, cidr:):
 * parsing, if/endif structure, first-match lookup and $n substitution.
 * The syntax is in map_pattern.h; the engines (map_pcre.c, map_regexp.c,
 * map_cidr.c) compile and match single patterns.
 *
 * The file is administrator text and is read once, when the table opens;
 * every rule must be valid or the open fails with "path:line: ...".
 * Keys are network text: they are matched as given, and a result built
 * from captured key text is bounded (MAP_PATTERN_RESULT_MAX; longer is a
 * lookup error, never a silently cut value).  A matching error inside an
 * engine (PCRE2's match limit) is MAP_ERROR: a key that could defeat a
 * rule must not pass as "not found".
 */
#include "global/map_pattern.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/buf.h"
#include "util/mem.h"

enum rule_op { OP_MATCH, OP_IF, OP_ENDIF };

struct rule {
    enum rule_op op;
    long line;
    bool negate;
    void *pattern;    /* engine object (OP_MATCH, OP_IF) */
    char *result;     /* OP_MATCH: validated result text */
    unsigned max_sub; /* largest $n in result (0: literal) */
    size_t endif;     /* OP_IF: index of its endif */
};

struct pattern_table {
    const struct map_pattern_engine *engine;
    struct rule *v;
    size_t n;
    size_t cap;
    size_t open_if[MAP_PATTERN_NESTING_MAX]; /* while parsing */
    size_t depth;
    struct map_pattern_cap caps[MAP_PATTERN_SUB_MAX + 1];
};

static bool is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static char *skip_space(char *p)
{
    while (is_space(*p))
        p++;
    return p;
}

/* "if" / "endif" (any case) followed by a non-alphanumeric character. */
static bool is_keyword(const char *p, const char *word)
{
    size_t n = strlen(word);

    return strncasecmp(p, word, n) == 0 && !isalnum((unsigned char)p[n]);
}

/* ---- $n references ---- */

/*
 * Parse the reference that starts at t[0] == '$' (Postfix's mac_parse
 * forms $n, ${n}, $(n), $$).  Sets *n (0 for "$$") and returns the
 * length consumed, or 0 with err set.
 */
static size_t parse_ref(const char *t, unsigned *n, char *err, size_t errlen)
{
    const char *p = t + 1, *name, *end;
    size_t len;
    char close = 0;

    if (*p == '$') {
        *n = 0;
        return 2;
    }
    if (*p == '{' || *p == '(') {
        close = *p == '{' ? '}' : ')';
        name = ++p;
        end = strchr(name, close);
        if (end == NULL) {
            snprintf(err, errlen, "unterminated reference \"%.20s\" in result",
                     t);
            return 0;
        }
    } else {
        name = p;
        for (end = p; isalnum((unsigned char)*end) || *end == '_'; end++)
            ;
    }
    len = (size_t)(end - name);
    if (len == 0) {
        snprintf(err, errlen,
                 "'$' without a group number in result (write $$ for a "
                 "dollar sign)");
        return 0;
    }
    *n = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)name[i])) {
            snprintf(err, errlen,
                     "non-numeric reference \"%.*s\" in result (write ${n} "
                     "before letters)",
                     (int)(len > 20 ? 20 : len), name);
            return 0;
        }
        if (*n <= MAP_PATTERN_SUB_MAX)
            *n = *n * 10 + (unsigned)(name[i] - '0');
    }
    if (*n < 1 || *n > MAP_PATTERN_SUB_MAX) {
        snprintf(err, errlen, "reference $%.*s out of range 1..%d",
                 (int)(len > 20 ? 20 : len), name, MAP_PATTERN_SUB_MAX);
        return 0;
    }
    return (size_t)(end - t) + (close ? 1 : 0);
}

/* Largest $n of a result, or -1 with err set. */
static long result_max_sub(const char *result, char *err, size_t errlen)
{
    unsigned max = 0, n;

    for (const char *p = result; *p != 0;) {
        size_t used;

        if (*p != '$') {
            p++;
            continue;
        }
        if ((used = parse_ref(p, &n, err, errlen)) == 0)
            return -1;
        if (n > max)
            max = n;
        p += used;
    }
    return (long)max;
}

/* Build the result of a matched rule (its text is already validated). */
static int result_expand(const struct rule *r, const char *key,
                         const struct map_pattern_cap *caps, struct buf *out,
                         char *err, size_t errlen)
{
    char sub[128];

    for (const char *p = r->result; *p != 0;) {
        const char *dollar = strchr(p, '$');
        unsigned n;
        size_t used;

        if (dollar == NULL) {
            buf_puts(out, p);
            break;
        }
        buf_append(out, p, (size_t)(dollar - p));
        used = parse_ref(dollar, &n, sub, sizeof(sub));
        assert(used > 0); /* validated at open */
        if (n == 0)
            buf_putc(out, '$');
        else if (caps[n].start != MAP_PATTERN_UNSET &&
                 caps[n].end > caps[n].start)
            buf_append(out, key + caps[n].start, caps[n].end - caps[n].start);
        if (out->len > MAP_PATTERN_RESULT_MAX) {
            snprintf(err, errlen, "result longer than %d bytes",
                     MAP_PATTERN_RESULT_MAX);
            return -1;
        }
        p = dollar + used;
    }
    if (out->len > MAP_PATTERN_RESULT_MAX) {
        snprintf(err, errlen, "result longer than %d bytes",
                 MAP_PATTERN_RESULT_MAX);
        return -1;
    }
    return 0;
}

/* ---- parsing ---- */

/*
 * The pattern at *pp, with any leading '!'s (each one flips the sense):
 * compile it and leave *pp after it (and its flags).
 */
static void *parse_pattern(struct pattern_table *t, char **pp, bool *negate,
                           size_t *ngroups, char *err, size_t errlen)
{
    char *p = *pp, *pattern, *flags, *end;
    char save;
    void *obj;

    *negate = false;
    for (;; p++) {
        if (*p == '!')
            *negate = !*negate;
        else if (!is_space(*p))
            break;
    }
    if (*p == 0) {
        snprintf(err, errlen, "missing pattern");
        return NULL;
    }
    if (t->engine->delimited) {
        char delim = *p;

        if (isalnum((unsigned char)delim)) {
            snprintf(err, errlen,
                     "pattern must start with a delimiter such as '/'");
            return NULL;
        }
        pattern = ++p;
        while (*p != 0 && *p != delim) {
            if (*p == '\\' && p[1] != 0)
                p++;
            p++;
        }
        if (*p == 0) {
            snprintf(err, errlen, "no closing delimiter '%c'", delim);
            return NULL;
        }
        *p++ = 0;
        flags = p;
        while (*p != 0 && !is_space(*p))
            p++;
        end = p;
    } else {
        pattern = p;
        while (*p != 0 && !is_space(*p))
            p++;
        end = p;
        flags = end; /* "" once terminated below */
    }
    save = *end;
    *end = 0;
    obj = t->engine->compile(pattern, t->engine->delimited ? flags : "",
                             ngroups, err, errlen);
    *end = save;
    *pp = end;
    return obj;
}

static struct rule *rule_add(struct pattern_table *t, enum rule_op op,
                             long line)
{
    struct rule *r;

    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->v = xreallocarray(t->v, t->cap, sizeof(*t->v));
    }
    r = &t->v[t->n++];
    memset(r, 0, sizeof(*r));
    r->op = op;
    r->line = line;
    return r;
}

static int parse_rule(char *text, const char *path, long line, void *ctx,
                      char *err, size_t errlen)
{
    struct pattern_table *t = ctx;
    char sub[400];
    char *p = text, *end = text + strlen(text);
    size_t ngroups = 0;
    bool negate;
    void *obj;
    struct rule *r;

    while (end > p && is_space(end[-1]))
        *--end = 0;
    if (t->n >= MAP_PATTERN_RULES_MAX) {
        snprintf(err, errlen, "%s:%ld: more than %d rules", path, line,
                 MAP_PATTERN_RULES_MAX);
        return -1;
    }
    if (is_keyword(p, "endif")) {
        p = skip_space(p + 5);
        if (*p != 0) {
            snprintf(err, errlen, "%s:%ld: text after endif", path, line);
            return -1;
        }
        if (t->depth == 0) {
            snprintf(err, errlen, "%s:%ld: endif without if", path, line);
            return -1;
        }
        t->v[t->open_if[--t->depth]].endif = t->n;
        rule_add(t, OP_ENDIF, line);
        return 0;
    }
    if (is_keyword(p, "if")) {
        if (t->depth >= MAP_PATTERN_NESTING_MAX) {
            snprintf(err, errlen, "%s:%ld: if nested deeper than %d", path,
                     line, MAP_PATTERN_NESTING_MAX);
            return -1;
        }
        p += 2;
        if ((obj = parse_pattern(t, &p, &negate, &ngroups, sub, sizeof(sub))) ==
            NULL) {
            snprintf(err, errlen, "%s:%ld: %s", path, line, sub);
            return -1;
        }
        r = rule_add(t, OP_IF, line);
        r->pattern = obj;
        r->negate = negate;
        if (*skip_space(p) != 0) {
            snprintf(err, errlen,
                     "%s:%ld: text after the if pattern (rules inside "
                     "if..endif must not be indented)",
                     path, line);
            return -1;
        }
        t->open_if[t->depth++] = t->n - 1;
        return 0;
    }
    if (t->engine->delimited && isalnum((unsigned char)*p)) {
        snprintf(err, errlen,
                 "%s:%ld: expected \"/pattern/ result\", \"if\" or \"endif\"",
                 path, line);
        return -1;
    }
    if ((obj = parse_pattern(t, &p, &negate, &ngroups, sub, sizeof(sub))) ==
        NULL) {
        snprintf(err, errlen, "%s:%ld: %s", path, line, sub);
        return -1;
    }
    r = rule_add(t, OP_MATCH, line);
    r->pattern = obj;
    r->negate = negate;
    p = skip_space(p);
    if (*p == 0) {
        snprintf(err, errlen, "%s:%ld: missing result after the pattern", path,
                 line);
        return -1;
    }
    r->result = xstrdup(p);
    if (t->engine->delimited) {
        long max = result_max_sub(p, sub, sizeof(sub));

        if (max < 0) {
            snprintf(err, errlen, "%s:%ld: %s", path, line, sub);
            return -1;
        }
        if (max > 0 && negate) {
            snprintf(err, errlen,
                     "%s:%ld: $%ld in the result of a negated pattern (it "
                     "captures nothing)",
                     path, line, max);
            return -1;
        }
        if ((size_t)max > ngroups) {
            snprintf(err, errlen,
                     "%s:%ld: result uses $%ld but the pattern has %zu "
                     "group%s",
                     path, line, max, ngroups, ngroups == 1 ? "" : "s");
            return -1;
        }
        r->max_sub = (unsigned)max;
    }
    return 0;
}

static void table_free(struct pattern_table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        if (t->v[i].pattern != NULL)
            t->engine->free(t->v[i].pattern);
        free(t->v[i].result);
    }
    free(t->v);
    free(t);
}

int map_pattern_open(struct map *m, const char *path,
                     const struct map_pattern_engine *engine, char *err,
                     size_t errlen)
{
    struct pattern_table *t = xcalloc(1, sizeof(*t));

    t->engine = engine;
    if (map_source_lines(path, parse_rule, t, err, errlen) < 0) {
        table_free(t);
        return -1;
    }
    if (t->depth > 0) {
        snprintf(err, errlen, "%s:%ld: if without endif", path,
                 t->v[t->open_if[t->depth - 1]].line);
        table_free(t);
        return -1;
    }
    m->ctx = t;
    return 0;
}

void map_pattern_close(struct map *m)
{
    table_free(m->ctx);
}

/* ---- lookup ---- */

enum map_result map_pattern_lookup(struct map *m, const char *key,
                                   struct buf *result, char *err, size_t errlen)
{
    struct pattern_table *t = m->ctx;
    const struct map_pattern_engine *e = t->engine;
    size_t keylen = strlen(key);
    void *prepared = NULL;
    enum map_result res = MAP_NOTFOUND;
    char sub[256];

    if (e->prepare != NULL && !e->prepare(key, &prepared))
        return MAP_NOTFOUND;
    for (size_t i = 0; i < t->n; i++) {
        const struct rule *r = &t->v[i];
        size_t ncaps = r->max_sub > 0 ? r->max_sub + 1 : 0;
        int rc;

        if (r->op == OP_ENDIF)
            continue;
        for (size_t c = 0; c < ncaps; c++)
            t->caps[c].start = t->caps[c].end = MAP_PATTERN_UNSET;
        rc = e->match(r->pattern, key, keylen, prepared, ncaps ? t->caps : NULL,
                      ncaps, sub, sizeof(sub));
        if (rc < 0) {
            snprintf(err, errlen, "%s, line %ld: %s", m->spec, r->line, sub);
            res = MAP_ERROR;
            break;
        }
        if (rc == MAP_PATTERN_SKIP || (rc == 1) == r->negate) {
            /* Condition false: skip the if block; no match: next rule. */
            if (r->op == OP_IF)
                i = r->endif;
            continue;
        }
        if (r->op == OP_IF)
            continue;
        if (!e->delimited) {
            buf_puts(result, r->result);
            res = MAP_FOUND;
            break;
        }
        if (result_expand(r, key, t->caps, result, sub, sizeof(sub)) < 0) {
            snprintf(err, errlen, "%s, line %ld: %s", m->spec, r->line, sub);
            res = MAP_ERROR;
            break;
        }
        res = MAP_FOUND;
        break;
    }
    free(prepared);
    return res;
}
