/* test_thr_mixed_stress.c — mixed sizes and kinds against a shadow model,
 * several mutators and several markers.
 *
 * Each of T mutator threads runs a seeded random program over its own graph
 * of objects of every tracing mode (trace callback, layouts of 3 and of
 * 100 words, conservative, atomic, and atomic with RUDO_KIND_UNINIT, whose
 * objects are not zeroed) and of log-uniform sizes from 16 B to
 * 256 KiB: small classes, the classes over 8 KiB that more than one marker
 * scans in 8 KiB chunks, and large objects. The heap scans neither stacks
 * nor static data: the only roots are each thread's registered root slots,
 * so the reachable set is exactly what the threads' models say.
 *
 * Every object's words are, by the model: word 0 a header (tag | id); its
 * pointer slots (up to 6 words the kind traces, some beyond 8 KiB in big
 * objects, among them the last word) pointing to other objects of the same
 * thread's graph or NULL; the other pointer words of a layout NULL; every
 * other word a pattern derived from (id, word index). The header and the
 * patterns have a top half no user address has, so a conservative scan
 * never mistakes them for pointers.
 *
 * Checks:
 *  - a new object is all zero (an allocator handing out a live object, or
 *    not clearing a freed one, or a page an uninit kind gave up, fails
 *    here), but for the uninit kind's, which are not checked (a live
 *    object handed out as one shows up as a wrong pattern instead);
 *  - after every collection (automatic, triggered by any thread's
 *    allocation, or explicit) each thread verifies every object reachable
 *    from its roots word by word against the model: an object reclaimed
 *    while reachable and reused shows up as a wrong header, pattern or
 *    pointer;
 *  - at checkpoints all threads park at a barrier (inside blocking regions)
 *    and one collects: every reachable object is marked, and live_bytes
 *    equals the sum of the reachable objects' usable sizes exactly (precise
 *    roots and pointer-free patterns: nothing else may be retained, and
 *    everything unreachable is reclaimed); the committed pages stay within
 *    a bound of the live data; the heap verifier passes;
 *  - once the threads have removed their roots, live_bytes is 0.
 *
 * Configurations cycle through threads 1..4 x markers {1, 2, 3, 7}, with
 * mark_route / mark_inbox / mark_steal varied from the seed. RUDO_VERIFY=1
 * is set (unless the environment sets it) so the library verifies the heap
 * after every collection too.
 *
 * Usage: test_thr_mixed_stress [SEED [STEPS [CONFIG]]] — STEPS per thread
 * per configuration, CONFIG one configuration index (0..15) or -1 for all.
 * Environment: TEST_SEED, TEST_STEPS, TEST_CONFIG (same meanings, argv
 * wins), TEST_SCALE (factor on the default steps), TEST_TIMEOUT. The default
 * is shorter under sanitizers. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

/* Sanitizers slow this test down (TSan about 10x on 2 cores): shorter
 * default runs there. */
#define DEFAULT_STEPS (TEST_UNDER_TSAN ? 400 : TEST_UNDER_ASAN ? 500 : 4000)

#define WORD sizeof(void *)
#define MAXS 6         /* pointer slots per object */
#define NROOTS 24      /* root slots per thread */
#define CAP 1024       /* model entries per thread */
#define MAX_LIVE 300   /* objects per thread before drops dominate */
#define MAX_BYTES ((size_t)3 << 20) /* usable bytes per thread, likewise */
#define MIN_SIZE 16
#define MAX_SIZE ((size_t)256 << 10)
#define TAG 0xa5a5000000000000ULL /* top bits of headers and patterns */

/* ---- kinds ------------------------------------------------------------------ */

enum { V_CB, V_L3, V_L100, V_CONS, V_ATOMIC, V_UNINIT, NVAR };
static const char *const var_name[NVAR] = {"callback", "layout3", "layout100", "conservative",
                                           "atomic", "uninit"};
static rudo_kind var_kind[NVAR];

/* Layouts: word 0 (the header) is never a pointer; a 3-word layout with one
 * pointer word does not divide most cell sizes, so the chunks of a big
 * object start mid-repeat. */
static bool layout_bit(int v, size_t j) {
    if (v == V_L3)
        return j == 2;
    return j == 1 || j == 7 || j == 64 || j == 99;
}
static size_t layout_words(int v) { return v == V_L3 ? 3 : 100; }

/* The pointer slots of an nw-word object of variant v, in increasing word
 * order: words near the start, after the first 8 KiB, in the middle and at
 * the end (for a layout, the nearest pointer positions). Returns the count. */
static int slots_of(int v, size_t nw, uint32_t *out) {
    if (v == V_ATOMIC || v == V_UNINIT || nw < 2)
        return 0;
    size_t cand[MAXS] = {1, 2, 1024 + 5, nw / 2, nw - 2, nw - 1};
    int n = 0;
    size_t last = 0;
    for (int k = 0; k < MAXS; k++) {
        size_t c = cand[k];
        if (c == 0 || c >= nw)
            continue;
        if (v == V_L3 || v == V_L100) {
            size_t lw = layout_words(v), j = c;
            while (j < nw && !layout_bit(v, j % lw))
                j++;
            if (j >= nw) { /* none at or after c: the last one before it */
                j = c;
                while (j > 0 && !layout_bit(v, j % lw))
                    j--;
                if (j == 0)
                    continue;
            }
            c = j;
        }
        if (n > 0 && c <= last)
            continue; /* keep them distinct and ordered */
        out[n++] = (uint32_t)c;
        last = c;
    }
    return n;
}

static void trace_cb(void *obj, size_t size, rudo_tracer *tr) {
    uint32_t s[MAXS];
    int n = slots_of(V_CB, size / WORD, s);
    for (int k = 0; k < n; k++)
        rudo_visit(tr, &((void **)obj)[s[k]]);
}

static uint64_t pattern(uint64_t id, size_t i) {
    return TAG | (test_mix64(id * 0x9e3779b97f4a7c15ULL + i) & 0x0000ffffffffffffULL);
}

/* ---- the model ------------------------------------------------------------------ */

typedef struct mobj {
    void **ptr;          /* the object (malloc'd model: never scanned) */
    uint64_t id;
    uint32_t nw;         /* usable words */
    uint8_t var, nslots, used;
    uint32_t slotw[MAXS];
    int32_t tgt[MAXS];   /* model index of the target, -1 = NULL */
    uint32_t epoch;
} mobj;

typedef struct tstate {
    int idx;
    uint64_t rng;
    uint64_t next_id;
    mobj *m;                 /* CAP entries */
    int32_t *live;           /* indices of reachable entries */
    int nlive;
    size_t live_bytes;       /* their usable bytes */
    int32_t *queue;
    uint32_t epoch;
    bool dirty;              /* an edge or root went away: prune first */
    void **roots;            /* NROOTS registered slots (malloc'd) */
    int32_t rootidx[NROOTS]; /* model index, -1 = NULL */
    uint64_t seen_gc;        /* gc_count at the last verification */
    long verifies, failures, steps_done, allocs;
    pthread_t tid;
} tstate;

static atomic_ulong gc_count; /* collections, counted by the gc callback */
static atomic_long total_failures;
static int nthreads;
static long steps;
static tstate *ts;
static pthread_barrier_t bar;
static long checkpoint_every;
static unsigned long checkpoints_run;
static int cur_config; /* for messages */
static size_t max_heap_over; /* largest heap_bytes - model at a checkpoint */

static void on_gc(const rudo_gc_event *ev, void *data) {
    (void)ev;
    (void)data;
    atomic_fetch_add(&gc_count, 1);
}

static void fail(tstate *t, const char *what, const mobj *o, size_t word) {
    if (t->failures++ < 12)
        fprintf(stderr, "config %d thread %d: %s (object id %llu, %s, %u words, word %zu)\n",
                cur_config, t->idx, what, o ? (unsigned long long)o->id : 0ull,
                o ? var_name[o->var] : "-", o ? o->nw : 0u, word);
    atomic_fetch_add(&total_failures, 1);
}

static uint64_t rnd(tstate *t, uint64_t n) { return test_rand(&t->rng) % n; }

/* The word object o must hold at index i. */
static void *expected(const tstate *t, const mobj *o, size_t i, int *k) {
    if (i == 0)
        return (void *)(uintptr_t)(TAG | o->id);
    if (*k < o->nslots && o->slotw[*k] == i) {
        int32_t g = o->tgt[(*k)++];
        return g < 0 ? NULL : (void *)t->m[g].ptr;
    }
    /* A layout's other pointer words hold NULL; the callback kind's only
     * pointer words are its slots; every word of a conservative object may
     * be a pointer, and the patterns are never one. */
    if ((o->var == V_L3 || o->var == V_L100) && layout_bit(o->var, i % layout_words(o->var)))
        return NULL;
    return (void *)(uintptr_t)pattern(o->id, i);
}

static bool check_obj(tstate *t, const mobj *o) {
    int k = 0;
    for (size_t i = 0; i < o->nw; i++) {
        void *want = expected(t, o, i, &k);
        if (o->ptr[i] != want) {
            fail(t,
                 i == 0 ? "header differs (object reclaimed and reused?)"
                        : "word differs from the model",
                 o, i);
            return false;
        }
    }
    return true;
}

/* Recomputes the reachable set from the roots; frees the model entries of
 * everything else (the heap may reclaim them at any collection from now
 * on, so they are never touched again). */
static void prune(tstate *t) {
    uint32_t ep = ++t->epoch;
    int head = 0, tail = 0;
    for (int r = 0; r < NROOTS; r++) {
        int32_t g = t->rootidx[r];
        if (g >= 0 && t->m[g].epoch != ep) {
            t->m[g].epoch = ep;
            t->queue[tail++] = g;
        }
    }
    size_t bytes = 0;
    while (head < tail) {
        mobj *o = &t->m[t->queue[head++]];
        bytes += (size_t)o->nw * WORD;
        for (int k = 0; k < o->nslots; k++) {
            int32_t g = o->tgt[k];
            if (g >= 0 && t->m[g].epoch != ep) {
                t->m[g].epoch = ep;
                t->queue[tail++] = g;
            }
        }
    }
    t->nlive = 0;
    for (int32_t g = 0; g < CAP; g++) {
        if (!t->m[g].used)
            continue;
        if (t->m[g].epoch == ep)
            t->live[t->nlive++] = g;
        else
            t->m[g].used = 0;
    }
    t->live_bytes = bytes;
    t->dirty = false;
}

static void verify_all(tstate *t) {
    if (t->dirty)
        prune(t);
    for (int r = 0; r < NROOTS; r++) {
        void *want = t->rootidx[r] >= 0 ? (void *)t->m[t->rootidx[r]].ptr : NULL;
        if (t->roots[r] != want)
            fail(t, "root slot differs from the model", NULL, (size_t)r);
    }
    for (int i = 0; i < t->nlive; i++)
        check_obj(t, &t->m[t->live[i]]);
    t->verifies++;
}

/* Log-uniform between MIN_SIZE and MAX_SIZE, by octaves: an octave
 * [16 << e, 32 << e) chosen uniformly, then a size uniformly in it. */
static size_t random_size(tstate *t) {
    size_t lo = (size_t)MIN_SIZE << rnd(t, 14);
    size_t z = lo + (size_t)rnd(t, lo);
    return z > MAX_SIZE ? MAX_SIZE : z;
}

static int32_t free_entry(tstate *t) {
    for (int tries = 0; tries < 2; tries++) {
        int32_t g0 = (int32_t)rnd(t, CAP);
        for (int32_t i = 0; i < CAP; i++) {
            int32_t g = (g0 + i) % CAP;
            if (!t->m[g].used)
                return g;
        }
        prune(t);
    }
    return -1;
}

static int32_t random_live(tstate *t) {
    if (t->dirty)
        prune(t);
    return t->nlive ? t->live[rnd(t, (uint64_t)t->nlive)] : -1;
}

/* Points slot k of object a (model and heap) at g (-1: NULL). */
static void set_slot(tstate *t, int32_t a, int k, int32_t g) {
    mobj *o = &t->m[a];
    if (o->tgt[k] >= 0)
        t->dirty = true;
    o->tgt[k] = g;
    o->ptr[o->slotw[k]] = g >= 0 ? (void *)t->m[g].ptr : NULL;
}

static void set_root(tstate *t, int r, int32_t g) {
    if (t->rootidx[r] >= 0)
        t->dirty = true;
    t->rootidx[r] = g;
    t->roots[r] = g >= 0 ? (void *)t->m[g].ptr : NULL;
}

/* Allocates an object and makes it reachable before the next safepoint
 * (the allocation is the only safepoint on the way). */
static void op_alloc(tstate *t) {
    /* Choose the place first: pruning (in free_entry, random_live) would
     * drop the new entry while it is not linked yet. */
    int32_t g = free_entry(t);
    if (g < 0)
        return;
    int32_t a = rnd(t, 4) ? random_live(t) : -1;
    int v = (int)rnd(t, NVAR);
    size_t size = random_size(t);
    void **p = rudo_alloc(var_kind[v], size);
    if (p == NULL) {
        fprintf(stderr, "rudo_alloc returned NULL\n");
        abort();
    }
    t->allocs++;
    mobj *o = &t->m[g];
    o->ptr = p;
    o->id = t->next_id++;
    o->nw = (uint32_t)(rudo_size(p) / WORD);
    o->var = (uint8_t)v;
    o->used = 1;
    o->epoch = 0;
    if (rudo_size(p) < size || rudo_kind_of(p) != var_kind[v])
        fail(t, "rudo_size or rudo_kind_of disagrees with the request", o, 0);
    for (size_t i = 0; v != V_UNINIT && i < o->nw; i++)
        if (p[i] != NULL) {
            fail(t, "new object not zeroed (a live object handed out again?)", o, i);
            break;
        }
    o->nslots = (uint8_t)slots_of(v, o->nw, o->slotw);
    for (int k = 0; k < o->nslots; k++)
        o->tgt[k] = -1;
    int dummy = 0;
    for (size_t i = 0; i < o->nw; i++)
        p[i] = expected(t, o, i, &dummy);
    /* Hang it from a slot of a reachable object (which the allocation,
     * a safepoint, could not reclaim), or from a root. */
    if (a >= 0 && a != g && t->m[a].nslots > 0) {
        set_slot(t, a, (int)rnd(t, t->m[a].nslots), g);
    } else {
        int r = (int)rnd(t, NROOTS);
        for (int i = 0; i < NROOTS && t->rootidx[r] >= 0 && rnd(t, 4); i++)
            r = (r + 1) % NROOTS; /* prefer an empty root */
        set_root(t, r, g);
    }
    /* The new entry is reachable now; list it without a full prune. */
    if (!t->dirty) {
        t->live[t->nlive++] = g;
        t->live_bytes += (size_t)o->nw * WORD;
    }
}

/* Drops an object: clears every root and slot that points to it. */
static void op_drop(tstate *t) {
    int32_t x = random_live(t);
    if (x < 0)
        return;
    for (int r = 0; r < NROOTS; r++)
        if (t->rootidx[r] == x)
            set_root(t, r, -1);
    for (int i = 0; i < t->nlive; i++) {
        int32_t a = t->live[i];
        for (int k = 0; k < t->m[a].nslots; k++)
            if (t->m[a].tgt[k] == x)
                set_slot(t, a, k, -1);
    }
    t->dirty = true;
}

static void step(tstate *t) {
    bool full = t->nlive > MAX_LIVE || t->live_bytes > MAX_BYTES;
    uint64_t op = rnd(t, 100);
    if (full && op < 40) {
        op_drop(t);
    } else if (op < 40) {
        op_alloc(t);
    } else if (op < 65) { /* link a slot of a reachable object to another */
        int32_t a = random_live(t), b = random_live(t);
        if (a >= 0 && t->m[a].nslots > 0)
            set_slot(t, a, (int)rnd(t, t->m[a].nslots), b);
    } else if (op < 75) { /* unlink */
        int32_t a = random_live(t);
        if (a >= 0 && t->m[a].nslots > 0)
            set_slot(t, a, (int)rnd(t, t->m[a].nslots), -1);
    } else if (op < 82) { /* root a reachable object, or clear a root */
        set_root(t, (int)rnd(t, NROOTS), rnd(t, 3) ? random_live(t) : -1);
    } else if (op < 88) {
        op_drop(t);
    } else if (op < 89) {
        rudo_collect();
    } else { /* check one object now */
        int32_t a = random_live(t);
        if (a >= 0)
            check_obj(t, &t->m[a]);
    }
    /* A collection ran (ours, or another thread's while we were stopped):
     * everything reachable must have survived it intact. */
    unsigned long c = atomic_load(&gc_count);
    if (c != t->seen_gc) {
        t->seen_gc = c;
        verify_all(t);
    }
}

/* All threads parked; thread 0 collects and compares the heap with the
 * union of the models. */
static void checkpoint(tstate *t) {
    if (t->dirty)
        prune(t);
    test_barrier_wait(&bar);
    if (t->idx == 0) {
        rudo_collect();
        size_t model = 0;
        long unmarked = 0;
        for (int u = 0; u < nthreads; u++) {
            model += ts[u].live_bytes;
            for (int i = 0; i < ts[u].nlive; i++)
                unmarked += !rudo__debug_is_marked(ts[u].m[ts[u].live[i]].ptr);
        }
        rudo_stats st;
        rudo_get_stats(&st);
        if (unmarked)
            fprintf(stderr, "config %d checkpoint: %ld reachable objects unmarked\n",
                    cur_config, unmarked);
        if (st.live_bytes != model)
            fprintf(stderr, "config %d checkpoint: live_bytes %zu, model %zu (difference %+lld)\n",
                    cur_config, st.live_bytes, model, (long long)st.live_bytes - (long long)model);
        CHECK_EQ(unmarked, 0);
        CHECK_EQ(st.live_bytes, model);
        if (st.heap_bytes > model && st.heap_bytes - model > max_heap_over)
            max_heap_over = st.heap_bytes - model;
        /* Reclamation keeps up: the committed pages stay within a small
         * factor of the live data plus what the growth policy and the
         * release delay keep around (a few collections' worth of
         * allocation, a few MiB here); pages that were never reused or
         * released would grow with the run instead. */
        CHECK(st.heap_bytes <= 3 * model + ((size_t)32 << 20));
        rudo__debug_verify_heap();
        checkpoints_run++;
    }
    test_barrier_wait(&bar);
    t->seen_gc = atomic_load(&gc_count);
    verify_all(t);
}

static void *thread_main(void *arg) {
    tstate *t = arg;
    if (rudo_thread_attach() != RUDO_OK) {
        fail(t, "rudo_thread_attach failed", NULL, 0);
        return NULL;
    }
    for (int r = 0; r < NROOTS; r++)
        rudo_root_add(&t->roots[r]);
    t->seen_gc = atomic_load(&gc_count);
    for (long i = 1; i <= steps; i++) {
        step(t);
        t->steps_done++;
        if (i % checkpoint_every == 0 || i == steps)
            checkpoint(t);
    }
    for (int r = 0; r < NROOTS; r++)
        if (rudo_root_remove(&t->roots[r]) != RUDO_OK)
            fail(t, "rudo_root_remove failed", NULL, (size_t)r);
    rudo_thread_detach();
    return NULL;
}

static const unsigned marker_set[] = {1, 2, 3, 7};

/* One configuration: its own heap. */
static void run_config(int c, uint64_t seed) {
    cur_config = c;
    nthreads = 1 + c % 4;
    unsigned markers = marker_set[(c / 4) % 4];
    uint64_t h = test_mix64(seed ^ (0xc0f1u + (uint64_t)c));
    bool inbox = h & 1, route = (h >> 1) & 1, steal = ((h >> 2) & 3) != 0;
    checkpoint_every = steps / 4 > 0 ? steps / 4 : 1;

    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.markers = markers;
    cfg.mark_inbox = inbox;
    cfg.mark_route = route;
    cfg.mark_steal = steal;
    cfg.scan_stacks = false; /* precise roots only: reachability is exact */
    cfg.scan_static_data = false;
    cfg.initial_heap = (size_t)2 << 20; /* collections every few MiB */
    int rc = rudo_heap_create(&cfg);
    CHECK_EQ(rc, RUDO_OK);
    if (rc != RUDO_OK)
        return;
    for (int v = 0; v < NVAR; v++) {
        switch (v) {
        case V_CB:
            var_kind[v] = rudo_kind_traced(var_name[v], trace_cb);
            break;
        case V_L3:
        case V_L100: {
            uint64_t lay[2] = {0, 0};
            for (size_t j = 0; j < layout_words(v); j++)
                if (layout_bit(v, j))
                    lay[j / 64] |= (uint64_t)1 << (j % 64);
            var_kind[v] = rudo_kind_layout(var_name[v], layout_words(v), lay);
            break;
        }
        case V_CONS:
            var_kind[v] = rudo_kind_conservative(var_name[v]);
            break;
        case V_UNINIT: {
            rudo_kind_desc d = {.name = var_name[v], .tracing = RUDO_TRACE_ATOMIC};
            var_kind[v] = rudo_kind_register_flags(&d, RUDO_KIND_UNINIT);
            break;
        }
        default:
            var_kind[v] = rudo_kind_atomic(var_name[v]);
        }
    }
    rudo_set_gc_callback(on_gc, NULL);
    atomic_store(&gc_count, 0);

    ts = calloc((size_t)nthreads, sizeof *ts);
    for (int u = 0; u < nthreads; u++) {
        tstate *t = &ts[u];
        t->idx = u;
        t->rng = test_mix64(seed ^ ((uint64_t)c << 32) ^ (0x1000u + (uint64_t)u)) | 1;
        t->next_id = ((uint64_t)u << 40) + 1;
        t->m = calloc(CAP, sizeof *t->m);
        t->live = calloc(CAP, sizeof *t->live);
        t->queue = calloc(CAP, sizeof *t->queue);
        t->roots = calloc(NROOTS, sizeof *t->roots);
        if (!t->m || !t->live || !t->queue || !t->roots) {
            perror("calloc");
            exit(2);
        }
        for (int r = 0; r < NROOTS; r++)
            t->rootidx[r] = -1;
    }
    pthread_barrier_init(&bar, NULL, (unsigned)nthreads);
    unsigned long cp0 = checkpoints_run;
    for (int u = 0; u < nthreads; u++)
        if (pthread_create(&ts[u].tid, NULL, thread_main, &ts[u]) != 0) {
            perror("pthread_create");
            exit(2);
        }
    rudo_blocking_enter(); /* joining is waiting: collections go on */
    for (int u = 0; u < nthreads; u++)
        pthread_join(ts[u].tid, NULL);
    rudo_blocking_leave();

    long verifies = 0, allocs = 0, done = 0;
    for (int u = 0; u < nthreads; u++) {
        verifies += ts[u].verifies;
        allocs += ts[u].allocs;
        done += ts[u].steps_done;
    }
    rudo_stats st;
    rudo_get_stats(&st);
    printf("config %2d: %d threads, %u markers (inbox %d route %d steal %d): %ld steps, "
           "%ld objects, %llu collections, %ld verifications, peak heap %zu KiB\n",
           c, nthreads, markers, inbox, route, steal, done, allocs,
           (unsigned long long)st.collections, verifies, st.heap_peak_bytes >> 10);
    CHECK_EQ(done, (long)nthreads * steps);
    CHECK_EQ(checkpoints_run - cp0,
             (unsigned long)((steps + checkpoint_every - 1) / checkpoint_every));
    /* Collections beyond the checkpoints' own, and every thread verified
     * after at least the checkpoints'. */
    CHECK(st.collections > checkpoints_run - cp0);
    for (int u = 0; u < nthreads; u++)
        CHECK(ts[u].verifies >= (long)(checkpoints_run - cp0));
    CHECK_EQ(st.markers, markers);
    /* Everything is garbage once the roots are gone. */
    rudo_collect();
    rudo_get_stats(&st);
    CHECK_EQ(st.live_bytes, 0u);

    rudo_set_gc_callback(NULL, NULL);
    rudo_heap_destroy();
    pthread_barrier_destroy(&bar);
    for (int u = 0; u < nthreads; u++) {
        free(ts[u].m);
        free(ts[u].live);
        free(ts[u].queue);
        free(ts[u].roots);
    }
    free(ts);
}

int main(int argc, char **argv) {
    test_start_watchdog();
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0)
                             : (uint64_t)test_env_long("TEST_SEED", 0x31337);
    long def_steps = test_scaled(DEFAULT_STEPS);
    steps = argc > 2 ? strtol(argv[2], NULL, 0) : test_env_long("TEST_STEPS", def_steps);
    int only = argc > 3 ? atoi(argv[3]) : (int)test_env_long("TEST_CONFIG", -1);
    if (steps < 1 || only < -1 || only > 15) {
        fprintf(stderr, "usage: %s [SEED [STEPS [CONFIG]]]\n", argv[0]);
        return 2;
    }
    setenv("RUDO_VERIFY", "1", 0);
    /* The configurations set these through rudo_config. */
    unsetenv("RUDO_MARKERS");
    unsetenv("RUDO_STEAL");
    unsetenv("RUDO_INBOX");
    unsetenv("RUDO_ROUTE");
    printf("seed %llu, %ld steps per thread per configuration\n", (unsigned long long)seed,
           steps);
    for (int c = 0; c < 16; c++)
        if (only < 0 || only == c)
            run_config(c, seed);
    printf("largest excess of committed pages over the live data at a checkpoint: %zu KiB\n",
           max_heap_over >> 10);
    CHECK_EQ(atomic_load(&total_failures), 0);
    return test_report();
}
