/*
 * qmgr - the queue manager: one long-lived process (master.cf maxproc 1,
 * wakeup 300) that moves messages from incoming/ (and, when due, from
 * deferred/) into active/, hands their recipients to delivery agents and
 * records the outcome in the queue file.  See qmgr.h for the parts and
 * docs/delivery.md for the scheduling and recovery rules.
 *
 * Inputs: its listening socket private/qmgr, which carries triggers
 * (anything else is ignored):
 *     W  wakeup (master, every `wakeup` seconds): scan incoming/
 *     I  scan incoming/
 *     D  scan deferred/ for messages that are due
 *     F  flush: forget dead destinations, make every deferred message
 *        due now, then scan
 *     A  the same as F (Postfix: "ignore time stamps")
 *     S<site>\n  flush the deferred messages with a recipient for that
 *        domain or next hop (`posthorn queue -s site`)
 *     Q<id>\n    schedule that one message now (`posthorn queue -i id`)
 * Single-letter triggers may follow each other in one connection; S and
 * Q take the rest of their line (at most QMGR_TRIGGER_LINE_MAX bytes).
 * and inotify on incoming/, so a file that cleanup commits is taken at
 * once, without polling.  It trusts the queue directory layout and
 * nothing in the files beyond what qfile.h validates.
 *
 * Start-up recovery: active/ goes back to incoming/ (a previous qmgr died
 * with those in hand), stale tmp/ files and orphaned defer logs are
 * removed (and again every hour).  A lock on the active/ directory keeps
 * a second qmgr from running on the same queue.
 *
 * Exits on SIGTERM, SIGHUP (master restarts it with the new
 * configuration) or when master goes away; whatever is in active/ then is
 * recovered by the next qmgr.  Fatal only for a broken environment (no
 * queue directory, no event loop).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "qmgr/qmgr.h"
#include "qmgr/qmgr_transport.h"
#include "global/config.h"
#include "global/server.h"
#include "util/log.h"
#include "util/mem.h"

/* A trigger client gets this long and this many bytes. */
#define QMGR_TRIGGER_TIMEOUT 10
#define QMGR_TRIGGER_MAX 4096
/* The argument of S and Q: a domain, a next hop or a queue ID. */
#define QMGR_TRIGGER_LINE_MAX 300
/* How often to look at server_should_exit() (SIGHUP, master gone). */
#define QMGR_TICK_MS 500

struct qmgr_params qmgr_params;
struct event_base *qmgr_base;
struct resolver *qmgr_resolver;
struct qmgr_router *qmgr_router;

static int qmgr_inotify_fd = -1;
static struct event *qmgr_inotify_ev;
static struct event *qmgr_tick_ev;
static struct event *qmgr_term_ev;
static struct event *qmgr_int_ev;
static struct evconnlistener *qmgr_listener;

double qmgr_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "name" or "name@domain": the address with a domain. */
static char *qmgr_qualify(const char *name, const char *domain)
{
    return strchr(name, '@') ? xstrdup(name) : xasprintf("%s@%s", name, domain);
}

static void qmgr_read_params(void)
{
    struct config *cfg = config_global();
    const char *myorigin = config_str(cfg, "myorigin");

    qmgr_params.queue_dir = xstrdup(config_str(cfg, "queue_directory"));
    qmgr_params.myhostname = xstrdup(config_str(cfg, "myhostname"));
    qmgr_params.min_backoff = config_time(cfg, "minimal_backoff_time");
    qmgr_params.max_backoff = config_time(cfg, "maximal_backoff_time");
    qmgr_params.max_lifetime = config_time(cfg, "maximal_queue_lifetime");
    qmgr_params.sync_delay_ms = config_int(cfg, "queue_delivery_sync_delay");
    qmgr_params.bounce_lifetime = config_time(cfg, "bounce_queue_lifetime");
    qmgr_params.queue_run_delay = config_time(cfg, "queue_run_delay");
    qmgr_params.active_limit = config_int(cfg, "qmgr_message_active_limit");
    qmgr_params.local_rcpt_limit =
        config_int(cfg, "local_destination_concurrency_limit");
    qmgr_params.virtual_domain_limit =
        config_int(cfg, "virtual_destination_concurrency_limit");
    qmgr_params.delay_warning = config_time(cfg, "delay_warning_time");
    qmgr_params.bounce_size_limit = config_int(cfg, "bounce_size_limit");
    qmgr_params.notice_rcpt =
        qmgr_qualify(config_str(cfg, "2bounce_notice_recipient"), myorigin);
    qmgr_params.double_bounce =
        qmgr_qualify(config_str(cfg, "double_bounce_sender"), myorigin);
    if (qmgr_params.active_limit < 1)
        qmgr_params.active_limit = 1;
    if (qmgr_params.virtual_domain_limit < 1)
        qmgr_params.virtual_domain_limit = 1;
    if (qmgr_params.local_rcpt_limit < 1)
        qmgr_params.local_rcpt_limit = 1;
    if (qmgr_params.max_backoff < qmgr_params.min_backoff)
        log_warn("maximal_backoff_time (%llds) is below minimal_backoff_time "
                 "(%llds); using the minimum",
                 qmgr_params.max_backoff, qmgr_params.min_backoff);
}

static void qmgr_free_params(void)
{
    free(qmgr_params.queue_dir);
    free(qmgr_params.myhostname);
    free(qmgr_params.notice_rcpt);
    free(qmgr_params.double_bounce);
    memset(&qmgr_params, 0, sizeof(qmgr_params));
}

/* ---- triggers ---- */

static void qmgr_trigger(char c)
{
    switch (c) {
    case 'W':
    case 'I':
        qmgr_queue_scan_incoming();
        break;
    case 'D':
        qmgr_queue_scan_deferred(false);
        break;
    case 'F':
    case 'A':
        qmgr_transport_revive(NULL);
        qmgr_queue_flush_deferred();
        qmgr_queue_scan_incoming();
        break;
    case '\n':
    case '\r':
        break;
    default:
        log_debug("ignoring unknown trigger 0x%02x", (unsigned char)c);
        break;
    }
}

/* The argument of S or Q, complete. */
static void qmgr_trigger_line(char cmd, const char *arg)
{
    char shown[QMGR_TRIGGER_LINE_MAX + 1];
    bool ok = *arg != 0;

    /* A domain, next hop or queue ID: one printable token. */
    for (const char *p = arg; ok && *p; p++)
        ok = *p > 0x20 && *p < 0x7f;
    if (!ok) {
        log_warn("ignoring malformed %c trigger \"%s\"", cmd,
                 log_printable(shown, sizeof(shown), arg, strlen(arg)));
        return;
    }
    if (cmd == 'S')
        qmgr_queue_flush_site(arg);
    else
        qmgr_queue_flush_message(arg);
}

struct qmgr_trigger_client {
    size_t count;
    char cmd; /* 'S' or 'Q' while reading its line, else 0 */
    char line[QMGR_TRIGGER_LINE_MAX + 1];
    size_t len;
};

/* One byte; false when the client must be dropped. */
static bool qmgr_trigger_byte(struct qmgr_trigger_client *cl, char c)
{
    if (cl->cmd == 0) {
        if (c == 'S' || c == 'Q') {
            cl->cmd = c;
            cl->len = 0;
        } else {
            qmgr_trigger(c);
        }
        return true;
    }
    if (c == '\n') {
        cl->line[cl->len] = 0;
        qmgr_trigger_line(cl->cmd, cl->line);
        cl->cmd = 0;
        return true;
    }
    if (cl->len >= QMGR_TRIGGER_LINE_MAX)
        return false;
    cl->line[cl->len++] = c;
    return true;
}

static void qmgr_trigger_read(struct bufferevent *bev, void *ctx)
{
    struct qmgr_trigger_client *cl = ctx;
    struct evbuffer *in = bufferevent_get_input(bev);
    char bytes[512];
    int n;

    while ((n = evbuffer_remove(in, bytes, sizeof(bytes))) > 0) {
        for (int i = 0; i < n; i++) {
            if (cl->count++ >= QMGR_TRIGGER_MAX ||
                !qmgr_trigger_byte(cl, bytes[i])) {
                bufferevent_free(bev);
                free(cl);
                return;
            }
        }
    }
}

static void qmgr_trigger_event(struct bufferevent *bev, short what, void *ctx)
{
    bufferevent_free(bev);
    free(ctx);
}

static void qmgr_accept(struct evconnlistener *l, evutil_socket_t fd,
                        struct sockaddr *sa, int salen, void *ctx)
{
    struct timeval tmo = {QMGR_TRIGGER_TIMEOUT, 0};
    struct bufferevent *bev;
    struct qmgr_trigger_client *cl;

    bev = bufferevent_socket_new(qmgr_base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        close(fd);
        return;
    }
    cl = xcalloc(1, sizeof(*cl));
    bufferevent_setcb(bev, qmgr_trigger_read, NULL, qmgr_trigger_event, cl);
    bufferevent_set_timeouts(bev, &tmo, &tmo);
    bufferevent_enable(bev, EV_READ);
}

static void qmgr_accept_error(struct evconnlistener *l, void *ctx)
{
    int err = EVUTIL_SOCKET_ERROR();

    /* Out of descriptors and the like: the wakeup and inotify still work. */
    log_warn("accept on the trigger socket: %s",
             evutil_socket_error_to_string(err));
}

/* ---- inotify on incoming/ ---- */

static void qmgr_inotify_read(evutil_socket_t fd, short what, void *ctx)
{
    char buf[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)]
        __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;

    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)(void *)p;

            if (ev->mask & IN_Q_OVERFLOW)
                qmgr_queue_scan_incoming(); /* events were lost */
            else if (ev->len > 0 && !(ev->mask & IN_ISDIR))
                qmgr_queue_take_incoming(ev->name);
            p += sizeof(struct inotify_event) + ev->len;
        }
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR)
        log_warn("inotify read: %s", strerror(errno));
    /* New mail was just synced or is about to be: deliveries that rode
     * on an earlier round count now. */
    qmgr_sync_check();
}

static void qmgr_inotify_init(void)
{
    struct buf path = BUF_INIT;

    qmgr_queue_path(&path, MAIL_QUEUE_INCOMING, "");
    qmgr_inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (qmgr_inotify_fd < 0 ||
        inotify_add_watch(qmgr_inotify_fd, path.data,
                          IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
        /* Still correct, only slower: incoming/ is scanned every tick. */
        log_warn("inotify on %s: %s; scanning for new mail twice a second "
                 "instead",
                 path.data, strerror(errno));
        if (qmgr_inotify_fd >= 0)
            close(qmgr_inotify_fd);
        qmgr_inotify_fd = -1;
    } else {
        qmgr_inotify_ev =
            event_new(qmgr_base, qmgr_inotify_fd, EV_READ | EV_PERSIST,
                      qmgr_inotify_read, NULL);
        event_add(qmgr_inotify_ev, NULL);
    }
    buf_free(&path);
}

/* ---- life cycle ---- */

static void qmgr_tick(evutil_socket_t fd, short what, void *ctx)
{
    if (server_should_exit())
        event_base_loopbreak(qmgr_base);
    else if (qmgr_inotify_fd < 0)
        qmgr_queue_scan_incoming(); /* no inotify: poll */
}

static void qmgr_on_signal(evutil_socket_t sig, short what, void *ctx)
{
    log_debug("signal %d: exiting", (int)sig);
    event_base_loopbreak(qmgr_base);
}

/*
 * Only one qmgr per queue: a second one would "recover" the first one's
 * active messages and deliver them twice.  master never runs two; this
 * guards against a hand-started one.  The lock is on active/ itself
 * (flock on the directory), the thing it protects.
 */
static int qmgr_lock(void)
{
    struct buf path = BUF_INIT;
    bool said = false;
    int fd;

    qmgr_queue_path(&path, MAIL_QUEUE_ACTIVE, "");
    fd = open(path.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        log_fatal("open %s: %s", path.data, strerror(errno));
    while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK && errno != EINTR)
            log_fatal("lock %s: %s", path.data, strerror(errno));
        if (server_should_exit()) {
            close(fd);
            fd = -1;
            break;
        }
        if (!said)
            log_info("waiting for another qmgr to release %s", path.data);
        said = true;
        usleep(200 * 1000);
    }
    buf_free(&path);
    return fd;
}

static void qmgr_pre_init(void)
{
    char err[512];

    qmgr_resolver = resolver_open(config_global(), err, sizeof(err));
    if (qmgr_resolver == NULL)
        log_fatal("%s", err);
    qmgr_router =
        qmgr_router_open(config_global(), qmgr_resolver, err, sizeof(err));
    if (qmgr_router == NULL)
        log_fatal("%s", err);
}

static void qmgr_run(int listen_fd)
{
    struct timeval tick = {0, QMGR_TICK_MS * 1000};
    int lock_fd;

    qmgr_read_params();
    if ((lock_fd = qmgr_lock()) < 0)
        return;
    if ((qmgr_base = event_base_new()) == NULL)
        log_fatal("cannot create the event loop");

    qmgr_queue_recover();
    qmgr_queue_housekeeping();
    qfile_recycle_scan(qmgr_params.queue_dir);
    qmgr_queue_init();
    qmgr_transport_init(config_global());
    qmgr_bounce_init();
    qmgr_sync_init(qmgr_base);

    qmgr_listener = evconnlistener_new(qmgr_base, qmgr_accept, NULL,
                                       LEV_OPT_CLOSE_ON_EXEC, 0, listen_fd);
    if (qmgr_listener == NULL)
        log_fatal("cannot listen on descriptor %d", listen_fd);
    evconnlistener_set_error_cb(qmgr_listener, qmgr_accept_error);
    qmgr_inotify_init();
    qmgr_tick_ev = event_new(qmgr_base, -1, EV_PERSIST, qmgr_tick, NULL);
    event_add(qmgr_tick_ev, &tick);
    qmgr_term_ev = evsignal_new(qmgr_base, SIGTERM, qmgr_on_signal, NULL);
    qmgr_int_ev = evsignal_new(qmgr_base, SIGINT, qmgr_on_signal, NULL);
    event_add(qmgr_term_ev, NULL);
    event_add(qmgr_int_ev, NULL);

    /* inotify is armed before the first scan: nothing slips in between. */
    qmgr_queue_scan_incoming();
    qmgr_queue_scan_deferred(false);

    if (!server_should_exit())
        event_base_dispatch(qmgr_base);

    /* Files stay where they are; active/ is recovered at the next start. */
    evconnlistener_free(qmgr_listener);
    /* Deliveries waiting for the disk are counted (or forgotten) while
     * their messages exist.  Messages next: they hold entries and
     * concurrency keys of the transports and notices of the bounce
     * queue. */
    qmgr_sync_shutdown();
    qmgr_message_free_all();
    qmgr_transport_shutdown();
    qmgr_bounce_shutdown();
    qmgr_queue_shutdown();
    if (qmgr_inotify_ev)
        event_free(qmgr_inotify_ev);
    if (qmgr_inotify_fd >= 0)
        close(qmgr_inotify_fd);
    event_free(qmgr_tick_ev);
    event_free(qmgr_term_ev);
    event_free(qmgr_int_ev);
    event_base_free(qmgr_base);
    qmgr_base = NULL;
    qmgr_router_close(qmgr_router);
    resolver_close(qmgr_resolver);
    qmgr_free_params();
    close(lock_fd);
}

int main(int argc, char **argv)
{
    static const struct server_opts opts = {
        .name = "qmgr",
        .pre_init = qmgr_pre_init,
        .run = qmgr_run,
    };

    return server_main(argc, argv, &opts);
}
