/*
 * log - one way to log and die.
 *
 * Given a program name and destinations by log_open(); until then lines go
 * to stderr as "posthorn".  Trusts its callers to have passed network text
 * through log_printable(); still folds CR/LF into blanks so a message can
 * never forge a second log line.  Talks to syslog(3), stderr and an
 * O_APPEND file (maillog_file).  For stderr and the file each line carries
 * a syslog-style timestamp and is emitted with a single write(2) so lines
 * from concurrent processes do not interleave; a line longer than
 * LOG_LINE_MAX is truncated, never overflowed.  Write failures are ignored:
 * there is nowhere left to report them.  errno is preserved across calls.
 */
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "util/str.h"

#define LOG_LINE_MAX 2048
#define LOG_NAME_MAX 64
#define LOG_HOST_MAX 64

enum log_level {
    LEVEL_DEBUG,
    LEVEL_INFO,
    LEVEL_WARN,
    LEVEL_ERROR,
    LEVEL_FATAL,
    LEVEL_PANIC
};

static const struct {
    const char *prefix;
    int priority;
} log_levels[] = {
    [LEVEL_DEBUG] = {"", LOG_DEBUG},
    [LEVEL_INFO] = {"", LOG_INFO},
    [LEVEL_WARN] = {"warning: ", LOG_WARNING},
    [LEVEL_ERROR] = {"error: ", LOG_ERR},
    [LEVEL_FATAL] = {"fatal: ", LOG_CRIT},
    [LEVEL_PANIC] = {"panic: ", LOG_CRIT},
};

static char log_ident[LOG_NAME_MAX] = "posthorn";
static char log_host[LOG_HOST_MAX];
static int log_where = LOG_TO_STDERR;
static int log_fd = -1;
static long log_pid;
static int log_verbose;

void log_open(const char *name, int where, const char *file)
{
    char *dot;

    if (name == NULL || *name == 0)
        str_lcpy(log_ident, "posthorn", sizeof(log_ident));
    else if (strchr(name, '/') != NULL)
        str_lcpy(log_ident, name, sizeof(log_ident));
    else
        snprintf(log_ident, sizeof(log_ident), "posthorn/%s", name);
    log_pid = (long)getpid();
    if (gethostname(log_host, sizeof(log_host)) != 0)
        str_lcpy(log_host, "localhost", sizeof(log_host));
    log_host[sizeof(log_host) - 1] = 0;
    if ((dot = strchr(log_host, '.')) != NULL)
        *dot = 0;

    if (log_fd >= 0) {
        close(log_fd);
        log_fd = -1;
    }
    if (log_where & LOG_TO_SYSLOG)
        closelog();
    log_where = where;
    if (where & LOG_TO_SYSLOG)
        openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
    if ((where & LOG_TO_FILE) && file != NULL && *file != 0) {
        log_fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (log_fd < 0) {
            int saved = errno;
            /* Keep logging somewhere rather than going silent. */
            log_where |= LOG_TO_STDERR;
            log_warn("cannot open log file %s: %s", file, strerror(saved));
        }
    }
}

void log_reinit_pid(void)
{
    log_pid = (long)getpid();
}

void log_set_verbose(int level)
{
    log_verbose = level;
}

int log_verbose_level(void)
{
    return log_verbose;
}

static void log_write_fd(int fd, const char *line, size_t len)
{
    ssize_t n;

    /* One write(2) per line: retry only when nothing at all was written. */
    do {
        n = write(fd, line, len);
    } while (n < 0 && errno == EINTR);
}

/*
 * The time stamp of a line, formatted once per second: a busy daemon
 * logs thousands of lines a second, and localtime_r() with strftime()
 * was a visible part of a queue manager's time.
 */
static const char *log_stamp(void)
{
    static _Thread_local char stamp[64];
    static _Thread_local time_t stamp_time = (time_t)-1;
    time_t now = time(NULL);
    struct tm tm;

    if (now != stamp_time) {
        if (localtime_r(&now, &tm) == NULL ||
            strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm) == 0)
            str_lcpy(stamp, "-", sizeof(stamp));
        stamp_time = now;
    }
    return stamp;
}

static void log_vemit(enum log_level level, const char *fmt, va_list ap)
{
    char msg[LOG_LINE_MAX];
    char line[LOG_LINE_MAX + 256];
    size_t mlen, i, llen;
    int n, saved = errno;

    if (log_pid == 0)
        log_pid = (long)getpid();
    n = snprintf(msg, sizeof(msg), "%s", log_levels[level].prefix);
    mlen = n > 0 ? (size_t)n : 0;
    errno = saved; /* allow %m in callers' formats */
    n = vsnprintf(msg + mlen, sizeof(msg) - mlen, fmt, ap);
    if (n > 0)
        mlen += (size_t)n;
    if (mlen >= sizeof(msg))
        mlen = sizeof(msg) - 1;
    msg[mlen] = 0;
    for (i = 0; i < mlen; i++)
        if (msg[i] == '\n' || msg[i] == '\r')
            msg[i] = ' ';

    if (log_where & LOG_TO_SYSLOG)
        syslog(log_levels[level].priority, "%s", msg);

    if (log_where & (LOG_TO_STDERR | LOG_TO_FILE)) {
        n = snprintf(line, sizeof(line), "%s %s %s[%ld]: %s\n", log_stamp(),
                     log_host[0] ? log_host : "localhost", log_ident, log_pid,
                     msg);
        if (n < 0) {
            errno = saved;
            return;
        }
        llen = (size_t)n;
        if (llen >= sizeof(line)) {
            llen = sizeof(line) - 1;
            line[llen - 1] = '\n';
        }
        if (log_where & LOG_TO_STDERR)
            log_write_fd(STDERR_FILENO, line, llen);
        if ((log_where & LOG_TO_FILE) && log_fd >= 0)
            log_write_fd(log_fd, line, llen);
    }
    errno = saved;
}

void log_info(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vemit(LEVEL_INFO, fmt, ap);
    va_end(ap);
}

void log_warn(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vemit(LEVEL_WARN, fmt, ap);
    va_end(ap);
}

void log_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vemit(LEVEL_ERROR, fmt, ap);
    va_end(ap);
}

void log_debug(const char *fmt, ...)
{
    va_list ap;

    if (log_verbose <= 0)
        return;
    va_start(ap, fmt);
    log_vemit(LEVEL_DEBUG, fmt, ap);
    va_end(ap);
}

void log_fatal(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vemit(LEVEL_FATAL, fmt, ap);
    va_end(ap);
    exit(1);
}

void log_panic(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vemit(LEVEL_PANIC, fmt, ap);
    va_end(ap);
    abort();
}

char *log_printable(char *dst, size_t dstsize, const char *s, size_t len)
{
    size_t i;

    if (dstsize == 0)
        return dst;
    if (len > dstsize - 1)
        len = dstsize - 1;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[i] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
    }
    dst[len] = 0;
    return dst;
}
