/*
 * master_spawn - fork and exec one worker of a service.
 *
 * The worker gets the service's listening socket on SERVER_LISTEN_FD, the
 * write end of its status pipe on SERVER_STATUS_FD, stdin/stdout/stderr as
 * master has them, and nothing else: every other descriptor is marked
 * close-on-exec before the exec.  Its command line is the one server.h
 * documents; its environment is import_environment plus its generation.
 * Signal handlers and mask are reset first, because master's handlers
 * belong to master's event loop.  A failed exec is logged by the child,
 * which exits 127 (master then sees an abnormal exit and throttles).
 */
#include "master/master.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"
#include "util/mem.h"

static void master_spawn_exec(struct master_svc *svc) __attribute__((noreturn));

static void master_spawn_exec(struct master_svc *svc)
{
    static const int reset[] = {SIGHUP, SIGTERM, SIGINT, SIGCHLD, SIGPIPE};
    struct argv av = ARGV_INIT, env = ARGV_INIT;
    sigset_t none;
    char gen[64];
    int lfd, sfd, gfd;

    for (size_t i = 0; i < sizeof(reset) / sizeof(reset[0]); i++)
        signal(reset[i], SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    log_reinit_pid();

    /* Via high numbers, so no dup2 can clobber another's source. */
    lfd = fcntl(svc->listen_fd, F_DUPFD_CLOEXEC, 10);
    sfd = fcntl(svc->status_fd[1], F_DUPFD_CLOEXEC, 10);
    gfd = master.groupsync_fd >= 0
              ? fcntl(master.groupsync_fd, F_DUPFD_CLOEXEC, 10)
              : -1;
    if (lfd < 0 || sfd < 0 || dup2(lfd, SERVER_LISTEN_FD) < 0 ||
        dup2(sfd, SERVER_STATUS_FD) < 0 ||
        (gfd >= 0 && dup2(gfd, SERVER_GROUPSYNC_FD) < 0)) {
        log_error("service %s: cannot set up descriptors: %m", svc->name);
        _exit(127);
    }
    if (close_range(gfd >= 0 ? SERVER_GROUPSYNC_FD + 1 : SERVER_STATUS_FD + 1,
                    ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        log_error("service %s: close_range: %m", svc->name);
        _exit(127);
    }

    argv_add(&av, svc->command);
    argv_add(&av, "-c");
    argv_add(&av, master.config_dir);
    argv_add(&av, "-n");
    argv_add(&av, svc->name);
    argv_add(&av, "-t");
    argv_add(&av, svc->type);
    if (!svc->unpriv)
        argv_add(&av, "-u");
    for (size_t i = 0; i < svc->args.n; i++)
        argv_add(&av, svc->args.v[i]);

    for (size_t i = 0; i < master.child_env.n; i++)
        argv_add(&env, master.child_env.v[i]);
    snprintf(gen, sizeof(gen), "%s=%u", SERVER_GENERATION_ENV, svc->generation);
    argv_add(&env, gen);
    if (gfd >= 0)
        argv_add(&env, SERVER_GROUPSYNC_ENV "=" SERVER_GROUPSYNC_FD_TEXT);

    execve(svc->path, av.v, env.v);
    log_error("exec %s: %m", svc->path);
    _exit(127);
}

int master_spawn(struct master_svc *svc)
{
    pid_t pid = fork();

    if (pid < 0) {
        log_warn("fork: %m");
        return -1;
    }
    if (pid == 0)
        master_spawn_exec(svc);
    master_child_add(svc, pid);
    log_debug("service %s: started %s pid %ld", svc->name, svc->path,
              (long)pid);
    return 0;
}
