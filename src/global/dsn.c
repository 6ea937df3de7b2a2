/*
 * dsn - format delivery status notifications (RFC 3464).  See dsn.h.
 *
 * Everything text that reaches the output passes through dsn_put_clean()
 * (addresses, reasons, ENVID, ORCPT) and the line folder, so nothing a
 * remote server said can end a header line, start a MIME boundary or
 * exceed the line length limit.  The boundary is chosen after the parts
 * are built and is checked against all of them.
 */
#include "global/dsn.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* A word longer than this is cut, so no line passes RFC 5322's 998. */
#define DSN_WORD_MAX 900
#define DSN_INDENT "    "

static const char *const dsn_day_names[] = {"Sun", "Mon", "Tue", "Wed",
                                            "Thu", "Fri", "Sat"};
static const char *const dsn_month_names[] = {"Jan", "Feb", "Mar", "Apr",
                                              "May", "Jun", "Jul", "Aug",
                                              "Sep", "Oct", "Nov", "Dec"};

void dsn_format_date(struct buf *out, time_t t)
{
    struct tm tm;
    long off;
    char sign = '+', zone[16];

    localtime_r(&t, &tm);
    off = tm.tm_gmtoff / 60;
    if (off < 0) {
        sign = '-';
        off = -off;
    }
    /* tm_zone, not strftime's %Z: that calls tzset(), which checks
     * /etc/localtime again (four system calls per Received: header). */
    snprintf(zone, sizeof(zone), "%s",
             tm.tm_zone != NULL && tm.tm_zone[0] ? tm.tm_zone
             : off == 0                          ? "UTC"
                                                 : "local");
    buf_printf(out, "%s, %2d %s %d %02d:%02d:%02d %c%02ld%02ld (%s)",
               dsn_day_names[tm.tm_wday % 7], tm.tm_mday,
               dsn_month_names[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour,
               tm.tm_min, tm.tm_sec, sign, off / 60, off % 60, zone);
}

bool dsn_has_8bit(const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)data[i] >= 0x80)
            return true;
    return false;
}

size_t dsn_header_length(const char *data, size_t len)
{
    if (len > 0 && data[0] == '\n')
        return 1;
    for (size_t i = 0; i + 1 < len; i++)
        if (data[i] == '\n' && data[i + 1] == '\n')
            return i + 2;
    return len;
}

/* Control characters become ' ' (line breaks, tabs) or '?'; 8-bit bytes
 * stay only when utf8. */
static void dsn_put_clean(struct buf *out, const char *s, bool utf8)
{
    for (; s != NULL && *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '\t' || c == '\r' || c == '\n')
            buf_putc(out, ' ');
        else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8))
            buf_putc(out, '?');
        else
            buf_putc(out, (char)c);
    }
}

/*
 * Append line (one logical line, already clean) folded at spaces so that
 * lines stay within DSN_LINE_MAX where words allow; continuation lines
 * start with DSN_INDENT (header folding and Postfix's report layout).
 */
static void dsn_fold(struct buf *out, const char *line)
{
    size_t col = 0;
    const char *p = line;

    while (*p) {
        size_t spaces = strspn(p, " ");
        const char *word = p + spaces;
        size_t wlen = strcspn(word, " ");

        if (wlen == 0) /* trailing blanks */
            break;
        if (col > 0 && col + spaces + wlen > DSN_LINE_MAX) {
            buf_puts(out, "\n" DSN_INDENT);
            col = strlen(DSN_INDENT);
        } else if (col > 0 || spaces > 0) {
            buf_append(out, p, spaces);
            col += spaces;
        }
        while (wlen > DSN_WORD_MAX) {
            buf_append(out, word, DSN_WORD_MAX);
            buf_puts(out, "\n" DSN_INDENT);
            col = strlen(DSN_INDENT);
            word += DSN_WORD_MAX;
            wlen -= DSN_WORD_MAX;
        }
        buf_append(out, word, wlen);
        col += wlen;
        p = word + wlen;
    }
    buf_putc(out, '\n');
}

bool dsn_remote_reply(const char *reason, struct buf *mta, struct buf *text)
{
    static const char said[] = " said: ";
    static const char tail[] = " command)";
    const char *host, *end, *txt, *in;
    size_t len;

    if (reason == NULL || strncmp(reason, "host ", 5) != 0)
        return false;
    host = reason + 5;
    if ((txt = strstr(host, said)) == NULL)
        return false;
    end = memchr(host, '[', (size_t)(txt - host));
    if (end == NULL)
        end = txt;
    if (end == host || memchr(host, ' ', (size_t)(end - host)) != NULL)
        return false;
    txt += sizeof(said) - 1;
    len = strlen(txt);
    /* Drop the trailing "(in reply to X command)". */
    in = NULL;
    for (const char *s = txt; (s = strstr(s, " (in reply to ")) != NULL; s++)
        in = s;
    if (in != NULL && len >= sizeof(tail) - 1 &&
        strcmp(txt + len - (sizeof(tail) - 1), tail) == 0)
        len = (size_t)(in - txt);
    if (len == 0)
        return false;
    buf_append(mta, host, (size_t)(end - host));
    buf_append(text, txt, len);
    return true;
}

bool dsn_notify_wants(const char *notify, enum dsn_kind kind)
{
    const char *word;

    if (notify == NULL || *notify == 0)
        return kind == DSN_FAILURE || kind == DSN_DELAY ||
               kind == DSN_POSTMASTER;
    switch (kind) {
    case DSN_FAILURE:
        word = "FAILURE";
        break;
    case DSN_DELAY:
        word = "DELAY";
        break;
    case DSN_SUCCESS:
        word = "SUCCESS";
        break;
    default:
        return true; /* the postmaster's copy does not ask the sender */
    }
    for (const char *p = notify; *p;) {
        size_t n = strcspn(p, ",");

        if (n == strlen(word) && strncasecmp(p, word, n) == 0)
            return true;
        p += n;
        if (*p == ',')
            p++;
    }
    return false;
}

/* "N day(s)" and the like, in the largest unit that divides evenly. */
static void dsn_put_duration(struct buf *out, long long secs)
{
    static const struct {
        long long size;
        const char *name;
    } units[] = {{86400, "day"}, {3600, "hour"}, {60, "minute"}, {1, "second"}};

    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (secs >= units[i].size && secs % units[i].size == 0) {
            buf_printf(out, "%lld %s(s)", secs / units[i].size, units[i].name);
            return;
        }
    }
    buf_printf(out, "%lld second(s)", secs > 0 ? secs : 0);
}

static const char dsn_help_text[] =
    "For further assistance, please send mail to postmaster.\n"
    "\n"
    "If you do so, please include this problem report. You can\n"
    "delete your own text from the attached returned message.\n"
    "\n";
static const char dsn_signature[] = "                   The mail system\n";

static void dsn_notification_text(struct buf *out, const struct dsn_report *r)
{
    buf_puts(out, "This is the mail system at host ");
    dsn_put_clean(out, r->myhostname, false);
    buf_puts(out, ".\n\n");
    switch (r->kind) {
    case DSN_FAILURE:
        buf_puts(out,
                 "I'm sorry to have to inform you that your message could not\n"
                 "be delivered to one or more recipients. It's attached "
                 "below.\n\n");
        buf_puts(out, dsn_help_text);
        break;
    case DSN_DELAY:
        buf_puts(out, "##########################################"
                      "##########################\n"
                      "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO "
                      "RESEND YOUR MESSAGE. #\n"
                      "##########################################"
                      "##########################\n\n");
        buf_puts(out, "Your message could not be delivered for more than ");
        dsn_put_duration(out, r->warn_after);
        buf_puts(out, ".\n");
        if (r->retry_until > r->arrival) {
            buf_puts(out, "It will be retried until it is ");
            dsn_put_duration(out, (long long)(r->retry_until - r->arrival));
            buf_puts(out, " old.\n");
        }
        buf_puts(out, "\n");
        buf_puts(out, dsn_help_text);
        break;
    case DSN_SUCCESS:
        buf_puts(out,
                 "Your message was successfully delivered to the "
                 "destination(s)\n"
                 "listed below. If the message was delivered to mailbox you "
                 "will\n"
                 "receive no further notifications. Otherwise you may still "
                 "receive\n"
                 "notifications of mail delivery errors from other "
                 "systems.\n\n");
        break;
    case DSN_POSTMASTER:
        buf_puts(out, "The message whose headers are attached could not be "
                      "delivered to\n"
                      "one or more recipients, and no notification can be "
                      "returned to\n"
                      "its sender <");
        dsn_put_clean(out, r->sender, r->smtputf8);
        buf_puts(out, ">. This copy goes to the postmaster instead.\n\n");
        break;
    }
    buf_puts(out, dsn_signature);
    for (size_t i = 0; i < r->nrcpt; i++) {
        const struct dsn_rcpt *rc = &r->rcpts[i];
        struct buf line = BUF_INIT;

        buf_puts(&line, "<");
        dsn_put_clean(&line, rc->addr, r->smtputf8);
        buf_puts(&line, ">");
        if (rc->orig != NULL && *rc->orig && strcmp(rc->orig, rc->addr) != 0) {
            buf_puts(&line, " (expanded from <");
            dsn_put_clean(&line, rc->orig, r->smtputf8);
            buf_puts(&line, ">)");
        }
        buf_puts(&line, ": ");
        dsn_put_clean(
            &line, rc->reason && *rc->reason ? rc->reason : "(no reason given)",
            false);
        buf_putc(out, '\n');
        dsn_fold(out, buf_cstr(&line));
        buf_free(&line);
    }
}

/* "rfc822" for an ASCII address, RFC 6533's "utf-8" otherwise. */
static const char *dsn_addr_type(const char *addr, bool utf8)
{
    return utf8 && dsn_has_8bit(addr, strlen(addr)) ? "utf-8" : "rfc822";
}

/* One "Name: value" field, value cleaned, the line folded. */
static void dsn_field(struct buf *out, const char *name, const char *prefix,
                      const char *value, bool utf8)
{
    struct buf line = BUF_INIT;

    buf_printf(&line, "%s: %s", name, prefix ? prefix : "");
    dsn_put_clean(&line, value, utf8);
    dsn_fold(out, buf_cstr(&line));
    buf_free(&line);
}

static void dsn_status_part(struct buf *out, const struct dsn_report *r)
{
    struct buf tmp = BUF_INIT;

    dsn_field(out, "Reporting-MTA", "dns; ", r->myhostname, false);
    dsn_field(out, "X-Posthorn-Queue-ID", NULL, r->queue_id, false);
    buf_reset(&tmp);
    buf_printf(&tmp, "%s; ", dsn_addr_type(r->sender, r->smtputf8));
    dsn_field(out, "X-Posthorn-Sender", tmp.data, r->sender, r->smtputf8);
    if (r->envid != NULL && *r->envid)
        dsn_field(out, "Original-Envelope-Id", NULL, r->envid, false);
    buf_reset(&tmp);
    dsn_format_date(&tmp, r->arrival);
    dsn_field(out, "Arrival-Date", NULL, tmp.data, false);

    for (size_t i = 0; i < r->nrcpt; i++) {
        const struct dsn_rcpt *rc = &r->rcpts[i];
        struct buf mta = BUF_INIT, text = BUF_INIT;

        buf_putc(out, '\n');
        buf_reset(&tmp);
        buf_printf(&tmp, "%s; ", dsn_addr_type(rc->addr, r->smtputf8));
        dsn_field(out, "Final-Recipient", tmp.data, rc->addr, r->smtputf8);
        if (rc->orcpt != NULL && *rc->orcpt) {
            dsn_field(out, "Original-Recipient", NULL, rc->orcpt, false);
        } else if (rc->orig != NULL && *rc->orig &&
                   strcmp(rc->orig, rc->addr) != 0) {
            buf_reset(&tmp);
            buf_printf(&tmp, "%s; ", dsn_addr_type(rc->orig, r->smtputf8));
            dsn_field(out, "Original-Recipient", tmp.data, rc->orig,
                      r->smtputf8);
        }
        dsn_field(out, "Action", NULL, rc->action, false);
        dsn_field(out, "Status", NULL, rc->status, false);
        if (dsn_remote_reply(rc->reason, &mta, &text)) {
            dsn_field(out, "Remote-MTA", "dns; ", buf_cstr(&mta), false);
            dsn_field(out, "Diagnostic-Code", "smtp; ", buf_cstr(&text), false);
        } else if (rc->reason != NULL && *rc->reason) {
            dsn_field(out, "Diagnostic-Code", "X-Posthorn; ", rc->reason,
                      false);
        }
        if (r->kind == DSN_DELAY && r->retry_until > 0) {
            buf_reset(&tmp);
            dsn_format_date(&tmp, r->retry_until);
            dsn_field(out, "Will-Retry-Until", NULL, tmp.data, false);
        }
        buf_free(&mta);
        buf_free(&text);
    }
    buf_free(&tmp);
}

static const char *dsn_subject(enum dsn_kind kind)
{
    switch (kind) {
    case DSN_DELAY:
        return "Delayed Mail (still being retried)";
    case DSN_SUCCESS:
        return "Successful Mail Delivery Report";
    case DSN_POSTMASTER:
        return "Postmaster Copy: Undelivered Mail";
    default:
        return "Undelivered Mail Returned to Sender";
    }
}

static bool dsn_contains(const struct buf *b, const char *s)
{
    return b->len > 0 && memmem(b->data, b->len, s, strlen(s)) != NULL;
}

void dsn_format(struct buf *out, const struct dsn_report *r, const char *orig,
                size_t len)
{
    struct buf text = BUF_INIT, status = BUF_INIT, original = BUF_INIT;
    struct buf boundary = BUF_INIT;
    bool orig_8bit = len > 0 && dsn_has_8bit(orig, len);
    bool eightbit = orig_8bit || r->smtputf8;

    dsn_notification_text(&text, r);
    dsn_status_part(&status, r);
    if (len > 0) {
        buf_append(&original, orig, len);
        if (orig[len - 1] != '\n')
            buf_putc(&original, '\n');
    }

    /* Postfix's "ID.time/host", made longer until no part contains it. */
    buf_printf(&boundary, "%s.%lld/", r->queue_id, (long long)r->now);
    dsn_put_clean(&boundary, r->myhostname, false);
    for (unsigned n = 1;; n++) {
        if (!dsn_contains(&text, boundary.data) &&
            !dsn_contains(&status, boundary.data) &&
            !dsn_contains(&original, boundary.data))
            break;
        buf_printf(&boundary, ".%u", n);
    }

    buf_puts(out, "From: MAILER-DAEMON@");
    dsn_put_clean(out, r->myhostname, false);
    buf_puts(out, " (Mail Delivery System)\n");
    buf_printf(out, "Subject: %s\n", dsn_subject(r->kind));
    dsn_field(out, "To", NULL, r->to, r->smtputf8);
    buf_puts(out, "Auto-Submitted: auto-replied\n");
    buf_puts(out, "MIME-Version: 1.0\n");
    buf_printf(out,
               "Content-Type: multipart/report; report-type=delivery-status;"
               "\n\tboundary=\"%s\"\n",
               boundary.data);
    if (eightbit)
        buf_puts(out, "Content-Transfer-Encoding: 8bit\n");
    buf_puts(out, "Message-ID: <");
    dsn_put_clean(out, r->message_id, false);
    buf_puts(out, ">\nDate: ");
    dsn_format_date(out, r->now);
    buf_puts(out, "\n\nThis is a MIME-encapsulated message.\n\n");

    buf_printf(out, "--%s\n", boundary.data);
    buf_puts(out, "Content-Description: Notification\n");
    buf_printf(out, "Content-Type: text/plain; charset=%s\n",
               r->smtputf8 ? "utf-8" : "us-ascii");
    if (r->smtputf8)
        buf_puts(out, "Content-Transfer-Encoding: 8bit\n");
    buf_putc(out, '\n');
    buf_append(out, text.data, text.len);

    buf_printf(out, "\n--%s\n", boundary.data);
    buf_puts(out, "Content-Description: Delivery report\n");
    buf_printf(out, "Content-Type: message/%sdelivery-status\n",
               r->smtputf8 ? "global-" : "");
    if (r->smtputf8)
        buf_puts(out, "Content-Transfer-Encoding: 8bit\n");
    buf_putc(out, '\n');
    buf_append(out, status.data, status.len);

    if (original.len > 0) {
        const char *what = r->kind == DSN_SUCCESS ? "Delivered" : "Undelivered";

        buf_printf(out, "\n--%s\n", boundary.data);
        if (r->headers_only) {
            buf_printf(out, "Content-Description: %s Message Headers\n", what);
            buf_printf(out, "Content-Type: %s\n",
                       r->smtputf8 ? "message/global-headers"
                                   : "text/rfc822-headers");
        } else {
            buf_printf(out, "Content-Description: %s Message\n", what);
            buf_printf(out, "Content-Type: %s\n",
                       r->smtputf8 ? "message/global" : "message/rfc822");
        }
        if (orig_8bit)
            buf_puts(out, "Content-Transfer-Encoding: 8bit\n");
        buf_putc(out, '\n');
        buf_append(out, original.data, original.len);
    }
    buf_printf(out, "\n--%s--\n", boundary.data);

    buf_free(&text);
    buf_free(&status);
    buf_free(&original);
    buf_free(&boundary);
}
