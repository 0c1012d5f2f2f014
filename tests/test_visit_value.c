/* test_visit_value.c — rudo_visit_value, rudo_visit_range and
 * rudo_visit_is_marked (rudo.h), with 1 and 3 markers: a callback kind
 * that stores its references disguised (xor-ed, so no slot holds them)
 * and reports the decoded values; a root callback that reports a
 * malloc'd block as a range; interior values kept with interior_pointers
 * on, dropped with it off unless their displacement is registered; junk
 * values ignored. Liveness is observed through short weak slots (kept in
 * malloc'd memory, which is not scanned). Precise setup. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rudo.h"
#include "testlib.h"

#define KEY ((uintptr_t)0x5bd1e995u)
#define NREF 4

/* Word 0: count; words 1..NREF: references xor KEY (not pointers). */
/* After a value is reported, rudo_visit_is_marked says whether it was
 * marked: always for a live base, never for an interior value without the
 * interior rule. The verifier (RUDO_DEBUG) traces with its own tracer,
 * after marking: the same answers hold there. */
static int marked_bad, marked_calls;
static bool interior_mode, counting;
static void trace_hidden(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    uintptr_t *w = obj;
    for (uintptr_t i = 0; i < w[0] && i < NREF; i++) {
        void *v = (void *)(w[1 + i] ^ KEY);
        rudo_visit_value(tr, v);
        if (!counting)
            continue;
        marked_calls++;
        bool want = i != 1 || interior_mode;
        marked_bad += rudo_visit_is_marked(tr, v) != want;
    }
    /* Junk is ignored. */
    rudo_visit_value(tr, (void *)(uintptr_t)0xdeadbeef);
    rudo_visit_value(tr, (void *)(uintptr_t)8);
    rudo_visit_range(tr, w + 2, w + 1); /* empty */
}

static void **range_block; /* malloc'd; reported by the root callback */
static size_t range_words;
static void range_roots(rudo_tracer *tr, void *data) {
    (void)data;
    if (range_block)
        rudo_visit_range(tr, range_block, range_block + range_words);
}

static void *root;

static void run(unsigned markers, bool interior) {
    rudo_config cfg = test_precise_config(markers);
    cfg.interior_pointers = interior;
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    rudo_root_add(&root);
    rudo_kind k = rudo_kind_traced("hidden", trace_hidden);
    void **weak = calloc(2 * NREF + 2, sizeof *weak);
    uintptr_t *h = rudo_alloc(k, (NREF + 1) * sizeof(void *));
    root = h;
    for (int i = 0; i < NREF; i++) {
        char *t = rudo_alloc(RUDO_KIND_ATOMIC, 64);
        memset(t, 0x40 + i, 64);
        weak[i] = t;
        CHECK_EQ(rudo_weak_register(&weak[i]), RUDO_OK);
        /* Reference 1 points inside its target (offset 24). */
        h[1 + i] = ((uintptr_t)t + (i == 1 ? 24 : 0)) ^ KEY;
    }
    h[0] = 3; /* reference 3 is not reported */
    range_words = 4;
    range_block = calloc(range_words, sizeof *range_block);
    for (int i = 0; i < 2; i++) {
        char *t = rudo_alloc(RUDO_KIND_ATOMIC, 32);
        weak[NREF + i] = t;
        CHECK_EQ(rudo_weak_register(&weak[NREF + i]), RUDO_OK);
        range_block[1 + i] = t + (i == 1 ? 8 : 0);
    }
    CHECK_EQ(rudo_root_callback_add(range_roots, NULL), RUDO_OK);
    marked_bad = marked_calls = 0;
    interior_mode = interior;
    counting = true;
    for (int c = 0; c < 3; c++)
        rudo_collect();
    counting = false;
    CHECK(weak[0] != NULL);
    CHECK((weak[1] != NULL) == interior); /* interior value */
    CHECK(weak[2] != NULL);
    CHECK(weak[3] == NULL);              /* not reported: dies */
    CHECK(weak[NREF] != NULL);           /* range, base */
    CHECK((weak[NREF + 1] != NULL) == interior); /* range, interior */
    if (weak[0])
        CHECK(((char *)weak[0])[63] == 0x40);
    /* Each reported live target is marked after its visit. */
    CHECK(marked_calls >= 9 && marked_bad == 0);
    if (!interior) {
        /* With the displacement registered, interior values count. */
        CHECK_EQ(rudo_register_displacement(8), RUDO_OK);
        char *t = rudo_alloc(RUDO_KIND_ATOMIC, 32);
        weak[NREF + 1] = t; /* the slot is registered still */
        range_block[2] = t + 8;
        rudo_collect();
        CHECK(weak[NREF + 1] != NULL);
    }
    /* Dropping the range lets its targets die. */
    range_block[1] = range_block[2] = NULL;
    rudo_collect();
    CHECK(weak[NREF] == NULL && weak[NREF + 1] == NULL);
    CHECK_EQ(rudo_root_callback_remove(range_roots, NULL), RUDO_OK);
    free(range_block);
    range_block = NULL;
    for (int i = 0; i < NREF + 2; i++)
        rudo_weak_unregister(&weak[i]);
    free(weak);
    rudo_root_remove(&root);
    rudo_heap_destroy();
}

int main(void) {
    for (unsigned m = 1; m <= 3; m += 2) {
        run(m, true);
        run(m, false);
    }
    return test_report();
}
