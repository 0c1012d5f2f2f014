/*
 * softdirty_cost.c — a hand-run measurement (docs/performance.md,
 * "Soft-dirty bits for conservative pages"): for a region of MIB MiB, the
 * cost of resetting Linux's soft-dirty bits (/proc/self/clear_refs "4"),
 * of reading them back (/proc/self/pagemap, bit 55) after 1 % of the
 * pages were written, and of a conservative scan's floor over the same
 * words. Says so when the kernel does not set the bits.
 *
 *   cc -O2 tools/softdirty_cost.c -o softdirty && ./softdirty 32
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 32;
    if (mib == 0 || mib > 65536) {
        fprintf(stderr, "usage: %s MIB (1 to 65536)\n", argv[0]);
        return 2;
    }
    size_t bytes = mib << 20, np = bytes / 4096;
    char *r = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint64_t *ent = malloc(np * sizeof *ent);
    int cr = open("/proc/self/clear_refs", O_WRONLY), pm = open("/proc/self/pagemap", O_RDONLY);
    if (r == MAP_FAILED || !ent || cr < 0 || pm < 0) {
        perror("softdirty_cost");
        return 1;
    }
    memset(r, 1, bytes);
    off_t at = (off_t)((uintptr_t)r / 4096 * sizeof *ent);
    if (pread(pm, ent, sizeof *ent, at) != (ssize_t)sizeof *ent) {
        perror("pagemap");
        return 1;
    }
    if (!((ent[0] >> 55) & 1))
        printf("this kernel does not set soft-dirty bits (CONFIG_MEM_SOFT_DIRTY)\n");
    double best_clear = 1e30, best_read = 1e30, best_scan = 1e30;
    size_t dirty = 0;
    uintptr_t sink = 0;
    for (int rep = 0; rep < 7; rep++) {
        double a = now_ms();
        if (write(cr, "4", 1) != 1) {
            perror("clear_refs");
            return 1;
        }
        double b = now_ms();
        for (size_t i = 0; i < np; i += 100)
            r[i * 4096] = 2;
        double c = now_ms();
        if (pread(pm, ent, np * sizeof *ent, at) != (ssize_t)(np * sizeof *ent)) {
            perror("pagemap");
            return 1;
        }
        dirty = 0;
        for (size_t i = 0; i < np; i++)
            dirty += (ent[i] >> 55) & 1;
        double d = now_ms();
        const uintptr_t *w = (const uintptr_t *)(void *)r;
        uintptr_t lo = (uintptr_t)r;
        for (size_t i = 0; i < bytes / sizeof *w; i++)
            sink += w[i] - lo < bytes;
        double e = now_ms();
        best_clear = b - a < best_clear ? b - a : best_clear;
        best_read = d - c < best_read ? d - c : best_read;
        best_scan = e - d < best_scan ? e - d : best_scan;
    }
    printf("%zu MiB (%zu pages): clear_refs %.3f ms, pagemap read %.3f ms (%zu of %zu "
           "written pages seen), word scan %.3f ms (%lu)\n",
           mib, np, best_clear, best_read, dirty, (np + 99) / 100, best_scan,
           (unsigned long)sink);
    return 0;
}
