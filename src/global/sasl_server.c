/*
 * sasl_server - glue between libsasl2's server side and the auth
 * service.
 *
 * libsasl2 runs the mechanism (its PLAIN and LOGIN plugins parse what the
 * client sends); when it has a user name and a password it calls our
 * SASL_CB_SERVER_USERDB_CHECKPASS callback, which asks auth (or the
 * verify function a test put in).  What that callback answered, not
 * libsasl2's return code, decides between "bad credentials" and "try
 * later", and a mechanism that reports success without our callback
 * having said yes is refused.  The library's own password back ends are
 * fenced off by our in-process auxprop plugin (XSASL_AUXPROP, the only
 * one named) and pwcheck_method auxprop, so no sasldb file or saslauthd
 * is ever asked.
 *
 * SCRAM (libsasl2's scram plugin) cannot use a password check: it needs
 * the secret to compute the proof it expects.  For a session running a
 * SCRAM mechanism, and only then, our auxprop plugin answers the
 * plugin's userPassword request for the authentication identity with
 * the plain secret auth gives for a {PLAIN} account (auth_lookup with
 * want_secret); for PLAIN and LOGIN it answers nothing, so the library
 * can never compare a PLAIN password itself.  A SCRAM success counts
 * only if the identity that logged in is the one whose secret auth gave;
 * success and failure are then reported to auth (auth_report), which
 * counts, logs and delays them as it does its own verifications.
 *
 * Options come from our SASL_CB_GETOPT callback (mech_list, the auxprop
 * plugin), never from a file an administrator might have left in
 * /etc/sasl2.  Library messages go to our log at debug level, except
 * errors; SASL_LOG_PASS (passwords) is dropped.
 *
 * Client data is bounded (XSASL_LINE_MAX) before base64 decoding; decoded
 * buffers and passwords are wiped.  Each exchange gets a fresh sasl_conn,
 * so a failed or cancelled one leaves no state behind.
 */
#include "global/sasl_server.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sasl/sasl.h>
#include <sasl/saslplug.h>
#include <sasl/saslutil.h>

#include "global/config.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* The application name libsasl2 knows us by, and our auxprop plugin. */
#define XSASL_APPNAME "posthorn"
#define XSASL_MECHS_PARAM "sasl_mechanisms"
#define XSASL_AUXPROP "posthorn-auth"
/* The plugins the library loads; sessions offer xsasl_mechs of them. */
#define XSASL_MECHS_LOAD XSASL_MECHS_SUPPORTED

/* What the process offers (sasl_mechanisms), upper case. */
static char xsasl_mechs[sizeof(XSASL_MECHS_SUPPORTED)];
static bool xsasl_mechs_set;

/* What our auxprop plugin found for a SCRAM session. */
enum xsasl_secret {
    XSASL_SECRET_NONE,     /* not asked (yet) */
    XSASL_SECRET_GIVEN,    /* auth gave the plain secret of account */
    XSASL_SECRET_MISSING,  /* the account has no {PLAIN} secret */
    XSASL_SECRET_UNKNOWN,  /* no such account */
    XSASL_SECRET_TEMPFAIL, /* auth unavailable */
};

/* libsasl2 stores every callback as int (*)(void); void (*)(void) is the
   cast C allows between function types without a warning. */
#define XSASL_CB(fn) ((sasl_callback_ft)(void (*)(void))(fn))

struct xsasl_server {
    sasl_conn_t *conn;
    char *service;
    char *client_addr;
    xsasl_verify_fn verify;
    xsasl_lookup_fn lookup;
    xsasl_report_fn report;
    sasl_callback_t callbacks[3];
    char mech[XSASL_MECH_MAX + 1]; /* of the running exchange */
    bool scram_final;              /* the client's proof has been sent */
    enum xsasl_secret secret;
    char secret_user[AUTH_USER_MAX + 1]; /* the name looked up */
    char secret_err[256];
    struct auth_result account; /* what the lookup said, no password */
    int verify_rc; /* AUTH_*, or 1 + AUTH_FAIL: not asked */
    bool verify_asked;
    char verify_err[256];
    struct auth_result result;
    unsigned security; /* SASL_SEC_* for sasl_setprop */
    char mechs[256];
};

/* ------------------------------------------------------------ process */

static int xsasl_getopt(void *context, const char *plugin, const char *option,
                        const char **result, unsigned *len)
{
    static const struct {
        const char *name;
        const char *value;
    } options[] = {
        {"pwcheck_method", "auxprop"},
        {"auxprop_plugin", XSASL_AUXPROP},
    };

    (void)plugin;
    if (strcmp(option, "mech_list") == 0) {
        /* Global (no context): what to load; a session: what to offer. */
        *result = context == NULL ? XSASL_MECHS_LOAD : xsasl_mechs;
        if (len != NULL)
            *len = (unsigned)strlen(*result);
        return SASL_OK;
    }
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
        if (strcmp(option, options[i].name) == 0) {
            *result = options[i].value;
            if (len != NULL)
                *len = (unsigned)strlen(options[i].value);
            return SASL_OK;
        }
    }
    return SASL_FAIL;
}

static int xsasl_log(void *context, int level, const char *message)
{
    char text[512];

    (void)context;
    if (message == NULL || level == SASL_LOG_PASS || level > SASL_LOG_DEBUG)
        return SASL_OK;
    log_printable(text, sizeof(text), message, strlen(message));
    if (level == SASL_LOG_ERR)
        log_warn("SASL: %s", text);
    else
        log_debug("SASL: %s", text);
    return SASL_OK;
}

static bool xsasl_is_scram(const char *mech)
{
    return strncasecmp(mech, "SCRAM-", 6) == 0;
}

static int xsasl_checkpass(sasl_conn_t *conn, void *context, const char *user,
                           const char *pass, unsigned passlen,
                           struct propctx *propctx);

/*
 * Our session behind a library connection: the context of its
 * checkpass callback, which only xsasl_server_create installs.
 */
static struct xsasl_server *xsasl_session_of(sasl_server_params_t *sparams)
{
    sasl_callback_ft proc = NULL;
    void *context = NULL;

    if (sparams->utils->getcallback(sparams->utils->conn,
                                    SASL_CB_SERVER_USERDB_CHECKPASS, &proc,
                                    &context) != SASL_OK ||
        proc != XSASL_CB(xsasl_checkpass))
        return NULL;
    return context;
}

/*
 * The auxprop plugin.  Outside SCRAM: no properties for anybody.  In a
 * SCRAM session: the plain secret of the authentication identity, from
 * auth, as userPassword (the scram plugin derives its keys from it).
 */
static int xsasl_auxprop_lookup(void *glob, sasl_server_params_t *sparams,
                                unsigned flags, const char *user, unsigned ulen)
{
    struct xsasl_server *s = xsasl_session_of(sparams);
    const struct propval *pv;
    struct auth_result res;
    int rc;

    (void)glob;
    if (s == NULL || !xsasl_is_scram(s->mech))
        return SASL_NOUSER;
    /* The authorization identity has no secret to look up. */
    if (flags & SASL_AUXPROP_AUTHZID)
        return SASL_OK;
    /* A name auth would refuse: the exchange fails as malformed. */
    if (ulen == 0 || ulen > AUTH_USER_MAX || memchr(user, 0, ulen) != NULL)
        return SASL_NOUSER;
    s->secret = XSASL_SECRET_UNKNOWN;
    memcpy(s->secret_user, user, ulen);
    s->secret_user[ulen] = 0;
    rc = s->lookup(s->secret_user, true, &res, s->secret_err,
                   sizeof(s->secret_err));
    if (rc == AUTH_TEMPFAIL) {
        s->secret = XSASL_SECRET_TEMPFAIL;
        auth_result_clear(&res);
        return SASL_UNAVAIL;
    }
    if (rc != AUTH_OK) {
        snprintf(s->secret_err, sizeof(s->secret_err), "unknown user");
        auth_result_clear(&res);
        return SASL_NOUSER;
    }
    if (!res.has_password || res.password[0] == 0) {
        s->secret = XSASL_SECRET_MISSING;
        snprintf(s->secret_err, sizeof(s->secret_err),
                 "no secret usable for %s (the account's password is not "
                 "{PLAIN})",
                 s->mech);
        auth_result_clear(&res);
        return SASL_NOUSER;
    }
    rc = SASL_NOUSER;
    for (pv = sparams->utils->prop_get(sparams->propctx);
         pv != NULL && pv->name != NULL; pv++) {
        if (strcmp(pv->name, SASL_AUX_PASSWORD) != 0)
            continue;
        if (pv->values != NULL)
            sparams->utils->prop_erase(sparams->propctx, pv->name);
        if (sparams->utils->prop_set(sparams->propctx, pv->name, res.password,
                                     (int)strlen(res.password)) == SASL_OK)
            rc = SASL_OK;
        break;
    }
    if (rc == SASL_OK) {
        s->secret = XSASL_SECRET_GIVEN;
        s->account = res;
        explicit_bzero(s->account.password, sizeof(s->account.password));
        s->account.has_password = false;
    } else {
        s->secret = XSASL_SECRET_TEMPFAIL;
        snprintf(s->secret_err, sizeof(s->secret_err),
                 "cannot pass the secret to the SASL library");
    }
    auth_result_clear(&res);
    return rc;
}

static sasl_auxprop_plug_t xsasl_auxprop_plug = {
    0, 0, NULL, NULL, xsasl_auxprop_lookup, XSASL_AUXPROP, NULL,
};

static int xsasl_auxprop_init(const sasl_utils_t *utils, int max_version,
                              int *out_version, sasl_auxprop_plug_t **plug,
                              const char *name)
{
    (void)utils;
    (void)name;
    if (max_version < SASL_AUXPROP_PLUG_VERSION)
        return SASL_BADVERS;
    *out_version = SASL_AUXPROP_PLUG_VERSION;
    *plug = &xsasl_auxprop_plug;
    return SASL_OK;
}

int xsasl_server_init(char *err, size_t errlen)
{
    static bool done;
    static sasl_callback_t global[] = {
        {SASL_CB_GETOPT, XSASL_CB(xsasl_getopt), NULL},
        {SASL_CB_LOG, XSASL_CB(xsasl_log), NULL},
        {SASL_CB_LIST_END, NULL, NULL},
    };
    int rc;

    if (done)
        return 0;
    if (!xsasl_mechs_set &&
        xsasl_server_set_mechanisms(
            config_str(config_global(), XSASL_MECHS_PARAM), err, errlen) < 0)
        return -1;
    if ((rc = sasl_server_init(global, XSASL_APPNAME)) != SASL_OK) {
        snprintf(err, errlen, "SASL library initialization: %s",
                 sasl_errstring(rc, NULL, NULL));
        return -1;
    }
    if ((rc = sasl_auxprop_add_plugin(XSASL_AUXPROP, xsasl_auxprop_init)) !=
        SASL_OK) {
        snprintf(err, errlen, "SASL auxprop plugin: %s",
                 sasl_errstring(rc, NULL, NULL));
        return -1;
    }
    done = true;
    return 0;
}

int xsasl_server_set_mechanisms(const char *list, char *err, size_t errlen)
{
    static const char *const known[] = {"PLAIN", "LOGIN", "SCRAM-SHA-1",
                                        "SCRAM-SHA-256"};
    char out[sizeof(xsasl_mechs)];
    bool seen[sizeof(known) / sizeof(known[0])] = {false};
    const char *p = list;
    size_t used = 0;

    out[0] = 0;
    while (*p) {
        size_t len, i;

        p += strspn(p, " \t\r\n,");
        if (*p == 0)
            break;
        len = strcspn(p, " \t\r\n,");
        for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            if (strlen(known[i]) == len && strncasecmp(known[i], p, len) == 0)
                break;
        if (i == sizeof(known) / sizeof(known[0])) {
            snprintf(err, errlen,
                     "%s: unsupported SASL mechanism '%.*s' (supported: %s)",
                     XSASL_MECHS_PARAM, (int)(len > 32 ? 32 : len), p,
                     XSASL_MECHS_SUPPORTED);
            return -1;
        }
        if (!seen[i]) {
            seen[i] = true;
            used += (size_t)snprintf(out + used, sizeof(out) - used, "%s%s",
                                     used ? " " : "", known[i]);
        }
        p += len;
    }
    memcpy(xsasl_mechs, out, sizeof(xsasl_mechs));
    xsasl_mechs_set = true;
    return 0;
}

/* Is mech (any case) one of the space-separated words of list? */
static bool xsasl_listed(const char *list, const char *mech)
{
    size_t mlen = strlen(mech);

    while (*list) {
        size_t len = strcspn(list, " ");

        if (len == mlen && strncasecmp(list, mech, len) == 0)
            return true;
        list += len;
        list += strspn(list, " ");
    }
    return false;
}

/*
 * The library's list for this session, less what the process does not
 * offer (the per-session mech_list should have done that already).
 */
static int xsasl_list_mechs(struct xsasl_server *s)
{
    const char *list = NULL;
    unsigned len = 0;
    int count = 0, rc;
    size_t used = 0;

    s->mechs[0] = 0;
    rc = sasl_listmech(s->conn, NULL, "", " ", "", &list, &len, &count);
    if (rc == SASL_NOMECH || (rc == SASL_OK && count == 0))
        return SASL_OK;
    if (rc != SASL_OK)
        return rc;
    while (*list) {
        size_t n = strcspn(list, " ");
        char word[XSASL_MECH_MAX + 1];

        if (n > 0 && n <= XSASL_MECH_MAX) {
            memcpy(word, list, n);
            word[n] = 0;
            if (xsasl_listed(xsasl_mechs, word) &&
                used + n + 2 < sizeof(s->mechs))
                used +=
                    (size_t)snprintf(s->mechs + used, sizeof(s->mechs) - used,
                                     "%s%s", used ? " " : "", word);
        }
        list += n;
        list += strspn(list, " ");
    }
    return SASL_OK;
}

/* ------------------------------------------------------------ session */

/* libsasl2 has a user name and a password: ask auth. */
static int xsasl_checkpass(sasl_conn_t *conn, void *context, const char *user,
                           const char *pass, unsigned passlen,
                           struct propctx *propctx)
{
    struct xsasl_server *s = context;
    char *password;

    (void)conn;
    (void)propctx;
    s->verify_asked = true;
    if (passlen > AUTH_PASSWORD_MAX || memchr(pass, 0, passlen) != NULL) {
        s->verify_rc = AUTH_FAIL;
        snprintf(s->verify_err, sizeof(s->verify_err), "malformed password");
        return SASL_BADAUTH;
    }
    password = xmalloc(passlen + 1);
    memcpy(password, pass, passlen);
    password[passlen] = 0;
    s->verify_rc = s->verify(user, password, s->client_addr, s->service,
                             &s->result, s->verify_err, sizeof(s->verify_err));
    explicit_bzero(password, passlen);
    free(password);
    switch (s->verify_rc) {
    case AUTH_OK:
        return SASL_OK;
    case AUTH_FAIL:
        return SASL_BADAUTH;
    default:
        return SASL_UNAVAIL;
    }
}

static int xsasl_conn_new(struct xsasl_server *s, char *err, size_t errlen)
{
    sasl_security_properties_t props;
    int rc;

    if (s->conn != NULL)
        sasl_dispose(&s->conn);
    rc = sasl_server_new(s->service, NULL, NULL, NULL, NULL, s->callbacks, 0,
                         &s->conn);
    if (rc != SASL_OK) {
        snprintf(err, errlen, "SASL session: %s",
                 sasl_errstring(rc, NULL, NULL));
        s->conn = NULL;
        return -1;
    }
    /* No security layer: TLS protects the session, as in Postfix. */
    memset(&props, 0, sizeof(props));
    props.security_flags = s->security | SASL_SEC_NOANONYMOUS;
    if ((rc = sasl_setprop(s->conn, SASL_SEC_PROPS, &props)) != SASL_OK) {
        snprintf(err, errlen, "SASL security properties: %s",
                 sasl_errstring(rc, NULL, NULL));
        return -1;
    }
    return 0;
}

struct xsasl_server *xsasl_server_create(const char *service,
                                         const char *client_addr,
                                         xsasl_verify_fn verify, char *err,
                                         size_t errlen)
{
    struct xsasl_server *s = xcalloc(1, sizeof(*s));

    s->service = xstrdup(service);
    s->client_addr = xstrdup(client_addr != NULL ? client_addr : "");
    s->verify = verify != NULL ? verify : auth_verify;
    s->callbacks[0].id = SASL_CB_SERVER_USERDB_CHECKPASS;
    s->callbacks[0].proc = XSASL_CB(xsasl_checkpass);
    s->callbacks[0].context = s;
    s->callbacks[1].id = SASL_CB_GETOPT;
    s->callbacks[1].proc = XSASL_CB(xsasl_getopt);
    s->callbacks[1].context = s;
    s->callbacks[2].id = SASL_CB_LIST_END;
    s->lookup = auth_lookup;
    s->report = auth_report;
    auth_result_clear(&s->account);
    auth_result_clear(&s->result);
    if (xsasl_server_init(err, errlen) < 0 ||
        xsasl_conn_new(s, err, errlen) < 0)
        goto fail;
    if (xsasl_list_mechs(s) != SASL_OK || s->mechs[0] == 0) {
        snprintf(err, errlen,
                 "no SASL mechanisms available (%s = \"%s\"; is Debian's "
                 "libsasl2-modules installed?)",
                 XSASL_MECHS_PARAM, xsasl_mechs);
        goto fail;
    }
    return s;
fail:
    xsasl_server_free(s);
    return NULL;
}

void xsasl_server_free(struct xsasl_server *s)
{
    if (s == NULL)
        return;
    if (s->conn != NULL)
        sasl_dispose(&s->conn);
    auth_result_clear(&s->result);
    auth_result_clear(&s->account);
    free(s->service);
    free(s->client_addr);
    free(s);
}

void xsasl_server_set_backend(struct xsasl_server *s, xsasl_lookup_fn lookup,
                              xsasl_report_fn report)
{
    s->lookup = lookup != NULL ? lookup : auth_lookup;
    s->report = report != NULL ? report : auth_report;
}

const char *xsasl_server_mechs(struct xsasl_server *s)
{
    return s->mechs;
}

static const struct {
    const char *name;
    unsigned xsasl;
    unsigned sasl;
} xsasl_security_words[] = {
    {"noplaintext", XSASL_SEC_NOPLAINTEXT, SASL_SEC_NOPLAINTEXT},
    {"noactive", XSASL_SEC_NOACTIVE, SASL_SEC_NOACTIVE},
    {"nodictionary", XSASL_SEC_NODICTIONARY, SASL_SEC_NODICTIONARY},
    {"noanonymous", XSASL_SEC_NOANONYMOUS, SASL_SEC_NOANONYMOUS},
    {"forward_secrecy", XSASL_SEC_FORWARD_SECRECY, SASL_SEC_FORWARD_SECRECY},
    {"mutual_auth", XSASL_SEC_MUTUAL_AUTH, SASL_SEC_MUTUAL_AUTH},
};
#define XSASL_NWORDS (sizeof(xsasl_security_words) / sizeof(xsasl_security_words[0]))

int xsasl_security_parse(const char *options, unsigned *flags, char *err,
                         size_t errlen)
{
    const char *p = options;

    *flags = 0;
    while (*p) {
        size_t len, i;

        p += strspn(p, " \t\r\n,");
        if (*p == 0)
            break;
        len = strcspn(p, " \t\r\n,");
        for (i = 0; i < XSASL_NWORDS; i++)
            if (strlen(xsasl_security_words[i].name) == len &&
                strncasecmp(xsasl_security_words[i].name, p, len) == 0)
                break;
        if (i == XSASL_NWORDS) {
            snprintf(err, errlen, "unknown SASL security option '%.*s'",
                     (int)(len > 32 ? 32 : len), p);
            return -1;
        }
        *flags |= xsasl_security_words[i].xsasl;
        p += len;
    }
    return 0;
}

int xsasl_server_set_security(struct xsasl_server *s, unsigned flags,
                              char *err, size_t errlen)
{
    int rc;

    s->security = 0;
    for (size_t i = 0; i < XSASL_NWORDS; i++)
        if (flags & xsasl_security_words[i].xsasl)
            s->security |= xsasl_security_words[i].sasl;
    if (xsasl_conn_new(s, err, errlen) < 0)
        return -1;
    if ((rc = xsasl_list_mechs(s)) != SASL_OK) {
        snprintf(err, errlen, "SASL mechanism list: %s",
                 sasl_errstring(rc, NULL, NULL));
        return -1;
    }
    return 0;
}

const char *xsasl_server_username(const struct xsasl_server *s)
{
    return s->result.user;
}

const struct auth_result *xsasl_server_result(const struct xsasl_server *s)
{
    return &s->result;
}

/*
 * Decode a client line.  *out is NULL for "no data" (first without an
 * initial response); "=" is an empty response.  Returns 0 or -1.
 */
static int xsasl_decode(const char *in, char **out, unsigned *outlen, char *err,
                        size_t errlen)
{
    size_t len;
    unsigned max;

    *out = NULL;
    *outlen = 0;
    if (in == NULL)
        return 0;
    len = strlen(in);
    if (len > XSASL_LINE_MAX) {
        snprintf(err, errlen, "SASL response longer than %d bytes",
                 XSASL_LINE_MAX);
        return -1;
    }
    max = (unsigned)(len / 4 * 3 + 4);
    *out = xmalloc(max);
    if (len == 0 || strcmp(in, "=") == 0) {
        (*out)[0] = 0;
        return 0;
    }
    if (sasl_decode64(in, (unsigned)len, *out, max, outlen) != SASL_OK) {
        snprintf(err, errlen, "malformed base64 in SASL response");
        free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

static void xsasl_wipe(char *data, unsigned len)
{
    if (data != NULL) {
        explicit_bzero(data, len);
        free(data);
    }
}

/* Tell auth how a SCRAM login ended; a report that fails is a TEMPFAIL. */
static enum xsasl_status xsasl_scram_report(struct xsasl_server *s,
                                            const char *user, bool success,
                                            const char *reason, char *err,
                                            size_t errlen)
{
    char why[256];

    if (s->report(user, success, reason, s->client_addr, s->service, why,
                  sizeof(why)) != AUTH_OK) {
        snprintf(err, errlen, "%s", why);
        return XSASL_TEMPFAIL;
    }
    if (!success)
        snprintf(err, errlen, "%s", reason);
    return success ? XSASL_OK : XSASL_FAIL;
}

/* A libsasl2 failure with no password check behind it, as our status. */
static enum xsasl_status xsasl_library_status(struct xsasl_server *s, int rc,
                                             char *err, size_t errlen)
{
    snprintf(err, errlen, "%s", sasl_errdetail(s->conn));
    switch (rc) {
    case SASL_NOMEM:
    case SASL_FAIL:
    case SASL_UNAVAIL:
    case SASL_TRYAGAIN:
        return XSASL_TEMPFAIL;
    case SASL_BADAUTH:
    case SASL_NOUSER:
    case SASL_NOAUTHZ:
        return XSASL_FAIL;
    default:
        return XSASL_BADPROT;
    }
}

/* A SCRAM exchange that ended (rc is not SASL_CONTINUE). */
static enum xsasl_status xsasl_scram_result(struct xsasl_server *s, int rc,
                                            char *err, size_t errlen)
{
    const void *authz = NULL, *authn = NULL;
    enum xsasl_status st;
    char reason[256];

    if (rc == SASL_OK) {
        if (s->secret == XSASL_SECRET_GIVEN &&
            sasl_getprop(s->conn, SASL_USERNAME, &authz) == SASL_OK &&
            sasl_getprop(s->conn, SASL_AUTHUSER, &authn) == SASL_OK &&
            authz != NULL && authn != NULL &&
            str_eq_ci(authz, s->account.user) &&
            str_eq_ci(authn, s->account.user)) {
            st =
                xsasl_scram_report(s, s->account.user, true, NULL, err, errlen);
            if (st == XSASL_OK)
                s->result = s->account;
            return st;
        }
        /* Never without auth's secret for this very account. */
        snprintf(err, errlen,
                 "SASL mechanism finished without a secret from auth for "
                 "that user");
        return XSASL_FAIL;
    }
    switch (s->secret) {
    case XSASL_SECRET_TEMPFAIL:
        snprintf(err, errlen, "%s", s->secret_err);
        return XSASL_TEMPFAIL;
    case XSASL_SECRET_UNKNOWN:
    case XSASL_SECRET_MISSING:
        return xsasl_scram_report(s, s->secret_user, false, s->secret_err, err,
                                  errlen);
    case XSASL_SECRET_GIVEN:
        if (!s->scram_final)
            break;
        /* The proof was checked against the secret: a failed login. */
        snprintf(reason, sizeof(reason), "%s: %s", s->mech,
                 strstr(sasl_errdetail(s->conn), "StoredKey mismatch")
                     ? "client proof mismatch (wrong password)"
                     : sasl_errdetail(s->conn));
        return xsasl_scram_report(s, s->account.user, false, reason, err,
                                  errlen);
    case XSASL_SECRET_NONE:
        break;
    }
    /* Malformed before any proof: a protocol error, not a login. */
    return xsasl_library_status(s, rc, err, errlen);
}

static enum xsasl_status xsasl_result(struct xsasl_server *s, int rc,
                                      const char *serverout, unsigned outlen,
                                      struct buf *out, char *err, size_t errlen)
{
    buf_reset(out);
    if (rc == SASL_CONTINUE) {
        unsigned max = (outlen + 2) / 3 * 4 + 1, n = 0;

        buf_reserve(out, max);
        if (outlen > 0 &&
            sasl_encode64(serverout, outlen, out->data, max, &n) != SASL_OK) {
            snprintf(err, errlen, "cannot encode the SASL challenge");
            return XSASL_TEMPFAIL;
        }
        out->len = n;
        out->data[n] = 0;
        return XSASL_CONTINUE;
    }
    if (xsasl_is_scram(s->mech)) {
        enum xsasl_status st = xsasl_scram_result(s, rc, err, errlen);

        if (st != XSASL_OK)
            auth_result_clear(&s->result);
        auth_result_clear(&s->account);
        s->secret = XSASL_SECRET_NONE;
        return st;
    }
    if (rc == SASL_OK) {
        if (s->verify_asked && s->verify_rc == AUTH_OK)
            return XSASL_OK;
        /* Never without our check: refuse rather than trust the library. */
        snprintf(err, errlen,
                 "SASL mechanism finished without a password "
                 "check");
        auth_result_clear(&s->result);
        return XSASL_FAIL;
    }
    auth_result_clear(&s->result);
    if (s->verify_asked && s->verify_rc == AUTH_TEMPFAIL) {
        snprintf(err, errlen, "%s", s->verify_err);
        return XSASL_TEMPFAIL;
    }
    if (s->verify_asked) {
        /* Wrong password, or a right one for a foreign authzid. */
        snprintf(err, errlen, "%s",
                 s->verify_rc == AUTH_FAIL ? s->verify_err
                                           : sasl_errdetail(s->conn));
        return XSASL_FAIL;
    }
    return xsasl_library_status(s, rc, err, errlen);
}

enum xsasl_status xsasl_server_first(struct xsasl_server *s, const char *mech,
                                     const char *initial, struct buf *out,
                                     char *err, size_t errlen)
{
    const char *serverout = NULL;
    unsigned outlen = 0, inlen;
    char *in;
    int rc;

    buf_reset(out);
    s->verify_asked = false;
    s->verify_rc = AUTH_FAIL;
    s->verify_err[0] = 0;
    auth_result_clear(&s->result);
    auth_result_clear(&s->account);
    s->secret = XSASL_SECRET_NONE;
    s->scram_final = false;
    s->secret_user[0] = 0;
    s->mech[0] = 0;
    /* Only what this process offers, whatever else the library has. */
    if (strlen(mech) > XSASL_MECH_MAX || !xsasl_listed(s->mechs, mech)) {
        snprintf(err, errlen, "unsupported SASL mechanism");
        return XSASL_BADPROT;
    }
    str_lcpy(s->mech, mech, sizeof(s->mech));
    for (char *c = s->mech; *c; c++)
        *c = (char)toupper((unsigned char)*c);
    if (xsasl_conn_new(s, err, errlen) < 0)
        return XSASL_TEMPFAIL;
    if (xsasl_decode(initial, &in, &inlen, err, errlen) < 0)
        return XSASL_BADPROT;
    rc = sasl_server_start(s->conn, mech, in, inlen, &serverout, &outlen);
    xsasl_wipe(in, inlen);
    if (rc == SASL_NOMECH) {
        snprintf(err, errlen, "unsupported SASL mechanism");
        return XSASL_BADPROT;
    }
    return xsasl_result(s, rc, serverout, outlen, out, err, errlen);
}

enum xsasl_status xsasl_server_next(struct xsasl_server *s,
                                    const char *response, struct buf *out,
                                    char *err, size_t errlen)
{
    const char *serverout = NULL;
    unsigned outlen = 0, inlen;
    char *in;
    int rc;

    buf_reset(out);
    if (xsasl_decode(response, &in, &inlen, err, errlen) < 0)
        return XSASL_BADPROT;
    /* SCRAM: the answer to the server-first message carries the proof. */
    if (s->secret == XSASL_SECRET_GIVEN)
        s->scram_final = true;
    rc = sasl_server_step(s->conn, in != NULL ? in : "", inlen, &serverout,
                          &outlen);
    xsasl_wipe(in, inlen);
    return xsasl_result(s, rc, serverout, outlen, out, err, errlen);
}
