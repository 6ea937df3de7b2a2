/*
 * imap_session - one IMAP client: greeting, command framing and
 * dispatch, the states of RFC 3501 (not authenticated, authenticated,
 * selected, logout), commands that wait (login thread, output drain,
 * IDLE), untagged updates of the selected mailbox, and the end.
 *
 * Input is framed by imap_frame_scan(): a synchronising literal gets its
 * "+" only when the line before it is within limits; a literal over the
 * limit is refused before the client sends it ("{n+}" over the limit
 * cannot be refused that way, so the session ends, as RFC 7888 says);
 * an over-long line is answered BAD and skipped to its end.  Commands
 * run one at a time in order; pipelined commands wait in the input
 * buffer, which is bounded (imap_conn_update stops reading past one
 * command's worth).
 *
 * Every command's allocations live in s->pool and go when it ends
 * (imap_cmd_done).  Untagged EXPUNGE is held back after FETCH, STORE and
 * SEARCH by sequence number (RFC 3501 7.4.1) and sent after the next
 * command that allows it.
 *
 * A session whose client goes away while the login thread holds a job
 * of it is closed at once and freed when the job comes back.
 *
 * Idle sessions hibernate their selected mailbox (imap_mailbox_hibernate:
 * the LMDB index is let go) in IDLE and after IMAP_HIBERNATE_SECS
 * without a command; the store reopens it when it is needed again.
 */
#include <arpa/inet.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "imapd/imapd.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/sock.h"

LIST_HEAD(imap_session_list, imap_session);
static struct imap_session_list imap_sessions =
    LIST_HEAD_INITIALIZER(imap_sessions);
static size_t imap_nsessions;

static void imap_session_process(struct imap_session *s);

size_t imap_session_count(void)
{
    return imap_nsessions;
}

void imap_session_log(struct imap_session *s, const char *fmt, ...)
{
    char text[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (s->user != NULL)
        log_info("%s[%s]: %s", s->user, s->addr, text);
    else
        log_info("[%s]: %s", s->addr, text);
}

/* Exactly 127.0.0.1 and ::1: other 127/8 sources count as remote, so a
 * test (or an admin) can check the plaintext refusal from 127.0.0.2. */
static bool imap_addr_loopback(const char *addr)
{
    return strcmp(addr, "127.0.0.1") == 0 || strcmp(addr, "::1") == 0 ||
           strcmp(addr, "::ffff:127.0.0.1") == 0;
}

static void imap_session_greet(struct imap_session *s)
{
    struct buf caps = BUF_INIT;

    imap_capabilities(s, &caps);
    imap_reply_printf(s, "* OK [CAPABILITY %s] %s\r\n", caps.data,
                      imapd_params.banner);
    buf_free(&caps);
}

void imap_session_accept(int fd, bool wrapper)
{
    struct imap_session *s = xcalloc(1, sizeof(*s));
    char port[16];

    imap_conn_init(&s->conn, fd, s);
    if (sock_peer_name(fd, s->addr, sizeof(s->addr), port, sizeof(port)) < 0)
        snprintf(s->addr, sizeof(s->addr), "unknown");
    s->loopback = imap_addr_loopback(s->addr);
    s->state = IMAP_STATE_NOTAUTH;
    s->mode = IMAP_MODE_COMMAND;
    s->wrapper = wrapper;
    s->last_active = time(NULL);
    LIST_INSERT_HEAD(&imap_sessions, s, entries);
    imap_nsessions++;
    imapd_session_count(1);
    log_debug("connect from [%s]", s->addr);
    if (wrapper) {
        char err[256];

        s->mode = IMAP_MODE_BUSY;
        if (imap_conn_start_tls(s, err, sizeof(err)) < 0) {
            imap_session_log(s, "TLS: %s", err);
            s->conn.eof = true;
            imap_session_process(s);
        }
        /* imap_session_on_tls() greets, or the failure ends it. */
        return;
    }
    imap_session_greet(s);
    imap_session_process(s);
}

static void imap_session_free(struct imap_session *s)
{
    if (s->conn.ev != NULL) {
        LIST_REMOVE(s, entries);
        imap_nsessions--;
        if (s->idle_watching)
            imap_notify_unwatch(s);
        if (s->mb != NULL)
            imap_mailbox_close(s->mb);
        s->mb = NULL;
        if (s->store != NULL)
            imap_store_close(s->store);
        s->store = NULL;
        imap_conn_free(&s->conn);
        imap_pool_clear(&s->pool);
        log_debug("disconnect from [%s]", s->addr);
        imapd_session_count(-1);
    }
    if (s->auth_job) {
        s->gone = true; /* freed by the login thread's answer */
        return;
    }
    imap_auth_forget(s);
    free(s->user);
    free(s);
}

bool imap_session_job_done(struct imap_session *s)
{
    s->auth_job = false;
    if (s->gone) {
        imap_session_free(s);
        return false;
    }
    return true;
}

void imap_session_free_all(const char *bye)
{
    while (!LIST_EMPTY(&imap_sessions)) {
        struct imap_session *s = LIST_FIRST(&imap_sessions);

        if (bye != NULL && s->conn.state != IMAP_CONN_HANDSHAKE) {
            imap_reply_printf(s, "* BYE %s\r\n", bye);
            (void)imap_conn_flush(&s->conn);
        }
        imap_session_free(s);
    }
}

void imap_session_bye(struct imap_session *s, const char *text)
{
    imap_reply_printf(s, "* BYE %s\r\n", text);
    s->mode = IMAP_MODE_CLOSE;
}

void imap_session_on_error(struct imap_session *s)
{
    s->conn.eof = true;
    imap_session_process(s);
}

void imap_session_on_drain(struct imap_session *s)
{
    imap_session_process(s);
}

void imap_session_on_input(struct imap_session *s)
{
    imap_session_process(s);
}

void imap_session_on_tls(struct imap_session *s, bool ok, const char *err)
{
    if (!ok) {
        imap_session_log(s, "TLS handshake failed: %s", err);
        s->conn.eof = true;
        imap_session_process(s);
        return;
    }
    log_debug("[%s]: TLS established", s->addr);
    s->mode = IMAP_MODE_COMMAND;
    if (s->wrapper)
        imap_session_greet(s);
    imap_session_process(s);
}

/* ------------------------------------------------------------ commands */

/* The tag at the start of a refused line, if it looks like one. */
static void imap_session_refuse(struct imap_session *s, const char *data,
                                size_t len, const char *status,
                                const char *text)
{
    size_t n = 0;

    while (n < len && n < IMAP_TAG_MAX && data[n] > ' ' && data[n] < 0x7f &&
           strchr("(){%*\"\\+", data[n]) == NULL)
        n++;
    if (n > 0 && n < len && data[n] == ' ')
        imap_reply_printf(s, "%.*s %s %s\r\n", (int)n, data, status, text);
    else
        imap_reply_printf(s, "* %s %s\r\n", status, text);
    if (strcmp(status, "BAD") == 0 &&
        ++s->bad_commands >= (unsigned)imapd_params.hard_error_limit)
        imap_session_bye(s, "Too many invalid commands.");
}

void imap_cmd_done(struct imap_session *s, const char *status,
                   const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    bool expunge_ok;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    expunge_ok = s->cmd == NULL || !(s->cmd->flags & IMAP_CMD_NOEXPUNGE) ||
                 s->uid_cmd;
    if (s->state == IMAP_STATE_SELECTED && s->mb != NULL &&
        s->mode != IMAP_MODE_CLOSE)
        imap_session_sync(s, expunge_ok);
    imap_reply_printf(s, "%s %s %s\r\n", s->tag ? s->tag : "*", status, text);
    if (strcmp(status, "BAD") == 0 &&
        ++s->bad_commands >= (unsigned)imapd_params.hard_error_limit)
        imap_session_bye(s, "Too many invalid commands.");
    imap_pool_clear(&s->pool);
    s->last_active = time(NULL);
    s->tag = NULL;
    s->cmd = NULL;
    s->cmd_state = NULL;
    s->uid_cmd = false;
    s->resume = NULL;
    if (s->mode == IMAP_MODE_BUSY || s->mode == IMAP_MODE_SASL ||
        s->mode == IMAP_MODE_IDLE)
        s->mode = IMAP_MODE_COMMAND;
    if (!s->processing)
        imap_session_process(s);
}

void imap_cmd_suspend(struct imap_session *s, imap_resume_fn resume)
{
    s->resume = resume;
    s->mode = IMAP_MODE_BUSY;
}

static void imap_session_command(struct imap_session *s, const char *data,
                                 size_t len)
{
    struct imap_command cmd;
    const struct imap_cmd_def *def;
    const char *err = NULL;

    s->mode = IMAP_MODE_BUSY;
    if (imap_parse_command(&s->pool, data, len, &cmd, &err) < 0) {
        s->tag = cmd.tag;
        if (cmd.tag == NULL) {
            imap_reply_printf(s, "* BAD %s\r\n", err);
            imap_pool_clear(&s->pool);
            s->mode = IMAP_MODE_COMMAND;
            if (++s->bad_commands >= (unsigned)imapd_params.hard_error_limit)
                imap_session_bye(s, "Too many invalid commands.");
            return;
        }
        imap_cmd_done(s, "BAD", "Error in IMAP command: %s.", err);
        return;
    }
    s->tag = cmd.tag;
    if ((def = imap_cmd_find(cmd.name)) == NULL) {
        imap_cmd_done(s, "BAD", "Unknown command.");
        return;
    }
    if (!(def->states & s->state)) {
        imap_cmd_done(s, "BAD", "Command %s is not valid in this state.",
                      def->name);
        return;
    }
    s->cmd = def;
    def->run(s, &cmd);
}

/* Offset of the first LF in the input, or -1. */
static bool imap_session_skip(struct imap_session *s)
{
    struct imap_conn *c = &s->conn;
    const char *lf = memchr(c->in.data, '\n', c->in.len);

    if (lf == NULL) {
        buf_reset(&c->in);
        return false;
    }
    buf_consume(&c->in, (size_t)(lf - c->in.data) + 1);
    s->skip_line = false;
    return true;
}

/* One framed command, or one waiting literal; false: need more input. */
static bool imap_session_step_command(struct imap_session *s)
{
    struct imap_conn *c = &s->conn;
    struct imap_limits lim = {imapd_params.max_line, imapd_params.max_line,
                              imapd_params.message_limit};
    struct imap_frame f;

    if (s->skip_line)
        return imap_session_skip(s);
    if (c->in.len == 0)
        return false;
    switch (imap_frame_scan(c->in.data, c->in.len, &lim, &f)) {
    case IMAP_FRAME_MORE:
        return false;
    case IMAP_FRAME_CONTINUE:
        if (f.cont_at > s->cont_acked) {
            imap_reply_raw(s, "+ OK\r\n", 6);
            s->cont_acked = f.cont_at;
        }
        return false;
    case IMAP_FRAME_TOOLONG:
        imap_session_refuse(s, c->in.data, c->in.len, "BAD",
                            "Command line too long.");
        buf_consume(&c->in, f.len);
        s->skip_line = !f.line_ended;
        s->cont_acked = 0;
        return true;
    case IMAP_FRAME_TOOBIG:
        if (f.nonsync) {
            /* RFC 7888 4: the literal is on its way; nothing to do but
             * refuse and hang up. */
            imap_session_refuse(s, c->in.data, c->in.len, "BAD",
                                "Literal too large.");
            imap_session_bye(s, "[LIMIT] Literal too large.");
            buf_reset(&c->in);
            return false;
        }
        if (f.append)
            imap_session_refuse(s, c->in.data, c->in.len, "NO",
                                "[TOOBIG] Message too large.");
        else
            imap_session_refuse(s, c->in.data, c->in.len, "BAD",
                                "Literal too large.");
        buf_consume(&c->in, f.len);
        s->cont_acked = 0;
        return true;
    case IMAP_FRAME_DONE:
        break;
    }
    s->cont_acked = 0;
    {
        /* The parser copies what it keeps into the pool. */
        imap_session_command(s, c->in.data, f.len);
        if (c->in.len >= f.len)
            buf_consume(&c->in, f.len);
    }
    return true;
}

/* A line in SASL or IDLE mode; false: need more input. */
static bool imap_session_step_line(struct imap_session *s)
{
    struct imap_conn *c = &s->conn;
    size_t line_len = 0, used = 0;
    bool ended;
    enum imap_frame_status st;
    char *line;

    if (c->in.len == 0)
        return false;
    st = imap_line_scan(c->in.data, c->in.len,
                        s->mode == IMAP_MODE_SASL ? XSASL_LINE_MAX
                                                  : imapd_params.max_line,
                        &line_len, &used, &ended);
    if (st == IMAP_FRAME_MORE)
        return false;
    if (st == IMAP_FRAME_TOOLONG) {
        buf_consume(&c->in, used);
        s->skip_line = !ended;
        if (s->mode == IMAP_MODE_SASL)
            imap_cmd_done(s, "BAD", "Response too long.");
        else
            imap_idle_done(s, "", 0);
        return true;
    }
    line = xstrndup(c->in.data, line_len);
    buf_consume(&c->in, used);
    if (s->mode == IMAP_MODE_SASL)
        imap_auth_response(s, line, line_len);
    else
        imap_idle_done(s, line, line_len);
    explicit_bzero(line, line_len);
    free(line);
    return true;
}

static void imap_session_step(struct imap_session *s)
{
    struct imap_conn *c = &s->conn;

    for (;;) {
        bool progress = false;

        if (c->eof || s->mode == IMAP_MODE_CLOSE ||
            s->mode == IMAP_MODE_STARTTLS)
            return;
        if (imap_conn_pending_out(c) > IMAP_OUT_LOW) {
            if (!imap_conn_flush(c))
                return;
            if (imap_conn_pending_out(c) > IMAP_OUT_LOW &&
                (s->mode == IMAP_MODE_BUSY ||
                 imap_conn_pending_out(c) > IMAP_OUT_HIGH))
                return; /* wait for the client to read */
        }
        switch (s->mode) {
        case IMAP_MODE_BUSY:
            if (s->resume != NULL) {
                imap_resume_fn fn = s->resume;

                s->resume = NULL;
                fn(s);
                progress = true;
            }
            break;
        case IMAP_MODE_COMMAND:
            if (s->skip_line && c->in.len > 0)
                progress = imap_session_skip(s);
            else
                progress = imap_session_step_command(s);
            break;
        case IMAP_MODE_SASL:
        case IMAP_MODE_IDLE:
            if (s->skip_line && c->in.len > 0)
                progress = imap_session_skip(s);
            else
                progress = imap_session_step_line(s);
            break;
        default:
            break;
        }
        if (!progress)
            return;
    }
}

static void imap_session_process(struct imap_session *s)
{
    struct imap_conn *c = &s->conn;

    if (s->processing)
        return;
    s->processing = true;
    imap_session_step(s);
    s->processing = false;
    if (!c->eof)
        (void)imap_conn_flush(c);
    if (c->eof || (s->mode == IMAP_MODE_CLOSE && imap_conn_pending_out(c) == 0)) {
        imap_session_free(s);
        return;
    }
    if (s->mode == IMAP_MODE_STARTTLS && imap_conn_pending_out(c) == 0) {
        char err[256];

        if (c->in.len > 0) {
            /* Plaintext after STARTTLS would be read as if protected. */
            imap_session_log(s, "data after STARTTLS: disconnecting");
            imap_session_free(s);
            return;
        }
        s->mode = IMAP_MODE_BUSY;
        if (imap_conn_start_tls(s, err, sizeof(err)) < 0) {
            imap_session_log(s, "TLS: %s", err);
            imap_session_free(s);
            return;
        }
        return; /* imap_conn drives the handshake */
    }
    /* A command still running (FETCH) reuses its output buffer. */
    if (s->mode != IMAP_MODE_BUSY)
        imap_conn_trim(c);
    imap_conn_update(s);
}

/* ------------------------------------------------------------ updates */

void imap_session_mailbox_gone(struct imap_session *s)
{
    imap_session_log(s, "selected mailbox was deleted or renamed");
    imap_session_bye(s, "Selected mailbox was deleted, have to disconnect.");
}

void imap_session_sync(struct imap_session *s, bool expunge)
{
    struct imap_sync sy;
    char err[512];
    struct buf b = BUF_INIT;
    int r;

    if (s->mb == NULL)
        return;
    memset(&sy, 0, sizeof(sy));
    r = imap_mailbox_sync(s->mb, expunge ? IMAP_SYNC_EXPUNGE : 0, &sy, err,
                          sizeof(err));
    if (r == IMAP_STORE_GONE) {
        imap_sync_free(&sy);
        imap_session_mailbox_gone(s);
        return;
    }
    if (r < 0) {
        imap_session_log(s, "mailbox sync: %s", err);
        return;
    }
    for (size_t i = 0; i < sy.n_expunged; i++)
        buf_printf(&b, "* %u EXPUNGE\r\n", sy.expunged_seqs[i]);
    if (sy.keywords_changed) {
        imap_reply_flags_lists(s, &b);
    }
    if (sy.exists_changed)
        buf_printf(&b, "* %u EXISTS\r\n", imap_mailbox_count(s->mb));
    if (sy.exists_changed || sy.recent_changed)
        buf_printf(&b, "* %u RECENT\r\n", imap_mailbox_recent(s->mb));
    for (size_t i = 0; i < sy.n_changed; i++) {
        const struct imap_msg *m = imap_mailbox_msg(s->mb, sy.changed_seqs[i]);

        if (m == NULL)
            continue;
        buf_printf(&b, "* %u FETCH (", sy.changed_seqs[i]);
        if (s->uid_cmd)
            buf_printf(&b, "UID %u ", m->uid);
        buf_puts(&b, "FLAGS ");
        imap_reply_flags(s->mb, m, &b);
        if (s->enabled_condstore)
            buf_printf(&b, " MODSEQ (%llu)", (unsigned long long)m->modseq);
        buf_puts(&b, ")\r\n");
    }
    if (b.len > 0)
        imap_reply_raw(s, b.data, b.len);
    buf_free(&b);
    imap_sync_free(&sy);
}

static bool imap_trim_due; /* memory was freed since the last trim */

void imap_session_hibernate(struct imap_session *s)
{
    if (s->mb != NULL && !imap_mailbox_hibernating(s->mb)) {
        imap_mailbox_hibernate(s->mb);
        imap_trim_due = true;
    }
}

void imap_session_hibernate_idle(time_t now)
{
    struct imap_session *s;

    LIST_FOREACH(s, &imap_sessions, entries) {
        if (s->mb == NULL || imap_mailbox_hibernating(s->mb))
            continue;
        if (s->mode == IMAP_MODE_IDLE ||
            (s->mode == IMAP_MODE_COMMAND && s->conn.in.len == 0 &&
             now - s->last_active >= IMAP_HIBERNATE_SECS))
            imap_session_hibernate(s);
    }
    /* Closed environments and ended commands leave holes in the heap
     * that glibc keeps resident; once a tick at most. */
    if (imap_trim_due) {
        imap_trim_due = false;
        malloc_trim(0);
    }
}

void imap_session_unselect(struct imap_session *s)
{
    if (s->idle_watching)
        imap_notify_unwatch(s);
    if (s->mb != NULL)
        imap_mailbox_close(s->mb);
    s->mb = NULL;
    if (s->state == IMAP_STATE_SELECTED)
        s->state = IMAP_STATE_AUTH;
}
