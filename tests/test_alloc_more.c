/* test_alloc_more.c — rudo_alloc_aligned (every power of two up to the
 * page size, small and large sizes) and rudo_realloc of every kind
 * (contents kept, tail zeroed, the resized object traced as its kind).
 * Precise setup: the registered root is the only root. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

static void *root;

typedef struct vec {
    size_t n;
    void *item[];
} vec;

static void trace_vec(void *obj, size_t size, rudo_tracer *tr) {
    vec *v = obj;
    /* Only slots inside the object: the realloc'd tail is zero. */
    size_t cap = (size - sizeof *v) / sizeof(void *);
    for (size_t i = 0; i < cap && i < v->n; i++)
        rudo_visit(tr, &v->item[i]);
}

static void test_aligned(void) {
    size_t sizes[] = {1, 16, 24, 100, 1000, 5000, 20000, 32768, 40000, 200000};
    size_t bad = 0, n = 0;
    for (size_t align = 1; align <= 65536; align *= 2) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            char *p = rudo_alloc_aligned(RUDO_KIND_ATOMIC, sizes[s], align);
            n++;
            if (!p || (uintptr_t)p % align || rudo_size(p) < sizes[s]) {
                if (bad++ < 5)
                    fprintf(stderr, "align %zu size %zu: %p size %zu\n", align,
                            sizes[s], (void *)p, p ? rudo_size(p) : 0);
                continue;
            }
            /* Zeroed and writable to the end. */
            bool zero = true;
            for (size_t i = 0; i < sizes[s]; i++)
                zero = zero && p[i] == 0;
            bad += !zero;
            memset(p, 0xab, sizes[s]);
        }
    }
    printf("rudo_alloc_aligned: %zu cases\n", n);
    CHECK_EQ(bad, (size_t)0);
}

static void test_realloc_kinds(void) {
    rudo_kind kv = rudo_kind_traced("more/vec", trace_vec);
    uint64_t lay[1] = {0x2}; /* word 1 of each 2-word struct is a pointer */
    rudo_kind kl = rudo_kind_layout("more/layout", 2, lay);
    /* A traced vector grown item by item through rudo_realloc. */
    vec *v = rudo_alloc(kv, sizeof *v + 2 * sizeof(void *));
    root = v;
    for (size_t i = 0; i < 300; i++) {
        size_t cap = (rudo_size(v) - sizeof *v) / sizeof(void *);
        if (v->n == cap) {
            vec *n = rudo_realloc(v, sizeof *v + 2 * cap * sizeof(void *));
            CHECK(n != NULL);
            CHECK_EQ(n->n, v->n);
            v = n;
            root = v;
        }
        char *item = rudo_malloc_atomic(16);
        memcpy(item, &i, sizeof i);
        v->item[v->n++] = item;
    }
    rudo_collect();
    size_t ok = 0;
    for (size_t i = 0; i < v->n; i++) {
        size_t got;
        memcpy(&got, v->item[i], sizeof got);
        ok += got == i && rudo__debug_is_marked(v->item[i]);
    }
    CHECK_EQ(ok, (size_t)300);
    /* A layout object: contents kept, tail zero, pointers traced. */
    void **l = rudo_alloc(kl, 4 * sizeof(void *));
    root = l;
    l[1] = rudo_malloc_atomic(16);
    l[3] = rudo_malloc_atomic(16);
    void **l2 = rudo_realloc(l, 64 * sizeof(void *));
    root = l2;
    CHECK(l2[1] == l[1] && l2[3] == l[3]);
    bool tail_zero = true;
    for (size_t i = 4; i < rudo_size(l2) / sizeof(void *); i++)
        tail_zero = tail_zero && l2[i] == NULL;
    CHECK(tail_zero);
    rudo_collect();
    CHECK(rudo__debug_is_marked(l2[1]) && rudo__debug_is_marked(l2[3]));
    /* Shrinking in place zeroes the tail past the new size. */
    void **s = rudo_realloc(l2, 2 * sizeof(void *));
    CHECK(s == l2);
    CHECK(l2[3] == NULL);
    root = NULL;
}

static void aligned_bad(void *a) {
    (void)a;
    rudo_config cfg;
    rudo_config_init(&cfg);
    rudo_heap_create(&cfg);
    (void)rudo_alloc_aligned(RUDO_KIND_ATOMIC, 16, 48);
}
static void aligned_huge(void *a) {
    (void)a;
    rudo_heap_create(NULL);
    (void)rudo_alloc_aligned(RUDO_KIND_ATOMIC, 16, (size_t)1 << 17);
}

int main(void) {
    rudo_config cfg = test_precise_config(0);
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    rudo_root_add(&root);
    test_aligned();
    test_realloc_kinds();
    rudo_root_remove(&root);
    rudo_heap_destroy();
    expect_death("rudo_alloc_aligned: alignment 48", aligned_bad, NULL,
                 "rudo: rudo_alloc_aligned: alignment 48 is not a power of two");
    expect_death("rudo_alloc_aligned: alignment 128 KiB", aligned_huge, NULL,
                 "rudo: rudo_alloc_aligned: alignment 131072");
    return test_report();
}
