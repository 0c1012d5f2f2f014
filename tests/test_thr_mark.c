/* Parallel marking: several markers share the work; termination is
 * correct (10 000 collections over small random graphs, every reachable
 * object marked, nothing unreachable marked, no marker left inside a mark
 * phase) under every combination of the stealing/inbox/routing switches;
 * the overflow slow path marks everything when deques cannot grow. */
#include <rudo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug/debug.h"
#include "mark/mark.h"
#include "testlib.h"

#define MAXN 200
#define EDGES 3

typedef struct node {
    struct node *e[EDGES];
    uint64_t id;
} node;

static void trace_node(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    node *n = obj;
    for (int i = 0; i < EDGES; i++)
        rudo_visit(tr, (void **)&n->e[i]);
}

static rudo_kind k_node;

static void make_heap(unsigned markers, const char *steal, const char *inbox,
                      const char *route) {
    setenv("RUDO_STEAL", steal, 1);
    setenv("RUDO_INBOX", inbox, 1);
    setenv("RUDO_ROUTE", route, 1);
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.markers = markers;
    cfg.scan_stacks = false;      /* precise roots only: marking is exact */
    cfg.scan_static_data = false;
    cfg.initial_heap = (size_t)64 << 20; /* only explicit collections */
    CHECK(rudo_heap_create(&cfg) == RUDO_OK);
    k_node = rudo_kind_traced("mark-node", trace_node);
}

/* --- termination stress ------------------------------------------------------ */

static void **roots; /* precise root slots (malloc'd, registered) */
enum { NROOTS = 8 };

static void stress(unsigned markers, const char *steal, const char *inbox,
                   const char *route, int collections, uint64_t seed) {
    make_heap(markers, steal, inbox, route);
    roots = calloc(NROOTS, sizeof *roots);
    for (int r = 0; r < NROOTS; r++)
        rudo_root_add(&roots[r]);
    node **all = malloc(MAXN * sizeof *all);
    int *reach = malloc(MAXN * sizeof *reach), *queue = malloc(MAXN * sizeof *queue);
    long bad_marked = 0, bad_unmarked = 0, bad_quiescent = 0;
    for (int c = 0; c < collections; c++) {
        int n = 1 + (int)(test_rand(&seed) % MAXN);
        for (int i = 0; i < n; i++) {
            all[i] = rudo_alloc(k_node, sizeof(node));
            all[i]->id = (uint64_t)i;
        }
        for (int i = 0; i < n; i++)
            for (int j = 0; j < EDGES; j++)
                all[i]->e[j] = test_rand(&seed) % 3 ? all[test_rand(&seed) % (uint64_t)n] : NULL;
        for (int r = 0; r < NROOTS; r++)
            roots[r] = test_rand(&seed) % 2 ? all[test_rand(&seed) % (uint64_t)n] : NULL;
        /* Shadow model: breadth-first search from the roots over ids. */
        memset(reach, 0, (size_t)n * sizeof *reach);
        int qh = 0, qt = 0;
        for (int r = 0; r < NROOTS; r++) {
            if (roots[r] && !reach[((node *)roots[r])->id]) {
                reach[((node *)roots[r])->id] = 1;
                queue[qt++] = (int)((node *)roots[r])->id;
            }
        }
        while (qh < qt) {
            node *x = all[queue[qh++]];
            for (int j = 0; j < EDGES; j++) {
                if (x->e[j] && !reach[x->e[j]->id]) {
                    reach[x->e[j]->id] = 1;
                    queue[qt++] = (int)x->e[j]->id;
                }
            }
        }
        rudo_collect();
        for (int i = 0; i < n; i++) {
            bool m = rudo__debug_is_marked(all[i]);
            if (reach[i] && !m)
                bad_unmarked++;
            if (!reach[i] && m)
                bad_marked++;
        }
        if (!rudo__debug_markers_quiescent())
            bad_quiescent++;
    }
    if (bad_unmarked || bad_marked || bad_quiescent)
        fprintf(stderr, "markers=%u steal=%s inbox=%s route=%s: %ld reachable unmarked, "
                "%ld unreachable marked, %ld phases left a marker busy\n",
                markers, steal, inbox, route, bad_unmarked, bad_marked, bad_quiescent);
    CHECK(bad_unmarked == 0);
    CHECK(bad_marked == 0);
    CHECK(bad_quiescent == 0);
    CHECK(rudo__debug_markers() == markers);
    free(all);
    free(reach);
    free(queue);
    for (int r = 0; r < NROOTS; r++)
        CHECK(rudo_root_remove(&roots[r]) == RUDO_OK);
    free(roots);
    rudo_heap_destroy();
}

/* --- more than one marker does the work ----------------------------------------- */

static node *tree(int depth) {
    node *n = rudo_alloc(k_node, sizeof(node));
    if (depth > 0) {
        n->e[0] = tree(depth - 1);
        n->e[1] = tree(depth - 1);
    }
    return n;
}

static void shared_work(void) {
    make_heap(4, "1", "1", "0");
    static void *root;
    rudo_root_add(&root);
    root = tree(17); /* 262 143 nodes */
    int spread = 0;
    for (int c = 0; c < 10; c++) {
        rudo_collect();
        rudo_marker_stats st[4];
        unsigned n = rudo_get_marker_stats(st, 4);
        CHECK(n == 4);
        uint64_t total = 0;
        int working = 0;
        for (unsigned i = 0; i < n && i < 4; i++) {
            total += st[i].objects_marked;
            working += st[i].objects_marked > 0;
        }
        CHECK(total == 262143);
        spread += working > 1;
    }
    printf("collections where more than one marker marked objects: %d of 10\n", spread);
    CHECK(spread > 0);
    CHECK(rudo_root_remove(&root) == RUDO_OK);
    rudo_heap_destroy();
}

/* --- overflow slow path ------------------------------------------------------------ */

/* With one marker the array is walked a chunk at a time (a chained chunk
 * pushed before each chunk's children), so the pushes that fail include
 * those of chained chunks: the page of the array is then deferred, and
 * the overflow pass walks it again from its first chunk. */
static void overflow(unsigned markers) {
    make_heap(markers, "1", "1", "0");
    static void *root;
    rudo_root_add(&root);
    enum { WIDE = 50000 };
    /* A wide conservative array: scanning it pushes WIDE objects at once. */
    void **arr = rudo_alloc_array(RUDO_KIND_CONSERVATIVE, WIDE, sizeof(void *));
    root = arr;
    for (int i = 0; i < WIDE; i++)
        arr[i] = tree(2);
    rudo__mark_fail_growth(1);
    rudo_collect();
    rudo_marker_stats st[2];
    unsigned n = rudo_get_marker_stats(st, 2);
    CHECK_EQ(n, markers);
    uint64_t overflows = 0, marked = 0;
    for (unsigned i = 0; i < n && i < 2; i++) {
        overflows += st[i].overflows;
        marked += st[i].objects_marked;
    }
    printf("overflow, %u marker(s): %llu deferred pushes, %llu objects marked\n",
           markers, (unsigned long long)overflows, (unsigned long long)marked);
    CHECK(overflows > 0);
    CHECK(marked == 1 + (uint64_t)WIDE * 7);
    long unmarked = 0;
    for (int i = 0; i < WIDE; i++) {
        node *t = arr[i];
        unmarked += !rudo__debug_is_marked(t) + !rudo__debug_is_marked(t->e[0]) +
                    !rudo__debug_is_marked(t->e[1]->e[1]);
    }
    CHECK(unmarked == 0);
    rudo__debug_verify_heap();
    CHECK(rudo_root_remove(&root) == RUDO_OK);
    rudo_heap_destroy();
}

/* Large objects are scanned in 8 KiB chunks shared among markers: every
 * pointer word of a big layout object (layouts of 3 and of 100 words, so
 * chunks start mid-struct) keeps its target, every other word does not. */
static void chunked_layouts(unsigned words) {
    make_heap(2, "1", "1", "0");
    enum { NW = 40000 }; /* 320 KB: 40 chunks */
    uint64_t layout[2] = {0, 0};
    for (unsigned i = 0; i < words; i += 2)
        layout[i / 64] |= (uint64_t)1 << (i % 64); /* even words are pointers */
    rudo_kind k_big = rudo_kind_layout("big", words, layout);
    static void *root;
    rudo_root_add(&root);
    void **big = rudo_alloc_array(k_big, NW, sizeof(void *));
    root = big;
    for (size_t i = 0; i < NW; i++)
        big[i] = rudo_alloc(k_node, sizeof(node));
    rudo_collect();
    long wrong = 0;
    for (size_t i = 0; i < NW; i++)
        wrong += rudo__debug_is_marked(big[i]) != ((i % words) % 2 == 0);
    if (wrong)
        fprintf(stderr, "layout of %u words: %ld words judged wrongly\n", words, wrong);
    CHECK(wrong == 0);
    CHECK(rudo_root_remove(&root) == RUDO_OK);
    rudo_heap_destroy();
}


/* --- chains and wide arrays ------------------------------------------------------
 * A linked list is traced object by object without the prefetch FIFO (a
 * chain: the FIFO is empty and the private stack holds one object), small
 * layout objects by a cached scan mask, and a wide array is cut into 8 KiB
 * chunks pushed on the shared deque. Each kind below takes a different
 * one of these paths; live nodes alternate with garbage nodes of the same
 * kind and size in their pages, so cell indices above 0 hold both. */

enum { CHAIN_W = 6 }; /* words per chain node: next at 0, back at 4 */

static void trace_chain(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    void **w = obj;
    rudo_visit(tr, &w[0]);
    rudo_visit(tr, &w[4]);
}

enum chain_kind { CK_LAYOUT, CK_LAYOUT_WIDE, CK_LAYOUT_BASE, CK_CONS, CK_CALLBACK, CK_N };
static const char *const chain_names[CK_N] = {"layout", "layout-100", "layout-base-only",
                                              "conservative", "callback"};

static rudo_kind chain_kind(enum chain_kind ck) {
    static uint64_t lay[2];
    switch (ck) {
    case CK_LAYOUT: /* words 0 and 4: the mask path; bits above 6 mean nothing */
        lay[0] = 0x11 | ((uint64_t)0xff << 8);
        return rudo_kind_layout("chain", CHAIN_W, lay);
    case CK_LAYOUT_WIDE: /* 100 words > 64: the general layout loop */
        lay[0] = 0x11;
        lay[1] = 0;
        return rudo_kind_layout("chain-100", 100, lay);
    case CK_LAYOUT_BASE: {
        lay[0] = 0x11;
        rudo_kind_desc d = {.name = "chain-base", .tracing = RUDO_TRACE_LAYOUT,
                            .layout = lay, .layout_words = CHAIN_W};
        return rudo_kind_register_flags(&d, RUDO_KIND_BASE_ONLY);
    }
    case CK_CONS:
        return rudo_kind_conservative("chain-cons");
    default:
        return rudo_kind_traced("chain-cb", trace_chain);
    }
}

/* One list of n nodes of kind ck, every 16th also holding (word 4) the
 * only pointer to a side leaf, interleaved with garbage nodes; the head is
 * the only root. Every live node and side leaf must be marked and intact,
 * every garbage node unmarked. */
static void chain_case(unsigned markers, enum chain_kind ck, size_t n, size_t bytes) {
    make_heap(markers, "1", "1", "0");
    rudo_kind k = chain_kind(ck);
    static void *root;
    rudo_root_add(&root);
    rudo_kind leaf = rudo_kind_atomic("chain-leaf");
    void ***live = malloc(n * sizeof *live), ***dead = malloc(n * sizeof *dead);
    void **side = malloc(n * sizeof *side);
    void **prev = NULL;
    for (size_t i = 0; i < n; i++) {
        void **x = rudo_alloc(k, bytes);
        dead[i] = rudo_alloc(k, bytes);
        x[0] = prev;
        x[1] = (void *)(uintptr_t)(i * 2 + 1); /* not a pointer word */
        side[i] = i % 16 == 5 ? rudo_alloc(leaf, 32) : NULL;
        x[4] = side[i];
        dead[i][0] = x; /* garbage pointing at live nodes keeps nothing */
        live[i] = x;
        prev = x;
    }
    root = prev;
    rudo_collect();
    long unmarked = 0, retained = 0, corrupt = 0;
    for (size_t i = 0; i < n; i++) {
        unmarked += !rudo__debug_is_marked(live[i]);
        retained += rudo__debug_is_marked(dead[i]);
        unmarked += side[i] && !rudo__debug_is_marked(side[i]);
        corrupt += live[i][0] != (i ? live[i - 1] : NULL) ||
                   live[i][1] != (void *)(uintptr_t)(i * 2 + 1);
    }
    if (unmarked || retained || corrupt)
        fprintf(stderr, "chain %s, %zu bytes, %u markers: %ld unmarked, %ld garbage kept, "
                "%ld corrupt\n", chain_names[ck], bytes, markers, unmarked, retained, corrupt);
    CHECK(unmarked == 0 && retained == 0 && corrupt == 0);
    free(live);
    free(dead);
    free(side);
    CHECK(rudo_root_remove(&root) == RUDO_OK);
    rudo_heap_destroy();
}

/* A wide array of nw words (all pointers, or every third word for the
 * conservative case's decoys) next to a list: sizes just below, at and
 * above one, two and four 8 KiB chunks (1024 words), with children at the
 * first and last word of every chunk. Only the array and the list are
 * roots; every child must be marked, no decoy target. */
static void wide_case(unsigned markers, bool conservative, size_t nw) {
    make_heap(markers, "1", "1", "0");
    static const uint64_t all = 1;
    rudo_kind k = conservative ? rudo_kind_conservative("wide-cons")
                               : rudo_kind_layout("wide", 1, &all);
    rudo_kind leaf = rudo_kind_atomic("wide-leaf");
    static void *root[2];
    rudo_root_add(&root[0]);
    rudo_root_add(&root[1]);
    void **arr = rudo_alloc_array(k, nw, sizeof(void *));
    void **kid = malloc(nw * sizeof *kid);
    root[0] = arr;
    for (size_t i = 0; i < nw; i++) {
        kid[i] = rudo_alloc(leaf, 16 + 16 * (i % 5));
        /* Conservative: every word a pointer; layout: also every word,
         * a NULL now and then (no child). */
        arr[i] = !conservative && i % 7 == 3 && i % 1024 != 0 && i % 1024 != 1023 &&
                         i + 1 != nw ? NULL : kid[i];
    }
    void **head = NULL;
    for (int i = 0; i < 3000; i++) {
        void **x = rudo_alloc(k_node, sizeof(node));
        x[0] = head;
        head = x;
    }
    root[1] = head;
    rudo_collect();
    long lost = 0, kept = 0;
    for (size_t i = 0; i < nw; i++) {
        if (arr[i])
            lost += !rudo__debug_is_marked(kid[i]);
        else
            kept += rudo__debug_is_marked(kid[i]);
    }
    if (lost || kept)
        fprintf(stderr, "wide %s array of %zu words, %u markers: %ld children lost, "
                "%ld kept\n", conservative ? "conservative" : "layout", nw, markers, lost, kept);
    CHECK(lost == 0 && kept == 0);
    free(kid);
    rudo_root_remove(&root[0]);
    rudo_root_remove(&root[1]);
    rudo_heap_destroy();
}

static void chains_and_arrays(void) {
    static const unsigned mks[] = {1, 2, 3, 8};
    /* Bytes per node: 48 (one struct per cell), 40 (a request smaller
     * than its cell), 100 (a 112-byte cell: the layout repeats, the second
     * struct cut by the cell). */
    static const size_t sizes[] = {48, 40, 100};
    static const size_t wides[] = {1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096, 4097, 40000};
    for (size_t m = 0; m < sizeof mks / sizeof mks[0]; m++) {
        for (int ck = 0; ck < CK_N; ck++)
            for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
                chain_case(mks[m], (enum chain_kind)ck, 20000,
                           ck == CK_LAYOUT_WIDE ? sizes[s] + 800 : sizes[s]);
        for (size_t w = 0; w < sizeof wides / sizeof wides[0]; w++) {
            wide_case(mks[m], false, wides[w]);
            wide_case(mks[m], true, wides[w]);
        }
    }
}

int main(int argc, char **argv) {
    int per = argc > 1 ? atoi(argv[1]) : 2000;
    shared_work();
    overflow(1);
    overflow(2);
    chunked_layouts(3);
    chunked_layouts(100);
    chains_and_arrays();
    /* 5 x 2000 = 10 000 collections, the switches in every useful mix. */
    stress(1, "1", "1", "0", per, 1);
    stress(4, "1", "0", "0", per, 2);
    stress(4, "1", "1", "0", per, 3);
    stress(4, "1", "1", "1", per, 4);
    stress(3, "0", "1", "1", per, 5);
    return test_report();
}
