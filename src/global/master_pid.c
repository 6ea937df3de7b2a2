/*
 * master_pid - lock, write and check the master's pid file.
 *
 * Trusts the path (from main.cf); the file's content is only a hint read
 * back for messages and signals, parsed strictly.  Errors come back as -1
 * with a message naming the file.
 */
#include "global/master_pid.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "global/config.h"
#include "global/mail_proto.h"
#include "util/str.h"

int master_pid_path(struct config *cfg, char *dst, size_t size)
{
    int n = snprintf(dst, size, "%s/%s/%s", config_str(cfg, "queue_directory"),
                     MAIL_QUEUE_PID, MASTER_PID_FILE);

    return n < 0 || (size_t)n >= size ? -1 : 0;
}

static pid_t master_pid_read(int fd)
{
    char text[32];
    ssize_t n;
    long long v;

    do {
        n = pread(fd, text, sizeof(text) - 1, 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0)
        return 0;
    text[n] = 0;
    if (!str_to_llong(str_trim(text), &v) || v <= 0 || v > 0x7fffffff)
        return 0;
    return (pid_t)v;
}

static void master_pid_whole(struct flock *fl, short type)
{
    memset(fl, 0, sizeof(*fl));
    fl->l_type = type;
    fl->l_whence = SEEK_SET;
    fl->l_start = 0;
    fl->l_len = 0;
}

int master_pid_lock(const char *path, pid_t *holder, char *err, size_t errlen)
{
    struct flock fl;
    int fd;

    *holder = 0;
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "open %s: %s", path, strerror(errno));
        return -1;
    }
    master_pid_whole(&fl, F_WRLCK);
    if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
        int saved = errno;

        if (saved == EAGAIN || saved == EACCES) {
            *holder = master_pid_read(fd);
            snprintf(err, errlen, "%s is locked by another master", path);
            saved = EAGAIN;
        } else {
            snprintf(err, errlen, "lock %s: %s", path, strerror(saved));
        }
        close(fd);
        errno = saved;
        return -1;
    }
    /* Whatever a dead master left there is not our pid. */
    if (ftruncate(fd, 0) < 0) {
        snprintf(err, errlen, "truncate %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int master_pid_write(int fd, pid_t pid, char *err, size_t errlen)
{
    char text[32];
    int n = snprintf(text, sizeof(text), "%ld\n", (long)pid);
    ssize_t w;

    if (ftruncate(fd, 0) < 0) {
        snprintf(err, errlen, "truncate pid file: %s", strerror(errno));
        return -1;
    }
    do {
        w = pwrite(fd, text, (size_t)n, 0);
    } while (w < 0 && errno == EINTR);
    if (w != n) {
        snprintf(err, errlen, "write pid file: %s",
                 w < 0 ? strerror(errno) : "short write");
        return -1;
    }
    return 0;
}

int master_pid_check(const char *path, pid_t *pid, char *err, size_t errlen)
{
    struct flock fl;
    int fd;

    *pid = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "open %s: %s", path, strerror(errno));
        return -1;
    }
    master_pid_whole(&fl, F_WRLCK);
    if (fcntl(fd, F_OFD_GETLK, &fl) < 0) {
        snprintf(err, errlen, "test lock on %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (fl.l_type == F_UNLCK) {
        close(fd);
        return 0;
    }
    *pid = master_pid_read(fd);
    close(fd);
    return 1;
}
