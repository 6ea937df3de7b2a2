/*
 * test_dns - MX and address lookups (global/dns.c) against a tiny DNS
 * responder on 127.0.0.1 that this test forks (test code writes DNS
 * packets by hand; the product never does), plus the pure helpers: MX
 * sorting with shuffled ties, name and server-list syntax.
 *
 * The zone the responder serves:
 *   mx.test      MX 10 b.mx.test, MX 5 a.mx.test, MX 10 c.mx.test
 *   a.mx.test    A 192.0.2.1, AAAA 2001:db8::1
 *   null.test    MX 0 .                          (RFC 7505)
 *   nomx.test    no MX, A 192.0.2.7
 *   fail.test    SERVFAIL
 *   silent.test  never answered
 *   anything else NXDOMAIN
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "global/dns.h"

static pid_t responder_pid;
static int responder_port;

/* ---- the responder (child process) ---- */

struct packet {
    unsigned char b[512];
    size_t len;
};

static void put16(struct packet *p, unsigned v)
{
    p->b[p->len++] = (unsigned char)(v >> 8);
    p->b[p->len++] = (unsigned char)v;
}

static void put_name(struct packet *p, const char *name)
{
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t n = dot ? (size_t)(dot - name) : strlen(name);

        p->b[p->len++] = (unsigned char)n;
        memcpy(p->b + p->len, name, n);
        p->len += n;
        name += n;
        if (*name == '.')
            name++;
    }
    p->b[p->len++] = 0;
}

/* Answer record header for the question name (pointer to offset 12). */
static void put_rr(struct packet *p, unsigned type, unsigned rdlen)
{
    put16(p, 0xc00c);
    put16(p, type);
    put16(p, 1);
    put16(p, 0);
    put16(p, 300);
    put16(p, rdlen);
}

static void put_mx(struct packet *p, unsigned pref, const char *host)
{
    struct packet rd = {{0}, 0};

    put16(&rd, pref);
    put_name(&rd, host);
    put_rr(p, 15, (unsigned)rd.len);
    memcpy(p->b + p->len, rd.b, rd.len);
    p->len += rd.len;
}

static void put_a(struct packet *p, const char *ip)
{
    put_rr(p, 1, 4);
    inet_pton(AF_INET, ip, p->b + p->len);
    p->len += 4;
}

static void put_aaaa(struct packet *p, const char *ip)
{
    put_rr(p, 28, 16);
    inet_pton(AF_INET6, ip, p->b + p->len);
    p->len += 16;
}

/* Build the answer to query q; false = stay silent. */
static bool respond(const unsigned char *q, size_t qlen, struct packet *p)
{
    char name[256];
    size_t pos = 12, nlen = 0, qend;
    unsigned type, rcode = 0, ancount = 0;

    if (qlen < 17)
        return false;
    while (pos < qlen && q[pos] != 0) {
        size_t n = q[pos++];

        if (pos + n > qlen || nlen + n + 1 >= sizeof(name))
            return false;
        if (nlen)
            name[nlen++] = '.';
        memcpy(name + nlen, q + pos, n);
        nlen += n;
        pos += n;
    }
    name[nlen] = 0;
    qend = pos + 5;
    if (qend > qlen)
        return false;
    type = (unsigned)q[pos + 1] << 8 | q[pos + 2];
    if (strcasecmp(name, "silent.test") == 0)
        return false;
    /* Header: same ID, QR+RD+RA, one question, answers counted below. */
    p->len = 0;
    memcpy(p->b, q, 2);
    p->len = 12;
    memcpy(p->b + 12, q + 12, qend - 12);
    p->len = qend;
    if (strcasecmp(name, "mx.test") == 0) {
        if (type == 15) {
            put_mx(p, 10, "b.mx.test");
            put_mx(p, 5, "a.mx.test");
            put_mx(p, 10, "c.mx.test");
            ancount = 3;
        }
    } else if (strcasecmp(name, "a.mx.test") == 0) {
        if (type == 1) {
            put_a(p, "192.0.2.1");
            ancount = 1;
        } else if (type == 28) {
            put_aaaa(p, "2001:db8::1");
            ancount = 1;
        }
    } else if (strcasecmp(name, "null.test") == 0) {
        if (type == 15) {
            put_mx(p, 0, "");
            ancount = 1;
        }
    } else if (strcasecmp(name, "nomx.test") == 0) {
        if (type == 1) {
            put_a(p, "192.0.2.7");
            ancount = 1;
        }
    } else if (strcasecmp(name, "fail.test") == 0) {
        rcode = 2;
    } else {
        rcode = 3;
    }
    p->b[2] = 0x81;
    p->b[3] = (unsigned char)(0x80 | rcode);
    p->b[4] = 0;
    p->b[5] = 1;
    p->b[6] = (unsigned char)(ancount >> 8);
    p->b[7] = (unsigned char)ancount;
    memset(p->b + 8, 0, 4);
    return true;
}

static void responder(int fd)
{
    for (;;) {
        unsigned char q[512];
        struct sockaddr_storage from;
        socklen_t fromlen = sizeof(from);
        struct packet p;
        ssize_t n =
            recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fromlen);

        if (n <= 0)
            continue;
        if (respond(q, (size_t)n, &p))
            sendto(fd, p.b, p.len, 0, (struct sockaddr *)&from, fromlen);
    }
}

static int setup(void **state)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);

    (void)state;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
        return -1;
    responder_port = ntohs(sin.sin_port);
    responder_pid = fork();
    if (responder_pid < 0)
        return -1;
    if (responder_pid == 0) {
        alarm(60); /* never outlive a crashed test */
        responder(fd);
        _exit(0);
    }
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (responder_pid > 0) {
        kill(responder_pid, SIGKILL);
        waitpid(responder_pid, NULL, 0);
    }
    return 0;
}

static struct dns_resolver *open_test_resolver(int timeout_ms, int tries)
{
    struct argv servers = ARGV_INIT;
    struct dns_resolver *r;
    char entry[64], err[256];

    snprintf(entry, sizeof(entry), "127.0.0.1:%d", responder_port);
    argv_add(&servers, entry);
    r = dns_open(&servers, timeout_ms, tries, err, sizeof(err));
    if (r == NULL)
        fail_msg("dns_open: %s", err);
    argv_free(&servers);
    return r;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- lookups ---- */

static unsigned rnd_zero(void *ctx)
{
    (void)ctx;
    return 0;
}

static void test_mx_lookup_sorted(void **state)
{
    struct dns_resolver *r = open_test_resolver(1000, 2);
    struct dns_mx *mx;
    size_t n;
    char err[256];

    (void)state;
    assert_int_equal(dns_lookup_mx(r, "MX.test.", &mx, &n, err, sizeof(err)),
                     DNS_OK);
    assert_int_equal(n, 3);
    dns_mx_sort(mx, n, rnd_zero, NULL);
    assert_string_equal(mx[0].host, "a.mx.test");
    assert_int_equal(mx[0].pref, 5);
    assert_int_equal(mx[1].pref, 10);
    assert_int_equal(mx[2].pref, 10);
    dns_mx_free(mx, n);
    dns_close(r);
}

static void test_null_mx(void **state)
{
    struct dns_resolver *r = open_test_resolver(1000, 2);
    struct dns_mx *mx;
    size_t n;
    char err[256];

    (void)state;
    assert_int_equal(dns_lookup_mx(r, "null.test", &mx, &n, err, sizeof(err)),
                     DNS_NULLMX);
    assert_int_equal(n, 0);
    assert_null(mx);
    dns_close(r);
}

static void test_no_mx_then_address(void **state)
{
    struct dns_resolver *r = open_test_resolver(1000, 2);
    struct dns_addr *a;
    struct dns_mx *mx;
    size_t n;
    char err[256];

    (void)state;
    assert_int_equal(dns_lookup_mx(r, "nomx.test", &mx, &n, err, sizeof(err)),
                     DNS_NODATA);
    assert_string_equal(err, "Name service error for name=nomx.test type=MX: "
                             "Host found but no data record of requested "
                             "type");
    assert_int_equal(
        dns_lookup_addr(r, "nomx.test", AF_UNSPEC, &a, &n, err, sizeof(err)),
        DNS_OK);
    assert_int_equal(n, 1);
    assert_string_equal(a[0].text, "192.0.2.7");
    free(a);
    dns_close(r);
}

static void test_addresses_both_families(void **state)
{
    struct dns_resolver *r = open_test_resolver(1000, 2);
    struct dns_addr *a;
    size_t n;
    char err[256];

    (void)state;
    assert_int_equal(
        dns_lookup_addr(r, "a.mx.test", AF_UNSPEC, &a, &n, err, sizeof(err)),
        DNS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(a[0].family, AF_INET);
    assert_string_equal(a[0].text, "192.0.2.1");
    assert_int_equal(a[1].family, AF_INET6);
    assert_string_equal(a[1].text, "2001:db8::1");
    free(a);
    assert_int_equal(
        dns_lookup_addr(r, "a.mx.test", AF_INET6, &a, &n, err, sizeof(err)),
        DNS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(a[0].family, AF_INET6);
    free(a);
    dns_close(r);
}

static void test_nxdomain_and_servfail(void **state)
{
    struct dns_resolver *r = open_test_resolver(500, 1);
    struct dns_addr *a;
    struct dns_mx *mx;
    size_t n;
    char err[256];

    (void)state;
    assert_int_equal(dns_lookup_mx(r, "nx.test", &mx, &n, err, sizeof(err)),
                     DNS_NOTFOUND);
    assert_string_equal(err, "Name service error for name=nx.test type=MX: "
                             "Host not found");
    assert_int_equal(dns_lookup_mx(r, "fail.test", &mx, &n, err, sizeof(err)),
                     DNS_TEMPFAIL);
    assert_string_equal(err, "Name service error for name=fail.test type=MX: "
                             "Host not found, try again");
    assert_int_equal(
        dns_lookup_addr(r, "nx.test", AF_INET, &a, &n, err, sizeof(err)),
        DNS_NOTFOUND);
    dns_close(r);
}

static void test_silence_is_bounded(void **state)
{
    struct dns_resolver *r = open_test_resolver(300, 2);
    struct dns_mx *mx;
    size_t n;
    char err[256];
    double t0 = now_s(), took;

    (void)state;
    assert_int_equal(dns_lookup_mx(r, "silent.test", &mx, &n, err, sizeof(err)),
                     DNS_TEMPFAIL);
    took = now_s() - t0;
    /* 2 tries of 300 ms, plus the one-second hard margin at most. */
    assert_true(took < 2.5);
    assert_true(took >= 0.25);
    dns_close(r);
}

static void test_malformed_names_not_queried(void **state)
{
    struct dns_resolver *r = open_test_resolver(300, 1);
    struct dns_addr *a;
    struct dns_mx *mx;
    size_t n;
    char err[256];

    (void)state;
    assert_int_equal(
        dns_lookup_mx(r, "bad name.test", &mx, &n, err, sizeof(err)),
        DNS_INVALID);
    assert_int_equal(
        dns_lookup_addr(r, "-x.test", AF_UNSPEC, &a, &n, err, sizeof(err)),
        DNS_INVALID);
    dns_close(r);
}

/* ---- pure helpers ---- */

struct seq {
    const unsigned *v;
    size_t n, i;
};

static unsigned rnd_seq(void *ctx)
{
    struct seq *s = ctx;

    return s->v[s->i++ % s->n];
}

static void test_mx_sort_shuffles_ties_only(void **state)
{
    static const unsigned seq_a[] = {0, 0, 0, 0, 0};
    static const unsigned seq_b[] = {1, 2, 1, 1, 0};
    struct dns_mx mx[5];
    char seen_a[3][8], seen_b[3][8];
    struct seq s;

    (void)state;
    for (int round = 0; round < 2; round++) {
        static const struct {
            const char *host;
            unsigned pref;
        } in[5] = {
            {"t1", 10}, {"best", 0}, {"t2", 10}, {"worst", 20}, {"t3", 10}};

        for (int i = 0; i < 5; i++) {
            mx[i].host = (char *)in[i].host;
            mx[i].pref = in[i].pref;
        }
        s.v = round == 0 ? seq_a : seq_b;
        s.n = 5;
        s.i = 0;
        dns_mx_sort(mx, 5, rnd_seq, &s);
        assert_string_equal(mx[0].host, "best");
        assert_string_equal(mx[4].host, "worst");
        for (int i = 1; i < 4; i++) {
            assert_int_equal(mx[i].pref, 10);
            snprintf(round == 0 ? seen_a[i - 1] : seen_b[i - 1], 8, "%s",
                     mx[i].host);
        }
    }
    /* Different random numbers, different order among equals. */
    assert_true(strcmp(seen_a[0], seen_b[0]) != 0 ||
                strcmp(seen_a[1], seen_b[1]) != 0);
}

static void test_name_ok(void **state)
{
    char big[300];

    (void)state;
    assert_true(dns_name_ok("example.org"));
    assert_true(dns_name_ok("example.org."));
    assert_true(dns_name_ok("a-b.c_d.example"));
    assert_true(dns_name_ok("localhost"));
    assert_false(dns_name_ok(""));
    assert_false(dns_name_ok("."));
    assert_false(dns_name_ok("a..b"));
    assert_false(dns_name_ok("-a.b"));
    assert_false(dns_name_ok("a-.b"));
    assert_false(dns_name_ok("a b"));
    assert_false(dns_name_ok("b\xc3\xbc"
                             "cher.example"));
    memset(big, 'a', 64);
    strcpy(big + 64, ".example");
    assert_false(dns_name_ok(big)); /* label of 64 */
    memset(big, 'a', sizeof(big));
    for (size_t i = 50; i < sizeof(big); i += 50)
        big[i] = '.';
    big[sizeof(big) - 1] = 0;
    assert_false(dns_name_ok(big)); /* longer than 253 */
}

static void test_server_format(void **state)
{
    char out[80];
    struct argv bad = ARGV_INIT;
    char err[256];

    (void)state;
    assert_true(dns_server_format("192.0.2.53", out, sizeof(out)));
    assert_string_equal(out, "192.0.2.53:53");
    assert_true(dns_server_format("127.0.0.1:5353", out, sizeof(out)));
    assert_string_equal(out, "127.0.0.1:5353");
    assert_true(dns_server_format("::1", out, sizeof(out)));
    assert_string_equal(out, "[::1]:53");
    assert_true(dns_server_format("[2001:db8::53]:5300", out, sizeof(out)));
    assert_string_equal(out, "[2001:db8::53]:5300");
    assert_false(dns_server_format("ns.example.org", out, sizeof(out)));
    assert_false(dns_server_format("127.0.0.1:0", out, sizeof(out)));
    assert_false(dns_server_format("127.0.0.1:70000", out, sizeof(out)));
    assert_false(dns_server_format("[::1", out, sizeof(out)));
    assert_false(dns_server_format("[::1]x", out, sizeof(out)));
    argv_add(&bad, "127.0.0.1");
    argv_add(&bad, "resolver.example");
    assert_null(dns_open(&bad, 1000, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "resolver.example"));
    argv_free(&bad);
}

static void write_hosts(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/*
 * The hosts file: first line and first valid name win for an address,
 * any line counts for the forward check, comments and bad lines are
 * skipped, and a changed file is read again (looked at once a second).
 */
static void test_hosts_file(void **state)
{
    char dir[] = "/tmp/test_dns_hosts.XXXXXX", path[64], *name = NULL;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/hosts", dir);
    write_hosts(path, "# comment\n"
                      "127.0.0.1\tLocalHost. loopback # trailing\n"
                      "127.0.0.1 second.example\n"
                      "not-an-address bogus.example\n"
                      "192.0.2.1 -bad- Good.Example\n"
                      "192.0.2.9\n"
                      "2001:db8::1 six.example\n");
    dns_hosts_set_path(path);

    assert_int_equal(dns_hosts_name("127.0.0.1", &name), DNS_OK);
    assert_string_equal(name, "localhost");
    free(name);
    assert_int_equal(dns_hosts_name("::ffff:127.0.0.1", &name), DNS_OK);
    assert_string_equal(name, "localhost");
    free(name);
    assert_int_equal(dns_hosts_name("192.0.2.1", &name), DNS_OK);
    assert_string_equal(name, "good.example");
    free(name);
    assert_int_equal(dns_hosts_name("2001:db8::1", &name), DNS_OK);
    assert_string_equal(name, "six.example");
    free(name);
    assert_int_equal(dns_hosts_name("192.0.2.9", &name), DNS_NOTFOUND);
    assert_int_equal(dns_hosts_name("192.0.2.77", &name), DNS_NOTFOUND);
    assert_null(name);
    assert_int_equal(dns_hosts_name("bogus", &name), DNS_INVALID);

    assert_true(dns_hosts_has_addr("localhost", AF_INET, "127.0.0.1"));
    assert_true(dns_hosts_has_addr("LOOPBACK.", AF_INET, "127.0.0.1"));
    assert_true(dns_hosts_has_addr("second.example", AF_INET, "127.0.0.1"));
    assert_true(dns_hosts_has_addr("localhost", AF_INET,
                                   "::ffff:127.0.0.1"));
    assert_false(dns_hosts_has_addr("localhost", AF_INET, "127.0.0.2"));
    assert_false(dns_hosts_has_addr("six.example", AF_INET, "127.0.0.1"));
    assert_true(dns_hosts_has_addr("six.example", AF_INET6, "2001:db8::1"));
    assert_false(dns_hosts_has_addr("bogus.example", AF_INET, "127.0.0.1"));

    /* A new version of the file is read within a second or so. */
    write_hosts(path, "127.0.0.1 renamed.example\n");
    sleep(2);
    assert_int_equal(dns_hosts_name("127.0.0.1", &name), DNS_OK);
    assert_string_equal(name, "renamed.example");
    free(name);
    assert_false(dns_hosts_has_addr("localhost", AF_INET, "127.0.0.1"));
    /* No file: nothing listed. */
    assert_int_equal(unlink(path), 0);
    sleep(2);
    assert_int_equal(dns_hosts_name("127.0.0.1", &name), DNS_NOTFOUND);
    assert_int_equal(rmdir(dir), 0);
    dns_hosts_set_path(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mx_lookup_sorted),
        cmocka_unit_test(test_null_mx),
        cmocka_unit_test(test_no_mx_then_address),
        cmocka_unit_test(test_addresses_both_families),
        cmocka_unit_test(test_nxdomain_and_servfail),
        cmocka_unit_test(test_silence_is_bounded),
        cmocka_unit_test(test_malformed_names_not_queried),
        cmocka_unit_test(test_mx_sort_shuffles_ties_only),
        cmocka_unit_test(test_name_ok),
        cmocka_unit_test(test_server_format),
        cmocka_unit_test(test_hosts_file),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
