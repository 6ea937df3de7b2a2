/*
 * imap_parse_fetch - FETCH attributes (RFC 3501 6.4.5, CONDSTORE's
 * MODSEQ and CHANGEDSINCE from RFC 7162) into a list the FETCH command
 * runs.  Pure; see imap_parse.h.  The section inside "BODY[...]" arrives
 * as part of one atom (imap_parse.c keeps brackets together) and is taken
 * apart here: part numbers, then HEADER, HEADER.FIELDS[.NOT] (list),
 * TEXT or MIME; then an optional <offset.length>.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "imapd/imap_parse.h"

#define IMAP_FETCH_ATTS_MAX 64

static bool imap_word(const char **s, const char *word)
{
    size_t n = strlen(word);

    if (strncasecmp(*s, word, n) != 0)
        return false;
    *s += n;
    return true;
}

/* "(From To \"X-A\")" in [s, end); names into out. */
static int imap_parse_fields(struct imap_pool *pool, const char *s,
                             const char *end, struct imap_section *out)
{
    const char **v;
    size_t n = 0;

    if (s >= end || *s != '(' || end[-1] != ')')
        return -1;
    s++;
    end--;
    v = imap_pool_allocarray(pool, IMAP_SECTION_FIELDS_MAX, sizeof(*v));
    while (s < end) {
        const char *start = s;
        char *name;

        if (n > 0) {
            if (*s != ' ')
                return -1;
            start = ++s;
        }
        if (s < end && *s == '"') {
            start = ++s;
            while (s < end && *s != '"' && *s != '\\')
                s++;
            if (s >= end || *s != '"')
                return -1;
            name = imap_pool_strndup(pool, start, (size_t)(s - start));
            s++;
        } else {
            while (s < end && *s != ' ')
                s++;
            name = imap_pool_strndup(pool, start, (size_t)(s - start));
        }
        if (*name == 0 || n >= IMAP_SECTION_FIELDS_MAX)
            return -1;
        for (const char *c = name; *c; c++)
            if ((unsigned char)*c <= 0x20 || *c == ':' || *c == 0x7f ||
                *c == '(' || *c == ')')
                return -1;
        v[n++] = name;
    }
    if (n == 0)
        return -1;
    out->fields = v;
    out->n_fields = n;
    return 0;
}

int imap_parse_section(struct imap_pool *pool, const char *s, size_t len,
                       struct imap_section *out)
{
    const char *sp = memchr(s, ' ', len);
    size_t speclen = sp ? (size_t)(sp - s) : len;
    bool wants_fields;

    memset(out, 0, sizeof(*out));
    if (memchr(s, 0, len) != NULL || imap_section_parse(s, speclen, out) < 0)
        return -1;
    wants_fields = out->text == IMAP_SECTION_HEADER_FIELDS ||
                   out->text == IMAP_SECTION_HEADER_FIELDS_NOT;
    if (!wants_fields)
        return sp == NULL ? 0 : -1;
    if (sp == NULL)
        return -1;
    return imap_parse_fields(pool, sp + 1, s + len, out);
}

/* "<o.n>" (the whole rest of the atom). */
static int imap_parse_partial(const char *s, struct imap_fetch_att *att)
{
    const char *dot = strchr(s, '.');
    uint64_t off, len;
    size_t n = strlen(s);

    if (n < 5 || s[0] != '<' || s[n - 1] != '>' || dot == NULL ||
        !imap_parse_number64(s + 1, (size_t)(dot - s - 1), &off) ||
        !imap_parse_number64(dot + 1, (size_t)(s + n - 1 - dot - 1), &len) ||
        off > UINT32_MAX || len == 0 || len > UINT32_MAX)
        return -1;
    att->partial = true;
    att->partial_off = (uint32_t)off;
    att->partial_len = (uint32_t)len;
    return 0;
}

static int imap_parse_fetch_att(struct imap_pool *pool, const char *s,
                                struct imap_fetch_att *att, const char **err)
{
    static const struct {
        const char *name;
        enum imap_fetch_item item;
    } simple[] = {
        {"UID", IMAP_FETCH_UID},
        {"FLAGS", IMAP_FETCH_FLAGS},
        {"INTERNALDATE", IMAP_FETCH_INTERNALDATE},
        {"RFC822.SIZE", IMAP_FETCH_RFC822_SIZE},
        {"ENVELOPE", IMAP_FETCH_ENVELOPE},
        {"BODY", IMAP_FETCH_BODY},
        {"BODYSTRUCTURE", IMAP_FETCH_BODYSTRUCTURE},
        {"RFC822", IMAP_FETCH_RFC822},
        {"RFC822.HEADER", IMAP_FETCH_RFC822_HEADER},
        {"RFC822.TEXT", IMAP_FETCH_RFC822_TEXT},
        {"MODSEQ", IMAP_FETCH_MODSEQ},
    };
    const char *p = s;
    const char *close;

    memset(att, 0, sizeof(*att));
    for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
        if (strcasecmp(s, simple[i].name) == 0) {
            att->item = simple[i].item;
            return 0;
        }
    }
    if (imap_word(&p, "BODY.PEEK["))
        att->peek = true;
    else if (!imap_word(&p, "BODY[")) {
        *err = "unknown FETCH attribute";
        return -1;
    }
    att->item = IMAP_FETCH_SECTION;
    if ((close = strchr(p, ']')) == NULL ||
        imap_parse_section(pool, p, (size_t)(close - p), &att->section) < 0) {
        *err = "bad section in BODY[]";
        return -1;
    }
    att->section_text = imap_pool_strndup(pool, p, (size_t)(close - p));
    if (close[1] != 0 && imap_parse_partial(close + 1, att) < 0) {
        *err = "bad partial range";
        return -1;
    }
    return 0;
}

static void imap_fetch_add(struct imap_fetch_atts *out, enum imap_fetch_item it)
{
    memset(&out->v[out->n], 0, sizeof(out->v[0]));
    out->v[out->n++].item = it;
}

int imap_parse_fetch_atts(struct imap_pool *pool, const struct imap_arg *args,
                          size_t nargs, struct imap_fetch_atts *out,
                          const char **err)
{
    const struct imap_arg *list;
    size_t n;

    memset(out, 0, sizeof(*out));
    if (nargs < 1 || nargs > 2) {
        *err = "FETCH needs a sequence set and attributes";
        return -1;
    }
    out->v = imap_pool_allocarray(pool, IMAP_FETCH_ATTS_MAX + 4,
                                  sizeof(*out->v));
    if (args[0].type == IMAP_ARG_ATOM) {
        if (imap_arg_is_atom(&args[0], "ALL") ||
            imap_arg_is_atom(&args[0], "FAST") ||
            imap_arg_is_atom(&args[0], "FULL")) {
            imap_fetch_add(out, IMAP_FETCH_FLAGS);
            imap_fetch_add(out, IMAP_FETCH_INTERNALDATE);
            imap_fetch_add(out, IMAP_FETCH_RFC822_SIZE);
            if (!imap_arg_is_atom(&args[0], "FAST"))
                imap_fetch_add(out, IMAP_FETCH_ENVELOPE);
            if (imap_arg_is_atom(&args[0], "FULL"))
                imap_fetch_add(out, IMAP_FETCH_BODY);
            list = NULL;
            n = 0;
        } else {
            list = &args[0];
            n = 1;
        }
    } else if (args[0].type == IMAP_ARG_LIST && args[0].count > 0) {
        list = args[0].list;
        n = args[0].count;
    } else {
        *err = "bad FETCH attribute list";
        return -1;
    }
    if (n > IMAP_FETCH_ATTS_MAX) {
        *err = "too many FETCH attributes";
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (list[i].type != IMAP_ARG_ATOM) {
            *err = "FETCH attributes must be atoms";
            return -1;
        }
        if (imap_parse_fetch_att(pool, list[i].str, &out->v[out->n], err) < 0)
            return -1;
        out->n++;
    }
    if (nargs == 2) {
        const struct imap_arg *m = &args[1];
        uint64_t v;

        if (m->type != IMAP_ARG_LIST || m->count != 2 ||
            !imap_arg_is_atom(&m->list[0], "CHANGEDSINCE") ||
            m->list[1].type != IMAP_ARG_ATOM ||
            !imap_parse_number64(m->list[1].str, m->list[1].len, &v)) {
            *err = "bad FETCH modifier";
            return -1;
        }
        out->changedsince = true;
        out->changedsince_modseq = v;
        /* CHANGEDSINCE implies MODSEQ in every response (RFC 7162 3.1.4). */
        imap_fetch_add(out, IMAP_FETCH_MODSEQ);
    }
    return 0;
}
