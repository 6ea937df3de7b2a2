/*
 * pickup_file - one file from maildrop/, treated as hostile: any local
 * user can put anything there (mail_proto.h, docs/sendmail.md).
 *
 * Checks, in order, before a byte of it goes anywhere: the name
 * (pickup_name_ok), that it is a regular file with one link and not a
 * symlink (O_NOFOLLOW), its size (message_size_limit plus room for the
 * envelope), the number of recipient records (counted before anything is
 * allocated for them), the whole record grammar (qfile_read_envelope),
 * then the maildrop subset of it -- no 'A' or 'D' records, recipients
 * with empty orig/notify/orcpt fields, at most MAIL_MAILDROP_RCPT_MAX of
 * them -- and every address the way cleanup will check it.  The owner's uid is
 * what the file system says (a user cannot create a file owned by
 * another), logged with the sender; a uid without a passwd entry is
 * accepted too.
 *
 * A good file is handed to cleanup exactly like an SMTP message (the
 * smtpd -> cleanup protocol, without client attributes: a local
 * submission, so cleanup adds Date:, Message-ID: and From: when they are
 * missing and expands aliases as for any other mail), and removed only
 * after cleanup's status=0, which means the queue file is durable.  A
 * crash in between submits it twice, never zero times.
 *
 * What fails a check, or what cleanup refuses for good (status=5), is
 * moved to corrupt/ (as "M" + time + inode in hex) and logged; nothing is
 * deleted.  status=4 leaves it for the next scan; an unreachable cleanup
 * ends the scan.  pickup never writes a maildrop file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "global/addr.h"
#include "global/mail_proto.h"
#include "global/qfile.h"
#include "pickup/pickup.h"
#include "util/attr.h"
#include "util/buf.h"
#include "util/htable.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/sock.h"
#include "util/stream.h"

#define PICKUP_NAME_MAX 64
#define PICKUP_CONNECT_TIMEOUT_MS 10000
/* Log text taken from a file is cut to this. */
#define PICKUP_LOG_TEXT_MAX 300
/* Reasons from cleanup kept for the log. */
#define PICKUP_REASON_MAX 600
/* Files remembered as already complained about (then forgotten). */
#define PICKUP_COMPLAINED_MAX 10000
/* qfile.h's record length field: at most 5 bytes. */
#define PICKUP_VARINT_MAX 5

bool pickup_name_ok(const char *name)
{
    size_t n = strlen(name);

    return n > 0 && n <= PICKUP_NAME_MAX &&
           strspn(name, "0123456789abcdefghijklmnopqrstuvwxyz"
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ_-") == n;
}

static bool has_8bit(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return true;
    return false;
}

/* What cleanup_envelope.c accepts: internal form, exactly. */
static bool pickup_addr_ok(const char *addr, bool smtputf8)
{
    struct mailaddr a;
    const char *why;
    size_t n = strlen(addr), used;
    struct buf path = BUF_INIT;
    bool ok;

    if (n == 0 || n > ADDR_PATH_MAX - 2)
        return false;
    buf_printf(&path, "<%s>", addr);
    ok = addr_parse_path(path.data, path.len, false, smtputf8, &a, &used,
                         &why) == 0;
    if (ok) {
        ok = used == path.len && strcmp(a.text, addr) == 0;
        addr_free(&a);
    }
    buf_free(&path);
    return ok;
}

/* The maildrop subset of the grammar; NULL when fine, else why not. */
static const char *pickup_check_envelope(const struct qfile_envelope *env,
                                         bool *smtputf8)
{
    *smtputf8 = has_8bit(env->sender);
    for (size_t i = 0; i < env->nrcpt; i++)
        if (has_8bit(env->rcpts[i].addr))
            *smtputf8 = true;
    if (env->attrs.n > 0)
        return "attribute record in a maildrop file";
    if (env->nrcpt == 0)
        return "no recipients";
    if (env->nrcpt > MAIL_MAILDROP_RCPT_MAX)
        return "too many recipients";
    if (*env->sender && !pickup_addr_ok(env->sender, *smtputf8))
        return "bad sender address";
    for (size_t i = 0; i < env->nrcpt; i++) {
        const struct qfile_rcpt *r = &env->rcpts[i];

        if (r->done)
            return "recipient marked done";
        if (*r->orig || *r->notify || *r->orcpt)
            return "recipient with orig/notify/orcpt fields";
        if (!pickup_addr_ok(r->addr, *smtputf8))
            return "bad recipient address";
    }
    return NULL;
}

/* The uid that owns maildrop/name (the link itself), or -1. */
static long pickup_owner(const char *name)
{
    struct stat st;
    int saved = errno;
    long uid = -1;

    if (fstatat(pickup_params.maildrop_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
        uid = (long)st.st_uid;
    errno = saved;
    return uid;
}

/* Have we warned about this file (dev, inode) already?  Remembers it. */
static bool pickup_complained(const struct stat *st)
{
    static struct htable *seen;
    char key[64];
    int saved = errno;
    bool old;

    if (seen == NULL || htable_count(seen) >= PICKUP_COMPLAINED_MAX) {
        htable_free(seen, NULL);
        seen = htable_new(64);
    }
    snprintf(key, sizeof(key), "%llu:%llu", (unsigned long long)st->st_dev,
             (unsigned long long)st->st_ino);
    old = htable_get(seen, key) != NULL;
    htable_put(seen, key, (void *)1);
    errno = saved;
    return old;
}

/*
 * Records of the envelope part, counted without building anything: a
 * hostile file of many small recipient records would make the envelope
 * reader allocate for each.  Stops at 'M', at anything unexpected (the
 * reader reports that), or past max recipients.  Returns false when
 * there are too many.
 */
static bool pickup_rcpt_count_ok(int fd, off_t size, size_t max)
{
    off_t pos = 0;
    size_t nrcpt = 0;

    while (pos < size) {
        unsigned char hdr[1 + PICKUP_VARINT_MAX];
        ssize_t n = pread(fd, hdr, sizeof(hdr), pos);
        size_t len = 0;
        int i;

        if (n < 2)
            return true;
        if (hdr[0] == QREC_MESSAGE)
            return true;
        if (hdr[0] == QREC_RCPT || hdr[0] == QREC_DONE) {
            if (++nrcpt > max)
                return false;
        } else if (strchr("VTSA", hdr[0]) == NULL) {
            return true;
        }
        for (i = 0; i < PICKUP_VARINT_MAX && 1 + i < n; i++) {
            len |= (size_t)(hdr[1 + i] & 0x7f) << (7 * i);
            if (!(hdr[1 + i] & 0x80))
                break;
        }
        if (i == PICKUP_VARINT_MAX || 1 + i >= n)
            return true;
        pos += 2 + i + (off_t)len;
    }
    return true;
}

/*
 * Move maildrop/name to corrupt/ under a name of our own (the user chose
 * this one) and log why.
 */
static void pickup_corrupt(const char *name, long uid, const char *why)
{
    char safe[PICKUP_LOG_TEXT_MAX];
    char dst[MAIL_QUEUE_ID_MAX];
    struct stat st;
    unsigned long long ino = 0;
    unsigned long t = (unsigned long)time(NULL);

    memset(&st, 0, sizeof(st));
    log_printable(safe, sizeof(safe), name, strlen(name));
    if (fstatat(pickup_params.maildrop_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
        ino = (unsigned long long)st.st_ino;
    for (int tries = 0; tries < 100; tries++, t++) {
        snprintf(dst, sizeof(dst), "M%lX%llX", t, ino);
        if (renameat2(pickup_params.maildrop_fd, name, pickup_params.corrupt_fd,
                      dst, RENAME_NOREPLACE) == 0) {
            log_warn("maildrop/%s: uid=%ld: %s; moved to corrupt/%s", safe, uid,
                     why, dst);
            return;
        }
        if (errno != EEXIST)
            break;
    }
    if (errno == ENOENT)
        return; /* its owner took it back */
    /* Said once per file: a user's directory that we may not move would
     * otherwise fill the log at every scan. */
    if (pickup_complained(&st)) {
        log_debug("maildrop/%s: still cannot move it to corrupt/", safe);
        return;
    }
    log_warn("maildrop/%s: uid=%ld: %s; cannot move it to corrupt/: %s", safe,
             uid, why, strerror(errno));
}

struct pickup_send {
    struct stream *s;
    struct buf frame;
};

static int pickup_send_chunk(const char *data, size_t len, void *ctx)
{
    struct pickup_send *ps = ctx;

    /* qfile chunks are at most QFILE_CHUNK_MAX == MAIL_PROTO_CHUNK. */
    buf_reset(&ps->frame);
    attr_put(&ps->frame, "data", data, len);
    attr_end(&ps->frame);
    stream_write(ps->s, ps->frame.data, ps->frame.len);
    return stream_status(ps->s) == STREAM_OK ? 0 : -1;
}

/*
 * Hand the message to cleanup.  Returns 0 (committed, id set), 4 or 5
 * (cleanup's verdict, reason set), -1 (cleanup unreachable or the
 * exchange broke), -2 (the file changed under us: corrupt).
 */
static int pickup_submit(int fd, const struct qfile_envelope *env,
                         bool smtputf8, long uid, char id[MAIL_QUEUE_ID_MAX],
                         char *reason, size_t reasonlen)
{
    struct pickup_send ps = {NULL, BUF_INIT};
    struct attr_list reply = ATTR_LIST_INIT;
    char path[4096], err[512];
    const char *why, *status;
    long long code;
    int cfd, rc = -1;

    mail_private_socket(path, sizeof(path), MAIL_SERVICE_CLEANUP);
    cfd = sock_connect_unix(path, PICKUP_CONNECT_TIMEOUT_MS, err, sizeof(err));
    if (cfd < 0) {
        log_warn("cannot connect to cleanup: %s", err);
        return -1;
    }
    ps.s = stream_open(cfd);
    stream_set_timeout(ps.s, (int)pickup_params.ipc_timeout_ms);

    attr_put_str(&ps.frame, "request", "submit");
    attr_put_str(&ps.frame, "sender", env->sender);
    attr_put_str(&ps.frame, "smtputf8", smtputf8 ? "1" : "0");
    /* Not (yet) used by cleanup: who submitted, for its records. */
    attr_put_int(&ps.frame, "uid", uid);
    for (size_t i = 0; i < env->nrcpt; i++)
        attr_put_str(&ps.frame, "rcpt", env->rcpts[i].addr);
    attr_end(&ps.frame);
    stream_write(ps.s, ps.frame.data, ps.frame.len);

    if (qfile_read_content(fd, env, pickup_send_chunk, &ps, err, sizeof(err)) <
        0) {
        if (stream_status(ps.s) == STREAM_OK) {
            /* The file, not cleanup: its owner rewrote it meanwhile. */
            buf_reset(&ps.frame);
            attr_put_str(&ps.frame, "abort", "1");
            attr_end(&ps.frame);
            stream_write(ps.s, ps.frame.data, ps.frame.len);
            (void)stream_flush(ps.s);
            snprintf(reason, reasonlen, "content: %s", err);
            rc = -2;
        } else {
            log_warn("sending to cleanup: %s", stream_error(ps.s));
        }
        goto out;
    }
    buf_reset(&ps.frame);
    attr_put_str(&ps.frame, "end", "1");
    attr_end(&ps.frame);
    stream_write(ps.s, ps.frame.data, ps.frame.len);
    if (stream_flush(ps.s) != STREAM_OK) {
        log_warn("sending to cleanup: %s", stream_error(ps.s));
        goto out;
    }
    if (attr_read(ps.s, &reply, MAIL_PROTO_FRAME_MAX, &why) != STREAM_OK) {
        log_warn("no reply from cleanup: %s", why ? why : "connection lost");
        goto out;
    }
    status = attr_get(&reply, "status");
    if (!attr_get_int(&reply, "status", &code) ||
        (code != 0 && code != 4 && code != 5)) {
        log_warn("bad reply from cleanup: status=%.20s",
                 status ? status : "(none)");
        goto out;
    }
    if (code == 0) {
        const char *qid = attr_get(&reply, "queue_id");
        if (qid == NULL || !mail_queue_id_ok(qid)) {
            log_warn("bad reply from cleanup: no valid queue_id");
            goto out;
        }
        snprintf(id, MAIL_QUEUE_ID_MAX, "%s", qid);
        rc = 0;
    } else {
        const char *r = attr_get(&reply, "reason");
        log_printable(reason, reasonlen, r ? r : "", r ? strlen(r) : 0);
        rc = (int)code;
    }
out:
    attr_list_free(&reply);
    buf_free(&ps.frame);
    stream_close(ps.s);
    return rc;
}

enum pickup_result pickup_file(const char *name)
{
    struct qfile_envelope env;
    struct stat st, now;
    char err[512], reason[PICKUP_REASON_MAX];
    char id[MAIL_QUEUE_ID_MAX], sender[PICKUP_LOG_TEXT_MAX];
    char safe[PICKUP_LOG_TEXT_MAX];
    const char *why;
    bool corrupt, smtputf8;
    long uid;
    int fd, rc;

    if (!pickup_name_ok(name)) {
        pickup_corrupt(name, pickup_owner(name), "not a maildrop file name");
        return PICKUP_DONE;
    }
    /* No symlinks, no blocking on a FIFO, no controlling terminal. */
    fd = openat(pickup_params.maildrop_fd, name,
                O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return PICKUP_DONE;
        snprintf(err, sizeof(err), "open: %s", strerror(errno));
        pickup_corrupt(name, pickup_owner(name), err);
        return PICKUP_DONE;
    }
    if (fstat(fd, &st) < 0) {
        log_warn("maildrop/%s: fstat: %s", name, strerror(errno));
        close(fd);
        return PICKUP_LATER;
    }
    uid = (long)st.st_uid;
    why = !S_ISREG(st.st_mode)                    ? "not a regular file"
          : st.st_nlink != 1                      ? "file has several links"
          : st.st_size > pickup_params.file_limit ? "file too large"
                                                  : NULL;
    if (why == NULL &&
        !pickup_rcpt_count_ok(fd, st.st_size, MAIL_MAILDROP_RCPT_MAX))
        why = "too many recipients";
    if (why != NULL) {
        close(fd);
        pickup_corrupt(name, uid, why);
        return PICKUP_DONE;
    }
    if (qfile_read_envelope(fd, &env, &corrupt, err, sizeof(err)) < 0) {
        close(fd);
        if (!corrupt) {
            log_warn("maildrop/%s: %s; trying again later", name, err);
            return PICKUP_LATER;
        }
        pickup_corrupt(name, uid, err);
        return PICKUP_DONE;
    }
    if ((why = pickup_check_envelope(&env, &smtputf8)) != NULL) {
        qfile_envelope_free(&env);
        close(fd);
        pickup_corrupt(name, uid, why);
        return PICKUP_DONE;
    }

    rc = pickup_submit(fd, &env, smtputf8, uid, id, reason, sizeof(reason));
    log_printable(sender, sizeof(sender), env.sender, strlen(env.sender));
    qfile_envelope_free(&env);
    log_printable(safe, sizeof(safe), name, strlen(name));
    if (rc == 0) {
        log_info("%s: uid=%ld from=<%s>", id, uid, sender);
        /* Remove what we submitted, not a file put there since. */
        if (fstatat(pickup_params.maildrop_fd, name, &now,
                    AT_SYMLINK_NOFOLLOW) == 0 &&
            now.st_ino == st.st_ino && now.st_dev == st.st_dev &&
            unlinkat(pickup_params.maildrop_fd, name, 0) < 0 && errno != ENOENT)
            log_error("maildrop/%s: cannot remove it after queueing as %s: "
                      "%s; it will be submitted again",
                      safe, id, strerror(errno));
        close(fd);
        return PICKUP_DONE;
    }
    close(fd);
    if (rc == 5 || rc == -2) {
        char text[PICKUP_REASON_MAX + PICKUP_LOG_TEXT_MAX + 40];
        snprintf(text, sizeof(text), "from=<%s>: %s%s", sender,
                 rc == 5 ? "rejected by cleanup: " : "", reason);
        pickup_corrupt(name, uid, text);
        return PICKUP_DONE;
    }
    if (rc == 4) {
        log_warn("maildrop/%s: uid=%ld from=<%s>: cleanup: %s; trying again "
                 "later",
                 safe, uid, sender, reason);
        return PICKUP_LATER;
    }
    return PICKUP_STOP;
}
