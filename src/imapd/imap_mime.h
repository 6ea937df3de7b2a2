/*
 * imap_mime - MIME structure of one message as IMAP sees it (RFC 3501):
 * ENVELOPE, BODY and BODYSTRUCTURE strings, BODY[section] contents, and
 * the decoding helpers SEARCH needs (RFC 2047 words, transfer encodings,
 * charsets via iconv, case-insensitive substring match).
 *
 * Input is one message in memory, already in IMAP's CRLF form (see
 * imap_mime_crlf()): every byte offset and size here refers to that
 * form, which is what FETCH sends.  The parser keeps a pointer to the
 * caller's buffer, which must outlive the struct imap_mime.
 *
 * Nothing in the message is trusted: nesting depth, number of parts,
 * number and size of header fields are bounded by the constants below;
 * what is past a bound is treated as plain body text.  Malformed MIME
 * (no boundary, unterminated multipart, bad Content-Type) degrades the
 * way Dovecot does -- a part without a usable Content-Type is
 * text/plain; charset=us-ascii -- and never fails or crashes.
 *
 * Changes:
 *   (none yet)
 */
#ifndef IMAPD_IMAP_MIME_H
#define IMAPD_IMAP_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/buf.h"

/* Multipart and message/rfc822 nesting; deeper parts are opaque text. */
#define IMAP_MIME_DEPTH_MAX 24
/* Parts in one message; the rest are part of the last part's body. */
#define IMAP_MIME_PARTS_MAX 2000
/* Header fields looked at per part (the bytes still count in sizes). */
#define IMAP_MIME_HEADERS_MAX 1000
/* One header field (unfolded) longer than this is cut for parsing. */
#define IMAP_MIME_FIELD_MAX 65536
/* Section part numbers: at most this many levels ("1.2.3..."). */
#define IMAP_SECTION_PARTS_MAX IMAP_MIME_DEPTH_MAX
/* Header field names in HEADER.FIELDS (...). */
#define IMAP_SECTION_FIELDS_MAX 256

struct imap_mime;

/*
 * Parse msg[0..len) (CRLF form).  Never fails; always returns a tree
 * (free with imap_mime_free).  msg must stay valid while it is used.
 */
struct imap_mime *imap_mime_parse(const char *msg, size_t len);
void imap_mime_free(struct imap_mime *m);

/* Append the ENVELOPE list "(date subject from ... message-id)". */
void imap_mime_envelope(const struct imap_mime *m, struct buf *out);
/*
 * Append the body structure: extended = true gives BODYSTRUCTURE (with
 * MD5 NIL, disposition, language, location), false gives BODY.
 */
void imap_mime_bodystructure(const struct imap_mime *m, bool extended,
                             struct buf *out);

/* What follows the part number in a section spec. */
enum imap_section_text {
    IMAP_SECTION_ALL,               /* BODY[] or BODY[1.2]: the part */
    IMAP_SECTION_HEADER,            /* HEADER */
    IMAP_SECTION_HEADER_FIELDS,     /* HEADER.FIELDS (list) */
    IMAP_SECTION_HEADER_FIELDS_NOT, /* HEADER.FIELDS.NOT (list) */
    IMAP_SECTION_TEXT,              /* TEXT */
    IMAP_SECTION_MIME,              /* MIME (only after a part number) */
};

struct imap_section {
    uint32_t part[IMAP_SECTION_PARTS_MAX]; /* 1-based part numbers */
    size_t n_part;                         /* 0: the whole message */
    enum imap_section_text text;
    const char *const *fields; /* HEADER.FIELDS[.NOT] names, caller's */
    size_t n_fields;
};

/*
 * Parse the section spec between "[" and "]" without the field list:
 * "", "1.2", "HEADER", "1.TEXT", "2.HEADER.FIELDS", "1.MIME"
 * (case-insensitive).  For HEADER.FIELDS[.NOT] the caller parses the
 * parenthesised list itself and sets fields/n_fields.  Returns 0, or -1
 * for a syntax error (part 0, MIME without a part number, unknown word,
 * more than IMAP_SECTION_PARTS_MAX numbers) -> BAD.
 */
int imap_section_parse(const char *spec, size_t len, struct imap_section *out);

/*
 * Append the contents of a section to out (the bytes FETCH sends
 * before any <partial> is applied).  RFC 3501 6.4.5 rules: HEADER/TEXT
 * of a numbered part apply to a message/rfc822 part; the MIME header of
 * a part is its header block in the enclosing multipart; part 1 of a
 * non-multipart message is its body.  HEADER.FIELDS output is the
 * matching fields (with folding kept) followed by an empty line.
 * Returns 0, or -1 when the part does not exist or the text spec does
 * not apply to it (out unchanged; Dovecot and this server send "" then,
 * the caller decides).
 */
int imap_mime_section(const struct imap_mime *m, const struct imap_section *s,
                      struct buf *out);

/* ---- message text helpers ---- */

/*
 * Append in to out in CRLF form: a LF not preceded by CR becomes CRLF;
 * everything else is kept byte for byte.  imap_mime_crlf_size() is the
 * length that would be produced (RFC822.SIZE of a stored file).
 */
void imap_mime_crlf(const char *in, size_t len, struct buf *out);
uint64_t imap_mime_crlf_size(const char *in, size_t len);
/* The same in place, for b->data[from..len). */
void imap_mime_crlf_inplace(struct buf *b, size_t from);

/*
 * Append an IMAP string for data: NIL when data is NULL, a quoted
 * string when it is short 7-bit text without CR, LF, NUL, otherwise a
 * literal {n}CRLF<data>.  Used for every string in ENVELOPE/BODYSTRUCTURE
 * and available to the protocol code.
 */
void imap_mime_nstring(struct buf *out, const char *data, size_t len);

/* ---- SEARCH helpers ---- */

/*
 * Append the value of every top-level header field called name (case
 * insensitive), unfolded (CRLF removed), raw, separated by "\n" when
 * there are several.  Returns the number of fields found.
 */
size_t imap_mime_header_raw(const struct imap_mime *m, const char *name,
                            struct buf *out);
/*
 * Decode a header value to UTF-8: RFC 2047 encoded words (B and Q, any
 * charset iconv knows; whitespace between adjacent encoded words
 * dropped); undecodable words stay as they were; other 8-bit bytes are
 * taken as UTF-8 when valid, else as ISO-8859-1.
 */
void imap_mime_decode_header(const char *value, size_t len, struct buf *out);
/*
 * Append to out, in UTF-8, the decoded header fields of the message
 * ("Name: value\n" each, RFC 2047 decoded): what SEARCH TEXT looks at
 * besides the body.
 */
void imap_mime_headers_utf8(const struct imap_mime *m, struct buf *out);
/*
 * Append to out the body text SEARCH BODY matches: every text/ * part
 * (also inside attached messages), transfer encoding (base64, quoted-printable)
 * undone and converted from its charset to UTF-8 (unknown charset:
 * bytes kept); non-text parts are skipped.  Output is bounded by limit
 * bytes (the rest is not searched).
 */
void imap_mime_body_utf8(const struct imap_mime *m, struct buf *out,
                         size_t limit);
/*
 * Case-insensitive (Unicode simple case folding of UTF-8; invalid bytes
 * compared as they are) substring test: does needle occur in hay?
 * An empty needle matches.
 */
bool imap_mime_contains(const char *hay, size_t haylen, const char *needle,
                        size_t needlelen);
/*
 * Charset conversion for SEARCH CHARSET: convert in (charset) to UTF-8
 * into out.  Returns 0, or -1 when iconv does not know the charset
 * (-> NO [BADCHARSET]) or the text is not valid in it.
 */
int imap_mime_to_utf8(const char *charset, const char *in, size_t len,
                      struct buf *out);
/*
 * The Date: header of the message as time (UTC seconds) and the zone
 * offset written in it (minutes east).  Returns 0, or -1 when there is
 * no parseable Date header (SENTBEFORE etc. then do not match).
 */
int imap_mime_date(const struct imap_mime *m, time_t *when, int *zone_minutes);
/* RFC 5322 date-time parser used by imap_mime_date (obsolete forms too). */
int imap_mime_parse_date(const char *s, size_t len, time_t *when,
                         int *zone_minutes);

/* ---- the SEARCH cache block (imap_mime_search.c) ---- */

/* A decoded header value longer than this is not kept in the block. */
#define IMAP_SEARCH_CACHE_FIELD_MAX 16384

/*
 * Append the block kept in the index cache: the header fields FROM, TO,
 * CC, BCC and SUBJECT search, each as imap_mime_decode_header() of
 * imap_mime_header_raw() gives it, and imap_mime_date()'s result.
 */
void imap_mime_search_cache(const struct imap_mime *m, struct buf *out);
/* Is header field name one the block keeps (case-insensitive)? */
bool imap_mime_search_cached(const char *name);
/*
 * From a block: the decoded value of field name and how many fields of
 * that name the message has.  Returns 1, or 0 when the block does not
 * hold it (another field, a value too long, a block that does not
 * parse): then the message itself has to be looked at.
 */
int imap_mime_search_cached_header(const char *blk, size_t len,
                                   const char *name, const char **value,
                                   size_t *vlen, size_t *count);
/*
 * From a block: imap_mime_date()'s result.  1 (when and zone set), 0
 * the message has no parseable Date:, -1 the block does not parse.
 */
int imap_mime_search_cached_date(const char *blk, size_t len, time_t *when,
                                 int *zone_minutes);

#endif
