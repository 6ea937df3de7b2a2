/*
 * addr - RFC 5321 mailbox parsing.
 *
 * addr_parse_path() parses a Reverse-path or Forward-path as it follows
 * "MAIL FROM:" / "RCPT TO:":  "<" [ A-d-l ":" ] Mailbox ">"  where source
 * routes (A-d-l) are REJECTED (RFC 5321 says to ignore them; Postfix's
 * default strips them, we refuse them with a clear error because nothing
 * legitimate sends them any more).  "<>" is the null path, accepted only
 * when allow_null.  Local parts are dot-strings or quoted strings;
 * domains are dot-separated LDH labels or address literals
 * "[1.2.3.4]" / "[IPv6:...]".  With smtputf8, UTF-8 is allowed in the local
 * part and domain (RFC 6531); without it any byte >= 0x80 is an error.
 * Length limits: local part 64 octets, domain 255, whole path 256
 * (RFC 5321 4.5.3.1).  Whitespace inside <> is an error.
 *
 * The result keeps the local part exactly as sent (quotes included, case
 * preserved) and lowercases the domain (ASCII).  addr->text is
 * "local@domain" (or "" for the null path); local and domain point into
 * separately allocated strings.
 */
#ifndef GLOBAL_ADDR_H
#define GLOBAL_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#define ADDR_LOCAL_MAX 64
#define ADDR_DOMAIN_MAX 255
#define ADDR_PATH_MAX 256

struct mailaddr {
    char *text;     /* "local@domain" or "" */
    char *local;    /* as sent, quotes kept; "" for null path */
    char *domain;   /* lowercased; "" for null path */
    bool is_null;
    bool has_utf8;  /* any byte >= 0x80 */
};

/*
 * Parse a path starting at s (length len).  On success returns 0, fills
 * out and sets *consumed to the bytes used (through the closing ">"), so
 * the caller can parse ESMTP parameters after it.  On failure returns -1
 * and sets *err to a short static text suitable for a 501 reply
 * ("Bad address syntax", "Source routes are not supported", ...).
 */
int addr_parse_path(const char *s, size_t len, bool allow_null,
                    bool smtputf8, struct mailaddr *out, size_t *consumed,
                    const char **err);
void addr_free(struct mailaddr *a);

/*
 * The unquoted ("internal") form of a local part: "\"a b\"" -> "a b".
 * Used for lookups.  Returns a new string.
 */
char *addr_local_unquote(const char *local);
/*
 * Split an internal address "local@domain" at the last '@'.  Returns the
 * index of '@' or -1 if there is none.
 */
long addr_split(const char *addr);
/* Lowercase copy of an address for table lookups (ASCII fold). */
char *addr_fold(const char *addr);
/*
 * Length of a local part without its recipient_delimiter extension, by
 * Postfix's rules: the extension starts at the first delimiter character,
 * except at position 0, and postmaster, mailer-daemon, owner-* and
 * *-request (when "-" is a delimiter) are never split.  Returns
 * strlen(local) when there is no extension; delimiters "" = none.
 */
size_t addr_ext_offset(const char *local, const char *delimiters);

#endif
