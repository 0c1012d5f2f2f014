/* test_thr_thaw_dead_above.c — a dead cell above a frozen thread's list
 * head is freed once and finalized once.
 *
 * The fuzzer's repro (test_thr_gen_fuzz, case 0), made exact. Page P of
 * class C holds 64 objects of a kind with a kind finalizer, made by the
 * main thread; all but cells 1 and 2 stay rooted, and collections leave
 * P with those two cells free. Worker W (RUDO_ATTACH_SIGNAL) takes P for
 * class C (its list: cells 1 and 2) and allocates cell 1. With W suspended
 * by signal in a spin, the main thread drops X (a cell above W's head)
 * and collects twice: the first finds X unreachable and runs its
 * finalizer; the second finds it dead for good. Then W allocates cell 2
 * and refills, which retires P: its cells from exact_below up to the head
 * count as allocated. The thaw of the second collection used to free X
 * (not on W's list), so that retirement made it allocated again, with its
 * fin bit clear: the next collection ran X's finalizer a second time (and
 * in a RUDO_DEBUG build on a poisoned cell). Checked: X is finalized
 * exactly once over further collections; the rooted objects keep their
 * contents. Both modes (generations off and on), markers 1 and 2, and X
 * at several cells above the head. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heap/heap.h" /* RUDO_PAGE_SIZE */
#include "rudo.h"
#include "testlib.h"

#define CELL 1024 /* a class whose cells fill a 64 KiB page exactly */
#define NCELLS (RUDO_PAGE_SIZE / CELL)

static rudo_kind k_obj;
static void *objs[NCELLS]; /* registered as a conservative range */
static _Atomic(void *) x_addr;
static atomic_int x_finals, other_finals;
static atomic_int step, spin_at;
static void *got[3]; /* W's objects (read after the join) */

static void on_final(void *obj, void *data) {
    (void)data;
    if (obj == atomic_load(&x_addr))
        atomic_fetch_add(&x_finals, 1);
    else
        atomic_fetch_add(&other_finals, 1);
}

/* W: step 1 takes P and allocates cell 1; spins (suspended by signal each
 * collection) until step 2; allocates cell 2 and one more object (the
 * refill retires P); step 3 done. It never holds X. */
static void *worker(void *arg) {
    (void)arg;
    if (rudo_thread_attach_flags(RUDO_ATTACH_SIGNAL) != RUDO_OK)
        abort();
    void *volatile a = rudo_alloc(k_obj, CELL);
    atomic_store(&spin_at, 1);
    atomic_store(&step, 1);
    while (atomic_load_explicit(&step, memory_order_relaxed) != 2)
        ;
    void *volatile b = rudo_alloc(k_obj, CELL);
    void *volatile c = rudo_alloc(k_obj, CELL);
    got[0] = a;
    got[1] = b;
    got[2] = c;
    atomic_store(&step, 3);
    rudo_thread_detach();
    return NULL;
}

static __attribute__((noinline)) void set_x(size_t xi) {
    atomic_store(&x_addr, objs[xi]);
}

static __attribute__((noinline)) void drop(size_t xi) {
    objs[xi] = NULL;
}

/* P's address, inverted: a word on a scanned stack equal to a cell's
 * address would keep that cell alive. */
static uintptr_t page_inv;

/* Makes P's 64 objects (out of line: no copy of them stays in run's
 * frame); true if they are one page's cells in order. */
static __attribute__((noinline)) bool fill(void) {
    for (size_t i = 0; i < NCELLS; i++) {
        objs[i] = rudo_alloc(k_obj, CELL);
        memset(objs[i], 0, CELL);
        ((size_t *)objs[i])[1] = i; /* a tag, not a pointer */
    }
    page_inv = ~(uintptr_t)objs[0];
    bool one_page = ~page_inv % RUDO_PAGE_SIZE == 0;
    for (size_t i = 1; i < NCELLS; i++)
        one_page &= (uintptr_t)objs[i] == ~page_inv + i * CELL;
    return one_page;
}

static void run(bool gen, unsigned markers, size_t xi) {
    /* Stacks are scanned: signal suspension needs it. The main thread's
     * stale copies of X are scrubbed (test_scrub_stack) before each
     * collection. */
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.scan_static_data = false;
    cfg.markers = markers;
    cfg.generational = gen;
    cfg.nursery = 64u << 20; /* no collection but the test's */
    cfg.initial_heap = 64u << 20;
    test_heap_create(&cfg);
    k_obj = rudo_kind_conservative("thaw/obj");
    rudo_kind_set_finalizer(k_obj, on_final, NULL);
    memset(objs, 0, sizeof objs);
    rudo_root_add_range(objs, objs + NCELLS);
    bool one_page = fill();
    test_scrub_stack();
    CHECK(one_page);
    if (!one_page) {
        fprintf(stderr, "the %zu objects are not the cells of one page\n", (size_t)NCELLS);
        rudo_root_remove_range(objs);
        rudo_heap_destroy();
        return;
    }
    /* Cells 1 and 2 die: P gets a list of two. (Not cell 0: a word equal
     * to the page's start, somewhere the collector scans, kept it.) */
    drop(1);
    drop(2);
    test_scrub_stack();
    rudo_collect(); /* finalizes them */
    rudo_collect(); /* frees them */
    set_x(xi);
    atomic_store(&x_finals, 0);
    atomic_store(&other_finals, 0);
    atomic_store(&step, 0);
    atomic_store(&spin_at, 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, worker, NULL), 0);
    while (atomic_load(&step) != 1)
        rudo_safepoint();
    drop(xi); /* X dies, above W's head */
    /* Finds X unreachable: its finalizer runs (a stale word the scrub
     * missed may keep it one more time). */
    for (int n = 0; n < 5 && atomic_load(&x_finals) == 0; n++) {
        test_scrub_stack();
        rudo_collect();
    }
    CHECK_EQ(atomic_load(&x_finals), 1);
    test_scrub_stack();
    rudo_collect(); /* X dead for good; W frozen (this thaw freed X) */
    atomic_store(&step, 2);
    rudo_blocking_enter();
    pthread_join(t, NULL);
    rudo_blocking_leave();
    CHECK_EQ(atomic_load(&step), 3);
    /* The scenario: W's first two objects were P's cells 1 and 2. */
    char *page = (char *)~page_inv;
    CHECK(got[0] == page + CELL && got[1] == page + 2 * CELL);
    if (getenv("THAW_DEBUG"))
        fprintf(stderr, "gen %d mk %u xi %zu: a %p b %p c %p page %p x_finals %d\n", gen, markers, xi,
                got[0], got[1], got[2], (void *)page, atomic_load(&x_finals));
    for (int n = 0; n < 3; n++)
        rudo_collect();
    if (atomic_load(&x_finals) != 1)
        fprintf(stderr, "gen %d, markers %u, X at cell %zu: finalized %d times\n", gen,
                markers, xi, atomic_load(&x_finals));
    CHECK_EQ(atomic_load(&x_finals), 1);
    for (size_t i = 0; i < NCELLS; i++)
        if (objs[i])
            CHECK_EQ(((size_t *)objs[i])[1], i);
    rudo_root_remove_range(objs);
    rudo_heap_destroy();
}

int main(void) {
    test_start_watchdog();
    static const size_t cells[] = {3, 5, 33, NCELLS - 1};
    for (int gen = 0; gen < 2; gen++)
        for (unsigned mk = 1; mk <= 2; mk++)
            for (size_t c = 0; c < sizeof cells / sizeof cells[0]; c++)
                run(gen == 1, mk, cells[c]);
    return test_report();
}
