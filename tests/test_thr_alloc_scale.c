/* test_thr_alloc_scale.c — the allocation path shared by several threads
 * (docs/threads.md, "Allocation counters and recycled pages").
 *
 * 1. Shadow model, fixed seeds: T threads (2, 4) allocate across every
 *    size class and some large sizes, in two kinds, keeping a shadow table
 *    of their live objects (address, size, fill byte) whose addresses sit
 *    in a registered root range. Every new object must read all zero:
 *    recycled pages are now zeroed by the thread that took them, after
 *    heap_lock, and dead cells by the lazy sweep, while other threads take
 *    pages and collect. Each is then filled with its own byte; objects are
 *    dropped and replaced at random; the whole table is checked every so
 *    often and at the end. Thread 0 collects explicitly now and then;
 *    thread 1 detaches and attaches again midway, with its unflushed count
 *    and its current pages to hand back.
 * 2. Counters are exact when the threads are quiescent: rudo_stats'
 *    bytes_allocated grows by exactly the sum of the threads' own
 *    bytes_allocated, both while they are still attached (their unflushed
 *    counts below the batch are summed in) and after they detached
 *    (flushed then). Small runs (a page per thread, never flushed by the
 *    batch) and large ones.
 * 3. The trigger with per-thread counts: T threads allocate garbage with a
 *    4 MiB trigger; collections start neither before the trigger nor later
 *    than threads x (batch + a page per size class in use) bytes after
 *    it. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rudo.h"
#include "testlib.h"

#define SLOTS 256
#define BATCH ((uint64_t)256 << 10) /* RUDO_COUNT_BATCH_MAX (threads.h) */
#define PAGE ((uint64_t)64 << 10)

static atomic_ulong errors;     /* checks failed in the threads */
static atomic_ulong nonzero;    /* new objects that were not all zero */
static rudo_kind k_cons;

struct shadow {
    void *obj[SLOTS];           /* a root range: what keeps them alive */
    size_t size[SLOTS];
    unsigned char fill[SLOTS];
};

static size_t pick_size(uint64_t *rng) {
    uint64_t r = test_rand(rng);
    switch (r % 8) {
    case 0: return 8 + (size_t)(r >> 8) % 120;          /* the 16-byte classes */
    case 1: case 2: return 16 + (size_t)(r >> 8) % 1000;
    case 3: case 4: return 16 + (size_t)(r >> 8) % 8000;
    case 5: return 8192 + (size_t)(r >> 8) % 24576;     /* up to 32 KiB */
    case 6: return 16 + (size_t)(r >> 8) % 300;
    default: return (r >> 8) % 16 ? 64 : 40000 + (size_t)(r >> 12) % 200000; /* large */
    }
}

static bool all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static bool filled(const unsigned char *p, size_t n, unsigned char b) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != b)
            return false;
    return true;
}

static void check_all(const struct shadow *s) {
    for (int i = 0; i < SLOTS; i++)
        if (s->obj[i] && !filled(s->obj[i], s->size[i], s->fill[i]))
            atomic_fetch_add(&errors, 1);
}

struct worker {
    unsigned id;
    long steps;
    pthread_barrier_t *quiet, *go; /* part 2: NULL in part 1 */
    uint64_t own;                  /* part 2: its rudo_thread_stats bytes */
};

static void *shadow_worker(void *arg) {
    struct worker *w = arg;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (w->id + 1);
    if (rudo_thread_attach() != RUDO_OK)
        atomic_fetch_add(&errors, 1);
    struct shadow *s = calloc(1, sizeof *s);
    rudo_root_add_range(s->obj, s->obj + SLOTS);
    for (long i = 0; i < w->steps; i++) {
        int slot = (int)(test_rand(&rng) % SLOTS);
        size_t size = pick_size(&rng);
        rudo_kind kind = test_rand(&rng) & 1 ? RUDO_KIND_ATOMIC : k_cons;
        unsigned char *o = rudo_alloc(kind, size);
        if (!o) {
            atomic_fetch_add(&errors, 1);
            break;
        }
        if (!all_zero(o, size))
            atomic_fetch_add(&nonzero, 1);
        /* A letter: conservative objects filled with it hold words like
         * 0x4141..41, above user space, so they keep nothing alive. */
        unsigned char b = (unsigned char)(0x41 + (w->id * 7 + (unsigned)i) % 26);
        memset(o, b, size);
        s->obj[slot] = o;
        s->size[slot] = size;
        s->fill[slot] = b;
        if (i % 997 == 0)
            check_all(s);
        if (w->id == 0 && i % 3001 == 1500)
            rudo_collect();
        if (w->id == 1 && i == w->steps / 2) {
            /* Detach with current pages and an unflushed count; the table
             * stays a root (registered roots are global). */
            rudo_thread_detach();
            if (rudo_thread_attach() != RUDO_OK)
                atomic_fetch_add(&errors, 1);
        }
    }
    check_all(s);
    rudo_root_remove_range(s->obj);
    free(s);
    rudo_thread_detach();
    return NULL;
}

static void *count_worker(void *arg) {
    struct worker *w = arg;
    if (rudo_thread_attach() != RUDO_OK)
        atomic_fetch_add(&errors, 1);
    uint64_t rng = 12345 + w->id;
    /* Short runs use one class: a page, below the batch, never flushed. */
    for (long i = 0; i < w->steps; i++)
        if (!rudo_alloc(RUDO_KIND_ATOMIC,
                        w->steps <= 100 ? 48 : 16 + (size_t)(test_rand(&rng) % 200)))
            atomic_fetch_add(&errors, 1);
    rudo_thread_stats ts;
    rudo_get_thread_stats(&ts);
    w->own = ts.bytes_allocated;
    if (w->quiet) {
        test_barrier_wait(w->quiet); /* the main thread reads the totals */
        test_barrier_wait(w->go);
    }
    rudo_thread_detach();
    return NULL;
}

static uint64_t total_allocated(void) {
    rudo_stats st;
    rudo_get_stats(&st);
    return st.bytes_allocated;
}

static void part_shadow(unsigned threads) {
    rudo_config cfg = test_precise_config(2);
    cfg.initial_heap = 2u << 20;
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    k_cons = rudo_kind_conservative("shadow-cons");
    rudo_thread_detach();
    atomic_store(&errors, 0);
    atomic_store(&nonzero, 0);
    pthread_t t[4];
    struct worker w[4];
    long steps = test_scaled(TEST_UNDER_TSAN || TEST_UNDER_ASAN ? 6000 : 20000);
    for (unsigned i = 0; i < threads; i++) {
        w[i] = (struct worker){.id = i, .steps = steps};
        pthread_create(&t[i], NULL, shadow_worker, &w[i]);
    }
    for (unsigned i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    printf("shadow, %u threads: %lu errors, %lu non-zero new objects\n", threads,
           atomic_load(&errors), atomic_load(&nonzero));
    CHECK_EQ(atomic_load(&errors), 0ul);
    CHECK_EQ(atomic_load(&nonzero), 0ul);
    CHECK_EQ(rudo_thread_attach(), RUDO_OK);
    rudo_heap_destroy();
}

static void part_counts(unsigned threads, long steps) {
    rudo_config cfg = test_precise_config(0);
    cfg.initial_heap = 64u << 20; /* a trigger whose batch is 256 KiB */
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    rudo_thread_detach();
    atomic_store(&errors, 0);
    pthread_barrier_t quiet, go;
    pthread_barrier_init(&quiet, NULL, threads + 1);
    pthread_barrier_init(&go, NULL, threads + 1);
    uint64_t before = total_allocated();
    pthread_t t[4];
    struct worker w[4];
    for (unsigned i = 0; i < threads; i++) {
        w[i] = (struct worker){.id = i, .steps = steps, .quiet = &quiet, .go = &go};
        pthread_create(&t[i], NULL, count_worker, &w[i]);
    }
    pthread_barrier_wait(&quiet);
    uint64_t attached = total_allocated() - before, sum = 0;
    for (unsigned i = 0; i < threads; i++)
        sum += w[i].own;
    pthread_barrier_wait(&go);
    for (unsigned i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    uint64_t detached = total_allocated() - before;
    printf("counts, %u threads x %ld: threads say %llu, heap %llu attached, %llu detached\n",
           threads, steps, (unsigned long long)sum, (unsigned long long)attached,
           (unsigned long long)detached);
    CHECK(sum > 0);
    CHECK_EQ(attached, sum);
    CHECK_EQ(detached, sum);
    CHECK_EQ(atomic_load(&errors), 0ul);
    pthread_barrier_destroy(&quiet);
    pthread_barrier_destroy(&go);
    CHECK_EQ(rudo_thread_attach(), RUDO_OK);
    rudo_heap_destroy();
}

static void part_trigger(unsigned threads) {
    const uint64_t trigger = 4u << 20;
    rudo_config cfg = test_precise_config(0);
    cfg.initial_heap = trigger;
    cfg.growth = 1.0; /* trigger = initial_heap: nothing stays live */
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    rudo_thread_detach();
    atomic_store(&errors, 0);
    rudo_stats st0;
    rudo_get_stats(&st0);
    pthread_t t[4];
    struct worker w[4];
    long steps = test_scaled(TEST_UNDER_TSAN ? 60000 : 200000);
    for (unsigned i = 0; i < threads; i++) {
        w[i] = (struct worker){.id = i, .steps = steps};
        pthread_create(&t[i], NULL, count_worker, &w[i]);
    }
    for (unsigned i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    rudo_stats st;
    rudo_get_stats(&st);
    uint64_t counted = st.bytes_allocated - st0.bytes_allocated;
    uint64_t gcs = st.collections - st0.collections;
    /* Late by each thread's unflushed batch and its current pages, which
     * are charged when retired: a page per class it uses (16..216 bytes:
     * 13 classes). */
    uint64_t late = threads * (BATCH + 13 * PAGE);
    uint64_t lo = counted / (trigger + late), hi = counted / trigger + 1;
    printf("trigger, %u threads: %llu MiB counted, %llu collections (bounds %llu..%llu)\n",
           threads, (unsigned long long)(counted >> 20), (unsigned long long)gcs,
           (unsigned long long)lo, (unsigned long long)hi);
    CHECK(lo >= 2); /* enough allocation for the bounds to mean something */
    CHECK(gcs + 1 >= lo);
    CHECK(gcs <= hi);
    CHECK_EQ(atomic_load(&errors), 0ul);
    CHECK_EQ(rudo_thread_attach(), RUDO_OK);
    rudo_heap_destroy();
}

int main(void) {
    test_start_watchdog();
    for (unsigned threads = 2; threads <= 4; threads += 2)
        part_shadow(threads);
    part_counts(2, 100);   /* a page each: nothing flushed by the batch */
    part_counts(4, test_scaled(TEST_UNDER_TSAN ? 20000 : 100000));
    /* GC stress mode collects every N allocations: not the trigger's. */
    if (test_env_long("RUDO_GC_STRESS", 0) == 0)
        for (unsigned threads = 2; threads <= 4; threads += 2)
            part_trigger(threads);
    else
        printf("trigger: skipped under RUDO_GC_STRESS\n");
    return test_report();
}
