/* test_thr_handles.c — scoped handles under threads, with precise roots
 * only (no stack scanning): each of several mutators builds lists whose
 * only roots are its handles, in nested scopes that span several chunks,
 * and checks them after allocating garbage, while a collector thread calls
 * rudo_collect in a loop. A handle the collector missed, or one read
 * while half written, shows as a broken list (a reclaimed node is zeroed
 * or reused). Run with 1 and 3 markers; a ThreadSanitizer build checks the
 * handle state against the collector's reads. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "rudo.h"
#include "testlib.h"

#define MUTATORS 3

typedef struct node {
    struct node *next; /* word 0: a pointer */
    uint64_t val, check;
} node;

static rudo_kind k_node;
static atomic_long errors;
static atomic_int running;

static node *cons(uint64_t val, void **next) {
    node *n = rudo_alloc(k_node, sizeof *n);
    if (!n)
        abort();
    n->next = *next; /* read after the allocation, which may collect */
    n->val = val;
    n->check = val * 0x9e3779b97f4a7c15ull;
    return n;
}

/* Checks a list of len nodes holding vals base+len-1 .. base. */
static void check_list(const node *n, uint64_t base, size_t len) {
    for (size_t i = 0; i < len; i++, n = n->next) {
        uint64_t want = base + len - 1 - i;
        if (!n || n->val != want || n->check != want * 0x9e3779b97f4a7c15ull) {
            atomic_fetch_add(&errors, 1);
            return;
        }
    }
    if (n != NULL)
        atomic_fetch_add(&errors, 1);
}

/* A scope at `depth` holds a list of `len` nodes through one handle, and a
 * handle to each node besides (many handles: several chunks), then
 * recurses, allocates garbage and checks its list. */
static void level(int depth, size_t len, uint64_t *rng) {
    rudo_scope s;
    rudo_scope_enter(&s);
    void **head = rudo_handle(NULL);
    uint64_t base = test_rand(rng) >> 16;
    void **each[128];
    for (size_t i = 0; i < len; i++) {
        *head = cons(base + i, head);
        each[i] = rudo_handle(*head);
    }
    if (depth > 0)
        level(depth - 1, len, rng);
    for (int g = 0; g < 200; g++) /* garbage: collections happen */
        (void)rudo_malloc(16 + test_rand(rng) % 300);
    check_list(*head, base, len);
    for (size_t i = 0; i < len; i++)
        if (((node *)*each[i])->val != base + i)
            atomic_fetch_add(&errors, 1);
    rudo_scope_exit(&s);
}

static void *mutator(void *arg) {
    uint64_t rng = 0x2545f4914f6cdd1dull * (1 + (uintptr_t)arg);
    if (rudo_thread_attach() != RUDO_OK) {
        atomic_fetch_add(&errors, 1);
        return NULL;
    }
    long rounds = test_scaled(TEST_UNDER_TSAN ? 20 : 80);
    for (long r = 0; r < rounds; r++)
        level(6, 20 + (size_t)(test_rand(&rng) % 100), &rng);
    atomic_fetch_sub(&running, 1);
    rudo_thread_detach();
    return NULL;
}

static void *collector(void *arg) {
    (void)arg;
    if (rudo_thread_attach() != RUDO_OK) {
        atomic_fetch_add(&errors, 1);
        return NULL;
    }
    /* Relaxed: only ends the loop; the joins order everything else. */
    while (atomic_load_explicit(&running, memory_order_relaxed) > 0)
        rudo_collect();
    rudo_thread_detach();
    return NULL;
}

static void run(unsigned markers) {
    rudo_config cfg = test_precise_config(markers);
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    static const uint64_t layout = 1; /* word 0 */
    k_node = rudo_kind_layout("hnode", 3, &layout);
    atomic_store(&running, MUTATORS);
    pthread_t t[MUTATORS + 1];
    rudo_blocking_enter();
    for (uintptr_t i = 0; i < MUTATORS; i++)
        pthread_create(&t[i], NULL, mutator, (void *)i);
    pthread_create(&t[MUTATORS], NULL, collector, NULL);
    for (int i = 0; i <= MUTATORS; i++)
        pthread_join(t[i], NULL);
    rudo_blocking_leave();
    rudo_stats st;
    rudo_get_stats(&st);
    CHECK(st.collections > 0);
    rudo_heap_destroy();
}

int main(void) {
    test_start_watchdog();
    run(1);
    run(3);
    CHECK_EQ(atomic_load(&errors), 0);
    return test_report();
}
