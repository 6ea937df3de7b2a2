/*
 * mail_proto - helpers for the names in mail_proto.h.
 *
 * mail_private_socket() trusts the process-wide configuration (loaded and
 * checked by the server skeleton or a command) and the queue's socket
 * directories (created by master); mail_queue_id_ok() trusts
 * nothing: it is how every process checks a queue ID it was sent before
 * using it as a file name.
 */
#include "global/mail_proto.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "global/config.h"
#include "global/server.h"
#include "util/groupsync.h"
#include "util/log.h"

static void mail_socket_path(char *dst, size_t size, const char *queue_dir,
                             const char *class, const char *name)
{
    int n = snprintf(dst, size, "%s/%s/%s", queue_dir, class, name);

    /* master could not have bound such a socket either. */
    if (n < 0 || (size_t)n >= size)
        log_fatal("socket path %s/%s/%s is too long", queue_dir, class, name);
}

/*
 * master.cf's private column decides where master binds a unix service
 * (Postfix's stock master.cf has cleanup and qmgr with private=n), so a
 * client looks in public/ when private/ has no such socket.
 */
char *mail_private_socket(char *dst, size_t size, const char *name)
{
    const char *queue_dir = config_str(config_global(), "queue_directory");
    struct stat st;

    mail_socket_path(dst, size, queue_dir, MAIL_QUEUE_PRIVATE, name);
    if (lstat(dst, &st) == 0 && S_ISSOCK(st.st_mode))
        return dst;
    mail_socket_path(dst, size, queue_dir, MAIL_QUEUE_PUBLIC, name);
    if (lstat(dst, &st) == 0 && S_ISSOCK(st.st_mode))
        return dst;
    /* Neither: the caller's connect fails naming the usual place. */
    mail_socket_path(dst, size, queue_dir, MAIL_QUEUE_PRIVATE, name);
    return dst;
}

struct groupsync *mail_queue_groupsync(void)
{
    struct config *cfg = config_global();
    const char *queue_dir = config_str(cfg, "queue_directory");
    struct groupsync *g;
    char path[4096], err[512];

    if (!config_bool(cfg, "queue_group_commit"))
        return NULL;
    /* Started by master: the state block is shared memory. */
    const char *env = getenv(SERVER_GROUPSYNC_ENV);
    if (env != NULL && strcmp(env, SERVER_GROUPSYNC_FD_TEXT) == 0 &&
        fcntl(SERVER_GROUPSYNC_FD, F_GET_SEALS) >= 0) {
        g = groupsync_open_fd(SERVER_GROUPSYNC_FD, queue_dir, err,
                              sizeof(err));
        if (g != NULL)
            return g;
        log_warn("group commit: %s", err);
    }
    mail_socket_path(path, sizeof(path), queue_dir, MAIL_QUEUE_PRIVATE,
                     "groupsync");
    g = groupsync_open(path, queue_dir, err, sizeof(err));
    if (g == NULL)
        log_warn("group commit disabled: %s", err);
    return g;
}

static bool recycle_map_tried;
static uint64_t *recycle_map;

void mail_queue_recycle_map_forget(void)
{
    if (recycle_map != NULL)
        munmap((char *)recycle_map - MAIL_QUEUE_RECYCLE_MAP_OFFSET,
               MAIL_QUEUE_STATE_BYTES);
    recycle_map = NULL;
    recycle_map_tried = false;
}

uint64_t *mail_queue_recycle_map(void)
{
    const char *env = getenv(SERVER_GROUPSYNC_ENV);
    struct stat st;
    char *p;

    if (recycle_map_tried)
        return recycle_map;
    recycle_map_tried = true;
    /* From offset 0, so any page size will do. */
    if (env == NULL || strcmp(env, SERVER_GROUPSYNC_FD_TEXT) != 0 ||
        fcntl(SERVER_GROUPSYNC_FD, F_GET_SEALS) < 0 ||
        fstat(SERVER_GROUPSYNC_FD, &st) < 0 ||
        st.st_size < (off_t)MAIL_QUEUE_STATE_BYTES)
        return NULL;
    p = mmap(NULL, MAIL_QUEUE_STATE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED,
             SERVER_GROUPSYNC_FD, 0);
    if (p == MAP_FAILED) {
        log_warn("map the recycle/ slot map: %m");
        return NULL;
    }
    recycle_map = (uint64_t *)(p + MAIL_QUEUE_RECYCLE_MAP_OFFSET);
    return recycle_map;
}

int mail_queue_id_ok(const char *s)
{
    size_t n = 0;

    if (s == NULL)
        return 0;
    for (; s[n]; n++) {
        char c = s[n];

        if (n >= MAIL_QUEUE_ID_MAX - 1)
            return 0;
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
              (c >= 'a' && c <= 'z')))
            return 0;
    }
    return n > 0;
}
