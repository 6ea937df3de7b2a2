/*
 * service_client - one kept connection from a process to a private
 * posthorn service ($queue_directory/private/<name>) that answers each
 * attribute frame (util/attr.h) with one frame: the transport under
 * auth_client (auth) and anvil_client (anvil).
 *
 * The connection is opened at the first call and kept.  A kept connection
 * the service closed while it sat idle is noticed before sending; one
 * that breaks during the exchange is tried once more on a fresh
 * connection, unless the failure was a timeout or an over-long answer
 * (the service is alive but stuck or broken: a second wait would only
 * double the delay).  Every wait is bounded by timeout_ms.  Only the
 * framing is checked here; what the answer means is the caller's to check.
 * One client per process and thread of use; not thread-safe.
 */
#ifndef GLOBAL_SERVICE_CLIENT_H
#define GLOBAL_SERVICE_CLIENT_H

#include <stddef.h>

#include "util/attr.h"
#include "util/buf.h"

struct stream;

struct service_client {
    const char *service; /* socket name under private/, used in errors */
    size_t reply_max;    /* longest answer frame */
    int timeout_ms;      /* connect and each exchange; set before a call */
    struct stream *stream;
};

#define SERVICE_CLIENT_INIT(name, max) {(name), (max), 0, NULL}

/* One request/answer exchange: 0, or -1 with err ("auth service: ..."). */
int service_client_call(struct service_client *c, const struct buf *frame,
                        struct attr_list *reply, char *err, size_t errlen);
void service_client_close(struct service_client *c);

#endif
