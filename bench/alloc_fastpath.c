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
 * Prints: RESULT bench=alloc-fastpath backend=rudo count=N ns_per_alloc=X
 * (the time is native only when not run under valgrind).
 */
#include <rudo.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

int main(int argc, char **argv) {
    long count = 1000000;
    for (int i = 1; i + 1 < argc; i++)
        if (argv[i][0] == '-' && argv[i][1] == '-' && argv[i][2] == 'c')
            count = strtol(argv[i + 1], NULL, 10);
    if (count < 1)
        return 2;
    int err = rudo_heap_create(NULL);
    if (err != RUDO_OK) {
        fprintf(stderr, "alloc-fastpath: rudo_heap_create: %s\n", rudo_strerror(err));
        return 1;
    }
    static const uint64_t layout = 0x7; /* words 0-2 are pointers */
    rudo_kind kind = rudo_kind_layout("fastpath-node", 2, &layout);
    uint64_t t0 = now_ns();
    alloc_loop(kind, count);
    uint64_t t1 = now_ns();
    rudo_stats st;
    rudo_get_stats(&st);
    printf("RESULT bench=alloc-fastpath backend=rudo count=%ld ns_per_alloc=%.2f gc_count=%llu\n",
           count, (double)(t1 - t0) / (double)count, (unsigned long long)st.collections);
    return 0;
}
