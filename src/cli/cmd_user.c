/*
 * cmd_user - `posthorn user`: edit the passdb file safely.
 *
 *   posthorn user add [-p password] [-s scheme] [-u uid] [-g gid]
 *                     [-d home] user@domain
 *   posthorn user del user@domain
 *   posthorn user passwd [-p password] [-s scheme] user@domain
 *   posthorn user list
 *
 * The file is the one main.cf's passdb names (passwd-file:/path).  Every
 * change is a rewrite: the new text goes to a temporary file in the same
 * directory, is fsynced and renamed over the old one (then the directory
 * is fsynced), so auth and concurrent readers see either the old or the
 * new file, never a torn one.  Writers serialise on an fcntl lock on the
 * file itself; since the rename replaces the file, a writer that waited
 * for the lock checks that its descriptor still names the file at the
 * path and starts over if not.  The new file keeps the old one's owner
 * and mode; a file created here is mode 0640 and group mail_owner's when
 * run as root (auth runs as mail_owner), else 0600.
 *
 * An existing file with a malformed line is not touched (the error names
 * file and line): this tool must not add to a mess it cannot see through.
 * Comments, blank lines and the order of the other lines are kept.
 *
 * After `add`, when the domain is a virtual mailbox domain, a hint says
 * where the mail will go and how to list the mailbox in a
 * virtual_mailbox_maps file instead; no other table is edited.
 *
 * Exit status: 0 done, 1 error (no such user, user exists, file
 * problems), 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "cli/cmd_passwd.h"
#include "global/addr.h"
#include "global/config.h"
#include "global/maps.h"
#include "global/passdb.h"
#include "global/resolve.h"
#include "util/argv.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/mem.h"
#include "util/str.h"

#define USER_EXIT_ERROR 1
#define USER_EXIT_USAGE 2

struct user_opts {
    enum passdb_scheme scheme;
    const char *password; /* -p */
    const char *uid;      /* -u */
    const char *gid;      /* -g */
    const char *home;     /* -d */
};

static int user_usage(void)
{
    fprintf(stderr,
            "usage: posthorn user add [-p password] [-s scheme] [-u uid] "
            "[-g gid] [-d home] user@domain\n"
            "       posthorn user del user@domain\n"
            "       posthorn user passwd [-p password] [-s scheme] "
            "user@domain\n"
            "       posthorn user list\n");
    return USER_EXIT_USAGE;
}

/* ------------------------------------------------------------ the file */

/* The whole file from fd (bounded), appended to text. */
static int user_read_fd(int fd, const char *path, struct buf *text)
{
    char chunk[65536];
    ssize_t n;

    if (lseek(fd, 0, SEEK_SET) < 0) {
        fprintf(stderr, "posthorn: %s: %s\n", path, strerror(errno));
        return -1;
    }
    while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "posthorn: read %s: %s\n", path, strerror(errno));
            return -1;
        }
        if (text->len + (size_t)n > PASSDB_FILE_MAX) {
            fprintf(stderr, "posthorn: %s: larger than %d bytes\n", path,
                    PASSDB_FILE_MAX);
            return -1;
        }
        buf_append(text, chunk, (size_t)n);
    }
    return 0;
}

/*
 * Split text into lines (without "\n") and check every one.  users gets
 * each line's user name, or "" for comments.  Returns 0, or -1 after
 * printing "path:line: error".
 */
static int user_parse(const char *path, const struct buf *text,
                      struct argv *lines, struct argv *users)
{
    const char *p = buf_cstr(text), *end = p + text->len;
    char err[512];
    unsigned lineno = 0;

    if (memchr(p, 0, text->len) != NULL) {
        fprintf(stderr, "posthorn: %s: file contains a NUL byte\n", path);
        return -1;
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        struct passdb_entry e;
        char *copy = xstrndup(p, n);
        int r;

        lineno++;
        argv_addn(lines, p, n);
        if (n > 0 && copy[n - 1] == '\r')
            copy[n - 1] = 0;
        r = passdb_parse_line(copy, &e, err, sizeof(err));
        if (r < 0) {
            fprintf(stderr, "posthorn: %s:%u: %s\n", path, lineno, err);
            explicit_bzero(copy, n);
            free(copy);
            return -1;
        }
        argv_add(users, r > 0 ? e.user : "");
        explicit_bzero(copy, n);
        free(copy);
        p = nl != NULL ? nl + 1 : end;
    }
    return 0;
}

static long user_find(const struct argv *users, const char *user)
{
    for (size_t i = 0; i < users->n; i++)
        if (strcmp(users->v[i], user) == 0)
            return (long)i;
    return -1;
}

/* A new file: group-readable by mail_owner when we are root. */
static int user_new_file_mode(int fd, const char *path, struct config *cfg)
{
    if (geteuid() == 0) {
        const char *owner = config_str(cfg, "mail_owner");
        struct passwd *pw = getpwnam(owner);

        if (pw == NULL) {
            fprintf(stderr, "posthorn: mail_owner %s: no such user\n", owner);
            return -1;
        }
        if (fchown(fd, 0, pw->pw_gid) < 0 || fchmod(fd, 0640) < 0) {
            fprintf(stderr, "posthorn: %s: %s\n", path, strerror(errno));
            return -1;
        }
    }
    return 0;
}
/*
 * Create path empty, with its final owner and mode already set: made
 * under a temporary name and linked into place, so no other writer can
 * lock and rewrite it before the mode is right.  0 also when another
 * writer created it first.
 */
static int user_create(const char *path, struct config *cfg)
{
    char *tmp = xasprintf("%s.new.%ld", path, (long)getpid());
    int fd, rc = -1;

    (void)unlink(tmp); /* a leftover of a crashed run with our pid */
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0) {
        fprintf(stderr, "posthorn: %s: %s\n", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    if (user_new_file_mode(fd, tmp, cfg) == 0) {
        if (link(tmp, path) == 0 || errno == EEXIST)
            rc = 0;
        else
            fprintf(stderr, "posthorn: %s: %s\n", path, strerror(errno));
    }
    close(fd);
    (void)unlink(tmp);
    free(tmp);
    return rc;
}

/*
 * Open and lock the file at path, creating it (user_create) when
 * create_cfg is not NULL.  A writer that waited may find the file
 * replaced (renamed over) meanwhile: then it locks the new one.
 * Returns the descriptor, or -1.
 */
static int user_lock(const char *path, struct config *create_cfg)
{
    for (;;) {
        struct flock fl;
        struct stat a, b;
        int fd;

        fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 && errno == ENOENT && create_cfg != NULL) {
            if (user_create(path, create_cfg) < 0)
                return -1;
            continue; /* open it as every other writer does */
        }
        if (fd < 0) {
            fprintf(stderr, "posthorn: %s: %s\n", path, strerror(errno));
            return -1;
        }
        memset(&fl, 0, sizeof(fl));
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        while (fcntl(fd, F_SETLKW, &fl) < 0) {
            if (errno != EINTR) {
                fprintf(stderr, "posthorn: lock %s: %s\n", path,
                        strerror(errno));
                close(fd);
                return -1;
            }
        }
        if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino)
            return fd;
        close(fd);
    }
}

/* Replace path's content, keeping owner and mode of the locked fd. */
static int user_rewrite(const char *path, int fd, const struct argv *lines)
{
    struct buf text = BUF_INIT, tmp = BUF_INIT;
    char *dir = xstrdup(path), *slash;
    struct stat st;
    int out = -1, rc = -1;

    for (size_t i = 0; i < lines->n; i++)
        buf_printf(&text, "%s\n", lines->v[i]);
    if (fstat(fd, &st) < 0) {
        fprintf(stderr, "posthorn: %s: %s\n", path, strerror(errno));
        goto done;
    }
    buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());
    (void)unlink(tmp.data); /* a leftover of a crashed run with our pid */
    out = open(tmp.data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY,
               0600);
    if (out < 0 || (geteuid() == 0 && fchown(out, st.st_uid, st.st_gid) < 0) ||
        fchmod(out, st.st_mode & 07777) < 0 ||
        write_all(out, text.data != NULL ? text.data : "", text.len) < 0 ||
        fsync(out) < 0) {
        fprintf(stderr, "posthorn: %s: %s\n", tmp.data, strerror(errno));
        goto done;
    }
    if (close(out) < 0) {
        out = -1;
        fprintf(stderr, "posthorn: %s: %s\n", tmp.data, strerror(errno));
        goto done;
    }
    out = -1;
    if (rename(tmp.data, path) < 0) {
        fprintf(stderr, "posthorn: rename %s to %s: %s\n", tmp.data, path,
                strerror(errno));
        goto done;
    }
    slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = 0;
    else if (slash != NULL)
        *slash = 0;
    if (fsync_dir(slash != NULL ? dir : ".") < 0) {
        fprintf(stderr, "posthorn: fsync %s: %s\n", dir, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    if (out >= 0)
        close(out);
    if (rc < 0 && tmp.data != NULL)
        (void)unlink(tmp.data);
    if (text.data != NULL)
        explicit_bzero(text.data, text.len);
    buf_free(&text);
    buf_free(&tmp);
    free(dir);
    return rc;
}

/* ------------------------------------------------------------ commands */

/* A new line for the file; checked by the same parser auth uses. */
static int user_make_line(const char *user, const struct user_opts *o,
                          struct buf *line)
{
    struct buf password = BUF_INIT, field = BUF_INIT;
    struct passdb_entry e;
    char err[512], *copy;
    int rc = -1, r;

    if (passwd_obtain(o->password, &password) < 0)
        goto out;
    if (passdb_hash(o->scheme, password.data, &field, err, sizeof(err)) < 0) {
        fprintf(stderr, "posthorn: %s\n", err);
        goto out;
    }
    buf_reset(line);
    buf_printf(line, "%s:%s:%s:%s::%s::", user, field.data,
               o->uid ? o->uid : "", o->gid ? o->gid : "",
               o->home ? o->home : "");
    copy = xstrdup(line->data);
    r = passdb_parse_line(copy, &e, err, sizeof(err));
    explicit_bzero(copy, strlen(copy));
    free(copy);
    if (r <= 0 || strchr(user, ':') != NULL || strchr(user, '\n') != NULL) {
        fprintf(stderr, "posthorn: %s\n",
                r < 0 ? err : "bad user name (no ':' or line breaks)");
        goto out;
    }
    rc = 0;
out:
    if (password.data != NULL)
        explicit_bzero(password.data, password.len);
    if (field.data != NULL)
        explicit_bzero(field.data, field.len);
    buf_free(&password);
    buf_free(&field);
    return rc;
}

/* The password field of a line replaced by a new one. */
static void user_replace_password(struct argv *lines, size_t i,
                                  const char *field)
{
    const char *old = lines->v[i];
    const char *colon = strchr(old, ':');
    const char *rest = strchr(colon + 1, ':');
    char *line = xasprintf("%.*s:%s%s", (int)(colon - old), old, field,
                           rest != NULL ? rest : "");

    explicit_bzero(lines->v[i], strlen(lines->v[i]));
    free(lines->v[i]);
    lines->v[i] = line;
}

/*
 * After `add`: where mail for user goes, and how to use
 * virtual_mailbox_maps instead, when its domain is a virtual mailbox
 * domain and no virtual_mailbox_maps entry has it yet.
 */
static void user_hint(struct config *cfg, const char *user, const char *home)
{
    struct resolver *r;
    struct maplist *maps;
    struct argv tables = ARGV_INIT;
    struct buf value = BUF_INIT;
    long at = addr_split(user);
    const char *domain = at >= 0 ? user + at + 1 : "";
    char err[512];
    int cls;

    if ((r = resolver_open(cfg, err, sizeof(err))) == NULL)
        return;
    cls = resolve_class(r, domain, err, sizeof(err));
    resolver_close(r);
    if (cls != ADDR_CLASS_VIRTUAL_MAILBOX)
        return;
    maps =
        maplist_open(config_str(cfg, "virtual_mailbox_maps"), err, sizeof(err));
    if (maps != NULL && maplist_lookup_addr(maps, user, "", false, &value, err,
                                            sizeof(err)) != MAP_NOTFOUND) {
        maplist_close(maps);
        buf_free(&value);
        return;
    }
    maplist_close(maps);
    buf_free(&value);
    if (*home)
        printf("posthorn: mail for %s goes to %s/Maildir/ (passdb home)\n",
               user, home);
    else
        printf("posthorn: mail for %s goes to %s/%s/%.*s/ "
               "($virtual_mailbox_base/domain/user/)\n",
               user, config_str(cfg, "virtual_mailbox_base"), domain, (int)at,
               user);
    if (maps_split_list(config_str(cfg, "virtual_mailbox_maps"), &tables, err,
                        sizeof(err)) < 0) {
        argv_free(&tables);
        return;
    }
    for (size_t i = 0; i < tables.n; i++) {
        const char *t = tables.v[i];
        const char *file = strchr(t, ':');
        bool indexed = !strncmp(t, "lmdb:", 5) || !strncmp(t, "hash:", 5) ||
                       !strncmp(t, "btree:", 6);

        if (file == NULL || (!indexed && strncmp(t, "texthash:", 9) != 0))
            continue;
        printf("posthorn: to list it in virtual_mailbox_maps instead, add "
               "\"%s %s/%.*s/\" to %s\n",
               user, domain, (int)at, user, file + 1);
        if (indexed)
            printf("posthorn: and run: posthorn map %s\n", file + 1);
    }
    argv_free(&tables);
}

static int user_change(struct config *cfg, const char *path, const char *op,
                       const char *user, const struct user_opts *o)
{
    struct argv lines = ARGV_INIT, users = ARGV_INIT;
    struct buf text = BUF_INIT, line = BUF_INIT;
    long i;
    int fd, rc = USER_EXIT_ERROR;

    /* Hash before taking the lock: a prompt must not block other writers. */
    if (strcmp(op, "del") != 0 && user_make_line(user, o, &line) < 0)
        return USER_EXIT_ERROR;
    if ((fd = user_lock(path, strcmp(op, "add") == 0 ? cfg : NULL)) < 0)
        goto out;
    if (user_read_fd(fd, path, &text) < 0 ||
        user_parse(path, &text, &lines, &users) < 0)
        goto out;
    i = user_find(&users, user);
    if (strcmp(op, "add") == 0) {
        if (i >= 0) {
            fprintf(stderr, "posthorn: %s: user %s already exists (line %ld)\n",
                    path, user, i + 1);
            goto out;
        }
        argv_add(&lines, line.data);
    } else if (i < 0) {
        fprintf(stderr, "posthorn: %s: no user %s\n", path, user);
        goto out;
    } else if (strcmp(op, "del") == 0) {
        explicit_bzero(lines.v[i], strlen(lines.v[i]));
        free(lines.v[i]);
        memmove(&lines.v[i], &lines.v[i + 1],
                (lines.n - (size_t)i) * sizeof(lines.v[0]));
        lines.n--;
    } else {
        /* line is "user:field:...": take the field out of it. */
        char *field = strchr(line.data, ':') + 1;

        *strchr(field, ':') = 0;
        user_replace_password(&lines, (size_t)i, field);
    }
    if (user_rewrite(path, fd, &lines) < 0)
        goto out;
    rc = 0;
out:
    if (fd >= 0)
        close(fd); /* releases the lock, after the rename */
    for (size_t k = 0; k < lines.n; k++)
        explicit_bzero(lines.v[k], strlen(lines.v[k]));
    if (text.data != NULL)
        explicit_bzero(text.data, text.len);
    if (line.data != NULL)
        explicit_bzero(line.data, line.len);
    argv_free(&lines);
    argv_free(&users);
    buf_free(&text);
    buf_free(&line);
    if (rc == 0 && strcmp(op, "add") == 0)
        user_hint(cfg, user, o->home ? o->home : "");
    return rc;
}

static int user_list(const char *path)
{
    struct argv lines = ARGV_INIT, users = ARGV_INIT;
    struct buf text = BUF_INIT;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    int rc = USER_EXIT_ERROR;

    if (fd < 0) {
        fprintf(stderr, "posthorn: %s: %s\n", path, strerror(errno));
        return USER_EXIT_ERROR;
    }
    if (user_read_fd(fd, path, &text) == 0 &&
        user_parse(path, &text, &lines, &users) == 0) {
        for (size_t i = 0; i < users.n; i++)
            if (*users.v[i])
                printf("%s\n", users.v[i]);
        rc = fflush(stdout) == 0 ? 0 : USER_EXIT_ERROR;
    }
    close(fd);
    for (size_t k = 0; k < lines.n; k++)
        explicit_bzero(lines.v[k], strlen(lines.v[k]));
    if (text.data != NULL)
        explicit_bzero(text.data, text.len);
    argv_free(&lines);
    argv_free(&users);
    buf_free(&text);
    return rc;
}

/* main.cf's passdb path, or NULL after a message. */
static struct config *user_config(const char *confdir, const char **path)
{
    struct config *cfg = config_new();
    char err[1024];

    if (config_load(cfg, confdir, NULL, err, sizeof(err)) < 0 ||
        config_check(cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "posthorn: %s\n", err);
        config_free(cfg);
        return NULL;
    }
    if (*config_str(cfg, "passdb") == 0) {
        fprintf(stderr,
                "posthorn: passdb is not set in %s/main.cf (e.g. "
                "passdb = passwd-file:%s/users)\n",
                confdir, confdir);
        config_free(cfg);
        return NULL;
    }
    if ((*path = passdb_spec_path(config_str(cfg, "passdb"), err,
                                  sizeof(err))) == NULL) {
        fprintf(stderr, "posthorn: %s\n", err);
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

int cmd_user(const char *confdir, int argc, char **argv)
{
    struct user_opts o = {.scheme = PASSDB_SCHEME_SHA512_CRYPT};
    const char *op, *path = NULL, *opts;
    struct config *cfg;
    char *user = NULL;
    int opt, rc;

    if (argc < 2)
        return user_usage();
    op = argv[1];
    if (strcmp(op, "add") == 0)
        opts = "p:s:u:g:d:";
    else if (strcmp(op, "passwd") == 0)
        opts = "p:s:";
    else if (strcmp(op, "del") == 0 || strcmp(op, "list") == 0)
        opts = "";
    else
        return user_usage();
    optind = 1;
    while ((opt = getopt(argc - 1, argv + 1, opts)) != -1) {
        switch (opt) {
        case 'p':
            o.password = optarg;
            break;
        case 's':
            if (!passdb_scheme_from_name(optarg, &o.scheme)) {
                fprintf(stderr, "posthorn: unknown scheme '%s'\n", optarg);
                return user_usage();
            }
            break;
        case 'u':
            o.uid = optarg;
            break;
        case 'g':
            o.gid = optarg;
            break;
        case 'd':
            o.home = optarg;
            break;
        default:
            return user_usage();
        }
    }
    if (strcmp(op, "list") == 0 ? optind != argc - 1 : optind != argc - 2)
        return user_usage();
    if ((cfg = user_config(confdir, &path)) == NULL)
        return USER_EXIT_ERROR;
    if (strcmp(op, "list") == 0) {
        rc = user_list(path);
    } else {
        user = xstrdup(argv[optind + 1]);
        str_lower(user);
        rc = user_change(cfg, path, op, user, &o);
        free(user);
    }
    config_free(cfg);
    return rc;
}
