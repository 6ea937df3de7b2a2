/*
 * imap_parse - framing, the argument tree, sequence sets, dates and
 * flags.  FETCH attributes and SEARCH keys are in imap_parse_fetch.c and
 * imap_parse_search.c.  See imap_parse.h.
 *
 * Input is whatever a client sent: every index is checked against the
 * length, nothing relies on NUL termination, recursion is bounded by
 * IMAP_DEPTH_MAX.  The grammar is RFC 3501's with the leniency real
 * clients need and Dovecot shows: a bare LF ends a line as CRLF does, and
 * an atom may carry a bracketed part with spaces ("BODY[HEADER.FIELDS
 * (From To)]<0.100>", "[Gmail]/Sent") when its "]" is on the same line.
 */
#include "imapd/imap_parse.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "util/str.h"

/* ------------------------------------------------------------ framing */

/* Does line [0, n) end with "{digits}" or "{digits+}"?  Size in *size. */
static bool imap_line_literal(const char *line, size_t n, uint64_t *size,
                              bool *nonsync, bool *overflow)
{
    size_t i, digits = 0;
    uint64_t v = 0;

    *overflow = false;
    if (n < 3 || line[n - 1] != '}')
        return false;
    i = n - 1;
    *nonsync = i > 0 && line[i - 1] == '+';
    if (*nonsync)
        i--;
    while (i > 0 && isdigit((unsigned char)line[i - 1])) {
        i--;
        digits++;
    }
    if (digits == 0 || i == 0 || line[i - 1] != '{')
        return false;
    if (digits > IMAP_LITERAL_DIGITS_MAX) {
        *overflow = true;
        *size = UINT64_MAX;
        return true;
    }
    for (size_t k = 0; k < digits; k++)
        v = v * 10 + (uint64_t)(line[i + k] - '0');
    *size = v;
    return true;
}

/* Is the first line "tag APPEND ..."?  Decides which literal limit. */
static bool imap_frame_is_append(const char *data, size_t len)
{
    const char *sp = memchr(data, ' ', len);
    size_t off;

    if (sp == NULL)
        return false;
    off = (size_t)(sp - data) + 1;
    return len - off >= 7 && strncasecmp(data + off, "APPEND ", 7) == 0;
}

enum imap_frame_status imap_frame_scan(const char *data, size_t len,
                                       const struct imap_limits *lim,
                                       struct imap_frame *f)
{
    size_t pos = 0;
    size_t nliterals = 0;
    bool append = imap_frame_is_append(data, len);

    memset(f, 0, sizeof(*f));
    f->append = append;
    for (;;) {
        const char *lf = memchr(data + pos, '\n', len - pos);
        size_t line_len, content;
        uint64_t size;
        bool nonsync, overflow;
        size_t limit;

        if (lf == NULL) {
            if (len - pos > lim->max_line) {
                f->len = len;
                f->line_ended = false;
                return IMAP_FRAME_TOOLONG;
            }
            return IMAP_FRAME_MORE;
        }
        line_len = (size_t)(lf - (data + pos));
        content = line_len;
        if (content > 0 && data[pos + content - 1] == '\r')
            content--;
        if (content > lim->max_line) {
            f->len = pos + line_len + 1;
            f->line_ended = true;
            return IMAP_FRAME_TOOLONG;
        }
        if (!imap_line_literal(data + pos, content, &size, &nonsync,
                               &overflow)) {
            f->len = pos + line_len + 1;
            return IMAP_FRAME_DONE;
        }
        pos += line_len + 1;
        limit = append ? lim->max_append_literal : lim->max_literal;
        if (overflow || size > limit || ++nliterals > IMAP_LITERALS_MAX) {
            f->len = pos;
            f->literal_size = (size_t)(size > SIZE_MAX ? SIZE_MAX : size);
            f->nonsync = nonsync;
            return IMAP_FRAME_TOOBIG;
        }
        if (len - pos < size) {
            if (nonsync)
                return IMAP_FRAME_MORE;
            f->cont_at = pos;
            return IMAP_FRAME_CONTINUE;
        }
        pos += (size_t)size;
    }
}

enum imap_frame_status imap_line_scan(const char *data, size_t len,
                                      size_t max_line, size_t *line_len,
                                      size_t *used, bool *line_ended)
{
    const char *lf = memchr(data, '\n', len);
    size_t n;

    *line_ended = lf != NULL;
    if (lf == NULL) {
        *used = len;
        return len > max_line ? IMAP_FRAME_TOOLONG : IMAP_FRAME_MORE;
    }
    n = (size_t)(lf - data);
    *used = n + 1;
    if (n > 0 && data[n - 1] == '\r')
        n--;
    *line_len = n;
    return n > max_line ? IMAP_FRAME_TOOLONG : IMAP_FRAME_DONE;
}

/* ---------------------------------------------------------- arguments */

struct imap_parser {
    struct imap_pool *pool;
    const char *p;
    size_t len;
    size_t pos;
    const char *err;
};

static bool imap_at_eol(const struct imap_parser *ps)
{
    return ps->pos >= ps->len || ps->p[ps->pos] == '\r' ||
           ps->p[ps->pos] == '\n';
}

/* Characters that end an atom (besides CTL and 8-bit, which are refused). */
static bool imap_atom_special(int c)
{
    return c == ' ' || c == '(' || c == ')' || c == '{' || c == '"' ||
           c == '\r' || c == '\n';
}

static int imap_parse_atom(struct imap_parser *ps, struct imap_arg *a)
{
    size_t start = ps->pos;

    while (ps->pos < ps->len) {
        unsigned char c = (unsigned char)ps->p[ps->pos];

        if (c == '[') {
            /* A bracketed part with its "]" on this line is one piece. */
            size_t k = ps->pos + 1;

            while (k < ps->len && ps->p[k] != ']' && ps->p[k] != '\r' &&
                   ps->p[k] != '\n' && ps->p[k] != '[' && ps->p[k] != 0)
                k++;
            if (k < ps->len && ps->p[k] == ']') {
                ps->pos = k + 1;
                continue;
            }
        }
        if (imap_atom_special(c))
            break;
        if (c < 0x20 || c == 0x7f) {
            ps->err = "control character in an atom";
            return -1;
        }
        ps->pos++;
    }
    if (ps->pos == start) {
        ps->err = "expected an atom";
        return -1;
    }
    a->type = IMAP_ARG_ATOM;
    a->len = ps->pos - start;
    a->str = imap_pool_strndup(ps->pool, ps->p + start, a->len);
    return 0;
}

static int imap_parse_quoted(struct imap_parser *ps, struct imap_arg *a)
{
    size_t start = ++ps->pos, n = 0;
    char *out;

    /* First pass: find the end and the unescaped length. */
    for (size_t i = start;; i++) {
        if (i >= ps->len || ps->p[i] == '\r' || ps->p[i] == '\n' ||
            ps->p[i] == 0) {
            ps->err = "unterminated quoted string";
            return -1;
        }
        if (ps->p[i] == '"')
            break;
        if (ps->p[i] == '\\') {
            if (i + 1 >= ps->len ||
                (ps->p[i + 1] != '\\' && ps->p[i + 1] != '"')) {
                ps->err = "bad escape in a quoted string";
                return -1;
            }
            i++;
        }
        n++;
    }
    out = imap_pool_alloc(ps->pool, n + 1);
    n = 0;
    while (ps->p[ps->pos] != '"') {
        if (ps->p[ps->pos] == '\\')
            ps->pos++;
        out[n++] = ps->p[ps->pos++];
    }
    ps->pos++;
    out[n] = 0;
    a->type = IMAP_ARG_QUOTED;
    a->str = out;
    a->len = n;
    return 0;
}

static int imap_parse_literal(struct imap_parser *ps, struct imap_arg *a)
{
    uint64_t size = 0;
    size_t digits = 0;

    ps->pos++; /* '{' */
    while (ps->pos < ps->len && isdigit((unsigned char)ps->p[ps->pos])) {
        if (++digits > IMAP_LITERAL_DIGITS_MAX) {
            ps->err = "literal size too long";
            return -1;
        }
        size = size * 10 + (uint64_t)(ps->p[ps->pos++] - '0');
    }
    if (digits == 0) {
        ps->err = "bad literal size";
        return -1;
    }
    if (ps->pos < ps->len && ps->p[ps->pos] == '+')
        ps->pos++;
    if (ps->pos >= ps->len || ps->p[ps->pos] != '}') {
        ps->err = "bad literal";
        return -1;
    }
    ps->pos++;
    if (ps->pos < ps->len && ps->p[ps->pos] == '\r')
        ps->pos++;
    if (ps->pos >= ps->len || ps->p[ps->pos] != '\n') {
        ps->err = "literal not at the end of a line";
        return -1;
    }
    ps->pos++;
    if (size > ps->len - ps->pos) {
        ps->err = "literal longer than the command";
        return -1;
    }
    a->type = IMAP_ARG_LITERAL;
    a->len = (size_t)size;
    a->str = imap_pool_strndup(ps->pool, ps->p + ps->pos, a->len);
    ps->pos += a->len;
    return 0;
}

static int imap_parse_list(struct imap_parser *ps, struct imap_arg *a,
                           int depth);

static int imap_parse_arg(struct imap_parser *ps, struct imap_arg *a,
                          int depth)
{
    if (ps->pos >= ps->len) {
        ps->err = "missing argument";
        return -1;
    }
    switch (ps->p[ps->pos]) {
    case '"':
        return imap_parse_quoted(ps, a);
    case '{':
        return imap_parse_literal(ps, a);
    case '(':
        return imap_parse_list(ps, a, depth + 1);
    case ')':
        ps->err = "unexpected ')'";
        return -1;
    default:
        return imap_parse_atom(ps, a);
    }
}

/*
 * Arguments separated by single spaces until `close` (')') or the end of
 * the line (close == 0).  Members go into a growing array from the pool.
 */
static int imap_parse_args(struct imap_parser *ps, char close, int depth,
                           struct imap_arg **out, size_t *count)
{
    struct imap_arg *v = NULL;
    size_t n = 0, cap = 0;

    for (;;) {
        if (close ? (ps->pos < ps->len && ps->p[ps->pos] == close)
                  : imap_at_eol(ps))
            break;
        if (close && imap_at_eol(ps)) {
            ps->err = "unterminated list";
            return -1;
        }
        if (n > 0) {
            if (ps->p[ps->pos] != ' ') {
                ps->err = "expected a space between arguments";
                return -1;
            }
            ps->pos++;
            /* One trailing space before the end is tolerated. */
            if (!close && imap_at_eol(ps))
                break;
        }
        if (n == cap) {
            struct imap_arg *nv;

            cap = cap ? cap * 2 : 4;
            nv = imap_pool_allocarray(ps->pool, cap, sizeof(*nv));
            if (n > 0)
                memcpy(nv, v, n * sizeof(*nv));
            v = nv;
        }
        if (imap_parse_arg(ps, &v[n], depth) < 0)
            return -1;
        n++;
    }
    *out = v;
    *count = n;
    return 0;
}

static int imap_parse_list(struct imap_parser *ps, struct imap_arg *a,
                           int depth)
{
    if (depth > IMAP_DEPTH_MAX) {
        ps->err = "lists nested too deeply";
        return -1;
    }
    ps->pos++; /* '(' */
    a->type = IMAP_ARG_LIST;
    if (imap_parse_args(ps, ')', depth, &a->list, &a->count) < 0)
        return -1;
    ps->pos++; /* ')' */
    return 0;
}

static bool imap_tag_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' &&
           c != '%' && c != '*' && c != '"' && c != '\\' && c != '+';
}

int imap_parse_command(struct imap_pool *pool, const char *data, size_t len,
                       struct imap_command *cmd, const char **err)
{
    struct imap_parser ps = {pool, data, len, 0, NULL};
    size_t start;

    memset(cmd, 0, sizeof(*cmd));
    while (ps.pos < len && imap_tag_char((unsigned char)data[ps.pos]))
        ps.pos++;
    if (ps.pos == 0 || ps.pos > IMAP_TAG_MAX ||
        (ps.pos < len && data[ps.pos] != ' ' && !imap_at_eol(&ps))) {
        *err = "bad or missing tag";
        return -1;
    }
    cmd->tag = imap_pool_strndup(pool, data, ps.pos);
    if (ps.pos >= len || data[ps.pos] != ' ') {
        *err = "missing command";
        return -1;
    }
    start = ++ps.pos;
    while (ps.pos < len && isalnum((unsigned char)data[ps.pos]))
        ps.pos++;
    if (ps.pos == start || (ps.pos < len && data[ps.pos] != ' ' &&
                            !imap_at_eol(&ps))) {
        *err = "bad or missing command name";
        return -1;
    }
    cmd->name = imap_pool_strndup(pool, data + start, ps.pos - start);
    for (char *c = cmd->name; *c; c++)
        *c = (char)toupper((unsigned char)*c);
    if (ps.pos < len && data[ps.pos] == ' ') {
        ps.pos++;
        if (imap_parse_args(&ps, 0, 0, &cmd->args, &cmd->nargs) < 0) {
            *err = ps.err;
            return -1;
        }
    }
    if (ps.pos < len && data[ps.pos] == '\r')
        ps.pos++;
    if (ps.pos >= len || data[ps.pos] != '\n' || ps.pos + 1 != len) {
        *err = "junk at the end of the command";
        return -1;
    }
    return 0;
}

bool imap_arg_is_atom(const struct imap_arg *a, const char *word)
{
    return a->type == IMAP_ARG_ATOM && strcasecmp(a->str, word) == 0;
}

bool imap_arg_is_nil(const struct imap_arg *a)
{
    return imap_arg_is_atom(a, "NIL");
}

bool imap_arg_astring(const struct imap_arg *a, const char **s)
{
    if (a->type == IMAP_ARG_LIST || strlen(a->str) != a->len)
        return false;
    *s = a->str;
    return true;
}

bool imap_arg_string(const struct imap_arg *a, const char **s)
{
    if (a->type == IMAP_ARG_ATOM)
        return false;
    return imap_arg_astring(a, s);
}

bool imap_parse_number64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 20)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned d;

        if (!isdigit((unsigned char)s[i]))
            return false;
        d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool imap_arg_number(const struct imap_arg *a, uint32_t *n)
{
    uint64_t v;

    if (a->type != IMAP_ARG_ATOM || !imap_parse_number64(a->str, a->len, &v) ||
        v > UINT32_MAX)
        return false;
    *n = (uint32_t)v;
    return true;
}

/* ------------------------------------------------------ sequence sets */

static const char *imap_parse_seqnum(const char *s, uint32_t *out)
{
    uint64_t v = 0;
    size_t digits = 0;

    if (*s == '*') {
        *out = IMAP_SEQ_STAR;
        return s + 1;
    }
    while (isdigit((unsigned char)*s)) {
        v = v * 10 + (uint64_t)(*s++ - '0');
        if (++digits > 10 || v >= UINT32_MAX)
            return NULL;
    }
    if (digits == 0 || v == 0)
        return NULL;
    *out = (uint32_t)v;
    return s;
}

int imap_parse_seqset(struct imap_pool *pool, const char *s,
                      struct imap_seqset *out)
{
    size_t n = 1;

    for (const char *c = s; *c; c++)
        if (*c == ',')
            n++;
    out->r = imap_pool_allocarray(pool, n, sizeof(*out->r));
    out->n = 0;
    for (;;) {
        struct imap_seq_range *r = &out->r[out->n];

        if ((s = imap_parse_seqnum(s, &r->lo)) == NULL)
            return -1;
        r->hi = r->lo;
        if (*s == ':' && (s = imap_parse_seqnum(s + 1, &r->hi)) == NULL)
            return -1;
        out->n++;
        if (*s == 0)
            return 0;
        if (*s != ',' || out->n >= n)
            return -1;
        s++;
    }
}

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n,
                          uint32_t max)
{
    for (size_t i = 0; i < set->n; i++) {
        uint32_t lo = set->r[i].lo == IMAP_SEQ_STAR ? max : set->r[i].lo;
        uint32_t hi = set->r[i].hi == IMAP_SEQ_STAR ? max : set->r[i].hi;

        if (lo > hi) {
            uint32_t t = lo;

            lo = hi;
            hi = t;
        }
        if (n >= lo && n <= hi)
            return true;
    }
    return false;
}

/* -------------------------------------------------------------- dates */

static const char *const imap_months[12] = {"Jan", "Feb", "Mar", "Apr",
                                            "May", "Jun", "Jul", "Aug",
                                            "Sep", "Oct", "Nov", "Dec"};

static int imap_month(const char *s)
{
    for (int i = 0; i < 12; i++)
        if (strncasecmp(s, imap_months[i], 3) == 0)
            return i + 1;
    return 0;
}

static bool imap_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int imap_mdays(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30,
                                 31, 31, 30, 31, 30, 31};

    return m == 2 && imap_leap(y) ? 29 : days[m - 1];
}

/* "d-Mon-yyyy" or "dd-Mon-yyyy" at s; returns the end or NULL. */
static const char *imap_parse_dmy(const char *s, bool space_pad,
                                  struct imap_date *d)
{
    int day = 0, year = 0;

    if (space_pad && s[0] == ' ' && isdigit((unsigned char)s[1])) {
        day = s[1] - '0';
        s += 2;
    } else if (isdigit((unsigned char)s[0])) {
        day = *s++ - '0';
        if (isdigit((unsigned char)*s))
            day = day * 10 + (*s++ - '0');
    } else {
        return NULL;
    }
    if (*s != '-' || strlen(s + 1) < 3 || (d->mon = imap_month(s + 1)) == 0 ||
        s[4] != '-')
        return NULL;
    s += 5;
    for (int i = 0; i < 4; i++) {
        if (!isdigit((unsigned char)s[i]))
            return NULL;
        year = year * 10 + (s[i] - '0');
    }
    if (year < 1 || day < 1 || day > imap_mdays(year, d->mon))
        return NULL;
    d->year = year;
    d->mday = day;
    return s + 4;
}

int imap_parse_date(const char *s, struct imap_date *out)
{
    const char *end = imap_parse_dmy(s, false, out);

    return end != NULL && *end == 0 ? 0 : -1;
}

long imap_date_days(const struct imap_date *d)
{
    /* Howard Hinnant's days_from_civil. */
    int y = d->year - (d->mon <= 2);
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long doy = (153L * (d->mon + (d->mon > 2 ? -3 : 9)) + 2) / 5 + d->mday - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}

int imap_parse_datetime(const char *s, time_t *out)
{
    struct imap_date d;
    const char *p = imap_parse_dmy(s, true, &d);
    int v[3], zone;

    if (p == NULL || *p != ' ')
        return -1;
    p++;
    for (int i = 0; i < 3; i++) {
        if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]) ||
            p[2] != (i < 2 ? ':' : ' '))
            return -1;
        v[i] = (p[0] - '0') * 10 + (p[1] - '0');
        p += 3;
    }
    if ((p[0] != '+' && p[0] != '-') || strlen(p) != 5)
        return -1;
    for (int i = 1; i < 5; i++)
        if (!isdigit((unsigned char)p[i]))
            return -1;
    if (v[0] > 23 || v[1] > 59 || v[2] > 60)
        return -1;
    zone = ((p[1] - '0') * 10 + (p[2] - '0')) * 60 + (p[3] - '0') * 10 +
           (p[4] - '0');
    if (p[0] == '-')
        zone = -zone;
    *out = (time_t)imap_date_days(&d) * 86400 + v[0] * 3600 + v[1] * 60 +
           v[2] - (time_t)zone * 60;
    return 0;
}

/* -------------------------------------------------------------- flags */

unsigned imap_flag_from_name(const char *s)
{
    static const struct {
        const char *name;
        unsigned flag;
    } flags[] = {
        {"\\Seen", IMAP_FLAG_SEEN},         {"\\Answered", IMAP_FLAG_ANSWERED},
        {"\\Flagged", IMAP_FLAG_FLAGGED},   {"\\Deleted", IMAP_FLAG_DELETED},
        {"\\Draft", IMAP_FLAG_DRAFT},       {"\\Recent", IMAP_FLAG_RECENT},
    };

    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        if (strcasecmp(s, flags[i].name) == 0)
            return flags[i].flag;
    return 0;
}

bool imap_parse_keyword_ok(const char *s)
{
    if (*s == 0)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
            return false;
    }
    return true;
}

int imap_parse_flags(struct imap_pool *pool, const struct imap_arg *a,
                     unsigned *sys, const char ***kw, size_t *nkw,
                     const char **err)
{
    const struct imap_arg *v = a->type == IMAP_ARG_LIST ? a->list : a;
    size_t n = a->type == IMAP_ARG_LIST ? a->count : 1;

    *sys = 0;
    *kw = imap_pool_allocarray(pool, n + 1, sizeof(**kw));
    *nkw = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = v[i].str;

        if (v[i].type != IMAP_ARG_ATOM) {
            *err = "flags must be atoms";
            return -1;
        }
        if (*s == '\\') {
            unsigned f = imap_flag_from_name(s);

            if (f == 0 || f == IMAP_FLAG_RECENT) {
                *err = "unknown or read-only system flag";
                return -1;
            }
            *sys |= f;
            continue;
        }
        if (!imap_parse_keyword_ok(s)) {
            *err = "invalid keyword";
            return -1;
        }
        /* Keywords compare case-insensitively; keep the first spelling. */
        {
            bool dup = false;

            for (size_t k = 0; k < *nkw && !dup; k++)
                dup = strcasecmp((*kw)[k], s) == 0;
            if (!dup)
                (*kw)[(*nkw)++] = s;
        }
    }
    return 0;
}

/* ----------------------------------------------------------- mailbox */

const char *imap_mailbox_arg(struct imap_pool *pool, const char *s)
{
    if (strcasecmp(s, "INBOX") == 0)
        return "INBOX";
    return imap_pool_strdup(pool, s);
}
