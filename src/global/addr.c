/*
 * addr - RFC 5321 path parsing (MAIL FROM / RCPT TO arguments).
 *
 * Input is untrusted network text, counted by length (it may hold NULs).
 * The parser is a single forward scan over at most ADDR_PATH_MAX + 1
 * bytes of the argument; anything outside the grammar of RFC 5321
 * 4.1.2 (as extended by RFC 6531 when SMTPUTF8 is in effect) is an error
 * with a short static text, never a crash and never a partial result.
 * Source routes are refused instead of being stripped: nothing legitimate
 * sends them any more and silently rewriting an address hides abuse.
 *
 * Not checked: IDNA2008 rules for U-labels beyond well-formed UTF-8 and the
 * LDH rules for their ASCII characters (that needs libidn2).
 */
#include "global/addr.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"
#include "util/str.h"

#define ERR_SYNTAX "Bad address syntax"
#define ERR_ROUTE "Source routes are not supported"
#define ERR_NULL "Null address not allowed here"
#define ERR_LOCAL_LONG "Local part too long"
#define ERR_DOMAIN_LONG "Domain name too long"
#define ERR_PATH_LONG "Address too long"
#define ERR_LABEL_LONG "Domain label too long"
#define ERR_NO_DOMAIN "Address needs a domain"
#define ERR_LITERAL "Bad address literal"
#define ERR_8BIT "Non-ASCII address requires SMTPUTF8"
#define ERR_UTF8 "Malformed UTF-8 in address"

#define LABEL_MAX 63
#define LITERAL_MAX 64 /* "IPv6:" + the longest textual IPv6 address */

/* RFC 5322 atext, as used by RFC 5321 Atom. */
static bool is_atext(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool is_let_dig(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9');
}

/*
 * Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0.
 */
static size_t utf8_seq_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (avail < n)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

struct scan {
    const unsigned char *s;
    size_t len;
    size_t p;
    bool smtputf8;
    bool has_utf8;
    const char *err;
};

/*
 * At a byte >= 0x80: accept one UTF-8 character if SMTPUTF8 is on.
 * Returns false with sc->err set otherwise.
 */
static bool scan_utf8(struct scan *sc)
{
    size_t n;

    if (!sc->smtputf8) {
        sc->err = ERR_8BIT;
        return false;
    }
    n = utf8_seq_len(sc->s + sc->p, sc->len - sc->p);
    if (n == 0) {
        sc->err = ERR_UTF8;
        return false;
    }
    sc->p += n;
    sc->has_utf8 = true;
    return true;
}

/* Quoted-string = DQUOTE *QcontentSMTP DQUOTE; sc->p is at the DQUOTE. */
static bool scan_quoted(struct scan *sc)
{
    sc->p++;
    while (sc->p < sc->len) {
        unsigned char c = sc->s[sc->p];

        if (c == '"') {
            sc->p++;
            return true;
        }
        if (c == '\\') {
            if (sc->p + 1 >= sc->len || sc->s[sc->p + 1] < 32 ||
                sc->s[sc->p + 1] > 126)
                break;
            sc->p += 2;
        } else if (c >= 32 && c <= 126) {
            sc->p++;
        } else if (c >= 0x80) {
            if (!scan_utf8(sc))
                return false;
        } else {
            break;
        }
    }
    sc->err = ERR_SYNTAX;
    return false;
}

/* Dot-string = Atom *("." Atom): no empty atoms anywhere. */
static bool scan_dot_string(struct scan *sc)
{
    size_t atom = 0;

    while (sc->p < sc->len) {
        unsigned char c = sc->s[sc->p];

        if (is_atext(c)) {
            sc->p++;
            atom++;
        } else if (c >= 0x80) {
            if (!scan_utf8(sc))
                return false;
            atom++;
        } else if (c == '.') {
            if (atom == 0)
                break;
            sc->p++;
            atom = 0;
        } else {
            break;
        }
    }
    if (atom == 0) {
        sc->err = ERR_SYNTAX;
        return false;
    }
    return true;
}

/*
 * address-literal: "[" IPv4 "]" or "[IPv6:" IPv6 "]".  The General-
 * address-literal form has no registered tag besides IPv6, so any other
 * tag is refused.  sc->p is at "[".
 */
static bool scan_literal(struct scan *sc)
{
    char text[LITERAL_MAX + 1];
    size_t start = ++sc->p, n;
    unsigned char bin[16];

    while (sc->p < sc->len && sc->s[sc->p] != ']') {
        if (sc->p - start >= LITERAL_MAX) {
            sc->err = ERR_LITERAL;
            return false;
        }
        sc->p++;
    }
    if (sc->p >= sc->len) {
        sc->err = ERR_SYNTAX;
        return false;
    }
    n = sc->p - start;
    memcpy(text, sc->s + start, n);
    text[n] = 0;
    sc->p++;
    if (strlen(text) != n) { /* embedded NUL */
        sc->err = ERR_LITERAL;
        return false;
    }
    if (str_has_prefix_ci(text, "IPv6:")) {
        if (inet_pton(AF_INET6, text + 5, bin) == 1)
            return true;
    } else if (inet_pton(AF_INET, text, bin) == 1) {
        return true;
    }
    sc->err = ERR_LITERAL;
    return false;
}

/*
 * Domain = sub-domain *("." sub-domain); sub-domain is an LDH label that
 * neither starts nor ends with "-", at most 63 octets (RFC 1035), or a
 * U-label with SMTPUTF8 (checked for well-formed UTF-8 only).
 */
static bool scan_domain(struct scan *sc)
{
    for (;;) {
        size_t start = sc->p;
        unsigned char last = 0;

        while (sc->p < sc->len) {
            unsigned char c = sc->s[sc->p];

            if (is_let_dig(c) || c == '-') {
                if (c == '-' && sc->p == start) {
                    sc->err = ERR_SYNTAX;
                    return false;
                }
                last = c;
                sc->p++;
            } else if (c >= 0x80) {
                if (!scan_utf8(sc))
                    return false;
                last = 0x80;
            } else {
                break;
            }
        }
        if (sc->p == start || last == '-') {
            sc->err = ERR_SYNTAX;
            return false;
        }
        if (sc->p - start > LABEL_MAX) {
            sc->err = ERR_LABEL_LONG;
            return false;
        }
        if (sc->p < sc->len && sc->s[sc->p] == '.') {
            sc->p++;
            continue;
        }
        return true;
    }
}

int addr_parse_path(const char *s, size_t len, bool allow_null, bool smtputf8,
                    struct mailaddr *out, size_t *consumed, const char **err)
{
    struct scan sc = {(const unsigned char *)s, len, 0, smtputf8, false, NULL};
    size_t local_start, local_end, domain_start, domain_end;

    memset(out, 0, sizeof(*out));
    /* Nothing valid is longer than the limit; don't scan megabytes. */
    if (sc.len > ADDR_PATH_MAX + 1)
        sc.len = ADDR_PATH_MAX + 1;
    if (sc.len == 0 || sc.s[0] != '<') {
        *err = ERR_SYNTAX;
        return -1;
    }
    sc.p = 1;
    if (sc.p < sc.len && sc.s[sc.p] == '>') {
        if (!allow_null) {
            *err = ERR_NULL;
            return -1;
        }
        sc.p++;
        goto done_null;
    }
    if (sc.p < sc.len && sc.s[sc.p] == '@') {
        *err = ERR_ROUTE;
        return -1;
    }

    local_start = sc.p;
    if (sc.p < sc.len && sc.s[sc.p] == '"') {
        if (!scan_quoted(&sc))
            goto fail;
    } else if (!scan_dot_string(&sc)) {
        goto fail;
    }
    local_end = sc.p;
    if (sc.p >= sc.len || sc.s[sc.p] != '@') {
        sc.err =
            (sc.p < sc.len && sc.s[sc.p] == '>') ? ERR_NO_DOMAIN : ERR_SYNTAX;
        goto fail;
    }
    if (local_end - local_start > ADDR_LOCAL_MAX) {
        sc.err = ERR_LOCAL_LONG;
        goto fail;
    }
    sc.p++;
    domain_start = sc.p;
    if (sc.p < sc.len && sc.s[sc.p] == '[') {
        if (!scan_literal(&sc))
            goto fail;
    } else if (!scan_domain(&sc)) {
        goto fail;
    }
    domain_end = sc.p;
    if (domain_end - domain_start > ADDR_DOMAIN_MAX) {
        sc.err = ERR_DOMAIN_LONG;
        goto fail;
    }
    if (sc.p >= sc.len || sc.s[sc.p] != '>') {
        sc.err = (sc.p >= ADDR_PATH_MAX) ? ERR_PATH_LONG : ERR_SYNTAX;
        goto fail;
    }
    sc.p++;
    if (sc.p > ADDR_PATH_MAX) {
        sc.err = ERR_PATH_LONG;
        goto fail;
    }
    /* Parameters may follow, separated by a space; nothing else may. */
    if (sc.p < len && s[sc.p] != ' ') {
        sc.err = ERR_SYNTAX;
        goto fail;
    }
    out->local = xstrndup(s + local_start, local_end - local_start);
    out->domain = xstrndup(s + domain_start, domain_end - domain_start);
    str_lower(out->domain);
    out->text = xasprintf("%s@%s", out->local, out->domain);
    out->is_null = false;
    out->has_utf8 = sc.has_utf8;
    *consumed = sc.p;
    return 0;

done_null:
    if (sc.p < len && s[sc.p] != ' ') {
        *err = ERR_SYNTAX;
        return -1;
    }
    out->local = xstrdup("");
    out->domain = xstrdup("");
    out->text = xstrdup("");
    out->is_null = true;
    *consumed = sc.p;
    return 0;

fail:
    /* Running into the clamp means the input was simply too long. */
    if (sc.len < len && sc.p >= sc.len)
        sc.err = ERR_PATH_LONG;
    *err = sc.err != NULL ? sc.err : ERR_SYNTAX;
    return -1;
}

void addr_free(struct mailaddr *a)
{
    free(a->text);
    free(a->local);
    free(a->domain);
    memset(a, 0, sizeof(*a));
}

char *addr_local_unquote(const char *local)
{
    size_t n = strlen(local);
    char *out, *o;

    if (n < 2 || local[0] != '"' || local[n - 1] != '"')
        return xstrdup(local);
    out = o = xmalloc(n);
    for (size_t i = 1; i < n - 1; i++) {
        if (local[i] == '\\' && i + 1 < n - 1)
            i++;
        *o++ = local[i];
    }
    *o = 0;
    return out;
}

long addr_split(const char *addr)
{
    const char *at = strrchr(addr, '@');

    return at != NULL ? (long)(at - addr) : -1;
}

char *addr_fold(const char *addr)
{
    char *copy = xstrdup(addr);

    str_lower(copy);
    return copy;
}

size_t addr_ext_offset(const char *local, const char *delimiters)
{
    size_t n = strlen(local), base;

    if (delimiters == NULL || *delimiters == 0)
        return n;
    /* Role addresses and list conventions keep their full name. */
    if (str_eq_ci(local, "postmaster") || str_eq_ci(local, "mailer-daemon"))
        return n;
    if (strchr(delimiters, '-') != NULL &&
        (str_has_prefix_ci(local, "owner-") ||
         (n > 8 && str_eq_ci(local + n - 8, "-request"))))
        return n;
    base = strcspn(local, delimiters);
    return base == 0 ? n : base;
}
