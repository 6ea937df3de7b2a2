/*
 * backoff - retry times and queue lifetime.  See backoff.h.
 * Trusts nothing: negative or huge parameter values are clamped rather
 * than overflowing time_t.
 */
#include "global/backoff.h"

/* One year: more than any sane backoff, small enough never to overflow. */
#define BACKOFF_CAP (366LL * 24 * 3600)

static long long backoff_clamp(long long v)
{
    if (v < 0)
        return 0;
    if (v > BACKOFF_CAP)
        return BACKOFF_CAP;
    return v;
}

time_t backoff_next_retry(time_t now, time_t arrival, long long min_backoff,
                          long long max_backoff)
{
    long long age = (long long)now - (long long)arrival;
    long long lo = backoff_clamp(min_backoff);
    long long hi = backoff_clamp(max_backoff);
    long long delay;

    if (hi < lo)
        hi = lo;
    age = backoff_clamp(age);
    delay = age < lo ? lo : age > hi ? hi : age;
    return (time_t)((long long)now + delay);
}

bool backoff_expired(time_t now, time_t arrival, long long lifetime)
{
    if (lifetime <= 0)
        return true;
    return (long long)now - (long long)arrival > lifetime;
}
