/*
 * auth - the authentication service: the only process that reads the
 * password database (passdb), answering password checks and account
 * lookups for smtpd, pop3d, imapd and the recipient resolver over
 * private/auth (protocol in global/mail_proto.h, client in
 * global/auth_client.h).  master.cf:
 *
 *     auth      unix  -  -  n  -  1  auth
 *
 * It is an event server (one process, libevent), so the failed-login
 * counts that slow down password guessing live in one place and a held
 * back answer costs a timer, not a process; crypt(3) runs in worker
 * threads (auth_hash.c).  maxproc 1 is the sensible setting; master never
 * starts a second one anyway while the first is alive, since an event
 * server never reports itself busy.
 *
 * Trusts main.cf and the passdb file (administrator data, still checked
 * line by line; a broken file is refused as a whole and the previous
 * version stays in use).  Trusts no client: see auth_request.c.
 *
 * Exits on SIGTERM, SIGHUP (master restarts it with the new
 * configuration; failure counts start over) or when master goes away.
 * Fatal only when the event loop, the worker threads or the listening
 * socket cannot be set up.  A passdb that is unset or unreadable is not
 * fatal: every request then gets a temporary failure and the log says
 * why, so mail keeps flowing where accounts are not involved.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "auth/auth.h"
#include "global/config.h"
#include "global/server.h"
#include "util/log.h"
#include "util/mem.h"

/* How often to look at server_should_exit() and expire failure counts. */
#define AUTH_TICK_MS 500
#define AUTH_EXPIRE_EVERY 60
/* The same passdb error is logged again after this many seconds. */
#define AUTH_ERROR_REPEAT 60

struct auth_params auth_params;
struct event_base *auth_base;

static struct passdb *auth_db;
static char *auth_db_spec;      /* NULL when passdb is empty */
static char auth_db_error[512]; /* last error logged */
static long long auth_db_error_time;
static struct evconnlistener *auth_listener;

static long long auth_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec;
}

/* Log a passdb problem once per change of text, or every minute. */
static void auth_db_complain(const char *err)
{
    long long now = auth_now();

    if (strcmp(err, auth_db_error) == 0 &&
        now - auth_db_error_time < AUTH_ERROR_REPEAT)
        return;
    snprintf(auth_db_error, sizeof(auth_db_error), "%s", err);
    auth_db_error_time = now;
    log_error("%s", err);
}

struct passdb *auth_passdb(char *err, size_t errlen)
{
    int r;

    if (auth_db_spec == NULL) {
        snprintf(err, errlen, "passdb is not set in main.cf");
        auth_db_complain("passdb is not set in main.cf: refusing every login");
        return NULL;
    }
    if (auth_db == NULL &&
        (auth_db = passdb_open(auth_db_spec, err, errlen)) == NULL) {
        auth_db_complain(err);
        return NULL;
    }
    r = passdb_refresh(auth_db, err, errlen);
    if (r < 0) {
        if (passdb_loaded(auth_db)) {
            char msg[700];

            snprintf(msg, sizeof(msg),
                     "%s; still using the version loaded "
                     "before",
                     err);
            auth_db_complain(msg);
        } else {
            auth_db_complain(err);
            return NULL;
        }
    } else if (r > 0) {
        log_info("passdb %s: %zu accounts", passdb_path(auth_db),
                 passdb_count(auth_db));
        auth_db_error[0] = 0;
    }
    return auth_db;
}

static void auth_read_params(void)
{
    struct config *cfg = config_global();
    const char *spec = config_str(cfg, "passdb");

    auth_params.failure_delay_ms =
        config_time(cfg, "auth_failure_delay") * 1000;
    auth_params.failure_max_delay_ms =
        config_time(cfg, "auth_failure_max_delay") * 1000;
    auth_params.failure_window = config_time(cfg, "auth_failure_window");
    auth_params.ipc_timeout = config_time(cfg, "ipc_timeout");
    auth_db_spec = *spec ? xstrdup(spec) : NULL;
}

static void auth_accept(struct evconnlistener *l, evutil_socket_t fd,
                        struct sockaddr *sa, int salen, void *ctx)
{
    (void)l;
    (void)sa;
    (void)salen;
    (void)ctx;
    auth_conn_accept(fd);
}

static void auth_accept_error(struct evconnlistener *l, void *ctx)
{
    int err = EVUTIL_SOCKET_ERROR();

    (void)l;
    (void)ctx;
    log_warn("accept: %s", evutil_socket_error_to_string(err));
}

static void auth_tick(evutil_socket_t fd, short what, void *ctx)
{
    static long long last_expire;
    long long now = auth_now();

    (void)fd;
    (void)what;
    (void)ctx;
    if (server_should_exit())
        event_base_loopbreak(auth_base);
    if (now - last_expire >= AUTH_EXPIRE_EVERY) {
        auth_penalty_expire();
        last_expire = now;
    }
}

static void auth_on_signal(evutil_socket_t sig, short what, void *ctx)
{
    (void)what;
    (void)ctx;
    log_debug("signal %d: exiting", (int)sig);
    event_base_loopbreak(auth_base);
}

static void auth_run(int listen_fd)
{
    struct timeval tick = {0, AUTH_TICK_MS * 1000};
    struct event *tick_ev, *term_ev, *int_ev;
    char err[512];

    auth_read_params();
    if ((auth_base = event_base_new()) == NULL)
        log_fatal("cannot create the event loop");
    auth_penalty_init();
    auth_hash_init(auth_base);
    /* Load now, so a broken passdb is in the log before the first login. */
    if (auth_db_spec != NULL)
        (void)auth_passdb(err, sizeof(err));
    else
        log_warn("passdb is not set in main.cf: every login will fail "
                 "with a temporary error");

    auth_listener = evconnlistener_new(auth_base, auth_accept, NULL,
                                       LEV_OPT_CLOSE_ON_EXEC, 0, listen_fd);
    if (auth_listener == NULL)
        log_fatal("cannot listen on descriptor %d", listen_fd);
    evconnlistener_set_error_cb(auth_listener, auth_accept_error);
    tick_ev = event_new(auth_base, -1, EV_PERSIST, auth_tick, NULL);
    event_add(tick_ev, &tick);
    term_ev = evsignal_new(auth_base, SIGTERM, auth_on_signal, NULL);
    int_ev = evsignal_new(auth_base, SIGINT, auth_on_signal, NULL);
    event_add(term_ev, NULL);
    event_add(int_ev, NULL);

    if (!server_should_exit())
        event_base_dispatch(auth_base);

    evconnlistener_free(auth_listener);
    auth_hash_shutdown();
    auth_conn_free_all();
    auth_penalty_free();
    event_free(tick_ev);
    event_free(term_ev);
    event_free(int_ev);
    event_base_free(auth_base);
    auth_base = NULL;
    passdb_close(auth_db);
    free(auth_db_spec);
}

int main(int argc, char **argv)
{
    static const struct server_opts opts = {
        .name = "auth",
        .run = auth_run,
    };

    return server_main(argc, argv, &opts);
}
