/*
 * imapd - the IMAP4rev1 server (RFC 3501 and the extensions listed in
 * docs/imap.md).  master.cf:
 *
 *     imap      inet  n  -  n  -  -  imapd
 *     imaps     inet  n  -  n  -  -  imapd -o imapd_tls_wrappermode=yes
 *
 * An event server: one process holds up to imapd_client_limit sessions
 * in one libevent loop (IMAP sessions are long and mostly idle, so a
 * process per session would not scale to thousands).  When it is full it
 * tells master BUSY and stops accepting, and master starts another
 * process, up to the service's maxproc; with room again it says IDLE.
 * A process without sessions for max_idle seconds exits.
 *
 * Privileges: the skeleton drops to mail_owner (or to the mail_owner of
 * a "-o mail_owner=vmail" override) before any client is accepted, and
 * every session of the process runs as that user.  Mailboxes must
 * therefore belong to it: the "vmail" model of Dovecot and of Postfix's
 * virtual mailboxes (virtual_uid_maps = static:<that uid>).  A login
 * whose mailbox belongs to another uid is refused and logged.
 *
 * Trusts main.cf and master.cf; nothing a client sends (imap_parse.c
 * bounds and checks it).  Exits on SIGTERM (every session gets "* BYE"),
 * SIGHUP (stops accepting, says BUSY so master starts a process with the
 * new configuration, and exits when its last session ends), or when
 * master goes away.  Fatal only at start: unreadable TLS key, no event
 * loop.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "global/config.h"
#include "global/server.h"
#include "imapd/imapd.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/tls.h"

/* How often to check for master, expire idle sessions, and max_idle. */
#define IMAPD_TICK_MS 1000
/* Allocations at least this big are mmapped (see imapd_pre_init). */
#define IMAPD_MMAP_THRESHOLD (128 * 1024)
/* Descriptors kept free beyond one per session (store, auth, inotify). */
#define IMAPD_SPARE_FDS 64

struct imapd_params imapd_params;
struct event_base *imapd_base;
struct tls_ctx *imapd_tls;

static struct evconnlistener *imapd_listener;
static bool imapd_full;     /* said BUSY to master */
static bool imapd_draining; /* SIGHUP: no new sessions */
static time_t imapd_empty_since;
static long long imapd_max_idle;

static int imapd_tls_level(const char *s)
{
    if (strcmp(s, "may") == 0)
        return IMAP_TLS_MAY;
    if (strcmp(s, "encrypt") == 0)
        return IMAP_TLS_ENCRYPT;
    return IMAP_TLS_NONE;
}

static void imapd_read_params(void)
{
    struct config *cfg = config_global();
    long long msg = config_size(cfg, "imapd_message_size_limit");

    imapd_params.banner = config_str(cfg, "imapd_banner");
    imapd_params.client_limit = config_int(cfg, "imapd_client_limit");
    imapd_params.hard_error_limit = config_int(cfg, "imapd_hard_error_limit");
    imapd_params.login_timeout = config_time(cfg, "imapd_login_timeout");
    imapd_params.timeout = config_time(cfg, "imapd_timeout");
    imapd_params.max_line = (size_t)config_size(cfg, "imapd_max_line_length");
    if (msg <= 0 || msg > (long long)IMAP_MESSAGE_MAX)
        msg = IMAP_MESSAGE_MAX;
    imapd_params.message_limit = (size_t)msg;
    imapd_params.tls_auth_only = config_bool(cfg, "imapd_tls_auth_only");
    imapd_params.tls_wrapper = config_bool(cfg, "imapd_tls_wrappermode");
    imapd_params.tls_level =
        imapd_tls_level(config_str(cfg, "imapd_tls_security_level"));
    imapd_max_idle = config_time(cfg, "max_idle");
}

/* Still privileged: the key file may be readable by root only. */
static void imapd_pre_init(void)
{
    /*
     * A fixed mmap threshold: LMDB allocates 1-2 MiB per environment,
     * and sessions hibernating and waking close and reopen them.  With
     * glibc's sliding threshold the first such free would move those
     * blocks onto the heap, where calloc touches every page and the
     * holes stay resident; mmapped they go back to the system at once.
     */
    mallopt(M_MMAP_THRESHOLD, IMAPD_MMAP_THRESHOLD);
    struct config *cfg = config_global();
    struct tls_ctx_opts o;
    char err[512];

    imapd_read_params();
    if (imapd_params.tls_level == IMAP_TLS_NONE && !imapd_params.tls_wrapper)
        return;
    memset(&o, 0, sizeof(o));
    o.role = TLS_ROLE_SERVER;
    o.cert_file = config_str(cfg, "imapd_tls_cert_file");
    o.key_file = config_str(cfg, "imapd_tls_key_file");
    if (*o.cert_file == 0)
        log_fatal("imapd_tls_security_level or imapd_tls_wrappermode asks "
                  "for TLS, but imapd_tls_cert_file is empty");
    if ((imapd_tls = tls_ctx_new(&o, err, sizeof(err))) == NULL)
        log_fatal("TLS: %s", err);
}

/*
 * Sessions need a descriptor each: raise the soft limit to what
 * imapd_client_limit needs, as far as the hard limit allows.
 */
static void imapd_fd_limit(void)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)imapd_params.client_limit + IMAPD_SPARE_FDS;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want
                      ? want
                      : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want)
        log_warn("descriptor limit %llu is below imapd_client_limit %lld: "
                 "fewer sessions per process",
                 (unsigned long long)rl.rlim_cur, imapd_params.client_limit);
    if (rl.rlim_cur < want && rl.rlim_cur > IMAPD_SPARE_FDS)
        imapd_params.client_limit =
            (long long)(rl.rlim_cur - IMAPD_SPARE_FDS);
}

static void imapd_set_full(bool full)
{
    if (full == imapd_full)
        return;
    imapd_full = full;
    if (imapd_listener != NULL) {
        if (full)
            evconnlistener_disable(imapd_listener);
        else
            evconnlistener_enable(imapd_listener);
    }
    server_event_status(full);
}

void imapd_session_count(int delta)
{
    size_t n = imap_session_count();

    (void)delta;
    if (n == 0)
        imapd_empty_since = time(NULL);
    if (imapd_draining) {
        if (n == 0)
            event_base_loopbreak(imapd_base);
        return;
    }
    imapd_set_full((long long)n >= imapd_params.client_limit);
}

static void imapd_accept(struct evconnlistener *l, evutil_socket_t fd,
                         struct sockaddr *sa, int salen, void *ctx)
{
    (void)l;
    (void)sa;
    (void)salen;
    (void)ctx;
    if (imapd_draining ||
        (long long)imap_session_count() >= imapd_params.client_limit) {
        /* Raced with the limit: another worker or a retry will serve it. */
        close(fd);
        return;
    }
    imap_session_accept(fd, imapd_params.tls_wrapper);
}

static void imapd_accept_error(struct evconnlistener *l, void *ctx)
{
    int err = EVUTIL_SOCKET_ERROR();

    (void)l;
    (void)ctx;
    /* EMFILE and friends: stop for a tick rather than spin. */
    log_warn("accept: %s", evutil_socket_error_to_string(err));
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
        imapd_set_full(true);
}

static void imapd_tick(evutil_socket_t fd, short what, void *ctx)
{
    time_t now = time(NULL);

    (void)fd;
    (void)what;
    (void)ctx;
    if (server_should_exit()) {
        event_base_loopbreak(imapd_base);
        return;
    }
    if (!imapd_draining)
        imapd_set_full((long long)imap_session_count() >=
                       imapd_params.client_limit);
    imap_session_hibernate_idle(now);
    imap_store_expire(now);
    if (imap_session_count() == 0 && imapd_max_idle > 0 &&
        now - imapd_empty_since >= imapd_max_idle) {
        log_debug("idle for %llds: exiting", imapd_max_idle);
        event_base_loopbreak(imapd_base);
    }
}

static void imapd_on_term(evutil_socket_t sig, short what, void *ctx)
{
    (void)what;
    (void)ctx;
    log_debug("signal %d: exiting", (int)sig);
    event_base_loopbreak(imapd_base);
}

/* Reload: let the sessions finish, serve no new ones. */
static void imapd_on_hup(evutil_socket_t sig, short what, void *ctx)
{
    (void)sig;
    (void)what;
    (void)ctx;
    if (imapd_draining)
        return;
    imapd_draining = true;
    log_debug("reload: finishing %zu sessions", imap_session_count());
    if (imapd_listener != NULL)
        evconnlistener_disable(imapd_listener);
    server_event_status(true);
    if (imap_session_count() == 0)
        event_base_loopbreak(imapd_base);
}

static void imapd_run(int listen_fd)
{
    struct timeval tick = {IMAPD_TICK_MS / 1000, (IMAPD_TICK_MS % 1000) * 1000};
    struct event *tick_ev, *term_ev, *int_ev, *hup_ev;
    char err[512];

    imapd_fd_limit();
    if ((imapd_base = event_base_new()) == NULL)
        log_fatal("cannot create the event loop");
    if (xsasl_server_init(err, sizeof(err)) < 0)
        log_warn("SASL: %s: AUTHENTICATE is not offered", err);
    imap_auth_init();
    imap_notify_init();
    imapd_empty_since = time(NULL);

    imapd_listener = evconnlistener_new(imapd_base, imapd_accept, NULL,
                                        LEV_OPT_CLOSE_ON_EXEC, 0, listen_fd);
    if (imapd_listener == NULL)
        log_fatal("cannot listen on descriptor %d", listen_fd);
    evconnlistener_set_error_cb(imapd_listener, imapd_accept_error);
    tick_ev = event_new(imapd_base, -1, EV_PERSIST, imapd_tick, NULL);
    event_add(tick_ev, &tick);
    term_ev = evsignal_new(imapd_base, SIGTERM, imapd_on_term, NULL);
    int_ev = evsignal_new(imapd_base, SIGINT, imapd_on_term, NULL);
    hup_ev = evsignal_new(imapd_base, SIGHUP, imapd_on_hup, NULL);
    event_add(term_ev, NULL);
    event_add(int_ev, NULL);
    event_add(hup_ev, NULL);

    if (!server_should_exit())
        event_base_dispatch(imapd_base);

    evconnlistener_free(imapd_listener);
    imapd_listener = NULL;
    imap_session_free_all("Server shutting down.");
    imap_store_expire(0);
    imap_notify_shutdown();
    imap_auth_shutdown();
    event_free(tick_ev);
    event_free(term_ev);
    event_free(int_ev);
    event_free(hup_ev);
    event_base_free(imapd_base);
    imapd_base = NULL;
    tls_ctx_free(imapd_tls);
}

int main(int argc, char **argv)
{
    static const struct server_opts opts = {
        .name = "imapd",
        .pre_init = imapd_pre_init,
        .run = imapd_run,
    };

    return server_main(argc, argv, &opts);
}
