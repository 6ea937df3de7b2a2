/*
 * imap_reply - what the server writes: raw response text into the
 * connection's output buffer, IMAP strings in their safest short form
 * (atom, quoted, or literal for anything with CR, LF, NUL, 8-bit bytes
 * or quoted-specials beyond what quoting handles), flag lists, response
 * codes for store failures, and the CAPABILITY list.
 *
 * Output is only queued here; imap_conn sends it and imap_session keeps
 * it bounded by suspending commands that produce much.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "imapd/imap_mime.h"
#include "imapd/imapd.h"
#include "util/tls.h"

void imap_reply_raw(struct imap_session *s, const char *data, size_t len)
{
    buf_append(&s->conn.out, data, len);
}

void imap_reply_printf(struct imap_session *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    buf_vprintf(&s->conn.out, fmt, ap);
    va_end(ap);
}

static bool imap_atom_safe(const char *s, size_t len)
{
    if (len == 0 || (len == 3 && strncasecmp(s, "NIL", 3) == 0))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
            return false;
    }
    return true;
}

void imap_reply_astring(struct buf *b, const char *s, size_t len)
{
    if (imap_atom_safe(s, len))
        buf_append(b, s, len);
    else
        imap_mime_nstring(b, s, len); /* quoted, or a literal */
}

void imap_reply_set(struct buf *b, const uint32_t *v, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t j = i;

        while (j + 1 < n && v[j + 1] == v[j] + 1)
            j++;
        if (i > 0)
            buf_putc(b, ',');
        if (j > i)
            buf_printf(b, "%u:%u", v[i], v[j]);
        else
            buf_printf(b, "%u", v[i]);
        i = j + 1;
    }
}

static void imap_reply_system_flags(unsigned flags, struct buf *b,
                                    bool *first)
{
    static const struct {
        unsigned flag;
        const char *name;
    } names[] = {
        {IMAP_FLAG_ANSWERED, "\\Answered"}, {IMAP_FLAG_FLAGGED, "\\Flagged"},
        {IMAP_FLAG_DELETED, "\\Deleted"},   {IMAP_FLAG_SEEN, "\\Seen"},
        {IMAP_FLAG_DRAFT, "\\Draft"},       {IMAP_FLAG_RECENT, "\\Recent"},
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!(flags & names[i].flag))
            continue;
        if (!*first)
            buf_putc(b, ' ');
        buf_puts(b, names[i].name);
        *first = false;
    }
}

void imap_reply_flags(const struct imap_mailbox *mb, const struct imap_msg *m,
                      struct buf *b)
{
    bool first = true;
    size_t nkw = imap_mailbox_keyword_count(mb);

    buf_putc(b, '(');
    imap_reply_system_flags(m->flags, b, &first);
    for (size_t i = 0; i < nkw && i < IMAP_KEYWORDS_MAX; i++) {
        if (!(m->keywords & ((uint64_t)1 << i)))
            continue;
        if (!first)
            buf_putc(b, ' ');
        buf_puts(b, imap_mailbox_keyword(mb, i));
        first = false;
    }
    buf_putc(b, ')');
}

void imap_reply_flags_lists(struct imap_session *s, struct buf *b)
{
    size_t nkw = imap_mailbox_keyword_count(s->mb);
    bool first = true;

    buf_puts(b, "* FLAGS (");
    imap_reply_system_flags(IMAP_FLAGS_STORED, b, &first);
    for (size_t i = 0; i < nkw; i++)
        buf_printf(b, " %s", imap_mailbox_keyword(s->mb, i));
    buf_puts(b, ")\r\n");
    if (imap_mailbox_readonly(s->mb)) {
        buf_puts(b, "* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n");
        return;
    }
    first = true;
    buf_puts(b, "* OK [PERMANENTFLAGS (");
    imap_reply_system_flags(IMAP_FLAGS_STORED, b, &first);
    for (size_t i = 0; i < nkw; i++)
        buf_printf(b, " %s", imap_mailbox_keyword(s->mb, i));
    if (nkw < IMAP_KEYWORDS_MAX)
        buf_puts(b, " \\*");
    buf_puts(b, ")] Flags permitted.\r\n");
}

const char *imap_store_code(int status)
{
    switch (status) {
    case IMAP_STORE_NONEXISTENT:
        return "[NONEXISTENT] ";
    case IMAP_STORE_EXISTS:
        return "[ALREADYEXISTS] ";
    case IMAP_STORE_BADNAME:
    case IMAP_STORE_CANNOT:
        return "[CANNOT] ";
    case IMAP_STORE_LIMIT:
        return "[LIMIT] ";
    case IMAP_STORE_EXPUNGED:
        return "[EXPUNGEISSUED] ";
    case IMAP_STORE_TOOBIG:
        return "[TOOBIG] ";
    case IMAP_STORE_ERR:
        return "[SERVERBUG] ";
    default:
        return "";
    }
}

/* Capabilities of a logged-in session (what is implemented, no more). */
#define IMAP_CAPS_COMMON "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE"
#define IMAP_CAPS_AUTH                                                         \
    " UIDPLUS MOVE NAMESPACE CHILDREN SPECIAL-USE UNSELECT ESEARCH "           \
    "CONDSTORE"

void imap_capabilities(struct imap_session *s, struct buf *out)
{
    buf_puts(out, IMAP_CAPS_COMMON);
    if (s->state != IMAP_STATE_NOTAUTH) {
        buf_puts(out, IMAP_CAPS_AUTH);
        return;
    }
    if (imapd_tls != NULL && s->conn.state == IMAP_CONN_PLAIN &&
        imapd_params.tls_level != IMAP_TLS_NONE)
        buf_puts(out, " STARTTLS");
    if (!imap_login_allowed(s)) {
        buf_puts(out, " LOGINDISABLED");
        return;
    }
    {
        const char *mechs = imap_auth_mechs();

        while (*mechs) {
            size_t n = strcspn(mechs, " ");

            if (n > 0)
                buf_printf(out, " AUTH=%.*s", (int)n, mechs);
            mechs += n;
            mechs += strspn(mechs, " ");
        }
    }
}
