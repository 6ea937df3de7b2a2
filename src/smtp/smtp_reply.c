/*
 * smtp_reply - SMTP server replies (RFC 5321 4.2), enhanced status codes
 * (RFC 3463) and EHLO keywords, as pure functions over received lines.
 *
 * Everything here comes from the remote server and is untrusted: a line
 * that does not start with a three-digit code in 200..599 followed by
 * " ", "-" or the end makes the whole reply malformed; the number of
 * lines and the kept text are bounded; a SIZE value that is not a plain
 * number is ignored.  No I/O: smtp_session.c reads the lines.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp/smtp.h"
#include "util/str.h"

void smtp_reply_init(struct smtp_reply *r)
{
    memset(r, 0, sizeof(*r));
    buf_init(&r->text);
}

void smtp_reply_free(struct smtp_reply *r)
{
    buf_free(&r->text);
    argv_free(&r->lines);
    memset(r, 0, sizeof(*r));
}

int smtp_reply_line(struct smtp_reply *r, const char *line, size_t len)
{
    int code;
    bool last;

    if (len < 3 || !isdigit((unsigned char)line[0]) ||
        !isdigit((unsigned char)line[1]) || !isdigit((unsigned char)line[2]))
        return -1;
    code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (code < 200 || code > 599)
        return -1;
    if (len > 3 && line[3] != ' ' && line[3] != '-')
        return -1;
    if (r->lines.n > 0 && code != r->code)
        return -1;
    if (r->lines.n >= SMTP_REPLY_LINES_MAX)
        return -1;
    last = len == 3 || line[3] == ' ';
    r->code = code;
    argv_addn(&r->lines, len > 4 ? line + 4 : "", len > 4 ? len - 4 : 0);
    if (r->text.len < SMTP_REPLY_TEXT_MAX) {
        size_t room = SMTP_REPLY_TEXT_MAX - r->text.len;

        if (r->text.len > 0)
            buf_putc(&r->text, ' ');
        buf_append(&r->text, line, len < room ? len : room);
    }
    return last ? 1 : 0;
}

bool smtp_dsn_parse(const char *text, int code, char dsn[SMTP_DSN_MAX])
{
    const char *p = text;
    size_t n;

    if (p[0] != '0' + code / 100 || p[1] != '.')
        return false;
    p += 2;
    for (int part = 0; part < 2; part++) {
        for (n = 0; isdigit((unsigned char)p[n]); n++)
            ;
        if (n == 0 || n > 3)
            return false;
        p += n;
        if (part == 0) {
            if (*p != '.')
                return false;
            p++;
        }
    }
    if (*p != 0 && *p != ' ' && *p != '\t')
        return false;
    n = (size_t)(p - text);
    memcpy(dsn, text, n);
    dsn[n] = 0;
    return true;
}

void smtp_reply_finish(struct smtp_reply *r)
{
    const char *first = r->lines.n > 0 ? r->lines.v[0] : "";

    if (!smtp_dsn_parse(first, r->code, r->dsn)) {
        int status = smtp_reply_status(r->code);

        r->dsn[0] = (char)('0' + status);
        memcpy(r->dsn + 1, ".0.0", 5);
    }
}

int smtp_reply_status(int code)
{
    switch (code / 100) {
    case 2:
        return 2;
    case 5:
        return 5;
    default:
        return 4;
    }
}

/* The keyword of an EHLO line equals kw (case-insensitive). */
static bool ehlo_keyword(const char *line, const char *kw, const char **arg)
{
    size_t n = strlen(kw);

    if (strncasecmp(line, kw, n) != 0)
        return false;
    if (line[n] != 0 && line[n] != ' ' && line[n] != '\t' && line[n] != '=')
        return false;
    *arg = line + n;
    while (**arg == ' ' || **arg == '\t' || **arg == '=')
        (*arg)++;
    return true;
}

unsigned smtp_ehlo_features(const struct smtp_reply *r, long long *size_max)
{
    static const struct {
        const char *kw;
        unsigned bit;
    } table[] = {
        {"PIPELINING", SMTP_FEATURE_PIPELINING},
        {"SIZE", SMTP_FEATURE_SIZE},
        {"8BITMIME", SMTP_FEATURE_8BITMIME},
        {"SMTPUTF8", SMTP_FEATURE_SMTPUTF8},
        {"DSN", SMTP_FEATURE_DSN},
        {"STARTTLS", SMTP_FEATURE_STARTTLS},
        {"CHUNKING", SMTP_FEATURE_CHUNKING},
        {"ENHANCEDSTATUSCODES", SMTP_FEATURE_ENHANCEDSTATUSCODES},
    };
    unsigned features = SMTP_FEATURE_ESMTP;

    *size_max = 0;
    /* The first line is the server's name and greeting text. */
    for (size_t i = 1; i < r->lines.n; i++) {
        const char *line = r->lines.v[i];

        for (size_t k = 0; k < sizeof(table) / sizeof(table[0]); k++) {
            const char *arg;
            long long v;

            if (!ehlo_keyword(line, table[k].kw, &arg))
                continue;
            features |= table[k].bit;
            if (table[k].bit == SMTP_FEATURE_SIZE && *arg &&
                str_to_llong(arg, &v) && v > 0)
                *size_max = v;
            break;
        }
    }
    return features;
}
