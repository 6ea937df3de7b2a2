/*
 * smtpd_params - pure parsers for SMTP command lines and the ESMTP
 * parameters of MAIL and RCPT (RFC 1652, 1870, 3030, 3461, 6531).
 *
 * Nothing here does I/O or reads the configuration: every function takes
 * the text it parses (untrusted network input, already bounded by
 * line_length_limit) and the options it needs, and returns a status with
 * the complete SMTP reply for a rejection in `reply` ("501 5.5.4 ...").
 * That keeps the grammar testable on its own (tests/unit/test_smtpd_params.c).
 */
#ifndef SMTPD_PARAMS_H
#define SMTPD_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

/* Longest command verb we care to recognise ("STARTTLS" is 8). */
#define SMTPD_VERB_MAX 16
/* RFC 3461 4.4: ENVID is at most 100 characters. */
#define SMTPD_ENVID_MAX 100
/* RFC 3461 4.2: ORCPT is at most 500 characters. */
#define SMTPD_ORCPT_MAX 500

enum smtpd_body {
    SMTPD_BODY_NONE,
    SMTPD_BODY_7BIT,
    SMTPD_BODY_8BITMIME,
    SMTPD_BODY_BINARYMIME
};
enum smtpd_ret { SMTPD_RET_NONE, SMTPD_RET_FULL, SMTPD_RET_HDRS };

/* RFC 3461 NOTIFY bits; NEVER excludes the others. */
#define SMTPD_NOTIFY_NEVER 1u
#define SMTPD_NOTIFY_SUCCESS 2u
#define SMTPD_NOTIFY_FAILURE 4u
#define SMTPD_NOTIFY_DELAY 8u

/* Which extensions are in effect for this session (EHLO discards). */
struct smtpd_param_opts {
    bool dsn;      /* RET, ENVID, NOTIFY, ORCPT */
    bool smtputf8; /* SMTPUTF8 on MAIL */
    bool chunking; /* BODY=BINARYMIME */
};

struct smtpd_mail_params {
    bool size_given;
    long long size;
    enum smtpd_body body;
    bool smtputf8;
    enum smtpd_ret ret;
    char *envid;     /* xtext-decoded, owned; NULL if absent */
    bool auth_given; /* AUTH= seen (validated, otherwise ignored) */
};

struct smtpd_rcpt_params {
    unsigned notify; /* SMTPD_NOTIFY_* bits; 0 = not given */
    char *orcpt;     /* "type;decoded-address", owned; NULL if absent */
};

/*
 * Split a command line into its verb and the argument text.  Leading
 * blanks are skipped; the verb ends at the first blank.  *args points at
 * the first non-blank byte after the verb (or at the terminating NUL).
 * Returns 0, or -1 when the line is blank (Postfix: "500 5.5.2 Error: bad
 * syntax").  A verb longer than SMTPD_VERB_MAX is truncated in `verb`,
 * which cannot then match any command.
 */
int smtpd_split_command(const char *line, char *verb, size_t verbsize,
                        const char **args);

/*
 * True for lines that are another protocol talking to us: HTTP/proxy
 * verbs (CONNECT, GET, POST), message headers sent as commands
 * ("Subject:"), and verbs that do not start with a letter.
 */
bool smtpd_is_foreign_verb(const char *verb);

/*
 * Locate the path in a MAIL/RCPT argument: `args` must start with
 * `keyword` ("FROM:" or "TO:", any case), optionally followed by blanks.
 * A bare address without angle brackets (Postfix's default,
 * strict_rfc821_envelopes = no; refused when `strict`) is copied into
 * `path` as "<addr>";
 * otherwise `path` receives the text from "<" up to and including ">".
 * *rest points after the path (at the parameters).  Returns 0, or -1 if
 * the keyword or the path is missing.
 */
int smtpd_extract_path(const char *args, const char *keyword, bool strict,
                       struct buf *path, const char **rest);

/* RFC 3461 xtext decoding; returns 0, or -1 on bad syntax. */
int smtpd_xtext_decode(const char *in, size_t len, struct buf *out);

int smtpd_parse_mail_params(const char *s, const struct smtpd_param_opts *o,
                            struct smtpd_mail_params *out, struct buf *reply);
void smtpd_mail_params_free(struct smtpd_mail_params *p);

int smtpd_parse_rcpt_params(const char *s, const struct smtpd_param_opts *o,
                            struct smtpd_rcpt_params *out, struct buf *reply);
void smtpd_rcpt_params_free(struct smtpd_rcpt_params *p);

/* "SUCCESS,FAILURE" / "NEVER" for the cleanup envelope. */
void smtpd_notify_format(unsigned notify, struct buf *out);

/*
 * Parse "BDAT size [LAST]".  size is 1..19 decimal digits.  Returns 0,
 * or -1 (the caller cannot know how many bytes follow and must hang up).
 */
int smtpd_parse_bdat(const char *args, long long *size, bool *last);

const char *smtpd_body_name(enum smtpd_body b);

#endif
