/*
 * master_queue - the queue directory tree, and a maillog_file the workers
 * can append to.
 *
 * Creates $queue_directory and its sub-directories (mail_proto.h) when
 * missing and, when master runs as root, gives them to mail_owner (pid/
 * stays root's).  Modes: 0700, public/ and pid/ 0755 (so `posthorn
 * status` works for everybody), maildrop/ 1733 (every local user may drop
 * a file for pickup, none may list or remove another's: mail_proto.h).
 * Trusts queue_directory from main.cf; refuses a sub-directory that is a
 * symlink or not a directory.  Errors are returned with the path named.
 */
#include "master/master.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "global/config.h"
#include "global/mail_proto.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/mem.h"

static const struct {
    const char *name;
    mode_t mode;
    bool root_owned;
} master_queue_dirs[] = {
    {MAIL_QUEUE_INCOMING, 0700, false},  {MAIL_QUEUE_ACTIVE, 0700, false},
    {MAIL_QUEUE_DEFERRED, 0700, false},  {MAIL_QUEUE_HOLD, 0700, false},
    {MAIL_QUEUE_CORRUPT, 0700, false},   {MAIL_QUEUE_DEFER_LOG, 0700, false},
    {MAIL_QUEUE_TMP, 0700, false},       {MAIL_QUEUE_PRIVATE, 0700, false},
    {MAIL_QUEUE_PUBLIC, 0755, false},    {MAIL_QUEUE_PID, 0755, true},
    {MAIL_QUEUE_MAILDROP, 01733, false}, {MAIL_QUEUE_RECYCLE, 0700, false},
};

int master_queue_init(const char *queue_dir, bool as_root, uid_t uid, gid_t gid,
                      char *err, size_t errlen)
{
    if (queue_dir[0] != '/') {
        snprintf(err, errlen, "queue_directory %s is not an absolute path",
                 queue_dir);
        return -1;
    }
    if (mkdir_p(queue_dir, 0755) < 0) {
        snprintf(err, errlen, "create %s: %s", queue_dir, strerror(errno));
        return -1;
    }
    for (size_t i = 0;
         i < sizeof(master_queue_dirs) / sizeof(master_queue_dirs[0]); i++) {
        char *path = xasprintf("%s/%s", queue_dir, master_queue_dirs[i].name);
        mode_t mode = master_queue_dirs[i].mode;
        struct stat st;

        if (mkdir(path, mode) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "create %s: %s", path, strerror(errno));
            free(path);
            return -1;
        }
        if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "%s: not a directory", path);
            free(path);
            return -1;
        }
        if (as_root) {
            uid_t want_uid = master_queue_dirs[i].root_owned ? 0 : uid;
            gid_t want_gid = master_queue_dirs[i].root_owned ? 0 : gid;

            if ((st.st_uid != want_uid || st.st_gid != want_gid) &&
                lchown(path, want_uid, want_gid) < 0) {
                snprintf(err, errlen, "chown %s: %s", path, strerror(errno));
                free(path);
                return -1;
            }
        }
        if ((st.st_mode & 07777) != mode && chmod(path, mode) < 0)
            log_warn("chmod %s to %04o: %m", path, (unsigned)mode);
        free(path);
    }
    return 0;
}

/*
 * Workers run as mail_owner and open maillog_file themselves, so when
 * master is root the file must belong to mail_owner.  Device files
 * (/dev/stderr) are left alone.
 */
void master_queue_maillog(struct config *cfg, bool as_root, uid_t uid,
                          gid_t gid)
{
    const char *file = config_str(cfg, "maillog_file");
    struct stat st;
    int fd;

    if (!as_root || *file == 0 || strncmp(file, "/dev/", 5) == 0)
        return;
    fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
              0640);
    if (fd < 0) {
        log_warn("maillog_file %s: %m", file);
        return;
    }
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        (st.st_uid != uid || st.st_gid != gid) && fchown(fd, uid, gid) < 0)
        log_warn("maillog_file %s: chown: %m", file);
    close(fd);
}
