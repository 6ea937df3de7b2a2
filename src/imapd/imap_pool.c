/*
 * imap_pool - per-command bump allocator.  See imap_pool.h.
 *
 * Blocks start small (an idle NOOP costs one 1 KiB block) and double up
 * to IMAP_POOL_BLOCK_MAX; a request larger than a block gets a block of
 * its own, so a big literal copy wastes nothing.
 */
#include "imapd/imap_pool.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/mem.h"

#define IMAP_POOL_BLOCK_MIN 1024
#define IMAP_POOL_BLOCK_MAX (64 * 1024)
#define IMAP_POOL_ALIGN 16

struct imap_pool_block {
    struct imap_pool_block *next;
    size_t size; /* usable bytes after the header */
    size_t used;
    max_align_t data[]; /* aligned start */
};

void *imap_pool_alloc(struct imap_pool *p, size_t size)
{
    struct imap_pool_block *b = p->head;
    size_t need = (size + IMAP_POOL_ALIGN - 1) & ~(size_t)(IMAP_POOL_ALIGN - 1);
    void *ptr;

    if (need < size)
        log_panic("imap_pool_alloc: size overflow");
    if (need == 0)
        need = IMAP_POOL_ALIGN;
    if (b == NULL || b->size - b->used < need) {
        size_t bsize = b == NULL ? IMAP_POOL_BLOCK_MIN : b->size * 2;

        if (bsize > IMAP_POOL_BLOCK_MAX)
            bsize = IMAP_POOL_BLOCK_MAX;
        if (bsize < need)
            bsize = need;
        b = xmalloc(sizeof(*b) + bsize);
        b->size = bsize;
        b->used = 0;
        if (p->head != NULL && bsize == need &&
            p->head->size - p->head->used >= IMAP_POOL_ALIGN) {
            /* A one-off big block goes behind the current one. */
            b->next = p->head->next;
            p->head->next = b;
        } else {
            b->next = p->head;
            p->head = b;
        }
        p->total += sizeof(*b) + bsize;
    }
    ptr = (char *)b->data + b->used;
    b->used += need;
    memset(ptr, 0, size);
    return ptr;
}

void *imap_pool_allocarray(struct imap_pool *p, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        log_panic("imap_pool_allocarray: %zu * %zu overflows", n, size);
    return imap_pool_alloc(p, n * size);
}

char *imap_pool_strndup(struct imap_pool *p, const char *s, size_t len)
{
    char *d = imap_pool_alloc(p, len + 1);

    memcpy(d, s, len);
    d[len] = 0;
    return d;
}

char *imap_pool_strdup(struct imap_pool *p, const char *s)
{
    return imap_pool_strndup(p, s, strlen(s));
}

void imap_pool_clear(struct imap_pool *p)
{
    while (p->head != NULL) {
        struct imap_pool_block *b = p->head;

        p->head = b->next;
        free(b);
    }
    p->total = 0;
}
