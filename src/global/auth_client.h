/*
 * auth_client - how smtpd, pop3d, imapd and the recipient resolver ask
 * the auth service (src/auth) about accounts.  They never read the
 * password database themselves.
 *
 * One connection to $queue_directory/private/auth per process, opened at
 * the first request and kept; a request on a connection that turns out
 * to be dead (auth restarted) is sent once more on a fresh one.  Every
 * wait is bounded: auth_failure_max_delay (auth may hold back an answer
 * that long) plus AUTH_CLIENT_SLACK seconds.  The protocol is in
 * mail_proto.h.  What auth answers is checked like network input.
 *
 * Where the mail of an account goes is not auth's business: callers ask
 * resolve_mailbox() (global/resolve.h), which asks auth in turn.
 */
#ifndef GLOBAL_AUTH_CLIENT_H
#define GLOBAL_AUTH_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "global/passdb.h"

#define AUTH_SERVICE "auth"

/* Return values of auth_verify and auth_lookup. */
#define AUTH_OK 0
#define AUTH_FAIL                                                              \
    1                      /* bad password, unknown user (lookup: not          \
                              found), login disabled */
#define AUTH_TEMPFAIL (-1) /* no answer, passdb unreadable: try later */

/* Longest user name and password a client may send. */
#define AUTH_USER_MAX PASSDB_USER_MAX
#define AUTH_PASSWORD_MAX PASSDB_PASSWORD_MAX
/* Seconds added to auth_failure_max_delay for the answer timeout. */
#define AUTH_CLIENT_SLACK 30

struct auth_result {
    char user[AUTH_USER_MAX + 1];   /* canonical (lower case) name */
    long long uid;                  /* -1: not in the database */
    long long gid;                  /* -1: not in the database */
    char home[PASSDB_HOME_MAX + 1]; /* "" when none */
    /* auth_lookup with want_secret, for a {PLAIN} account only: */
    bool has_password;
    char password[AUTH_PASSWORD_MAX + 1];
};

/*
 * Check a password.  client_addr ("1.2.3.4", may be "" or NULL) and
 * service ("smtp", "pop3", "imap") are for auth's failure delay and log.
 * On AUTH_OK res holds the account; on AUTH_FAIL / AUTH_TEMPFAIL err
 * holds auth's reason (never the password).  A wrong password may take
 * seconds to be answered: auth slows down repeated failures.
 */
int auth_verify(const char *user, const char *password, const char *client_addr,
                const char *service, struct auth_result *res, char *err,
                size_t errlen);

/*
 * Look an account up without a password (recipient checks; SASL
 * mechanisms that need the secret).  want_secret asks for the plain
 * password, which auth gives only for {PLAIN} accounts.  AUTH_OK found,
 * AUTH_FAIL no such account, AUTH_TEMPFAIL with err set.
 */
int auth_lookup(const char *user, bool want_secret, struct auth_result *res,
                char *err, size_t errlen);

/*
 * Tell auth the outcome of a login it did not check itself (SCRAM: the
 * client's proof was compared here with a looked-up secret), so that it
 * counts, logs (with client_addr, service and reason, a short text) and
 * delays it like a verify.  Waits for auth's answer, which a failure may
 * hold back for seconds.  AUTH_OK recorded, AUTH_TEMPFAIL with err set.
 */
int auth_report(const char *user, bool success, const char *reason,
                const char *client_addr, const char *service, char *err,
                size_t errlen);

/* Wipe a result (it may hold a password). */
void auth_result_clear(struct auth_result *res);

/* Close the kept connection (tests; a process about to drop privileges). */
void auth_client_disconnect(void);

#endif
