/* test_finalize.c — finalizers: run exactly once for each dead object and
 * never for a live one, after the collection (following the collection
 * callback) on the collecting thread with the kind's data; they may
 * allocate; what a finalizable object references is intact when its
 * finalizer runs; a resurrected object is not finalized again;
 * rudo_kind_set_finalizer affects existing objects; stats.finalizers_run
 * counts the runs.
 *
 * Precise setup (scan_stacks = false, scan_static_data = false, precise root
 * slots) so "dead" is exact, and a large initial heap so collections only
 * happen when asked. In GC stress mode (RUDO_GC_STRESS) they also happen at
 * allocations: an object a case means to find dead at its own collection
 * is held in a root until then, and objects under construction are. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

#define MAX_IDS 4096

struct fobj {
    uint64_t id;
    uint64_t check;
    void *child; /* traced by the kinds that have a trace callback */
};

static uint64_t check_of(uint64_t id) { return id * 0x9E3779B97F4A7C15ull ^ 0x1234; }

static pthread_t main_thread;
static int fin_tag; /* its address is the finalize_data */
static int fin_count[MAX_IDS];
static uint64_t fin_event[MAX_IDS]; /* collection callback number seen */
static unsigned long fin_wrong;     /* thread, data or contents wrong */
static uint64_t last_event;         /* set by the collection callback */

static void *g_root; /* precise root slots */
static void *g_resurrect;
static void *g_hold; /* an object under construction */
#define N_MADE 16
static void *g_made[N_MADE];

static void gc_callback(const rudo_gc_event *ev, void *data) {
    (void)data;
    last_event = ev->number;
}

static rudo_stats stats(void) {
    rudo_stats st;
    rudo_get_stats(&st);
    return st;
}

/* Common part of every finalizer here: check the context, count the run. */
static struct fobj *finalized(void *obj, void *data) {
    struct fobj *o = obj;
    if (data != &fin_tag || !pthread_equal(pthread_self(), main_thread) ||
        o->check != check_of(o->id) || o->id >= MAX_IDS) {
        fin_wrong++;
        return o;
    }
    fin_count[o->id]++;
    fin_event[o->id] = last_event;
    return o;
}

static void fin_plain(void *obj, void *data) { (void)finalized(obj, data); }

static void trace_child(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    rudo_visit(tr, &((struct fobj *)obj)->child);
}

static rudo_kind make_kind(const char *name, rudo_trace_fn trace, rudo_finalize_fn fin) {
    rudo_kind_desc d = {0};
    d.name = name;
    d.tracing = trace ? RUDO_TRACE_CALLBACK : RUDO_TRACE_ATOMIC;
    d.trace = trace;
    d.finalize = fin;
    d.finalize_data = &fin_tag;
    return rudo_kind_register(&d);
}

static uint64_t next_id;

static struct fobj *fobj_new(rudo_kind k, size_t size) {
    struct fobj *o = rudo_alloc(k, size);
    o->id = next_id++;
    o->check = check_of(o->id);
    return o;
}

/* 1. Exactly once, only the dead, after the collection. */
static void test_once(void) {
    enum { N = 1000 };
    rudo_kind k = make_kind("fin-plain", NULL, fin_plain);
    void **arr = rudo_alloc_array(RUDO_KIND_CONSERVATIVE, N, sizeof(void *));
    g_root = arr;
    uint64_t first = next_id;
    for (int i = 0; i < N; i++) {
        /* a few large objects, live and dead; all held until made */
        struct fobj *o = fobj_new(k, i % 25 < 2 ? 40000 : sizeof *o);
        arr[i] = o;
    }
    for (int i = 1; i < N; i += 2)
        arr[i] = NULL; /* even ones stay reachable */
    int before = 0;
    for (int i = 0; i < N; i++)
        before += fin_count[first + i];
    CHECK(before == 0); /* nothing runs before a collection */

    rudo_stats st0 = stats();
    rudo_collect();
    uint64_t gc = st0.collections + 1;
    int odd_once = 0, even_never = 0, odd_event = 0;
    for (int i = 0; i < N; i++) {
        uint64_t id = first + i;
        if (i % 2) {
            odd_once += fin_count[id] == 1;
            odd_event += fin_event[id] == gc;
        } else {
            struct fobj *o = arr[i];
            even_never +=
                fin_count[id] == 0 && rudo__debug_is_marked(o) && o->check == check_of(id);
        }
    }
    CHECK(odd_once == N / 2);
    CHECK(odd_event == N / 2); /* after that collection's callback */
    CHECK(even_never == N / 2);
    CHECK(stats().finalizers_run - st0.finalizers_run == N / 2);
    CHECK(fin_wrong == 0);

    /* Later collections do not run them again. */
    rudo_collect();
    rudo_collect();
    int total = 0;
    for (int i = 0; i < N; i++)
        total += fin_count[first + i];
    CHECK(total == N / 2);
    CHECK(stats().finalizers_run - st0.finalizers_run == N / 2);

    /* Dropping the rest finalizes each of them once. */
    g_root = NULL;
    rudo_collect();
    rudo_collect();
    int all_once = 0;
    for (int i = 0; i < N; i++)
        all_once += fin_count[first + i] == 1;
    CHECK(all_once == N);
    CHECK(stats().finalizers_run - st0.finalizers_run == N);
    CHECK(fin_wrong == 0);
}

/* 2. A finalizer that allocates and stores the result in a root. */
static uint64_t made_pat(uint64_t id, size_t i) { return id * 31 + i; }

static void fin_allocating(void *obj, void *data) {
    struct fobj *o = finalized(obj, data);
    uint64_t slot = o->id % N_MADE;
    size_t words = slot == 0 ? 100000 / 8 : 8; /* one large allocation too */
    uint64_t *m = rudo_alloc(RUDO_KIND_ATOMIC, words * 8);
    if (m == NULL) {
        fin_wrong++;
        return;
    }
    for (size_t i = 0; i < words; i++)
        m[i] = made_pat(o->id, i);
    g_made[slot] = m;
}

static bool made_ok(uint64_t id) {
    uint64_t *m = g_made[id % N_MADE];
    size_t words = id % N_MADE == 0 ? 100000 / 8 : 8;
    if (m == NULL || !rudo__debug_is_marked(m) || rudo_kind_of(m) != RUDO_KIND_ATOMIC)
        return false;
    for (size_t i = 0; i < words; i++)
        if (m[i] != made_pat(id, i))
            return false;
    return true;
}

static void test_allocating_finalizer(void) {
    rudo_kind k = make_kind("fin-alloc", NULL, fin_allocating);
    while (next_id % N_MADE != 0)
        next_id++;
    uint64_t first = next_id;
    for (int i = 0; i < N_MADE; i++)
        (void)fobj_new(k, sizeof(struct fobj));
    rudo_collect();
    for (int i = 0; i < N_MADE; i++)
        CHECK(fin_count[first + i] == 1);
    /* The new objects are live heap objects: they survive collections. */
    for (int round = 0; round < 3; round++) {
        rudo_collect();
        int ok = 0;
        for (int i = 0; i < N_MADE; i++)
            ok += made_ok(first + i);
        CHECK(ok == N_MADE);
    }
    CHECK(fin_wrong == 0);
}

/* 3. What a finalizable object references is intact when it runs, even if
 * the finalizer itself allocates in the children's size class first (which
 * would reuse a child's memory had it been freed). */
#define CHILD_WORDS 64
static rudo_kind k_child;
static unsigned long child_bad, child_checked;

static uint64_t child_sum(const uint64_t *c) {
    uint64_t s = 0;
    for (int i = 1; i < CHILD_WORDS; i++)
        s = s * 1099511628211ull + c[i];
    return s;
}

static void fin_reads_child(void *obj, void *data) {
    struct fobj *o = finalized(obj, data);
    for (int i = 0; i < 20; i++)
        memset(rudo_alloc(k_child, CHILD_WORDS * 8), 0xEE, CHILD_WORDS * 8);
    const uint64_t *c = o->child;
    child_checked++;
    if (c == NULL || rudo_base(c) != c || c[0] != child_sum(c) || c[1] != o->id)
        child_bad++;
}

static void test_children_intact(void) {
    enum { N = 200 };
    rudo_kind k = make_kind("fin-parent", trace_child, fin_reads_child);
    k_child = rudo_kind_atomic("fin-child");
    rudo_collect();
    size_t baseline = stats().live_bytes;
    /* Every parent is held until all are made: the child allocations
     * below must not lose one (nor let a collection finalize it early). */
    void **arr = rudo_alloc_array(RUDO_KIND_CONSERVATIVE, N, sizeof(void *));
    g_root = arr;
    for (int i = 0; i < N; i++) {
        struct fobj *p = fobj_new(k, sizeof *p);
        arr[i] = p;
        uint64_t *c = rudo_alloc(k_child, CHILD_WORDS * 8);
        c[1] = p->id;
        for (int j = 2; j < CHILD_WORDS; j++)
            c[j] = p->id * 7 + (uint64_t)j;
        c[0] = child_sum(c);
        p->child = c;
    }
    g_root = NULL;
    child_bad = child_checked = 0;
    rudo_collect();
    CHECK(child_checked == N);
    CHECK(child_bad == 0);
    /* Once the finalizers have run, parents and children are reclaimed.
     * Only precise roots exist, so this is exact up to a small allowance
     * for the collector's bookkeeping (1 KiB). */
    rudo_collect();
    rudo_collect();
    size_t after = stats().live_bytes;
    printf("children test: live bytes baseline %zu, after %zu\n", baseline, after);
    CHECK(after <= baseline + 1024);
}

/* 4. Resurrection: the finalizer stores the object in a root; it lives on
 * with its child, and is not finalized again, not even when it dies again. */
static void fin_resurrect(void *obj, void *data) { g_resurrect = finalized(obj, data); }

static void test_resurrection(void) {
    rudo_kind k = make_kind("fin-resurrect", trace_child, fin_resurrect);
    rudo_collect();
    size_t baseline = stats().live_bytes;
    struct fobj *r = fobj_new(k, sizeof *r);
    g_root = r;
    uint64_t *c = rudo_alloc(RUDO_KIND_ATOMIC, 256);
    for (int i = 0; i < 32; i++)
        c[i] = 0xC0DE0000u + (unsigned)i;
    r->child = c;
    uint64_t id = r->id;
    rudo_collect();
    CHECK(fin_count[id] == 0); /* rooted: no finalizer */

    g_root = NULL;
    rudo_collect();
    CHECK(fin_count[id] == 1);
    CHECK(g_resurrect == r);
    for (int round = 0; round < 3; round++) {
        rudo_collect();
        bool ok = fin_count[id] == 1 && rudo__debug_is_marked(r) &&
                  r->check == check_of(id) && r->child == c && rudo__debug_is_marked(c);
        for (int i = 0; ok && i < 32; i++)
            ok = c[i] == 0xC0DE0000u + (unsigned)i;
        CHECK(ok);
    }

    g_resurrect = NULL;
    rudo_collect();
    rudo_collect();
    rudo_collect();
    CHECK(fin_count[id] == 1);
    CHECK(stats().live_bytes <= baseline + 1024); /* it was reclaimed */
}

/* 5. rudo_kind_set_finalizer applies to objects allocated before the call;
 * clearing it stops finalization. */
static void test_set_finalizer(void) {
    rudo_kind k = make_kind("fin-late", NULL, NULL);
    void **arr = rudo_alloc_array(RUDO_KIND_CONSERVATIVE, 10, sizeof(void *));
    g_root = arr; /* held until the finalizer is set */
    uint64_t first = next_id;
    for (int i = 0; i < 10; i++)
        arr[i] = fobj_new(k, sizeof(struct fobj));
    rudo_kind_set_finalizer(k, fin_plain, &fin_tag);
    g_root = NULL;
    rudo_collect();
    int once = 0;
    for (int i = 0; i < 10; i++)
        once += fin_count[first + i] == 1;
    CHECK(once == 10);

    rudo_kind_set_finalizer(k, NULL, NULL);
    arr = rudo_alloc_array(RUDO_KIND_CONSERVATIVE, 10, sizeof(void *));
    g_root = arr;
    first = next_id;
    for (int i = 0; i < 10; i++)
        arr[i] = fobj_new(k, sizeof(struct fobj));
    uint64_t runs = stats().finalizers_run;
    g_root = NULL;
    rudo_collect();
    int never = 0;
    for (int i = 0; i < 10; i++)
        never += fin_count[first + i] == 0;
    CHECK(never == 10);
    CHECK(stats().finalizers_run == runs);
}

/* 6. Dead finalizable objects that reference each other (a chain and a
 * two-object cycle): each was found unreachable by the same collection, so
 * each finalizer runs after that collection -- not one link per
 * collection. */
static void test_finalizable_graph(void) {
    enum { LEN = 10 };
    rudo_kind k = make_kind("fin-chain", trace_child, fin_plain);
    /* Each object of its own size class, so they lie on different pages. */
    uint64_t first = next_id;
    struct fobj *head = fobj_new(k, sizeof *head), *prev = head;
    g_root = head;
    for (int i = 1; i < LEN; i++) {
        struct fobj *o = fobj_new(k, sizeof *o + (size_t)i * 256);
        prev->child = o;
        prev = o;
    }
    struct fobj *a = fobj_new(k, sizeof *a);
    g_hold = a; /* b's allocation must not find a dead */
    struct fobj *b = fobj_new(k, 4000);
    a->child = b;
    b->child = a;
    g_hold = NULL;
    uint64_t ida = a->id, idb = b->id;
    rudo_collect(); /* the chain is rooted, the cycle is not */
    CHECK(fin_count[ida] == 1 && fin_count[idb] == 1);
    g_root = NULL;
    rudo_collect();
    int once = 0;
    for (int i = 0; i < LEN; i++)
        once += fin_count[first + i] == 1;
    if (once != LEN)
        fprintf(stderr,
                "  only %d of a dead chain of %d finalizable objects finalized "
                "by the collection that found them unreachable\n",
                once, LEN);
    CHECK(once == LEN);
    /* Whatever the order, after enough collections each ran exactly once. */
    for (int i = 0; i < LEN; i++)
        rudo_collect();
    once = 0;
    for (int i = 0; i < LEN; i++)
        once += fin_count[first + i] == 1;
    CHECK(once == LEN);
}

int main(void) {
    main_thread = pthread_self();
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.scan_stacks = false;
    cfg.scan_static_data = false;
    cfg.initial_heap = 256u << 20;
    CHECK(rudo_heap_create(&cfg) == RUDO_OK);
    rudo_set_gc_callback(gc_callback, NULL);
    rudo_root_add(&g_root);
    rudo_root_add(&g_resurrect);
    rudo_root_add(&g_hold);
    for (int i = 0; i < N_MADE; i++)
        rudo_root_add(&g_made[i]);

    test_once();
    test_allocating_finalizer();
    test_children_intact();
    test_resurrection();
    test_set_finalizer();
    test_finalizable_graph();
    CHECK(fin_wrong == 0);

    rudo_heap_destroy();
    return test_report();
}
