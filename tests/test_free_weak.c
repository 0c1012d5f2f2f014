/* test_free_weak.c — rudo.h: "A slot that lies inside a heap object is
 * forgotten when that object dies"; an object freed with rudo_free dies
 * too. X holds a registered weak slot (short or long, the slot's own value
 * or an explicit target) and is freed; Y, allocated next, takes X's cell;
 * when the old target dies, the collection must leave Y's word alone, and
 * the word must not be registered. Before, the registration stayed and the
 * collection wrote NULL into Y (found by a helper's fuzzer). Also: a weak
 * slot in a live neighbour of X is kept, and is cleared when its target
 * dies. Precise roots; the debug build's quarantine keeps X's cell, so the
 * reuse is checked only where it happens. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "rudo.h"
#include "testlib.h"

static void **root;

static void one(int mode) {
    /* mode: 0 short, own value; 1 short, explicit target; 2 long, own
     * value; 3 long, explicit target. */
    bool target = mode & 1, lng = mode & 2;
    rudo_config cfg = test_precise_config(1);
    test_heap_create(&cfg);
    root = calloc(4, sizeof *root);
    for (int i = 0; i < 4; i++)
        rudo_root_add(&root[i]);
    root[0] = rudo_alloc(RUDO_KIND_ATOMIC, 64); /* T, the target */
    uint64_t *x = rudo_alloc(RUDO_KIND_ATOMIC, 64);
    uint64_t *nb = rudo_alloc(RUDO_KIND_ATOMIC, 64); /* a live neighbour */
    root[1] = x;
    root[2] = nb;
    if (target) {
        x[1] = 0x1111;
        CHECK_EQ(lng ? rudo_weak_register_long_target((void **)&x[1], root[0])
                     : rudo_weak_register_target((void **)&x[1], root[0]),
                 RUDO_OK);
    } else {
        x[1] = (uint64_t)(uintptr_t)root[0];
        CHECK_EQ(lng ? rudo_weak_register_long((void **)&x[1]) : rudo_weak_register((void **)&x[1]),
                 RUDO_OK);
    }
    nb[1] = (uint64_t)(uintptr_t)root[0];
    CHECK_EQ(rudo_weak_register((void **)&nb[1]), RUDO_OK);
    rudo_collect(); /* X's page is no longer current: its cell can be reused */
    root[1] = NULL;
    rudo_free(x);
    CHECK_EQ(rudo_weak_registered((void **)&x[1]), 0);
    CHECK_EQ(rudo_weak_registered((void **)&nb[1]), RUDO_WEAK_SHORT);
    uint64_t *y = rudo_alloc(RUDO_KIND_ATOMIC, 64);
    root[3] = y;
    y[1] = 0x2222;
    root[0] = NULL; /* T dies */
    rudo_collect();
    CHECK_EQ(y[1], (uint64_t)0x2222);
    CHECK_EQ(rudo_weak_registered((void **)&y[1]), 0);
    /* The neighbour's slot did its job. */
    CHECK_EQ(nb[1], (uint64_t)0);
    if (y != x && !test_stress_on())
        fprintf(stderr, "mode %d: y did not take x's cell (checked anyway)\n", mode);
    for (int i = 0; i < 4; i++)
        rudo_root_remove(&root[i]);
    free(root);
    rudo_heap_destroy();
}

int main(void) {
    for (int mode = 0; mode < 4; mode++)
        one(mode);
    return test_report();
}
