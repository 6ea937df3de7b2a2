/*
 * master_service - one service's listener and pool of workers.
 *
 * The pool rule (Postfix's): a fresh worker counts as idle; a worker that
 * writes BUSY is not, and IDLE makes it available again.  While no worker
 * of the current generation is idle, master watches the listening socket
 * itself, and a waiting client makes it fork one more, up to maxproc.  A
 * service with a wakeup time is started at once and kept running (qmgr),
 * and is poked every `wakeup` seconds with the single byte "W" on its
 * socket ("N?": no early start, and wakeups only once a worker ran).  A
 * worker that dies abnormally throttles the service: no new
 * worker for 1s, doubling up to 60s while crashes continue.
 *
 * Status records come from unprivileged processes and are checked: a
 * record must be whole, name a live child of this service and carry a
 * known status; anything else is logged and dropped.
 */
#include "master/master.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "global/config.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/sock.h"

static time_t master_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

struct master_svc *master_svc_new(void)
{
    struct master_svc *svc = xcalloc(1, sizeof(*svc));

    svc->listen_fd = -1;
    svc->status_fd[0] = svc->status_fd[1] = -1;
    LIST_INIT(&svc->children);
    return svc;
}

static void master_svc_free_events(struct master_svc *svc)
{
    struct event **evs[] = {&svc->listen_ev, &svc->status_ev, &svc->wakeup_ev,
                            &svc->throttle_ev};

    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
        if (*evs[i] != NULL) {
            event_free(*evs[i]);
            *evs[i] = NULL;
        }
    }
    svc->listening = false;
}

/* Free a service that has no children left. */
void master_svc_free(struct master_svc *svc)
{
    master_svc_free_events(svc);
    if (svc->listen_fd >= 0)
        close(svc->listen_fd);
    for (int i = 0; i < 2; i++)
        if (svc->status_fd[i] >= 0)
            close(svc->status_fd[i]);
    free(svc->name);
    free(svc->type);
    free(svc->command);
    free(svc->path);
    argv_free(&svc->args);
    free(svc->where);
    free(svc->key);
    free(svc->host);
    free(svc->port);
    free(svc->socket_path);
    free(svc);
}

/* "cleanup", or "127.0.0.1:2525 (smtpd)" when the names differ. */
const char *master_svc_label(const struct master_svc *svc, char *buf,
                             size_t size)
{
    if (strcmp(svc->name, svc->command) == 0)
        snprintf(buf, size, "%s", svc->name);
    else
        snprintf(buf, size, "%s (%s)", svc->name, svc->command);
    return buf;
}

/* Wakeups run from the start, or ("N?") from the first worker on. */
static void master_svc_arm_wakeup(struct master_svc *svc)
{
    struct timeval tv = {svc->wakeup, 0};

    if (svc->wakeup_ev == NULL || svc->wakeup <= 0 ||
        event_pending(svc->wakeup_ev, EV_TIMEOUT, NULL))
        return;
    if (svc->wakeup_used && svc->nproc == 0)
        return;
    event_add(svc->wakeup_ev, &tv);
}

/* Take a reloaded entry's master.cf fields; the listener stays. */
void master_svc_take_spec(struct master_svc *svc, struct master_svc *spec)
{
    char *tmp;
    struct argv targs;

#define MASTER_SWAP(field)                                                     \
    (tmp = svc->field, svc->field = spec->field, spec->field = tmp)
    MASTER_SWAP(name);
    MASTER_SWAP(type);
    MASTER_SWAP(command);
    MASTER_SWAP(path);
    MASTER_SWAP(where);
#undef MASTER_SWAP
    targs = svc->args;
    svc->args = spec->args;
    spec->args = targs;
    svc->unpriv = spec->unpriv;
    svc->maxproc = spec->maxproc;
    if (svc->wakeup != spec->wakeup || svc->wakeup_used != spec->wakeup_used) {
        svc->wakeup = spec->wakeup;
        svc->wakeup_used = spec->wakeup_used;
        if (svc->wakeup_ev != NULL) {
            event_del(svc->wakeup_ev);
            master_svc_arm_wakeup(svc);
        }
    }
}

/* ---------------------------------------------------------- listener */

int master_svc_open(struct master_svc *svc, char *err, size_t errlen)
{
    char msg[512];
    int fd;

    if (svc->socket_path != NULL)
        fd = sock_listen_unix(svc->socket_path, 0666, MASTER_LISTEN_BACKLOG,
                              msg, sizeof(msg));
    else
        fd = sock_listen_inet(svc->host, svc->port, MASTER_LISTEN_BACKLOG, msg,
                              sizeof(msg));
    if (fd < 0) {
        snprintf(err, errlen, "service %s/%s: %s", svc->name, svc->type, msg);
        return -1;
    }
    /* Shared by all workers: an empty accept must not block any of them. */
    if (sock_set_nonblock(fd, true) < 0 ||
        pipe2(svc->status_fd, O_CLOEXEC) < 0 ||
        sock_set_nonblock(svc->status_fd[0], true) < 0) {
        snprintf(err, errlen, "service %s/%s: %s", svc->name, svc->type,
                 strerror(errno));
        close(fd);
        for (int i = 0; i < 2; i++) {
            if (svc->status_fd[i] >= 0)
                close(svc->status_fd[i]);
            svc->status_fd[i] = -1;
        }
        if (svc->socket_path != NULL)
            unlink(svc->socket_path);
        return -1;
    }
    svc->listen_fd = fd;
    return 0;
}

static void master_svc_listen(struct master_svc *svc, bool on)
{
    if (on == svc->listening || svc->listen_ev == NULL)
        return;
    if (on)
        event_add(svc->listen_ev, NULL);
    else
        event_del(svc->listen_ev);
    svc->listening = on;
}

/* Stop listening for good (stop or reload); the children stay tracked. */
void master_svc_close(struct master_svc *svc)
{
    master_svc_free_events(svc);
    if (svc->listen_fd >= 0) {
        close(svc->listen_fd);
        svc->listen_fd = -1;
        if (svc->socket_path != NULL)
            unlink(svc->socket_path);
    }
    /* Workers see the read end go (POLLERR, EPIPE) and leave when idle;
     * none of them can block on a full pipe nobody reads. */
    if (svc->status_fd[0] >= 0) {
        close(svc->status_fd[0]);
        svc->status_fd[0] = -1;
    }
}

/* ---------------------------------------------------------- pool */

static bool master_svc_under_limit(const struct master_svc *svc)
{
    /* maxproc 1 means "never two at once", across generations too. */
    unsigned count = svc->maxproc == 1 ? svc->nproc : svc->ncurrent;

    return svc->maxproc == 0 || count < (unsigned)svc->maxproc;
}

static void master_svc_spawn(struct master_svc *svc)
{
    char label[300];

    if (master_spawn(svc) < 0) {
        /* fork failed: the system is short of something; back off. */
        log_warn("service %s: cannot start a worker; retrying in %ds",
                 master_svc_label(svc, label, sizeof(label)),
                 MASTER_THROTTLE_MIN);
        svc->throttled = true;
        if (svc->throttle_ev != NULL) {
            struct timeval tv = {MASTER_THROTTLE_MIN, 0};

            evtimer_add(svc->throttle_ev, &tv);
        }
    }
}

/* Decide, after any change, whether to fork or watch the listener. */
void master_svc_update(struct master_svc *svc)
{
    if (master.stopping || svc->retired || svc->throttled ||
        svc->listen_ev == NULL) {
        master_svc_listen(svc, false);
        return;
    }
    if (svc->wakeup > 0 && !svc->wakeup_used && svc->ncurrent == 0 &&
        master_svc_under_limit(svc))
        master_svc_spawn(svc);
    master_svc_listen(svc, svc->navail == 0 && !svc->throttled);
}

/* A client waits and no worker is idle. */
static void master_svc_on_listen(evutil_socket_t fd, short what, void *arg)
{
    struct master_svc *svc = arg;
    char label[300];

    (void)fd;
    (void)what;
    if (svc->navail > 0 || svc->throttled) {
        master_svc_listen(svc, false);
        return;
    }
    if (!master_svc_under_limit(svc)) {
        time_t now = master_now();

        if (svc->limit_warned == 0 ||
            now - svc->limit_warned >= MASTER_LIMIT_WARN_INTERVAL) {
            svc->limit_warned = now;
            log_warn("service %s has reached its process limit %d: new "
                     "clients may experience noticeable delays",
                     master_svc_label(svc, label, sizeof(label)), svc->maxproc);
        }
        /* Back on at the next status record or exit. */
        master_svc_listen(svc, false);
        return;
    }
    master_svc_spawn(svc);
    master_svc_update(svc);
}

static void master_svc_record(struct master_svc *svc,
                              const struct server_status *st)
{
    struct master_child *child;
    char label[300];

    for (child = LIST_FIRST(&svc->children); child != NULL;
         child = LIST_NEXT(child, entries)) {
        if (child->pid == st->pid)
            break;
    }
    if (child == NULL || st->generation != child->generation ||
        (st->status != SERVER_STATUS_BUSY &&
         st->status != SERVER_STATUS_IDLE)) {
        log_warn("service %s: bad status record (pid %ld, status %d): "
                 "ignored",
                 master_svc_label(svc, label, sizeof(label)), (long)st->pid,
                 (int)(unsigned char)st->status);
        return;
    }
    if (st->status == SERVER_STATUS_BUSY) {
        if (child->idle && child->generation == svc->generation)
            svc->navail--;
        child->idle = false;
    } else {
        if (!child->idle && child->generation == svc->generation)
            svc->navail++;
        child->idle = true;
        /* A worker got through a whole client: the crash streak is over. */
        svc->backoff = 0;
    }
}

static void master_svc_on_status(evutil_socket_t fd, short what, void *arg)
{
    struct master_svc *svc = arg;
    char buf[64 * sizeof(struct server_status)];
    ssize_t n;

    (void)what;
    for (;;) {
        size_t off = 0;

        n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        while (off < (size_t)n) {
            size_t want = sizeof(svc->status_buf) - svc->status_len;
            size_t take = (size_t)n - off < want ? (size_t)n - off : want;

            memcpy(svc->status_buf + svc->status_len, buf + off, take);
            svc->status_len += take;
            off += take;
            if (svc->status_len == sizeof(svc->status_buf)) {
                struct server_status st;

                memcpy(&st, svc->status_buf, sizeof(st));
                svc->status_len = 0;
                master_svc_record(svc, &st);
            }
        }
    }
    master_svc_update(svc);
}

static void master_svc_on_throttle(evutil_socket_t fd, short what, void *arg)
{
    struct master_svc *svc = arg;

    (void)fd;
    (void)what;
    svc->throttled = false;
    master_svc_update(svc);
}

/* Poke a trigger server: connect, write "W", hang up (Postfix's wakeup). */
static void master_svc_on_wakeup(evutil_socket_t fd, short what, void *arg)
{
    struct master_svc *svc = arg;
    char err[512], label[300];
    int s;

    (void)fd;
    (void)what;
    if (svc->socket_path == NULL || master.stopping)
        return;
    s = sock_connect_unix(svc->socket_path, 100, err, sizeof(err));
    if (s < 0) {
        log_warn("service %s: wakeup: %s",
                 master_svc_label(svc, label, sizeof(label)), err);
        return;
    }
    (void)sock_set_nonblock(s, true);
    if (write(s, "W", 1) != 1)
        log_warn("service %s: wakeup: write: %m",
                 master_svc_label(svc, label, sizeof(label)));
    close(s);
}

/* Events for an opened service; then start what must run. */
void master_svc_start(struct master_svc *svc)
{
    svc->listen_ev = event_new(master.base, svc->listen_fd,
                               EV_READ | EV_PERSIST, master_svc_on_listen, svc);
    svc->status_ev = event_new(master.base, svc->status_fd[0],
                               EV_READ | EV_PERSIST, master_svc_on_status, svc);
    svc->throttle_ev = evtimer_new(master.base, master_svc_on_throttle, svc);
    svc->wakeup_ev =
        event_new(master.base, -1, EV_PERSIST, master_svc_on_wakeup, svc);
    if (svc->listen_ev == NULL || svc->status_ev == NULL ||
        svc->throttle_ev == NULL || svc->wakeup_ev == NULL)
        log_fatal("cannot create events for service %s", svc->name);
    event_add(svc->status_ev, NULL);
    master_svc_arm_wakeup(svc);
    svc->generation = master.generation;
    master_svc_update(svc);
}

/* Removed by a reload: close the listener; the service goes with its last
 * worker. */
void master_svc_retire(struct master_svc *svc)
{
    struct master_child *child;

    svc->retired = true;
    master_svc_close(svc);
    for (child = LIST_FIRST(&svc->children); child != NULL;
         child = LIST_NEXT(child, entries)) {
        kill(child->pid, SIGHUP);
    }
    if (svc->nproc == 0) {
        TAILQ_REMOVE(&master.services, svc, entries);
        master_svc_free(svc);
    }
}

/* ---------------------------------------------------------- children */

struct master_child *master_child_find(pid_t pid)
{
    struct master_svc *svc;
    struct master_child *child;

    for (svc = TAILQ_FIRST(&master.services); svc != NULL;
         svc = TAILQ_NEXT(svc, entries)) {
        for (child = LIST_FIRST(&svc->children); child != NULL;
             child = LIST_NEXT(child, entries)) {
            if (child->pid == pid)
                return child;
        }
    }
    return NULL;
}

static void master_svc_throttle(struct master_svc *svc, time_t lived)
{
    struct timeval tv;
    char label[300];

    if (svc->throttled || svc->throttle_ev == NULL)
        return;
    if (lived >= MASTER_THROTTLE_RESET)
        svc->backoff = 0;
    svc->backoff = svc->backoff == 0 ? MASTER_THROTTLE_MIN
                   : svc->backoff * 2 > MASTER_THROTTLE_MAX
                       ? MASTER_THROTTLE_MAX
                       : svc->backoff * 2;
    svc->throttled = true;
    tv.tv_sec = svc->backoff;
    tv.tv_usec = 0;
    evtimer_add(svc->throttle_ev, &tv);
    log_warn("service %s: throttling after a crash, next start in %ds",
             master_svc_label(svc, label, sizeof(label)), svc->backoff);
}

void master_child_exited(struct master_child *child, int status)
{
    struct master_svc *svc = child->svc;
    bool current = child->generation == svc->generation && !svc->retired;
    bool abnormal = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    /* Our own SIGTERM/SIGKILL at stop time is no news. */
    bool ours = master.stopping && WIFSIGNALED(status) &&
                (WTERMSIG(status) == SIGTERM || WTERMSIG(status) == SIGKILL);

    if (WIFSIGNALED(status) && !ours)
        log_warn("process %s pid %ld killed by signal %d", svc->path,
                 (long)child->pid, WTERMSIG(status));
    else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        log_warn("process %s pid %ld exit status %d", svc->path,
                 (long)child->pid, WEXITSTATUS(status));

    LIST_REMOVE(child, entries);
    svc->nproc--;
    master.nchildren--;
    if (child->generation == svc->generation) {
        svc->ncurrent--;
        if (child->idle)
            svc->navail--;
    }
    if (current && !master.stopping) {
        if (abnormal)
            master_svc_throttle(svc, master_now() - child->started);
        else
            svc->backoff = 0;
    }
    free(child);

    if (svc->retired && svc->nproc == 0) {
        TAILQ_REMOVE(&master.services, svc, entries);
        master_svc_free(svc);
    } else {
        master_svc_update(svc);
    }
    if (master.stopping && master.nchildren == 0)
        master_finish();
}

/* Register a child master_spawn() forked: it counts as idle until it
 * says otherwise. */
void master_child_add(struct master_svc *svc, pid_t pid)
{
    struct master_child *child = xcalloc(1, sizeof(*child));

    child->pid = pid;
    child->svc = svc;
    child->generation = svc->generation;
    child->idle = true;
    child->started = master_now();
    LIST_INSERT_HEAD(&svc->children, child, entries);
    svc->nproc++;
    svc->ncurrent++;
    svc->navail++;
    master.nchildren++;
    master_svc_arm_wakeup(svc);
}
