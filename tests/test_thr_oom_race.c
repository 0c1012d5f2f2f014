/* test_thr_oom_race.c — "NULL only when the heap is full", with threads
 * racing at the limit (rudo.h, rudo_alloc).
 *
 * 1. Spurious NULL: T threads each keep 64 small live objects and allocate
 *    garbage under a 512 KiB max_heap. Live data is a few KiB, so no
 *    allocation may fail, although each thread's collection frees pages
 *    that the other threads take before it retries.
 * 2. Real exhaustion: the same threads keep everything they allocate, so
 *    the heap does fill up. Every thread must then get NULL (no hang), and
 *    only with the heap really full: at the first NULL, the live data
 *    after the collection it waited for is most of the limit.
 *
 * Precise setup: roots are each thread's registered slots only. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "rudo.h"
#include "testlib.h"

#define LIVE 64
#define LIMIT ((size_t)512 << 10)

static atomic_ulong nulls;        /* phase 1: spurious NULLs */
static atomic_ulong exhausted;    /* phase 2: threads that saw NULL */
static _Atomic size_t live_at_null; /* phase 2: smallest live_bytes seen */
static atomic_ulong thread_errors; /* checks that failed in the threads
                                    * (the harness counters are not atomic) */

struct node {
    struct node *next;
    uint64_t tag;
};

static rudo_kind k_node;
static pthread_barrier_t all_null; /* phase 2: every thread got NULL */

static void trace_node(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    rudo_visit(tr, (void **)&((struct node *)obj)->next);
}

static void *churn(void *arg) {
    uintptr_t id = (uintptr_t)arg;
    if (rudo_thread_attach() != RUDO_OK)
        atomic_fetch_add(&thread_errors, 1);
    static __thread void *live[LIVE];
    for (int i = 0; i < LIVE; i++) {
        rudo_root_add(&live[i]);
        live[i] = rudo_alloc(k_node, 32);
    }
    long n = test_scaled(200000);
    for (long i = 0; i < n; i++) {
        struct node *g = rudo_alloc(k_node, 16 + (size_t)(i % 3) * 16);
        if (!g) {
            atomic_fetch_add_explicit(&nulls, 1, memory_order_relaxed);
            continue;
        }
        g->tag = id + 1;
        if (i % 1000 == 0) { /* replace one live object now and then */
            struct node *x = rudo_alloc(k_node, 32);
            if (x)
                live[i / 1000 % LIVE] = x;
        }
    }
    for (int i = 0; i < LIVE; i++)
        if (!live[i] || ((struct node *)live[i])->tag != 0)
            atomic_fetch_add(&thread_errors, 1);
    for (int i = 0; i < LIVE; i++)
        rudo_root_remove(&live[i]);
    rudo_thread_detach();
    return NULL;
}

static void *fill(void *arg) {
    (void)arg;
    if (rudo_thread_attach() != RUDO_OK)
        atomic_fetch_add(&thread_errors, 1);
    static __thread struct node *list;
    list = NULL;
    rudo_root_add((void **)&list);
    for (;;) {
        struct node *x = rudo_alloc(k_node, 48);
        if (!x) {
            rudo_stats st;
            rudo_get_stats(&st);
            size_t seen = atomic_load(&live_at_null);
            while (st.live_bytes < seen &&
                   !atomic_compare_exchange_weak(&live_at_null, &seen, st.live_bytes))
                ;
            atomic_fetch_add(&exhausted, 1);
            /* Nobody drops data before everyone has seen NULL: a thread
             * that dropped its list would let the others' later
             * collections report less live data than the NULL saw. */
            test_barrier_wait(&all_null);
            break;
        }
        x->next = list;
        list = x;
    }
    rudo_root_remove((void **)&list);
    rudo_thread_detach();
    return NULL;
}

static void run(void *(*fn)(void *), unsigned threads) {
    pthread_t t[8];
    for (unsigned i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, fn, (void *)(uintptr_t)i);
    for (unsigned i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
}

int main(void) {
    test_start_watchdog();
    for (unsigned threads = 2; threads <= 4; threads += 2) {
        rudo_config cfg = test_precise_config(0);
        cfg.max_heap = LIMIT;
        cfg.markers = 2;
        CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
        k_node = rudo_kind_traced("node", trace_node);
        /* The creating thread takes no part: detach it so that it does not
         * hold collections up while it waits in pthread_join. */
        rudo_thread_detach();

        atomic_store(&nulls, 0);
        run(churn, threads);
        unsigned long spurious = atomic_load(&nulls);
        printf("%u threads: %lu spurious NULLs\n", threads, spurious);
        CHECK_EQ(spurious, 0ul);

        atomic_store(&exhausted, 0);
        atomic_store(&live_at_null, SIZE_MAX);
        pthread_barrier_init(&all_null, NULL, threads);
        run(fill, threads);
        pthread_barrier_destroy(&all_null);
        size_t live = atomic_load(&live_at_null);
        printf("%u threads: NULL with %zu KiB live of %zu KiB\n", threads,
               live >> 10, LIMIT >> 10);
        CHECK_EQ(atomic_load(&exhausted), (unsigned long)threads);
        /* 48-byte objects in 64 KiB pages: full means most of the limit
         * is live, less the pages other classes and threads hold. */
        CHECK(live >= LIMIT - LIMIT / 32);
        CHECK_EQ(atomic_load(&thread_errors), 0ul);

        CHECK_EQ(rudo_thread_attach(), RUDO_OK);
        rudo_heap_destroy();
    }
    return test_report();
}
