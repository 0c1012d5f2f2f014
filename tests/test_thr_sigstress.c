/* test_thr_sigstress.c — the free-list argument of signal suspension
 * (docs/threads.md, "The allocation fast path"): threads attached with
 * RUDO_ATTACH_SIGNAL allocate in tight loops through the inline fast path
 * (several sizes, four kinds) while another thread collects constantly, so
 * that collections suspend them at arbitrary instructions, many inside a
 * free-list pop. Each thread keeps a shadow model of its objects (fixed
 * seeds): every object holds its id, a checksum and a pointer to an older
 * object with that object's id; the threads check, continually:
 *  - a new object is all zero (a cell handed out twice, or a dead cell
 *    reused without being zeroed, shows here);
 *  - every object they hold, and the object it points to, still has its
 *    id and checksum (a live object freed and reused shows here);
 * and the test checks that the allocators were suspended by signal in
 * (nearly) every collection. Held objects live only in the threads' stack
 * frames: the scan of a suspended thread's stack and registers keeps them. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

#define NALLOC 3
#define NSLOTS 48

enum { K_CONS, K_ATOMIC, K_LAYOUT, K_TRACED, NKINDS };
static rudo_kind kinds[NKINDS];

/* Every object: [0] a pointer (NULL for atomic objects), [1] its id,
 * [2] the id of the object [0] points to, [3] a checksum of [1] and [2];
 * then filler words derived from the id (non-pointers). */
typedef struct obj {
    struct obj *ref;
    uint64_t id, ref_id, check;
    uint64_t fill[];
} obj;

static uint64_t checksum(const obj *o) { return test_mix64(o->id * 31 + o->ref_id); }
static uint64_t filler(uint64_t id, size_t i) { return test_mix64(id + i) | 1; } /* odd: never a pointer */

static void trace_obj(void *p, size_t size, rudo_tracer *tr) {
    (void)size;
    rudo_visit(tr, (void **)&((obj *)p)->ref);
}

static atomic_int stop_all, failures;
static atomic_long allocations;

static void fail(const char *what, uint64_t id) {
    if (atomic_fetch_add(&failures, 1) < 10)
        fprintf(stderr, "FAIL: %s (object id %llu)\n", what, (unsigned long long)id);
}

static bool obj_ok(const obj *o, size_t size) {
    if (o->check != checksum(o))
        return false;
    size_t nfill = (size - sizeof(obj)) / 8;
    for (size_t i = 0; i < nfill; i++)
        if (o->fill[i] != filler(o->id, i))
            return false;
    return true;
}

typedef struct slot {
    obj *o;
    size_t size;
} slot;

static void *alloc_main(void *arg) {
    uint64_t rng = 0x9e3779b97f4a7c15ull * (uint64_t)(uintptr_t)arg + 1;
    if (rudo_thread_attach_flags(RUDO_ATTACH_SIGNAL) != RUDO_OK)
        abort(); /* no CHECK off the main thread: its counters are not atomic */
    slot slots[NSLOTS] = {{0}};
    size_t ref_size[NSLOTS] = {0};
    uint64_t next_id = ((uint64_t)(uintptr_t)arg << 40) + 1;
    long n = 0;
    while (!atomic_load_explicit(&stop_all, memory_order_relaxed)) {
        uint64_t r = test_rand(&rng);
        unsigned k = (unsigned)(r % NKINDS);
        /* Mostly a few small sizes (many pops per page: the fast path),
         * sometimes a larger one (more classes, refills). */
        size_t size = (r & 0xf00) ? sizeof(obj) + 8 * ((r >> 12) % 8)
                                  : sizeof(obj) + 8 * ((r >> 12) % 250);
        obj *o = rudo_alloc(kinds[k], size);
        if (!o) {
            fail("allocation returned NULL", next_id);
            break;
        }
        const uint64_t *w = (const uint64_t *)o;
        for (size_t i = 0; i < size / 8; i++)
            if (w[i] != 0) {
                fail("a new object is not zeroed", next_id);
                break;
            }
        unsigned j = (unsigned)((r >> 24) % NSLOTS), t = (unsigned)((r >> 32) % NSLOTS);
        o->id = next_id++;
        if (k != K_ATOMIC && slots[t].o) {
            o->ref = slots[t].o;
            o->ref_id = slots[t].o->id;
            ref_size[j] = slots[t].size;
        } else {
            ref_size[j] = 0;
        }
        for (size_t i = 0; i < (size - sizeof(obj)) / 8; i++)
            o->fill[i] = filler(o->id, i);
        o->check = checksum(o);
        /* Check the object dropped from slot j, and what it points to
         * (kept alive by it alone, perhaps). */
        obj *old = slots[j].o;
        if (old) {
            if (!obj_ok(old, slots[j].size))
                fail("a held object changed", old->id);
            if (old->ref && old->ref->id != old->ref_id)
                fail("an object's referent changed", old->ref_id);
        }
        slots[j].o = o;
        slots[j].size = size;
        if (o->ref && !obj_ok(o->ref, ref_size[j]))
            fail("a referenced object changed", o->ref_id);
        n++;
    }
    for (unsigned j = 0; j < NSLOTS; j++)
        if (slots[j].o && !obj_ok(slots[j].o, slots[j].size))
            fail("a held object changed (final check)", slots[j].o->id);
    atomic_fetch_add(&allocations, n);
    rudo_thread_detach();
    return NULL;
}

static atomic_long ncollect;

static void *collect_main(void *arg) {
    long rounds = (long)(intptr_t)arg;
    rudo_thread_attach();
    for (long i = 0; i < rounds; i++) {
        rudo_collect();
        atomic_fetch_add(&ncollect, 1);
        /* A short pause, so that the allocators run between collections
         * (parked ones would otherwise stay parked across back-to-back
         * collections) and each collection catches them mid-loop. */
        rudo_blocking_enter();
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
        rudo_blocking_leave();
    }
    atomic_store(&stop_all, 1);
    rudo_thread_detach();
    return NULL;
}

/* ---- a pop stopped halfway, deterministically ------------------------------- */
/* The attached thread performs the inline fast path's pop by hand, in its
 * order (rudo.h), and is suspended by signal between its steps while the
 * main thread collects:
 *  (b) head loaded, nothing written: the cell must stay free and unused,
 *      and the list unchanged;
 *  (b') the cell's link cleared, the head not yet moved: the same;
 *  then the head moves past the cell, which is a new object, all zero.
 * Two cells go through it; afterwards later allocations from the same
 * list never return them, and what was stored in them survives. The
 * cells are held only in this thread's frame and registers. */
static atomic_int phase, phase_done;
static atomic_int half_failures;

static void wait_phase(int p) {
    atomic_store(&phase_done, p);
    while (atomic_load(&phase) == p) {
        /* spin without a safepoint: suspended here by signal */
    }
}

/* One pop, stopped in both intermediate states (phases p and p + 1). */
static void **half_pop(void **lists, unsigned cls, int p) {
    void **cell = (void **)lists[cls];
    wait_phase(p);
    if ((void **)lists[cls] != cell)
        atomic_fetch_add(&half_failures, 1); /* the collector wrote the list */
    void *next = *cell;
    *cell = NULL;
    wait_phase(p + 1);
    if ((void **)lists[cls] != cell)
        atomic_fetch_add(&half_failures, 1);
    lists[cls] = next;
    return cell;
}

static void *half_main(void *arg) {
    (void)arg;
    if (rudo_thread_attach_flags(RUDO_ATTACH_SIGNAL) != RUDO_OK)
        abort(); /* no CHECK off the main thread: its counters are not atomic */
    rudo_kind k = kinds[K_TRACED];
    size_t size = 48;
    /* Make the list exist (the first allocation takes a page). */
    void *volatile warm = rudo_alloc(k, size);
    (void)warm;
    unsigned cls = rudo__class_of_granules[(size + RUDO_GRANULE - 1) / RUDO_GRANULE];
    void **lists = rudo__tl->lists[k];
    void **cell = half_pop(lists, cls, 1);
    void **cell2 = half_pop(lists, cls, 3);
    /* Both cells are objects now: zero, and never handed out again. */
    for (size_t i = 0; i < size / sizeof(void *); i++)
        if (cell[i] != NULL || cell2[i] != NULL)
            atomic_fetch_add(&half_failures, 1);
    cell[1] = (void *)0x1234;
    cell2[1] = (void *)0x5678;
    for (int i = 0; i < 20000; i++) {
        void **o = rudo_alloc(k, size);
        if (o == cell || o == cell2)
            atomic_fetch_add(&half_failures, 1);
        if (i % 1000 == 0)
            rudo_collect();
    }
    if (cell[1] != (void *)0x1234 || cell2[1] != (void *)0x5678)
        atomic_fetch_add(&half_failures, 1);
    wait_phase(5);
    rudo_thread_detach();
    return NULL;
}

static void test_half_pop(void) {
    uint64_t stops0 = rudo__debug_signal_stops();
    pthread_t t;
    pthread_create(&t, NULL, half_main, NULL);
    for (int p = 1; p <= 5; p++) {
        while (atomic_load(&phase_done) != p) {
            rudo_blocking_enter();
            sched_yield();
            rudo_blocking_leave();
        }
        if (p < 5)
            for (int i = 0; i < 5; i++)
                rudo_collect(); /* the thread is suspended by signal in wait_phase */
        atomic_store(&phase, p + 1);
    }
    rudo_blocking_enter();
    pthread_join(t, NULL);
    rudo_blocking_leave();
    printf("half pop: %d failures, %llu signal stops\n", atomic_load(&half_failures),
           (unsigned long long)(rudo__debug_signal_stops() - stops0));
    CHECK_EQ(atomic_load(&half_failures), 0);
    CHECK(rudo__debug_signal_stops() - stops0 >= 20);
}

int main(void) {
    test_start_watchdog();
    CHECK_EQ(rudo_heap_create(NULL), RUDO_OK);
    kinds[K_CONS] = rudo_kind_conservative("sigstress/cons");
    kinds[K_ATOMIC] = rudo_kind_atomic("sigstress/atomic");
    static const uint64_t layout[1] = {1}; /* word 0 of every 4: the pointer */
    kinds[K_LAYOUT] = rudo_kind_layout("sigstress/layout", 4, layout);
    kinds[K_TRACED] = rudo_kind_traced("sigstress/traced", trace_obj);
    atomic_store(&phase, 1);
    /* ThreadSanitizer takes an asynchronous signal only at an interceptor
     * call: a thread spinning in plain code is never suspended, and the
     * collection would wait for it forever. */
    if (TEST_UNDER_TSAN)
        printf("skipped under ThreadSanitizer: the half-done pop (it delays "
               "signals to its interceptors)\n");
    else if (test_env_long("RUDO_GC_STRESS", 0) != 0)
        printf("skipped in GC stress mode: the half-done pop (the inline fast "
               "path has no lists there)\n");
    else
        test_half_pop();
    long rounds = test_scaled(TEST_UNDER_TSAN ? 200 : 1000);
    uint64_t stops0 = rudo__debug_signal_stops();
    pthread_t a[NALLOC], c;
    for (int i = 0; i < NALLOC; i++)
        pthread_create(&a[i], NULL, alloc_main, (void *)(uintptr_t)(i + 1));
    pthread_create(&c, NULL, collect_main, (void *)(intptr_t)rounds);
    rudo_blocking_enter();
    pthread_join(c, NULL);
    for (int i = 0; i < NALLOC; i++)
        pthread_join(a[i], NULL);
    rudo_blocking_leave();
    uint64_t stops = rudo__debug_signal_stops() - stops0;
    printf("%ld collections, %ld allocations, %llu signal stops, %d failures\n",
           atomic_load(&ncollect), atomic_load(&allocations),
           (unsigned long long)stops, atomic_load(&failures));
    CHECK_EQ(atomic_load(&failures), 0);
    CHECK_EQ(atomic_load(&ncollect), rounds);
    /* The allocators are signalled at once in every collection. A signal
     * that lands inside rudo (the slow path, a lock, often when the thread
     * was preempted there on a loaded machine) is deferred and the thread
     * parks at a safepoint instead, so not every stop is by signal. */
    /* How many land outside rudo depends on the machine's load (a thread
     * preempted inside a lock gets its signal there), so only a floor:
     * the half-done pop above is the deterministic part. Under
     * ThreadSanitizer the signals arrive inside its interceptors, mostly
     * in rudo's locks; in GC stress mode every allocation takes the slow
     * path: both defer nearly every stop to a safepoint. */
    if (!TEST_UNDER_TSAN && test_env_long("RUDO_GC_STRESS", 0) == 0)
        CHECK(stops >= 20);
    CHECK(atomic_load(&allocations) > rounds);
    rudo_heap_destroy();
    return test_report();
}
