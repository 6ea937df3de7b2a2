/*
 * map_unix - the system account database as a table, like Postfix's:
 *
 *   unix:passwd.byname   key user name ->
 * "name:passwd:uid:gid:gecos:home:shell" unix:group.byname    key group name ->
 * "name:passwd:gid:member,member"
 *
 * Goes through getpwnam_r/getgrnam_r, so NSS modules apply; the password
 * field is whatever NSS gives (normally "x": shadow is never read).  Used
 * by local_recipient_maps to know which local users exist.  A lookup that
 * fails for a reason other than "no such entry" is MAP_ERROR.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "global/map_impl.h"
#include "util/mem.h"

#define UNIX_BUF_MAX (1024 * 1024)

enum unix_kind { UNIX_PASSWD, UNIX_GROUP };

int map_unix_open(struct map *m, const char *name, char *err, size_t errlen)
{
    static const enum unix_kind passwd = UNIX_PASSWD, group = UNIX_GROUP;

    if (strcmp(name, "passwd.byname") == 0)
        m->ctx = (void *)&passwd;
    else if (strcmp(name, "group.byname") == 0)
        m->ctx = (void *)&group;
    else {
        snprintf(err, errlen,
                 "unix:%s: unknown table; use unix:passwd.byname or "
                 "unix:group.byname",
                 name);
        return -1;
    }
    return 0;
}

/* The "not found" answers glibc and other NSS back ends give. */
static bool unix_absent(int rc)
{
    return rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM;
}

static enum map_result unix_passwd(const char *key, struct buf *result,
                                   char *err, size_t errlen)
{
    struct passwd pw, *found = NULL;
    size_t size = 1024;
    char *mem = NULL;
    int rc;

    do {
        size *= 2;
        mem = xrealloc(mem, size);
        rc = getpwnam_r(key, &pw, mem, size, &found);
    } while (rc == ERANGE && size < UNIX_BUF_MAX);
    if (found != NULL)
        buf_printf(result, "%s:%s:%ld:%ld:%s:%s:%s", pw.pw_name, pw.pw_passwd,
                   (long)pw.pw_uid, (long)pw.pw_gid,
                   pw.pw_gecos ? pw.pw_gecos : "", pw.pw_dir, pw.pw_shell);
    free(mem);
    if (found != NULL)
        return MAP_FOUND;
    if (unix_absent(rc))
        return MAP_NOTFOUND;
    snprintf(err, errlen, "unix:passwd.byname: lookup %s: %s", key,
             strerror(rc));
    return MAP_ERROR;
}

static enum map_result unix_group(const char *key, struct buf *result,
                                  char *err, size_t errlen)
{
    struct group gr, *found = NULL;
    size_t size = 1024;
    char *mem = NULL;
    int rc;

    do {
        size *= 2;
        mem = xrealloc(mem, size);
        rc = getgrnam_r(key, &gr, mem, size, &found);
    } while (rc == ERANGE && size < UNIX_BUF_MAX);
    if (found != NULL) {
        buf_printf(result, "%s:%s:%ld:", gr.gr_name, gr.gr_passwd,
                   (long)gr.gr_gid);
        for (char **mp = gr.gr_mem; mp != NULL && *mp != NULL; mp++)
            buf_printf(result, "%s%s", mp == gr.gr_mem ? "" : ",", *mp);
    }
    free(mem);
    if (found != NULL)
        return MAP_FOUND;
    if (unix_absent(rc))
        return MAP_NOTFOUND;
    snprintf(err, errlen, "unix:group.byname: lookup %s: %s", key,
             strerror(rc));
    return MAP_ERROR;
}

enum map_result map_unix_lookup(struct map *m, const char *key,
                                struct buf *result, char *err, size_t errlen)
{
    if (*key == 0)
        return MAP_NOTFOUND;
    if (*(const enum unix_kind *)m->ctx == UNIX_PASSWD)
        return unix_passwd(key, result, err, errlen);
    return unix_group(key, result, err, errlen);
}

void map_unix_close(struct map *m)
{
}
