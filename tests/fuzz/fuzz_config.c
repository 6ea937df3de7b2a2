/*
 * fuzz_config - libFuzzer harness for the main.cf parser and $name
 * expansion: load the input as main.cf, then expand every parameter.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "global/config.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/fuzz_config.XXXXXX";
    int fd = mkstemp(path);
    char err[512];

    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        unlink(path);
        return 0;
    }
    close(fd);
    struct config *cfg = config_new();
    struct argv warnings = ARGV_INIT;
    if (config_load(cfg, path, &warnings, err, sizeof(err)) == 0) {
        if (config_check(cfg, err, sizeof(err)) == 0) {
            for (size_t i = 0; i < param_table_count; i++)
                (void)config_raw(cfg, param_table[i].name);
        }
    }
    argv_free(&warnings);
    config_free(cfg);
    unlink(path);
    return 0;
}
