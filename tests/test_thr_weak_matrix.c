/* test_thr_weak_matrix.c — weak slots, ephemerons and finalizers, case by
 * case, over the cross product
 *
 *     target kind (conservative; atomic; callback; layout; atomic uninit)
 *   x holder kind (conservative; atomic; callback, with a weak field
 *                  reported by rudo_visit_weak; layout; atomic uninit;
 *                  ephemeron, whose untraced words hold registered slots)
 *   x size        (every small size class, or in CI the band boundaries
 *                  16 .. 32768 and the classes of 2 and 3 cells a page,
 *                  and large objects of 32784, 65552 and 200000 bytes)
 *   x cell        (index 0, 1, the middle and the last cell of a fresh page;
 *                  target and holder each at that index of their own page)
 *   x relation    (below)
 *   x mode        (non-generational; generational: major collections,
 *                  minor collections of young targets, old targets
 *                  (promoted, then a minor, then a major), old holders
 *                  with young targets stored through the barrier)
 *   x markers     (1, 2, 3: rudo_config.markers)
 *   x threads     (1; 2: a second attached thread allocates the holders,
 *                  and runs every other batch's collections, so that
 *                  finalizers run there).
 *
 * Relations of the target T:
 *   strong        T reachable through the holder's pointer word (or a root
 *                 for holders without one); a per-object finalizer that
 *                 must not run (strong-kf: T of a kind with a finalizer);
 *   weak          only weak slots, ephemeron keys and T's own value lead
 *                 to T: every weak slot cleared, ephemerons cleared, T,
 *                 its child and the ephemeron's value freed;
 *   all-die       T and its holder die together: the registrations inside
 *                 the holder are forgotten;
 *   fin, fin-kf, fin-both, fin-ord
 *                 T has a per-object finalizer, a kind finalizer, both, an
 *                 ordered one: each runs once; when it runs the short
 *                 slots are NULL and the long ones still point to T
 *                 (rudo.h), T and its child are intact, ephemerons keyed
 *                 by T still hold key and value (docs/design.md: they are
 *                 cleared with the long slots); the next collection that
 *                 can prove T dead frees it and clears the rest;
 *   res, res-kf   the finalizer stores T in a root: T stays valid and
 *                 intact, short slots stay NULL, long slots keep T, no
 *                 second finalizer; then T dies again: with a per-object
 *                 finalizer registered again it is finalized again, with a
 *                 kind finalizer it is not (rudo.h);
 *   fin-together  the holder (with a finalizer of its own, and a strong
 *                 pointer to T where its kind has pointer words) and T (a
 *                 finalizer) die together: both finalized after the same
 *                 collection, and each sees the holder's short slot and
 *                 weak field to T NULL (rudo.h: short slots are cleared
 *                 as soon as the target is unreachable, before finalizers);
 *   eph-held      T dies, the ephemeron's value is held elsewhere: the
 *                 ephemeron is cleared, the value lives on;
 *   chain-*       ephemerons T -> v0, v0 -> v1, v1 -> v2, allocated in
 *                 forward or reverse order, with T live or dead.
 *
 * Every case also has: short, long, explicit-target short (a disguised
 * value, an interior target) and explicit-target long slots in unscanned
 * memory, a short slot holding an interior pointer, a weak root reported
 * by rudo_visit_weak from a root callback, an ephemeron keyed by T (by
 * its base or an interior address) whose value is a fresh object, and an
 * ephemeron whose value is its own key T. A model (run_checks) says after
 * each collection, from what was rooted and what was old when it began
 * and whether it was minor, which objects must be marked or freed, the
 * value of every slot, the registrations, the finalizer calls, and the
 * collection's weak_cleared, ephemerons_cleared and finalizers_run
 * counts. In generational mode an old target survives a minor collection
 * with its weak slots, ephemerons and finalizer untouched; only a
 * collection that can prove it dead (a major, or a minor for a young one)
 * clears them.
 *
 * Precise roots only (no stack or static-data scanning): registered root
 * slots in static arrays, so that survival and death are exact. Objects
 * are placed at a cell index by allocating a fresh page's cells in order
 * (collections disabled meanwhile, so this holds under RUDO_GC_STRESS);
 * every object is rooted from its allocation until the relation is set,
 * and nothing is allocated between setting it and the collections the
 * model checks, so the test holds under stress collections too.
 *
 * Default (CI) mode: the boundary sizes only, a fixed-seed sample of the
 * product (TEST_SAMPLE per mille: 60; 25 under ASan and in RUDO_DEBUG
 * builds, 6 under TSan), plus a core: a quarter of the cases whose target
 * and holder are of the callback or layout kinds at the last cell of a
 * page, with 2 markers and one thread. TEST_LONG=1 (or --long) runs the
 * whole product (every size class: about 4 million cases, 10 minutes in
 * a plain build); TEST_SEED changes the sample. The second part checks,
 * once per configuration (1-3 markers, generational or not), the rest of
 * rudo.h's claims on weak slots, ephemerons, finalizers and guardians
 * (claims_*). */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "debug/debug.h"
#include "heap/heap.h"
#include "rudo.h"
#include "testlib.h"

#define WORD sizeof(void *)
#define NONE ((size_t)-1)
#define MAX_BATCH 48
#define NONHEAP ((void *)(uintptr_t)0x5a5a5a5a5a50ULL)

/* ---- dimensions --------------------------------------------------------- */

enum { TK_CONS, TK_ATOMIC, TK_CALLBACK, TK_LAYOUT, TK_UNINIT, NTK };
enum { HK_CONS, HK_ATOMIC, HK_CALLBACK, HK_LAYOUT, HK_UNINIT, HK_EPH, NHK };
static const char *const tk_name[NTK] = {"conservative", "atomic", "callback", "layout3",
                                         "uninit"};
static const char *const hk_name[NHK] = {"conservative", "atomic", "callback",
                                         "layout4",      "uninit", "ephemeron"};

enum rel {
    R_STRONG, R_STRONG_KF, R_WEAK, R_ALL_DIE, R_FIN, R_FIN_KF, R_FIN_BOTH, R_FIN_ORD,
    R_RES, R_RES_KF, R_FIN_TOGETHER, R_EPH_HELD, R_CHAIN_LIVE_FWD, R_CHAIN_LIVE_REV,
    R_CHAIN_DEAD_FWD, R_CHAIN_DEAD_REV, NREL
};
static const char *const rel_name[NREL] = {
    "strong", "strong-kf", "weak", "all-die", "fin", "fin-kf", "fin-both", "fin-ord",
    "res", "res-kf", "fin-together", "eph-held", "chain-live-fwd", "chain-live-rev",
    "chain-dead-fwd", "chain-dead-rev"};

enum mode { MD_MAJOR, MD_MINOR, MD_OLD, MD_OLDH, NMODE };
static const char *const mode_name[NMODE] = {"major", "minor-young", "old", "old-holder"};

static bool rel_kind_fin(int r) {
    return r == R_STRONG_KF || r == R_FIN_KF || r == R_FIN_BOTH || r == R_RES_KF;
}
static bool rel_obj_fin(int r) {
    return r == R_STRONG || r == R_FIN || r == R_FIN_BOTH || r == R_FIN_ORD || r == R_RES ||
           r == R_FIN_TOGETHER;
}
static bool rel_chain(int r) { return r >= R_CHAIN_LIVE_FWD; }
static bool rel_chain_live(int r) { return r == R_CHAIN_LIVE_FWD || r == R_CHAIN_LIVE_REV; }
static bool rel_strong(int r) { return r == R_STRONG || r == R_STRONG_KF || rel_chain_live(r); }

/* ---- sizes -------------------------------------------------------------- */

static const size_t large_sizes[] = {32768 + 16, 65536 + 16, 200000};
#define NLARGE (sizeof large_sizes / sizeof large_sizes[0])
#define NSIZES (RUDO_NCLASSES + NLARGE)
static const size_t ci_sizes[] = {16,   32,   128,  144,   256,   288,   512,
                                  576,  1024, 1152, 2048,  2304,  4096,  4608,
                                  8192, 9216, 16384, 18432, 20480, 22528, 32768};

static size_t size_of_index(unsigned si) {
    return si < RUDO_NCLASSES ? rudo__class_size[si] : large_sizes[si - RUDO_NCLASSES];
}
static bool ci_size(size_t s) {
    if (s > RUDO_SMALL_MAX)
        return true;
    for (size_t i = 0; i < sizeof ci_sizes / sizeof ci_sizes[0]; i++)
        if (ci_sizes[i] == s)
            return true;
    return false;
}
static size_t ncells_of(size_t size) { return size > RUDO_SMALL_MAX ? 1 : RUDO_PAGE_SIZE / size; }
static size_t usable(size_t size) { return (size + 15) / 16 * 16; }

/* ---- roots and weak slots (static: never scanned, the heap scans neither
 * stacks nor static data) -------------------------------------------------- */

enum { RT_T, RT_H, RT_E, RT_ES, RT_V, RT_RES, RT_CE0, RT_CE1, RT_CE2, RT_CV0, RT_CV1, RT_CV2,
       NRT };
enum { WS_SHORT, WS_LONG, WS_TSHORT, WS_TLONG, WS_INTERIOR, WS_ROOTWEAK, NWS };
static const char *const ws_name[NWS] = {"short", "long", "target-short", "target-long",
                                         "interior-short", "root-callback-weak"};
static void *g_roots[MAX_BATCH][NRT];
static void *g_weak[MAX_BATCH][NWS];
static unsigned g_nweakroots; /* instances whose root-weak slot the callback reports */

static void root_cb(rudo_tracer *tr, void *data) {
    (void)data;
    for (unsigned i = 0; i < g_nweakroots; i++)
        rudo_visit_weak(tr, &g_weak[i][WS_ROOTWEAK]);
}

/* ---- kinds ---------------------------------------------------------------- */

static rudo_kind k_t[NTK][2], k_h[NHK], k_child, k_eph;

/* Target callback kind: words 0 and nw-1 are pointers. */
static void t_trace(void *obj, size_t size, rudo_tracer *tr) {
    void **w = obj;
    size_t nw = size / WORD;
    rudo_visit(tr, &w[0]);
    if (nw > 1)
        rudo_visit(tr, &w[nw - 1]);
}

typedef struct hroles {
    size_t strong, field, field_nh, rshort, rlong, decoy;
} hroles;

static hroles holder_roles(unsigned hk, size_t nw) {
    hroles r = {NONE, NONE, NONE, NONE, NONE, NONE};
    switch (hk) {
    case HK_CONS:
        r.strong = nw - 1;
        break;
    case HK_ATOMIC:
    case HK_UNINIT:
        r.rshort = nw - 1;
        r.rlong = nw - 2;
        break;
    case HK_CALLBACK:
        r.strong = nw >= 3 ? nw - 1 : 0;
        r.field = 1;
        r.field_nh = nw >= 6 ? 2 : NONE;
        r.rshort = nw >= 4 ? nw - 2 : NONE;
        r.rlong = nw >= 6 ? nw - 3 : NONE;
        break;
    case HK_LAYOUT: /* 4-word layout: words 0 and 3 are pointers */
        for (size_t i = nw; i-- > 0;)
            if (i % 4 == 0 || i % 4 == 3) {
                r.strong = i;
                break;
            }
        for (size_t i = nw; i-- > 0;)
            if (i % 4 == 1) {
                r.rshort = i;
                break;
            }
        for (size_t i = nw; i-- > 0;)
            if (i % 4 == 2) {
                r.rlong = i;
                break;
            }
        break;
    case HK_EPH: /* key, value, then untraced words */
        r.rshort = nw >= 3 ? 2 : NONE;
        r.rlong = nw >= 4 ? 3 : NONE;
        r.decoy = nw >= 5 ? nw - 1 : NONE;
        break;
    }
    return r;
}

/* Holder callback kind: strong words 0 and nw-1 (nw >= 3), a weak field
 * (word 1) and a weak field holding a non-heap value (word 2, nw >= 6). */
static void h_trace(void *obj, size_t size, rudo_tracer *tr) {
    void **w = obj;
    size_t nw = size / WORD;
    rudo_visit(tr, &w[0]);
    if (nw >= 3)
        rudo_visit(tr, &w[nw - 1]);
    rudo_visit_weak(tr, &w[1]);
    if (nw >= 6)
        rudo_visit_weak(tr, &w[2]);
}

/* The word of a target holding its child (NONE for atomic kinds). */
static size_t target_child(unsigned tk, size_t nw) {
    switch (tk) {
    case TK_CONS:
    case TK_CALLBACK:
        return nw - 1;
    case TK_LAYOUT: /* 3-word layout: word 0 is a pointer */
        return (nw - 1) / 3 * 3;
    default:
        return NONE;
    }
}

/* ---- instances -------------------------------------------------------------- */

typedef struct obs {
    int coll;
    bool attached, h_read, e_read, t_intact, child_intact;
    void *obj;
    void *ws[NWS];
    void *h_short, *h_long, *h_field, *h_strong;
    void *e_key, *e_val, *es_key, *es_val;
} obs;

typedef struct inst {
    unsigned tk, hk, si, rel, idx;
    size_t pos, size, nw, hnw;
    uint64_t serial;
    hroles hr;
    size_t t_child;
    void *T, *H, *child, *V, *D;
    rudo_ephemeron *E, *Es, *ce[3];
    void *cv[3];
    void *tkey, *ttarget;
    bool edge, placed, bad;
    /* model state */
    bool T_dead, H_dead, V_dead, child_dead, cv_dead[3];
    bool fin_obj, fin_kind, fin_h, resurrect;
    int res_stage; /* 1: resurrected; 2: seen alive a collection later */
    bool short_cleared, long_cleared, eph_cleared;
    int exp_obj, exp_kind, exp_h;
    int obj_calls, kind_calls, h_calls; /* by the finalizers */
    obs ot[2], oh;                      /* [0] per-object, [1] kind finalizer */
    bool d_checked;
    uint64_t d_coll;
    /* snapshot taken before a collection */
    bool s_rootT, s_rootH, s_rootV, s_oT, s_oH, s_oV, s_oC, s_ov[3], s_finT, s_finH;
} inst;

static inst batch[MAX_BATCH];
static unsigned nbatch;
static uint64_t next_serial = 1;

/* Configuration being run, for messages. */
static unsigned g_markers, g_threads;
static bool g_gen;
static int g_mode, g_coll;

static atomic_ulong failures;  /* every failed expectation, any thread */
static atomic_ulong fin_calls; /* every finalizer call, any object */
static atomic_ulong unknown_kind_calls;
static atomic_ulong printed;
static unsigned long cases_run, cases_skipped, cases_bad;
static unsigned long bad_by_rel[NREL], bad_by_tk[NTK], bad_by_hk[NHK];

static bool g_last_minor;
static uint64_t g_last_weak, g_last_eph, g_last_cycles;
static atomic_ulong g_ncoll; /* collections seen by the callback */

static void on_gc(const rudo_gc_event *ev, void *data) {
    (void)data;
    g_last_minor = ev->minor;
    g_last_weak = ev->weak_cleared;
    g_last_eph = ev->ephemerons_cleared;
    g_last_cycles = ev->ordered_cycles;
    atomic_fetch_add(&g_ncoll, 1);
}

static void failf(inst *in, const char *fmt, ...) {
    atomic_fetch_add(&failures, 1);
    if (in)
        in->bad = true;
    if (atomic_fetch_add(&printed, 1) >= 60)
        return;
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (in)
        fprintf(stderr,
                "  FAIL target %s holder %s size %zu cell %zu | markers %u threads %u %s "
                "mode %s | rel %s | collection %d (%s): %s\n",
                tk_name[in->tk], hk_name[in->hk], in->size, in->pos, g_markers, g_threads,
                g_gen ? "generational" : "non-generational", mode_name[g_mode],
                rel_name[in->rel], g_coll, g_last_minor ? "minor" : "major", msg);
    else
        fprintf(stderr, "  FAIL markers %u threads %u %s mode %s collection %d: %s\n", g_markers,
                g_threads, g_gen ? "generational" : "non-generational", mode_name[g_mode],
                g_coll, msg);
}
#define EXPECT(in, cond, ...)                                                                  \
    do {                                                                                       \
        if (!(cond))                                                                           \
            failf(in, __VA_ARGS__);                                                            \
    } while (0)

/* ---- objects ---------------------------------------------------------------- */


#define OBJ_MAGIC 0x7765616b6d747278ULL

static void *must_alloc(rudo_kind k, size_t size) {
    void *p = rudo_alloc(k, size);
    if (p == NULL) {
        fprintf(stderr, "rudo_alloc returned NULL\n");
        abort();
    }
    return p;
}

/* A small atomic object with a checkable pattern (children, values). */
static void *obj_new(uint64_t id) {
    uint64_t *c = must_alloc(k_child, 32);
    c[0] = OBJ_MAGIC;
    c[1] = id;
    c[2] = ~id;
    c[3] = test_mix64(id);
    return c;
}
static bool obj_ok(const void *p, uint64_t id) {
    const uint64_t *c = p;
    return c[0] == OBJ_MAGIC && c[1] == id && c[2] == ~id && c[3] == test_mix64(id);
}
static uint64_t id_of(const inst *in, unsigned what) { return in->serial * 8 + what; }

static bool marked(const void *p) { return rudo__debug_is_marked(p); }

/* A plain object of the case that must be alive after this collection
 * (exp: marked, contents intact) or freed; *dead is set once it is gone
 * (freed as expected, or lost), and the object is not looked at again. */
static void expect_fate(inst *in, void *obj, uint64_t id, bool exp, bool *dead,
                        const char *what) {
    if (exp && !marked(obj)) {
        failf(in, "%s was freed (lost)", what);
        *dead = true;
    } else if (exp) {
        EXPECT(in, obj_ok(obj, id), "%s is corrupted", what);
    } else {
        EXPECT(in, !marked(obj), "%s survived (not freed)", what);
        *dead = true;
    }
}

static void *disguise(const void *p) { return (void *)~(uintptr_t)p; }

/* Words of a target that hold a pattern: values far outside any user
 * address, so that no scan takes them for pointers. */
static size_t pat_words(size_t nw, size_t out[7]) {
    size_t cand[7] = {0, 1, 2, 3, nw / 2, nw - 2, nw - 1}, n = 0;
    for (size_t k = 0; k < 7; k++) {
        bool dup = cand[k] >= nw;
        for (size_t j = 0; j < n && !dup; j++)
            dup = out[j] == cand[k];
        if (!dup)
            out[n++] = cand[k];
    }
    return n;
}
static uint64_t pat(const inst *in, size_t i) {
    return 0xa5a5000000000000ULL | (test_mix64(in->serial * 1000003u + i) & 0xffffffffffffULL);
}
static void t_fill(inst *in) {
    size_t w[7], n = pat_words(in->nw, w);
    uint64_t *t = in->T;
    for (size_t k = 0; k < n; k++)
        if (w[k] != in->t_child)
            t[w[k]] = pat(in, w[k]);
}
static bool t_intact(const inst *in) {
    size_t w[7], n = pat_words(in->nw, w);
    const uint64_t *t = in->T;
    for (size_t k = 0; k < n; k++)
        if (w[k] != in->t_child && t[w[k]] != pat(in, w[k]))
            return false;
    return in->t_child == NONE || ((void *const *)in->T)[in->t_child] == in->child;
}

/* Scratch for place() (malloc'd: never a root). */
static void **run;

static void *run_alloc(rudo_kind kind, size_t size, void *data) {
    (void)data;
    return must_alloc(kind, size);
}

/* Allocates objects of (kind, size) until cell `pos` of a page whose cells
 * were handed out in address order from cell 0 (a fresh page, or one swept
 * empty) is reached, and one cell more where the page has it; returns the
 * object at `pos`, or NULL if none comes within a bound. Collections are
 * disabled meanwhile (GC stress mode would otherwise cut every run of a
 * few thousand allocations). A large object is simply allocated. */
static void *place(rudo_kind kind, size_t size, size_t pos) {
    if (size > RUDO_SMALL_MAX)
        return must_alloc(kind, size);
    size_t ncells = ncells_of(size);
    size_t need = pos + 2 <= ncells ? pos + 2 : ncells;
    rudo_disable();
    void *res = test_page_run(kind, size, need, 16 * ncells + 256, run, run_alloc, NULL)
                    ? run[pos] : NULL;
    rudo_enable();
    if (res && (rudo_size(res) != size || rudo_kind_of(res) != kind ||
                ((uintptr_t)res & (RUDO_PAGE_SIZE - 1)) / size != pos))
        res = NULL;
    return res;
}

/* ---- the phases of a case ----------------------------------------------------- */

/* A: the holder side (holder at the cell, ephemerons, decoy). On the
 * second thread when there are two. */
static void phase_holder(inst *in) {
    void **r = g_roots[in->idx];
    in->H = place(k_h[in->hk], in->size, in->pos);
    if (!in->H) {
        in->placed = false;
        return;
    }
    r[RT_H] = in->H;
    in->hnw = rudo_size(in->H) / WORD;
    in->hr = holder_roles(in->hk, in->hnw);
    if (in->hk == HK_EPH) {
        in->E = in->H;
    } else {
        in->E = must_alloc(k_eph, 32);
        r[RT_E] = in->E;
    }
    in->Es = must_alloc(k_eph, 16);
    r[RT_ES] = in->Es;
    if (rel_chain(in->rel)) {
        bool rev = in->rel == R_CHAIN_LIVE_REV || in->rel == R_CHAIN_DEAD_REV;
        for (int k = 0; k < 3; k++) {
            int j = rev ? 2 - k : k;
            in->ce[j] = must_alloc(k_eph, 16);
            r[RT_CE0 + j] = in->ce[j];
        }
    }
    if (in->hr.decoy != NONE) {
        in->D = obj_new(id_of(in, 7));
        void **h = in->H;
        rudo_write(h, &h[in->hr.decoy], in->D); /* an untraced word */
        in->d_coll = atomic_load(&g_ncoll);
    }
}

static void phase_holder_all(void *arg) {
    (void)arg;
    for (unsigned i = 0; i < nbatch; i++)
        if (batch[i].placed)
            phase_holder(&batch[i]);
}

/* B: the target side (target at the cell, its child, values). */
static void phase_target(inst *in) {
    void **r = g_roots[in->idx];
    in->T = place(k_t[in->tk][rel_kind_fin((int)in->rel)], in->size, in->pos);
    if (!in->T) {
        in->placed = false;
        return;
    }
    r[RT_T] = in->T;
    in->nw = rudo_size(in->T) / WORD;
    in->t_child = target_child(in->tk, in->nw);
    t_fill(in);
    if (in->t_child != NONE) {
        in->child = obj_new(id_of(in, 1));
        void **t = in->T;
        rudo_write(t, &t[in->t_child], in->child);
    }
    in->V = obj_new(id_of(in, 2));
    r[RT_V] = in->V;
    if (rel_chain(in->rel))
        for (int j = 0; j < 3; j++) {
            in->cv[j] = obj_new(id_of(in, 3 + (unsigned)j));
            r[RT_CV0 + j] = in->cv[j];
        }
    in->tkey = in->pos & 1 ? (void *)((char *)in->T + (in->nw - 1) * WORD) : in->T;
    in->ttarget = (char *)in->T + (in->nw / 2) * WORD + 3;
}

static void fin_t(void *obj, void *data);
static void fin_h(void *obj, void *data);

/* C: the references: weak slots, the holder's words, the ephemerons, the
 * finalizers. Nothing is allocated from here to the checks. */
static void phase_link(inst *in) {
    void **w = g_weak[in->idx];
    void *T = in->T;
    w[WS_SHORT] = T;
    EXPECT(in, rudo_weak_register(&w[WS_SHORT]) == RUDO_OK, "register short");
    w[WS_LONG] = T;
    EXPECT(in, rudo_weak_register_long(&w[WS_LONG]) == RUDO_OK, "register long");
    w[WS_TSHORT] = disguise(T);
    EXPECT(in, rudo_weak_register_target(&w[WS_TSHORT], in->ttarget) == RUDO_OK,
           "register target");
    w[WS_TLONG] = disguise(T);
    EXPECT(in, rudo_weak_register_long_target(&w[WS_TLONG], T) == RUDO_OK,
           "register long target");
    w[WS_INTERIOR] = (char *)T + in->nw * WORD - 1;
    EXPECT(in, rudo_weak_register(&w[WS_INTERIOR]) == RUDO_OK, "register interior");
    w[WS_ROOTWEAK] = T;
    EXPECT(in, rudo_weak_register(&w[WS_SHORT]) == RUDO_EEXIST &&
                   rudo_weak_register_long(&w[WS_SHORT]) == RUDO_EEXIST &&
                   rudo_weak_register_target(&w[WS_LONG], T) == RUDO_EEXIST,
           "a second registration of a slot is not RUDO_EEXIST");

    void **h = in->H;
    const hroles *hr = &in->hr;
    if (hr->rshort != NONE) {
        rudo_write(h, &h[hr->rshort], T);
        EXPECT(in, rudo_weak_register(&h[hr->rshort]) == RUDO_OK, "register in-holder short");
    }
    if (hr->rlong != NONE) {
        rudo_write(h, &h[hr->rlong], T);
        EXPECT(in, rudo_weak_register_long(&h[hr->rlong]) == RUDO_OK,
               "register in-holder long");
    }
    if (hr->field != NONE)
        rudo_write(h, &h[hr->field], T);
    if (hr->field_nh != NONE)
        rudo_write(h, &h[hr->field_nh], NONHEAP);
    in->edge = (in->rel == R_STRONG || in->rel == R_STRONG_KF || in->rel == R_FIN_TOGETHER) &&
               hr->strong != NONE;
    if (in->edge)
        rudo_write(h, &h[hr->strong], T);
    rudo_write(in->E, &in->E->key, in->tkey);
    rudo_write(in->E, &in->E->value, in->V);
    rudo_write(in->Es, &in->Es->key, T);
    rudo_write(in->Es, &in->Es->value, T);
    if (rel_chain(in->rel)) {
        void *k = T;
        for (int j = 0; j < 3; j++) {
            rudo_write(in->ce[j], &in->ce[j]->key, k);
            rudo_write(in->ce[j], &in->ce[j]->value, in->cv[j]);
            k = in->cv[j];
        }
    }
    in->fin_obj = rel_obj_fin((int)in->rel);
    in->fin_kind = rel_kind_fin((int)in->rel);
    if (in->fin_obj) {
        int rc = in->rel == R_FIN_ORD ? rudo_finalizer_register_ordered(T, fin_t, in)
                                      : rudo_finalizer_register(T, fin_t, in);
        EXPECT(in, rc == RUDO_OK, "rudo_finalizer_register: %d", rc);
        EXPECT(in, rudo_finalizer_register(T, fin_t, in) == RUDO_EEXIST,
               "a second registration is not RUDO_EEXIST");
    }
    if (in->rel == R_FIN_TOGETHER) {
        EXPECT(in, rudo_finalizer_register(in->H, fin_h, in) == RUDO_OK,
               "rudo_finalizer_register (holder)");
        in->fin_h = true;
    }
    in->resurrect = in->rel == R_RES || in->rel == R_RES_KF;
}

/* D: the relation: drop the roots that held objects under construction. */
static void phase_drop(inst *in) {
    void **r = g_roots[in->idx];
    r[RT_CV0] = r[RT_CV1] = r[RT_CV2] = NULL;
    if (in->rel != R_EPH_HELD)
        r[RT_V] = NULL;
    if (!(rel_strong((int)in->rel) && !in->edge))
        r[RT_T] = NULL;
    if (in->rel == R_ALL_DIE || in->rel == R_FIN_TOGETHER)
        r[RT_H] = NULL;
}

/* ---- finalizers --------------------------------------------------------------- */

/* What a finalizer sees, checked against the model after the collection. */
static void snap(inst *in, obs *o, void *obj) {
    o->coll = g_coll;
    o->attached = rudo_thread_is_attached();
    o->obj = obj;
    for (int k = 0; k < NWS; k++)
        o->ws[k] = g_weak[in->idx][k];
    o->h_read = !in->H_dead && marked(in->H);
    if (o->h_read) {
        void **h = in->H;
        o->h_short = in->hr.rshort != NONE ? h[in->hr.rshort] : NULL;
        o->h_long = in->hr.rlong != NONE ? h[in->hr.rlong] : NULL;
        o->h_field = in->hr.field != NONE ? h[in->hr.field] : NULL;
        o->h_strong = in->hr.strong != NONE ? h[in->hr.strong] : NULL;
    }
    o->e_read = in->hk != HK_EPH || o->h_read;
    if (o->e_read) {
        o->e_key = in->E->key;
        o->e_val = in->E->value;
    }
    o->es_key = in->Es->key;
    o->es_val = in->Es->value;
    o->t_intact = !in->T_dead && marked(in->T) && t_intact(in);
    o->child_intact =
        !in->child || (!in->child_dead && marked(in->child) && obj_ok(in->child, id_of(in, 1)));
}

static void on_t_final(inst *in, void *obj, int k) {
    if (k)
        in->kind_calls++;
    else
        in->obj_calls++;
    snap(in, &in->ot[k], obj);
    if (in->resurrect) {
        g_roots[in->idx][RT_RES] = obj; /* lives on */
        in->resurrect = false;
        in->res_stage = 1;
    }
}

static void fin_t(void *obj, void *data) {
    atomic_fetch_add(&fin_calls, 1);
    on_t_final(data, obj, 0);
}

static void fin_h(void *obj, void *data) {
    atomic_fetch_add(&fin_calls, 1);
    inst *in = data;
    in->h_calls++;
    snap(in, &in->oh, obj);
}

static int kind_fin_tag;
static void kind_fin(void *obj, void *data) {
    atomic_fetch_add(&fin_calls, 1);
    if (data != &kind_fin_tag)
        atomic_fetch_add(&failures, 1);
    for (unsigned i = 0; i < nbatch; i++) {
        inst *in = &batch[i];
        if (in->placed && in->T == obj && !in->T_dead && rel_kind_fin((int)in->rel)) {
            on_t_final(in, obj, 1);
            return;
        }
    }
    atomic_fetch_add(&unknown_kind_calls, 1); /* a neighbour cell of a placement */
}

/* ---- the second thread -------------------------------------------------------- */


static void job_collect(void *arg) {
    if (*(bool *)arg)
        rudo_collect();
    else
        rudo_collect_minor();
}

static void collect(bool major, bool on_second) {
    if (on_second)
        test_on_worker(job_collect, &major);
    else
        job_collect(&major);
}

/* ---- the model ------------------------------------------------------------------ */

static void snapshot(inst *in) {
    void **r = g_roots[in->idx];
    in->s_rootT = r[RT_T] || r[RT_RES];
    in->s_rootH = r[RT_H] != NULL;
    in->s_rootV = r[RT_V] != NULL;
    in->s_oT = g_gen && !in->T_dead && marked(in->T);
    in->s_oH = g_gen && !in->H_dead && marked(in->H);
    in->s_oV = g_gen && !in->V_dead && marked(in->V);
    in->s_oC = g_gen && in->child && !in->child_dead && marked(in->child);
    for (int j = 0; j < 3; j++)
        in->s_ov[j] = g_gen && in->cv[j] && !in->cv_dead[j] && marked(in->cv[j]);
    in->s_finT = in->fin_obj || in->fin_kind;
    in->s_finH = in->fin_h;
}

static void check_obs_t(inst *in, const obs *o, const char *which, bool keptH) {
    void *T = in->T;
    EXPECT(in, o->coll == g_coll, "%s finalizer ran after collection %d", which, o->coll);
    EXPECT(in, o->attached, "%s finalizer ran on a thread that is not attached", which);
    EXPECT(in, o->obj == T, "%s finalizer called with %p, not the target %p", which, o->obj, T);
    static const int shorts[] = {WS_SHORT, WS_TSHORT, WS_INTERIOR, WS_ROOTWEAK};
    for (int k = 0; k < 4; k++)
        EXPECT(in, o->ws[shorts[k]] == NULL,
               "%s finalizer: the %s weak slot is not NULL when it runs", which,
               ws_name[shorts[k]]);
    EXPECT(in, o->ws[WS_LONG] == T, "%s finalizer: the long weak slot no longer points to it",
           which);
    EXPECT(in, o->ws[WS_TLONG] == disguise(T),
           "%s finalizer: the explicit-target long slot was cleared", which);
    EXPECT(in, o->h_read == keptH, "%s finalizer: holder marked %d, model %d", which, o->h_read,
           keptH);
    if (o->h_read) {
        EXPECT(in, in->hr.rshort == NONE || o->h_short == NULL,
               "%s finalizer: the short slot inside the holder is not NULL when it runs", which);
        EXPECT(in, in->hr.field == NONE || o->h_field == NULL,
               "%s finalizer: the holder's weak field (rudo_visit_weak) is not NULL when it runs",
               which);
        EXPECT(in, in->hr.rlong == NONE || o->h_long == T,
               "%s finalizer: the long slot inside the holder no longer points to it", which);
        EXPECT(in, !in->edge || o->h_strong == T, "%s finalizer: the holder's pointer changed",
               which);
    }
    if (o->e_read)
        EXPECT(in, o->e_key == in->tkey && o->e_val == in->V,
               "%s finalizer: the ephemeron keyed by it holds %p/%p, not %p/%p", which, o->e_key,
               o->e_val, in->tkey, in->V);
    EXPECT(in, o->es_key == T && o->es_val == T,
           "%s finalizer: the ephemeron whose value is its key holds %p/%p", which, o->es_key,
           o->es_val);
    EXPECT(in, o->t_intact, "%s finalizer: the object is not intact", which);
    EXPECT(in, o->child_intact, "%s finalizer: what it references is not intact", which);
}

/* After collection g_coll: everything the model says about one case. */
static void check_case(inst *in, uint64_t *exp_weak, uint64_t *exp_eph) {
    const bool minor = g_last_minor;
    const bool liveH = !in->H_dead && (in->s_rootH || (minor && in->s_oH));
    const bool liveT =
        !in->T_dead && (in->s_rootT || (in->edge && liveH) || (minor && in->s_oT));
    const bool finH_now = !in->H_dead && !liveH && in->s_finH;
    const bool finT_now = !in->T_dead && !liveT && in->s_finT;
    const bool keptH = !in->H_dead && (liveH || finH_now);
    const bool keptT = !in->T_dead && (liveT || finT_now || (in->edge && keptH));
    const bool reclaimT = !in->T_dead && !keptT;
    const bool reclaimH = !in->H_dead && !keptH;
    const bool e_marked = in->hk != HK_EPH || keptH;
    void *T = in->T;
    void **h = in->H;
    const hroles *hr = &in->hr;

    /* Weak slots and ephemerons: what this collection must clear. */
    if (!in->T_dead && !liveT && !in->short_cleared) {
        /* A short slot inside the holder is judged even if the holder
         * dies now (then forgotten); its weak field only if it is traced. */
        *exp_weak += 4 + (!in->H_dead && hr->rshort != NONE);
        if (keptH)
            *exp_weak += hr->field != NONE;
        in->short_cleared = true;
    }
    if (reclaimT && !in->long_cleared) {
        *exp_weak += 2;
        if (keptH)
            *exp_weak += hr->rlong != NONE;
        in->long_cleared = true;
    }
    if (reclaimT && !in->eph_cleared) {
        *exp_eph += (uint64_t)e_marked + 1 + (rel_chain((int)in->rel) ? 3 : 0);
        in->eph_cleared = true;
    }
    const bool sc = in->short_cleared, lc = in->long_cleared, ec = in->eph_cleared;

    /* Finalizers. */
    if (finT_now) {
        in->exp_obj += in->fin_obj;
        in->exp_kind += in->fin_kind;
        bool had_obj = in->fin_obj, had_kind = in->fin_kind;
        in->fin_obj = in->fin_kind = false;
        if (had_obj && in->obj_calls == in->exp_obj)
            check_obs_t(in, &in->ot[0], "per-object", keptH);
        if (had_kind && in->kind_calls == in->exp_kind)
            check_obs_t(in, &in->ot[1], "kind", keptH);
        if (had_obj && marked(T))
            EXPECT(in, rudo_finalizer_unregister(T) == RUDO_ENOENT,
                   "the registration did not end with the finalizer call");
    }
    if (finH_now) {
        in->exp_h++;
        in->fin_h = false;
        const obs *o = &in->oh;
        if (in->h_calls == in->exp_h) {
            EXPECT(in, o->coll == g_coll && o->attached && o->obj == in->H && o->h_read,
                   "holder finalizer: collection %d, attached %d, object %p", o->coll,
                   o->attached, o->obj);
            EXPECT(in, hr->rshort == NONE || o->h_short == NULL,
                   "holder finalizer: its short slot to the dead target is not NULL (rudo.h: "
                   "short slots are cleared before finalizers)");
            EXPECT(in, hr->field == NONE || o->h_field == NULL,
                   "holder finalizer: its weak field (rudo_visit_weak) to the dead target is not "
                   "NULL");
            EXPECT(in, hr->rlong == NONE || o->h_long == (lc ? NULL : T),
                   "holder finalizer: its long slot holds %p, not %p", o->h_long, lc ? NULL : T);
            EXPECT(in, !in->edge || o->h_strong == T, "holder finalizer: its pointer changed");
            EXPECT(in, !keptT || o->t_intact, "holder finalizer: the target is not intact");
        }
    }
    EXPECT(in, in->obj_calls == in->exp_obj, "per-object finalizer calls %d, expected %d",
           in->obj_calls, in->exp_obj);
    EXPECT(in, in->kind_calls == in->exp_kind, "kind finalizer calls %d, expected %d",
           in->kind_calls, in->exp_kind);
    EXPECT(in, in->h_calls == in->exp_h, "holder finalizer calls %d, expected %d", in->h_calls,
           in->exp_h);
    if (in->res_stage == 1 && !finT_now)
        in->res_stage = 2; /* seen alive one collection after it was resurrected */

    /* The target and its child. */
    if (!in->T_dead) {
        if (reclaimT) {
            EXPECT(in, !marked(T), "the target survived (not freed)");
            in->T_dead = true;
        } else if (!marked(T)) {
            failf(in, "the target was freed (lost)");
            in->T_dead = true; /* not to be touched again */
        } else {
            EXPECT(in, t_intact(in), "the target is not intact");
        }
    }
    if (in->child && !in->child_dead)
        expect_fate(in, in->child, id_of(in, 1), keptT || (minor && in->s_oC),
                    &in->child_dead, "the target's child");

    /* The holder and the slots inside it. */
    if (!in->H_dead) {
        if (reclaimH) {
            EXPECT(in, !marked(h), "the holder survived (not freed)");
            in->H_dead = true;
            if (hr->rshort != NONE)
                EXPECT(in, rudo_weak_registered(&h[hr->rshort]) == 0,
                       "the short slot inside the dead holder is still registered");
            if (hr->rlong != NONE)
                EXPECT(in, rudo_weak_registered(&h[hr->rlong]) == 0,
                       "the long slot inside the dead holder is still registered");
        } else if (!marked(h)) {
            failf(in, "the holder was freed (lost)");
            in->H_dead = true;
        } else {
            if (in->edge)
                EXPECT(in, h[hr->strong] == T, "the holder's pointer changed");
            if (hr->rshort != NONE) {
                EXPECT(in, h[hr->rshort] == (sc ? NULL : T),
                       "the short slot inside the holder holds %p, expected %p", h[hr->rshort],
                       sc ? NULL : T);
                EXPECT(in, rudo_weak_registered(&h[hr->rshort]) == RUDO_WEAK_SHORT,
                       "the short slot inside the holder is not registered");
            }
            if (hr->rlong != NONE) {
                EXPECT(in, h[hr->rlong] == (lc ? NULL : T),
                       "the long slot inside the holder holds %p, expected %p", h[hr->rlong],
                       lc ? NULL : T);
                EXPECT(in, rudo_weak_registered(&h[hr->rlong]) == RUDO_WEAK_LONG,
                       "the long slot inside the holder is not registered");
            }
            if (hr->field != NONE)
                EXPECT(in, h[hr->field] == (sc ? NULL : T),
                       "the holder's weak field holds %p, expected %p", h[hr->field],
                       sc ? NULL : T);
            if (hr->field_nh != NONE)
                EXPECT(in, h[hr->field_nh] == NONHEAP,
                       "a weak field holding a non-heap value was changed");
            if (hr->decoy != NONE)
                EXPECT(in, h[hr->decoy] == in->D, "an untraced ephemeron word changed");
        }
    }

    /* Slots outside the heap. */
    void **w = g_weak[in->idx];
    EXPECT(in, w[WS_SHORT] == (sc ? NULL : T), "the short slot holds %p, expected %p",
           w[WS_SHORT], sc ? NULL : T);
    EXPECT(in, w[WS_INTERIOR] == (sc ? NULL : (char *)T + in->nw * WORD - 1),
           "the short slot with an interior pointer holds %p", w[WS_INTERIOR]);
    EXPECT(in, w[WS_TSHORT] == (sc ? NULL : disguise(T)),
           "the explicit-target short slot holds %p", w[WS_TSHORT]);
    EXPECT(in, w[WS_ROOTWEAK] == (sc ? NULL : T),
           "the weak root (rudo_visit_weak in a root callback) holds %p", w[WS_ROOTWEAK]);
    EXPECT(in, w[WS_LONG] == (lc ? NULL : T), "the long slot holds %p, expected %p", w[WS_LONG],
           lc ? NULL : T);
    EXPECT(in, w[WS_TLONG] == (lc ? NULL : disguise(T)),
           "the explicit-target long slot holds %p", w[WS_TLONG]);
    EXPECT(in, rudo_weak_registered(&w[WS_SHORT]) == RUDO_WEAK_SHORT &&
                   rudo_weak_registered(&w[WS_INTERIOR]) == RUDO_WEAK_SHORT &&
                   rudo_weak_registered(&w[WS_LONG]) == RUDO_WEAK_LONG,
           "a value-judged slot lost its registration");
    EXPECT(in, rudo_weak_registered(&w[WS_TSHORT]) == (sc ? 0 : RUDO_WEAK_SHORT),
           "explicit-target short slot registration %d (cleared %d)",
           rudo_weak_registered(&w[WS_TSHORT]), sc);
    EXPECT(in, rudo_weak_registered(&w[WS_TLONG]) == (lc ? 0 : RUDO_WEAK_LONG),
           "explicit-target long slot registration %d (cleared %d)",
           rudo_weak_registered(&w[WS_TLONG]), lc);

    /* Ephemerons and their values. */
    if (in->hk != HK_EPH || !in->H_dead)
        EXPECT(in, in->E->key == (ec ? NULL : in->tkey) && in->E->value == (ec ? NULL : in->V),
               "the ephemeron keyed by the target holds %p/%p (cleared %d)", in->E->key,
               in->E->value, ec);
    EXPECT(in, in->Es->key == (ec ? NULL : T) && in->Es->value == (ec ? NULL : T),
           "the ephemeron whose value is its own key holds %p/%p (cleared %d)", in->Es->key,
           in->Es->value, ec);
    if (!in->V_dead)
        expect_fate(in, in->V, id_of(in, 2),
                    in->s_rootV || (e_marked && !ec) || (minor && in->s_oV), &in->V_dead,
                    "the ephemeron's value");
    if (rel_chain((int)in->rel)) {
        void *k = T;
        for (int j = 0; j < 3; j++) {
            rudo_ephemeron *e = in->ce[j];
            EXPECT(in, e->key == (ec ? NULL : k) && e->value == (ec ? NULL : in->cv[j]),
                   "chain ephemeron %d holds %p/%p (cleared %d)", j, e->key, e->value, ec);
            k = in->cv[j];
            if (in->cv_dead[j])
                continue;
            char what[32];
            snprintf(what, sizeof what, "chain value %d", j);
            expect_fate(in, in->cv[j], id_of(in, 3 + (unsigned)j),
                        !ec || (minor && in->s_ov[j]), &in->cv_dead[j], what);
        }
    }
}

/* The decoy (an ephemeron's untraced word) dies in the first collection
 * after it was made; later ones may reuse its cell. */
static void check_decoys(void) {
    uint64_t n = atomic_load(&g_ncoll);
    for (unsigned i = 0; i < nbatch; i++) {
        inst *in = &batch[i];
        if (!in->placed || !in->D || in->d_checked)
            continue;
        if (n == in->d_coll + 1)
            EXPECT(in, !marked(in->D), "a word after an ephemeron's two fields was traced");
        if (n > in->d_coll)
            in->d_checked = true;
    }
}

/* ---- a batch -------------------------------------------------------------------- */

static const char *const seqs[NMODE] = {"MMMMMMMMMM", "mmMmMMMMMM", "mMmMMMMMMM",
                                        "mmMmMMMMMM"};
static const int release_after[NMODE] = {1, 1, 2, 1};
static unsigned long batches;

static bool all_done(void) {
    for (unsigned i = 0; i < nbatch; i++)
        if (batch[i].placed && (!batch[i].T_dead || !batch[i].H_dead))
            return false;
    return true;
}

static void run_batch(void) {
    if (nbatch == 0)
        return;
    bool second = g_threads == 2;
    bool collect2 = second && (batches++ & 1);
    g_coll = -1;
    if (second)
        test_on_worker(phase_holder_all, NULL);
    else
        phase_holder_all(NULL);
    if (g_mode == MD_OLDH) {
        collect(false, collect2); /* promote the holders */
        check_decoys();
    }
    for (unsigned i = 0; i < nbatch; i++)
        if (batch[i].placed)
            phase_target(&batch[i]);
    g_nweakroots = nbatch;
    for (unsigned i = 0; i < nbatch; i++)
        if (batch[i].placed)
            phase_link(&batch[i]);
    if (g_mode == MD_OLD) {
        collect(false, collect2); /* promote everything */
        check_decoys();
    }
    for (unsigned i = 0; i < nbatch; i++)
        if (batch[i].placed)
            phase_drop(&batch[i]);

    const char *seq = g_gen ? seqs[g_mode] : seqs[MD_MAJOR];
    for (int c = 0; c < 10 && !all_done(); c++) {
        g_coll = c;
        for (unsigned i = 0; i < nbatch; i++)
            if (batch[i].placed)
                snapshot(&batch[i]);
        rudo_stats st0, st1;
        rudo_get_stats(&st0);
        unsigned long calls0 = atomic_load(&fin_calls);
        uint64_t n0 = atomic_load(&g_ncoll);
        collect(seq[c] == 'M', collect2);
        rudo_get_stats(&st1);
        EXPECT(NULL, atomic_load(&g_ncoll) == n0 + 1, "%lu collections instead of one",
               (unsigned long)(atomic_load(&g_ncoll) - n0));
        EXPECT(NULL, seq[c] != 'M' || !g_last_minor, "rudo_collect ran a minor collection");
        uint64_t exp_weak = 0, exp_eph = 0;
        for (unsigned i = 0; i < nbatch; i++)
            if (batch[i].placed)
                check_case(&batch[i], &exp_weak, &exp_eph);
        check_decoys();
        EXPECT(NULL, g_last_weak == exp_weak, "rudo_gc_event.weak_cleared %llu, expected %llu",
               (unsigned long long)g_last_weak, (unsigned long long)exp_weak);
        EXPECT(NULL, g_last_eph == exp_eph,
               "rudo_gc_event.ephemerons_cleared %llu, expected %llu",
               (unsigned long long)g_last_eph, (unsigned long long)exp_eph);
        EXPECT(NULL, st1.finalizers_run - st0.finalizers_run == atomic_load(&fin_calls) - calls0,
               "rudo_stats.finalizers_run grew by %llu, finalizers called %lu",
               (unsigned long long)(st1.finalizers_run - st0.finalizers_run),
               atomic_load(&fin_calls) - calls0);
        /* Between collections: resurrected targets die again (with their
         * per-object finalizer registered again), and after release_after
         * everything the roots held is let go. */
        for (unsigned i = 0; i < nbatch; i++) {
            inst *in = &batch[i];
            if (!in->placed)
                continue;
            void **r = g_roots[in->idx];
            if (in->res_stage == 2) {
                r[RT_RES] = NULL;
                if (in->rel == R_RES) {
                    EXPECT(in, rudo_finalizer_register(in->T, fin_t, in) == RUDO_OK,
                           "registering a resurrected object again");
                    in->fin_obj = true;
                }
                in->res_stage = 3;
            }
            if (c == release_after[g_gen ? g_mode : MD_MAJOR])
                r[RT_T] = r[RT_H] = NULL;
        }
    }
    g_coll = 99;
    for (unsigned i = 0; i < nbatch; i++) {
        inst *in = &batch[i];
        if (!in->placed) {
            if (cases_skipped++ < 10)
                fprintf(stderr, "  skipped: target %s holder %s size %zu cell %zu: no placement\n",
                        tk_name[in->tk], hk_name[in->hk], in->size, in->pos);
            continue;
        }
        cases_run++;
        if (!in->T_dead || !in->H_dead)
            failf(in, "not reclaimed after 10 collections (target %d, holder %d)", in->T_dead,
                  in->H_dead);
        void **w = g_weak[in->idx];
        EXPECT(in, rudo_weak_unregister(&w[WS_SHORT]) == RUDO_OK &&
                       rudo_weak_unregister(&w[WS_LONG]) == RUDO_OK &&
                       rudo_weak_unregister(&w[WS_INTERIOR]) == RUDO_OK,
               "unregistering the value-judged slots");
        bool t_left = rudo_weak_unregister(&w[WS_TSHORT]) == RUDO_OK;
        t_left |= rudo_weak_unregister(&w[WS_TLONG]) == RUDO_OK;
        EXPECT(in, !t_left || !in->T_dead, "an explicit-target registration outlived its target");
        if (!in->H_dead && marked(in->H)) { /* after a failure: leave nothing behind */
            void **h = in->H;
            if (in->hr.rshort != NONE)
                rudo_weak_unregister(&h[in->hr.rshort]);
            if (in->hr.rlong != NONE)
                rudo_weak_unregister(&h[in->hr.rlong]);
            if (in->fin_h)
                rudo_finalizer_unregister(h);
        }
        if (!in->T_dead && in->fin_obj && marked(in->T))
            rudo_finalizer_unregister(in->T);
        if (in->bad) {
            cases_bad++;
            bad_by_rel[in->rel]++;
            bad_by_tk[in->tk]++;
            bad_by_hk[in->hk]++;
        }
    }
    memset(g_roots, 0, sizeof g_roots);
    memset(g_weak, 0, sizeof g_weak);
    g_nweakroots = 0;
    nbatch = 0;
}

static void add_case(unsigned tk, unsigned hk, unsigned si, size_t pos, unsigned rel) {
    inst *in = &batch[nbatch];
    memset(in, 0, sizeof *in);
    in->tk = tk;
    in->hk = hk;
    in->si = si;
    in->rel = rel;
    in->idx = nbatch;
    in->pos = pos;
    in->size = usable(size_of_index(si));
    in->serial = next_serial++;
    in->placed = true;
    in->ot[0].coll = in->ot[1].coll = in->oh.coll = -1;
    nbatch++;
    if (nbatch == MAX_BATCH)
        run_batch();
}

/* ---- heaps ---------------------------------------------------------------------- */

static void make_heap(unsigned markers, bool gen, unsigned threads) {
    rudo_config cfg = test_manual_config(markers, (size_t)256 << 20);
    cfg.generational = gen;
    test_heap_create(&cfg);
    g_markers = markers;
    g_gen = gen;
    g_threads = threads;
    static const uint64_t t_layout = 1, h_layout = 9; /* words {0} of 3, {0, 3} of 4 */
    for (int tk = 0; tk < NTK; tk++)
        for (int f = 0; f < 2; f++) {
            char name[48];
            snprintf(name, sizeof name, "wm-%s%s", tk_name[tk], f ? "-kf" : "");
            rudo_kind_desc d = {.name = name};
            switch (tk) {
            case TK_CONS:
                d.tracing = RUDO_TRACE_CONSERVATIVE;
                break;
            case TK_ATOMIC:
            case TK_UNINIT:
                d.tracing = RUDO_TRACE_ATOMIC;
                break;
            case TK_CALLBACK:
                d.tracing = RUDO_TRACE_CALLBACK;
                d.trace = t_trace;
                break;
            case TK_LAYOUT:
                d.tracing = RUDO_TRACE_LAYOUT;
                d.layout = &t_layout;
                d.layout_words = 3;
                break;
            }
            if (f) {
                d.finalize = kind_fin;
                d.finalize_data = &kind_fin_tag;
            }
            k_t[tk][f] = rudo_kind_register_flags(&d, tk == TK_UNINIT ? RUDO_KIND_UNINIT : 0);
        }
    k_h[HK_CONS] = rudo_kind_conservative("wm-h-conservative");
    k_h[HK_ATOMIC] = rudo_kind_atomic("wm-h-atomic");
    k_h[HK_CALLBACK] = rudo_kind_traced("wm-h-callback", h_trace);
    k_h[HK_LAYOUT] = rudo_kind_layout("wm-h-layout4", 4, &h_layout);
    rudo_kind_desc ud = {.name = "wm-h-uninit", .tracing = RUDO_TRACE_ATOMIC};
    k_h[HK_UNINIT] = rudo_kind_register_flags(&ud, RUDO_KIND_UNINIT);
    k_h[HK_EPH] = rudo_kind_ephemeron("wm-h-ephemeron");
    k_child = rudo_kind_atomic("wm-child");
    k_eph = rudo_kind_ephemeron("wm-eph");
    for (int i = 0; i < MAX_BATCH; i++)
        for (int j = 0; j < NRT; j++)
            rudo_root_add(&g_roots[i][j]);
    CHECK_EQ(rudo_root_callback_add(root_cb, NULL), RUDO_OK);
    rudo_set_gc_callback(on_gc, NULL);
    if (threads == 2) {
        test_worker_start();
    }
}

static void drop_heap(void) {
    if (g_threads == 2) {
        test_worker_stop();
    }
    rudo_collect();
    CHECK_EQ(rudo__debug_markers(), g_markers);
    CHECK(rudo__debug_markers_quiescent());
    rudo_set_gc_callback(NULL, NULL);
    CHECK_EQ(rudo_root_callback_remove(root_cb, NULL), RUDO_OK);
    for (int i = 0; i < MAX_BATCH; i++)
        for (int j = 0; j < NRT; j++)
            CHECK_EQ(rudo_root_remove(&g_roots[i][j]), RUDO_OK);
    rudo_heap_destroy();
}

/* ---- the other claims of rudo.h, once per configuration ------------------------- */

static void *croot[24]; /* registered precise roots */
static rudo_kind c_node, c_plain;

typedef struct cnode {
    struct cnode *next;
    uint64_t val;
} cnode;
static void c_trace(void *o, size_t size, rudo_tracer *tr) {
    (void)size;
    rudo_visit(tr, (void **)&((cnode *)o)->next);
}
static cnode *c_new(void) { return must_alloc(c_node, sizeof(cnode)); }
static void c_link(cnode *a, cnode *b) { rudo_write(a, (void **)&a->next, b); }

static void claim_check(bool ok, const char *expr, int line) {
    if (!ok)
        fprintf(stderr, "  FAIL claim (markers %u, %s) at line %d: %s\n", g_markers,
                g_gen ? "generational" : "non-generational", line, expr);
    test_check(ok, expr, __FILE__, line);
}
#define CCHECK(c) claim_check((c) ? true : false, #c, __LINE__)

/* A finalizer that records the objects it was called for. */
#define CMAX 64
static void *c_seen[CMAX];
static int c_nseen;
static bool c_detached_call;
static void c_fin(void *obj, void *data) {
    if (c_nseen < CMAX)
        c_seen[c_nseen++] = obj;
    c_detached_call |= !rudo_thread_is_attached();
    if (data)
        ++*(int *)data;
}
static int c_count(const void *obj) {
    int n = 0;
    for (int i = 0; i < c_nseen; i++)
        n += c_seen[i] == obj;
    return n;
}

/* Registration calls; values that are not heap pointers; an explicit
 * target outside the heap; unregister and move. */
static void claims_weak(void) {
    static void *s[8], *t[2];
    static int outside;
    void *m = malloc(16);
    croot[0] = obj_new(11);
    croot[1] = obj_new(12);
    croot[2] = obj_new(13);
    void *Y = croot[0], *Z = croot[1], *W = croot[2];
    s[0] = NONHEAP;
    CCHECK(rudo_weak_register(&s[0]) == RUDO_OK);
    s[1] = m;
    CCHECK(rudo_weak_register_long(&s[1]) == RUDO_OK);
    s[2] = NULL;
    CCHECK(rudo_weak_register(&s[2]) == RUDO_OK);
    s[3] = (void *)(uintptr_t)0x1234;
    CCHECK(rudo_weak_register_target(&s[3], &outside) == RUDO_OK);
    s[4] = Y;
    CCHECK(rudo_weak_register(&s[4]) == RUDO_OK);
    CCHECK(rudo_weak_unregister(&s[4]) == RUDO_OK);
    CCHECK(rudo_weak_unregister(&s[4]) == RUDO_ENOENT);
    CCHECK(rudo_weak_registered(&s[4]) == 0);
    s[5] = Z;
    CCHECK(rudo_weak_register_long(&s[5]) == RUDO_OK);
    CCHECK(rudo_weak_move(&s[5], &s[6]) == RUDO_OK);
    CCHECK(rudo_weak_registered(&s[5]) == 0 && rudo_weak_registered(&s[6]) == RUDO_WEAK_LONG);
    CCHECK(s[6] == NULL && s[5] == Z); /* the values are not copied */
    s[6] = Z;
    CCHECK(rudo_weak_move(&s[7], &s[0]) == RUDO_ENOENT);
    CCHECK(rudo_weak_move(&s[6], &s[0]) == RUDO_EEXIST);
    CCHECK(rudo_weak_registered(&s[6]) == RUDO_WEAK_LONG &&
           rudo_weak_registered(&s[0]) == RUDO_WEAK_SHORT); /* nothing changed */
    t[0] = disguise(W);
    CCHECK(rudo_weak_register_target(&t[0], W) == RUDO_OK);
    CCHECK(rudo_weak_move(&t[0], &t[1]) == RUDO_OK); /* keeps the target */
    t[1] = (void *)(uintptr_t)42;
    croot[0] = croot[1] = croot[2] = NULL;
    rudo_collect();
    CCHECK(s[0] == NONHEAP && s[1] == m && s[2] == NULL); /* non-heap values: left alone */
    CCHECK(s[3] == (void *)(uintptr_t)0x1234 && rudo_weak_registered(&s[3]) == RUDO_WEAK_SHORT);
    CCHECK(s[4] == Y); /* unregistered: not cleared */
    CCHECK(s[5] == Z); /* moved away: not cleared */
    CCHECK(s[6] == NULL);
    CCHECK(t[1] == NULL && rudo_weak_registered(&t[1]) == 0 && t[0] == disguise(W));
    CCHECK(rudo_weak_registered(&t[0]) == 0);
    for (int i = 0; i < 4; i++)
        CCHECK(rudo_weak_unregister(&s[i]) == RUDO_OK);
    CCHECK(rudo_weak_unregister(&s[6]) == RUDO_OK);
    memset(s, 0, sizeof s);
    memset(t, 0, sizeof t);
    free(m);
}

/* rudo_free clears neither the weak slots nor the ephemerons pointing to
 * the object (the program does, rudo.h). */
static void claims_free(void) {
    static void *s;
    croot[0] = obj_new(21);
    croot[1] = must_alloc(k_eph, 16);
    void *X = croot[0];
    rudo_ephemeron *E = croot[1];
    rudo_write(E, &E->key, X);
    s = X;
    CCHECK(rudo_weak_register(&s) == RUDO_OK);
    croot[0] = NULL;
    rudo_free(X);
    CCHECK(s == X && E->key == X);
    s = NULL; /* the program's part */
    rudo_write(E, &E->key, NULL);
    CCHECK(rudo_weak_unregister(&s) == RUDO_OK);
    croot[1] = NULL;
    rudo_collect();
}

/* Ephemeron keys and values that do not point into the heap count as
 * reachable (a NULL key too); a value that references its own key does
 * not keep it. */
static void claims_ephemeron(void) {
    for (int i = 0; i < 4; i++)
        croot[i] = must_alloc(k_eph, 16);
    croot[4] = obj_new(31);
    croot[5] = obj_new(32);
    croot[6] = rudo_malloc(32); /* K3: conservative */
    croot[7] = rudo_malloc(32); /* V3: conservative, refers to K3 */
    croot[8] = obj_new(34);     /* K4: kept */
    rudo_ephemeron *E1 = croot[0], *E2 = croot[1], *E3 = croot[2], *E4 = croot[3];
    void *V1 = croot[4], *V2 = croot[5], *K4 = croot[8];
    void **K3 = croot[6], **V3 = croot[7];
    rudo_write(E1, &E1->key, NONHEAP);
    rudo_write(E1, &E1->value, V1);
    rudo_write(E2, &E2->value, V2);
    V3[0] = K3;
    rudo_write(E3, &E3->key, K3);
    rudo_write(E3, &E3->value, V3);
    rudo_write(E4, &E4->key, K4);
    rudo_write(E4, &E4->value, NONHEAP);
    croot[4] = croot[5] = croot[6] = croot[7] = NULL;
    rudo_collect();
    CCHECK(E1->key == NONHEAP && E1->value == V1 && marked(V1) && obj_ok(V1, 31));
    CCHECK(E2->key == NULL && E2->value == V2 && marked(V2) && obj_ok(V2, 32));
    CCHECK(E3->key == NULL && E3->value == NULL && !marked(K3) && !marked(V3));
    CCHECK(E4->key == K4 && E4->value == NONHEAP);
    CCHECK(g_last_eph == 1);
    for (int i = 0; i < 9; i++)
        croot[i] = NULL;
    rudo_collect();
}

/* rudo_kind_set_finalizer: objects allocated before are affected; the
 * pair in effect when the finalizer runs is the one called; cleared, the
 * object is reclaimed without a call. On-demand finalization: nothing
 * runs in the collection, notify is called after one that found some due,
 * the objects stay allocated until rudo_run_finalizers runs them. */
static int kf_tag[8];
static void *kf_obj[8], *kf_data[8];
static int nkf;
static void kf1(void *o, void *d) {
    if (nkf < 8) {
        kf_tag[nkf] = 1;
        kf_obj[nkf] = o;
        kf_data[nkf++] = d;
    }
}
static void kf2(void *o, void *d) {
    if (nkf < 8) {
        kf_tag[nkf] = 2;
        kf_obj[nkf] = o;
        kf_data[nkf++] = d;
    }
}
static int notified;
static bool notify_elsewhere;
static pthread_t notify_expect;
static void cnotify(void *data) {
    ++*(int *)data;
    notify_elsewhere |= !pthread_equal(pthread_self(), notify_expect);
}

static void claims_kind_finalizer(void) {
    static int d1, d2;
    nkf = 0;
    croot[0] = must_alloc(c_plain, 48);
    void *X = croot[0];
    rudo_kind_set_finalizer(c_plain, kf1, &d1);
    croot[0] = NULL;
    rudo_collect();
    CCHECK(nkf == 1 && kf_obj[0] == X && kf_tag[0] == 1 && kf_data[0] == &d1);

    notify_expect = pthread_self();
    rudo_set_finalization(true, cnotify, &notified);
    CCHECK(rudo_run_finalizers() == 0);
    croot[0] = must_alloc(c_plain, 48);
    void *Y = croot[0];
    croot[0] = NULL;
    int n0 = notified;
    rudo_collect();
    CCHECK(notified == n0 + 1 && !notify_elsewhere);
    CCHECK(nkf == 1 && marked(Y)); /* not run, still allocated */
    rudo_collect();
    CCHECK(nkf == 1 && marked(Y) && notified == n0 + 1);
    rudo_kind_set_finalizer(c_plain, kf2, &d2);
    CCHECK(rudo_run_finalizers() == 1);
    CCHECK(nkf == 2 && kf_obj[1] == Y && kf_tag[1] == 2 && kf_data[1] == &d2);
    CCHECK(rudo_run_finalizers() == 0);
    croot[0] = must_alloc(c_plain, 48);
    void *Z = croot[0];
    croot[0] = NULL;
    rudo_collect();
    rudo_kind_set_finalizer(c_plain, NULL, NULL);
    rudo_run_finalizers();
    CCHECK(nkf == 2); /* cleared: not finalized */
    rudo_set_finalization(false, NULL, NULL);
    rudo_collect();
    CCHECK(!marked(Z)); /* and reclaimed */
}

/* Per-object registrations: one per object; unregistered, no call. */
static void claims_per_object(void) {
    croot[0] = c_new();
    void *X = croot[0];
    int calls = 0;
    CCHECK(rudo_finalizer_register(X, c_fin, &calls) == RUDO_OK);
    rudo_guardian *g = rudo_guardian_new();
    CCHECK(g != NULL);
    CCHECK(rudo_guardian_register(g, X) == RUDO_EEXIST);
    CCHECK(rudo_finalizer_register_ordered(X, c_fin, &calls) == RUDO_EEXIST);
    CCHECK(rudo_finalizer_unregister(X) == RUDO_OK);
    CCHECK(rudo_finalizer_unregister(X) == RUDO_ENOENT);
    croot[0] = NULL;
    rudo_collect();
    CCHECK(calls == 0 && !marked(X));
    rudo_guardian_destroy(g);
}

/* Ordered finalization, ignore_self, cycles. */
static void claims_ordered(void) {
    enum { A, B, U, O, O2, U2, C1, C2, S, S2, Q, S3, N };
    cnode *n[N];
    for (int i = 0; i < N; i++)
        croot[i] = n[i] = c_new();
    c_link(n[A], n[B]);
    c_link(n[U], n[O]);
    c_link(n[O2], n[U2]);
    c_link(n[C1], n[C2]);
    c_link(n[C2], n[C1]);
    c_link(n[S], n[S]);
    c_link(n[S2], n[Q]);
    c_link(n[Q], n[S2]);
    c_link(n[S3], n[S3]);
    static const int ord[] = {A, B, O, O2, C1, C2, S3};
    for (size_t i = 0; i < sizeof ord / sizeof ord[0]; i++)
        CCHECK(rudo_finalizer_register_ordered(n[ord[i]], c_fin, NULL) == RUDO_OK);
    CCHECK(rudo_finalizer_register(n[U], c_fin, NULL) == RUDO_OK);
    CCHECK(rudo_finalizer_register(n[U2], c_fin, NULL) == RUDO_OK);
    CCHECK(rudo_finalizer_register_ignore_self(n[S], c_fin, NULL) == RUDO_OK);
    CCHECK(rudo_finalizer_register_ignore_self(n[S2], c_fin, NULL) == RUDO_OK);
    c_nseen = 0;
    for (int i = 0; i < N; i++)
        croot[i] = NULL;
    rudo_collect();
    CCHECK(c_count(n[A]) == 1 && c_count(n[B]) == 0 && marked(n[B])); /* A first, B kept */
    CCHECK(c_count(n[U]) == 1 && c_count(n[O]) == 0 && marked(n[O])); /* waits on unordered */
    CCHECK(c_count(n[O2]) == 1 && c_count(n[U2]) == 1); /* an unordered one never waits */
    CCHECK(c_count(n[C1]) == 0 && c_count(n[C2]) == 0 && marked(n[C1]) && marked(n[C2]));
    CCHECK(c_count(n[S]) == 1);                                      /* only itself */
    CCHECK(c_count(n[S2]) == 0 && marked(n[S2]) && marked(n[Q]));   /* a longer cycle */
    CCHECK(c_count(n[S3]) == 0 && marked(n[S3]));                   /* ordered self cycle */
    CCHECK(g_last_cycles == 3);
    rudo_collect();
    CCHECK(c_count(n[B]) == 1 && c_count(n[O]) == 1);
    CCHECK(c_count(n[C1]) + c_count(n[C2]) + c_count(n[S2]) + c_count(n[S3]) == 0);
    CCHECK(marked(n[C1]) && marked(n[C2]) && marked(n[S2]) && marked(n[S3]));
    CCHECK(g_last_cycles == 3);
    c_link(n[C1], NULL); /* the program breaks the cycle: C2 -> C1 */
    rudo_collect();
    CCHECK(c_count(n[C2]) == 1 && c_count(n[C1]) == 0 && marked(n[C1]));
    rudo_collect();
    CCHECK(c_count(n[C1]) == 1);
    CCHECK(rudo_finalizer_unregister(n[S2]) == RUDO_OK);
    CCHECK(rudo_finalizer_unregister(n[S3]) == RUDO_OK);
    rudo_collect();
    rudo_collect();
    for (int i = 0; i < N; i++)
        CCHECK(!marked(n[i]));
    CCHECK(!c_detached_call);
    for (int i = 0; i < N; i++)
        CCHECK(c_count(n[i]) <= 1); /* once */
}

/* Guardians. */
static void claims_guardian(void) {
    rudo_guardian *g = rudo_guardian_new();
    CCHECK(g != NULL);
    croot[0] = obj_new(41);
    croot[1] = obj_new(42);
    void *X = croot[0], *Z = croot[1];
    CCHECK(rudo_guardian_register(g, X) == RUDO_OK);
    CCHECK(rudo_guardian_register(g, X) == RUDO_EEXIST);
    CCHECK(rudo_guardian_register(g, Z) == RUDO_OK);
    CCHECK(rudo_guardian_poll(g) == NULL);
    rudo_collect();
    CCHECK(rudo_guardian_poll(g) == NULL); /* reachable: not handed back */
    croot[0] = croot[1] = NULL;
    rudo_collect();
    rudo_collect();
    CCHECK(marked(X) && marked(Z) && obj_ok(X, 41) && obj_ok(Z, 42)); /* kept until polled */
    void *p1 = rudo_guardian_poll(g);
    void *p2 = rudo_guardian_poll(g);
    croot[0] = p1;
    croot[1] = p2;
    CCHECK((p1 == X && p2 == Z) || (p1 == Z && p2 == X));
    CCHECK(rudo_guardian_poll(g) == NULL);
    CCHECK(rudo_guardian_register(g, X) == RUDO_OK); /* told again */
    croot[0] = croot[1] = NULL;
    rudo_collect();
    CCHECK(!marked(Z)); /* polled: an ordinary object, dead */
    void *p3 = rudo_guardian_poll(g);
    croot[0] = p3;
    CCHECK(p3 == X && obj_ok(X, 41));
    /* Destroying a guardian drops its registrations and the objects not
     * handed back. */
    rudo_guardian *g2 = rudo_guardian_new();
    croot[1] = obj_new(43);
    void *W = croot[1];
    CCHECK(rudo_guardian_register(g2, X) == RUDO_OK);
    CCHECK(rudo_guardian_register(g2, W) == RUDO_OK);
    croot[0] = NULL;
    rudo_collect(); /* X ready in g2 */
    rudo_guardian_destroy(g2);
    CCHECK(rudo_finalizer_register(W, c_fin, NULL) == RUDO_OK); /* W's registration went */
    CCHECK(rudo_finalizer_unregister(W) == RUDO_OK);
    croot[1] = NULL;
    rudo_collect();
    CCHECK(!marked(X) && !marked(W));
    rudo_guardian_destroy(g);
}

/* A finalizer may allocate (here enough for GC stress collections inside
 * it), and what it stores in a root lives on. */
static int fa_calls;
static void fin_alloc(void *obj, void *data) {
    (void)data;
    fa_calls++;
    for (int i = 0; i < 300; i++)
        croot[10] = obj_new(50 + (uint64_t)(i == 299));
    croot[11] = ((cnode *)obj)->next; /* what it refers to is intact */
}
static void claims_fin_alloc(void) {
    croot[0] = c_new();
    croot[1] = c_new();
    cnode *X = croot[0], *K = croot[1];
    K->val = 77;
    c_link(X, K);
    CCHECK(rudo_finalizer_register(X, fin_alloc, NULL) == RUDO_OK);
    croot[0] = croot[1] = NULL;
    fa_calls = 0;
    rudo_collect();
    CCHECK(fa_calls == 1 && croot[10] && obj_ok(croot[10], 51));
    CCHECK(croot[11] == K && K->val == 77);
    rudo_collect();
    CCHECK(marked(croot[10]) && obj_ok(croot[10], 51) && marked(K) && K->val == 77);
    croot[10] = croot[11] = NULL;
    rudo_collect();
}

/* One thread runs finalizers at a time, an attached one: two threads
 * collect concurrently, each with dying objects that have finalizers. */
static atomic_int conc_inside, conc_overlap, conc_calls, conc_unattached, conc_bad;
static void c_conc(void *obj, void *data) {
    (void)obj;
    (void)data;
    if (atomic_fetch_add(&conc_inside, 1) != 0)
        atomic_fetch_add(&conc_overlap, 1);
    if (!rudo_thread_is_attached())
        atomic_fetch_add(&conc_unattached, 1);
    for (volatile int i = 0; i < 300; i++)
        ;
    atomic_fetch_sub(&conc_inside, 1);
    atomic_fetch_add(&conc_calls, 1);
}
#define CONC_ROUNDS 12
#define CONC_PER 40
static void *conc_thread(void *arg) {
    void **slot = arg;
    if (rudo_thread_attach() != RUDO_OK) {
        atomic_fetch_add(&conc_bad, 1);
        return NULL;
    }
    for (int r = 0; r < CONC_ROUNDS; r++) {
        for (int k = 0; k < CONC_PER; k++) {
            *slot = obj_new((uint64_t)k); /* rooted while it is registered */
            if (rudo_finalizer_register(*slot, c_conc, NULL) != RUDO_OK)
                atomic_fetch_add(&conc_bad, 1);
            *slot = NULL;
        }
        rudo_collect();
    }
    rudo_thread_detach();
    return NULL;
}
static void claims_fin_threads(void) {
    atomic_store(&conc_calls, 0);
    /* The callbacks of two collections may overlap (rudo.h): none here. */
    rudo_set_gc_callback(NULL, NULL);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, conc_thread, &croot[20 + i]) != 0) {
            perror("pthread_create");
            exit(2);
        }
    rudo_blocking_enter();
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    rudo_blocking_leave();
    rudo_collect();
    rudo_collect();
    CCHECK(atomic_load(&conc_bad) == 0);
    CCHECK(atomic_load(&conc_overlap) == 0);
    CCHECK(atomic_load(&conc_unattached) == 0);
    CCHECK(atomic_load(&conc_calls) == 2 * CONC_ROUNDS * CONC_PER);
    rudo_set_gc_callback(on_gc, NULL);
}

static void run_claims(void) {
    for (unsigned markers = 1; markers <= 3; markers++)
        for (int gen = 0; gen < 2; gen++) {
            rudo_config cfg = test_precise_config(markers);
            cfg.generational = gen;
            if (rudo_heap_create(&cfg) != RUDO_OK) {
                fprintf(stderr, "rudo_heap_create failed\n");
                exit(2);
            }
            g_markers = markers;
            g_gen = gen;
            k_child = rudo_kind_atomic("wm-child");
            k_eph = rudo_kind_ephemeron("wm-eph");
            c_node = rudo_kind_traced("wm-node", c_trace);
            c_plain = rudo_kind_atomic("wm-plain");
            for (size_t i = 0; i < sizeof croot / sizeof croot[0]; i++)
                rudo_root_add(&croot[i]);
            rudo_set_gc_callback(on_gc, NULL);
            claims_weak();
            claims_free();
            claims_ephemeron();
            claims_kind_finalizer();
            claims_per_object();
            claims_ordered();
            claims_guardian();
            claims_fin_alloc();
            claims_fin_threads();
            rudo_set_gc_callback(NULL, NULL);
            for (size_t i = 0; i < sizeof croot / sizeof croot[0]; i++) {
                croot[i] = NULL;
                CHECK_EQ(rudo_root_remove(&croot[i]), RUDO_OK);
            }
            rudo_heap_destroy();
        }
}

#ifdef RUDO_TEST_DEBUG_BUILD
#define DEBUG_BUILD 1 /* the verifier runs after every collection */
#else
#define DEBUG_BUILD 0
#endif

/* ---- main ----------------------------------------------------------------------- */

static void run_matrix(bool full, uint64_t seed, long sample) {
    static const unsigned marker_counts[] = {1, 2, 3};
    unsigned long planned = 0, picked = 0, picked_core = 0;
    for (unsigned mi = 0; mi < 3; mi++)
        for (unsigned gi = 0; gi < 2; gi++)
            for (unsigned ti = 1; ti <= 2; ti++) {
                unsigned markers = marker_counts[mi];
                unsigned long run0 = cases_run;
                uint64_t t0 = test_now_ns();
                make_heap(markers, gi, ti);
                for (int mode = 0; mode < (gi ? NMODE : 1); mode++) {
                    g_mode = mode;
                    for (unsigned tk = 0; tk < NTK; tk++)
                        for (unsigned hk = 0; hk < NHK; hk++)
                            for (unsigned si = 0; si < NSIZES; si++) {
                                size_t size = size_of_index(si);
                                if (!full && !ci_size(size))
                                    continue;
                                size_t nc = ncells_of(size);
                                size_t poss[4] = {0, 1, nc / 2, nc - 1}, np = 0, pl[4];
                                for (int k = 0; k < 4; k++) {
                                    bool dup = poss[k] >= nc;
                                    for (size_t j = 0; j < np && !dup; j++)
                                        dup = pl[j] == poss[k];
                                    if (!dup)
                                        pl[np++] = poss[k];
                                }
                                for (size_t pi = 0; pi < np; pi++)
                                    for (unsigned rel = 0; rel < NREL; rel++) {
                                        planned++;
                                        uint64_t hsh = test_mix64(
                                            seed ^ ((uint64_t)mi << 56) ^ ((uint64_t)gi << 54) ^
                                            ((uint64_t)ti << 52) ^ ((uint64_t)mode << 48) ^
                                            ((uint64_t)tk << 44) ^ ((uint64_t)hk << 40) ^
                                            ((uint64_t)si << 24) ^ ((uint64_t)pi << 20) ^ rel);
                                        bool core = markers == 2 && ti == 1 && pi >= 1 &&
                                                    pl[pi] + 1 == nc &&
                                                    (tk == TK_CALLBACK || tk == TK_LAYOUT) &&
                                                    (hk == HK_CALLBACK || hk == HK_LAYOUT) &&
                                                    hsh % 4 == 0;
                                        if (!full && !core && (long)(hsh % 1000) >= sample)
                                            continue;
                                        picked++;
                                        picked_core += core && !full;
                                        add_case(tk, hk, si, pl[pi], rel);
                                    }
                            }
                    run_batch();
                }
                drop_heap();
                printf("  markers %u, %s, %u thread%s: %lu cases, %.2f s\n", markers,
                       gi ? "generational" : "non-generational", ti, ti > 1 ? "s" : "",
                       cases_run - run0, (double)(test_now_ns() - t0) / 1e9);
                fflush(stdout);
            }
    printf("matrix: %lu of %lu cases picked (%lu of them the core), %lu run, %lu skipped (no "
           "placement), %lu bad\n",
           picked, planned, picked_core, cases_run, cases_skipped, cases_bad);
}

int main(int argc, char **argv) {
    /* The whole product: about 10 minutes in a plain build; hours under
     * sanitizers. */
    bool full = test_long_mode(argc, argv);
    test_start_watchdog();
    uint64_t seed = (uint64_t)test_env_long("TEST_SEED", 0x776d);
    long sample = test_env_long("TEST_SAMPLE", TEST_UNDER_TSAN    ? 6
                                               : TEST_UNDER_ASAN ? 25
                                               : DEBUG_BUILD     ? 25
                                                                 : 60);
    static const char *const env[] = {"RUDO_MARKERS", "RUDO_GENERATIONAL", "RUDO_NURSERY",
                                      "RUDO_NURSERY_ADAPT", "RUDO_HEAP_INITIAL",
                                      "RUDO_MAJOR_GROWTH", "RUDO_HEAP_MAX"};
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i++)
        unsetenv(env[i]);
    run = malloc(RUDO_MAX_CELLS * sizeof *run);
    if (!run) {
        perror("malloc");
        return 2;
    }
    printf("seed %llu, %s, sample %ld per mille\n", (unsigned long long)seed,
           full ? "full cross product" : "CI sample (TEST_LONG=1 for all)", sample);
    run_matrix(full, seed, sample);
    uint64_t tc = test_now_ns();
    run_claims();
    printf("claims: %.2f s\n", (double)(test_now_ns() - tc) / 1e9);
    for (int r = 0; r < NREL; r++)
        if (bad_by_rel[r])
            printf("  relation %s: %lu bad cases\n", rel_name[r], bad_by_rel[r]);
    for (int k = 0; k < NTK; k++)
        if (bad_by_tk[k])
            printf("  target %s: %lu bad cases\n", tk_name[k], bad_by_tk[k]);
    for (int k = 0; k < NHK; k++)
        if (bad_by_hk[k])
            printf("  holder %s: %lu bad cases\n", hk_name[k], bad_by_hk[k]);
    CHECK(cases_run > 0);
    CHECK(cases_skipped * 100 <= cases_run);
    CHECK_EQ(atomic_load(&failures), 0ul);
    free(run);
    return test_report();
}
