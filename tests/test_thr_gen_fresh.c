/* test_thr_gen_fresh.c — generational mode: a store without the barrier
 * into an object the thread made since its last allocation or safepoint,
 * which rudo.h allows ("no collection can have made it old yet"), also
 * when a collection stopped the thread in between: by signal (after the
 * delay, or at once with RUDO_ATTACH_SIGNAL) or by rudo_thread_suspend.
 *
 * Thread A makes X (a layout kind), roots it, and spins without a
 * safepoint; the main thread runs a minor collection (A stopped: X is
 * marked, so old), makes W (young), hands it over; A stores W into X with a
 * plain store; the main thread drops W and runs a minor collection, then
 * allocates so that a freed W would be reused. W must be intact. It was
 * freed in every run: the stopped thread's allocation pages are frozen and
 * their fresh cells marked, and nothing dirtied their cards (now thawing
 * dirties them, src/alloc/alloc.c). Found by a helper's fuzzer.
 * The same holds for a large X (over 32 KiB: its own pages, not a current
 * allocation page), made by rudo_alloc, rudo_alloc_array or rudo_realloc,
 * with the slot at its start or deep inside: it was freed too until the
 * collection dirtied the cards of a stopped thread's last large object
 * (gc/collect.c). Sizes x slot offsets x routes x stop variants.
 * Fourth variant: A spins calling rudo_base(X), which is no safepoint, so
 * the suspend signal mostly finds it inside rudo and the stop is deferred
 * to the call's end; A then parks as at a safepoint, and its pages were
 * retired, not frozen: X was old with clean cards (now a deferred park is
 * frozen as a signal stop is).
 * test_scrub_stack (testlib) clears the dead frames below. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rudo.h"
#include "testlib.h"

static rudo_kind k_node; /* layout: word 1 is a pointer */
static void **rootX, **rootW;
static atomic_int a_ready, w_ready, a_done;

typedef struct { uint64_t tag; void *ptr; uint64_t pad[6]; } node;

/* X: its size, the node (2-word unit of the layout) the pointer goes in,
 * and how it is made. */
enum { BY_ALLOC, BY_ARRAY, BY_REALLOC };
static size_t x_size, x_slot;
static int x_route;

static void *make_x(void) {
    switch (x_route) {
    case BY_ARRAY:
        return rudo_alloc_array(k_node, x_size / 16, 16);
    case BY_REALLOC: {
        void *small = rudo_alloc(k_node, 64);
        return rudo_realloc(small, x_size); /* the last allocation: X */
    }
    default:
        return rudo_alloc(k_node, x_size);
    }
}

static __attribute__((noinline)) void store_w(void **x) {
    x[2 * x_slot + 1] = *rootW; /* exempt from the barrier by rudo.h's rule */
}

enum { VIA_SIGNAL, VIA_SIGNAL_AT_ONCE, VIA_SUSPEND, VIA_QUERY };
static int variant;

static void *thread_a(void *arg) {
    (void)arg;
    rudo_thread_attach_flags(variant == VIA_SIGNAL_AT_ONCE || variant == VIA_QUERY
                                 ? RUDO_ATTACH_SIGNAL : 0);
    void **x = make_x();
    x[0] = (void *)0x1111;
    *rootX = x;                       /* a root slot: plain store */
    atomic_store(&a_ready, 1);
    while (!atomic_load(&w_ready))    /* no safepoint: suspended by signal */
        if (variant == VIA_QUERY)     /* inside rudo, mostly: a deferred stop */
            (void)rudo_base(x);
    /* No allocation or safepoint since x was made: rudo.h exempts it. */
    store_w(x);
    test_scrub_stack();
    atomic_store(&a_done, 1);
    rudo_blocking_enter();
    while (atomic_load(&a_done) != 2)
        ;
    rudo_blocking_leave();
    rudo_thread_detach();
    return NULL;
}

static __attribute__((noinline)) void make_w(void) {
    uint64_t *w = rudo_alloc(RUDO_KIND_ATOMIC, 64);
    for (int i = 0; i < 8; i++)
        w[i] = 0x5757575757575757ull;
    *rootW = w;
}

static __attribute__((noinline)) void churn(void) {
    /* allocate same-size objects so that a freed W is reused */
    for (int i = 0; i < 20000; i++) {
        uint64_t *v = rudo_alloc(RUDO_KIND_ATOMIC, 64);
        for (int j = 0; j < 8; j++)
            v[j] = 0xabababababababab;
    }
}

static void one(int v, size_t size, size_t slot, int route) {
    variant = v;
    x_size = size;
    x_slot = slot;
    x_route = route;
    atomic_store(&a_ready, 0);
    atomic_store(&w_ready, 0);
    atomic_store(&a_done, 0);
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.generational = true;
    cfg.scan_static_data = false; /* stacks stay scanned: signals on */
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    static const uint64_t lay[1] = {2};
    k_node = rudo_kind_layout("node", 2, lay);
    rootX = calloc(1, sizeof(void *));
    rootW = calloc(1, sizeof(void *));
    rudo_root_add(rootX);
    rudo_root_add(rootW);
    pthread_t th;
    pthread_create(&th, NULL, thread_a, NULL);
    while (!atomic_load(&a_ready))
        rudo_safepoint();
    if (v == VIA_SUSPEND) {
        CHECK_EQ(rudo_thread_suspend(th), RUDO_OK);
        rudo_collect_minor(); /* X is marked: old */
        CHECK_EQ(rudo_thread_resume(th), RUDO_OK);
    } else {
        rudo_collect_minor(); /* A is suspended by signal; X is marked: old */
    }
    make_w(); /* young */
    atomic_store(&w_ready, 1);
    while (!atomic_load(&a_done))
        rudo_safepoint();
    *rootW = NULL; /* W now reachable only through X */
    test_scrub_stack();
    rudo_collect_minor();
    churn();
    void **x = *rootX;
    uint64_t *w = x[2 * x_slot + 1];
    int bad = 0;
    for (int i = 0; i < 8; i++)
        if (w[i] != 0x5757575757575757ull)
            bad = 1;
    if (bad)
        fprintf(stderr, "variant %d, X of %zu bytes (route %d), slot in node %zu: "
                "W = %p, word 0 = %llx: freed and reused while reachable\n",
                v, size, route, slot, (void *)w, (unsigned long long)w[0]);
    CHECK(!bad);
    atomic_store(&a_done, 2);
    rudo_blocking_enter();
    pthread_join(th, NULL);
    rudo_blocking_leave();
    rudo_root_remove(rootX);
    rudo_root_remove(rootW);
    free(rootX);
    free(rootW);
    rudo_heap_destroy();
}

int main(void) {
    test_start_watchdog();
    for (int round = 0; round < 3; round++)
        for (int v = VIA_SIGNAL; v <= VIA_QUERY; v++)
            one(v, sizeof(node), 0, BY_ALLOC);
    /* Large X: just over the small limit, a few pages, pages and a half;
     * the slot in the first node, on a later card, in the last node. */
    static const size_t sizes[] = {32768 + 16, 100000, 3 * 65536 + 32768};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        size_t nodes = sizes[si] / 16;
        size_t slots[] = {0, nodes / 2 + 3, nodes - 1};
        for (int v = VIA_SIGNAL; v <= VIA_QUERY; v++)
            for (int r = BY_ALLOC; r <= BY_REALLOC; r++)
                one(v, sizes[si], slots[(si + (size_t)v + (size_t)r) % 3], r);
    }
    return test_report();
}
