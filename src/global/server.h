/*
 * server - the skeleton every worker daemon runs under (Postfix's
 * single_server / event_server).
 *
 * master starts a worker as
 *
 *     DAEMON -c CONFIG_DIR -n SERVICE -t TYPE [-o name=value]... [-v]
 *
 * with the service's listening socket on fd SERVER_LISTEN_FD and the
 * service's status pipe (write end) on fd SERVER_STATUS_FD.  The skeleton
 * loads main.cf, applies the -o overrides, opens logging, calls pre_init
 * (still privileged: open keys, maps), drops to mail_owner when running as
 * root (unless the service is unpriv=n, signalled by -u), calls post_init,
 * then serves.
 *
 * Single server (serve != NULL): accept one client, report BUSY, call
 * serve(fd), close fd, report IDLE; exit after max_use clients or max_idle
 * seconds without a client, or when master sends SIGHUP (reload: finish
 * the current client, then exit) or SIGTERM (exit now).
 *
 * Event server (run != NULL): the daemon gets the listening fd and runs its
 * own loop (qmgr).  It should exit on SIGTERM; server_should_exit() tells.
 *
 * Stand-alone mode "-s": no master; serve(0) once with fd 0 as the client
 * connection (a socket; used for tests and fuzzing), then exit.
 */
#ifndef GLOBAL_SERVER_H
#define GLOBAL_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/argv.h"

#define SERVER_LISTEN_FD 3
#define SERVER_STATUS_FD 4
/*
 * The group-commit state block (util/groupsync.h) master shares with every
 * worker, on this descriptor when SERVER_GROUPSYNC_ENV is set.
 */
#define SERVER_GROUPSYNC_FD 5
#define SERVER_GROUPSYNC_FD_TEXT "5"
#define SERVER_GROUPSYNC_ENV "POSTHORN_GROUPSYNC_FD"

/* Environment variable by which master tells a worker its generation. */
#define SERVER_GENERATION_ENV "POSTHORN_GENERATION"

#ifndef POSTHORN_CONFIG_DIR
#define POSTHORN_CONFIG_DIR "/etc/posthorn"
#endif

/* Status record a worker writes to the status pipe (atomic: < PIPE_BUF). */
struct server_status {
    pid_t pid;
    unsigned generation;
    char status;   /* SERVER_STATUS_BUSY or SERVER_STATUS_IDLE */
};
#define SERVER_STATUS_BUSY 'B'
#define SERVER_STATUS_IDLE 'I'

struct server_opts {
    const char *name;            /* program name for logs, e.g. "smtpd" */
    void (*pre_init)(void);
    void (*post_init)(void);
    void (*serve)(int fd);       /* single server */
    void (*run)(int listen_fd);  /* event server */
};

int server_main(int argc, char **argv, const struct server_opts *opts);

/* Service name (-n) and whether a stop/reload was requested. */
const char *server_service_name(void);
bool server_should_exit(void);

/*
 * An event server that serves several clients but only up to a limit
 * (imapd) says BUSY when it is full and IDLE when it has room again, so
 * master forks another worker while every one is full.  A fresh worker
 * counts as idle.  No-op in stand-alone mode.
 */
void server_event_status(bool full);

/*
 * For workers that handle one message after another (cleanup, local,
 * smtpd): keep freed heap memory for the next message.  By default glibc
 * gives the top of the heap back after each large free and serves big
 * buffers with mmap, so every message of 100 KiB paid again for fresh,
 * zeroed pages.  The heap then stays at its high-water mark, which for
 * these workers is a few buffers of MAIL_PROTO_CHUNK size.
 */
void server_keep_heap(void);

/*
 * The worker command line, as server_main() parses it (exposed for tests).
 * Strings point into argv, except the copied overrides.
 */
struct server_args {
    const char *config_dir;  /* -c; default $POSTHORN_CONFIG_DIR, then
                                POSTHORN_CONFIG_DIR */
    const char *service;     /* -n; default the program name */
    const char *type;        /* -t inet | unix; default "unix" */
    struct argv overrides;   /* -o name=value, in order */
    bool keep_root;          /* -u: unpriv=n, do not drop to mail_owner */
    bool standalone;         /* -s */
    int verbose;             /* number of -v */
};

/* Returns 0, or -1 with err set; free with server_args_free either way. */
int server_parse_args(int argc, char **argv, const char *progname,
                      struct server_args *args, char *err, size_t errlen);
void server_args_free(struct server_args *args);

#endif
