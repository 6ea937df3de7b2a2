/*
 * mastercf - master.cf parser, Postfix's columns:
 *
 *   service type private unpriv chroot wakeup maxproc command [args...]
 *
 * "-" means the default (private=y, unpriv=y, chroot=n, wakeup=0,
 * maxproc=$default_process_limit).  A line starting with whitespace
 * continues the previous entry; "#" lines are comments.  Types: inet, unix
 * (also unix-dgram, pass, fifo are recognised but refused as unsupported).
 * For inet, service is "port", "host:port" or "[v6addr]:port"; a symbolic
 * port (smtp, submission, ...) is allowed.  args keep "-o name=value"
 * overrides (also the "-o { name = value }" form, normalised to
 * "-o" "name=value").  Errors name file and line.
 */
#ifndef GLOBAL_MASTERCF_H
#define GLOBAL_MASTERCF_H

#include <stdbool.h>
#include <stddef.h>

#include "util/argv.h"

struct master_service {
    char *name;          /* "smtp", "127.0.0.1:2525", "cleanup" */
    char *type;          /* "inet" or "unix" */
    bool private_;
    bool unpriv;
    bool chroot;
    int wakeup;          /* seconds, 0 = none */
    int maxproc;         /* -1 = default_process_limit, 0 = unlimited */
    char *command;       /* "smtpd" */
    struct argv args;    /* everything after command */
    struct argv overrides; /* "name=value" from -o, in order */
    char *file;
    int line;
    /* Added fields: */
    char *host;          /* inet: "" when service has no host part, else
                            the host without [] ("::1", "127.0.0.1") */
    char *port;          /* inet: the port part ("25", "smtp"); unix: NULL */
    bool wakeup_used;    /* wakeup "N?": only after the service was used */
};

int mastercf_parse(const char *path, struct master_service **services,
                   size_t *count, char *err, size_t errlen);
void mastercf_free(struct master_service *services, size_t count);

#endif
