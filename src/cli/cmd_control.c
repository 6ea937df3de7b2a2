/*
 * cmd_control - posthorn start | start-fg | stop | abort | reload | status
 * (Postfix's `postfix` command).
 *
 * Finds master in daemon_directory (empty: next to this program) and the
 * running master through the lock on $queue_directory/pid/master.pid
 * (global/master_pid.h): a pid file without a lock holder is stale.
 *
 *   start     check main.cf (warnings are printed, errors refuse), run
 *             master; it detaches and exits 0 once it runs, after printing
 *             any reason it could not start on our stderr.
 *   start-fg  exec master -f: it stays on this terminal; Ctrl-C stops it.
 *   stop      SIGTERM, then wait until master (which waits for its
 *             workers) is gone.
 *   abort     SIGTERM, and SIGKILL to master's process group when it has
 *             not gone after a short grace time.
 *   reload    check main.cf, then SIGHUP.
 *   status    exit 0 with "posthorn is running (pid N)", else exit 1.
 *
 * Exit status: 0 done, 1 failed (the reason is on stderr), 2 usage.
 */
#include "cli/cmd.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "global/config.h"
#include "global/master_pid.h"
#include "util/argv.h"
#include "util/log.h"
#include "util/mem.h"

/* How long stop waits for master, and abort before SIGKILL. */
#define CONTROL_STOP_WAIT_MS 30000
#define CONTROL_ABORT_GRACE_MS 1000
/* How long start waits for master to report that it runs. */
#define CONTROL_START_WAIT_MS 30000
#define CONTROL_POLL_MS 50

static void control_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Load and check main.cf; warnings are printed when `loud`. */
static struct config *control_config(const char *confdir, bool loud)
{
    struct config *cfg = config_new();
    struct argv warnings = ARGV_INIT;
    char err[1024];

    if (config_load(cfg, confdir, &warnings, err, sizeof(err)) < 0 ||
        config_check(cfg, err, sizeof(err)) < 0) {
        log_error("%s", err);
        argv_free(&warnings);
        config_free(cfg);
        return NULL;
    }
    if (loud)
        for (size_t i = 0; i < warnings.n; i++)
            log_warn("%s", warnings.v[i]);
    argv_free(&warnings);
    config_set_global(cfg);
    return cfg;
}

static void control_done(struct config *cfg)
{
    config_set_global(NULL);
    config_free(cfg);
}

/* 1 running (*pid may be 0 while master starts), 0 not, -1 error. */
static int control_running(struct config *cfg, pid_t *pid)
{
    char path[PATH_MAX];
    char err[512];
    int rc;

    if (master_pid_path(cfg, path, sizeof(path)) < 0) {
        log_error("queue_directory is too long");
        return -1;
    }
    if ((rc = master_pid_check(path, pid, err, sizeof(err))) < 0)
        log_error("%s", err);
    return rc;
}

/* Wait until master's pid is known; 0 if it went away meanwhile. */
static int control_running_pid(struct config *cfg, pid_t *pid)
{
    int rc;

    for (int waited = 0;; waited += CONTROL_POLL_MS) {
        rc = control_running(cfg, pid);
        if (rc != 1 || *pid > 0 || waited >= CONTROL_START_WAIT_MS)
            return rc;
        control_sleep_ms(CONTROL_POLL_MS);
    }
}

/* Wait until no master holds the lock; true if it went within ms. */
static bool control_wait_gone(struct config *cfg, int ms)
{
    pid_t pid;

    for (int waited = 0;; waited += CONTROL_POLL_MS) {
        int rc = control_running(cfg, &pid);

        if (rc == 0)
            return true;
        if (rc < 0 || waited >= ms)
            return false;
        control_sleep_ms(CONTROL_POLL_MS);
    }
}

/* daemon_directory/master, or master next to this program. */
static char *control_master_path(struct config *cfg)
{
    const char *dir = config_str(cfg, "daemon_directory");
    char self[PATH_MAX];
    char *path;

    if (*dir == 0) {
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        char *slash;

        if (n <= 0) {
            log_error("daemon_directory is empty and /proc/self/exe cannot "
                      "be read: %m");
            return NULL;
        }
        self[n] = 0;
        if ((slash = strrchr(self, '/')) != NULL)
            *(slash == self ? slash + 1 : slash) = 0;
        dir = self;
    }
    path = xasprintf("%s/master", dir);
    if (access(path, X_OK) < 0) {
        log_error("cannot run %s: %m", path);
        free(path);
        return NULL;
    }
    return path;
}

static int control_no_args(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "usage: posthorn [-c config_dir] %s\n", argv[0]);
        return -1;
    }
    return 0;
}

int cmd_start(const char *confdir, int argc, char **argv)
{
    bool foreground = strcmp(argv[0], "start-fg") == 0;
    struct config *cfg;
    struct argv av = ARGV_INIT;
    char *master_path, *absdir;
    pid_t pid, running;
    int status, rc;

    if (control_no_args(argc, argv) < 0)
        return 2;
    if ((cfg = control_config(confdir, true)) == NULL) {
        log_error("the mail system was not started: fix the configuration");
        return 1;
    }
    if ((rc = control_running(cfg, &running)) != 0) {
        if (rc > 0 && running > 0)
            log_error("the mail system is already running (pid %ld)",
                      (long)running);
        else if (rc > 0)
            log_error("the mail system is already running");
        control_done(cfg);
        return 1;
    }
    if ((master_path = control_master_path(cfg)) == NULL) {
        control_done(cfg);
        return 1;
    }
    /* Absolute, so every process of this instance names it in argv. */
    if ((absdir = realpath(confdir, NULL)) == NULL) {
        log_error("configuration directory %s: %m", confdir);
        free(master_path);
        control_done(cfg);
        return 1;
    }
    argv_add(&av, master_path);
    argv_add(&av, "-c");
    argv_add(&av, absdir);
    free(absdir);
    if (foreground)
        argv_add(&av, "-f");
    for (int i = 0; i < log_verbose_level(); i++)
        argv_add(&av, "-v");

    if (foreground) {
        fflush(NULL);
        execv(master_path, av.v);
        log_error("exec %s: %m", master_path);
        argv_free(&av);
        free(master_path);
        control_done(cfg);
        return 1;
    }

    log_info("starting the mail system");
    fflush(NULL);
    if ((pid = fork()) < 0) {
        log_error("fork: %m");
        rc = 1;
        goto out;
    }
    if (pid == 0) {
        execv(master_path, av.v);
        log_error("exec %s: %m", master_path);
        _exit(1);
    }
    /* master exits once it runs in the background (or could not start). */
    for (int waited = 0;; waited += CONTROL_POLL_MS) {
        pid_t w = waitpid(pid, &status, WNOHANG);

        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            log_error("waitpid: %m");
            rc = 1;
            goto out;
        }
        if (waited >= CONTROL_START_WAIT_MS) {
            log_error("master gave no answer within %ds; see the log",
                      CONTROL_START_WAIT_MS / 1000);
            rc = 1;
            goto out;
        }
        control_sleep_ms(CONTROL_POLL_MS);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        control_running_pid(cfg, &running) != 1) {
        log_error("the mail system did not start");
        rc = 1;
        goto out;
    }
    rc = 0;
out:
    argv_free(&av);
    free(master_path);
    control_done(cfg);
    return rc;
}

/* Kill master's process group only when it is master's own. */
static void control_kill_hard(pid_t pid)
{
    pid_t pgid = getpgid(pid);

    if (pgid == pid && pgid != getpgrp())
        kill(-pgid, SIGKILL);
    else
        kill(pid, SIGKILL);
}

int cmd_stop(const char *confdir, int argc, char **argv)
{
    bool abort_now = strcmp(argv[0], "abort") == 0;
    struct config *cfg;
    pid_t pid;
    int rc;

    if (control_no_args(argc, argv) < 0)
        return 2;
    if ((cfg = control_config(confdir, false)) == NULL)
        return 1;
    rc = control_running_pid(cfg, &pid);
    if (rc <= 0 || pid <= 0) {
        if (rc == 0)
            log_error("the mail system is not running");
        else if (rc > 0)
            log_error("master holds the pid file but has not written its pid");
        control_done(cfg);
        return 1;
    }
    log_info("%s the mail system", abort_now ? "aborting" : "stopping");
    if (kill(pid, SIGTERM) < 0 && errno != ESRCH) {
        log_error("cannot signal master (pid %ld): %m", (long)pid);
        control_done(cfg);
        return 1;
    }
    if (abort_now && !control_wait_gone(cfg, CONTROL_ABORT_GRACE_MS)) {
        control_kill_hard(pid);
        if (control_wait_gone(cfg, CONTROL_STOP_WAIT_MS)) {
            /* A killed master leaves its pid file behind. */
            char path[PATH_MAX];

            if (master_pid_path(cfg, path, sizeof(path)) == 0)
                unlink(path);
        }
    }
    if (!control_wait_gone(cfg, CONTROL_STOP_WAIT_MS)) {
        log_error("master (pid %ld) did not stop within %ds", (long)pid,
                  CONTROL_STOP_WAIT_MS / 1000);
        control_done(cfg);
        return 1;
    }
    control_done(cfg);
    return 0;
}

int cmd_reload(const char *confdir, int argc, char **argv)
{
    struct config *cfg;
    pid_t pid;
    int rc;

    if (control_no_args(argc, argv) < 0)
        return 2;
    if ((cfg = control_config(confdir, true)) == NULL) {
        log_error("not reloading: fix the configuration first");
        return 1;
    }
    rc = control_running_pid(cfg, &pid);
    if (rc <= 0 || pid <= 0) {
        if (rc >= 0)
            log_error("the mail system is not running");
        control_done(cfg);
        return 1;
    }
    if (kill(pid, SIGHUP) < 0) {
        log_error("cannot signal master (pid %ld): %m", (long)pid);
        control_done(cfg);
        return 1;
    }
    log_info("refreshing the mail system");
    control_done(cfg);
    return 0;
}

int cmd_status(const char *confdir, int argc, char **argv)
{
    struct config *cfg;
    pid_t pid;
    int rc;

    if (control_no_args(argc, argv) < 0)
        return 2;
    if ((cfg = control_config(confdir, false)) == NULL)
        return 1;
    rc = control_running(cfg, &pid);
    control_done(cfg);
    if (rc < 0)
        return 1;
    if (rc == 0) {
        printf("posthorn is not running\n");
        return 1;
    }
    if (pid > 0)
        printf("posthorn is running (pid %ld)\n", (long)pid);
    else
        printf("posthorn is starting\n");
    return 0;
}
