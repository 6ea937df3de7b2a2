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
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <linux/futex.h>
#include <unistd.h>

#include "util/mem.h"
#include "util/procpid.h"

#define GROUPSYNC_MAGIC 0x70687367u /* "phsg" */
#define GROUPSYNC_VERSION 3
/*
 * Followers sleep on a futex over wake_seq, which the leader bumps after
 * each syncfs().  A process-shared condition variable is not used: it does
 * not survive a waiter killed with SIGKILL (it stays counted and a later
 * broadcast blocks).  A futex keeps no user-space state about its waiters,
 * so a killed waiter leaves nothing behind.  Followers still wake every
 * GROUPSYNC_WAIT_MS to notice a leader that died without waking them.
 */
#define GROUPSYNC_WAIT_MS 50

struct groupsync_shared {
    uint32_t magic;
    uint32_t version;
    pthread_mutex_t mu;
    uint64_t requested;     /* tickets handed out */
    uint64_t completed;     /* every ticket <= completed is durable */
    int32_t leader_pid;     /* 0: nobody is syncing */
    int64_t leader_started; /* CLOCK_MONOTONIC ms when the leader began */
    uint32_t wake_seq;      /* futex word: bumped when a round ends */
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

/*
 * Map the state block of fd (locked by the caller), initialising it when
 * it is new or damaged, and open fs_path.  fd stays the caller's.
 */
static struct groupsync *groupsync_map(int fd, const char *what,
                                       const char *fs_path, char *err,
                                       size_t errlen)
{
    struct groupsync_shared *sh = MAP_FAILED;
    struct stat st;
    int fs_fd = -1;

    if (flock(fd, LOCK_EX) < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "lock %s: %s", what, strerror(errno));
        return NULL;
    }
    if (st.st_size < (off_t)sizeof(*sh) &&
        ftruncate(fd, (off_t)sizeof(*sh)) < 0) {
        snprintf(err, errlen, "ftruncate %s: %s", what, strerror(errno));
        goto fail;
    }
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (sh == MAP_FAILED) {
        snprintf(err, errlen, "mmap %s: %s", what, strerror(errno));
        goto fail;
    }
    if (__atomic_load_n(&sh->magic, __ATOMIC_ACQUIRE) != GROUPSYNC_MAGIC ||
        sh->version != GROUPSYNC_VERSION) {
        if (shared_init(sh) < 0) {
            snprintf(err, errlen, "initialise %s: pthread attributes", what);
            goto fail;
        }
    }
    (void)flock(fd, LOCK_UN);
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
    (void)flock(fd, LOCK_UN);
    if (sh != MAP_FAILED)
        munmap(sh, sizeof(*sh));
    if (fs_fd >= 0)
        close(fs_fd);
    return NULL;
}

struct groupsync *groupsync_open(const char *state_path, const char *fs_path,
                                 char *err, size_t errlen)
{
    struct groupsync *g;
    int fd;

    fd = open(state_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "open %s: %s", state_path, strerror(errno));
        return NULL;
    }
    g = groupsync_map(fd, state_path, fs_path, err, errlen);
    close(fd);
    return g;
}

int groupsync_state_create(char *err, size_t errlen)
{
    int fd = memfd_create("posthorn-groupsync", MFD_CLOEXEC);

    if (fd < 0) {
        snprintf(err, errlen, "memfd_create: %s", strerror(errno));
        return -1;
    }
    return fd;
}

struct groupsync *groupsync_open_fd(int state_fd, const char *fs_path,
                                    char *err, size_t errlen)
{
    return groupsync_map(state_fd, "shared memory state", fs_path, err,
                         errlen);
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

/* Sleep until wake_seq moves from seq, or GROUPSYNC_WAIT_MS pass. */
static void wait_round(struct groupsync_shared *sh, uint32_t seq)
{
    struct timespec ts = {0, GROUPSYNC_WAIT_MS * 1000000L};

    /* Not FUTEX_PRIVATE: the word is shared between processes. */
    (void)syscall(SYS_futex, &sh->wake_seq, FUTEX_WAIT, seq, &ts, NULL, 0);
}

/* End of a round (or of a failed leader): let every follower look. */
static void wake_all(struct groupsync_shared *sh)
{
    __atomic_add_fetch(&sh->wake_seq, 1, __ATOMIC_RELEASE);
    (void)syscall(SYS_futex, &sh->wake_seq, FUTEX_WAKE, INT32_MAX, NULL, NULL,
                  0);
}

/*
 * A leader that is gone or stuck no longer holds up everyone else.  A
 * leader younger than one follower wait is not probed: a syncfs() takes
 * a few milliseconds, and the probe (a kill() per look) would otherwise
 * run for every follower on every round.
 */
static int leader_gone(const struct groupsync_shared *sh)
{
    int64_t age;

    if (sh->leader_pid == 0)
        return 1;
    age = now_ms() - sh->leader_started;
    if (age < GROUPSYNC_WAIT_MS)
        return 0;
    if (kill(sh->leader_pid, 0) < 0 && errno == ESRCH)
        return 1;
    return age > GROUPSYNC_LEADER_TIMEOUT_MS;
}

/* Is every ticket up to t durable?  Read without the mutex. */
static bool covered(struct groupsync_shared *sh, uint64_t t)
{
    return __atomic_load_n(&sh->completed, __ATOMIC_ACQUIRE) >= t;
}

uint64_t groupsync_ticket(struct groupsync *g)
{
    uint64_t ticket;

    if (lock(g->sh) != 0)
        return 0;
    ticket = ++g->sh->requested;
    pthread_mutex_unlock(&g->sh->mu);
    return ticket;
}

bool groupsync_covered(const struct groupsync *g, uint64_t ticket)
{
    return covered(g->sh, ticket);
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

            sh->leader_pid = proc_pid();
            sh->leader_started = now_ms();
            pthread_mutex_unlock(&sh->mu);
            rc = syncfs(g->fs_fd);
            saved = errno;
            if (lock(sh) != 0)
                return rc;
            if (sh->leader_pid == proc_pid())
                sh->leader_pid = 0;
            if (rc == 0 && sh->completed < target)
                __atomic_store_n(&sh->completed, target, __ATOMIC_RELEASE);
            if (rc < 0) {
                /* Those who waited on us see completed unchanged and one
                 * of them leads the next round. */
                pthread_mutex_unlock(&sh->mu);
                wake_all(sh);
                errno = saved;
                return -1;
            }
            if (sh->completed >= ticket) {
                pthread_mutex_unlock(&sh->mu);
                wake_all(sh);
                return 0;
            }
            continue;
        }
        if (now_ms() > deadline) {
            /* Something is badly wrong with the shared state; do not
             * hang, and do not trust it either. */
            pthread_mutex_unlock(&sh->mu);
            return syncfs(g->fs_fd);
        }
        uint32_t seq = __atomic_load_n(&sh->wake_seq, __ATOMIC_ACQUIRE);
        pthread_mutex_unlock(&sh->mu);
        wait_round(sh, seq);
        /*
         * The round that woke us usually covers our ticket: leave without
         * the mutex, which every woken follower would otherwise queue for
         * (a futex sleep and wake-up each) only to find it is done.
         */
        if (covered(sh, ticket))
            return 0;
        if (lock(sh) != 0)
            return syncfs(g->fs_fd);
    }
    pthread_mutex_unlock(&sh->mu);
    return 0;
}
