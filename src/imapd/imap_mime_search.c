/*
 * imap_mime_search - the header fields SEARCH keys look at most, decoded
 * once per message and kept in the index cache (imap_mailbox_msg.c), so
 * FROM, TO, CC, BCC, SUBJECT and the SENT* dates are answered without
 * opening the message file again.
 *
 * The block holds, for each field of search_fields[] in order, the
 * number of fields of that name and exactly what SEARCH would compare
 * with: imap_mime_decode_header() of imap_mime_header_raw(); then the
 * result of imap_mime_date().  A value longer than
 * IMAP_SEARCH_CACHE_FIELD_MAX is left out (marked, so the caller falls
 * back to the message), which bounds a block whatever the message holds.
 *
 * The block comes back from the index, a file other processes write:
 * every length is checked against the block's size, and a block that
 * does not parse is treated as "not cached", never trusted.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "imapd/imap_mime.h"

/* Changing the fields or the layout needs a new magic: old blocks then
 * read as "not cached" and are computed again. */
#define SEARCH_CACHE_MAGIC "PHS1"
#define SEARCH_CACHE_MAGIC_LEN 4
/* count value of a field whose value was too long to keep. */
#define SEARCH_CACHE_SKIPPED UINT32_MAX

static const char *const search_fields[] = {"from", "to", "cc", "bcc",
                                            "subject"};
#define SEARCH_FIELDS (sizeof(search_fields) / sizeof(search_fields[0]))

void imap_mime_search_cache(const struct imap_mime *m, struct buf *out)
{
    struct buf raw = BUF_INIT, dec = BUF_INIT;
    time_t when = 0;
    int zone = 0;
    int64_t w;
    int32_t z;
    uint8_t ok;

    buf_append(out, SEARCH_CACHE_MAGIC, SEARCH_CACHE_MAGIC_LEN);
    for (size_t i = 0; i < SEARCH_FIELDS; i++) {
        uint32_t count, len;
        size_t n;

        buf_reset(&raw);
        buf_reset(&dec);
        n = imap_mime_header_raw(m, search_fields[i], &raw);
        imap_mime_decode_header(raw.data ? raw.data : "", raw.len, &dec);
        if (dec.len > IMAP_SEARCH_CACHE_FIELD_MAX ||
            n >= SEARCH_CACHE_SKIPPED) {
            count = SEARCH_CACHE_SKIPPED;
            len = 0;
        } else {
            count = (uint32_t)n;
            len = (uint32_t)dec.len;
        }
        buf_append(out, &count, sizeof(count));
        buf_append(out, &len, sizeof(len));
        buf_append(out, dec.data, len);
    }
    ok = imap_mime_date(m, &when, &zone) == 0;
    w = ok ? (int64_t)when : 0;
    z = ok ? (int32_t)zone : 0;
    buf_append(out, &ok, sizeof(ok));
    buf_append(out, &w, sizeof(w));
    buf_append(out, &z, sizeof(z));
    buf_free(&raw);
    buf_free(&dec);
}

/*
 * Walk the block up to field index want (SEARCH_FIELDS: the date part);
 * the position of that entry, or NULL for a block that does not parse.
 */
static const char *search_cache_seek(const char *blk, size_t len, size_t want,
                                     const char **end)
{
    const char *p = blk, *e = blk + len;

    if (len < SEARCH_CACHE_MAGIC_LEN ||
        memcmp(blk, SEARCH_CACHE_MAGIC, SEARCH_CACHE_MAGIC_LEN) != 0)
        return NULL;
    p += SEARCH_CACHE_MAGIC_LEN;
    for (size_t i = 0; i < want; i++) {
        uint32_t vlen;

        if ((size_t)(e - p) < 2 * sizeof(uint32_t))
            return NULL;
        memcpy(&vlen, p + sizeof(uint32_t), sizeof(vlen));
        p += 2 * sizeof(uint32_t);
        if ((size_t)(e - p) < vlen)
            return NULL;
        p += vlen;
    }
    *end = e;
    return p;
}

bool imap_mime_search_cached(const char *name)
{
    for (size_t i = 0; i < SEARCH_FIELDS; i++)
        if (strcasecmp(name, search_fields[i]) == 0)
            return true;
    return false;
}

int imap_mime_search_cached_header(const char *blk, size_t len,
                                   const char *name, const char **value,
                                   size_t *vlen, size_t *count)
{
    const char *p, *end;
    uint32_t c, l;
    size_t i;

    for (i = 0; i < SEARCH_FIELDS; i++)
        if (strcasecmp(name, search_fields[i]) == 0)
            break;
    if (i == SEARCH_FIELDS ||
        (p = search_cache_seek(blk, len, i, &end)) == NULL)
        return 0;
    if ((size_t)(end - p) < 2 * sizeof(uint32_t))
        return 0;
    memcpy(&c, p, sizeof(c));
    memcpy(&l, p + sizeof(c), sizeof(l));
    p += 2 * sizeof(uint32_t);
    if ((size_t)(end - p) < l || c == SEARCH_CACHE_SKIPPED)
        return 0;
    *value = p;
    *vlen = l;
    *count = c;
    return 1;
}

int imap_mime_search_cached_date(const char *blk, size_t len, time_t *when,
                                 int *zone_minutes)
{
    const char *p, *end;
    uint8_t ok;
    int64_t w;
    int32_t z;

    p = search_cache_seek(blk, len, SEARCH_FIELDS, &end);
    if (p == NULL || (size_t)(end - p) != sizeof(ok) + sizeof(w) + sizeof(z))
        return -1;
    memcpy(&ok, p, sizeof(ok));
    memcpy(&w, p + sizeof(ok), sizeof(w));
    memcpy(&z, p + sizeof(ok) + sizeof(w), sizeof(z));
    if (!ok)
        return 0;
    *when = (time_t)w;
    *zone_minutes = z;
    return 1;
}
