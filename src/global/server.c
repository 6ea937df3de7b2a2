/*
 * server - the worker skeleton: command line, configuration, logging,
 * privilege drop, then either the single-server accept loop or the
 * hand-off to an event server's own loop.
 *
 * Given by master: "-c dir -n service -t type [-o name=value]... [-u]
 * [-v]", the listening socket on SERVER_LISTEN_FD and the write end of the
 * service's status pipe on SERVER_STATUS_FD.  It trusts its command line
 * and main.cf as far as the config module validates them (both come from
 * the administrator through master), and nothing a client sends: that is
 * the daemon's business in serve().
 *
 * Talks to master only by fixed-size status records (BUSY when it takes a
 * client, IDLE when it is ready for the next one).  The listening socket
 * is shared by every worker of the service and is non-blocking, so an
 * accept that finds nothing means another worker got the client.  When
 * master goes away (the read end of the status pipe closes) an idle worker
 * exits.
 *
 * Fails by log_fatal(): bad command line, bad configuration, unknown
 * mail_owner, a descriptor that master should have passed but did not.
 */
#include "global/server.h"

#include <assert.h>
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "global/config.h"
#include "global/maps.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/procpid.h"

/* Longest service name accepted on the command line. */
#define SERVER_NAME_MAX 255

static const char *server_name; /* -n, or the program name */
static unsigned server_generation;
static bool server_standalone;
static bool server_master_gone;
static volatile sig_atomic_t server_got_term;
static volatile sig_atomic_t server_got_hup;

const char *server_service_name(void)
{
    return server_name != NULL ? server_name : "";
}

/* The read end of the status pipe is master's: POLLERR means it is gone. */
static bool server_master_alive(void)
{
    struct pollfd pfd = {.fd = SERVER_STATUS_FD, .events = 0};

    if (server_standalone || server_master_gone)
        return !server_master_gone;
    if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)))
        server_master_gone = true;
    return !server_master_gone;
}

bool server_should_exit(void)
{
    return server_got_term || server_got_hup || !server_master_alive();
}

/* ---------------------------------------------------------- arguments */

void server_args_free(struct server_args *args)
{
    argv_free(&args->overrides);
}

static bool server_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > SERVER_NAME_MAX)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f || *s == '/')
            return false;
    return true;
}

int server_parse_args(int argc, char **argv, const char *progname,
                      struct server_args *args, char *err, size_t errlen)
{
    const char *env = getenv("POSTHORN_CONFIG_DIR");

    memset(args, 0, sizeof(*args));
    args->config_dir = env != NULL && *env ? env : POSTHORN_CONFIG_DIR;
    args->service = progname;
    args->type = "unix";

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (arg[0] != '-' || arg[1] == 0) {
            snprintf(err, errlen, "unexpected argument '%s'", arg);
            return -1;
        }
        for (const char *p = arg + 1; *p; p++) {
            const char *value;

            switch (*p) {
            case 'u':
                args->keep_root = true;
                continue;
            case 's':
                args->standalone = true;
                continue;
            case 'v':
                args->verbose++;
                continue;
            case 'c':
            case 'n':
            case 't':
            case 'o':
                break;
            default:
                snprintf(err, errlen, "unknown option -%c", *p);
                return -1;
            }
            /* An option with a value: the rest of this word or the next. */
            if (p[1] != 0) {
                value = p + 1;
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                snprintf(err, errlen, "option -%c needs a value", *p);
                return -1;
            }
            switch (*p) {
            case 'c':
                if (*value == 0) {
                    snprintf(err, errlen, "-c: empty directory name");
                    return -1;
                }
                args->config_dir = value;
                break;
            case 'n':
                if (!server_name_ok(value)) {
                    snprintf(err, errlen, "-n: bad service name");
                    return -1;
                }
                args->service = value;
                break;
            case 't':
                if (strcmp(value, "inet") != 0 && strcmp(value, "unix") != 0) {
                    snprintf(err, errlen, "-t: unsupported service type '%s'",
                             value);
                    return -1;
                }
                args->type = value;
                break;
            case 'o':
                if (value[0] == '=' || strchr(value, '=') == NULL) {
                    snprintf(err, errlen, "-o: expected name=value, got '%s'",
                             value);
                    return -1;
                }
                argv_add(&args->overrides, value);
                break;
            }
            break;
        }
    }
    return 0;
}

/* ---------------------------------------------------------- set-up */

/*
 * A single-client worker ends at once on SIGTERM/SIGINT, as Postfix's do:
 * every protocol step is built so that dying anywhere loses nothing (no
 * 250 before the commit, no "delivered" before the Maildir sync), and a
 * worker blocked on a slow client must not hold up "posthorn stop".
 */
static volatile sig_atomic_t server_term_exits;

static void server_on_signal(int sig)
{
    if (sig != SIGHUP && server_term_exits)
        _exit(0);
    if (sig == SIGHUP)
        server_got_hup = 1;
    else
        server_got_term = 1;
}

static struct config *server_load_config(const struct server_args *args)
{
    struct config *cfg = config_new();
    struct argv warnings = ARGV_INIT;
    char err[1024];
    char where[SERVER_NAME_MAX + 32];

    /* master has logged the warnings already; workers stay quiet. */
    if (config_load(cfg, args->config_dir, &warnings, err, sizeof(err)) < 0)
        log_fatal("%s", err);
    argv_free(&warnings);
    snprintf(where, sizeof(where), "service %s -o", args->service);
    /* Before the overrides, which may refer to $service_name. */
    if (config_set(cfg, "service_name", args->service, where, err,
                   sizeof(err)) < 0)
        log_fatal("%s", err);
    for (size_t i = 0; i < args->overrides.n; i++) {
        const char *o = args->overrides.v[i];
        const char *eq = strchr(o, '=');
        char *name = xstrndup(o, (size_t)(eq - o));

        if (config_set(cfg, name, eq + 1, where, err, sizeof(err)) < 0)
            log_fatal("%s", err);
        free(name);
    }
    if (config_check(cfg, err, sizeof(err)) < 0)
        log_fatal("%s", err);
    return cfg;
}

/* maillog_file when set, syslog otherwise; stderr too on request. */
static void server_open_log(const char *progname, struct config *cfg)
{
    const char *file = config_str(cfg, "maillog_file");
    const char *env = getenv("POSTHORN_LOG_STDERR");
    int where = *file ? LOG_TO_FILE : LOG_TO_SYSLOG;

    const char *syslog_name = config_str(cfg, "syslog_name");

    if (env != NULL && strcmp(env, "1") == 0)
        where |= LOG_TO_STDERR;
    /* Postfix: "-o syslog_name=postfix/submission" tags the lines of that
     * service "postfix/submission/smtpd". */
    if (*syslog_name != 0 && strcmp(syslog_name, "posthorn") != 0) {
        char *tag = xasprintf("%s/%s", syslog_name, progname);

        log_open(tag, where, file); /* copies (and bounds) the tag */
        free(tag);
        return;
    }
    log_open(progname, where, file);
}

static unsigned server_read_generation(void)
{
    const char *env = getenv(SERVER_GENERATION_ENV);
    long long gen;

    if (env == NULL || !str_to_llong(env, &gen) || gen < 0 ||
        gen > 0xffffffffLL)
        return 0;
    return (unsigned)gen;
}

static void server_check_fd(int fd, const char *what)
{
    if (fcntl(fd, F_GETFD) < 0)
        log_fatal("no %s on descriptor %d: run me from master, or with -s",
                  what, fd);
}

/*
 * Become mail_owner for good.  A mail_owner with user ID 0 leaves the
 * process as it is; master warns about that configuration at start.
 */
static void server_drop_privileges(const char *owner)
{
    struct passwd *pw;
    uid_t uid;
    gid_t gid;

    if (*owner == 0)
        log_fatal("mail_owner is empty");
    errno = 0;
    if ((pw = getpwnam(owner)) == NULL)
        log_fatal("mail_owner %s: %s", owner,
                  errno ? strerror(errno) : "no such user");
    uid = pw->pw_uid;
    gid = pw->pw_gid;
    if (uid == 0)
        return;
    if (setgroups(1, &gid) < 0)
        log_fatal("setgroups(%ld): %m", (long)gid);
    if (setgid(gid) < 0)
        log_fatal("setgid(%ld): %m", (long)gid);
    if (setuid(uid) < 0)
        log_fatal("setuid(%ld): %m", (long)uid);
    if (setuid(0) == 0)
        log_fatal("privileges of user ID 0 could be regained after setuid");
}

/* ---------------------------------------------------------- serving */

static void server_report(char status)
{
    struct server_status st;
    ssize_t n;

    memset(&st, 0, sizeof(st));
    st.pid = proc_pid();
    st.generation = server_generation;
    st.status = status;
    do {
        n = write(SERVER_STATUS_FD, &st, sizeof(st));
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(st))
        server_master_gone = true;
}

void server_event_status(bool full)
{
    if (!server_standalone && !server_master_gone)
        server_report(full ? SERVER_STATUS_BUSY : SERVER_STATUS_IDLE);
}

static long long server_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec;
}

/*
 * Accept, serve, repeat.  Termination signals stay blocked except inside
 * ppoll() and serve(), so a signal can neither be lost between the flag
 * test and the wait nor cut a client short without the daemon's consent.
 */
static void server_single_loop(const struct server_opts *opts,
                               struct config *cfg, const sigset_t *open_mask,
                               const sigset_t *closed_mask)
{
    long long max_idle = config_time(cfg, "max_idle");
    long long max_use = config_int(cfg, "max_use");
    long long timeout = config_time(cfg, "daemon_timeout");
    unsigned watchdog =
        timeout > 0 && timeout < 0x7fffffff ? (unsigned)timeout : 0;
    long long used = 0;
    long long idle_since = server_now();

    for (;;) {
        struct pollfd pfd[2];
        struct timespec ts;
        int n, fd;

        if (server_got_term || server_got_hup || server_master_gone)
            return;
        if (max_idle > 0) {
            long long left = idle_since + max_idle - server_now();

            if (left <= 0) {
                log_debug("idle for %llds: exiting", max_idle);
                return;
            }
            ts.tv_sec = (time_t)left;
            ts.tv_nsec = 0;
        }
        pfd[0].fd = SERVER_LISTEN_FD;
        pfd[0].events = POLLIN;
        pfd[1].fd = SERVER_STATUS_FD;
        pfd[1].events = 0;
        n = ppoll(pfd, 2, max_idle > 0 ? &ts : NULL, open_mask);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_fatal("poll: %m");
        }
        if (n == 0)
            continue;
        if (pfd[1].revents & (POLLERR | POLLHUP | POLLNVAL)) {
            log_debug("master went away: exiting");
            server_master_gone = true;
            return;
        }
        if (pfd[0].revents & POLLNVAL)
            log_fatal("listening socket: descriptor %d is closed",
                      SERVER_LISTEN_FD);
        if (!(pfd[0].revents & (POLLIN | POLLERR | POLLHUP)))
            continue;
        fd = accept4(SERVER_LISTEN_FD, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            switch (errno) {
            case EAGAIN:
#if EWOULDBLOCK != EAGAIN
            case EWOULDBLOCK:
#endif
            case EINTR:
            case ECONNABORTED:
            case EPROTO:
                continue; /* another worker took it, or it left */
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
                log_warn("accept: %m");
                sleep(1);
                continue;
            default:
                log_fatal("accept: %m");
            }
        }
        server_report(SERVER_STATUS_BUSY);
        sigprocmask(SIG_SETMASK, open_mask, NULL);
        /* Watchdog: SIGALRM's default action ends a stuck worker. */
        alarm(watchdog);
        opts->serve(fd);
        alarm(0);
        sigprocmask(SIG_SETMASK, closed_mask, NULL);
        close(fd);
        used++;
        if (max_use > 0 && used >= max_use) {
            log_debug("served %lld clients: exiting", used);
            return;
        }
        /* A worker about to exit stays "busy" so master forks a fresh one. */
        if (server_got_term || server_got_hup || !server_master_alive())
            return;
        server_report(SERVER_STATUS_IDLE);
        idle_since = server_now();
    }
}

int server_main(int argc, char **argv, const struct server_opts *opts)
{
    struct server_args args;
    struct config *cfg;
    struct sigaction sa;
    sigset_t open_mask, closed_mask;
    char err[512];

    assert(opts != NULL && opts->name != NULL);
    assert((opts->serve != NULL) != (opts->run != NULL));

    /* Until main.cf names a log destination. */
    log_open(opts->name, LOG_TO_STDERR | LOG_TO_SYSLOG, NULL);
    if (server_parse_args(argc, argv, opts->name, &args, err, sizeof(err)) < 0)
        log_fatal("%s; usage: %s -c config_dir -n service -t inet|unix "
                  "[-o name=value]... [-u] [-v] [-s]",
                  err, opts->name);
    server_name = args.service;
    server_standalone = args.standalone;
    log_set_verbose(args.verbose);

    cfg = server_load_config(&args);
    config_set_global(cfg);
    maps_configure(cfg);
    server_open_log(opts->name, cfg);
    server_generation = server_read_generation();

    if (args.standalone) {
        if (opts->serve == NULL)
            log_fatal("stand-alone mode (-s) needs a single-client server");
    } else {
        server_check_fd(SERVER_LISTEN_FD, "listening socket");
        server_check_fd(SERVER_STATUS_FD, "status pipe");
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
    /* No SA_RESTART: a blocked wait must see the signal. */
    server_term_exits = opts->serve != NULL && opts->run == NULL;
    sa.sa_handler = server_on_signal;
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigprocmask(SIG_SETMASK, NULL, &open_mask);
    sigdelset(&open_mask, SIGHUP);
    sigdelset(&open_mask, SIGTERM);
    sigdelset(&open_mask, SIGINT);
    closed_mask = open_mask;
    sigaddset(&closed_mask, SIGHUP);
    sigaddset(&closed_mask, SIGTERM);
    sigaddset(&closed_mask, SIGINT);
    sigprocmask(SIG_SETMASK, &open_mask, NULL);

    if (opts->pre_init != NULL)
        opts->pre_init();
    if (geteuid() == 0 && !args.keep_root)
        server_drop_privileges(config_str(cfg, "mail_owner"));
    if (opts->post_init != NULL)
        opts->post_init();

    if (args.standalone) {
        opts->serve(0);
    } else if (opts->run != NULL) {
        opts->run(SERVER_LISTEN_FD);
    } else {
        sigprocmask(SIG_SETMASK, &closed_mask, NULL);
        server_single_loop(opts, cfg, &open_mask, &closed_mask);
    }
    server_args_free(&args);
    return 0;
}

/* Bounds what a worker keeps: a message is streamed, never held whole. */
#define SERVER_HEAP_TRIM_THRESHOLD (8 * 1024 * 1024)
#define SERVER_HEAP_MMAP_THRESHOLD (4 * 1024 * 1024)

void server_keep_heap(void)
{
    (void)mallopt(M_TRIM_THRESHOLD, SERVER_HEAP_TRIM_THRESHOLD);
    (void)mallopt(M_MMAP_THRESHOLD, SERVER_HEAP_MMAP_THRESHOLD);
}
