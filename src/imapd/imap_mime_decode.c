/*
 * imap_mime_decode - what SEARCH needs to compare a message with a
 * client's string: RFC 2047 encoded words, base64 and quoted-printable
 * bodies, charsets (glibc iconv), Unicode case folding, Date: headers.
 *
 * Input is message text from anyone; all output is bounded by the
 * input (decoding never grows data beyond 4x for charset conversion)
 * or by an explicit limit.  Undecodable data is kept as it is rather
 * than dropped, so a search for the raw text still finds it.
 */
#include <ctype.h>
#include <stdlib.h>
#include <errno.h>
#include <iconv.h>
#include <locale.h>
#include <string.h>
#include <strings.h>
#include <wctype.h>

#include "imapd/imap_mime.h"
#include "imapd/imap_mime_impl.h"
#include "util/mem.h"

/* ---- charsets ---- */

static bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;

    while (p < end) {
        unsigned c = *p, n, cp;

        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            n = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            n = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 3, cp = c & 0x07;
        else
            return false;
        if ((size_t)(end - p) <= n)
            return false;
        for (unsigned i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        p += n + 1;
    }
    return true;
}

static void latin1_to_utf8(const char *s, size_t len, struct buf *out)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x80) {
            buf_putc(out, (char)c);
        } else {
            buf_putc(out, (char)(0xc0 | (c >> 6)));
            buf_putc(out, (char)(0x80 | (c & 0x3f)));
        }
    }
}

int imap_mime_to_utf8(const char *charset, const char *in, size_t len,
                      struct buf *out)
{
    iconv_t cd;
    char *ip = (char *)in;
    size_t il = len, start = out->len;

    if (charset == NULL || *charset == 0 || strcasecmp(charset, "utf-8") == 0 ||
        strcasecmp(charset, "us-ascii") == 0 || strcasecmp(charset, "utf8") == 0) {
        if (!utf8_valid(in, len))
            return -1;
        buf_append(out, in, len);
        return 0;
    }
    cd = iconv_open("UTF-8", charset);
    if (cd == (iconv_t)-1)
        return -1;
    while (il > 0) {
        char *op;
        size_t ol, room = il * 4 + 16, r;

        buf_reserve(out, room);
        op = out->data + out->len;
        ol = room;
        r = iconv(cd, &ip, &il, &op, &ol);
        out->len += room - ol;
        if (r == (size_t)-1 && errno != E2BIG) {
            iconv_close(cd);
            buf_truncate(out, start);
            return -1;
        }
    }
    {
        /* Flush a stateful encoding's final shift sequence. */
        char tail[16], *op = tail;
        size_t ol = sizeof(tail);

        iconv(cd, NULL, NULL, &op, &ol);
        buf_append(out, tail, sizeof(tail) - ol);
    }
    iconv_close(cd);
    if (out->data)
        out->data[out->len] = 0;
    return 0;
}

/* Convert, falling back to the raw bytes (as UTF-8 or Latin-1). */
static void to_utf8_lenient(const char *charset, const char *in, size_t len,
                            struct buf *out)
{
    if (imap_mime_to_utf8(charset, in, len, out) == 0)
        return;
    if (utf8_valid(in, len))
        buf_append(out, in, len);
    else
        latin1_to_utf8(in, len, out);
}

/* ---- transfer encodings ---- */

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Lenient base64: skips what is not in the alphabet, stops at '='. */
static void base64_decode(const char *s, size_t len, struct buf *out)
{
    unsigned acc = 0;
    int bits = 0;

    for (size_t i = 0; i < len; i++) {
        int v;

        if (s[i] == '=')
            break;
        v = b64val((unsigned char)s[i]);
        if (v < 0)
            continue;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf_putc(out, (char)((acc >> bits) & 0xff));
        }
    }
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Quoted-printable; header = true also turns '_' into a space (Q). */
static void qp_decode(const char *s, size_t len, bool header, struct buf *out)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '=' && i + 2 < len && hexval((unsigned char)s[i + 1]) >= 0 &&
            hexval((unsigned char)s[i + 2]) >= 0) {
            buf_putc(out, (char)(hexval((unsigned char)s[i + 1]) * 16 +
                                 hexval((unsigned char)s[i + 2])));
            i += 2;
        } else if (s[i] == '=' && !header) {
            /* Soft line break "=\r\n" (or "=" + blanks + line end). */
            size_t j = i + 1;

            while (j < len && (s[j] == ' ' || s[j] == '\t'))
                j++;
            if (j < len && s[j] == '\r')
                j++;
            if (j < len && s[j] == '\n')
                i = j;
            else if (j >= len)
                i = len;
            else
                buf_putc(out, '=');
        } else if (s[i] == '_' && header) {
            buf_putc(out, ' ');
        } else {
            buf_putc(out, s[i]);
        }
    }
}

/* ---- RFC 2047 ---- */

/*
 * An encoded word "=?charset?X?text?=" at s: its total length, or 0.
 * Charset may carry an RFC 2231 language ("utf-8*en").  out NULL:
 * only check.
 */
static size_t encoded_word(const char *s, size_t len, struct buf *out)
{
    const char *cs, *enc, *text, *end;
    char charset[64];
    size_t cslen;
    struct buf raw = BUF_INIT;

    if (len < 8 || s[0] != '=' || s[1] != '?')
        return 0;
    cs = s + 2;
    enc = memchr(cs, '?', len - 2);
    if (enc == NULL || enc + 3 > s + len || enc[2] != '?')
        return 0;
    text = enc + 3;
    end = NULL;
    for (const char *p = text; p + 1 < s + len; p++) {
        if (p[0] == '?' && p[1] == '=') {
            end = p;
            break;
        }
        if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            return 0;
    }
    if (end == NULL)
        return 0;
    cslen = (size_t)(enc - cs);
    if (cslen == 0 || cslen >= sizeof(charset))
        return 0;
    memcpy(charset, cs, cslen);
    charset[cslen] = 0;
    if (strchr(charset, '*'))
        *strchr(charset, '*') = 0;
    if (enc[1] != 'B' && enc[1] != 'b' && enc[1] != 'Q' && enc[1] != 'q')
        return 0;
    if (out == NULL) /* only asked whether this is an encoded word */
        return (size_t)(end + 2 - s);
    if (enc[1] == 'B' || enc[1] == 'b')
        base64_decode(text, (size_t)(end - text), &raw);
    else if (enc[1] == 'Q' || enc[1] == 'q')
        qp_decode(text, (size_t)(end - text), true, &raw);
    to_utf8_lenient(charset, raw.data ? raw.data : "", raw.len, out);
    buf_free(&raw);
    return (size_t)(end + 2 - s);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void imap_mime_decode_header(const char *value, size_t len, struct buf *out)
{
    size_t i = 0;
    bool prev_encoded = false;

    while (i < len) {
        size_t j;

        if (value[i] == '=') {
            size_t n = encoded_word(value + i, len - i, out);

            if (n > 0) {
                i += n;
                prev_encoded = true;
                continue;
            }
        }
        if (is_blank(value[i])) {
            for (j = i; j < len && is_blank(value[j]); j++)
                ;
            /* Blanks between two encoded words are dropped (RFC 2047). */
            if (!(prev_encoded && j < len &&
                  encoded_word(value + j, len - j, NULL) > 0))
                for (size_t k = i; k < j; k++)
                    if (value[k] != '\r' && value[k] != '\n')
                        buf_putc(out, value[k]);
            i = j;
            continue;
        }
        prev_encoded = false;
        for (j = i + 1; j < len && !is_blank(value[j]) && value[j] != '='; j++)
            ;
        if (utf8_valid(value + i, j - i))
            buf_append(out, value + i, j - i);
        else
            latin1_to_utf8(value + i, j - i, out);
        i = j;
    }
}

/* ---- headers and bodies for SEARCH ---- */

size_t imap_mime_header_raw(const struct imap_mime *m, const char *name,
                            struct buf *out)
{
    struct mime_hdr_iter it;
    struct mime_field f;
    size_t n = 0, nlen = strlen(name);

    mime_hdr_iter_init(&it, m->msg, m->root->hdr_off, m->root->hdr_len);
    while (mime_hdr_next(&it, &f)) {
        if (f.name_len != nlen || strncasecmp(f.name, name, nlen) != 0)
            continue;
        if (n++ > 0)
            buf_putc(out, '\n');
        mime_unfold(f.value, f.value_len, out);
    }
    return n;
}

void imap_mime_headers_utf8(const struct imap_mime *m, struct buf *out)
{
    struct mime_hdr_iter it;
    struct mime_field f;
    struct buf v = BUF_INIT;

    mime_hdr_iter_init(&it, m->msg, m->root->hdr_off, m->root->hdr_len);
    while (mime_hdr_next(&it, &f)) {
        buf_reset(&v);
        mime_unfold(f.value, f.value_len, &v);
        to_utf8_lenient(NULL, f.name, f.name_len, out);
        buf_puts(out, ": ");
        imap_mime_decode_header(v.data ? v.data : "", v.len, out);
        buf_putc(out, '\n');
    }
    buf_free(&v);
}

static const char *part_charset(const struct mime_part *p)
{
    for (size_t i = 0; i < p->n_params; i++)
        if (strcasecmp(p->params[i].name, "charset") == 0)
            return p->params[i].value;
    return NULL;
}

static void body_text(const struct imap_mime *m, const struct mime_part *p,
                      struct buf *out, size_t limit, int depth)
{
    for (; p && out->len < limit && depth <= IMAP_MIME_DEPTH_MAX + 1;
         p = p->next) {
        const char *body = m->msg + p->body_off;
        struct buf raw = BUF_INIT;

        if (p->multipart) {
            body_text(m, p->children, out, limit, depth + 1);
            continue;
        }
        if (p->message) {
            body_text(m, p->inner, out, limit, depth + 1);
            continue;
        }
        if (p->type != NULL && strcasecmp(p->type, "text") != 0)
            continue;
        if (p->encoding && strcasecmp(p->encoding, "base64") == 0)
            base64_decode(body, p->body_len, &raw);
        else if (p->encoding &&
                 strcasecmp(p->encoding, "quoted-printable") == 0)
            qp_decode(body, p->body_len, false, &raw);
        else
            buf_append(&raw, body, p->body_len);
        to_utf8_lenient(part_charset(p), raw.data ? raw.data : "", raw.len,
                        out);
        buf_putc(out, '\n');
        buf_free(&raw);
    }
}

void imap_mime_body_utf8(const struct imap_mime *m, struct buf *out,
                         size_t limit)
{
    size_t start = out->len;

    body_text(m, m->root, out, start + limit, 0);
    if (out->len > start + limit)
        buf_truncate(out, start + limit);
}

/* ---- case-insensitive match ---- */

static locale_t utf8_locale(void)
{
    static locale_t loc;
    static bool tried;

    if (!tried) {
        tried = true;
        loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    }
    return loc;
}

/* Append s folded to lower case (simple case mapping). */
static void fold(const char *s, size_t len, struct buf *out)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    locale_t loc = utf8_locale();

    buf_reserve(out, len);
    while (p < end) {
        unsigned c = *p, n = 0, cp;

        if (c < 0x80) {
            /* A run of ASCII, the bulk of most text, without per-byte
             * buffer calls; the same mapping as tolower() in "C". */
            const unsigned char *q = p;
            char *o;

            while (q < end && *q < 0x80)
                q++;
            buf_reserve(out, (size_t)(q - p));
            o = out->data + out->len;
            for (; p < q; p++)
                *o++ = (char)(*p >= 'A' && *p <= 'Z' ? *p + ('a' - 'A') : *p);
            out->len = (size_t)(o - out->data);
            out->data[out->len] = 0;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            n = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            n = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 3, cp = c & 0x07;
        if (n == 0 || (size_t)(end - p) <= n) {
            buf_putc(out, (char)c);
            p++;
            continue;
        }
        for (unsigned i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                n = 0;
                break;
            }
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if (n == 0) {
            buf_putc(out, (char)c);
            p++;
            continue;
        }
        if (loc != (locale_t)0)
            cp = (unsigned)towlower_l((wint_t)cp, loc);
        if (cp < 0x80) {
            /* KELVIN SIGN lowers to 'k': one byte, as the ASCII it is. */
            buf_putc(out, (char)cp);
            p += n + 1;
            continue;
        }
        if (cp < 0x800) {
            buf_putc(out, (char)(0xc0 | (cp >> 6)));
        } else if (cp < 0x10000) {
            buf_putc(out, (char)(0xe0 | (cp >> 12)));
            buf_putc(out, (char)(0x80 | ((cp >> 6) & 0x3f)));
        } else {
            buf_putc(out, (char)(0xf0 | (cp >> 18)));
            buf_putc(out, (char)(0x80 | ((cp >> 12) & 0x3f)));
            buf_putc(out, (char)(0x80 | ((cp >> 6) & 0x3f)));
        }
        buf_putc(out, (char)(0x80 | (cp & 0x3f)));
        p += n + 1;
    }
}

bool imap_mime_contains(const char *hay, size_t haylen, const char *needle,
                        size_t needlelen)
{
    struct buf h = BUF_INIT, n = BUF_INIT;
    bool found;

    if (needlelen == 0)
        return true;
    fold(hay, haylen, &h);
    fold(needle, needlelen, &n);
    found = h.len >= n.len && memmem(h.data, h.len, n.data, n.len) != NULL;
    buf_free(&h);
    buf_free(&n);
    return found;
}

/* ---- dates ---- */

static const char *const month_names[] = {"jan", "feb", "mar", "apr",
                                          "may", "jun", "jul", "aug",
                                          "sep", "oct", "nov", "dec"};

struct date_lexer {
    const char *p, *end;
};

static void date_skip(struct date_lexer *lx)
{
    int depth = 0;

    while (lx->p < lx->end) {
        if (*lx->p == '(')
            depth++;
        else if (*lx->p == ')' && depth > 0)
            depth--;
        else if (depth == 0 && !is_blank(*lx->p))
            break;
        lx->p++;
    }
}

static bool date_num(struct date_lexer *lx, int maxdigits, int *out)
{
    int v = 0, n = 0;

    date_skip(lx);
    while (lx->p < lx->end && isdigit((unsigned char)*lx->p) && n < maxdigits) {
        v = v * 10 + (*lx->p++ - '0');
        n++;
    }
    *out = v;
    return n > 0;
}

/* Obsolete zone names (RFC 5322 4.3); military zones count as 0. */
static bool zone_name(const char *s, size_t n, int *minutes)
{
    static const struct {
        const char *name;
        int offset;
    } zones[] = {{"UT", 0},       {"UTC", 0},      {"GMT", 0},
                 {"EST", -5 * 60}, {"EDT", -4 * 60}, {"CST", -6 * 60},
                 {"CDT", -5 * 60}, {"MST", -7 * 60}, {"MDT", -6 * 60},
                 {"PST", -8 * 60}, {"PDT", -7 * 60}};

    for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
        if (strlen(zones[i].name) == n && strncasecmp(s, zones[i].name, n) == 0) {
            *minutes = zones[i].offset;
            return true;
        }
    *minutes = 0;
    return n == 1 && isalpha((unsigned char)*s);
}

int imap_mime_parse_date(const char *s, size_t len, time_t *when,
                         int *zone_minutes)
{
    struct date_lexer lx = {s, s + len};
    struct tm tm;
    int day, year, hour, min, sec = 0, zone = 0, mon = -1;
    const char *w;

    memset(&tm, 0, sizeof(tm));
    date_skip(&lx);
    /* Optional day of week. */
    w = lx.p;
    while (lx.p < lx.end && isalpha((unsigned char)*lx.p))
        lx.p++;
    if (lx.p > w) {
        date_skip(&lx);
        if (lx.p < lx.end && *lx.p == ',')
            lx.p++;
    }
    if (!date_num(&lx, 2, &day))
        return -1;
    date_skip(&lx);
    w = lx.p;
    while (lx.p < lx.end && isalpha((unsigned char)*lx.p))
        lx.p++;
    for (int i = 0; i < 12; i++)
        if (lx.p - w >= 3 && strncasecmp(w, month_names[i], 3) == 0)
            mon = i;
    if (mon < 0 || !date_num(&lx, 4, &year))
        return -1;
    /* Two-digit years (obsolete): 00-49 are 2000-2049. */
    if (year < 50)
        year += 2000;
    else if (year < 1000)
        year += 1900;
    if (!date_num(&lx, 2, &hour))
        return -1;
    date_skip(&lx);
    if (lx.p >= lx.end || *lx.p != ':')
        return -1;
    lx.p++;
    if (!date_num(&lx, 2, &min))
        return -1;
    date_skip(&lx);
    if (lx.p < lx.end && *lx.p == ':') {
        lx.p++;
        if (!date_num(&lx, 2, &sec))
            return -1;
    }
    date_skip(&lx);
    if (lx.p < lx.end && (*lx.p == '+' || *lx.p == '-')) {
        int sign = *lx.p == '-' ? -1 : 1, hhmm;

        lx.p++;
        if (!date_num(&lx, 4, &hhmm))
            return -1;
        zone = sign * ((hhmm / 100) * 60 + hhmm % 100);
    } else {
        w = lx.p;
        while (lx.p < lx.end && isalpha((unsigned char)*lx.p))
            lx.p++;
        zone_name(w, (size_t)(lx.p - w), &zone);
    }
    if (day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
        return -1;
    tm.tm_year = year - 1900;
    tm.tm_mon = mon;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    *when = timegm(&tm) - (time_t)zone * 60;
    *zone_minutes = zone;
    return 0;
}

int imap_mime_date(const struct imap_mime *m, time_t *when, int *zone_minutes)
{
    struct buf v = BUF_INIT;
    int r = -1;

    if (mime_hdr_find(m->msg, m->root->hdr_off, m->root->hdr_len, "date", &v))
        r = imap_mime_parse_date(v.data ? v.data : "", v.len, when,
                                 zone_minutes);
    buf_free(&v);
    return r;
}
