/*
 * groupsync - group commit across processes: one syncfs(2) makes the work
 * of many writers durable.
 *
 * A writer that needs its files and directory entries on stable storage
 * (cleanup before "250", local before "delivered") calls groupsync_sync()
 * after its writes, links and renames.  It takes a ticket from a small
 * state block shared by every process through a file mapped MAP_SHARED.
 * If nobody is syncing, it becomes the leader: it notes the highest ticket
 * handed out so far, calls syncfs() on the file system, and marks those
 * tickets complete.  Everyone who took a ticket before the leader started
 * returns as soon as that one syncfs() finishes; later arrivals wait for
 * the next round.  With N concurrent writers that is one journal commit
 * for N messages instead of 2N fsync()s, and no guarantee is weakened:
 * a caller returns only after a syncfs() that started after its writes.
 *
 * Crash safety: the mutex is robust (a holder that dies is detected), a
 * leader that dies or hangs is replaced after GROUPSYNC_LEADER_TIMEOUT_MS,
 * and a caller that cannot make progress falls back to its own syncfs().
 * A failed syncfs() is reported to the leader's caller; the others retry.
 *
 * Only Linux has syncfs(); the state file must live on a local file
 * system.  All state is owned by the caller's process after open.
 */
#ifndef UTIL_GROUPSYNC_H
#define UTIL_GROUPSYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define GROUPSYNC_LEADER_TIMEOUT_MS 5000

struct groupsync;

/*
 * state_path: the shared state file (created mode 0600 if missing).
 * fs_path: any file or directory on the file system to be synced.
 * Returns NULL with err set on failure.
 */
struct groupsync *groupsync_open(const char *state_path, const char *fs_path,
                                 char *err, size_t errlen);

/*
 * The state block in memory instead of a file: a file's mapped page is
 * written back by every syncfs() and then faults on the next write, so a
 * supervisor creates the block once (groupsync_state_create: a memfd) and
 * hands the descriptor to every writer, which maps it with
 * groupsync_open_fd.  The descriptor stays the caller's.
 */
int groupsync_state_create(char *err, size_t errlen);
struct groupsync *groupsync_open_fd(int state_fd, const char *fs_path,
                                    char *err, size_t errlen);
void groupsync_close(struct groupsync *g);

/* Device of the file system this groupsync covers. */
dev_t groupsync_dev(const struct groupsync *g);

/*
 * Return 0 once everything this process wrote to the file system before
 * the call is on stable storage, or -1 with errno set.
 */
int groupsync_sync(struct groupsync *g);

/*
 * Without waiting: a ticket for everything this process wrote to the file
 * system before the call.  Every round that starts after it covers those
 * writes; groupsync_covered() tells when one has ended.  0 when the shared
 * state cannot be used (call groupsync_sync() instead).
 */
uint64_t groupsync_ticket(struct groupsync *g);
bool groupsync_covered(const struct groupsync *g, uint64_t ticket);

#endif
