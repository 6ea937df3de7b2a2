/*
 * cmd_map - `posthorn map`, Postfix's postmap:
 *
 *   posthorn map [type:]file        compile file into file.lmdb
 *   posthorn map -q key [type:]name print the value of key; exit 1 if absent
 *   posthorn map -s [type:]name     print every "key value" entry
 *   posthorn map -d key [type:]file remove key from file.lmdb
 *
 * type defaults to lmdb; hash: and btree: name the same files, and -q/-s
 * work on any table type (texthash:, inline:{...}, static:, unix:,
 * pcre:, regexp:, cidr:, socketmap:...).  -q looks the key up as given
 * (no address search order; lowercased except for pattern tables), like
 * postmap -q.  -d changes the .lmdb file in place and leaves the source
 * file alone, like postmap -d: the next build brings the key back unless
 * the source loses it too.  main.cf is read from the configuration
 * directory when there is one (lmdb_map_size, socketmap_timeout); without
 * it the defaults apply.
 * Exit status: 0 done/found/removed, 1 key not found, 2 usage or any
 * error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cmd.h"
#include "global/config.h"
#include "global/maps.h"
#include "util/buf.h"
#include "util/mem.h"

#define MAP_EXIT_NOTFOUND 1
#define MAP_EXIT_ERROR 2

static int map_usage(void)
{
    fprintf(stderr, "usage: posthorn map [type:]file\n"
                    "       posthorn map -q key [type:]name\n"
                    "       posthorn map -s [type:]name\n"
                    "       posthorn map -d key [type:]file\n");
    return MAP_EXIT_ERROR;
}

/*
 * Apply main.cf settings that matter here.  A missing main.cf is fine
 * (the tool also serves hosts without an instance); a broken one is an
 * error, as everywhere else.
 */
static int map_load_config(const char *confdir)
{
    char path[4096], err[512];
    struct config *cfg;
    struct stat st;

    if (snprintf(path, sizeof(path), "%s/main.cf", confdir) >=
            (int)sizeof(path) ||
        stat(path, &st) < 0)
        return 0;
    cfg = config_new();
    if (config_load(cfg, confdir, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "posthorn map: %s\n", err);
        config_free(cfg);
        return -1;
    }
    maps_configure(cfg);
    config_free(cfg);
    return 0;
}

/*
 * "type:file" -> type and file; a plain path (which may itself hold ':'
 * after a '/') is an lmdb file.  Returns a table spec to free.
 */
static char *map_spec_of(const char *arg, char **type, const char **file)
{
    size_t n = strspn(arg, "abcdefghijklmnopqrstuvwxyz0123456789_");

    if (n > 0 && arg[n] == ':') {
        *type = xstrndup(arg, n);
        *file = arg + n + 1;
        return xstrdup(arg);
    }
    *type = xstrdup("lmdb");
    *file = arg;
    return xasprintf("lmdb:%s", arg);
}

static int map_print_entry(const char *key, const char *value, void *ctx)
{
    printf("%s %s\n", key, value);
    return ferror(stdout) ? 1 : 0;
}

int cmd_map(const char *confdir, int argc, char **argv)
{
    const char *query = NULL, *del = NULL, *file;
    bool dump = false;
    char err[512], *type, *spec;
    struct buf value = BUF_INIT;
    struct map *m;
    int i = 1, rc;

    while (i < argc && argv[i][0] == '-' && argv[i][1] != 0) {
        if (strcmp(argv[i], "-q") == 0 && i + 1 < argc) {
            query = argv[i + 1];
            i += 2;
        } else if (strcmp(argv[i], "-d") == 0 && i + 1 < argc) {
            del = argv[i + 1];
            i += 2;
        } else if (strcmp(argv[i], "-s") == 0) {
            dump = true;
            i++;
        } else if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else {
            return map_usage();
        }
    }
    if (i + 1 != argc || (query != NULL) + (del != NULL) + dump > 1)
        return map_usage();
    if (map_load_config(confdir) < 0)
        return MAP_EXIT_ERROR;
    spec = map_spec_of(argv[i], &type, &file);

    if (query == NULL && del == NULL && !dump) {
        rc = map_build(type, file, err, sizeof(err)) < 0 ? MAP_EXIT_ERROR : 0;
        if (rc != 0)
            fprintf(stderr, "posthorn map: %s\n", err);
        goto out;
    }
    if ((m = map_open(spec, err, sizeof(err))) == NULL) {
        fprintf(stderr, "posthorn map: %s\n", err);
        rc = MAP_EXIT_ERROR;
        goto out;
    }
    if (dump) {
        rc = map_walk(m, map_print_entry, NULL, err, sizeof(err)) < 0
                 ? MAP_EXIT_ERROR
                 : 0;
    } else if (del != NULL) {
        switch (map_delete(m, del, err, sizeof(err))) {
        case 1:
            rc = 0;
            break;
        case 0:
            rc = MAP_EXIT_NOTFOUND;
            break;
        default:
            rc = MAP_EXIT_ERROR;
            break;
        }
    } else {
        switch (map_lookup(m, query, &value, err, sizeof(err))) {
        case MAP_FOUND:
            printf("%s\n", buf_cstr(&value));
            rc = 0;
            break;
        case MAP_NOTFOUND:
            rc = MAP_EXIT_NOTFOUND;
            break;
        default:
            rc = MAP_EXIT_ERROR;
            break;
        }
    }
    if (rc == MAP_EXIT_ERROR)
        fprintf(stderr, "posthorn map: %s\n", err);
    map_close(m);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "posthorn map: write error: %s\n", strerror(errno));
        rc = MAP_EXIT_ERROR;
    }
out:
    buf_free(&value);
    free(type);
    free(spec);
    return rc;
}
