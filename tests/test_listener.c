/* test_listener.c — the collection listener (rudo_set_gc_listener): begin,
 * then each phase in order with its time, then end; the event's per-phase
 * times; removal; misuse from inside it aborts. And the calling thread's
 * statistics (rudo_get_thread_stats). */
#include <stdio.h>
#include <stdlib.h>

#include "rudo.h"
#include "testlib.h"

static int order[16], norder;
static uint64_t begin_number, end_number, phase_sum;
static uint64_t end_phase_ns[RUDO_PHASE_COUNT], end_pause, end_ttsp;

static void on_begin(const rudo_gc_event *ev, void *data) {
    CHECK(data == &norder);
    begin_number = ev->number;
    if (norder < 16)
        order[norder++] = -1;
}
static void on_phase(rudo_gc_phase ph, uint64_t ns, void *data) {
    (void)data;
    if (norder < 16)
        order[norder++] = (int)ph;
    phase_sum += ns;
}
static void on_end(const rudo_gc_event *ev, void *data) {
    (void)data;
    end_number = ev->number;
    for (int i = 0; i < RUDO_PHASE_COUNT; i++)
        end_phase_ns[i] = ev->phase_ns[i];
    end_pause = ev->pause_ns;
    end_ttsp = ev->ttsp_ns;
    if (norder < 16)
        order[norder++] = 100;
}

static void thread_stats(void) {
    rudo_thread_stats a, b;
    rudo_get_thread_stats(&a);
    for (int i = 0; i < 1000; i++)
        (void)rudo_malloc_atomic(1000); /* about 1 MB */
    (void)rudo_malloc_atomic(200000);   /* a large object: 4 pages */
    rudo_collect();
    rudo_get_thread_stats(&b);
    CHECK(b.bytes_allocated - a.bytes_allocated >= 1000 * 1000 + 200000);
    CHECK(b.collections >= a.collections + 1);
    CHECK(b.collect_ns > a.collect_ns);
}

static void stats_null(void *a) {
    (void)a;
    rudo_heap_create(NULL);
    rudo_get_thread_stats(NULL);
}

static void alloc_in_begin(const rudo_gc_event *ev, void *data) {
    (void)ev;
    (void)data;
    (void)rudo_malloc(16);
}
static void listener_allocates(void *a) {
    (void)a;
    rudo_heap_create(NULL);
    rudo_gc_listener l = {.begin = alloc_in_begin};
    rudo_set_gc_listener(&l);
    rudo_collect();
}

int main(void) {
    rudo_config cfg = test_precise_config(2);
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    static void *keep;
    rudo_root_add(&keep);
    keep = rudo_malloc(64);
    rudo_gc_listener l = {on_begin, on_phase, on_end, &norder};
    rudo_set_gc_listener(&l);
    rudo_collect();
    int want[] = {-1, RUDO_PHASE_STOP, RUDO_PHASE_ROOTS, RUDO_PHASE_MARK,
                  RUDO_PHASE_WEAK_FINAL, RUDO_PHASE_SWEEP, 100};
    CHECK_EQ(norder, 7);
    bool in_order = norder == 7;
    for (int i = 0; i < 7 && i < norder; i++)
        in_order = in_order && order[i] == want[i];
    CHECK(in_order);
    CHECK(begin_number == end_number && end_number >= 1);
    uint64_t sum = 0;
    for (int i = 0; i < RUDO_PHASE_COUNT; i++)
        sum += end_phase_ns[i];
    CHECK_EQ(sum, phase_sum);
    CHECK_EQ(end_phase_ns[RUDO_PHASE_STOP], end_ttsp);
    /* The phases cover the pause (request to end) but for the statistics
     * and log after the sweep, which are not a phase. */
    CHECK(sum <= end_pause);
    /* Removed: not called. */
    rudo_set_gc_listener(NULL);
    norder = 0;
    rudo_collect();
    CHECK_EQ(norder, 0);
    thread_stats();
    rudo_root_remove(&keep);
    rudo_heap_destroy();
    expect_death("rudo_get_thread_stats(NULL)", stats_null, NULL,
                 "rudo: rudo_get_thread_stats: out is NULL");
    expect_death("rudo_alloc in a gc listener", listener_allocates, NULL,
                 "rudo: rudo_alloc: called from the trace callback of kind "
                 "'(gc listener)'");
    return test_report();
}
