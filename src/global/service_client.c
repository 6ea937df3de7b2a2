/*
 * service_client - the kept connection to a private service (see
 * service_client.h).  Trusts nothing in the answer beyond its framing,
 * which attr_read bounds by reply_max.
 */
#include "global/service_client.h"

#include <poll.h>
#include <stdbool.h>
#include <stdio.h>

#include "global/mail_proto.h"
#include "util/sock.h"
#include "util/stream.h"

void service_client_close(struct service_client *c)
{
    if (c->stream != NULL)
        stream_close(c->stream);
    c->stream = NULL;
}

static int service_client_connect(struct service_client *c, char *err,
                                  size_t errlen)
{
    char path[4096], why[512];
    int fd;

    mail_private_socket(path, sizeof(path), c->service);
    fd = sock_connect_unix(path, c->timeout_ms, why, sizeof(why));
    if (fd < 0) {
        snprintf(err, errlen, "%s service: %s", c->service, why);
        return -1;
    }
    c->stream = stream_open(fd);
    stream_set_timeout(c->stream, c->timeout_ms);
    return 0;
}

/* Idle and readable means the service hung up (or spoke unasked). */
static bool service_client_stale(struct service_client *c)
{
    struct pollfd pfd = {.fd = stream_fd(c->stream), .events = POLLIN};

    return poll(&pfd, 1, 0) != 0 || stream_read_pending(c->stream) > 0;
}

int service_client_call(struct service_client *c, const struct buf *frame,
                        struct attr_list *reply, char *err, size_t errlen)
{
    if (c->stream != NULL && service_client_stale(c))
        service_client_close(c);
    for (int attempt = 0; attempt < 2; attempt++) {
        bool reused = c->stream != NULL;
        const char *why = NULL;
        enum stream_status st;

        if (!reused && service_client_connect(c, err, errlen) < 0)
            return -1;
        stream_set_timeout(c->stream, c->timeout_ms);
        stream_write(c->stream, frame->data, frame->len);
        st = stream_flush(c->stream);
        if (st == STREAM_OK)
            st = attr_read(c->stream, reply, c->reply_max, &why);
        if (st == STREAM_OK)
            return 0;
        switch (st) {
        case STREAM_TIMEOUT:
            why = "timeout waiting for an answer";
            break;
        case STREAM_EOF:
            why = "connection closed";
            break;
        case STREAM_TOOLONG:
            why = "answer too long";
            break;
        default:
            if (why == NULL)
                why = stream_error(c->stream);
            break;
        }
        snprintf(err, errlen, "%s service: %s", c->service, why);
        service_client_close(c);
        if (!reused || st == STREAM_TIMEOUT || st == STREAM_TOOLONG)
            return -1;
    }
    return -1;
}
