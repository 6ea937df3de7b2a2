/*
 * dns_hosts - the hosts file, as the system's resolver reads it (see
 * dns.h).  smtpd asks it for every connection, twice (the client's name,
 * then the forward check); reading and parsing the file each time was
 * eight system calls per connection.  It is parsed once and read again
 * when its identity, size or time stamp change, which is looked at no
 * more than once a second.
 *
 * Format (hosts(5)): an address, then one or more names, separated by
 * blanks; "#" starts a comment.  Lines whose address does not parse are
 * skipped, as the resolver does.  Trusts: the file is the administrator's.
 */
#include "global/dns.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "util/mem.h"

struct hosts_line {
    int family;
    unsigned char addr[16];
    char **names;
    size_t nnames;
};

static struct {
    char *path;
    struct hosts_line *v;
    size_t n;
    bool read_once;
    time_t checked;
    struct stat st; /* of what v holds; st_ino 0: no file */
} hosts;

static void hosts_forget(void)
{
    for (size_t i = 0; i < hosts.n; i++) {
        for (size_t k = 0; k < hosts.v[i].nnames; k++)
            free(hosts.v[i].names[k]);
        free(hosts.v[i].names);
    }
    free(hosts.v);
    hosts.v = NULL;
    hosts.n = 0;
    memset(&hosts.st, 0, sizeof(hosts.st));
}

void dns_hosts_set_path(const char *path)
{
    hosts_forget();
    free(hosts.path);
    hosts.path = path ? xstrdup(path) : NULL;
    hosts.read_once = false;
}

static void hosts_parse_line(char *line)
{
    static const char blanks[] = " \t\r\n";
    struct hosts_line h;
    char *save = NULL, *word, *hash = strchr(line, '#');

    if (hash != NULL)
        *hash = 0;
    if ((word = strtok_r(line, blanks, &save)) == NULL)
        return;
    memset(&h, 0, sizeof(h));
    if (inet_pton(AF_INET, word, h.addr) == 1)
        h.family = AF_INET;
    else if (inet_pton(AF_INET6, word, h.addr) == 1)
        h.family = AF_INET6;
    else
        return;
    while ((word = strtok_r(NULL, blanks, &save)) != NULL) {
        h.names = xrealloc(h.names, (h.nnames + 1) * sizeof(*h.names));
        h.names[h.nnames++] = xstrdup(word);
    }
    if (h.nnames == 0)
        return;
    hosts.v = xrealloc(hosts.v, (hosts.n + 1) * sizeof(*hosts.v));
    hosts.v[hosts.n++] = h;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
           a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
           a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Make hosts.v what the file says now (at most one look a second). */
static void hosts_refresh(void)
{
    const char *path = hosts.path ? hosts.path : "/etc/hosts";
    time_t now = time(NULL);
    struct stat st;
    char *line = NULL;
    size_t cap = 0;
    FILE *fp;

    if (hosts.read_once && now == hosts.checked)
        return;
    hosts.checked = now;
    if (stat(path, &st) < 0) {
        hosts_forget();
        hosts.read_once = true;
        return;
    }
    if (hosts.read_once && same_file(&st, &hosts.st))
        return;
    hosts_forget();
    hosts.read_once = true;
    if ((fp = fopen(path, "re")) == NULL)
        return;
    /* What is parsed is what fstat describes, even if the file is being
     * replaced right now: the next change of it is noticed. */
    if (fstat(fileno(fp), &hosts.st) < 0)
        memset(&hosts.st, 0, sizeof(hosts.st));
    while (getline(&line, &cap, fp) >= 0)
        hosts_parse_line(line);
    free(line);
    fclose(fp);
}

/* addr as in family (an IPv4-mapped IPv6 address as IPv4). */
static bool addr_bin(const char *addr, int family, unsigned char *bin)
{
    unsigned char m[16];

    if (family == AF_INET && inet_pton(AF_INET, addr, bin) == 1)
        return true;
    if (inet_pton(AF_INET6, addr, m) != 1)
        return false;
    if (family == AF_INET6) {
        memcpy(bin, m, 16);
        return true;
    }
    if (family != AF_INET || !IN6_IS_ADDR_V4MAPPED((struct in6_addr *)m))
        return false;
    memcpy(bin, m + 12, 4);
    return true;
}

/* The next line from *i on with this address, or NULL. */
static const struct hosts_line *next_line(size_t *i, int family,
                                          const unsigned char *bin)
{
    size_t len = family == AF_INET ? 4 : 16;

    for (; *i < hosts.n; (*i)++) {
        const struct hosts_line *h = &hosts.v[*i];

        if (h->family == family && memcmp(h->addr, bin, len) == 0) {
            (*i)++;
            return h;
        }
    }
    return NULL;
}

enum dns_status dns_hosts_name(const char *addr, char **name)
{
    char labels[80];
    unsigned char bin[16];
    int family;

    *name = NULL;
    if (!dns_reverse_labels(addr, labels, sizeof(labels), &family) ||
        !addr_bin(addr, family, bin))
        return DNS_INVALID;
    hosts_refresh();
    size_t i = 0;
    const struct hosts_line *h = next_line(&i, family, bin);

    if (!h)
        return DNS_NOTFOUND;
    /* The first line decides, as with the resolver: its first name that
     * is a valid host name. */
    for (size_t k = 0; k < h->nnames; k++) {
        if (dns_name_ok(h->names[k])) {
            *name = dns_clean_host(h->names[k]);
            return DNS_OK;
        }
    }
    return DNS_NOTFOUND;
}

bool dns_hosts_has_addr(const char *name, int family, const char *addr)
{
    unsigned char bin[16];
    size_t nlen = strlen(name);

    if (nlen > 0 && name[nlen - 1] == '.')
        nlen--;
    if (nlen == 0 || !addr_bin(addr, family, bin))
        return false;
    hosts_refresh();
    size_t i = 0;
    const struct hosts_line *h;

    while ((h = next_line(&i, family, bin)) != NULL) {
        for (size_t k = 0; k < h->nnames; k++) {
            const char *n = h->names[k];
            size_t len = strlen(n);

            if (len > 0 && n[len - 1] == '.')
                len--;
            if (len == nlen && strncasecmp(n, name, len) == 0)
                return true;
        }
    }
    return false;
}
