/*
 * anvil_client - requests to the anvil service over private/anvil (see
 * anvil_client.h; the protocol is in mail_proto.h).
 *
 * Given: an ident that smtpd builds from its service name and the
 * client's numeric address; checked here for length and characters
 * before it is sent, so anvil never sees a request it must refuse.
 * Trusts anvil's answers no more than network input: an answer that does
 * not parse, has status other than 0 or numbers out of range is an
 * error, which the caller treats as "anvil unavailable" (no limit).
 * Never logs; callers log with the client's name.
 *
 * One kept connection per process (single-threaded callers).  A kept
 * connection anvil closed while it sat idle is noticed before sending;
 * one that breaks during the exchange is tried once more on a new
 * connection, unless the failure was a timeout (anvil alive but stuck:
 * a second wait would only double the delay).
 */
#include "global/anvil_client.h"

#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "global/mail_proto.h"
#include "util/attr.h"
#include "util/buf.h"
#include "util/sock.h"
#include "util/stream.h"

/* An answer holds a few short attributes. */
#define ANVIL_CLIENT_REPLY_MAX 1024
/* anvil refuses longer idents (src/anvil/anvil.h: ANVIL_IDENT_MAX). */
#define ANVIL_CLIENT_IDENT_MAX 255

static struct stream *anvil_stream;

void anvil_client_close(void)
{
    if (anvil_stream != NULL)
        stream_close(anvil_stream);
    anvil_stream = NULL;
}

static int anvil_client_connect(char *err, size_t errlen)
{
    char path[4096], why[512];
    int fd;

    mail_private_socket(path, sizeof(path), ANVIL_SERVICE);
    fd = sock_connect_unix(path, ANVIL_CLIENT_TIMEOUT_MS, why, sizeof(why));
    if (fd < 0) {
        snprintf(err, errlen, "anvil service: %s", why);
        return -1;
    }
    anvil_stream = stream_open(fd);
    stream_set_timeout(anvil_stream, ANVIL_CLIENT_TIMEOUT_MS);
    return 0;
}

/* Idle and readable means anvil hung up (or spoke unasked). */
static bool anvil_client_stale(void)
{
    struct pollfd pfd = {.fd = stream_fd(anvil_stream), .events = POLLIN};

    return poll(&pfd, 1, 0) != 0 || stream_read_pending(anvil_stream) > 0;
}

static int anvil_client_call(const struct buf *frame, struct attr_list *reply,
                             char *err, size_t errlen)
{
    if (anvil_stream != NULL && anvil_client_stale())
        anvil_client_close();
    for (int attempt = 0; attempt < 2; attempt++) {
        bool reused = anvil_stream != NULL;
        const char *why = NULL;
        enum stream_status st;

        if (!reused && anvil_client_connect(err, errlen) < 0)
            return -1;
        stream_write(anvil_stream, frame->data, frame->len);
        st = stream_flush(anvil_stream);
        if (st == STREAM_OK)
            st = attr_read(anvil_stream, reply, ANVIL_CLIENT_REPLY_MAX, &why);
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
                why = stream_error(anvil_stream);
            break;
        }
        snprintf(err, errlen, "anvil service: %s", why);
        anvil_client_close();
        if (!reused || st == STREAM_TIMEOUT || st == STREAM_TOOLONG)
            return -1;
    }
    return -1;
}

static bool anvil_client_ident_ok(const char *ident)
{
    size_t n = strlen(ident);

    if (n == 0 || n > ANVIL_CLIENT_IDENT_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)ident[i] <= ' ' || (unsigned char)ident[i] >= 0x7f)
            return false;
    return true;
}

static bool anvil_client_num(const struct attr_list *reply, const char *name,
                             int *out)
{
    long long v;

    if (!attr_get_int(reply, name, &v) || v < 0 || v > INT_MAX)
        return false;
    *out = (int)v;
    return true;
}

/*
 * Send request for ident; fill *count and *rate (either may be NULL:
 * not expected in the answer).  0 or -1 with err set.
 */
static int anvil_client_request(const char *request, const char *ident,
                                int *count, int *rate, char *err, size_t errlen)
{
    struct attr_list reply = ATTR_LIST_INIT;
    struct buf frame = BUF_INIT;
    const char *status;
    int rc = -1;

    if (!anvil_client_ident_ok(ident)) {
        snprintf(err, errlen, "anvil service: malformed ident");
        return -1;
    }
    attr_put_str(&frame, "request", request);
    attr_put_str(&frame, "ident", ident);
    attr_end(&frame);
    if (anvil_client_call(&frame, &reply, err, errlen) < 0)
        goto out;
    status = attr_get(&reply, "status");
    if (status == NULL || strcmp(status, "0") != 0) {
        const struct attr *reason = attr_find(&reply, "reason");

        if (status != NULL && strcmp(status, "1") == 0 && reason != NULL &&
            reason->len < 100 && strlen(reason->value) == reason->len)
            snprintf(err, errlen, "anvil service: %s", reason->value);
        else
            snprintf(err, errlen, "anvil service: malformed answer");
        goto out;
    }
    if ((count != NULL && !anvil_client_num(&reply, "count", count)) ||
        (rate != NULL && !anvil_client_num(&reply, "rate", rate))) {
        snprintf(err, errlen, "anvil service: malformed answer");
        goto out;
    }
    rc = 0;
out:
    attr_list_free(&reply);
    buf_free(&frame);
    return rc;
}

int anvil_connect(const char *ident, int *count, int *rate, char *err,
                  size_t errlen)
{
    return anvil_client_request("connect", ident, count, rate, err, errlen);
}

int anvil_disconnect(const char *ident, char *err, size_t errlen)
{
    return anvil_client_request("disconnect", ident, NULL, NULL, err, errlen);
}

int anvil_message(const char *ident, int *rate, char *err, size_t errlen)
{
    return anvil_client_request("message", ident, NULL, rate, err, errlen);
}

int anvil_recipient(const char *ident, int *rate, char *err, size_t errlen)
{
    return anvil_client_request("recipient", ident, NULL, rate, err, errlen);
}
