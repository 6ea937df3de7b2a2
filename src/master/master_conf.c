/*
 * master_conf - turn main.cf and master.cf into services, at start and on
 * reload.
 *
 * Trusts the two files as the administrator's, but validates all of them
 * before anything changes: every -o override is applied to a scratch copy
 * of main.cf and checked, every command must be an executable in
 * daemon_directory, every listener must have a distinct address.  At start
 * an error is fatal (the caller prints it); on reload it is logged and the
 * running configuration stays as it was.
 */
#include "master/master.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "global/config.h"
#include "global/mail_proto.h"
#include "global/mastercf.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* main.cf, checked; its warnings are appended to `warnings`. */
int master_conf_load(const char *config_dir, struct config **cfgp,
                     struct argv *warnings, char *err, size_t errlen)
{
    struct config *cfg = config_new();

    if (config_load(cfg, config_dir, warnings, err, errlen) < 0 ||
        config_check(cfg, err, errlen) < 0) {
        config_free(cfg);
        return -1;
    }
    *cfgp = cfg;
    return 0;
}

/* daemon_directory, or the directory of the running master when empty. */
int master_conf_daemon_dir(struct config *cfg, char **dir, char *err,
                           size_t errlen)
{
    const char *conf = config_str(cfg, "daemon_directory");
    char self[PATH_MAX];
    char *real;

    if (*conf == 0) {
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        char *slash;

        if (n <= 0) {
            snprintf(err, errlen,
                     "daemon_directory is empty and "
                     "/proc/self/exe cannot be read: %s",
                     strerror(errno));
            return -1;
        }
        self[n] = 0;
        if ((slash = strrchr(self, '/')) != NULL)
            *(slash == self ? slash + 1 : slash) = 0;
        conf = self;
    }
    if ((real = realpath(conf, NULL)) == NULL) {
        snprintf(err, errlen, "daemon_directory %s: %s", conf, strerror(errno));
        return -1;
    }
    *dir = real;
    return 0;
}

/* Apply a service's -o overrides to a scratch main.cf and check it. */
static int master_conf_check_overrides(const struct master_service *ms,
                                       const char *config_dir, char *err,
                                       size_t errlen)
{
    struct config *cfg = config_new();
    struct argv warnings = ARGV_INIT;
    char where[256];
    char msg[768];
    int rc = -1;

    snprintf(where, sizeof(where), "%s:%d", ms->file, ms->line);
    if (config_load(cfg, config_dir, NULL, err, errlen) < 0)
        goto out;
    if (config_set(cfg, "service_name", ms->name, where, msg, sizeof(msg)) <
        0) {
        snprintf(err, errlen, "%s", msg);
        goto out;
    }
    for (size_t i = 0; i < ms->overrides.n; i++) {
        const char *o = ms->overrides.v[i];
        const char *eq = strchr(o, '=');
        char *name;

        if (eq == NULL || eq == o) {
            snprintf(err, errlen, "%s: -o %s: expected name=value", where, o);
            goto out;
        }
        name = xstrndup(o, (size_t)(eq - o));
        if (config_set(cfg, name, eq + 1, where, msg, sizeof(msg)) < 0) {
            snprintf(err, errlen, "%s", msg);
            free(name);
            goto out;
        }
        free(name);
    }
    if (config_check(cfg, msg, sizeof(msg)) < 0) {
        snprintf(err, errlen, "%s: with its -o overrides: %s", where, msg);
        goto out;
    }
    config_take_warnings(cfg, &warnings);
    for (size_t i = 0; i < warnings.n; i++)
        log_warn("%s", warnings.v[i]);
    rc = 0;
out:
    argv_free(&warnings);
    config_free(cfg);
    return rc;
}

/* The addresses an inet service without a host listens on. */
static void master_conf_interfaces(struct config *cfg, struct argv *hosts)
{
    const struct argv *list = config_list(cfg, "inet_interfaces");

    for (size_t i = 0; i < list->n; i++) {
        const char *h = list->v[i];
        size_t len = strlen(h);

        if (str_eq_ci(h, "all")) {
            argv_free(hosts);
            argv_add(hosts, "");
            return;
        }
        if (str_eq_ci(h, "loopback-only"))
            h = "127.0.0.1";
        if (len > 2 && h[0] == '[' && h[len - 1] == ']')
            argv_addn(hosts, h + 1, len - 2);
        else
            argv_add(hosts, h);
    }
    if (hosts->n == 0)
        argv_add(hosts, "");
}

static struct master_svc *master_conf_spec(const struct master_service *ms,
                                           int maxproc, const char *path)
{
    struct master_svc *svc = master_svc_new();

    svc->name = xstrdup(ms->name);
    svc->type = xstrdup(ms->type);
    svc->unpriv = ms->unpriv;
    svc->wakeup = ms->wakeup;
    svc->wakeup_used = ms->wakeup_used;
    svc->maxproc = maxproc;
    svc->command = xstrdup(ms->command);
    svc->path = xstrdup(path);
    for (size_t i = 0; i < ms->args.n; i++)
        argv_add(&svc->args, ms->args.v[i]);
    svc->where = xasprintf("%s:%d", ms->file, ms->line);
    return svc;
}

static struct master_svc *master_conf_find(struct master_svc_list *list,
                                           const char *key)
{
    struct master_svc *svc;

    for (svc = TAILQ_FIRST(list); svc != NULL; svc = TAILQ_NEXT(svc, entries)) {
        if (!svc->retired && strcmp(svc->key, key) == 0)
            return svc;
    }
    return NULL;
}

static void master_conf_free_list(struct master_svc_list *list)
{
    struct master_svc *svc;

    while ((svc = TAILQ_FIRST(list)) != NULL) {
        TAILQ_REMOVE(list, svc, entries);
        master_svc_free(svc);
    }
}

/* Add svc to out unless its listener is taken; consumes svc. */
static int master_conf_add(struct master_svc_list *out, struct master_svc *svc,
                           char *err, size_t errlen)
{
    struct master_svc *other = master_conf_find(out, svc->key);

    if (other != NULL) {
        snprintf(err, errlen,
                 "%s: service %s/%s listens where the one at "
                 "%s does",
                 svc->where, svc->name, svc->type, other->where);
        master_svc_free(svc);
        return -1;
    }
    TAILQ_INSERT_TAIL(out, svc, entries);
    return 0;
}

static int master_conf_entry(struct config *cfg, const char *config_dir,
                             const char *daemon_dir, const char *queue_dir,
                             const struct master_service *ms,
                             struct master_svc_list *out, char *err,
                             size_t errlen)
{
    struct sockaddr_un sun;
    struct master_svc *svc;
    char *path;
    int maxproc;

    if (ms->command[0] == '/')
        path = xstrdup(ms->command);
    else
        path = xasprintf("%s/%s", daemon_dir, ms->command);
    if (access(path, X_OK) < 0) {
        snprintf(err, errlen, "%s:%d: command %s: %s", ms->file, ms->line, path,
                 strerror(errno));
        free(path);
        return -1;
    }
    if (ms->overrides.n > 0 &&
        master_conf_check_overrides(ms, config_dir, err, errlen) < 0) {
        free(path);
        return -1;
    }
    maxproc = ms->maxproc < 0 ? (int)config_int(cfg, "default_process_limit")
                              : ms->maxproc;

    if (strcmp(ms->type, "unix") == 0) {
        svc = master_conf_spec(ms, maxproc, path);
        free(path);
        svc->socket_path = xasprintf(
            "%s/%s/%s", queue_dir,
            ms->private_ ? MAIL_QUEUE_PRIVATE : MAIL_QUEUE_PUBLIC, ms->name);
        if (strchr(ms->name, '/') != NULL ||
            strlen(svc->socket_path) >= sizeof(sun.sun_path)) {
            snprintf(err, errlen, "%s: socket %s: bad name or path too long",
                     svc->where, svc->socket_path);
            master_svc_free(svc);
            return -1;
        }
        svc->key = xasprintf("unix|%s", svc->socket_path);
        return master_conf_add(out, svc, err, errlen);
    }
    if (strcmp(ms->type, "inet") == 0) {
        struct argv hosts = ARGV_INIT;
        int rc = 0;

        /* mastercf split "host:port"; "*" is any address, "" is
         * inet_interfaces. */
        if (ms->host == NULL || *ms->host == 0)
            master_conf_interfaces(cfg, &hosts);
        else if (strcmp(ms->host, "*") == 0)
            argv_add(&hosts, "");
        else
            argv_add(&hosts, ms->host);
        if (ms->wakeup > 0)
            log_warn("%s:%d: wakeup is done for unix services only; "
                     "ignored for %s",
                     ms->file, ms->line, ms->name);
        for (size_t i = 0; i < hosts.n && rc == 0; i++) {
            svc = master_conf_spec(ms, maxproc, path);
            svc->wakeup = 0;
            svc->host = xstrdup(hosts.v[i]);
            svc->port = xstrdup(ms->port);
            svc->key = xasprintf("inet|%s|%s", svc->host, svc->port);
            rc = master_conf_add(out, svc, err, errlen);
        }
        argv_free(&hosts);
        free(path);
        return rc;
    }
    snprintf(err, errlen, "%s:%d: service type %s is not supported", ms->file,
             ms->line, ms->type);
    free(path);
    return -1;
}

int master_conf_services(struct config *cfg, const char *config_dir,
                         const char *daemon_dir, const char *queue_dir,
                         struct master_svc_list *out, char *err, size_t errlen)
{
    struct master_service *entries = NULL;
    size_t count = 0;
    char *path = xasprintf("%s/master.cf", config_dir);
    int rc = 0;

    TAILQ_INIT(out);
    if (mastercf_parse(path, &entries, &count, err, errlen) < 0) {
        free(path);
        return -1;
    }
    free(path);
    for (size_t i = 0; i < count && rc == 0; i++)
        rc = master_conf_entry(cfg, config_dir, daemon_dir, queue_dir,
                               &entries[i], out, err, errlen);
    mastercf_free(entries, count);
    if (rc < 0)
        master_conf_free_list(out);
    return rc;
}

/*
 * The workers' environment: import_environment, plus the variables the
 * worker skeleton itself reads.
 */
void master_conf_env(struct config *cfg, struct argv *env)
{
    const struct argv *list = config_list(cfg, "import_environment");
    static const char *const skeleton_vars[] = {"POSTHORN_LOG_STDERR"};

    argv_free(env);
    for (size_t i = 0; i < list->n; i++) {
        const char *item = list->v[i];
        const char *value;

        if (strchr(item, '=') != NULL)
            argv_add(env, item);
        else if ((value = getenv(item)) != NULL) {
            char *kv = xasprintf("%s=%s", item, value);

            argv_add(env, kv);
            free(kv);
        }
    }
    for (size_t i = 0; i < sizeof(skeleton_vars) / sizeof(skeleton_vars[0]);
         i++) {
        const char *value = getenv(skeleton_vars[i]);

        if (value != NULL) {
            char *kv = xasprintf("%s=%s", skeleton_vars[i], value);

            argv_add(env, kv);
            free(kv);
        }
    }
}

int master_conf_owner(struct config *cfg, bool as_root, uid_t *uid, gid_t *gid,
                      char *err, size_t errlen)
{
    const char *owner = config_str(cfg, "mail_owner");
    struct passwd *pw;

    *uid = getuid();
    *gid = getgid();
    if (!as_root)
        return 0;
    errno = 0;
    if (*owner == 0 || (pw = getpwnam(owner)) == NULL) {
        snprintf(err, errlen, "mail_owner %s: %s", owner,
                 errno ? strerror(errno) : "no such user");
        return -1;
    }
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return 0;
}

static bool master_conf_is_stdio(const char *file)
{
    return strcmp(file, "/dev/stderr") == 0 || strcmp(file, "/dev/stdout") == 0;
}

/*
 * maillog_file, else syslog.  with_stderr: also the terminal, while master
 * still has one (so `posthorn start` shows why a start failed), unless
 * maillog_file is the terminal already.
 */
void master_conf_open_log(struct config *cfg, bool with_stderr)
{
    const char *file = config_str(cfg, "maillog_file");
    const char *env = getenv("POSTHORN_LOG_STDERR");
    int where = *file ? LOG_TO_FILE : LOG_TO_SYSLOG;

    if (env != NULL && strcmp(env, "1") == 0)
        with_stderr = true;
    if (with_stderr && !master_conf_is_stdio(file))
        where |= LOG_TO_STDERR;
    log_open("master", where, file);
}

/* ---------------------------------------------------------- reload */

void master_reload(void)
{
    struct config *cfg;
    struct master_svc_list fresh;
    struct argv warnings = ARGV_INIT;
    uid_t uid;
    gid_t gid;
    struct master_svc *svc, *next;
    struct master_child *child;
    char *daemon_dir;
    char err[1024];

    if (master.stopping)
        return;
    if (master_conf_load(master.config_dir, &cfg, &warnings, err, sizeof(err)) <
        0) {
        log_error("reload: %s -- keeping the running configuration", err);
        argv_free(&warnings);
        return;
    }
    for (size_t i = 0; i < warnings.n; i++)
        log_warn("%s", warnings.v[i]);
    argv_free(&warnings);
    if (master_conf_owner(cfg, master.as_root, &uid, &gid, err, sizeof(err)) <
        0) {
        log_error("reload: %s -- keeping the running configuration", err);
        config_free(cfg);
        return;
    }
    if (strcmp(config_str(cfg, "queue_directory"), master.queue_dir) != 0)
        log_warn("reload: queue_directory changed to %s: it takes effect "
                 "at the next start",
                 config_str(cfg, "queue_directory"));
    if (master_conf_daemon_dir(cfg, &daemon_dir, err, sizeof(err)) < 0) {
        log_error("reload: %s -- keeping the running configuration", err);
        config_free(cfg);
        return;
    }
    if (master_conf_services(cfg, master.config_dir, daemon_dir,
                             master.queue_dir, &fresh, err, sizeof(err)) < 0) {
        log_error("reload: %s -- keeping the running configuration", err);
        free(daemon_dir);
        config_free(cfg);
        return;
    }

    /* From here on the new configuration is in force. */
    master.generation++;
    master.owner_uid = uid;
    master.owner_gid = gid;
    free(master.daemon_dir);
    master.daemon_dir = daemon_dir;
    config_set_global(cfg);
    config_free(master.cfg);
    master.cfg = cfg;
    master_queue_maillog(cfg, master.as_root, master.owner_uid,
                         master.owner_gid);
    master_conf_open_log(cfg, master.foreground);
    master_conf_env(cfg, &master.child_env);

    /* Listeners that are gone first, so a moved service can re-bind. */
    for (svc = TAILQ_FIRST(&master.services); svc != NULL; svc = next) {
        next = TAILQ_NEXT(svc, entries);
        if (!svc->retired && master_conf_find(&fresh, svc->key) == NULL)
            master_svc_retire(svc);
    }
    while ((svc = TAILQ_FIRST(&fresh)) != NULL) {
        struct master_svc *old = master_conf_find(&master.services, svc->key);

        TAILQ_REMOVE(&fresh, svc, entries);
        if (old != NULL) {
            master_svc_take_spec(old, svc);
            master_svc_free(svc);
            continue;
        }
        if (master_svc_open(svc, err, sizeof(err)) < 0) {
            log_error("reload: %s: %s", svc->where, err);
            master_svc_free(svc);
            continue;
        }
        TAILQ_INSERT_TAIL(&master.services, svc, entries);
        master_svc_start(svc);
    }

    /* Every worker finishes its client and exits; new ones use the new
     * configuration. */
    for (svc = TAILQ_FIRST(&master.services); svc != NULL;
         svc = TAILQ_NEXT(svc, entries)) {
        if (!svc->retired)
            svc->generation = master.generation;
        svc->ncurrent = 0;
        svc->navail = 0;
        for (child = LIST_FIRST(&svc->children); child != NULL;
             child = LIST_NEXT(child, entries)) {
            kill(child->pid, SIGHUP);
        }
    }
    log_info("reload -- version %s, configuration %s",
             config_str(cfg, "mail_version"), master.config_dir);
    for (svc = TAILQ_FIRST(&master.services); svc != NULL; svc = next) {
        next = TAILQ_NEXT(svc, entries);
        master_svc_update(svc);
    }
}
