/*
 * sasl_server - SASL authentication for smtpd, pop3d and imapd: Cyrus
 * libsasl2's mechanisms with every password check answered by the auth
 * service (Postfix's xsasl_server layer, hence the names: libsasl2 owns
 * the sasl_server_* names itself).
 *
 * The mechanisms are the library's plugins (Debian's libsasl2-modules);
 * this layer only decodes and encodes base64, hands the library our
 * password check (SASL_CB_SERVER_USERDB_CHECKPASS -> auth_verify) and
 * turns its results into what a protocol needs to answer.  Offered:
 * the sasl_mechanisms parameter, PLAIN and LOGIN by default; SCRAM-SHA-256
 * and SCRAM-SHA-1 when the administrator lists them.  SCRAM needs the
 * account's secret: libsasl2's scram plugin gets it through our auxprop
 * plugin, which asks auth (auth_lookup with want_secret, so only {PLAIN}
 * accounts can use SCRAM), and the outcome goes back to auth
 * (auth_report) for its failure counts, delay and log.  CRAM-MD5 and
 * DIGEST-MD5 are never offered; see docs/accounts.md.
 *
 * Usage, per client session:
 *
 *     xsasl_server_init(err)                   once per process
 *     s = xsasl_server_create("smtp", client_addr, NULL, err)
 *     mechs = xsasl_server_mechs(s)             "PLAIN LOGIN" (EHLO AUTH)
 *     st = xsasl_server_first(s, "PLAIN", initial_or_NULL, &out, err)
 *     while (st == XSASL_CONTINUE)              send out ("334 out"),
 *         st = xsasl_server_next(s, line, &out, err)    read the answer
 *     XSASL_OK: xsasl_server_username(s) is the account
 *
 * A client's "*" (cancel) is the protocol's business: it ends the
 * exchange without calling into this layer; free the session or start
 * over with xsasl_server_first.  Everything the client sends is bounded
 * (XSASL_LINE_MAX) and checked; malformed base64 is XSASL_BADPROT.
 */
#ifndef GLOBAL_SASL_SERVER_H
#define GLOBAL_SASL_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "global/auth_client.h"
#include "util/buf.h"

/* Longest base64 line accepted from a client (RFC 4954 allows 12288). */
#define XSASL_LINE_MAX 12288

enum xsasl_status {
    XSASL_OK,       /* authenticated */
    XSASL_CONTINUE, /* send the challenge in out, then call next */
    XSASL_FAIL,     /* bad credentials (SMTP 535 5.7.8) */
    XSASL_TEMPFAIL, /* auth unavailable (SMTP 454 4.7.0) */
    XSASL_BADPROT,  /* malformed data, unknown mechanism (SMTP 501 / 504) */
};

/*
 * The password check: auth_verify's signature, so tests can put their
 * own in place of the auth service.
 */
typedef int (*xsasl_verify_fn)(const char *user, const char *password,
                               const char *client_addr, const char *service,
                               struct auth_result *res, char *err,
                               size_t errlen);

/* The secret lookup and the outcome report: auth_lookup's and
   auth_report's signatures, for the same reason. */
typedef int (*xsasl_lookup_fn)(const char *user, bool want_secret,
                               struct auth_result *res, char *err,
                               size_t errlen);
typedef int (*xsasl_report_fn)(const char *user, bool success,
                               const char *reason, const char *client_addr,
                               const char *service, char *err, size_t errlen);

/* Mechanisms sasl_mechanisms may name. */
#define XSASL_MECHS_SUPPORTED "PLAIN LOGIN SCRAM-SHA-1 SCRAM-SHA-256"
/* Longest mechanism name a client may ask for (RFC 4422: 20). */
#define XSASL_MECH_MAX 20

/*
 * sasl_server_init() and our plugin settings; 0, or -1 with err set.
 * The mechanisms come from the sasl_mechanisms parameter of the global
 * configuration unless xsasl_server_set_mechanisms() set them first.
 */
int xsasl_server_init(char *err, size_t errlen);

/*
 * The mechanisms to offer from now on (blank or comma separated,
 * case-insensitive, each one of XSASL_MECHS_SUPPORTED); for this
 * process, new sessions only.  0, or -1 with err naming a bad word.
 */
int xsasl_server_set_mechanisms(const char *list, char *err, size_t errlen);

struct xsasl_server;

/*
 * One session.  service is the protocol ("smtp", "pop3", "imap"),
 * client_addr the numeric client address (for auth's delay and log; may
 * be ""), verify NULL for auth_verify.  NULL with err set on failure.
 */
struct xsasl_server *xsasl_server_create(const char *service,
                                         const char *client_addr,
                                         xsasl_verify_fn verify, char *err,
                                         size_t errlen);
void xsasl_server_free(struct xsasl_server *s);
/* Put a test's lookup and report in place of auth's (before first). */
void xsasl_server_set_backend(struct xsasl_server *s, xsasl_lookup_fn lookup,
                              xsasl_report_fn report);

/* Space-separated mechanism names to advertise ("" when none is left). */
const char *xsasl_server_mechs(struct xsasl_server *s);

/*
 * Postfix's smtpd_sasl_security_options: which mechanisms a session may
 * use.  XSASL_SEC_NOANONYMOUS is always in effect (no anonymous login
 * is offered at all).
 */
#define XSASL_SEC_NOPLAINTEXT 0x01u   /* noplaintext: no PLAIN, LOGIN */
#define XSASL_SEC_NOACTIVE 0x02u      /* noactive */
#define XSASL_SEC_NODICTIONARY 0x04u  /* nodictionary */
#define XSASL_SEC_NOANONYMOUS 0x08u   /* noanonymous */
#define XSASL_SEC_FORWARD_SECRECY 0x10u /* forward_secrecy */
#define XSASL_SEC_MUTUAL_AUTH 0x20u   /* mutual_auth */

/*
 * Parse the option words (blank or comma separated, case-insensitive).
 * Returns 0 with *flags set, or -1 with err naming the unknown word.
 */
int xsasl_security_parse(const char *options, unsigned *flags, char *err,
                         size_t errlen);
/*
 * Restrict this session to the mechanisms the flags allow (from now on:
 * smtpd calls it again after STARTTLS with the TLS options).  The
 * mechanism list is recomputed and may become "".  0, or -1 with err.
 */
int xsasl_server_set_security(struct xsasl_server *s, unsigned flags,
                              char *err, size_t errlen);

/*
 * Start mechanism mech (case-insensitive).  initial is the base64 initial
 * response, "=" for an empty one (RFC 4954), NULL for none.  out gets the
 * base64 challenge (reset first; may be empty).  err gets a text for the
 * log on anything but XSASL_OK / XSASL_CONTINUE.
 */
enum xsasl_status xsasl_server_first(struct xsasl_server *s, const char *mech,
                                     const char *initial, struct buf *out,
                                     char *err, size_t errlen);
/* The client's base64 answer to the last challenge. */
enum xsasl_status xsasl_server_next(struct xsasl_server *s,
                                    const char *response, struct buf *out,
                                    char *err, size_t errlen);

/* After XSASL_OK: the canonical account name and what auth said of it. */
const char *xsasl_server_username(const struct xsasl_server *s);
const struct auth_result *xsasl_server_result(const struct xsasl_server *s);

#endif
