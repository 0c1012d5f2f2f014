/* test_kinds.c — the four ways of describing a kind: a trace callback, a
 * pointer-layout bitmap (with array-of-structs repetition), conservative and
 * atomic. For each, a child referenced through a declared pointer field
 * survives, and a child whose address sits only in a non-pointer field (or
 * in an atomic object, or at a misaligned offset of a conservative one) is
 * reclaimed.
 *
 * Precise setup: scan_stacks = false and scan_static_data = false, one
 * precise root slot holding the parent. Children are atomic objects with a
 * finalizer that records their id, so reclamation is observed exactly.
 * Once the parent is dropped too, the children it kept are reclaimed: this
 * shows the parent's field (and nothing else) kept them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

#define MAX_IDS 20000

struct child {
    uint64_t id;
    uint64_t check;
};

static rudo_kind k_child;
static int dead[MAX_IDS]; /* finalizer runs per child id */
static uint64_t next_id = 1;
static void *g_root; /* the only root */

static uint64_t check_of(uint64_t id) { return id * 2654435761u + 17; }

static void child_finalize(void *obj, void *data) {
    (void)data;
    uint64_t id = ((struct child *)obj)->id;
    if (id < MAX_IDS)
        dead[id]++;
}

static struct child *child_new(void) {
    struct child *c = rudo_alloc(k_child, sizeof *c);
    c->id = next_id++;
    c->check = check_of(c->id);
    return c;
}

/* A child survived: not finalized, marked, contents intact. Checked in this
 * order so a reclaimed child's memory is never read. */
static void expect_alive(const char *what, const struct child *c, uint64_t id) {
    bool ok = id < MAX_IDS && dead[id] == 0 && rudo__debug_is_marked(c) && c->id == id &&
              c->check == check_of(id);
    if (!ok)
        fprintf(stderr, "  %s: child %u was reclaimed or damaged (finalized %d times)\n",
                what, (unsigned)id, id < MAX_IDS ? dead[id] : -1);
    test_check(ok, what, __FILE__, __LINE__);
}

static void expect_dead(const char *what, uint64_t id) {
    bool ok = dead[id] == 1;
    if (!ok)
        fprintf(stderr, "  %s: child %u finalized %d times, wanted once\n", what,
                (unsigned)id, dead[id]);
    test_check(ok, what, __FILE__, __LINE__);
}

static void collect2(void) {
    rudo_collect();
    rudo_collect();
}

/* ---------------------------------------------------------------------- */
/* RUDO_TRACE_CALLBACK                                                     */
/* ---------------------------------------------------------------------- */

#define CB_MAGIC 0xC0FFEEu

struct cb_obj {
    uint64_t magic;     /* not a pointer */
    struct child *a;    /* traced */
    uintptr_t hidden;   /* not traced: holds a child's address */
    struct child *b;    /* traced */
    uint64_t usable;    /* the size the callback must be given */
    void *tagged[3];    /* traced, holding values that are not heap pointers */
    struct child *skip; /* a pointer the callback deliberately does not visit */
};

static unsigned long cb_calls, cb_bad_calls;

static void trace_cb(void *obj, size_t size, rudo_tracer *tr) {
    struct cb_obj *o = obj;
    cb_calls++;
    if (o->magic != CB_MAGIC || size != o->usable)
        cb_bad_calls++;
    rudo_visit(tr, (void **)&o->a);
    rudo_visit(tr, (void **)&o->b);
    for (int i = 0; i < 3; i++)
        rudo_visit(tr, &o->tagged[i]);
}

/* A node with many slots: slot count in word 0, then the slots. The callback
 * visits them all, more than fit any small tracer buffer. */
static void trace_fan(void *obj, size_t size, rudo_tracer *tr) {
    uint64_t *w = obj;
    if (w[0] * 8 + 8 > size)
        cb_bad_calls++;
    for (uint64_t i = 0; i < w[0]; i++)
        rudo_visit(tr, (void **)&w[1 + i]);
}

static void test_callback(void) {
    rudo_kind_desc d = {0};
    d.name = "cb-obj";
    d.tracing = RUDO_TRACE_CALLBACK;
    d.trace = trace_cb;
    rudo_kind k = rudo_kind_register(&d);

    void *malloced = malloc(64);
    struct cb_obj *o = rudo_alloc(k, sizeof *o);
    o->magic = CB_MAGIC;
    o->usable = rudo_size(o);
    g_root = o;
    uint64_t ida = next_id, idb = next_id + 1;
    uint64_t hidden_id = next_id + 2, skip_id = next_id + 3;
    struct child *a = child_new(), *b = child_new();
    o->a = a;
    o->b = b;
    o->hidden = (uintptr_t)child_new();
    o->skip = child_new();
    o->tagged[0] = (void *)(uintptr_t)((12345u << 1) | 1); /* tagged integer */
    o->tagged[1] = (void *)UINTPTR_MAX;
    o->tagged[2] = malloced; /* outside the heap */

    cb_calls = cb_bad_calls = 0;
    collect2();
    expect_alive("callback: traced field a", a, ida);
    expect_alive("callback: traced field b", b, idb);
    expect_dead("callback: address in an integer field", hidden_id);
    expect_dead("callback: pointer field the callback skips", skip_id);
    CHECK(cb_calls >= 2); /* once per collection at least */
    CHECK(cb_bad_calls == 0);

    g_root = NULL;
    rudo_collect();
    expect_dead("callback: a after the parent died", ida);
    expect_dead("callback: b after the parent died", idb);
    free(malloced);

    /* Fan-out: a small (3000 slots) and a large (5000 slots) node; every
     * child must survive. */
    rudo_kind kf = rudo_kind_traced("fan", trace_fan);
    static const size_t fans[2] = {3000, 5000};
    for (int f = 0; f < 2; f++) {
        size_t n = fans[f];
        uint64_t *w = rudo_alloc(kf, (n + 1) * 8);
        g_root = w;
        w[0] = n;
        uint64_t first = next_id;
        for (size_t i = 0; i < n; i++)
            w[1 + i] = (uint64_t)(uintptr_t)child_new();
        cb_bad_calls = 0;
        collect2();
        size_t lost = 0;
        for (size_t i = 0; i < n; i++) {
            struct child *c = (struct child *)(uintptr_t)w[1 + i];
            uint64_t id = first + i;
            if (dead[id] != 0 || !rudo__debug_is_marked(c) || c->check != check_of(id))
                lost++;
        }
        if (lost)
            fprintf(stderr, "  fan of %zu: %zu children lost\n", n, lost);
        CHECK(lost == 0);
        CHECK(cb_bad_calls == 0);
        g_root = NULL;
        rudo_collect();
        size_t finalized = 0;
        for (size_t i = 0; i < n; i++)
            finalized += dead[first + i] == 1;
        CHECK(finalized == n);
    }
}

/* ---------------------------------------------------------------------- */
/* RUDO_TRACE_LAYOUT                                                       */
/* ---------------------------------------------------------------------- */

/* Builds `elems` repetitions of a `words`-word struct in which the words
 * with their layout bit set hold a child (must survive) and the others hold
 * a child's address as an integer (must die). Only elements listed in
 * `used` are filled (the rest stay zero). */
static void layout_case(const char *what, rudo_kind k, size_t words, const uint64_t *layout,
                        size_t elems, const size_t *used, size_t nused) {
    uint64_t *o = rudo_alloc(k, words * elems * 8);
    g_root = o;
    size_t n = nused * words;
    struct child **kids = malloc(n * sizeof *kids);
    uint64_t *ids = malloc(n * sizeof *ids);
    bool *ptr = malloc(n * sizeof *ptr);
    for (size_t u = 0; u < nused; u++)
        for (size_t w = 0; w < words; w++) {
            size_t j = u * words + w;
            ids[j] = next_id;
            kids[j] = child_new();
            ptr[j] = (layout[w / 64] >> (w % 64)) & 1;
            o[used[u] * words + w] = (uint64_t)(uintptr_t)kids[j];
        }
    collect2();
    size_t wrong = 0;
    for (size_t j = 0; j < n; j++) {
        bool ok = ptr[j] ? dead[ids[j]] == 0 && rudo__debug_is_marked(kids[j]) &&
                               kids[j]->check == check_of(ids[j])
                         : dead[ids[j]] == 1;
        if (!ok && wrong++ < 10)
            fprintf(stderr, "  %s: element %zu word %zu (%s) wrong: finalized %d\n", what,
                    used[j / words], j % words, ptr[j] ? "pointer" : "integer",
                    dead[ids[j]]);
    }
    test_check(wrong == 0, what, __FILE__, __LINE__);
    g_root = NULL;
    rudo_collect();
    for (size_t j = 0; j < n; j++)
        if (dead[ids[j]] != 1)
            wrong++;
    test_check(wrong == 0, "layout: every child dies with its parent", __FILE__, __LINE__);
    free(kids);
    free(ids);
    free(ptr);
}

static void test_layout(void) {
    /* 4 words: pointer, integer, pointer, integer. */
    static const uint64_t l4[1] = {0x5};
    rudo_kind_desc d = {0};
    d.name = "layout4";
    d.tracing = RUDO_TRACE_LAYOUT;
    d.layout = l4;
    d.layout_words = 4;
    rudo_kind k4 = rudo_kind_register(&d);
    static const size_t one[1] = {0};
    layout_case("layout: one struct", k4, 4, l4, 1, one, 1);
    static const size_t ten[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    layout_case("layout: array of 10 structs", k4, 4, l4, 10, ten, 10);
    static const size_t big[4] = {0, 1, 1000, 1999};
    layout_case("layout: large array of 2000 structs", k4, 4, l4, 2000, big, 4);

    /* 100 words, pointers at 0, 63, 64 and 99: the bitmap spans two words. */
    static const uint64_t l100[2] = {1u | (1ull << 63), 1u | (1ull << 35)};
    rudo_kind k100 = rudo_kind_layout("layout100", 100, l100);
    layout_case("layout: 100-word struct", k100, 100, l100, 1, one, 1);
    static const size_t two[2] = {0, 1};
    layout_case("layout: two 100-word structs", k100, 100, l100, 2, two, 2);
}

/* ---------------------------------------------------------------------- */
/* RUDO_TRACE_CONSERVATIVE and RUDO_TRACE_ATOMIC                           */
/* ---------------------------------------------------------------------- */

/* Registers a kind through a rudo_kind_desc with only name and tracing set. */
static rudo_kind register_desc(const char *name, rudo_tracing tracing) {
    rudo_kind_desc d = {0};
    d.name = name;
    d.tracing = tracing;
    return rudo_kind_register(&d);
}

static void test_conservative_kind(const char *what, rudo_kind k, size_t size) {
    unsigned char *o = rudo_alloc(k, size);
    uint64_t *w = (uint64_t *)o;
    size_t last = size / 8 - 1; /* last whole word of the requested size */
    g_root = o;
    uint64_t ids[3] = {next_id, next_id + 1, next_id + 2}, mis_id = next_id + 3;
    struct child *c3 = child_new(), *clast = child_new(), *cint = child_new();
    struct child *cmis = child_new();
    w[3] = (uint64_t)(uintptr_t)c3;
    w[last] = (uint64_t)(uintptr_t)clast;
    w[5] = (uint64_t)(uintptr_t)cint + 8; /* interior pointer */
    memcpy(o + 4, &cmis, sizeof cmis);    /* misaligned: no aligned word holds it */
    w[2] = 12345;                         /* integers are harmless */
    collect2();
    expect_alive(what, c3, ids[0]);
    expect_alive(what, clast, ids[1]);
    expect_alive(what, cint, ids[2]);
    expect_dead(what, mis_id);
    g_root = NULL;
    rudo_collect();
    for (int i = 0; i < 3; i++)
        expect_dead(what, ids[i]);
}

static void test_atomic_kind(const char *what, rudo_kind k, size_t size) {
    uint64_t *w = rudo_alloc(k, size);
    g_root = w;
    uint64_t id1 = next_id, id2 = next_id + 1;
    struct child *c1 = child_new(), *c2 = child_new();
    for (size_t i = 0; i < size / 8; i++)
        w[i] = (uint64_t)(uintptr_t)(i % 2 ? c1 : c2);
    collect2();
    expect_dead(what, id1);
    expect_dead(what, id2);
    CHECK(rudo__debug_is_marked(w)); /* the atomic object itself lives */
    g_root = NULL;
}

/* A chain through every tracing mode: callback -> layout -> conservative
 * -> child. */
static void test_chain(void) {
    static const uint64_t l2[1] = {0x2};
    rudo_kind kcb = rudo_kind_traced("chain-cb", trace_cb);
    rudo_kind klay = rudo_kind_layout("chain-layout", 2, l2);
    rudo_kind kcons = rudo_kind_conservative("chain-cons");
    struct cb_obj *o = rudo_alloc(kcb, sizeof *o);
    o->magic = CB_MAGIC;
    o->usable = rudo_size(o);
    g_root = o;
    uint64_t *lay = rudo_alloc(klay, 16);
    o->a = (struct child *)lay; /* the callback visits it as a pointer */
    void **cons = rudo_alloc(kcons, 32);
    lay[1] = (uint64_t)(uintptr_t)cons;
    uint64_t id = next_id;
    struct child *c = child_new();
    cons[2] = c;
    cb_bad_calls = 0;
    collect2();
    CHECK(rudo__debug_is_marked(lay) && rudo__debug_is_marked(cons));
    expect_alive("chain through all tracing modes", c, id);
    CHECK(cb_bad_calls == 0);
    g_root = NULL;
    rudo_collect();
    expect_dead("chain: child after the head died", id);
}

static void test_names(void) {
    char name[32] = "renamed-later";
    rudo_kind k = rudo_kind_atomic(name);
    strcpy(name, "XXXXXXXX"); /* the name was copied */
    CHECK(strcmp(rudo_kind_name(k), "renamed-later") == 0);
    CHECK(strcmp(rudo_kind_name(k_child), "child") == 0);
    rudo_kind kc = rudo_kind_traced("named-traced", trace_cb);
    CHECK(strcmp(rudo_kind_name(kc), "named-traced") == 0);
    CHECK(rudo_kind_name(RUDO_KIND_CONSERVATIVE) != NULL);
    CHECK(rudo_kind_name(RUDO_KIND_ATOMIC) != NULL);
    CHECK(k != kc && k != k_child && k > RUDO_KIND_ATOMIC && kc > RUDO_KIND_ATOMIC);
}

int main(void) {
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.scan_stacks = false;
    cfg.scan_static_data = false;
    cfg.initial_heap = 256u << 20; /* collections only when asked */
    CHECK(rudo_heap_create(&cfg) == RUDO_OK);
    rudo_root_add(&g_root);

    rudo_kind_desc d = {0};
    d.name = "child";
    d.tracing = RUDO_TRACE_ATOMIC;
    d.finalize = child_finalize;
    k_child = rudo_kind_register(&d);

    test_callback();
    test_layout();

    test_conservative_kind("conservative (desc), small",
                           register_desc("cons-desc", RUDO_TRACE_CONSERVATIVE), 64);
    test_conservative_kind("conservative (desc), large",
                           register_desc("cons-desc", RUDO_TRACE_CONSERVATIVE), 100000);
    test_conservative_kind("conservative (shorthand)", rudo_kind_conservative("cons"), 200);
    test_conservative_kind("conservative (built-in)", RUDO_KIND_CONSERVATIVE, 128);

    test_atomic_kind("atomic (desc), small", register_desc("atomic-desc", RUDO_TRACE_ATOMIC),
                     64);
    test_atomic_kind("atomic (desc), large", register_desc("atomic-desc", RUDO_TRACE_ATOMIC),
                     100000);
    test_atomic_kind("atomic (shorthand)", rudo_kind_atomic("blob"), 256);
    test_atomic_kind("atomic (built-in)", RUDO_KIND_ATOMIC, 48);

    test_chain();
    test_names();

    CHECK(rudo_root_remove(&g_root) == RUDO_OK);
    rudo_heap_destroy();
    return test_report();
}
