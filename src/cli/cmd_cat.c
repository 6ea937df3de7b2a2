/*
 * cmd_cat - `posthorn cat`, Postfix's postcat: a queue file, readably.
 *
 *   posthorn cat [-e] [-h] [-b] [-q] ID|path...
 *
 * An argument with a "/" is a file name; otherwise it is a queue ID,
 * looked for in incoming/, active/, deferred/ (flat or hashed), hold/,
 * corrupt/ and maildrop/ -- again when the file moved while we looked
 * (qmgr works on).  -q is accepted for Postfix's "postcat -q ID".
 *
 * Without -e, -h or -b everything is shown, in Postfix's sections:
 *   *** ENVELOPE RECORDS queue/ID ***
 *   message_size, message_arrival_time, sender, named_attribute (name=value),
 *   per recipient: original_recipient, notify_flags, dsn_orig_rcpt when
 *   set, then "recipient:" (not yet delivered) or "done_recipient:"
 *   *** MESSAGE CONTENTS queue/ID ***
 *   the message as stored
 *   *** HEADER EXTRACTED queue/ID ***
 *   content_size (the 'Z' record that follows the content)
 *   *** MESSAGE FILE END queue/ID ***
 * -e shows the envelope (with the section lines), -h the message header,
 * -b the body; -h and -b alone print the bare text, as for piping.
 *
 * The file is read with qfile's reader (global/qfile.h), which checks the
 * whole record grammar first: a corrupt file is reported, not half-shown.
 * Envelope text (addresses, attributes from the network) has control
 * characters replaced; message content is printed as stored, as postcat
 * does.  Reading the queue needs root or mail_owner.  Exit status: 0, 1
 * when a file was not found or could not be read, 2 for usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "cli/cmd_queue.h"
#include "global/config.h"
#include "global/mail_proto.h"
#include "global/qfile.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

#define CAT_PROG "posthorn cat"
#define CAT_ENVELOPE 1
#define CAT_HEADER 2
#define CAT_BODY 4
/* A file that keeps moving away from us is given up after this. */
#define CAT_OPEN_TRIES 5
/* Envelope values shown at most this long. */
#define CAT_VALUE_MAX 8192

static const char *const cat_queues[] = {
    MAIL_QUEUE_INCOMING, MAIL_QUEUE_ACTIVE,  MAIL_QUEUE_DEFERRED,
    MAIL_QUEUE_HOLD,     MAIL_QUEUE_CORRUPT, MAIL_QUEUE_MAILDROP,
};

struct cat_content {
    FILE *out;
    unsigned flags;
    bool in_header;
    bool line_start;
};

/* Print "label: value" with control bytes made safe. */
static void cat_line(FILE *out, const char *label, const char *value)
{
    char safe[CAT_VALUE_MAX];

    log_printable(safe, sizeof(safe), value, strlen(value));
    fprintf(out, "%s: %s\n", label, safe);
}

static void cat_envelope(FILE *out, const struct qfile_envelope *env)
{
    char when[64];

    fprintf(out, "message_size: %lld\n", env->content_size);
    queue_format_time(when, sizeof(when), env->arrival);
    fprintf(out, "message_arrival_time: %s\n", when);
    cat_line(out, "sender", env->sender);
    for (size_t i = 0; i < env->attrs.n; i++)
        cat_line(out, "named_attribute", env->attrs.v[i]);
    for (size_t i = 0; i < env->nrcpt; i++) {
        const struct qfile_rcpt *r = &env->rcpts[i];

        if (*r->orig)
            cat_line(out, "original_recipient", r->orig);
        if (*r->notify)
            cat_line(out, "notify_flags", r->notify);
        if (*r->orcpt)
            cat_line(out, "dsn_orig_rcpt", r->orcpt);
        cat_line(out, r->done ? "done_recipient" : "recipient", r->addr);
    }
}

/*
 * Content in chunks: the header ends at the first empty line (which
 * belongs to neither part and is shown only with the whole message).
 */
static int cat_content_chunk(const char *data, size_t len, void *ctx)
{
    struct cat_content *c = ctx;
    bool all = (c->flags & (CAT_HEADER | CAT_BODY)) == (CAT_HEADER | CAT_BODY);
    size_t i = 0, start = 0;

    while (c->in_header && i < len) {
        if (c->line_start && data[i] == '\n') {
            if (c->flags & CAT_HEADER)
                fwrite(data + start, 1, i - start, c->out);
            if (all)
                fputc('\n', c->out);
            c->in_header = false;
            start = ++i;
            break;
        }
        c->line_start = data[i] == '\n';
        i++;
    }
    if (c->in_header) {
        if (c->flags & CAT_HEADER)
            fwrite(data + start, 1, len - start, c->out);
    } else if (c->flags & CAT_BODY) {
        fwrite(data + start, 1, len - start, c->out);
    }
    return ferror(c->out) ? -1 : 0;
}

/* Open the file an argument names; *shown gets "queue/ID" or the path. */
static int cat_open(const char *queue_dir, const char *arg, struct buf *shown)
{
    struct buf path = BUF_INIT;
    int fd = -1;

    buf_reset(shown);
    if (strchr(arg, '/') != NULL) {
        buf_puts(shown, arg);
        fd = open(arg, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            fprintf(stderr, "%s: open %s: %s\n", CAT_PROG, arg,
                    strerror(errno));
        return fd;
    }
    if (!mail_queue_id_ok(arg)) {
        char safe[80];
        fprintf(stderr, "%s: invalid mail queue id: %s\n", CAT_PROG,
                log_printable(safe, sizeof(safe), arg, strlen(arg)));
        return -1;
    }
    for (int tries = 0; tries < CAT_OPEN_TRIES && fd < 0; tries++) {
        bool found = false;

        for (size_t q = 0;
             q < sizeof(cat_queues) / sizeof(cat_queues[0]) && fd < 0; q++) {
            if (!queue_locate(queue_dir, cat_queues[q], arg, &path))
                continue;
            found = true;
            fd = open(path.data, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                buf_printf(shown, "%s/%s", cat_queues[q], arg);
            } else if (errno != ENOENT) {
                fprintf(stderr, "%s: open %s: %s\n", CAT_PROG, path.data,
                        strerror(errno));
                buf_free(&path);
                return -1;
            }
        }
        if (!found && fd < 0) {
            fprintf(stderr, "%s: %s: no such message\n", CAT_PROG, arg);
            break;
        }
    }
    buf_free(&path);
    return fd;
}

static int cat_one(const char *queue_dir, const char *arg, unsigned flags)
{
    struct qfile_envelope env;
    struct cat_content c = {stdout, flags, true, true};
    struct buf shown = BUF_INIT;
    bool corrupt, markers = (flags & CAT_ENVELOPE) != 0;
    char err[512];
    int fd, rc = 0;

    if ((fd = cat_open(queue_dir, arg, &shown)) < 0) {
        buf_free(&shown);
        return 1;
    }
    if (qfile_read_envelope(fd, &env, &corrupt, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s: %s\n", CAT_PROG, shown.data, err);
        close(fd);
        buf_free(&shown);
        return 1;
    }
    if (markers) {
        printf("*** ENVELOPE RECORDS %s ***\n", shown.data);
        cat_envelope(stdout, &env);
    }
    if (flags & (CAT_HEADER | CAT_BODY)) {
        if (markers)
            printf("*** MESSAGE CONTENTS %s ***\n", shown.data);
        if (qfile_read_content(fd, &env, cat_content_chunk, &c, err,
                               sizeof(err)) < 0) {
            fflush(stdout);
            fprintf(stderr, "%s: %s: %s\n", CAT_PROG, shown.data, err);
            rc = 1;
        }
    }
    if (markers && rc == 0) {
        printf("*** HEADER EXTRACTED %s ***\n", shown.data);
        printf("content_size: %lld\n", env.content_size);
        printf("*** MESSAGE FILE END %s ***\n", shown.data);
    }
    qfile_envelope_free(&env);
    close(fd);
    buf_free(&shown);
    return rc;
}

int cmd_cat(const char *confdir, int argc, char **argv)
{
    struct config *cfg;
    unsigned flags = 0;
    int i, rc = 0;

    for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] != 0; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        for (const char *p = argv[i] + 1; *p; p++) {
            switch (*p) {
            case 'e':
                flags |= CAT_ENVELOPE;
                break;
            case 'h':
                flags |= CAT_HEADER;
                break;
            case 'b':
                flags |= CAT_BODY;
                break;
            case 'q':
                break;
            default:
                fprintf(stderr, "usage: posthorn cat [-e] [-h] [-b] "
                                "ID|path...\n");
                return 2;
            }
        }
    }
    if (i >= argc) {
        fprintf(stderr, "usage: posthorn cat [-e] [-h] [-b] ID|path...\n");
        return 2;
    }
    if (flags == 0)
        flags = CAT_ENVELOPE | CAT_HEADER | CAT_BODY;
    if ((cfg = queue_load_config(confdir, CAT_PROG)) == NULL)
        return 1;
    for (; i < argc; i++)
        if (cat_one(config_str(cfg, "queue_directory"), argv[i], flags) != 0)
            rc = 1;
    if (fflush(stdout) != 0 && errno != EPIPE) {
        fprintf(stderr, "%s: write: %s\n", CAT_PROG, strerror(errno));
        rc = 1;
    }
    config_free(cfg);
    return rc;
}
