/*
 * smtpd_content - SMTP transparency removal for DATA and BDAT content.
 *
 * Pure transformations from what the client sends to what the queue
 * holds (mail_proto.h: no dot-stuffing, every line ending "\n").  The
 * caller reads the bytes (bounded by message_size_limit); these functions
 * only decide what each line or chunk becomes.
 *
 * DATA (RFC 5321 4.5.2, smtpd_forbid_bare_newline = normalize as in
 * Postfix 3.9): a line may end in CRLF or a bare LF; both become "\n".
 * The end of data is only CRLF "." CRLF: a "." line that ends in a bare
 * LF, or follows a line that did, is content.  A leading "." is removed
 * from every other line.
 *
 * BDAT (RFC 3030): chunks are taken byte for byte except that CRLF
 * becomes LF, also when CR ends one chunk and LF starts the next.  A bare
 * CR or LF is kept as it is.
 */
#ifndef SMTPD_CONTENT_H
#define SMTPD_CONTENT_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

struct smtpd_data_state {
    bool prev_crlf; /* the previous line ended in CRLF (true at start) */
};

struct smtpd_bdat_state {
    bool pending_cr; /* the last chunk ended in CR */
};

void smtpd_data_init(struct smtpd_data_state *st);
/*
 * One DATA line without its terminator; crlf tells which terminator it
 * had.  Returns true when the line ends the data (nothing appended),
 * otherwise appends the unstuffed line and "\n" to out.
 */
bool smtpd_data_line(struct smtpd_data_state *st, const char *line, size_t len,
                     bool crlf, struct buf *out);

/*
 * Many DATA lines at once, straight from the read buffer: the complete
 * lines at the start of in[0..len) go through smtpd_data_line() as if
 * stream_read_line() had returned them one by one with bound max.  Stops
 * after the end-of-data line (*end set), before an incomplete line and
 * before one longer than max (those are for the line-by-line path).
 * Returns the input bytes taken, line ends included.
 */
size_t smtpd_data_lines(struct smtpd_data_state *st, const char *in,
                        size_t len, size_t max, struct buf *out, bool *end);

void smtpd_bdat_init(struct smtpd_bdat_state *st);
/* Append chunk bytes to out with CRLF -> LF. */
void smtpd_bdat_decode(struct smtpd_bdat_state *st, const char *in, size_t len,
                       struct buf *out);
/* At the LAST chunk: emit a CR still held back. */
void smtpd_bdat_finish(struct smtpd_bdat_state *st, struct buf *out);

#endif
