/*
 * pop3d_auth - the AUTHORIZATION state: USER/PASS, APOP, AUTH (RFC 5034
 * with libsasl2's mechanisms through global/sasl_server.h), and the
 * step into TRANSACTION: mailbox lookup, privilege switch, lock, scan.
 *
 * Every password goes to the auth service (auth_verify), which answers
 * yes or no and slows down repeated failures; pop3d never sees the
 * password database.  APOP needs the account's plain secret
 * (auth_lookup with want_secret, {PLAIN} accounts only); its outcome is
 * still reported through auth_verify, so APOP guesses are delayed and
 * logged like any other failed login (see docs/pop3.md).  Clients learn
 * "-ERR [AUTH] Authentication failed." whatever the reason.
 *
 * Privileges: the session runs with mail_owner's effective ids until
 * the password is accepted; then it takes root back for the mailbox
 * lookup and becomes the account's uid and gid for good (the process
 * exits after the session).  uid 0 is refused, and for virtual mailboxes
 * so is a uid below virtual_minimum_uid, as local does.
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "global/addr.h"
#include "global/auth_client.h"
#include "global/sasl_server.h"
#include "global/server.h"
#include "pop3d/pop3d.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* Supplementary groups kept while running as mail_owner before login. */
#define POP3D_MAX_GROUPS 256

/* ---------------------------------------------------------- privileges */

static gid_t saved_groups[POP3D_MAX_GROUPS];
static int saved_ngroups = -1;

void pop3d_priv_preauth(const struct pop3d_config *cfg)
{
    if (saved_ngroups < 0 &&
        (saved_ngroups = getgroups(POP3D_MAX_GROUPS, saved_groups)) < 0)
        log_fatal("getgroups: %m");
    if (setgroups(1, &cfg->owner_gid) < 0 || setegid(cfg->owner_gid) < 0 ||
        seteuid(cfg->owner_uid) < 0)
        log_fatal("cannot switch to mail_owner: %m");
}

void pop3d_priv_restore(const struct pop3d_config *cfg)
{
    (void)cfg;
    if (seteuid(0) < 0 || setegid(getgid()) < 0 ||
        setgroups((size_t)(saved_ngroups > 0 ? saved_ngroups : 0),
                  saved_groups) < 0)
        log_fatal("cannot switch back to root: %m");
}

/* Become uid/gid for good; false (errno) when that failed. */
static bool priv_become(uid_t uid, gid_t gid)
{
    if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
        return false;
    if (setuid(0) == 0)
        log_fatal("privileges of user ID 0 could be regained after setuid");
    return true;
}

/*
 * master's descriptors (the service's listening socket, status pipe,
 * group-commit block) are no business of a process that belongs to an
 * account now.  In stand-alone mode (-s) those numbers may be anything,
 * so only a listening socket on SERVER_LISTEN_FD proves they are master's.
 */
static void priv_close_master_fds(void)
{
    int listening = 0;
    socklen_t len = sizeof(listening);

    if (getsockopt(SERVER_LISTEN_FD, SOL_SOCKET, SO_ACCEPTCONN, &listening,
                   &len) < 0 ||
        !listening)
        return;
    (void)close(SERVER_LISTEN_FD);
    (void)close(SERVER_STATUS_FD);
#ifdef SERVER_GROUPSYNC_ENV
    if (getenv(SERVER_GROUPSYNC_ENV) != NULL)
        (void)close(SERVER_GROUPSYNC_FD);
#endif
}

/* The checks local makes before it writes as uid. */
static bool priv_uid_ok(struct pop3d_session *s, uid_t uid)
{
    const struct pop3d_config *cfg = s->cfg;
    long at;
    char *domain;
    char err[256];
    int cls;

    if (uid == 0) {
        log_warn("user=<%s>: refusing to open a mailbox as root (uid 0)",
                 s->login);
        return false;
    }
    at = addr_split(s->login);
    domain = xstrdup(at >= 0 ? s->login + at + 1 : "");
    str_lower(domain);
    cls = resolve_class(cfg->resolver, domain, err, sizeof(err));
    free(domain);
    if (cls == ADDR_CLASS_VIRTUAL_MAILBOX &&
        (long long)uid < cfg->minimum_uid) {
        log_warn("user=<%s>: mailbox uid %ld is below virtual_minimum_uid "
                 "%lld",
                 s->login, (long)uid, cfg->minimum_uid);
        return false;
    }
    return true;
}

/* ---------------------------------------------------------- login */

static int login_fail(struct pop3d_session *s, const char *reason)
{
    s->end_reason = reason;
    if (!s->dropped && s->cfg->privileged)
        pop3d_priv_preauth(s->cfg);
    /* The account is known to this process now: no second try. */
    s->login[0] = 0;
    s->hangup = true;
    return -1;
}

int pop3d_login(struct pop3d_session *s, const char *account,
                const char *method)
{
    const struct pop3d_config *cfg = s->cfg;
    struct buf path = BUF_INIT;
    enum map_result res;
    struct stat st;
    char err[512];
    uid_t uid = 0;
    gid_t gid = 0;
    int rc;

    str_lcpy(s->login, account, sizeof(s->login));
    str_lcpy(s->method, method, sizeof(s->method));
    if (cfg->privileged)
        pop3d_priv_restore(cfg);
    res = resolve_mailbox(cfg->resolver, s->login, &path, &uid, &gid, err,
                          sizeof(err));
    if (res != MAP_FOUND) {
        log_warn("user=<%s>: no mailbox: %s", s->login, err);
        if (res == MAP_NOTFOUND)
            pop3d_err(s, "[SYS/PERM] No mailbox for this account.");
        else
            pop3d_err(s, "[SYS/TEMP] Mailbox lookup failed, try later.");
        buf_free(&path);
        return login_fail(s, "No mailbox");
    }
    if (cfg->privileged) {
        if (!priv_uid_ok(s, uid)) {
            pop3d_err(s, "[SYS/PERM] Mailbox not available.");
            buf_free(&path);
            return login_fail(s, "Mailbox owner refused");
        }
        s->dropped = true; /* whatever happens next, this process ends */
        if (!priv_become(uid, gid)) {
            log_error("user=<%s>: cannot switch to uid %ld gid %ld: %m",
                      s->login, (long)uid, (long)gid);
            pop3d_err(s, "[SYS/TEMP] Mailbox not available, try later.");
            buf_free(&path);
            return login_fail(s, "Cannot switch user");
        }
        priv_close_master_fds();
    }
    s->mbox.dir = buf_steal(&path);
    if (stat(s->mbox.dir, &st) < 0 && errno == ENOENT) {
        /* Never received mail: an empty mailbox, nothing to lock. */
    } else if ((rc = pop3d_mbox_lock(s->mbox.dir, &s->mbox.lock_fd, err,
                                     sizeof(err))) == 0) {
        log_info("user=<%s>: mailbox is locked by another session, rip=%s",
                 s->login, s->addr);
        pop3d_err(s, "[IN-USE] Mailbox is locked by another session.");
        return login_fail(s, "Mailbox in use");
    } else if (rc < 0) {
        log_warn("user=<%s>: %s", s->login, err);
        pop3d_err(s, "[SYS/TEMP] Cannot lock the mailbox, try later.");
        return login_fail(s, "Mailbox lock failed");
    }
    if (pop3d_mbox_scan(&s->mbox, err, sizeof(err)) < 0) {
        log_warn("user=<%s>: %s", s->login, err);
        pop3d_err(s, "[SYS/TEMP] Cannot read the mailbox, try later.");
        return login_fail(s, "Mailbox read error");
    }
    s->state = POP3D_TRANSACTION;
    log_info("Login: user=<%s>, method=%s, rip=%s, lip=%s, mpid=%ld%s",
             s->login, method, s->addr, s->laddr, (long)getpid(),
             s->tls != NULL ? ", TLS" : "");
    pop3d_ok(s, "Logged in.");
    return 0;
}

/* ---------------------------------------------------------- USER / PASS */

static bool user_name_ok(struct pop3d_session *s, const char *user)
{
    if (strlen(user) > AUTH_USER_MAX) {
        pop3d_err(s, "[AUTH] Authentication failed.");
        return false;
    }
    return true;
}

static void auth_failed(struct pop3d_session *s, int rc, const char *err)
{
    s->auth_attempts++;
    if (rc == AUTH_TEMPFAIL) {
        log_warn("rip=%s: authentication unavailable: %s", s->addr, err);
        pop3d_err(s, "[SYS/TEMP] Temporary authentication failure.");
    } else {
        pop3d_err(s, "[AUTH] Authentication failed.");
    }
}

int pop3d_cmd_user(struct pop3d_session *s, struct pop3d_command *c)
{
    if (!pop3d_plaintext_ok(s))
        return -1;
    if (c->nargs != 1) {
        pop3d_err(s, "USER takes one argument.");
        return -1;
    }
    if (!user_name_ok(s, c->args[0]))
        return -1;
    free(s->user);
    s->user = xstrdup(c->args[0]);
    pop3d_ok(s, "%s", "");
    return 0;
}

int pop3d_cmd_pass(struct pop3d_session *s, struct pop3d_command *c)
{
    struct auth_result res;
    char err[512];
    char *user;
    int rc;

    if (!pop3d_plaintext_ok(s))
        return -1;
    if (s->user == NULL) {
        pop3d_err(s, "No username given.");
        return -1;
    }
    if (*c->rest == 0) {
        pop3d_err(s, "No password given.");
        return -1;
    }
    /* RFC 1939: a failed PASS starts over at USER. */
    user = s->user;
    s->user = NULL;
    rc = auth_verify(user, c->rest, s->addr, POP3D_SERVICE, &res, err,
                     sizeof(err));
    explicit_bzero(c->argbuf, sizeof(c->argbuf));
    explicit_bzero(s->line.data, s->line.len);
    free(user);
    if (rc != AUTH_OK) {
        auth_failed(s, rc, err);
        auth_result_clear(&res);
        return -1;
    }
    rc = pop3d_login(s, res.user, "PLAIN");
    auth_result_clear(&res);
    return rc;
}

/* ---------------------------------------------------------- APOP */

static bool apop_digest_ok(const char *stamp, const char *secret,
                           const char *digest)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char want[33], got[33];
    struct buf in = BUF_INIT;
    bool ok;

    buf_puts(&in, stamp);
    buf_puts(&in, secret);
    ok = EVP_Digest(in.data, in.len, md, &mdlen, EVP_md5(), NULL) == 1 &&
         mdlen == 16;
    explicit_bzero(in.data, in.len);
    buf_free(&in);
    if (!ok) {
        log_warn("APOP: MD5 is not available");
        return false;
    }
    for (int i = 0; i < 16; i++) {
        want[2 * i] = hex[md[i] >> 4];
        want[2 * i + 1] = hex[md[i] & 15];
    }
    want[32] = 0;
    for (int i = 0; i < 32; i++)
        got[i] =
            (char)(digest[i] >= 'A' && digest[i] <= 'F' ? digest[i] - 'A' + 'a'
                                                        : digest[i]);
    got[32] = 0;
    return CRYPTO_memcmp(want, got, 32) == 0;
}

static bool apop_digest_syntax(const char *d)
{
    size_t n = strlen(d);

    if (n != 32)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((d[i] >= '0' && d[i] <= '9') || (d[i] >= 'a' && d[i] <= 'f') ||
              (d[i] >= 'A' && d[i] <= 'F')))
            return false;
    return true;
}

int pop3d_cmd_apop(struct pop3d_session *s, struct pop3d_command *c)
{
    struct auth_result look, res;
    const char *user, *digest;
    struct buf wrong = BUF_INIT;
    char err[512];
    bool match = false;
    int rc;

    if (!s->cfg->apop_enable) {
        pop3d_err(s, "Unknown command.");
        return -1;
    }
    if (c->nargs != 2 || !apop_digest_syntax(c->args[1])) {
        pop3d_err(s, "APOP takes a name and a 32-digit hex digest.");
        return -1;
    }
    user = c->args[0];
    digest = c->args[1];
    if (!user_name_ok(s, user))
        return -1;
    rc = auth_lookup(user, true, &look, err, sizeof(err));
    if (rc == AUTH_TEMPFAIL) {
        auth_failed(s, rc, err);
        return -1;
    }
    if (rc == AUTH_OK && look.has_password)
        match = apop_digest_ok(s->apop_stamp, look.password, digest);
    /*
     * auth decides in the end, so its delays and log apply: the secret
     * itself when the digest matched, else a string that no {PLAIN}
     * password can equal (it holds ':').
     */
    if (match) {
        rc = auth_verify(user, look.password, s->addr, POP3D_SERVICE, &res, err,
                         sizeof(err));
    } else {
        buf_printf(&wrong, "APOP:%s", digest);
        rc = auth_verify(user, wrong.data, s->addr, POP3D_SERVICE, &res, err,
                         sizeof(err));
        if (rc == AUTH_OK) /* cannot happen; never let it log in */
            rc = AUTH_FAIL;
    }
    auth_result_clear(&look);
    buf_free(&wrong);
    if (rc != AUTH_OK) {
        auth_failed(s, rc, err);
        auth_result_clear(&res);
        return -1;
    }
    rc = pop3d_login(s, res.user, "APOP");
    auth_result_clear(&res);
    return rc;
}

/* ---------------------------------------------------------- AUTH */

static bool mech_offered(struct xsasl_server *sasl, const char *mech)
{
    struct argv words = ARGV_INIT;
    bool found = false;

    argv_split(&words, xsasl_server_mechs(sasl), " ");
    for (size_t i = 0; i < words.n; i++)
        if (str_eq_ci(words.v[i], mech))
            found = true;
    argv_free(&words);
    return found;
}

/* One client line of the SASL exchange; false when the session is over. */
static bool auth_read(struct pop3d_session *s, bool *cancel)
{
    enum stream_status st;

    pop3d_flush(s);
    st = stream_read_line(s->client, &s->line, XSASL_LINE_MAX, NULL);
    if (st == STREAM_TOOLONG) {
        pop3d_err(s, "Line too long.");
        *cancel = true;
        return true;
    }
    if (st != STREAM_OK) {
        s->end_reason =
            st == STREAM_TIMEOUT ? "Inactivity" : "Connection closed";
        s->hangup = true;
        return false;
    }
    *cancel = s->line.len == 1 && s->line.data[0] == '*';
    if (*cancel)
        pop3d_err(s, "Authentication cancelled.");
    return true;
}

int pop3d_cmd_auth(struct pop3d_session *s, struct pop3d_command *c)
{
    struct xsasl_server *sasl;
    enum xsasl_status st;
    struct buf out = BUF_INIT;
    char mech[32], err[512];
    int rc = -1;

    if (!s->cfg->sasl_ok) {
        pop3d_err(s, "Unsupported authentication mechanism.");
        return -1;
    }
    if (c->nargs == 0) {
        /* The listing of the RFC 5034 draft that clients still send:
           sasl_mechanisms, as libsasl2 has them. */
        struct argv words = ARGV_INIT;

        sasl =
            xsasl_server_create(POP3D_SERVICE, s->addr, NULL, err, sizeof(err));
        if (sasl != NULL)
            argv_split(&words, xsasl_server_mechs(sasl), " ");
        xsasl_server_free(sasl);
        pop3d_ok(s, "%s", "");
        for (size_t i = 0; i < words.n; i++)
            stream_printf(s->client, "%s\r\n", words.v[i]);
        stream_puts(s->client, ".\r\n");
        argv_free(&words);
        return 0;
    }
    if (!pop3d_plaintext_ok(s))
        return -1;
    if (c->nargs > 2) {
        pop3d_err(s, "Too many arguments.");
        return -1;
    }
    sasl = xsasl_server_create(POP3D_SERVICE, s->addr, NULL, err, sizeof(err));
    if (sasl == NULL) {
        log_warn("SASL: %s", err);
        pop3d_err(s, "[SYS/TEMP] Temporary authentication failure.");
        return -1;
    }
    if (!mech_offered(sasl, c->args[0])) {
        pop3d_err(s, "Unsupported authentication mechanism.");
        xsasl_server_free(sasl);
        return -1;
    }
    str_lcpy(mech, c->args[0], sizeof(mech));
    for (char *p = mech; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    st = xsasl_server_first(sasl, mech, c->nargs == 2 ? c->args[1] : NULL, &out,
                            err, sizeof(err));
    explicit_bzero(c->argbuf, sizeof(c->argbuf));
    while (st == XSASL_CONTINUE) {
        bool cancel = false;

        stream_printf(s->client, "+ %s\r\n", buf_cstr(&out));
        if (!auth_read(s, &cancel))
            goto out;
        if (cancel) {
            s->auth_attempts++;
            goto out;
        }
        st = xsasl_server_next(sasl, s->line.data, &out, err, sizeof(err));
        explicit_bzero(s->line.data, s->line.len);
    }
    switch (st) {
    case XSASL_OK: {
        char account[AUTH_USER_MAX + 1];

        str_lcpy(account, xsasl_server_username(sasl), sizeof(account));
        xsasl_server_free(sasl);
        sasl = NULL;
        rc = pop3d_login(s, account, mech);
        break;
    }
    case XSASL_FAIL:
        auth_failed(s, AUTH_FAIL, err);
        break;
    case XSASL_TEMPFAIL:
        auth_failed(s, AUTH_TEMPFAIL, err);
        break;
    default:
        s->auth_attempts++;
        pop3d_err(s, "Invalid authentication data.");
        break;
    }
out:
    if (sasl != NULL)
        xsasl_server_free(sasl);
    buf_free(&out);
    return rc;
}
