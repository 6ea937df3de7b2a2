/*
 * mastercf - master.cf parser (Postfix's eight columns and -o overrides).
 *
 * Given a path, it returns one master_service per entry, or an error
 * "path:line: message" for the first bad line: too few columns, a y/n
 * field that is neither, a bad wakeup or maxproc, an unknown or
 * unsupported service type, a malformed inet address or port, a duplicate
 * service, a malformed -o.  The file is trusted no more than main.cf; the
 * parser validates syntax only: whether an override names a real
 * parameter is config_set()'s business when master or a worker applies it,
 * and `posthorn conf check` does exactly that.
 *
 * Postfix 3.0 "{ ... }" groups are honoured: a column or argument may be
 * "{ text with spaces }" (braces and the blanks inside them stripped), and
 * "-o { name = value }" is normalised to "-o" "name=value".
 */
#include "global/mastercf.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "global/cf_lines.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

#define MASTERCF_SIZE_MAX (4 * 1024 * 1024)
#define MASTERCF_COLUMNS 8
#define SERVICE_NAME_MAX 100 /* unix socket names live in sun_path */
#define SHOWN_MAX 80

struct mastercf_parse {
    const char *path;
    struct master_service *services;
    size_t count;
    size_t cap;
    char *err;
    size_t errlen;
};

static void mastercf_err(struct mastercf_parse *mp, int line, const char *fmt,
                         ...) __attribute__((format(printf, 3, 4)));

static void mastercf_err(struct mastercf_parse *mp, int line, const char *fmt,
                         ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(mp->err, mp->errlen, "%s:%d: %s", mp->path, line, msg);
}

static const char *shown(char *dst, size_t size, const char *s)
{
    return log_printable(dst, size, s, strlen(s));
}

static bool blank(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
           c == '\f';
}

/*
 * Split an entry into tokens: blanks separate, except inside "{...}".  A
 * token that is one whole "{...}" group loses the braces and the blanks
 * just inside them.  Returns -1 on an unbalanced brace.
 */
static int mastercf_tokens(const char *s, struct argv *tokens)
{
    for (;;) {
        size_t n = 0;
        int depth = 0;

        while (blank((unsigned char)*s))
            s++;
        if (*s == 0)
            return 0;
        for (; s[n] != 0; n++) {
            if (s[n] == '{')
                depth++;
            else if (s[n] == '}' && --depth < 0)
                return -1;
            else if (depth == 0 && blank((unsigned char)s[n]))
                break;
        }
        if (depth != 0)
            return -1;
        if (s[0] == '{' && s[n - 1] == '}') {
            /* Whole-token group only if the first '{' closes at the end. */
            size_t k;
            int d = 0;

            for (k = 0; k < n; k++) {
                if (s[k] == '{')
                    d++;
                else if (s[k] == '}' && --d == 0)
                    break;
            }
            if (k == n - 1) {
                size_t a = 1, b = n - 1;

                while (a < b && blank((unsigned char)s[a]))
                    a++;
                while (b > a && blank((unsigned char)s[b - 1]))
                    b--;
                argv_addn(tokens, s + a, b - a);
                s += n;
                continue;
            }
        }
        argv_addn(tokens, s, n);
        s += n;
    }
}

/* y / n / - for private, unpriv, chroot. */
static int mastercf_yesno(struct mastercf_parse *mp, int line,
                          const char *column, const char *v, bool def,
                          bool *out)
{
    char sv[SHOWN_MAX];

    if (strcmp(v, "-") == 0)
        *out = def;
    else if (strcmp(v, "y") == 0)
        *out = true;
    else if (strcmp(v, "n") == 0)
        *out = false;
    else {
        mastercf_err(mp, line, "bad %s field '%s' (expected y, n or -)", column,
                     shown(sv, sizeof(sv), v));
        return -1;
    }
    return 0;
}

/* A non-negative decimal that fits an int. */
static bool mastercf_int(const char *v, int *out)
{
    long long n;

    if (*v == '-' || !str_to_llong(v, &n) || n < 0 || n > INT_MAX)
        return false;
    *out = (int)n;
    return true;
}

static bool port_name_valid(const char *port)
{
    if (*port == 0 || strlen(port) > 32)
        return false;
    for (const char *p = port; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
            return false;
    return true;
}

/* "port", "host:port", "[v6addr]:port" into svc->host / svc->port. */
static int mastercf_inet_name(struct mastercf_parse *mp, int line,
                              struct master_service *svc)
{
    const char *name = svc->name, *colon, *port;
    char sv[SHOWN_MAX];
    int num;

    if (name[0] == '[') {
        const char *close = strchr(name, ']');

        if (close == NULL || close[1] != ':' || close == name + 1) {
            mastercf_err(mp, line,
                         "bad inet service '%s' (expected "
                         "[address]:port)",
                         shown(sv, sizeof(sv), name));
            return -1;
        }
        svc->host = xstrndup(name + 1, (size_t)(close - name - 1));
        port = close + 2;
    } else if ((colon = strrchr(name, ':')) != NULL) {
        if (memchr(name, ':', (size_t)(colon - name)) != NULL) {
            mastercf_err(mp, line,
                         "bad inet service '%s' (write an IPv6 "
                         "address as [address]:port)",
                         shown(sv, sizeof(sv), name));
            return -1;
        }
        svc->host = xstrndup(name, (size_t)(colon - name));
        port = colon + 1;
    } else {
        svc->host = xstrdup("");
        port = name;
    }
    svc->port = xstrdup(port);
    if (port[0] >= '0' && port[0] <= '9') {
        if (!mastercf_int(port, &num) || num < 1 || num > 65535) {
            mastercf_err(mp, line, "bad port '%s' in inet service '%s'",
                         shown(sv, sizeof(sv), port), svc->name);
            return -1;
        }
        return 0;
    }
    if (!port_name_valid(port) || getservbyname(port, "tcp") == NULL) {
        mastercf_err(mp, line, "unknown port '%s' in inet service '%s'",
                     shown(sv, sizeof(sv), port), svc->name);
        return -1;
    }
    return 0;
}

/* "-o name=value" or "-o { name = value }" text, normalised. */
static int mastercf_override(struct mastercf_parse *mp, int line,
                             const char *text, struct master_service *svc)
{
    const char *eq = strchr(text, '=');
    char sv[SHOWN_MAX];
    char *name, *value, *n, *v, *norm;
    bool ok = true;

    if (eq == NULL) {
        mastercf_err(mp, line, "bad -o '%s' (expected name=value)",
                     shown(sv, sizeof(sv), text));
        return -1;
    }
    name = xstrndup(text, (size_t)(eq - text));
    value = xstrdup(eq + 1);
    n = str_trim(name);
    v = str_trim(value);
    if (*n == 0)
        ok = false;
    for (const char *p = n; *p && ok; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '_'))
            ok = false;
    if (!ok) {
        mastercf_err(mp, line, "bad parameter name in -o '%s'",
                     shown(sv, sizeof(sv), text));
        free(name);
        free(value);
        return -1;
    }
    norm = xasprintf("%s=%s", n, v);
    argv_add(&svc->args, "-o");
    argv_add(&svc->args, norm);
    argv_add(&svc->overrides, norm);
    free(norm);
    free(name);
    free(value);
    return 0;
}

static void service_free(struct master_service *svc)
{
    free(svc->name);
    free(svc->type);
    free(svc->command);
    argv_free(&svc->args);
    argv_free(&svc->overrides);
    free(svc->file);
    free(svc->host);
    free(svc->port);
}

/* One logical entry: fill a new service or fail. */
static int mastercf_entry(struct mastercf_parse *mp, int line, const char *text)
{
    struct argv tok = ARGV_INIT;
    struct master_service svc;
    char sv[SHOWN_MAX];
    const char *t;
    size_t len;
    int rc = -1;

    memset(&svc, 0, sizeof(svc));
    if (mastercf_tokens(text, &tok) < 0) {
        mastercf_err(mp, line, "unbalanced '{' or '}'");
        goto out;
    }
    if (tok.n < MASTERCF_COLUMNS) {
        mastercf_err(mp, line,
                     "expected at least %d fields (service type "
                     "private unpriv chroot wakeup maxproc command), got %zu",
                     MASTERCF_COLUMNS, tok.n);
        goto out;
    }
    svc.name = xstrdup(tok.v[0]);
    svc.type = xstrdup(tok.v[1]);
    svc.file = xstrdup(mp->path);
    svc.line = line;
    t = svc.type;
    if (strcmp(t, "unix-dgram") == 0 || strcmp(t, "pass") == 0 ||
        strcmp(t, "fifo") == 0) {
        mastercf_err(mp, line, "service type '%s' is not supported", t);
        goto out;
    }
    if (strcmp(t, "inet") != 0 && strcmp(t, "unix") != 0) {
        mastercf_err(mp, line,
                     "unknown service type '%s' (expected inet "
                     "or unix)",
                     shown(sv, sizeof(sv), t));
        goto out;
    }
    len = strlen(svc.name);
    if (len > SERVICE_NAME_MAX) {
        mastercf_err(mp, line,
                     "service name too long (%zu bytes, at most "
                     "%d)",
                     len, SERVICE_NAME_MAX);
        goto out;
    }
    if (strcmp(t, "inet") == 0) {
        if (mastercf_inet_name(mp, line, &svc) < 0)
            goto out;
    } else if (strchr(svc.name, '/') != NULL || strcmp(svc.name, ".") == 0 ||
               strcmp(svc.name, "..") == 0) {
        mastercf_err(mp, line,
                     "bad unix service name '%s' (a socket name "
                     "without '/')",
                     shown(sv, sizeof(sv), svc.name));
        goto out;
    }
    if (mastercf_yesno(mp, line, "private", tok.v[2], true, &svc.private_) <
            0 ||
        mastercf_yesno(mp, line, "unpriv", tok.v[3], true, &svc.unpriv) < 0 ||
        mastercf_yesno(mp, line, "chroot", tok.v[4], false, &svc.chroot) < 0)
        goto out;

    /* wakeup: "-", N, or N? (wake only after first use) */
    if (strcmp(tok.v[5], "-") == 0) {
        svc.wakeup = 0;
    } else {
        char *w = xstrdup(tok.v[5]);
        size_t wl = strlen(w);
        bool ok;

        if (wl > 1 && w[wl - 1] == '?') {
            w[wl - 1] = 0;
            svc.wakeup_used = true;
        }
        ok = mastercf_int(w, &svc.wakeup);
        free(w);
        if (!ok) {
            mastercf_err(mp, line,
                         "bad wakeup field '%s' (expected seconds, "
                         "seconds? or -)",
                         shown(sv, sizeof(sv), tok.v[5]));
            goto out;
        }
    }
    if (strcmp(tok.v[6], "-") == 0) {
        svc.maxproc = -1;
    } else if (!mastercf_int(tok.v[6], &svc.maxproc)) {
        mastercf_err(mp, line,
                     "bad maxproc field '%s' (expected a number or "
                     "-)",
                     shown(sv, sizeof(sv), tok.v[6]));
        goto out;
    }
    svc.command = xstrdup(tok.v[7]);
    for (size_t i = MASTERCF_COLUMNS; i < tok.n; i++) {
        const char *a = tok.v[i];

        if (strcmp(a, "-o") == 0) {
            if (i + 1 >= tok.n) {
                mastercf_err(mp, line, "-o without name=value");
                goto out;
            }
            if (mastercf_override(mp, line, tok.v[++i], &svc) < 0)
                goto out;
        } else if (strncmp(a, "-o", 2) == 0) {
            if (mastercf_override(mp, line, a + 2, &svc) < 0)
                goto out;
        } else {
            argv_add(&svc.args, a);
        }
    }
    for (size_t i = 0; i < mp->count; i++) {
        const struct master_service *o = &mp->services[i];
        if (strcmp(o->name, svc.name) == 0 && strcmp(o->type, svc.type) == 0) {
            mastercf_err(mp, line,
                         "duplicate service '%s' type %s (first "
                         "defined at line %d)",
                         shown(sv, sizeof(sv), svc.name), svc.type, o->line);
            goto out;
        }
    }
    if (mp->count == mp->cap) {
        mp->cap = mp->cap ? mp->cap * 2 : 16;
        mp->services =
            xreallocarray(mp->services, mp->cap, sizeof(*mp->services));
    }
    mp->services[mp->count++] = svc;
    rc = 0;
out:
    if (rc < 0)
        service_free(&svc);
    argv_free(&tok);
    return rc;
}

static int mastercf_parse_entry(void *ctx, int line, char *text)
{
    return mastercf_entry(ctx, line, text);
}

int mastercf_parse(const char *path, struct master_service **services,
                   size_t *count, char *err, size_t errlen)
{
    struct mastercf_parse mp = {path, NULL, 0, 0, err, errlen};
    struct buf text = BUF_INIT;
    int rc;

    *services = NULL;
    *count = 0;
    if (file_read_all(path, &text, MASTERCF_SIZE_MAX) < 0) {
        snprintf(err, errlen, "%s: cannot read: %s", path,
                 errno == EFBIG ? "file too large" : strerror(errno));
        return -1;
    }
    rc = cf_lines(path, &text, mastercf_parse_entry, &mp, err, errlen);
    buf_free(&text);
    if (rc < 0) {
        mastercf_free(mp.services, mp.count);
        return -1;
    }
    *services = mp.services;
    *count = mp.count;
    return 0;
}

void mastercf_free(struct master_service *services, size_t count)
{
    for (size_t i = 0; i < count; i++)
        service_free(&services[i]);
    free(services);
}
