/*
 * smtpd_check_impl - what the files of the restriction engine share;
 * nothing outside smtpd_check*.c, smtpd_access.c and smtpd_dns.c
 * includes it.
 *
 *   smtpd_check.c         start-up (lists, classes, tables, parameters),
 *                         the stage drivers and the evaluation loop,
 *                         rejections, defer_if_permit/defer_if_reject,
 *                         the log lines
 *   smtpd_check_table.c   the restriction table: one row per restriction
 *                         name and its handler
 *   smtpd_check_hooks.c   session hooks: client name and anvil at
 *                         connect, the transaction's actions for cleanup,
 *                         check_policy_service
 *   smtpd_access.c        access tables: Postfix's lookup order and what
 *                         a result (OK, REJECT, HOLD, ...) means
 *   smtpd_dns.c           DNS questions of the checks, cached per session
 *
 * Postfix's model: a restriction returns DUNNO (go on), OK (this list
 * permits) or REJECT (the stage fails, reply in run->reply).  Temporary
 * doubts are remembered instead of acted on at once: defer_if_permit
 * turns a later permit into a 4xx, defer_if_reject turns a later 5xx
 * into a 4xx.
 */
#ifndef SMTPD_CHECK_IMPL_H
#define SMTPD_CHECK_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "global/addr.h"
#include "global/dns.h"
#include "global/maps.h"
#include "smtpd/smtpd.h"
#include "smtpd/smtpd_check.h"
#include "util/argv.h"
#include "util/buf.h"

/* Postfix's nesting bound for access results and classes. */
#define CHECK_RECURSION_MAX 100
/* Longest reply text (RFC 5321 4.5.3.1.5: 512 with CRLF). */
#define CHECK_REPLY_MAX 510
/* "sleep N": N at most this many seconds. */
#define CHECK_SLEEP_MAX 3600
/* PREPEND headers one transaction may collect. */
#define CHECK_PREPEND_MAX 20
/* Longest PREPEND header, FILTER value or REDIRECT/BCC address. */
#define CHECK_ACTION_TEXT_MAX 1000

enum check_status { CHECK_DUNNO = 0, CHECK_OK = 1, CHECK_REJECT = 2 };

/* Postfix's error classes: software errors are never only warned about. */
enum check_error { CHECK_ERR_POLICY, CHECK_ERR_RESOURCE, CHECK_ERR_SOFTWARE };

/* Reply classes, as Postfix names them in its replies. */
#define CHECK_CLASS_CLIENT "Client host"
#define CHECK_CLASS_HELO "Helo command"
#define CHECK_CLASS_SENDER "Sender address"
#define CHECK_CLASS_RECIPIENT "Recipient address"
#define CHECK_CLASS_DATA "Data command"
#define CHECK_CLASS_EOD "End-of-data"

/* Client name lookup results (Postfix's SMTPD_PEER_CODE_*). */
enum check_peer { CHECK_PEER_OK, CHECK_PEER_TEMP, CHECK_PEER_PERM };

struct check_run;
struct check_item;
struct check_list;
struct check_policy_spec;

typedef enum check_status (*check_fn)(struct check_run *r,
                                      const struct check_item *it);

enum check_arg { ARG_NONE, ARG_TABLE, ARG_DOMAIN, ARG_SERVICE, ARG_NUMBER };

/* A restriction row (smtpd_check_table.c). */
struct restriction_def {
    const char *name;
    check_fn fn;
    enum check_arg arg;
    bool guards_relay; /* counts as the mandatory relay guard */
};

/* An opened access table, shared by every list that names it. */
struct check_table {
    char *spec;
    struct map *map; /* NULL: it did not open (error says why) */
    bool pattern;    /* pcre/regexp/cidr/socketmap: whole keys only */
    char *error;
};

/* One element of a list: a restriction, a class, or a bare table. */
struct check_item {
    const struct restriction_def *def; /* NULL: class or bare table */
    const struct check_list *cls;      /* restriction class */
    struct check_table *table;         /* check_*_access or bare table */
    char *arg;                         /* DOMAIN text */
    struct check_policy_spec *policy;  /* check_policy_service */
    char *rbl_addr;                    /* reject_rbl_client d=1.2.3.4 */
    long long number;                  /* sleep */
};

struct check_list {
    char *name; /* parameter or class name */
    struct check_item *v;
    size_t n;
};

/* Everything read at start-up. */
struct check_config {
    const struct smtpd_config *smtpd;
    struct check_list *client, *helo, *sender, *relay, *recipient, *data, *eod;
    struct htable *classes; /* name -> struct check_list */
    struct htable *tables;  /* spec -> struct check_table */
    struct maplist *sender_login_maps;
    struct maplist *relay_rcpt_maps; /* NULL: could not be opened */
    char *relay_rcpt_error;
    char *sender_login_error; /* smtpd_sender_login_maps did not open */
    struct dns_resolver *dns;
    struct cidr_list *limit_exceptions; /* smtpd_client_event_limit_... */
    const char *null_key;
    const char *delimiters;
    const char *policy_context;
    const char *policy_default_action;
    const char *service;
    bool peername_lookup;
    bool peername_hosts; /* /etc/hosts before DNS */
    bool access_parent_style;
    bool allow_untrusted_routing;
    bool delay_reject;
    int access_reject_code, access_defer_code, reject_code, defer_code;
    int unknown_client_code, unknown_hostname_code, unknown_address_code;
    int non_fqdn_code, invalid_hostname_code, rbl_code;
    long long conn_count_limit, conn_rate_limit, msg_rate_limit,
        rcpt_rate_limit;
};

extern struct check_config check_cfg;

/* A decision postponed (Postfix's SMTPD_DEFER). */
struct check_defer {
    bool active;
    enum check_error class;
    int code;
    char dsn[16];
    struct buf reason;
};

/* Per session (s->check). */
struct smtpd_check_state {
    char name[DNS_NAME_MAX + 1];         /* verified name or "unknown" */
    char reverse_name[DNS_NAME_MAX + 1]; /* PTR name or "unknown" */
    enum check_peer name_status, reverse_status;
    char *denied;  /* delay_reject=no: client rejected at connect */
    bool pregreet; /* input arrived before the greeting */
    bool anvil_connected;
    char server_addr[64], server_port[16]; /* our end of the connection */
    struct check_defer defer_if_permit, defer_if_reject;
    bool dip_client, dip_helo, dip_sender; /* defer_if_permit per stage */
    /* The transaction's actions for cleanup (reset with MAIL/RSET). */
    bool hold, discard;
    char *filter, *redirect, *bcc;
    struct argv prepend;
    char instance[64];
    unsigned instance_seq;
    struct htable *dns_cache; /* query -> struct smtpd_dns_answer */
};

/* One evaluation of one stage. */
struct check_run {
    struct smtpd_session *s;
    struct smtpd_check_state *st;
    const char *where;             /* CONNECT EHLO HELO MAIL RCPT DATA ... */
    const char *reply_name;        /* what is rejected: "<name>: ..." */
    const char *reply_class;       /* CHECK_CLASS_* */
    const char *def_acl;           /* what a bare "type:name" means, or NULL */
    const struct mailaddr *sender; /* NULL: no MAIL yet */
    const struct mailaddr *rcpt;   /* NULL: not at RCPT */
    const char *recipient;         /* for logs and the policy service:
                                      the RCPT, or the only recipient */
    int rcpt_class;                /* enum addr_class, -1 unknown */
    bool unlisted_done;            /* reject_unlisted_recipient ran */
    bool unlisted_sender_done;
    long long size; /* for the policy service */
    int recursion;
    int warn_if_reject; /* recursion level that set it, 0 = off */
    struct buf *reply;  /* the rejection, when REJECT */
    int code;           /* its code */
};

/* ---- smtpd_check.c ---- */

/*
 * Format a rejection the way Postfix's smtpd_check_reject does: checks
 * code and DSN, applies defer_if_reject to a 5xx, logs "reject:" (or
 * "reject_warning:" under warn_if_reject) and returns REJECT (or DUNNO
 * when only warned).  fmt gives the text after "CODE DSN ".
 */
enum check_status check_reject(struct check_run *r, enum check_error class,
                               int code, const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Remember a defer_if_permit / defer_if_reject (the first one wins). */
void check_defer_if(struct check_run *r, struct check_defer *d,
                    enum check_error class, int code, const char *dsn,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* defer_if_permit, or under warn_if_reject a logged warning. */
void check_defer_if_permit(struct check_run *r, enum check_error class,
                           int code, const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* "451 4.3.5 Server configuration error" after a warning. */
enum check_status check_config_error(struct check_run *r);
/* "NOQUEUE: what: WHERE from host[addr]: text; from=<> to=<> ..." */
void check_log(struct check_run *r, const char *what, const char *text);
/* Run one list (or a class, an access result) inside run r. */
enum check_status check_run_list(struct check_run *r,
                                 const struct check_list *l);
/*
 * Parse restriction names (an access-table result at run time: tables
 * are refused).  Returns the list, or NULL with err set.
 */
struct check_list *check_list_parse(const char *name, const struct argv *words,
                                    bool allow_tables, char *err,
                                    size_t errlen);
void check_list_free(struct check_list *l);
/* Address class of a (enum addr_class); -1 and a 451 reply on error. */
int check_addr_class(struct check_run *r, const struct mailaddr *a,
                     enum check_status *st);
/* The same for r->rcpt, computed once per run. */
int check_rcpt_class(struct check_run *r, enum check_status *st);
/* The client stage at connect (smtpd_delay_reject = no): 0 or -1. */
int check_connect_stage(struct smtpd_session *s, struct buf *reply);
/* Is r->rcpt's destination ours (1), not (0), or unknown (-1, replied)? */
int check_destination_ok(struct check_run *r, enum check_status *st);
/* The implicit/explicit unlisted checks. */
enum check_status check_unlisted(struct check_run *r, bool sender);

/* ---- smtpd_check_table.c ---- */
const struct restriction_def *restriction_find(const char *name);
extern const struct restriction_def restriction_warn_if_reject;

/* ---- smtpd_check_hooks.c ---- */
enum check_status check_policy(struct check_run *r,
                               const struct check_policy_spec *p);
/* "endpoint" or "{ endpoint, name=value, ... }": NULL with err. */
struct check_policy_spec *check_policy_spec_parse(const char *arg, char *err,
                                                  size_t errlen);
void check_policy_spec_free(struct check_policy_spec *p);
/* Is input waiting (pipelined, or sent before the greeting)? */
bool check_input_pending(struct smtpd_session *s);
/* The anvil message / recipient rate limits: 0, or -1 (replied). */
enum check_rate { CHECK_RATE_MESSAGE, CHECK_RATE_RECIPIENT };
int check_rate(struct smtpd_session *s, enum check_rate what);

/* ---- smtpd_access.c ---- */

/* Open (or share) the table spec; never NULL, see ->error. */
struct check_table *access_table_get(const char *spec);
void access_tables_free(void);
/*
 * The access result `value` found under `key` in `table`: Postfix's
 * access(5) actions, or restriction names evaluated recursively.
 */
enum check_status access_result(struct check_run *r, const char *table,
                                const char *value, const char *key);
/* Client: name and its parent domains, then the address and its nets. */
enum check_status access_client(struct check_run *r, struct check_table *t,
                                const char *name, const char *addr);
/* A host or domain name and its parent domains (helo). */
enum check_status access_domain(struct check_run *r, struct check_table *t,
                                const char *domain, bool *found);
/* An address: user+ext@domain, user@domain, domain..., user+ext@, user@. */
enum check_status access_mail(struct check_run *r, struct check_table *t,
                              const struct mailaddr *addr);
/* One key as given (the null sender's "<>"). */
enum check_status access_key(struct check_run *r, struct check_table *t,
                             const char *key, bool *found);

/* ---- smtpd_dns.c ---- */

/* PTR and forward-confirmed name of the client into st. */
void smtpd_dns_client_names(struct smtpd_check_state *st, const char *addr);
/*
 * A block-list query: DNS_OK with the A records in addrs (and the TXT
 * text in txt, "" when none), DNS_NOTFOUND when not listed, DNS_TEMPFAIL.
 */
enum dns_status smtpd_dns_list(struct smtpd_check_state *st, const char *query,
                               const struct argv **addrs, const char **txt);
/* Has the host name an A, AAAA or MX record?  OK, NOTFOUND, TEMPFAIL. */
enum dns_status smtpd_dns_host(struct smtpd_check_state *st, const char *name);
/* Does the mail domain exist: OK, NOTFOUND, NULLMX or TEMPFAIL. */
enum dns_status smtpd_dns_mail_domain(struct smtpd_check_state *st,
                                      const char *domain);
void smtpd_dns_cache_free(struct smtpd_check_state *st);

#endif
