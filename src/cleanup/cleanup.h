/*
 * cleanup.h - the pieces of the cleanup daemon, shared between its files.
 *
 *   cleanup.c           main(), the smtpd->cleanup protocol, queue file
 *   cleanup_envelope.c  validate the envelope frame (untrusted)
 *   cleanup_expand.c    virtual_alias_maps and alias_maps expansion
 *   cleanup_content.c   split the content into header block and body,
 *                       note the headers cleanup cares about
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
