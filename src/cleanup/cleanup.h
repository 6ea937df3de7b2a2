/*
 * cleanup.h - the pieces of the cleanup daemon, shared between its files.
 *
 *   cleanup.c           main(), the smtpd->cleanup protocol, queue file
 *   cleanup_envelope.c  validate the envelope frame (untrusted)
 *   cleanup_expand.c    virtual_alias_maps and alias_maps expansion
 *   cleanup_content.c   split the content into header block and body,
 *                       note the headers cleanup cares about
 *   cleanup_body.c      the body line by line: MIME structure, the headers
 *                       of MIME parts and attached messages, body lines,
 *                       each through the content checks
 *   cleanup_checks.c    header_checks/body_checks: which table, the
 *                       action a result asks for, the log line
 *   cleanup_format.c    the headers cleanup adds (Received:, Date:, ...)
 *
 * Everything except cleanup.c is free of I/O and configuration so the
 * unit tests can drive it directly.
 */
#ifndef CLEANUP_CLEANUP_H
#define CLEANUP_CLEANUP_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "util/argv.h"
#include "util/attr.h"
#include "util/buf.h"

/* Bounds on envelope fields that the queue file or headers carry. */
#define CLEANUP_HOST_MAX 255  /* client_name, helo */
#define CLEANUP_TEXT_MAX 1000 /* tls text, sasl_username */
#define CLEANUP_ENVID_MAX 100 /* RFC 3461 */
#define CLEANUP_ORCPT_MAX 500 /* RFC 3461 */
#define CLEANUP_PROTO_MAX 32
#define CLEANUP_FILTER_MAX 255  /* FILTER transport:nexthop */
#define CLEANUP_PREPEND_MAX 20  /* PREPEND headers from smtpd */

/* ---- envelope ---- */

struct cleanup_rcpt {
    char *addr;   /* internal form local@domain */
    char *orig;   /* original recipient ("" when not recorded) */
    char *notify; /* DSN NOTIFY or "" */
    char *orcpt;  /* DSN ORCPT or "" */
};

struct cleanup_rcpt_list {
    struct cleanup_rcpt *v;
    size_t n;
    size_t cap;
};

struct cleanup_envelope {
    char *sender; /* "" = null sender */
    time_t arrival;
    bool smtputf8;
    char *client_name; /* NULL when absent (all optional fields) */
    char *client_addr;
    char *client_port;
    char *helo;
    char *protocol;
    char *body;
    char *envid;
    char *ret;
    char *sasl_username;
    char *tls;
    struct cleanup_rcpt_list rcpts; /* as smtpd accepted them */
    /* What smtpd's access restrictions asked for (all optional). */
    bool hold;       /* queue into hold/ */
    bool discard;    /* acknowledge, queue nothing */
    char *filter;    /* content_filter "transport:nexthop" */
    char *redirect;  /* every recipient replaced by this address */
    struct argv prepend; /* headers before cleanup's Received: */
};

/*
 * Validate an envelope frame (request=submit ...).  Returns 0, or -1 with
 * *why set to a static description of the first problem.  env is filled
 * either way; free it with cleanup_envelope_free.  now: the arrival time
 * used when the frame has none or an implausible one.
 */
int cleanup_envelope_parse(const struct attr_list *frame, time_t now,
                           struct cleanup_envelope *env, const char **why);
void cleanup_envelope_free(struct cleanup_envelope *env);

/* Internal form address check: "local@domain" as addr_parse_path takes it. */
bool cleanup_addr_ok(const char *addr, bool smtputf8);

void cleanup_rcpt_add(struct cleanup_rcpt_list *l, const char *addr,
                      const char *orig, const char *notify, const char *orcpt);
void cleanup_rcpt_list_free(struct cleanup_rcpt_list *l);

/* ---- recipient expansion ---- */

enum cleanup_lookup { CLEANUP_FOUND, CLEANUP_NOTFOUND, CLEANUP_LOOKUP_ERROR };

/* The tables, behind functions so tests can supply their own. */
struct cleanup_expand_ops {
    /* Is the (lowercased) domain of the local class?  -1 = lookup error */
    int (*is_local)(void *ctx, const char *domain);
    /* virtual_alias_maps with Postfix's address search order. */
    enum cleanup_lookup (*virtual_alias)(void *ctx, const char *addr,
                                         bool is_local, struct buf *result);
    /* alias_maps, exact key (a lowercased local part). */
    enum cleanup_lookup (*alias)(void *ctx, const char *key,
                                 struct buf *result);
    void *ctx;
};

struct cleanup_expand_cfg {
    const char *myorigin;   /* appended to bare names */
    const char *delimiters; /* recipient_delimiter */
    long recursion_limit;   /* virtual_alias_recursion_limit */
    long expansion_limit;   /* virtual_alias_expansion_limit */
    long duplicate_limit;   /* duplicate_filter_limit */
    bool keep_orig;         /* enable_original_recipient */
};

/*
 * Expand every recipient of in into out (virtual aliases, then aliases of
 * local-class results, recursively), dropping duplicates.  Returns 0, or
 * -1 with status (4 or 5) and reason ("4.6.0 Alias expansion error") set;
 * log_prefix (the queue ID) starts the warnings it logs.
 */
int cleanup_expand(const struct cleanup_expand_cfg *cfg,
                   const struct cleanup_expand_ops *ops,
                   const struct cleanup_rcpt_list *in,
                   struct cleanup_rcpt_list *out, const char *log_prefix,
                   int *status, const char **reason);

/*
 * Split an alias or virtual alias value into elements at commas and
 * blanks outside "quotes" (Postfix's tokenizer, simplified).  Surrounding
 * <> are removed from each element.
 */
void cleanup_split_targets(const char *value, struct argv *out);

/* ---- content checks (cleanup_checks.c) ---- */

/* Where a piece of content sits; it picks the table (Postfix's classes). */
enum cleanup_part {
    CLEANUP_PART_PRIMARY,   /* a header of the message's own header block */
    CLEANUP_PART_MULTIPART, /* a header of a MIME part */
    CLEANUP_PART_NESTED,    /* a header of an attached message/rfc822 */
    CLEANUP_PART_BODY,      /* a body line, of any part */
};

/* The four parameters, in this order. */
enum cleanup_check_list {
    CLEANUP_CHECK_HEADER, /* header_checks */
    CLEANUP_CHECK_MIME,   /* mime_header_checks */
    CLEANUP_CHECK_NESTED, /* nested_header_checks */
    CLEANUP_CHECK_BODY,   /* body_checks */
};
#define CLEANUP_CHECK_LISTS 4
extern const char *const cleanup_check_names[CLEANUP_CHECK_LISTS];

/*
 * A check hook sees one header (as in the message: folded, ending in
 * "\n") or one body line (without its "\n").  It may rewrite text
 * (REPLACE) and put whole lines, each ending in "\n", into prepend
 * (PREPEND).  Returns CLEANUP_KEEP, CLEANUP_DROP (IGNORE), or -1: stop,
 * the message was rejected or discarded and needs no more output.
 */
#define CLEANUP_KEEP 0
#define CLEANUP_DROP 1
typedef int (*cleanup_check_fn)(void *ctx, enum cleanup_part part,
                                struct buf *text, struct buf *prepend);

/*
 * MIME headers by Postfix's list: Content-Description, -Disposition, -ID,
 * -Transfer-Encoding, -Type and MIME-Version.  They go to
 * mime_header_checks wherever they are; other headers of a MIME part too,
 * other headers of an attached message to nested_header_checks, other
 * primary headers to header_checks, body lines to body_checks.
 */
bool cleanup_header_is_mime(const char *hdr, size_t len);
enum cleanup_check_list cleanup_check_list_for(enum cleanup_part part,
                                               const char *text, size_t len);

/*
 * The lookup key of a header: the header with its line breaks removed
 * (the blanks that follow them stay, RFC 5322 unfolding), at most max
 * bytes.
 */
void cleanup_header_unfold(struct buf *out, const char *hdr, size_t len,
                           size_t max);

enum cleanup_action_kind {
    CLEANUP_ACT_DUNNO,   /* DUNNO, OK; also what is only warned about */
    CLEANUP_ACT_REJECT,  /* REJECT [text], 4NN text, 5NN text */
    CLEANUP_ACT_DISCARD, /* accept and drop the message */
    CLEANUP_ACT_HOLD,    /* queue into hold/ */
    CLEANUP_ACT_IGNORE,  /* drop this line */
    CLEANUP_ACT_PREPEND, /* a line before this one */
    CLEANUP_ACT_REPLACE, /* this line becomes text */
    CLEANUP_ACT_WARN,    /* log "warning: ..." */
    CLEANUP_ACT_INFO,    /* log "info: ..." */
};

/* Longest reply text cleanup gives smtpd (its bound is 400). */
#define CLEANUP_REASON_MAX 300

struct cleanup_action {
    enum cleanup_action_kind kind;
    const char *text; /* the optional text (into the result) or "" */
    int status;       /* REJECT: 4 or 5 */
    char reason[CLEANUP_REASON_MAX + 1]; /* REJECT: "5.7.1 text", printable */
    const char *problem; /* why a result was taken as DUNNO, or NULL */
};

/*
 * Read a table result as header_checks(5) defines it (action names in any
 * case).  header: the line is a header, so PREPEND and REPLACE text must
 * be one ("Name: value").  Never fails: what cannot be done (an unknown
 * action, FILTER, REDIRECT, BCC, PREPEND without text ...) comes back as
 * DUNNO with problem set, for the caller to log, as Postfix does.
 */
void cleanup_action_parse(const char *result, bool header,
                          struct cleanup_action *a);

/*
 * Postfix's log line for a fired action:
 *   "ID: reject: header Subject: xx from host[addr]; from=<s> to=<r>
 *    proto=ESMTP helo=<h>: 5.7.1 text"
 * what: "reject", "discard", "hold", "warning", "info"; where: "header"
 * or "body"; content (cut to 200 bytes, made printable); text may be
 * NULL or "".
 */
void cleanup_check_log_line(struct buf *out, const char *id, const char *what,
                            const char *where, const char *content,
                            size_t content_len,
                            const struct cleanup_envelope *env,
                            const char *text);

/* ---- the body, line by line (cleanup_body.c) ---- */

/* Content-Type of a header block, as far as MIME structure needs it. */
#define CLEANUP_BOUNDARY_MAX 200 /* RFC 2046 allows 70 */
enum cleanup_ctype_kind {
    CLEANUP_CT_OTHER,
    CLEANUP_CT_MULTIPART,
    CLEANUP_CT_MESSAGE
};
struct cleanup_ctype {
    enum cleanup_ctype_kind kind;
    char boundary[CLEANUP_BOUNDARY_MAX + 1]; /* CLEANUP_CT_MULTIPART */
};
/* Fold a "Content-Type: ..." header into ct (other headers: no change). */
void cleanup_ctype_note(struct cleanup_ctype *ct, const char *hdr, size_t len);

/* Deepest multipart nesting followed; deeper parts are plain body. */
#define CLEANUP_MIME_DEPTH_MAX 100

struct cleanup_body;

struct cleanup_body_limits {
    size_t line_max;   /* body lines are checked in pieces of this size */
    size_t header_max; /* one header block inside the body */
    size_t check_max;  /* body_checks_size_limit: bytes per MIME segment */
};

/*
 * The body after the primary header block, through check (headers of
 * parts and attached messages, body lines) to out.  primary: the
 * Content-Type of the primary header block.
 */
struct cleanup_body *cleanup_body_new(
    const struct cleanup_body_limits *lim, const struct cleanup_ctype *primary,
    cleanup_check_fn check, void *check_ctx,
    int (*out)(const char *data, size_t len, void *ctx), void *out_ctx);
void cleanup_body_free(struct cleanup_body *b);
/* Body bytes in order; 0, or -1 once a hook or out said stop. */
int cleanup_body_feed(struct cleanup_body *b, const char *data, size_t len);
/* End of body: pass on what is held back. */
int cleanup_body_finish(struct cleanup_body *b);

/* ---- content ---- */

enum cleanup_header_kind {
    HDR_OTHER,
    HDR_RECEIVED,
    HDR_MESSAGE_ID,
    HDR_DATE,
    HDR_FROM,
};

/* Length of the header name if line starts a header ("Name:"), else 0. */
size_t cleanup_header_name_len(const char *line, size_t len);
enum cleanup_header_kind cleanup_header_kind(const char *name, size_t len);

struct cleanup_content;

/* Sink for content bytes in output order; returns 0, or -1 to stop. */
typedef int (*cleanup_out_fn)(const char *data, size_t len, void *ctx);
/*
 * Called once when the header block is complete: write what goes before
 * it (Received:), the block itself (cleanup_content_header_block), then
 * whatever is missing.  Returns 0 or -1.
 */
typedef int (*cleanup_headers_fn)(struct cleanup_content *cc, void *ctx);

/*
 * header_limit: the header block is at most this many bytes; what comes
 * after is treated as body.
 */
struct cleanup_content *cleanup_content_new(size_t header_limit,
                                            cleanup_out_fn out,
                                            cleanup_headers_fn headers,
                                            void *ctx);
void cleanup_content_free(struct cleanup_content *cc);
/*
 * Run check on every header of the primary block before it is kept (the
 * headers cleanup adds itself are not checked, as in Postfix).  What the
 * block says about Message-ID:, Date:, From: and Received: is read after
 * the check, so an IGNOREd Message-ID: is added anew.
 */
void cleanup_content_set_check(struct cleanup_content *cc,
                               cleanup_check_fn check, void *ctx);
/* Feed content as it arrives (lines end in "\n" and may span calls). */
int cleanup_content_feed(struct cleanup_content *cc, const char *data,
                         size_t len);
/* End of content: finish the header block if still open. */
int cleanup_content_finish(struct cleanup_content *cc);

const struct buf *
cleanup_content_header_block(const struct cleanup_content *cc);
unsigned cleanup_content_received_count(const struct cleanup_content *cc);
bool cleanup_content_has(const struct cleanup_content *cc,
                         enum cleanup_header_kind kind);
/* Unfolded, trimmed value of the first Message-ID: header, or "". */
const char *cleanup_content_message_id(const struct cleanup_content *cc);

/* ---- added headers ---- */

/* "Mon, 23 Nov 2026 10:18:01 +0000 (UTC)" in local time (Postfix style). */
void cleanup_format_date(struct buf *out, time_t t);

struct cleanup_received {
    const char *helo;        /* NULL: use client_name */
    const char *client_name; /* NULL with client_addr NULL: local */
    const char *client_addr;
    const char *tls; /* NULL or text for a "(...)" line */
    const char *myhostname;
    const char *mail_name; /* "posthorn" */
    const char *protocol;  /* ESMTP ... */
    const char *queue_id;
    const char *rcpt; /* set only with exactly one recipient */
    time_t when;
};

/* The complete Received: header, folded, ending in "\n". */
void cleanup_format_received(struct buf *out, const struct cleanup_received *r);
/* "Message-ID: <YYYYMMDDhhmmss.ID@host>\n" (UTC timestamp). */
void cleanup_format_message_id(struct buf *out, time_t t, const char *id,
                               const char *host);

#endif
