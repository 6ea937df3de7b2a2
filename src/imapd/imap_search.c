/*
 * imap_search - SEARCH and UID SEARCH (RFC 3501 6.4.4, every key), the
 * ESEARCH result form (RFC 4731: RETURN MIN MAX COUNT ALL) and
 * CONDSTORE's MODSEQ key (RFC 7162).
 *
 * The key tree comes from imap_parse_search().  Each message is tested
 * with what its keys need, fetched lazily and once: flags, UID, MODSEQ
 * and INTERNALDATE from the session's view, RFC822.SIZE, the decoded
 * FROM/TO/CC/BCC/SUBJECT fields and the Date: from the index cache
 * (imap_mime_search.c), and for other header keys, body keys and
 * messages not cached yet the message text and its MIME tree
 * (imap_mime: RFC 2047 words decoded, transfer encodings undone,
 * charsets converted to UTF-8, compared with Unicode case folding).  CHARSET may be UTF-8 or US-ASCII; any other is NO
 * [BADCHARSET] (UTF-8).  Dates compare calendar days: INTERNALDATE in
 * the server's time zone, the Date: header in its own.
 *
 * Body and text searches read every message they reach in the main
 * thread; on very large mailboxes that holds up the other sessions of
 * the process for the length of the search (docs/imap.md).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "imapd/imap_mime.h"
#include "imapd/imapd.h"

/* Decoded body text SEARCH BODY/TEXT looks at per message. */
#define IMAP_SEARCH_BODY_MAX (8u * 1024 * 1024)

struct imap_search_msg {
    uint32_t seq;
    const struct imap_msg *m;
    uint32_t last_uid;
    uint32_t count;
    bool loaded, load_failed;
    struct buf text; /* CRLF message */
    struct imap_mime *mime;
    bool have_body;
    struct buf body; /* decoded body text */
    bool have_size;
    uint64_t size;
    bool cache_tried;
    struct buf cache; /* SEARCH block from the index cache; empty: none */
    char err[256];
};

/*
 * The message's SEARCH block (imap_mime_search_cache) from the index:
 * header and sent-date keys then need no message file.  false when
 * there is none; the caller falls back to the message.
 */
static bool imap_search_cache(struct imap_session *s,
                              struct imap_search_msg *sm)
{
    if (!sm->cache_tried) {
        char err[256];

        sm->cache_tried = true;
        if (imap_mailbox_msg_search_cache(s->mb, sm->seq, &sm->cache, err,
                                          sizeof(err)) < 0)
            buf_reset(&sm->cache);
    }
    return sm->cache.len > 0;
}

static bool imap_search_load(struct imap_session *s,
                             struct imap_search_msg *sm)
{
    if (!sm->loaded) {
        sm->loaded = true;
        if (imap_mailbox_msg_read(s->mb, sm->seq, &sm->text, sm->err,
                                  sizeof(sm->err)) < 0)
            sm->load_failed = true;
        else
            sm->mime = imap_mime_parse(sm->text.data, sm->text.len);
    }
    return !sm->load_failed;
}

static long imap_search_local_days(time_t t)
{
    struct tm tm;
    struct imap_date d;

    localtime_r(&t, &tm);
    d.year = tm.tm_year + 1900;
    d.mon = tm.tm_mon + 1;
    d.mday = tm.tm_mday;
    return imap_date_days(&d);
}

/* Day of the Date: header in its own zone; false if there is none. */
static bool imap_search_sent_days(struct imap_session *s,
                                  struct imap_search_msg *sm, long *days)
{
    time_t when;
    int zone, r = -1;

    if (imap_search_cache(s, sm))
        r = imap_mime_search_cached_date(sm->cache.data, sm->cache.len, &when,
                                         &zone);
    if (r == 0)
        return false;
    if (r < 0 && (!imap_search_load(s, sm) ||
                  imap_mime_date(sm->mime, &when, &zone) < 0))
        return false;
    when += (time_t)zone * 60;
    *days = (long)(when >= 0 ? when / 86400 : (when - 86399) / 86400);
    return true;
}

static int imap_search_cmp_days(long a, long b)
{
    return a < b ? -1 : a > b;
}

static bool imap_search_match(struct imap_session *s,
                              struct imap_search_msg *sm,
                              const struct imap_search_key *k)
{
    const struct imap_msg *m = sm->m;
    long days;

    switch (k->op) {
    case IMAP_SEARCH_ALL:
        return true;
    case IMAP_SEARCH_AND:
        for (size_t i = 0; i < k->nsub; i++)
            if (!imap_search_match(s, sm, &k->sub[i]))
                return false;
        return true;
    case IMAP_SEARCH_OR:
        return imap_search_match(s, sm, &k->sub[0]) ||
               imap_search_match(s, sm, &k->sub[1]);
    case IMAP_SEARCH_NOT:
        return !imap_search_match(s, sm, &k->sub[0]);
    case IMAP_SEARCH_SEQSET:
        return imap_seqset_contains(&k->set, sm->seq, sm->count);
    case IMAP_SEARCH_UID:
        return imap_seqset_contains(&k->set, m->uid, sm->last_uid);
    case IMAP_SEARCH_FLAG:
        return (m->flags & k->flag) != 0;
    case IMAP_SEARCH_NOFLAG:
        return (m->flags & k->flag) == 0;
    case IMAP_SEARCH_NEW:
        return (m->flags & IMAP_FLAG_RECENT) && !(m->flags & IMAP_FLAG_SEEN);
    case IMAP_SEARCH_OLD:
        return !(m->flags & IMAP_FLAG_RECENT);
    case IMAP_SEARCH_KEYWORD:
    case IMAP_SEARCH_UNKEYWORD: {
        unsigned idx;
        char err[64];
        bool has = imap_mailbox_keyword_index(s->mb, k->str, false, &idx, err,
                                              sizeof(err)) == 0 &&
                   (m->keywords & ((uint64_t)1 << idx));

        return k->op == IMAP_SEARCH_KEYWORD ? has : !has;
    }
    case IMAP_SEARCH_BEFORE:
        return imap_search_local_days(m->internaldate) <
               imap_date_days(&k->date);
    case IMAP_SEARCH_ON:
        return imap_search_local_days(m->internaldate) ==
               imap_date_days(&k->date);
    case IMAP_SEARCH_SINCE:
        return imap_search_local_days(m->internaldate) >=
               imap_date_days(&k->date);
    case IMAP_SEARCH_SENTBEFORE:
    case IMAP_SEARCH_SENTON:
    case IMAP_SEARCH_SENTSINCE: {
        int c;

        if (!imap_search_sent_days(s, sm, &days))
            return false;
        c = imap_search_cmp_days(days, imap_date_days(&k->date));
        return k->op == IMAP_SEARCH_SENTBEFORE ? c < 0
               : k->op == IMAP_SEARCH_SENTON   ? c == 0
                                               : c >= 0;
    }
    case IMAP_SEARCH_LARGER:
    case IMAP_SEARCH_SMALLER:
        if (!sm->have_size) {
            if (imap_mailbox_msg_size(s->mb, sm->seq, &sm->size, sm->err,
                                      sizeof(sm->err)) < 0)
                return false;
            sm->have_size = true;
        }
        return k->op == IMAP_SEARCH_LARGER ? sm->size > k->num
                                           : sm->size < k->num;
    case IMAP_SEARCH_HEADER: {
        struct buf raw = BUF_INIT, dec = BUF_INIT;
        const char *v;
        size_t found, vlen;
        bool hit;

        if (imap_mime_search_cached(k->hdr) && imap_search_cache(s, sm) &&
            imap_mime_search_cached_header(sm->cache.data, sm->cache.len,
                                           k->hdr, &v, &vlen, &found) == 1)
            return found > 0 &&
                   (*k->str == 0 ||
                    imap_mime_contains(v, vlen, k->str, strlen(k->str)));
        if (!imap_search_load(s, sm))
            return false;
        found = imap_mime_header_raw(sm->mime, k->hdr, &raw);
        if (*k->str == 0) {
            hit = found > 0;
        } else {
            imap_mime_decode_header(raw.data ? raw.data : "", raw.len, &dec);
            hit = found > 0 && imap_mime_contains(dec.data ? dec.data : "",
                                                  dec.len, k->str,
                                                  strlen(k->str));
        }
        buf_free(&raw);
        buf_free(&dec);
        return hit;
    }
    case IMAP_SEARCH_BODY:
    case IMAP_SEARCH_TEXT:
        if (!imap_search_load(s, sm))
            return false;
        if (!sm->have_body) {
            imap_mime_body_utf8(sm->mime, &sm->body, IMAP_SEARCH_BODY_MAX);
            sm->have_body = true;
        }
        if (imap_mime_contains(buf_cstr(&sm->body), sm->body.len, k->str,
                               strlen(k->str)))
            return true;
        if (k->op == IMAP_SEARCH_TEXT) {
            struct buf hdr = BUF_INIT;
            bool hit;

            imap_mime_headers_utf8(sm->mime, &hdr);
            hit = imap_mime_contains(buf_cstr(&hdr), hdr.len, k->str,
                                     strlen(k->str));
            buf_free(&hdr);
            return hit;
        }
        return false;
    case IMAP_SEARCH_MODSEQ:
        return m->modseq >= k->num;
    }
    return false;
}

void imap_cmd_search(struct imap_session *s, struct imap_command *cmd)
{
    struct imap_search q;
    const char *err = NULL;
    bool badcharset;
    uint32_t count = imap_mailbox_count(s->mb);
    uint32_t *hits;
    size_t nhits = 0;
    uint64_t maxmod = 0;
    struct buf b = BUF_INIT;
    bool failed = false;

    if (imap_parse_search(&s->pool, cmd->args, cmd->nargs, &q, &badcharset,
                          &err) < 0) {
        if (badcharset)
            imap_cmd_done(s, "NO", "[BADCHARSET (UTF-8 US-ASCII)] Unsupported "
                                   "charset.");
        else
            imap_cmd_done(s, "BAD", "Error in SEARCH: %s.", err);
        return;
    }
    if (q.uses_modseq)
        s->enabled_condstore = true;
    hits = imap_pool_allocarray(&s->pool, (size_t)count + 1, sizeof(*hits));
    for (uint32_t seq = 1; seq <= count; seq++) {
        struct imap_search_msg sm;

        memset(&sm, 0, sizeof(sm));
        sm.seq = seq;
        sm.m = imap_mailbox_msg(s->mb, seq);
        sm.count = count;
        sm.last_uid = imap_mailbox_msg(s->mb, count)->uid;
        if (sm.m == NULL || sm.m->expunged)
            continue;
        if (imap_search_match(s, &sm, q.root)) {
            hits[nhits++] = s->uid_cmd ? sm.m->uid : seq;
            if (sm.m->modseq > maxmod)
                maxmod = sm.m->modseq;
        }
        if (sm.load_failed && sm.err[0] && !failed) {
            imap_session_log(s, "SEARCH: message %u: %s", seq, sm.err);
            failed = true;
        }
        if (sm.mime != NULL)
            imap_mime_free(sm.mime);
        buf_free(&sm.text);
        buf_free(&sm.body);
        buf_free(&sm.cache);
    }
    if (q.esearch) {
        buf_printf(&b, "* ESEARCH (TAG \"%s\")%s", s->tag,
                   s->uid_cmd ? " UID" : "");
        if ((q.ret & IMAP_SEARCH_RET_MIN) && nhits > 0)
            buf_printf(&b, " MIN %u", hits[0]);
        if ((q.ret & IMAP_SEARCH_RET_MAX) && nhits > 0)
            buf_printf(&b, " MAX %u", hits[nhits - 1]);
        if (q.ret & IMAP_SEARCH_RET_COUNT)
            buf_printf(&b, " COUNT %zu", nhits);
        if ((q.ret & IMAP_SEARCH_RET_ALL) && nhits > 0) {
            buf_puts(&b, " ALL ");
            imap_reply_set(&b, hits, nhits);
        }
        if (q.uses_modseq && nhits > 0)
            buf_printf(&b, " MODSEQ %llu", (unsigned long long)maxmod);
    } else {
        buf_puts(&b, "* SEARCH");
        for (size_t i = 0; i < nhits; i++)
            buf_printf(&b, " %u", hits[i]);
        if (q.uses_modseq && nhits > 0)
            buf_printf(&b, " (MODSEQ %llu)", (unsigned long long)maxmod);
    }
    buf_puts(&b, "\r\n");
    imap_reply_raw(s, b.data, b.len);
    buf_free(&b);
    imap_cmd_done(s, "OK", "Search completed.");
}
