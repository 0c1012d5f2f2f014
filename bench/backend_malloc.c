/*
 * backend_malloc.c — the benchmark interface on explicit malloc/free:
 * glibc's allocator, or mimalloc's (mi_malloc/mi_calloc/mi_free, called by
 * name rather than by symbol interposition) when built with BK_MIMALLOC.
 *
 * Nodes and blobs come from malloc (the benchmarks write every field),
 * pointer arrays from calloc (they must start NULL). There are no
 * collections, so no pauses are recorded.
 */
#include "backend.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef BK_MIMALLOC
#include <mimalloc.h>
#define SYS_MALLOC mi_malloc
#define SYS_CALLOC mi_calloc
#define SYS_FREE mi_free
#define SYS_NAME "mimalloc"
#else
#define SYS_MALLOC malloc
#define SYS_CALLOC calloc
#define SYS_FREE free
#define SYS_NAME "glibc"
#endif

const char *bk_name(void) { return SYS_NAME; }

void bk_init(unsigned threads) { (void)threads; }
void bk_thread_attach(void) {}
void bk_thread_detach(void) {}
void bk_blocking_enter(void) {}
void bk_blocking_leave(void) {}

bk_type bk_node_type(const char *name, size_t size, unsigned nptrs) {
    (void)name;
    (void)nptrs;
    return (bk_type){.size = (uint32_t)size, .id = 0};
}

static void *check(void *p, size_t size) {
    if (p == NULL) {
        fprintf(stderr, "bench: %s: out of memory allocating %zu bytes\n", SYS_NAME, size);
        exit(1);
    }
    return p;
}

void *bk_alloc(bk_type t) { return check(SYS_MALLOC(t.size), t.size); }
void **bk_alloc_ptrs(size_t n) { return check(SYS_CALLOC(n, sizeof(void *)), n * sizeof(void *)); }
void *bk_alloc_blob(size_t size) { return check(SYS_MALLOC(size), size); }
void bk_heap_limit(size_t bytes) { (void)bytes; }

void bk_free(void *p) { SYS_FREE(p); }

void bk_root_add(void **slot) { (void)slot; }
void bk_root_remove(void **slot) { (void)slot; }
void bk_collect(void) {}

/* No collector, no weak slots: bench/weak_refs.c is built for the collector
 * backends only (BENCH_GC_ONLY); these keep the interface complete. */
bool bk_has_weak(void) { return false; }
void bk_weak_register(void **slot) { (void)slot; }
void bk_weak_unregister(void **slot) { (void)slot; }
int64_t bk_weak_cleared_total(void) { return -1; }
int64_t bk_ephemerons_cleared_total(void) { return -1; }
unsigned bk_markers(void) { return 0; }

void bk_print_marker_stats(void) {}

void bk_result_extra(char *buf, size_t size) {
    if (size > 0)
        buf[0] = '\0';
}
