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
 */
#include "util/tls.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "util/log.h"
#include "util/mem.h"
#include "util/sock.h"
#include "util/str.h"

#define TLS_CN_MAX 256

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

struct tls_ctx *tls_ctx_new(const struct tls_ctx_opts *opts, char *err,
                            size_t errlen)
{
    struct tls_ctx *ctx;
    SSL_CTX *c;
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
    SSL_CTX_set_min_proto_version(c, TLS1_VERSION);
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
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
    if (opts->cert_file && *opts->cert_file) {
        const char *key = opts->key_file && *opts->key_file ? opts->key_file
                                                            : opts->cert_file;

        if (SSL_CTX_use_certificate_chain_file(c, opts->cert_file) != 1) {
            tls_err(err, errlen, opts->cert_file, "cannot load certificate");
            SSL_CTX_free(c);
            return NULL;
        }
        if (SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(c) != 1) {
            tls_err(err, errlen, key, "cannot load private key");
            SSL_CTX_free(c);
            return NULL;
        }
    } else if (opts->role == TLS_ROLE_SERVER) {
        snprintf(err, errlen, "TLS server without a certificate");
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
