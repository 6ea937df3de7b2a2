/*
 * mail_proto - names shared by the processes: queue sub-directories,
 * socket names, and the attribute protocols spoken over them (frames as in
 * util/attr.h).  Every receiver validates what it gets as if it came from
 * the network.
 *
 * Queue directory ($queue_directory):
 *   incoming/  committed queue files waiting for qmgr (name = queue ID)
 *   active/    files qmgr is working on
 *   deferred/  files waiting for their retry time (mtime = next retry)
 *   hold/      held by the administrator
 *   maildrop/  local submissions (sendmail), mode 1733: see below
 *   corrupt/   files that failed to parse (never deleted automatically)
 *   defer/     per-message delay reasons, one file per queue ID
 *   tmp/       files being written by cleanup (not yet acknowledged)
 *   private/   unix sockets of internal services (0700)
 *   public/    unix sockets open to local users
 *   pid/       master.pid
 *
 * ---- smtpd -> cleanup  (unix socket private/cleanup) ----
 * One connection may carry several messages, one after another.
 * Client sends, in order:
 *   1. envelope frame:
 *        request=submit
 *        sender=<addr or empty for null sender>
 *        client_name, client_addr, client_port, helo, protocol (SMTP/ESMTP..)
 *        smtputf8=0|1, body=7BIT|8BITMIME|BINARYMIME, envid, ret=FULL|HDRS
 *        (optional), sasl_username (optional), tls (optional text for the
 *        Received header), arrival=<unix time>
 *        then for each accepted recipient, in order:
 *          rcpt=<addr>  followed by optional notify=..., orcpt=...
 *          (a notify/orcpt attribute belongs to the rcpt before it)
 *        and what smtpd's access restrictions decided (all optional):
 *          hold=1           commit into hold/ instead of incoming/
 *          discard=1        read the message, acknowledge it, queue nothing
 *          filter=<transport:nexthop>  content filter: cleanup writes the
 *                           attribute content_filter=... and qmgr routes
 *                           every recipient there
 *          redirect=<addr>  one recipient instead of all (then expanded)
 *          prepend=<Name: value>  a header above cleanup's Received:
 *                           (repeatable, at most CLEANUP_PREPEND_MAX)
 *          a BCC is one more rcpt= with notify=NEVER
 *   2. zero or more content frames:  data=<bytes>
 *        Content is the message with SMTP transparency removed (no dot
 *        stuffing) and every line ending normalised to "\n".  A content
 *        frame carries at most MAIL_PROTO_CHUNK bytes and lines may span
 *        frames.
 *   3. end frame: end=1       (or abort=1: forget the message, no reply);
 *        smtpd sends frames 1 and 2 lazily: the envelope goes out with the
 *        first full content frame, or with the end frame;
 *        end=1 may be followed by hold=1 and/or discard=1, decided by
 *        smtpd_end_of_data_restrictions after the content
 * cleanup replies to the end frame with one frame:
 *        status=0  queue_id=ID                      message committed
 *        status=4 | status=5  reason="4.3.0 text"   not committed
 * "committed" means the queue file and its directory entry are on stable
 * storage: only then may smtpd reply 250.
 *
 * ---- qmgr -> local  (unix socket private/local) ----
 * One connection carries many requests.  qmgr may send the next ones
 * before the first reply (pipelining); local answers each request with
 * one frame, in the order of the requests.
 * qmgr sends:
 *        request=deliver  queue_id=ID  queue=active  sender=<addr>
 *        arrival=<unix time>
 *        then per recipient: rcpt=<addr> orig_rcpt=<addr> offset=<n>
 *        (orig_rcpt/offset belong to the rcpt before them)
 * local replies with one frame, one group per recipient in request order:
 *        offset=<n> status=2|4|5 dsn=X.Y.Z reason=<text>
 * status 2 = delivered (Maildir file fsynced and linked into new/),
 * 4 = try again later, 5 = permanent failure.
 *
 * ---- qmgr -> smtp / lmtp  (unix socket private/<service>) ----
 * The qmgr -> local protocol, with these request attributes added before
 * the first rcpt:
 *        nexthop=<next hop>      required.  smtp: example.org (MX lookup,
 *                                A/AAAA without MX), example.org:2525,
 *                                [mx.example.org] or [192.0.2.1]:2525 (no
 *                                MX lookup), [ipv6:2001:db8::1]; lmtp: a
 *                                host (never MX), [host]:port, unix:/path
 *                                or unix:private/name (relative to
 *                                queue_directory).  "inet:" prefix ignored.
 *                                Default port 25 for smtp, 24 for lmtp.
 *        transport=smtp|lmtp     optional; default lmtp when the agent's
 *                                service is named "lmtp", else smtp
 *        active_time=<unix time> optional, may have a fraction: when qmgr
 *                                moved the message into active/ (delays=)
 * ENVID, RET, SMTPUTF8, BODY and each recipient's NOTIFY and ORCPT come
 * from the queue file, not from the request.  The reply adds:
 *        site_trouble=0|1        before the first group: 1 = recipients
 *                                were deferred and no server of the next
 *                                hop got past greeting and EHLO (or DNS
 *                                failed): negative concurrency feedback
 *        relay=host[ip]:port     per group: the server whose answer this
 *                                is, or "none" (DNS or connect failure)
 *        logged=1                per group: the agent has logged the
 *                                "to=<..>, relay=.., status=.." line itself
 *                                (as Postfix's smtp does); qmgr must not
 *                                log it again
 * status 2 = the next hop took responsibility (2xx to the end of data, or
 * LMTP's 2xx for that recipient).
 *
 * ---- sendmail -> maildrop/ -> pickup -> cleanup ----
 * maildrop/ is world-writable and sticky (1733, owned by mail_owner), so
 * any local user can drop a file but not list, read by name guessing
 * (names are random), rename or remove anyone else's.  sendmail writes
 * maildrop/.<random> (mode 0600 while written), makes it 0644, fsyncs it
 * and renames it to maildrop/<random> ([0-9a-f], no dot): only then does
 * it exit 0.  The file is a queue file (qfile.h) with this subset of the
 * grammar:  V T S R+ M B* Z E  -- no 'A' and no 'D' records, recipients
 * with empty orig/notify/orcpt fields, at most MAIL_MAILDROP_RCPT_MAX of
 * them, sender "" or an internal-form address, every recipient an
 * internal-form address.  Names starting with "." are files still being
 * written.  pickup (one persistent process) treats every file as hostile:
 * it checks type, link count, size, name and that grammar, logs the
 * owner's uid, and hands the message to cleanup with the smtpd -> cleanup
 * protocol (no client_* attributes: a local submission; uid=<owner> is
 * sent as an extra attribute).  It removes the file only after cleanup's
 * status=0; what fails the checks, or what cleanup refuses for good
 * (status=5), goes to corrupt/.
 *
 * ---- posthorn queue / super / sendmail -q -> qmgr  (socket qmgr) ----
 * The tools connect, write one request and hang up (qmgr.c has the
 * whole trigger list and its bounds):
 *        "F"            flush: every deferred message is due now
 *        "S" site "\n"  deferred mail with a recipient for that domain or
 *                       next hop is due now (queue -s, sendmail -qR)
 *        "Q" ID "\n"    that one message is scheduled now (queue -i)
 *        "D"            scan deferred/ (super -H released mail, due now)
 *        "I"            scan incoming/ (super -r requeued mail)
 *
 * ---- smtpd, pop3d, imapd, resolver -> auth  (unix socket private/auth) ----
 * One connection carries many requests, one at a time; clients keep it
 * (global/auth_client.h).  auth is the only reader of the passdb file.
 * Request "check a password":
 *        request=passdb_verify  user=<login name>  password=<bytes>
 *        client_addr=<numeric address> (optional)  service=smtp|pop3|imap
 * Request "look an account up" (recipient checks, mailbox location,
 * mechanisms that need the secret):
 *        request=passdb_lookup  user=<name>  want_secret=1 (optional)
 * Request "a mechanism that checked the secret itself (SCRAM) reports
 * its result", so failures are delayed, counted and logged like verify:
 *        request=passdb_report  user=<name>  result=ok|fail  reason=<text>
 *        client_addr=<numeric address> (optional)  service=smtp|pop3|imap
 *        -> status=ok (held back like a verify answer)
 *           | status=fail reason=malformed request
 * auth replies with one frame:
 *        status=ok  user=<canonical, lower case>  uid=<n>  gid=<n>
 *                   home=<absolute path>  (each of the three only when the
 *                   account has it)  password=<plain secret> (lookup with
 *                   want_secret=1 of a {PLAIN} account only)
 *        status=fail  reason=<text>        verify: wrong password, unknown
 *                                          user or login disabled (the
 *                                          client is not told which)
 *        status=notfound                   lookup: no such account
 *        status=tempfail  reason=<text>    passdb unset or unreadable,
 *                                          malformed request: try later
 * user is 1..255 bytes, password at most 511, both without NUL or control
 * characters; values are bounded to 4096 bytes per frame.  A verify
 * answer (ok or fail) may be held back for the failure delay
 * (auth_failure_delay, doubling per recent failure of the client address
 * or the user, up to auth_failure_max_delay); clients wait that long plus
 * 30s.  Lookups are never delayed and never count as failures.
 *
 * ---- smtpd -> anvil  (unix socket private/anvil) ----
 * One connection per smtpd process, kept (global/anvil_client.h); one
 * frame per request, answered at once.  ident is "service:address"
 * (smtp:192.0.2.1), 1..255 printable ASCII bytes without blanks.
 *        request=connect     ident=..  ->  status=0 count=<open now>
 *                                          rate=<connections this unit>
 *        request=disconnect  ident=..  ->  status=0
 *        request=message     ident=..  ->  status=0 rate=<MAIL FROMs>
 *        request=recipient   ident=..  ->  status=0 rate=<RCPT TOs>
 *        request=lookup      ident=..  ->  status=0 count rate message
 *                                          recipient (nothing counted)
 *        anything else / table full    ->  status=1 reason=<text>
 * Rates count events in the current anvil_rate_time_unit (one window per
 * ident, shared by the three rates, as in Postfix).  Connections are
 * tied to the anvil connection that reported them: when it closes, the
 * ones it did not disconnect end too, and a disconnect for an ident it
 * holds nothing of is ignored.  A frame that breaks the attr grammar or
 * exceeds 1024 bytes ends the connection.
 *
 * ---- smtpd -> policy services  (check_policy_service) ----
 * Not attr frames: Postfix's policy delegation protocol, "name=value\n"
 * lines ended by an empty line, answered by "action=...\n\n"
 * (smtpd/smtpd_policy.h, docs/policy.md).  The built-in greylist service
 * (src/greylist, socket private/greylist) speaks it too.
 */
#ifndef GLOBAL_MAIL_PROTO_H
#define GLOBAL_MAIL_PROTO_H

#include <stddef.h>
#include <stdint.h>

struct groupsync;

#define MAIL_QUEUE_INCOMING "incoming"
#define MAIL_QUEUE_ACTIVE "active"
#define MAIL_QUEUE_DEFERRED "deferred"
#define MAIL_QUEUE_HOLD "hold"
#define MAIL_QUEUE_CORRUPT "corrupt"
#define MAIL_QUEUE_DEFER_LOG "defer"
#define MAIL_QUEUE_TMP "tmp"
#define MAIL_QUEUE_PRIVATE "private"
#define MAIL_QUEUE_PUBLIC "public"
#define MAIL_QUEUE_PID "pid"
#define MAIL_QUEUE_MAILDROP "maildrop"
/*
 * recycle/: emptied queue files of finished messages, named by slot
 * number 0..MAIL_QUEUE_RECYCLE_SLOTS-1, that cleanup takes instead of
 * creating a new file (qfile.c): creating and freeing an inode per
 * message costs more than two renames on common file systems.  Nothing
 * in recycle/ is mail; recovery may remove it all.
 *
 * Which slots hold a file is kept in a bit map in the state block master
 * shares with its workers (MAIL_QUEUE_RECYCLE_MAP_OFFSET into it; see
 * server.h): qmgr sets a slot's bit after it filled the slot, a writer
 * takes a file by clearing a set bit first (atomically, so two writers
 * never race for one file) and then renaming the slot away.  The map is
 * a hint, recycle/ the truth: a stale bit costs one failed rename, a
 * file without its bit (master restarted) is found again when qmgr
 * starts (qfile_recycle_scan).  Processes without the map probe a few
 * slots below MAIL_QUEUE_RECYCLE_KEEP_SLOTS.
 */
#define MAIL_QUEUE_RECYCLE "recycle"
#define MAIL_QUEUE_RECYCLE_SLOTS 4096
#define MAIL_QUEUE_RECYCLE_MAP_OFFSET 4096
#define MAIL_QUEUE_RECYCLE_MAP_BYTES (MAIL_QUEUE_RECYCLE_SLOTS / 8)
/*
 * A file retired into one of the first KEEP_SLOTS slots, up to KEEP_MAX
 * bytes, keeps its blocks: cleanup overwrites them and cuts the rest,
 * which spares the file system a free and an allocation per message.
 * Other files are emptied at once, so recycle/ holds at most
 * KEEP_SLOTS x KEEP_MAX bytes (64 MiB); the other slots keep only an
 * inode each.
 */
#define MAIL_QUEUE_RECYCLE_KEEP_SLOTS 256
#define MAIL_QUEUE_RECYCLE_KEEP_MAX (256 * 1024)

#define MAIL_SERVICE_CLEANUP "cleanup"
#define MAIL_SERVICE_QMGR "qmgr"
#define MAIL_SERVICE_LOCAL "local"
#define MAIL_SERVICE_PICKUP "pickup"

/* Recipients one maildrop file may carry (sendmail and pickup agree). */
#define MAIL_MAILDROP_RCPT_MAX 2000

/* Largest content frame and largest non-content frame. */
#define MAIL_PROTO_CHUNK (64 * 1024)
#define MAIL_PROTO_FRAME_MAX (1024 * 1024)

/* Queue IDs: [0-9A-Za-z], at most this long (plus NUL). */
#define MAIL_QUEUE_ID_MAX 32

/*
 * "$queue_directory/private/<name>" into dst, or public/<name> when only
 * that socket exists (a master.cf entry with private=n); returns dst.
 */
char *mail_private_socket(char *dst, size_t size, const char *name);
/*
 * The group-commit state shared by cleanup and local
 * ($queue_directory/private/groupsync, util/groupsync.h), or NULL when
 * queue_group_commit is off or it cannot be opened (logged; callers then
 * fsync each file).
 */
struct groupsync *mail_queue_groupsync(void);
/*
 * The recycle/ slot map (MAIL_QUEUE_RECYCLE_SLOTS bits) in the state
 * block master shares, or NULL in a process master did not start.
 * Mapped once per process; a forked child shares it.
 */
uint64_t *mail_queue_recycle_map(void);
/* Unmap it and look again at the next call (for tests). */
void mail_queue_recycle_map_forget(void);
/* Size master gives the shared state block (group commit, slot map). */
#define MAIL_QUEUE_STATE_BYTES \
    (MAIL_QUEUE_RECYCLE_MAP_OFFSET + MAIL_QUEUE_RECYCLE_MAP_BYTES)
/* true if s is a syntactically valid queue ID (no '/' or '.'). */
int mail_queue_id_ok(const char *s);

#endif
