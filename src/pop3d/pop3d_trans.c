/*
 * pop3d_trans - the TRANSACTION state (STAT, LIST, UIDL, TOP, RETR,
 * DELE, RSET, NOOP), QUIT with the UPDATE state, and the session's
 * closing log line.
 *
 * Works on the snapshot pop3d_login took (pop3d_maildir.c).  Message
 * numbers from the client are checked against it: not a number, 0, past
 * the end, or marked deleted is -ERR.  DELE only marks; removals happen
 * at QUIT, so a dropped connection or a timeout removes nothing (RFC
 * 1939 section 6).  Message contents stream from the file to the client
 * in chunks (pop3d_xfer.c).  A read error after "+OK" cannot be told to
 * the client inside the response, so it ends the session instead of
 * sending a truncated message as if it were whole.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pop3d/pop3d.h"
#include "util/log.h"

/* Read size when sending a message. */
#define POP3D_SEND_CHUNK (64 * 1024)

/* ---------------------------------------------------------- helpers */

/* Message number argument -> index; -ERR sent when there is none. */
static bool msg_arg(struct pop3d_session *s, const char *arg, size_t *idx)
{
    unsigned long n;

    if (!pop3d_parse_number(arg, POP3D_MSGNUM_MAX, &n)) {
        pop3d_err(s, "Invalid message number: %s", arg);
        return false;
    }
    if (n == 0 || n > s->mbox.n) {
        pop3d_err(s, "There's no message %lu.", n);
        return false;
    }
    if (s->mbox.msgs[n - 1].deleted) {
        pop3d_err(s, "Message %lu is deleted.", n);
        return false;
    }
    *idx = n - 1;
    return true;
}

static bool no_args(struct pop3d_session *s, struct pop3d_command *c)
{
    if (c->nargs == 0)
        return true;
    pop3d_err(s, "%s takes no arguments.", c->keyword);
    return false;
}

/* Size of message i; a message that went away counts as empty. */
static long long msg_vsize(struct pop3d_session *s, size_t i)
{
    char err[512];
    long long v = pop3d_mbox_vsize(&s->mbox, i, err, sizeof(err));

    if (v < 0) {
        log_warn("user=<%s>: %s", s->login, err);
        s->mbox.msgs[i].vsize = v = 0;
    }
    return v;
}

static long long mbox_size(struct pop3d_session *s)
{
    long long total = 0;

    for (size_t i = 0; i < s->mbox.n; i++)
        total += msg_vsize(s, i);
    return total;
}

/* ---------------------------------------------------------- commands */

int pop3d_cmd_stat(struct pop3d_session *s, struct pop3d_command *c)
{
    long long count = 0, size = 0;

    if (!no_args(s, c))
        return -1;
    for (size_t i = 0; i < s->mbox.n; i++) {
        if (s->mbox.msgs[i].deleted)
            continue;
        count++;
        size += msg_vsize(s, i);
    }
    pop3d_ok(s, "%lld %lld", count, size);
    return 0;
}

int pop3d_cmd_list(struct pop3d_session *s, struct pop3d_command *c)
{
    size_t i;

    if (c->nargs > 1) {
        pop3d_err(s, "LIST takes at most one argument.");
        return -1;
    }
    if (c->nargs == 1) {
        if (!msg_arg(s, c->args[0], &i))
            return -1;
        pop3d_ok(s, "%zu %lld", i + 1, msg_vsize(s, i));
        return 0;
    }
    pop3d_ok(s, "%s", "");
    for (i = 0; i < s->mbox.n; i++)
        if (!s->mbox.msgs[i].deleted)
            stream_printf(s->client, "%zu %lld\r\n", i + 1, msg_vsize(s, i));
    stream_puts(s->client, ".\r\n");
    return 0;
}

int pop3d_cmd_uidl(struct pop3d_session *s, struct pop3d_command *c)
{
    size_t i;

    if (c->nargs > 1) {
        pop3d_err(s, "UIDL takes at most one argument.");
        return -1;
    }
    if (c->nargs == 1) {
        if (!msg_arg(s, c->args[0], &i))
            return -1;
        pop3d_ok(s, "%zu %s", i + 1, s->mbox.msgs[i].uidl);
        return 0;
    }
    pop3d_ok(s, "%s", "");
    for (i = 0; i < s->mbox.n; i++)
        if (!s->mbox.msgs[i].deleted)
            stream_printf(s->client, "%zu %s\r\n", i + 1, s->mbox.msgs[i].uidl);
    stream_puts(s->client, ".\r\n");
    return 0;
}

static void send_sink(void *ctx, const char *data, size_t len)
{
    stream_write(ctx, data, len);
}

/*
 * "+OK ..." and message i in transfer form, body_max body lines (-1 =
 * all).  Returns the octets sent (stuffing excluded) or -1: -ERR sent
 * (cannot open) or the session is over (read error midway).
 */
static long long send_message(struct pop3d_session *s, size_t i,
                              long long body_max)
{
    static char chunk[POP3D_SEND_CHUNK];
    struct pop3d_xfer x;
    char err[512];
    long long size = 0;
    int fd;

    if (body_max < 0 &&
        (size = pop3d_mbox_vsize(&s->mbox, i, err, sizeof(err))) < 0) {
        log_warn("user=<%s>: %s", s->login, err);
        pop3d_err(s, "[SYS/TEMP] Message %zu is not available.", i + 1);
        return -1;
    }
    if ((fd = pop3d_mbox_open(&s->mbox, i, err, sizeof(err))) < 0) {
        log_warn("user=<%s>: %s", s->login, err);
        pop3d_err(s, "[SYS/TEMP] Message %zu is not available.", i + 1);
        return -1;
    }
    if (body_max < 0)
        pop3d_ok(s, "%lld octets", size);
    else
        pop3d_ok(s, "%s", "");
    pop3d_xfer_init(&x, body_max, true, send_sink, s->client);
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            log_error("user=<%s>: read message %zu: %m", s->login, i + 1);
            close(fd);
            s->end_reason = "Mailbox read error";
            s->hangup = true;
            return -1;
        }
        if (n == 0 || !pop3d_xfer_feed(&x, chunk, (size_t)n))
            break;
        if (stream_status(s->client) != STREAM_OK)
            break; /* the client is gone; the loop notices */
    }
    close(fd);
    pop3d_xfer_finish(&x);
    stream_puts(s->client, ".\r\n");
    return x.out;
}

int pop3d_cmd_top(struct pop3d_session *s, struct pop3d_command *c)
{
    unsigned long lines;
    long long sent;
    size_t i;

    if (c->nargs != 2) {
        pop3d_err(s, "TOP takes a message number and a line count.");
        return -1;
    }
    if (!msg_arg(s, c->args[0], &i))
        return -1;
    if (!pop3d_parse_number(c->args[1], POP3D_MSGNUM_MAX, &lines)) {
        pop3d_err(s, "Invalid line count: %s", c->args[1]);
        return -1;
    }
    if ((sent = send_message(s, i, (long long)lines)) < 0)
        return -1;
    s->top_count++;
    s->top_bytes += sent;
    return 0;
}

int pop3d_cmd_retr(struct pop3d_session *s, struct pop3d_command *c)
{
    long long sent;
    size_t i;

    if (c->nargs != 1) {
        pop3d_err(s, "RETR takes a message number.");
        return -1;
    }
    if (!msg_arg(s, c->args[0], &i))
        return -1;
    if ((sent = send_message(s, i, -1)) < 0)
        return -1;
    s->mbox.msgs[i].retrieved = true;
    s->retr_count++;
    s->retr_bytes += sent;
    return 0;
}

int pop3d_cmd_dele(struct pop3d_session *s, struct pop3d_command *c)
{
    size_t i;

    if (c->nargs != 1) {
        pop3d_err(s, "DELE takes a message number.");
        return -1;
    }
    if (!msg_arg(s, c->args[0], &i))
        return -1;
    s->mbox.msgs[i].deleted = true;
    pop3d_ok(s, "Marked to be deleted.");
    return 0;
}

int pop3d_cmd_rset(struct pop3d_session *s, struct pop3d_command *c)
{
    if (!no_args(s, c))
        return -1;
    for (size_t i = 0; i < s->mbox.n; i++)
        s->mbox.msgs[i].deleted = false;
    pop3d_ok(s, "%s", "");
    return 0;
}

int pop3d_cmd_noop(struct pop3d_session *s, struct pop3d_command *c)
{
    if (!no_args(s, c))
        return -1;
    pop3d_ok(s, "%s", "");
    return 0;
}

int pop3d_cmd_quit(struct pop3d_session *s, struct pop3d_command *c)
{
    size_t failed;

    (void)c;
    s->hangup = true;
    s->end_reason = "Logged out";
    if (s->state != POP3D_TRANSACTION) {
        pop3d_ok(s, "Logging out.");
        return 0;
    }
    /* UPDATE state; the size is logged as it was before the removals. */
    s->mbox_size = mbox_size(s);
    failed = pop3d_mbox_update(&s->mbox, &s->del_count);
    if (failed > 0) {
        pop3d_err(s, "[SYS/TEMP] %zu deleted message(s) were not removed.",
                  failed);
        return 0;
    }
    pop3d_ok(s, "Logging out.");
    return 0;
}

/* ---------------------------------------------------------- log */

void pop3d_log_disconnect(struct pop3d_session *s)
{
    const char *tls = s->tls != NULL ? ", TLS" : "";

    if (s->state == POP3D_TRANSACTION) {
        if (s->mbox_size < 0)
            s->mbox_size = mbox_size(s);
        log_info("Disconnected: %s top=%lld/%lld, retr=%lld/%lld, "
                 "del=%zu/%zu, size=%lld, user=<%s>, rip=%s",
                 s->end_reason, s->top_count, s->top_bytes, s->retr_count,
                 s->retr_bytes, s->del_count, s->mbox.n, s->mbox_size, s->login,
                 s->addr);
    } else if (s->auth_attempts > 0) {
        log_info("Disconnected (auth failed, %d attempts): %s, rip=%s, "
                 "lip=%s%s",
                 s->auth_attempts, s->end_reason, s->addr, s->laddr, tls);
    } else {
        log_info("Disconnected (no auth attempts): %s, rip=%s, lip=%s%s",
                 s->end_reason, s->addr, s->laddr, tls);
    }
}
