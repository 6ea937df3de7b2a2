/*
 * sock - socket helpers.  All descriptors are created close-on-exec.
 * Functions that can fail return -1 and put a message in err (size errlen).
 */
#ifndef UTIL_SOCK_H
#define UTIL_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* host may be "" or "*" for any address; "127.0.0.1", "::1", "localhost". */
int sock_listen_inet(const char *host, const char *port, int backlog,
                     char *err, size_t errlen);
/* Removes a stale socket file first; chmod to mode. */
int sock_listen_unix(const char *path, int mode, int backlog, char *err,
                     size_t errlen);
/* timeout_ms < 0 blocks. */
int sock_connect_unix(const char *path, int timeout_ms, char *err,
                      size_t errlen);
int sock_connect_inet(const char *host, const char *port, int timeout_ms,
                      char *err, size_t errlen);
int sock_set_nonblock(int fd, bool on);
int sock_set_cloexec(int fd, bool on);
/*
 * Numeric address and port of the peer / local side of fd:
 * "127.0.0.1", "::1" (IPv4-mapped IPv6 shown as IPv4).  AF_UNIX gives addr "local",
 * port "0".  Returns 0 or -1.
 */
int sock_peer_name(int fd, char *addr, size_t addrlen, char *port,
                   size_t portlen);
int sock_local_name(int fd, char *addr, size_t addrlen, char *port,
                    size_t portlen);

#endif
