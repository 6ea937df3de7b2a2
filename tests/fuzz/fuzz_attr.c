/*
 * fuzz_attr - libFuzzer harness for the attribute frame reader: feeds the
 * input through a pipe and reads frames until EOF or an error.
 */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "util/attr.h"
#include "util/stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fds[2];

    if (size > 60000 || pipe(fds) != 0)
        return 0;
    if (write(fds[1], data, size) != (ssize_t)size) {
        close(fds[0]);
        close(fds[1]);
        return 0;
    }
    close(fds[1]);
    struct stream *s = stream_open(fds[0]);
    struct attr_list list = ATTR_LIST_INIT;
    const char *err = NULL;
    stream_set_timeout(s, 1000);
    while (attr_read(s, &list, 4096, &err) == STREAM_OK) {
        for (size_t i = 0; i < list.n; i++)
            (void)attr_get(&list, list.v[i].name);
    }
    attr_list_free(&list);
    stream_close(s);
    return 0;
}
