/*
 * pop3d.h - what the files of the POP3 server share: the configuration,
 * the session, the mailbox snapshot and the pure helpers (command
 * parser, message transfer encoding, UIDLs) that the unit tests compile
 * in on their own.
 */
#ifndef POP3D_POP3D_H
#define POP3D_POP3D_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "global/cidr.h"
#include "global/resolve.h"
#include "util/buf.h"
#include "util/stream.h"
#include "util/tls.h"

/*
 * Longest command line.  RFC 2449 allows 255 octets; PASS with a
 * password of AUTH_PASSWORD_MAX bytes needs more, so the slack.
 */
/* The service name for auth and libsasl2. */
#define POP3D_SERVICE "pop3"
#define POP3D_LINE_MAX 1024
/* Keywords are 3 or 4 characters (RFC 1939, 2449); a longer one is junk. */
#define POP3D_KEYWORD_MAX 4
/* Most arguments a command takes (TOP n m, APOP name digest, AUTH m ir). */
#define POP3D_ARGS_MAX 3
/* Message numbers are at most this (far above any mailbox we list). */
#define POP3D_MSGNUM_MAX 999999999UL
/* RFC 1939: a unique-id is 1 to 70 characters 0x21..0x7E. */
#define POP3D_UIDL_MAX 70
/* Messages one session lists; the rest wait for the next session. */
#define POP3D_MESSAGES_MAX 500000
/* Lock file in the Maildir, held with flock() for the whole session. */
#define POP3D_LOCK_FILE "posthorn-pop3.lock"

/* ---------------------------------------------------------- parser */

enum pop3d_parse_status {
    POP3D_PARSE_OK,
    POP3D_PARSE_EMPTY,   /* empty line */
    POP3D_PARSE_BADCHAR, /* NUL or a control character */
    POP3D_PARSE_KEYWORD, /* keyword too long or not letters */
    POP3D_PARSE_ARGS,    /* more than POP3D_ARGS_MAX arguments */
};

struct pop3d_command {
    char keyword[POP3D_KEYWORD_MAX + 1]; /* upper case */
    const char *rest; /* everything after "KEYWORD " (PASS's password),
                         points into the parsed line; "" when none */
    size_t nargs;
    char *args[POP3D_ARGS_MAX]; /* point into argbuf */
    char argbuf[POP3D_LINE_MAX + 1];
};

/*
 * Split a command line (terminator already stripped) into keyword and
 * blank-separated arguments.  line must stay alive while cmd->rest is
 * used.
 */
enum pop3d_parse_status pop3d_parse_command(const char *line, size_t len,
                                            struct pop3d_command *cmd);
/* A decimal number without sign or blanks, at most max.  false if not. */
bool pop3d_parse_number(const char *s, unsigned long max, unsigned long *out);

/* ---------------------------------------------------------- messages */

/*
 * The transfer form of a Maildir message (RFC 1939 section 3): lines
 * end in CRLF whether the file has LF or CRLF, a line starting with "."
 * gets another one, and a last line without a newline is ended.  TOP
 * sends the header, the empty line and at most n body lines.  Runs on a
 * byte stream in any chunking, so a message is never held in memory.
 */
typedef void (*pop3d_sink_fn)(void *ctx, const char *data, size_t len);

struct pop3d_xfer {
    pop3d_sink_fn sink;
    void *ctx;
    bool dot_stuff;
    long long body_max; /* body lines to send; -1 = all */
    long long body_lines;
    bool in_body;
    bool bol;        /* at the start of a line */
    bool line_empty; /* the current line has no content yet */
    bool cr_pending; /* a CR waits to see whether LF follows */
    bool done;       /* TOP has sent what it should */
    long long out;   /* bytes handed to sink, stuffing excluded */
};

void pop3d_xfer_init(struct pop3d_xfer *x, long long body_max, bool dot_stuff,
                     pop3d_sink_fn sink, void *ctx);
/* Feed file bytes; returns false once nothing more will be sent (TOP). */
bool pop3d_xfer_feed(struct pop3d_xfer *x, const char *data, size_t len);
/* End of file: end an unterminated last line. */
void pop3d_xfer_finish(struct pop3d_xfer *x);

/* Transfer-form size of an open file, read from the start (-1: error). */
long long pop3d_xfer_size(int fd);

/* ---------------------------------------------------------- mailbox */

struct pop3d_msg {
    char *name; /* current file name in cur/ */
    char uidl[POP3D_UIDL_MAX + 1];
    long long vsize; /* transfer-form size, -1 until known */
    long long sec;   /* ordering: delivery second, microsecond, name */
    long long usec;
    bool deleted;
    bool retrieved; /* RETR (not TOP): gets the Seen flag at UPDATE */
};

struct pop3d_mbox {
    char *dir;   /* the Maildir, with trailing "/" */
    int lock_fd; /* -1: no lock (mailbox does not exist) */
    struct pop3d_msg *msgs;
    size_t n;
};

/*
 * UIDL of a Maildir file name: the base name (before ":2,") when it is a
 * valid unique-id, else "H" and 32 hex digits of its SHA-256.  Stable
 * across sessions, the move from new/ to cur/ and flag changes.
 */
void pop3d_uidl(const char *name, char *out, size_t outlen);
/* Base name length: up to the Maildir info separator ':' or the end. */
size_t pop3d_base_len(const char *name);
/* Dovecot's ",W=<n>" transfer size in a file name, or -1. */
long long pop3d_name_vsize(const char *name);

/*
 * Lock dir/POP3D_LOCK_FILE.  1 locked (fd in *fd), 0 another session has
 * it, -1 error (err set).
 */
int pop3d_mbox_lock(const char *dir, int *fd, char *err, size_t errlen);
/*
 * The snapshot of a session: every message of new/ is moved to cur/
 * (adding ":2,"), then cur/ is listed and sorted oldest first.  A
 * missing Maildir is an empty mailbox.  Returns 0 or -1 (err set).
 */
int pop3d_mbox_scan(struct pop3d_mbox *m, char *err, size_t errlen);
/* Open message i (0-based) read-only, following renames by others. */
int pop3d_mbox_open(struct pop3d_mbox *m, size_t i, char *err, size_t errlen);
/* Known or computed transfer size of message i; -1 on error. */
long long pop3d_mbox_vsize(struct pop3d_mbox *m, size_t i, char *err,
                           size_t errlen);
/*
 * UPDATE state: remove the deleted messages, mark retrieved ones Seen.
 * Returns the number of deletions that failed (0 = all done).
 */
size_t pop3d_mbox_update(struct pop3d_mbox *m, size_t *deleted);
void pop3d_mbox_free(struct pop3d_mbox *m);

/* ---------------------------------------------------------- session */

enum pop3d_tls_level { POP3D_TLS_NONE, POP3D_TLS_MAY, POP3D_TLS_ENCRYPT };

struct pop3d_config {
    const char *banner;
    int timeout_ms;
    long long hard_error_limit;
    bool tls_auth_only;
    struct cidr_list *plaintext_networks;
    bool apop_enable;
    bool sasl_ok; /* libsasl2 initialised: AUTH offered */
    bool wrappermode;
    enum pop3d_tls_level tls_level;
    struct tls_ctx *tls; /* NULL: no TLS */
    struct resolver *resolver;
    long long minimum_uid;
    const char *myhostname;
    /* Running as root: mail_owner before login, the account after. */
    bool privileged;
    uid_t owner_uid;
    gid_t owner_gid;
};

enum pop3d_state {
    POP3D_AUTHORIZATION = 1,
    POP3D_TRANSACTION = 2,
};

struct pop3d_session {
    const struct pop3d_config *cfg;
    struct stream *client;
    struct tls_conn *tls;
    enum pop3d_state state;
    char addr[64];    /* rip */
    char laddr[64];   /* lip */
    bool trusted_net; /* in pop3d_plaintext_auth_networks */
    char apop_stamp[128];
    char *user;      /* from USER, until PASS */
    char login[256]; /* the account, once logged in */
    char method[32]; /* how it logged in */
    int auth_attempts;
    long long error_count;
    bool hangup;
    bool dropped; /* privileges switched to the account for good */
    const char *end_reason;
    struct pop3d_mbox mbox;
    long long top_count, top_bytes, retr_count, retr_bytes;
    long long mbox_size; /* transfer size of the snapshot, -1 not yet */
    size_t del_count;    /* messages removed at QUIT */
    struct buf line;
    struct buf scratch;
};

/* Reply "+OK text" / "-ERR text" (CRLF added; not flushed). */
void pop3d_ok(struct pop3d_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void pop3d_err(struct pop3d_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void pop3d_flush(struct pop3d_session *s);
/* True when the link is TLS or the client in a trusted network. */
bool pop3d_secured(const struct pop3d_session *s);
/* Plaintext password commands allowed now? (-ERR sent when not) */
bool pop3d_plaintext_ok(struct pop3d_session *s);

/* Command handlers: 0 ok, -1 the command failed (counts as an error). */
struct pop3d_cmd {
    const char *name;
    unsigned states; /* POP3D_AUTHORIZATION | POP3D_TRANSACTION */
    bool before_tls; /* allowed before STLS when TLS is required */
    int (*handler)(struct pop3d_session *s, struct pop3d_command *c);
};
const struct pop3d_cmd *pop3d_cmd_find(const char *keyword);

int pop3d_cmd_capa(struct pop3d_session *s, struct pop3d_command *c);
int pop3d_cmd_stls(struct pop3d_session *s, struct pop3d_command *c);
int pop3d_cmd_user(struct pop3d_session *s, struct pop3d_command *c);
int pop3d_cmd_pass(struct pop3d_session *s, struct pop3d_command *c);
int pop3d_cmd_apop(struct pop3d_session *s, struct pop3d_command *c);
int pop3d_cmd_auth(struct pop3d_session *s, struct pop3d_command *c);
int pop3d_cmd_quit(struct pop3d_session *s, struct pop3d_command *c);
int pop3d_cmd_stat(struct pop3d_session *s, struct pop3d_command *c);
int pop3d_cmd_list(struct pop3d_session *s, struct pop3d_command *c);
int pop3d_cmd_uidl(struct pop3d_session *s, struct pop3d_command *c);
int pop3d_cmd_top(struct pop3d_session *s, struct pop3d_command *c);
int pop3d_cmd_retr(struct pop3d_session *s, struct pop3d_command *c);
int pop3d_cmd_dele(struct pop3d_session *s, struct pop3d_command *c);
int pop3d_cmd_rset(struct pop3d_session *s, struct pop3d_command *c);
int pop3d_cmd_noop(struct pop3d_session *s, struct pop3d_command *c);

/* Start TLS on the session's stream (STLS or wrapper mode); 0 or -1. */
int pop3d_tls_start(struct pop3d_session *s);

/* Privileges (pop3d_priv.c). */
void pop3d_priv_preauth(const struct pop3d_config *cfg);
void pop3d_priv_restore(const struct pop3d_config *cfg);

/*
 * After the password was accepted: find the mailbox, become its owner,
 * lock and scan it.  Answers the client itself; 0 = TRANSACTION state,
 * -1 = the session ends (privileges may be gone already).
 */
int pop3d_login(struct pop3d_session *s, const char *account,
                const char *method);

/* The "Disconnected: ..." log line and statistics. */
void pop3d_log_disconnect(struct pop3d_session *s);

#endif
