/*
 * alloc_fastpath.c — instructions per small allocation (rudo only).
 *
 * alloc_loop() makes --count rudo_alloc(kind, 32) calls of a layout kind
 * (three pointer words and a data word, like mark_live's nodes); each object
 * is kept in a ring of 8 slots, so it lives for 8 allocations and then is
 * garbage. The loop is a separate, never-inlined function so that a
 * profiler can attribute instructions to it: under
 *     valgrind --tool=callgrind --toggle-collect=alloc_loop ./alloc-fastpath-rudo
 * the Ir collected is that of the loop alone, with everything it calls
 * (page refills, lazy sweeping, collections); divided by --count it is the
 * instructions per allocation, amortized. The loop's own Ir (self cost) is
 * the inline fast path plus the loop overhead.
 *
 * With --handles, it runs handle_loop() instead: --count times, a scope is
 * opened, two handles are made (to two objects of the ring) and the scope
 * is closed, what a runtime does around a call that may allocate. Under
 *     valgrind --tool=callgrind --toggle-collect=handle_loop ./alloc-fastpath-rudo --handles
 * the Ir divided by --count is the instructions per scope with two
 * handles (docs/performance.md, "Scoped handles").
 *
 * Prints: RESULT bench=alloc-fastpath backend=rudo count=N ns_per_alloc=X
 * or, with --handles, RESULT bench=handle-scope ... ns_per_scope=X
 * (the time is native only when not run under valgrind).
 */
#include <rudo.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The objects of the last 8 allocations; a global so the stores stay. */
void *volatile ring[8];

__attribute__((noinline)) void alloc_loop(rudo_kind kind, long count) {
    for (long i = 0; i < count; i++) {
        void *p = rudo_alloc(kind, 32);
        if (RUDO_UNLIKELY(p == NULL))
            abort();
        ring[i & 7] = p;
    }
}

/* The handles of the last scope; a global so the stores stay. */
void **volatile last_handles[2];

__attribute__((noinline)) void handle_loop(long count) {
    for (long i = 0; i < count; i++) {
        rudo_scope scope;
        rudo_scope_enter(&scope);
        last_handles[0] = rudo_handle(ring[i & 7]);
        last_handles[1] = rudo_handle(ring[(i + 1) & 7]);
        rudo_scope_exit(&scope);
    }
}

int main(int argc, char **argv) {
    long count = 1000000;
    int handles = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--handles") == 0)
            handles = 1;
        else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
            count = strtol(argv[++i], NULL, 10);
    }
    if (count < 1)
        return 2;
    int err = rudo_heap_create(NULL);
    if (err != RUDO_OK) {
        fprintf(stderr, "alloc-fastpath: rudo_heap_create: %s\n", rudo_strerror(err));
        return 1;
    }
    static const uint64_t layout = 0x7; /* words 0-2 are pointers */
    rudo_kind kind = rudo_kind_layout("fastpath-node", 2, &layout);
    if (handles) {
        alloc_loop(kind, 8); /* fill the ring */
        uint64_t t0 = now_ns();
        handle_loop(count);
        uint64_t t1 = now_ns();
        printf("RESULT bench=handle-scope backend=rudo count=%ld ns_per_scope=%.2f\n",
               count, (double)(t1 - t0) / (double)count);
        return 0;
    }
    uint64_t t0 = now_ns();
    alloc_loop(kind, count);
    uint64_t t1 = now_ns();
    rudo_stats st;
    rudo_get_stats(&st);
    printf("RESULT bench=alloc-fastpath backend=rudo count=%ld ns_per_alloc=%.2f gc_count=%llu\n",
           count, (double)(t1 - t0) / (double)count, (unsigned long long)st.collections);
    return 0;
}
