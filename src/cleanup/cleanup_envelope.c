/*
 * cleanup_envelope - validate the envelope frame smtpd sends (see
 * global/mail_proto.h) before anything of it reaches a queue file or a
 * header.
 *
 * The frame is treated like network input: every attribute has a bound
 * and a syntax, singletons may appear once, notify/orcpt must follow a
 * rcpt, and addresses must be in internal form exactly as
 * addr_parse_path() produces it.  Unknown attribute names are ignored so
 * that smtpd can grow the protocol first.  The first problem found is
 * returned as a static text for the log; the caller answers 4.3.0.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup/cleanup.h"
#include "global/addr.h"
#include "util/mem.h"

/* Arrival times outside [2000-01-01, now + 1 day] are not plausible. */
#define CLEANUP_ARRIVAL_MIN 946684800LL
#define CLEANUP_ARRIVAL_SKEW 86400LL

void cleanup_rcpt_add(struct cleanup_rcpt_list *l, const char *addr,
                      const char *orig, const char *notify, const char *orcpt)
{
    struct cleanup_rcpt *r;

    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
    }
    r = &l->v[l->n++];
    r->addr = xstrdup(addr);
    r->orig = xstrdup(orig ? orig : "");
    r->notify = xstrdup(notify ? notify : "");
    r->orcpt = xstrdup(orcpt ? orcpt : "");
}

void cleanup_rcpt_list_free(struct cleanup_rcpt_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].addr);
        free(l->v[i].orig);
        free(l->v[i].notify);
        free(l->v[i].orcpt);
    }
    free(l->v);
    memset(l, 0, sizeof(*l));
}

void cleanup_envelope_free(struct cleanup_envelope *env)
{
    free(env->sender);
    free(env->client_name);
    free(env->client_addr);
    free(env->client_port);
    free(env->helo);
    free(env->protocol);
    free(env->body);
    free(env->envid);
    free(env->ret);
    free(env->sasl_username);
    free(env->tls);
    free(env->filter);
    free(env->redirect);
    argv_free(&env->prepend);
    cleanup_rcpt_list_free(&env->rcpts);
    memset(env, 0, sizeof(*env));
}

bool cleanup_addr_ok(const char *addr, bool smtputf8)
{
    struct mailaddr a;
    const char *err;
    size_t n = strlen(addr), used;
    char *path;
    bool ok;

    if (n == 0 || n > ADDR_PATH_MAX - 2)
        return false;
    path = xmalloc(n + 3);
    path[0] = '<';
    memcpy(path + 1, addr, n);
    path[n + 1] = '>';
    path[n + 2] = 0;
    ok = addr_parse_path(path, n + 2, false, smtputf8, &a, &used, &err) == 0;
    /* Internal form is exactly what the parser makes of it. */
    if (ok) {
        ok = used == n + 2 && strcmp(a.text, addr) == 0;
        addr_free(&a);
    }
    free(path);
    return ok;
}

/* Bytes in [lo, hi] only, 1..max of them. */
static bool text_ok(const char *s, size_t max, unsigned char lo,
                    unsigned char hi)
{
    size_t n = 0;

    for (; s[n]; n++)
        if ((unsigned char)s[n] < lo || (unsigned char)s[n] > hi ||
            (unsigned char)s[n] == 0x7f)
            return false;
    return n > 0 && n <= max;
}

static bool digits_ok(const char *s, size_t max)
{
    size_t n = strspn(s, "0123456789");

    return n > 0 && n <= max && s[n] == 0;
}

static bool one_of(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcasecmp(s, *words) == 0)
            return true;
    return false;
}

/* RFC 3461 NOTIFY: NEVER, or a list of SUCCESS, FAILURE, DELAY. */
static bool notify_ok(const char *s)
{
    static const char *const words[] = {"SUCCESS", "FAILURE", "DELAY"};
    unsigned seen = 0;

    if (strcasecmp(s, "NEVER") == 0)
        return true;
    while (*s) {
        size_t n = strcspn(s, ",");
        unsigned bit = 0;

        for (unsigned i = 0; i < 3; i++)
            if (strlen(words[i]) == n && strncasecmp(s, words[i], n) == 0)
                bit = 1u << i;
        if (bit == 0 || (seen & bit))
            return false;
        seen |= bit;
        s += n;
        if (*s == ',' && *++s == 0)
            return false;
    }
    return seen != 0;
}

static bool ip_ok(const char *s)
{
    unsigned char tmp[16];

    return inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1;
}

/*
 * FILTER's "transport:nexthop": a master.cf service name, then a next
 * hop as the delivery agent reads it; printable, no blanks.
 */
static bool filter_ok(const char *v)
{
    size_t t = strcspn(v, ":");

    if (t == 0 || v[t] != ':' || !text_ok(v, CLEANUP_FILTER_MAX, 0x21, 0x7e))
        return false;
    for (size_t i = 0; i < t; i++)
        if (!(isalnum((unsigned char)v[i]) || strchr("-_.", v[i]) != NULL))
            return false;
    return true;
}

/* PREPEND's header: "Name: value", one line of printable text. */
static bool prepend_ok(const char *v)
{
    size_t n = strcspn(v, ":");

    if (n == 0 || v[n] != ':' || !text_ok(v, CLEANUP_TEXT_MAX, 0x20, 0x7e))
        return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] == ' ')
            return false;
    return true;
}

/* Each optional singleton: its name, where it goes, and its check. */
enum check {
    CK_HOST,
    CK_IP,
    CK_PORT,
    CK_LINE,
    CK_PROTO,
    CK_BOOL,
    CK_BODY,
    CK_XTEXT,
    CK_RET,
    CK_TEXT,
    CK_TIME
};

struct field {
    const char *name;
    size_t offset;
    enum check check;
};

#define FIELD(n, c)                                                            \
    {                                                                          \
#n, offsetof(struct cleanup_envelope, n), c                            \
    }
static const struct field fields[] = {
    FIELD(client_name, CK_HOST),   FIELD(client_addr, CK_IP),
    FIELD(client_port, CK_PORT),   FIELD(helo, CK_LINE),
    FIELD(protocol, CK_PROTO),     FIELD(body, CK_BODY),
    FIELD(envid, CK_XTEXT),        FIELD(ret, CK_RET),
    FIELD(sasl_username, CK_TEXT), FIELD(tls, CK_TEXT),
};

static bool field_ok(enum check c, const char *v)
{
    static const char *const bodies[] = {"7BIT", "8BITMIME", "BINARYMIME",
                                         NULL};
    static const char *const rets[] = {"FULL", "HDRS", NULL};

    switch (c) {
    case CK_HOST:
        return text_ok(v, CLEANUP_HOST_MAX, 0x21, 0x7e);
    case CK_IP:
        return ip_ok(v);
    case CK_PORT:
        return digits_ok(v, 5) && atol(v) <= 65535;
    case CK_LINE:
        /* What the client said in HELO: 8-bit is its business. */
        return text_ok(v, CLEANUP_HOST_MAX, 0x20, 0xff);
    case CK_PROTO:
        return text_ok(v, CLEANUP_PROTO_MAX, 0x21, 0x7e) &&
               strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == strlen(v);
    case CK_BOOL:
        return strcmp(v, "0") == 0 || strcmp(v, "1") == 0;
    case CK_BODY:
        return one_of(v, bodies);
    case CK_XTEXT:
        return text_ok(v, CLEANUP_ENVID_MAX, 0x20, 0x7e);
    case CK_RET:
        return one_of(v, rets);
    case CK_TEXT:
        return text_ok(v, CLEANUP_TEXT_MAX, 0x20, 0xff);
    case CK_TIME:
        return digits_ok(v, 12);
    }
    return false;
}

int cleanup_envelope_parse(const struct attr_list *frame, time_t now,
                           struct cleanup_envelope *env, const char **why)
{
    bool have_request = false, have_utf8 = false, have_arrival = false;
    bool rcpt_notify = false, rcpt_orcpt = false;
    const char *sender = NULL;

    memset(env, 0, sizeof(*env));
    env->arrival = now;
    *why = NULL;
    for (size_t i = 0; i < frame->n; i++) {
        const struct attr *a = &frame->v[i];
        const char *v = a->value;

        if (strlen(v) != a->len) {
            *why = "NUL byte in envelope attribute";
            return -1;
        }
        if (strcmp(a->name, "request") == 0) {
            if (have_request || strcmp(v, "submit") != 0) {
                *why = "bad or repeated request attribute";
                return -1;
            }
            have_request = true;
        } else if (strcmp(a->name, "sender") == 0) {
            if (sender != NULL) {
                *why = "repeated sender attribute";
                return -1;
            }
            sender = v;
        } else if (strcmp(a->name, "smtputf8") == 0) {
            if (have_utf8 || !field_ok(CK_BOOL, v)) {
                *why = "bad or repeated smtputf8 attribute";
                return -1;
            }
            have_utf8 = true;
            env->smtputf8 = v[0] == '1';
        } else if (strcmp(a->name, "arrival") == 0) {
            long long t;
            if (have_arrival || !field_ok(CK_TIME, v)) {
                *why = "bad or repeated arrival attribute";
                return -1;
            }
            t = atoll(v);
            if (t < CLEANUP_ARRIVAL_MIN ||
                t > (long long)now + CLEANUP_ARRIVAL_SKEW) {
                *why = "implausible arrival time";
                return -1;
            }
            have_arrival = true;
            env->arrival = (time_t)t;
        } else if (strcmp(a->name, "hold") == 0 ||
                   strcmp(a->name, "discard") == 0) {
            if (!field_ok(CK_BOOL, v)) {
                *why = "bad hold or discard attribute";
                return -1;
            }
            if (a->name[0] == 'h')
                env->hold = v[0] == '1';
            else
                env->discard = v[0] == '1';
        } else if (strcmp(a->name, "filter") == 0) {
            if (env->filter != NULL || !filter_ok(v)) {
                *why = "bad or repeated filter attribute";
                return -1;
            }
            env->filter = xstrdup(v);
        } else if (strcmp(a->name, "redirect") == 0) {
            /* Checked below, once smtputf8 is known. */
            if (env->redirect != NULL) {
                *why = "repeated redirect attribute";
                return -1;
            }
            env->redirect = xstrdup(v);
        } else if (strcmp(a->name, "prepend") == 0) {
            if (env->prepend.n >= CLEANUP_PREPEND_MAX || !prepend_ok(v)) {
                *why = "bad prepend attribute";
                return -1;
            }
            argv_add(&env->prepend, v);
        } else if (strcmp(a->name, "rcpt") == 0) {
            /* Checked below, once smtputf8 is known. */
            cleanup_rcpt_add(&env->rcpts, v, "", "", "");
            rcpt_notify = rcpt_orcpt = false;
        } else if (strcmp(a->name, "notify") == 0) {
            if (env->rcpts.n == 0 || rcpt_notify || !notify_ok(v)) {
                *why = "bad or misplaced notify attribute";
                return -1;
            }
            rcpt_notify = true;
            free(env->rcpts.v[env->rcpts.n - 1].notify);
            env->rcpts.v[env->rcpts.n - 1].notify = xstrdup(v);
        } else if (strcmp(a->name, "orcpt") == 0) {
            if (env->rcpts.n == 0 || rcpt_orcpt ||
                !text_ok(v, CLEANUP_ORCPT_MAX, 0x20, 0x7e) ||
                strchr(v, ';') == NULL) {
                *why = "bad or misplaced orcpt attribute";
                return -1;
            }
            rcpt_orcpt = true;
            free(env->rcpts.v[env->rcpts.n - 1].orcpt);
            env->rcpts.v[env->rcpts.n - 1].orcpt = xstrdup(v);
        } else {
            for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]); k++) {
                char **dst;
                if (strcmp(a->name, fields[k].name) != 0)
                    continue;
                dst = (char **)((char *)env + fields[k].offset);
                if (*dst != NULL || !field_ok(fields[k].check, v)) {
                    *why = "bad or repeated client attribute";
                    return -1;
                }
                *dst = xstrdup(v);
                break;
            }
            /* Anything else is a newer smtpd's business: ignored. */
        }
    }
    if (!have_request) {
        *why = "missing request=submit";
        return -1;
    }
    if (sender == NULL) {
        *why = "missing sender attribute";
        return -1;
    }
    if (*sender && !cleanup_addr_ok(sender, env->smtputf8)) {
        *why = "bad sender address";
        return -1;
    }
    env->sender = xstrdup(sender);
    if (env->rcpts.n == 0) {
        *why = "no recipients";
        return -1;
    }
    for (size_t i = 0; i < env->rcpts.n; i++) {
        if (!cleanup_addr_ok(env->rcpts.v[i].addr, env->smtputf8)) {
            *why = "bad recipient address";
            return -1;
        }
    }
    if (env->redirect != NULL && !cleanup_addr_ok(env->redirect, false)) {
        *why = "bad redirect address";
        return -1;
    }
    return 0;
}
