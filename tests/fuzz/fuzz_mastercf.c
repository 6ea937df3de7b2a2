/*
 * fuzz_mastercf - libFuzzer harness for the master.cf parser: parse the
 * input as master.cf and touch every field of every service returned.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "global/mastercf.h"

/* Keeps the field reads from being optimised away. */
volatile size_t fuzz_mastercf_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/fuzz_mastercf.XXXXXX";
    struct master_service *svc;
    size_t n, total = 0;
    char err[512];
    int fd = mkstemp(path);

    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        unlink(path);
        return 0;
    }
    close(fd);
    if (mastercf_parse(path, &svc, &n, err, sizeof(err)) == 0) {
        for (size_t i = 0; i < n; i++) {
            total += strlen(svc[i].name) + strlen(svc[i].type) +
                     strlen(svc[i].command) + svc[i].args.n +
                     svc[i].overrides.n;
            for (size_t k = 0; k < svc[i].overrides.n; k++)
                if (strchr(svc[i].overrides.v[k], '=') == NULL)
                    abort(); /* the parser promised name=value */
        }
        mastercf_free(svc, n);
    } else if (err[0] == 0) {
        abort(); /* an error without a message */
    }
    unlink(path);
    fuzz_mastercf_sink = total;
    return 0;
}
