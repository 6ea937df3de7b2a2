/*
 * sendmail - the Sendmail-compatible submission command (also `mailq`
 * when invoked under that name), for cron, PHP mail(), MUAs and scripts.
 *
 *   sendmail [options] [recipient ...]      read a message, queue it
 *   sendmail -t [options] [recipient ...]   recipients from the headers too
 *   sendmail -bs                            SMTP on stdin/stdout
 *   sendmail -bp | mailq                    = posthorn queue -p
 *   sendmail -q | -qRsite                   = posthorn queue -f | -s site
 *
 * Options as Postfix's sendmail: -f sender (-r is the old name), -F full
 * name, -i / -oi (a lone "." does not end the message), -t, -bm (the
 * default), -C config_dir, -q<interval> (exits 0, as without a daemon
 * mode there is nothing to do).  Accepted and ignored, as in Postfix or
 * because posthorn has no such feature yet: -A -B -G -h -L -N (DSN
 * NOTIFY) -O -R (DSN RET) -U -V (ENVID or VERP) -X -v -x -c -m -e -p,
 * and -o with any letter but i.  Refused (EX_USAGE): -bd, -bi and -I
 * (newaliases: run `posthorn map` on the alias files), -bv and the other
 * -b modes, -n.  The full name may also come from $NAME, as in Postfix.
 *
 * Configuration: -C DIR, else $MAIL_CONFIG (Postfix's), else
 * $POSTHORN_CONFIG_DIR, else /etc/posthorn.  The envelope sender is -f,
 * or the invoking user (real uid) @$myorigin.  Runs with the caller's
 * rights only (no set-uid/set-gid bit); see sendmail.h for the parts and
 * docs/sendmail.md for the security model of maildrop/.
 *
 * Exit status (sysexits.h): 0 once the message is on stable storage in
 * maildrop/; EX_USAGE bad options or no recipients, EX_NOUSER a recipient
 * that is not an address or an unknown user ID, EX_DATAERR unreadable or
 * too large input, EX_TEMPFAIL the queue could not be written (try
 * again), EX_CONFIG main.cf is broken, EX_UNAVAILABLE the posthorn
 * command for -bp / -q cannot be run.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "global/config.h"
#include "global/server.h"
#include "sendmail/sendmail.h"
#include "util/mem.h"

enum sendmail_mode { MODE_ENQUEUE, MODE_MAILQ, MODE_FLUSH, MODE_SMTP };

struct sendmail_args {
    enum sendmail_mode mode;
    const char *config_dir;
    const char *sender;    /* -f, as given */
    const char *full_name; /* -F */
    const char *site;      /* -qR */
    bool extract;          /* -t */
    bool dot_ends;         /* no -i */
    bool qtime;            /* -q<interval>: nothing to do */
    int first_rcpt;        /* argv index */
};

void sendmail_fatal(int status, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: fatal: ", SENDMAIL_PROG);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(status);
}

void sendmail_warn(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: warning: ", SENDMAIL_PROG);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Options that take a value (attached or the next argument). */
static bool opt_has_value(char c)
{
    return strchr("ABCFLNORVXbefhopr", c) != NULL;
}

static void parse_args(int argc, char **argv, struct sendmail_args *a)
{
    int i;

    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        }
        if (arg[0] != '-' || arg[1] == 0)
            break;
        /* Postfix's special cases: "-q" and "-V" alone take no value. */
        if (strcmp(arg, "-q") == 0) {
            a->mode = MODE_FLUSH;
            continue;
        }
        if (strcmp(arg, "-V") == 0)
            continue;
        for (const char *p = arg + 1; *p; p++) {
            char c = *p;
            const char *val = NULL;

            if (c == 'q') {
                const char *rest = p + 1;
                if (*rest >= '0' && *rest <= '9') {
                    a->qtime = true;
                } else if (*rest == 'R') {
                    a->site = rest + 1;
                    if (*a->site == 0)
                        sendmail_fatal(EX_USAGE, "specify: -qRsitename");
                } else {
                    sendmail_fatal(EX_USAGE, "-q%c is not implemented", *rest);
                }
                break;
            }
            if (opt_has_value(c)) {
                if (p[1] != 0)
                    val = p + 1;
                else if (i + 1 < argc)
                    val = argv[++i];
                else
                    sendmail_fatal(EX_USAGE, "option -%c needs a value", c);
            }
            switch (c) {
            case 'b':
                switch (val[0]) {
                case 'm':
                    a->mode = MODE_ENQUEUE;
                    break;
                case 'p':
                    a->mode = MODE_MAILQ;
                    break;
                case 's':
                    a->mode = MODE_SMTP;
                    break;
                case 'i':
                    sendmail_fatal(EX_USAGE, "unsupported: -bi (newaliases): "
                                             "run posthorn map on each alias "
                                             "file");
                default:
                    sendmail_fatal(EX_USAGE, "unsupported: -b%c", val[0]);
                }
                break;
            case 'C':
                a->config_dir = val;
                break;
            case 'F':
                a->full_name = val;
                break;
            case 'f':
            case 'r':
                a->sender = val;
                break;
            case 'I':
                sendmail_fatal(EX_USAGE, "unsupported: -I (newaliases): run "
                                         "posthorn map on each alias file");
            case 'i':
                a->dot_ends = false;
                break;
            case 'n':
                sendmail_fatal(EX_USAGE, "-n option not supported");
            case 'o':
                if (val[0] == 'i')
                    a->dot_ends = false;
                break;
            case 't':
                a->extract = true;
                break;
            default:
                /* -N -R -V -B -X -L -O -A -G -U -v -x ...: ignored. */
                break;
            }
            if (val != NULL)
                break; /* the value was the rest of this argument */
        }
    }
    a->first_rcpt = i;
}

/* posthorn next to us (or in command_directory) does -bp and -q. */
static void run_posthorn(struct config *cfg, const char *config_dir,
                         const char *const *args)
{
    const char *dir = config_str(cfg, "command_directory");
    char self[PATH_MAX];
    char *path;
    const char *av[8];
    size_t n = 0;

    if (*dir == 0) {
        ssize_t k = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (k < 0)
            sendmail_fatal(EX_UNAVAILABLE,
                           "cannot find the posthorn command (set "
                           "command_directory): %s",
                           strerror(errno));
        self[k] = 0;
        dir = dirname(self);
    }
    path = xasprintf("%s/posthorn", dir);
    av[n++] = "posthorn";
    av[n++] = "-c";
    av[n++] = config_dir;
    for (; *args && n < 7; args++)
        av[n++] = *args;
    av[n] = NULL;
    fflush(NULL);
    execv(path, (char *const *)av);
    sendmail_fatal(EX_UNAVAILABLE, "execute %s: %s", path, strerror(errno));
}

/* The invoking user's login name (real uid, as Postfix). */
static char *login_name(void)
{
    struct passwd *pw;

    errno = 0;
    if ((pw = getpwuid(getuid())) == NULL)
        sendmail_fatal(EX_NOUSER, "no login name found for user ID %lu",
                       (unsigned long)getuid());
    return xstrdup(pw->pw_name);
}

/* -f, or login@$myorigin; an odd login name is quoted. */
static char *envelope_sender(const struct sendmail_cfg *cfg, const char *opt,
                             const char *login)
{
    struct argv list = ARGV_INIT;
    const char *why = "";
    char *addr;

    if (opt != NULL) {
        const char *t = opt;
        /* "-f <>" and "-f ''": the null sender (bounces, autoreplies). */
        if (*t == 0 || strcmp(t, "<>") == 0)
            return xstrdup("");
        sendmail_addr_list(t, strlen(t), &list);
        if (list.n != 1)
            sendmail_fatal(EX_USAGE, "-f: not one address: %s", opt);
        addr = sendmail_addr_internal(cfg, list.v[0], true, &why);
        if (addr == NULL)
            sendmail_fatal(EX_USAGE, "-f %s: %s", opt, why);
        argv_free(&list);
        return addr;
    }
    addr = sendmail_addr_internal(cfg, login, false, &why);
    if (addr == NULL) {
        char *quoted = xasprintf("\"%s\"", login);
        addr = sendmail_addr_internal(cfg, quoted, false, &why);
        free(quoted);
    }
    if (addr == NULL)
        sendmail_fatal(EX_NOUSER, "login name %s is no address: %s", login,
                       why);
    return addr;
}

static void std_fds_open(void)
{
    struct stat st;

    /* A closed 0/1/2 would make our own files land on them. */
    for (int fd = 0; fd < 3; fd++)
        if (fstat(fd, &st) < 0 && open("/dev/null", O_RDWR) != fd)
            sendmail_fatal(EX_OSERR, "open /dev/null: %s", strerror(errno));
}

int main(int argc, char **argv)
{
    struct sendmail_args a = {MODE_ENQUEUE, NULL, NULL,  NULL, NULL,
                              false,        true, false, 0};
    struct sendmail_cfg cfg;
    struct config *conf;
    const char *base = strrchr(argv[0], '/');
    char err[1024];
    char *login;
    int status;

    std_fds_open();
    umask(022);
    signal(SIGPIPE, SIG_IGN);
    base = base != NULL ? base + 1 : argv[0];
    if (strcmp(base, "mailq") == 0)
        a.mode = MODE_MAILQ;
    parse_args(argc, argv, &a);

    if (a.config_dir == NULL)
        a.config_dir = getenv("MAIL_CONFIG");
    if (a.config_dir == NULL || *a.config_dir == 0)
        a.config_dir = getenv("POSTHORN_CONFIG_DIR");
    if (a.config_dir == NULL || *a.config_dir == 0)
        a.config_dir = POSTHORN_CONFIG_DIR;
    conf = config_new();
    if (config_load(conf, a.config_dir, NULL, err, sizeof(err)) < 0 ||
        config_check(conf, err, sizeof(err)) < 0)
        sendmail_fatal(EX_CONFIG, "%s", err);
    config_set_global(conf);

    memset(&cfg, 0, sizeof(cfg));
    cfg.config_dir = a.config_dir;
    cfg.queue_dir = config_str(conf, "queue_directory");
    cfg.myhostname = config_str(conf, "myhostname");
    cfg.myorigin = config_str(conf, "myorigin");
    cfg.append_at_myorigin = config_bool(conf, "append_at_myorigin");
    cfg.size_limit = config_size(conf, "message_size_limit");
    cfg.header_limit = config_size(conf, "header_size_limit");
    cfg.smtp_timeout = config_time(conf, "smtpd_timeout");

    if (a.extract && a.mode != MODE_ENQUEUE)
        sendmail_fatal(EX_USAGE, "-t can be used only in delivery mode");
    if (a.site != NULL && a.mode != MODE_ENQUEUE)
        sendmail_fatal(EX_USAGE, "-qR can be used only in delivery mode");
    if (a.qtime && a.mode != MODE_FLUSH && a.site == NULL)
        return 0; /* "-q1h": a daemon's queue interval; no daemon here */
    if (a.mode != MODE_ENQUEUE || a.site != NULL) {
        if (a.first_rcpt < argc)
            sendmail_fatal(EX_USAGE, "this mode takes no recipients");
    }

    if (a.site != NULL) {
        const char *args[] = {"queue", "-s", a.site, NULL};
        run_posthorn(conf, a.config_dir, args);
    }
    switch (a.mode) {
    case MODE_MAILQ: {
        const char *args[] = {"queue", "-p", NULL};
        run_posthorn(conf, a.config_dir, args);
        break;
    }
    case MODE_FLUSH: {
        const char *args[] = {"queue", "-f", NULL};
        run_posthorn(conf, a.config_dir, args);
        break;
    }
    case MODE_SMTP:
        login = login_name();
        status = sendmail_smtp(&cfg, login);
        free(login);
        config_free(conf);
        return status;
    case MODE_ENQUEUE:
        break;
    }

    struct sendmail_msg_opts opts = {NULL, a.full_name, a.extract, a.dot_ends,
                                     ARGV_INIT};
    char *sender;

    login = login_name();
    sender = envelope_sender(&cfg, a.sender, login);
    opts.sender = sender;
    if (opts.full_name == NULL && getenv("NAME") != NULL && *getenv("NAME"))
        opts.full_name = getenv("NAME");
    for (int i = a.first_rcpt; i < argc; i++) {
        struct argv list = ARGV_INIT;

        sendmail_addr_list(argv[i], strlen(argv[i]), &list);
        for (size_t k = 0; k < list.n; k++) {
            const char *why;
            char *r = sendmail_addr_internal(&cfg, list.v[k], false, &why);
            if (r == NULL)
                sendmail_fatal(EX_NOUSER, "bad recipient address <%s>: %s",
                               list.v[k], why);
            argv_add(&opts.rcpts, r);
            free(r);
        }
        argv_free(&list);
    }
    status = sendmail_message(&cfg, &opts);
    argv_free(&opts.rcpts);
    free(sender);
    free(login);
    config_free(conf);
    return status;
}
