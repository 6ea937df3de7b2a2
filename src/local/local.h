/*
 * local - internal interfaces of the local delivery agent.
 *
 *   local.c           the server: reads qmgr's requests, validates them,
 *                     writes one reply per request
 *   local_deliver.c   one request: the queue file, loop detection, and
 *                     Maildir delivery per recipient under its own ids
 */
#ifndef LOCAL_LOCAL_H
#define LOCAL_LOCAL_H

#include <stddef.h>

#include "global/mail_proto.h"
#include "global/resolve.h"

struct local_rcpt {
    const char *addr;
    const char *orig;
    long long offset;
    /* Result, filled by local_deliver(). */
    int status; /* 2, 4 or 5 */
    char dsn[16];
    char reason[512];
};

struct local_request {
    const char *queue_id;
    const char *sender; /* as qmgr sent it; the queue file wins */
    struct local_rcpt *rcpts;
    size_t nrcpt;
};

extern struct resolver *local_resolver;
extern const char *local_queue_dir;
extern long long local_minimum_uid;

/* Deliver every recipient of req; each gets a status. */
void local_deliver(struct local_request *req);

#endif
