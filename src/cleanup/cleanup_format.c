/*
 * cleanup_format - the header lines cleanup adds, in Postfix's layout.
 *
 * Given values that smtpd sent (helo, client name, TLS text) and that
 * cleanup already validated for length; this file still replaces every
 * control byte with '?' because a header line must never be split or
 * ended by what a client said.  Pure functions: no I/O, no configuration,
 * no locale (day and month names are fixed English, as RFC 5322 wants).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cleanup/cleanup.h"
#include "global/dsn.h"

/*
 * Postfix's mail_date(); the one implementation lives in global/dsn.c,
 * which writes the same Date: form into delivery status notifications.
 */
void cleanup_format_date(struct buf *out, time_t t)
{
    dsn_format_date(out, t);
}

/* Append s with control bytes (and, when ascii_only, 8-bit bytes) as '?'. */
static void put_safe(struct buf *out, const char *s, bool ascii_only)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool bad = c < 0x20 || c == 0x7f || (ascii_only && c >= 0x80);
        buf_putc(out, bad ? '?' : c);
    }
}

void cleanup_format_received(struct buf *out, const struct cleanup_received *r)
{
    if (r->client_addr != NULL) {
        const char *name = r->client_name ? r->client_name : "unknown";
        const char *helo = r->helo && *r->helo ? r->helo : name;

        buf_puts(out, "Received: from ");
        put_safe(out, helo, true);
        buf_puts(out, " (");
        put_safe(out, name, true);
        /* Postfix writes IPv6 clients in address-literal form. */
        buf_puts(out, strchr(r->client_addr, ':') != NULL &&
                              strncmp(r->client_addr, "IPv6:", 5) != 0
                          ? " [IPv6:"
                          : " [");
        put_safe(out, r->client_addr, true);
        buf_puts(out, "])\n");
        if (r->tls != NULL && *r->tls) {
            buf_puts(out, r->tls[0] == '(' ? "\t" : "\t(");
            put_safe(out, r->tls, false);
            buf_puts(out, r->tls[0] == '(' ? "\n" : ")\n");
        }
        buf_puts(out, "\tby ");
    } else {
        buf_puts(out, "Received: by ");
    }
    put_safe(out, r->myhostname, true);
    buf_puts(out, " (");
    put_safe(out, r->mail_name, true);
    buf_puts(out, ")");
    if (r->protocol != NULL && *r->protocol) {
        buf_puts(out, " with ");
        put_safe(out, r->protocol, true);
    }
    buf_puts(out, " id ");
    put_safe(out, r->queue_id, true);
    if (r->rcpt != NULL) {
        buf_puts(out, "\n\tfor <");
        put_safe(out, r->rcpt, false);
        buf_puts(out, ">; ");
    } else {
        buf_puts(out, ";\n\t");
    }
    cleanup_format_date(out, r->when);
    buf_putc(out, '\n');
}

void cleanup_format_message_id(struct buf *out, time_t t, const char *id,
                               const char *host)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    buf_printf(out, "Message-ID: <%04d%02d%02d%02d%02d%02d.", tm.tm_year + 1900,
               tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    put_safe(out, id, true);
    buf_putc(out, '@');
    put_safe(out, host, true);
    buf_puts(out, ">\n");
}
