/*
 * smtpd_params - SMTP command-line and ESMTP parameter parsing.
 *
 * Input: one command line from the client with the line ending removed,
 * NUL-free (the session loop rejects NULs first) and at most
 * line_length_limit bytes.  Nothing is trusted: every keyword and value
 * is checked against its RFC grammar, and a rejection comes back as the
 * complete reply text Postfix sends for it.  No I/O, no configuration,
 * no globals, so the unit test drives it directly.
 */
#include "smtpd/smtpd_params.h"

#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/mem.h"
#include "util/str.h"

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

int smtpd_split_command(const char *line, char *verb, size_t verbsize,
                        const char **args)
{
    const char *p = line, *start;
    size_t n;

    while (is_blank(*p))
        p++;
    if (*p == 0)
        return -1;
    start = p;
    while (*p && !is_blank(*p))
        p++;
    n = (size_t)(p - start);
    if (n >= verbsize)
        n = verbsize - 1;
    memcpy(verb, start, n);
    verb[n] = 0;
    while (is_blank(*p))
        p++;
    *args = p;
    return 0;
}

bool smtpd_is_foreign_verb(const char *verb)
{
    static const char *const foreign[] = {"CONNECT", "GET", "POST"};
    size_t n = strlen(verb);

    if (!isalpha((unsigned char)verb[0]))
        return true;
    for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++)
        if (str_eq_ci(verb, foreign[i]))
            return true;
    /* A header name: letters, digits and '-' followed by ':' (Postfix
     * is_header). */
    if (n > 1 && verb[n - 1] == ':') {
        for (size_t i = 0; i + 1 < n; i++)
            if (!isalnum((unsigned char)verb[i]) && verb[i] != '-')
                return false;
        return true;
    }
    return false;
}

int smtpd_extract_path(const char *args, const char *keyword, bool strict,
                       struct buf *path, const char **rest)
{
    size_t klen = strlen(keyword);
    const char *p, *end;

    buf_reset(path);
    if (!str_has_prefix_ci(args, keyword))
        return -1;
    p = args + klen;
    while (is_blank(*p))
        p++;
    if (*p == 0)
        return -1;
    if (*p == '<') {
        /*
         * The path ends at the first '>' outside a quoted local part;
         * addr_parse_path() checks the grammar of what is inside.
         */
        bool quoted = false;

        for (end = p + 1; *end; end++) {
            if (quoted && *end == '\\' && end[1]) {
                end++;
                continue;
            }
            if (*end == '"')
                quoted = !quoted;
            else if (*end == '>' && !quoted)
                break;
        }
        if (*end != '>')
            return -1;
        end++;
        buf_append(path, p, (size_t)(end - p));
    } else {
        if (strict)
            return -1;
        end = p;
        while (*end && !is_blank(*end))
            end++;
        buf_putc(path, '<');
        buf_append(path, p, (size_t)(end - p));
        buf_putc(path, '>');
    }
    /* Parameters must be separated from the path by a blank. */
    if (*end != 0 && !is_blank(*end))
        return -1;
    *rest = end;
    return 0;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') /* RFC says upper case; accept both */
        return c - 'a' + 10;
    return -1;
}

int smtpd_xtext_decode(const char *in, size_t len, struct buf *out)
{
    buf_reset(out);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];

        if (c == '+') {
            int hi, lo;

            if (i + 2 >= len)
                return -1;
            hi = hexval((unsigned char)in[i + 1]);
            lo = hexval((unsigned char)in[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            buf_putc(out, hi * 16 + lo);
            i += 2;
        } else if (c >= '!' && c <= '~' && c != '=') {
            buf_putc(out, c);
        } else {
            return -1;
        }
    }
    return 0;
}

/*
 * Visible ASCII only: decoded ENVID/ORCPT values go into the queue file
 * and into DSNs as single tokens.
 */
static bool all_printable(const struct buf *b)
{
    for (size_t i = 0; i < b->len; i++) {
        unsigned char c = (unsigned char)b->data[i];

        if (c < 0x21 || c > 0x7e)
            return false;
    }
    return true;
}

/* One "KEY[=VALUE]" token from s; returns false at the end. */
struct param_token {
    const char *key;
    size_t keylen;
    const char *value; /* NULL when there is no "=" */
    size_t valuelen;
    const char *whole;
    size_t wholelen;
};

static bool next_token(const char **sp, struct param_token *t)
{
    const char *p = *sp, *eq;

    while (is_blank(*p))
        p++;
    if (*p == 0)
        return false;
    t->whole = p;
    while (*p && !is_blank(*p))
        p++;
    t->wholelen = (size_t)(p - t->whole);
    eq = memchr(t->whole, '=', t->wholelen);
    t->key = t->whole;
    if (eq) {
        t->keylen = (size_t)(eq - t->whole);
        t->value = eq + 1;
        t->valuelen = t->wholelen - t->keylen - 1;
    } else {
        t->keylen = t->wholelen;
        t->value = NULL;
        t->valuelen = 0;
    }
    *sp = p;
    return true;
}

static bool key_is(const struct param_token *t, const char *name)
{
    return t->keylen == strlen(name) &&
           strncasecmp(t->key, name, t->keylen) == 0;
}

static bool value_is(const struct param_token *t, const char *v)
{
    return t->value && t->valuelen == strlen(v) &&
           strncasecmp(t->value, v, t->valuelen) == 0;
}

static void unsupported(struct buf *reply, const struct param_token *t)
{
    buf_reset(reply);
    buf_printf(reply, "555 5.5.4 Unsupported option: %.*s",
               (int)(t->wholelen > 100 ? 100 : t->wholelen), t->whole);
}

static void set_reply(struct buf *reply, const char *text)
{
    buf_reset(reply);
    buf_puts(reply, text);
}

/* RFC 1870 size-value: 1*20DIGIT; we accept what fits a long long. */
static int parse_size(const struct param_token *t, long long *out,
                      struct buf *reply)
{
    long long v = 0;

    if (!t->value || t->valuelen == 0) {
        set_reply(reply, "501 5.5.4 Bad message size syntax");
        return -1;
    }
    for (size_t i = 0; i < t->valuelen; i++) {
        unsigned char c = (unsigned char)t->value[i];

        if (!isdigit(c)) {
            set_reply(reply, "501 5.5.4 Bad message size syntax");
            return -1;
        }
        if (v > (LLONG_MAX - (c - '0')) / 10) {
            set_reply(
                reply,
                "552 5.3.4 Message size exceeds file system imposed limit");
            return -1;
        }
        v = v * 10 + (c - '0');
    }
    *out = v;
    return 0;
}

/* AUTH=<> or AUTH=xtext mailbox (RFC 4954 5); validated, then ignored. */
static bool auth_value_ok(const struct param_token *t)
{
    struct buf tmp = BUF_INIT;
    bool ok;

    if (!t->value || t->valuelen == 0)
        return false;
    if (t->valuelen == 2 && memcmp(t->value, "<>", 2) == 0)
        return true;
    ok = smtpd_xtext_decode(t->value, t->valuelen, &tmp) == 0 && tmp.len > 0;
    buf_free(&tmp);
    return ok;
}

int smtpd_parse_mail_params(const char *s, const struct smtpd_param_opts *o,
                            struct smtpd_mail_params *out, struct buf *reply)
{
    struct param_token t;
    struct buf tmp = BUF_INIT;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    while (next_token(&s, &t)) {
        if (key_is(&t, "SIZE")) {
            if (out->size_given) {
                set_reply(reply, "501 5.5.4 Bad message size syntax");
                goto done;
            }
            if (parse_size(&t, &out->size, reply) < 0)
                goto done;
            out->size_given = true;
        } else if (key_is(&t, "BODY") && t.value &&
                   (value_is(&t, "7BIT") || value_is(&t, "8BITMIME") ||
                    (o->chunking && value_is(&t, "BINARYMIME")))) {
            if (out->body != SMTPD_BODY_NONE) {
                set_reply(reply, "501 5.5.4 Bad BODY keyword value");
                goto done;
            }
            out->body = value_is(&t, "7BIT")       ? SMTPD_BODY_7BIT
                        : value_is(&t, "8BITMIME") ? SMTPD_BODY_8BITMIME
                                                   : SMTPD_BODY_BINARYMIME;
        } else if (o->smtputf8 && key_is(&t, "SMTPUTF8") && !t.value) {
            out->smtputf8 = true;
        } else if (key_is(&t, "AUTH") && t.value) {
            if (out->auth_given) {
                set_reply(reply, "503 5.5.4 Error: multiple AUTH= options");
                goto done;
            }
            if (!auth_value_ok(&t)) {
                set_reply(reply, "501 5.5.4 Syntax: AUTH=address");
                goto done;
            }
            out->auth_given = true;
        } else if (o->dsn && key_is(&t, "RET") && t.value) {
            if (out->ret != SMTPD_RET_NONE ||
                !(value_is(&t, "FULL") || value_is(&t, "HDRS"))) {
                set_reply(reply, "501 5.5.4 Bad RET parameter syntax");
                goto done;
            }
            out->ret = value_is(&t, "FULL") ? SMTPD_RET_FULL : SMTPD_RET_HDRS;
        } else if (o->dsn && key_is(&t, "ENVID") && t.value) {
            if (out->envid != NULL ||
                smtpd_xtext_decode(t.value, t.valuelen, &tmp) < 0 ||
                tmp.len == 0 || tmp.len > SMTPD_ENVID_MAX ||
                !all_printable(&tmp)) {
                set_reply(reply, "501 5.5.4 Bad ENVID parameter syntax");
                goto done;
            }
            out->envid = xstrndup(tmp.data, tmp.len);
        } else {
            unsupported(reply, &t);
            goto done;
        }
    }
    rc = 0;
done:
    buf_free(&tmp);
    if (rc < 0)
        smtpd_mail_params_free(out);
    return rc;
}

void smtpd_mail_params_free(struct smtpd_mail_params *p)
{
    free(p->envid);
    p->envid = NULL;
}

static int parse_notify(const struct param_token *t, unsigned *out)
{
    static const struct {
        const char *name;
        unsigned bit;
    } words[] = {{"NEVER", SMTPD_NOTIFY_NEVER},
                 {"SUCCESS", SMTPD_NOTIFY_SUCCESS},
                 {"FAILURE", SMTPD_NOTIFY_FAILURE},
                 {"DELAY", SMTPD_NOTIFY_DELAY}};
    const char *p = t->value, *end = t->value + t->valuelen;
    unsigned mask = 0;

    if (t->valuelen == 0)
        return -1;
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t n = comma ? (size_t)(comma - p) : (size_t)(end - p);
        unsigned bit = 0;

        for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
            if (n == strlen(words[i].name) &&
                strncasecmp(p, words[i].name, n) == 0)
                bit = words[i].bit;
        if (bit == 0 || (mask & bit))
            return -1;
        mask |= bit;
        if (!comma)
            break;
        p = comma + 1;
    }
    if ((mask & SMTPD_NOTIFY_NEVER) && mask != SMTPD_NOTIFY_NEVER)
        return -1;
    *out = mask;
    return 0;
}

/* ORCPT=addr-type ";" xtext  (RFC 3461 4.2); addr-type is an atom. */
static int parse_orcpt(const struct param_token *t, char **out)
{
    const char *semi = memchr(t->value, ';', t->valuelen);
    struct buf addr = BUF_INIT;
    size_t typelen;
    int rc = -1;

    if (t->valuelen > SMTPD_ORCPT_MAX || semi == NULL)
        return -1;
    typelen = (size_t)(semi - t->value);
    if (typelen == 0)
        return -1;
    for (size_t i = 0; i < typelen; i++) {
        unsigned char c = (unsigned char)t->value[i];

        if (!isalnum(c) && c != '-')
            return -1;
    }
    if (smtpd_xtext_decode(semi + 1, t->valuelen - typelen - 1, &addr) == 0 &&
        addr.len > 0 && all_printable(&addr)) {
        *out = xasprintf("%.*s;%s", (int)typelen, t->value, addr.data);
        rc = 0;
    }
    buf_free(&addr);
    return rc;
}

int smtpd_parse_rcpt_params(const char *s, const struct smtpd_param_opts *o,
                            struct smtpd_rcpt_params *out, struct buf *reply)
{
    struct param_token t;

    memset(out, 0, sizeof(*out));
    while (next_token(&s, &t)) {
        if (o->dsn && key_is(&t, "NOTIFY") && t.value) {
            if (out->notify != 0 || parse_notify(&t, &out->notify) < 0) {
                set_reply(reply,
                          "501 5.5.4 Error: Bad NOTIFY parameter syntax");
                goto fail;
            }
        } else if (o->dsn && key_is(&t, "ORCPT") && t.value) {
            if (out->orcpt != NULL || parse_orcpt(&t, &out->orcpt) < 0) {
                set_reply(reply, "501 5.5.4 Error: Bad ORCPT parameter syntax");
                goto fail;
            }
        } else {
            unsupported(reply, &t);
            goto fail;
        }
    }
    return 0;
fail:
    smtpd_rcpt_params_free(out);
    return -1;
}

void smtpd_rcpt_params_free(struct smtpd_rcpt_params *p)
{
    free(p->orcpt);
    p->orcpt = NULL;
    p->notify = 0;
}

void smtpd_notify_format(unsigned notify, struct buf *out)
{
    static const struct {
        unsigned bit;
        const char *name;
    } words[] = {{SMTPD_NOTIFY_NEVER, "NEVER"},
                 {SMTPD_NOTIFY_SUCCESS, "SUCCESS"},
                 {SMTPD_NOTIFY_FAILURE, "FAILURE"},
                 {SMTPD_NOTIFY_DELAY, "DELAY"}};

    buf_reset(out);
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (notify & words[i].bit) {
            if (out->len)
                buf_putc(out, ',');
            buf_puts(out, words[i].name);
        }
    }
}

int smtpd_parse_bdat(const char *args, long long *size, bool *last)
{
    const char *p = args;
    long long v = 0;
    size_t digits = 0;

    while (is_blank(*p))
        p++;
    while (isdigit((unsigned char)*p)) {
        if (++digits > 19 || v > (LLONG_MAX - (*p - '0')) / 10)
            return -1;
        v = v * 10 + (*p++ - '0');
    }
    if (digits == 0 || (*p && !is_blank(*p)))
        return -1;
    while (is_blank(*p))
        p++;
    *last = false;
    if (*p) {
        if (!str_has_prefix_ci(p, "LAST"))
            return -1;
        p += 4;
        while (is_blank(*p))
            p++;
        if (*p)
            return -1;
        *last = true;
    }
    *size = v;
    return 0;
}

const char *smtpd_body_name(enum smtpd_body b)
{
    switch (b) {
    case SMTPD_BODY_7BIT:
        return "7BIT";
    case SMTPD_BODY_8BITMIME:
        return "8BITMIME";
    case SMTPD_BODY_BINARYMIME:
        return "BINARYMIME";
    case SMTPD_BODY_NONE:
        break;
    }
    return "";
}
