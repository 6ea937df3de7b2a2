/*
 * master - the supervisor's shared state and its modules.
 *
 *   master.c          start-up, daemonizing, the event loop, exit
 *   master_conf.c     main.cf + master.cf -> services; reload
 *   master_service.c  one service's pool: when to fork, status records,
 *                     throttling, wakeups, retiring
 *   master_spawn.c    fork + exec of one worker
 *   master_sig.c      signals: reload, stop, reaping children
 *   master_queue.c    the queue directory tree and maillog_file ownership
 *
 * master is the only process that stays root.  It trusts main.cf and
 * master.cf (the administrator's files, validated before use) and treats
 * the status records its workers write as untrusted input.
 */
#ifndef MASTER_MASTER_H
#define MASTER_MASTER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <time.h>

#include "global/server.h"
#include "util/argv.h"

/*
 * Lists are sys/queue.h's, walked with explicit for loops over
 * TAILQ_FIRST/TAILQ_NEXT: cppcheck cannot see through the FOREACH macros.
 */

struct config;
struct event;
struct event_base;

/* Seconds a stopping master waits for workers before SIGKILL. */
#define MASTER_STOP_GRACE 5
/* Throttle back-off after a crash: first delay and ceiling, seconds. */
#define MASTER_THROTTLE_MIN 1
#define MASTER_THROTTLE_MAX 60
/* A worker that ran this long before crashing restarts the back-off. */
#define MASTER_THROTTLE_RESET 60
/* At most one "process limit" warning per service in this many seconds. */
#define MASTER_LIMIT_WARN_INTERVAL 60
/* listen(2) backlog of every listener. */
#define MASTER_LISTEN_BACKLOG 512

struct master_svc;

struct master_child {
    pid_t pid;
    struct master_svc *svc;
    unsigned generation;
    bool idle;      /* waiting for a client (fresh ones count) */
    time_t started; /* monotonic seconds */
    LIST_ENTRY(master_child) entries;
};

/*
 * One listener and its pool.  A master.cf inet entry without a host and
 * with several inet_interfaces becomes one service per address (a worker
 * gets exactly one listening socket).
 */
struct master_svc {
    /* From master.cf, refreshed on reload. */
    char *name; /* as written: "127.0.0.1:2525", "cleanup" */
    char *type; /* "inet" or "unix" */
    bool unpriv;
    int wakeup;       /* seconds, 0 = none */
    bool wakeup_used; /* "N?": wakeups only once a worker ran */
    int maxproc;      /* resolved: 0 = unlimited */
    char *command;    /* as written: "smtpd" */
    char *path;       /* the executable */
    struct argv args; /* after the command, -o pairs included */
    char *where;      /* "master.cf:12" */

    /* The listener: its identity survives reloads. */
    char *key;  /* "inet|host|port" or "unix|path" */
    char *host; /* inet: "" = any address */
    char *port;
    char *socket_path; /* unix */
    int listen_fd;
    int status_fd[2]; /* workers write [1], master reads [0] */
    char status_buf[sizeof(struct server_status)];
    size_t status_len;

    struct event *listen_ev;
    struct event *status_ev;
    struct event *wakeup_ev;
    struct event *throttle_ev;
    bool listening; /* listen_ev is armed */

    /* The pool. */
    LIST_HEAD(master_child_list, master_child) children;
    unsigned generation;
    unsigned nproc;    /* all children, any generation */
    unsigned ncurrent; /* children of the current generation */
    unsigned navail;   /* ... of which idle */
    bool throttled;
    int backoff; /* seconds of the last throttle, 0 = none */
    time_t limit_warned;
    bool retired; /* removed by a reload; freed when empty */

    TAILQ_ENTRY(master_svc) entries;
};

TAILQ_HEAD(master_svc_list, master_svc);

struct master_state {
    struct event_base *base;
    struct config *cfg;
    char *config_dir; /* absolute */
    char *daemon_dir; /* absolute */
    char *queue_dir;  /* fixed at start */
    bool foreground;
    bool stopping;
    unsigned generation;
    unsigned nchildren;
    int pid_fd;
    char *pid_path;
    bool as_root;
    uid_t owner_uid;
    gid_t owner_gid;
    struct master_svc_list services;
    struct argv child_env; /* from import_environment */
    int groupsync_fd;      /* memfd shared with workers, or -1 */
    struct event *stop_timer;
    int stop_round;
};

extern struct master_state master;

/* master_conf.c */
int master_conf_load(const char *config_dir, struct config **cfg,
                     struct argv *warnings, char *err, size_t errlen);
int master_conf_daemon_dir(struct config *cfg, char **dir, char *err,
                           size_t errlen);
int master_conf_services(struct config *cfg, const char *config_dir,
                         const char *daemon_dir, const char *queue_dir,
                         struct master_svc_list *out, char *err, size_t errlen);
void master_conf_env(struct config *cfg, struct argv *env);
int master_conf_owner(struct config *cfg, bool as_root, uid_t *uid, gid_t *gid,
                      char *err, size_t errlen);
void master_conf_open_log(struct config *cfg, bool with_stderr);
void master_reload(void);

/* master_service.c */
struct master_svc *master_svc_new(void);
void master_svc_free(struct master_svc *svc);
const char *master_svc_label(const struct master_svc *svc, char *buf,
                             size_t size);
int master_svc_open(struct master_svc *svc, char *err, size_t errlen);
void master_svc_start(struct master_svc *svc);
void master_svc_update(struct master_svc *svc);
void master_svc_close(struct master_svc *svc);
void master_svc_retire(struct master_svc *svc);
void master_svc_take_spec(struct master_svc *svc, struct master_svc *spec);
void master_child_exited(struct master_child *child, int status);
struct master_child *master_child_find(pid_t pid);
void master_child_add(struct master_svc *svc, pid_t pid);

/* master_spawn.c */
int master_spawn(struct master_svc *svc);

/* master_sig.c */
void master_sig_init(void);
void master_stop(int sig);
void master_sig_free(void);

/* master_queue.c */
int master_queue_init(const char *queue_dir, bool as_root, uid_t uid, gid_t gid,
                      char *err, size_t errlen);
void master_queue_maillog(struct config *cfg, bool as_root, uid_t uid,
                          gid_t gid);

/* master.c */
void master_finish(void);

#endif
