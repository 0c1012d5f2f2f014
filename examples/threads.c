/* threads.c — several mutator threads sharing a hash table of heap objects.
 *
 * What it shows:
 *  - rudo_thread_attach / rudo_thread_detach in worker threads;
 *  - the waiting rule (docs/threads.md): a thread that may wait for another
 *    attached thread does so inside rudo_blocking_enter / rudo_blocking_leave.
 *    Here that is the table's pthread mutex and the main thread's
 *    pthread_join. Once the mutex is held, the thread may allocate and reach
 *    safepoints: the threads waiting for the mutex are in blocking regions,
 *    so a collection does not wait for them;
 *  - rudo_safepoint in a long loop that does not allocate (a scan of the
 *    whole table), so that such a loop does not delay collections;
 *  - roots: the table is a precise root (rudo_root_add); the workers' C
 *    locals are found by the conservative stack scan (the default);
 *  - a final consistency check after several rudo_collect calls.
 *
 * Each of NTHREADS workers owns NKEYS keys "t<thread>:<key>" and makes
 * NROUNDS passes over them. A pass replaces each of its entries with a new
 * one whose count is one higher (the old entry becomes garbage), then scans
 * the table to check its own entries. At the end every key must be present
 * once with count NROUNDS. Exits 0 if so. */
#include <pthread.h>
#include <rudo.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NTHREADS 4
#define NKEYS 500
#define NROUNDS 40
#define NBUCKETS 257

/* An entry of the table: a chain link, a key string (an atomic object) and
 * a count. A traced kind: the callback reports the two pointer fields. */
typedef struct entry {
    struct entry *next;
    char *key;
    long count;
    int owner; /* the thread that made it */
} entry;

/* The table itself is a heap object of a traced kind too. */
typedef struct table {
    size_t nbuckets;
    entry *buckets[];
} table;

static rudo_kind k_entry, k_table;
static table *tab; /* precise root */
static pthread_mutex_t tab_lock = PTHREAD_MUTEX_INITIALIZER;
static int errors; /* guarded by tab_lock */

static void entry_trace(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    entry *e = obj;
    rudo_visit(tr, (void **)&e->next);
    rudo_visit(tr, (void **)&e->key);
}

static void table_trace(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    table *t = obj;
    for (size_t i = 0; i < t->nbuckets; i++)
        rudo_visit(tr, (void **)&t->buckets[i]);
}

/* Takes the table lock. Another worker may hold it while it allocates and
 * stops for a collection; waiting here outside a blocking region would then
 * hold up that collection forever. */
static void lock_table(void) {
    rudo_blocking_enter();
    pthread_mutex_lock(&tab_lock); /* touches no heap object */
    rudo_blocking_leave();         /* waits if a collection is running */
}

static void unlock_table(void) { pthread_mutex_unlock(&tab_lock); }

static size_t hash(const char *s) {
    size_t h = 5381;
    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h % NBUCKETS;
}

static void *alloc_or_die(rudo_kind k, size_t size) {
    void *p = rudo_alloc(k, size);
    if (p == NULL) {
        fprintf(stderr, "threads: out of memory\n");
        exit(1);
    }
    return p;
}

/* Replaces the entry for `key` (or inserts one) with a new entry whose
 * count is one more. The allocation happens before the lock is taken, so
 * the critical section is short; it would be allowed inside it as well. */
static void bump(int owner, const char *key) {
    entry *e = alloc_or_die(k_entry, sizeof *e);
    e->key = alloc_or_die(RUDO_KIND_ATOMIC, strlen(key) + 1);
    strcpy(e->key, key);
    e->owner = owner;

    size_t b = hash(key);
    lock_table();
    entry **link = &tab->buckets[b];
    while (*link != NULL && strcmp((*link)->key, key) != 0)
        link = &(*link)->next;
    if (*link != NULL) {          /* unlink the old entry: now garbage */
        e->count = (*link)->count + 1;
        e->next = (*link)->next;
    } else {
        e->count = 1;
        e->next = NULL;
    }
    *link = e;
    unlock_table();
}

/* Walks the whole table without allocating and counts this thread's
 * entries, checking each has count `want`. The loop polls rudo_safepoint
 * once per bucket: without it, a collection requested by another thread
 * would wait for the whole walk. Stopping there while holding tab_lock is
 * fine, since every thread that waits for the lock is in a blocking region. */
static long scan_own(int owner, long want) {
    long n = 0;
    lock_table();
    for (size_t b = 0; b < tab->nbuckets; b++) {
        for (entry *e = tab->buckets[b]; e != NULL; e = e->next) {
            if (e->owner != owner)
                continue;
            n++;
            if (e->count != want)
                errors++;
        }
        rudo_safepoint();
    }
    unlock_table();
    return n;
}

static void *worker(void *arg) {
    int me = (int)(intptr_t)arg;
    if (rudo_thread_attach() != RUDO_OK) {
        fprintf(stderr, "threads: attach failed\n");
        exit(1);
    }
    char key[32];
    for (long round = 1; round <= NROUNDS; round++) {
        for (int k = 0; k < NKEYS; k++) {
            snprintf(key, sizeof key, "t%d:%d", me, k);
            bump(me, key);
            /* Some short-lived garbage besides the replaced entries. */
            char *tmp = alloc_or_die(RUDO_KIND_ATOMIC, 64 + (size_t)k % 200);
            tmp[0] = 'x';
        }
        if (scan_own(me, round) != NKEYS) {
            lock_table();
            errors++;
            unlock_table();
        }
        if (me == 0 && round % 10 == 0)
            rudo_collect(); /* explicit ones, besides the automatic ones */
    }
    rudo_thread_detach();
    return NULL;
}

int main(void) {
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.scan_static_data = false; /* `tab` is registered below instead */
    cfg.initial_heap = 512 * 1024; /* collect often */
    if (rudo_heap_create(&cfg) != RUDO_OK)
        return 1;
    /* Kinds registered before pthread_create are usable by the workers. */
    k_entry = rudo_kind_traced("entry", entry_trace);
    k_table = rudo_kind_traced("table", table_trace);

    tab = alloc_or_die(k_table, sizeof *tab + NBUCKETS * sizeof(entry *));
    tab->nbuckets = NBUCKETS;
    rudo_root_add((void **)&tab);

    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) != 0)
            return 1;
    /* Joining waits for threads that allocate and collect: a blocking
     * region, so that their collections do not wait for this thread. */
    rudo_blocking_enter();
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    rudo_blocking_leave();

    for (int i = 0; i < 3; i++)
        rudo_collect();

    /* Every key once, with its full count and its own key string. */
    long total = 0;
    int seen[NTHREADS][NKEYS] = {{0}};
    for (size_t b = 0; b < tab->nbuckets; b++) {
        for (entry *e = tab->buckets[b]; e != NULL; e = e->next) {
            int t, k;
            total++;
            if (sscanf(e->key, "t%d:%d", &t, &k) != 2 || t != e->owner ||
                t < 0 || t >= NTHREADS || k < 0 || k >= NKEYS ||
                hash(e->key) != b || e->count != NROUNDS || seen[t][k]++) {
                errors++;
                continue;
            }
        }
    }
    rudo_stats st;
    rudo_get_stats(&st);
    printf("threads: %d threads, %ld entries, %llu collections, %zu bytes "
           "live, %d errors\n",
           NTHREADS, total, (unsigned long long)st.collections,
           st.live_bytes, errors);
    int ok = errors == 0 && total == (long)NTHREADS * NKEYS &&
             st.collections >= 4 + 3 && st.threads_attached == 1;

    rudo_root_remove((void **)&tab);
    rudo_heap_destroy();
    return ok ? 0 : 1;
}
