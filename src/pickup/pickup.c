/*
 * pickup - takes local submissions out of maildrop/ and hands them to
 * cleanup (Postfix's pickup).  One persistent process (master.cf
 * "pickup unix n - n 60 1 pickup"): the event-server skeleton gives it
 * its socket, on which master's wakeup ("W", every 60 seconds) and any
 * other trigger byte mean "scan maildrop/ now".  It also watches maildrop/
 * with inotify, so a file that sendmail renames into place is taken at
 * once; the wakeups cover lost events and a cleanup that was down.
 *
 * Every file is hostile (pickup_file.c); this file trusts only the queue
 * layout.  Files whose names start with "." are sendmail's files in
 * progress: left alone, and removed when untouched for a day (their
 * writer is gone; nothing was acknowledged).  A lock on maildrop/ keeps
 * a second pickup from submitting the same file twice.
 *
 * Exits on SIGTERM, on SIGHUP (master starts a new one) and when master
 * goes away.  Fatal only when the queue directory cannot be opened.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "global/config.h"
#include "global/mail_proto.h"
#include "global/server.h"
#include "pickup/pickup.h"
#include "util/log.h"
#include "util/mem.h"

/* How often to look at server_should_exit(). */
#define PICKUP_TICK_MS 500
/* A trigger client gets this long to send its byte. */
#define PICKUP_TRIGGER_TIMEOUT_MS 1000
#define PICKUP_TRIGGER_MAX 64
/* sendmail writes at least once a minute; a day of silence is death. */
#define PICKUP_TMP_MAX_AGE (24 * 60 * 60)
/* Room for the envelope on top of message_size_limit. */
#define PICKUP_ENVELOPE_MAX (2 * 1024 * 1024)

struct pickup_params pickup_params = {NULL, -1, -1, 0, 0};

static void pickup_pre_init(void)
{
    struct config *cfg = config_global();
    long long limit = config_size(cfg, "message_size_limit");
    long long ipc = config_time(cfg, "ipc_timeout");

    pickup_params.queue_dir = config_str(cfg, "queue_directory");
    pickup_params.file_limit =
        limit > 0 && limit < LLONG_MAX - PICKUP_ENVELOPE_MAX
            ? limit + PICKUP_ENVELOPE_MAX
            : LLONG_MAX;
    pickup_params.ipc_timeout_ms =
        ipc > 0 && ipc < 86400 ? ipc * 1000 : 86400 * 1000LL;
}

static int pickup_open_dir(const char *queue)
{
    char *path = xasprintf("%s/%s", pickup_params.queue_dir, queue);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0)
        log_fatal("open %s: %s", path, strerror(errno));
    free(path);
    return fd;
}

/* A "." file nobody has written to for a day. */
static void pickup_stale(const char *name, time_t now)
{
    struct stat st;

    if (fstatat(pickup_params.maildrop_fd, name, &st, AT_SYMLINK_NOFOLLOW) <
            0 ||
        now - st.st_mtime < PICKUP_TMP_MAX_AGE)
        return;
    if (unlinkat(pickup_params.maildrop_fd, name,
                 S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) == 0)
        log_info("removed stale temporary file maildrop/%.64s (uid=%ld, "
                 "unchanged for %llds)",
                 name, (long)st.st_uid, (long long)(now - st.st_mtime));
}

static void pickup_scan(void)
{
    struct dirent *de;
    time_t now = time(NULL);
    int dfd = dup(pickup_params.maildrop_fd);
    DIR *dir = dfd >= 0 ? fdopendir(dfd) : NULL;

    if (dir == NULL) {
        log_warn("open %s/%s: %s", pickup_params.queue_dir, MAIL_QUEUE_MAILDROP,
                 strerror(errno));
        if (dfd >= 0)
            close(dfd);
        return;
    }
    rewinddir(dir);
    while ((de = readdir(dir)) != NULL && !server_should_exit()) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (de->d_name[0] == '.') {
            pickup_stale(de->d_name, now);
            continue;
        }
        if (pickup_file(de->d_name) == PICKUP_STOP)
            break; /* cleanup is down: the next wakeup tries again */
    }
    closedir(dir);
}

/* Take one trigger connection: its bytes all mean "scan". */
static void pickup_accept(int listen_fd)
{
    char buf[PICKUP_TRIGGER_MAX];
    int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    struct pollfd pfd;

    if (fd < 0)
        return; /* EAGAIN and friends: nothing to take */
    pfd.fd = fd;
    pfd.events = POLLIN;
    /* Read what the client sends before hanging up on it. */
    if (poll(&pfd, 1, PICKUP_TRIGGER_TIMEOUT_MS) > 0)
        (void)read(fd, buf, sizeof(buf));
    close(fd);
}

static int pickup_inotify(void)
{
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    char *path =
        xasprintf("%s/%s", pickup_params.queue_dir, MAIL_QUEUE_MAILDROP);

    if (fd < 0 ||
        inotify_add_watch(fd, path, IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
        /* Still correct, only slower: mail waits for the next wakeup. */
        log_warn("inotify on %s: %s; local mail is picked up at each "
                 "wakeup only",
                 path, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    free(path);
    return fd;
}

/* Drain inotify; true when something arrived. */
static bool pickup_inotify_read(int fd)
{
    char buf[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)]
        __attribute__((aligned(__alignof__(struct inotify_event))));
    bool any = false;
    ssize_t n;

    while ((n = read(fd, buf, sizeof(buf))) > 0)
        any = true;
    return any;
}

/* Only one pickup per maildrop/: a second would submit files twice. */
static bool pickup_lock(void)
{
    bool said = false;

    while (flock(pickup_params.maildrop_fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK && errno != EINTR)
            log_fatal("lock %s/%s: %s", pickup_params.queue_dir,
                      MAIL_QUEUE_MAILDROP, strerror(errno));
        if (server_should_exit())
            return false;
        if (!said)
            log_info("waiting for another pickup to release %s/%s",
                     pickup_params.queue_dir, MAIL_QUEUE_MAILDROP);
        said = true;
        usleep(200 * 1000);
    }
    return true;
}

static void pickup_run(int listen_fd)
{
    int ino_fd;

    pickup_params.maildrop_fd = pickup_open_dir(MAIL_QUEUE_MAILDROP);
    pickup_params.corrupt_fd = pickup_open_dir(MAIL_QUEUE_CORRUPT);
    if (!pickup_lock())
        return;
    /* Armed before the first scan: nothing slips in between. */
    ino_fd = pickup_inotify();
    pickup_scan();
    while (!server_should_exit()) {
        struct pollfd pfd[2] = {{listen_fd, POLLIN, 0}, {ino_fd, POLLIN, 0}};
        bool scan = false;
        int n = poll(pfd, ino_fd >= 0 ? 2 : 1, PICKUP_TICK_MS);

        if (n < 0 && errno != EINTR)
            log_fatal("poll: %s", strerror(errno));
        if (n <= 0)
            continue;
        if (pfd[0].revents & POLLIN) {
            pickup_accept(listen_fd);
            scan = true;
        }
        if (ino_fd >= 0 && (pfd[1].revents & POLLIN) &&
            pickup_inotify_read(ino_fd))
            scan = true;
        if (scan)
            pickup_scan();
    }
    if (ino_fd >= 0)
        close(ino_fd);
    close(pickup_params.corrupt_fd);
    close(pickup_params.maildrop_fd);
}

int main(int argc, char **argv)
{
    static const struct server_opts opts = {
        .name = "pickup",
        .pre_init = pickup_pre_init,
        .run = pickup_run,
    };

    return server_main(argc, argv, &opts);
}
