/*
 * cmd_passwd - what `posthorn passwd` shares with `posthorn user`: getting
 * a new password from the administrator.
 */
#ifndef CLI_CMD_PASSWD_H
#define CLI_CMD_PASSWD_H

#include "util/buf.h"

/*
 * The new password into out (reset first): `given` (the -p argument)
 * when not NULL; else, when standard input is a terminal, asked twice
 * with echo off; else the first line of standard input.  Returns 0, or
 * -1 after printing the reason on stderr.  The caller wipes out.
 */
int passwd_obtain(const char *given, struct buf *out);

#endif
