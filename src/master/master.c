/*
 * master - the posthorn supervisor (Postfix's master).
 *
 *   master [-c config_dir] [-f] [-v]
 *
 * Reads main.cf and master.cf, creates the queue directory tree, takes the
 * pid file lock (one master per queue), binds every listener, then - unless
 * -f keeps it in the foreground - detaches (double fork, setsid, stdio to
 * /dev/null) and runs workers on demand until SIGTERM.  Everything that can
 * fail because of the configuration is done before detaching, and the
 * process that was started exits only once the detached master has written
 * its pid: exit status 0 means "running", and the reason for any other
 * status was printed on stderr.
 *
 * master is root when the system runs as root; it speaks no protocol and
 * reads nothing from the network.  Its only inputs besides its two files
 * are signals and its workers' status records (master_service.c).
 */
#include "master/master.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "global/config.h"
#include "global/mail_proto.h"
#include "global/master_pid.h"
#include "util/groupsync.h"
#include "util/log.h"
#include "util/mem.h"

struct master_state master;

static bool master_finished;

static void master_usage(void)
{
    fprintf(stderr, "usage: master [-c config_dir] [-f] [-v]\n");
    exit(2);
}

/*
 * Leave the terminal.  The original process waits until the detached one
 * reports "ready" on a pipe (or dies), and exits accordingly.  Returns in
 * the detached process with the write end of that pipe.
 */
static int master_detach(void)
{
    int ready[2];
    pid_t pid;

    if (pipe2(ready, O_CLOEXEC) < 0)
        log_fatal("pipe: %m");
    fflush(NULL);
    if ((pid = fork()) < 0)
        log_fatal("fork: %m");
    if (pid > 0) {
        char c;
        ssize_t n;

        close(ready[1]);
        do {
            n = read(ready[0], &c, 1);
        } while (n < 0 && errno == EINTR);
        /* The intermediate process exits at once; collect it. */
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        _exit(n == 1 && c == 'R' ? 0 : 1);
    }
    close(ready[0]);
    if (setsid() < 0)
        log_fatal("setsid: %m");
    if ((pid = fork()) < 0)
        log_fatal("fork: %m");
    if (pid > 0)
        _exit(0);
    /* Own process group, so `posthorn abort` can kill master and workers
     * together; not a session leader, so no terminal can be acquired. */
    (void)setpgid(0, 0);
    log_reinit_pid();
    return ready[1];
}

/* stdin always, stdout/stderr unless maillog_file is one of them. */
static void master_detach_stdio(struct config *cfg)
{
    const char *file = config_str(cfg, "maillog_file");
    int fd = open("/dev/null", O_RDWR);

    if (fd < 0)
        log_fatal("open /dev/null: %m");
    dup2(fd, STDIN_FILENO);
    if (strcmp(file, "/dev/stdout") != 0 && strcmp(file, "/dev/stderr") != 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
    }
    if (fd > STDERR_FILENO)
        close(fd);
}

/* Descriptors 0-2 must exist, or a listener could end up as "stderr". */
static void master_check_stdio(void)
{
    for (int fd = 0; fd <= STDERR_FILENO; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
            exit(1);
}

/* Called once every worker is gone after a stop. */
void master_finish(void)
{
    if (master_finished)
        return;
    master_finished = true;
    if (master.pid_path != NULL)
        unlink(master.pid_path);
    event_base_loopbreak(master.base);
}

static void master_cleanup(void)
{
    struct master_svc *svc;

    while ((svc = TAILQ_FIRST(&master.services)) != NULL) {
        struct master_child *child;

        while ((child = LIST_FIRST(&svc->children)) != NULL) {
            LIST_REMOVE(child, entries);
            free(child);
        }
        TAILQ_REMOVE(&master.services, svc, entries);
        master_svc_free(svc);
    }
    master_sig_free();
    event_base_free(master.base);
    argv_free(&master.child_env);
    /* pid_fd stays open: the lock must outlive everything master does,
     * exit handlers included, because `posthorn stop` takes its release
     * for "master is gone". */
    free(master.pid_path);
    free(master.daemon_dir);
    free(master.config_dir);
    free(master.queue_dir);
    config_set_global(NULL);
    config_free(master.cfg);
}

int main(int argc, char **argv)
{
    const char *confdir = getenv("POSTHORN_CONFIG_DIR");
    struct master_svc *svc;
    struct argv warnings = ARGV_INIT;
    char err[1024];
    char path[PATH_MAX];
    pid_t holder;
    int ready_fd = -1;
    int opt;

    master_check_stdio();
    if (confdir == NULL || *confdir == 0)
        confdir = POSTHORN_CONFIG_DIR;
    log_open("master", LOG_TO_STDERR, NULL);
    master.pid_fd = -1;
    master.groupsync_fd = -1;
    TAILQ_INIT(&master.services);
    while ((opt = getopt(argc, argv, "c:fv")) != -1) {
        switch (opt) {
        case 'c':
            confdir = optarg;
            break;
        case 'f':
            master.foreground = true;
            break;
        case 'v':
            log_set_verbose(log_verbose_level() + 1);
            break;
        default:
            master_usage();
        }
    }
    if (optind != argc)
        master_usage();
    umask(022);

    /* Workers get absolute paths: master lives in the queue directory. */
    if ((master.config_dir = realpath(confdir, NULL)) == NULL)
        log_fatal("configuration directory %s: %m", confdir);
    if (master_conf_load(master.config_dir, &master.cfg, &warnings, err,
                         sizeof(err)) < 0)
        log_fatal("%s", err);
    config_set_global(master.cfg);
    master.queue_dir = xstrdup(config_str(master.cfg, "queue_directory"));
    master.as_root = geteuid() == 0;
    if (master_conf_owner(master.cfg, master.as_root, &master.owner_uid,
                          &master.owner_gid, err, sizeof(err)) < 0)
        log_fatal("%s", err);
    if (master_conf_daemon_dir(master.cfg, &master.daemon_dir, err,
                               sizeof(err)) < 0)
        log_fatal("%s", err);
    master_queue_maillog(master.cfg, master.as_root, master.owner_uid,
                         master.owner_gid);
    master_conf_open_log(master.cfg, true);
    for (size_t i = 0; i < warnings.n; i++)
        log_warn("%s", warnings.v[i]);
    argv_free(&warnings);
    if (master.as_root && master.owner_uid == 0)
        log_warn("mail_owner %s has user ID 0: the workers keep root "
                 "privileges (use an unprivileged account)",
                 config_str(master.cfg, "mail_owner"));
    if (master_conf_services(master.cfg, master.config_dir, master.daemon_dir,
                             master.queue_dir, &master.services, err,
                             sizeof(err)) < 0)
        log_fatal("%s", err);
    master_conf_env(master.cfg, &master.child_env);

    if (master_queue_init(master.queue_dir, master.as_root, master.owner_uid,
                          master.owner_gid, err, sizeof(err)) < 0)
        log_fatal("%s", err);
    if (chdir(master.queue_dir) < 0)
        log_fatal("chdir %s: %m", master.queue_dir);
    if ((master.groupsync_fd = groupsync_state_create(err, sizeof(err))) < 0)
        log_warn("group commit state in the queue directory instead: %s",
                 err);
    else if (ftruncate(master.groupsync_fd, MAIL_QUEUE_STATE_BYTES) < 0)
        log_warn("shared state block: ftruncate: %m");
    if (master_pid_path(master.cfg, path, sizeof(path)) < 0)
        log_fatal("queue_directory %s: path too long", master.queue_dir);
    if ((master.pid_fd = master_pid_lock(path, &holder, err, sizeof(err))) <
        0) {
        if (errno == EAGAIN && holder > 0)
            log_fatal("the mail system is already running (pid %ld)",
                      (long)holder);
        if (errno == EAGAIN)
            log_fatal("the mail system is already running");
        log_fatal("%s", err);
    }
    master.pid_path = xstrdup(path);

    for (svc = TAILQ_FIRST(&master.services); svc != NULL;
         svc = TAILQ_NEXT(svc, entries)) {
        if (master_svc_open(svc, err, sizeof(err)) < 0)
            log_fatal("%s: %s", svc->where, err);
    }

    if (!master.foreground) {
        ready_fd = master_detach();
        master_detach_stdio(master.cfg);
        master_conf_open_log(master.cfg, false);
    }
    if (master_pid_write(master.pid_fd, getpid(), err, sizeof(err)) < 0)
        log_fatal("%s: %s", master.pid_path, err);

    if ((master.base = event_base_new()) == NULL)
        log_fatal("cannot create the event loop");
    master_sig_init();
    master.generation = 1;
    log_info("daemon started -- version %s, configuration %s",
             config_str(master.cfg, "mail_version"), master.config_dir);
    for (svc = TAILQ_FIRST(&master.services); svc != NULL;
         svc = TAILQ_NEXT(svc, entries)) {
        master_svc_start(svc);
    }
    if (ready_fd >= 0) {
        if (write(ready_fd, "R", 1) != 1)
            log_warn("cannot tell the starting process: %m");
        close(ready_fd);
    }

    if (event_base_dispatch(master.base) < 0)
        log_fatal("event loop failed");
    master_cleanup();
    return 0;
}
