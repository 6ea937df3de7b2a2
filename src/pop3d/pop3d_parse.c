/*
 * pop3d_parse - split a POP3 command line (RFC 1939 section 3, RFC 2449)
 * into its keyword and arguments.
 *
 * Given one line from the client with its terminator already stripped
 * and bounded by POP3D_LINE_MAX; trusts none of it.  Keywords are 3 or 4
 * letters, case-insensitive; arguments are separated by blanks (the RFC
 * says one space; clients that send two are not refused for it).  The
 * whole text after the keyword is kept as well, for PASS, whose password
 * may contain spaces.  Any control character or NUL makes the line
 * malformed, so nothing the client sends can reach a log line or a
 * reply unescaped.  Pure: no I/O, no state (the fuzz target and unit
 * tests call it directly).
 */
#include <string.h>

#include "pop3d/pop3d.h"

enum pop3d_parse_status pop3d_parse_command(const char *line, size_t len,
                                            struct pop3d_command *cmd)
{
    size_t i, k;
    char *p;

    memset(cmd->keyword, 0, sizeof(cmd->keyword));
    cmd->rest = "";
    cmd->nargs = 0;
    cmd->argbuf[0] = 0;
    if (len == 0)
        return POP3D_PARSE_EMPTY;
    if (len > POP3D_LINE_MAX)
        return POP3D_PARSE_ARGS;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];

        if (c < 0x20 && c != '\t')
            return POP3D_PARSE_BADCHAR;
        if (c == 0x7f)
            return POP3D_PARSE_BADCHAR;
    }
    for (k = 0; k < len && line[k] != ' ' && line[k] != '\t'; k++) {
        char c = line[k];

        if (k >= POP3D_KEYWORD_MAX ||
            !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return POP3D_PARSE_KEYWORD;
        cmd->keyword[k] = (char)(c >= 'a' ? c - 'a' + 'A' : c);
    }
    if (k == 0)
        return POP3D_PARSE_KEYWORD;
    if (k < len)
        cmd->rest = line + k + 1;

    memcpy(cmd->argbuf, line + k, len - k);
    cmd->argbuf[len - k] = 0;
    p = cmd->argbuf;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            *p++ = 0;
        if (*p == 0)
            break;
        if (cmd->nargs == POP3D_ARGS_MAX)
            return POP3D_PARSE_ARGS;
        cmd->args[cmd->nargs++] = p;
        while (*p != 0 && *p != ' ' && *p != '\t')
            p++;
    }
    return POP3D_PARSE_OK;
}

bool pop3d_parse_number(const char *s, unsigned long max, unsigned long *out)
{
    unsigned long n = 0;

    if (*s == 0)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned long d = (unsigned long)(*s - '0');

        if (d > max || n > (max - d) / 10)
            return false;
        n = n * 10 + d;
    }
    *out = n;
    return true;
}
