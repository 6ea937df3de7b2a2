/*
 * auth_penalty - how many logins failed recently, per client address and
 * per user, and how long auth holds back its next answer for them.
 *
 * The rule (docs/accounts.md): after n recent failures of an address or
 * a user, every answer for that address or user waits
 * min(auth_failure_delay * 2^(n-1), auth_failure_max_delay) -- a correct
 * password too, or a client could drop the connection after a few
 * milliseconds and take silence for "wrong".  A failure itself waits for
 * the count including it, so the first wrong password already costs
 * auth_failure_delay.  A successful login forgets both counts; counts
 * also lapse auth_failure_window after their last failure.
 *
 * Keys are client addresses and user names from the network, so the
 * table is bounded (AUTH_PENALTY_MAX): entries are kept in order of their
 * last failure and the oldest go first, which is also the expiry order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "auth/auth.h"
#include "util/htable.h"
#include "util/mem.h"

/* Counting stops here; the delay has long reached its cap. */
#define AUTH_PENALTY_COUNT_MAX 1000

struct auth_penalty {
    char *key; /* "a:" address or "u:" user */
    unsigned count;
    long long last; /* monotonic seconds of the last failure */
    TAILQ_ENTRY(auth_penalty) order;
};

static struct htable *auth_penalty_table;
TAILQ_HEAD(auth_penalty_list, auth_penalty);
static struct auth_penalty_list auth_penalty_order =
    TAILQ_HEAD_INITIALIZER(auth_penalty_order);

static long long auth_penalty_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec;
}

void auth_penalty_init(void)
{
    auth_penalty_table = htable_new(256);
}

static void auth_penalty_remove(struct auth_penalty *p)
{
    htable_del(auth_penalty_table, p->key);
    TAILQ_REMOVE(&auth_penalty_order, p, order);
    free(p->key);
    free(p);
}

void auth_penalty_free(void)
{
    struct auth_penalty *p;

    while ((p = TAILQ_FIRST(&auth_penalty_order)) != NULL)
        auth_penalty_remove(p);
    htable_free(auth_penalty_table, NULL);
    auth_penalty_table = NULL;
}

static bool auth_penalty_expired(const struct auth_penalty *p, long long now)
{
    return now - p->last >= auth_params.failure_window;
}

void auth_penalty_expire(void)
{
    long long now = auth_penalty_now();
    struct auth_penalty *p;

    while ((p = TAILQ_FIRST(&auth_penalty_order)) != NULL &&
           auth_penalty_expired(p, now))
        auth_penalty_remove(p);
}

static char *auth_penalty_key(const char *kind, const char *name)
{
    return xasprintf("%s:%s", kind, name);
}

/* The live entry for kind:name, or NULL. */
static struct auth_penalty *auth_penalty_find(const char *kind,
                                              const char *name)
{
    char *key;
    struct auth_penalty *p;

    if (name == NULL || *name == 0)
        return NULL;
    key = auth_penalty_key(kind, name);
    p = htable_get(auth_penalty_table, key);
    free(key);
    if (p != NULL && auth_penalty_expired(p, auth_penalty_now())) {
        auth_penalty_remove(p);
        p = NULL;
    }
    return p;
}

static unsigned auth_penalty_count(const char *kind, const char *name)
{
    struct auth_penalty *p = auth_penalty_find(kind, name);

    return p != NULL ? p->count : 0;
}

unsigned auth_penalty_get(const char *addr, const char *user)
{
    unsigned a = auth_penalty_count("a", addr);
    unsigned u = auth_penalty_count("u", user);

    return a > u ? a : u;
}

static void auth_penalty_bump(const char *kind, const char *name)
{
    struct auth_penalty *p = auth_penalty_find(kind, name);

    if (name == NULL || *name == 0)
        return;
    if (p == NULL) {
        if (htable_count(auth_penalty_table) >= AUTH_PENALTY_MAX)
            auth_penalty_remove(TAILQ_FIRST(&auth_penalty_order));
        p = xcalloc(1, sizeof(*p));
        p->key = auth_penalty_key(kind, name);
        htable_put(auth_penalty_table, p->key, p);
    } else {
        TAILQ_REMOVE(&auth_penalty_order, p, order);
    }
    if (p->count < AUTH_PENALTY_COUNT_MAX)
        p->count++;
    p->last = auth_penalty_now();
    TAILQ_INSERT_TAIL(&auth_penalty_order, p, order);
}

unsigned auth_penalty_fail(const char *addr, const char *user)
{
    auth_penalty_bump("a", addr);
    auth_penalty_bump("u", user);
    return auth_penalty_get(addr, user);
}

void auth_penalty_clear(const char *addr, const char *user)
{
    struct auth_penalty *p;

    if ((p = auth_penalty_find("a", addr)) != NULL)
        auth_penalty_remove(p);
    if ((p = auth_penalty_find("u", user)) != NULL)
        auth_penalty_remove(p);
}

long long auth_penalty_delay_ms(unsigned failures)
{
    long long delay = auth_params.failure_delay_ms;

    if (failures == 0 || delay == 0)
        return 0;
    for (unsigned i = 1;
         i < failures && delay < auth_params.failure_max_delay_ms; i++)
        delay *= 2;
    return delay < auth_params.failure_max_delay_ms
               ? delay
               : auth_params.failure_max_delay_ms;
}
