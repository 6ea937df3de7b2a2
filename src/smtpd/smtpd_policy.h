/*
 * smtpd_policy - the client side of Postfix's policy delegation protocol
 * (check_policy_service), as smtpd speaks it to an external policy server
 * or to posthorn's own greylist service.
 *
 * A request is "name=value\n" lines ended by an empty line; the answer is
 * "action=...\n\n".  One connection per policy service is kept per smtpd
 * process and reused for later requests (smtpd_policy_service_max_idle,
 * _max_ttl, _request_limit); every exchange (connect, send, answer) is
 * bounded as a whole by smtpd_policy_service_timeout, and a failed
 * exchange is tried again up to smtpd_policy_service_try_limit times,
 * smtpd_policy_service_retry_delay apart.  What the server answers is
 * checked like network input: an answer without action=, with an empty
 * or over-long action (SMTPD_POLICY_ACTION_MAX), with control characters
 * in it, or longer than SMTPD_POLICY_REPLY_MAX is an error.  Attributes
 * other than action= are ignored, as Postfix does.
 *
 * The caller (smtpd_check.c) turns the action into a decision exactly as
 * for an access table; when the server cannot be reached, times out or
 * answers garbage, the caller applies
 * smtpd_policy_service_default_action (451 4.3.5 Server configuration
 * problem) and a warning names the service and the cause.
 *
 * Interface notes for smtpd_check.c: smtpd_policy_query() keeps its
 * original signature.  Added: smtpd_policy_query_opts() for Postfix's
 * per-service overrides "check_policy_service { endpoint, timeout=10s,
 * ... }", smtpd_policy_service_ok() to validate an endpoint when the
 * restriction list is parsed, and the process-wide fields (request,
 * compatibility_level, mail_version) that this module fills in itself.
 */
#ifndef SMTPD_SMTPD_POLICY_H
#define SMTPD_SMTPD_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

/* Longest answer (all lines) and longest action text accepted. */
#define SMTPD_POLICY_REPLY_MAX 16384
#define SMTPD_POLICY_ACTION_MAX 2048

/*
 * The attributes Postfix sends (see Postfix SMTPD_POLICY_README).  Fields
 * that are NULL are sent as empty values ("name=\n"), as Postfix does;
 * numbers are sent as decimal (0 when unknown).  request=
 * smtpd_access_policy, compatibility_level and mail_version (from
 * main.cf) are added by this module.  A newline or carriage return
 * inside a value is sent as '?', so a value can never start a new
 * attribute.
 */
struct smtpd_policy_request {
    const char *protocol_state; /* CONNECT EHLO HELO MAIL RCPT DATA
                                   END-OF-MESSAGE VRFY ETRN */
    const char *protocol_name;  /* SMTP ESMTP */
    const char *helo_name;
    const char *queue_id;
    const char *sender;
    const char *recipient;
    long long recipient_count;
    const char *client_address;
    const char *client_name;
    const char *reverse_client_name;
    const char *instance; /* unique per transaction */
    const char *sasl_method;
    const char *sasl_username;
    const char *sasl_sender;
    long long size;
    const char *ccert_subject;
    const char *ccert_issuer;
    const char *ccert_fingerprint;
    const char *ccert_pubkey_fingerprint;
    const char *encryption_protocol;
    const char *encryption_cipher;
    int encryption_keysize;
    const char *etrn_domain;
    const char *stress;
    const char *client_port;
    const char *server_address;
    const char *server_port;
    const char *policy_context; /* NULL: smtpd_policy_service_policy_context */
};

/*
 * Ask one policy service.  service is "inet:host:port", "unix:path"
 * (a relative path is under $queue_directory, as in Postfix:
 * "unix:private/greylist") or "host:port"; an IPv6 host is written
 * [addr].  Returns 0 with the action's text (after "action=") in
 * *action, or -1 with err set to the cause (without the service name,
 * which the caller's warning gives); on -1 the connection is dropped and
 * the next query reconnects.
 */
int smtpd_policy_query(const char *service,
                       const struct smtpd_policy_request *req,
                       struct buf *action, char *err, size_t errlen);

/*
 * Per-service settings (Postfix 3.0's "{ endpoint, name=value, ... }"
 * form).  A negative field means the main.cf parameter of that name
 * (smtpd_policy_service_timeout etc.); times are in seconds.
 * SMTPD_POLICY_OPTS_INIT sets every field to "use main.cf".
 * default_action and policy_context are the caller's business (the
 * latter goes in the request).
 */
struct smtpd_policy_opts {
    long long timeout;
    long long max_idle;
    long long max_ttl;
    long long request_limit; /* 0 = no limit */
    long long try_limit;
    long long retry_delay;
};

#define SMTPD_POLICY_OPTS_INIT                                                 \
    {                                                                          \
        -1, -1, -1, -1, -1, -1                                                 \
    }

int smtpd_policy_query_opts(const char *service,
                            const struct smtpd_policy_opts *opts,
                            const struct smtpd_policy_request *req,
                            struct buf *action, char *err, size_t errlen);

/*
 * Is service a well-formed endpoint?  For start-up checks of
 * check_policy_service arguments: 0, or -1 with err naming the fault.
 * Does not connect.
 */
int smtpd_policy_service_ok(const char *service, char *err, size_t errlen);

/*
 * The request exactly as it goes on the wire (for tests and verbose
 * logging); appended to out.
 */
void smtpd_policy_format(const struct smtpd_policy_request *req,
                         struct buf *out);

/* Close every kept connection (end of the smtpd process). */
void smtpd_policy_close_all(void);

#endif
