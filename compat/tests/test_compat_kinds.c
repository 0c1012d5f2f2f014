/* test_compat_kinds.c — bdwgc's kinds, mark descriptors, mark procedures,
 * typed, gcj and finalized allocation, free lists, disclaim procedures,
 * GC_push_other_roots and the mark-bit calls, on rudo's libgc.so.1
 * (compiled against Debian's gc.h; the same binary runs on the system
 * libgc with LD_LIBRARY_PATH pointing elsewhere, and passes there too).
 *
 * The matrix: every descriptor type (LENGTH, BITMAP shorter and longer
 * than the object, PROC with env, PER_OBJECT at an offset and through a
 * type, typed bitmaps of every encoding, typed arrays) x sizes from 16
 * bytes to large objects x a pointer at several word positions x objects
 * from GC_generic_malloc_many. Each cell holds one pointer to a target;
 * the target must survive (its pattern intact) exactly when the
 * descriptor traces that word, and die otherwise (its finalized-malloc
 * closure runs). The holder's other words carry a pattern that must stay
 * intact. */
#include <gc.h>
#include <gc/gc_disclaim.h>
#include <gc/gc_gcj.h>
#include <gc/gc_mark.h>
#include <gc/gc_inline.h>
#include <gc/gc_typed.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat_test.h"

/* Exported, not declared by gc.h: ECL declares them itself. */
extern void (*GC_push_other_roots)(void);
void GC_print_free_list(int kind, size_t sz_in_granules);

#define MAXC 1200
#define MASK ((uintptr_t)0xa5a5a5a5a5a5a5a5u)

/* Targets: finalized objects, so their death is seen. */
static struct GC_finalizer_closure fcs[MAXC];
static volatile int dead[MAXC];
static int ntargets;

static void target_dies(void *obj, void *cd) {
    (void)obj;
    dead[(intptr_t)cd] = 1;
}

/* One cell of the matrix. */
struct cell {
    const char *what;
    size_t lb, pos, nw;
    int expect;          /* the word is traced: the target must live */
    uintptr_t hidden_t;  /* the target, hidden from the scan */
    int id;
    size_t skip;         /* a word that holds no pattern (descriptor, type) */
};
static struct cell cells[MAXC];
static int ncells;
/* The holders: the only references to them are here (static data). */
static void *holders[MAXC];

static GC_word pattern(int id, size_t i) { return ((GC_word)id << 20 | i) * 2 + 1; }

static void fill_target(GC_word *t, int id) {
    for (int i = 0; i < 8; i++)
        t[i] = pattern(id, (size_t)i + 1000);
}

/* ---- the descriptors ---- */
enum { D_NORMAL, D_ATOMIC, D_WHOLE, D_LEN64, D_BITMAP, D_PROC, D_PEROBJ,
       D_GCJ_LEN, D_GCJ_BITMAP, D_TYPED_SHORT, D_TYPED_ALL, D_TYPED_LONG,
       D_TYPED_ARRAY, D_COUNT };
static const char *dname[D_COUNT] = {
    "GC_malloc", "GC_malloc_atomic", "kind LENGTH 0 + size", "kind LENGTH 64",
    "kind BITMAP {0,3,5,61}", "kind PROC(env 3)", "kind PER_OBJECT +8",
    "gcj LENGTH", "gcj BITMAP {2}", "typed {0,2}", "typed all 4",
    "typed long {0,70,99}", "typed array 4w {1}"};
static unsigned k_whole, k_len64, k_bitmap, k_proc, k_perobj;
static GC_descr td_short, td_all, td_long, td_elem;
static volatile GC_word env_seen;
static int proc_calls_bad;

static GC_word bitmap_descr(const int *words, int n) {
    GC_word d = 0;
    for (int i = 0; i < n; i++)
        d |= (GC_word)1 << (63 - words[i]);
    return d | GC_DS_BITMAP;
}

/* Marks word env of the object (Guile's mark procedures filter with the
 * plausible bounds, as GC_MARK_AND_PUSH does). */
static struct GC_ms_entry *mark_word_env(GC_word *addr, struct GC_ms_entry *msp,
                                         struct GC_ms_entry *msl, GC_word env) {
    env_seen = env;
    if (env != 3)
        proc_calls_bad++;
    size_t nw = addr[0]; /* the holder's word count (its word 0) */
    if (env < nw)
        msp = GC_MARK_AND_PUSH((void *)addr[env], msp, msl, (void **)&addr[env]);
    /* Junk must be harmless. */
    msp = GC_MARK_AND_PUSH((void *)(uintptr_t)0xdeadbeef, msp, msl, NULL);
    msp = GC_MARK_AND_PUSH(GC_least_plausible_heap_addr, msp, msl, NULL);
    msp = GC_MARK_AND_PUSH(GC_greatest_plausible_heap_addr, msp, msl, NULL);
    return msp;
}

/* gcj types: word 1 holds the descriptor (MARK_DESCR_OFFSET). */
static GC_word gcj_types[MAXC][2];
static int ngcj;

static int traced(int d, size_t pos, size_t nw) {
    switch (d) {
    case D_NORMAL: case D_WHOLE: case D_GCJ_LEN: return 1;
    case D_ATOMIC: return 0;
    case D_LEN64: return pos < 8;
    case D_BITMAP: return pos == 0 || pos == 3 || pos == 5 || pos == 61;
    case D_PROC: return pos == 3;
    case D_PEROBJ: return pos == 0 || pos == 2;
    case D_GCJ_BITMAP: return pos == 2;
    case D_TYPED_SHORT: return pos == 0 || pos == 2;
    case D_TYPED_ALL: return pos < 4;
    case D_TYPED_LONG: return pos == 0 || pos == 70 || pos == 99;
    case D_TYPED_ARRAY: return pos % 4 == 1 && pos < nw - nw % 4;
    }
    return 0;
}

/* Allocates a holder of descriptor d and lb bytes; *skip: a reserved word. */
static GC_word *alloc_holder(int d, size_t lb, size_t *skip) {
    *skip = (size_t)-1;
    switch (d) {
    case D_NORMAL: return GC_malloc(lb);
    case D_ATOMIC: return GC_malloc_atomic(lb);
    case D_WHOLE: return GC_generic_malloc(lb, (int)k_whole);
    case D_LEN64: return GC_generic_malloc(lb, (int)k_len64);
    case D_BITMAP: return GC_generic_malloc(lb, (int)k_bitmap);
    case D_PROC: {
        GC_word *p = GC_generic_malloc(lb, (int)k_proc);
        p[0] = lb / sizeof(GC_word);
        *skip = 0;
        return p;
    }
    case D_PEROBJ: {
        GC_word *p = GC_generic_malloc(lb, (int)k_perobj);
        static const int w[] = {0, 2};
        p[1] = bitmap_descr(w, 2);
        *skip = 1;
        return p;
    }
    case D_GCJ_LEN: case D_GCJ_BITMAP: {
        GC_word *t = gcj_types[ngcj++];
        static const int w[] = {2};
        t[1] = d == D_GCJ_LEN ? (GC_word)lb : bitmap_descr(w, 1);
        *skip = 0;
        return GC_gcj_malloc(lb, t);
    }
    case D_TYPED_SHORT: return GC_malloc_explicitly_typed(lb, td_short);
    case D_TYPED_ALL: return GC_malloc_explicitly_typed(lb, td_all);
    case D_TYPED_LONG: return GC_malloc_explicitly_typed_ignore_off_page(lb, td_long);
    case D_TYPED_ARRAY: return GC_calloc_explicitly_typed(lb / 32, 32, td_elem);
    }
    return NULL;
}

/* Fills a holder, points word pos at a new target, records the cell. */
static void __attribute__((noinline)) add_cell(const char *what, GC_word *h,
                                               size_t lb, size_t pos, int expect,
                                               size_t skip) {
    if (ncells == MAXC || !h)
        return;
    struct cell *c = &cells[ncells];
    size_t nw = lb / sizeof(GC_word);
    int id = ntargets++;
    fcs[id].proc = target_dies;
    fcs[id].cd = (void *)(intptr_t)id;
    GC_word *t = GC_finalized_malloc(64, &fcs[id]);
    fill_target(t, id);
    for (size_t i = 0; i < nw; i++)
        if (i != skip)
            h[i] = pattern(id, i);
    h[pos] = (GC_word)t;
    *c = (struct cell){what, lb, pos, nw, expect, (uintptr_t)t ^ MASK, id, skip};
    holders[ncells++] = h;
}

static void __attribute__((noinline)) build_matrix(void) {
    static const size_t sizes[] = {16, 48, 256, 4096, 30000, 100000};
    for (int d = 0; d < D_COUNT; d++) {
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
            size_t lb = sizes[si];
            if (d == D_TYPED_ARRAY && lb < 32)
                continue;
            size_t nw = lb / sizeof(GC_word);
            if (d == D_TYPED_ARRAY)
                nw -= nw % 4;
            size_t pos[] = {0, 1, 2, 3, 61, 70, nw / 2, nw - 1};
            for (size_t pi = 0; pi < sizeof pos / sizeof *pos; pi++) {
                size_t skip;
                if (pos[pi] >= nw)
                    continue;
                int dup = 0;
                for (size_t pj = 0; pj < pi; pj++)
                    dup |= pos[pj] == pos[pi];
                if (dup)
                    continue;
                GC_word *h = alloc_holder(d, lb, &skip);
                if (pos[pi] == skip)
                    continue; /* that holder is garbage now */
                add_cell(dname[d], h, nw * sizeof(GC_word), pos[pi],
                         traced(d, pos[pi], nw), skip);
            }
        }
    }
    /* Objects from free lists (gc_inline.h's refill): the first object of
     * a list of kind NORMAL, of a BITMAP kind and of PTRFREE. */
    static const size_t fsizes[] = {16, 48, 256, 4096};
    static void *lists[3][4];
    (void)lists;
    for (size_t si = 0; si < 4; si++) {
        size_t lb = fsizes[si], nw = lb / sizeof(GC_word);
        int kinds[3] = {1, (int)k_bitmap, 0};
        for (int ki = 0; ki < 3; ki++) {
            size_t pos[] = {1, 3, nw - 1};
            for (size_t pi = 0; pi < 3; pi++) {
                if (pos[pi] >= nw)
                    continue;
                void *list = NULL;
                GC_generic_malloc_many(lb, kinds[ki], &list);
                CHECK(list != NULL);
                if (!list)
                    continue;
                GC_word *h = list;
                lists[ki][si] = (void *)h[0]; /* the rest stays a list */
                h[0] = 0;
                int expect = ki == 0 ? 1 : ki == 1 ? traced(D_BITMAP, pos[pi], nw) : 0;
                add_cell(ki == 0 ? "malloc_many NORMAL" : ki == 1 ?
                         "malloc_many BITMAP kind" : "malloc_many PTRFREE",
                         h, lb, pos[pi], expect, 0);
            }
        }
    }
}

/* Deep enough to overwrite what build_matrix left on the stack. The asm,
 * which takes buf's address, keeps the function and its memset: without
 * it GCC found the call without effect and dropped it (the buffer is dead
 * once it returns), and a pointer to the chain's head left by make_chain
 * stayed on the stack after a change elsewhere in the library moved the
 * frames. A memory clobber alone is not enough for clang: buf does not
 * escape, so the memset is dead. */
static void __attribute__((noinline, no_sanitize_address)) wipe_stack(void) {
    volatile char buf[64 * 1024];
    memset((char *)buf, 0, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory"); /* buf escapes: the memset stays */
}

/* A stop function that never stops: with one, bdwgc sweeps every block
 * before it collects (GC_reclaim_all), which runs the closures of what
 * the previous collection found dead; it otherwise sweeps lazily, when
 * it allocates. rudo runs them after each collection. */
static int never_stop(void) { return 0; }

static void collect(void) {
    GC_gcollect();
    GC_try_to_collect(never_stop);
    GC_try_to_collect(never_stop);
}

static void check_matrix(void) {
    int bad_live = 0, bad_dead = 0, bad_pattern = 0;
    for (int i = 0; i < ncells; i++) {
        struct cell *c = &cells[i];
        GC_word *h = holders[i];
        GC_word *t = (GC_word *)(c->hidden_t ^ MASK);
        for (size_t w = 0; w < c->nw; w++) {
            if (w == c->skip)
                continue;
            GC_word want = w == c->pos ? (GC_word)t : pattern(c->id, w);
            if (h[w] != want) {
                if (bad_pattern++ < 5)
                    fprintf(stderr, "%s, %zu bytes: word %zu changed\n", c->what, c->lb, w);
            }
        }
        if (c->expect && dead[c->id]) {
            if (bad_live++ < 10)
                fprintf(stderr, "%s, %zu bytes, pointer in word %zu: target died "
                        "but the word is traced\n", c->what, c->lb, c->pos);
        } else if (c->expect) {
            for (int w = 0; w < 8; w++)
                if (t[w] != pattern(c->id, (size_t)w + 1000))
                    bad_pattern++;
        }
        if (!c->expect && !dead[c->id]) {
            if (bad_dead++ < 10)
                fprintf(stderr, "%s, %zu bytes, pointer in word %zu: target "
                        "lives but the word is not traced\n", c->what, c->lb, c->pos);
        }
    }
    CHECK(bad_live == 0);
    CHECK(bad_dead == 0);
    CHECK(bad_pattern == 0);
}

/* ---- GC_push_other_roots, the mark bits, GC_mark_and_push outside ---- */
static void **hidden_roots; /* malloc'd: not scanned */
static void (*old_push)(void);
static int push_calls, marked_inside;
static void *set_bit_target_hidden;

static void push_roots(void) {
    push_calls++;
    GC_push_all(hidden_roots, hidden_roots + 1);
    GC_push_all_eager(hidden_roots + 1, hidden_roots + 2);
    GC_push_conditional(hidden_roots + 2, hidden_roots + 3, 1);
    void *t = (void *)((uintptr_t)set_bit_target_hidden ^ MASK);
    GC_set_mark_bit(t);
    marked_inside += GC_is_marked(t) != 0;
    if (old_push)
        old_push();
}

static void __attribute__((noinline)) make_push_targets(int ids[4]) {
    for (int i = 0; i < 4; i++) {
        ids[i] = ntargets;
        fcs[ntargets].proc = target_dies;
        fcs[ntargets].cd = (void *)(intptr_t)ntargets;
        GC_word *t = GC_finalized_malloc(64, &fcs[ntargets]);
        fill_target(t, ntargets);
        ntargets++;
        if (i < 3)
            hidden_roots[i] = t;
        else
            set_bit_target_hidden = (void *)((uintptr_t)t ^ MASK);
    }
}

static void test_push_other_roots(void) {
    hidden_roots = calloc(3, sizeof *hidden_roots);
    int ids[4];
    make_push_targets(ids);
    old_push = GC_push_other_roots;
    GC_push_other_roots = push_roots; /* ECL assigns it directly */
    CHECK(GC_get_push_other_roots() == push_roots);
    wipe_stack();
    collect();
    CHECK(push_calls >= 2);
    CHECK(marked_inside >= 2);
    for (int i = 0; i < 4; i++)
        CHECK(!dead[ids[i]]);
    GC_set_push_other_roots(old_push);
    CHECK(GC_get_push_other_roots() == old_push);
    int before = push_calls;
    wipe_stack();
    collect();
    CHECK(push_calls == before);
    for (int i = 0; i < 4; i++)
        CHECK(dead[ids[i]]);
    free(hidden_roots);
    /* Outside marking: harmless. */
    /* Outside marking: harmless (rudo ignores it; bdwgc pushes). */
    GC_word fake[8] = {0};
    struct GC_ms_entry *msp = (struct GC_ms_entry *)(void *)fake;
    struct GC_ms_entry *r = GC_mark_and_push(GC_malloc(16), msp, msp + 3, NULL);
    CHECK(r == msp || r == msp + 1);
}

/* ---- disclaim procedures ---- */
static unsigned k_disclaim;
static int disclaim_calls, disclaim_keep = 1, disclaim_foreign;
/* bdwgc also calls a disclaim procedure on free cells of the kind's
 * blocks (GC_finalized_malloc tags its closure to tell them apart): only
 * the object with the pattern counts. */
static int disclaim_proc(void *obj) {
    GC_word *w = obj;
    for (int i = 1; i < 4; i++)
        if (w[i] != pattern(77, (size_t)i)) {
            disclaim_foreign++;
            return 0;
        }
    disclaim_calls++;
    return disclaim_keep-- > 0; /* keep it the first time */
}
static void __attribute__((noinline)) make_disclaimed(void) {
    GC_word *w = GC_generic_malloc(64, (int)k_disclaim);
    for (int i = 1; i < 4; i++)
        w[i] = pattern(77, (size_t)i);
    if (getenv("CT_DEBUG"))
        fprintf(stderr, "disclaimed object %p\n", (void *)w);
}
static void test_disclaim(void) {
    k_disclaim = GC_new_kind(GC_new_free_list(), 0 | GC_DS_LENGTH, 1, 1);
    GC_register_disclaim_proc((int)k_disclaim, disclaim_proc, 1);
    make_disclaimed();
    wipe_stack();
    for (int i = 0; i < 4 && disclaim_calls < 2; i++)
        collect();
    CHECK(disclaim_calls == 2); /* kept once, then reclaimed */
    if (disclaim_foreign)
        printf("disclaim procedure called on %d free cells\n", disclaim_foreign);
}

/* mark_unconditionally: what a dying object references is kept, neither
 * disclaimed nor reclaimed, until its own procedure has run (bdwgc marks
 * from every object of the kind). A chain head -> .. -> tail dies whole:
 * each collection disclaims only the first object nothing dying points
 * to, so one object per collection, each seeing its successor intact. */
#define CHAIN 6
static unsigned k_chain;
static int chain_disclaimed, chain_broken;
static int chain_proc(void *obj) {
    GC_word *w = obj;
    if (w[2] != pattern(78, 2))
        return 0; /* a free cell, or not one of the chain's */
    GC_word *next = (GC_word *)w[1];
    if (next && next[2] != pattern(78, 2))
        chain_broken++; /* the successor was disclaimed (or reused) first */
    w[1] = 0;
    w[2] = 0; /* disclaimed: what a predecessor would see */
    chain_disclaimed++;
    return 0;
}
static void __attribute__((noinline)) make_chain(void) {
    GC_word *next = NULL;
    for (int i = 0; i < CHAIN; i++) {
        GC_word *w = GC_generic_malloc(32, (int)k_chain);
        w[1] = (GC_word)next;
        w[2] = pattern(78, 2);
        next = w;
    }
    (void)GC_generic_malloc(32, (int)k_chain); /* as make_marked */
}
static void test_disclaim_ordered(void) {
    k_chain = GC_new_kind(GC_new_free_list(), 0 | GC_DS_LENGTH, 1, 1);
    GC_register_disclaim_proc((int)k_chain, chain_proc, 1);
    make_chain();
    wipe_stack();
    for (int i = 0; i < 3 * CHAIN && chain_disclaimed < CHAIN; i++) {
        int before = chain_disclaimed;
        GC_gcollect(); /* one collection (collect() makes three) */
        if (getenv("CT_DEBUG"))
            fprintf(stderr, "collection %d: %d disclaimed\n", i, chain_disclaimed);
        CHECK(chain_disclaimed - before <= 1); /* one layer per collection */
    }
    CHECK(chain_disclaimed == CHAIN);
    CHECK(chain_broken == 0);
}

/* GC_is_marked in a disclaim procedure: the object is unmarked (found
 * unreachable) unless GC_set_mark_bit kept it since then (bdwgc's weak
 * map pattern, disclaim_weakmap_test); the mark lasts one cycle. Several
 * objects, each counting its calls in word 2: a stale stack word or
 * register may keep one of them (seen under ASan). */
#define MARKED_N 8
static unsigned k_marked;
static int marked_done, marked_bad;
static int marked_proc(void *obj) {
    GC_word *w = obj;
    if (w[1] != pattern(79, 1))
        return 0;
    if (GC_is_marked(obj))
        marked_bad++; /* found unreachable: not marked */
    if (++w[2] > 1) {
        marked_done++;
        return 0;
    }
    GC_set_mark_bit(obj); /* the weak map hands it out again */
    if (!GC_is_marked(obj))
        marked_bad++;
    return 1;
}
static void __attribute__((noinline)) make_marked(void) {
    for (int i = 0; i < MARKED_N; i++) {
        GC_word *w = GC_generic_malloc(32, (int)k_marked);
        w[1] = pattern(79, 1);
    }
    /* The last pointer returned may linger in a callee-saved register,
     * which wipe_stack does not reach: end with one that counts for
     * nothing (its word 1 is 0). */
    (void)GC_generic_malloc(32, (int)k_marked);
}
static void test_disclaim_set_mark(void) {
    k_marked = GC_new_kind(GC_new_free_list(), 0 | GC_DS_LENGTH, 1, 1);
    GC_register_disclaim_proc((int)k_marked, marked_proc, 1);
    make_marked();
    wipe_stack();
    for (int i = 0; i < 8 && marked_done < MARKED_N; i++)
        GC_gcollect();
    if (marked_done < MARKED_N - 1 || marked_bad)
        printf("marked: %d of %d done, %d bad\n", marked_done, MARKED_N, marked_bad);
    CHECK(marked_done >= 1); /* kept once by its mark, then disclaimed */
    CHECK(marked_bad == 0);
}

/* ---- kinds, sizes, numbering ---- */
static void test_kind_queries(void) {
    size_t sz = 0;
    void *p = GC_malloc(40);
    CHECK(GC_get_kind_and_size(p, &sz) == 1 && sz == GC_size(p));
    p = GC_malloc_atomic(40);
    CHECK(GC_get_kind_and_size(p, &sz) == 0 && sz == GC_size(p));
    p = GC_malloc_uncollectable(40);
    CHECK(GC_get_kind_and_size(p, NULL) == 2);
    GC_free(p);
    p = GC_generic_malloc(100, (int)k_bitmap);
    CHECK(GC_get_kind_and_size(p, &sz) == (int)k_bitmap && sz >= 100);
    p = GC_gcj_malloc(32, gcj_types[0]);
    CHECK(GC_get_kind_and_size(p, NULL) == GC_gcj_kind);
    CHECK(GC_gcj_kind >= 4 && GC_gcj_debug_kind >= 4);
    void *l = GC_malloc_many(24);
    int n = 0;
    for (void *q = l; q; q = *(void **)q, n++)
        CHECK(GC_base(q) == q && GC_size(q) >= 24);
    CHECK(n >= 1);
    void *big = NULL;
    GC_generic_malloc_many(64 * 1024, 1, &big);
    CHECK(big != NULL && GC_size(big) >= 64 * 1024 && *(void **)big == NULL);
    CHECK(GC_make_descriptor(NULL, 0) == 0);
    GC_word none = 0;
    CHECK(GC_make_descriptor(&none, 10) == 0); /* no pointers */
    GC_print_free_list(1, 2);
    GC_register_describe_type_fn((int)k_bitmap, NULL);
}

int main(void) {
    GC_INIT();
    k_whole = GC_new_kind(GC_new_free_list(), 0 | GC_DS_LENGTH, 1, 1);
    k_len64 = GC_new_kind(GC_new_free_list(), 64 | GC_DS_LENGTH, 0, 1);
    static const int bw[] = {0, 3, 5, 61};
    k_bitmap = GC_new_kind(GC_new_free_list(), bitmap_descr(bw, 4), 0, 1);
    unsigned pi = GC_new_proc(mark_word_env);
    CHECK(pi >= 8 && pi < 64); /* GC_RESERVED_MARK_PROCS */
    k_proc = GC_new_kind(GC_new_free_list(), GC_MAKE_PROC(pi, 3), 0, 1);
    k_perobj = GC_new_kind(GC_new_free_list(), 8 | GC_DS_PER_OBJECT, 0, 1);
    CHECK(k_whole >= 4 && k_len64 == k_whole + 1 && k_perobj == k_proc + 1);
    GC_init_gcj_malloc(0, NULL);
    GC_word bm[2] = {0, 0};
    GC_set_bit(bm, 0);
    GC_set_bit(bm, 2);
    td_short = GC_make_descriptor(bm, 3);
    GC_word all = 0xf;
    td_all = GC_make_descriptor(&all, 4);
    CHECK((td_all & 3) == GC_DS_LENGTH && td_all == 32);
    CHECK((td_short & 3) == GC_DS_BITMAP);
    GC_word lbm[2] = {0, 0};
    GC_set_bit(lbm, 0);
    GC_set_bit(lbm, 70);
    GC_set_bit(lbm, 99);
    td_long = GC_make_descriptor(lbm, 100);
    GC_word ebm = 2;
    td_elem = GC_make_descriptor(&ebm, 4);

    build_matrix();
    printf("%d cells\n", ncells);
    wipe_stack();
    for (int i = 0; i < 3; i++)
        collect();
    CHECK(env_seen == 3 && proc_calls_bad == 0);
    check_matrix();
    test_push_other_roots();
    test_disclaim();
    test_disclaim_ordered();
    test_disclaim_set_mark();
    test_kind_queries();
    return ct_report();
}
