/*
 * test_tls - util/tls: Postfix's protocol-list syntax (ranges, exclusions,
 * inclusions, gaps and typos refused), self-signed certificates (RSA and
 * ECDSA, bad names and validity refused), server contexts from a
 * certificate and key, from chain files (key first, then chain; the
 * wrong order and missing files refused), a bad cipher list, and real
 * handshakes over a socketpair with a forked client: TLS 1.3 by default,
 * TLS 1.2 when the server's range stops there, a TLS 1.1 client refused
 * by a server's default floor, lines both ways through the stream, and a
 * client that speaks plaintext instead of TLS.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "util/buf.h"
#include "util/fsutil.h"
#include "util/stream.h"
#include "util/tls.h"

static char err[512];
static char dir[] = "/tmp/test_tls.XXXXXX";
static char cert_path[256], key_path[256], ec_cert_path[256], ec_key_path[256];

static void write_text(const char *path, const char *a, const char *b)
{
    struct buf t = BUF_INIT;

    buf_puts(&t, a);
    if (b != NULL)
        buf_puts(&t, b);
    assert_int_equal(file_write_atomic(path, t.data, t.len, 0600), 0);
    buf_free(&t);
}

static int setup(void **state)
{
    struct buf key = BUF_INIT, cert = BUF_INIT;
    long long until = 0;

    (void)state;
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
    snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
    snprintf(ec_cert_path, sizeof(ec_cert_path), "%s/ec-cert.pem", dir);
    snprintf(ec_key_path, sizeof(ec_key_path), "%s/ec-key.pem", dir);
    if (tls_self_signed("mx.example.test", 30, TLS_KEY_RSA, &key, &cert, &until,
                        err, sizeof(err)) < 0)
        return -1;
    write_text(key_path, key.data, NULL);
    write_text(cert_path, cert.data, NULL);
    buf_reset(&key);
    buf_reset(&cert);
    if (tls_self_signed("mx.example.test", 30, TLS_KEY_ECDSA, &key, &cert, NULL,
                        err, sizeof(err)) < 0)
        return -1;
    write_text(ec_key_path, key.data, NULL);
    write_text(ec_cert_path, cert.data, NULL);
    buf_free(&key);
    buf_free(&cert);
    return 0;
}

static int teardown(void **state)
{
    char cmd[512];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ protocols */

static void expect_range(const char *spec, int min, int max)
{
    int lo = -1, hi = -1;

    if (tls_protocols_parse(spec, &lo, &hi, err, sizeof(err)) != 0)
        fail_msg("'%s': %s", spec, err);
    if (lo != min || hi != max)
        fail_msg("'%s': got %#x..%#x, expected %#x..%#x", spec, lo, hi, min,
                 max);
}

static void expect_refused(const char *spec, const char *why)
{
    int lo, hi;

    if (tls_protocols_parse(spec, &lo, &hi, err, sizeof(err)) != -1)
        fail_msg("'%s' accepted", spec);
    if (strstr(err, why) == NULL)
        fail_msg("'%s': error '%s' lacks '%s'", spec, err, why);
}

static void test_protocols(void **state)
{
    (void)state;
    expect_range("", TLS1_VERSION, 0);
    expect_range(">=TLSv1.2", TLS1_2_VERSION, 0);
    expect_range(">=TLSv1.3", TLS1_3_VERSION, 0);
    expect_range("<=TLSv1.2", TLS1_VERSION, TLS1_2_VERSION);
    expect_range(">=TLSv1.1, <=TLSv1.2", TLS1_1_VERSION, TLS1_2_VERSION);
    expect_range("!SSLv2, !SSLv3, !TLSv1, !TLSv1.1", TLS1_2_VERSION, 0);
    expect_range("!SSLv2:!SSLv3:!TLSv1", TLS1_1_VERSION, 0);
    expect_range("TLSv1.2", TLS1_2_VERSION, TLS1_2_VERSION);
    expect_range("TLSv1.2 TLSv1.3", TLS1_2_VERSION, 0);
    expect_range("tlsv1.3", TLS1_3_VERSION, 0);
    expect_range(">=SSLv3", TLS1_VERSION, 0);
    expect_refused("!TLSv1.2", "gap");
    expect_refused("TLSv1 TLSv1.3", "gap");
    expect_refused(">=TLSv1.3, <=TLSv1.2", "no protocol");
    expect_refused("SSLv3", "no protocol");
    expect_refused(">=TLSv9", "unknown protocol 'TLSv9'");
    expect_refused("TLSv1.2,bogus", "unknown protocol 'bogus'");
}

/* ------------------------------------------------------------ certificates */

static void test_self_signed_refusals(void **state)
{
    struct buf key = BUF_INIT, cert = BUF_INIT;

    (void)state;
    assert_int_equal(tls_self_signed("", 30, TLS_KEY_RSA, &key, &cert, NULL,
                                     err, sizeof(err)),
                     -1);
    assert_int_equal(tls_self_signed("bad name", 30, TLS_KEY_RSA, &key, &cert,
                                     NULL, err, sizeof(err)),
                     -1);
    assert_int_equal(tls_self_signed("mx\n.test", 30, TLS_KEY_RSA, &key, &cert,
                                     NULL, err, sizeof(err)),
                     -1);
    assert_int_equal(tls_self_signed("mx.test", 0, TLS_KEY_RSA, &key, &cert,
                                     NULL, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "out of range"));
    assert_int_equal(key.len, 0);
    assert_int_equal(cert.len, 0);
}

static void test_self_signed(void **state)
{
    struct buf key = BUF_INIT, cert = BUF_INIT;
    long long until = 0;
    time_t now = time(NULL);

    (void)state;
    assert_int_equal(tls_self_signed("mx.example.test", 10, TLS_KEY_ECDSA, &key,
                                     &cert, &until, err, sizeof(err)),
                     0);
    assert_non_null(strstr(key.data, "-----BEGIN PRIVATE KEY-----"));
    assert_non_null(strstr(cert.data, "-----BEGIN CERTIFICATE-----"));
    assert_true(until > (long long)now + 10 * 86400 - 60);
    assert_true(until < (long long)now + 10 * 86400 + 60);
    buf_free(&key);
    buf_free(&cert);
}

static struct tls_ctx *server_ctx(const char *cert, const char *key,
                                  const char *chain, const char *protocols)
{
    struct tls_ctx_opts o = {.role = TLS_ROLE_SERVER,
                             .cert_file = cert,
                             .key_file = key,
                             .chain_files = chain,
                             .protocols = protocols};

    return tls_ctx_new(&o, err, sizeof(err));
}

static void test_server_ctx(void **state)
{
    struct tls_ctx *c;
    char both[300], wrong[300], lonely[300], two[1024];
    struct buf k = BUF_INIT, ce = BUF_INIT;

    (void)state;
    c = server_ctx(cert_path, key_path, NULL, ">=TLSv1.2");
    if (c == NULL)
        fail_msg("RSA: %s", err);
    tls_ctx_free(c);
    c = server_ctx(ec_cert_path, ec_key_path, NULL, NULL);
    if (c == NULL)
        fail_msg("ECDSA: %s", err);
    tls_ctx_free(c);
    /* The key of the other certificate. */
    assert_null(server_ctx(cert_path, ec_key_path, NULL, NULL));
    assert_non_null(strstr(err, "private key"));
    assert_null(server_ctx("/nonexistent/cert.pem", NULL, NULL, NULL));
    assert_null(server_ctx("", NULL, NULL, NULL));
    assert_non_null(strstr(err, "no server certificate"));
    assert_null(server_ctx(cert_path, key_path, NULL, "!TLSv1.2"));
    assert_non_null(strstr(err, "TLS protocols"));
    {
        struct tls_ctx_opts o = {.role = TLS_ROLE_SERVER,
                                 .cert_file = cert_path,
                                 .key_file = key_path,
                                 .cipher_list = "NO-SUCH-CIPHER"};

        assert_null(tls_ctx_new(&o, err, sizeof(err)));
    }

    /* Chain files: key first, then its certificate; two key types. */
    assert_int_equal(file_read_all(key_path, &k, 1 << 16), 0);
    assert_int_equal(file_read_all(cert_path, &ce, 1 << 16), 0);
    snprintf(both, sizeof(both), "%s/both.pem", dir);
    snprintf(wrong, sizeof(wrong), "%s/wrong.pem", dir);
    snprintf(lonely, sizeof(lonely), "%s/lonely.pem", dir);
    write_text(both, k.data, ce.data);
    write_text(wrong, ce.data, k.data);
    write_text(lonely, k.data, NULL);
    c = server_ctx(NULL, NULL, both, NULL);
    if (c == NULL)
        fail_msg("chain file: %s", err);
    tls_ctx_free(c);
    snprintf(two, sizeof(two), "%s, %s %s", both, ec_key_path, ec_cert_path);
    c = server_ctx(NULL, NULL, two, NULL);
    if (c == NULL)
        fail_msg("chain files: %s", err);
    tls_ctx_free(c);
    assert_null(server_ctx(NULL, NULL, wrong, NULL));
    assert_non_null(strstr(err, "before its private key"));
    assert_null(server_ctx(NULL, NULL, lonely, NULL));
    assert_non_null(strstr(err, "without a certificate"));
    assert_null(server_ctx(NULL, NULL, "/nonexistent/chain.pem", NULL));
    buf_free(&k);
    buf_free(&ce);
}

/* ------------------------------------------------------------ handshakes */

/*
 * The child: a TLS client (or, with plaintext, a client that never
 * starts TLS) that sends "hello" and expects "welcome".  Exit 0 = ok.
 */
static void run_client(int fd, bool plaintext, const char *protocols)
{
    struct tls_ctx_opts o = {.role = TLS_ROLE_CLIENT, .protocols = protocols};
    struct tls_start_opts so = {.timeout_ms = 10000};
    struct buf line = BUF_INIT;
    struct tls_ctx *ctx;
    struct tls_conn *conn;
    struct stream *s = stream_open(fd);

    stream_set_timeout(s, 10000);
    if (plaintext) {
        stream_puts(s, "EHLO client.example\r\n");
        stream_flush(s);
        _exit(0);
    }
    if ((ctx = tls_ctx_new(&o, err, sizeof(err))) == NULL ||
        (conn = tls_start(ctx, s, &so, err, sizeof(err))) == NULL)
        _exit(2);
    stream_puts(s, "hello\r\n");
    if (stream_flush(s) != STREAM_OK ||
        stream_read_line(s, &line, 100, NULL) != STREAM_OK ||
        strcmp(line.data, "welcome") != 0)
        _exit(3);
    tls_stop(conn, s);
    _exit(0);
}

static int handshake(const char *protocols, bool plaintext, char *proto,
                     size_t protolen, const char *client_protocols)
{
    struct tls_ctx *ctx = server_ctx(cert_path, key_path, NULL, protocols);
    struct tls_start_opts so = {.timeout_ms = 10000};
    struct buf line = BUF_INIT;
    struct tls_conn *conn;
    struct stream *s;
    int sv[2], status = -1, rc = -1;
    pid_t pid;

    assert_non_null(ctx);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[0]);
        run_client(sv[1], plaintext, client_protocols);
    }
    close(sv[1]);
    s = stream_open(sv[0]);
    stream_set_timeout(s, 10000);
    conn = tls_start(ctx, s, &so, err, sizeof(err));
    if (conn != NULL) {
        snprintf(proto, protolen, "%s", tls_conn_protocol(conn));
        if (stream_read_line(s, &line, 100, NULL) == STREAM_OK &&
            strcmp(line.data, "hello") == 0) {
            int alg = 0;

            assert_true(strlen(tls_conn_cipher(conn)) > 0);
            assert_true(tls_conn_bits(conn, &alg) >= 128);
            stream_puts(s, "welcome\r\n");
            rc = stream_flush(s) == STREAM_OK ? 0 : -1;
        }
        tls_stop(conn, s);
    }
    stream_close(s);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    tls_ctx_free(ctx);
    buf_free(&line);
    if (rc == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        rc = -1;
    return rc;
}

static void test_handshake(void **state)
{
    char proto[32] = "";

    (void)state;
    if (handshake(">=TLSv1.2", false, proto, sizeof(proto), NULL) != 0)
        fail_msg("handshake: %s", err);
    assert_string_equal(proto, "TLSv1.3");
    if (handshake("<=TLSv1.2", false, proto, sizeof(proto), NULL) != 0)
        fail_msg("TLS 1.2 handshake: %s", err);
    assert_string_equal(proto, "TLSv1.2");
    /* A server's default floor is TLS 1.2: a TLS 1.1 client is refused. */
    proto[0] = 0;
    assert_int_equal(handshake(NULL, false, proto, sizeof(proto), "<=TLSv1.1"),
                     -1);
    assert_string_equal(proto, "");
}

static void test_plaintext_client(void **state)
{
    char proto[32] = "";

    (void)state;
    assert_int_equal(handshake(NULL, true, proto, sizeof(proto), NULL), -1);
    assert_non_null(strstr(err, "handshake failed"));
    assert_string_equal(proto, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protocols),
        cmocka_unit_test(test_self_signed_refusals),
        cmocka_unit_test(test_self_signed),
        cmocka_unit_test(test_server_ctx),
        cmocka_unit_test(test_handshake),
        cmocka_unit_test(test_plaintext_client),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup, teardown);
}
