/* test_meta.c — the collector's table memory and its sort (src/base/meta.c,
 * base.h): what base.h promises of each.
 *  - rudo__meta_alloc: zeroed, 16-byte aligned, every byte writable, for
 *    sizes around page boundaries; NULL for a size that cannot be mapped.
 *  - rudo__meta_realloc: keeps the contents when growing (across many
 *    pages, so that the mapping moves) and shrinking; zero bytes past the
 *    old end; NULL behaves as alloc; a failed growth leaves the block;
 *    rudo__meta_realloc_n refuses a count whose size overflows.
 *  - rudo__meta_free(NULL) does nothing.
 *  - rudo__sort orders as qsort does, for element sizes 1, 8 and 24 and
 *    lengths 0, 1, 2, 3 and up to 5000, sorted, reversed, all equal and
 *    random inputs (fixed seed). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "testlib.h"

static bool all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static void alloc_sizes(void) {
    static const size_t sizes[] = {1, 15, 16, 17, 4000, 4079, 4080, 4081, 4096, 8192, 65536, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = rudo__meta_alloc(sizes[i]);
        CHECK(p != NULL);
        if (!p)
            continue;
        CHECK_EQ((uintptr_t)p % 16, 0);
        CHECK(all_zero(p, sizes[i]));
        memset(p, 0xab, sizes[i]); /* every byte writable */
        rudo__meta_free(p);
    }
    CHECK(rudo__meta_alloc(SIZE_MAX) == NULL);
    CHECK(rudo__meta_alloc(SIZE_MAX - 8) == NULL);
    rudo__meta_free(NULL);
}

static void realloc_keeps(void) {
    size_t n = 10;
    uint32_t *p = rudo__meta_realloc(NULL, n * sizeof *p); /* as alloc */
    CHECK(p != NULL);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint32_t)(i * 2654435761u);
    /* Grow by doubling to 16 MiB: the mapping moves on the way. */
    while (p && n < (4u << 20)) {
        size_t m = n * 2;
        uint32_t *q = rudo__meta_realloc(p, m * sizeof *q);
        CHECK(q != NULL);
        if (!q)
            break;
        bool kept = true;
        for (size_t i = 0; i < n; i++)
            kept &= q[i] == (uint32_t)(i * 2654435761u);
        CHECK(kept);
        CHECK(all_zero((unsigned char *)(q + n), (m - n) * sizeof *q));
        for (size_t i = n; i < m; i++)
            q[i] = (uint32_t)(i * 2654435761u);
        p = q;
        n = m;
    }
    /* Shrink: the prefix stays. */
    uint32_t *s = rudo__meta_realloc(p, 100 * sizeof *s);
    CHECK(s != NULL);
    if (s) {
        bool kept = true;
        for (size_t i = 0; i < 100; i++)
            kept &= s[i] == (uint32_t)(i * 2654435761u);
        CHECK(kept);
        p = s;
    }
    /* A growth that cannot succeed returns NULL and leaves the block. */
    CHECK(rudo__meta_realloc(p, SIZE_MAX) == NULL);
    CHECK(rudo__meta_realloc_n(p, SIZE_MAX / 2, 4) == NULL); /* overflows */
    CHECK_EQ(p[99], (uint32_t)(99u * 2654435761u));
    rudo__meta_free(p);
}

/* Elements of 24 bytes, ordered by key then by nothing (ties allowed). */
typedef struct { uint64_t key, a, b; } wide;
static int cmp_u8(const void *x, const void *y) {
    return (int)*(const unsigned char *)x - (int)*(const unsigned char *)y;
}
static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}
static int cmp_wide(const void *x, const void *y) {
    return cmp_u64(&((const wide *)x)->key, &((const wide *)y)->key);
}

static uint64_t rng = 0x243F6A8885A308D3ull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Sorts a copy with rudo__sort and one with qsort: the keys must agree,
 * and the multiset of whole elements must be kept (sum of the payloads). */
static bool same_as_qsort(void *items, size_t n, size_t size,
                          int (*cmp)(const void *, const void *)) {
    unsigned char *a = malloc(n * size + 1), *b = malloc(n * size + 1);
    if (!a || !b)
        return false;
    memcpy(a, items, n * size);
    memcpy(b, items, n * size);
    rudo__sort(a, n, size, cmp);
    qsort(b, n, size, cmp);
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++)
        ok = cmp(a + i * size, b + i * size) == 0;
    uint64_t sa = 0, sb = 0;
    for (size_t i = 0; i < n * size; i++) {
        sa += a[i] * (uint64_t)(i % size + 1);
        sb += b[i] * (uint64_t)(i % size + 1);
    }
    free(a);
    free(b);
    return ok && sa == sb;
}

static void sort_matches_qsort(void) {
    static const size_t lens[] = {0, 1, 2, 3, 7, 64, 1000, 5000};
    static unsigned char u8[5000];
    static uint64_t u64[5000];
    static wide w[5000];
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        size_t n = lens[li];
        for (int shape = 0; shape < 4; shape++) { /* random, sorted, reversed, equal */
            for (size_t i = 0; i < n; i++) {
                uint64_t v = shape == 0 ? next() : shape == 1 ? i : shape == 2 ? n - i : 42;
                u8[i] = (unsigned char)v;
                u64[i] = v;
                w[i] = (wide){v % 97, next(), i};
            }
            bool ok = same_as_qsort(u8, n, 1, cmp_u8) && same_as_qsort(u64, n, 8, cmp_u64) &&
                      same_as_qsort(w, n, sizeof w[0], cmp_wide);
            if (!ok)
                fprintf(stderr, "rudo__sort differs from qsort: n %zu, shape %d\n", n, shape);
            CHECK(ok);
        }
    }
}

int main(void) {
    alloc_sizes();
    realloc_keeps();
    sort_matches_qsort();
    return test_report();
}
