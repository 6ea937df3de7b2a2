/*
 * sendmail_addr - addresses as people write them (To: headers, command
 * line arguments, -f) turned into the internal form cleanup and pickup
 * accept.
 *
 * The list parser is a small RFC 5322 tokenizer: quoted strings (with
 * backslash escapes), comments (nested), angle-bracket addresses, groups
 * ("name: a, b;") and commas.  It never fails: what it cannot make sense
 * of ends up as an addr-spec that sendmail_addr_internal() refuses, with
 * a reason, through global/addr.h's RFC 5321 parser -- the one every
 * posthorn process uses, so sendmail never queues an address that pickup
 * or cleanup would reject.  Input is the caller's own data, still
 * bounded: a single element longer than ADDR_PATH_MAX cannot parse.
 */
#include <stdlib.h>
#include <string.h>

#include "global/addr.h"
#include "sendmail/sendmail.h"
#include "util/mem.h"

struct addr_elem {
    struct buf plain; /* text outside <> and comments, blanks kept */
    struct buf angle; /* inside <>, when there was one */
    bool has_angle;
};

static void addr_elem_reset(struct addr_elem *e)
{
    buf_reset(&e->plain);
    buf_reset(&e->angle);
    e->has_angle = false;
}

/* Remove blanks outside quoted strings ("a @ b" is obsolete a@b). */
static char *addr_squeeze(const char *s, size_t len)
{
    char *out = xmalloc(len + 1);
    size_t n = 0;
    bool quoted = false;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (quoted && c == '\\' && i + 1 < len) {
            out[n++] = c;
            out[n++] = s[++i];
            continue;
        }
        if (c == '"')
            quoted = !quoted;
        if (!quoted && (c == ' ' || c == '\t' || c == '\r' || c == '\n'))
            continue;
        out[n++] = c;
    }
    out[n] = 0;
    return out;
}

static void addr_elem_finish(struct addr_elem *e, struct argv *out)
{
    char *spec;

    if (e->has_angle) {
        const char *a = e->angle.data ? e->angle.data : "";
        const char *colon;

        /* Obsolete source route "<@a,@b:user@c>": the mailbox only. */
        if (*a == '@' && (colon = strchr(a, ':')) != NULL)
            a = colon + 1;
        spec = addr_squeeze(a, strlen(a));
        argv_add(out, spec);
        free(spec);
    } else if (e->plain.len > 0) {
        spec = addr_squeeze(e->plain.data, e->plain.len);
        if (*spec)
            argv_add(out, spec);
        free(spec);
    }
    addr_elem_reset(e);
}

void sendmail_addr_list(const char *text, size_t len, struct argv *out)
{
    struct addr_elem e = {BUF_INIT, BUF_INIT, false};
    int comment = 0;
    bool quoted = false, literal = false, in_angle = false, in_group = false;

    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        struct buf *dst = in_angle ? &e.angle : &e.plain;

        if (comment > 0) {
            if (c == '\\' && i + 1 < len)
                i++;
            else if (c == '(')
                comment++;
            else if (c == ')')
                comment--;
            continue;
        }
        if (quoted) {
            buf_putc(dst, c);
            if (c == '\\' && i + 1 < len)
                buf_putc(dst, text[++i]);
            else if (c == '"')
                quoted = false;
            continue;
        }
        if (literal) {
            /* Domain literal "[IPv6:::1]": its ':' opens no group. */
            buf_putc(dst, c);
            if (c == '\\' && i + 1 < len)
                buf_putc(dst, text[++i]);
            else if (c == ']')
                literal = false;
            continue;
        }
        switch (c) {
        case '"':
            quoted = true;
            buf_putc(dst, c);
            break;
        case '[':
            literal = true;
            buf_putc(dst, c);
            break;
        case '(':
            comment = 1;
            /* A comment separates words like a blank does. */
            buf_putc(dst, ' ');
            break;
        case '<':
            if (in_angle) {
                buf_putc(dst, c);
            } else {
                in_angle = true;
                e.has_angle = true;
                buf_reset(&e.angle);
            }
            break;
        case '>':
            if (in_angle)
                in_angle = false;
            else
                buf_putc(dst, c);
            break;
        case ':':
            /* "display-name:" opens a group; inside <> it is a route. */
            if (!in_angle && !in_group && !e.has_angle) {
                in_group = true;
                addr_elem_reset(&e);
            } else {
                buf_putc(dst, c);
            }
            break;
        case ';':
            if (in_angle) {
                buf_putc(dst, c);
            } else {
                addr_elem_finish(&e, out);
                in_group = false;
            }
            break;
        case ',':
            if (in_angle)
                buf_putc(dst, c);
            else
                addr_elem_finish(&e, out);
            break;
        default:
            buf_putc(dst, c);
            break;
        }
    }
    addr_elem_finish(&e, out);
    buf_free(&e.plain);
    buf_free(&e.angle);
}

static bool has_8bit(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return true;
    return false;
}

/* Is there an '@' outside a quoted local part? */
static bool has_domain(const char *s)
{
    bool quoted = false;

    for (; *s; s++) {
        if (quoted && *s == '\\' && s[1]) {
            s++;
            continue;
        }
        if (*s == '"')
            quoted = !quoted;
        else if (*s == '@' && !quoted)
            return true;
    }
    return false;
}

char *sendmail_addr_internal(const struct sendmail_cfg *cfg, const char *spec,
                             bool allow_null, const char **why)
{
    struct mailaddr a;
    struct buf path = BUF_INIT;
    size_t used;
    char *result = NULL;

    if (*spec == 0) {
        if (allow_null)
            return xstrdup("");
        *why = "empty address";
        return NULL;
    }
    buf_putc(&path, '<');
    buf_puts(&path, spec);
    if (!has_domain(spec)) {
        if (!cfg->append_at_myorigin) {
            *why = "address needs a domain (append_at_myorigin = no)";
            buf_free(&path);
            return NULL;
        }
        buf_printf(&path, "@%s", cfg->myorigin);
    }
    buf_putc(&path, '>');
    if (addr_parse_path(path.data, path.len, false, has_8bit(path.data), &a,
                        &used, why) == 0) {
        if (used == path.len)
            result = xstrdup(a.text);
        else
            *why = "Bad address syntax";
        addr_free(&a);
    }
    buf_free(&path);
    return result;
}
