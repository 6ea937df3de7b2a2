/*
 * smtp_text - what the SMTP client does to text before it goes on the
 * wire: xtext for DSN parameters (RFC 3461 4), the DATA transparency of
 * RFC 5321 4.5.2 with CRLF line ends, the line length limit, and the
 * checks that keep a queue file's addresses from smuggling commands
 * (CR/LF) onto a command line.
 *
 * Pure functions over bytes; the content arrives in arbitrary chunks (a
 * line may span several), so the encoders carry their state between
 * calls.
 */
#include <string.h>

#include "smtp/smtp.h"

void smtp_xtext_encode(struct buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p >= 33 && *p <= 126 && *p != '+' && *p != '=') {
            buf_putc(out, *p);
        } else {
            buf_putc(out, '+');
            buf_putc(out, hex[*p >> 4]);
            buf_putc(out, hex[*p & 15]);
        }
    }
}

bool smtp_text_8bit(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80)
            return true;
    return false;
}

bool smtp_addr_sendable(const char *addr)
{
    bool quoted = false;

    for (const unsigned char *p = (const unsigned char *)addr; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return false;
        if (quoted) {
            if (*p == '\\') {
                if (p[1] < 0x20 || p[1] == 0x7f)
                    return false;
                p++;
            } else if (*p == '"') {
                quoted = false;
            }
            continue;
        }
        if (*p == '"')
            quoted = true;
        else if (*p == ' ' || *p == '<' || *p == '>')
            return false;
    }
    return !quoted;
}

void smtp_dot_init(struct smtp_dot *d, size_t limit)
{
    /* Room for the folding space and at least one byte per line. */
    d->limit = limit != 0 && limit < 2 ? 2 : limit;
    d->col = 0;
    d->bol = true;
}

void smtp_dot_feed(struct smtp_dot *d, const char *data, size_t len,
                   struct buf *out)
{
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t seg = nl ? (size_t)(nl - data) : len;
        const char *p = data;
        size_t left = seg;

        while (left > 0) {
            size_t take = left;

            if (d->bol) {
                if (*p == '.') {
                    buf_putc(out, '.');
                    d->col++;
                }
                d->bol = false;
            }
            if (d->limit && d->col >= d->limit) {
                buf_append(out, "\r\n ", 3);
                d->col = 1;
            }
            if (d->limit && take > d->limit - d->col)
                take = d->limit - d->col;
            buf_append(out, p, take);
            d->col += take;
            p += take;
            left -= take;
        }
        if (nl == NULL)
            break;
        buf_append(out, "\r\n", 2);
        d->bol = true;
        d->col = 0;
        data = nl + 1;
        len -= seg + 1;
    }
}

void smtp_dot_end(struct smtp_dot *d, struct buf *out)
{
    if (!d->bol)
        buf_append(out, "\r\n", 2);
    buf_append(out, ".\r\n", 3);
    d->bol = true;
    d->col = 0;
}

void smtp_measure_init(struct smtp_measure *m)
{
    m->size = 0;
    m->eightbit = false;
    m->header_8bit = false;
    m->in_header = true;
    m->bol = true;
}

void smtp_measure_feed(struct smtp_measure *m, const char *data, size_t len)
{
    const char *p = data, *end = data + len, *nl;

    if (len == 0)
        return;
    m->size += (long long)len;
    while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        m->size++; /* the CR that goes before it */
        if (m->in_header) {
            /* An empty line (at a line start) ends the header. */
            if (nl == p && (p > data || m->bol)) {
                m->in_header = false;
            } else if (!m->header_8bit) {
                m->header_8bit = smtp_text_8bit(p, (size_t)(nl - p));
            }
        }
        p = nl + 1;
    }
    if (m->in_header && p < end && !m->header_8bit)
        m->header_8bit = smtp_text_8bit(p, (size_t)(end - p));
    if (!m->eightbit)
        m->eightbit = smtp_text_8bit(data, len);
    m->bol = data[len - 1] == '\n';
}

void smtp_measure_end(struct smtp_measure *m)
{
    if (!m->bol)
        m->size += 2;
    m->bol = true;
}
