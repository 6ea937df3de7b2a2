/*
 * procpid - this process's ID without a system call per use.
 *
 * glibc no longer caches getpid(); the hot paths of the queue (temporary
 * names, recycle cursors, group commit) ask for it several times per
 * message.  The cache is reset in the child of every fork() through
 * pthread_atfork(), so it is right after fork as well.  Not for code that
 * calls clone() directly.
 */
#ifndef UTIL_PROCPID_H
#define UTIL_PROCPID_H

#include <sys/types.h>

pid_t proc_pid(void);

#endif
