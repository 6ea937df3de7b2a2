/*
 * auth_conn - one client connection of the auth service.
 *
 * A client (an smtpd, pop3d or imapd process, or the resolver in smtpd
 * and local) keeps its connection and sends one request frame at a time.
 * Frames are parsed with attr_scan_frame() out of the bufferevent's input
 * and bounded (AUTH_FRAME_MAX values, AUTH_INPUT_MAX buffered); a frame
 * that breaks the grammar ends the connection, since the peer is broken.
 * While a request is in progress reading pauses, so a client that
 * pipelines requests gets them answered in order and cannot make auth
 * buffer without bound.
 *
 * An answer may be held back (the failure delay) by a timer on the
 * connection; a hash check may be running in a worker thread.  If the
 * client goes away meanwhile, the connection is closed at once but its
 * memory stays until the hash check returns.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "auth/auth.h"
#include "global/attr_scan.h"
#include "util/log.h"
#include "util/mem.h"

struct auth_conn {
    struct bufferevent *bev; /* NULL once the client is gone */
    struct event *timer;     /* holds back an answer */
    struct buf reply;        /* the answer being held back */
    struct timespec arrived; /* when the current request arrived */
    bool busy;               /* a request is in progress */
    bool hashing;            /* a worker thread has a job for it */
    bool reading;            /* inside auth_conn_read() */
    LIST_ENTRY(auth_conn) entries;
};

LIST_HEAD(auth_conn_list, auth_conn);
static struct auth_conn_list auth_conns = LIST_HEAD_INITIALIZER(auth_conns);
static size_t auth_nconns;

size_t auth_conn_count(void)
{
    return auth_nconns;
}

static void auth_conn_free(struct auth_conn *c)
{
    if (c->bev != NULL)
        bufferevent_free(c->bev);
    if (c->timer != NULL)
        event_free(c->timer);
    explicit_bzero(c->reply.data, c->reply.len);
    buf_free(&c->reply);
    LIST_REMOVE(c, entries);
    auth_nconns--;
    free(c);
}

/* The client is gone or broken: close now, free when no thread holds c. */
static void auth_conn_drop(struct auth_conn *c)
{
    if (c->bev != NULL) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (!c->hashing)
        auth_conn_free(c);
}

void auth_conn_free_all(void)
{
    while (!LIST_EMPTY(&auth_conns))
        auth_conn_free(LIST_FIRST(&auth_conns));
}

static long long auth_conn_elapsed_ms(const struct auth_conn *c)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)(now.tv_sec - c->arrived.tv_sec) * 1000 +
           (now.tv_nsec - c->arrived.tv_nsec) / 1000000;
}

static void auth_conn_read(struct bufferevent *bev, void *arg);

/* Send the held answer and take the next request. */
static void auth_conn_send(struct auth_conn *c)
{
    bufferevent_write(c->bev, c->reply.data, c->reply.len);
    explicit_bzero(c->reply.data, c->reply.len);
    buf_reset(&c->reply);
    c->busy = false;
    bufferevent_enable(c->bev, EV_READ);
    /*
     * A pipelined request may already be waiting in the input buffer.
     * Inside auth_conn_read() its loop takes it; calling it again there
     * could free c under the caller's feet.
     */
    if (!c->reading)
        auth_conn_read(c->bev, c);
}

static void auth_conn_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    auth_conn_send(arg);
}

void auth_conn_reply(struct auth_conn *c, struct buf *frame, long long delay_ms)
{
    long long wait = delay_ms - auth_conn_elapsed_ms(c);

    buf_reset(&c->reply);
    buf_append(&c->reply, frame->data, frame->len);
    if (c->bev == NULL)
        return; /* gone while its hash ran; auth_conn_hash_done frees it */
    if (wait <= 0) {
        auth_conn_send(c);
        return;
    }
    {
        struct timeval tv = {(time_t)(wait / 1000),
                             (suseconds_t)(wait % 1000) * 1000};

        evtimer_add(c->timer, &tv);
    }
}

void auth_conn_hash_start(struct auth_conn *c)
{
    c->hashing = true;
}

bool auth_conn_hash_done(struct auth_conn *c)
{
    c->hashing = false;
    if (c->bev == NULL) {
        auth_conn_free(c);
        return false;
    }
    return true;
}

static void auth_conn_read(struct bufferevent *bev, void *arg)
{
    struct auth_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct attr_list req = ATTR_LIST_INIT;

    c->reading = true;
    while (!c->busy && evbuffer_get_length(in) > 0) {
        size_t len = evbuffer_get_length(in), consumed = 0;
        const char *data = (const char *)evbuffer_pullup(in, -1);
        const char *err = NULL;
        int r =
            attr_scan_frame(data, len, AUTH_FRAME_MAX, &req, &consumed, &err);

        if (r == 0 && len < AUTH_INPUT_MAX)
            break; /* wait for the rest */
        if (r <= 0) {
            log_warn("client sent a malformed request: %s; closing",
                     r < 0 && err ? err : "frame too long");
            attr_list_free(&req);
            c->reading = false;
            auth_conn_drop(c);
            return;
        }
        /* The frame may hold a password: wipe it from the input buffer. */
        explicit_bzero((char *)data, consumed);
        evbuffer_drain(in, consumed);
        c->busy = true;
        bufferevent_disable(bev, EV_READ);
        clock_gettime(CLOCK_MONOTONIC, &c->arrived);
        auth_request(c, &req);
        for (size_t i = 0; i < req.n; i++)
            explicit_bzero(req.v[i].value, req.v[i].len);
    }
    c->reading = false;
    attr_list_free(&req);
}

static void auth_conn_event(struct bufferevent *bev, short what, void *arg)
{
    struct auth_conn *c = arg;

    (void)bev;
    if (what & BEV_EVENT_TIMEOUT)
        log_debug("client idle too long: closing");
    auth_conn_drop(c);
}

void auth_conn_accept(int fd)
{
    struct timeval tmo = {(time_t)auth_params.ipc_timeout, 0};
    struct auth_conn *c;

    if (auth_nconns >= AUTH_CONN_MAX) {
        log_warn("%d clients at once: refusing another", AUTH_CONN_MAX);
        close(fd);
        return;
    }
    c = xcalloc(1, sizeof(*c));
    c->bev = bufferevent_socket_new(auth_base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->timer = evtimer_new(auth_base, auth_conn_timer, c);
    if (c->bev == NULL || c->timer == NULL) {
        log_warn("cannot set up a client connection");
        if (c->bev != NULL)
            bufferevent_free(c->bev);
        else
            close(fd);
        if (c->timer != NULL)
            event_free(c->timer);
        free(c);
        return;
    }
    LIST_INSERT_HEAD(&auth_conns, c, entries);
    auth_nconns++;
    bufferevent_setcb(c->bev, auth_conn_read, NULL, auth_conn_event, c);
    bufferevent_set_timeouts(c->bev, &tmo, &tmo);
    bufferevent_setwatermark(c->bev, EV_READ, 0, AUTH_INPUT_MAX);
    bufferevent_enable(c->bev, EV_READ);
}
