/*
 * cleanup_checks - the pieces of header_checks, mime_header_checks,
 * nested_header_checks and body_checks that need no I/O: which table a
 * line goes to, the lookup key of a header, what a table result asks for
 * (Postfix's header_checks(5) actions), and the log line of an action.
 *
 * Results come from the administrator's tables, but $n substitution puts
 * message text into them, so the text that reaches smtpd's reply is made
 * printable and cut to CLEANUP_REASON_MAX, and log text goes through
 * log_printable.  Pure: cleanup.c does the lookups and acts.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cleanup/cleanup.h"
#include "util/log.h"

#define CLEANUP_LOG_CONTENT_MAX 200 /* Postfix's TRUNC_LEN */

const char *const cleanup_check_names[CLEANUP_CHECK_LISTS] = {
    "header_checks",
    "mime_header_checks",
    "nested_header_checks",
    "body_checks",
};

bool cleanup_header_is_mime(const char *hdr, size_t len)
{
    static const char *const mime[] = {
        "Content-Description",       "Content-Disposition", "Content-ID",
        "Content-Transfer-Encoding", "Content-Type",        "MIME-Version",
    };
    size_t name = cleanup_header_name_len(hdr, len);

    for (size_t i = 0; name > 0 && i < sizeof(mime) / sizeof(mime[0]); i++)
        if (strlen(mime[i]) == name && strncasecmp(mime[i], hdr, name) == 0)
            return true;
    return false;
}

enum cleanup_check_list cleanup_check_list_for(enum cleanup_part part,
                                               const char *text, size_t len)
{
    switch (part) {
    case CLEANUP_PART_BODY:
        return CLEANUP_CHECK_BODY;
    case CLEANUP_PART_MULTIPART:
        return CLEANUP_CHECK_MIME;
    case CLEANUP_PART_NESTED:
        return cleanup_header_is_mime(text, len) ? CLEANUP_CHECK_MIME
                                                 : CLEANUP_CHECK_NESTED;
    case CLEANUP_PART_PRIMARY:
    default:
        return cleanup_header_is_mime(text, len) ? CLEANUP_CHECK_MIME
                                                 : CLEANUP_CHECK_HEADER;
    }
}

void cleanup_header_unfold(struct buf *out, const char *hdr, size_t len,
                           size_t max)
{
    buf_reset(out);
    for (size_t i = 0; i < len && out->len < max; i++) {
        if (hdr[i] == '\n')
            continue;
        /* A CR that ends a line is part of the line break. */
        if (hdr[i] == '\r' && (i + 1 == len || hdr[i + 1] == '\n'))
            continue;
        buf_putc(out, hdr[i]);
    }
}

/* ---- actions ---- */

/* Length of an enhanced status code "D.D{1,3}.D{1,3}" at t followed by a
 * blank or the end, else 0. */
static size_t dsn_code_len(const char *t)
{
    const char *p = t;

    if (*p < '2' || *p > '5' || p[1] != '.')
        return 0;
    p += 2;
    for (int part = 0; part < 2; part++) {
        int n = 0;

        while (isdigit((unsigned char)*p) && n < 3) {
            p++;
            n++;
        }
        if (n == 0 || (part == 0 && *p++ != '.'))
            return 0;
    }
    return (*p == 0 || *p == ' ' || *p == '\t') ? (size_t)(p - t) : 0;
}

/*
 * reason = "X.Y.Z text" for status: text's own code is kept (its class
 * made to match), else def is put in front; an empty text becomes
 * Postfix's "message content rejected".  Printable ASCII only, bounded.
 */
static void make_reason(struct cleanup_action *a, int status, const char *def,
                        const char *text)
{
    size_t n = dsn_code_len(text), o = 0;
    char *r = a->reason;

    a->status = status;
    if (*text == 0)
        text = "message content rejected";
    if (n == 0)
        o = (size_t)snprintf(r, sizeof(a->reason), "%s ", def);
    for (const char *p = text; *p != 0 && o < CLEANUP_REASON_MAX; p++) {
        unsigned char c = (unsigned char)*p;

        r[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    r[o] = 0;
    r[0] = (char)('0' + status);
}

/* "Name:" at the start, as a header must begin. */
static bool text_is_header(const char *t)
{
    return cleanup_header_name_len(t, strlen(t)) > 0;
}

void cleanup_action_parse(const char *result, bool header,
                          struct cleanup_action *a)
{
    static const struct {
        const char *name;
        enum cleanup_action_kind kind;
    } words[] = {
        {"DUNNO", CLEANUP_ACT_DUNNO},     {"OK", CLEANUP_ACT_DUNNO},
        {"REJECT", CLEANUP_ACT_REJECT},   {"DISCARD", CLEANUP_ACT_DISCARD},
        {"HOLD", CLEANUP_ACT_HOLD},       {"IGNORE", CLEANUP_ACT_IGNORE},
        {"PREPEND", CLEANUP_ACT_PREPEND}, {"REPLACE", CLEANUP_ACT_REPLACE},
        {"WARN", CLEANUP_ACT_WARN},       {"INFO", CLEANUP_ACT_INFO},
    };
    const char *p = result, *word, *text;
    bool matched = false;
    size_t wlen;

    memset(a, 0, sizeof(*a));
    a->kind = CLEANUP_ACT_DUNNO;
    a->text = "";
    while (*p == ' ' || *p == '\t')
        p++;
    word = p;
    while (*p != 0 && *p != ' ' && *p != '\t')
        p++;
    wlen = (size_t)(p - word);
    while (*p == ' ' || *p == '\t')
        p++;
    text = p;

    /* 4NN text, 5NN text: a reply of the administrator's choosing. */
    if (wlen == 3 && (word[0] == '4' || word[0] == '5') &&
        isdigit((unsigned char)word[1]) && isdigit((unsigned char)word[2])) {
        char def[8];

        snprintf(def, sizeof(def), "%c.7.1", word[0]);
        a->kind = CLEANUP_ACT_REJECT;
        a->text = text;
        make_reason(a, word[0] - '0', def, text);
        return;
    }
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strlen(words[i].name) == wlen &&
            strncasecmp(words[i].name, word, wlen) == 0) {
            matched = true;
            a->kind = words[i].kind;
            break;
        }
    }
    if (!matched) {
        if (wlen == 6 && strncasecmp(word, "FILTER", 6) == 0)
            a->problem = "FILTER is not supported";
        else if (wlen == 8 && strncasecmp(word, "REDIRECT", 8) == 0)
            a->problem = "REDIRECT is not supported";
        else if (wlen == 3 && strncasecmp(word, "BCC", 3) == 0)
            a->problem = "BCC is not supported";
        else
            a->problem = "unknown action";
        return;
    }
    if (a->kind != CLEANUP_ACT_DUNNO)
        a->text = text;
    switch (a->kind) {
    case CLEANUP_ACT_REJECT:
        /* The text's own code decides; Postfix makes 2.x.x/3.x.x 4.x.x. */
        make_reason(a, dsn_code_len(text) == 0 || text[0] == '5' ? 5 : 4,
                    "5.7.1", text);
        break;
    case CLEANUP_ACT_PREPEND:
    case CLEANUP_ACT_REPLACE:
        if (*text == 0) {
            a->problem = a->kind == CLEANUP_ACT_PREPEND
                             ? "PREPEND without text"
                             : "REPLACE without text";
        } else if (header && !text_is_header(text)) {
            a->problem = "PREPEND/REPLACE text is not a header (need "
                         "\"Name: value\")";
        }
        if (a->problem != NULL) {
            a->kind = CLEANUP_ACT_DUNNO;
            a->text = "";
        }
        break;
    default:
        break;
    }
}

/* ---- logging ---- */

void cleanup_check_log_line(struct buf *out, const char *id, const char *what,
                            const char *where, const char *content,
                            size_t content_len,
                            const struct cleanup_envelope *env,
                            const char *text)
{
    char safe[CLEANUP_LOG_CONTENT_MAX + 1];
    char origin[CLEANUP_HOST_MAX * 2 + 16];
    char addr[2 * CLEANUP_HOST_MAX];

    if (env->client_addr != NULL)
        snprintf(origin, sizeof(origin), "%s[%s]",
                 env->client_name != NULL ? env->client_name : "unknown",
                 env->client_addr);
    else
        snprintf(origin, sizeof(origin), "local");
    buf_printf(out, "%s: %s: %s %s from %s;", id, what, where,
               log_printable(safe, sizeof(safe), content,
                             content_len > CLEANUP_LOG_CONTENT_MAX
                                 ? CLEANUP_LOG_CONTENT_MAX
                                 : content_len),
               origin);
    buf_printf(
        out, " from=<%s>",
        log_printable(addr, sizeof(addr), env->sender, strlen(env->sender)));
    if (env->rcpts.n > 0)
        buf_printf(out, " to=<%s>",
                   log_printable(addr, sizeof(addr), env->rcpts.v[0].addr,
                                 strlen(env->rcpts.v[0].addr)));
    if (env->protocol != NULL)
        buf_printf(out, " proto=%s", env->protocol);
    if (env->helo != NULL)
        buf_printf(
            out, " helo=<%s>",
            log_printable(addr, sizeof(addr), env->helo, strlen(env->helo)));
    if (text != NULL && *text != 0) {
        char t[CLEANUP_REASON_MAX + 1];

        buf_printf(out, ": %s",
                   log_printable(t, sizeof(t), text, strlen(text)));
    }
}
