/*
 * smtpd_policy - the client side of Postfix's policy delegation protocol
 * (check_policy_service), as smtpd speaks it to an external policy server
 * or to posthorn's own greylist service.
 *
 * A request is "name=value\n" lines ended by an empty line; the answer is
 * "action=...\n\n".  One connection per policy service is kept per smtpd
 * process and reused for later requests (smtpd_policy_service_max_idle,
 * _max_ttl, _request_limit); every exchange is bounded by
 * smtpd_policy_service_timeout.  What the server answers is checked like
 * network input.
 *
 * The caller (smtpd_check.c) turns the action into a decision exactly as
 * for an access table; when the server cannot be reached, times out or
 * answers garbage, the caller applies
 * smtpd_policy_service_default_action (451 4.3.5 Server configuration
 * problem) and a warning names the service and the cause.
 */
#ifndef SMTPD_SMTPD_POLICY_H
#define SMTPD_SMTPD_POLICY_H

#include <stddef.h>

#include "util/buf.h"

/*
 * The attributes Postfix sends (see Postfix SMPD_POLICY_README).  Fields
 * that are NULL are sent as empty values ("name=\n"), as Postfix does.
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
    const char *policy_context; /* smtpd_policy_service_policy_context */
};

/*
 * Ask one policy service.  service is "inet:host:port", "unix:path"
 * (a relative path is under $queue_directory, as in Postfix:
 * "unix:private/greylist") or "host:port".  Returns 0 with the action's
 * text (after "action=") in *action, or -1 with err set; on -1 the
 * connection is dropped and the next query reconnects.
 */
int smtpd_policy_query(const char *service,
                       const struct smtpd_policy_request *req,
                       struct buf *action, char *err, size_t errlen);

/* Close every kept connection (end of the smtpd process). */
void smtpd_policy_close_all(void);

#endif
