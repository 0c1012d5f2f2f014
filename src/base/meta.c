/* meta.c — memory for the collector's own growable tables, and a sort
 * that allocates nothing (base.h).
 *
 * Why not malloc: while the world is stopped, a mutator stopped by the
 * suspend signal may be anywhere, inside malloc too, holding the lock of
 * its glibc arena. A marker that then calls realloc on a block of that
 * arena (a block is freed and grown in the arena it came from, whichever
 * thread asks), or any thread that shares the arena (glibc shares arenas
 * once there are more threads than 8 per core), waits on that lock for
 * ever: the stopped thread resumes only when the collection ends. bdwgc
 * avoids malloc in its collector for the same reason. The tables that
 * grow during a collection (mark stacks, deques, inboxes, the weak and
 * ephemeron lists, the finalization queues, the root tasks) therefore
 * live in their own mappings: mmap and munmap take no user-space
 * lock. glibc's qsort may call malloc for its buffer, hence rudo__sort.
 *
 * Each block is a mapping of whole pages, its first 16 bytes holding its
 * length. The tables are few and grow by doubling, so the rounding to
 * pages costs little. */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "platform/platform.h"

/* The header keeps the block 16-byte aligned, as malloc's are. */
#define HDR 16u

static size_t page_size(void) {
    /* Relaxed: every thread computes and stores the same value. */
    static _Atomic size_t ps;
    size_t v = atomic_load_explicit(&ps, memory_order_relaxed);
    if (!v) {
        v = (size_t)sysconf(_SC_PAGESIZE);
        atomic_store_explicit(&ps, v, memory_order_relaxed);
    }
    return v;
}

/* The mapping length for a block of `size` bytes; 0 if it overflows. */
static size_t map_len(size_t size) {
    size_t ps = page_size();
    if (size > SIZE_MAX - HDR - ps)
        return 0;
    return (size + HDR + ps - 1) & ~(ps - 1);
}

void *rudo__meta_alloc(size_t size) {
    size_t len = map_len(size);
    char *p = len ? rudo__os_map(len) : NULL;
    if (!p)
        return NULL;
    memcpy(p, &len, sizeof len);
    return p + HDR;
}

void *rudo__meta_realloc(void *q, size_t size) {
    if (!q)
        return rudo__meta_alloc(size);
    char *p = (char *)q - HDR;
    size_t old, len = map_len(size);
    memcpy(&old, p, sizeof old);
    if (!len)
        return NULL;
    if (len == old)
        return q;
    /* A new mapping and a copy rather than mremap: ThreadSanitizer does
     * not see mremap, and took a block moved into addresses another
     * thread's block had left for a race. Tables grow by doubling, so the
     * copies cost O(1) per element. */
    char *n = rudo__os_map(len);
    if (!n)
        return NULL;
    memcpy(n + HDR, q, (old < len ? old : len) - HDR);
    memcpy(n, &len, sizeof len);
    rudo__os_unmap(p, old);
    return n + HDR;
}

void *rudo__meta_realloc_n(void *q, size_t n, size_t size) {
    return size && n > SIZE_MAX / size ? NULL : rudo__meta_realloc(q, n * size);
}

void rudo__meta_free(void *q) {
    if (!q)
        return;
    char *p = (char *)q - HDR;
    size_t len;
    memcpy(&len, p, sizeof len);
    rudo__os_unmap(p, len);
}

/* ---- sorting ---------------------------------------------------------------- */

static void swap_bytes(char *a, char *b, size_t size) {
    while (size--) {
        char t = *a;
        *a++ = *b;
        *b++ = t;
    }
}

/* Moves element i down the max-heap of n elements. */
static void sift(char *base, size_t i, size_t n, size_t size,
                 int (*cmp)(const void *, const void *)) {
    for (;;) {
        size_t big = i, l = 2 * i + 1, r = l + 1;
        if (l < n && cmp(base + l * size, base + big * size) > 0)
            big = l;
        if (r < n && cmp(base + r * size, base + big * size) > 0)
            big = r;
        if (big == i)
            return;
        swap_bytes(base + i * size, base + big * size, size);
        i = big;
    }
}

void rudo__sort(void *items, size_t n, size_t size, int (*cmp)(const void *, const void *)) {
    /* Heapsort: O(n log n) in the worst case, in place, no allocation. */
    char *base = items;
    if (n < 2)
        return;
    for (size_t i = n / 2; i-- > 0;)
        sift(base, i, n, size, cmp);
    for (size_t end = n - 1; end > 0; end--) {
        swap_bytes(base, base + end * size, size);
        sift(base, 0, end, size, cmp);
    }
}
