/*
 * imap_auth - LOGIN and AUTHENTICATE (RFC 3501 6.2.2/6.2.3, SASL-IR from
 * RFC 4959), and the login thread that runs their blocking parts.
 *
 * A password check asks the auth service and may wait seconds (auth
 * holds back answers to clients with recent failures), and the
 * mailbox lookup after it may ask auth and the maps again.  None of
 * that may stall the event loop that serves every other session of the
 * process, so it runs here in one login thread: the main thread queues
 * a job (LOGIN's name and password, or one SASL step), the thread runs
 * it (global/sasl_server.h with libsasl2's PLAIN and LOGIN, or
 * auth_verify) and resolves the account's Maildir (global/resolve.h),
 * then hands the job back through a pipe the event loop watches.  The
 * thread owns the libsasl2 objects, the auth connection and the
 * resolver; the main thread owns the sessions and the store.
 *
 * One thread, because global/auth_client.c keeps one connection per
 * process: logins of one process are checked one after another, and a
 * failed login that auth delays delays the others of that process too
 * (docs/imap.md).
 *
 * Passwords are wiped from every buffer that held them.  A session that
 * disconnects while its job runs is freed when the job returns.  The
 * account's mailbox must belong to the uid imapd runs as (the vmail
 * model, see imapd.c); otherwise the login is refused with UNAVAILABLE
 * and the log says why.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>

#include "global/auth_client.h"
#include "global/config.h"
#include "global/resolve.h"
#include "global/sasl_server.h"
#include "imapd/imapd.h"
#include "util/log.h"
#include "util/mem.h"

#define IMAP_AUTH_PATH_MAX 4096

enum imap_auth_op {
    IMAP_AUTH_LOGIN,
    IMAP_AUTH_SASL_FIRST,
    IMAP_AUTH_SASL_NEXT,
    IMAP_AUTH_FREE, /* drop a SASL exchange */
};

struct imap_auth_job {
    enum imap_auth_op op;
    struct imap_session *s;
    struct xsasl_server *sasl;
    char addr[IMAP_ADDR_MAX];
    char *user;     /* LOGIN */
    char *password; /* LOGIN */
    char *mech;     /* SASL_FIRST */
    char *data;     /* initial response or response; NULL: none */
    /* Results. */
    enum xsasl_status status;
    struct buf challenge;
    char account[AUTH_USER_MAX + 1];
    char maildir[IMAP_AUTH_PATH_MAX];
    long long uid;
    char err[512];
    TAILQ_ENTRY(imap_auth_job) entries;
};

TAILQ_HEAD(imap_auth_queue, imap_auth_job);

static pthread_t imap_auth_thread;
static bool imap_auth_running;
static pthread_mutex_t imap_auth_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t imap_auth_cond = PTHREAD_COND_INITIALIZER;
/* Logins waiting for the login thread; answers come back on imap_auth_done. */
static struct imap_auth_queue imap_auth_pending =
    TAILQ_HEAD_INITIALIZER(imap_auth_pending);
static struct imap_auth_queue imap_auth_done =
    TAILQ_HEAD_INITIALIZER(imap_auth_done);
static bool imap_auth_stop;
static int imap_auth_pipe[2] = {-1, -1};
static struct event *imap_auth_ev;
static char imap_auth_mech_list[256];
static bool imap_sasl_ok;
static struct resolver *imap_auth_resolver; /* thread-only */

const char *imap_auth_mechs(void)
{
    return imap_sasl_ok ? imap_auth_mech_list : "";
}

bool imap_login_allowed(struct imap_session *s)
{
    if (s->conn.state == IMAP_CONN_TLS)
        return true;
    if (imapd_params.tls_level == IMAP_TLS_ENCRYPT)
        return false;
    return !imapd_params.tls_auth_only || s->loopback;
}

static void imap_auth_job_free(struct imap_auth_job *j)
{
    if (j->password != NULL) {
        explicit_bzero(j->password, strlen(j->password));
        free(j->password);
    }
    if (j->data != NULL) {
        explicit_bzero(j->data, strlen(j->data));
        free(j->data);
    }
    free(j->user);
    free(j->mech);
    buf_free(&j->challenge);
    free(j);
}

/* ------------------------------------------------------ login thread */

/* Where the account's mail is; false with j->err set. */
static bool imap_auth_resolve(struct imap_auth_job *j)
{
    struct buf path = BUF_INIT;
    uid_t uid = (uid_t)-1;
    gid_t gid = (gid_t)-1;
    enum map_result r;

    if (imap_auth_resolver == NULL &&
        (imap_auth_resolver = resolver_open(config_global(), j->err,
                                            sizeof(j->err))) == NULL)
        return false;
    r = resolve_mailbox(imap_auth_resolver, j->account, &path, &uid, &gid,
                        j->err, sizeof(j->err));
    if (r == MAP_FOUND && path.len >= sizeof(j->maildir)) {
        snprintf(j->err, sizeof(j->err), "mailbox path too long");
        r = MAP_ERROR;
    }
    if (r == MAP_NOTFOUND)
        snprintf(j->err, sizeof(j->err), "%s has no mailbox here",
                 j->account);
    if (r == MAP_FOUND) {
        memcpy(j->maildir, path.data, path.len + 1);
        j->uid = uid == (uid_t)-1 ? -1 : (long long)uid;
    }
    buf_free(&path);
    return r == MAP_FOUND;
}

static void imap_auth_run(struct imap_auth_job *j)
{
    switch (j->op) {
    case IMAP_AUTH_LOGIN: {
        struct auth_result res;
        int rc = auth_verify(j->user, j->password, j->addr, "imap", &res,
                             j->err, sizeof(j->err));

        j->status = rc == AUTH_OK     ? XSASL_OK
                    : rc == AUTH_FAIL ? XSASL_FAIL
                                      : XSASL_TEMPFAIL;
        if (rc == AUTH_OK)
            snprintf(j->account, sizeof(j->account), "%s", res.user);
        auth_result_clear(&res);
        break;
    }
    case IMAP_AUTH_SASL_FIRST:
        if (j->sasl != NULL)
            xsasl_server_free(j->sasl);
        j->sasl = xsasl_server_create("imap", j->addr, NULL, j->err,
                                      sizeof(j->err));
        if (j->sasl == NULL) {
            j->status = XSASL_TEMPFAIL;
            break;
        }
        j->status = xsasl_server_first(j->sasl, j->mech, j->data,
                                       &j->challenge, j->err, sizeof(j->err));
        break;
    case IMAP_AUTH_SASL_NEXT:
        if (j->sasl == NULL) {
            j->status = XSASL_BADPROT;
            break;
        }
        j->status = xsasl_server_next(j->sasl, j->data, &j->challenge, j->err,
                                      sizeof(j->err));
        break;
    case IMAP_AUTH_FREE:
        break;
    }
    if (j->op != IMAP_AUTH_LOGIN && j->sasl != NULL &&
        j->status == XSASL_OK)
        snprintf(j->account, sizeof(j->account), "%s",
                 xsasl_server_username(j->sasl));
    if (j->status == XSASL_OK && !imap_auth_resolve(j))
        j->status = XSASL_TEMPFAIL;
    /* The exchange is over unless the mechanism asks for more. */
    if (j->sasl != NULL && (j->status != XSASL_CONTINUE ||
                            j->op == IMAP_AUTH_FREE)) {
        xsasl_server_free(j->sasl);
        j->sasl = NULL;
    }
}

static void *imap_auth_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&imap_auth_lock);
    for (;;) {
        struct imap_auth_job *j;

        while (TAILQ_EMPTY(&imap_auth_pending) && !imap_auth_stop)
            pthread_cond_wait(&imap_auth_cond, &imap_auth_lock);
        if (imap_auth_stop)
            break;
        j = TAILQ_FIRST(&imap_auth_pending);
        TAILQ_REMOVE(&imap_auth_pending, j, entries);
        pthread_mutex_unlock(&imap_auth_lock);
        imap_auth_run(j);
        pthread_mutex_lock(&imap_auth_lock);
        if (j->op == IMAP_AUTH_FREE) {
            imap_auth_job_free(j);
            continue;
        }
        TAILQ_INSERT_TAIL(&imap_auth_done, j, entries);
        {
            char c = 1;
            ssize_t n;

            /* A full pipe already means "look at the queue". */
            do {
                n = write(imap_auth_pipe[1], &c, 1);
            } while (n < 0 && errno == EINTR);
        }
    }
    pthread_mutex_unlock(&imap_auth_lock);
    return NULL;
}

static void imap_auth_submit(struct imap_auth_job *j)
{
    if (j->s != NULL)
        j->s->auth_job = true;
    pthread_mutex_lock(&imap_auth_lock);
    TAILQ_INSERT_TAIL(&imap_auth_pending, j, entries);
    pthread_cond_signal(&imap_auth_cond);
    pthread_mutex_unlock(&imap_auth_lock);
}

static struct imap_auth_job *imap_auth_job_new(struct imap_session *s,
                                               enum imap_auth_op op)
{
    struct imap_auth_job *j = xcalloc(1, sizeof(*j));

    j->op = op;
    j->s = s;
    j->uid = -1;
    if (s != NULL) {
        snprintf(j->addr, sizeof(j->addr), "%s", s->addr);
        j->sasl = s->sasl;
        s->sasl = NULL;
    }
    return j;
}

void imap_auth_forget(struct imap_session *s)
{
    if (s->sasl != NULL && imap_auth_running)
        imap_auth_submit(imap_auth_job_new(s, IMAP_AUTH_FREE));
    /* After shutdown the thread is gone; the process is about to exit. */
    s->sasl = NULL;
}

/* ------------------------------------------------------- main thread */

/* The account checked out: open its store and enter the AUTH state. */
static void imap_auth_login_ok(struct imap_session *s,
                               struct imap_auth_job *j)
{
    char err[512];
    uid_t me = geteuid();
    struct buf caps = BUF_INIT;

    if (j->uid >= 0 && (uid_t)j->uid != me && me != 0) {
        log_error("%s[%s]: mailbox %s belongs to uid %lld, but imapd runs "
                  "as uid %ld: set virtual_uid_maps to that uid, or run "
                  "imapd with -o mail_owner=<the mailbox owner>",
                  j->account, s->addr, j->maildir, j->uid, (long)me);
        imap_cmd_done(s, "NO", "[UNAVAILABLE] Mailbox not available.");
        return;
    }
    if ((s->store = imap_store_open(j->maildir, err, sizeof(err))) == NULL) {
        log_error("%s[%s]: %s", j->account, s->addr, err);
        imap_cmd_done(s, "NO", "[UNAVAILABLE] Mailbox not available.");
        return;
    }
    if (imap_store_ensure_special(s->store, err, sizeof(err)) < 0)
        log_warn("%s[%s]: special-use folders: %s", j->account, s->addr,
                 err);
    s->user = xstrdup(j->account);
    s->state = IMAP_STATE_AUTH;
    s->bad_commands = 0;
    imap_session_log(s, "login, method=%s%s",
                     j->op == IMAP_AUTH_LOGIN ? "LOGIN" : "AUTHENTICATE",
                     s->conn.state == IMAP_CONN_TLS ? ", TLS" : "");
    imap_capabilities(s, &caps);
    imap_cmd_done(s, "OK", "[CAPABILITY %s] Logged in.", caps.data);
    buf_free(&caps);
}

static void imap_auth_finish(struct imap_auth_job *j)
{
    struct imap_session *s = j->s;

    if (!imap_session_job_done(s)) {
        if (j->sasl != NULL) {
            j->op = IMAP_AUTH_FREE;
            j->s = NULL;
            imap_auth_submit(j);
            return;
        }
        imap_auth_job_free(j);
        return;
    }
    s->sasl = j->sasl;
    j->sasl = NULL;
    switch (j->status) {
    case XSASL_CONTINUE:
        imap_reply_printf(s, "+ %s\r\n", j->challenge.len ? j->challenge.data
                                                          : "");
        s->mode = IMAP_MODE_SASL;
        break;
    case XSASL_OK:
        imap_auth_login_ok(s, j);
        break;
    case XSASL_FAIL:
        imap_session_log(s, "authentication failed: %s", j->err);
        imap_cmd_done(s, "NO", "[AUTHENTICATIONFAILED] Authentication "
                               "failed.");
        break;
    case XSASL_TEMPFAIL:
        imap_session_log(s, "authentication unavailable: %s", j->err);
        imap_cmd_done(s, "NO", "[UNAVAILABLE] Temporary authentication "
                               "failure.");
        break;
    case XSASL_BADPROT:
        imap_cmd_done(s, "BAD", "Invalid SASL data.");
        break;
    }
    imap_auth_job_free(j);
    /* imap_cmd_done() goes on with input; a continuation waits for it. */
    if (s->mode == IMAP_MODE_SASL)
        imap_session_on_input(s);
}

static void imap_auth_on_pipe(evutil_socket_t fd, short what, void *arg)
{
    char drain[256];

    (void)what;
    (void)arg;
    while (read(fd, drain, sizeof(drain)) > 0)
        ;
    for (;;) {
        struct imap_auth_job *j;

        pthread_mutex_lock(&imap_auth_lock);
        j = TAILQ_FIRST(&imap_auth_done);
        if (j != NULL)
            TAILQ_REMOVE(&imap_auth_done, j, entries);
        pthread_mutex_unlock(&imap_auth_lock);
        if (j == NULL)
            break;
        imap_auth_finish(j);
    }
}

void imap_auth_init(void)
{
    char err[256];
    struct xsasl_server *probe;

    if (pipe2(imap_auth_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        log_fatal("pipe: %m");
    imap_auth_ev = event_new(imapd_base, imap_auth_pipe[0],
                             EV_READ | EV_PERSIST, imap_auth_on_pipe, NULL);
    event_add(imap_auth_ev, NULL);
    /* The mechanisms to advertise, asked once before the thread starts. */
    probe = xsasl_server_create("imap", "", NULL, err, sizeof(err));
    if (probe != NULL) {
        snprintf(imap_auth_mech_list, sizeof(imap_auth_mech_list), "%s",
                 xsasl_server_mechs(probe));
        xsasl_server_free(probe);
        imap_sasl_ok = imap_auth_mech_list[0] != 0;
    } else {
        log_warn("SASL: %s: AUTHENTICATE is not offered", err);
    }
    if (pthread_create(&imap_auth_thread, NULL, imap_auth_main, NULL) != 0)
        log_fatal("cannot start the login thread");
    imap_auth_running = true;
}

void imap_auth_shutdown(void)
{
    struct imap_auth_job *j;

    if (!imap_auth_running)
        return;
    pthread_mutex_lock(&imap_auth_lock);
    imap_auth_stop = true;
    pthread_cond_signal(&imap_auth_cond);
    pthread_mutex_unlock(&imap_auth_lock);
    pthread_join(imap_auth_thread, NULL);
    imap_auth_running = false;
    while ((j = TAILQ_FIRST(&imap_auth_pending)) != NULL) {
        TAILQ_REMOVE(&imap_auth_pending, j, entries);
        if (j->sasl != NULL)
            xsasl_server_free(j->sasl);
        imap_auth_job_free(j);
    }
    while ((j = TAILQ_FIRST(&imap_auth_done)) != NULL) {
        TAILQ_REMOVE(&imap_auth_done, j, entries);
        if (j->sasl != NULL)
            xsasl_server_free(j->sasl);
        imap_auth_job_free(j);
    }
    if (imap_auth_resolver != NULL)
        resolver_close(imap_auth_resolver);
    event_free(imap_auth_ev);
    close(imap_auth_pipe[0]);
    close(imap_auth_pipe[1]);
}

/* ------------------------------------------------------------ commands */

void imap_cmd_login(struct imap_session *s, struct imap_command *cmd)
{
    const char *user, *pass;
    struct imap_auth_job *j;

    if (cmd->nargs != 2 || !imap_arg_astring(&cmd->args[0], &user) ||
        !imap_arg_astring(&cmd->args[1], &pass)) {
        imap_cmd_done(s, "BAD", "LOGIN needs a user name and a password.");
        return;
    }
    if (!imap_login_allowed(s)) {
        imap_cmd_done(s, "NO", "[PRIVACYREQUIRED] Plaintext authentication "
                               "disallowed on non-secure connections.");
        return;
    }
    if (*user == 0 || strlen(user) > AUTH_USER_MAX ||
        strlen(pass) > AUTH_PASSWORD_MAX) {
        imap_cmd_done(s, "NO", "[AUTHENTICATIONFAILED] Authentication "
                               "failed.");
        return;
    }
    j = imap_auth_job_new(s, IMAP_AUTH_LOGIN);
    j->user = xstrdup(user);
    j->password = xstrdup(pass);
    /* The password is in the pool and the input buffer: wipe both. */
    explicit_bzero(cmd->args[1].str, cmd->args[1].len);
    imap_auth_submit(j);
}

static bool imap_mech_offered(const char *mech)
{
    const char *p = imap_auth_mechs();
    size_t n = strlen(mech);

    while (*p) {
        size_t len = strcspn(p, " ");

        if (len == n && strncasecmp(p, mech, n) == 0)
            return true;
        p += len;
        p += strspn(p, " ");
    }
    return false;
}

void imap_cmd_authenticate(struct imap_session *s, struct imap_command *cmd)
{
    const char *mech, *initial = NULL;
    struct imap_auth_job *j;

    if (cmd->nargs < 1 || cmd->nargs > 2 ||
        cmd->args[0].type != IMAP_ARG_ATOM ||
        (cmd->nargs == 2 && cmd->args[1].type != IMAP_ARG_ATOM)) {
        imap_cmd_done(s, "BAD", "AUTHENTICATE needs a mechanism name.");
        return;
    }
    mech = cmd->args[0].str;
    if (cmd->nargs == 2)
        initial = cmd->args[1].str; /* SASL-IR; "=" is an empty one */
    if (!imap_login_allowed(s)) {
        imap_cmd_done(s, "NO", "[PRIVACYREQUIRED] Plaintext authentication "
                               "disallowed on non-secure connections.");
        return;
    }
    if (!imap_mech_offered(mech)) {
        imap_cmd_done(s, "NO", "Unsupported authentication mechanism.");
        return;
    }
    if (initial != NULL && strlen(initial) > XSASL_LINE_MAX) {
        imap_cmd_done(s, "BAD", "Initial response too long.");
        return;
    }
    j = imap_auth_job_new(s, IMAP_AUTH_SASL_FIRST);
    j->mech = xstrdup(mech);
    j->data = initial ? xstrdup(initial) : NULL;
    if (initial != NULL)
        explicit_bzero(cmd->args[1].str, cmd->args[1].len);
    imap_auth_submit(j);
}

void imap_auth_response(struct imap_session *s, const char *line, size_t len)
{
    struct imap_auth_job *j;

    s->mode = IMAP_MODE_BUSY;
    if (len == 1 && line[0] == '*') {
        imap_auth_forget(s);
        imap_cmd_done(s, "BAD", "Authentication cancelled.");
        return;
    }
    j = imap_auth_job_new(s, IMAP_AUTH_SASL_NEXT);
    j->data = xstrndup(line, len);
    imap_auth_submit(j);
}
