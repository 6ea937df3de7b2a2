/*
 * imap_parse - the IMAP4rev1 command grammar (RFC 3501 section 9, with
 * LITERAL+ from RFC 7888), as pure functions over bytes: no I/O, no
 * session state, so the unit tests and the fuzzer drive them directly.
 *
 * Two steps.  imap_frame_scan() finds where one command ends in the bytes
 * a client sent: lines, and after a line ending in {n} or {n+} exactly n
 * bytes of literal, then more line.  It says when a synchronising literal
 * waits for the server's "+" and refuses lines and literals over the
 * limits before they are read.  imap_parse_command() then turns one whole
 * command into a tag, a name and a tree of arguments (atoms, quoted
 * strings, literals, parenthesised lists), allocated from the command's
 * pool.  The helpers below interpret arguments the way several commands
 * need: sequence sets, dates, flags, FETCH attributes and SEARCH keys.
 *
 * Everything is bounded: line length and literal size by the caller's
 * limits, list nesting by IMAP_DEPTH_MAX, literals per command by
 * IMAP_LITERALS_MAX, search keys by IMAP_SEARCH_KEYS_MAX.  Bad input gives
 * -1 and a short English reason suitable for a BAD response; it never
 * crashes, and nothing is trusted about a string (it may hold any byte;
 * only literals may hold NUL).
 */
#ifndef IMAPD_IMAP_PARSE_H
#define IMAPD_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "imapd/imap_mime.h"
#include "imapd/imap_pool.h"
#include "imapd/imap_store.h"

#define IMAP_TAG_MAX 64          /* longest tag we accept */
#define IMAP_DEPTH_MAX 16        /* parenthesised list nesting */
#define IMAP_LITERALS_MAX 32     /* literals in one command */
#define IMAP_SEARCH_KEYS_MAX 256 /* search keys in one SEARCH */
#define IMAP_LITERAL_DIGITS_MAX 10

/* ------------------------------------------------------------ framing */

struct imap_limits {
    size_t max_line;           /* bytes in one line, CRLF excluded */
    size_t max_literal;        /* a literal of any command but APPEND */
    size_t max_append_literal; /* the message literal of APPEND */
};

enum imap_frame_status {
    IMAP_FRAME_MORE,     /* incomplete: wait for more bytes */
    IMAP_FRAME_CONTINUE, /* incomplete, and a synchronising literal whose
                            "{n}CRLF" ends at f->cont_at waits for "+" */
    IMAP_FRAME_DONE,     /* f->len bytes are one command */
    IMAP_FRAME_TOOLONG,  /* a line is over max_line; f->len bytes may be
                            dropped (up to and including its LF when
                            f->line_ended, else all that is there) */
    IMAP_FRAME_TOOBIG,   /* a literal is over its limit: f->len bytes end
                            with its "{n}CRLF"; f->nonsync for {n+},
                            f->append when the command is APPEND */
};

struct imap_frame {
    size_t len;
    size_t cont_at;
    size_t literal_size; /* TOOBIG: the size announced */
    bool nonsync;
    bool append;
    bool line_ended;
};

enum imap_frame_status imap_frame_scan(const char *data, size_t len,
                                       const struct imap_limits *lim,
                                       struct imap_frame *f);

/*
 * One line ending in LF (AUTHENTICATE responses, IDLE's DONE): its length
 * without CR LF in *line_len and the bytes to consume in *used.  MORE,
 * DONE or TOOLONG (then *used is what may be dropped, as above).
 */
enum imap_frame_status imap_line_scan(const char *data, size_t len,
                                      size_t max_line, size_t *line_len,
                                      size_t *used, bool *line_ended);

/* ---------------------------------------------------------- arguments */

enum imap_arg_type {
    IMAP_ARG_ATOM,    /* includes NIL, numbers, flags, BODY[...]<..> */
    IMAP_ARG_QUOTED,  /* unescaped */
    IMAP_ARG_LITERAL, /* may hold NUL */
    IMAP_ARG_LIST,
};

struct imap_arg {
    enum imap_arg_type type;
    char *str;  /* NUL-terminated copy; NULL for a list */
    size_t len; /* bytes in str */
    struct imap_arg *list;
    size_t count; /* list members */
};

struct imap_command {
    char *tag;  /* NULL when not even the tag parsed */
    char *name; /* upper-cased; NULL when missing */
    struct imap_arg *args;
    size_t nargs;
};

/*
 * Parse one whole command (as framed by imap_frame_scan, CRLF included).
 * 0, or -1 with *err; cmd->tag is set whenever the tag itself was valid,
 * so the caller can answer "tag BAD" rather than "* BAD".
 */
int imap_parse_command(struct imap_pool *pool, const char *data, size_t len,
                       struct imap_command *cmd, const char **err);

bool imap_arg_is_atom(const struct imap_arg *a, const char *word); /* ci */
bool imap_arg_is_nil(const struct imap_arg *a);
/* atom, quoted or literal without NUL: astring */
bool imap_arg_astring(const struct imap_arg *a, const char **s);
/* quoted or literal without NUL: string (NIL excluded) */
bool imap_arg_string(const struct imap_arg *a, const char **s);
/* an atom that is a decimal number (RFC 3501 number: 0..2^32-1) */
bool imap_arg_number(const struct imap_arg *a, uint32_t *n);
bool imap_parse_number64(const char *s, size_t len, uint64_t *out);

/* ------------------------------------------------------ sequence sets */

#define IMAP_SEQ_STAR UINT32_MAX

struct imap_seq_range {
    uint32_t lo, hi; /* as written; IMAP_SEQ_STAR for '*' */
};

struct imap_seqset {
    struct imap_seq_range *r;
    size_t n;
};

/* "1,3:5,7:*" -> ranges.  0, or -1 (empty, 0, junk). */
int imap_parse_seqset(struct imap_pool *pool, const char *s,
                      struct imap_seqset *out);
/* Is n in set, '*' meaning max (and a:b the same as b:a)? */
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n,
                          uint32_t max);

/* -------------------------------------------------------------- dates */

struct imap_date {
    int year, mon, mday; /* mon 1..12 */
};

/* date-text "1-Feb-1994" or quoted; 0 or -1. */
int imap_parse_date(const char *s, struct imap_date *out);
/* date-time "17-Jul-1996 02:44:25 -0700" (day may be " 7"); UTC time_t. */
int imap_parse_datetime(const char *s, time_t *out);
/* Days since 1970-01-01 of a calendar date (proleptic Gregorian). */
long imap_date_days(const struct imap_date *d);

/* -------------------------------------------------------------- flags */

/* IMAP_FLAG_* come from imap_store.h. */

/*
 * A flag list "(\Seen $Junk)" or a single flag: system flags into
 * *sys, keywords (atoms without '\') into kw/nkw (pool).  \Recent and
 * unknown \-flags are errors.  0 or -1 with *err.
 */
int imap_parse_flags(struct imap_pool *pool, const struct imap_arg *a,
                     unsigned *sys, const char ***kw, size_t *nkw,
                     const char **err);
/* "\Seen" -> IMAP_FLAG_SEEN etc. (case-insensitive); 0 if not a system flag */
unsigned imap_flag_from_name(const char *s);
/* A keyword is an atom of atom-chars without '\\'. */
bool imap_parse_keyword_ok(const char *s);

/* -------------------------------------------------------------- FETCH */

/* struct imap_section and its parser come from imap_mime.h. */

enum imap_fetch_item {
    IMAP_FETCH_UID,
    IMAP_FETCH_FLAGS,
    IMAP_FETCH_INTERNALDATE,
    IMAP_FETCH_RFC822_SIZE,
    IMAP_FETCH_ENVELOPE,
    IMAP_FETCH_BODY,          /* BODY without a section: structure */
    IMAP_FETCH_BODYSTRUCTURE,
    IMAP_FETCH_SECTION,       /* BODY[...] and BODY.PEEK[...] */
    IMAP_FETCH_RFC822,        /* = BODY[] and sets \Seen */
    IMAP_FETCH_RFC822_HEADER, /* = BODY.PEEK[HEADER] */
    IMAP_FETCH_RFC822_TEXT,   /* = BODY[TEXT] and sets \Seen */
    IMAP_FETCH_MODSEQ,
};

struct imap_fetch_att {
    enum imap_fetch_item item;
    bool peek;
    const char *section_text; /* between "[" and "]", for the reply */
    struct imap_section section;
    bool partial;
    uint32_t partial_off, partial_len;
};

struct imap_fetch_atts {
    struct imap_fetch_att *v;
    size_t n;
    bool changedsince; /* (CHANGEDSINCE n) modifier */
    uint64_t changedsince_modseq;
};

/*
 * The FETCH arguments after the sequence set: a macro, one attribute or
 * a list, then an optional modifier list (CHANGEDSINCE).  0 or -1 / *err.
 */
int imap_parse_fetch_atts(struct imap_pool *pool, const struct imap_arg *args,
                          size_t nargs, struct imap_fetch_atts *out,
                          const char **err);
/*
 * "1.HEADER.FIELDS (From To)": the section text after "BODY[" up to its
 * "]" (exclusive), field list included (imap_section_parse does the
 * rest).  0 or -1.
 */
int imap_parse_section(struct imap_pool *pool, const char *s, size_t len,
                       struct imap_section *out);

/* ------------------------------------------------------------- SEARCH */

enum imap_search_op {
    IMAP_SEARCH_ALL,
    IMAP_SEARCH_AND, /* parenthesised list, and the top level */
    IMAP_SEARCH_OR,
    IMAP_SEARCH_NOT,
    IMAP_SEARCH_SEQSET,
    IMAP_SEARCH_UID,
    IMAP_SEARCH_FLAG,    /* flag set: flag */
    IMAP_SEARCH_NOFLAG,  /* flag clear: flag */
    IMAP_SEARCH_KEYWORD, /* str */
    IMAP_SEARCH_UNKEYWORD,
    IMAP_SEARCH_NEW,     /* recent and unseen */
    IMAP_SEARCH_OLD,     /* not recent */
    IMAP_SEARCH_BEFORE,  /* internal date, date only */
    IMAP_SEARCH_ON,
    IMAP_SEARCH_SINCE,
    IMAP_SEARCH_SENTBEFORE, /* Date: header */
    IMAP_SEARCH_SENTON,
    IMAP_SEARCH_SENTSINCE,
    IMAP_SEARCH_LARGER,
    IMAP_SEARCH_SMALLER,
    IMAP_SEARCH_HEADER, /* field in hdr, str substring ("" = has field) */
    IMAP_SEARCH_BODY,
    IMAP_SEARCH_TEXT,
    IMAP_SEARCH_MODSEQ,
};

struct imap_search_key {
    enum imap_search_op op;
    unsigned flag;
    const char *hdr;
    const char *str;
    uint64_t num;
    struct imap_date date;
    struct imap_seqset set;
    struct imap_search_key *sub; /* AND: nsub; OR: 2; NOT: 1 */
    size_t nsub;
};

/* ESEARCH RETURN options (RFC 4731). */
#define IMAP_SEARCH_RET_MIN 1
#define IMAP_SEARCH_RET_MAX 2
#define IMAP_SEARCH_RET_ALL 4
#define IMAP_SEARCH_RET_COUNT 8

struct imap_search {
    bool esearch;     /* RETURN given */
    unsigned ret;     /* IMAP_SEARCH_RET_*; RETURN () = ALL */
    const char *charset; /* NULL when not given */
    struct imap_search_key *root; /* an AND */
    bool uses_modseq;
};

/*
 * SEARCH arguments.  *badcharset is set when the CHARSET is neither
 * UTF-8 nor US-ASCII (answer NO [BADCHARSET]).  0 or -1 / *err.
 */
int imap_parse_search(struct imap_pool *pool, const struct imap_arg *args,
                      size_t nargs, struct imap_search *out, bool *badcharset,
                      const char **err);

/* ----------------------------------------------------------- mailbox */

/* A mailbox name argument: "INBOX" in any case becomes "INBOX". */
const char *imap_mailbox_arg(struct imap_pool *pool, const char *s);

#endif
