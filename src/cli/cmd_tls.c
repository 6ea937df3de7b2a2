/*
 * cmd_tls - `posthorn tls`: TLS chores for the administrator.
 *
 *   posthorn tls new-cert [-c DIR] [--cn NAME] [--days N]
 *                         [--type rsa|ecdsa] [--force]
 *
 * new-cert makes a self-signed server certificate and its key (OpenSSL's
 * library, util/tls.c: RSA 2048 by default, or ECDSA P-256) for
 * $myhostname (or --cn), valid for 365 days (or --days), and writes them
 * where main.cf's smtpd_tls_cert_file and smtpd_tls_key_file point.
 * When those are unset it writes DIR/tls/cert.pem and DIR/tls/key.pem
 * and prints the two main.cf lines that use them.  Both parameters may
 * name the same file: key and certificate then go into it together.
 *
 * Existing files are never overwritten without --force.  Each file is
 * written atomically (temporary file, fsync, rename); the key is mode
 * 0600 and, when run as root, owned by root with mail_owner's group and
 * mode 0640, so it stays unreadable to everyone else at every moment.
 * The result is loaded back as a TLS server would load it before the
 * command reports success.
 *
 * Exit status: 0 written, 1 error (files exist, bad configuration, I/O),
 * 2 usage.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "global/config.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/tls.h"

#define TLS_EXIT_ERROR 1
#define TLS_EXIT_USAGE 2
#define TLS_DEFAULT_DAYS 365

struct new_cert_opts {
    const char *confdir;
    const char *cn;
    int days;
    enum tls_key_type type;
    bool force;
};

static int tls_usage(void)
{
    fprintf(stderr, "usage: posthorn tls new-cert [-c config_dir] [--cn name] "
                    "[--days n] [--type rsa|ecdsa] [--force]\n");
    return TLS_EXIT_USAGE;
}

static int parse_new_cert(int argc, char **argv, struct new_cert_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long n;

        if (strcmp(a, "--force") == 0 || strcmp(a, "-f") == 0) {
            o->force = true;
            continue;
        }
        if (v == NULL)
            return -1;
        if (strcmp(a, "-c") == 0) {
            o->confdir = v;
        } else if (strcmp(a, "--cn") == 0) {
            o->cn = v;
        } else if (strcmp(a, "--days") == 0) {
            if (!str_to_llong(v, &n) || n < 1 || n > 36500) {
                fprintf(stderr, "posthorn: --days: '%s' is not 1..36500\n", v);
                return -1;
            }
            o->days = (int)n;
        } else if (strcmp(a, "--type") == 0) {
            if (strcmp(v, "rsa") == 0)
                o->type = TLS_KEY_RSA;
            else if (strcmp(v, "ecdsa") == 0 || strcmp(v, "ec") == 0)
                o->type = TLS_KEY_ECDSA;
            else {
                fprintf(stderr, "posthorn: --type: use rsa or ecdsa\n");
                return -1;
            }
        } else {
            return -1;
        }
        i++;
    }
    return 0;
}

/*
 * The key's group: mail_owner's when we are root (-1 otherwise), found
 * before anything is written.  0, or -1 after a message.
 */
static int key_group(struct config *cfg, gid_t *gid)
{
    const char *owner = config_str(cfg, "mail_owner");
    struct passwd *pw;

    *gid = (gid_t)-1;
    if (geteuid() != 0)
        return 0;
    if ((pw = getpwnam(owner)) == NULL) {
        fprintf(stderr, "posthorn: mail_owner %s: no such user\n", owner);
        return -1;
    }
    *gid = pw->pw_gid;
    return 0;
}

/* Key permissions: 0600, or root:<mail_owner's group> 0640 as root. */
static int protect_key(const char *path, gid_t gid)
{
    if (gid != (gid_t)-1 &&
        (chown(path, 0, gid) < 0 || chmod(path, 0640) < 0)) {
        fprintf(stderr, "posthorn: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int write_file(const char *path, const struct buf *data, mode_t mode)
{
    char *dir = xstrdup(path), *slash = strrchr(dir, '/');
    int rc = 0;

    if (slash != NULL && slash != dir) {
        *slash = 0;
        if (mkdir_p(dir, 0755) < 0) {
            fprintf(stderr, "posthorn: %s: %s\n", dir, strerror(errno));
            rc = -1;
        }
    }
    free(dir);
    if (rc == 0 && file_write_atomic(path, data->data, data->len, mode) < 0) {
        fprintf(stderr, "posthorn: %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    return rc;
}

static bool exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

static int new_cert(struct config *cfg, const struct new_cert_opts *o)
{
    const char *cert = config_str(cfg, "smtpd_tls_cert_file");
    const char *key = config_str(cfg, "smtpd_tls_key_file");
    const char *cn = o->cn != NULL ? o->cn : config_str(cfg, "myhostname");
    struct buf key_pem = BUF_INIT, cert_pem = BUF_INIT;
    char *cert_path, *key_path, err[512], until[32];
    bool configured = *cert != 0, combined;
    long long not_after = 0;
    struct tls_ctx *check;
    gid_t gid;
    int rc = TLS_EXIT_ERROR;

    if (configured) {
        cert_path = xstrdup(cert);
        key_path = xstrdup(*key ? key : cert);
    } else {
        cert_path =
            xasprintf("%s/tls/cert.pem", config_str(cfg, "config_directory"));
        key_path =
            xasprintf("%s/tls/key.pem", config_str(cfg, "config_directory"));
    }
    combined = strcmp(cert_path, key_path) == 0;
    if (!o->force && (exists(cert_path) || exists(key_path))) {
        fprintf(stderr,
                "posthorn: %s exists; use --force to replace the "
                "certificate and its key\n",
                exists(cert_path) ? cert_path : key_path);
        goto done;
    }
    if (key_group(cfg, &gid) < 0)
        goto done;
    if (tls_self_signed(cn, o->days, o->type, &key_pem, &cert_pem, &not_after,
                        err, sizeof(err)) < 0) {
        fprintf(stderr, "posthorn: %s\n", err);
        goto done;
    }
    if (combined) {
        buf_append(&key_pem, cert_pem.data, cert_pem.len);
        if (write_file(key_path, &key_pem, 0600) < 0 ||
            protect_key(key_path, gid) < 0)
            goto done;
    } else if (write_file(key_path, &key_pem, 0600) < 0 ||
               protect_key(key_path, gid) < 0 ||
               write_file(cert_path, &cert_pem, 0644) < 0) {
        goto done;
    }
    {
        struct tls_ctx_opts co = {.role = TLS_ROLE_SERVER,
                                  .cert_file = cert_path,
                                  .key_file = key_path};

        if ((check = tls_ctx_new(&co, err, sizeof(err))) == NULL) {
            fprintf(stderr, "posthorn: the new certificate does not load: %s\n",
                    err);
            goto done;
        }
        tls_ctx_free(check);
    }
    {
        time_t t = (time_t)not_after;
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(until, sizeof(until), "%Y-%m-%d %H:%M:%S UTC", &tm);
    }
    printf("private key: %s (%s)\n", key_path,
           o->type == TLS_KEY_ECDSA ? "ECDSA P-256" : "RSA 2048");
    printf("certificate: %s (self-signed for %s, valid until %s)\n", cert_path,
           cn, until);
    if (!configured)
        printf("add to %s/main.cf:\n"
               "    smtpd_tls_cert_file = %s\n"
               "    smtpd_tls_key_file = %s\n"
               "    smtpd_tls_security_level = may\n",
               config_str(cfg, "config_directory"), cert_path, key_path);
    printf("running smtpd processes use it after `posthorn reload`\n");
    rc = 0;
done:
    if (key_pem.data != NULL)
        explicit_bzero(key_pem.data, key_pem.len);
    buf_free(&key_pem);
    buf_free(&cert_pem);
    free(cert_path);
    free(key_path);
    return rc;
}

int cmd_tls(const char *confdir, int argc, char **argv)
{
    struct new_cert_opts o = {
        .confdir = confdir, .days = TLS_DEFAULT_DAYS, .type = TLS_KEY_RSA};
    struct config *cfg;
    char err[1024];
    int rc;

    if (argc < 2 || strcmp(argv[1], "new-cert") != 0)
        return tls_usage();
    if (parse_new_cert(argc - 1, argv + 1, &o) < 0)
        return tls_usage();
    cfg = config_new();
    if (config_load(cfg, o.confdir, NULL, err, sizeof(err)) < 0 ||
        config_check(cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "posthorn: %s\n", err);
        config_free(cfg);
        return TLS_EXIT_ERROR;
    }
    rc = new_cert(cfg, &o);
    config_free(cfg);
    return rc;
}
