/*
 * cmd - the posthorn command's sub-commands.  Each lives in its own file
 * (cmd_<name>.c) and is one row in the table in posthorn.c.
 *
 * confdir is the -c argument (default POSTHORN_CONFIG_DIR).  argv[0] is the
 * sub-command name.  Return value is the process exit status.
 */
#ifndef CLI_CMD_H
#define CLI_CMD_H

#ifndef POSTHORN_CONFIG_DIR
#define POSTHORN_CONFIG_DIR "/etc/posthorn"
#endif

int cmd_start(const char *confdir, int argc, char **argv);    /* start, start-fg */
int cmd_stop(const char *confdir, int argc, char **argv);     /* stop, abort */
int cmd_reload(const char *confdir, int argc, char **argv);
int cmd_status(const char *confdir, int argc, char **argv);
int cmd_conf(const char *confdir, int argc, char **argv);     /* conf [-d|-n|check] */
int cmd_map(const char *confdir, int argc, char **argv);      /* map [-q key] type:file */
int cmd_queue(const char *confdir, int argc, char **argv);    /* queue -p | -j | ... */
int cmd_super(const char *confdir, int argc, char **argv);    /* super -d|-h|-H|-r ID|ALL */
int cmd_cat(const char *confdir, int argc, char **argv);      /* cat [-e] [-h] [-b] ID|path */
int cmd_passwd(const char *confdir, int argc, char **argv);   /* passwd [-s scheme] [-p pw] */
int cmd_user(const char *confdir, int argc, char **argv);     /* user add|del|passwd|list */
int cmd_tls(const char *confdir, int argc, char **argv);      /* tls new-cert */

#endif
