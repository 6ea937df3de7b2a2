/*
 * smtp - internal interfaces of the SMTP/LMTP client delivery agent.
 *
 *   smtp.c          the server: qmgr's requests, replies, the cached
 *                   connection between requests
 *   smtp_params.c   main.cf parameters, read once at start
 *   smtp_deliver.c  one request: queue file, next-hop addresses, the loop
 *                   over servers, per-recipient outcome and log lines
 *   smtp_addr.c     next hop -> list of server addresses (MX, A/AAAA)
 *   smtp_session.c  connect, greeting, EHLO/HELO/LHLO, STARTTLS, RSET, QUIT
 *   smtp_proto.c    one mail transaction: MAIL, RCPT, DATA and the content
 *   smtp_reply.c    pure: reply lines, enhanced status codes, EHLO keywords
 *   smtp_nexthop.c  pure: "[host]:port", "domain", "unix:/path" syntax
 *   smtp_text.c     pure: xtext, dot-stuffing with CRLF, address checks
 *   smtp_mime.c     pure: 8-bit MIME parts to quoted-printable for servers
 *                   without 8BITMIME
 *
 * The pure files need nothing but util/ and are compiled into the unit
 * tests directly (tests/unit/test_smtp_*.c).
 */
#ifndef SMTP_SMTP_H
#define SMTP_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <netinet/in.h>

#include "global/qfile.h"
#include "util/argv.h"
#include "util/buf.h"

/* ---- bounds ---- */

#define SMTP_REPLY_LINE_MAX 4096 /* longer reply lines are cut */
#define SMTP_REPLY_LINES_MAX 100 /* more lines: reply refused */
#define SMTP_REPLY_TEXT_MAX 4000 /* joined reply text kept */
#define SMTP_REASON_MAX 1000     /* reason in log lines and replies */
#define SMTP_HOST_MAX 256        /* host names (253) and paths (108) */
#define SMTP_ADDR_TEXT_MAX 128   /* "ip" or a unix socket path shown */
#define SMTP_RELAY_MAX (SMTP_HOST_MAX + SMTP_ADDR_TEXT_MAX + 16)
#define SMTP_DSN_MAX 16

/* ---- replies (smtp_reply.c) ---- */

#define SMTP_FEATURE_ESMTP 0x001 /* EHLO/LHLO accepted */
#define SMTP_FEATURE_PIPELINING 0x002
#define SMTP_FEATURE_SIZE 0x004
#define SMTP_FEATURE_8BITMIME 0x008
#define SMTP_FEATURE_SMTPUTF8 0x010
#define SMTP_FEATURE_DSN 0x020
#define SMTP_FEATURE_STARTTLS 0x040
#define SMTP_FEATURE_CHUNKING 0x080
#define SMTP_FEATURE_ENHANCEDSTATUSCODES 0x100

struct smtp_reply {
    int code;               /* 200..599 once complete */
    char dsn[SMTP_DSN_MAX]; /* "X.Y.Z": from the text, else X.0.0 */
    struct buf text;        /* whole lines joined by " " (bounded) */
    struct argv lines;      /* each line after "NNN-" / "NNN " */
};

void smtp_reply_init(struct smtp_reply *r);
void smtp_reply_free(struct smtp_reply *r);
/*
 * Add one received line (without CRLF).  Returns 1 when it was the last
 * line of the reply, 0 when more follow, -1 when it is not a reply line
 * ("NNN", "NNN text", "NNN-text" with NNN in 200..599, the same code on
 * every line) or there are too many lines.
 */
int smtp_reply_line(struct smtp_reply *r, const char *line, size_t len);
/* After the last line: fill dsn. */
void smtp_reply_finish(struct smtp_reply *r);
/* 2, 4 or 5 for a reply code; anything unexpected counts as 4. */
int smtp_reply_status(int code);
/*
 * Enhanced status code at the start of text ("5.1.1 user unknown") whose
 * class matches code; copied into dsn.  false when there is none.
 */
bool smtp_dsn_parse(const char *text, int code, char dsn[SMTP_DSN_MAX]);
/* EHLO/LHLO reply -> SMTP_FEATURE_* bits and the SIZE limit (0 = none). */
unsigned smtp_ehlo_features(const struct smtp_reply *r, long long *size_max);

/* ---- next hop (smtp_nexthop.c) ---- */

enum smtp_nexthop_kind {
    SMTP_NEXTHOP_MX,   /* domain: MX lookup, A/AAAA fallback */
    SMTP_NEXTHOP_HOST, /* [host] (or any host for lmtp): A/AAAA only */
    SMTP_NEXTHOP_ADDR, /* numeric address: no lookup */
    SMTP_NEXTHOP_UNIX, /* lmtp only: unix-domain socket path */
};

struct smtp_nexthop {
    enum smtp_nexthop_kind kind;
    char name[SMTP_HOST_MAX]; /* domain/host (lowercase), address, path */
    int family;               /* ADDR: AF_INET or AF_INET6 */
    unsigned port;            /* the default port unless port_given */
    bool port_given;          /* ":port" was written */
};

#define SMTP_PORT 25
#define LMTP_PORT 24
#define SMTP_UNIX_PATH_MAX 107

/* Returns 0, or -1 with *err a static description. */
int smtp_nexthop_parse(const char *text, bool lmtp, struct smtp_nexthop *out,
                       const char **err);

/* ---- text (smtp_text.c) ---- */

/* RFC 3461 xtext of s appended to out. */
void smtp_xtext_encode(struct buf *out, const char *s);
/* Any byte >= 0x80. */
bool smtp_text_8bit(const char *s, size_t len);
/*
 * An envelope address we may put between "<" and ">" on a command line:
 * no control characters, no "<", ">" and no spaces outside quotes.
 */
bool smtp_addr_sendable(const char *addr);

/*
 * Content as it goes over DATA: "\n" -> "\r\n", a "." at the start of a
 * line doubled, lines longer than limit broken with "\r\n " (0: never).
 */
struct smtp_dot {
    size_t limit;
    size_t col; /* bytes on the current output line */
    bool bol;   /* at the beginning of a line */
};

void smtp_dot_init(struct smtp_dot *d, size_t limit);
void smtp_dot_feed(struct smtp_dot *d, const char *data, size_t len,
                   struct buf *out);
/* End an unterminated last line, then ".\r\n". */
void smtp_dot_end(struct smtp_dot *d, struct buf *out);

/*
 * Size of the content with CRLF line ends (for SIZE=), and 8-bitness of
 * the whole content and of the header section (up to the first empty
 * line).
 */
struct smtp_measure {
    long long size;
    bool eightbit;
    bool header_8bit;
    bool in_header;
    bool bol;
};

void smtp_measure_init(struct smtp_measure *m);
void smtp_measure_feed(struct smtp_measure *m, const char *data, size_t len);
void smtp_measure_end(struct smtp_measure *m);

/* ---- 8-bit to 7-bit (smtp_mime.c) ---- */

/*
 * For a server without 8BITMIME: the content (queue form, "\n" lines)
 * with each MIME leaf part whose body has 8-bit bytes and whose
 * Content-Transfer-Encoding is 7bit, 8bit, binary or absent re-encoded
 * as quoted-printable, and 8bit/binary labels of multipart and
 * message/rfc822 containers changed to 7bit, appended to out.  Returns
 * how many parts changed; 0 leaves out as it was (not MIME, nothing to
 * convert).
 */
size_t smtp_mime_downgrade(const char *in, size_t len, struct buf *out);

/* ---- parameters (smtp_params.c) ---- */

enum smtp_tls_level {
    SMTP_TLS_NONE,
    SMTP_TLS_MAY,     /* STARTTLS when offered, certificate not checked */
    SMTP_TLS_ENCRYPT, /* TLS required, certificate not checked */
    SMTP_TLS_VERIFY,  /* TLS required, chain and host name verified */
};

enum smtp_addr_pref { SMTP_PREF_ANY, SMTP_PREF_IPV4, SMTP_PREF_IPV6 };

struct smtp_params {
    const char *queue_dir;
    const char *myhostname;
    const char *helo_name;
    int connect_timeout; /* all timeouts in seconds */
    int helo_timeout;
    int mail_timeout;
    int rcpt_timeout;
    int data_init_timeout;
    int data_xfer_timeout;
    int data_done_timeout;
    int quit_timeout;
    int rset_timeout;
    int starttls_timeout;
    long long cache_time_limit;
    long long reuse_time_limit;
    int mx_address_limit; /* 0 = no limit */
    int mx_session_limit; /* 0 = no limit */
    bool skip_5xx_greeting;
    size_t line_length_limit; /* 0 = no limit */
    enum smtp_tls_level tls_level;
    const char *tls_ca_file;
    const char *tls_ca_path;
    int tls_loglevel;
    enum smtp_addr_pref addr_pref;
    int inet_family; /* AF_UNSPEC, AF_INET or AF_INET6 */
    const struct argv *dns_servers;
    unsigned smtp_port;                /* smtp_tcp_port */
    unsigned lmtp_port;                /* lmtp_tcp_port */
    const struct argv *fallback_relay; /* smtp_fallback_relay */
    const char *relayhost;
    bool mime_conversion; /* !disable_mime_output_conversion */
};

extern struct smtp_params smtp_params;

/* Read every parameter from config_global(); fatal on a bad value. */
void smtp_params_load(void);

/* Set up at start (smtp.c); smtp_tls_ctx is NULL when TLS is unusable. */
extern struct dns_resolver *smtp_dns;
extern struct tls_ctx *smtp_tls_ctx;
extern char smtp_tls_ctx_error[256];

/* Monotonic seconds. */
double smtp_now(void);

/* ---- outcomes ---- */

struct smtp_error {
    int status; /* 4 or 5 */
    char dsn[SMTP_DSN_MAX];
    char reason[SMTP_REASON_MAX];
};

void smtp_error_set(struct smtp_error *e, int status, const char *dsn,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- server addresses (smtp_addr.c) ---- */

struct smtp_target {
    char host[SMTP_HOST_MAX];      /* name for texts and TLS checks */
    char addr[SMTP_ADDR_TEXT_MAX]; /* numeric address or socket path */
    int family;                    /* AF_INET, AF_INET6 or AF_UNIX */
    unsigned port;
    bool host_is_addr; /* host is a numeric address */
};

/*
 * Server addresses for a next hop, best first, at most
 * smtp_mx_address_limit.  Returns 0 with *n >= 1 (free(*v)), or -1 with
 * e filled (status 4 for a temporary DNS failure, 5 for a domain that
 * does not exist, has no usable address or a null MX, or loops to us).
 * *final is set when no fallback relay may be tried after this next hop:
 * it loops to us, has a null MX, or lists us as one of its MX hosts.
 */
int smtp_targets(const struct smtp_nexthop *nh, struct smtp_target **v,
                 size_t *n, struct smtp_error *e, bool *final);

/* ---- sessions (smtp_session.c) ---- */

struct stream;
struct tls_conn;

struct smtp_session {
    struct stream *stream;
    struct tls_conn *tls;
    struct smtp_target target;
    char namaddr[SMTP_RELAY_MAX]; /* "host[addr]" */
    char relay[SMTP_RELAY_MAX];   /* "host[addr]:port" */
    bool lmtp;
    unsigned features;  /* SMTP_FEATURE_* */
    long long size_max; /* SIZE limit, 0 = none */
    char *key;          /* what it may be reused for */
    double t_open;
    double t_idle;
    unsigned use_count; /* transactions started */
    bool reusable;      /* false once lost or confused */
};

enum smtp_open_result {
    SMTP_OPEN_OK,
    SMTP_OPEN_CONNECT,     /* no TCP connection */
    SMTP_OPEN_HANDSHAKE,   /* greeting, HELO or required TLS failed */
    SMTP_OPEN_RETRY_PLAIN, /* opportunistic TLS failed: reconnect plain */
};

enum smtp_open_result smtp_session_open(const struct smtp_target *t, bool lmtp,
                                        bool tls_allowed, const char *queue_id,
                                        struct smtp_session **out,
                                        struct smtp_error *e);
/* QUIT (when usable and asked) and close. */
void smtp_session_close(struct smtp_session *s, bool quit);
/* RSET; 0 when the server said 2xx. */
int smtp_session_rset(struct smtp_session *s);
/* Queue one command line (CRLF added). */
void smtp_session_cmd(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Flush queued output; -1 with e filled on timeout or lost connection. */
int smtp_session_send(struct smtp_session *s, int timeout_s, const char *stage,
                      struct smtp_error *e);
/* Read one whole reply; -1 with e filled on timeout, loss, bad syntax. */
int smtp_session_reply(struct smtp_session *s, int timeout_s, const char *stage,
                       struct smtp_reply *r, struct smtp_error *e);

/* The one connection kept open between requests. */
struct smtp_session *smtp_cache_take(const char *key);
void smtp_cache_put(struct smtp_session *s);
/* Monotonic time at which the cached connection must close; 0 = none. */
double smtp_cache_deadline(void);
void smtp_cache_close(void);

/* ---- requests (smtp_deliver.c, smtp_proto.c) ---- */

struct smtp_rcpt {
    const char *addr;
    const char *orig; /* original recipient, "" if none */
    long long offset;
    const char *notify; /* from the queue file, "" if none */
    const char *orcpt;  /* "type;address" or "" */
    /* Outcome. */
    bool final;        /* decided for this request */
    int status;        /* 0 = not tried yet, 2, 4, 5 */
    bool accepted;     /* RCPT TO got 2xx in this transaction */
    unsigned conn_use; /* use count of the connection */
    char dsn[SMTP_DSN_MAX];
    char reason[SMTP_REASON_MAX];
    char relay[SMTP_RELAY_MAX];
};

struct smtp_request {
    const char *queue_id;
    const char *queue;
    const char *sender;
    const char *nexthop;
    const char *transport; /* "smtp" or "lmtp" */
    long long arrival;
    double active_time; /* 0 = not given */
    struct smtp_rcpt *rcpts;
    size_t nrcpt;
    bool site_trouble; /* out: no server got past handshake */
};

struct smtp_message {
    int fd;
    struct qfile_envelope env;
    bool smtputf8;     /* the envelope asked for SMTPUTF8 */
    bool eightbit;     /* 8-bit content (or declared so) */
    bool header_8bit;  /* 8-bit bytes in the header section */
    long long size;    /* content size with CRLF */
    const char *envid; /* NULL if none */
    const char *ret;   /* FULL, HDRS or NULL */
};

struct smtp_delivery {
    struct smtp_request *req;
    struct smtp_message *msg;
    bool lmtp;
};

/* Deliver every recipient of req; each gets a final status. */
void smtp_deliver(struct smtp_request *req);

/*
 * Record an outcome (relay: "host[addr]:port" or "none").  Status 2 and
 * 5 are final; 4 leaves the recipient eligible for the next server of
 * this request (its reason is kept in case there is none).
 */
void smtp_rcpt_result(struct smtp_rcpt *r, const char *relay, int status,
                      const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* One mail transaction for every recipient not yet final. */
void smtp_xfer(struct smtp_session *s, struct smtp_delivery *d);

#endif
