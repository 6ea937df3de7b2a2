/*
 * posthorn - the administrator's command (Postfix's postfix, postconf,
 * postmap and postqueue in one).
 *
 *   posthorn [-c DIR] start | start-fg | stop | abort | reload | status
 *   posthorn [-c DIR] conf [-d | -n | check] [name ...]
 *   posthorn [-c DIR] map [-q key] [type:]file
 *   posthorn [-c DIR] queue -p | -j | -f | -s site | -i ID
 *   posthorn [-c DIR] super [-d|-h|-H|-r ID|ALL|-]... [queue...]
 *   posthorn [-c DIR] cat [-e] [-h] [-b] ID|path
 *   posthorn [-c DIR] tls new-cert [--cn NAME] [--days N] [--force]
 *
 * Sub-commands are rows in the table below; each is implemented in
 * cmd_<name>.c.  -c defaults to $POSTHORN_CONFIG_DIR, then /etc/posthorn.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "util/log.h"

struct command {
    const char *name;
    int (*fn)(const char *confdir, int argc, char **argv);
    const char *usage;
};

static const struct command commands[] = {
    {"start", cmd_start, "start the mail system in the background"},
    {"start-fg", cmd_start, "run the mail system in the foreground"},
    {"stop", cmd_stop, "stop the mail system (workers finish their client)"},
    {"abort", cmd_stop, "stop the mail system now"},
    {"reload", cmd_reload, "re-read main.cf and master.cf"},
    {"status", cmd_status, "tell whether the mail system runs"},
    {"conf", cmd_conf, "show or check parameters: conf [-d|-n|check] [name...]"},
    {"map", cmd_map, "compile or query a lookup table: map [-q key] type:file"},
    {"queue", cmd_queue, "list or flush: queue -p|-j|-f|-s site|-i ID"},
    {"super", cmd_super, "delete, hold, release, requeue: super -d|-h|-H|-r"},
    {"cat", cmd_cat, "show a queue file: cat [-e] [-h] [-b] ID|path"},
    {"passwd", cmd_passwd, "hash a password for the passdb: passwd [-s scheme]"},
    {"user", cmd_user, "edit the passdb: user add|del|passwd|list [user]"},
    {"tls", cmd_tls, "TLS chores: tls new-cert [--cn name] [--days n] [--force]"},
};

static void usage(void)
{
    fprintf(stderr, "usage: posthorn [-c config_dir] command [args]\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(stderr, "  %-9s %s\n", commands[i].name, commands[i].usage);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *confdir = getenv("POSTHORN_CONFIG_DIR");
    int i = 1;

    if (confdir == NULL || *confdir == 0)
        confdir = POSTHORN_CONFIG_DIR;
    log_open("posthorn", LOG_TO_STDERR, NULL);
    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            confdir = argv[i + 1];
            i += 2;
        } else if (strcmp(argv[i], "-v") == 0) {
            log_set_verbose(log_verbose_level() + 1);
            i++;
        } else {
            usage();
        }
    }
    if (i >= argc)
        usage();
    for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
        if (strcmp(argv[i], commands[k].name) == 0)
            return commands[k].fn(confdir, argc - i, argv + i);
    fprintf(stderr, "posthorn: unknown command '%s'\n", argv[i]);
    usage();
}
