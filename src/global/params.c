/*
 * params - the parameter table: every main.cf parameter posthorn
 * implements, declared once.
 *
 * Each row gives name, type, default, the unit of a bare time value and a
 * one-line doc; config.c validates with it, `posthorn conf -d` prints it
 * and `posthorn conf -D` turns it into docs/parameters.md.  Names and
 * defaults are Postfix's wherever Postfix has the concept; where posthorn's
 * default differs, the doc says why.  Rows are sorted by name (strcmp
 * order) so param_find can bisect; test_config checks the order.
 * Subsystems keep their rows in their own params_<area>.inc file, included
 * at the end of the table in any order: the table is sorted once, at first
 * use, and a duplicate name is a panic (a bug, caught by the unit tests).
 *
 * Computed defaults (def == NULL) are the host's name and what follows from
 * it, and the configuration directory; they read only gethostname() and
 * the configuration itself, never the network.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "global/config.h"
#include "util/log.h"
#include "util/mem.h"

/* Postfix's fallback domain when the host name has no usable domain. */
#define DEFAULT_DOMAIN "localdomain"
/* Where `posthorn` looks without -c (cli/cmd.h has the same default). */
#define DEFAULT_CONFIG_DIR "/etc/posthorn"

/*
 * Postfix's check_myhostname(): the kernel's host name, made fully
 * qualified with ".localdomain" when it has no dot.  No DNS lookup: a
 * daemon must start the same way with or without a resolver.
 */
static char *default_myhostname(struct config *cfg)
{
    char name[256];

    (void)cfg;
    if (gethostname(name, sizeof(name)) < 0 || name[0] == 0)
        return xstrdup("localhost." DEFAULT_DOMAIN);
    name[sizeof(name) - 1] = 0;
    if (strchr(name, '.') == NULL)
        return xasprintf("%s.%s", name, DEFAULT_DOMAIN);
    return xstrdup(name);
}

/* myhostname minus its first label, unless that leaves a single label. */
static char *default_mydomain(struct config *cfg)
{
    const char *host = config_str(cfg, "myhostname");
    const char *dot = strchr(host, '.');

    if (dot == NULL || strchr(dot + 1, '.') == NULL)
        return xstrdup(DEFAULT_DOMAIN);
    return xstrdup(dot + 1);
}

static char *default_config_directory(struct config *cfg)
{
    const char *dir = config_dir(cfg);

    return xstrdup(dir != NULL ? dir : DEFAULT_CONFIG_DIR);
}

/* The optional trailing fields of a row are zero unless named. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

/* Bounce/SMTP reply codes an administrator may tune. */
#define REPLY_CODE .min = 400, .max = 599

static struct param_def param_rows[] = {
    {"alias_database", PARAM_LIST, "", 0,
     "Alias files that newaliases rebuilds (posthorn map FILE compiles one "
     "today).",
     .flags = PARAM_NOT_YET},
    {"alias_maps", PARAM_LIST, "", 0,
     "Alias tables for local recipients. Postfix uses hash:/etc/aliases; "
     "posthorn starts empty so a new instance never reads the system's "
     "aliases unasked."},
    {"always_add_missing_headers", PARAM_BOOL, "no", 0,
     "Add missing From:, To:, Date: and Message-ID: headers to mail from "
     "remote clients too, not only to local submissions."},
    {"append_at_myorigin", PARAM_BOOL, "yes", 0,
     "Append @$myorigin to addresses without a domain."},
    {"append_dot_mydomain", PARAM_BOOL, "no", 0,
     "Append .$mydomain to domains without a dot (off, as in Postfix from "
     "compatibility level 1)."},
    {"biff", PARAM_BOOL, "no", 0,
     "Notify the comsat service of new local mail (Postfix's default is "
     "yes).",
     .flags = PARAM_NOT_YET},
    {"bounce_queue_lifetime", PARAM_TIME, "5d", 'd',
     "How long a bounce message stays in the queue before it is given up.",
     .min = 0},
    {"command_directory", PARAM_STR, "", 0,
     "Where the posthorn command is installed; empty means the directory of "
     "the posthorn program being run."},
    {"compatibility_level", PARAM_STR, "3.6", 0,
     "Accepted for Postfix configurations; posthorn always uses the defaults "
     "of current Postfix levels."},
    {"config_directory", PARAM_STR, NULL, 0,
     "The directory main.cf and master.cf are read from (-c, else "
     "/etc/posthorn).",
     .compute = default_config_directory},
    {"daemon_directory", PARAM_STR, "", 0,
     "Where master finds the daemon programs; empty means the directory of "
     "the running master (callers resolve it)."},
    {"daemon_timeout", PARAM_TIME, "18000s", 's',
     "How long a daemon may take for one request before its watchdog kills "
     "it.",
     .min = 1},
    {"data_directory", PARAM_STR, "/var/lib/posthorn", 0,
     "Directory for writable state that is not mail (caches, locks)."},
    {"default_destination_concurrency_limit", PARAM_INT, "20", 0,
     "Largest number of parallel deliveries to one destination.", .min = 1},
    {"default_destination_recipient_limit", PARAM_INT, "50", 0,
     "Largest number of recipients in one delivery request.", .min = 1},
    {"default_process_limit", PARAM_INT, "100", 0,
     "Processes per master.cf service whose maxproc is \"-\".", .min = 1},
    {"default_transport", PARAM_STR, "smtp", 0,
     "Transport for recipients in no local, virtual or relay domain."},
    {"delay_warning_time", PARAM_TIME, "0h", 'h',
     "Send a delay notice after mail is this old (0 = never).", .min = 0},
    {"disable_vrfy_command", PARAM_BOOL, "no", 0,
     "Refuse the SMTP VRFY command (502) instead of answering 252."},
    {"duplicate_filter_limit", PARAM_INT, "1000", 0,
     "How many recipients cleanup remembers to drop duplicates.", .min = 0},
    {"enable_original_recipient", PARAM_BOOL, "yes", 0,
     "Keep each recipient's original address for orig_to= and "
     "X-Original-To:."},
    {"header_size_limit", PARAM_SIZE, "102400", 0,
     "Largest message header (all header lines together), in bytes.", .min = 1},
    {"home_mailbox", PARAM_STR, "Maildir/", 0,
     "Mailbox relative to a local user's home; a trailing / means Maildir "
     "(Postfix's default is empty: mbox in /var/mail, which posthorn does not "
     "write)."},
    {"hopcount_limit", PARAM_INT, "50", 0,
     "Largest number of Received: headers before mail is bounced as a loop.",
     .min = 1},
    {"import_environment", PARAM_LIST,
     "TZ LANG=C POSTHORN_CONFIG_DIR ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS", 0,
     "Environment variables master passes to its workers (name or "
     "name=value); the sanitizer settings only matter to test builds."},
    {"in_flow_delay", PARAM_TIME, "1s", 's',
     "How long a receiving process waits when mail arrives faster than it is "
     "delivered (0 = never).",
     .min = 0, .max = 10},
    {"inet_interfaces", PARAM_LIST, "all", 0,
     "Addresses that inet services without a host part listen on (all, "
     "loopback-only or addresses)."},
    {"inet_protocols", PARAM_LIST, "all", 0,
     "Address families to use: all, ipv4, ipv6.", .values = "all|ipv4|ipv6"},
    {"initial_destination_concurrency", PARAM_INT, "5", 0,
     "Parallel deliveries to a destination before feedback raises or lowers "
     "them.",
     .min = 1},
    {"ipc_timeout", PARAM_TIME, "3600s", 's',
     "Time limit for one read or write on an internal connection.", .min = 1},
    {"line_length_limit", PARAM_INT, "2048", 0,
     "Longest SMTP line or header line kept as one; longer lines are refused "
     "or split.",
     .min = 512},
    {"lmdb_map_size", PARAM_SIZE, "16777216", 0,
     "Initial size of an lmdb: table; it doubles when full.", .min = 4096},
    {"local_destination_concurrency_limit", PARAM_INT, "2", 0,
     "Parallel deliveries to one local recipient.", .min = 1},
    {"local_destination_recipient_limit", PARAM_INT, "1", 0,
     "Recipients per local delivery request (1: one at a time).", .min = 1},
    {"local_recipient_maps", PARAM_LIST, "unix:passwd.byname $alias_maps", 0,
     "Tables of valid local recipients; empty accepts every local address "
     "(Postfix's proxy: prefix is not needed)."},
    {"local_transport", PARAM_STR, "local:$myhostname", 0,
     "Transport for recipients in $mydestination."},
    {"mail_name", PARAM_STR, "posthorn", 0,
     "The product name in the SMTP banner and Received: headers."},
    {"mail_owner", PARAM_STR, "posthorn", 0,
     "Unprivileged account the workers run as when master starts as root."},
    {"mail_version", PARAM_STR, "0.1", 0, "The posthorn version."},
    {"maillog_file", PARAM_STR, "", 0,
     "Write the log to this file (O_APPEND) instead of syslog; empty means "
     "syslog."},
    {"max_idle", PARAM_TIME, "100s", 's',
     "How long an idle worker waits for a client before it exits.", .min = 1},
    {"max_use", PARAM_INT, "100", 0,
     "How many clients a worker serves before it exits.", .min = 1},
    {"maximal_backoff_time", PARAM_TIME, "4000s", 's',
     "Longest time between delivery attempts of deferred mail.", .min = 1},
    {"maximal_queue_lifetime", PARAM_TIME, "5d", 'd',
     "How long mail is retried before it is returned as undeliverable (0 = "
     "try once).",
     .min = 0},
    {"message_size_limit", PARAM_SIZE, "10240000", 0,
     "Largest message accepted, envelope included, in bytes (0 = no "
     "limit)."},
    {"minimal_backoff_time", PARAM_TIME, "300s", 's',
     "Shortest time between delivery attempts of deferred mail.", .min = 1},
    {"mydestination", PARAM_LIST, "$myhostname, localhost.$mydomain, localhost",
     0, "Domains delivered by the local transport."},
    {"mydomain", PARAM_STR, NULL, 0,
     "This host's domain; default: $myhostname minus its first label, or "
     "localdomain.",
     .compute = default_mydomain},
    {"myhostname", PARAM_STR, NULL, 0,
     "This host's fully qualified name; default: gethostname(), with "
     ".localdomain added when it has no dot.",
     .compute = default_myhostname},
    {"mynetworks", PARAM_LIST, "127.0.0.0/8 [::1]/128", 0,
     "Trusted client networks (permit_mynetworks); addresses, CIDR blocks or "
     "tables."},
    {"mynetworks_style", PARAM_STR, "host", 0,
     "How Postfix derives mynetworks; posthorn implements only host (the "
     "loopback networks).",
     .values = "host|subnet|class", .flags = PARAM_NOT_YET},
    {"myorigin", PARAM_STR, "$myhostname", 0,
     "Domain appended to locally posted addresses without one."},
    {"qmgr_message_active_limit", PARAM_INT, "20000", 0,
     "Largest number of messages in the active queue.", .min = 1},
    {"queue_directory", PARAM_STR, "/var/spool/posthorn", 0,
     "The mail queue; also holds the private/ and public/ sockets."},
    {"queue_group_commit", PARAM_BOOL, "yes", 0,
     "Make queue files and Maildir deliveries durable with one shared "
     "syncfs() per group of concurrent writers instead of per-file fsync()."},
    {"queue_delivery_sync_delay", PARAM_INT, "10", 0,
     "Milliseconds qmgr lets local deliveries wait for a group-commit round "
     "run by someone else before it runs one itself; only then do they "
     "count as done.",
     .min = 0, .max = 60000},
    {"queue_minfree", PARAM_SIZE, "0", 0,
     "Free bytes the queue file system must keep; mail is refused below (0 = "
     "only message_size_limit's margin)."},
    {"queue_run_delay", PARAM_TIME, "300s", 's',
     "How often qmgr scans the deferred queue.", .min = 1},
    {"recipient_delimiter", PARAM_STR, "", 0,
     "Characters that separate a user name from an address extension "
     "(user+ext); empty: none."},
    {"relay_domains", PARAM_LIST, "", 0,
     "Domains this host relays mail to (empty, as in Postfix from "
     "compatibility level 2)."},
    {"relay_domains_reject_code", PARAM_INT, "554", 0,
     "Reply code when a recipient is refused because relaying is not allowed.",
     REPLY_CODE},
    {"relay_recipient_maps", PARAM_LIST, "", 0,
     "Tables of the valid recipients in $relay_domains (user@domain, or "
     "@domain for all of a domain); empty: every recipient there is valid."},
    {"relay_transport", PARAM_STR, "relay", 0,
     "Transport for recipients in $relay_domains."},
    {"relayhost", PARAM_STR, "", 0,
     "Next hop for mail to remote domains ([host]:port skips the MX lookup); "
     "empty: deliver directly."},
    {"service_name", PARAM_STR, "", 0,
     "The master.cf service a daemon runs as; set for each worker by master "
     "(for $service_name in overrides)."},
    {"smtpd_banner", PARAM_STR, "$myhostname ESMTP $mail_name", 0,
     "Text after 220 in the SMTP greeting; must start with $myhostname."},
    {"smtpd_client_connection_count_limit", PARAM_INT, "50", 0,
     "Simultaneous connections one client may have (0 = no limit).", .min = 0},
    {"smtpd_client_restrictions", PARAM_LIST, "", 0,
     "Access restrictions applied to the client's address and name."},
    {"smtpd_data_restrictions", PARAM_LIST, "", 0,
     "Access restrictions applied at the DATA command."},
    {"smtpd_delay_reject", PARAM_BOOL, "yes", 0,
     "Apply client, helo and sender restrictions at RCPT TO."},
    {"smtpd_discard_ehlo_keywords", PARAM_LIST, "", 0,
     "EHLO keywords the server does not announce (e.g. chunking, "
     "pipelining)."},
    {"smtpd_end_of_data_restrictions", PARAM_LIST, "", 0,
     "Access restrictions applied after the message content."},
    {"smtpd_error_sleep_time", PARAM_TIME, "1s", 's',
     "Pause before each reply once a client made smtpd_soft_error_limit "
     "errors.",
     .min = 0},
    {"smtpd_etrn_restrictions", PARAM_LIST, "", 0,
     "Access restrictions applied to the ETRN command."},
    {"smtpd_forbid_bare_newline", PARAM_STR, "normalize", 0,
     "What to do with a line ending in a bare LF: normalize (accept as CRLF), "
     "yes (refuse), no.",
     .values = "normalize|yes|no"},
    {"smtpd_hard_error_limit", PARAM_INT, "20", 0,
     "Errors after which the server says 421 and hangs up.", .min = 1},
    {"smtpd_helo_required", PARAM_BOOL, "no", 0,
     "Require HELO or EHLO before MAIL FROM."},
    {"smtpd_helo_restrictions", PARAM_LIST, "", 0,
     "Access restrictions applied to the HELO/EHLO name."},
    {"smtpd_junk_command_limit", PARAM_INT, "100", 0,
     "NOOP, VRFY, ETRN and RSET commands before they count as errors.",
     .min = 1},
    {"smtpd_recipient_limit", PARAM_INT, "1000", 0,
     "Largest number of recipients per message.", .min = 1},
    {"smtpd_recipient_restrictions", PARAM_LIST, "", 0,
     "Access restrictions applied at RCPT TO after the relay restrictions."},
    {"smtpd_reject_unlisted_recipient", PARAM_BOOL, "yes", 0,
     "Reject recipients in local or virtual domains that do not exist (550 "
     "5.1.1)."},
    {"smtpd_reject_unlisted_sender", PARAM_BOOL, "no", 0,
     "Reject senders in local or virtual domains that do not exist."},
    {"smtpd_relay_restrictions", PARAM_LIST,
     "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination",
     0, "Restrictions at RCPT TO that decide whether mail may be relayed."},
    {"smtpd_restriction_classes", PARAM_LIST, "", 0,
     "Names of parameters that hold restriction lists usable as one "
     "restriction."},
    {"smtpd_sender_restrictions", PARAM_LIST, "", 0,
     "Access restrictions applied to the MAIL FROM address."},
    {"smtpd_soft_error_limit", PARAM_INT, "10", 0,
     "Errors after which every reply is delayed by smtpd_error_sleep_time.",
     .min = 0},
    {"smtpd_timeout", PARAM_TIME, "300s", 's',
     "How long the server waits for a client command or data.", .min = 1},
    {"smtputf8_enable", PARAM_BOOL, "yes", 0,
     "Announce and accept SMTPUTF8 (RFC 6531)."},
    {"strict_rfc821_envelopes", PARAM_BOOL, "no", 0,
     "Require <> around MAIL FROM and RCPT TO addresses and nothing else but "
     "parameters."},
    {"syslog_facility", PARAM_STR, "mail", 0, "Syslog facility of the log.",
     .values = "mail|daemon|user|local0|local1|local2|local3|local4|local5|"
               "local6|local7"},
    {"syslog_name", PARAM_STR, "posthorn", 0,
     "Log tag prefix: lines read $syslog_name/smtpd[pid]; master.cf "
     "\"-o syslog_name=posthorn/submission\" gives "
     "posthorn/submission/smtpd[pid]."},
    {"transport_maps", PARAM_LIST, "", 0,
     "Tables that map recipients or domains to transport:nexthop."},
    {"unknown_local_recipient_reject_code", PARAM_INT, "550", 0,
     "Reply code for an unknown user in a local domain.", REPLY_CODE},
    {"unknown_relay_recipient_reject_code", PARAM_INT, "550", 0,
     "Reply code for a recipient in a relay domain that is not in "
     "$relay_recipient_maps.", REPLY_CODE},
    {"unknown_virtual_alias_reject_code", PARAM_INT, "550", 0,
     "Reply code for an unknown user in a virtual alias domain.", REPLY_CODE},
    {"unknown_virtual_mailbox_reject_code", PARAM_INT, "550", 0,
     "Reply code for an unknown user in a virtual mailbox domain.", REPLY_CODE},
    {"virtual_alias_domains", PARAM_LIST, "$virtual_alias_maps", 0,
     "Domains whose every address is an alias to elsewhere."},
    {"virtual_alias_expansion_limit", PARAM_INT, "1000", 0,
     "Largest number of recipients one virtual alias expansion may yield.",
     .min = 1},
    {"virtual_alias_maps", PARAM_LIST, "$virtual_maps", 0,
     "Alias tables applied by cleanup to every recipient (address -> "
     "addresses)."},
    {"virtual_alias_recursion_limit", PARAM_INT, "1000", 0,
     "Deepest nesting of virtual alias expansion.", .min = 1},
    {"virtual_destination_concurrency_limit", PARAM_INT,
     "$default_destination_concurrency_limit", 0,
     "Deliveries in flight at once into one virtual mailbox domain.", .min = 1},
    {"virtual_gid_maps", PARAM_LIST, "", 0,
     "Group id that owns virtual mailboxes (e.g. static:5000)."},
    {"virtual_mailbox_base", PARAM_STR, "", 0,
     "Directory that virtual_mailbox_maps results are relative to."},
    {"virtual_mailbox_domains", PARAM_LIST, "$virtual_mailbox_maps", 0,
     "Domains whose users have mailboxes on this host but no system account."},
    {"virtual_mailbox_maps", PARAM_LIST, "", 0,
     "Tables that map virtual addresses to mailboxes (a trailing / means "
     "Maildir)."},
    {"virtual_maps", PARAM_LIST, "", 0,
     "Obsolete name of virtual_alias_maps, kept so old configurations work."},
    {"virtual_minimum_uid", PARAM_INT, "100", 0,
     "Smallest uid a virtual mailbox may be owned by.", .min = 1},
    {"virtual_transport", PARAM_STR, "local", 0,
     "Transport for recipients in $virtual_mailbox_domains (Postfix: "
     "virtual; posthorn's local agent delivers virtual mailboxes too)."},
    {"virtual_uid_maps", PARAM_LIST, "", 0,
     "User id that owns virtual mailboxes (e.g. static:5000)."},

/* Rows of subsystems, each in its own file (see the header comment). */
#if __has_include("global/params_smtp.inc")
#define PARAMS_SMTP_PART 'd'
#include "global/params_smtp.inc"
#undef PARAMS_SMTP_PART
#define PARAMS_SMTP_PART 's'
#include "global/params_smtp.inc"
#undef PARAMS_SMTP_PART
#endif
#if __has_include("global/params_qmgr.inc")
#include "global/params_qmgr.inc"
#endif
#if __has_include("global/params_auth.inc")
#include "global/params_auth.inc"
#endif
#if __has_include("global/params_tls.inc")
#include "global/params_tls.inc"
#endif
#if __has_include("global/params_maps.inc")
#include "global/params_maps.inc"
#endif
#if __has_include("global/params_pop3d.inc")
#include "global/params_pop3d.inc"
#endif
#if __has_include("global/params_imapd.inc")
#include "global/params_imapd.inc"
#endif
#if __has_include("global/params_restrict.inc")
#include "global/params_restrict.inc"
#endif
#if __has_include("global/params_policy.inc")
#include "global/params_policy.inc"
#endif
};

const struct param_def *param_table = param_rows;
const size_t param_table_count = sizeof(param_rows) / sizeof(param_rows[0]);

static int param_cmp(const void *a, const void *b)
{
    return strcmp(((const struct param_def *)a)->name,
                  ((const struct param_def *)b)->name);
}

/* Sort once; called before any lookup (single-threaded processes). */
static void params_sort(void)
{
    static int sorted;

    if (sorted)
        return;
    qsort(param_rows, param_table_count, sizeof(param_rows[0]), param_cmp);
    for (size_t i = 1; i < param_table_count; i++)
        if (strcmp(param_rows[i - 1].name, param_rows[i].name) == 0)
            log_panic("parameter %s is declared twice", param_rows[i].name);
    sorted = 1;
}

const struct param_def *param_find(const char *name)
{
    size_t lo = 0, hi = param_table_count;

    params_sort();
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(name, param_table[mid].name);

        if (cmp == 0)
            return &param_table[mid];
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}
