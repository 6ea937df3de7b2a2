/*
 * test_imap_store - imapd's message store over a Maildir++ tree in a
 * temporary directory: APPEND and read back byte-exact, flags in file
 * names, keywords, changes made by other tools (rename, unlink,
 * delivery into new/) seen by a sync, \Recent claimed once, EXPUNGE,
 * COPY/MOVE with COPYUID data, folders (create with parents, LIST
 * attributes, rename with children and subscriptions, delete), the
 * index rebuilt after it is lost (new UIDVALIDITY), and deliveries by
 * another process while a session syncs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "imapd/imap_index.c"
#include "imapd/imap_mailbox.c"
#include "imapd/imap_mailbox_msg.c"
#include "imapd/imap_maildir.c"
#include "imapd/imap_mime.c"
#include "imapd/imap_mime_decode.c"
#include "imapd/imap_mime_search.c"
#include "imapd/imap_mime_struct.c"
#include "imapd/imap_store.c"
#include "imapd/imap_store_append.c"

static char root[256];
static char err[512];

static int setup(void **state)
{
    snprintf(root, sizeof(root), "/tmp/test_imap_store.XXXXXX");
    assert_non_null(mkdtemp(root));
    return 0;
}

static void rm_rf(const char *path)
{
    char *cmd = xasprintf("rm -rf '%s'", path);

    assert_int_equal(system(cmd), 0);
    free(cmd);
}

static int teardown(void **state)
{
    imap_store_expire(0); /* indexes kept open after the last close */
    assert_int_equal(index_unused, 0);
    assert_null(index_list);
    rm_rf(root);
    return 0;
}

static struct imap_store *store(void)
{
    struct imap_store *st = imap_store_open(root, err, sizeof(err));

    assert_non_null(st);
    return st;
}

static uint32_t append(struct imap_store *st, const char *box, const char *msg,
                       unsigned flags)
{
    struct imap_append a = {msg, strlen(msg), flags, NULL, 0, 0};
    uint32_t uv = 0, uid = 0;

    assert_int_equal(imap_store_append(st, box, &a, &uv, &uid, err, sizeof(err)),
                     IMAP_STORE_OK);
    assert_true(uv != 0);
    return uid;
}

static struct imap_mailbox *open_box(struct imap_store *st, const char *name,
                                     unsigned flags)
{
    int status = -100;
    struct imap_mailbox *mb = imap_mailbox_open(st, name, flags, &status, err,
                                                sizeof(err));

    if (mb == NULL)
        fail_msg("open %s: %d %s", name, status, err);
    assert_int_equal(status, IMAP_STORE_OK);
    return mb;
}

/* The one file of dir/sub whose name starts with prefix ("" = any). */
static char *find_file(const char *dir, const char *sub, const char *prefix)
{
    char *path = xasprintf("%s/%s", dir, sub);
    DIR *d = opendir(path);
    struct dirent *de;
    char *found = NULL;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || strncmp(de->d_name, prefix, strlen(prefix)))
            continue;
        assert_null(found);
        found = xstrdup(de->d_name);
    }
    closedir(d);
    free(path);
    return found;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static const char *msg1 = "From: a@example.org\r\nSubject: one\r\n\r\nbody one\r\n";
static const char *msg2 = "From: b@example.org\r\nSubject: two\r\n\r\nbody two\r\n";
/* Bare LF and a lone CR: stored as sent, still CRLF when read. */
static const char *msg3 = "Subject: three\n\nline\rx\n";

static void test_append_read(void **state)
{
    struct imap_store *st = store();
    struct imap_mailbox *mb;
    struct buf b = BUF_INIT;
    uint64_t size;
    char *path;

    assert_int_equal(append(st, "INBOX", msg1, IMAP_FLAG_SEEN), 1);
    assert_int_equal(append(st, "inbox", msg2, 0), 2);
    assert_int_equal(append(st, "INBOX", msg3, IMAP_FLAG_FLAGGED | IMAP_FLAG_DRAFT), 3);
    mb = open_box(st, "INBOX", 0);
    assert_int_equal(imap_mailbox_count(mb), 3);
    assert_int_equal(imap_mailbox_uidnext(mb), 4);
    assert_int_equal(imap_mailbox_msg(mb, 1)->flags, IMAP_FLAG_SEEN | IMAP_FLAG_RECENT);
    assert_int_equal(imap_mailbox_first_unseen(mb), 2);
    assert_int_equal(imap_mailbox_seq_of_uid(mb, 3), 3);
    assert_int_equal(imap_mailbox_seq_of_uid(mb, 9), 0);

    /* Byte-exact CRLF form back; stored with LF where that round-trips. */
    assert_int_equal(imap_mailbox_msg_read(mb, 1, &b, err, sizeof(err)), 0);
    assert_string_equal(buf_cstr(&b), msg1);
    buf_reset(&b);
    assert_int_equal(imap_mailbox_msg_read(mb, 3, &b, err, sizeof(err)), 0);
    assert_string_equal(buf_cstr(&b), "Subject: three\r\n\r\nline\rx\r\n");
    {
        /* Flags are in the file names, letters in ASCII order. */
        DIR *d;
        struct dirent *de;
        int seen = 0, df = 0, plain = 0;
        char *cur = xasprintf("%s/cur", root);

        d = opendir(cur);
        while ((de = readdir(d)) != NULL) {
            size_t l = strlen(de->d_name);

            if (de->d_name[0] == '.')
                continue;
            if (l > 4 && strcmp(de->d_name + l - 4, ":2,S") == 0) {
                struct buf f = BUF_INIT;

                seen++;
                path = xasprintf("%s/%s", cur, de->d_name);
                assert_int_equal(file_read_all(path, &f, 1000), 0);
                assert_string_equal(f.data, "From: a@example.org\nSubject: "
                                            "one\n\nbody one\n");
                buf_free(&f);
                free(path);
            } else if (l > 5 && strcmp(de->d_name + l - 5, ":2,DF") == 0) {
                df++;
            } else if (l > 3 && strcmp(de->d_name + l - 3, ":2,") == 0) {
                plain++;
            }
        }
        closedir(d);
        free(cur);
        assert_int_equal(seen, 1);
        assert_int_equal(df, 1);
        assert_int_equal(plain, 1);
    }
    assert_int_equal(imap_mailbox_msg_size(mb, 1, &size, err, sizeof(err)), 0);
    assert_int_equal(size, strlen(msg1));
    buf_reset(&b);
    assert_int_equal(imap_mailbox_msg_envelope(mb, 2, &b, err, sizeof(err)), 0);
    assert_string_equal(b.data, "(NIL \"two\" ((NIL NIL \"b\" \"example.org\")) "
                                "((NIL NIL \"b\" \"example.org\")) ((NIL NIL \"b\" "
                                "\"example.org\")) NIL NIL NIL NIL NIL)");
    buf_reset(&b);
    assert_int_equal(imap_mailbox_msg_bodystructure(mb, 2, true, &b, err,
                                                    sizeof(err)), 0);
    assert_string_equal(b.data, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") "
                                "NIL NIL \"7bit\" 10 1 NIL NIL NIL NIL)");
    /* Unknown mailbox. */
    {
        struct imap_append a = {msg1, strlen(msg1), 0, NULL, 0, 0};
        uint32_t uv, uid;
        int status;

        assert_int_equal(imap_store_append(st, "Nope", &a, &uv, &uid, err,
                                           sizeof(err)),
                         IMAP_STORE_NONEXISTENT);
        assert_null(imap_mailbox_open(st, "Nope", 0, &status, err, sizeof(err)));
        assert_int_equal(status, IMAP_STORE_NONEXISTENT);
        assert_null(imap_mailbox_open(st, "a..b", 0, &status, err, sizeof(err)));
        assert_int_equal(status, IMAP_STORE_BADNAME);
    }
    buf_free(&b);
    imap_mailbox_close(mb);
    imap_store_close(st);
}

static void test_flags_and_keywords(void **state)
{
    struct imap_store *st = store();
    struct imap_mailbox *a, *b;
    struct imap_sync s;
    unsigned kw;
    uint32_t seqs[] = {1, 2};
    uint32_t *modified;
    size_t n_modified;

    append(st, "INBOX", msg1, 0);
    append(st, "INBOX", msg2, 0);
    a = open_box(st, "INBOX", 0);
    b = open_box(st, "INBOX", 0);
    assert_int_equal(imap_mailbox_store_flags(a, seqs, 1, IMAP_FLAGS_ADD,
                                              IMAP_FLAG_FLAGGED | IMAP_FLAG_SEEN,
                                              0, 0, NULL, NULL, err, sizeof(err)),
                     0);
    assert_int_equal(imap_mailbox_msg(a, 1)->flags & IMAP_FLAGS_STORED,
                     IMAP_FLAG_FLAGGED | IMAP_FLAG_SEEN);
    {
        char *cur = xasprintf("%s/cur", root);
        DIR *d = opendir(cur);
        struct dirent *de;
        int fs = 0;

        while ((de = readdir(d)) != NULL)
            if (strstr(de->d_name, ":2,FS"))
                fs++;
        closedir(d);
        free(cur);
        assert_int_equal(fs, 1);
    }
    /* The other session hears about it; the first does not hear its own. */
    assert_int_equal(imap_mailbox_sync(b, 0, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n_changed, 1);
    assert_int_equal(s.changed_seqs[0], 1);
    assert_int_equal(imap_mailbox_msg(b, 1)->flags & IMAP_FLAGS_STORED,
                     IMAP_FLAG_FLAGGED | IMAP_FLAG_SEEN);
    imap_sync_free(&s);
    assert_int_equal(imap_mailbox_sync(a, 0, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n_changed, 0);
    imap_sync_free(&s);

    /* Keywords live in the index. */
    assert_int_equal(imap_mailbox_keyword_index(a, "$Junk", false, &kw, err,
                                                sizeof(err)),
                     IMAP_STORE_NONEXISTENT);
    assert_int_equal(imap_mailbox_keyword_index(a, "$Junk", true, &kw, err,
                                                sizeof(err)), 0);
    assert_int_equal(kw, 0);
    assert_int_equal(imap_mailbox_keyword_index(a, "$junk", false, &kw, err,
                                                sizeof(err)), 0);
    assert_int_equal(imap_mailbox_keyword_index(a, "bad(kw", true, &kw, err,
                                                sizeof(err)),
                     IMAP_STORE_BADNAME);
    assert_int_equal(imap_mailbox_store_flags(a, seqs, 2, IMAP_FLAGS_ADD, 0, 1,
                                              0, NULL, NULL, err, sizeof(err)),
                     0);
    assert_int_equal(imap_mailbox_sync(b, 0, &s, err, sizeof(err)), 0);
    assert_true(s.keywords_changed);
    assert_int_equal(s.n_changed, 2);
    assert_string_equal(imap_mailbox_keyword(b, 0), "$Junk");
    assert_int_equal(imap_mailbox_msg(b, 2)->keywords, 1);
    imap_sync_free(&s);

    /* CONDSTORE UNCHANGEDSINCE: message 1 changed after its modseq. */
    {
        uint64_t old = imap_mailbox_msg(b, 1)->modseq;

        if (imap_mailbox_msg(b, 2)->modseq > old)
            old = imap_mailbox_msg(b, 2)->modseq;

        assert_int_equal(imap_mailbox_store_flags(a, seqs, 1, IMAP_FLAGS_REMOVE,
                                                  IMAP_FLAG_SEEN, 0, 0, NULL,
                                                  NULL, err, sizeof(err)), 0);
        assert_int_equal(imap_mailbox_store_flags(
                             b, seqs, 2, IMAP_FLAGS_REPLACE, IMAP_FLAG_ANSWERED,
                             0, old, &modified, &n_modified, err, sizeof(err)),
                         0);
        assert_int_equal(n_modified, 1);
        assert_int_equal(modified[0], 1);
        free(modified);
        assert_int_equal(imap_mailbox_msg(b, 2)->flags & IMAP_FLAGS_STORED,
                         IMAP_FLAG_ANSWERED);
    }
    /* A read-only view cannot store. */
    {
        struct imap_mailbox *ro = open_box(st, "INBOX", IMAP_OPEN_READONLY);

        assert_int_equal(imap_mailbox_store_flags(ro, seqs, 1, IMAP_FLAGS_ADD,
                                                  IMAP_FLAG_SEEN, 0, 0, NULL,
                                                  NULL, err, sizeof(err)),
                         IMAP_STORE_CANNOT);
        imap_mailbox_close(ro);
    }
    imap_mailbox_close(a);
    imap_mailbox_close(b);
    imap_store_close(st);
}

/* What mutt, `local` and a shell do behind our back. */
static void test_external_changes(void **state)
{
    struct imap_store *st = store();
    struct imap_mailbox *mb;
    struct imap_sync s;
    char *name, *from, *to;

    append(st, "INBOX", msg1, 0);
    append(st, "INBOX", msg2, 0);
    mb = open_box(st, "INBOX", 0);
    assert_int_equal(imap_mailbox_count(mb), 2);

    /* Flag change by renaming (mutt marks message 1 read). */
    {
        const struct imap_msg *m = imap_mailbox_msg(mb, 1);
        struct imap_rec r;

        assert_int_equal(load_rec(mb, m->uid, &r, err, sizeof(err)), 0);
        from = xasprintf("%s/cur/%s:2,", root, r.base);
        to = xasprintf("%s/cur/%s:2,RS", root, r.base);
        imap_rec_free(&r);
    }
    assert_int_equal(rename(from, to), 0);
    free(from);
    free(to);
    mb->mtimes_valid = false; /* the rename may fall in the same tick */
    assert_int_equal(imap_mailbox_sync(mb, 0, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n_changed, 1);
    assert_int_equal(imap_mailbox_msg(mb, 1)->flags & IMAP_FLAGS_STORED,
                     IMAP_FLAG_SEEN | IMAP_FLAG_ANSWERED);
    imap_sync_free(&s);

    /* A delivery into new/ (as `local` does): next UID, \Recent. */
    {
        char *p = xasprintf("%s/new/1700000000.M1P1.host,S=20", root);

        write_file(p, "Subject: new\n\nnew mail\n");
        free(p);
    }
    mb->mtimes_valid = false;
    assert_int_equal(imap_mailbox_sync(mb, 0, &s, err, sizeof(err)), 0);
    assert_true(s.exists_changed);
    assert_true(s.recent_changed);
    assert_int_equal(imap_mailbox_count(mb), 3);
    assert_int_equal(imap_mailbox_msg(mb, 3)->uid, 3);
    assert_true(imap_mailbox_msg(mb, 3)->flags & IMAP_FLAG_RECENT);
    /* A writable session moved it to cur/ with an empty info. */
    name = find_file(root, "new", "");
    assert_null(name);
    name = find_file(root, "cur", "1700000000.M1P1.host,S=20");
    assert_string_equal(name, "1700000000.M1P1.host,S=20:2,");
    free(name);
    imap_sync_free(&s);

    /* Someone deletes message 2's file: expunged, reported when allowed. */
    {
        struct imap_rec r;
        struct buf p = BUF_INIT;

        assert_int_equal(load_rec(mb, 2, &r, err, sizeof(err)), 0);
        imap_maildir_path(&p, root, &r);
        assert_int_equal(unlink(p.data), 0);
        buf_free(&p);
        imap_rec_free(&r);
    }
    mb->mtimes_valid = false;
    assert_int_equal(imap_mailbox_sync(mb, 0, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n_expunged, 0);
    assert_int_equal(imap_mailbox_count(mb), 3);
    assert_true(imap_mailbox_msg(mb, 2)->expunged);
    imap_sync_free(&s);
    {
        struct buf b = BUF_INIT;

        assert_int_equal(imap_mailbox_msg_read(mb, 2, &b, err, sizeof(err)),
                         IMAP_STORE_EXPUNGED);
        buf_free(&b);
    }
    assert_int_equal(imap_mailbox_sync(mb, IMAP_SYNC_EXPUNGE, &s, err,
                                       sizeof(err)), 0);
    assert_int_equal(s.n_expunged, 1);
    assert_int_equal(s.expunged_seqs[0], 2);
    assert_int_equal(s.expunged_uids[0], 2);
    assert_int_equal(imap_mailbox_count(mb), 2);
    assert_int_equal(imap_mailbox_msg(mb, 2)->uid, 3);
    imap_sync_free(&s);

    /* A renamed file is still readable (path found again). */
    {
        struct imap_rec r;
        struct buf b = BUF_INIT;

        assert_int_equal(load_rec(mb, 3, &r, err, sizeof(err)), 0);
        from = xasprintf("%s/cur/%s:2,", root, r.base);
        to = xasprintf("%s/cur/%s:2,T", root, r.base);
        assert_int_equal(rename(from, to), 0);
        imap_rec_free(&r);
        assert_int_equal(imap_mailbox_msg_read(mb, 2, &b, err, sizeof(err)), 0);
        assert_string_equal(b.data, "Subject: new\r\n\r\nnew mail\r\n");
        buf_free(&b);
        free(from);
        free(to);
    }
    imap_mailbox_close(mb);
    imap_store_close(st);
}

static void test_index_rebuild(void **state)
{
    struct imap_store *st = store();
    struct imap_mailbox *mb;
    uint32_t uv;
    char *p;

    append(st, "INBOX", msg1, IMAP_FLAG_SEEN);
    append(st, "INBOX", msg2, IMAP_FLAG_FLAGGED);
    mb = open_box(st, "INBOX", 0);
    uv = imap_mailbox_uidvalidity(mb);
    imap_mailbox_close(mb);

    /* Lost index: rebuilt from the files, new UIDVALIDITY, same flags. */
    p = xasprintf("%s/%s", root, IMAP_INDEX_FILE);
    assert_int_equal(unlink(p), 0);
    mb = open_box(st, "INBOX", 0);
    assert_true(imap_mailbox_uidvalidity(mb) != uv);
    assert_true(imap_mailbox_uidvalidity(mb) > uv);
    assert_int_equal(imap_mailbox_count(mb), 2);
    {
        unsigned f1 = imap_mailbox_msg(mb, 1)->flags & IMAP_FLAGS_STORED;
        unsigned f2 = imap_mailbox_msg(mb, 2)->flags & IMAP_FLAGS_STORED;

        assert_int_equal(f1 | f2, IMAP_FLAG_SEEN | IMAP_FLAG_FLAGGED);
        assert_int_equal(f1 & f2, 0);
    }
    uv = imap_mailbox_uidvalidity(mb);
    imap_mailbox_close(mb);

    /* A damaged index file: the same. */
    write_file(p, "this is not an LMDB file, not at all, no; padding padding "
                  "padding padding padding padding padding padding padding\n");
    mb = open_box(st, "INBOX", 0);
    assert_true(imap_mailbox_uidvalidity(mb) > uv);
    assert_int_equal(imap_mailbox_count(mb), 2);

    /* An index replaced under an open session: that session is over. */
    {
        struct imap_sync s;
        struct imap_mailbox *other;

        unlink(p);
        other = open_box(st, "INBOX", 0); /* builds a new one */
        assert_int_equal(imap_mailbox_sync(mb, 0, &s, err, sizeof(err)),
                         IMAP_STORE_GONE);
        assert_true(s.gone);
        imap_sync_free(&s);
        imap_mailbox_close(other);
    }
    imap_mailbox_close(mb);
    free(p);
    imap_store_close(st);
}

/* Set dir's mtime to t seconds ago. */
static void age_dir(const char *sub, time_t t)
{
    char *p = xasprintf("%s/%s", root, sub);
    struct timespec ts[2] = {{time(NULL) - t, 0}, {time(NULL) - t, 0}};

    assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
    free(p);
}

/*
 * The SEARCH block comes from the index cache, and a cache record
 * written before the block existed is completed on demand.
 */
static void test_search_cache(void **state)
{
    struct imap_store *st = store();
    struct imap_mailbox *mb;
    struct imap_cache c;
    struct buf b = BUF_INIT, env = BUF_INIT;
    const char *v;
    size_t vlen, count;
    MDB_txn *txn;

    append(st, "INBOX", msg1, 0);
    append(st, "INBOX", msg2, 0);
    mb = open_box(st, "INBOX", 0);
    assert_int_equal(imap_mailbox_msg_search_cache(mb, 2, &b, err, sizeof(err)),
                     0);
    assert_int_equal(imap_mime_search_cached_header(b.data, b.len, "from", &v,
                                                    &vlen, &count),
                     1);
    assert_int_equal(count, 1);
    assert_int_equal(vlen, strlen("b@example.org"));
    assert_memory_equal(v, "b@example.org", vlen);
    buf_reset(&b);

    /* An old-style record: size, ENVELOPE, BODY, BODYSTRUCTURE only. */
    memset(&c, 0, sizeof(c));
    c.size = 7;
    buf_puts(&c.envelope, "(\"old\")");
    assert_int_equal(imap_index_begin(mb->ix, true, &txn, err, sizeof(err)), 0);
    assert_int_equal(imap_index_cache_put(mb->ix, txn, 1, &c), 0);
    assert_int_equal(imap_index_commit(mb->ix, txn, err, sizeof(err)), 0);
    buf_free(&c.envelope);
    assert_int_equal(imap_mailbox_msg_envelope(mb, 1, &env, err, sizeof(err)), 0);
    assert_string_equal(env.data, "(\"old\")"); /* still read as it is */
    assert_int_equal(imap_mailbox_msg_search_cache(mb, 1, &b, err, sizeof(err)),
                     0);
    assert_int_equal(imap_mime_search_cached_header(b.data, b.len, "subject",
                                                    &v, &vlen, &count),
                     1);
    assert_memory_equal(v, "one", 3);
    /* ... and the record now has it all, computed from the message,
     * served from the batch until the batch is written (at the sync
     * that ends every command). */
    buf_reset(&env);
    assert_int_equal(mb->n_pending, 2); /* messages 2 and 1 */
    assert_int_equal(imap_mailbox_msg_envelope(mb, 1, &env, err, sizeof(err)), 0);
    assert_non_null(strstr(env.data, "\"one\""));
    {
        struct imap_sync sy;

        assert_int_equal(imap_mailbox_sync(mb, 0, &sy, err, sizeof(err)), 0);
        imap_sync_free(&sy);
    }
    assert_int_equal(mb->n_pending, 0);
    memset(&c, 0, sizeof(c));
    assert_int_equal(imap_index_begin(mb->ix, false, &txn, err, sizeof(err)), 0);
    assert_int_equal(imap_index_cache_get(mb->ix, txn, 1, IMAP_CACHE_SEARCH, &c),
                     0);
    mdb_txn_abort(txn);
    assert_int_equal(c.search.len, b.len);
    assert_int_equal(c.size, strlen(msg1));
    buf_free(&c.search);
    buf_free(&b);
    buf_free(&env);
    imap_mailbox_close(mb);
    imap_store_close(st);
}

/* Cache entries are written a batch at a time, and all of them. */
static void test_cache_batches(void **state)
{
    struct imap_store *st = store();
    struct imap_mailbox *mb;
    struct buf b = BUF_INIT;
    MDB_txn *txn;
    uint32_t n = IMAP_CACHE_BATCH + 10;

    for (uint32_t i = 0; i < n; i++)
        append(st, "INBOX", i % 2 ? msg1 : msg2, 0);
    mb = open_box(st, "INBOX", 0);
    for (uint32_t seq = 1; seq <= n; seq++) {
        buf_reset(&b);
        assert_int_equal(imap_mailbox_msg_envelope(mb, seq, &b, err,
                                                   sizeof(err)),
                         0);
        assert_non_null(strstr(b.data, seq % 2 ? "\"two\"" : "\"one\""));
        assert_true(mb->n_pending <= IMAP_CACHE_BATCH);
    }
    assert_int_equal(mb->n_pending, 10); /* the first batch is written */
    imap_mailbox_close(mb);               /* ... and the rest */
    mb = open_box(st, "INBOX", 0);
    assert_int_equal(imap_index_begin(mb->ix, false, &txn, err, sizeof(err)), 0);
    for (uint32_t uid = 1; uid <= n; uid++) {
        struct imap_cache c;

        memset(&c, 0, sizeof(c));
        assert_int_equal(imap_index_cache_get(mb->ix, txn, uid,
                                              IMAP_CACHE_ENVELOPE, &c),
                         0);
        assert_true(c.envelope.len > 0);
        buf_free(&c.envelope);
    }
    mdb_txn_abort(txn);
    buf_free(&b);
    imap_mailbox_close(mb);
    imap_store_close(st);
}

/*
 * A new view of a mailbox whose directories have not changed since the
 * index's last complete scan does not read them; any change does.
 */
static void test_scan_skip(void **state)
{
    struct imap_store *st = store();
    struct imap_mailbox *mb;
    struct timespec t[2];
    struct stat sn, sc;
    MDB_txn *txn;
    char *p, *cur = xasprintf("%s/cur", root), *nw = xasprintf("%s/new", root);

    append(st, "INBOX", msg1, 0);
    age_dir("new", 10);
    age_dir("cur", 10);
    mb = open_box(st, "INBOX", 0); /* scans, records the mtimes */
    assert_int_equal(imap_mailbox_count(mb), 1);
    assert_int_equal(stat(nw, &sn), 0);
    assert_int_equal(stat(cur, &sc), 0);
    assert_int_equal(imap_index_begin(mb->ix, false, &txn, err, sizeof(err)), 0);
    assert_int_equal(imap_index_dirtimes_get(mb->ix, txn, t), 0);
    mdb_txn_abort(txn);
    assert_true(same_time(&t[0], &sn.st_mtim) && same_time(&t[1], &sc.st_mtim));
    imap_mailbox_close(mb);

    /* A file slipped in with the mtimes put back: not looked for. */
    p = xasprintf("%s/cur/1700000000.M2P2.host,S=20:2,", root);
    write_file(p, "Subject: sneaky\n\nx\n");
    {
        struct timespec back[2] = {sc.st_mtim, sc.st_mtim};

        assert_int_equal(utimensat(AT_FDCWD, cur, back, 0), 0);
    }
    mb = open_box(st, "INBOX", 0);
    assert_int_equal(imap_mailbox_count(mb), 1);
    imap_mailbox_close(mb);

    /* A read-only view does not record: EXAMINE leaves new/ alone. */
    age_dir("cur", 5);
    mb = open_box(st, "INBOX", IMAP_OPEN_READONLY);
    assert_int_equal(imap_mailbox_count(mb), 2);
    assert_int_equal(imap_index_begin(mb->ix, false, &txn, err, sizeof(err)), 0);
    assert_int_equal(imap_index_dirtimes_get(mb->ix, txn, t), 0);
    mdb_txn_abort(txn);
    assert_true(same_time(&t[1], &sc.st_mtim)); /* still the old one */
    imap_mailbox_close(mb);

    /* A delivery moves new/'s mtime on: the next view sees it. */
    free(p);
    p = xasprintf("%s/new/1700000001.M3P3.host,S=20", root);
    write_file(p, "Subject: new\n\nx\n");
    mb = open_box(st, "INBOX", 0);
    assert_int_equal(imap_mailbox_count(mb), 3);
    imap_mailbox_close(mb);
    free(p);
    free(cur);
    free(nw);
    imap_store_close(st);
}

/* A closed mailbox's index stays open for the next session, not past a
 * replacement of the file, and not for a hibernating view. */
static void test_index_keep(void **state)
{
    struct imap_store *st = store();
    struct imap_mailbox *mb;
    struct imap_index *ix;
    struct imap_sync s;
    char *p = xasprintf("%s/%s", root, IMAP_INDEX_FILE);

    append(st, "INBOX", msg1, 0);
    imap_store_expire(0);
    mb = open_box(st, "INBOX", 0);
    ix = mb->ix;
    imap_mailbox_close(mb);
    assert_int_equal(index_unused, 1);
    mb = open_box(st, "INBOX", 0);
    assert_ptr_equal(mb->ix, ix);
    assert_int_equal(index_unused, 0);

    /* Hibernation lets go at once. */
    imap_mailbox_hibernate(mb);
    assert_int_equal(index_unused, 0);
    assert_null(index_list);
    assert_int_equal(imap_mailbox_sync(mb, 0, &s, err, sizeof(err)), 0);
    imap_sync_free(&s);
    imap_mailbox_close(mb);
    assert_int_equal(index_unused, 1);

    /* Not yet expired; then expired. */
    imap_store_expire(time(NULL));
    assert_int_equal(index_unused, 1);
    imap_store_expire(time(NULL) + IMAP_INDEX_KEEP_SECS);
    assert_int_equal(index_unused, 0);
    assert_null(index_list);

    /* The file removed while kept: a new index, new UIDVALIDITY. */
    mb = open_box(st, "INBOX", 0);
    {
        uint32_t uv = imap_mailbox_uidvalidity(mb);

        imap_mailbox_close(mb);
        assert_int_equal(unlink(p), 0);
        mb = open_box(st, "INBOX", 0);
        assert_true(imap_mailbox_uidvalidity(mb) > uv);
        assert_int_equal(imap_mailbox_count(mb), 1);
        imap_mailbox_close(mb);
    }

    /* At most IMAP_INDEX_KEEP_MAX are kept. */
    for (int i = 0; i < IMAP_INDEX_KEEP_MAX + 3; i++) {
        char name[32];

        snprintf(name, sizeof(name), "f%d", i);
        assert_int_equal(imap_store_create(st, name, err, sizeof(err)), 0);
        imap_mailbox_close(open_box(st, name, 0));
        assert_true(index_unused <= IMAP_INDEX_KEEP_MAX);
    }
    assert_int_equal(index_unused, IMAP_INDEX_KEEP_MAX);
    free(p);
    imap_store_close(st);
}

static void test_expunge(void **state)
{
    struct imap_store *st = store();
    struct imap_mailbox *mb, *other;
    struct imap_sync s;
    uint32_t seqs[] = {1, 3}, uid3 = 3;

    for (int i = 0; i < 4; i++)
        append(st, "INBOX", msg1, 0);
    mb = open_box(st, "INBOX", 0);
    other = open_box(st, "INBOX", 0);
    assert_int_equal(imap_mailbox_store_flags(mb, seqs, 2, IMAP_FLAGS_ADD,
                                              IMAP_FLAG_DELETED, 0, 0, NULL,
                                              NULL, err, sizeof(err)), 0);
    /* UID EXPUNGE 3 first: only that one goes. */
    assert_int_equal(imap_mailbox_expunge(mb, &uid3, 1, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n_expunged, 1);
    assert_int_equal(s.expunged_seqs[0], 3);
    imap_sync_free(&s);
    assert_int_equal(imap_mailbox_expunge(mb, NULL, 0, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n_expunged, 1);
    assert_int_equal(s.expunged_seqs[0], 1);
    assert_int_equal(imap_mailbox_count(mb), 2);
    assert_int_equal(imap_mailbox_msg(mb, 1)->uid, 2);
    imap_sync_free(&s);
    /* The other session: both, descending, in its own numbering. */
    assert_int_equal(imap_mailbox_sync(other, IMAP_SYNC_EXPUNGE, &s, err,
                                       sizeof(err)), 0);
    assert_int_equal(s.n_expunged, 2);
    assert_int_equal(s.expunged_seqs[0], 3);
    assert_int_equal(s.expunged_seqs[1], 1);
    imap_sync_free(&s);
    {
        char *cur = xasprintf("%s/cur", root);
        DIR *d = opendir(cur);
        struct dirent *de;
        int n = 0;

        while ((de = readdir(d)) != NULL)
            n += de->d_name[0] != '.';
        closedir(d);
        free(cur);
        assert_int_equal(n, 2);
    }
    imap_mailbox_close(other);
    imap_mailbox_close(mb);
    imap_store_close(st);
}

static void test_recent(void **state)
{
    struct imap_store *st = store();
    struct imap_mailbox *a, *b, *ro;
    struct imap_status status;

    append(st, "INBOX", msg1, 0);
    assert_int_equal(imap_store_status(st, "INBOX", &status, err, sizeof(err)), 0);
    assert_int_equal(status.messages, 1);
    assert_int_equal(status.recent, 1);
    assert_int_equal(status.unseen, 1);
    assert_int_equal(status.uidnext, 2);
    ro = open_box(st, "INBOX", IMAP_OPEN_READONLY);
    assert_int_equal(imap_mailbox_recent(ro), 1); /* EXAMINE does not claim */
    a = open_box(st, "INBOX", 0);
    assert_int_equal(imap_mailbox_recent(a), 1);
    b = open_box(st, "INBOX", 0);
    assert_int_equal(imap_mailbox_recent(b), 0);
    assert_int_equal(imap_store_status(st, "INBOX", &status, err, sizeof(err)), 0);
    assert_int_equal(status.recent, 0);
    imap_mailbox_close(ro);
    imap_mailbox_close(a);
    imap_mailbox_close(b);
    imap_store_close(st);
}

static void test_copy_move(void **state)
{
    struct imap_store *st = store();
    struct imap_mailbox *mb, *dst;
    struct imap_copy_result res;
    struct imap_sync s;
    struct buf b = BUF_INIT;
    uint32_t seqs[] = {1, 2}, one = 1;
    unsigned kw;

    append(st, "INBOX", msg1, IMAP_FLAG_SEEN);
    append(st, "INBOX", msg2, 0);
    append(st, "INBOX", msg3, 0);
    assert_int_equal(imap_store_create(st, "Archive.2024", err, sizeof(err)), 0);
    mb = open_box(st, "INBOX", 0);
    assert_int_equal(imap_mailbox_keyword_index(mb, "work", true, &kw, err,
                                                sizeof(err)), 0);
    assert_int_equal(imap_mailbox_store_flags(mb, &one, 1, IMAP_FLAGS_ADD, 0,
                                              (uint64_t)1 << kw, 0, NULL, NULL,
                                              err, sizeof(err)), 0);
    assert_int_equal(imap_mailbox_copy(mb, seqs, 2, "Archive.2024", false, &res,
                                       NULL, err, sizeof(err)), 0);
    assert_int_equal(res.n, 2);
    assert_int_equal(res.src_uids[0], 1);
    assert_int_equal(res.dst_uids[0], 1);
    assert_int_equal(res.dst_uids[1], 2);
    imap_copy_result_free(&res);
    dst = open_box(st, "Archive.2024", 0);
    assert_int_equal(imap_mailbox_count(dst), 2);
    assert_int_equal(imap_mailbox_msg(dst, 1)->flags & IMAP_FLAGS_STORED,
                     IMAP_FLAG_SEEN);
    assert_string_equal(imap_mailbox_keyword(dst, 0), "work");
    assert_int_equal(imap_mailbox_msg(dst, 1)->keywords, 1);
    assert_int_equal(imap_mailbox_msg(dst, 1)->internaldate,
                     imap_mailbox_msg(mb, 1)->internaldate);
    assert_int_equal(imap_mailbox_msg_read(dst, 2, &b, err, sizeof(err)), 0);
    assert_string_equal(b.data, msg2);
    imap_mailbox_close(dst);

    /* MOVE: copied, then gone here with EXPUNGE data. */
    assert_int_equal(imap_mailbox_copy(mb, seqs + 1, 1, "Archive.2024", true,
                                       &res, &s, err, sizeof(err)), 0);
    assert_int_equal(res.n, 1);
    assert_int_equal(res.src_uids[0], 2);
    assert_int_equal(res.dst_uids[0], 3);
    assert_int_equal(s.n_expunged, 1);
    assert_int_equal(s.expunged_seqs[0], 2);
    assert_int_equal(imap_mailbox_count(mb), 2);
    imap_copy_result_free(&res);
    imap_sync_free(&s);
    /* Errors: no such mailbox. */
    assert_int_equal(imap_mailbox_copy(mb, seqs, 1, "Nope", false, &res, NULL,
                                       err, sizeof(err)),
                     IMAP_STORE_NONEXISTENT);
    buf_free(&b);
    imap_mailbox_close(mb);
    imap_store_close(st);
}

static unsigned attrs_of(const struct imap_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].name, name) == 0)
            return l->v[i].attrs;
    return 0xffffffff;
}

static void test_folders(void **state)
{
    struct imap_store *st = store();
    struct imap_list l;
    struct buf b = BUF_INIT;
    char *p;

    assert_int_equal(imap_store_ensure_special(st, err, sizeof(err)), 0);
    assert_int_equal(imap_store_create(st, "A.B.C", err, sizeof(err)), 0);
    assert_int_equal(imap_store_create(st, "A.B", err, sizeof(err)),
                     IMAP_STORE_EXISTS);
    assert_int_equal(imap_store_create(st, "inbox", err, sizeof(err)),
                     IMAP_STORE_EXISTS);
    assert_int_equal(imap_store_create(st, "bad..name", err, sizeof(err)),
                     IMAP_STORE_BADNAME);
    assert_int_equal(imap_store_create(st, "../escape", err, sizeof(err)),
                     IMAP_STORE_BADNAME);
    assert_int_equal(imap_store_create(st, "x/y", err, sizeof(err)),
                     IMAP_STORE_BADNAME);
    assert_int_equal(imap_store_create(st, "Entw&APw-rfe", err, sizeof(err)), 0);
    assert_int_equal(imap_store_create(st, "Entw\xc3\xbcrfe", err, sizeof(err)),
                     IMAP_STORE_BADNAME);
    p = xasprintf("%s/.A.B.C/maildirfolder", root);
    assert_int_equal(access(p, F_OK), 0);
    free(p);

    assert_int_equal(imap_store_list(st, false, &l, err, sizeof(err)), 0);
    assert_string_equal(l.v[0].name, "INBOX");
    assert_int_equal(attrs_of(&l, "A"), IMAP_LIST_HASCHILDREN);
    assert_int_equal(attrs_of(&l, "A.B.C"), IMAP_LIST_HASNOCHILDREN);
    assert_int_equal(attrs_of(&l, "Sent"), IMAP_LIST_HASNOCHILDREN |
                                               IMAP_LIST_SUBSCRIBED |
                                               IMAP_LIST_SENT);
    assert_int_equal(attrs_of(&l, "Trash") & IMAP_LIST_SPECIAL_USE,
                     IMAP_LIST_TRASH);
    imap_list_attrs_format(attrs_of(&l, "Drafts"), &b);
    assert_string_equal(b.data, "\\HasNoChildren \\Subscribed \\Drafts");
    imap_list_free(&l);

    /* A level made by another tool without its parent: \Noselect. */
    p = xasprintf("%s/.X.Y", root);
    assert_int_equal(maildir_create(p, err, sizeof(err)), 0);
    free(p);
    assert_int_equal(imap_store_list(st, false, &l, err, sizeof(err)), 0);
    assert_int_equal(attrs_of(&l, "X"), IMAP_LIST_NOSELECT | IMAP_LIST_HASCHILDREN);
    imap_list_free(&l);

    /* Rename with children; subscriptions follow. */
    assert_int_equal(imap_store_subscribe(st, "A.B", true, err, sizeof(err)), 0);
    assert_int_equal(imap_store_rename(st, "A", "Z", err, sizeof(err)), 0);
    assert_true(imap_store_mailbox_exists(st, "Z.B.C"));
    assert_false(imap_store_mailbox_exists(st, "A.B"));
    assert_int_equal(imap_store_rename(st, "Nope", "Q", err, sizeof(err)),
                     IMAP_STORE_NONEXISTENT);
    assert_int_equal(imap_store_rename(st, "Z", "Sent", err, sizeof(err)),
                     IMAP_STORE_EXISTS);
    assert_int_equal(imap_store_rename(st, "Z", "Z.B.Q", err, sizeof(err)),
                     IMAP_STORE_CANNOT);
    assert_int_equal(imap_store_list(st, true, &l, err, sizeof(err)), 0);
    assert_int_equal(attrs_of(&l, "Z.B"), IMAP_LIST_SUBSCRIBED |
                                              IMAP_LIST_HASCHILDREN);
    assert_int_equal(attrs_of(&l, "A.B"), 0xffffffff);
    imap_list_free(&l);

    /* Delete: not INBOX, not with children, then fine. */
    assert_int_equal(imap_store_delete(st, "INBOX", err, sizeof(err)),
                     IMAP_STORE_CANNOT);
    assert_int_equal(imap_store_delete(st, "Z.B", err, sizeof(err)),
                     IMAP_STORE_CANNOT);
    assert_int_equal(imap_store_delete(st, "Z.B.C", err, sizeof(err)), 0);
    assert_int_equal(imap_store_delete(st, "Z.B.C", err, sizeof(err)),
                     IMAP_STORE_NONEXISTENT);
    assert_false(imap_store_mailbox_exists(st, "Z.B.C"));
    /* The subscription of a deleted folder stays, marked \NonExistent. */
    assert_int_equal(imap_store_subscribe(st, "Z.B.C", true, err, sizeof(err)), 0);
    assert_int_equal(imap_store_list(st, true, &l, err, sizeof(err)), 0);
    assert_true(attrs_of(&l, "Z.B.C") & IMAP_LIST_NONEXISTENT);
    imap_list_free(&l);

    /* RENAME INBOX moves the messages, INBOX stays (empty). */
    append(st, "INBOX", msg1, 0);
    assert_int_equal(imap_store_rename(st, "INBOX", "Old", err, sizeof(err)), 0);
    {
        struct imap_status s;

        assert_int_equal(imap_store_status(st, "Old", &s, err, sizeof(err)), 0);
        assert_int_equal(s.messages, 1);
        assert_int_equal(imap_store_status(st, "INBOX", &s, err, sizeof(err)), 0);
        assert_int_equal(s.messages, 0);
    }
    buf_free(&b);
    imap_store_close(st);
}

static void test_names(void **state)
{
    struct buf b = BUF_INIT;

    assert_int_equal(imap_mutf7_to_utf8("Entw&APw-rfe", &b), 0);
    assert_string_equal(b.data, "Entw\xc3\xbcrfe");
    buf_reset(&b);
    assert_int_equal(imap_utf8_to_mutf7("Entw\xc3\xbcrfe & \xe6\x97\xa5\xe6\x9c\xac", &b), 0);
    assert_string_equal(b.data, "Entw&APw-rfe &- &ZeVnLA-");
    buf_reset(&b);
    assert_int_equal(imap_mutf7_to_utf8("&ZeVnLA-", &b), 0);
    assert_string_equal(b.data, "\xe6\x97\xa5\xe6\x9c\xac");
    buf_reset(&b);
    assert_int_equal(imap_mutf7_to_utf8("&AGE-", &b), -1); /* "a" encoded */
    assert_int_equal(imap_mutf7_to_utf8("&APw", &b), -1);  /* unterminated */
    assert_int_equal(imap_mutf7_to_utf8("&-", &b), 0);
    assert_true(imap_mailbox_name_valid("INBOX.Sub"));
    assert_false(imap_mailbox_name_valid(".hidden"));
    assert_false(imap_mailbox_name_valid("a."));
    assert_false(imap_mailbox_name_valid("a*"));
    assert_false(imap_mailbox_name_valid(""));
    {
        char long_name[IMAP_MAILBOX_NAME_MAX + 2];

        memset(long_name, 'a', sizeof(long_name) - 1);
        long_name[sizeof(long_name) - 1] = 0;
        assert_false(imap_mailbox_name_valid(long_name));
        long_name[IMAP_MAILBOX_NAME_MAX] = 0;
        assert_true(imap_mailbox_name_valid(long_name));
    }
    assert_true(imap_list_match("*", "A.B"));
    assert_true(imap_list_match("%", "A"));
    assert_false(imap_list_match("%", "A.B"));
    assert_true(imap_list_match("A.%", "A.B"));
    assert_true(imap_list_match("inbox", "INBOX"));
    assert_true(imap_list_match("inbox.*", "INBOX.x"));
    assert_false(imap_list_match("A", "AB"));
    buf_free(&b);
}

/* Another process delivers while this one syncs: all arrive, in order. */
static void test_concurrent_delivery(void **state)
{
    struct imap_store *st = store();
    struct imap_mailbox *mb;
    struct imap_sync s;
    pid_t pid;
    int wstatus, rounds = 0;

    append(st, "INBOX", msg1, 0);
    mb = open_box(st, "INBOX", 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Half through `local`'s Maildir writer, half through APPEND. */
        struct imap_store *cst = imap_store_open(root, err, sizeof(err));

        for (int i = 0; i < 40; i++) {
            if (i % 2 == 0) {
                struct maildir_writer *w = maildir_writer_open(root, err,
                                                               sizeof(err));

                if (w == NULL || maildir_writer_write(w, "Subject: d\n\nx\n", 14) < 0 ||
                    maildir_writer_commit(w, MAILDIR_NEW, NULL, NULL, err,
                                          sizeof(err)) < 0)
                    _exit(1);
            } else {
                struct imap_append a = {msg2, strlen(msg2), 0, NULL, 0, 0};
                uint32_t uv, uid;

                if (imap_store_append(cst, "INBOX", &a, &uv, &uid, err,
                                      sizeof(err)) != 0)
                    _exit(2);
            }
        }
        _exit(0);
    }
    do {
        mb->mtimes_valid = false;
        assert_int_equal(imap_mailbox_sync(mb, IMAP_SYNC_EXPUNGE, &s, err,
                                           sizeof(err)), 0);
        assert_int_equal(s.n_expunged, 0);
        imap_sync_free(&s);
        rounds++;
    } while (waitpid(pid, &wstatus, WNOHANG) == 0);
    assert_true(WIFEXITED(wstatus));
    assert_int_equal(WEXITSTATUS(wstatus), 0);
    mb->mtimes_valid = false;
    assert_int_equal(imap_mailbox_sync(mb, IMAP_SYNC_EXPUNGE, &s, err,
                                       sizeof(err)), 0);
    imap_sync_free(&s);
    assert_int_equal(imap_mailbox_count(mb), 41);
    for (uint32_t i = 1; i <= 41; i++)
        assert_int_equal(imap_mailbox_msg(mb, i)->uid, i);
    assert_int_equal(imap_mailbox_uidnext(mb), 42);
    assert_true(rounds > 0);
    imap_mailbox_close(mb);
    imap_store_close(st);
}

/* Deleted or renamed under an open session: it is told. */
static void test_gone(void **state)
{
    struct imap_store *st = store();
    struct imap_mailbox *mb;
    struct imap_sync s;

    assert_int_equal(imap_store_create(st, "Tmp", err, sizeof(err)), 0);
    mb = open_box(st, "Tmp", 0);
    assert_int_equal(imap_store_delete(st, "Tmp", err, sizeof(err)), 0);
    assert_int_equal(imap_mailbox_sync(mb, 0, &s, err, sizeof(err)),
                     IMAP_STORE_GONE);
    assert_true(s.gone);
    imap_sync_free(&s);
    imap_mailbox_close(mb);
    imap_store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flags_and_keywords, setup, teardown),
        cmocka_unit_test_setup_teardown(test_external_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_rebuild, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_skip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_keep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expunge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_move, setup, teardown),
        cmocka_unit_test_setup_teardown(test_folders, setup, teardown),
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_concurrent_delivery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gone, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
