/*
 * greylist - the built-in greylisting policy service.  smtpd asks it at
 * RCPT TO with check_policy_service, in Postfix's policy delegation
 * protocol, so postgrey or any other policy server can take its place
 * (and it can serve a Postfix):
 *
 *     master.cf:  greylist  unix  -  -  n  -  -  greylist
 *     main.cf:    smtpd_recipient_restrictions = ...,
 *                     reject_unauth_destination,
 *                     check_policy_service unix:private/greylist
 *
 * The rules are postgrey's (docs/policy.md): the first delivery attempt
 * of a (client network, sender, recipient) triplet is deferred with
 * greylist_reject_action; a retry before greylist_delay is deferred
 * again; the first retry after it passes, with "PREPEND X-Greylist:
 * delayed N seconds by posthorn-greylist ..." (greylist_add_header), and
 * from then on the triplet passes at once (DUNNO) until it has not been
 * seen for greylist_max_age.  A retry after greylist_retry_window starts
 * over.  After greylist_auto_allow triplets of one client network passed,
 * the whole network passes.  Clients in greylist_client_whitelist are
 * never greylisted.  Requests other than protocol_state=RCPT get DUNNO.
 *
 * A single-client worker under the server skeleton: one smtpd connection
 * at a time, many requests on it.  The state is one LMDB file shared by
 * all greylist processes (greylist_db.c).
 *
 * Trusts main.cf.  Trusts nothing in a request: lines, attributes and
 * the request as a whole are bounded; a request that breaks the syntax
 * or lacks what greylisting needs gets "action=DUNNO" and a warning (the
 * smtpd's other restrictions still apply), and one larger than
 * GREYLIST_REQUEST_MAX ends the connection.  When the database fails the
 * answer is a temporary refusal (DEFER_IF_PERMIT 4.3.0) and an error is
 * logged: greylisting that cannot remember must not let everything in.
 * Fatal only at start: an unusable greylist_reject_action, a database
 * that cannot be opened, a whitelist table that cannot be opened.
 */
#include <errno.h>
#include <stddef.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "global/config.h"
#include "global/dsn.h"
#include "global/maps.h"
#include "global/server.h"
#include "greylist/greylist.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/stream.h"

/* Log text of a request value: enough to recognise, never too long. */
#define GREYLIST_LOG_MAX 256

static struct greylist_rules greylist_rules;
static struct greylist_db *greylist_db;
static struct maplist *greylist_whitelist;
static const char *greylist_action;   /* greylist_reject_action */
static const char *greylist_delims;   /* recipient_delimiter */
static const char *greylist_hostname; /* myhostname */
static bool greylist_header;
static int greylist_v4_prefix, greylist_v6_prefix;
static int greylist_idle_ms, greylist_read_ms;
static time_t greylist_next_clean;

/* ------------------------------------------------------------ start-up */

/* Greylisting must be temporary: refuse a configuration that is not. */
static void greylist_check_action(const char *action)
{
    static const char *const ok[] = {"DEFER_IF_PERMIT", "DEFER"};
    size_t n;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        n = strlen(ok[i]);
        if (strncasecmp(action, ok[i], n) == 0 &&
            (action[n] == 0 || action[n] == ' ' || action[n] == '\t'))
            return;
    }
    if (action[0] == '4' && action[1] >= '0' && action[1] <= '9' &&
        action[2] >= '0' && action[2] <= '9' &&
        (action[3] == 0 || action[3] == ' '))
        return;
    log_fatal("greylist_reject_action = %s: must start with "
              "DEFER_IF_PERMIT, DEFER or a 4NN code",
              action);
}

static void greylist_pre_init(void)
{
    struct config *cfg = config_global();
    const char *path = config_str(cfg, "greylist_database");
    char err[512];
    char *dir, *slash;

    greylist_rules.delay = config_time(cfg, "greylist_delay");
    greylist_rules.retry_window = config_time(cfg, "greylist_retry_window");
    greylist_rules.max_age = config_time(cfg, "greylist_max_age");
    greylist_rules.auto_allow = config_int(cfg, "greylist_auto_allow");
    greylist_v4_prefix = (int)config_int(cfg, "greylist_ipv4_prefix");
    greylist_v6_prefix = (int)config_int(cfg, "greylist_ipv6_prefix");
    greylist_action = config_str(cfg, "greylist_reject_action");
    greylist_header = config_bool(cfg, "greylist_add_header");
    greylist_delims = config_str(cfg, "recipient_delimiter");
    greylist_hostname = config_str(cfg, "myhostname");
    greylist_idle_ms =
        (int)config_time(cfg, "smtpd_policy_service_max_idle") * 1000;
    greylist_read_ms =
        (int)config_time(cfg, "smtpd_policy_service_timeout") * 1000;
    greylist_check_action(greylist_action);
    if (*path != '/')
        log_fatal("greylist_database = %s: must be an absolute path", path);
    /* Tables may be readable by root only, as for smtpd. */
    greylist_whitelist = maplist_open(
        config_str(cfg, "greylist_client_whitelist"), err, sizeof(err));
    if (greylist_whitelist == NULL)
        log_fatal("greylist_client_whitelist: %s", err);
    /*
     * Still root (master started as root): make the database's directory
     * and give it to mail_owner, who creates the file after the drop.
     */
    dir = xstrdup(path);
    if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
        *slash = 0;
        if (access(dir, F_OK) < 0) {
            struct passwd *pw;

            if (mkdir_p(dir, 0700) < 0)
                log_fatal("greylist_database: create directory %s: %m", dir);
            if (geteuid() == 0 &&
                (pw = getpwnam(config_str(cfg, "mail_owner"))) != NULL &&
                chown(dir, pw->pw_uid, pw->pw_gid) < 0)
                log_fatal("greylist_database: chown %s: %m", dir);
        }
    }
    free(dir);
}

static void greylist_post_init(void)
{
    struct config *cfg = config_global();
    const char *path = config_str(cfg, "greylist_database");
    char err[512];

    greylist_db = greylist_db_open(
        path, (size_t)config_size(cfg, "lmdb_map_size"), err, sizeof(err));
    if (greylist_db == NULL)
        log_fatal("greylist_database: %s", err);
}

/* ------------------------------------------------------------ requests */

/* The attributes greylisting looks at; others are read and ignored. */
struct greylist_request {
    struct buf request, state, client_address, client_name, sender, recipient;
    bool has_request, has_state, has_address, has_sender, has_recipient;
    bool has_name;
    const char *malformed; /* first syntax problem, or NULL */
};

static void greylist_request_reset(struct greylist_request *r)
{
    buf_reset(&r->request);
    buf_reset(&r->state);
    buf_reset(&r->client_address);
    buf_reset(&r->client_name);
    buf_reset(&r->sender);
    buf_reset(&r->recipient);
    r->has_request = r->has_state = r->has_address = false;
    r->has_sender = r->has_recipient = r->has_name = false;
    r->malformed = NULL;
}

static void greylist_request_free(struct greylist_request *r)
{
    buf_free(&r->request);
    buf_free(&r->state);
    buf_free(&r->client_address);
    buf_free(&r->client_name);
    buf_free(&r->sender);
    buf_free(&r->recipient);
}

static void greylist_take(struct greylist_request *r, const char *line,
                          size_t len)
{
    static const struct {
        const char *name;
        size_t off_buf, off_has;
    } fields[] = {
#define GREYLIST_FIELD(n, b, h)                                                \
    {n, offsetof(struct greylist_request, b),                                  \
     offsetof(struct greylist_request, h)}
        GREYLIST_FIELD("request", request, has_request),
        GREYLIST_FIELD("protocol_state", state, has_state),
        GREYLIST_FIELD("client_address", client_address, has_address),
        GREYLIST_FIELD("client_name", client_name, has_name),
        GREYLIST_FIELD("sender", sender, has_sender),
        GREYLIST_FIELD("recipient", recipient, has_recipient),
#undef GREYLIST_FIELD
    };
    const char *eq = memchr(line, '=', len);
    size_t namelen;

    if (eq == NULL || eq == line) {
        if (r->malformed == NULL)
            r->malformed = "a line that is not name=value";
        return;
    }
    if (memchr(line, 0, len) != NULL) {
        if (r->malformed == NULL)
            r->malformed = "a NUL byte";
        return;
    }
    namelen = (size_t)(eq - line);
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        bool *has = (bool *)((char *)r + fields[i].off_has);
        struct buf *b = (struct buf *)((char *)r + fields[i].off_buf);

        if (strlen(fields[i].name) != namelen ||
            memcmp(fields[i].name, line, namelen) != 0)
            continue;
        if (*has) {
            if (r->malformed == NULL)
                r->malformed = "an attribute given twice";
            return;
        }
        *has = true;
        buf_append(b, eq + 1, len - namelen - 1);
        return;
    }
}

/*
 * Read one request.  STREAM_OK with r filled (r->malformed may be set),
 * STREAM_EOF when the client hung up between requests, anything else
 * when the connection is no longer usable.
 */
static enum stream_status greylist_read(struct stream *s,
                                        struct greylist_request *r)
{
    struct buf line = BUF_INIT;
    size_t total = 0, nattr = 0;
    enum stream_status st;

    greylist_request_reset(r);
    stream_set_timeout(s, greylist_idle_ms);
    for (;;) {
        bool toolong = false;

        st = stream_read_line(s, &line, GREYLIST_LINE_MAX, NULL);
        /* The first line may be long in coming; the rest may not. */
        stream_set_timeout(s, greylist_read_ms);
        if (st == STREAM_TOOLONG) {
            /* The rest of the line was skipped: read on to the end. */
            toolong = true;
            if (r->malformed == NULL)
                r->malformed = "a line longer than 4096 bytes";
        } else if (st != STREAM_OK) {
            if (st == STREAM_EOF && nattr > 0)
                st = STREAM_ERROR; /* hung up inside a request */
            break;
        } else if (line.len == 0) {
            break;
        }
        total += line.len + 1;
        if (++nattr > GREYLIST_ATTR_MAX || total > GREYLIST_REQUEST_MAX) {
            log_warn("request with more than %d attributes or %d bytes: "
                     "closing the connection",
                     GREYLIST_ATTR_MAX, GREYLIST_REQUEST_MAX);
            st = STREAM_TOOLONG;
            break;
        }
        if (!toolong)
            greylist_take(r, line.data, line.len);
    }
    buf_free(&line);
    return st;
}

/* greylist_reject_action with %s (seconds) and %r (recipient domain). */
static void greylist_defer_text(struct buf *out, long long wait,
                                const char *recipient)
{
    const char *at = strrchr(recipient, '@');

    for (const char *p = greylist_action; *p; p++) {
        if (*p != '%' || p[1] == 0) {
            buf_putc(out, *p);
            continue;
        }
        switch (*++p) {
        case 's':
            buf_printf(out, "%lld", wait);
            break;
        case 'r':
            for (const char *d = at != NULL ? at + 1 : ""; *d; d++)
                if ((unsigned char)*d > ' ' && (unsigned char)*d < 0x7f)
                    buf_putc(out, *d);
            break;
        default:
            buf_putc(out, *p);
            break;
        }
    }
}

static bool greylist_whitelisted(const struct greylist_request *r)
{
    struct buf result = BUF_INIT;
    char err[512];
    const char *name = buf_cstr(&r->client_name);
    enum map_result m;

    if (maplist_empty(greylist_whitelist))
        return false;
    m = maplist_lookup(greylist_whitelist, buf_cstr(&r->client_address),
                       &result, err, sizeof(err));
    if (m == MAP_NOTFOUND && *name && strcmp(name, "unknown") != 0)
        m = maplist_lookup(greylist_whitelist, name, &result, err, sizeof(err));
    buf_free(&result);
    if (m == MAP_ERROR)
        log_warn("greylist_client_whitelist: %s (greylisting the client)", err);
    return m == MAP_FOUND;
}

static void greylist_log(const char *action, const char *reason,
                         const struct greylist_request *r)
{
    char name[GREYLIST_LOG_MAX], addr[GREYLIST_LOG_MAX];
    char sender[GREYLIST_LOG_MAX], rcpt[GREYLIST_LOG_MAX];

    log_info(
        "action=%s, reason=%s, client_name=%s, client_address=%s, "
        "sender=%s, recipient=%s",
        action, reason,
        log_printable(name, sizeof(name), r->client_name.data,
                      r->client_name.len),
        log_printable(addr, sizeof(addr), r->client_address.data,
                      r->client_address.len),
        log_printable(sender, sizeof(sender), r->sender.data, r->sender.len),
        log_printable(rcpt, sizeof(rcpt), r->recipient.data, r->recipient.len));
}

/* The action for one well-formed request. */
static void greylist_decide(const struct greylist_request *r,
                            struct buf *action)
{
    struct greylist_result res;
    struct buf sender = BUF_INIT, key = BUF_INIT;
    char net[128], err[512], why[64];

    if (strcmp(buf_cstr(&r->state), "RCPT") != 0) {
        buf_puts(action, "DUNNO");
        return;
    }
    if (greylist_client_net(buf_cstr(&r->client_address), greylist_v4_prefix,
                            greylist_v6_prefix, net, sizeof(net)) < 0) {
        char addr[GREYLIST_LOG_MAX];

        log_warn("request with a malformed client_address \"%s\": DUNNO",
                 log_printable(addr, sizeof(addr), r->client_address.data,
                               r->client_address.len));
        buf_puts(action, "DUNNO");
        return;
    }
    if (greylist_whitelisted(r)) {
        greylist_log("pass", "client whitelist", r);
        buf_puts(action, "DUNNO");
        return;
    }
    greylist_sender_key(buf_cstr(&r->sender), greylist_delims, &sender);
    greylist_triplet_key(net, sender.data, buf_cstr(&r->recipient), &key);
    if (greylist_db_check(greylist_db, &greylist_rules, net, &key, time(NULL),
                          &res, err, sizeof(err)) < 0) {
        log_error("%s", err);
        buf_puts(action,
                 "DEFER_IF_PERMIT 4.3.0 Greylisting temporarily unavailable");
        goto out;
    }
    switch (res.verdict) {
    case GREYLIST_DEFER_NEW:
    case GREYLIST_DEFER_EARLY:
        greylist_log("greylist",
                     res.verdict == GREYLIST_DEFER_NEW ? "new" : "early-retry",
                     r);
        greylist_defer_text(action, res.wait, buf_cstr(&r->recipient));
        break;
    case GREYLIST_PASS_FIRST:
        snprintf(why, sizeof(why), "triplet passed after %llds", res.delayed);
        greylist_log("pass", why, r);
        if (greylist_header) {
            struct buf date = BUF_INIT;

            dsn_format_date(&date, time(NULL));
            buf_printf(action,
                       "PREPEND X-Greylist: delayed %lld seconds by "
                       "posthorn-greylist at %s; %s",
                       res.delayed, greylist_hostname, buf_cstr(&date));
            buf_free(&date);
        } else {
            buf_puts(action, "DUNNO");
        }
        break;
    case GREYLIST_PASS:
        greylist_log("pass", "triplet found", r);
        buf_puts(action, "DUNNO");
        break;
    case GREYLIST_PASS_AUTO:
        greylist_log("pass", "client network auto-allowed", r);
        buf_puts(action, "DUNNO");
        break;
    }
out:
    buf_free(&sender);
    buf_free(&key);
}

/* The action for any request that was read whole. */
static void greylist_answer(const struct greylist_request *r,
                            struct buf *action)
{
    const char *missing = NULL;

    if (r->malformed != NULL) {
        log_warn("malformed request (%s): DUNNO", r->malformed);
        buf_puts(action, "DUNNO");
        return;
    }
    if (!r->has_request ||
        strcmp(buf_cstr(&r->request), "smtpd_access_policy") != 0) {
        log_warn("request without request=smtpd_access_policy: DUNNO");
        buf_puts(action, "DUNNO");
        return;
    }
    if (!r->has_state)
        missing = "protocol_state";
    else if (strcmp(buf_cstr(&r->state), "RCPT") == 0) {
        if (!r->has_address)
            missing = "client_address";
        else if (!r->has_sender)
            missing = "sender";
        else if (!r->has_recipient || r->recipient.len == 0)
            missing = "recipient";
    }
    if (missing != NULL) {
        log_warn("request without %s: DUNNO", missing);
        buf_puts(action, "DUNNO");
        return;
    }
    greylist_decide(r, action);
}

static void greylist_clean_step(void)
{
    time_t now = time(NULL);
    char err[512];
    long removed;

    if (now < greylist_next_clean)
        return;
    removed =
        greylist_db_clean(greylist_db, &greylist_rules, now, err, sizeof(err));
    if (removed < 0) {
        log_error("clean-up: %s", err);
        greylist_next_clean = now + 60;
        return;
    }
    if (removed > 0)
        log_info("removed %ld expired entries", removed);
    /* Not due, or a sweep step done: look again after the next request,
       but at most once a second per process. */
    greylist_next_clean = now + 1;
}

static void greylist_serve(int fd)
{
    struct stream *s = stream_open(fd);
    struct greylist_request r;
    struct buf action = BUF_INIT;

    memset(&r, 0, sizeof(r));
    while (!server_should_exit()) {
        enum stream_status st = greylist_read(s, &r);

        if (st == STREAM_EOF)
            break;
        if (st != STREAM_OK) {
            if (st == STREAM_TIMEOUT)
                log_debug("client idle too long: closing");
            else if (st != STREAM_TOOLONG)
                log_warn("reading a request: %s", stream_error(s));
            break;
        }
        buf_reset(&action);
        greylist_answer(&r, &action);
        stream_printf(s, "action=%s\n\n", buf_cstr(&action));
        if (stream_flush(s) != STREAM_OK)
            break;
        greylist_clean_step();
    }
    greylist_request_free(&r);
    buf_free(&action);
    stream_release_fd(s); /* the skeleton closes it */
    stream_close(s);
}

int main(int argc, char **argv)
{
    static const struct server_opts opts = {
        .name = "greylist",
        .pre_init = greylist_pre_init,
        .post_init = greylist_post_init,
        .serve = greylist_serve,
    };

    return server_main(argc, argv, &opts);
}
