/*
 * auth - internal interfaces of the authentication service.
 *
 *   auth.c          start-up, the event loop, the password database
 *   auth_conn.c     client connections: frames in, replies out, the timer
 *                   that holds back an answer
 *   auth_request.c  passdb_verify, passdb_lookup, passdb_report: checks,
 *                   outcome, failure log, how long to hold the answer
 *   auth_penalty.c  failed-login counts per client address and per user
 *   auth_hash.c     worker threads that run crypt(3)
 *
 * auth is one long-lived process (an event server, like qmgr): the only
 * one that reads the password database and the only keeper of the
 * failure counts, so the counts are exact without shared files.  Hash
 * checks cost milliseconds each and run in a few worker threads so one
 * slow hash or one delayed answer never holds up other clients.  Worker
 * threads see only a copy of one hash and one password and touch nothing
 * else; everything else happens in the main thread.
 */
#ifndef AUTH_AUTH_H
#define AUTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

#include "global/passdb.h"
#include "util/attr.h"
#include "util/buf.h"

struct event_base;

/* Largest request frame (sum of values) and buffered input per client. */
#define AUTH_FRAME_MAX 4096
#define AUTH_INPUT_MAX (4 * AUTH_FRAME_MAX)
/* Most clients at once; more are refused (each holds one descriptor). */
#define AUTH_CONN_MAX 1000
/* Longest client_addr and service accepted. */
#define AUTH_ADDR_MAX 64
#define AUTH_SERVICE_MAX 32
/* Longest reason a passdb_report may carry into the log. */
#define AUTH_REASON_MAX 200

/* Parameters, read once at start (auth restarts on reload). */
struct auth_params {
    long long failure_delay_ms;     /* auth_failure_delay */
    long long failure_max_delay_ms; /* auth_failure_max_delay */
    long long failure_window;       /* auth_failure_window, seconds */
    long long ipc_timeout;          /* ipc_timeout, seconds */
};

extern struct auth_params auth_params;
extern struct event_base *auth_base;

/* ---- auth.c ---- */

/*
 * The database, freshly checked for changes; NULL when passdb is not set
 * or no version of the file could ever be read (reason in err).
 */
struct passdb *auth_passdb(char *err, size_t errlen);

/* ---- auth_conn.c ---- */

struct auth_conn;

void auth_conn_accept(int fd);
/* Queue a reply frame, to be sent delay_ms after the request arrived. */
void auth_conn_reply(struct auth_conn *c, struct buf *frame,
                     long long delay_ms);
/* A hash check is running for c: keep c until auth_conn_hash_done(). */
void auth_conn_hash_start(struct auth_conn *c);
/* false: the client went away meanwhile and c is gone now. */
bool auth_conn_hash_done(struct auth_conn *c);
void auth_conn_free_all(void);
size_t auth_conn_count(void);

/* ---- auth_request.c ---- */

/* Handle one request frame of c; the reply goes out by auth_conn_reply. */
void auth_request(struct auth_conn *c, const struct attr_list *req);

/* ---- auth_penalty.c ---- */

/* Remembered failures, bounded; the oldest are dropped first. */
#define AUTH_PENALTY_MAX 10000

void auth_penalty_init(void);
void auth_penalty_free(void);
/* Recent failures of addr (may be NULL) or user, whichever is more. */
unsigned auth_penalty_get(const char *addr, const char *user);
/* Count one more failure for both; returns the new auth_penalty_get(). */
unsigned auth_penalty_fail(const char *addr, const char *user);
/* A successful login forgets both. */
void auth_penalty_clear(const char *addr, const char *user);
/* Forget counts older than auth_failure_window. */
void auth_penalty_expire(void);
/* How long to hold an answer after `failures` recent failures. */
long long auth_penalty_delay_ms(unsigned failures);

/* ---- auth_hash.c ---- */

struct auth_hash_job {
    enum passdb_scheme scheme;
    char *secret; /* copies, wiped and freed by the pool */
    char *password;
    size_t passlen;
    int result; /* passdb_verify(): 1, 0 or -1 */
    char err[256];
    void (*done)(struct auth_hash_job *job);   /* main thread */
    void (*cancel)(struct auth_hash_job *job); /* dropped at shutdown */
    void *ctx;
    TAILQ_ENTRY(auth_hash_job) entries;
};

void auth_hash_init(struct event_base *base);
/* Takes the job; done(job) runs later in the main thread, then frees it. */
void auth_hash_submit(struct auth_hash_job *job);
/* Stop the threads; jobs not yet done get cancel() instead of done(). */
void auth_hash_shutdown(void);

#endif
