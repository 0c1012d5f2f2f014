/*
 * backend_bdwgc.c — the benchmark interface on the Boehm-Demers-Weiser
 * collector as Debian ships it (libgc-dev, found through pkg-config bdw-gc).
 *
 * Used as a C program would use it by default: nodes and pointer arrays with
 * GC_MALLOC (conservative, all-interior-pointers on, so one byte is added to
 * each request), blobs with GC_MALLOC_ATOMIC, static data scanned for roots.
 * Threads are registered explicitly: bk_init calls GC_allow_register_threads
 * (which also starts the parallel marker threads: GC_MARKERS or the number
 * of CPUs), and each extra thread calls GC_register_my_thread /
 * GC_unregister_my_thread.
 *
 * A pause is GC_EVENT_START .. GC_EVENT_END: the whole collection as the
 * thread that runs it sees it (world stopped for the mark, then the eager
 * part of reclaim with the allocation lock held). Mark time is
 * GC_EVENT_MARK_START .. GC_EVENT_MARK_END.
 */
#define GC_THREADS 1
#include <gc.h>

#include "backend.h"
#include "common.h"

#include <stdio.h>
#include <stdlib.h>

const char *bk_name(void) { return "bdwgc"; }

/* Written only from the event callback, which bdwgc calls with its
 * allocation lock held: one collection at a time. */
static uint64_t g_start_ns, g_mark_start_ns, g_mark_ns;

static void GC_CALLBACK on_event(GC_EventType ev) {
    switch (ev) {
    case GC_EVENT_START:
        g_start_ns = bench_now_ns();
        g_mark_ns = 0;
        break;
    case GC_EVENT_MARK_START:
        g_mark_start_ns = bench_now_ns();
        break;
    case GC_EVENT_MARK_END:
        g_mark_ns = bench_now_ns() - g_mark_start_ns;
        break;
    case GC_EVENT_END:
        bench_gc_record(bench_now_ns() - g_start_ns, g_mark_ns);
        break;
    default:
        break;
    }
}

void bk_init(unsigned threads) {
    (void)threads;
    GC_INIT();
    GC_set_on_collection_event(on_event);
    GC_allow_register_threads();
}

void bk_thread_attach(void) {
    struct GC_stack_base sb;
    if (GC_get_stack_base(&sb) != GC_SUCCESS) {
        fprintf(stderr, "bench: GC_get_stack_base failed\n");
        exit(1);
    }
    if (GC_register_my_thread(&sb) != GC_SUCCESS) {
        fprintf(stderr, "bench: GC_register_my_thread failed\n");
        exit(1);
    }
}

void bk_thread_detach(void) { GC_unregister_my_thread(); }

void bk_blocking_enter(void) {}
void bk_blocking_leave(void) {}

bk_type bk_node_type(const char *name, size_t size, unsigned nptrs) {
    (void)name;
    (void)nptrs;
    return (bk_type){.size = (uint32_t)size, .id = 0};
}

void *bk_alloc(bk_type t) {
    void *p = GC_MALLOC(t.size);
    if (p == NULL) {
        fprintf(stderr, "bench: GC_MALLOC(%u) returned NULL\n", t.size);
        exit(1);
    }
    return p;
}

void **bk_alloc_ptrs(size_t n) {
    void **p = GC_MALLOC(n * sizeof(void *));
    if (p == NULL) {
        fprintf(stderr, "bench: GC_MALLOC(%zu pointers) returned NULL\n", n);
        exit(1);
    }
    return p;
}

void *bk_alloc_blob(size_t size) {
    void *p = GC_MALLOC_ATOMIC(size);
    if (p == NULL) {
        fprintf(stderr, "bench: GC_MALLOC_ATOMIC(%zu) returned NULL\n", size);
        exit(1);
    }
    return p;
}

/* bdwgc's maximum heap size counts its own block headers and free lists
 * and it runs out of memory at 2.5 times the live data of quads (106 MiB
 * for 43 MiB): the heap is grown to `bytes` instead, bdwgc's own notion of
 * a heap size (GC_INITIAL_HEAP_SIZE), and may grow past it. */
void bk_heap_limit(size_t bytes) {
    size_t now = GC_get_heap_size();
    if (bytes > now)
        GC_expand_hp(bytes - now);
}

void bk_free(void *p) { (void)p; }

/* Static data is scanned by default; nothing to register. */
void bk_root_add(void **slot) { (void)slot; }
void bk_root_remove(void **slot) { (void)slot; }

void bk_collect(void) { GC_gcollect(); }

/* Weak slots are disappearing links, registered the way gc.h describes
 * them: GC_general_register_disappearing_link(link, obj) with the link in
 * memory the collector does not scan. The benchmarks keep their slots in
 * malloc'd memory (bdwgc scans static data, stacks and its own heap, not
 * glibc's heap: "a pointer inside an atomic object is effectively
 * disguised", and so is one in malloc'd memory), so the slot holds the
 * plain pointer, not GC_HIDE_POINTER(obj), and reads NULL once cleared --
 * the same contract as rudo's slots. The link is bound to one object: a
 * slot that now holds another object is re-bound (GC_DUPLICATE: bdwgc
 * updates the existing link's object), and a link the collector cleared
 * has been dropped, so it is registered anew. The reads race with nothing:
 * the benchmarks have one mutator thread and every collection stops it. */
bool bk_has_weak(void) { return true; }

void bk_weak_register(void **slot) {
    int rc = GC_general_register_disappearing_link(slot, *slot);
    if (rc != GC_SUCCESS && rc != GC_DUPLICATE) {
        fprintf(stderr, "bench: GC_general_register_disappearing_link: %d\n", rc);
        exit(1);
    }
}

void bk_weak_unregister(void **slot) { (void)GC_unregister_disappearing_link(slot); }

int64_t bk_weak_cleared_total(void) { return -1; }
int64_t bk_ephemerons_cleared_total(void) { return -1; }

unsigned bk_markers(void) { return (unsigned)GC_get_parallel() + 1; }

void bk_print_marker_stats(void) {}

void bk_result_extra(char *buf, size_t size) {
    if (size > 0)
        buf[0] = '\0';
}
