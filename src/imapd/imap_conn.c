/*
 * imap_conn - the bytes of one IMAP client on a non-blocking socket, in
 * plaintext or TLS (util/tls.h's event-driven calls), driven by one
 * libevent event per connection.
 *
 * Input is read only while the session wants it (imap_session decides:
 * not while a command runs, not past a bounded amount), so a client that
 * pipelines without end fills its socket buffer, not our memory.
 * Output is appended by the reply functions and sent as the socket
 * takes it; a command that produces much (FETCH) suspends above
 * IMAP_OUT_HIGH and resumes below IMAP_OUT_LOW, so a slow reader costs
 * a bounded buffer and never blocks other sessions.  Empty buffers give
 * their memory back (imap_conn_trim), so an idle session holds none.
 *
 * Errors (EOF, reset, TLS failure) mark the connection eof and tell the
 * session, which frees it; nothing here logs client data.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "imapd/imapd.h"
#include "util/log.h"
#include "util/sock.h"
#include "util/tls.h"

static void imap_conn_event(evutil_socket_t fd, short what, void *arg);

void imap_conn_init(struct imap_conn *c, int fd, struct imap_session *s)
{
    int one = 1;

    memset(c, 0, sizeof(*c));
    c->fd = fd;
    (void)sock_set_nonblock(fd, true);
    /*
     * Responses are queued whole and sent in one go, so Nagle has
     * nothing to coalesce; it would only hold back the last short
     * segment of a response (the tagged OK after a large FETCH) until
     * the client's delayed ACK, up to 40 ms.  Fails harmlessly on a
     * non-TCP socket.
     */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->ev = event_new(imapd_base, fd, 0, imap_conn_event, s);
    if (c->ev == NULL)
        log_fatal("cannot create an event");
}

void imap_conn_free(struct imap_conn *c)
{
    if (c->ev != NULL)
        event_free(c->ev);
    c->ev = NULL;
    if (c->tls != NULL)
        tls_conn_free(c->tls);
    c->tls = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    buf_free(&c->in);
    buf_free(&c->out);
}

size_t imap_conn_pending_out(const struct imap_conn *c)
{
    return c->out.len - c->out_off;
}

void imap_conn_trim(struct imap_conn *c)
{
    if (c->in.len == 0 && c->in.cap > IMAP_BUF_KEEP)
        buf_free(&c->in);
    if (c->out.len == c->out_off) {
        c->out_off = 0;
        if (c->out.cap > IMAP_BUF_KEEP)
            buf_free(&c->out);
        else
            buf_reset(&c->out);
    }
}

/* What the session wants now, as event flags. */
static short imap_conn_wanted(struct imap_session *s)
{
    struct imap_conn *c = &s->conn;
    short ev = 0;

    if (c->eof)
        return 0;
    if (c->state == IMAP_CONN_HANDSHAKE)
        return c->tls_read_wants_write ? EV_WRITE : EV_READ;
    /*
     * A command suspended for the output to drain waits for EV_WRITE;
     * the output may have drained completely by the time we get here
     * (the client read it all between two flushes), and then only an
     * EV_WRITE, at once, brings the command back.
     */
    if (imap_conn_pending_out(c) > 0 ||
        (s->mode == IMAP_MODE_BUSY && s->resume != NULL))
        ev |= EV_WRITE;
    if (c->tls_read_wants_write)
        ev |= EV_WRITE;
    switch (s->mode) {
    case IMAP_MODE_COMMAND:
    case IMAP_MODE_SASL:
    case IMAP_MODE_IDLE:
        /* Bounded: one command line plus its literals at most. */
        if (c->in.len <
            imapd_params.max_line + imapd_params.message_limit + 2)
            ev |= EV_READ;
        break;
    default:
        break;
    }
    return ev;
}

void imap_conn_update(struct imap_session *s)
{
    struct imap_conn *c = &s->conn;
    short want = imap_conn_wanted(s);
    long long tmo = s->state == IMAP_STATE_NOTAUTH ? imapd_params.login_timeout
                                                   : imapd_params.timeout;
    struct timeval tv = {(time_t)tmo, 0};

    if (c->ev == NULL)
        return;
    if (want != c->ev_flags || !event_pending(c->ev, EV_READ | EV_WRITE, NULL)) {
        event_del(c->ev);
        c->ev_flags = want;
        if (want == 0)
            return;
        event_assign(c->ev, imapd_base, c->fd, want | EV_PERSIST,
                     imap_conn_event, s);
        /* Write stalls time out too: a client that never reads is dropped. */
        event_add(c->ev, &tv);
    }
    /* Bytes OpenSSL already decrypted will not make the socket readable. */
    if ((want & EV_READ) && c->state == IMAP_CONN_TLS &&
        tls_conn_pending(c->tls) > 0)
        event_active(c->ev, EV_READ, 1);
}

static ssize_t imap_conn_raw_read(struct imap_conn *c, void *buf, size_t len)
{
    if (c->state == IMAP_CONN_TLS) {
        bool want_write = false;
        ssize_t n = tls_conn_read(c->tls, buf, len, &want_write);

        c->tls_read_wants_write = n < 0 && errno == EAGAIN && want_write;
        return n;
    }
    return read(c->fd, buf, len);
}

bool imap_conn_flush(struct imap_conn *c)
{
    while (imap_conn_pending_out(c) > 0 && !c->eof) {
        const char *p = c->out.data + c->out_off;
        size_t len = imap_conn_pending_out(c);
        ssize_t n;

        if (c->state == IMAP_CONN_TLS) {
            bool want_write = true;

            n = tls_conn_write(c->tls, p, len, &want_write);
        } else if (c->state == IMAP_CONN_PLAIN) {
            n = send(c->fd, p, len, MSG_NOSIGNAL);
        } else {
            return true; /* handshake first */
        }
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
                      errno == EINTR))
            return true;
        c->eof = true;
        return false;
    }
    if (imap_conn_pending_out(c) == 0) {
        c->out_off = 0;
        buf_reset(&c->out);
    } else if (c->out_off >= IMAP_OUT_LOW &&
               c->out_off >= imap_conn_pending_out(c)) {
        /* A command appending while the client reads slowly would
         * otherwise grow the buffer by all it ever sent. */
        buf_consume(&c->out, c->out_off);
        c->out_off = 0;
    }
    return !c->eof;
}

/* Read what there is; false on EOF/error. */
static bool imap_conn_fill(struct imap_session *s)
{
    struct imap_conn *c = &s->conn;

    for (int rounds = 0; rounds < 4; rounds++) {
        ssize_t n;

        buf_reserve(&c->in, IMAP_READ_CHUNK);
        n = imap_conn_raw_read(c, c->in.data + c->in.len, IMAP_READ_CHUNK);
        if (n > 0) {
            c->in.len += (size_t)n;
            c->in.data[c->in.len] = 0;
            if ((size_t)n < IMAP_READ_CHUNK &&
                (c->state != IMAP_CONN_TLS || tls_conn_pending(c->tls) == 0))
                return true;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
                      errno == EINTR))
            return true;
        c->eof = true;
        return false;
    }
    return true;
}

static void imap_conn_handshake(struct imap_session *s)
{
    struct imap_conn *c = &s->conn;
    bool want_write = false;
    char err[256];
    int r = tls_conn_handshake(c->tls, &want_write, err, sizeof(err));

    if (r == 0) {
        c->tls_read_wants_write = want_write;
        imap_conn_update(s);
        return;
    }
    c->tls_read_wants_write = false;
    if (r < 0) {
        c->eof = true;
        imap_session_on_tls(s, false, err);
        return;
    }
    c->state = IMAP_CONN_TLS;
    imap_session_on_tls(s, true, NULL);
}

int imap_conn_start_tls(struct imap_session *s, char *err, size_t errlen)
{
    struct imap_conn *c = &s->conn;

    if ((c->tls = tls_conn_new(imapd_tls, c->fd, err, errlen)) == NULL)
        return -1;
    c->state = IMAP_CONN_HANDSHAKE;
    c->tls_read_wants_write = false;
    /* The client speaks first: the handshake starts at its ClientHello,
     * from the event loop, so nothing here can free s under the caller. */
    imap_conn_update(s);
    return 0;
}

static void imap_conn_event(evutil_socket_t fd, short what, void *arg)
{
    struct imap_session *s = arg;
    struct imap_conn *c = &s->conn;

    (void)fd;
    if (what & EV_TIMEOUT) {
        imap_session_log(s, "timeout: disconnecting");
        if (c->state != IMAP_CONN_HANDSHAKE) {
            /* Best effort: a client that reads gets told why. */
            buf_puts(&c->out, "* BYE Disconnected for inactivity.\r\n");
            (void)imap_conn_flush(c);
        }
        c->eof = true;
        imap_session_on_error(s);
        return;
    }
    if (c->state == IMAP_CONN_HANDSHAKE) {
        imap_conn_handshake(s);
        return;
    }
    if (what & EV_WRITE) {
        if (!imap_conn_flush(c)) {
            imap_session_on_error(s);
            return;
        }
        if (c->tls_read_wants_write)
            what |= EV_READ;
        if (imap_conn_pending_out(c) <= IMAP_OUT_LOW) {
            imap_session_on_drain(s);
            return; /* the session re-arms the event */
        }
    }
    if (what & EV_READ) {
        if (!imap_conn_fill(s)) {
            imap_session_on_error(s);
            return;
        }
        imap_session_on_input(s);
        return;
    }
    imap_conn_update(s);
}
