/*
 * log - one way to log and die.
 *
 * Lines look like Postfix's:  "posthorn/smtpd[1234]: ABC123: from=<a@b>"
 * and warnings are prefixed "warning: ", errors "error: ", fatal "fatal: ",
 * panics "panic: ".  Destinations: syslog (facility mail), stderr, and/or a
 * file opened O_APPEND (maillog_file), chosen by log_open().  Each line is
 * written with a single write(2) so concurrent processes do not interleave.
 * Text from the network must be passed through log_printable() first.
 */
#ifndef UTIL_LOG_H
#define UTIL_LOG_H

#include <stddef.h>

#define LOG_TO_SYSLOG 1
#define LOG_TO_STDERR 2
#define LOG_TO_FILE 4

/*
 * name is the program part: "smtpd" gives "posthorn/smtpd[pid]"; a name
 * with a "/" is the whole tag ("posthorn/submission/smtpd").
 */
void log_open(const char *name, int where, const char *file);
/* Re-read pid after fork; keeps destinations. */
void log_reinit_pid(void);
void log_set_verbose(int level);
int log_verbose_level(void);

void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log and exit(1). */
void log_fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
/* Log and abort(): a bug, not bad input. */
void log_panic(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/*
 * Copy at most max bytes of s into dst (size dstsize), replacing control
 * and non-printable bytes with '?', so network text is safe in logs.
 * Returns dst.
 */
char *log_printable(char *dst, size_t dstsize, const char *s, size_t len);

#endif
