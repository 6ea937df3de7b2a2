/*
 * backoff - when to retry a deferred message and when to give up, the
 * Postfix way: the next attempt is
 *
 *     now + clamp(time in queue, minimal_backoff_time, maximal_backoff_time)
 *
 * so retries spread out roughly exponentially with the message's age
 * instead of an attempt counter that would have to be stored.  A message
 * older than maximal_queue_lifetime has its temporary failures turned
 * into permanent ones (status=expired); a lifetime of 0 means "try once".
 *
 * Pure functions of their arguments (times in seconds); no I/O.
 */
#ifndef GLOBAL_BACKOFF_H
#define GLOBAL_BACKOFF_H

#include <stdbool.h>
#include <time.h>

/*
 * Next retry time for a message that arrived at `arrival`.  A minimum
 * larger than the maximum wins (the delay is never below the minimum); an
 * arrival in the future counts as age 0.
 */
time_t backoff_next_retry(time_t now, time_t arrival, long long min_backoff,
                          long long max_backoff);

/* true when a temporary failure now must become a permanent one. */
bool backoff_expired(time_t now, time_t arrival, long long lifetime);

#endif
