/*
 * buffer_churn.c — a hand-run measurement (docs/performance.md, "Zeroing,
 * large-object churn and the benchmarks' own roots"): allocates 1.6 GB of
 * pointer-free buffers of SIZE bytes, fills each with memset, keeps the
 * last 16 alive, and prints the time. UNINIT 1 uses a kind registered with
 * RUDO_KIND_UNINIT, 0 RUDO_KIND_ATOMIC.
 *
 *   cc -O2 -Iinclude tools/buffer_churn.c build-release/librudo.a -lpthread -o churn
 *   ./churn SIZE UNINIT
 */
#define _POSIX_C_SOURCE 200809L
#include <rudo.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv) {
    size_t size = argc > 1 ? strtoul(argv[1], NULL, 0) : 262144;
    int uninit = argc > 2 && atoi(argv[2]);
    if (size == 0) {
        fprintf(stderr, "usage: %s SIZE UNINIT\n", argv[0]);
        return 2;
    }
    rudo_config cfg;
    rudo_config_init(&cfg);
    if (rudo_heap_create(&cfg) != RUDO_OK)
        return 1;
    rudo_kind_desc d = {.name = "buffer", .tracing = RUDO_TRACE_ATOMIC};
    rudo_kind k = uninit ? rudo_kind_register_flags(&d, RUDO_KIND_UNINIT) : RUDO_KIND_ATOMIC;
    static void *window[16];
    rudo_root_add_range(window, window + 16);
    long n = 1600000000L / (long)size;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    unsigned long sum = 0;
    for (long i = 0; i < n; i++) {
        unsigned char *p = rudo_alloc(k, size);
        memset(p, (int)(i & 0xff), size);
        sum += p[size / 2];
        window[i % 16] = p;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("size %zu uninit %d: %.1f ms (checksum %lu)\n", size, uninit,
           (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6, sum);
    rudo_heap_destroy();
    return 0;
}
