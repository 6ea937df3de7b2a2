/*
 * auth_hash - a small pool of threads that run passdb_verify() for hashed
 * passwords, so the event loop never waits for crypt(3).
 *
 * A job carries its own copies of one hash and one password; a worker
 * reads only those and writes only result and err.  Finished jobs go back
 * to the main thread through a pipe (one pointer per write, which is
 * atomic), where done() runs and the job is wiped and freed.  Workers
 * block every signal, so SIGTERM and SIGHUP reach the event loop.
 *
 * Fails by log_fatal() only when threads or the pipe cannot be created at
 * start: without them auth could not check a single password.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "auth/auth.h"
#include "util/log.h"
#include "util/mem.h"

/* Threads: one per CPU, within these bounds. */
#define AUTH_HASH_THREADS_MIN 1
#define AUTH_HASH_THREADS_MAX 8

static pthread_mutex_t auth_hash_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t auth_hash_cond = PTHREAD_COND_INITIALIZER;
TAILQ_HEAD(auth_hash_list, auth_hash_job);
static struct auth_hash_list auth_hash_queue =
    TAILQ_HEAD_INITIALIZER(auth_hash_queue);
static bool auth_hash_stopping;
static pthread_t auth_hash_threads[AUTH_HASH_THREADS_MAX];
static int auth_hash_nthreads;
static int auth_hash_pipe[2] = {-1, -1};
static struct event *auth_hash_ev;

static void auth_hash_free(struct auth_hash_job *job)
{
    explicit_bzero(job->password, job->passlen);
    explicit_bzero(job->secret, strlen(job->secret));
    free(job->password);
    free(job->secret);
    free(job);
}

static void *auth_hash_worker(void *arg)
{
    (void)arg;
    for (;;) {
        struct auth_hash_job *job;
        ssize_t n;

        pthread_mutex_lock(&auth_hash_lock);
        while (!auth_hash_stopping && TAILQ_EMPTY(&auth_hash_queue))
            pthread_cond_wait(&auth_hash_cond, &auth_hash_lock);
        if (auth_hash_stopping) {
            pthread_mutex_unlock(&auth_hash_lock);
            return NULL;
        }
        job = TAILQ_FIRST(&auth_hash_queue);
        TAILQ_REMOVE(&auth_hash_queue, job, entries);
        pthread_mutex_unlock(&auth_hash_lock);

        job->result = passdb_verify(job->scheme, job->secret, job->password,
                                    job->passlen, job->err, sizeof(job->err));
        do {
            n = write(auth_hash_pipe[1], &job, sizeof(job));
        } while (n < 0 && errno == EINTR);
        if (n != (ssize_t)sizeof(job))
            abort(); /* a pipe write of one pointer cannot be short */
    }
}

/* Main thread: finished jobs. */
static void auth_hash_collect(evutil_socket_t fd, short what, void *arg)
{
    struct auth_hash_job *jobs[64];
    ssize_t n;

    (void)what;
    (void)arg;
    while ((n = read(fd, jobs, sizeof(jobs))) > 0) {
        for (size_t i = 0; i < (size_t)n / sizeof(jobs[0]); i++) {
            jobs[i]->done(jobs[i]);
            auth_hash_free(jobs[i]);
        }
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR)
        log_warn("auth hash pipe: %s", strerror(errno));
}

void auth_hash_init(struct event_base *base)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    sigset_t all, saved;
    int err;

    if (pipe2(auth_hash_pipe, O_CLOEXEC) < 0 ||
        fcntl(auth_hash_pipe[0], F_SETFL, O_NONBLOCK) < 0)
        log_fatal("pipe: %s", strerror(errno));
    auth_hash_ev = event_new(base, auth_hash_pipe[0], EV_READ | EV_PERSIST,
                             auth_hash_collect, NULL);
    if (auth_hash_ev == NULL || event_add(auth_hash_ev, NULL) < 0)
        log_fatal("cannot watch the hash pipe");
    auth_hash_nthreads = cpus < AUTH_HASH_THREADS_MIN   ? AUTH_HASH_THREADS_MIN
                         : cpus > AUTH_HASH_THREADS_MAX ? AUTH_HASH_THREADS_MAX
                                                        : (int)cpus;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    for (int i = 0; i < auth_hash_nthreads; i++)
        if ((err = pthread_create(&auth_hash_threads[i], NULL, auth_hash_worker,
                                  NULL)) != 0)
            log_fatal("pthread_create: %s", strerror(err));
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    log_debug("%d hash threads", auth_hash_nthreads);
}

void auth_hash_submit(struct auth_hash_job *job)
{
    pthread_mutex_lock(&auth_hash_lock);
    TAILQ_INSERT_TAIL(&auth_hash_queue, job, entries);
    pthread_cond_signal(&auth_hash_cond);
    pthread_mutex_unlock(&auth_hash_lock);
}

void auth_hash_shutdown(void)
{
    struct auth_hash_job *job, *jobs[64];
    ssize_t n;

    pthread_mutex_lock(&auth_hash_lock);
    auth_hash_stopping = true;
    pthread_cond_broadcast(&auth_hash_cond);
    pthread_mutex_unlock(&auth_hash_lock);
    for (int i = 0; i < auth_hash_nthreads; i++)
        pthread_join(auth_hash_threads[i], NULL);
    auth_hash_nthreads = 0;
    while ((job = TAILQ_FIRST(&auth_hash_queue)) != NULL) {
        TAILQ_REMOVE(&auth_hash_queue, job, entries);
        job->cancel(job);
        auth_hash_free(job);
    }
    while ((n = read(auth_hash_pipe[0], jobs, sizeof(jobs))) > 0) {
        for (size_t i = 0; i < (size_t)n / sizeof(jobs[0]); i++) {
            jobs[i]->cancel(jobs[i]);
            auth_hash_free(jobs[i]);
        }
    }
    if (auth_hash_ev != NULL)
        event_free(auth_hash_ev);
    auth_hash_ev = NULL;
    close(auth_hash_pipe[0]);
    close(auth_hash_pipe[1]);
    auth_hash_pipe[0] = auth_hash_pipe[1] = -1;
}
