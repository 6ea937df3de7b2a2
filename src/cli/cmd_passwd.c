/*
 * cmd_passwd - `posthorn passwd`, Dovecot's `doveadm pw`: print a
 * password field for the passdb file.
 *
 *   posthorn passwd [-s scheme] [-p password]
 *
 * Prints "{SHA512-CRYPT}$6$..." (or the scheme given with -s: see
 * passdb.h) and a newline.  Without -p the password is asked twice on
 * the terminal with echo off, or read as one line from standard input
 * when that is not a terminal ("echo secret | posthorn passwd"), so it
 * need not appear in a process listing.  It reads no configuration.
 *
 * Exit status: 0 printed, 1 no usable password or hashing failed, 2
 * usage.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "cli/cmd_passwd.h"
#include "global/passdb.h"

#define PASSWD_EXIT_ERROR 1
#define PASSWD_EXIT_USAGE 2

/* The terminal state to restore if a signal ends us while echo is off. */
static struct termios passwd_saved_tty;
static volatile sig_atomic_t passwd_echo_off;

static void passwd_on_signal(int sig)
{
    if (passwd_echo_off)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &passwd_saved_tty);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* One line from stdin, at most PASSDB_PASSWORD_MAX bytes. */
static int passwd_read_line(struct buf *out)
{
    int c;

    buf_reset(out);
    while ((c = getchar()) != EOF && c != '\n') {
        if (out->len > PASSDB_PASSWORD_MAX) {
            while ((c = getchar()) != EOF && c != '\n')
                ;
            fprintf(stderr, "posthorn: password longer than %d bytes\n",
                    PASSDB_PASSWORD_MAX);
            return -1;
        }
        buf_putc(out, c);
    }
    if (out->len > 0 && out->data[out->len - 1] == '\r')
        buf_truncate(out, out->len - 1);
    if (c == EOF && ferror(stdin)) {
        fprintf(stderr, "posthorn: cannot read the password\n");
        return -1;
    }
    return 0;
}

/* Prompt on stderr, read with echo off. */
static int passwd_ask(const char *prompt, struct buf *out)
{
    struct termios quiet;
    struct sigaction sa, old_int, old_term;
    int rc;

    if (tcgetattr(STDIN_FILENO, &passwd_saved_tty) < 0) {
        perror("posthorn: tcgetattr");
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = passwd_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    quiet = passwd_saved_tty;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    quiet.c_lflag |= ECHONL;
    fputs(prompt, stderr);
    fflush(stderr);
    passwd_echo_off = 1;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    rc = passwd_read_line(out);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &passwd_saved_tty);
    passwd_echo_off = 0;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return rc;
}

int passwd_obtain(const char *given, struct buf *out)
{
    struct buf again = BUF_INIT;
    int rc = -1;

    buf_reset(out);
    if (given != NULL) {
        buf_puts(out, given);
    } else if (isatty(STDIN_FILENO)) {
        if (passwd_ask("Enter new password: ", out) < 0 ||
            passwd_ask("Retype new password: ", &again) < 0)
            goto out;
        if (again.len != out->len ||
            memcmp(again.data, out->data, out->len) != 0) {
            fprintf(stderr, "posthorn: the passwords do not match\n");
            goto out;
        }
    } else if (passwd_read_line(out) < 0) {
        goto out;
    }
    if (out->len == 0) {
        fprintf(stderr, "posthorn: empty password\n");
        goto out;
    }
    if (out->len > PASSDB_PASSWORD_MAX || strlen(out->data) != out->len) {
        fprintf(stderr,
                "posthorn: a password must have at most %d bytes "
                "and no NUL\n",
                PASSDB_PASSWORD_MAX);
        goto out;
    }
    rc = 0;
out:
    if (again.data != NULL)
        explicit_bzero(again.data, again.len);
    buf_free(&again);
    return rc;
}

static int passwd_usage(void)
{
    fprintf(stderr, "usage: posthorn passwd [-s scheme] [-p password]\n"
                    "  schemes: SHA512-CRYPT (default), SHA256-CRYPT, "
                    "BLF-CRYPT, YESCRYPT, CRYPT, PLAIN\n");
    return PASSWD_EXIT_USAGE;
}

int cmd_passwd(const char *confdir, int argc, char **argv)
{
    enum passdb_scheme scheme = PASSDB_SCHEME_SHA512_CRYPT;
    struct buf password = BUF_INIT, field = BUF_INIT;
    const char *given = NULL;
    char err[512];
    int opt, rc = PASSWD_EXIT_ERROR;

    (void)confdir;
    optind = 1;
    while ((opt = getopt(argc, argv, "s:p:")) != -1) {
        switch (opt) {
        case 's':
            if (!passdb_scheme_from_name(optarg, &scheme)) {
                fprintf(stderr, "posthorn: unknown scheme '%s'\n", optarg);
                return passwd_usage();
            }
            break;
        case 'p':
            given = optarg;
            break;
        default:
            return passwd_usage();
        }
    }
    if (optind != argc)
        return passwd_usage();
    if (passwd_obtain(given, &password) < 0)
        goto out;
    if (passdb_hash(scheme, password.data, &field, err, sizeof(err)) < 0) {
        fprintf(stderr, "posthorn: %s\n", err);
        goto out;
    }
    printf("%s\n", field.data);
    rc = fflush(stdout) == 0 ? 0 : PASSWD_EXIT_ERROR;
out:
    if (password.data != NULL)
        explicit_bzero(password.data, password.len);
    if (field.data != NULL)
        explicit_bzero(field.data, field.len);
    buf_free(&password);
    buf_free(&field);
    return rc;
}
