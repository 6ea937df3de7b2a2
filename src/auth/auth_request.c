/*
 * auth_request - the two requests of the auth protocol (mail_proto.h):
 *
 *   passdb_verify  user, password, client_addr, service
 *                  -> status=ok user uid gid home | status=fail reason
 *                     | status=tempfail reason
 *   passdb_lookup  user [want_secret=1]
 *                  -> status=ok user uid gid home [password]
 *                     | status=notfound | status=tempfail reason
 *   passdb_report  user, result=ok|fail, reason, client_addr, service
 *                  -> status=ok | status=fail reason
 *
 * passdb_report is how a login that auth did not check itself (SCRAM:
 * libsasl2 in smtpd, pop3d or imapd compares the client's proof with
 * the secret a lookup gave) still goes through the failure counts, the
 * delay and the failure log: the process reports the outcome and waits
 * for the answer, held back exactly as a verify answer would be.  It is
 * believed as it stands: only posthorn's own processes reach this
 * socket, and they already receive {PLAIN} secrets.
 *
 * Requests come from other posthorn processes but carry what network
 * clients typed, so every field is bounded and checked here.  A client
 * learns only "authentication failed": whether the user exists, the
 * password was wrong or the login is disabled goes to the log, with the
 * client address and service, never with the password.
 *
 * Verification outcomes feed the failure counts (auth_penalty.c), which
 * decide how long the answer is held back.  Lookups are not logins: they
 * neither count nor wait.  A passdb that cannot be read gives tempfail
 * at once (no delay: it is not the client's fault).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* What verify remembers while a hash check runs. */
struct auth_verify_state {
    struct auth_conn *conn;
    char user[PASSDB_USER_MAX + 1];
    char addr[AUTH_ADDR_MAX + 1];
    char service[AUTH_SERVICE_MAX + 1];
    long long uid, gid;
    char *home;
};

/* A text field: present, no NUL, no control bytes, 1..max bytes. */
static const char *auth_request_text(const struct attr_list *req,
                                     const char *name, size_t max,
                                     bool required)
{
    const struct attr *a = attr_find(req, name);

    if (a == NULL)
        return required ? NULL : "";
    if (a->len == 0 || a->len > max || strlen(a->value) != a->len)
        return NULL;
    for (size_t i = 0; i < a->len; i++) {
        unsigned char c = (unsigned char)a->value[i];

        if (c < 0x20 || c == 0x7f)
            return NULL;
    }
    return a->value;
}

static bool auth_request_word(const char *s)
{
    for (; *s != 0; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return false;
    return true;
}

static void auth_reply_status(struct auth_conn *c, const char *status,
                              const char *reason, long long delay_ms)
{
    struct buf frame = BUF_INIT;

    attr_put_str(&frame, "status", status);
    if (reason != NULL)
        attr_put_str(&frame, "reason", reason);
    attr_end(&frame);
    auth_conn_reply(c, &frame, delay_ms);
    buf_free(&frame);
}

static void auth_reply_account(struct auth_conn *c, const char *user,
                               long long uid, long long gid, const char *home,
                               const char *password, long long delay_ms)
{
    struct buf frame = BUF_INIT;

    attr_put_str(&frame, "status", "ok");
    attr_put_str(&frame, "user", user);
    if (uid >= 0)
        attr_put_int(&frame, "uid", uid);
    if (gid >= 0)
        attr_put_int(&frame, "gid", gid);
    if (*home != 0)
        attr_put_str(&frame, "home", home);
    if (password != NULL)
        attr_put_str(&frame, "password", password);
    attr_end(&frame);
    auth_conn_reply(c, &frame, delay_ms);
    explicit_bzero(frame.data, frame.len);
    buf_free(&frame);
}

/* "unknown[1.2.3.4]" as Postfix names a client without a host name. */
static void auth_log_failure(const struct auth_verify_state *v, const char *why)
{
    char user[PASSDB_USER_MAX + 1];

    log_printable(user, sizeof(user), v->user, strlen(v->user));
    log_warn("unknown[%s]: authentication failed for user %s (service=%s): %s",
             *v->addr ? v->addr : "unknown", user, v->service, why);
}

/* The outcome of a verification: 1 match, 0 mismatch, -1 error. */
static void auth_verify_finish(struct auth_verify_state *v, int match,
                               const char *why)
{
    const char *addr = v->addr;
    unsigned before = auth_penalty_get(addr, v->user);

    if (match > 0) {
        auth_penalty_clear(addr, v->user);
        log_debug("unknown[%s]: user %s authenticated (service=%s)%s",
                  *addr ? addr : "unknown", v->user, v->service,
                  before ? ", after earlier failures" : "");
        auth_reply_account(v->conn, v->user, v->uid, v->gid, v->home, NULL,
                           auth_penalty_delay_ms(before));
    } else if (match == 0) {
        unsigned after = auth_penalty_fail(addr, v->user);

        auth_log_failure(v, why);
        auth_reply_status(v->conn, "fail", "authentication failed",
                          auth_penalty_delay_ms(after));
    } else {
        log_error("user %s: cannot check the password: %s", v->user, why);
        auth_reply_status(v->conn, "tempfail", "password check failed",
                          auth_penalty_delay_ms(before));
    }
}

static void auth_verify_state_free(struct auth_verify_state *v)
{
    free(v->home);
    free(v);
}

/* Main thread, when a worker thread has checked a hash. */
static void auth_verify_hashed(struct auth_hash_job *job)
{
    struct auth_verify_state *v = job->ctx;

    if (auth_conn_hash_done(v->conn))
        auth_verify_finish(v, job->result,
                           job->result < 0 ? job->err : "password mismatch");
    auth_verify_state_free(v);
}

/* Shutdown with the check unfinished: the connection goes anyway. */
static void auth_verify_cancel(struct auth_hash_job *job)
{
    auth_verify_state_free(job->ctx);
}

static void auth_request_verify(struct auth_conn *c,
                                const struct attr_list *req)
{
    const char *user = auth_request_text(req, "user", PASSDB_USER_MAX, true);
    const char *addr =
        auth_request_text(req, "client_addr", AUTH_ADDR_MAX, false);
    const char *service =
        auth_request_text(req, "service", AUTH_SERVICE_MAX, false);
    const struct attr *pw = attr_find(req, "password");
    const struct passdb_entry *e;
    struct auth_verify_state *v;
    struct passdb *db;
    char err[512];

    if (user == NULL || addr == NULL || service == NULL || pw == NULL ||
        pw->len > PASSDB_PASSWORD_MAX || !auth_request_word(service) ||
        strchr(addr, ' ') != NULL) {
        log_warn("malformed passdb_verify request");
        auth_reply_status(c, "fail", "malformed request", 0);
        return;
    }
    if ((db = auth_passdb(err, sizeof(err))) == NULL) {
        auth_reply_status(c, "tempfail", "password database unavailable", 0);
        return;
    }
    v = xcalloc(1, sizeof(*v));
    v->conn = c;
    str_lcpy(v->user, user, sizeof(v->user));
    str_lower(v->user);
    str_lcpy(v->addr, addr, sizeof(v->addr));
    str_lcpy(v->service, *service ? service : "unknown", sizeof(v->service));
    e = passdb_find(db, v->user);
    if (e == NULL || e->scheme == PASSDB_SCHEME_NONE ||
        e->scheme == PASSDB_SCHEME_PLAIN) {
        int match = 0;

        v->home = xstrdup("");
        if (e != NULL && e->scheme == PASSDB_SCHEME_PLAIN) {
            match = passdb_verify(e->scheme, e->secret, pw->value, pw->len, err,
                                  sizeof(err));
            v->uid = e->uid;
            v->gid = e->gid;
            free(v->home);
            v->home = xstrdup(e->home);
        }
        auth_verify_finish(v, match,
                           e == NULL                         ? "unknown user"
                           : e->scheme == PASSDB_SCHEME_NONE ? "login disabled"
                           : match < 0                       ? err
                                       : "password mismatch");
        auth_verify_state_free(v);
        return;
    }
    /* A hash: the check runs in a worker thread on copies. */
    {
        struct auth_hash_job *job = xcalloc(1, sizeof(*job));

        v->uid = e->uid;
        v->gid = e->gid;
        v->home = xstrdup(e->home);
        job->scheme = e->scheme;
        job->secret = xstrdup(e->secret);
        job->password = xmalloc(pw->len + 1);
        memcpy(job->password, pw->value, pw->len + 1);
        job->passlen = pw->len;
        job->done = auth_verify_hashed;
        job->cancel = auth_verify_cancel;
        job->ctx = v;
        auth_conn_hash_start(c);
        auth_hash_submit(job);
    }
}

static void auth_request_lookup(struct auth_conn *c,
                                const struct attr_list *req)
{
    const char *user = auth_request_text(req, "user", PASSDB_USER_MAX, true);
    const char *secret = attr_get(req, "want_secret");
    const struct passdb_entry *e;
    struct passdb *db;
    char err[512];

    if (user == NULL) {
        log_warn("malformed passdb_lookup request");
        auth_reply_status(c, "tempfail", "malformed request", 0);
        return;
    }
    if ((db = auth_passdb(err, sizeof(err))) == NULL) {
        auth_reply_status(c, "tempfail", "password database unavailable", 0);
        return;
    }
    if ((e = passdb_find(db, user)) == NULL) {
        auth_reply_status(c, "notfound", NULL, 0);
        return;
    }
    auth_reply_account(c, e->user, e->uid, e->gid, e->home,
                       secret != NULL && strcmp(secret, "1") == 0 &&
                               e->scheme == PASSDB_SCHEME_PLAIN
                           ? e->secret
                           : NULL,
                       0);
}

static void auth_request_report(struct auth_conn *c,
                                const struct attr_list *req)
{
    const char *user = auth_request_text(req, "user", PASSDB_USER_MAX, true);
    const char *addr =
        auth_request_text(req, "client_addr", AUTH_ADDR_MAX, false);
    const char *service =
        auth_request_text(req, "service", AUTH_SERVICE_MAX, false);
    const char *result = attr_get(req, "result");
    const char *reason =
        auth_request_text(req, "reason", AUTH_REASON_MAX, false);
    struct auth_verify_state v;
    unsigned before;

    if (user == NULL || addr == NULL || service == NULL || reason == NULL ||
        result == NULL ||
        (strcmp(result, "ok") != 0 && strcmp(result, "fail") != 0) ||
        !auth_request_word(service) || strchr(addr, ' ') != NULL) {
        log_warn("malformed passdb_report request");
        auth_reply_status(c, "fail", "malformed request", 0);
        return;
    }
    memset(&v, 0, sizeof(v));
    v.conn = c;
    str_lcpy(v.user, user, sizeof(v.user));
    str_lower(v.user);
    str_lcpy(v.addr, addr, sizeof(v.addr));
    str_lcpy(v.service, *service ? service : "unknown", sizeof(v.service));
    before = auth_penalty_get(v.addr, v.user);
    if (strcmp(result, "ok") == 0) {
        auth_penalty_clear(v.addr, v.user);
        log_debug("unknown[%s]: user %s authenticated (service=%s)%s",
                  *v.addr ? v.addr : "unknown", v.user, v.service,
                  before ? ", after earlier failures" : "");
        auth_reply_status(c, "ok", NULL, auth_penalty_delay_ms(before));
    } else {
        char why[AUTH_REASON_MAX + 1];
        unsigned after = auth_penalty_fail(v.addr, v.user);

        log_printable(why, sizeof(why), *reason ? reason : "failed",
                      strlen(*reason ? reason : "failed"));
        auth_log_failure(&v, why);
        auth_reply_status(c, "ok", NULL, auth_penalty_delay_ms(after));
    }
}

void auth_request(struct auth_conn *c, const struct attr_list *req)
{
    const char *request = attr_get(req, "request");

    if (request != NULL && strcmp(request, "passdb_verify") == 0) {
        auth_request_verify(c, req);
    } else if (request != NULL && strcmp(request, "passdb_lookup") == 0) {
        auth_request_lookup(c, req);
    } else if (request != NULL && strcmp(request, "passdb_report") == 0) {
        auth_request_report(c, req);
    } else {
        char name[64];

        log_warn("unknown request '%s'",
                 request ? log_printable(name, sizeof(name), request,
                                         strlen(request))
                         : "");
        auth_reply_status(c, "tempfail", "unknown request", 0);
    }
}
