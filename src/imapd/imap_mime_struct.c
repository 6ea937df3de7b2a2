/*
 * imap_mime_struct - ENVELOPE, BODY and BODYSTRUCTURE text (RFC 3501
 * 7.4.2) from a parsed MIME tree.
 *
 * Header values are sent raw as IMAP asks (encoded words stay encoded,
 * folding removed).  Address fields go through a tolerant RFC 5322
 * parser: groups become the (NIL NIL "name" NIL) ... (NIL NIL NIL NIL)
 * pair, a comment after an address serves as its display name, a
 * mailbox without domain gets "MISSING_DOMAIN" and a domain without
 * mailbox "MISSING_MAILBOX" (Dovecot's spelling, which clients have
 * seen for years).  The output layout and defaults follow Dovecot
 * byte for byte where the RFC leaves a choice, so cached answers do not
 * change for users moving from Dovecot.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imapd/imap_mime.h"
#include "imapd/imap_mime_impl.h"
#include "util/mem.h"

/* Addresses per header field; more are dropped. */
#define ADDRESS_MAX 5000

static void nstr(struct buf *out, const char *s)
{
    imap_mime_nstring(out, s, s ? strlen(s) : 0);
}

/* ---- addresses ---- */

struct addr_lexer {
    const char *p, *end;
    struct buf comment; /* last comment seen (display name fallback) */
};

static void addr_skip(struct addr_lexer *lx)
{
    while (lx->p < lx->end) {
        if (*lx->p == ' ' || *lx->p == '\t') {
            lx->p++;
        } else if (*lx->p == '(') {
            int depth = 0;

            buf_reset(&lx->comment);
            do {
                char c = *lx->p++;

                if (c == '\\' && lx->p < lx->end)
                    c = *lx->p++;
                else if (c == '(') {
                    if (depth++ == 0)
                        continue;
                } else if (c == ')' && --depth == 0)
                    break;
                buf_putc(&lx->comment, c);
            } while (lx->p < lx->end && depth > 0);
        } else {
            break;
        }
    }
}

static bool addr_special(char c)
{
    return strchr("()<>[]:;@\\,\"", c) != NULL || c == ' ' || c == '\t';
}

/*
 * One word (atom with dots, quoted string or domain literal) appended to
 * out; false when the next thing is a special character or the end.
 */
static bool addr_word(struct addr_lexer *lx, struct buf *out)
{
    addr_skip(lx);
    if (lx->p >= lx->end)
        return false;
    if (*lx->p == '"') {
        lx->p++;
        while (lx->p < lx->end && *lx->p != '"') {
            if (*lx->p == '\\' && lx->p + 1 < lx->end)
                lx->p++;
            buf_putc(out, *lx->p++);
        }
        if (lx->p < lx->end)
            lx->p++;
        return true;
    }
    if (*lx->p == '[') {
        while (lx->p < lx->end && *lx->p != ']')
            buf_putc(out, *lx->p++);
        if (lx->p < lx->end)
            buf_putc(out, *lx->p++);
        return true;
    }
    if (addr_special(*lx->p))
        return false;
    while (lx->p < lx->end && !addr_special(*lx->p))
        buf_putc(out, *lx->p++);
    return true;
}

/* Words separated by blanks (a phrase) into out, joined with one space. */
static size_t addr_phrase(struct addr_lexer *lx, struct buf *out)
{
    size_t n = 0;

    for (;;) {
        size_t before = out->len;

        if (n > 0)
            buf_putc(out, ' ');
        if (!addr_word(lx, out)) {
            buf_truncate(out, before);
            return n;
        }
        n++;
    }
}

/* Dotted words without blanks between them (local part, domain). */
static void addr_dotted(struct addr_lexer *lx, struct buf *out)
{
    while (addr_word(lx, out))
        ;
}

static void addr_emit(struct buf *out, const char *name, const char *adl,
                      const char *mailbox, const char *host)
{
    buf_putc(out, '(');
    nstr(out, name);
    buf_putc(out, ' ');
    nstr(out, adl);
    buf_putc(out, ' ');
    nstr(out, mailbox);
    buf_putc(out, ' ');
    nstr(out, host);
    buf_putc(out, ')');
}

/* "<[@route,@route:]local@domain>" after the '<'. */
static void addr_angle(struct addr_lexer *lx, const char *name, struct buf *out)
{
    struct buf route = BUF_INIT, local = BUF_INIT, domain = BUF_INIT;

    addr_skip(lx);
    while (lx->p < lx->end && (*lx->p == '@' || *lx->p == ',')) {
        /* Obsolete source route: kept as the adl. */
        if (*lx->p == ',') {
            buf_putc(&route, *lx->p++);
            addr_skip(lx);
            continue;
        }
        buf_putc(&route, *lx->p++);
        addr_dotted(lx, &route);
        addr_skip(lx);
    }
    if (route.len > 0 && lx->p < lx->end && *lx->p == ':')
        lx->p++;
    addr_dotted(lx, &local);
    addr_skip(lx);
    if (lx->p < lx->end && *lx->p == '@') {
        lx->p++;
        addr_dotted(lx, &domain);
    }
    while (lx->p < lx->end && *lx->p != '>' && *lx->p != ',' && *lx->p != ';')
        lx->p++;
    if (lx->p < lx->end && *lx->p == '>')
        lx->p++;
    addr_emit(out, name, route.len ? route.data : NULL,
              local.len ? local.data : "MISSING_MAILBOX",
              domain.len ? domain.data : "MISSING_DOMAIN");
    buf_free(&route);
    buf_free(&local);
    buf_free(&domain);
}

/*
 * One mailbox or group; returns false at the end of the list.  in_group:
 * a ';' ends the group.
 */
static bool addr_one(struct addr_lexer *lx, struct buf *out, bool in_group,
                     size_t *count)
{
    struct buf phrase = BUF_INIT, domain = BUF_INIT;
    bool more = true;

    addr_skip(lx);
    while (lx->p < lx->end && *lx->p == ',') {
        lx->p++;
        addr_skip(lx);
    }
    if (lx->p >= lx->end || (in_group && *lx->p == ';'))
        return false;
    buf_reset(&lx->comment);
    addr_phrase(lx, &phrase);
    addr_skip(lx);
    if (lx->p < lx->end && *lx->p == '<') {
        lx->p++;
        addr_angle(lx, phrase.len ? phrase.data : NULL, out);
        (*count)++;
    } else if (lx->p < lx->end && *lx->p == ':' && !in_group) {
        lx->p++;
        addr_emit(out, NULL, NULL, phrase.len ? phrase.data : "", NULL);
        while (*count < ADDRESS_MAX && addr_one(lx, out, true, count))
            ;
        if (lx->p < lx->end && *lx->p == ';')
            lx->p++;
        addr_emit(out, NULL, NULL, NULL, NULL);
    } else if (lx->p < lx->end && *lx->p == '@') {
        /* addr-spec: the "phrase" was the local part. */
        struct buf name = BUF_INIT;

        lx->p++;
        addr_dotted(lx, &domain);
        addr_skip(lx);
        if (lx->comment.len)
            buf_append(&name, lx->comment.data, lx->comment.len);
        addr_emit(out, name.len ? name.data : NULL, NULL,
                  phrase.len ? phrase.data : "MISSING_MAILBOX",
                  domain.len ? domain.data : "MISSING_DOMAIN");
        buf_free(&name);
        (*count)++;
    } else if (phrase.len > 0) {
        addr_emit(out, NULL, NULL, phrase.data, "MISSING_DOMAIN");
        (*count)++;
    } else if (lx->p < lx->end) {
        lx->p++; /* stray special character */
    } else {
        more = false;
    }
    /* Skip junk up to the next separator. */
    while (lx->p < lx->end && *lx->p != ',' && *lx->p != ';' && *lx->p != '<' &&
           !(in_group && *lx->p == ';'))
        if (!addr_word(lx, &domain) && lx->p < lx->end && *lx->p != ',' &&
            *lx->p != ';')
            lx->p++;
    buf_free(&phrase);
    buf_free(&domain);
    return more;
}

static void envelope_addresses(const struct imap_mime *m,
                               const struct mime_part *p, const char *name,
                               struct buf *out)
{
    struct buf v = BUF_INIT, list = BUF_INIT;
    struct addr_lexer lx;
    size_t count = 0;

    if (mime_hdr_find(m->msg, p->hdr_off, p->hdr_len, name, &v)) {
        lx.p = v.data ? v.data : "";
        lx.end = lx.p + v.len;
        buf_init(&lx.comment);
        while (count < ADDRESS_MAX && addr_one(&lx, &list, false, &count))
            ;
        buf_free(&lx.comment);
    }
    if (list.len == 0) {
        buf_puts(out, "NIL");
    } else {
        buf_putc(out, '(');
        buf_append(out, list.data, list.len);
        buf_putc(out, ')');
    }
    buf_free(&v);
    buf_free(&list);
}

static void envelope_string(const struct imap_mime *m,
                            const struct mime_part *p, const char *name,
                            struct buf *out)
{
    struct buf v = BUF_INIT;

    if (mime_hdr_find(m->msg, p->hdr_off, p->hdr_len, name, &v))
        imap_mime_nstring(out, v.data ? v.data : "", v.len);
    else
        buf_puts(out, "NIL");
    buf_free(&v);
}

/* Sender and Reply-To fall back to From when absent or empty. */
static void envelope_fallback(const struct imap_mime *m,
                              const struct mime_part *p, const char *name,
                              struct buf *out)
{
    size_t before = out->len;

    envelope_addresses(m, p, name, out);
    if (out->len - before == 3 && memcmp(out->data + before, "NIL", 3) == 0) {
        buf_truncate(out, before);
        envelope_addresses(m, p, "from", out);
    }
}

static void envelope_of(const struct imap_mime *m, const struct mime_part *p,
                        struct buf *out)
{
    buf_putc(out, '(');
    envelope_string(m, p, "date", out);
    buf_putc(out, ' ');
    envelope_string(m, p, "subject", out);
    buf_putc(out, ' ');
    envelope_addresses(m, p, "from", out);
    buf_putc(out, ' ');
    envelope_fallback(m, p, "sender", out);
    buf_putc(out, ' ');
    envelope_fallback(m, p, "reply-to", out);
    buf_putc(out, ' ');
    envelope_addresses(m, p, "to", out);
    buf_putc(out, ' ');
    envelope_addresses(m, p, "cc", out);
    buf_putc(out, ' ');
    envelope_addresses(m, p, "bcc", out);
    buf_putc(out, ' ');
    envelope_string(m, p, "in-reply-to", out);
    buf_putc(out, ' ');
    envelope_string(m, p, "message-id", out);
    buf_putc(out, ')');
}

void imap_mime_envelope(const struct imap_mime *m, struct buf *out)
{
    envelope_of(m, m->root, out);
}

/* ---- body structure ---- */

static void params_out(struct buf *out, const struct mime_param *v, size_t n,
                       bool add_charset)
{
    if (n == 0 && !add_charset) {
        buf_puts(out, "NIL");
        return;
    }
    buf_putc(out, '(');
    if (add_charset)
        buf_puts(out, "\"charset\" \"us-ascii\"");
    for (size_t i = 0; i < n; i++) {
        if (i > 0 || add_charset)
            buf_putc(out, ' ');
        nstr(out, v[i].name);
        buf_putc(out, ' ');
        nstr(out, v[i].value);
    }
    buf_putc(out, ')');
}

static bool has_param(const struct mime_part *p, const char *name)
{
    for (size_t i = 0; i < p->n_params; i++)
        if (strcasecmp(p->params[i].name, name) == 0)
            return true;
    return false;
}

/* Content-Language: NIL, or a list of the tags. */
static void language_out(struct buf *out, const char *lang)
{
    const char *p = lang;
    size_t n = 0;

    if (lang == NULL) {
        buf_puts(out, "NIL");
        return;
    }
    buf_putc(out, '(');
    while (*p && n < 100) {
        const char *s;

        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        s = p;
        while (*p && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        if (p > s) {
            if (n++ > 0)
                buf_putc(out, ' ');
            imap_mime_nstring(out, s, (size_t)(p - s));
        }
    }
    buf_putc(out, ')');
    if (n == 0) {
        buf_truncate(out, out->len - 2);
        buf_puts(out, "NIL");
    }
}

static void disposition_out(struct buf *out, const struct mime_part *p)
{
    if (p->disposition == NULL) {
        buf_puts(out, "NIL");
        return;
    }
    buf_putc(out, '(');
    nstr(out, p->disposition);
    buf_putc(out, ' ');
    params_out(out, p->disp_params, p->n_disp_params, false);
    buf_putc(out, ')');
}

static void body_of(const struct imap_mime *m, const struct mime_part *p,
                    bool extended, struct buf *out, int depth)
{
    bool text;

    buf_putc(out, '(');
    if (p->multipart) {
        for (const struct mime_part *c = p->children; c; c = c->next)
            body_of(m, c, extended, out, depth + 1);
        buf_putc(out, ' ');
        nstr(out, p->subtype);
        if (extended) {
            buf_putc(out, ' ');
            params_out(out, p->params, p->n_params, false);
            buf_putc(out, ' ');
            disposition_out(out, p);
            buf_putc(out, ' ');
            language_out(out, p->language);
            buf_putc(out, ' ');
            nstr(out, p->location);
        }
        buf_putc(out, ')');
        return;
    }
    text = p->type == NULL || strcasecmp(p->type, "text") == 0;
    nstr(out, p->type ? p->type : "text");
    buf_putc(out, ' ');
    nstr(out, p->subtype ? p->subtype : "plain");
    buf_putc(out, ' ');
    params_out(out, p->params, p->n_params, text && !has_param(p, "charset"));
    buf_putc(out, ' ');
    nstr(out, p->id);
    buf_putc(out, ' ');
    nstr(out, p->description);
    buf_putc(out, ' ');
    nstr(out, p->encoding ? p->encoding : "7bit");
    buf_printf(out, " %zu", p->body_len);
    if (p->message) {
        buf_putc(out, ' ');
        envelope_of(m, p->inner, out);
        buf_putc(out, ' ');
        body_of(m, p->inner, extended, out, depth + 1);
        buf_printf(out, " %llu", (unsigned long long)p->body_lines);
    } else if (text) {
        buf_printf(out, " %llu", (unsigned long long)p->body_lines);
    }
    if (extended) {
        buf_putc(out, ' ');
        nstr(out, p->md5);
        buf_putc(out, ' ');
        disposition_out(out, p);
        buf_putc(out, ' ');
        language_out(out, p->language);
        buf_putc(out, ' ');
        nstr(out, p->location);
    }
    buf_putc(out, ')');
}

void imap_mime_bodystructure(const struct imap_mime *m, bool extended,
                             struct buf *out)
{
    body_of(m, m->root, extended, out, 0);
}
