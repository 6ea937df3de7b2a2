/*
 * tls - OpenSSL glue under a stream.  See tls.h.
 *
 * Given a connected socket stream by its owner.  Trusts nothing the peer
 * sends: OpenSSL parses the records, and the certificate's verdict is
 * only reported.  The handshake runs on the non-blocking descriptor with
 * poll() and one deadline, so a silent or slow peer cannot hold us past
 * the caller's timeout.  After the handshake, reads and writes go through
 * SSL_read/SSL_write in stream_ops form: OpenSSL's WANT_READ/WANT_WRITE
 * become EAGAIN with the direction the stream must poll for.
 *
 * OpenSSL's thread-local error queue is cleared before each call so that
 * SSL_get_error() describes that call and not an older one.
 *
 * Certificates and keys are files the administrator named: a key that is
 * encrypted is refused (no terminal to ask), chain files are read block
 * by block with OpenSSL's PEM reader and must hold each key before its
 * certificate chain.  Protocol lists are parsed here, not by OpenSSL,
 * because Postfix's syntax ("!TLSv1, >=TLSv1.2") is not OpenSSL's.
 */
#include "util/tls.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <strings.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "util/log.h"
#include "util/mem.h"
#include "util/sock.h"
#include "util/str.h"

#define TLS_CN_MAX 256
/*
 * Servers without a protocols setting: TLS 1.0 and 1.1 are deprecated
 * (RFC 8996).  Clients keep TLS 1.0 up: opportunistic TLS to an old
 * server still beats plaintext.
 */
#define TLS_SERVER_DEFAULT_PROTOCOLS ">=TLSv1.2"
/* What tls_self_signed makes: RSA key size and longest validity. */
#define TLS_SELF_SIGNED_RSA_BITS 2048
#define TLS_SELF_SIGNED_DAYS_MAX (100 * 366)

struct tls_ctx {
    SSL_CTX *ssl_ctx;
    enum tls_role role;
};

struct tls_conn {
    SSL *ssl;
    enum tls_trust trust;
    char verify_error[128];
    char peer_cn[TLS_CN_MAX];
};

/* The most recent OpenSSL error as text, or `fallback`. */
static void tls_err(char *err, size_t errlen, const char *what,
                    const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    char text[256];

    if (e != 0) {
        ERR_error_string_n(e, text, sizeof(text));
        snprintf(err, errlen, "%s: %s", what, text);
    } else {
        snprintf(err, errlen, "%s: %s", what, fallback);
    }
    ERR_clear_error();
}

/* ---- protocol ranges ---- */

static const struct {
    const char *name;
    int version; /* 0: not available in OpenSSL 3 */
} tls_versions[] = {
    {"SSLv2", 0},
    {"SSLv3", 0},
    {"TLSv1", TLS1_VERSION},
    {"TLSv1.1", TLS1_1_VERSION},
    {"TLSv1.2", TLS1_2_VERSION},
    {"TLSv1.3", TLS1_3_VERSION},
};
#define TLS_NVERSIONS (sizeof(tls_versions) / sizeof(tls_versions[0]))
#define TLS_FIRST_USABLE 2 /* TLSv1 */

static int tls_version_index(const char *name, size_t len)
{
    for (size_t i = 0; i < TLS_NVERSIONS; i++)
        if (strlen(tls_versions[i].name) == len &&
            strncasecmp(tls_versions[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

int tls_protocols_parse(const char *spec, int *min_version, int *max_version,
                        char *err, size_t errlen)
{
    bool included[TLS_NVERSIONS] = {false}, excluded[TLS_NVERSIONS] = {false};
    bool any_included = false;
    size_t lo = 0, hi = TLS_NVERSIONS - 1, first = TLS_NVERSIONS, last = 0;
    const char *p = spec;

    while (*p) {
        size_t len;
        int op = 0, idx;

        p += strspn(p, " \t\r\n,:");
        if (*p == 0)
            break;
        if (*p == '!') {
            op = '!';
            p++;
        } else if (strncmp(p, ">=", 2) == 0 || strncmp(p, "<=", 2) == 0) {
            op = *p;
            p += 2;
        }
        len = strcspn(p, " \t\r\n,:");
        idx = tls_version_index(p, len);
        if (idx < 0) {
            snprintf(err, errlen, "unknown protocol '%.*s'",
                     (int)(len > 32 ? 32 : len), p);
            return -1;
        }
        switch (op) {
        case '!':
            excluded[idx] = true;
            break;
        case '>':
            if ((size_t)idx > lo)
                lo = (size_t)idx;
            break;
        case '<':
            if ((size_t)idx < hi)
                hi = (size_t)idx;
            break;
        default:
            included[idx] = any_included = true;
            break;
        }
        p += len;
    }
    for (size_t i = TLS_FIRST_USABLE; i < TLS_NVERSIONS; i++) {
        bool on = (any_included ? included[i] : true) && !excluded[i] &&
                  i >= lo && i <= hi;

        if (!on)
            continue;
        if (first < TLS_NVERSIONS && last + 1 != i) {
            snprintf(err, errlen,
                     "'%s' leaves a gap between %s and %s; OpenSSL "
                     "takes a range of versions",
                     spec, tls_versions[last].name, tls_versions[i].name);
            return -1;
        }
        if (first == TLS_NVERSIONS)
            first = i;
        last = i;
    }
    if (first == TLS_NVERSIONS) {
        snprintf(err, errlen, "'%s' leaves no protocol version", spec);
        return -1;
    }
    *min_version = tls_versions[first].version;
    /* Up to the newest: leave room for what OpenSSL learns later. */
    *max_version = last == TLS_NVERSIONS - 1 ? 0 : tls_versions[last].version;
    return 0;
}

/* ---- certificates and keys ---- */

/* Encrypted keys are refused: there is nobody to ask for a passphrase. */
static int tls_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* One PEM block, re-encoded so OpenSSL's typed readers can take it. */
static BIO *tls_pem_block(const char *name, const char *header,
                          const unsigned char *data, long len)
{
    BIO *mem = BIO_new(BIO_s_mem());

    if (mem != NULL && PEM_write_bio(mem, name, header, data, len) <= 0) {
        BIO_free(mem);
        return NULL;
    }
    return mem;
}

struct tls_chain {
    EVP_PKEY *key;
    X509 *cert;
    STACK_OF(X509) *issuers;
};

static void tls_chain_clear(struct tls_chain *ch)
{
    EVP_PKEY_free(ch->key);
    X509_free(ch->cert);
    sk_X509_pop_free(ch->issuers, X509_free);
    memset(ch, 0, sizeof(*ch));
}

/* Install one key with its chain; 0 or -1 with err set. */
static int tls_chain_use(SSL_CTX *c, struct tls_chain *ch, const char *file,
                         char *err, size_t errlen)
{
    if (ch->cert == NULL) {
        snprintf(err, errlen, "%s: private key without a certificate after it",
                 file);
        return -1;
    }
    if (SSL_CTX_use_cert_and_key(c, ch->cert, ch->key, ch->issuers, 1) != 1) {
        tls_err(err, errlen, file, "key and certificate do not match");
        return -1;
    }
    tls_chain_clear(ch);
    return 0;
}

static int tls_load_chain_files(SSL_CTX *c, const char *files, char *err,
                                size_t errlen)
{
    struct tls_chain ch = {0};
    char path[4096] = "";
    const char *p = files;
    int loaded = 0;

    while (*p) {
        size_t len;
        BIO *in;

        p += strspn(p, " \t\r\n,");
        if (*p == 0)
            break;
        len = strcspn(p, " \t\r\n,");
        snprintf(path, sizeof(path), "%.*s", (int)len, p);
        p += len;
        ERR_clear_error();
        if ((in = BIO_new_file(path, "r")) == NULL) {
            tls_err(err, errlen, path, "cannot open");
            goto fail;
        }
        for (;;) {
            char *name = NULL, *header = NULL;
            unsigned char *data = NULL;
            long dlen = 0;
            BIO *block;
            bool is_key;

            if (PEM_read_bio(in, &name, &header, &data, &dlen) != 1) {
                unsigned long e = ERR_peek_last_error();

                if (ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
                    ERR_clear_error();
                    break;
                }
                BIO_free(in);
                tls_err(err, errlen, path, "malformed PEM");
                goto fail;
            }
            is_key = strstr(name, "PRIVATE KEY") != NULL;
            block = is_key || strcmp(name, "CERTIFICATE") == 0 ||
                            strcmp(name, "TRUSTED CERTIFICATE") == 0
                        ? tls_pem_block(name, header, data, dlen)
                        : NULL;
            OPENSSL_free(name);
            OPENSSL_free(header);
            OPENSSL_free(data);
            if (block == NULL)
                continue; /* parameters and other blocks: not ours */
            if (is_key) {
                if (ch.key != NULL) {
                    if (tls_chain_use(c, &ch, path, err, errlen) < 0) {
                        BIO_free(block);
                        BIO_free(in);
                        goto fail;
                    }
                    loaded++;
                }
                ch.key = PEM_read_bio_PrivateKey(block, NULL, tls_no_passphrase,
                                                 NULL);
                BIO_free(block);
                if (ch.key == NULL) {
                    BIO_free(in);
                    tls_err(err, errlen, path,
                            "cannot read private key (encrypted?)");
                    goto fail;
                }
                continue;
            }
            {
                X509 *x = PEM_read_bio_X509_AUX(block, NULL, NULL, NULL);

                BIO_free(block);
                if (x == NULL) {
                    BIO_free(in);
                    tls_err(err, errlen, path, "cannot read certificate");
                    goto fail;
                }
                if (ch.key == NULL) {
                    X509_free(x);
                    BIO_free(in);
                    snprintf(err, errlen,
                             "%s: certificate before its private key (each "
                             "key comes first, then its chain)",
                             path);
                    goto fail;
                }
                if (ch.cert == NULL) {
                    ch.cert = x;
                } else {
                    if (ch.issuers == NULL)
                        ch.issuers = sk_X509_new_null();
                    if (ch.issuers == NULL || !sk_X509_push(ch.issuers, x)) {
                        X509_free(x);
                        BIO_free(in);
                        snprintf(err, errlen, "%s: out of memory", path);
                        goto fail;
                    }
                }
            }
        }
        BIO_free(in);
    }
    if (ch.key != NULL) {
        if (tls_chain_use(c, &ch, path, err, errlen) < 0)
            goto fail;
        loaded++;
    }
    if (loaded == 0) {
        snprintf(err, errlen, "%s: no private key and certificate found",
                 files);
        return -1;
    }
    return 0;
fail:
    tls_chain_clear(&ch);
    return -1;
}

struct tls_ctx *tls_ctx_new(const struct tls_ctx_opts *opts, char *err,
                            size_t errlen)
{
    struct tls_ctx *ctx;
    SSL_CTX *c;
    int min_version, max_version;
    char text[256];
    const char *ca_file =
        opts->ca_file && *opts->ca_file ? opts->ca_file : NULL;
    const char *ca_path =
        opts->ca_path && *opts->ca_path ? opts->ca_path : NULL;

    ERR_clear_error();
    c = SSL_CTX_new(opts->role == TLS_ROLE_CLIENT ? TLS_client_method()
                                                  : TLS_server_method());
    if (c == NULL) {
        tls_err(err, errlen, "SSL_CTX_new", "failed");
        return NULL;
    }
    /* A peer that hangs up without close_notify is an EOF, not an error. */
    SSL_CTX_set_options(c, SSL_OP_IGNORE_UNEXPECTED_EOF |
                               SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (tls_protocols_parse(opts->protocols && *opts->protocols
                                ? opts->protocols
                                : opts->role == TLS_ROLE_SERVER
                                      ? TLS_SERVER_DEFAULT_PROTOCOLS
                                      : "",
                            &min_version, &max_version, text,
                            sizeof(text)) < 0) {
        snprintf(err, errlen, "TLS protocols: %s", text);
        SSL_CTX_free(c);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(c, min_version);
    SSL_CTX_set_max_proto_version(c, max_version);
    if (opts->cipher_list && *opts->cipher_list &&
        SSL_CTX_set_cipher_list(c, opts->cipher_list) != 1) {
        tls_err(err, errlen, opts->cipher_list, "no usable cipher in list");
        SSL_CTX_free(c);
        return NULL;
    }
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* A daemon has no terminal to ask for a key's passphrase. */
    SSL_CTX_set_default_passwd_cb(c, tls_no_passphrase);
    /* Verdicts are reported by tls_conn_trust(), never enforced here. */
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    if (ca_file || ca_path) {
        if (SSL_CTX_load_verify_locations(c, ca_file, ca_path) != 1) {
            tls_err(err, errlen, ca_file ? ca_file : ca_path,
                    "cannot load trust anchors");
            SSL_CTX_free(c);
            return NULL;
        }
    } else if (SSL_CTX_set_default_verify_paths(c) != 1) {
        tls_err(err, errlen, "default trust store", "cannot load");
        SSL_CTX_free(c);
        return NULL;
    }
    if (opts->chain_files && *opts->chain_files) {
        if (tls_load_chain_files(c, opts->chain_files, err, errlen) < 0) {
            SSL_CTX_free(c);
            return NULL;
        }
    } else if (opts->cert_file && *opts->cert_file) {
        const char *key = opts->key_file && *opts->key_file ? opts->key_file
                                                            : opts->cert_file;

        if (SSL_CTX_use_certificate_chain_file(c, opts->cert_file) != 1) {
            char *what = xasprintf("certificate %s", opts->cert_file);

            tls_err(err, errlen, what, "cannot load");
            free(what);
            SSL_CTX_free(c);
            return NULL;
        }
        if (SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(c) != 1) {
            char *what = xasprintf("private key %s (of %s)", key,
                                   opts->cert_file);

            tls_err(err, errlen, what, "cannot load");
            free(what);
            SSL_CTX_free(c);
            return NULL;
        }
    } else if (opts->role == TLS_ROLE_SERVER) {
        snprintf(err, errlen, "no server certificate configured");
        SSL_CTX_free(c);
        return NULL;
    }
    ctx = xcalloc(1, sizeof(*ctx));
    ctx->ssl_ctx = c;
    ctx->role = opts->role;
    return ctx;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
    if (ctx == NULL)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    free(ctx);
}

/* ---- stream transport ---- */

static ssize_t tls_io_result(SSL *ssl, int n, bool *want_write)
{
    switch (SSL_get_error(ssl, n)) {
    case SSL_ERROR_WANT_READ:
        *want_write = false;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        *want_write = true;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == 0)
            return 0; /* EOF without close_notify */
        return -1;
    default:
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

static ssize_t tls_read(struct stream *s, void *ctx, void *buf, size_t len,
                        bool *want_write)
{
    struct tls_conn *c = ctx;
    int n;

    (void)s;
    if (len > INT32_MAX)
        len = INT32_MAX;
    ERR_clear_error();
    errno = 0;
    n = SSL_read(c->ssl, buf, (int)len);
    *want_write = false;
    if (n > 0)
        return n;
    return tls_io_result(c->ssl, n, want_write);
}

static ssize_t tls_write(struct stream *s, void *ctx, const void *buf,
                         size_t len, bool *want_write)
{
    struct tls_conn *c = ctx;
    int n;

    (void)s;
    if (len > INT32_MAX)
        len = INT32_MAX;
    ERR_clear_error();
    errno = 0;
    n = SSL_write(c->ssl, buf, (int)len);
    *want_write = true;
    if (n > 0)
        return n;
    /* A write that meets the peer's close is an error, not an EOF. */
    if (tls_io_result(c->ssl, n, want_write) == 0) {
        errno = EPIPE;
        return -1;
    }
    return -1;
}

static size_t tls_pending(struct stream *s, void *ctx)
{
    struct tls_conn *c = ctx;

    (void)s;
    return (size_t)SSL_pending(c->ssl);
}

static const struct stream_ops tls_stream_ops = {
    tls_read,
    tls_write,
    tls_pending,
};

/* ---- handshake ---- */

static long long tls_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for the direction OpenSSL asked for; 0, or -1 on timeout/error. */
static int tls_wait(int fd, bool for_write, long long deadline)
{
    struct pollfd pfd;
    int n, wait_ms;

    for (;;) {
        wait_ms = -1;
        if (deadline >= 0) {
            long long left = deadline - tls_now_ms();

            if (left <= 0) {
                errno = ETIMEDOUT;
                return -1;
            }
            wait_ms = (int)left;
        }
        pfd.fd = fd;
        pfd.events = for_write ? POLLOUT : POLLIN;
        pfd.revents = 0;
        n = poll(&pfd, 1, wait_ms);
        if (n > 0)
            return 0;
        if (n == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (errno != EINTR)
            return -1;
    }
}

static void tls_peer_info(struct tls_conn *c, const struct tls_start_opts *o)
{
    X509 *cert = SSL_get1_peer_certificate(c->ssl);
    long v;

    c->trust = TLS_TRUST_NONE;
    c->peer_cn[0] = 0;
    if (cert == NULL) {
        str_lcpy(c->verify_error, "no peer certificate",
                 sizeof(c->verify_error));
        return;
    }
    {
        X509_NAME *subj = X509_get_subject_name(cert);
        char cn[TLS_CN_MAX];
        int len = subj ? X509_NAME_get_text_by_NID(subj, NID_commonName, cn,
                                                   sizeof(cn))
                       : -1;

        if (len > 0)
            log_printable(c->peer_cn, sizeof(c->peer_cn), cn,
                          (size_t)len < sizeof(cn) ? (size_t)len
                                                   : sizeof(cn) - 1);
    }
    v = SSL_get_verify_result(c->ssl);
    if (v == X509_V_OK) {
        c->trust = (o && (o->match_host || o->match_ip)) ? TLS_TRUST_VERIFIED
                                                         : TLS_TRUST_CHAIN;
        c->verify_error[0] = 0;
    } else {
        str_lcpy(c->verify_error, X509_verify_cert_error_string(v),
                 sizeof(c->verify_error));
        /*
         * A name mismatch is reported like any other verify error, but
         * the chain itself was fine: that is still "Trusted".
         */
        if (v == X509_V_ERR_HOSTNAME_MISMATCH ||
            v == X509_V_ERR_IP_ADDRESS_MISMATCH)
            c->trust = TLS_TRUST_CHAIN;
    }
    X509_free(cert);
}

struct tls_conn *tls_start(struct tls_ctx *ctx, struct stream *s,
                           const struct tls_start_opts *opts, char *err,
                           size_t errlen)
{
    long long deadline = -1;
    struct tls_conn *c;
    int fd = stream_fd(s);
    int rc;

    if (stream_read_pending(s) > 0) {
        snprintf(err, errlen,
                 "plaintext data received before the TLS "
                 "handshake");
        return NULL;
    }
    if (opts && opts->timeout_ms >= 0)
        deadline = tls_now_ms() + opts->timeout_ms;
    if (sock_set_nonblock(fd, true) < 0) {
        snprintf(err, errlen, "cannot make the socket non-blocking: %s",
                 strerror(errno));
        return NULL;
    }
    ERR_clear_error();
    c = xcalloc(1, sizeof(*c));
    c->ssl = SSL_new(ctx->ssl_ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
        tls_err(err, errlen, "SSL_new", "failed");
        goto fail;
    }
    if (ctx->role == TLS_ROLE_CLIENT && opts != NULL) {
        if (opts->sni && *opts->sni &&
            SSL_set_tlsext_host_name(c->ssl, opts->sni) != 1) {
            tls_err(err, errlen, "server name indication", "bad name");
            goto fail;
        }
        if (opts->match_host && *opts->match_host) {
            SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            if (SSL_set1_host(c->ssl, opts->match_host) != 1) {
                tls_err(err, errlen, "certificate name check", "bad name");
                goto fail;
            }
        } else if (opts->match_ip && *opts->match_ip) {
            X509_VERIFY_PARAM *p = SSL_get0_param(c->ssl);

            if (X509_VERIFY_PARAM_set1_ip_asc(p, opts->match_ip) != 1) {
                tls_err(err, errlen, "certificate address check",
                        "bad address");
                goto fail;
            }
        }
    }
    for (;;) {
        ERR_clear_error();
        errno = 0;
        rc = ctx->role == TLS_ROLE_CLIENT ? SSL_connect(c->ssl)
                                          : SSL_accept(c->ssl);
        if (rc == 1)
            break;
        switch (SSL_get_error(c->ssl, rc)) {
        case SSL_ERROR_WANT_READ:
            if (tls_wait(fd, false, deadline) < 0)
                goto wait_failed;
            continue;
        case SSL_ERROR_WANT_WRITE:
            if (tls_wait(fd, true, deadline) < 0)
                goto wait_failed;
            continue;
        case SSL_ERROR_SYSCALL:
            if (ERR_peek_last_error() == 0) {
                snprintf(err, errlen, "handshake failed: %s",
                         errno ? strerror(errno) : "lost connection");
                goto fail;
            }
            /* FALLTHROUGH */
        default:
            tls_err(err, errlen, "handshake failed", "protocol error");
            goto fail;
        }
    }
    tls_peer_info(c, opts);
    stream_set_ops(s, &tls_stream_ops, c);
    return c;

wait_failed:
    snprintf(err, errlen, "handshake failed: %s",
             errno == ETIMEDOUT ? "timeout" : strerror(errno));
fail:
    if (c->ssl)
        SSL_free(c->ssl);
    free(c);
    ERR_clear_error();
    return NULL;
}

void tls_stop(struct tls_conn *c, struct stream *s)
{
    if (c == NULL)
        return;
    /* Push out what the protocol queued while TLS is still on. */
    (void)stream_flush(s);
    ERR_clear_error();
    /* One non-blocking attempt: the peer's answer does not matter. */
    (void)SSL_shutdown(c->ssl);
    ERR_clear_error();
    stream_set_ops(s, NULL, NULL);
    SSL_free(c->ssl);
    free(c);
}

enum tls_trust tls_conn_trust(const struct tls_conn *c)
{
    return c->trust;
}

const char *tls_conn_verify_error(const struct tls_conn *c)
{
    return c->verify_error;
}

const char *tls_conn_protocol(const struct tls_conn *c)
{
    return SSL_get_version(c->ssl);
}

const char *tls_conn_cipher(const struct tls_conn *c)
{
    const char *name = SSL_get_cipher_name(c->ssl);

    return name ? name : "unknown";
}

int tls_conn_bits(const struct tls_conn *c, int *alg_bits)
{
    int alg = 0;
    int bits = SSL_get_cipher_bits(c->ssl, &alg);

    if (alg_bits)
        *alg_bits = alg;
    return bits;
}

const char *tls_conn_peer_cn(const struct tls_conn *c)
{
    return c->peer_cn;
}

/* ---- self-signed certificates ---- */

static EVP_PKEY *tls_new_key(enum tls_key_type type)
{
    return type == TLS_KEY_ECDSA ? EVP_EC_gen("P-256")
                                 : EVP_RSA_gen(TLS_SELF_SIGNED_RSA_BITS);
}

static int tls_add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext == NULL)
        return -1;
    ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : -1;
}

/* PEM text of a key or certificate, appended to out. */
static int tls_pem_out(BIO *mem, struct buf *out)
{
    char *data;
    long len = BIO_get_mem_data(mem, &data);

    if (len <= 0)
        return -1;
    buf_append(out, data, (size_t)len);
    return 0;
}

/* A host name for the subject: printable ASCII without blanks. */
static bool tls_name_ok(const char *cn)
{
    size_t n = cn ? strlen(cn) : 0;

    if (n == 0 || n > TLS_CN_MAX - 1)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)cn[i] < 0x21 || (unsigned char)cn[i] > 0x7e)
            return false;
    return true;
}

int tls_self_signed(const char *cn, int days, enum tls_key_type type,
                    struct buf *key_pem, struct buf *cert_pem,
                    long long *not_after, char *err, size_t errlen)
{
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    X509_NAME *name;
    BIGNUM *serial = NULL;
    BIO *kbio = NULL, *cbio = NULL;
    char *san = NULL;
    int rc = -1;

    ERR_clear_error();
    if (!tls_name_ok(cn)) {
        snprintf(err, errlen,
                 "bad certificate name (1..%d printable characters, no "
                 "blanks)",
                 TLS_CN_MAX - 1);
        return -1;
    }
    if (days < 1 || days > TLS_SELF_SIGNED_DAYS_MAX) {
        snprintf(err, errlen, "validity of %d days is out of range 1..%d",
                 days, TLS_SELF_SIGNED_DAYS_MAX);
        return -1;
    }
    if ((key = tls_new_key(type)) == NULL) {
        tls_err(err, errlen, "key generation", "failed");
        goto done;
    }
    if ((x = X509_new()) == NULL || (serial = BN_new()) == NULL) {
        tls_err(err, errlen, "certificate", "out of memory");
        goto done;
    }
    /* A random positive 127-bit serial, as RFC 5280 4.1.2.2 asks. */
    if (BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
        BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) == NULL ||
        X509_set_version(x, 2) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) == NULL) {
        tls_err(err, errlen, "certificate fields", "failed");
        goto done;
    }
    name = X509_get_subject_name(x);
    if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                   (const unsigned char *)cn, -1, -1,
                                   0) != 1 ||
        X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, key) != 1) {
        tls_err(err, errlen, "certificate name", "failed");
        goto done;
    }
    san = xasprintf("DNS:%s", cn);
    if (tls_add_ext(x, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        tls_add_ext(x, NID_key_usage,
                    type == TLS_KEY_ECDSA
                        ? "critical,digitalSignature"
                        : "critical,digitalSignature,keyEncipherment") < 0 ||
        tls_add_ext(x, NID_ext_key_usage, "serverAuth") < 0 ||
        tls_add_ext(x, NID_subject_key_identifier, "hash") < 0 ||
        tls_add_ext(x, NID_subject_alt_name, san) < 0) {
        tls_err(err, errlen, "certificate extensions", "failed");
        goto done;
    }
    if (X509_sign(x, key, EVP_sha256()) <= 0) {
        tls_err(err, errlen, "certificate signature", "failed");
        goto done;
    }
    if ((kbio = BIO_new(BIO_s_mem())) == NULL ||
        (cbio = BIO_new(BIO_s_mem())) == NULL ||
        PEM_write_bio_PrivateKey(kbio, key, NULL, NULL, 0, NULL, NULL) != 1 ||
        PEM_write_bio_X509(cbio, x) != 1 || tls_pem_out(kbio, key_pem) < 0 ||
        tls_pem_out(cbio, cert_pem) < 0) {
        tls_err(err, errlen, "PEM encoding", "failed");
        goto done;
    }
    if (not_after != NULL) {
        struct tm tm;

        if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
            *not_after = (long long)timegm(&tm);
        else
            *not_after = 0;
    }
    rc = 0;
done:
    BIO_free(kbio);
    BIO_free(cbio);
    BN_free(serial);
    X509_free(x);
    EVP_PKEY_free(key);
    free(san);
    ERR_clear_error();
    return rc;
}

/* ---- event-driven use (see tls.h) ---- */

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd, char *err,
                              size_t errlen)
{
    struct tls_conn *c = xcalloc(1, sizeof(*c));

    ERR_clear_error();
    c->ssl = SSL_new(ctx->ssl_ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
        tls_err(err, errlen, "SSL_new", "failed");
        if (c->ssl != NULL)
            SSL_free(c->ssl);
        free(c);
        return NULL;
    }
    SSL_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
    if (ctx->role == TLS_ROLE_CLIENT)
        SSL_set_connect_state(c->ssl);
    else
        SSL_set_accept_state(c->ssl);
    return c;
}

int tls_conn_handshake(struct tls_conn *c, bool *want_write, char *err,
                       size_t errlen)
{
    int rc;

    ERR_clear_error();
    errno = 0;
    rc = SSL_do_handshake(c->ssl);
    if (rc == 1) {
        tls_peer_info(c, NULL);
        return 1;
    }
    switch (SSL_get_error(c->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        *want_write = false;
        return 0;
    case SSL_ERROR_WANT_WRITE:
        *want_write = true;
        return 0;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_last_error() == 0) {
            snprintf(err, errlen, "handshake failed: %s",
                     errno ? strerror(errno) : "lost connection");
            return -1;
        }
        /* FALLTHROUGH */
    default:
        tls_err(err, errlen, "handshake failed", "protocol error");
        return -1;
    }
}

ssize_t tls_conn_read(struct tls_conn *c, void *buf, size_t len,
                      bool *want_write)
{
    return tls_read(NULL, c, buf, len, want_write);
}

ssize_t tls_conn_write(struct tls_conn *c, const void *buf, size_t len,
                       bool *want_write)
{
    return tls_write(NULL, c, buf, len, want_write);
}

size_t tls_conn_pending(const struct tls_conn *c)
{
    return (size_t)SSL_pending(c->ssl);
}

void tls_conn_free(struct tls_conn *c)
{
    if (c == NULL)
        return;
    ERR_clear_error();
    if (SSL_is_init_finished(c->ssl))
        (void)SSL_shutdown(c->ssl);
    ERR_clear_error();
    SSL_free(c->ssl);
    free(c);
}
