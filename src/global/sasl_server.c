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
 * having said yes is refused: the library's own password back ends are
 * fenced off by a do-nothing auxprop plugin (XSASL_AUXPROP) and
 * pwcheck_method auxprop, so no sasldb file or saslauthd is ever asked.
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

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sasl/sasl.h>
#include <sasl/saslplug.h>
#include <sasl/saslutil.h>

#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* The application name libsasl2 knows us by, and our auxprop plugin. */
#define XSASL_APPNAME "posthorn"
#define XSASL_AUXPROP "posthorn-none"
#define XSASL_MECHS "PLAIN LOGIN"

/* libsasl2 stores every callback as int (*)(void); void (*)(void) is the
   cast C allows between function types without a warning. */
#define XSASL_CB(fn) ((sasl_callback_ft)(void (*)(void))(fn))

struct xsasl_server {
    sasl_conn_t *conn;
    char *service;
    char *client_addr;
    xsasl_verify_fn verify;
    sasl_callback_t callbacks[3];
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
        {"mech_list", XSASL_MECHS},
        {"pwcheck_method", "auxprop"},
        {"auxprop_plugin", XSASL_AUXPROP},
    };

    (void)context;
    (void)plugin;
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

/* The do-nothing auxprop plugin: no properties for anybody. */
static int xsasl_auxprop_lookup(void *glob, sasl_server_params_t *sparams,
                                unsigned flags, const char *user, unsigned ulen)
{
    (void)glob;
    (void)sparams;
    (void)flags;
    (void)user;
    (void)ulen;
    return SASL_NOUSER;
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
    const char *list = NULL;
    unsigned len = 0;
    int count = 0;

    s->service = xstrdup(service);
    s->client_addr = xstrdup(client_addr != NULL ? client_addr : "");
    s->verify = verify != NULL ? verify : auth_verify;
    s->callbacks[0].id = SASL_CB_SERVER_USERDB_CHECKPASS;
    s->callbacks[0].proc = XSASL_CB(xsasl_checkpass);
    s->callbacks[0].context = s;
    s->callbacks[1].id = SASL_CB_GETOPT;
    s->callbacks[1].proc = XSASL_CB(xsasl_getopt);
    s->callbacks[2].id = SASL_CB_LIST_END;
    auth_result_clear(&s->result);
    if (xsasl_server_init(err, errlen) < 0 ||
        xsasl_conn_new(s, err, errlen) < 0)
        goto fail;
    if (sasl_listmech(s->conn, NULL, "", " ", "", &list, &len, &count) !=
            SASL_OK ||
        count == 0) {
        snprintf(err, errlen,
                 "no SASL mechanisms available (is Debian's "
                 "libsasl2-modules installed?)");
        goto fail;
    }
    str_lcpy(s->mechs, list, sizeof(s->mechs));
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
    free(s->service);
    free(s->client_addr);
    free(s);
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
    const char *list = NULL;
    unsigned len = 0;
    int count = 0, rc;

    s->security = 0;
    for (size_t i = 0; i < XSASL_NWORDS; i++)
        if (flags & xsasl_security_words[i].xsasl)
            s->security |= xsasl_security_words[i].sasl;
    if (xsasl_conn_new(s, err, errlen) < 0)
        return -1;
    rc = sasl_listmech(s->conn, NULL, "", " ", "", &list, &len, &count);
    if (rc == SASL_OK && count > 0)
        str_lcpy(s->mechs, list, sizeof(s->mechs));
    else if (rc == SASL_OK || rc == SASL_NOMECH)
        s->mechs[0] = 0;
    else {
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
    rc = sasl_server_step(s->conn, in != NULL ? in : "", inlen, &serverout,
                          &outlen);
    xsasl_wipe(in, inlen);
    return xsasl_result(s, rc, serverout, outlen, out, err, errlen);
}
