/*
 * master_sig - master's signals, handled inside the event loop.
 *
 *   SIGHUP          reload main.cf and master.cf (master_reload)
 *   SIGTERM/SIGINT  stop: close the listeners, SIGTERM every worker, wait
 *                   up to MASTER_STOP_GRACE seconds, SIGKILL the rest; a
 *                   second stop signal skips the wait
 *   SIGCHLD         reap workers and tell their services
 *
 * Signals come from the administrator (or the posthorn command); a worker
 * can only make master reap it.  SIGPIPE is ignored: a wakeup write to a
 * vanished socket is an error return, not a death.
 */
#include "master/master.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include <event2/event.h>

#include "util/log.h"

static struct event *master_sig_events[4];

static void master_sig_kill_all(int sig)
{
    struct master_svc *svc;
    struct master_child *child;

    for (svc = TAILQ_FIRST(&master.services); svc != NULL;
         svc = TAILQ_NEXT(svc, entries)) {
        for (child = LIST_FIRST(&svc->children); child != NULL;
             child = LIST_NEXT(child, entries)) {
            kill(child->pid, sig);
        }
    }
}

/*
 * Round 1: the grace time is over, SIGKILL.  Round 2: a child that
 * survives SIGKILL (stuck in the kernel) is not worth waiting for.
 */
static void master_sig_on_stop_timer(evutil_socket_t fd, short what, void *arg)
{
    struct timeval tv = {MASTER_STOP_GRACE, 0};

    (void)fd;
    (void)what;
    (void)arg;
    if (master.stop_round++ == 0) {
        log_warn("%u worker(s) still running after %ds: killing them",
                 master.nchildren, MASTER_STOP_GRACE);
        master_sig_kill_all(SIGKILL);
        evtimer_add(master.stop_timer, &tv);
        return;
    }
    log_warn("%u worker(s) did not go away: exiting anyway", master.nchildren);
    master_finish();
}

void master_stop(int sig)
{
    struct master_svc *svc;
    struct timeval tv = {MASTER_STOP_GRACE, 0};

    if (master.stopping) {
        if (master.stop_round == 0 && master.stop_timer != NULL) {
            /* Impatient: go straight to SIGKILL. */
            evtimer_del(master.stop_timer);
            master_sig_on_stop_timer(-1, 0, NULL);
        }
        return;
    }
    master.stopping = true;
    log_info("terminating on signal %d", sig);
    for (svc = TAILQ_FIRST(&master.services); svc != NULL;
         svc = TAILQ_NEXT(svc, entries)) {
        master_svc_close(svc);
    }
    master_sig_kill_all(SIGTERM);
    if (master.nchildren == 0) {
        master_finish();
        return;
    }
    master.stop_timer =
        evtimer_new(master.base, master_sig_on_stop_timer, NULL);
    if (master.stop_timer == NULL)
        log_fatal("cannot create the stop timer");
    evtimer_add(master.stop_timer, &tv);
}

static void master_sig_reap(void)
{
    pid_t pid;
    int status;

    for (;;) {
        struct master_child *child;

        pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid <= 0)
            return;
        if ((child = master_child_find(pid)) != NULL)
            master_child_exited(child, status);
    }
}

static void master_sig_on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    switch (sig) {
    case SIGHUP:
        master_reload();
        break;
    case SIGTERM:
    case SIGINT:
        master_stop((int)sig);
        break;
    case SIGCHLD:
        master_sig_reap();
        break;
    }
}

void master_sig_init(void)
{
    static const int sigs[] = {SIGHUP, SIGTERM, SIGINT, SIGCHLD};
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        master_sig_events[i] =
            evsignal_new(master.base, sigs[i], master_sig_on_signal, NULL);
        if (master_sig_events[i] == NULL ||
            evsignal_add(master_sig_events[i], NULL) < 0)
            log_fatal("cannot handle signal %d", sigs[i]);
    }
}

void master_sig_free(void)
{
    for (size_t i = 0;
         i < sizeof(master_sig_events) / sizeof(master_sig_events[0]); i++) {
        if (master_sig_events[i] != NULL)
            event_free(master_sig_events[i]);
        master_sig_events[i] = NULL;
    }
    if (master.stop_timer != NULL)
        event_free(master.stop_timer);
    master.stop_timer = NULL;
}
