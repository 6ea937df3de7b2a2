/*
 * smtpd - the SMTP server's internal interface, shared by its files only.
 *
 *   smtpd.c          main, configuration, session loop, replies, logging
 *   smtpd_cmd.c      the command table (one row per command)
 *   smtpd_helo.c     HELO, EHLO and the EHLO keyword table
 *   smtpd_mail.c     MAIL, RCPT and the transaction state
 *   smtpd_data.c     DATA and BDAT
 *   smtpd_misc.c     RSET NOOP QUIT VRFY HELP and the unimplemented ones
 *   smtpd_params.c   pure command/parameter parsing
 *   smtpd_content.c  pure DATA/BDAT transparency removal
 *   smtpd_cleanup.c  client side of the smtpd -> cleanup protocol
 *   smtpd_check*.c   the restriction lists (smtpd_check.h), with
 *                    smtpd_access.c (access tables), smtpd_dns.c
 *   smtpd_tls.c      STARTTLS, wrapper mode, the encrypt level
 *   smtpd_auth.c     AUTH and what a login leaves in logs and headers
 */
#ifndef SMTPD_SMTPD_H
#define SMTPD_SMTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "global/addr.h"
#include "global/resolve.h"
#include "smtpd/smtpd_content.h"
#include "smtpd/smtpd_params.h"
#include "util/argv.h"
#include "util/buf.h"
#include "util/stream.h"

struct smtpd_check_state; /* smtpd_check_impl.h */
struct smtpd_cleanup;      /* smtpd_cleanup.c */
struct cidr_list;          /* global/cidr.h */
struct tls_conn;           /* util/tls.h */

/* EHLO keywords (smtpd_discard_ehlo_keywords masks). */
#define SMTPD_EHLO_PIPELINING (1u << 0)
#define SMTPD_EHLO_SIZE (1u << 1)
#define SMTPD_EHLO_VRFY (1u << 2)
#define SMTPD_EHLO_ETRN (1u << 3)
#define SMTPD_EHLO_AUTH (1u << 4)
#define SMTPD_EHLO_STARTTLS (1u << 5)
#define SMTPD_EHLO_ENHANCEDSTATUSCODES (1u << 6)
#define SMTPD_EHLO_8BITMIME (1u << 7)
#define SMTPD_EHLO_DSN (1u << 8)
#define SMTPD_EHLO_SMTPUTF8 (1u << 9)
#define SMTPD_EHLO_CHUNKING (1u << 10)
#define SMTPD_EHLO_OTHER (1u << 11)  /* XCLIENT, XFORWARD, VERP ... */
#define SMTPD_EHLO_SILENT (1u << 12) /* "silent-discard" */

enum smtpd_bare_newline { SMTPD_BARE_LF_ALLOW, SMTPD_BARE_LF_REJECT };

/* Everything read from main.cf once, before the first client. */
struct smtpd_config {
    const char *myhostname;
    const char *myorigin;
    const char *banner;
    long long message_size_limit; /* 0 = unlimited */
    long long recipient_limit;
    long long line_length_limit;
    int timeout_ms;
    long long soft_error_limit;
    long long hard_error_limit;
    long long error_sleep_time; /* seconds */
    long long junk_command_limit;
    bool disable_vrfy;
    bool smtputf8_enable;
    unsigned ehlo_discard; /* SMTPD_EHLO_* */
    enum smtpd_bare_newline bare_newline;
    struct cidr_list *mynetworks;
    struct resolver *resolver;
    bool reject_unlisted_recipient;
    bool strict_rfc821_envelopes; /* MAIL/RCPT paths need <> */
    bool reject_unlisted_sender;
    bool delay_reject; /* sender checks wait for RCPT */
    bool helo_required;
    int unknown_local_code;           /* 550 */
    int unknown_virtual_alias_code;   /* 550 */
    int unknown_virtual_mailbox_code; /* 550 */
    int unknown_relay_recipient_code; /* 550 */
    int relay_reject_code;            /* 554 (relay_domains_reject_code) */
    char cleanup_path[4096];
};

struct smtpd_rcpt {
    char *addr;   /* internal form as accepted */
    char *notify; /* "SUCCESS,FAILURE" or NULL */
    char *orcpt;  /* "rfc822;addr" or NULL */
};

/* One mail transaction: MAIL .. end of DATA/BDAT, RSET, or HELO. */
struct smtpd_xact {
    bool active;                 /* MAIL accepted */
    char *sender;                /* "" for <> */
    struct mailaddr sender_addr; /* parsed, for the delayed sender check */
    struct smtpd_mail_params params;
    struct smtpd_rcpt *rcpt;
    size_t nrcpt, rcpt_cap;
    /* BDAT */
    bool bdat;           /* a BDAT chunk was seen */
    bool bdat_failed;    /* an earlier chunk failed: discard the rest */
    bool cleanup_open;   /* envelope sent to cleanup */
    bool cleanup_failed; /* write/connect error: discard content */
    bool too_big;
    long long size;     /* content bytes queued so far */
    long long received; /* raw bytes received (BDAT reply) */
    struct smtpd_bdat_state bdat_state;
    time_t arrival;
};

/* Per-command counters for the "disconnect from" line. */
struct smtpd_cmd_count {
    unsigned ok, total;
};

struct smtpd_session {
    const struct smtpd_config *cfg;
    struct stream *client;
    char addr[64];
    char port[16];
    const char *name;  /* verified client name or "unknown" */
    char namaddr[128]; /* "unknown[127.0.0.1]" */
    char *helo;        /* neutered, NULL until HELO/EHLO */
    bool esmtp;
    bool hangup;       /* end the session after this reply */
    const char *where; /* last command, for "lost connection after" */
    long long error_count;
    long long junk_count;
    struct smtpd_cmd_count *counts; /* one per command table row + unknown */
    struct smtpd_xact xact;
    struct smtpd_cleanup *cleanup;
    struct smtpd_check_state *check; /* smtpd_check*.c: per session */
    /* TLS and SASL (smtpd_tls.c, smtpd_auth.c); read by smtpd_check.c. */
    struct tls_conn *tls;  /* NULL: plaintext session */
    char *sasl_method;     /* NULL until AUTH succeeded */
    char *sasl_username;   /* NULL until AUTH succeeded */
    struct buf line;  /* current command line */
    struct buf reply; /* scratch for reply text */
    struct buf scratch;
};

/* ---- smtpd.c: replies, logging ---- */

/*
 * Queue one reply line ("250 2.1.0 Ok"); CRLF is added.  Replies are
 * written when no more pipelined input is waiting (smtpd_flush_if_idle)
 * or when a command needs the client to hear it first (354).  A 4xx/5xx
 * reply after smtpd_soft_error_limit errors sleeps smtpd_error_sleep_time.
 * Enhanced status codes are removed when ENHANCEDSTATUSCODES is discarded.
 */
void smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A multi-line reply line ("250-PIPELINING"): no delay, no code stripping. */
void smtpd_reply_raw(struct smtpd_session *s, const char *text);
void smtpd_flush(struct smtpd_session *s);
void smtpd_flush_if_idle(struct smtpd_session *s);
/*
 * "NOQUEUE: reject: RCPT from h[ip]: <reply>; from=<s> to=<r> proto=ESMTP
 * helo=<h>" for a policy rejection.  to may be NULL.
 */
void smtpd_log_reject(struct smtpd_session *s, const char *cmd,
                      const char *reply, const char *to);
/* Protocol name for the Received: header: SMTP, ESMTP, UTF8SMTP. */
const char *smtpd_protocol(const struct smtpd_session *s);
/* Options for the ESMTP parameter parsers, from the EHLO discards. */
void smtpd_param_opts(const struct smtpd_session *s,
                      struct smtpd_param_opts *o);

/* ---- smtpd_cmd.c ---- */

/* A handler returns 0 on success, -1 when the command failed (an error). */
typedef int (*smtpd_cmd_fn)(struct smtpd_session *s, const char *args);

#define SMTPD_CMD_JUNK 1u /* counts toward smtpd_junk_command_limit */

struct smtpd_cmd {
    const char *name;
    smtpd_cmd_fn handler;
    unsigned flags;
};

extern const struct smtpd_cmd smtpd_cmd_table[];
extern const size_t smtpd_cmd_count; /* rows; counts[] has one more */
const struct smtpd_cmd *smtpd_cmd_find(const char *verb, size_t *index);

/* ---- command handlers ---- */
int smtpd_cmd_helo(struct smtpd_session *s, const char *args);
int smtpd_cmd_ehlo(struct smtpd_session *s, const char *args);
int smtpd_cmd_mail(struct smtpd_session *s, const char *args);
int smtpd_cmd_rcpt(struct smtpd_session *s, const char *args);
int smtpd_cmd_data(struct smtpd_session *s, const char *args);
int smtpd_cmd_bdat(struct smtpd_session *s, const char *args);
int smtpd_cmd_rset(struct smtpd_session *s, const char *args);
int smtpd_cmd_noop(struct smtpd_session *s, const char *args);
int smtpd_cmd_quit(struct smtpd_session *s, const char *args);
int smtpd_cmd_vrfy(struct smtpd_session *s, const char *args);
int smtpd_cmd_help(struct smtpd_session *s, const char *args);
int smtpd_cmd_not_implemented(struct smtpd_session *s, const char *args);
int smtpd_cmd_auth(struct smtpd_session *s, const char *args);

/* ---- smtpd_helo.c ---- */
/* Parse smtpd_discard_ehlo_keywords; unknown words are logged. */
unsigned smtpd_ehlo_mask(const struct argv *words);

/* ---- smtpd_mail.c ---- */
void smtpd_xact_reset(struct smtpd_session *s);
/*
 * Parse a MAIL/RCPT/VRFY path: "<...>" or a bare address; an address
 * without a domain gets "@$myorigin" (Postfix append_at_myorigin).
 * Returns 0, or -1 with *err set to the parser's text.
 */
int smtpd_parse_addr(struct smtpd_session *s, const char *path, size_t len,
                     bool allow_null, struct mailaddr *out, const char **err);

/* ---- smtpd_misc.c ---- */
/* The "disconnect from" statistics text. */
void smtpd_format_counts(const struct smtpd_session *s, struct buf *out);

/* ---- smtpd_tls.c ---- */
/* Read the TLS parameters, load certificate and key (still privileged). */
void smtpd_tls_init(void);
/*
 * A new session: the wrapper-mode handshake, or the refusal when TLS is
 * required and unavailable.  false = end the session (logged, replied).
 */
bool smtpd_tls_session_start(struct smtpd_session *s);
void smtpd_tls_session_end(struct smtpd_session *s);
bool smtpd_tls_offered(const struct smtpd_session *s);  /* EHLO STARTTLS */
/* smtpd_tls_security_level = encrypt and no TLS yet: MAIL etc. get 530. */
bool smtpd_tls_required(const struct smtpd_session *s);
/* False while smtpd_tls_auth_only (or encrypt) keeps AUTH off. */
bool smtpd_tls_auth_allowed(const struct smtpd_session *s);
/* "(using TLSv1.3 with cipher ... (256/256 bits))", appended, or nothing. */
void smtpd_tls_received_text(const struct smtpd_session *s, struct buf *out);
int smtpd_cmd_starttls(struct smtpd_session *s, const char *args);

/* ---- smtpd_auth.c ---- */
void smtpd_auth_init(void); /* still privileged: libsasl2 plugins */
/* Mechanisms to announce now ("PLAIN LOGIN"), or NULL: no AUTH. */
const char *smtpd_auth_mechs(const struct smtpd_session *s);
bool smtpd_auth_broken_clients(void); /* also announce "AUTH=..." */
/* Forget a login (STARTTLS, end of session). */
void smtpd_auth_reset(struct smtpd_session *s);
/* "ID: client=h[ip], sasl_method=PLAIN, sasl_username=u" */
void smtpd_log_client(const struct smtpd_session *s, const char *queue_id);
/* sasl_username and the Received: comment ("tls") for cleanup's frame. */
void smtpd_security_envelope(const struct smtpd_session *s, struct buf *frame);
/* smtpd_protocol() with RFC 3848's S (TLS) and A (AUTH): "ESMTPSA". */
const char *smtpd_received_protocol(const struct smtpd_session *s);

#endif
