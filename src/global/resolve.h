/*
 * resolve - which class a recipient belongs to and whether it exists.
 * Shared by smtpd (accept or 550), cleanup (alias expansion) and qmgr /
 * local (where to deliver).  Postfix's address classes:
 *
 *   local            domain in mydestination (or empty domain)
 *   virtual_alias    domain in virtual_alias_domains
 *   virtual_mailbox  domain in virtual_mailbox_domains
 *   relay            domain in relay_domains
 *   default          anything else (goes to the smtp transport)
 *
 * Parameters used: mydestination, virtual_alias_domains,
 * virtual_mailbox_domains, relay_domains, virtual_mailbox_maps,
 * virtual_alias_maps, alias_maps, local_recipient_maps,
 * recipient_delimiter, virtual_mailbox_base, home_mailbox,
 * virtual_uid_maps, virtual_gid_maps, passdb.  Domain lists may contain
 * names and type:table entries (a table matches when the domain is a key).
 * With passdb set, accounts of the password database are virtual mailbox
 * recipients as well; the resolver asks the auth service about them
 * (global/auth_client.h), so it may block for a socket round trip.
 */
#ifndef GLOBAL_RESOLVE_H
#define GLOBAL_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "global/config.h"
#include "global/maps.h"

enum addr_class {
    ADDR_CLASS_LOCAL,
    ADDR_CLASS_VIRTUAL_ALIAS,
    ADDR_CLASS_VIRTUAL_MAILBOX,
    ADDR_CLASS_RELAY,
    ADDR_CLASS_DEFAULT,
};

const char *addr_class_name(enum addr_class c);

struct resolver;

struct resolver *resolver_open(struct config *cfg, char *err, size_t errlen);
void resolver_close(struct resolver *r);

/* Class of a lowercased domain ("" = local).  -1 on lookup error. */
int resolve_class(struct resolver *r, const char *domain, char *err,
                  size_t errlen);

/*
 * Is this recipient (internal form "local@domain") one we accept?
 *   local:   in local_recipient_maps or alias_maps (empty
 *            local_recipient_maps = accept all, as Postfix)
 *   virtual_mailbox: in virtual_mailbox_maps or virtual_alias_maps, or
 *            a passdb account (also without its address extension)
 *   virtual_alias:   in virtual_alias_maps
 *   relay / default: true (relay permission is a separate question)
 * Returns MAP_FOUND (known), MAP_NOTFOUND (unknown: 550 5.1.1) or
 * MAP_ERROR (451 4.3.0).
 */
enum map_result resolve_recipient_known(struct resolver *r, const char *addr,
                                        char *err, size_t errlen);

/* Maps that cleanup uses for expansion (owned by the resolver). */
struct maplist *resolve_virtual_alias_maps(struct resolver *r);
struct maplist *resolve_alias_maps(struct resolver *r);

/*
 * Where a local or virtual_mailbox recipient's mail goes.  For
 * virtual_mailbox: virtual_mailbox_base "/" result of virtual_mailbox_maps;
 * a result ending in "/" is a Maildir (the only kind supported now; a
 * mailbox-file result is a permanent failure "mbox not supported").  uid
 * and gid from virtual_uid_maps / virtual_gid_maps.  A passdb account
 * that virtual_mailbox_maps does not list gets its home + "/Maildir/" (or
 * virtual_mailbox_base/domain/user/ without a home) and the passdb's uid
 * and gid where it has them.  For local: the
 * user's home directory from the password file + home_mailbox (default
 * "Maildir/"), uid/gid of that user.
 * Returns MAP_FOUND with path (a Maildir directory, trailing "/"),
 * MAP_NOTFOUND (no such mailbox), MAP_ERROR.
 */
enum map_result resolve_mailbox(struct resolver *r, const char *addr,
                                struct buf *path, uid_t *uid, gid_t *gid,
                                char *err, size_t errlen);

#endif
