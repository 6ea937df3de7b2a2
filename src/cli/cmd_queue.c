/*
 * cmd_queue - `posthorn queue`, Postfix's postqueue:
 *
 *   posthorn queue -p   the mailq listing (Postfix's layout, column for
 *                       column): ID with '*' (active) or '!' (hold), size,
 *                       arrival time, sender, then the recipients not yet
 *                       delivered, each group of deferred ones under its
 *                       "(delay reason)"; "-- N Kbytes in M Requests."
 *   posthorn queue -j   one JSON object per message (JSON Lines) with
 *                       Postfix's field names: queue_name, queue_id,
 *                       arrival_time, message_size, forced_expire, sender,
 *                       recipients [{address, orig_address, delay_reason}]
 *   posthorn queue -f   flush: ask qmgr to retry every deferred message now
 *   posthorn queue -s site   the same for mail to one destination
 *   posthorn queue -i ID     the same for one message
 *
 * The listing reads incoming/, active/, deferred/ and hold/ under
 * queue_directory directly (flat, or hashed one level deep by a
 * one-hex-digit directory) and defer/<ID> for delay reasons
 * (global/defer_log.h).  Queue files are parsed by qfile_read_envelope, so
 * a torn or foreign file is reported on stderr and skipped, never
 * half-printed; a file that disappears while we look (qmgr moved or
 * removed it) is skipped silently.  Nothing is written.  Text that came
 * from the network (addresses, delay reasons) is made safe for the
 * terminal (-p) or escaped as valid UTF-8 JSON (-j).
 *
 * -f, -s and -i only send a request to qmgr's socket (private/qmgr or
 * public/qmgr, mail_proto.h) and return: qmgr does the work, and says in
 * the log what it did.  The site and the ID are checked here (bounded,
 * no control characters) before they go out; qmgr checks them again.
 * Reading the queue needs the rights of mail_owner or root (the queue
 * directories are 0700); the requests need access to qmgr's socket.
 *
 * Also home of what the other queue commands share (cmd_queue.h).
 * Exit status: 0, 1 when the configuration or the queue cannot be read
 * or qmgr cannot be reached, 2 for usage.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "cli/cmd_queue.h"
#include "global/config.h"
#include "global/defer_log.h"
#include "global/mail_proto.h"
#include "global/qfile.h"
#include "util/argv.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/mem.h"
#include "util/sock.h"
#include "util/str.h"

/* Postfix's mailq columns (short queue IDs). */
#define QUEUE_STRING_FORMAT "%-11s %7s %-20s %s\n"
#define QUEUE_SENDER_FORMAT "%-11s %7lld %20.20s %s\n"
#define QUEUE_REASON_COLUMN 76

/* The queues listed, in Postfix's showq order. */
static const char *const queue_names[] = {
    MAIL_QUEUE_INCOMING,
    MAIL_QUEUE_ACTIVE,
    MAIL_QUEUE_DEFERRED,
    MAIL_QUEUE_HOLD,
};

/* How long a request to qmgr may take to connect and go out. */
#define QUEUE_TRIGGER_TIMEOUT_MS 10000
/* Longest site name for -s (a domain name). */
#define QUEUE_SITE_MAX 255

static int queue_item_cmp(const void *a, const void *b)
{
    return strcmp(((const struct queue_item *)a)->id,
                  ((const struct queue_item *)b)->id);
}

static void queue_items_add(struct queue_items *l, const char *queue,
                            const char *dir, const char *id)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 32;
        l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
    }
    l->v[l->n].queue = queue;
    l->v[l->n].id = xstrdup(id);
    l->v[l->n].path = xasprintf("%s/%s", dir, id);
    l->n++;
}

void queue_items_free(struct queue_items *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].id);
        free(l->v[i].path);
    }
    free(l->v);
}

static bool is_hash_dir_name(const char *s)
{
    return s[0] != 0 && s[1] == 0 && strchr("0123456789ABCDEF", s[0]) != NULL;
}

int queue_scan(const char *queue, const char *dir, bool top,
               struct queue_items *out)
{
    struct dirent *e;
    DIR *d = opendir(dir);
    size_t first = out->n;

    if (d == NULL) {
        if (errno == ENOENT)
            return 0;
        fprintf(stderr, "posthorn queue: open %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (top && is_hash_dir_name(e->d_name)) {
            char *sub = xasprintf("%s/%s", dir, e->d_name);
            struct stat st;
            if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode)) {
                int rc = queue_scan(queue, sub, false, out);
                free(sub);
                if (rc < 0) {
                    closedir(d);
                    return -1;
                }
                continue;
            }
            free(sub);
        }
        if (mail_queue_id_ok(e->d_name))
            queue_items_add(out, queue, dir, e->d_name);
    }
    closedir(d);
    if (top && out->n - first > 1)
        qsort(out->v + first, out->n - first, sizeof(*out->v), queue_item_cmp);
    return 0;
}

void queue_format_time(char *out, size_t size, time_t t)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed",
                                       "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
                                         "May", "Jun", "Jul", "Aug",
                                         "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;

    localtime_r(&t, &tm);
    snprintf(out, size, "%s %s %2d %02d:%02d:%02d %d", days[tm.tm_wday % 7],
             months[tm.tm_mon % 12], tm.tm_mday, tm.tm_hour, tm.tm_min,
             tm.tm_sec, tm.tm_year + 1900);
}

/* Terminal-safe copy: control bytes become '?'. */
static char *queue_printable(const char *s)
{
    char *copy = xstrdup(s);

    for (char *p = copy; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return copy;
}

/* Length of a valid UTF-8 sequence at s (RFC 3629), or 0. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4;
    else
        return 0;
    /* No overlong forms, no surrogates, nothing above U+10FFFF. */
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

/* A JSON string literal; invalid UTF-8 bytes become U+FFFD. */
static void json_string(struct buf *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    buf_putc(out, '"');
    while (*p) {
        size_t n;

        switch (*p) {
        case '"':
            buf_puts(out, "\\\"");
            break;
        case '\\':
            buf_puts(out, "\\\\");
            break;
        case '\b':
            buf_puts(out, "\\b");
            break;
        case '\f':
            buf_puts(out, "\\f");
            break;
        case '\n':
            buf_puts(out, "\\n");
            break;
        case '\r':
            buf_puts(out, "\\r");
            break;
        case '\t':
            buf_puts(out, "\\t");
            break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                buf_printf(out, "\\u%04x", *p);
                break;
            }
            if ((n = utf8_len(p)) == 0) {
                buf_puts(out, "\\ufffd");
                break;
            }
            buf_append(out, p, n);
            p += n;
            continue;
        }
        p++;
    }
    buf_putc(out, '"');
}

/* The delay reason recorded for addr, or "". */
static const char *queue_reason(const struct defer_log_entry *d, long nd,
                                const char *addr)
{
    for (long i = 0; i < nd; i++)
        if (strcmp(d[i].addr, addr) == 0)
            return d[i].reason;
    for (long i = 0; i < nd; i++)
        if (strcasecmp(d[i].addr, addr) == 0)
            return d[i].reason;
    return "";
}

static void queue_print_text(struct buf *out, const struct queue_item *it,
                             const struct qfile_envelope *env,
                             const struct defer_log_entry *d, long nd)
{
    char when[40], idst[MAIL_QUEUE_ID_MAX + 2];
    const char *saved = "";
    char *sender =
        queue_printable(*env->sender ? env->sender : "MAILER-DAEMON");

    snprintf(idst, sizeof(idst), "%s%s", it->id,
             strcmp(it->queue, MAIL_QUEUE_ACTIVE) == 0 ? "*"
             : strcmp(it->queue, MAIL_QUEUE_HOLD) == 0 ? "!"
                                                       : "");
    queue_format_time(when, sizeof(when), env->arrival);
    buf_printf(out, QUEUE_SENDER_FORMAT, idst, env->content_size, when, sender);
    free(sender);
    /* Deferred recipients first, grouped under their reason, as showq. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < env->nrcpt; i++) {
            const struct qfile_rcpt *r = &env->rcpts[i];
            const char *why = queue_reason(d, nd, r->addr);
            char *addr;

            if (r->done || (pass == 0) != (*why != 0))
                continue;
            if (strcmp(saved, why) != 0) {
                char *text = queue_printable(*why ? why : "reason unavailable");
                int pad = QUEUE_REASON_COLUMN - (int)strlen(text);
                buf_printf(out, "%*s(%s)\n", pad > 0 ? pad : 0, "", text);
                free(text);
                saved = why;
            }
            addr = queue_printable(r->addr);
            buf_printf(out, QUEUE_STRING_FORMAT, "", "", "", addr);
            free(addr);
        }
    }
}

static void queue_print_json(struct buf *out, const struct queue_item *it,
                             const struct qfile_envelope *env,
                             const struct defer_log_entry *d, long nd)
{
    bool first = true;

    buf_puts(out, "{\"queue_name\": ");
    json_string(out, it->queue);
    buf_puts(out, ", \"queue_id\": ");
    json_string(out, it->id);
    buf_printf(out,
               ", \"arrival_time\": %lld, \"message_size\": %lld, "
               "\"forced_expire\": false, \"sender\": ",
               (long long)env->arrival, env->content_size);
    json_string(out, *env->sender ? env->sender : "MAILER-DAEMON");
    buf_puts(out, ", \"recipients\": [");
    for (size_t i = 0; i < env->nrcpt; i++) {
        const struct qfile_rcpt *r = &env->rcpts[i];
        const char *why = queue_reason(d, nd, r->addr);

        if (r->done)
            continue;
        buf_puts(out, first ? "{\"address\": " : ", {\"address\": ");
        first = false;
        json_string(out, r->addr);
        if (*r->orig && strcmp(r->orig, r->addr) != 0) {
            buf_puts(out, ", \"orig_address\": ");
            json_string(out, r->orig);
        }
        if (*why) {
            buf_puts(out, ", \"delay_reason\": ");
            json_string(out, why);
        }
        buf_putc(out, '}');
    }
    buf_puts(out, "]}\n");
}

/*
 * List the queue under queue_dir to out.  Returns 0, or -1 when a queue
 * directory could not be read (what could be read is still listed).
 */
static int queue_list(const char *queue_dir, bool json, FILE *out)
{
    struct queue_items items = {0};
    long long total = 0;
    size_t shown = 0;
    int rc = 0;

    for (size_t q = 0; q < sizeof(queue_names) / sizeof(queue_names[0]); q++) {
        char *dir = xasprintf("%s/%s", queue_dir, queue_names[q]);
        if (queue_scan(queue_names[q], dir, true, &items) < 0)
            rc = -1;
        free(dir);
    }
    for (size_t i = 0; i < items.n; i++) {
        const struct queue_item *it = &items.v[i];
        struct qfile_envelope env;
        struct defer_log_entry *d = NULL;
        struct buf text = BUF_INIT;
        char err[512];
        bool corrupt;
        long nd;
        int fd = open(it->path, O_RDONLY | O_CLOEXEC);

        if (fd < 0) {
            if (errno != ENOENT)
                fprintf(stderr, "posthorn queue: open %s: %s\n", it->path,
                        strerror(errno));
            continue;
        }
        if (qfile_read_envelope(fd, &env, &corrupt, err, sizeof(err)) < 0) {
            fprintf(stderr, "posthorn queue: %s: %s\n", it->path, err);
            close(fd);
            continue;
        }
        close(fd);
        nd = defer_log_read(queue_dir, it->id, &d, err, sizeof(err));
        if (nd < 0) {
            fprintf(stderr, "posthorn queue: %s\n", err);
            nd = 0;
        }
        if (json) {
            queue_print_json(&text, it, &env, d, nd);
        } else {
            if (shown == 0)
                buf_printf(&text, QUEUE_STRING_FORMAT, "-Queue ID-", "--Size--",
                           "----Arrival Time----", "-Sender/Recipient-------");
            else
                buf_putc(&text, '\n');
            queue_print_text(&text, it, &env, d, nd);
        }
        fwrite(text.data, 1, text.len, out);
        total += env.content_size;
        shown++;
        buf_free(&text);
        defer_log_free(d, (size_t)nd);
        qfile_envelope_free(&env);
    }
    if (!json) {
        if (shown == 0)
            fprintf(out, "Mail queue is empty\n");
        else
            fprintf(out, "\n-- %lld Kbytes in %zu Request%s.\n", total / 1024,
                    shown, shown == 1 ? "" : "s");
    }
    queue_items_free(&items);
    return rc;
}

bool queue_locate(const char *queue_dir, const char *queue, const char *id,
                  struct buf *path)
{
    struct stat st;

    buf_reset(path);
    buf_printf(path, "%s/%s/%s", queue_dir, queue, id);
    if (lstat(path->data, &st) == 0 && S_ISREG(st.st_mode))
        return true;
    /* Hashed by the first character, as qfile's ID check looks. */
    buf_reset(path);
    buf_printf(path, "%s/%s/%c/%s", queue_dir, queue, id[0], id);
    return lstat(path->data, &st) == 0 && S_ISREG(st.st_mode);
}

struct config *queue_load_config(const char *confdir, const char *prog)
{
    struct config *cfg = config_new();
    char err[1024];

    if (config_load(cfg, confdir, NULL, err, sizeof(err)) < 0 ||
        config_check(cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        config_free(cfg);
        return NULL;
    }
    config_set_global(cfg);
    return cfg;
}

int queue_trigger(const char *request, size_t len, char *err, size_t errlen)
{
    char path[4096], why[512];
    int fd;

    mail_private_socket(path, sizeof(path), MAIL_SERVICE_QMGR);
    fd = sock_connect_unix(path, QUEUE_TRIGGER_TIMEOUT_MS, why, sizeof(why));
    if (fd < 0) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    if (write_all(fd, request, len) < 0) {
        snprintf(err, errlen, "write to %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* A destination for -s: a domain name or address literal, lowercased. */
static bool queue_site_ok(char *site)
{
    size_t n = strlen(site);

    if (n == 0 || n > QUEUE_SITE_MAX)
        return false;
    if (strspn(site, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789.-_[]:") != n)
        return false;
    str_lower(site);
    return true;
}

static int queue_usage(void)
{
    fprintf(stderr,
            "usage: posthorn queue -p | -j | -f | -s site | -i queue_id\n");
    return 2;
}

int cmd_queue(const char *confdir, int argc, char **argv)
{
    struct config *cfg;
    struct buf request = BUF_INIT;
    const char *what = NULL;
    char err[1024];
    int rc = 0;

    if (argc == 2 &&
        (strcmp(argv[1], "-p") == 0 || strcmp(argv[1], "-j") == 0)) {
        bool json = strcmp(argv[1], "-j") == 0;

        if ((cfg = queue_load_config(confdir, "posthorn queue")) == NULL)
            return 1;
        rc = queue_list(config_str(cfg, "queue_directory"), json, stdout);
        if (fflush(stdout) != 0 && errno != EPIPE) {
            fprintf(stderr, "posthorn queue: write: %s\n", strerror(errno));
            rc = -1;
        }
        config_free(cfg);
        return rc < 0 ? 1 : 0;
    }

    if (argc == 2 && strcmp(argv[1], "-f") == 0) {
        buf_puts(&request, "F");
        what = "flush mail queue";
    } else if (argc == 3 && strcmp(argv[1], "-s") == 0) {
        char *site = xstrdup(argv[2]);

        if (!queue_site_ok(site)) {
            fprintf(stderr, "posthorn queue: bad site name: %s\n", argv[2]);
            free(site);
            return 2;
        }
        buf_printf(&request, "S%s\n", site);
        free(site);
        what = "flush mail queue";
    } else if (argc == 3 && strcmp(argv[1], "-i") == 0) {
        if (!mail_queue_id_ok(argv[2])) {
            fprintf(stderr, "posthorn queue: invalid mail queue id: %s\n",
                    argv[2]);
            return 2;
        }
        buf_printf(&request, "Q%s\n", argv[2]);
        what = "schedule mail for delivery";
    } else {
        return queue_usage();
    }
    if ((cfg = queue_load_config(confdir, "posthorn queue")) == NULL) {
        buf_free(&request);
        return 1;
    }
    if (queue_trigger(request.data, request.len, err, sizeof(err)) < 0) {
        /* postqueue's words: the usual cause is a stopped mail system. */
        fprintf(stderr,
                "posthorn queue: fatal: Cannot %s - mail system is down "
                "(%s)\n",
                what, err);
        rc = 1;
    }
    buf_free(&request);
    config_free(cfg);
    return rc;
}
