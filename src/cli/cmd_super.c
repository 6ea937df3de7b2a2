/*
 * cmd_super - `posthorn super`, Postfix's postsuper: the administrator's
 * hands on the queue while the mail system runs.
 *
 *   posthorn super [-d ID|ALL|-] [-h ID|ALL|-] [-H ID|ALL|-]
 *                  [-r ID|ALL|-]... [queue...]
 *
 *   -d  delete the message (and its defer/ID reasons)
 *   -h  put it on hold: move it to hold/, where qmgr never looks
 *   -H  release it from hold: move it to deferred/ with its retry time set
 *       to now, then ask qmgr to scan deferred/ ("D")
 *   -r  requeue: move it to incoming/, where qmgr takes it at once
 *       (inotify; "I" is sent as well).  Unlike Postfix, which runs the
 *       message through cleanup again (address rewriting, header_checks,
 *       alias expansion), the file is not rewritten: qmgr routes the
 *       recipients not yet done again with the configuration of now.
 *
 * An argument is a queue ID, "ALL" (every message of the queues the
 * operation applies to) or "-" (queue IDs from stdin, one per line; only
 * once per command).  Operations run in the order given.  The queues an
 * operation looks in are, unless queue names follow the options:
 *   -d  hold incoming active deferred
 *   -h  incoming deferred           (Postfix adds active, see below)
 *   -H  hold                        (always)
 *   -r  hold incoming deferred      (Postfix adds active)
 *
 * Safe while the system runs: files change queues by rename(2) only (never
 * replacing a file of the same name) and are never rewritten; a file that
 * moved meanwhile (qmgr took it) is looked for again.  Deleting a message
 * in active/ is allowed, as in Postfix: qmgr keeps its open descriptor and
 * never recreates the file, so deliveries already handed to an agent may
 * still happen and nothing more does.  Holding or requeueing a message in
 * active/ is done only when active is named: qmgr finishing with it
 * meanwhile could leave the moved file with its last recipient not marked
 * done (delivered again on release).
 *
 * Trusts main.cf and the queue layout; checks every queue ID with
 * mail_queue_id_ok() before it becomes part of a path.  Must run as root
 * or as mail_owner.  Prints Postfix's summary lines on stderr
 * ("posthorn/super: Deleted: 2 messages"), warns about IDs that are in
 * none of the queues, logs each moved or removed message to the mail log.
 * Exit status: 0 (also when an ID was not found, as postsuper), 1 for an
 * invalid ID, a configuration, permission or file system error, 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "cli/cmd_queue.h"
#include "global/config.h"
#include "global/defer_log.h"
#include "global/mail_proto.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

#define SUPER_PROG "posthorn/super"
/* A file that keeps moving away from us is left alone after this. */
#define SUPER_MOVE_TRIES 5
/* Longest stdin line taken as a queue ID candidate. */
#define SUPER_LINE_MAX 256

enum super_op { SUPER_DELETE, SUPER_HOLD, SUPER_RELEASE, SUPER_REQUEUE };

/* One row per operation: its option, queues, target and words. */
static const struct super_op_def {
    char opt;
    const char *target;        /* queue it moves to; NULL = delete */
    const char *def_queues[4]; /* default queues, NULL-terminated */
    bool only_hold;            /* queue names after the options do not apply */
    const char *done;          /* summary: "Deleted" */
    const char *log;           /* per message: "removed" */
} super_ops[] = {
    [SUPER_DELETE] = {'d',
                      NULL,
                      {MAIL_QUEUE_HOLD, MAIL_QUEUE_INCOMING, MAIL_QUEUE_ACTIVE,
                       MAIL_QUEUE_DEFERRED},
                      false,
                      "Deleted",
                      "removed"},
    [SUPER_HOLD] = {'h',
                    MAIL_QUEUE_HOLD,
                    {MAIL_QUEUE_INCOMING, MAIL_QUEUE_DEFERRED, NULL},
                    false,
                    "Placed on hold",
                    "placed on hold"},
    [SUPER_RELEASE] = {'H',
                       MAIL_QUEUE_DEFERRED,
                       {MAIL_QUEUE_HOLD, NULL},
                       true,
                       "Released from hold",
                       "released from hold"},
    [SUPER_REQUEUE] = {'r',
                       MAIL_QUEUE_INCOMING,
                       {MAIL_QUEUE_HOLD, MAIL_QUEUE_INCOMING,
                        MAIL_QUEUE_DEFERRED, NULL},
                       false,
                       "Requeued",
                       "requeued"},
};

/* Queue names an administrator may give after the options. */
static const char *const super_queue_names[] = {
    MAIL_QUEUE_HOLD, MAIL_QUEUE_INCOMING, MAIL_QUEUE_ACTIVE,
    MAIL_QUEUE_DEFERRED};

struct super_req {
    enum super_op op;
    const char *arg; /* ID, "ALL" or "-" */
};

struct super_state {
    const char *queue_dir;
    const char *queues[4]; /* from the command line, or [0] NULL */
    long count[4];         /* per operation */
    bool failed;
};

static void super_warn(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static void super_warn(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: warning: ", SUPER_PROG);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static const char *const *super_queues(const struct super_state *st,
                                       enum super_op op)
{
    if (st->queues[0] != NULL && !super_ops[op].only_hold)
        return st->queues;
    return super_ops[op].def_queues;
}

/*
 * rename(2) that never replaces: a file of that name in the target queue
 * is another message (IDs are unique among existing files).
 */
static int super_rename(const char *src, const char *dst)
{
    int rc = renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_NOREPLACE);

    if (rc < 0 && (errno == EINVAL || errno == ENOSYS)) {
        if (access(dst, F_OK) == 0) {
            errno = EEXIST;
            return -1;
        }
        rc = rename(src, dst);
    }
    return rc;
}

/*
 * Apply op to the file at path (found in `queue`).  Returns 1 done,
 * 0 gone meanwhile (look again), -1 failed (reported).
 */
static int super_apply(struct super_state *st, enum super_op op,
                       const char *queue, const char *id, const char *path)
{
    const struct super_op_def *d = &super_ops[op];
    struct buf dst = BUF_INIT;
    char err[512];
    int rc = 1;

    if (d->target == NULL) {
        if (unlink(path) < 0) {
            if (errno == ENOENT)
                return 0;
            super_warn("%s: remove %s: %s", id, path, strerror(errno));
            return -1;
        }
        if (defer_log_remove(st->queue_dir, id, err, sizeof(err)) < 0)
            super_warn("%s: %s", id, err);
        log_info("%s: %s", id, d->log);
        return 1;
    }
    if (strcmp(queue, d->target) == 0) {
        log_info("%s: %s", id, d->log); /* already there: nothing to move */
        return 1;
    }
    if (op == SUPER_RELEASE) {
        /* The retry time is the mtime: due now, so it goes at once. */
        struct timespec times[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
        if (utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                return 0;
            super_warn("%s: set retry time of %s: %s", id, path,
                       strerror(errno));
        }
    }
    buf_printf(&dst, "%s/%s/%s", st->queue_dir, d->target, id);
    if (super_rename(path, dst.data) < 0) {
        if (errno == ENOENT) {
            rc = 0;
        } else {
            super_warn("%s: move %s to %s: %s", id, path, dst.data,
                       strerror(errno));
            rc = -1;
        }
    } else {
        log_info("%s: %s", id, d->log);
    }
    buf_free(&dst);
    return rc;
}

/*
 * One message: look in each queue of the operation, apply it where the
 * file is.  A file that moves while we look is looked for again.
 */
static void super_one(struct super_state *st, enum super_op op, const char *id)
{
    const char *const *queues = super_queues(st, op);
    struct buf path = BUF_INIT;

    for (int tries = 0; tries < SUPER_MOVE_TRIES; tries++) {
        bool found = false, settled = false;

        for (size_t i = 0; i < 4 && queues[i] != NULL && !settled; i++) {
            int rc;

            if (!queue_locate(st->queue_dir, queues[i], id, &path))
                continue;
            found = true;
            rc = super_apply(st, op, queues[i], id, path.data);
            if (rc > 0)
                st->count[op]++;
            else if (rc < 0)
                st->failed = true;
            settled = rc != 0; /* 0: it moved on; look again */
        }
        if (settled)
            break;
        if (!found) {
            /* Held already: not an error. */
            if (op == SUPER_HOLD &&
                queue_locate(st->queue_dir, MAIL_QUEUE_HOLD, id, &path))
                break;
            if ((op == SUPER_HOLD || op == SUPER_REQUEUE) &&
                queue_locate(st->queue_dir, MAIL_QUEUE_ACTIVE, id, &path))
                super_warn("%s: being delivered (active queue); not changed "
                           "(name the queue \"active\" to force)",
                           id);
            else
                super_warn("%s: no such message", id);
            break;
        }
    }
    buf_free(&path);
}

static void super_all(struct super_state *st, enum super_op op)
{
    const char *const *queues = super_queues(st, op);

    for (size_t i = 0; i < 4 && queues[i] != NULL; i++) {
        struct queue_items items = {0};
        char *dir;

        /* A message that already is where the operation would put it. */
        if (super_ops[op].target != NULL &&
            strcmp(queues[i], super_ops[op].target) == 0)
            continue;
        dir = xasprintf("%s/%s", st->queue_dir, queues[i]);
        if (queue_scan(queues[i], dir, true, &items) < 0)
            st->failed = true;
        for (size_t k = 0; k < items.n; k++) {
            int rc =
                super_apply(st, op, queues[i], items.v[k].id, items.v[k].path);
            if (rc > 0)
                st->count[op]++;
            else if (rc < 0)
                st->failed = true;
        }
        queue_items_free(&items);
        free(dir);
    }
}

/* Queue IDs from stdin, one per line; bad lines are warned about. */
static void super_stdin(struct super_state *st, enum super_op op)
{
    char line[SUPER_LINE_MAX + 2];

    while (fgets(line, sizeof(line), stdin) != NULL) {
        size_t n = strlen(line);
        char *id;

        if (n > 0 && line[n - 1] != '\n' && !feof(stdin)) {
            int c;
            while ((c = getchar()) != EOF && c != '\n')
                ;
            super_warn("input line too long; skipped");
            continue;
        }
        id = str_trim(line);
        if (*id == 0)
            continue;
        if (!mail_queue_id_ok(id)) {
            char safe[80];
            super_warn("invalid mail queue id: %s",
                       log_printable(safe, sizeof(safe), id, strlen(id)));
            continue;
        }
        super_one(st, op, id);
    }
}

/* Only root and mail_owner may move other people's mail around. */
static bool super_allowed(struct config *cfg)
{
    const char *owner = config_str(cfg, "mail_owner");
    struct passwd *pw;

    if (geteuid() == 0)
        return true;
    pw = getpwnam(owner);
    if (pw != NULL && pw->pw_uid == geteuid())
        return true;
    fprintf(stderr, "%s: fatal: must run as root or as mail_owner (%s)\n",
            SUPER_PROG, owner);
    return false;
}

static int super_usage(void)
{
    fprintf(stderr, "usage: posthorn super [-d ID|ALL|-] [-h ID|ALL|-] "
                    "[-H ID|ALL|-] [-r ID|ALL|-]... [queue...]\n");
    return 2;
}

int cmd_super(const char *confdir, int argc, char **argv)
{
    struct super_req *reqs = xcalloc((size_t)argc, sizeof(*reqs));
    struct super_state st;
    struct config *cfg;
    const char *file;
    size_t nreq = 0, nqueues = 0;
    bool have_stdin = false;
    char err[512];
    int i, rc = 0;

    memset(&st, 0, sizeof(st));
    for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] != 0; i++) {
        const char *arg;
        size_t op;

        for (op = 0; op < 4; op++)
            if (argv[i][1] == super_ops[op].opt)
                break;
        if (op == 4 || (argv[i][2] == 0 && i + 1 >= argc)) {
            free(reqs);
            return super_usage();
        }
        arg = argv[i][2] ? argv[i] + 2 : argv[++i];
        if (strcmp(arg, "-") == 0) {
            if (have_stdin) {
                fprintf(stderr,
                        "%s: fatal: only one option may read queue "
                        "IDs from stdin\n",
                        SUPER_PROG);
                free(reqs);
                return 2;
            }
            have_stdin = true;
        } else if (strcmp(arg, "ALL") != 0 && !mail_queue_id_ok(arg)) {
            char safe[80];
            fprintf(stderr, "%s: fatal: invalid mail queue id: %s\n",
                    SUPER_PROG,
                    log_printable(safe, sizeof(safe), arg, strlen(arg)));
            free(reqs);
            return 1;
        }
        reqs[nreq].op = (enum super_op)op;
        reqs[nreq].arg = arg;
        nreq++;
    }
    for (; i < argc; i++) {
        size_t k;

        for (k = 0; k < 4; k++)
            if (strcmp(argv[i], super_queue_names[k]) == 0)
                break;
        if (k == 4 || nqueues == 4) {
            fprintf(stderr, "%s: fatal: unknown queue: %s\n", SUPER_PROG,
                    argv[i]);
            free(reqs);
            return 2;
        }
        st.queues[nqueues++] = super_queue_names[k];
    }
    if (nreq == 0) {
        free(reqs);
        return super_usage();
    }

    if ((cfg = queue_load_config(confdir, SUPER_PROG)) == NULL) {
        free(reqs);
        return 1;
    }
    if (!super_allowed(cfg)) {
        config_free(cfg);
        free(reqs);
        return 1;
    }
    file = config_str(cfg, "maillog_file");
    log_open("super", *file ? LOG_TO_FILE : LOG_TO_SYSLOG, file);
    st.queue_dir = config_str(cfg, "queue_directory");

    for (size_t r = 0; r < nreq; r++) {
        if (strcmp(reqs[r].arg, "ALL") == 0)
            super_all(&st, reqs[r].op);
        else if (strcmp(reqs[r].arg, "-") == 0)
            super_stdin(&st, reqs[r].op);
        else
            super_one(&st, reqs[r].op, reqs[r].arg);
    }

    for (size_t op = 0; op < 4; op++) {
        long n = st.count[op];
        if (n == 0)
            continue;
        fprintf(stderr, "%s: %s: %ld message%s\n", SUPER_PROG,
                super_ops[op].done, n, n == 1 ? "" : "s");
        log_info("%s: %ld message%s", super_ops[op].done, n, n == 1 ? "" : "s");
    }
    /* Wake qmgr for what it should see now; it also finds it later. */
    if (st.count[SUPER_RELEASE] > 0 &&
        queue_trigger("D", 1, err, sizeof(err)) < 0)
        super_warn("cannot reach qmgr (%s): released mail goes at the next "
                   "deferred queue scan",
                   err);
    if (st.count[SUPER_REQUEUE] > 0 &&
        queue_trigger("I", 1, err, sizeof(err)) < 0)
        super_warn("cannot reach qmgr (%s): requeued mail goes when qmgr "
                   "next scans incoming/",
                   err);
    if (st.failed)
        rc = 1;
    config_free(cfg);
    free(reqs);
    return rc;
}
