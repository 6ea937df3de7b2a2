/*
 * tls - TLS on a stream, through OpenSSL 3, for clients (the smtp
 * delivery agent's STARTTLS) and servers (smtpd, pop3d, imapd later).
 *
 * A tls_ctx holds what is shared by every connection of a process (the
 * SSL_CTX: trust anchors, certificate and key); tls_start() runs the
 * handshake on a connected stream and, when it succeeds, slides the TLS
 * layer under the stream (stream_set_ops), so protocol code goes on
 * reading lines and writing replies unchanged, with the stream's timeouts.
 *
 * Certificate checks are reported, not enforced: the handshake never
 * fails because of the peer's certificate.  The caller reads
 * tls_conn_trust() and decides by its own policy (Postfix's may, encrypt,
 * verify levels), which keeps one code path for all of them.
 *
 * Servers load their certificate and key from cert_file/key_file or
 * from Postfix-style chain files, and take Postfix's protocol-range
 * syntax (tls_protocols_parse) and an OpenSSL cipher list.
 * tls_self_signed() makes a certificate for `posthorn tls new-cert` and
 * for tests.
 *
 * Failures return NULL or -1 with a one-line reason in err (OpenSSL's
 * error queue text where it has one).  The descriptor is switched to
 * non-blocking mode for the handshake and stays so; the stream's socket
 * I/O does not care.
 */
#ifndef UTIL_TLS_H
#define UTIL_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/stream.h"

struct tls_ctx;
struct tls_conn;

enum tls_role { TLS_ROLE_CLIENT, TLS_ROLE_SERVER };

struct tls_ctx_opts {
    enum tls_role role;
    const char *ca_file; /* trust anchors; NULL/"" with ca_path also
                            empty = the system's default store */
    const char *ca_path;
    const char *cert_file; /* server: required unless chain_files;
                              client: optional */
    const char *key_file;  /* NULL/"" = in cert_file */
    /*
     * Postfix's *_tls_chain_files: PEM files (blank or comma separated),
     * read as one sequence of private keys each followed by its
     * certificate and issuer chain (RSA and ECDSA side by side).  When
     * set, cert_file and key_file are ignored.  NULL/"" = not used.
     */
    const char *chain_files;
    /*
     * Postfix protocol syntax (tls_protocols_parse); NULL/"" = TLS 1.2
     * and newer for a server, TLS 1.0 and newer for a client.
     */
    const char *protocols;
    /* OpenSSL cipher list for TLS 1.2 and older; NULL/"" = default. */
    const char *cipher_list;
};

struct tls_ctx *tls_ctx_new(const struct tls_ctx_opts *opts, char *err,
                            size_t errlen);
void tls_ctx_free(struct tls_ctx *ctx);

struct tls_start_opts {
    const char *sni;        /* client: server name indication, or NULL */
    const char *match_host; /* client: DNS name the certificate must
                               match for TLS_TRUST_VERIFIED, or NULL */
    const char *match_ip;   /* client: IP address instead, or NULL */
    int timeout_ms;         /* whole handshake; < 0 = forever */
};

/* How far the peer's certificate checked out. */
enum tls_trust {
    TLS_TRUST_NONE,     /* no certificate or chain not verified */
    TLS_TRUST_CHAIN,    /* chain verified (Postfix's "Trusted") */
    TLS_TRUST_VERIFIED, /* chain verified and the name matched */
};

/*
 * Handshake on stream s (which must have nothing buffered for reading:
 * plaintext that arrived before the handshake would be an injection).
 * On success the stream speaks TLS from now on.
 */
struct tls_conn *tls_start(struct tls_ctx *ctx, struct stream *s,
                           const struct tls_start_opts *opts, char *err,
                           size_t errlen);
/*
 * Best-effort close_notify, then put the stream back on plain I/O and
 * free the connection.  Call before stream_close().
 */
void tls_stop(struct tls_conn *conn, struct stream *s);

enum tls_trust tls_conn_trust(const struct tls_conn *conn);
/* Why the certificate did not verify ("certificate has expired"), or "". */
const char *tls_conn_verify_error(const struct tls_conn *conn);
const char *tls_conn_protocol(const struct tls_conn *conn); /* "TLSv1.3" */
const char *tls_conn_cipher(const struct tls_conn *conn);
/* Secret bits of the cipher and of its algorithm ("256/256 bits"). */
int tls_conn_bits(const struct tls_conn *conn, int *alg_bits);
/* Common name of the peer certificate's subject, or "" (printable). */
const char *tls_conn_peer_cn(const struct tls_conn *conn);

/*
 * Postfix's protocol list syntax (smtpd_tls_protocols and friends):
 * ">=TLSv1.2", "<=TLSv1.3", "!SSLv2, !SSLv3, !TLSv1" (exclusions) or
 * "TLSv1.2 TLSv1.3" (inclusions), mixed as needed, separated by blanks,
 * commas or colons.  Names: SSLv2, SSLv3 (never enabled: OpenSSL 3
 * has neither), TLSv1, TLSv1.1, TLSv1.2, TLSv1.3, case-insensitive.
 * OpenSSL takes a range, so what is left must be contiguous.  Fills the
 * OpenSSL version numbers (TLS1_2_VERSION ...) of the lowest and highest
 * version allowed; returns 0, or -1 with err set.
 */
int tls_protocols_parse(const char *spec, int *min_version, int *max_version,
                        char *err, size_t errlen);

/*
 * A self-signed server certificate for name cn (subject CN and DNS
 * subjectAltName), valid from now for days days, with a fresh key
 * (RSA 2048 or ECDSA P-256).  key_pem and cert_pem receive PEM text
 * (appended).  *not_after gets the expiry in Unix time.  Returns 0, or
 * -1 with err set.
 */
enum tls_key_type { TLS_KEY_RSA, TLS_KEY_ECDSA };
int tls_self_signed(const char *cn, int days, enum tls_key_type type,
                    struct buf *key_pem, struct buf *cert_pem,
                    long long *not_after, char *err, size_t errlen);

/*
 * Event-driven use, without a stream (imapd: many connections in one
 * event loop).  Nothing here waits: a call that cannot go on returns
 * "again" with *want_write saying whether to wait for the descriptor to
 * become writable (true) or readable (false).  OpenSSL's buffers are
 * released while a connection is idle (SSL_MODE_RELEASE_BUFFERS), so a
 * quiet connection costs a few KiB.
 */
/* A server or client (by ctx's role) connection on non-blocking fd. */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd, char *err,
                              size_t errlen);
/* 1 handshake done, 0 call again when ready, -1 failed (err set). */
int tls_conn_handshake(struct tls_conn *conn, bool *want_write, char *err,
                       size_t errlen);
/* Bytes moved, 0 at EOF (read), -1 with errno (EAGAIN: see want_write). */
ssize_t tls_conn_read(struct tls_conn *conn, void *buf, size_t len,
                      bool *want_write);
ssize_t tls_conn_write(struct tls_conn *conn, const void *buf, size_t len,
                       bool *want_write);
/* Decrypted bytes waiting inside OpenSSL. */
size_t tls_conn_pending(const struct tls_conn *conn);
/* One non-blocking close_notify attempt, then free (fd stays open). */
void tls_conn_free(struct tls_conn *conn);

#endif
