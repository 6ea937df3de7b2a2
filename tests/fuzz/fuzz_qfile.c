/*
 * fuzz_qfile - libFuzzer harness for the queue file reader: a queue file
 * is written by our own cleanup, but a reader must survive a torn or
 * foreign file and reject it as corrupt.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "global/qfile.h"

static int sink(const char *d, size_t n, void *ctx)
{
    (void)d;
    *(size_t *)ctx += n;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/fuzz_qfile.XXXXXX";
    int fd = mkstemp(path);
    char err[256];
    bool corrupt = false;

    if (fd < 0)
        return 0;
    unlink(path);
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    struct qfile_envelope env = {0};
    if (qfile_read_envelope(fd, &env, &corrupt, err, sizeof(err)) == 0) {
        size_t total = 0;
        (void)qfile_read_content(fd, &env, sink, &total, err, sizeof(err));
        qfile_envelope_free(&env);
    }
    close(fd);
    return 0;
}
