/*
 * groupsync - group commit across processes (see groupsync.h).
 *
 * Trusts: the state file is only writable by the mail system's own
 * processes (it lives in the queue's private directory).  A damaged state
 * block (bad magic) is re-initialised under an exclusive flock; a state
 * block left by a crashed process is repaired through the robust mutex and
 * the leader time-out.  Every wait is bounded.
 */
#include "util/groupsync.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/mem.h"

#define GROUPSYNC_MAGIC 0x70687367u /* "phsg" */
#define GROUPSYNC_VERSION 2
/* Followers poll: a process-shared condition variable does not survive
 * a waiter killed with SIGKILL (it stays counted and a later broadcast
 * blocks), so no condition variable is kept in the shared block. */
#define GROUPSYNC_POLL_US 500

struct groupsync_shared {
    uint32_t magic;
    uint32_t version;
    pthread_mutex_t mu;
    uint64_t requested;     /* tickets handed out */
    uint64_t completed;     /* every ticket <= completed is durable */
    int32_t leader_pid;     /* 0: nobody is syncing */
    int64_t leader_started; /* CLOCK_MONOTONIC ms when the leader began */
};

struct groupsync {
    struct groupsync_shared *sh;
    int fs_fd;
    dev_t dev;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int shared_init(struct groupsync_shared *sh)
{
    pthread_mutexattr_t ma;

    memset(sh, 0, sizeof(*sh));
    if (pthread_mutexattr_init(&ma) != 0 ||
        pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED) != 0 ||
        pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST) != 0 ||
        pthread_mutex_init(&sh->mu, &ma) != 0)
        return -1;
    pthread_mutexattr_destroy(&ma);
    sh->version = GROUPSYNC_VERSION;
    __atomic_store_n(&sh->magic, GROUPSYNC_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

struct groupsync *groupsync_open(const char *state_path, const char *fs_path,
                                 char *err, size_t errlen)
{
    struct groupsync_shared *sh = MAP_FAILED;
    struct stat st;
    int fd, fs_fd = -1;

    fd = open(state_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "open %s: %s", state_path, strerror(errno));
        return NULL;
    }
    if (flock(fd, LOCK_EX) < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "lock %s: %s", state_path, strerror(errno));
        goto fail;
    }
    if (st.st_size < (off_t)sizeof(*sh) &&
        ftruncate(fd, (off_t)sizeof(*sh)) < 0) {
        snprintf(err, errlen, "ftruncate %s: %s", state_path, strerror(errno));
        goto fail;
    }
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (sh == MAP_FAILED) {
        snprintf(err, errlen, "mmap %s: %s", state_path, strerror(errno));
        goto fail;
    }
    if (__atomic_load_n(&sh->magic, __ATOMIC_ACQUIRE) != GROUPSYNC_MAGIC ||
        sh->version != GROUPSYNC_VERSION) {
        if (shared_init(sh) < 0) {
            snprintf(err, errlen, "initialise %s: pthread attributes",
                     state_path);
            goto fail;
        }
    }
    (void)flock(fd, LOCK_UN);
    close(fd);
    fd = -1;
    fs_fd = open(fs_path, O_RDONLY | O_CLOEXEC);
    if (fs_fd < 0 || fstat(fs_fd, &st) < 0) {
        snprintf(err, errlen, "open %s: %s", fs_path, strerror(errno));
        goto fail;
    }
    struct groupsync *g = xcalloc(1, sizeof(*g));
    g->sh = sh;
    g->fs_fd = fs_fd;
    g->dev = st.st_dev;
    return g;

fail:
    if (sh != MAP_FAILED)
        munmap(sh, sizeof(*sh));
    if (fd >= 0)
        close(fd);
    if (fs_fd >= 0)
        close(fs_fd);
    return NULL;
}

void groupsync_close(struct groupsync *g)
{
    if (g == NULL)
        return;
    munmap(g->sh, sizeof(*g->sh));
    close(g->fs_fd);
    free(g);
}

dev_t groupsync_dev(const struct groupsync *g)
{
    return g->dev;
}

static int lock(struct groupsync_shared *sh)
{
    int rc = pthread_mutex_lock(&sh->mu);

    if (rc == EOWNERDEAD) {
        /* The holder died; its leadership (if any) dies with it. */
        sh->leader_pid = 0;
        pthread_mutex_consistent(&sh->mu);
        rc = 0;
    }
    return rc;
}

/* A leader that is gone or stuck no longer holds up everyone else. */
static int leader_gone(const struct groupsync_shared *sh)
{
    if (sh->leader_pid == 0)
        return 1;
    if (kill(sh->leader_pid, 0) < 0 && errno == ESRCH)
        return 1;
    return now_ms() - sh->leader_started > GROUPSYNC_LEADER_TIMEOUT_MS;
}

int groupsync_sync(struct groupsync *g)
{
    struct groupsync_shared *sh = g->sh;
    int64_t deadline = now_ms() + 2 * GROUPSYNC_LEADER_TIMEOUT_MS;
    uint64_t ticket;

    if (lock(sh) != 0)
        return syncfs(g->fs_fd);
    ticket = ++sh->requested;
    while (sh->completed < ticket) {
        if (leader_gone(sh)) {
            uint64_t target = sh->requested;
            int rc, saved;

            sh->leader_pid = getpid();
            sh->leader_started = now_ms();
            pthread_mutex_unlock(&sh->mu);
            rc = syncfs(g->fs_fd);
            saved = errno;
            if (lock(sh) != 0)
                return rc;
            if (sh->leader_pid == getpid())
                sh->leader_pid = 0;
            if (rc == 0 && sh->completed < target)
                sh->completed = target;
            if (rc < 0) {
                /* Those who waited on us see completed unchanged and one
                 * of them leads the next round. */
                pthread_mutex_unlock(&sh->mu);
                errno = saved;
                return -1;
            }
            continue;
        }
        if (now_ms() > deadline) {
            /* Something is badly wrong with the shared state; do not
             * hang, and do not trust it either. */
            pthread_mutex_unlock(&sh->mu);
            return syncfs(g->fs_fd);
        }
        pthread_mutex_unlock(&sh->mu);
        usleep(GROUPSYNC_POLL_US);
        if (lock(sh) != 0)
            return syncfs(g->fs_fd);
    }
    pthread_mutex_unlock(&sh->mu);
    return 0;
}
