/*
 * sendmail - internal interfaces of the local submission command.
 *
 *   sendmail.c          main(): options, modes, the posthorn command for
 *                       -bp / -q, the invoking user, the message's sender
 *   sendmail_input.c    stdin (or an SMTP client) as pieces of lines
 *   sendmail_message.c  one message from stdin: From_ lines, CRLF, the
 *                       lone ".", the header block (-t, Bcc:, -F)
 *   sendmail_addr.c     RFC 5322 address lists -> internal form
 *   sendmail_drop.c     the maildrop file (mail_proto.h), made durable
 *   sendmail_smtp.c     -bs: SMTP on stdin/stdout into maildrop/
 *
 * sendmail runs with the rights of whoever calls it (no set-uid or
 * set-gid bit) and trusts only main.cf.  It never talks to a daemon to
 * submit: it writes maildrop/, where pickup finds the file, so mail is
 * accepted while the mail system is down.  Exit status as sendmail's
 * (sysexits.h): 0 only once the file is on stable storage.
 */
#ifndef SENDMAIL_SENDMAIL_H
#define SENDMAIL_SENDMAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sysexits.h>

#include "util/argv.h"
#include "util/buf.h"

#define SENDMAIL_PROG "posthorn/sendmail"
/* Longest piece of a line handed on at once (longer lines come in parts). */
#define SENDMAIL_PIECE_MAX (64 * 1024)

/* What sendmail needs from main.cf, read once. */
struct sendmail_cfg {
    const char *config_dir;
    const char *queue_dir;
    const char *myhostname;
    const char *myorigin;
    bool append_at_myorigin;
    long long size_limit;   /* message_size_limit, 0 = none */
    long long header_limit; /* header_size_limit */
    long long smtp_timeout; /* smtpd_timeout, seconds (-bs) */
};

void sendmail_fatal(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
void sendmail_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- sendmail_addr.c ---- */

/*
 * Split an RFC 5322 address list (a header value or a command-line
 * argument) into its addr-specs: "Name <a@b>, c@d (x), grp: e@f;" gives
 * "a@b", "c@d", "e@f".  Comments and display names are dropped, "<>"
 * gives "".  Appends to out.
 */
void sendmail_addr_list(const char *text, size_t len, struct argv *out);

/*
 * One addr-spec into internal form (global/addr.h): unquoted blanks
 * removed, @$myorigin appended to a bare name (append_at_myorigin), the
 * domain lowercased.  "" is the null address when allow_null.  Returns
 * an allocated string, or NULL with *why set.
 */
char *sendmail_addr_internal(const struct sendmail_cfg *cfg, const char *spec,
                             bool allow_null, const char **why);

/* ---- sendmail_input.c ---- */

struct sendmail_input;

/* Reads fd; timeout_ms < 0 waits for ever. */
struct sendmail_input *sendmail_input_open(int fd, int timeout_ms);
void sendmail_input_close(struct sendmail_input *in);

enum sendmail_piece {
    PIECE_OK,      /* data and len set */
    PIECE_EOF,     /* no more input */
    PIECE_TIMEOUT, /* nothing within the timeout */
    PIECE_ERROR,   /* read error (errno) */
};

/*
 * The next piece of input: a whole line with its "\n" when it fits in
 * SENDMAIL_PIECE_MAX, else part of one.  *line_start: the piece starts a
 * line; *line_end: it ends with "\n".  A "\r" at the end of a piece that
 * has no "\n" is kept back for the next piece, so "\r\n" never splits.
 * The data stays valid until the next call.
 */
enum sendmail_piece sendmail_input_next(struct sendmail_input *in,
                                        const char **data, size_t *len,
                                        bool *line_start, bool *line_end);

/* ---- sendmail_drop.c ---- */

struct sendmail_drop;

/*
 * Create maildrop/.RANDOM (mode 0600 while written) and write the
 * envelope: version, arrival time, sender, recipients, then the start of
 * the content.  NULL with err set on failure.
 */
struct sendmail_drop *sendmail_drop_open(const struct sendmail_cfg *cfg,
                                         const char *sender,
                                         const struct argv *rcpts, char *err,
                                         size_t errlen);
/* Content ("\n" line ends), buffered into content records. */
void sendmail_drop_write(struct sendmail_drop *d, const char *data, size_t len);
long long sendmail_drop_size(const struct sendmail_drop *d);
/*
 * Finish the file, make it readable by pickup (0644), fsync it, check it
 * with qfile's reader, rename it to its final name and make that rename
 * durable.  Frees d.  Returns 0, or -1 with err set (file removed).
 */
int sendmail_drop_commit(struct sendmail_drop *d, char *err, size_t errlen);
/* Remove the file, free d. */
void sendmail_drop_abort(struct sendmail_drop *d);

/* ---- sendmail_message.c ---- */

struct sendmail_msg_opts {
    const char *sender;    /* internal form, "" = null sender */
    const char *full_name; /* -F or NULL */
    bool extract;          /* -t */
    bool dot_ends;         /* a lone "." ends the input (no -i) */
    struct argv rcpts;     /* internal form, from the command line */
};

/* Read the message on fd 0 and drop it; returns the exit status. */
int sendmail_message(const struct sendmail_cfg *cfg,
                     struct sendmail_msg_opts *opts);

/* ---- sendmail_smtp.c ---- */

/* SMTP on stdin/stdout (-bs); returns the exit status. */
int sendmail_smtp(const struct sendmail_cfg *cfg, const char *login);

#endif
