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
 * One kept connection per process (global/service_client.h: reuse,
 * one retry on a fresh connection, no retry after a timeout).
 */
#include "global/anvil_client.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "global/mail_proto.h"
#include "global/service_client.h"
#include "util/attr.h"
#include "util/buf.h"

/* An answer holds a few short attributes. */
#define ANVIL_CLIENT_REPLY_MAX 1024
/* anvil refuses longer idents (src/anvil/anvil.h: ANVIL_IDENT_MAX). */
#define ANVIL_CLIENT_IDENT_MAX 255

static struct service_client anvil_client =
    SERVICE_CLIENT_INIT(ANVIL_SERVICE, ANVIL_CLIENT_REPLY_MAX);

void anvil_client_close(void)
{
    service_client_close(&anvil_client);
}

static int anvil_client_call(const struct buf *frame, struct attr_list *reply,
                             char *err, size_t errlen)
{
    anvil_client.timeout_ms = ANVIL_CLIENT_TIMEOUT_MS;
    return service_client_call(&anvil_client, frame, reply, err, errlen);
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
