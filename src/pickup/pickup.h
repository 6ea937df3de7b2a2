/*
 * pickup - internal interfaces of the maildrop pickup service.
 *
 *   pickup.c       the event loop: wakeups, inotify on maildrop/, scans,
 *                  stale temporary files
 *   pickup_file.c  one maildrop file: checks, hand-off to cleanup,
 *                  removal or corrupt/
 */
#ifndef PICKUP_PICKUP_H
#define PICKUP_PICKUP_H

#include <stdbool.h>

/* Parameters and open directories, set once at start. */
struct pickup_params {
    const char *queue_dir;
    int maildrop_fd;          /* queue_dir/maildrop, O_DIRECTORY */
    int corrupt_fd;           /* queue_dir/corrupt */
    long long file_limit;     /* largest maildrop file accepted (bytes) */
    long long ipc_timeout_ms; /* cleanup's commit may take this long */
};

extern struct pickup_params pickup_params;

enum pickup_result {
    PICKUP_DONE,  /* handed to cleanup and removed, moved away, or gone */
    PICKUP_LATER, /* left in maildrop/ for the next scan */
    PICKUP_STOP,  /* cleanup cannot be reached: end this scan */
};

/* Process maildrop/name (a name not starting with "."). */
enum pickup_result pickup_file(const char *name);

/*
 * Is name acceptable as a maildrop file name: 1..64 of [0-9A-Za-z_-]?
 * Anything else is not sendmail's and goes to corrupt/ unread.
 */
bool pickup_name_ok(const char *name);

#endif
