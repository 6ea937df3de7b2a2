/*
 * imap_notify - change notification for IDLE: one inotify descriptor
 * per process (fs.inotify.max_user_instances is small), with a watch on
 * the new/ and cur/ directories of each mailbox some session IDLEs on.
 * inotify gives one watch per directory however often it is added, so
 * watches are counted here and removed with their last session.
 *
 * When a watched directory changes (local delivered into new/, another
 * session renamed or removed a file in cur/), every session IDLEing on
 * it syncs and sends its untagged updates at once: delivery to IDLE
 * client within one event loop turn, no polling.  Only IDLE sessions
 * are woken; the others see changes at their next command.
 *
 * If inotify is unavailable (limits), IDLE still works but only reports
 * changes when it ends; the log says so once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <event2/event.h>

#include "imapd/imapd.h"
#include "util/htable.h"
#include "util/log.h"
#include "util/mem.h"

#define IMAP_NOTIFY_MASK                                                       \
    (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB |         \
     IN_DELETE_SELF | IN_MOVE_SELF)
/* Sessions woken by one batch of events; more wait for the next read. */
#define IMAP_NOTIFY_BATCH 4096

LIST_HEAD(imap_watch_links, imap_watch_link);

struct imap_watch {
    int wd;
    size_t refs;
    struct imap_watch_links links;
};

struct imap_watch_link {
    struct imap_session *s;
    struct imap_watch *w;
    LIST_ENTRY(imap_watch_link) entries;
};

static int imap_notify_fd = -1;
static struct event *imap_notify_ev;
static struct htable *imap_watches; /* "wd" -> struct imap_watch */
static bool imap_notify_warned;

static void imap_notify_key(char *key, size_t len, int wd)
{
    snprintf(key, len, "%d", wd);
}

static void imap_notify_on_read(evutil_socket_t fd, short what, void *arg)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    struct imap_session **wake;
    size_t nwake = 0;
    ssize_t n;

    (void)what;
    (void)arg;
    wake = xcalloc(IMAP_NOTIFY_BATCH, sizeof(*wake));
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            char key[16];
            struct imap_watch *w;
            struct imap_watch_link *l;

            p += sizeof(*ev) + ev->len;
            imap_notify_key(key, sizeof(key), ev->wd);
            if ((w = htable_get(imap_watches, key)) == NULL)
                continue;
            for (l = LIST_FIRST(&w->links); l != NULL;
                 l = LIST_NEXT(l, entries)) {
                struct imap_session *ls = l->s;
                bool seen = false;

                for (size_t i = 0; i < nwake && !seen; i++)
                    seen = wake[i] == ls;
                if (!seen && nwake < IMAP_NOTIFY_BATCH)
                    wake[nwake++] = ls;
            }
            if (ev->mask & IN_IGNORED) {
                /* The directory is gone: its wd means nothing now. */
                htable_del(imap_watches, key);
                w->wd = -1;
            }
        }
    }
    /* Waking a session may end it (and unlink it from its watches):
     * walk the copy, in which each session appears once. */
    for (size_t i = 0; i < nwake; i++)
        imap_idle_wake(wake[i]);
    free(wake);
}

void imap_notify_init(void)
{
    imap_watches = htable_new(64);
    imap_notify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (imap_notify_fd < 0) {
        log_warn("inotify: %m: IDLE reports changes only when it ends");
        imap_notify_warned = true;
        return;
    }
    imap_notify_ev = event_new(imapd_base, imap_notify_fd,
                               EV_READ | EV_PERSIST, imap_notify_on_read,
                               NULL);
    event_add(imap_notify_ev, NULL);
}

void imap_notify_shutdown(void)
{
    if (imap_notify_ev != NULL)
        event_free(imap_notify_ev);
    imap_notify_ev = NULL;
    if (imap_notify_fd >= 0)
        close(imap_notify_fd);
    imap_notify_fd = -1;
    htable_free(imap_watches, free);
    imap_watches = NULL;
}

static struct imap_watch_link *imap_notify_add(struct imap_session *s,
                                               const char *dir)
{
    char key[16];
    struct imap_watch *w;
    struct imap_watch_link *l;
    int wd = inotify_add_watch(imap_notify_fd, dir, IMAP_NOTIFY_MASK);

    if (wd < 0) {
        if (!imap_notify_warned)
            log_warn("inotify_add_watch %s: %m (raise "
                     "fs.inotify.max_user_watches): IDLE reports changes "
                     "only when it ends",
                     dir);
        imap_notify_warned = true;
        return NULL;
    }
    imap_notify_key(key, sizeof(key), wd);
    if ((w = htable_get(imap_watches, key)) == NULL) {
        w = xcalloc(1, sizeof(*w));
        w->wd = wd;
        LIST_INIT(&w->links);
        htable_put(imap_watches, key, w);
    }
    w->refs++;
    l = xcalloc(1, sizeof(*l));
    l->s = s;
    l->w = w;
    LIST_INSERT_HEAD(&w->links, l, entries);
    return l;
}

static void imap_notify_drop(struct imap_watch_link *l)
{
    struct imap_watch *w = l->w;

    LIST_REMOVE(l, entries);
    free(l);
    if (--w->refs > 0)
        return;
    if (w->wd >= 0) {
        char key[16];

        imap_notify_key(key, sizeof(key), w->wd);
        htable_del(imap_watches, key);
        (void)inotify_rm_watch(imap_notify_fd, w->wd);
    }
    free(w);
}

int imap_notify_watch(struct imap_session *s)
{
    const char *dirs[2] = {NULL, NULL};

    if (s->mb == NULL || imap_notify_fd < 0 || s->idle_watching)
        return 0;
    imap_mailbox_watch_dirs(s->mb, dirs);
    for (int i = 0; i < 2; i++)
        s->watch_links[i] = dirs[i] ? imap_notify_add(s, dirs[i]) : NULL;
    s->idle_watching = true;
    return 0;
}

void imap_notify_unwatch(struct imap_session *s)
{
    for (int i = 0; i < 2; i++) {
        if (s->watch_links[i] != NULL)
            imap_notify_drop(s->watch_links[i]);
        s->watch_links[i] = NULL;
    }
    s->idle_watching = false;
}
