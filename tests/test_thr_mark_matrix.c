/* test_thr_mark_matrix.c — marking, case by case, over the cross product
 *
 *     tracing mode (callback; layouts of 1 (every word), 2, 3, 5, 7, 64 and
 *                   100 words, some dividing the cell size and some not;
 *                   conservative; atomic)
 *   x size        (all 72 size classes, and large objects of 32768 + 16,
 *                   49152 - 16, 49152, 40000, 65536 + 16 and 200000 bytes)
 *   x cell        (index 0, 1 and the last cell of a fresh page)
 *   x markers     (1, 2, 3, 7, 8: more than the machine's cores is fine)
 *   x route x inbox (mark_route, mark_inbox on and off).
 *
 * Why: each dimension picks a different path through the marker. Objects
 * over 8 KiB are cut into 8 KiB chunks when more than one marker runs, and
 * a chunk must be scanned relative to its own cell (not the page) with the
 * layout phase of its own word offsets; the first cell of a page hides
 * mistakes there, so cells 1 and last are tested too. Routing and inboxes
 * move objects and chunks between markers.
 *
 * One case: a parent of the kind under test, the only precise root (the
 * heap scans neither stacks nor static data, so the set of survivors is
 * exact), holds child pointers in words the kind declares as pointers:
 * near the start, on both sides of every 8 KiB chunk boundary, in the
 * middle, in the last words, and at every pointer position of the last
 * full and last partial layout repeat. Every word the kind does not treat
 * as a pointer holds a "decoy" pointer. The cells right before and after the
 * parent in its page are garbage objects of the same kind whose every word
 * points to "garbage" children. After rudo_collect:
 *  - the parent and every child are marked and intact (contents written
 *    with an id-derived pattern), and the parent's words are unchanged;
 *  - no decoy, no garbage child and no neighbour cell is marked (a scan
 *    that reads the wrong words, or a neighbour's words, retains them);
 *  - for the atomic kind nothing but the parent is marked.
 *
 * Default (CI) mode runs, with a fixed seed: every case with an object over
 * 8 KiB under 1 marker and under 2 markers (all route/inbox combinations),
 * plus a deterministic random sample of the rest. TEST_LONG=1 (or the
 * argument --long) runs the whole product; TEST_SEED changes the sample
 * and the random slots; TEST_SAMPLE (per mille, default 200, 100 under
 * TSan) sets the size of the sample.
 * 
 * The environment's RUDO_MARKERS / RUDO_STEAL / RUDO_INBOX / RUDO_ROUTE are
 * cleared: each configuration sets them through rudo_config.
 *
 * Everything a case allocates is held in a registered root range until
 * its collection (and dropped with no allocation in between): in GC stress
 * mode (RUDO_GC_STRESS) the collections during its setup would otherwise
 * free the children, decoys and page run, and their memory could come back
 * as other objects of the case. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug/debug.h"
#include "heap/heap.h"
#include "rudo.h"
#include "testlib.h"

#define UNDER_TSAN TEST_UNDER_TSAN

#define WORD sizeof(void *)
#define CHUNK_W 1024 /* the marker's chunk, in words (8 KiB) */
#define ND 8         /* decoys per case */
#define NG 8         /* garbage children per case */

/* ---- variants (tracing modes) -------------------------------------------- */

enum mode { M_CALLBACK, M_LAYOUT, M_CONS, M_ATOMIC };

typedef struct variant {
    const char *name;
    enum mode mode;
    unsigned lw; /* layout words */
    uint64_t layout[2];
    rudo_kind kind; /* registered per heap */
} variant;

static variant variants[] = {
    {"callback", M_CALLBACK, 0, {0, 0}, 0}, {"layout1", M_LAYOUT, 1, {0, 0}, 0},
    {"layout2", M_LAYOUT, 2, {0, 0}, 0},
    {"layout3", M_LAYOUT, 3, {0, 0}, 0},    {"layout5", M_LAYOUT, 5, {0, 0}, 0},
    {"layout7", M_LAYOUT, 7, {0, 0}, 0},    {"layout64", M_LAYOUT, 64, {0, 0}, 0},
    {"layout100", M_LAYOUT, 100, {0, 0}, 0}, {"conservative", M_CONS, 0, {0, 0}, 0},
    {"atomic", M_ATOMIC, 0, {0, 0}, 0},
};
#define NVARIANTS (sizeof variants / sizeof variants[0])

/* Layout bit i: both pointer and non-pointer words in every repeat (for 2
 * words: 0 is a pointer, 1 is not), and the pattern is not periodic in a
 * divisor of the repeat, so a scan with the wrong phase visits wrong words. */
static bool layout_bit(unsigned lw, size_t i) { return i % 3 == 0 || i + 2 == lw; }

/* The callback kind's pointer words: every fourth from word 1, and the last. */
static bool cb_is_ptr(size_t i, size_t nw) { return i % 4 == 1 || i + 1 == nw; }

static void trace_cb(void *obj, size_t size, rudo_tracer *tr) {
    void **w = obj;
    size_t nw = size / WORD;
    for (size_t i = 1; i < nw; i += 4)
        rudo_visit(tr, &w[i]);
    if ((nw - 1) % 4 != 1)
        rudo_visit(tr, &w[nw - 1]);
}

/* Whether the kind treats word i of an nw-word object as a pointer. */
static bool is_ptr(const variant *v, size_t i, size_t nw) {
    switch (v->mode) {
    case M_CALLBACK:
        return cb_is_ptr(i, nw);
    case M_LAYOUT:
        return layout_bit(v->lw, i % v->lw);
    case M_CONS:
        return true;
    case M_ATOMIC:
        return false;
    }
    return false;
}

/* ---- what a case holds ---------------------------------------------------------- */

/* What the case being set up allocated so far (see the top), in malloc'd
 * memory registered as a root range while the heap lives. */
static void **hold;
static size_t nhold, hold_cap;

static void held(void *x) {
    if (nhold == hold_cap) {
        fprintf(stderr, "hold table full\n");
        abort();
    }
    hold[nhold++] = x;
}

static void hold_drop(void) {
    memset(hold, 0, nhold * sizeof *hold);
    nhold = 0;
}

/* ---- children -------------------------------------------------------------- */

typedef struct child {
    uint64_t magic, id, inv, hash;
} child;
#define CHILD_MAGIC 0x6d61747269786368ULL

static rudo_kind k_child;
static uint64_t next_child_id = 1;

static child *child_new(void) {
    child *c = rudo_alloc(k_child, sizeof *c);
    if (c == NULL) {
        fprintf(stderr, "rudo_alloc returned NULL\n");
        abort();
    }
    held(c);
    c->magic = CHILD_MAGIC;
    c->id = next_child_id++;
    c->inv = ~c->id;
    c->hash = test_mix64(c->id);
    return c;
}

static bool child_intact(const child *c) {
    return c->magic == CHILD_MAGIC && c->inv == ~c->id && c->hash == test_mix64(c->id);
}

/* ---- sizes ------------------------------------------------------------------- */

/* Large: just above the small classes (a last chunk of 2 words), exactly
 * six chunks and 16 bytes short of them, and beyond. */
static const size_t large_sizes[] = {32768 + 16, 49152 - 16, 49152, 40000, 65536 + 16, 200000};
#define NSIZES (RUDO_NCLASSES + sizeof large_sizes / sizeof large_sizes[0])

static size_t size_of_index(unsigned si) {
    return si < RUDO_NCLASSES ? rudo__class_size[si] : large_sizes[si - RUDO_NCLASSES];
}

/* Cells per page; 1 for a large object. */
static size_t ncells_of(size_t size) { return size > RUDO_SMALL_MAX ? 1 : RUDO_PAGE_SIZE / size; }

/* ---- statistics ---------------------------------------------------------------- */

static unsigned long cases_run, cases_bad, cases_skipped;
static unsigned long bad_in_bug_region; /* > 8 KiB small, cell >= 1, markers >= 2 */
static unsigned long bad_by_variant[NVARIANTS];
static unsigned long lost_children, retained_decoys, retained_garbage, marked_neighbours,
    unmarked_parents, corrupt;
static uint64_t rng;

/* Scratch (malloc'd: never a root). */
static void **run;       /* the objects of the current page run, by cell */
static uint8_t *role;    /* per parent word */
static child **kids;     /* child per child slot, in word order */
static size_t max_nw;

enum { R_PLAIN, R_CHILD, R_DECOY };

static void **root_slot; /* the single precise root */

/* The role of every word of an nw-word parent of variant v. */
static size_t assign_roles(const variant *v, size_t nw, uint64_t *crng) {
    for (size_t i = 0; i < nw; i++)
        role[i] = is_ptr(v, i, nw) || v->mode == M_CONS ? R_PLAIN : R_DECOY;
    if (v->mode == M_ATOMIC)
        return 0;
    /* Candidate words: the start, both sides of every chunk boundary (at
     * most 24 of them at 200000 bytes), the middle, the end, a few random. */
    size_t cand[8 + 4 * 32 + 1 + 8 + 8];
    size_t nc = 0;
    for (size_t i = 0; i < 8; i++)
        cand[nc++] = i;
    for (size_t b = CHUNK_W; b < nw && nc + 4 <= 8 + 4 * 32; b += CHUNK_W) {
        cand[nc++] = b - 2;
        cand[nc++] = b - 1;
        cand[nc++] = b;
        cand[nc++] = b + 1;
    }
    cand[nc++] = nw / 2;
    for (size_t i = 1; i <= 8 && i <= nw; i++)
        cand[nc++] = nw - i;
    for (int r = 0; r < 8; r++)
        cand[nc++] = (size_t)(test_rand(crng) % nw);
    for (size_t k = 0; k < nc; k++) {
        size_t c = cand[k];
        if (c >= nw)
            continue;
        /* The candidate itself if it is a pointer word, else the next one. */
        for (size_t j = c; j < nw && j < c + 256; j++)
            if (is_ptr(v, j, nw)) {
                role[j] = R_CHILD;
                break;
            }
    }
    /* The last pointer word, and for a layout every pointer position of the
     * last full repeat and of the last partial one (the chunk scanning the
     * tail must keep the layout phase of the object's own word offsets). */
    for (size_t j = nw; j-- > 0;)
        if (is_ptr(v, j, nw)) {
            role[j] = R_CHILD;
            break;
        }
    if (v->mode == M_LAYOUT) {
        size_t r0 = (nw / v->lw) * v->lw;
        size_t from = r0 >= v->lw ? r0 - v->lw : 0;
        for (size_t j = from; j < nw; j++)
            if (is_ptr(v, j, nw))
                role[j] = R_CHILD;
    }
    size_t n = 0;
    for (size_t i = 0; i < nw; i++)
        n += role[i] == R_CHILD;
    return n;
}

/* A non-pointer value for plain words of a conservative parent: outside
 * any user address range, so it can never look like a heap pointer. */
static uint64_t plain_word(size_t i) { return 0xa5a5000000000000ULL | (uint64_t)i; }

/* The word the parent must hold at index i. */
static void *expected_word(size_t i, size_t *ki, child *const *decoys, bool cons) {
    switch (role[i]) {
    case R_CHILD:
        return kids[(*ki)++];
    case R_DECOY:
        return decoys[i % ND];
    default:
        return cons ? (void *)(uintptr_t)plain_word(i) : NULL;
    }
}

static void report_case(const variant *v, size_t size, size_t pos, unsigned markers, bool route,
                        bool inbox, const char *what, size_t n) {
    if (cases_bad <= 25)
        fprintf(stderr,
                "  case %s size %zu cell %zu markers %u route %d inbox %d: %zu %s\n",
                v->name, size, pos, markers, route, inbox, n, what);
}

/* Each object of a page run is held (see the top). */
static void *run_alloc(rudo_kind kind, size_t size, void *data) {
    (void)data;
    void *x = rudo_alloc(kind, size);
    if (x == NULL) {
        fprintf(stderr, "rudo_alloc returned NULL\n");
        abort();
    }
    held(x);
    return x;
}

/* Allocates objects of (kind, size) until the current page run reaches
 * cell `need - 1` of a page whose cells were handed out in address order
 * from cell 0 (a fresh page, or one swept empty). Returns false if none
 * comes within a bound. */
static bool fill_run(rudo_kind kind, size_t size, size_t need) {
    return test_page_run(kind, size, need, 4 * ncells_of(size) + 64, run, run_alloc, NULL);
}

static void run_case(unsigned vi, size_t size, size_t pos, unsigned markers, bool route,
                     bool inbox) {
    const variant *v = &variants[vi];
    bool large = size > RUDO_SMALL_MAX;
    size_t ncells = ncells_of(size);
    uint64_t crng = test_mix64(rng ^ (vi * 1000003u + size * 31u + pos)) | 1;

    /* Children first (their own kind and pages), so nothing is allocated
     * between filling the page run and the collection. */
    size_t nw = (large ? (size + 15) / 16 * 16 : size) / WORD;
    size_t nkids = assign_roles(v, nw, &crng);
    for (size_t k = 0; k < nkids; k++)
        kids[k] = child_new();
    child *decoys[ND], *garbage[NG];
    for (int k = 0; k < ND; k++)
        decoys[k] = child_new();
    for (int k = 0; k < NG; k++)
        garbage[k] = child_new();

    void *parent, *before = NULL, *after = NULL;
    if (large) {
        parent = rudo_alloc(v->kind, size);
        if (parent == NULL) {
            fprintf(stderr, "rudo_alloc returned NULL\n");
            abort();
        }
        held(parent);
    } else {
        size_t need = pos + 2 <= ncells ? pos + 2 : ncells;
        if (!fill_run(v->kind, size, need)) {
            hold_drop();
            cases_skipped++;
            fprintf(stderr, "  skipped: %s size %zu cell %zu: no fresh page run\n", v->name, size,
                    pos);
            return;
        }
        parent = run[pos];
        before = pos > 0 ? run[pos - 1] : NULL;
        after = pos + 1 < ncells ? run[pos + 1] : NULL;
    }
    /* The position really is the one under test. */
    if (rudo_size(parent) != nw * WORD || rudo_kind_of(parent) != v->kind ||
        (!large && ((uintptr_t)parent & (RUDO_PAGE_SIZE - 1)) / size != pos)) {
        hold_drop();
        cases_skipped++;
        fprintf(stderr, "  skipped: %s size %zu cell %zu: unexpected placement\n", v->name, size,
                pos);
        return;
    }

    void **w = parent;
    size_t ki = 0;
    for (size_t i = 0; i < nw; i++)
        w[i] = expected_word(i, &ki, decoys, v->mode == M_CONS);
    void **nb[2] = {before, after};
    for (int s = 0; s < 2; s++)
        if (nb[s])
            for (size_t i = 0; i < nw; i++)
                nb[s][i] = garbage[i % NG];

    *root_slot = parent;
    hold_drop(); /* no allocation from here to the collection */
    rudo_collect();
    *root_slot = NULL;
    cases_run++;

    size_t lost = 0, bad_kid = 0, kept_decoy = 0, kept_garbage = 0, nbm = 0, bad_words = 0;
    bool parent_ok = rudo__debug_is_marked(parent);
    for (size_t k = 0; k < nkids; k++) {
        if (!rudo__debug_is_marked(kids[k]))
            lost++; /* freed: do not read it */
        else if (!child_intact(kids[k]))
            bad_kid++;
    }
    for (int k = 0; k < ND; k++)
        kept_decoy += rudo__debug_is_marked(decoys[k]);
    for (int k = 0; k < NG; k++)
        kept_garbage += rudo__debug_is_marked(garbage[k]);
    for (int s = 0; s < 2; s++)
        if (nb[s])
            nbm += rudo__debug_is_marked(nb[s]);
    if (parent_ok) {
        ki = 0;
        for (size_t i = 0; i < nw; i++)
            bad_words += w[i] != expected_word(i, &ki, decoys, v->mode == M_CONS);
    }

    bool bad = !parent_ok || lost || bad_kid || kept_decoy || kept_garbage || nbm || bad_words;
    if (bad) {
        cases_bad++;
        bad_by_variant[vi]++;
        if (!large && size > 8192 && pos >= 1 && markers >= 2)
            bad_in_bug_region++;
        if (!parent_ok)
            report_case(v, size, pos, markers, route, inbox, "(parent unmarked)", 1);
        if (lost)
            report_case(v, size, pos, markers, route, inbox, "reachable children unmarked", lost);
        if (kept_decoy)
            report_case(v, size, pos, markers, route, inbox, "decoys (non-pointer words) marked",
                        kept_decoy);
        if (kept_garbage)
            report_case(v, size, pos, markers, route, inbox,
                        "garbage children (neighbour cells only) marked", kept_garbage);
        if (nbm)
            report_case(v, size, pos, markers, route, inbox, "garbage neighbour cells marked", nbm);
        if (bad_kid + bad_words)
            report_case(v, size, pos, markers, route, inbox, "corrupt words/children",
                        bad_kid + bad_words);
    }
    unmarked_parents += !parent_ok;
    lost_children += lost;
    retained_decoys += kept_decoy;
    retained_garbage += kept_garbage;
    marked_neighbours += nbm;
    corrupt += bad_kid + bad_words;
}

/* ---- configurations and the sample ---------------------------------------------- */

static const unsigned marker_counts[] = {1, 2, 3, 7, 8};

static void make_heap(unsigned markers, bool route, bool inbox) {
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.markers = markers;
    cfg.mark_route = route;
    cfg.mark_inbox = inbox;
    cfg.mark_steal = true;
    cfg.scan_stacks = false; /* precise roots only: the survivors are exact */
    cfg.scan_static_data = false;
    cfg.initial_heap = (size_t)256 << 20; /* only the explicit collections */
    test_heap_create(&cfg);
    for (unsigned vi = 0; vi < NVARIANTS; vi++) {
        variant *v = &variants[vi];
        switch (v->mode) {
        case M_CALLBACK:
            v->kind = rudo_kind_traced(v->name, trace_cb);
            break;
        case M_LAYOUT:
            v->layout[0] = v->layout[1] = 0;
            for (unsigned i = 0; i < v->lw; i++)
                if (layout_bit(v->lw, i))
                    v->layout[i / 64] |= (uint64_t)1 << (i % 64);
            v->kind = rudo_kind_layout(v->name, v->lw, v->layout);
            break;
        case M_CONS:
            v->kind = rudo_kind_conservative(v->name);
            break;
        case M_ATOMIC:
            v->kind = rudo_kind_atomic(v->name);
            break;
        }
    }
    k_child = rudo_kind_atomic("matrix-child");
    root_slot = calloc(1, sizeof *root_slot);
    rudo_root_add(root_slot);
    nhold = 0;
    rudo_root_add_range(hold, hold + hold_cap);
}

static void drop_heap(unsigned markers) {
    /* The configuration took effect (the environment cannot override it:
     * main cleared the variables). The marker pool starts at the first
     * collection, and a sparse sample may have run no case here. */
    rudo_collect();
    CHECK_EQ(rudo__debug_markers(), markers);
    CHECK(rudo__debug_markers_quiescent());
    CHECK_EQ(rudo_root_remove(root_slot), RUDO_OK);
    free(root_slot);
    CHECK_EQ(rudo_root_remove_range(hold), RUDO_OK);
    rudo_heap_destroy();
}

int main(int argc, char **argv) {
    bool full = test_long_mode(argc, argv);
    test_start_watchdog();
    uint64_t seed = (uint64_t)test_env_long("TEST_SEED", 0x6d78);
    /* Per mille of the cases outside the core. The whole product takes
     * about 4 s in a plain build, 16 s under TSan (2 cores). */
    long sample = test_env_long("TEST_SAMPLE", UNDER_TSAN ? 100 : 200);
    rng = test_mix64(seed) | 1;
    unsetenv("RUDO_MARKERS");
    unsetenv("RUDO_STEAL");
    unsetenv("RUDO_INBOX");
    unsetenv("RUDO_ROUTE");

    max_nw = 200000 / WORD + 2;
    run = malloc(RUDO_MAX_CELLS * sizeof *run);
    role = malloc(max_nw);
    kids = malloc(max_nw * sizeof *kids);
    /* A case allocates its children, decoys and garbage children, and a
     * page run of at most 4 pages' cells and 64 more (fill_run), or one
     * large parent. */
    hold_cap = max_nw + ND + NG + 4 * RUDO_MAX_CELLS + 64;
    hold = calloc(hold_cap, sizeof *hold);
    if (!run || !role || !kids || !hold) {
        perror("malloc");
        return 2;
    }
    printf("seed %llu, %s\n", (unsigned long long)seed,
           full ? "full cross product" : "CI sample (TEST_LONG=1 for all)");

    unsigned long planned_total = 0, sampled_core = 0;
    for (unsigned mi = 0; mi < sizeof marker_counts / sizeof marker_counts[0]; mi++) {
        unsigned markers = marker_counts[mi];
        for (int ri = 0; ri < 4; ri++) {
            /* route needs inboxes; route on with inbox off is the plain
             * configuration under another name, run all the same. */
            bool route = ri & 1, inbox = (ri >> 1) & 1;
            make_heap(markers, route, inbox);
            for (unsigned vi = 0; vi < NVARIANTS; vi++)
                for (unsigned si = 0; si < NSIZES; si++) {
                    size_t size = size_of_index(si);
                    size_t ncells = ncells_of(size);
                    size_t poss[3] = {0, 1, ncells - 1};
                    size_t npos = ncells == 1 ? 1 : ncells == 2 ? 2 : 3;
                    for (size_t pi = 0; pi < npos; pi++) {
                        planned_total++;
                        /* CI: everything over 8 KiB with 1 marker (one
                         * route/inbox mix is enough: one marker uses
                         * neither) and with 2 markers (every mix); a
                         * hashed sample of the rest. */
                        bool core = size > 8192 &&
                                    ((markers == 1 && ri == 0) || markers == 2);
                        uint64_t h = test_mix64(seed ^ ((uint64_t)mi << 40) ^
                                                ((uint64_t)ri << 36) ^ ((uint64_t)vi << 28) ^
                                                ((uint64_t)si << 8) ^ pi);
                        bool pick = full || core || (long)(h % 1000) < sample;
                        if (!pick)
                            continue;
                        sampled_core += core;
                        run_case(vi, size, poss[pi], markers, route, inbox);
                    }
                }
            drop_heap(markers);
        }
    }
    printf("%lu of %lu cases run (%lu of them the >8 KiB core), %lu skipped, %lu bad "
           "(%lu of those: >8 KiB, cell >= 1, >= 2 markers)\n",
           cases_run, planned_total, sampled_core, cases_skipped, cases_bad, bad_in_bug_region);
    if (cases_bad)
        printf("totals: %lu children lost, %lu decoys kept, %lu garbage children kept, "
               "%lu neighbours marked, %lu parents unmarked, %lu corrupt\n",
               lost_children, retained_decoys, retained_garbage, marked_neighbours,
               unmarked_parents, corrupt);
    for (unsigned vi = 0; vi < NVARIANTS; vi++)
        if (bad_by_variant[vi])
            printf("  %s: %lu bad cases\n", variants[vi].name, bad_by_variant[vi]);
    CHECK(cases_run > 0);
    /* The placement mechanism must work, or the matrix tests nothing. */
    CHECK(cases_skipped * 100 <= cases_run);
    CHECK_EQ(unmarked_parents, 0ul);
    CHECK_EQ(lost_children, 0ul);
    CHECK_EQ(retained_decoys, 0ul);
    CHECK_EQ(retained_garbage, 0ul);
    CHECK_EQ(marked_neighbours, 0ul);
    CHECK_EQ(corrupt, 0ul);
    CHECK_EQ(cases_bad, 0ul);
    free(run);
    free(role);
    free(kids);
    free(hold);
    return test_report();
}
