/*
 * anvil_client - how smtpd asks the anvil service (src/anvil) to count
 * connections, messages and recipients per client, for
 * smtpd_client_connection_count_limit, smtpd_client_connection_rate_limit,
 * smtpd_client_message_rate_limit and smtpd_client_recipient_rate_limit.
 *
 * One connection to $queue_directory/private/anvil per process, opened at
 * the first request and kept; requests are attribute frames (util/attr)
 * as in Postfix's anvil protocol: request=connect|disconnect|message|
 * recipient, ident=SERVICE:CLIENT_ADDRESS; answers status, count, rate.
 * Every wait is bounded (ANVIL_CLIENT_TIMEOUT_MS per exchange).  A request
 * on a kept connection that turns out to be dead (anvil restarted) is
 * sent once more on a new one.  When anvil cannot be reached the caller
 * logs a warning and does not limit (Postfix does the same): rate limits
 * are a defence against floods, not an accounting that may lose mail.
 *
 * anvil ties the connections a client reports to the client's own
 * connection to it: when the smtpd process exits (or its connection to
 * anvil breaks), anvil counts them as ended.  So a disconnect need not be
 * sent by a process that is about to exit, and one sent after a
 * reconnect is harmlessly ignored.
 */
#ifndef GLOBAL_ANVIL_CLIENT_H
#define GLOBAL_ANVIL_CLIENT_H

#include <stddef.h>

#define ANVIL_SERVICE "anvil"

/* Longest wait for anvil's answer (connect included). */
#define ANVIL_CLIENT_TIMEOUT_MS 10000

/*
 * ident is "service:address" (e.g. "smtp:192.0.2.1").  On success 0 and
 * the counters as they are after this event: *count (concurrent
 * connections, connect only) and *rate (events in the current
 * anvil_rate_time_unit).  -1 with err set when anvil did not answer.
 */
int anvil_connect(const char *ident, int *count, int *rate, char *err,
                  size_t errlen);
int anvil_disconnect(const char *ident, char *err, size_t errlen);
int anvil_message(const char *ident, int *rate, char *err, size_t errlen);
int anvil_recipient(const char *ident, int *rate, char *err, size_t errlen);

/* Close the kept connection (tests; a process that exits need not). */
void anvil_client_close(void);

#endif
