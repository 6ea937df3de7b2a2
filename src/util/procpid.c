/*
 * procpid - cached getpid() (see procpid.h).  Trusts nothing; cannot fail.
 */
#include "util/procpid.h"

#include <pthread.h>
#include <unistd.h>

static pid_t cached_pid;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void forget_pid(void)
{
    cached_pid = 0;
}

static void register_fork_hook(void)
{
    (void)pthread_atfork(NULL, NULL, forget_pid);
}

pid_t proc_pid(void)
{
    if (cached_pid == 0) {
        (void)pthread_once(&once, register_fork_hook);
        cached_pid = getpid();
    }
    return cached_pid;
}
