/*
 * delivery_report - format the "to=<...>, ..., status=..." line.
 * See delivery_report.h.  Text fields are untrusted (addresses and
 * remote replies) and pass through log_printable with a bound.
 */
#include "global/delivery_report.h"

#include <stdio.h>
#include <string.h>

#include "util/log.h"

/* Longest address or reason shown; longer text is cut. */
#define DELIVERY_REPORT_TEXT_MAX 1000

void delivery_delay_format(struct buf *out, double seconds)
{
    char tmp[64];
    int decimals;

    if (!(seconds > 0) || seconds < 0.005) {
        buf_putc(out, '0');
        return;
    }
    if (seconds >= 10)
        decimals = 0;
    else if (seconds >= 1)
        decimals = 1;
    else
        decimals = 2;
    /* Rounding may carry into the next magnitude (9.96 -> "10.0"). */
    snprintf(tmp, sizeof(tmp), "%.*f", decimals, seconds);
    if (strchr(tmp, '.')) {
        size_t n = strlen(tmp);

        while (n > 0 && tmp[n - 1] == '0')
            tmp[--n] = 0;
        if (n > 0 && tmp[n - 1] == '.')
            tmp[--n] = 0;
    }
    buf_puts(out, tmp);
}

static void report_text(struct buf *out, const char *s)
{
    char tmp[DELIVERY_REPORT_TEXT_MAX + 1];
    size_t len = strlen(s);

    if (len > DELIVERY_REPORT_TEXT_MAX)
        len = DELIVERY_REPORT_TEXT_MAX;
    buf_puts(out, log_printable(tmp, sizeof(tmp), s, len));
}

void delivery_report_format(struct buf *out, const struct delivery_report *r)
{
    buf_puts(out, "to=<");
    report_text(out, r->rcpt);
    buf_puts(out, ">");
    if (r->orig_rcpt && *r->orig_rcpt && strcmp(r->orig_rcpt, r->rcpt) != 0) {
        buf_puts(out, ", orig_to=<");
        report_text(out, r->orig_rcpt);
        buf_puts(out, ">");
    }
    buf_printf(out, ", relay=%s, delay=", r->relay ? r->relay : "none");
    delivery_delay_format(out, r->delay);
    buf_puts(out, ", delays=");
    for (int i = 0; i < 4; i++) {
        if (i)
            buf_putc(out, '/');
        delivery_delay_format(out, r->delays[i]);
    }
    buf_printf(out, ", dsn=%s, status=%s", r->dsn, r->status);
    if (r->reason && *r->reason) {
        buf_puts(out, " (");
        report_text(out, r->reason);
        buf_putc(out, ')');
    }
}
