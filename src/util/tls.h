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
 * Failures return NULL or -1 with a one-line reason in err (OpenSSL's
 * error queue text where it has one).  The descriptor is switched to
 * non-blocking mode for the handshake and stays so; the stream's socket
 * I/O does not care.
 */
#ifndef UTIL_TLS_H
#define UTIL_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "util/stream.h"

struct tls_ctx;
struct tls_conn;

enum tls_role { TLS_ROLE_CLIENT, TLS_ROLE_SERVER };

struct tls_ctx_opts {
    enum tls_role role;
    const char *ca_file; /* trust anchors; NULL/"" with ca_path also
                            empty = the system's default store */
    const char *ca_path;
    const char *cert_file; /* server: required; client: optional */
    const char *key_file;  /* NULL/"" = in cert_file */
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

#endif
