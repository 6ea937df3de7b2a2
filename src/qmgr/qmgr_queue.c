/*
 * qmgr_queue - the queue directories as qmgr sees them: which files to
 * take into the active queue and when, start-up recovery, and the
 * clean-up of what crashes leave behind.
 *
 * Trusts only the directory layout of mail_proto.h: names that are not
 * valid queue IDs are ignored (never touched), and every rename refuses
 * to replace an existing file.  Scans are bounded by the active-queue
 * limit; when the limit stops a scan, the queue is remembered as
 * "backlogged" and scanned again as soon as a message leaves.
 *
 * Flushes: 'F' makes every deferred file due now; 'S<site>' only those
 * with a recipient still to do whose domain or next hop is the site
 * (each file's envelope is read, so it costs one read per deferred
 * message); 'Q<id>' one message, from deferred/ or incoming/.
 *
 * Failures are logged and leave the file where it is: a file that
 * cannot be moved stays in its queue directory and is tried again by a
 * later scan (or after a restart, for active/).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "qmgr/qmgr.h"
#include "global/addr.h"
#include "global/defer_log.h"
#include "util/log.h"
#include "util/mem.h"

/* tmp/ files untouched this long belong to no living cleanup process:
 * cleanup's session and write timeouts are far shorter. */
#define QMGR_TMP_MAX_AGE (10 * 60)
#define QMGR_HOUSEKEEPING_INTERVAL (60 * 60)

static bool backlog_incoming;
static bool backlog_deferred;
static bool prefer_deferred; /* alternate when both are backlogged */
static struct event *refill_ev;
static struct event *deferred_ev;
static time_t deferred_next; /* when deferred_ev fires, 0 = never */
static struct event *housekeeping_ev;

void qmgr_queue_path(struct buf *path, const char *queue, const char *id)
{
    buf_reset(path);
    buf_printf(path, "%s/%s/%s", qmgr_params.queue_dir, queue, id);
}

int qmgr_queue_move(const char *from, const char *to, const char *id)
{
    struct buf src = BUF_INIT, dst = BUF_INIT;
    int rc;

    qmgr_queue_path(&src, from, id);
    qmgr_queue_path(&dst, to, id);
    rc = renameat2(AT_FDCWD, src.data, AT_FDCWD, dst.data, RENAME_NOREPLACE);
    if (rc < 0 && (errno == EINVAL || errno == ENOSYS)) {
        /* A file system without RENAME_NOREPLACE: queue IDs are unique
         * among existing files, so the check is only a safety net. */
        if (access(dst.data, F_OK) == 0) {
            errno = EEXIST;
        } else {
            rc = rename(src.data, dst.data);
        }
    }
    int saved = errno;
    buf_free(&src);
    buf_free(&dst);
    errno = saved;
    return rc;
}

void qmgr_queue_recover(void)
{
    struct buf path = BUF_INIT;
    struct dirent *de;
    size_t moved = 0;
    DIR *dir;

    qmgr_queue_path(&path, MAIL_QUEUE_ACTIVE, "");
    if ((dir = opendir(path.data)) == NULL) {
        log_warn("cannot open %s: %s", path.data, strerror(errno));
        buf_free(&path);
        return;
    }
    /* A previous qmgr died with these in hand; their recipients that
     * were not yet marked done will be delivered (again). */
    while ((de = readdir(dir)) != NULL) {
        if (!mail_queue_id_ok(de->d_name))
            continue;
        if (qmgr_queue_move(MAIL_QUEUE_ACTIVE, MAIL_QUEUE_INCOMING,
                            de->d_name) == 0)
            moved++;
        else
            log_warn("%s: cannot move active/%s back to incoming/: %s",
                     de->d_name, de->d_name, strerror(errno));
    }
    closedir(dir);
    buf_free(&path);
    if (moved)
        log_info("recovered %zu message%s from active/ to incoming/", moved,
                 moved == 1 ? "" : "s");
}

/* Is there a queue file named id in any queue qmgr knows? */
static bool qmgr_queue_file_exists(const char *id)
{
    static const char *const queues[] = {
        MAIL_QUEUE_INCOMING, MAIL_QUEUE_ACTIVE,  MAIL_QUEUE_DEFERRED,
        MAIL_QUEUE_HOLD,     MAIL_QUEUE_CORRUPT,
    };
    struct buf path = BUF_INIT;
    bool found = false;

    for (size_t i = 0; i < sizeof(queues) / sizeof(queues[0]) && !found; i++) {
        qmgr_queue_path(&path, queues[i], id);
        /* Anything but a definite "no such file" counts as present. */
        found = access(path.data, F_OK) == 0 || errno != ENOENT;
    }
    buf_free(&path);
    return found;
}

void qmgr_queue_housekeeping(void)
{
    struct buf path = BUF_INIT;
    struct dirent *de;
    struct stat st;
    time_t now = time(NULL);
    DIR *dir;

    /* tmp/: files cleanup never committed (it died, or the client went
     * away and the unlink failed).  Never acknowledged, so never mail. */
    qmgr_queue_path(&path, MAIL_QUEUE_TMP, "");
    if ((dir = opendir(path.data)) != NULL) {
        while ((de = readdir(dir)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            qmgr_queue_path(&path, MAIL_QUEUE_TMP, de->d_name);
            if (lstat(path.data, &st) < 0 || !S_ISREG(st.st_mode) ||
                now - st.st_mtime < QMGR_TMP_MAX_AGE)
                continue;
            if (unlink(path.data) == 0)
                log_info("removed stale temporary file %s (unchanged for "
                         "%llds)",
                         path.data, (long long)(now - st.st_mtime));
            else if (errno != ENOENT)
                log_warn("cannot remove %s: %s", path.data, strerror(errno));
        }
        closedir(dir);
    } else {
        log_warn("cannot open %s: %s", path.data, strerror(errno));
    }

    /* defer/: reasons of messages that are gone (a crash between the
     * two unlinks of a finished message). */
    qmgr_queue_path(&path, MAIL_QUEUE_DEFER_LOG, "");
    if ((dir = opendir(path.data)) != NULL) {
        while ((de = readdir(dir)) != NULL) {
            if (!mail_queue_id_ok(de->d_name) ||
                qmgr_message_known(de->d_name) ||
                qmgr_queue_file_exists(de->d_name))
                continue;
            char err[256];
            if (defer_log_remove(qmgr_params.queue_dir, de->d_name, err,
                                 sizeof(err)) < 0)
                log_warn("%s: %s", de->d_name, err);
        }
        closedir(dir);
    } else if (errno != ENOENT) {
        log_warn("cannot open %s: %s", path.data, strerror(errno));
    }
    buf_free(&path);
}

static bool qmgr_queue_full(void)
{
    return (long long)qmgr_message_count() >= qmgr_params.active_limit;
}

static void qmgr_queue_take(const char *queue, const char *id)
{
    if (qmgr_queue_move(queue, MAIL_QUEUE_ACTIVE, id) < 0) {
        /* Gone meanwhile (deleted by the administrator): nothing to do. */
        if (errno != ENOENT)
            log_warn("%s: cannot move %s/%s to active/: %s", id, queue, id,
                     strerror(errno));
        return;
    }
    qmgr_message_start(id);
}

void qmgr_queue_take_incoming(const char *id)
{
    if (!mail_queue_id_ok(id) || qmgr_message_known(id))
        return;
    if (qmgr_queue_full()) {
        backlog_incoming = true;
        return;
    }
    qmgr_queue_take(MAIL_QUEUE_INCOMING, id);
}

/*
 * Walk one queue directory.  Returns the earliest future retry time seen
 * (deferred/ only; 0 if none).  Stops, marking the queue backlogged, when
 * the active queue is full.
 */
static time_t qmgr_queue_scan(const char *queue, bool ignore_time)
{
    bool deferred = strcmp(queue, MAIL_QUEUE_DEFERRED) == 0;
    bool *backlog = deferred ? &backlog_deferred : &backlog_incoming;
    struct buf path = BUF_INIT;
    time_t now = time(NULL);
    time_t earliest = 0;
    struct dirent *de;
    struct stat st;
    DIR *dir;

    *backlog = false;
    qmgr_queue_path(&path, queue, "");
    if ((dir = opendir(path.data)) == NULL) {
        log_warn("cannot open %s: %s", path.data, strerror(errno));
        buf_free(&path);
        return 0;
    }
    while ((de = readdir(dir)) != NULL) {
        if (!mail_queue_id_ok(de->d_name) || qmgr_message_known(de->d_name))
            continue;
        if (deferred && !ignore_time) {
            qmgr_queue_path(&path, queue, de->d_name);
            if (stat(path.data, &st) < 0)
                continue;
            if (st.st_mtime > now) {
                if (earliest == 0 || st.st_mtime < earliest)
                    earliest = st.st_mtime;
                continue;
            }
        }
        if (qmgr_queue_full()) {
            *backlog = true;
            break;
        }
        qmgr_queue_take(queue, de->d_name);
    }
    closedir(dir);
    buf_free(&path);
    return earliest;
}

void qmgr_queue_scan_incoming(void)
{
    (void)qmgr_queue_scan(MAIL_QUEUE_INCOMING, false);
}

static void qmgr_queue_timer_at(time_t when)
{
    double delay = (double)when - qmgr_now();
    struct timeval tv;

    if (delay < 0)
        delay = 0;
    tv.tv_sec = (time_t)delay;
    tv.tv_usec = (suseconds_t)((delay - (double)tv.tv_sec) * 1e6);
    deferred_next = when;
    evtimer_add(deferred_ev, &tv);
}

void qmgr_queue_deferred_at(time_t when)
{
    if (when <= 0 || deferred_ev == NULL)
        return;
    if (deferred_next != 0 && deferred_next <= when)
        return;
    qmgr_queue_timer_at(when);
}

void qmgr_queue_scan_deferred(bool ignore_time)
{
    long long delay = qmgr_params.queue_run_delay;
    time_t earliest;

    /* Reset first: messages deferred again during the scan set the timer
     * for their own retry. */
    deferred_next = 0;
    evtimer_del(deferred_ev);
    earliest = qmgr_queue_scan(MAIL_QUEUE_DEFERRED, ignore_time);
    /* Next look: the periodic run (belt and braces), or earlier when a
     * file is due before that. */
    if (delay < 1)
        delay = 1;
    qmgr_queue_deferred_at(time(NULL) + (time_t)delay);
    qmgr_queue_deferred_at(earliest);
}

void qmgr_queue_flush_deferred(void)
{
    struct buf path = BUF_INIT;
    struct timespec times[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
    struct dirent *de;
    DIR *dir;

    qmgr_queue_path(&path, MAIL_QUEUE_DEFERRED, "");
    if ((dir = opendir(path.data)) == NULL) {
        log_warn("cannot open %s: %s", path.data, strerror(errno));
        buf_free(&path);
        return;
    }
    /* Due now, on disk: what does not fit into the active queue at once
     * is still due at the next scan. */
    while ((de = readdir(dir)) != NULL) {
        if (!mail_queue_id_ok(de->d_name))
            continue;
        qmgr_queue_path(&path, MAIL_QUEUE_DEFERRED, de->d_name);
        if (utimensat(AT_FDCWD, path.data, times, 0) < 0 && errno != ENOENT)
            log_warn("%s: cannot set retry time: %s", de->d_name,
                     strerror(errno));
    }
    closedir(dir);
    buf_free(&path);
    qmgr_queue_scan_deferred(true);
}

/* Due now (mtime = now), so the next scan of deferred/ takes it. */
static bool qmgr_queue_make_due(const char *id)
{
    struct timespec times[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
    struct buf path = BUF_INIT;
    bool ok;

    qmgr_queue_path(&path, MAIL_QUEUE_DEFERRED, id);
    ok = utimensat(AT_FDCWD, path.data, times, 0) == 0;
    if (!ok && errno != ENOENT)
        log_warn("%s: cannot set retry time: %s", id, strerror(errno));
    buf_free(&path);
    return ok;
}

/* Does a deferred message have a recipient to do for `site`? */
static bool qmgr_queue_for_site(const char *id, const char *site)
{
    struct qfile_envelope env;
    struct buf path = BUF_INIT;
    bool corrupt, found = false;
    char err[512];
    int fd;

    qmgr_queue_path(&path, MAIL_QUEUE_DEFERRED, id);
    fd = open(path.data, O_RDONLY | O_CLOEXEC);
    buf_free(&path);
    if (fd < 0)
        return false;
    memset(&env, 0, sizeof(env));
    if (qfile_read_envelope(fd, &env, &corrupt, err, sizeof(err)) < 0) {
        close(fd);
        return false; /* the next regular attempt deals with it */
    }
    close(fd);
    for (size_t i = 0; i < env.nrcpt && !found; i++) {
        const char *addr = env.rcpts[i].addr;
        long at = addr_split(addr);
        struct qmgr_route route;

        if (env.rcpts[i].done)
            continue;
        if (at >= 0 && qmgr_route_site_match(site, addr + at + 1, NULL)) {
            found = true;
        } else if (qmgr_route_addr(qmgr_router, addr, &route, err,
                                   sizeof(err)) == 0) {
            found = qmgr_route_site_match(site, NULL, route.nexthop);
            qmgr_route_free(&route);
        }
    }
    qfile_envelope_free(&env);
    return found;
}

void qmgr_queue_flush_site(const char *site)
{
    struct buf path = BUF_INIT;
    struct dirent *de;
    size_t n = 0;
    DIR *dir;

    qmgr_transport_revive(site);
    qmgr_queue_path(&path, MAIL_QUEUE_DEFERRED, "");
    if ((dir = opendir(path.data)) == NULL) {
        log_warn("cannot open %s: %s", path.data, strerror(errno));
        buf_free(&path);
        return;
    }
    while ((de = readdir(dir)) != NULL) {
        if (!mail_queue_id_ok(de->d_name) ||
            !qmgr_queue_for_site(de->d_name, site))
            continue;
        if (qmgr_queue_make_due(de->d_name))
            n++;
    }
    closedir(dir);
    buf_free(&path);
    log_info("flush of site %s: %zu deferred message%s", site, n,
             n == 1 ? "" : "s");
    if (n > 0)
        qmgr_queue_scan_deferred(false);
}

void qmgr_queue_flush_message(const char *id)
{
    if (!mail_queue_id_ok(id) || qmgr_message_known(id))
        return;
    if (qmgr_queue_make_due(id)) {
        if (qmgr_queue_full())
            backlog_deferred = true; /* due now: the refill takes it */
        else
            qmgr_queue_take(MAIL_QUEUE_DEFERRED, id);
        return;
    }
    qmgr_queue_take_incoming(id);
}

void qmgr_queue_room(void)
{
    if ((backlog_incoming || backlog_deferred) && refill_ev)
        event_active(refill_ev, EV_TIMEOUT, 0);
}

static void qmgr_queue_refill(evutil_socket_t fd, short what, void *ctx)
{
    bool deferred_first = prefer_deferred && backlog_deferred;

    /* Incoming and deferred take turns when both wait, so neither a flood
     * of new mail nor a large retry run starves the other. */
    prefer_deferred = !prefer_deferred;
    if (deferred_first)
        qmgr_queue_scan_deferred(false);
    if (backlog_incoming && !qmgr_queue_full())
        qmgr_queue_scan_incoming();
    if (!deferred_first && backlog_deferred && !qmgr_queue_full())
        qmgr_queue_scan_deferred(false);
}

static void qmgr_queue_deferred_timer(evutil_socket_t fd, short what, void *ctx)
{
    deferred_next = 0;
    qmgr_queue_scan_deferred(false);
}

static void qmgr_queue_housekeeping_timer(evutil_socket_t fd, short what,
                                          void *ctx)
{
    qmgr_queue_housekeeping();
}

void qmgr_queue_retry_later(const char *id, time_t when)
{
    struct buf path = BUF_INIT;
    struct timespec times[2] = {{0, UTIME_NOW}, {when, 0}};

    qmgr_queue_path(&path, MAIL_QUEUE_ACTIVE, id);
    if (utimensat(AT_FDCWD, path.data, times, 0) < 0)
        log_warn("%s: cannot set retry time: %s", id, strerror(errno));
    if (qmgr_queue_move(MAIL_QUEUE_ACTIVE, MAIL_QUEUE_DEFERRED, id) < 0)
        log_warn("%s: cannot move active/%s to deferred/: %s; it stays in "
                 "active/ until qmgr restarts",
                 id, id, strerror(errno));
    else
        qmgr_queue_deferred_at(when);
    buf_free(&path);
}

void qmgr_queue_corrupt(const char *id, const char *why)
{
    if (qmgr_queue_move(MAIL_QUEUE_ACTIVE, MAIL_QUEUE_CORRUPT, id) < 0)
        log_warn("%s: corrupt queue file: %s; cannot move it to corrupt/: "
                 "%s",
                 id, why, strerror(errno));
    else
        log_warn("%s: corrupt queue file: %s; moved to corrupt/", id, why);
}

void qmgr_queue_init(void)
{
    struct timeval hour = {QMGR_HOUSEKEEPING_INTERVAL, 0};

    refill_ev = event_new(qmgr_base, -1, 0, qmgr_queue_refill, NULL);
    deferred_ev = evtimer_new(qmgr_base, qmgr_queue_deferred_timer, NULL);
    housekeeping_ev = event_new(qmgr_base, -1, EV_PERSIST,
                                qmgr_queue_housekeeping_timer, NULL);
    evtimer_add(housekeeping_ev, &hour);
}

void qmgr_queue_shutdown(void)
{
    if (refill_ev)
        event_free(refill_ev);
    if (deferred_ev)
        event_free(deferred_ev);
    if (housekeeping_ev)
        event_free(housekeeping_ev);
    refill_ev = deferred_ev = housekeeping_ev = NULL;
}
