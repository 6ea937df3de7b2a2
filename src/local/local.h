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

#include <stdbool.h>
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
    /* Linked into new/ but durable only after maildir_batch_sync(). */
    bool sync_pending;
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
/*
 * Deliver one request.  Files covered by the group commit are linked but
 * not yet synced: their paths go to batch and their recipients are marked
 * sync_pending; the caller syncs the batch (maildir_batch_sync) before it
 * reports, and calls local_batch_failed() for each request if that fails.
 */
struct argv;
void local_deliver(struct local_request *req, struct argv *batch);
/* The batch's sync failed: its pending deliveries did not happen. */
void local_batch_failed(struct local_request *req, int err, const char *why);

#endif
