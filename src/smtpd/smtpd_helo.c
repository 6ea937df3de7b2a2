/*
 * smtpd_helo - HELO and EHLO, and the table of EHLO keywords.
 *
 * The client's hostname is stored neutered (non-printable bytes and
 * <>()\";@ become '?', at most SMTPD_HELO_MAX bytes) because it goes into
 * logs and the Received: header.  Both commands reset the transaction
 * (RFC 5321 4.1.4).  A keyword is announced unless the configuration
 * disables the feature or smtpd_discard_ehlo_keywords hides it; a new
 * extension is one row in ehlo_table.  STARTTLS and AUTH depend on the
 * session (TLS already on, smtpd_tls_auth_only): smtpd_tls.c and
 * smtpd_auth.c decide.
 */
#include "smtpd/smtpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd/smtpd_check.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

#define SMTPD_HELO_MAX 255

struct ehlo_keyword {
    const char *name;
    unsigned mask;
    /* Text to announce into out; false to leave the keyword out. */
    bool (*announce)(const struct smtpd_session *s, struct buf *out);
};

static bool announce_plain(const struct smtpd_session *s, struct buf *out)
{
    return true;
}

static bool announce_size(const struct smtpd_session *s, struct buf *out)
{
    if (s->cfg->message_size_limit > 0)
        buf_printf(out, " %lld", s->cfg->message_size_limit);
    return true;
}

static bool announce_vrfy(const struct smtpd_session *s, struct buf *out)
{
    return !s->cfg->disable_vrfy;
}

static bool announce_smtputf8(const struct smtpd_session *s, struct buf *out)
{
    return s->cfg->smtputf8_enable;
}

static bool announce_starttls(const struct smtpd_session *s, struct buf *out)
{
    return smtpd_tls_offered(s);
}

static bool announce_auth(const struct smtpd_session *s, struct buf *out)
{
    const char *mechs = smtpd_auth_mechs(s);

    if (mechs == NULL)
        return false;
    buf_printf(out, " %s", mechs);
    return true;
}

/* "AUTH=PLAIN LOGIN" for clients that predate RFC 2554's final form. */
static bool announce_auth_broken(const struct smtpd_session *s,
                                 struct buf *out)
{
    const char *mechs = smtpd_auth_mechs(s);

    if (mechs == NULL || !smtpd_auth_broken_clients())
        return false;
    buf_printf(out, "=%s", mechs);
    return true;
}

/* Announced, in Postfix's order.  ETRN: not yet. */
static const struct ehlo_keyword ehlo_table[] = {
    {"PIPELINING", SMTPD_EHLO_PIPELINING, announce_plain},
    {"SIZE", SMTPD_EHLO_SIZE, announce_size},
    {"VRFY", SMTPD_EHLO_VRFY, announce_vrfy},
    {"STARTTLS", SMTPD_EHLO_STARTTLS, announce_starttls},
    {"AUTH", SMTPD_EHLO_AUTH, announce_auth},
    {"AUTH", SMTPD_EHLO_AUTH, announce_auth_broken},
    {"ENHANCEDSTATUSCODES", SMTPD_EHLO_ENHANCEDSTATUSCODES, announce_plain},
    {"8BITMIME", SMTPD_EHLO_8BITMIME, announce_plain},
    {"DSN", SMTPD_EHLO_DSN, announce_plain},
    {"SMTPUTF8", SMTPD_EHLO_SMTPUTF8, announce_smtputf8},
    {"CHUNKING", SMTPD_EHLO_CHUNKING, announce_plain},
};

/* Every keyword smtpd_discard_ehlo_keywords may name (Postfix's set). */
static const struct {
    const char *name;
    unsigned mask;
} ehlo_names[] = {
    {"pipelining", SMTPD_EHLO_PIPELINING},
    {"size", SMTPD_EHLO_SIZE},
    {"vrfy", SMTPD_EHLO_VRFY},
    {"etrn", SMTPD_EHLO_ETRN},
    {"auth", SMTPD_EHLO_AUTH},
    {"starttls", SMTPD_EHLO_STARTTLS},
    {"enhancedstatuscodes", SMTPD_EHLO_ENHANCEDSTATUSCODES},
    {"8bitmime", SMTPD_EHLO_8BITMIME},
    {"dsn", SMTPD_EHLO_DSN},
    {"smtputf8", SMTPD_EHLO_SMTPUTF8},
    {"chunking", SMTPD_EHLO_CHUNKING},
    {"xclient", SMTPD_EHLO_OTHER},
    {"xforward", SMTPD_EHLO_OTHER},
    {"verp", SMTPD_EHLO_OTHER},
    {"requiretls", SMTPD_EHLO_OTHER},
    {"silent-discard", SMTPD_EHLO_SILENT},
};

unsigned smtpd_ehlo_mask(const struct argv *words)
{
    unsigned mask = 0;

    for (size_t i = 0; i < words->n; i++) {
        size_t j;

        for (j = 0; j < sizeof(ehlo_names) / sizeof(ehlo_names[0]); j++)
            if (str_eq_ci(words->v[i], ehlo_names[j].name))
                break;
        if (j == sizeof(ehlo_names) / sizeof(ehlo_names[0]))
            log_warn("smtpd_discard_ehlo_keywords: unknown keyword '%s'",
                     words->v[i]);
        else
            mask |= ehlo_names[j].mask;
    }
    return mask;
}

/* Store the hostname argument in a form safe for logs and headers. */
static void set_helo(struct smtpd_session *s, const char *args)
{
    size_t n = strlen(args);
    char *h;

    while (n > 0 && (args[n - 1] == ' ' || args[n - 1] == '\t'))
        n--;
    if (n > SMTPD_HELO_MAX)
        n = SMTPD_HELO_MAX;
    h = xstrndup(args, n);
    for (char *p = h; *p; p++) {
        unsigned char c = (unsigned char)*p;

        if (c < 0x20 || c > 0x7e || strchr("<>()\\\";@", c) != NULL)
            *p = '?';
    }
    free(s->helo);
    s->helo = h;
}

int smtpd_cmd_helo(struct smtpd_session *s, const char *args)
{
    if (*args == 0) {
        smtpd_reply(s, "501 Syntax: HELO hostname");
        return -1;
    }
    smtpd_xact_reset(s);
    set_helo(s, args);
    s->esmtp = false;
    if (smtpd_check_helo(s) < 0) { /* smtpd_helo_restrictions, replied */
        free(s->helo);
        s->helo = NULL;
        return -1;
    }
    smtpd_reply(s, "250 %s", s->cfg->myhostname);
    return 0;
}

int smtpd_cmd_ehlo(struct smtpd_session *s, const char *args)
{
    unsigned discard = s->cfg->ehlo_discard;
    struct buf line = BUF_INIT;
    const char *lines[sizeof(ehlo_table) / sizeof(ehlo_table[0]) + 1];
    size_t offsets[sizeof(ehlo_table) / sizeof(ehlo_table[0]) + 1];
    size_t n = 0;

    if (*args == 0) {
        smtpd_reply(s, "501 Syntax: EHLO hostname");
        return -1;
    }
    smtpd_xact_reset(s);
    set_helo(s, args);
    s->esmtp = true;
    if (smtpd_check_helo(s) < 0) { /* smtpd_helo_restrictions, replied */
        free(s->helo);
        s->helo = NULL;
        return -1;
    }
    if ((discard & ~SMTPD_EHLO_SILENT) && !(discard & SMTPD_EHLO_SILENT))
        log_info("discarding EHLO keywords for %s", s->namaddr);

    /* Collect the announced lines first: the last one gets "250 ". */
    for (size_t i = 0; i < sizeof(ehlo_table) / sizeof(ehlo_table[0]); i++) {
        size_t start = line.len;

        if (discard & ehlo_table[i].mask)
            continue;
        buf_puts(&line, ehlo_table[i].name);
        if (!ehlo_table[i].announce(s, &line)) {
            buf_truncate(&line, start);
            continue;
        }
        buf_putc(&line, 0);
        offsets[n++] = start;
    }
    for (size_t i = 0; i < n; i++)
        lines[i] = line.data + offsets[i];

    buf_reset(&s->reply);
    buf_printf(&s->reply, "250%c%s", n > 0 ? '-' : ' ', s->cfg->myhostname);
    smtpd_reply_raw(s, s->reply.data);
    for (size_t i = 0; i < n; i++) {
        buf_reset(&s->reply);
        buf_printf(&s->reply, "250%c%s", i + 1 < n ? '-' : ' ', lines[i]);
        smtpd_reply_raw(s, s->reply.data);
    }
    buf_free(&line);
    return 0;
}
