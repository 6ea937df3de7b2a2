/*
 * fsutil - file system helpers with the error handling done once.
 * Functions return 0 on success, -1 with errno set (and err filled when
 * given) on failure.
 */
#ifndef UTIL_FSUTIL_H
#define UTIL_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "util/buf.h"

/* write(2) until done, retrying EINTR/short writes. */
int write_all(int fd, const void *data, size_t len);
/* pread-style read until len or EOF; returns bytes read or -1. */
ssize_t read_full(int fd, void *data, size_t len);
/* fsync the directory at path (for durable create/rename/unlink). */
int fsync_dir(const char *path);
/* mkdir -p with mode for each created component. */
int mkdir_p(const char *path, mode_t mode);
/* Read a whole file into b (appended); limit bounds the size. */
int file_read_all(const char *path, struct buf *b, size_t limit);
/* Write a file atomically: tmp + fsync + rename + fsync dir. */
int file_write_atomic(const char *path, const void *data, size_t len,
                      mode_t mode);

#endif
