/*
 * imapd - internal interfaces of the IMAP server.
 *
 *   imapd.c           start-up, parameters, the event loop, accepting
 *                     clients, telling master when this process is full
 *   imap_conn.c       one client's bytes: non-blocking socket and TLS,
 *                     input and output buffers allocated on demand
 *   imap_session.c    the session: framing commands, dispatch by the
 *                     command table, continuation of suspended commands,
 *                     timeouts, untagged updates of the selected mailbox
 *   imap_notify.c     one inotify descriptor per process for IDLE
 *   imap_reply.c      responses: tagged, untagged, strings and literals
 *   imap_cmd.c        the command table
 *   imap_cmd_any.c    CAPABILITY NOOP LOGOUT ID ENABLE STARTTLS
 *   imap_auth.c       LOGIN AUTHENTICATE, and the login thread
 *   imap_cmd_auth.c   SELECT EXAMINE CREATE DELETE RENAME SUBSCRIBE
 *                     UNSUBSCRIBE STATUS APPEND NAMESPACE IDLE
 *   imap_list.c       LIST LSUB
 *   imap_cmd_selected.c  CHECK CLOSE UNSELECT EXPUNGE STORE COPY MOVE UID
 *   imap_fetch.c      FETCH
 *   imap_search.c     SEARCH
 *   imap_parse*.c     the grammar (pure; imap_parse.h)
 *   imap_store*, imap_index*, imap_maildir*, imap_mime*  the message
 *                     store and MIME (imap_store.h, imap_mime.h)
 *
 * Many sessions share one process and one libevent loop: nothing in the
 * main thread blocks on a client.  Only logins do block (on the auth
 * service, which may hold back a failed attempt for seconds), so they
 * run in a login thread and come back through a notification pipe.
 * Store calls (file system and LMDB) run in the main thread: they are
 * short, local and bounded.
 */
#ifndef IMAPD_IMAPD_H
#define IMAPD_IMAPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include "global/sasl_server.h"
#include "imapd/imap_parse.h"
#include "imapd/imap_pool.h"
#include "imapd/imap_store.h"
#include "util/buf.h"

struct event_base;
struct event;
struct tls_ctx;
struct tls_conn;

/* A command producing much output (FETCH) sends it once this much is
 * queued, so the client can work while the rest is made. */
#define IMAP_OUT_FLUSH (32 * 1024)
/* Output queued beyond this suspends a command until it drains ... */
#define IMAP_OUT_HIGH (256 * 1024)
/* ... below this. */
#define IMAP_OUT_LOW (64 * 1024)
/* Bytes read from a socket at a time. */
#define IMAP_READ_CHUNK 16384
/* An empty buffer keeps its memory only up to this size. */
#define IMAP_BUF_KEEP 4096
/* Longest client address text. */
#define IMAP_ADDR_MAX 64
/* A selected mailbox quiet for this long between commands hibernates
 * (its LMDB index is let go); in IDLE it does at once. */
#define IMAP_HIBERNATE_SECS 5

/* ------------------------------------------------------------ params */

struct imapd_params {
    const char *banner;
    long long client_limit;
    long long hard_error_limit;
    long long login_timeout;  /* seconds */
    long long timeout;        /* seconds */
    size_t max_line;
    size_t message_limit;     /* APPEND */
    bool tls_auth_only;
    bool tls_wrapper;
    int tls_level;            /* IMAP_TLS_* */
};

#define IMAP_TLS_NONE 0
#define IMAP_TLS_MAY 1
#define IMAP_TLS_ENCRYPT 2

extern struct imapd_params imapd_params;
extern struct event_base *imapd_base;
extern struct tls_ctx *imapd_tls; /* NULL: no TLS configured */

/* imapd.c: a session started or ended (process-full bookkeeping). */
void imapd_session_count(int delta);

/* ------------------------------------------------------------ conn */

enum imap_conn_state {
    IMAP_CONN_PLAIN,
    IMAP_CONN_HANDSHAKE, /* TLS handshake in progress */
    IMAP_CONN_TLS,
};

struct imap_conn {
    int fd;
    struct event *ev; /* read and/or write, as wanted */
    short ev_flags;   /* what ev is added for */
    enum imap_conn_state state;
    struct tls_conn *tls;
    bool tls_read_wants_write; /* SSL_read asked for POLLOUT */
    bool eof;                  /* peer closed or I/O error */
    struct buf in;             /* bytes read, not yet used */
    struct buf out;            /* bytes to send */
    size_t out_off;            /* sent part of out */
};

struct imap_session;
struct imap_watch_link;

/* Set up a connection on fd (non-blocking); events go to the session. */
void imap_conn_init(struct imap_conn *c, int fd, struct imap_session *s);
void imap_conn_free(struct imap_conn *c);
/* Re-arm the event for what the session needs now. */
void imap_conn_update(struct imap_session *s);
/* Start a server-side TLS handshake (STARTTLS, or at once for 993). */
int imap_conn_start_tls(struct imap_session *s, char *err, size_t errlen);
/* Try to send what is queued; false on a write error (c->eof set). */
bool imap_conn_flush(struct imap_conn *c);
size_t imap_conn_pending_out(const struct imap_conn *c);
/* Drop empty buffers' memory (an idle session keeps none). */
void imap_conn_trim(struct imap_conn *c);

/* ------------------------------------------------------------ session */

enum imap_state {
    IMAP_STATE_NOTAUTH = 1,
    IMAP_STATE_AUTH = 2,
    IMAP_STATE_SELECTED = 4,
    IMAP_STATE_LOGOUT = 8,
};

/* What the session does with input right now. */
enum imap_mode {
    IMAP_MODE_COMMAND,    /* reading commands */
    IMAP_MODE_SASL,       /* reading an AUTHENTICATE response line */
    IMAP_MODE_IDLE,       /* reading DONE */
    IMAP_MODE_BUSY,       /* a command runs or waits (login thread,
                             output drain): input waits */
    IMAP_MODE_STARTTLS,   /* flushing the OK, then handshake */
    IMAP_MODE_CLOSE,      /* flushing, then closing */
};

/* A command that has to wait for output to drain, then go on. */
typedef void (*imap_resume_fn)(struct imap_session *s);

struct imap_session {
    struct imap_conn conn;
    enum imap_state state;
    enum imap_mode mode;
    char addr[IMAP_ADDR_MAX]; /* client address, for logs and auth */
    bool loopback;
    unsigned bad_commands;
    bool enabled_condstore;   /* ENABLE CONDSTORE or a CONDSTORE command */
    bool gone;                /* client gone; freed when the login thread
                                 hands back its job */
    bool auth_job;            /* the login thread has a job of ours */
    size_t cont_acked;        /* input offset whose literal got "+" */
    bool skip_line;           /* dropping the rest of an over-long line */
    bool processing;          /* inside imap_session_process() */
    bool wrapper;             /* TLS from the first byte (993) */
    time_t last_active;       /* end of the last command */

    /* The running command (valid in MODE_BUSY/SASL/IDLE). */
    struct imap_pool pool;
    char *tag;
    const struct imap_cmd_def *cmd;
    bool uid_cmd;             /* "UID FETCH" etc. */
    imap_resume_fn resume;
    void *cmd_state;          /* the command's own data, in pool */

    /* Login. */
    struct xsasl_server *sasl; /* owned by the login thread */
    char *user;
    struct imap_store *store;

    /* Selected mailbox. */
    struct imap_mailbox *mb;
    bool idle_watching;
    struct imap_watch_link *watch_links[2]; /* imap_notify.c */

    LIST_ENTRY(imap_session) entries;
};

void imap_session_accept(int fd, bool wrapper);
void imap_session_free_all(const char *bye);
size_t imap_session_count(void);
/* Called by imap_conn when input arrived, output drained, or EOF. */
void imap_session_on_input(struct imap_session *s);
void imap_session_on_drain(struct imap_session *s);
void imap_session_on_error(struct imap_session *s);
/* The TLS handshake ended (ok or not). */
void imap_session_on_tls(struct imap_session *s, bool ok, const char *err);

/* End the running command: sync updates, tagged reply, next command. */
void imap_cmd_done(struct imap_session *s, const char *status,
                   const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Suspend the running command until the output drains; then resume(s). */
void imap_cmd_suspend(struct imap_session *s, imap_resume_fn resume);
/* Send untagged updates of the selected mailbox (expunges allowed?). */
void imap_session_sync(struct imap_session *s, bool expunge);
/* The login thread is done with s: false when s was freed meanwhile. */
bool imap_session_job_done(struct imap_session *s);
/* Say BYE and close after the output is sent. */
void imap_session_bye(struct imap_session *s, const char *text);
/* The store went bad for the selected mailbox (deleted under us). */
void imap_session_mailbox_gone(struct imap_session *s);
/*
 * Hibernate the selected mailboxes of sessions in IDLE or quiet for
 * IMAP_HIBERNATE_SECS, and give freed memory back (imapd's tick).
 */
void imap_session_hibernate_idle(time_t now);
/* Hibernate the selected mailbox of s now (IDLE). */
void imap_session_hibernate(struct imap_session *s);
/* Log with the client's address. */
void imap_session_log(struct imap_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* --------------------------------------------------------------- reply */

void imap_reply_raw(struct imap_session *s, const char *data, size_t len);
void imap_reply_printf(struct imap_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append an astring in the shortest safe form: atom, quoted, literal. */
void imap_reply_astring(struct buf *b, const char *s, size_t len);
/* "1:3,7,9": numbers in list order, runs of +1 compressed. */
void imap_reply_set(struct buf *b, const uint32_t *v, size_t n);
/* "(\\Seen \\Recent $Junk)" of one message. */
void imap_reply_flags(const struct imap_mailbox *mb, const struct imap_msg *m,
                      struct buf *b);
/* "* FLAGS (...)" and "* OK [PERMANENTFLAGS (...)]" of the mailbox. */
void imap_reply_flags_lists(struct imap_session *s, struct buf *b);
/* Map a store status to " [CODE]"-style text for NO. */
const char *imap_store_code(int status);
/* The CAPABILITY list for the session's state, without "* CAPABILITY". */
void imap_capabilities(struct imap_session *s, struct buf *out);

/* ---------------------------------------------------------- commands */

/* Command flags. */
#define IMAP_CMD_UID 0x01      /* has a UID form */
#define IMAP_CMD_NOEXPUNGE 0x02 /* no EXPUNGE replies after it (RFC 3501
                                  7.4.1: FETCH, STORE, SEARCH by number) */

struct imap_cmd_def {
    const char *name;
    unsigned states; /* IMAP_STATE_* bits where it is allowed */
    unsigned flags;
    void (*run)(struct imap_session *s, struct imap_command *cmd);
};

const struct imap_cmd_def *imap_cmd_find(const char *name);

void imap_cmd_capability(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_noop(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_logout(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_id(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_enable(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_starttls(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_login(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_authenticate(struct imap_session *s, struct imap_command *cmd);
/* An AUTHENTICATE response line arrived (MODE_SASL). */
void imap_auth_response(struct imap_session *s, const char *line, size_t len);

void imap_cmd_select(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_examine(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_create(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_delete(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_rename(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_subscribe(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_unsubscribe(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_status(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_append(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_namespace(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_idle(struct imap_session *s, struct imap_command *cmd);
/* DONE (or anything else) ended IDLE. */
void imap_idle_done(struct imap_session *s, const char *line, size_t len);
/* The notifier saw a change in a watched mailbox. */
void imap_idle_wake(struct imap_session *s);

void imap_cmd_list(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_lsub(struct imap_session *s, struct imap_command *cmd);

void imap_cmd_check(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_close(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_unselect(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_expunge(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_store(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_copy(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_move(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_uid(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_fetch(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_search(struct imap_session *s, struct imap_command *cmd);

/* Leave the selected mailbox (CLOSE, UNSELECT, SELECT of another). */
void imap_session_unselect(struct imap_session *s);
/*
 * A sequence set argument (by number, or by UID for UID commands) as
 * the ascending list of sequence numbers it names in the current view.
 * -1 (BAD sent? no: *err set) for bad syntax or a number past the end.
 */
int imap_seqset_to_seqs(struct imap_session *s, const struct imap_arg *arg,
                        bool uid, uint32_t **seqs, size_t *n,
                        const char **err);
/* Log a store failure and answer NO with the matching response code. */
void imap_cmd_store_error(struct imap_session *s, int status,
                          const char *what, const char *err);

/* -------------------------------------------------------------- login */

/* Mechanisms for AUTH= ("" when SASL could not be set up). */
const char *imap_auth_mechs(void);
/* May this session send a password now (TLS, or plaintext allowed)? */
bool imap_login_allowed(struct imap_session *s);
/* Start the login thread (after the privilege drop). */
void imap_auth_init(void);
void imap_auth_shutdown(void);
/* The session is being freed: drop its SASL state (in the thread). */
void imap_auth_forget(struct imap_session *s);

/* -------------------------------------------------------------- notify */

void imap_notify_init(void);
void imap_notify_shutdown(void);
/* Watch the selected mailbox of s while it IDLEs. */
int imap_notify_watch(struct imap_session *s);
void imap_notify_unwatch(struct imap_session *s);

#endif
