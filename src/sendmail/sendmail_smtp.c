/*
 * sendmail_smtp - `sendmail -bs`: an SMTP dialogue on stdin/stdout whose
 * messages go into maildrop/, like Postfix's stand-alone smtpd.
 *
 * The client is the invoking user's own program (a MUA that speaks SMTP
 * to a pipe), so there are no access restrictions: it can submit exactly
 * what plain `sendmail` would.  It is still bounded like a network client
 * -- command line length, recipients per message, message_size_limit,
 * smtpd_timeout per read, an error count -- because it may be a broken
 * program.  Commands: EHLO, HELO, MAIL, RCPT, DATA, RSET, NOOP, VRFY
 * (252), HELP, QUIT; MAIL FROM parameters (SIZE, BODY, SMTPUTF8, ...) are
 * accepted and only SIZE is used.  Replies carry enhanced status codes.
 *
 * A message is committed (sendmail_drop_commit: fsync and rename) before
 * "250 2.0.0 Ok: queued"; the queue ID is given later by cleanup, when
 * pickup hands the file over, so the reply has none.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "global/mail_proto.h"
#include "sendmail/sendmail.h"
#include "util/fsutil.h"
#include "util/mem.h"
#include "util/str.h"

/* RFC 5321 4.5.3.1.4 allows 512; clients send longer parameter lists. */
#define SMTP_LINE_MAX 2048
#define SMTP_ERROR_LIMIT 20

struct smtp_session {
    const struct sendmail_cfg *cfg;
    struct sendmail_input *in;
    struct buf out;
    char *sender; /* NULL: no MAIL yet */
    struct argv rcpts;
    int errors;
    bool quit;
};

static void smtp_reply(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    buf_vprintf(&s->out, fmt, ap);
    va_end(ap);
    buf_puts(&s->out, "\r\n");
}

/* Replies are collected per command and written in one go. */
static void smtp_flush(struct smtp_session *s)
{
    if (s->out.len > 0 && write_all(1, s->out.data, s->out.len) < 0)
        s->quit = true;
    buf_reset(&s->out);
}

static void smtp_reset(struct smtp_session *s)
{
    free(s->sender);
    s->sender = NULL;
    argv_free(&s->rcpts);
}

static void smtp_error(struct smtp_session *s)
{
    if (++s->errors >= SMTP_ERROR_LIMIT) {
        smtp_reply(s, "421 4.7.0 %s Error: too many errors",
                   s->cfg->myhostname);
        s->quit = true;
    }
}

/*
 * "FROM:" / "TO:" argument: the path and what follows.  Returns the
 * internal form, or NULL with a reply sent.
 */
static char *smtp_path(struct smtp_session *s, const char *arg, bool allow_null,
                       const char **params)
{
    const char *p = arg, *end;
    const char *why = "Bad address syntax";
    char *spec, *addr;

    while (*p == ' ')
        p++;
    if (*p != '<' || (end = strchr(p, '>')) == NULL) {
        smtp_reply(s, "501 5.1.7 Bad address syntax");
        smtp_error(s);
        return NULL;
    }
    spec = xstrndup(p + 1, (size_t)(end - p - 1));
    *params = end + 1;
    /* No source routes, as smtpd: "<@a:u@b>" is refused there too. */
    addr = *spec == '@'
               ? NULL
               : sendmail_addr_internal(s->cfg, spec, allow_null, &why);
    free(spec);
    if (addr == NULL) {
        smtp_reply(s, "501 5.1.%d %s", allow_null ? 7 : 3, why);
        smtp_error(s);
    }
    return addr;
}

static void smtp_mail(struct smtp_session *s, const char *arg)
{
    const char *params;
    char *addr;

    if (s->sender != NULL) {
        smtp_reply(s, "503 5.5.1 Error: nested MAIL command");
        smtp_error(s);
        return;
    }
    if (!str_has_prefix_ci(arg, "FROM:")) {
        smtp_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
        smtp_error(s);
        return;
    }
    if ((addr = smtp_path(s, arg + 5, true, &params)) == NULL)
        return;
    /* SIZE=n: refuse what cannot fit before it is sent. */
    for (const char *p = params; (p = strcasestr(p, "SIZE=")) != NULL; p++) {
        long long size = atoll(p + 5);
        if ((p == params || p[-1] == ' ') && s->cfg->size_limit > 0 &&
            size > s->cfg->size_limit) {
            smtp_reply(s, "552 5.3.4 Message size exceeds fixed limit");
            free(addr);
            return;
        }
    }
    s->sender = addr;
    smtp_reply(s, "250 2.1.0 Ok");
}

static void smtp_rcpt(struct smtp_session *s, const char *arg)
{
    const char *params;
    char *addr;

    if (s->sender == NULL) {
        smtp_reply(s, "503 5.5.1 Error: need MAIL command");
        smtp_error(s);
        return;
    }
    if (!str_has_prefix_ci(arg, "TO:")) {
        smtp_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
        smtp_error(s);
        return;
    }
    if (s->rcpts.n >= MAIL_MAILDROP_RCPT_MAX) {
        smtp_reply(s, "452 4.5.3 Error: too many recipients");
        return;
    }
    if ((addr = smtp_path(s, arg + 3, false, &params)) == NULL)
        return;
    argv_add(&s->rcpts, addr);
    free(addr);
    smtp_reply(s, "250 2.1.5 Ok");
}

/* The message after "354": dot-stuffed lines up to ".". */
static void smtp_data(struct smtp_session *s)
{
    struct sendmail_drop *d = NULL;
    const char *p;
    size_t n;
    bool ls, le, too_big = false;
    char err[512];
    enum sendmail_piece st;

    if (s->sender == NULL || s->rcpts.n == 0) {
        smtp_reply(s, s->sender == NULL ? "503 5.5.1 Error: need MAIL command"
                                        : "554 5.5.1 Error: no valid "
                                          "recipients");
        smtp_error(s);
        return;
    }
    d = sendmail_drop_open(s->cfg, s->sender, &s->rcpts, err, sizeof(err));
    if (d == NULL) {
        sendmail_warn("queue file write error: %s", err);
        smtp_reply(s, "451 4.3.0 Error: queue file write error");
        smtp_reset(s);
        return;
    }
    smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
    smtp_flush(s);
    while ((st = sendmail_input_next(s->in, &p, &n, &ls, &le)) == PIECE_OK) {
        if (le && n >= 2 && p[n - 2] == '\r') {
            ((char *)p)[n - 2] = '\n';
            n--;
        }
        if (ls && le && n == 2 && p[0] == '.')
            break;
        if (ls && p[0] == '.') { /* transparency (RFC 5321 4.5.2) */
            p++;
            n--;
        }
        if (!too_big)
            sendmail_drop_write(d, p, n);
        if (s->cfg->size_limit > 0 &&
            sendmail_drop_size(d) > s->cfg->size_limit)
            too_big = true;
    }
    if (st != PIECE_OK) {
        /* The client went away mid-message: nothing was promised. */
        sendmail_drop_abort(d);
        s->quit = true;
        return;
    }
    if (too_big) {
        sendmail_drop_abort(d);
        smtp_reply(s, "552 5.3.4 Error: message file too big");
    } else if (sendmail_drop_commit(d, err, sizeof(err)) < 0) {
        sendmail_warn("queue file write error: %s", err);
        smtp_reply(s, "451 4.3.0 Error: queue file write error");
    } else {
        smtp_reply(s, "250 2.0.0 Ok: queued");
    }
    smtp_reset(s);
}

/* One command line (CRLF removed); QUIT and fatal errors set s->quit. */
static void smtp_command(struct smtp_session *s, char *line)
{
    char *arg = line + strcspn(line, " ");
    size_t verb_len = (size_t)(arg - line);

    while (*arg == ' ')
        arg++;
#define VERB(w) (verb_len == strlen(w) && strncasecmp(line, w, verb_len) == 0)
    if (VERB("EHLO")) {
        smtp_reset(s);
        smtp_reply(s, "250-%s", s->cfg->myhostname);
        smtp_reply(s, "250-PIPELINING");
        if (s->cfg->size_limit > 0)
            smtp_reply(s, "250-SIZE %lld", s->cfg->size_limit);
        else
            smtp_reply(s, "250-SIZE");
        smtp_reply(s, "250-ENHANCEDSTATUSCODES");
        smtp_reply(s, "250-8BITMIME");
        smtp_reply(s, "250 SMTPUTF8");
    } else if (VERB("HELO")) {
        smtp_reset(s);
        smtp_reply(s, "250 %s", s->cfg->myhostname);
    } else if (VERB("MAIL")) {
        smtp_mail(s, arg);
    } else if (VERB("RCPT")) {
        smtp_rcpt(s, arg);
    } else if (VERB("DATA")) {
        smtp_data(s);
    } else if (VERB("RSET")) {
        smtp_reset(s);
        smtp_reply(s, "250 2.0.0 Ok");
    } else if (VERB("NOOP")) {
        smtp_reply(s, "250 2.0.0 Ok");
    } else if (VERB("VRFY")) {
        smtp_reply(s, "252 2.0.0 Send some mail, I'll try my best");
    } else if (VERB("HELP")) {
        smtp_reply(s, "214 2.0.0 EHLO HELO MAIL RCPT DATA RSET NOOP VRFY "
                      "QUIT");
    } else if (VERB("QUIT")) {
        smtp_reply(s, "221 2.0.0 Bye");
        s->quit = true;
    } else {
        smtp_reply(s, "502 5.5.2 Error: command not recognized");
        smtp_error(s);
    }
#undef VERB
}

int sendmail_smtp(const struct sendmail_cfg *cfg, const char *login)
{
    struct smtp_session s = {cfg, NULL, BUF_INIT, NULL, ARGV_INIT, 0, false};
    struct buf line = BUF_INIT;
    bool overlong = false;
    long long tmo = cfg->smtp_timeout > 0 && cfg->smtp_timeout < 86400
                        ? cfg->smtp_timeout
                        : 300;

    s.in = sendmail_input_open(0, (int)(tmo * 1000));
    smtp_reply(&s, "220 %s ESMTP posthorn (local submission for %s)",
               cfg->myhostname, login);
    smtp_flush(&s);
    while (!s.quit) {
        const char *p;
        size_t n;
        bool ls, le;
        enum sendmail_piece st = sendmail_input_next(s.in, &p, &n, &ls, &le);

        if (st == PIECE_TIMEOUT) {
            smtp_reply(&s, "421 4.4.2 %s Error: timeout exceeded",
                       cfg->myhostname);
            break;
        }
        if (st != PIECE_OK)
            break;
        if (ls)
            buf_reset(&line);
        if (line.len + n > SMTP_LINE_MAX)
            overlong = true;
        else
            buf_append(&line, p, n);
        if (!le)
            continue;
        if (overlong) {
            smtp_reply(&s, "500 5.5.0 Error: line too long");
            smtp_error(&s);
            overlong = false;
        } else {
            while (line.len > 0 && (line.data[line.len - 1] == '\n' ||
                                    line.data[line.len - 1] == '\r'))
                line.len--;
            line.data[line.len] = 0;
            smtp_command(&s, line.data);
        }
        smtp_flush(&s);
    }
    smtp_flush(&s);
    smtp_reset(&s);
    sendmail_input_close(s.in);
    buf_free(&line);
    buf_free(&s.out);
    return 0;
}
