/*
 * anvil - the connection and rate counting service (Postfix's anvil):
 * smtpd reports each client connection, disconnection, MAIL FROM and
 * RCPT TO, and anvil answers how many connections that client has open
 * and how many connections, messages and recipients it made in the
 * current anvil_rate_time_unit.  smtpd compares the answers with
 * smtpd_client_connection_count_limit and the smtpd_client_*_rate_limit
 * parameters.  master.cf:
 *
 *     anvil     unix  -  -  n  -  1  anvil
 *
 * An event server (one process, libevent): the counts of every smtpd
 * must meet in one place, and each smtpd keeps one connection.  maxproc
 * 1 is the only sensible setting (a second anvil would count half).
 * Every anvil_status_update_time, and at exit, it logs Postfix's
 * "statistics: max connection count N for (smtp:ADDR) at TIME" lines.
 *
 * Trusts main.cf.  Trusts no client: requests are bounded and checked in
 * anvil_conn.c, and the table of counters is bounded (anvil_table.c).
 * Holds nothing durable: the counters start over when anvil restarts,
 * which at worst lets a client past a limit once.
 *
 * Exits on SIGTERM, SIGHUP (master restarts it with the new
 * configuration) or when master goes away.  Fatal only when the event
 * loop or the listening socket cannot be set up.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "anvil/anvil.h"
#include "global/config.h"
#include "global/server.h"
#include "util/log.h"

/* How often to expire idle idents and look at server_should_exit(). */
#define ANVIL_TICK_MS 1000

struct event_base *anvil_base;

static struct anvil_table *anvil_table;
static long long anvil_status_every;
static long long anvil_last_status;

long long anvil_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec;
}

static void anvil_accept(struct evconnlistener *l, evutil_socket_t fd,
                         struct sockaddr *sa, int salen, void *ctx)
{
    (void)l;
    (void)sa;
    (void)salen;
    (void)ctx;
    anvil_conn_accept(fd, anvil_table);
}

static void anvil_accept_error(struct evconnlistener *l, void *ctx)
{
    int err = EVUTIL_SOCKET_ERROR();

    (void)l;
    (void)ctx;
    log_warn("accept: %s", evutil_socket_error_to_string(err));
}

static void anvil_tick(evutil_socket_t fd, short what, void *ctx)
{
    long long now = anvil_now();
    size_t evicted;

    (void)fd;
    (void)what;
    (void)ctx;
    if (server_should_exit())
        event_base_loopbreak(anvil_base);
    anvil_table_expire(anvil_table, now);
    if ((evicted = anvil_table_take_evicted(anvil_table)) > 0)
        log_warn("%zu clients tracked at once (the limit): forgot %zu idle "
                 "ones early",
                 (size_t)ANVIL_TABLE_MAX, evicted);
    if (now - anvil_last_status >= anvil_status_every) {
        anvil_table_log_stats(anvil_table);
        anvil_last_status = now;
    }
}

static void anvil_on_signal(evutil_socket_t sig, short what, void *ctx)
{
    (void)what;
    (void)ctx;
    log_debug("signal %d: exiting", (int)sig);
    event_base_loopbreak(anvil_base);
}

static void anvil_run(int listen_fd)
{
    struct config *cfg = config_global();
    struct timeval tick = {0, ANVIL_TICK_MS * 1000};
    struct event *tick_ev, *term_ev, *int_ev;
    struct evconnlistener *listener;

    anvil_status_every = config_time(cfg, "anvil_status_update_time");
    anvil_table = anvil_table_new(config_time(cfg, "anvil_rate_time_unit"),
                                  ANVIL_TABLE_MAX);
    anvil_last_status = anvil_now();
    if ((anvil_base = event_base_new()) == NULL)
        log_fatal("cannot create the event loop");
    listener = evconnlistener_new(anvil_base, anvil_accept, NULL,
                                  LEV_OPT_CLOSE_ON_EXEC, 0, listen_fd);
    if (listener == NULL)
        log_fatal("cannot listen on descriptor %d", listen_fd);
    evconnlistener_set_error_cb(listener, anvil_accept_error);
    tick_ev = event_new(anvil_base, -1, EV_PERSIST, anvil_tick, NULL);
    event_add(tick_ev, &tick);
    term_ev = evsignal_new(anvil_base, SIGTERM, anvil_on_signal, NULL);
    int_ev = evsignal_new(anvil_base, SIGINT, anvil_on_signal, NULL);
    event_add(term_ev, NULL);
    event_add(int_ev, NULL);

    if (!server_should_exit())
        event_base_dispatch(anvil_base);

    anvil_table_log_stats(anvil_table);
    evconnlistener_free(listener);
    anvil_conn_free_all();
    event_free(tick_ev);
    event_free(term_ev);
    event_free(int_ev);
    event_base_free(anvil_base);
    anvil_base = NULL;
    anvil_table_free(anvil_table);
    anvil_table = NULL;
}

int main(int argc, char **argv)
{
    static const struct server_opts opts = {
        .name = "anvil",
        .run = anvil_run,
    };

    return server_main(argc, argv, &opts);
}
