/*
 * auth_client - requests to the auth service over private/auth.
 *
 * Given: what a network client typed (user, password), which this module
 * bounds before sending; the configuration (queue_directory,
 * auth_failure_max_delay).  It trusts auth's replies no more than network
 * input: a reply that does not parse, has an unknown status or fields out
 * of bounds is a temporary failure, so a broken auth can never let a login
 * through.  It never logs; callers log with the client's name.
 *
 * One kept connection per process (single-threaded callers), through
 * global/service_client.h: a connection auth closed (restarted by
 * "posthorn reload") is replaced, a broken exchange is sent once more on a
 * new connection, a timeout is not retried (auth was alive but slow).
 */
#include "global/auth_client.h"

#include <stdio.h>
#include <string.h>

#include "global/config.h"
#include "global/mail_proto.h"
#include "global/service_client.h"
#include "util/attr.h"
#include "util/buf.h"
#include "util/sock.h"
#include "util/str.h"
#include "util/stream.h"

/* A reply frame holds a few short attributes. */
#define AUTH_CLIENT_REPLY_MAX 8192
/* Longest reason auth_report passes on (auth accepts 200 bytes). */
#define AUTH_CLIENT_REASON_MAX 200

static struct service_client auth_client =
    SERVICE_CLIENT_INIT(AUTH_SERVICE, AUTH_CLIENT_REPLY_MAX);

void auth_client_disconnect(void)
{
    service_client_close(&auth_client);
}

void auth_result_clear(struct auth_result *res)
{
    explicit_bzero(res, sizeof(*res));
    res->uid = -1;
    res->gid = -1;
}

static int auth_client_timeout_ms(void)
{
    long long delay = config_time(config_global(), "auth_failure_max_delay");

    return (int)((delay + AUTH_CLIENT_SLACK) * 1000);
}

/* One request/reply exchange; 0 or -1 with err set. */
static int auth_client_call(const struct buf *frame, struct attr_list *reply,
                            char *err, size_t errlen)
{
    auth_client.timeout_ms = auth_client_timeout_ms();
    return service_client_call(&auth_client, frame, reply, err, errlen);
}

/* A value that is a C string of at most max printable bytes. */
static const char *auth_client_text(const struct attr_list *reply,
                                    const char *name, size_t max)
{
    const struct attr *a = attr_find(reply, name);

    if (a == NULL || a->len > max || strlen(a->value) != a->len)
        return NULL;
    for (size_t i = 0; i < a->len; i++) {
        unsigned char c = (unsigned char)a->value[i];

        if (c < 0x20 || c == 0x7f)
            return NULL;
    }
    return a->value;
}

static bool auth_client_id(const struct attr_list *reply, const char *name,
                           long long *out)
{
    if (attr_find(reply, name) == NULL) {
        *out = -1;
        return true;
    }
    return attr_get_int(reply, name, out) && *out >= 0 && *out <= 0x7fffffffLL;
}

/* Fill res from an "ok" reply; false if a field is malformed. */
static bool auth_client_fill(const struct attr_list *reply,
                             struct auth_result *res, bool secret)
{
    const char *user = auth_client_text(reply, "user", AUTH_USER_MAX);
    const char *home = "";

    if (user == NULL || *user == 0 ||
        !auth_client_id(reply, "uid", &res->uid) ||
        !auth_client_id(reply, "gid", &res->gid))
        return false;
    if (attr_find(reply, "home") != NULL &&
        ((home = auth_client_text(reply, "home", PASSDB_HOME_MAX)) == NULL ||
         (*home != 0 && *home != '/')))
        return false;
    str_lcpy(res->user, user, sizeof(res->user));
    str_lcpy(res->home, home, sizeof(res->home));
    if (secret && attr_find(reply, "password") != NULL) {
        const struct attr *a = attr_find(reply, "password");

        if (a->len > AUTH_PASSWORD_MAX || memchr(a->value, 0, a->len) != NULL)
            return false;
        memcpy(res->password, a->value, a->len);
        res->password[a->len] = 0;
        res->has_password = true;
    }
    return true;
}

/*
 * Map a reply to AUTH_*.  ok_word is "ok"; the negative word is "fail"
 * (verify) or "notfound" (lookup).
 */
static int auth_client_status(const struct attr_list *reply,
                              const char *neg_word, struct auth_result *res,
                              bool secret, char *err, size_t errlen)
{
    const char *status = auth_client_text(reply, "status", 16);
    const char *reason = auth_client_text(reply, "reason", 200);

    if (status != NULL && strcmp(status, "ok") == 0) {
        if (auth_client_fill(reply, res, secret))
            return AUTH_OK;
        auth_result_clear(res);
        snprintf(err, errlen, "auth service: malformed answer");
        return AUTH_TEMPFAIL;
    }
    if (status != NULL && strcmp(status, neg_word) == 0) {
        snprintf(err, errlen, "%s", reason ? reason : "authentication failed");
        return AUTH_FAIL;
    }
    if (status != NULL && strcmp(status, "tempfail") == 0) {
        snprintf(err, errlen, "auth service: %s",
                 reason ? reason : "temporary failure");
        return AUTH_TEMPFAIL;
    }
    snprintf(err, errlen, "auth service: malformed answer");
    return AUTH_TEMPFAIL;
}

/* A request field a client supplied: bounded, no NUL, no control bytes. */
static bool auth_client_arg_ok(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

int auth_verify(const char *user, const char *password, const char *client_addr,
                const char *service, struct auth_result *res, char *err,
                size_t errlen)
{
    struct attr_list reply = ATTR_LIST_INIT;
    struct buf frame = BUF_INIT;
    int rc;

    auth_result_clear(res);
    if (*user == 0 || !auth_client_arg_ok(user, AUTH_USER_MAX)) {
        snprintf(err, errlen, "malformed user name");
        return AUTH_FAIL;
    }
    if (strlen(password) > AUTH_PASSWORD_MAX) {
        snprintf(err, errlen, "password too long");
        return AUTH_FAIL;
    }
    attr_put_str(&frame, "request", "passdb_verify");
    attr_put_str(&frame, "user", user);
    attr_put_str(&frame, "password", password);
    if (client_addr != NULL && *client_addr != 0)
        attr_put_str(&frame, "client_addr", client_addr);
    if (service != NULL && *service != 0)
        attr_put_str(&frame, "service", service);
    attr_end(&frame);
    if (auth_client_call(&frame, &reply, err, errlen) < 0)
        rc = AUTH_TEMPFAIL;
    else
        rc = auth_client_status(&reply, "fail", res, false, err, errlen);
    explicit_bzero(frame.data, frame.len);
    buf_free(&frame);
    attr_list_free(&reply);
    return rc;
}

int auth_lookup(const char *user, bool want_secret, struct auth_result *res,
                char *err, size_t errlen)
{
    struct attr_list reply = ATTR_LIST_INIT;
    struct buf frame = BUF_INIT;
    int rc;

    auth_result_clear(res);
    if (*user == 0 || !auth_client_arg_ok(user, AUTH_USER_MAX)) {
        snprintf(err, errlen, "no such account");
        return AUTH_FAIL;
    }
    attr_put_str(&frame, "request", "passdb_lookup");
    attr_put_str(&frame, "user", user);
    if (want_secret)
        attr_put_str(&frame, "want_secret", "1");
    attr_end(&frame);
    if (auth_client_call(&frame, &reply, err, errlen) < 0)
        rc = AUTH_TEMPFAIL;
    else
        rc = auth_client_status(&reply, "notfound", res, want_secret, err,
                                errlen);
    /* A reply holding a plain password lives in reply's values. */
    for (size_t i = 0; i < reply.n; i++)
        explicit_bzero(reply.v[i].value, reply.v[i].len);
    buf_free(&frame);
    attr_list_free(&reply);
    return rc;
}

int auth_report(const char *user, bool success, const char *reason,
                const char *client_addr, const char *service, char *err,
                size_t errlen)
{
    struct attr_list reply = ATTR_LIST_INIT;
    struct buf frame = BUF_INIT;
    const char *status;
    int rc = AUTH_TEMPFAIL;

    if (*user == 0 || !auth_client_arg_ok(user, AUTH_USER_MAX)) {
        snprintf(err, errlen, "malformed user name");
        return AUTH_TEMPFAIL;
    }
    attr_put_str(&frame, "request", "passdb_report");
    attr_put_str(&frame, "user", user);
    attr_put_str(&frame, "result", success ? "ok" : "fail");
    if (reason != NULL && *reason != 0 &&
        auth_client_arg_ok(reason, AUTH_CLIENT_REASON_MAX))
        attr_put_str(&frame, "reason", reason);
    if (client_addr != NULL && *client_addr != 0)
        attr_put_str(&frame, "client_addr", client_addr);
    if (service != NULL && *service != 0)
        attr_put_str(&frame, "service", service);
    attr_end(&frame);
    if (auth_client_call(&frame, &reply, err, errlen) == 0) {
        status = auth_client_text(&reply, "status", 16);
        if (status != NULL && strcmp(status, "ok") == 0)
            rc = AUTH_OK;
        else
            snprintf(err, errlen, "auth service: report refused");
    }
    buf_free(&frame);
    attr_list_free(&reply);
    return rc;
}
