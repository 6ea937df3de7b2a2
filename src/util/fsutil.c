/*
 * fsutil - file system helpers with the error handling done once.
 *
 * Given paths under the queue and mail directories, which the owner has
 * already chosen safely.  The durability helpers (fsync_dir,
 * file_write_atomic) exist because a mail system may only say "250 OK"
 * once the data and the directory entry naming it are on disk.  Failures
 * return -1 with errno describing the first thing that went wrong;
 * cleanup steps never overwrite that errno.
 */
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/mem.h"

int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    struct pollfd pfd;
    ssize_t n;

    while (len > 0) {
        n = write(fd, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* A non-blocking descriptor: wait instead of spinning. */
            pfd.fd = fd;
            pfd.events = POLLOUT;
            if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
                return -1;
            continue;
        }
        if (n == 0)
            errno = EIO;
        return -1;
    }
    return 0;
}

ssize_t read_full(int fd, void *data, size_t len)
{
    char *p = data;
    size_t done = 0;
    ssize_t n;

    if (len > SSIZE_MAX)
        len = SSIZE_MAX;
    while (done < len) {
        n = read(fd, p + done, len - done);
        if (n > 0)
            done += (size_t)n;
        else if (n == 0)
            break;
        else if (errno != EINTR)
            return -1;
    }
    return (ssize_t)done;
}

int fsync_dir(const char *path)
{
    int fd, saved;

    fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fsync(fd) < 0) {
        saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return close(fd);
}

static int mkdir_one(const char *path, mode_t mode)
{
    struct stat st;

    if (mkdir(path, mode) == 0)
        return 0;
    if (errno == EEXIST) {
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            return 0;
        errno = ENOTDIR;
    }
    return -1;
}

int mkdir_p(const char *path, mode_t mode)
{
    char *copy, *p;
    int rc = 0, saved;

    if (path == NULL || *path == 0) {
        errno = ENOENT;
        return -1;
    }
    copy = xstrdup(path);
    for (p = copy + 1; *p; p++) {
        if (*p != '/' || p[-1] == '/')
            continue;
        *p = 0;
        rc = mkdir_one(copy, mode);
        *p = '/';
        if (rc < 0)
            break;
    }
    if (rc == 0)
        rc = mkdir_one(copy, mode);
    saved = errno;
    free(copy);
    errno = saved;
    return rc;
}

int file_read_all(const char *path, struct buf *b, size_t limit)
{
    size_t start = b->len, got = 0;
    ssize_t n;
    int fd, saved;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    for (;;) {
        /* Read one byte past the limit to tell "exactly limit" from more. */
        size_t want = limit - got < 65536 ? limit - got + 1 : 65536;
        buf_reserve(b, want);
        n = read(fd, b->data + b->len, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto fail;
        if (n == 0)
            break;
        b->len += (size_t)n;
        b->data[b->len] = 0;
        got += (size_t)n;
        if (got > limit) {
            errno = EFBIG;
            goto fail;
        }
    }
    return close(fd);

fail:
    saved = errno;
    close(fd);
    buf_truncate(b, start);
    errno = saved;
    return -1;
}

int file_write_atomic(const char *path, const void *data, size_t len,
                      mode_t mode)
{
    char *tmp, *dir, *slash;
    int fd, saved, rc;

    tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    (void)unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        goto fail_free;
    /* The umask must not decide the final mode. */
    if (fchmod(fd, mode) < 0 || write_all(fd, data, len) < 0 || fsync(fd) < 0) {
        saved = errno;
        close(fd);
        errno = saved;
        goto fail_unlink;
    }
    if (close(fd) < 0 || rename(tmp, path) < 0)
        goto fail_unlink;
    free(tmp);

    dir = xstrdup(path);
    slash = strrchr(dir, '/');
    if (slash == NULL)
        rc = fsync_dir(".");
    else {
        slash[slash == dir] = 0; /* "/name" lives in "/" */
        rc = fsync_dir(dir);
    }
    saved = errno;
    free(dir);
    errno = saved;
    return rc;

fail_unlink:
    saved = errno;
    (void)unlink(tmp);
    errno = saved;
fail_free:
    saved = errno;
    free(tmp);
    errno = saved;
    return -1;
}
