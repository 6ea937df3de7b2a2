/*
 * imap_pool - a bump allocator for one command (Dovecot's data stack in
 * miniature).  Everything a command parses or builds (arguments, search
 * trees, sequence sets, section specs) comes from the command's pool and
 * goes away at once when the command ends, so a session that runs for
 * days cannot leak and an idle session holds no pool at all.
 *
 * Allocation never fails (xmalloc underneath); sizes are bounded by the
 * input limits of the caller.  Not thread-safe: one pool, one owner.
 */
#ifndef IMAPD_IMAP_POOL_H
#define IMAPD_IMAP_POOL_H

#include <stddef.h>

struct imap_pool_block;

struct imap_pool {
    struct imap_pool_block *head; /* newest block first */
    size_t total;                 /* bytes held, blocks included */
};

#define IMAP_POOL_INIT {NULL, 0}

/* Zeroed memory, aligned for any type. */
void *imap_pool_alloc(struct imap_pool *p, size_t size);
void *imap_pool_allocarray(struct imap_pool *p, size_t n, size_t size);
char *imap_pool_strndup(struct imap_pool *p, const char *s, size_t len);
char *imap_pool_strdup(struct imap_pool *p, const char *s);
/* Free every block; the pool is empty and reusable. */
void imap_pool_clear(struct imap_pool *p);

#endif
