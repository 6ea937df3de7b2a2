/*
 * master_pid - the master's pid file, $queue_directory/pid/master.pid.
 *
 * The running master holds an fcntl write lock on the file (an open file
 * description lock, so it survives master's fork into the background and
 * goes away with the process, even after kill -9).  "Running" means "the
 * lock is held", never "the file exists": a stale file left by a killed
 * master does not count.  The file's content is the decimal pid.
 * Used by master (lock, write) and by the posthorn command (check).
 */
#ifndef GLOBAL_MASTER_PID_H
#define GLOBAL_MASTER_PID_H

#include <stddef.h>
#include <sys/types.h>

struct config;

#define MASTER_PID_FILE "master.pid"

/* "$queue_directory/pid/master.pid" into dst; -1 if it does not fit. */
int master_pid_path(struct config *cfg, char *dst, size_t size);

/*
 * Create/open path and take the lock.  Returns the descriptor (keep it
 * open for master's lifetime), or -1 with err set; when another master
 * holds the lock errno is EAGAIN and *holder is its pid (0 if unknown).
 */
int master_pid_lock(const char *path, pid_t *holder, char *err, size_t errlen);

/* Replace the file's content with pid. */
int master_pid_write(int fd, pid_t pid, char *err, size_t errlen);

/*
 * 1 if a master holds the lock (*pid = its pid, 0 while it has not
 * written it yet), 0 if none does, -1 with err set on error.
 */
int master_pid_check(const char *path, pid_t *pid, char *err, size_t errlen);

#endif
