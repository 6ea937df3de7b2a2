/*
 * map_socketmap - socketmap:inet:host:port:name and
 * socketmap:unix:/path:name, Postfix's socketmap_table(5) client (the
 * Sendmail socket map protocol).
 *
 * One request and one reply per lookup, each a netstring
 * ("<length>:<bytes>,"): the request is "name key", the reply one of
 *     OK <value>          found
 *     NOTFOUND            not found (a trailing blank is allowed)
 *     TEMP <reason>, TIMEOUT <reason>, PERM <reason>
 *                         the server failed: MAP_ERROR with its reason
 * Anything else, a reply longer than SOCKETMAP_REPLY_MAX bytes (Postfix's
 * limit), a NUL in the value, a timeout or a broken connection is
 * MAP_ERROR too, and the connection is closed.  The key is sent as given
 * (pattern type: no lowercasing).
 *
 * The server is not trusted: every read is bounded in size and by
 * socketmap_timeout per wait (connect, write, read).  One connection per
 * table is kept open across lookups; when a reused connection turns out
 * to have been closed by the server (EOF or reset before any reply byte),
 * the lookup is retried once on a fresh connection, since servers close
 * idle clients.  The table is opened without connecting, so a server that
 * is down delays nothing until the first lookup, which then fails
 * (MAP_ERROR: the caller defers).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "global/map_impl.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/sock.h"
#include "util/stream.h"

#define SOCKETMAP_REPLY_MAX 100000
#define SOCKETMAP_NAME_MAX 255
#define SOCKETMAP_DEFAULT_TIMEOUT_MS (100 * 1000) /* Postfix's */

int map_socketmap_timeout_ms = SOCKETMAP_DEFAULT_TIMEOUT_MS;

struct socketmap {
    char *endpoint; /* "inet:host:port" or "unix:/path", for messages */
    char *host;     /* inet */
    char *port;     /* inet */
    char *path;     /* unix */
    char *name;     /* the map name sent in each request */
    struct stream *s;
};

static void socketmap_disconnect(struct socketmap *sm)
{
    stream_close(sm->s);
    sm->s = NULL;
}

static void socketmap_free(struct socketmap *sm)
{
    socketmap_disconnect(sm);
    free(sm->endpoint);
    free(sm->host);
    free(sm->port);
    free(sm->path);
    free(sm->name);
    free(sm);
}

int map_socketmap_open(struct map *m, const char *name, char *err,
                       size_t errlen)
{
    const char *colon = strrchr(name, ':');
    struct socketmap *sm;

    if (colon == NULL || colon[1] == 0) {
        snprintf(err, errlen,
                 "table '%s': expected socketmap:inet:host:port:name or "
                 "socketmap:unix:/path:name",
                 m->spec);
        return -1;
    }
    if (strlen(colon + 1) > SOCKETMAP_NAME_MAX ||
        strpbrk(colon + 1, " \t\r\n") != NULL) {
        snprintf(err, errlen, "table '%s': bad socketmap name", m->spec);
        return -1;
    }
    sm = xcalloc(1, sizeof(*sm));
    sm->name = xstrdup(colon + 1);
    sm->endpoint = xstrndup(name, (size_t)(colon - name));
    if (strncmp(sm->endpoint, "unix:", 5) == 0 && sm->endpoint[5] != 0) {
        sm->path = xstrdup(sm->endpoint + 5);
    } else if (strncmp(sm->endpoint, "inet:", 5) == 0) {
        const char *hp = sm->endpoint + 5, *pc = strrchr(hp, ':');
        size_t hl;

        if (pc == NULL || pc == hp || pc[1] == 0) {
            snprintf(err, errlen, "table '%s': expected inet:host:port",
                     m->spec);
            socketmap_free(sm);
            return -1;
        }
        hl = (size_t)(pc - hp);
        if (hl >= 2 && hp[0] == '[' && hp[hl - 1] == ']')
            sm->host = xstrndup(hp + 1, hl - 2);
        else
            sm->host = xstrndup(hp, hl);
        sm->port = xstrdup(pc + 1);
    } else {
        snprintf(err, errlen,
                 "table '%s': the endpoint must be inet:host:port or "
                 "unix:/path",
                 m->spec);
        socketmap_free(sm);
        return -1;
    }
    m->ctx = sm;
    return 0;
}

void map_socketmap_close(struct map *m)
{
    socketmap_free(m->ctx);
}

static int socketmap_connect(struct socketmap *sm, char *err, size_t errlen)
{
    char sub[256];
    int fd;

    if (sm->path != NULL)
        fd = sock_connect_unix(sm->path, map_socketmap_timeout_ms, sub,
                               sizeof(sub));
    else
        fd = sock_connect_inet(sm->host, sm->port, map_socketmap_timeout_ms,
                               sub, sizeof(sub));
    if (fd < 0) {
        snprintf(err, errlen, "socketmap %s: %s", sm->endpoint, sub);
        return -1;
    }
    sm->s = stream_open(fd);
    stream_set_timeout(sm->s, map_socketmap_timeout_ms);
    return 0;
}

/*
 * Read one netstring into out.  Returns 0, or -1 with err set; *nothing
 * tells whether the failure came before the first byte (a stale
 * connection the caller may retry).
 */
static int netstring_read(struct stream *s, struct buf *out, bool *nothing,
                          char *err, size_t errlen)
{
    struct buf c = BUF_INIT;
    size_t len = 0, digits = 0;
    enum stream_status st;

    *nothing = true;
    for (;;) {
        buf_reset(&c);
        if ((st = stream_read_exact(s, &c, 1)) != STREAM_OK)
            goto io;
        *nothing = false;
        if (c.data[0] == ':' && digits > 0)
            break;
        if (c.data[0] < '0' || c.data[0] > '9' || ++digits > 6) {
            snprintf(err, errlen, "malformed netstring length");
            buf_free(&c);
            return -1;
        }
        len = len * 10 + (size_t)(c.data[0] - '0');
    }
    if (len > SOCKETMAP_REPLY_MAX) {
        snprintf(err, errlen, "reply longer than %d bytes",
                 SOCKETMAP_REPLY_MAX);
        buf_free(&c);
        return -1;
    }
    buf_reset(out);
    if ((st = stream_read_exact(s, out, len)) != STREAM_OK)
        goto io;
    buf_reset(&c);
    if ((st = stream_read_exact(s, &c, 1)) != STREAM_OK)
        goto io;
    if (c.data[0] != ',') {
        snprintf(err, errlen, "netstring without its ','");
        buf_free(&c);
        return -1;
    }
    buf_free(&c);
    return 0;

io:
    if (st == STREAM_TIMEOUT)
        snprintf(err, errlen, "no reply within socketmap_timeout (%d s)",
                 map_socketmap_timeout_ms / 1000);
    else
        snprintf(err, errlen, "%s",
                 st == STREAM_EOF ? "connection closed by server"
                                  : stream_error(s));
    buf_free(&c);
    return -1;
}

/* Does the reply start with word followed by a blank or its end? */
static bool reply_is(const struct buf *r, const char *word, const char **rest)
{
    size_t n = strlen(word);

    if (r->len < n || memcmp(r->data, word, n) != 0)
        return false;
    if (r->len == n) {
        *rest = "";
        return true;
    }
    if (r->data[n] != ' ')
        return false;
    *rest = r->data + n + 1;
    return true;
}

enum map_result map_socketmap_lookup(struct map *m, const char *key,
                                     struct buf *result, char *err,
                                     size_t errlen)
{
    struct socketmap *sm = m->ctx;
    struct buf reply = BUF_INIT;
    size_t klen = strlen(key), qlen = strlen(sm->name) + 1 + klen;
    enum map_result res = MAP_ERROR;
    char sub[256], safe[200];
    const char *rest;

    for (int attempt = 0;; attempt++) {
        bool fresh = sm->s == NULL, nothing = false;
        enum stream_status st;

        if (fresh && socketmap_connect(sm, err, errlen) < 0)
            goto out;
        stream_printf(sm->s, "%zu:%s ", qlen, sm->name);
        stream_write(sm->s, key, klen);
        stream_write(sm->s, ",", 1);
        if ((st = stream_flush(sm->s)) != STREAM_OK) {
            snprintf(sub, sizeof(sub), "%s", stream_error(sm->s));
            nothing = st != STREAM_TIMEOUT;
        } else if (netstring_read(sm->s, &reply, &nothing, sub, sizeof(sub)) ==
                   0) {
            break;
        } else if (stream_status(sm->s) == STREAM_TIMEOUT) {
            nothing = false;
        }
        socketmap_disconnect(sm);
        if (fresh || attempt > 0 || !nothing) {
            snprintf(err, errlen, "socketmap %s: %s", sm->endpoint, sub);
            goto out;
        }
        /* The server closed the idle connection: once more, afresh. */
    }
    if (memchr(reply.data, 0, reply.len) != NULL) {
        snprintf(err, errlen, "socketmap %s: NUL byte in reply", sm->endpoint);
        socketmap_disconnect(sm);
    } else if (reply_is(&reply, "OK", &rest)) {
        buf_puts(result, rest);
        res = MAP_FOUND;
    } else if (reply_is(&reply, "NOTFOUND", &rest)) {
        res = MAP_NOTFOUND;
    } else if (reply_is(&reply, "TEMP", &rest) ||
               reply_is(&reply, "TIMEOUT", &rest) ||
               reply_is(&reply, "PERM", &rest)) {
        snprintf(err, errlen, "socketmap %s: server said: %s", sm->endpoint,
                 log_printable(safe, sizeof(safe), reply.data, reply.len));
    } else {
        snprintf(err, errlen, "socketmap %s: malformed reply \"%s\"",
                 sm->endpoint,
                 log_printable(safe, sizeof(safe), reply.data, reply.len));
        socketmap_disconnect(sm);
    }
out:
    buf_free(&reply);
    return res;
}
