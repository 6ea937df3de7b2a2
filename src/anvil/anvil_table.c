/*
 * anvil_table - the counters per ident ("smtp:192.0.2.1"), with Postfix
 * anvil's rules:
 *
 *   - count is the number of connections open now; connect adds one,
 *     disconnect takes one away (never below zero).
 *   - rate, message and recipient count events in one shared window of
 *     anvil_rate_time_unit seconds that starts with the first event after
 *     the previous window ran out (Postfix: "start + unit < now" resets
 *     all three), so "rate" is "events in the current time unit".
 *   - an ident without connections is forgotten once it has been idle for
 *     a whole time unit, so its window has ended too; nothing of value
 *     is lost.
 *
 * Idents come from smtpd (client addresses off the network), so the table
 * is bounded: when it holds `max` idents the one idle longest is dropped
 * to make room, and when every ident holds a connection the event is
 * refused (-1) and the caller answers "fail" (smtpd then does not limit:
 * a counting service must not turn into a denial of service).  Idle
 * idents sit in a list ordered by their last event, which makes both the
 * expiry and the eviction O(1) per ident.
 *
 * Peak values since the last statistics lines are kept with the ident and
 * the (wall clock) time they were reached.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "anvil/anvil.h"
#include "util/htable.h"
#include "util/log.h"
#include "util/mem.h"

struct anvil_entry {
    char *ident;
    int count;
    int rate;
    int message;
    int recipient;
    long long start; /* of the rate window */
    long long last;  /* last event */
    bool idle;       /* count == 0: in the idle list */
    TAILQ_ENTRY(anvil_entry) idle_order;
};

TAILQ_HEAD(anvil_idle_list, anvil_entry);

/* One peak value: how high, for whom, when. */
struct anvil_peak {
    int value;
    char ident[ANVIL_IDENT_MAX + 1];
    time_t when;
};

struct anvil_table {
    struct htable *entries;
    struct anvil_idle_list idle;
    long long time_unit;
    size_t max;
    size_t evicted;
    struct anvil_peak max_count, max_rate, max_message, max_recipient;
    size_t max_size;
    time_t max_size_when;
};

struct anvil_table *anvil_table_new(long long time_unit, size_t max)
{
    struct anvil_table *t = xcalloc(1, sizeof(*t));

    t->entries = htable_new(256);
    TAILQ_INIT(&t->idle);
    t->time_unit = time_unit;
    t->max = max > 0 ? max : 1;
    return t;
}

static void anvil_entry_remove(struct anvil_table *t, struct anvil_entry *e)
{
    if (e->idle)
        TAILQ_REMOVE(&t->idle, e, idle_order);
    htable_del(t->entries, e->ident);
    free(e->ident);
    free(e);
}

/* htable_free() callback: entries still holding connections. */
static void anvil_entry_free(void *value)
{
    struct anvil_entry *e = value;

    free(e->ident);
    free(e);
}

void anvil_table_free(struct anvil_table *t)
{
    struct anvil_entry *e;

    if (t == NULL)
        return;
    while ((e = TAILQ_FIRST(&t->idle)) != NULL)
        anvil_entry_remove(t, e);
    htable_free(t->entries, anvil_entry_free);
    free(t);
}

size_t anvil_table_size(const struct anvil_table *t)
{
    return htable_count(t->entries);
}

size_t anvil_table_take_evicted(struct anvil_table *t)
{
    size_t n = t->evicted;

    t->evicted = 0;
    return n;
}

static bool anvil_entry_expired(const struct anvil_table *t,
                                const struct anvil_entry *e, long long now)
{
    return e->idle && now - e->last >= t->time_unit;
}

void anvil_table_expire(struct anvil_table *t, long long now)
{
    struct anvil_entry *e;

    while ((e = TAILQ_FIRST(&t->idle)) != NULL &&
           anvil_entry_expired(t, e, now))
        anvil_entry_remove(t, e);
}

/* The entry moves to the end of the idle list (or leaves it). */
static void anvil_entry_touch(struct anvil_table *t, struct anvil_entry *e,
                              long long now)
{
    if (e->idle)
        TAILQ_REMOVE(&t->idle, e, idle_order);
    e->idle = e->count == 0;
    if (e->idle)
        TAILQ_INSERT_TAIL(&t->idle, e, idle_order);
    e->last = now;
}

static void anvil_peak_note(struct anvil_peak *p, int value, const char *ident)
{
    if (value <= p->value)
        return;
    p->value = value;
    snprintf(p->ident, sizeof(p->ident), "%s", ident);
    p->when = time(NULL);
}

/* The entry for ident, made if need be; NULL when the table is full. */
static struct anvil_entry *anvil_entry_get(struct anvil_table *t,
                                           const char *ident, long long now)
{
    struct anvil_entry *e = htable_get(t->entries, ident);

    if (e != NULL) {
        if (anvil_entry_expired(t, e, now)) {
            anvil_entry_remove(t, e);
            e = NULL;
        } else {
            return e;
        }
    }
    if (htable_count(t->entries) >= t->max) {
        anvil_table_expire(t, now);
        if (htable_count(t->entries) >= t->max) {
            struct anvil_entry *oldest = TAILQ_FIRST(&t->idle);

            if (oldest == NULL)
                return NULL;
            anvil_entry_remove(t, oldest);
            t->evicted++;
        }
    }
    e = xcalloc(1, sizeof(*e));
    e->ident = xstrdup(ident);
    e->start = now;
    e->last = now;
    htable_put(t->entries, e->ident, e);
    if (htable_count(t->entries) > t->max_size) {
        t->max_size = htable_count(t->entries);
        t->max_size_when = time(NULL);
    }
    return e;
}

/* Postfix's ANVIL_REMOTE_INCR_RATE: a new window once the old one ended. */
static void anvil_entry_window(struct anvil_table *t, struct anvil_entry *e,
                               long long now)
{
    if (e->start + t->time_unit < now) {
        e->start = now;
        e->rate = 0;
        e->message = 0;
        e->recipient = 0;
    }
}

static void anvil_incr(int *v)
{
    if (*v < INT_MAX)
        (*v)++;
}

static void anvil_entry_counts(const struct anvil_entry *e,
                               struct anvil_counts *out)
{
    out->count = e->count;
    out->rate = e->rate;
    out->message = e->message;
    out->recipient = e->recipient;
}

int anvil_table_connect(struct anvil_table *t, const char *ident, long long now,
                        struct anvil_counts *out)
{
    struct anvil_entry *e = anvil_entry_get(t, ident, now);

    if (e == NULL)
        return -1;
    anvil_entry_window(t, e, now);
    anvil_incr(&e->count);
    anvil_incr(&e->rate);
    anvil_entry_touch(t, e, now);
    anvil_peak_note(&t->max_count, e->count, ident);
    anvil_peak_note(&t->max_rate, e->rate, ident);
    anvil_entry_counts(e, out);
    return 0;
}

int anvil_table_message(struct anvil_table *t, const char *ident, long long now,
                        struct anvil_counts *out)
{
    struct anvil_entry *e = anvil_entry_get(t, ident, now);

    if (e == NULL)
        return -1;
    anvil_entry_window(t, e, now);
    anvil_incr(&e->message);
    anvil_entry_touch(t, e, now);
    anvil_peak_note(&t->max_message, e->message, ident);
    anvil_entry_counts(e, out);
    return 0;
}

int anvil_table_recipient(struct anvil_table *t, const char *ident,
                          long long now, struct anvil_counts *out)
{
    struct anvil_entry *e = anvil_entry_get(t, ident, now);

    if (e == NULL)
        return -1;
    anvil_entry_window(t, e, now);
    anvil_incr(&e->recipient);
    anvil_entry_touch(t, e, now);
    anvil_peak_note(&t->max_recipient, e->recipient, ident);
    anvil_entry_counts(e, out);
    return 0;
}

void anvil_table_disconnect(struct anvil_table *t, const char *ident,
                            long long now)
{
    struct anvil_entry *e = htable_get(t->entries, ident);

    if (e == NULL || e->count == 0)
        return;
    e->count--;
    anvil_entry_touch(t, e, now);
}

void anvil_table_lookup(struct anvil_table *t, const char *ident, long long now,
                        struct anvil_counts *out)
{
    struct anvil_entry *e = htable_get(t->entries, ident);

    memset(out, 0, sizeof(*out));
    if (e == NULL || anvil_entry_expired(t, e, now))
        return;
    out->count = e->count;
    /* A window that ran out counts nothing any more. */
    if (e->start + t->time_unit >= now) {
        out->rate = e->rate;
        out->message = e->message;
        out->recipient = e->recipient;
    }
}

/* Postfix writes the time as ctime() does, without weekday and year. */
static const char *anvil_when(time_t when, char *buf, size_t size)
{
    struct tm tm;

    if (localtime_r(&when, &tm) == NULL ||
        strftime(buf, size, "%b %e %H:%M:%S", &tm) == 0)
        snprintf(buf, size, "%lld", (long long)when);
    return buf;
}

static void anvil_peak_log(const struct anvil_table *t, const char *what,
                           const struct anvil_peak *p, bool is_rate)
{
    char when[64];

    if (p->value == 0)
        return;
    if (is_rate)
        log_info("statistics: max %s %d/%llds for (%s) at %s", what, p->value,
                 t->time_unit, p->ident,
                 anvil_when(p->when, when, sizeof(when)));
    else
        log_info("statistics: max %s %d for (%s) at %s", what, p->value,
                 p->ident, anvil_when(p->when, when, sizeof(when)));
}

void anvil_table_log_stats(struct anvil_table *t)
{
    char when[64];

    anvil_peak_log(t, "connection rate", &t->max_rate, true);
    anvil_peak_log(t, "connection count", &t->max_count, false);
    anvil_peak_log(t, "message rate", &t->max_message, true);
    anvil_peak_log(t, "recipient rate", &t->max_recipient, true);
    if (t->max_size > 0)
        log_info("statistics: max cache size %zu at %s", t->max_size,
                 anvil_when(t->max_size_when, when, sizeof(when)));
    memset(&t->max_count, 0, sizeof(t->max_count));
    memset(&t->max_rate, 0, sizeof(t->max_rate));
    memset(&t->max_message, 0, sizeof(t->max_message));
    memset(&t->max_recipient, 0, sizeof(t->max_recipient));
    t->max_size = 0;
}
