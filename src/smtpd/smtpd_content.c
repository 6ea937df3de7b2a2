/*
 * smtpd_content - SMTP transparency removal for DATA and BDAT (see the
 * header for the rules).  Input is untrusted client bytes of any value,
 * NUL included; output goes into a caller buffer.  Cannot fail.
 */
#include "smtpd/smtpd_content.h"

#include <string.h>

void smtpd_data_init(struct smtpd_data_state *st)
{
    st->prev_crlf = true;
}

bool smtpd_data_line(struct smtpd_data_state *st, const char *line, size_t len,
                     bool crlf, struct buf *out)
{
    bool end = crlf && st->prev_crlf && len == 1 && line[0] == '.';

    st->prev_crlf = crlf;
    if (end)
        return true;
    if (len > 0 && line[0] == '.') {
        line++;
        len--;
    }
    buf_append(out, line, len);
    buf_putc(out, '\n');
    return false;
}

size_t smtpd_data_lines(struct smtpd_data_state *st, const char *in,
                        size_t len, size_t max, struct buf *out, bool *end)
{
    size_t used = 0;

    *end = false;
    buf_reserve(out, len);
    while (used < len) {
        const char *line = in + used;
        const char *nl = memchr(line, '\n', len - used);
        size_t n, content;
        bool crlf;

        if (nl == NULL)
            break;
        n = (size_t)(nl - line);
        crlf = n > 0 && line[n - 1] == '\r';
        content = n - crlf;
        if (content > max)
            break;
        used += n + 1;
        if (smtpd_data_line(st, line, content, crlf, out)) {
            *end = true;
            break;
        }
    }
    return used;
}

void smtpd_bdat_init(struct smtpd_bdat_state *st)
{
    st->pending_cr = false;
}

void smtpd_bdat_decode(struct smtpd_bdat_state *st, const char *in, size_t len,
                       struct buf *out)
{
    size_t i = 0, start;

    if (len == 0)
        return;
    if (st->pending_cr) {
        st->pending_cr = false;
        if (in[0] != '\n')
            buf_putc(out, '\r');
    }
    buf_reserve(out, len);
    start = 0;
    while (i < len) {
        const char *cr = memchr(in + i, '\r', len - i);

        if (cr == NULL)
            break;
        i = (size_t)(cr - in);
        if (i + 1 == len) {
            /* Decide when the next chunk (or LAST) shows what follows. */
            buf_append(out, in + start, i - start);
            st->pending_cr = true;
            return;
        }
        if (in[i + 1] == '\n') {
            buf_append(out, in + start, i - start);
            start = i + 1; /* keep the LF, drop the CR */
        }
        i++;
    }
    buf_append(out, in + start, len - start);
}

void smtpd_bdat_finish(struct smtpd_bdat_state *st, struct buf *out)
{
    if (st->pending_cr)
        buf_putc(out, '\r');
    st->pending_cr = false;
}
