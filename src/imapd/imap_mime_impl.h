/*
 * imap_mime_impl - the parsed MIME tree shared by imap_mime.c (parser,
 * sections), imap_mime_struct.c (ENVELOPE/BODYSTRUCTURE) and
 * imap_mime_decode.c (SEARCH helpers).  Not for use outside imap_mime*.
 */
#ifndef IMAPD_IMAP_MIME_IMPL_H
#define IMAPD_IMAP_MIME_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imapd/imap_mime.h"

struct mime_param {
    char *name;
    char *value;
};

struct mime_part {
    size_t hdr_off, hdr_len;   /* header block incl. its empty line */
    size_t body_off, body_len;
    uint64_t body_lines;
    char *type, *subtype;      /* lower case; NULL: no usable type */
    struct mime_param *params;
    size_t n_params;
    char *id, *description, *encoding, *md5, *location, *language;
    char *disposition;
    struct mime_param *disp_params;
    size_t n_disp_params;
    bool multipart;            /* children are its parts */
    bool message;              /* message/rfc822 with inner parsed */
    struct mime_part *children, *next; /* multipart parts */
    struct mime_part *inner;   /* message/rfc822: the attached message */
};

struct imap_mime {
    const char *msg;
    size_t len;
    struct mime_part *root;
    size_t n_parts;
};

/* Walk the fields of the header block [off, off+len). */
struct mime_hdr_iter {
    const char *msg;
    size_t pos, end;
    size_t count;
};

struct mime_field {
    const char *name;
    size_t name_len;
    const char *value; /* after ':' (raw, folded) */
    size_t value_len;  /* up to, not including, the final line end */
    size_t off, len;   /* whole field incl. its final line end */
};

void mime_hdr_iter_init(struct mime_hdr_iter *it, const char *msg, size_t off,
                        size_t len);
bool mime_hdr_next(struct mime_hdr_iter *it, struct mime_field *f);
/* Append value unfolded (CR/LF removed) with leading blanks stripped. */
void mime_unfold(const char *v, size_t len, struct buf *out);
/* First field called name in the block: unfolded value; false: none. */
bool mime_hdr_find(const char *msg, size_t off, size_t len, const char *name,
                   struct buf *out);

#endif
