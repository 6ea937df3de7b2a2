/*
 * imap_parse_search - SEARCH arguments (RFC 3501 6.4.4, every key; the
 * RETURN options of ESEARCH, RFC 4731; MODSEQ of CONDSTORE, RFC 7162)
 * into a tree of struct imap_search_key that imap_search.c evaluates.
 * Pure; see imap_parse.h.  Recursion (NOT, OR, parentheses) is bounded
 * by IMAP_DEPTH_MAX and the number of keys by IMAP_SEARCH_KEYS_MAX.
 */
#include <string.h>
#include <strings.h>

#include "imapd/imap_parse.h"

struct imap_search_parser {
    struct imap_pool *pool;
    const struct imap_arg *args;
    size_t nargs;
    size_t pos;
    size_t nkeys;
    bool uses_modseq;
    const char *err;
};

static const struct imap_arg *imap_search_next(struct imap_search_parser *sp)
{
    if (sp->pos >= sp->nargs) {
        sp->err = "missing search argument";
        return NULL;
    }
    return &sp->args[sp->pos++];
}

static int imap_search_astring(struct imap_search_parser *sp, const char **s)
{
    const struct imap_arg *a = imap_search_next(sp);

    if (a == NULL)
        return -1;
    if (!imap_arg_astring(a, s)) {
        sp->err = "expected a string";
        return -1;
    }
    return 0;
}

static int imap_search_date(struct imap_search_parser *sp,
                            struct imap_date *d)
{
    const char *s;

    if (imap_search_astring(sp, &s) < 0)
        return -1;
    if (imap_parse_date(s, d) < 0) {
        sp->err = "bad date";
        return -1;
    }
    return 0;
}

static int imap_search_keys(struct imap_search_parser *sp,
                            const struct imap_arg *args, size_t nargs,
                            int depth, struct imap_search_key *and);

static int imap_search_key(struct imap_search_parser *sp, int depth,
                           struct imap_search_key *k)
{
    static const struct {
        const char *name;
        enum imap_search_op op;
        unsigned flag;
    } flagkeys[] = {
        {"ANSWERED", IMAP_SEARCH_FLAG, IMAP_FLAG_ANSWERED},
        {"DELETED", IMAP_SEARCH_FLAG, IMAP_FLAG_DELETED},
        {"DRAFT", IMAP_SEARCH_FLAG, IMAP_FLAG_DRAFT},
        {"FLAGGED", IMAP_SEARCH_FLAG, IMAP_FLAG_FLAGGED},
        {"RECENT", IMAP_SEARCH_FLAG, IMAP_FLAG_RECENT},
        {"SEEN", IMAP_SEARCH_FLAG, IMAP_FLAG_SEEN},
        {"UNANSWERED", IMAP_SEARCH_NOFLAG, IMAP_FLAG_ANSWERED},
        {"UNDELETED", IMAP_SEARCH_NOFLAG, IMAP_FLAG_DELETED},
        {"UNDRAFT", IMAP_SEARCH_NOFLAG, IMAP_FLAG_DRAFT},
        {"UNFLAGGED", IMAP_SEARCH_NOFLAG, IMAP_FLAG_FLAGGED},
        {"UNSEEN", IMAP_SEARCH_NOFLAG, IMAP_FLAG_SEEN},
        {"OLD", IMAP_SEARCH_NOFLAG, IMAP_FLAG_RECENT},
        {"ALL", IMAP_SEARCH_ALL, 0},
        {"NEW", IMAP_SEARCH_NEW, 0},
    };
    static const struct {
        const char *name;
        const char *header;
    } hdrkeys[] = {
        {"BCC", "Bcc"}, {"CC", "Cc"}, {"FROM", "From"},
        {"SUBJECT", "Subject"}, {"TO", "To"},
    };
    static const struct {
        const char *name;
        enum imap_search_op op;
    } datekeys[] = {
        {"BEFORE", IMAP_SEARCH_BEFORE},         {"ON", IMAP_SEARCH_ON},
        {"SINCE", IMAP_SEARCH_SINCE},           {"SENTBEFORE", IMAP_SEARCH_SENTBEFORE},
        {"SENTON", IMAP_SEARCH_SENTON},         {"SENTSINCE", IMAP_SEARCH_SENTSINCE},
    };
    const struct imap_arg *a = imap_search_next(sp);
    const char *w;

    memset(k, 0, sizeof(*k));
    if (a == NULL)
        return -1;
    if (++sp->nkeys > IMAP_SEARCH_KEYS_MAX || depth > IMAP_DEPTH_MAX) {
        sp->err = "search program too complex";
        return -1;
    }
    if (a->type == IMAP_ARG_LIST) {
        if (a->count == 0) {
            sp->err = "empty search list";
            return -1;
        }
        return imap_search_keys(sp, a->list, a->count, depth + 1, k);
    }
    if (a->type != IMAP_ARG_ATOM) {
        sp->err = "expected a search key";
        return -1;
    }
    w = a->str;
    for (size_t i = 0; i < sizeof(flagkeys) / sizeof(flagkeys[0]); i++) {
        if (strcasecmp(w, flagkeys[i].name) == 0) {
            k->op = flagkeys[i].op;
            k->flag = flagkeys[i].flag;
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof(hdrkeys) / sizeof(hdrkeys[0]); i++) {
        if (strcasecmp(w, hdrkeys[i].name) == 0) {
            k->op = IMAP_SEARCH_HEADER;
            k->hdr = hdrkeys[i].header;
            return imap_search_astring(sp, &k->str);
        }
    }
    for (size_t i = 0; i < sizeof(datekeys) / sizeof(datekeys[0]); i++) {
        if (strcasecmp(w, datekeys[i].name) == 0) {
            k->op = datekeys[i].op;
            return imap_search_date(sp, &k->date);
        }
    }
    if (strcasecmp(w, "BODY") == 0 || strcasecmp(w, "TEXT") == 0) {
        k->op = strcasecmp(w, "BODY") == 0 ? IMAP_SEARCH_BODY : IMAP_SEARCH_TEXT;
        return imap_search_astring(sp, &k->str);
    }
    if (strcasecmp(w, "HEADER") == 0) {
        k->op = IMAP_SEARCH_HEADER;
        if (imap_search_astring(sp, &k->hdr) < 0)
            return -1;
        for (const char *c = k->hdr; *c; c++)
            if ((unsigned char)*c <= 0x20 || *c == ':' || *c == 0x7f) {
                sp->err = "bad header field name";
                return -1;
            }
        return imap_search_astring(sp, &k->str);
    }
    if (strcasecmp(w, "KEYWORD") == 0 || strcasecmp(w, "UNKEYWORD") == 0) {
        const struct imap_arg *f;

        k->op = strcasecmp(w, "KEYWORD") == 0 ? IMAP_SEARCH_KEYWORD
                                              : IMAP_SEARCH_UNKEYWORD;
        if ((f = imap_search_next(sp)) == NULL)
            return -1;
        if (f->type != IMAP_ARG_ATOM) {
            sp->err = "bad keyword";
            return -1;
        }
        /* A system flag named as a keyword searches for that flag. */
        if ((k->flag = imap_flag_from_name(f->str)) != 0) {
            k->op = k->op == IMAP_SEARCH_KEYWORD ? IMAP_SEARCH_FLAG
                                                 : IMAP_SEARCH_NOFLAG;
            return 0;
        }
        if (!imap_parse_keyword_ok(f->str)) {
            sp->err = "bad keyword";
            return -1;
        }
        k->str = f->str;
        return 0;
    }
    if (strcasecmp(w, "LARGER") == 0 || strcasecmp(w, "SMALLER") == 0) {
        const struct imap_arg *n;

        k->op = strcasecmp(w, "LARGER") == 0 ? IMAP_SEARCH_LARGER
                                             : IMAP_SEARCH_SMALLER;
        if ((n = imap_search_next(sp)) == NULL)
            return -1;
        if (n->type != IMAP_ARG_ATOM ||
            !imap_parse_number64(n->str, n->len, &k->num)) {
            sp->err = "expected a number";
            return -1;
        }
        return 0;
    }
    if (strcasecmp(w, "NOT") == 0) {
        k->op = IMAP_SEARCH_NOT;
        k->sub = imap_pool_alloc(sp->pool, sizeof(*k->sub));
        k->nsub = 1;
        return imap_search_key(sp, depth + 1, k->sub);
    }
    if (strcasecmp(w, "OR") == 0) {
        k->op = IMAP_SEARCH_OR;
        k->sub = imap_pool_allocarray(sp->pool, 2, sizeof(*k->sub));
        k->nsub = 2;
        if (imap_search_key(sp, depth + 1, &k->sub[0]) < 0)
            return -1;
        return imap_search_key(sp, depth + 1, &k->sub[1]);
    }
    if (strcasecmp(w, "UID") == 0) {
        const struct imap_arg *s;

        k->op = IMAP_SEARCH_UID;
        if ((s = imap_search_next(sp)) == NULL)
            return -1;
        if (s->type != IMAP_ARG_ATOM ||
            imap_parse_seqset(sp->pool, s->str, &k->set) < 0) {
            sp->err = "bad UID set";
            return -1;
        }
        return 0;
    }
    if (strcasecmp(w, "MODSEQ") == 0) {
        const struct imap_arg *n;

        k->op = IMAP_SEARCH_MODSEQ;
        if ((n = imap_search_next(sp)) == NULL)
            return -1;
        /* Optional entry name and type (RFC 7162 3.1.5): checked, unused. */
        if (n->type != IMAP_ARG_ATOM) {
            if (!imap_arg_string(n, &w) || (n = imap_search_next(sp)) == NULL)
                return -1;
            if (!imap_arg_is_atom(n, "priv") && !imap_arg_is_atom(n, "shared") &&
                !imap_arg_is_atom(n, "all")) {
                sp->err = "bad MODSEQ entry type";
                return -1;
            }
            if ((n = imap_search_next(sp)) == NULL)
                return -1;
        }
        if (n->type != IMAP_ARG_ATOM ||
            !imap_parse_number64(n->str, n->len, &k->num)) {
            sp->err = "bad MODSEQ value";
            return -1;
        }
        sp->uses_modseq = true;
        return 0;
    }
    if (imap_parse_seqset(sp->pool, w, &k->set) == 0) {
        k->op = IMAP_SEARCH_SEQSET;
        return 0;
    }
    sp->err = "unknown search key";
    return -1;
}

/* Keys args[0..nargs) ANDed into `and`. */
static int imap_search_keys(struct imap_search_parser *sp,
                            const struct imap_arg *args, size_t nargs,
                            int depth, struct imap_search_key *and)
{
    const struct imap_arg *saved_args = sp->args;
    size_t saved_n = sp->nargs, saved_pos = sp->pos;
    size_t cap = nargs;

    memset(and, 0, sizeof(*and));
    and->op = IMAP_SEARCH_AND;
    and->sub = imap_pool_allocarray(sp->pool, cap, sizeof(*and->sub));
    sp->args = args;
    sp->nargs = nargs;
    sp->pos = 0;
    while (sp->pos < nargs) {
        if (imap_search_key(sp, depth, &and->sub[and->nsub]) < 0)
            return -1;
        and->nsub++;
    }
    sp->args = saved_args;
    sp->nargs = saved_n;
    sp->pos = saved_pos;
    return 0;
}

int imap_parse_search(struct imap_pool *pool, const struct imap_arg *args,
                      size_t nargs, struct imap_search *out, bool *badcharset,
                      const char **err)
{
    struct imap_search_parser sp = {pool, args, nargs, 0, 0, false, NULL};
    size_t i = 0;

    memset(out, 0, sizeof(*out));
    *badcharset = false;
    if (i < nargs && imap_arg_is_atom(&args[i], "RETURN")) {
        const struct imap_arg *opts;

        if (++i >= nargs || args[i].type != IMAP_ARG_LIST) {
            *err = "RETURN needs a list";
            return -1;
        }
        opts = &args[i++];
        out->esearch = true;
        for (size_t k = 0; k < opts->count; k++) {
            const struct imap_arg *o = &opts->list[k];

            if (imap_arg_is_atom(o, "MIN"))
                out->ret |= IMAP_SEARCH_RET_MIN;
            else if (imap_arg_is_atom(o, "MAX"))
                out->ret |= IMAP_SEARCH_RET_MAX;
            else if (imap_arg_is_atom(o, "ALL"))
                out->ret |= IMAP_SEARCH_RET_ALL;
            else if (imap_arg_is_atom(o, "COUNT"))
                out->ret |= IMAP_SEARCH_RET_COUNT;
            else {
                *err = "unknown RETURN option";
                return -1;
            }
        }
        if (out->ret == 0)
            out->ret = IMAP_SEARCH_RET_ALL;
    }
    if (i < nargs && imap_arg_is_atom(&args[i], "CHARSET")) {
        if (++i >= nargs || !imap_arg_astring(&args[i], &out->charset)) {
            *err = "CHARSET needs a name";
            return -1;
        }
        i++;
        if (strcasecmp(out->charset, "UTF-8") != 0 &&
            strcasecmp(out->charset, "US-ASCII") != 0) {
            *badcharset = true;
            *err = "unsupported charset";
            return -1;
        }
    }
    if (i >= nargs) {
        *err = "missing search keys";
        return -1;
    }
    out->root = imap_pool_alloc(pool, sizeof(*out->root));
    if (imap_search_keys(&sp, args + i, nargs - i, 0, out->root) < 0) {
        *err = sp.err ? sp.err : "bad search program";
        return -1;
    }
    out->uses_modseq = sp.uses_modseq;
    return 0;
}
