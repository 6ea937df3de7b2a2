/*
 * greylist - internal interfaces of the built-in greylisting policy
 * service.
 *
 *   greylist.c        start-up, one client connection: policy requests
 *                     in, actions out (Postfix's policy protocol)
 *   greylist_key.c    what a triplet is: the client network, the sender
 *                     with its variable parts masked, the recipient
 *   greylist_db.c     the LMDB state: triplets, passes per network
 *                     (auto-allow), the incremental clean-up
 *
 * Every greylist process (a single-client worker, as many as master
 * starts) opens the same LMDB file; each decision is one write
 * transaction, so concurrent processes see one consistent state.
 */
#ifndef GREYLIST_GREYLIST_H
#define GREYLIST_GREYLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "util/buf.h"

/* Request bounds: one line, attributes per request, bytes per request. */
#define GREYLIST_LINE_MAX 4096
#define GREYLIST_ATTR_MAX 100
#define GREYLIST_REQUEST_MAX (64 * 1024)

/* Longest triplet key kept readable; longer ones are stored hashed. */
#define GREYLIST_KEY_MAX 480

/* ---- greylist_key.c ---- */

/*
 * The client network of a numeric address: "192.0.2.0/24",
 * "2001:db8::/64" (prefix lengths greylist_ipv4_prefix/_ipv6_prefix).
 * An IPv4-mapped IPv6 address counts as IPv4.  Returns 0 or -1 (not an
 * address).
 */
int greylist_client_net(const char *addr, int v4_prefix, int v6_prefix,
                        char *out, size_t outlen);

/*
 * The sender as the triplet holds it: lower case, "<>" for the null
 * sender, the address extension (from the first of `delimiters`, "+"
 * when empty) removed and every run of digits in the local part turned
 * into one "#", so per-message sender addresses (VERP, BATV "prvs=...")
 * still give one triplet.
 */
void greylist_sender_key(const char *sender, const char *delimiters,
                         struct buf *out);

/* The triplet's database key (binary; see greylist_db.c). */
void greylist_triplet_key(const char *net, const char *sender,
                          const char *recipient, struct buf *out);

/* ---- greylist_db.c ---- */

struct greylist_db;

struct greylist_rules {
    long long delay;        /* greylist_delay */
    long long retry_window; /* greylist_retry_window */
    long long max_age;      /* greylist_max_age */
    long long auto_allow;   /* greylist_auto_allow (0: off) */
};

enum greylist_verdict {
    GREYLIST_DEFER_NEW,   /* first try (or a retry that came too late) */
    GREYLIST_DEFER_EARLY, /* retried before the delay was over */
    GREYLIST_PASS_FIRST,  /* retried after the delay: passes from now on */
    GREYLIST_PASS,        /* a triplet that passed before */
    GREYLIST_PASS_AUTO,   /* the client network is auto-allowed */
};

struct greylist_result {
    enum greylist_verdict verdict;
    long long wait;    /* DEFER_*: seconds until a retry may pass */
    long long delayed; /* PASS_FIRST: seconds since the first try */
};

/*
 * Open (creating it and its directory) the database file at path.
 * Returns NULL with err set.
 */
struct greylist_db *greylist_db_open(const char *path, size_t map_size,
                                     char *err, size_t errlen);
void greylist_db_close(struct greylist_db *db);

/*
 * Decide about one triplet at time now (wall clock seconds) and record
 * the try.  net is the client network (auto-allow counts per network).
 * Returns 0 with *res set, or -1 with err set (the database failed).
 */
int greylist_db_check(struct greylist_db *db, const struct greylist_rules *r,
                      const char *net, const struct buf *key, time_t now,
                      struct greylist_result *res, char *err, size_t errlen);

/*
 * One bounded step of the clean-up of expired entries, if one is due
 * (the sweep position is stored in the database, so whichever process
 * runs next goes on where the last one stopped).  Returns the number of
 * entries removed, or -1 with err set.
 */
long greylist_db_clean(struct greylist_db *db, const struct greylist_rules *r,
                       time_t now, char *err, size_t errlen);

#endif
