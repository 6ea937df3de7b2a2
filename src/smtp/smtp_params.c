/*
 * smtp_params - the main.cf parameters of the smtp/lmtp delivery agent,
 * read once at start-up from the process configuration (main.cf plus the
 * service's -o overrides).  The rows that declare them are in
 * global/params_smtp.inc; config.c has validated types and ranges, so a
 * getter failing here is a bug (it panics), and the word-valued ones
 * are checked again only to map them onto enums.
 */
#include <string.h>
#include <sys/socket.h>

#include "smtp/smtp.h"
#include "global/config.h"
#include "util/log.h"
#include "util/str.h"

struct smtp_params smtp_params;

static int param_seconds(struct config *cfg, const char *name)
{
    long long v = config_time(cfg, name);

    return v > 86400 ? 86400 : (int)v;
}

static int param_count(struct config *cfg, const char *name)
{
    long long v = config_int(cfg, name);

    return v > 1000000 ? 1000000 : (int)v;
}

static enum smtp_tls_level param_tls_level(struct config *cfg)
{
    const char *v = config_str(cfg, "smtp_tls_security_level");

    if (strcmp(v, "none") == 0)
        return SMTP_TLS_NONE;
    if (strcmp(v, "encrypt") == 0)
        return SMTP_TLS_ENCRYPT;
    if (strcmp(v, "verify") == 0)
        return SMTP_TLS_VERIFY;
    if (strcmp(v, "may") == 0)
        return SMTP_TLS_MAY;
    log_fatal("smtp_tls_security_level: unsupported value '%s'", v);
}

static enum smtp_addr_pref param_addr_pref(struct config *cfg)
{
    const char *v = config_str(cfg, "smtp_address_preference");

    if (strcmp(v, "ipv4") == 0)
        return SMTP_PREF_IPV4;
    if (strcmp(v, "ipv6") == 0)
        return SMTP_PREF_IPV6;
    return SMTP_PREF_ANY;
}

/* smtp_tcp_port, lmtp_tcp_port: a number or a well-known name. */
static unsigned param_port(struct config *cfg, const char *name)
{
    static const struct {
        const char *name;
        unsigned port;
    } known[] = {{"smtp", 25}, {"lmtp", 24}, {"submission", 587}};
    const char *v = config_str(cfg, name);
    long long n;

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(v, known[i].name) == 0)
            return known[i].port;
    if (!str_to_llong(v, &n) || n < 1 || n > 65535)
        log_fatal("%s: bad port '%s' (a number from 1 to 65535, or smtp, "
                  "lmtp, submission)",
                  name, v);
    return (unsigned)n;
}

/* inet_protocols: all, ipv4, ipv6 or both listed. */
static int param_inet_family(struct config *cfg)
{
    const struct argv *list = config_list(cfg, "inet_protocols");
    bool v4 = false, v6 = false;

    for (size_t i = 0; i < list->n; i++) {
        if (strcmp(list->v[i], "ipv4") == 0)
            v4 = true;
        else if (strcmp(list->v[i], "ipv6") == 0)
            v6 = true;
        else
            v4 = v6 = true;
    }
    if (v4 && !v6)
        return AF_INET;
    if (v6 && !v4)
        return AF_INET6;
    return AF_UNSPEC;
}

void smtp_params_load(void)
{
    struct config *cfg = config_global();
    struct smtp_params *p = &smtp_params;

    p->queue_dir = config_str(cfg, "queue_directory");
    p->myhostname = config_str(cfg, "myhostname");
    p->helo_name = config_str(cfg, "smtp_helo_name");
    p->connect_timeout = param_seconds(cfg, "smtp_connect_timeout");
    p->helo_timeout = param_seconds(cfg, "smtp_helo_timeout");
    p->mail_timeout = param_seconds(cfg, "smtp_mail_timeout");
    p->rcpt_timeout = param_seconds(cfg, "smtp_rcpt_timeout");
    p->data_init_timeout = param_seconds(cfg, "smtp_data_init_timeout");
    p->data_xfer_timeout = param_seconds(cfg, "smtp_data_xfer_timeout");
    p->data_done_timeout = param_seconds(cfg, "smtp_data_done_timeout");
    p->quit_timeout = param_seconds(cfg, "smtp_quit_timeout");
    p->rset_timeout = param_seconds(cfg, "smtp_rset_timeout");
    p->starttls_timeout = param_seconds(cfg, "smtp_starttls_timeout");
    p->cache_time_limit = config_time(cfg, "smtp_connection_cache_time_limit");
    p->reuse_time_limit = config_time(cfg, "smtp_connection_reuse_time_limit");
    p->mx_address_limit = param_count(cfg, "smtp_mx_address_limit");
    p->mx_session_limit = param_count(cfg, "smtp_mx_session_limit");
    p->skip_5xx_greeting = config_bool(cfg, "smtp_skip_5xx_greeting");
    p->line_length_limit = (size_t)param_count(cfg, "smtp_line_length_limit");
    p->tls_level = param_tls_level(cfg);
    p->tls_ca_file = config_str(cfg, "smtp_tls_CAfile");
    p->tls_ca_path = config_str(cfg, "smtp_tls_CApath");
    p->tls_loglevel = param_count(cfg, "smtp_tls_loglevel");
    p->addr_pref = param_addr_pref(cfg);
    p->inet_family = param_inet_family(cfg);
    p->dns_servers = config_list(cfg, "dns_server_addresses");
    p->smtp_port = param_port(cfg, "smtp_tcp_port");
    p->lmtp_port = param_port(cfg, "lmtp_tcp_port");
    p->fallback_relay = config_list(cfg, "smtp_fallback_relay");
    p->relayhost = config_str(cfg, "relayhost");
    p->mime_conversion = !config_bool(cfg, "disable_mime_output_conversion");
    if (*p->helo_name == 0)
        p->helo_name = p->myhostname;
}
