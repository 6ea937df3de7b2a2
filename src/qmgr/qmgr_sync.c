/*
 * qmgr_sync - deliveries that count once the disk has them.
 *
 * local links a Maildir file into new/ and replies at once with a group
 * commit ticket (groupsync_ticket) instead of waiting for a syncfs() of
 * its own.  Until a round has covered the ticket, the file may still be
 * lost in a crash, so the outcome must not be counted yet: the queue
 * file would be marked done or recycled while the only durable copy of
 * the message is the queue file itself.  Such replies wait here, with
 * their recipients still busy; the agent's connection and concurrency
 * slots are free already, so delivery goes on.  (Keeping the slots until
 * the round was measured: local then idles while its last batch waits,
 * and end to end fell by a quarter.)
 *
 * Nearly always someone else's round covers them within a millisecond or
 * two: cleanup syncs for every message it accepts.  They are looked at
 * after every agent reply and every new message; when nothing else
 * syncs (the last delivery of a burst), qmgr runs a round itself
 * queue_delivery_sync_delay milliseconds after the first one waited,
 * and at once when more than QMGR_SYNC_MAX_WAITING recipients wait.  A
 * crash in between leaves the recipients undelivered in the queue file:
 * they are delivered again (a duplicate, never a loss), as after a crash
 * of local between its write and its reply; so a crash repeats at most
 * the deliveries in flight plus QMGR_SYNC_MAX_WAITING.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "qmgr/qmgr_transport.h"
#include "global/mail_proto.h"
#include "util/groupsync.h"
#include "util/log.h"
#include "util/mem.h"

/* Recipients whose deliveries may wait for a round; more make one now. */
#define QMGR_SYNC_MAX_WAITING 16
/* After a failed syncfs(): the disk is in trouble, do not spin on it. */
#define QMGR_SYNC_RETRY_MS 1000

struct qmgr_sync_wait {
    struct qmgr_job *job;
    struct qmgr_result *res;
    double delays[4];
    uint64_t ticket;
    struct qmgr_sync_wait *next;
};

static struct groupsync *sync_gs;
static struct event *sync_timer;
static struct qmgr_sync_wait *sync_head, **sync_tail = &sync_head;
static size_t sync_waiting; /* recipients in the list */

static void sync_arm(long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    evtimer_add(sync_timer, &tv);
}

/* Count the outcomes of every waiting reply for which covered() holds. */
static void sync_apply(bool all)
{
    struct qmgr_sync_wait **pp = &sync_head, *w;

    while ((w = *pp) != NULL) {
        if (!all && !groupsync_covered(sync_gs, w->ticket)) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        if (sync_tail == &w->next)
            sync_tail = pp;
        sync_waiting -= w->job->n;
        qmgr_job_outcomes(w->job, w->res, w->delays);
        free(w->res);
        free(w);
    }
    if (sync_head == NULL)
        evtimer_del(sync_timer);
}

/* A round of our own: everything handed to us was written before it. */
static int sync_round(void)
{
    int rc = sync_gs != NULL ? groupsync_sync(sync_gs) : (sync(), 0);

    if (rc < 0)
        log_warn("syncing delivered mail: %s; trying again in %d ms",
                 strerror(errno), QMGR_SYNC_RETRY_MS);
    return rc;
}

/* What no round covered yet gets one of ours. */
static void sync_now(void)
{
    if (sync_head == NULL)
        return;
    if (sync_gs != NULL)
        sync_apply(false);
    if (sync_head == NULL)
        return;
    if (sync_round() < 0) {
        sync_arm(QMGR_SYNC_RETRY_MS);
        return;
    }
    sync_apply(true);
}

static void sync_timeout(evutil_socket_t fd, short what, void *ctx)
{
    (void)fd;
    (void)what;
    (void)ctx;
    sync_now();
}

void qmgr_sync_init(struct event_base *base)
{
    sync_gs = mail_queue_groupsync();
    sync_timer = evtimer_new(base, sync_timeout, NULL);
    if (sync_timer == NULL)
        log_fatal("cannot create the sync timer");
}

void qmgr_sync_wait(struct qmgr_job *job, struct qmgr_result *res,
                    const double delays[4], uint64_t ticket)
{
    struct qmgr_sync_wait *w;

    if (sync_gs != NULL && groupsync_covered(sync_gs, ticket)) {
        qmgr_job_outcomes(job, res, delays);
        free(res);
        return;
    }
    w = xcalloc(1, sizeof(*w));
    w->job = job;
    w->res = res;
    memcpy(w->delays, delays, sizeof(w->delays));
    w->ticket = ticket;
    *sync_tail = w;
    sync_tail = &w->next;
    sync_waiting += job->n;
    if (sync_waiting > QMGR_SYNC_MAX_WAITING)
        sync_now();
    else if (!evtimer_pending(sync_timer, NULL))
        sync_arm(qmgr_params.sync_delay_ms);
}

void qmgr_sync_check(void)
{
    if (sync_head != NULL && sync_gs != NULL)
        sync_apply(false);
}

void qmgr_sync_shutdown(void)
{
    /* What was delivered counts if the disk has it now; otherwise the
     * recipients stay undelivered in the queue file. */
    if (sync_head != NULL && sync_round() == 0)
        sync_apply(true);
    while (sync_head != NULL) {
        struct qmgr_sync_wait *w = sync_head;

        sync_head = w->next;
        sync_waiting -= w->job->n;
        qmgr_job_free(w->job);
        free(w->res);
        free(w);
    }
    sync_tail = &sync_head;
    if (sync_timer != NULL)
        event_free(sync_timer);
    sync_timer = NULL;
    groupsync_close(sync_gs);
    sync_gs = NULL;
}
