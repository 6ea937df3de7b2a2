/*
 * anvil_conn - one client connection of the anvil service, and the
 * requests it carries (protocol in global/mail_proto.h).
 *
 * A client (an smtpd process) keeps its connection and sends one frame
 * per event.  Frames are parsed with attr_scan_frame() out of the
 * bufferevent's input, bounded by ANVIL_FRAME_MAX per frame and
 * ANVIL_INPUT_MAX buffered; a frame that breaks the grammar ends the
 * connection.  A request that makes sense in form but not in content
 * (unknown request, bad ident) gets status=1 and the connection goes on.
 * A client that sends without reading its answers is paused once
 * ANVIL_OUTPUT_MAX bytes of answers wait for it.
 *
 * Each connection remembers the connections it reported open, per ident
 * (its "holds").  When it hangs up -- an smtpd that exits or crashes --
 * every connection it still holds is counted as ended, so a dead smtpd
 * cannot leave a client locked out by the count limit.  A disconnect for
 * an ident the connection holds nothing of is ignored for the same
 * reason: it cannot take away another smtpd's connections.
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

#include "anvil/anvil.h"
#include "global/attr_scan.h"
#include "util/htable.h"
#include "util/log.h"
#include "util/mem.h"

/* ------------------------------------------------------------ holds */

struct anvil_holds {
    struct htable *idents; /* ident -> int * (connections held) */
};

struct anvil_holds *anvil_holds_new(void)
{
    struct anvil_holds *h = xcalloc(1, sizeof(*h));

    h->idents = htable_new(4);
    return h;
}

struct anvil_release_ctx {
    struct anvil_table *table;
    long long now;
};

static int anvil_holds_release(const char *ident, void *value, void *arg)
{
    struct anvil_release_ctx *ctx = arg;
    int *held = value;

    for (; *held > 0; (*held)--)
        anvil_table_disconnect(ctx->table, ident, ctx->now);
    return 0;
}

void anvil_holds_free(struct anvil_holds *h, struct anvil_table *table,
                      long long now)
{
    struct anvil_release_ctx ctx = {table, now};

    if (h == NULL)
        return;
    if (table != NULL)
        htable_walk(h->idents, anvil_holds_release, &ctx);
    htable_free(h->idents, free);
    free(h);
}

/* ------------------------------------------------------------ requests */

static bool anvil_ident_ok(const struct attr *a)
{
    if (a == NULL || a->len == 0 || a->len > ANVIL_IDENT_MAX)
        return false;
    for (size_t i = 0; i < a->len; i++)
        if ((unsigned char)a->value[i] <= ' ' ||
            (unsigned char)a->value[i] >= 0x7f)
            return false;
    return true;
}

static void anvil_fail(struct buf *reply, const char *reason)
{
    attr_put_str(reply, "status", "1");
    attr_put_str(reply, "reason", reason);
    attr_end(reply);
}

void anvil_request(struct anvil_table *table, struct anvil_holds *holds,
                   const struct attr_list *req, long long now,
                   struct buf *reply)
{
    const char *request = attr_get(req, "request");
    const struct attr *id = attr_find(req, "ident");
    struct anvil_counts c;
    const char *ident;

    if (request == NULL) {
        anvil_fail(reply, "no request attribute");
        return;
    }
    if (!anvil_ident_ok(id)) {
        anvil_fail(reply, "missing or malformed ident");
        return;
    }
    ident = id->value;
    if (strcmp(request, "connect") == 0) {
        int *held = htable_get(holds->idents, ident);

        if (held == NULL && htable_count(holds->idents) >= ANVIL_HOLD_MAX) {
            anvil_fail(reply, "too many idents on one connection");
            return;
        }
        if (anvil_table_connect(table, ident, now, &c) < 0) {
            anvil_fail(reply, "table full");
            return;
        }
        if (held == NULL) {
            held = xcalloc(1, sizeof(*held));
            htable_put(holds->idents, ident, held);
        }
        (*held)++;
        attr_put_str(reply, "status", "0");
        attr_put_int(reply, "count", c.count);
        attr_put_int(reply, "rate", c.rate);
    } else if (strcmp(request, "disconnect") == 0) {
        int *held = htable_get(holds->idents, ident);

        if (held != NULL) {
            anvil_table_disconnect(table, ident, now);
            if (--(*held) == 0)
                free(htable_del(holds->idents, ident));
        }
        attr_put_str(reply, "status", "0");
    } else if (strcmp(request, "message") == 0 ||
               strcmp(request, "recipient") == 0) {
        bool msg = request[0] == 'm';
        int r = msg ? anvil_table_message(table, ident, now, &c)
                    : anvil_table_recipient(table, ident, now, &c);

        if (r < 0) {
            anvil_fail(reply, "table full");
            return;
        }
        attr_put_str(reply, "status", "0");
        attr_put_int(reply, "rate", msg ? c.message : c.recipient);
    } else if (strcmp(request, "lookup") == 0) {
        anvil_table_lookup(table, ident, now, &c);
        attr_put_str(reply, "status", "0");
        attr_put_int(reply, "count", c.count);
        attr_put_int(reply, "rate", c.rate);
        attr_put_int(reply, "message", c.message);
        attr_put_int(reply, "recipient", c.recipient);
    } else {
        anvil_fail(reply, "unknown request");
        return;
    }
    attr_end(reply);
}

/* ------------------------------------------------------------ connections */

struct anvil_conn {
    struct bufferevent *bev;
    struct anvil_table *table;
    struct anvil_holds *holds;
    LIST_ENTRY(anvil_conn) entries;
};

LIST_HEAD(anvil_conn_list, anvil_conn);
static struct anvil_conn_list anvil_conns = LIST_HEAD_INITIALIZER(anvil_conns);
static size_t anvil_nconns;

size_t anvil_conn_count(void)
{
    return anvil_nconns;
}

static void anvil_conn_free(struct anvil_conn *c)
{
    bufferevent_free(c->bev);
    anvil_holds_free(c->holds, c->table, anvil_now());
    LIST_REMOVE(c, entries);
    anvil_nconns--;
    free(c);
}

void anvil_conn_free_all(void)
{
    while (!LIST_EMPTY(&anvil_conns))
        anvil_conn_free(LIST_FIRST(&anvil_conns));
}

static void anvil_conn_read(struct bufferevent *bev, void *arg)
{
    struct anvil_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer *out = bufferevent_get_output(bev);
    struct attr_list req = ATTR_LIST_INIT;
    struct buf reply = BUF_INIT;

    while (evbuffer_get_length(in) > 0) {
        size_t len = evbuffer_get_length(in), consumed = 0;
        const char *data = (const char *)evbuffer_pullup(in, -1);
        const char *err = NULL;
        int r;

        if (evbuffer_get_length(out) >= ANVIL_OUTPUT_MAX) {
            /* Resumed by anvil_conn_write once the client has read. */
            bufferevent_disable(bev, EV_READ);
            break;
        }
        r = attr_scan_frame(data, len, ANVIL_FRAME_MAX, &req, &consumed, &err);
        if (r == 0 && len < ANVIL_INPUT_MAX)
            break; /* wait for the rest */
        if (r <= 0) {
            log_warn("client sent a malformed request: %s; closing",
                     r < 0 && err ? err : "frame too long");
            attr_list_free(&req);
            buf_free(&reply);
            anvil_conn_free(c);
            return;
        }
        evbuffer_drain(in, consumed);
        buf_reset(&reply);
        anvil_request(c->table, c->holds, &req, anvil_now(), &reply);
        bufferevent_write(bev, reply.data, reply.len);
    }
    attr_list_free(&req);
    buf_free(&reply);
}

static void anvil_conn_write(struct bufferevent *bev, void *arg)
{
    /* The output drained below the low watermark (empty). */
    if (!(bufferevent_get_enabled(bev) & EV_READ)) {
        bufferevent_enable(bev, EV_READ);
        anvil_conn_read(bev, arg);
    }
}

static void anvil_conn_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & BEV_EVENT_TIMEOUT)
        log_warn("client does not read its answers: closing");
    anvil_conn_free(arg);
}

void anvil_conn_accept(int fd, struct anvil_table *table)
{
    struct anvil_conn *c;
    /* Only writes time out: an idle client keeps its held connections. */
    struct timeval wtmo = {60, 0};

    if (anvil_nconns >= ANVIL_CONN_MAX) {
        log_warn("%d clients at once: refusing another", ANVIL_CONN_MAX);
        close(fd);
        return;
    }
    c = xcalloc(1, sizeof(*c));
    c->bev = bufferevent_socket_new(anvil_base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        log_warn("cannot set up a client connection");
        close(fd);
        free(c);
        return;
    }
    c->table = table;
    c->holds = anvil_holds_new();
    LIST_INSERT_HEAD(&anvil_conns, c, entries);
    anvil_nconns++;
    bufferevent_setcb(c->bev, anvil_conn_read, anvil_conn_write,
                      anvil_conn_event, c);
    bufferevent_set_timeouts(c->bev, NULL, &wtmo);
    bufferevent_setwatermark(c->bev, EV_READ, 0, ANVIL_INPUT_MAX);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}
