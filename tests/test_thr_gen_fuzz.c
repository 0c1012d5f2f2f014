/* test_thr_gen_fuzz.c — a randomized adversarial test of generational
 * mode with threads suspended by signal, cooperative threads, barriers
 * (rudo_write, rudo_write_range after memcpy / plain stores / stack
 * copies), ephemerons, weak fields (rudo_visit_weak), registered weak
 * slots (short, long, in a heap object and in malloc'd memory), kind and
 * per-object finalizers, guardians, rudo_free, rudo_realloc, large
 * objects and minor/major collections from several threads, 1-3 markers.
 * (Written by a helper as a fuzzer; it found a dead cell resurrected by
 * the thaw of a signal-stopped thread's page, finalized twice, and a
 * verifier hang on malloc with the world stopped.)
 *
 * Shadow model: every object carries a header word hdr_of(id) (id in the
 * low 44 bits, a hash of the id above, bit 63 set so it never looks like a
 * heap pointer). A side table (calloc'd, never scanned) records, per id,
 * the object's address, kind, size and, for each pointer slot, the id of
 * the object it must hold. Every read of a slot checks the value and the
 * target's header. A full walk recomputes the reachable set S (strong
 * edges, then the ephemeron fixpoint) and checks: a weak field / weak slot
 * / ephemeron found cleared must have a target/key outside S; no object in
 * S was finalized or handed back by a guardian.
 *
 * main runs a fixed list of configurations (seeds included), each in a
 * forked child for a few seconds (TEST_SCALE lengthens them; TEST_LONG=1
 * runs more seeds); a child that fails prints FZFAIL with what it saw.
 * One configuration alone, as the fuzzer did: FZ_SEED=... and the other
 * variables below, with TEST_FUZZ_ONE=1.
 * Env: FZ_SEED (default: time), FZ_SECS (10), FZ_THREADS (4), FZ_MARKERS
 * (seed-chosen 1..3), FZ_SIGALL (1: all workers RUDO_ATTACH_SIGNAL; 0: none;
 * default mixed), FZ_NURSERY (bytes, default 256K), FZ_DISABLE (bit mask of
 * op classes to disable, see OPS below), FZ_GEN (1), FZ_KINDS, FZ_ROOTB,
 * FZ_VERBOSE.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/wait.h>

#include "rudo.h"
#include "testlib.h"

#define MAXU 8
#ifndef LBITS
#define LBITS 18 /* ids per universe: 2^18, ample for runs of seconds */
#endif
#define PER (1u << LBITS)
#define RSLOTS_BYTES (48 * 1024) /* root object: large, layout-3 kind */
#define NWT 64                   /* weak table slots per universe */

enum { KL3, KCB, KCBF, KCONS, KEPH, KLEAF, NK };
static const char *kname[NK] = {"l3", "cb", "cbf", "cons", "eph", "leaf"};
static rudo_kind kh[NK];

/* op classes (FZ_DISABLE bits) */
enum {
    OP_STORE = 1, OP_WEAKF = 2, OP_COPY = 4, OP_FILL = 8, OP_WTAB = 16, OP_W3 = 32,
    OP_FIN = 64, OP_GUARD = 128, OP_FREE = 256, OP_REALLOC = 512, OP_COLLECT = 1024,
    OP_DROP = 2048, OP_LARGE = 4096, OP_EPH = 8192, OP_SPIN = 16384
};
static unsigned disabled;
static int verbose;

static uint64_t seed;
static uint64_t traceid;
static _Thread_local const char *curop = "?"; /* per thread: for failure messages */
static int nuni;
static unsigned markers;
static int secs;
static int sigmode = -1;
static atomic_int stop_all;
static atomic_long total_ops, total_allocs, total_frees, total_reallocs, total_fin, total_guard,
    total_wclear, total_eclear, total_lives, total_fullwalks, total_copies;

static uint64_t hdr_of(uint64_t id) {
    uint64_t h = test_mix64(id ^ 0x5eed) & 0x7FFFFull;
    return id | ((h | 0x80000ull) << 44);
}
static bool hdr_ok(uint64_t w) {
    uint64_t id = w & ((1ull << 44) - 1);
    return id != 0 && w == hdr_of(id);
}
static size_t hdr_word(int k) { return k == KEPH ? 2 : 0; }

typedef struct rec {
    uintptr_t addr;
    uint32_t nw;     /* usable words */
    uint8_t kind;
    uint8_t flags;
    uint32_t *kids;  /* per pointer slot: id (local) or 0 */
    uint32_t w3;     /* KL3 registered in-object weak slot at word 3: target id */
    uint32_t holder; /* FREEABLE: the only slot holding it */
    uint32_t hj;
} rec;
enum { F_FREEABLE = 1, F_W3REG = 2, F_DEAD = 4, F_FINREG = 8, F_GUARD = 16, F_RESURR = 32 };

typedef struct wslot {
    uint32_t id;  /* target id, 0 = none */
    uint8_t type; /* 1 short, 2 long */
    uint8_t expl; /* explicit target: the slot holds ~addr */
} wslot;

typedef struct uni {
    int u;
    uint64_t rng;
    void *root;   /* precise root slot */
    uint32_t rid; /* root's id */
    rec *rec;
    uint32_t nrec;
    void **wtab; /* malloc'd: NWT weak slots */
    wslot wm[NWT];
    uint32_t *visit;
    uint32_t epoch;
    uint32_t *stack, *vlist, *pend;
    size_t stack_cap;
    uint32_t *cleared;
    size_t ncleared, cleared_cap;
    rudo_guardian *g;
    long ops, life_ops;
    size_t last_s; /* reachable count at the last full walk */
    int sig;       /* current thread attached with RUDO_ATTACH_SIGNAL */
    atomic_int done;
    pthread_t th;
    int lives;
    void **pins; /* a registered conservative range: objects not linked yet */
    unsigned npin;
} uni;
static uni *U[MAXU];

static _Atomic uint8_t *finalized, *polled;

static inline uint64_t gid(const uni *un, uint32_t id) { return ((uint64_t)un->u << LBITS) | id; }

static uint64_t rnd(uni *un) {
    uint64_t x = un->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    un->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}
static uint64_t rn(uni *un, uint64_t n) { return n ? rnd(un) % n : 0; }

static void dump_stats(void) {
    rudo_stats st;
    if (rudo_thread_is_attached()) {
        rudo_get_stats(&st);
        fprintf(stderr, "  stats: collections %llu minor %llu major %llu\n",
                (unsigned long long)st.collections, (unsigned long long)st.minor_collections,
                (unsigned long long)st.major_collections);
    }
}

#define FAIL(un, ...)                                                                  \
    do {                                                                              \
        fprintf(stderr, "FZFAIL seed=%llu u=%d ops=%ld sig=%d: ", (unsigned long long)seed, \
                (un)->u, (un)->ops, (un)->sig);                                        \
        fprintf(stderr, __VA_ARGS__);                                                 \
        fprintf(stderr, "\n");                                                        \
        abort();                                                                      \
    } while (0)

/* ---- kinds ---- */
static size_t nslots(int k, size_t nw) {
    switch (k) {
    case KL3: return (nw / 3) * 2 + (nw % 3 == 2 ? 1 : 0);
    case KCB:
    case KCBF:
    case KCONS: return nw - 1;
    case KEPH: return 2;
    default: return 0;
    }
}
static size_t slot_word(int k, size_t j) {
    switch (k) {
    case KL3: return (j / 2) * 3 + 1 + (j % 2);
    case KEPH: return j;
    default: return j + 1;
    }
}
static bool slot_weak(int k, size_t j) { return (k == KCB || k == KCBF) && j == 0; }
/* slot index of a word (or -1 if not a pointer word) */
static long word_slot(int k, size_t w) {
    switch (k) {
    case KL3: return w % 3 == 0 ? -1 : (long)((w / 3) * 2 + (w % 3) - 1);
    case KEPH: return w < 2 ? (long)w : -1;
    case KLEAF: return -1;
    default: return w == 0 ? -1 : (long)w - 1;
    }
}

static void cb_trace(void *obj, size_t size, rudo_tracer *tr) {
    void **w = obj;
    size_t n = size / 8;
    if (n > 1)
        rudo_visit_weak(tr, &w[1]);
    for (size_t i = 2; i < n; i++)
        rudo_visit(tr, &w[i]);
}

/* Checks a (maybe foreign) object at p by its own header; for finalizers. */
static bool obj_selfcheck(void *p) {
    if (rudo_base(p) != p)
        return false;
    rudo_kind k = rudo_kind_of(p);
    int kk = -1;
    for (int i = 0; i < NK; i++)
        if (kh[i] == k)
            kk = i;
    if (kk < 0)
        return false;
    return hdr_ok(((uint64_t *)p)[hdr_word(kk)]);
}

static void check_dead_obj(void *obj, const char *who) {
    /* obj is due (finalizer or guardian): intact, and what it refers to. */
    rudo_kind k = rudo_kind_of(obj);
    int kk = -1;
    for (int i = 0; i < NK; i++)
        if (kh[i] == k)
            kk = i;
    uint64_t h = ((uint64_t *)obj)[hdr_word(kk)];
    if (kk < 0 || !hdr_ok(h)) {
        fprintf(stderr, "FZFAIL seed=%llu: %s got %p (kind %u) with bad header %#llx\n",
                (unsigned long long)seed, who, obj, k, (unsigned long long)h);
        abort();
    }
    size_t nw = rudo_size(obj) / 8;
    for (size_t w = 0; w < nw; w++) {
        if (word_slot(kk, w) < 0)
            continue;
        void *v = ((void **)obj)[w];
        if (v && !obj_selfcheck(v)) {
            fprintf(stderr, "FZFAIL seed=%llu: %s: object %p id %llu kind %s word %zu -> %p "
                    "which is not intact\n", (unsigned long long)seed, who, obj,
                    (unsigned long long)(h & ((1ull << 44) - 1)), kname[kk], w, v);
            abort();
        }
    }
}

static _Atomic uint64_t fin_gc[1u << 25];
static int finq = 1;
static void fin_fn(void *obj, void *data) {
    (void)data;
    rudo_stats st_ = {0};
    int kk = KL3;
    if (finq) {
        rudo_get_stats(&st_);
        check_dead_obj(obj, "finalizer");
        kk = rudo_kind_of(obj) == kh[KEPH] ? KEPH : KL3;
    } else if (!hdr_ok(*(uint64_t *)obj)) {
        fprintf(stderr, "FZFAIL seed=%llu: finalizer got %p with bad header %#llx\n",
                (unsigned long long)seed, obj, (unsigned long long)*(uint64_t *)obj);
        abort();
    }
    uint64_t id = ((uint64_t *)obj)[hdr_word(kk)] & ((1ull << 44) - 1);
    uint64_t prev = atomic_exchange(&fin_gc[id], st_.collections);
    if (traceid == id)
        fprintf(stderr, "TRACE finalizer %p on thread %s\n", obj, rudo_thread_is_attached() ? "attached" : "?");
    if (atomic_exchange(&finalized[id], 1)) {
        fprintf(stderr, "FZFAIL seed=%llu: object %p id %llu finalized twice (after collections %llu and %llu; kind %s, fin bits: per-object %d)\n",
                (unsigned long long)seed, obj, (unsigned long long)id, (unsigned long long)prev,
                (unsigned long long)st_.collections, finq ? rudo_kind_name(rudo_kind_of(obj)) : "?", (int)(uintptr_t)data);
        abort();
    }
    atomic_fetch_add(&total_fin, 1);
}

/* ---- the model ---- */
static rec *R(uni *un, uint32_t id) { return &un->rec[id]; }
static void **P(uni *un, uint32_t id) { return (void **)un->rec[id].addr; }

static void check_hdr(uni *un, uint32_t id, const char *ctx) {
    rec *r = R(un, id);
    uint64_t w = ((uint64_t *)r->addr)[hdr_word(r->kind)];
    if (w != hdr_of(gid(un, id)))
        FAIL(un, "%s: object id %u (%s, %u words, flags %#x) at %#lx has header %#llx, expected %#llx%s",
             ctx, id, kname[r->kind], r->nw, r->flags, (unsigned long)r->addr, (unsigned long long)w,
             (unsigned long long)hdr_of(gid(un, id)),
             hdr_ok(w) ? " (another live object's header: cell reused)" : "");
}

static uint32_t new_obj(uni *un, int k, size_t size) {
    if (un->nrec + 2 >= PER)
        return 0;
    if (k == KEPH && size < 24)
        size = 32;
    if (size < 16)
        size = 16;
    void **p = rudo_alloc(kh[k], size);
    if (!p)
        FAIL(un, "rudo_alloc(%s, %zu) returned NULL", kname[k], size);
    /* The shadow table is not scanned: hold the object where the
     * collector looks until it is linked (a thread suspended by signal may
     * hold it in no register). */
    un->pins[un->npin++ % 16] = p;
    uint32_t id = un->nrec++;
    size_t nw = rudo_size(p) / 8;
    for (size_t w = 0; w < nw; w++)
        if (p[w] != NULL)
            FAIL(un, "fresh object %p (%s, %zu) word %zu = %p, not zero", (void *)p, kname[k],
                 size, w, p[w]);
    ((uint64_t *)p)[hdr_word(k)] = hdr_of(gid(un, id));
    if (k == KLEAF && nw > 1)
        ((uint64_t *)p)[1] = ~hdr_of(gid(un, id));
    rec *r = R(un, id);
    r->addr = (uintptr_t)p;
    r->nw = (uint32_t)nw;
    r->kind = (uint8_t)k;
    r->flags = 0;
    size_t ns = nslots(k, nw);
    r->kids = ns ? calloc(ns, sizeof(uint32_t)) : NULL;
    r->w3 = 0;
    atomic_fetch_add(&total_allocs, 1);
    if (traceid && gid(un, id) == traceid)
        fprintf(stderr, "TRACE op %ld %s: new %u %s size %zu nw %zu at %p\n", un->ops, curop, id,
                kname[k], size, nw, (void *)p);
    return id;
}

static size_t rand_size(uni *un, int k) {
    if (k == KEPH)
        return 32;
    uint64_t r = rn(un, 1000);
    if (r < 6 && !(disabled & OP_LARGE) && k != KCBF)
        return 32768 + 8 + 8 * rn(un, 20000); /* large: 32 KiB .. ~190 KiB */
    if (r < 30)
        return 16 + 8 * rn(un, 4000);
    if (r < 200)
        return 16 + 8 * rn(un, 128);
    return 16 + 8 * rn(un, 12);
}
static unsigned kmask = 0x3f;
static int rand_kind0(uni *un);
static int rand_kind(uni *un) {
    for (;;) {
        int k = rand_kind0(un);
        if (kmask & (1u << k))
            return k;
    }
}
static int rand_kind0(uni *un) {
    uint64_t r = rn(un, 100);
    if (r < 35) return KL3;
    if (r < 55) return KCB;
    if (r < 62) return KCBF;
    if (r < 72) return KCONS;
    if (r < 84 && !(disabled & OP_EPH)) return KEPH;
    return KLEAF;
}

/* Reads slot j of object id and checks it against the model. Returns the
 * kid id (0 for NULL), or UINT32_MAX for "cleared by the collector" (weak
 * field / ephemeron) that the full walk will sort out. */
static uint32_t read_kid(uni *un, uint32_t id, size_t j, const char *ctx) {
    rec *r = R(un, id);
    void **p = (void **)r->addr;
    void *a = p[slot_word(r->kind, j)];
    uint32_t k = r->kids[j];
    if (slot_weak(r->kind, j) || r->kind == KEPH) {
        if (a == NULL && k != 0)
            return UINT32_MAX;
    }
    if (k == 0) {
        if (a != NULL)
            FAIL(un, "%s: object %u (%s) slot %zu (word %zu) holds %p, model NULL", ctx, id,
                 kname[r->kind], j, slot_word(r->kind, j), a);
        return 0;
    }
    if ((uintptr_t)a != R(un, k)->addr)
        FAIL(un, "%s: object %u (%s, %u words, %#lx) slot %zu (word %zu) holds %p, model id %u at %#lx",
             ctx, id, kname[r->kind], r->nw, (unsigned long)r->addr, j, slot_word(r->kind, j), a,
             k, (unsigned long)R(un, k)->addr);
    check_hdr(un, k, ctx);
    return k;
}

/* A random strong slot (index) of id with pointer slots, or -1. */
static long rand_strong_slot(uni *un, uint32_t id) {
    rec *r = R(un, id);
    size_t ns = nslots(r->kind, r->nw);
    if (ns == 0)
        return -1;
    for (int t = 0; t < 4; t++) {
        size_t j = rn(un, ns);
        if (!slot_weak(r->kind, j))
            return (long)j;
    }
    return ns > 1 ? 1 : -1;
}

/* Random walk from the root: returns an object reached; *pp and *pj its parent
 * and slot (pp = 0 for the root itself). */
static uint32_t rwalk(uni *un, int maxd, uint32_t *pp, size_t *pj) {
    uint32_t cur = un->rid, par = 0;
    size_t pjs = 0;
    int d = (int)rn(un, (uint64_t)maxd + 1);
    for (int i = 0; i < d; i++) {
        uint32_t got = 0;
        size_t gj = 0;
        for (int t = 0; t < 6 && !got; t++) {
            long j = rand_strong_slot(un, cur);
            if (j < 0)
                break;
            if (R(un, cur)->kind == KEPH) {
                /* Check the fields, but do not pick through them: a key
                 * (or value) kept for a finalizer stays in the ephemeron
                 * after its finalizer ran or its guardian handed it back,
                 * and picking it would resurrect it (rudo allows that;
                 * the model's finalized/handed-back checks would not). */
                read_kid(un, cur, 0, "walk(key)");
                read_kid(un, cur, 1, "walk(value)");
                break;
            }
            uint32_t k = read_kid(un, cur, (size_t)j, "walk");
            if (k && k != UINT32_MAX) {
                got = k;
                gj = (size_t)j;
            }
        }
        if (!got)
            break;
        par = cur;
        pjs = gj;
        cur = got;
    }
    if (pp)
        *pp = par;
    if (pj)
        *pj = pjs;
    check_hdr(un, cur, "walk end");
    return cur;
}

/* The model's side of a store into slot j of id (old value dropped). */
static void model_set(uni *un, uint32_t id, size_t j, uint32_t k) {
    rec *r = R(un, id);
    if (traceid && (gid(un, k) == traceid || gid(un, r->kids[j]) == traceid))
        fprintf(stderr, "TRACE op %ld %s: slot %zu of %u (%s) %u -> %u\n", un->ops, curop, j, id,
                kname[r->kind], r->kids[j], k);
    uint32_t old = r->kids[j];
    if (old && old != UINT32_MAX && (R(un, old)->flags & F_FREEABLE))
        R(un, old)->flags &= ~F_FREEABLE; /* dropped, or dup: no longer known unique */
    r->kids[j] = k;
}
static void shared(uni *un, uint32_t k) {
    if (k && k != UINT32_MAX)
        R(un, k)->flags &= ~F_FREEABLE;
}

static void *addr(uni *un, uint32_t k) { return k ? (void *)R(un, k)->addr : NULL; }

static uint32_t pick_value(uni *un, bool allow_fresh, bool *fresh) {
    *fresh = false;
    uint64_t r = rn(un, 100);
    if (r < 10)
        return 0;
    if (r < 50 && allow_fresh) {
        int k = rand_kind(un);
        uint32_t x = new_obj(un, k, rand_size(un, k));
        if (!x)
            return 0;
        *fresh = true;
        /* plain stores into the fresh object: allowed until the next
         * allocation or safepoint (rudo.h, rudo_write) */
        rec *rx = R(un, x);
        size_t ns = nslots(k, rx->nw);
        int n = ns ? (int)rn(un, 4) : 0;
        for (int i = 0; i < n; i++) {
            size_t j = rn(un, ns);
            if (k == KEPH)
                j = 0; /* key first; then maybe value */
            uint32_t y = rwalk(un, 4, NULL, NULL);
            shared(un, y);
            P(un, x)[slot_word(k, j)] = addr(un, y);
            rx->kids[j] = y;
            if (k == KEPH && rn(un, 2)) {
                uint32_t v = rwalk(un, 4, NULL, NULL);
                shared(un, v);
                P(un, x)[1] = addr(un, v);
                rx->kids[1] = v;
            }
        }
        return x;
    }
    uint32_t y = rwalk(un, 5, NULL, NULL);
    shared(un, y);
    return y;
}

/* ---- ops ---- */
static void op_store(uni *un) {
    curop = "op_store";
    uint32_t pp;
    size_t pj;
    uint32_t p = rwalk(un, 5, &pp, &pj);
    (void)pp;
    rec *r = R(un, p);
    if (r->kind == KEPH)
        return; /* ephemerons: op_eph */
    long j = rand_strong_slot(un, p);
    if (j < 0)
        return;
    bool fresh;
    void **pa = P(un, p);
    uint32_t v = pick_value(un, true, &fresh);
    /* p is still reachable: pick_value only allocates (p is held in pa). */
    size_t w = slot_word(r->kind, (size_t)j);
    read_kid(un, p, (size_t)j, "store(old)");
    if (r->kind == KCONS && rn(un, 2))
        pa[w] = addr(un, v); /* conservative kind: no barrier needed */
    else
        rudo_write(pa, &pa[w], addr(un, v));
    model_set(un, p, (size_t)j, v);
    if (fresh) {
        R(un, v)->flags |= F_FREEABLE;
        R(un, v)->holder = p;
        R(un, v)->hj = (uint32_t)j;
    }
}

/* Rewrites an ephemeron's key and value (key first). */
static void op_eph(uni *un) {
    curop = "op_eph";
    uint32_t e = 0;
    for (int t = 0; t < 8 && !e; t++) {
        uint32_t x = rwalk(un, 6, NULL, NULL);
        if (R(un, x)->kind == KEPH)
            e = x;
    }
    if (!e) {
        /* make one and hang it off the root */
        uint32_t k = rwalk(un, 5, NULL, NULL);
        void *ka = addr(un, k);
        e = new_obj(un, KEPH, 32);
        if (!e)
            return;
        shared(un, k);
        P(un, e)[0] = ka;
        R(un, e)->kids[0] = k;
        uint32_t v = rn(un, 3) ? rwalk(un, 5, NULL, NULL) : 0;
        shared(un, v);
        P(un, e)[1] = addr(un, v);
        R(un, e)->kids[1] = v;
        uint32_t p;
        long j;
        do {
            p = rwalk(un, 3, NULL, NULL);
            j = rand_strong_slot(un, p);
        } while (j < 0 || R(un, p)->kind == KEPH);
        read_kid(un, p, (size_t)j, "eph link(old)");
        rudo_write(P(un, p), &P(un, p)[slot_word(R(un, p)->kind, (size_t)j)], addr(un, e));
        model_set(un, p, (size_t)j, e);
        return;
    }
    bool f1, f2;
    void **ea = P(un, e);
    uint32_t key = pick_value(un, true, &f1);
    void *volatile ka = addr(un, key); /* held while the value is made */
    uint32_t val = pick_value(un, !f1, &f2);
    if (f1 && f2)
        return;
    (void)ka;
    rudo_write(ea, &ea[0], addr(un, key));
    rudo_write(ea, &ea[1], addr(un, val));
    /* model: the collector may have cleared it meanwhile (both NULL): our
     * key write came after, so both fields are ours now */
    R(un, e)->kids[0] = key;
    R(un, e)->kids[1] = val;
    shared(un, key);
    shared(un, val);
}

static void op_weakfield(uni *un) {
    curop = "op_weakfield";
    uint32_t p = 0;
    for (int t = 0; t < 8 && !p; t++) {
        uint32_t x = rwalk(un, 6, NULL, NULL);
        if ((R(un, x)->kind == KCB || R(un, x)->kind == KCBF) && R(un, x)->nw >= 2)
            p = x;
    }
    if (!p)
        return;
    bool fresh;
    void **pa = P(un, p);
    uint32_t v = pick_value(un, rn(un, 4) == 0, &fresh);
    rudo_write(pa, &pa[1], addr(un, v));
    R(un, p)->kids[0] = v;
    shared(un, v);
}

static void op_drop(uni *un) {
    curop = "op_drop";
    uint32_t p = rwalk(un, rn(un, 3) ? 1 : 4, NULL, NULL);
    long j = rand_strong_slot(un, p);
    if (j < 0 || R(un, p)->kind == KEPH)
        return;
    rec *r = R(un, p);
    read_kid(un, p, (size_t)j, "drop(old)");
    rudo_write(P(un, p), &P(un, p)[slot_word(r->kind, (size_t)j)], NULL);
    model_set(un, p, (size_t)j, 0);
}

/* memcpy between objects / from a stack buffer / plain stores, then
 * rudo_write_range (rudo.h: the source keeps the values until it returns). */
static void op_copy(uni *un) {
    curop = "op_copy";
    uint64_t how = rn(un, 3);
    uint32_t d = 0;
    for (int t = 0; t < 8 && !d; t++) {
        uint32_t x = rwalk(un, 5, NULL, NULL);
        int k = R(un, x)->kind;
        if ((k == KL3 || k == KCB || k == KCBF || k == KCONS) && R(un, x)->nw >= 6)
            d = x;
    }
    if (!d)
        return;
    rec *rd = R(un, d);
    int k = rd->kind;
    size_t lo = k == KL3 ? 4 : k == KCONS ? 1 : 2;
    if (how == 0) {
        uint32_t s = 0;
        for (int t = 0; t < 12 && !s; t++) {
            uint32_t x = rwalk(un, 6, NULL, NULL);
            if (R(un, x)->kind == k && R(un, x)->nw >= 6)
                s = x;
        }
        if (!s)
            return;
        rec *rs = R(un, s);
        size_t maxw = rd->nw < rs->nw ? rd->nw : rs->nw;
        if (maxw <= lo + 1)
            return;
        size_t a = lo + rn(un, maxw - lo - 1);
        size_t len = 1 + rn(un, (maxw - a) < 3000 ? (maxw - a) : 3000);
        if (a + len > maxw)
            len = maxw - a;
        size_t sa = a;
        if (s == d) {
            /* disjoint ranges of one object, same phase mod 3 */
            if (len > (maxw - lo) / 2)
                len = (maxw - lo) / 2;
            if (len == 0)
                return;
            size_t span = maxw - lo - len; /* positions for the source */
            int ok = 0;
            for (int tries = 0; tries < 20 && !ok; tries++) {
                sa = lo + rn(un, span + 1);
                if (k == KL3)
                    sa += (a % 3 + 3 - sa % 3) % 3;
                ok = sa >= lo && sa + len <= maxw && (sa + len <= a || a + len <= sa);
            }
            if (!ok)
                return;
        } else if (k == KL3 && rs->nw >= 6) {
            /* another phase-matched offset, so the copy shifts */
            size_t alt = a + 3 * rn(un, 4);
            if (alt >= lo && alt + len <= rs->nw)
                sa = alt;
        }
        /* validate the source slots before copying (model reads) */
        for (size_t w = sa; w < sa + len; w++) {
            long j = word_slot(k, w);
            if (j >= 0 && !slot_weak(k, (size_t)j))
                read_kid(un, s, (size_t)j, "copy(src)");
        }
        uint32_t *tmp = malloc(len * sizeof(uint32_t));
        for (size_t w = 0; w < len; w++) {
            long j = word_slot(k, sa + w);
            tmp[w] = j >= 0 ? rs->kids[j] : 0;
        }
        void **da = P(un, d), **sp = P(un, s);
        memmove(&da[a], &sp[sa], len * 8); /* disjoint or different objects */
        if (!(k == KCONS && rn(un, 2)))
            rudo_write_range(da, &da[a], len * 8);
        for (size_t w = 0; w < len; w++) {
            long j = word_slot(k, a + w);
            if (j >= 0) {
                shared(un, tmp[w]);
                model_set(un, d, (size_t)j, tmp[w]);
            }
        }
        free(tmp);
        atomic_fetch_add(&total_copies, 1);
        return;
    }
    /* stack buffer or plain stores */
    void *buf[96];
    uint32_t ids[96];
    size_t maxw = rd->nw;
    size_t a = lo + rn(un, maxw - lo - 1);
    size_t len = 1 + rn(un, 96);
    if (a + len > maxw)
        len = maxw - a;
    for (size_t w = 0; w < len; w++) {
        long j = word_slot(k, a + w);
        if (j < 0) {
            buf[w] = (void *)(uintptr_t)(rnd(un) | 1); /* junk integer, odd */
            ids[w] = 0;
            /* keep KL3's non-pointer words as the model wants nothing of them */
            continue;
        }
        uint32_t y = rn(un, 5) ? rwalk(un, 6, NULL, NULL) : 0;
        ids[w] = y;
        buf[w] = addr(un, y);
    }
    void **da = P(un, d);
    if (how == 1) {
        memcpy(&da[a], buf, len * 8);
    } else {
        for (size_t w = 0; w < len; w++)
            ((void *volatile *)da)[a + w] = buf[w];
    }
    if (!(k == KCONS && rn(un, 2)))
        rudo_write_range(da, &da[a], len * 8);
    __asm__ volatile("" : : "r"(buf), "r"(ids) : "memory");
    for (size_t w = 0; w < len; w++) {
        long j = word_slot(k, a + w);
        if (j >= 0) {
            shared(un, ids[w]);
            model_set(un, d, (size_t)j, ids[w]);
        }
    }
    atomic_fetch_add(&total_copies, 1);
}

static void spin_us(long us) {
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        for (volatile int i = 0; i < 200; i++)
            ;
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000000L + (t.tv_nsec - t0.tv_nsec) / 1000 < us);
}

/* Fresh object filled with plain stores over a long window without any
 * allocation or safepoint (moves included: the source slot is cleared with
 * rudo_write after the plain store into the fresh object), interleaved with
 * rudo calls that are no safepoints (queries, rudo_write_range). */
static void op_fill(uni *un) {
    curop = "op_fill";
    int k;
    do
        k = rand_kind(un);
    while (k == KLEAF);
    size_t size = k == KEPH ? 32 : (rn(un, 4) == 0 && !(disabled & OP_LARGE) ? 32768 + 8 * rn(un, 12000)
                                                                              : 64 + 8 * rn(un, 400));
    uint32_t x = new_obj(un, k, size);
    if (!x)
        return;
    void **xa = P(un, x);
    rec *rx = R(un, x);
    size_t ns = nslots(k, rx->nw);
    int rounds = 4 + (int)rn(un, 40);
    for (int i = 0; i < rounds; i++) {
        size_t j = rn(un, ns);
        if (k == KEPH)
            j = 0;
        if (slot_weak(k, j))
            continue;
        uint32_t pp;
        size_t pj;
        uint32_t y = rwalk(un, 6, &pp, &pj);
        if (y == un->rid)
            continue;
        rx = R(un, x);
        xa[slot_word(k, j)] = addr(un, y); /* plain: x is fresh */
        shared(un, y);
        model_set(un, x, j, y);
        if (k == KEPH) {
            uint32_t v = rwalk(un, 6, NULL, NULL);
            xa[1] = addr(un, v);
            shared(un, v);
            model_set(un, x, 1, v);
        }
        uint64_t r = rn(un, 10);
        if (r < 4 && pp && R(un, pp)->kind != KEPH) {
            /* move: only x holds y now (x is on this thread's stack) */
            rudo_write(P(un, pp), &P(un, pp)[slot_word(R(un, pp)->kind, pj)], NULL);
            model_set(un, pp, pj, 0);
        } else if (r < 5) {
            if (rudo_base((char *)xa + 8) != xa)
                FAIL(un, "rudo_base(fresh+8) != fresh");
            (void)rudo_size(xa);
            (void)rudo_is_heap_ptr(addr(un, y));
        } else if (r < 6 && rx->nw > 4) {
            rudo_write_range(xa, &xa[1], 8 * (rx->nw - 1)); /* harmless */
        }
        if (!(disabled & OP_SPIN) && rn(un, 4) == 0)
            spin_us(un->sig ? 50 + (long)rn(un, 300) : 500 + (long)rn(un, 2500));
    }
    /* link x (a single holder) */
    uint32_t p;
    long j;
    int t = 0;
    do {
        p = rwalk(un, 3, NULL, NULL);
        j = rand_strong_slot(un, p);
    } while ((j < 0 || R(un, p)->kind == KEPH) && ++t < 20);
    if (j < 0 || R(un, p)->kind == KEPH)
        p = un->rid, j = (long)rn(un, nslots(KL3, R(un, un->rid)->nw));
    read_kid(un, p, (size_t)j, "fill link(old)");
    rudo_write(P(un, p), &P(un, p)[slot_word(R(un, p)->kind, (size_t)j)], xa);
    model_set(un, p, (size_t)j, x);
    R(un, x)->flags |= F_FREEABLE;
    R(un, x)->holder = p;
    R(un, x)->hj = (uint32_t)j;
}

static void op_wtab(uni *un) {
    curop = "op_wtab";
    size_t i = rn(un, NWT);
    wslot *ws = &un->wm[i];
    uint64_t r = rn(un, 10);
    void **slot = &un->wtab[i];
    if (r < 5) {
        /* (re)register */
        if (rudo_weak_registered(slot))
            rudo_weak_unregister(slot);
        uint32_t y = rwalk(un, 6, NULL, NULL);
        shared(un, y);
        bool lng = rn(un, 3) == 0, expl = rn(un, 3) == 0;
        void *ya = addr(un, y);
        int rc;
        if (expl) {
            *slot = (void *)~(uintptr_t)ya;
            rc = lng ? rudo_weak_register_long_target(slot, ya)
                     : rudo_weak_register_target(slot, ya);
        } else {
            *slot = ya;
            rc = lng ? rudo_weak_register_long(slot) : rudo_weak_register(slot);
        }
        if (rc != RUDO_OK)
            FAIL(un, "weak register rc %d", rc);
        ws->id = y;
        ws->type = lng ? 2 : 1;
        ws->expl = expl;
    } else if (r < 7) {
        if (ws->id) {
            rudo_weak_unregister(slot);
            *slot = NULL;
            ws->id = 0;
        }
    } else {
        /* read; resurrect through a short, plain weak slot */
        if (!ws->id || ws->type != 1 || ws->expl)
            return;
        void *v = *slot;
        if (!v)
            return;
        if ((uintptr_t)v != R(un, ws->id)->addr)
            FAIL(un, "weak table slot %zu holds %p, model id %u at %#lx", i, v, ws->id,
                 (unsigned long)R(un, ws->id)->addr);
        check_hdr(un, ws->id, "weak read");
        uint32_t y = ws->id;
        if (atomic_load(&finalized[gid(un, y)]) || atomic_load(&polled[gid(un, y)]))
            return;
        uint32_t p = un->rid;
        size_t j = rn(un, nslots(KL3, R(un, p)->nw));
        read_kid(un, p, j, "resurrect(old)");
        if (traceid == gid(un, y))
            fprintf(stderr, "TRACE op %ld weak-resurrect %u from wtab %zu\n", un->ops, y, i);
        rudo_write(P(un, p), &P(un, p)[slot_word(KL3, j)], v);
        model_set(un, p, j, y);
    }
}

static void op_w3(uni *un) {
    curop = "op_w3";
    uint32_t x = 0;
    for (int t = 0; t < 8 && !x; t++) {
        uint32_t c = rwalk(un, 6, NULL, NULL);
        if (R(un, c)->kind == KL3 && R(un, c)->nw >= 4 && c != un->rid)
            x = c;
    }
    if (!x)
        return;
    rec *r = R(un, x);
    void **xa = P(un, x);
    if (!(r->flags & F_W3REG)) {
        uint32_t y = rwalk(un, 6, NULL, NULL);
        shared(un, y);
        rudo_write(xa, &xa[3], addr(un, y));
        if (rudo_weak_register(&xa[3]) != RUDO_OK)
            FAIL(un, "in-object weak register failed");
        r = R(un, x);
        r->flags |= F_W3REG;
        r->w3 = y;
    } else if (rn(un, 2)) {
        uint32_t y = rwalk(un, 6, NULL, NULL);
        shared(un, y);
        rudo_write(xa, &xa[3], addr(un, y));
        r->w3 = y;
    } else {
        rudo_weak_unregister(&xa[3]);
        rudo_write(xa, &xa[3], NULL);
        r->flags &= ~F_W3REG;
        r->w3 = 0;
    }
}

static void op_fin(uni *un) {
    uint32_t x = rwalk(un, 6, NULL, NULL);
    rec *r = R(un, x);
    if (x == un->rid || r->kind == KCBF || r->kind == KEPH || (r->flags & (F_FINREG | F_GUARD)))
        return;
    int rc;
    uint64_t m = rn(un, 4);
    if (m == 0)
        rc = rudo_finalizer_register_ordered(P(un, x), fin_fn, NULL);
    else
        rc = rudo_finalizer_register(P(un, x), fin_fn, NULL);
    if (rc == RUDO_OK)
        R(un, x)->flags |= F_FINREG;
    if (traceid == gid(un, x))
        fprintf(stderr, "TRACE op %ld finalizer register %u rc %d\n", un->ops, x, rc);
}

static void mark_resurrected(uni *un, uint32_t id) {
    size_t sp = 0;
    uint32_t *st = un->stack;
    if (R(un, id)->flags & F_RESURR)
        return;
    R(un, id)->flags |= F_RESURR;
    st[sp++] = id;
    while (sp) {
        rec *r = R(un, st[--sp]);
        size_t ns = nslots(r->kind, r->nw);
        for (size_t j = 0; j < ns; j++) {
            uint32_t k = r->kids[j];
            if (k && k != UINT32_MAX && !(R(un, k)->flags & F_RESURR)) {
                R(un, k)->flags |= F_RESURR;
                st[sp++] = k;
            }
        }
        if (r->w3 && !(R(un, r->w3)->flags & F_RESURR)) {
            R(un, r->w3)->flags |= F_RESURR;
            st[sp++] = r->w3;
        }
    }
}

static void op_guard(uni *un) {
    if (rn(un, 2)) {
        uint32_t x = rwalk(un, 6, NULL, NULL);
        rec *r = R(un, x);
        if (x == un->rid || r->kind == KCBF || (r->flags & (F_FINREG | F_GUARD)))
            return;
        if (rudo_guardian_register(un->g, P(un, x)) == RUDO_OK)
            R(un, x)->flags |= F_GUARD;
        if (traceid == gid(un, x))
            fprintf(stderr, "TRACE op %ld guardian register %u at %p\n", un->ops, x, (void *)P(un, x));
        return;
    }
    void *o;
    int n = 0;
    while (n++ < 16 && (o = rudo_guardian_poll(un->g)) != NULL) {
        check_dead_obj(o, "guardian poll");
        int kk = rudo_kind_of(o) == kh[KEPH] ? KEPH : KL3;
        uint64_t g = ((uint64_t *)o)[hdr_word(kk)] & ((1ull << 44) - 1);
        uint32_t id = (uint32_t)(g & (PER - 1));
        if ((int)(g >> LBITS) != un->u || R(un, id)->addr != (uintptr_t)o)
            FAIL(un, "guardian returned %p id %llx not ours/not model", o, (unsigned long long)g);
        atomic_fetch_add(&total_guard, 1);
        R(un, id)->flags &= ~F_GUARD;
        if (traceid == g)
            fprintf(stderr, "TRACE op %ld guardian poll returned %u at %p\n", un->ops, id, o);
        if (rn(un, 2)) {
            /* resurrect: it is an ordinary object now. What it reaches may
             * hold objects finalized or handed back in the same collection
             * and targets of weak slots cleared then: exempt them. */
            atomic_store(&polled[g], 0);
            mark_resurrected(un, id);
            uint32_t p = un->rid;
            size_t j = rn(un, nslots(KL3, R(un, p)->nw));
            read_kid(un, p, j, "guard relink(old)");
            rudo_write(P(un, p), &P(un, p)[slot_word(KL3, j)], o);
            model_set(un, p, j, id);
        } else {
            atomic_store(&polled[g], 1);
        }
    }
}

/* A random object held by exactly one slot, slot pj of pp (the only ones
 * op_free and op_realloc may replace), or 0. */
static uint32_t pick_freeable(uni *un, uint32_t *pp, size_t *pj) {
    uint32_t x = rwalk(un, 6, pp, pj);
    rec *r = R(un, x);
    if (!(r->flags & F_FREEABLE) || r->holder != *pp || r->hj != *pj || *pp == 0)
        return 0;
    return R(un, *pp)->kids[*pj] == x ? x : 0;
}

static void op_free(uni *un) {
    curop = "op_free";
    if (rn(un, 3) == 0) {
        int k = rand_kind(un);
        uint32_t x = new_obj(un, k, rand_size(un, k));
        if (x) {
            rudo_free(P(un, x));
            R(un, x)->flags |= F_DEAD;
            atomic_fetch_add(&total_frees, 1);
        }
        return;
    }
    for (int t = 0; t < 10; t++) {
        uint32_t pp;
        size_t pj;
        uint32_t x = pick_freeable(un, &pp, &pj);
        if (!x)
            continue;
        rec *r = R(un, x);
        /* Unlinked, x is held only by the side table, which is not
         * scanned: hold it where the collector looks until it is freed. A
         * thread suspended by signal may be stopped between the two, and
         * that collection would reclaim x (rudo_free then aborts, or frees
         * what another thread allocated at that address since). */
        void **xa = P(un, x);
        unsigned pin = un->npin++ % 16;
        un->pins[pin] = xa;
        rudo_write(P(un, pp), &P(un, pp)[slot_word(R(un, pp)->kind, pj)], NULL);
        R(un, pp)->kids[pj] = 0;
        /* its kids lose this holder */
        size_t ns = nslots(r->kind, r->nw);
        for (size_t j = 0; j < ns; j++)
            shared(un, r->kids[j]);
        if (r->flags & F_W3REG)
            r->w3 = 0;
        rudo_free(xa);
        un->pins[pin] = NULL;
        r->flags = F_DEAD;
        atomic_fetch_add(&total_frees, 1);
        return;
    }
}

static void op_realloc(uni *un) {
    curop = "op_realloc";
    for (int t = 0; t < 10; t++) {
        uint32_t pp;
        size_t pj;
        uint32_t x = pick_freeable(un, &pp, &pj);
        if (!x)
            continue;
        rec *r = R(un, x);
        int k = r->kind;
        if (k != KL3 && k != KCB && k != KCONS)
            continue;
        size_t oldb = (size_t)r->nw * 8;
        size_t nb;
        uint64_t m = rn(un, 4);
        if (m == 0)
            nb = 16 + 8 * rn(un, oldb / 8); /* shrink (in place) */
        else if (m == 1 && !(disabled & OP_LARGE))
            nb = oldb + 32768 + 8 * rn(un, 4000); /* to large */
        else
            nb = oldb + 8 + 8 * rn(un, 200);
        if (nb < 16)
            nb = 16;
        void *o = P(un, x);
        if (un->nrec + 2 >= PER)
            return;
        void **n = rudo_realloc(o, nb);
        if (!n)
            FAIL(un, "realloc NULL");
        un->pins[un->npin++ % 16] = n;
        atomic_fetch_add(&total_reallocs, 1);
        r = R(un, x);
        size_t ns = nslots(k, r->nw);
        if ((void *)n == o) {
            /* in place: the tail past nb is zeroed */
            for (size_t j = 0; j < ns; j++)
                if (slot_word(k, j) >= nb / 8 && r->kids[j]) {
                    shared(un, r->kids[j]);
                    r->kids[j] = 0;
                }
            if ((r->flags & F_W3REG) && nb / 8 <= 3)
                r->w3 = 0;
            /* the model checks: the words kept are as before */
            for (size_t j = 0; j < ns; j++)
                read_kid(un, x, j, "realloc in place");
            return;
        }
        /* a new object: its contents are the old ones; give it a new id
         * (plain stores: it is fresh) */
        uint32_t id = un->nrec++;
        rec *rn_ = R(un, id);
        rn_->addr = (uintptr_t)n;
        rn_->kind = (uint8_t)k;
        rn_->nw = (uint32_t)(rudo_size(n) / 8);
        size_t nns = nslots(k, rn_->nw);
        rn_->kids = calloc(nns, sizeof(uint32_t));
        rn_->flags = 0;
        rn_->w3 = 0;
        for (size_t j = 0; j < ns && j < nns; j++) {
            rn_->kids[j] = r->kids[j];
            shared(un, r->kids[j]);
        }
        ((uint64_t *)n)[0] = hdr_of(gid(un, id));
        if (k == KL3 && rn_->nw > 3)
            n[3] = NULL; /* the old one's in-object weak slot value: not ours */
        /* check the copy */
        for (size_t j = 0; j < nns; j++) {
            if (slot_weak(k, j))
                continue;
            read_kid(un, id, j, "realloc copy");
        }
        if (slot_weak(k, 0) && nns) {
            /* weak field copied: may be NULL if the old's was cleared */
            uint32_t kk = read_kid(un, id, 0, "realloc copy weak");
            if (kk == UINT32_MAX)
                rn_->kids[0] = 0;
        }
        rudo_write(P(un, pp), &P(un, pp)[slot_word(R(un, pp)->kind, pj)], n);
        R(un, pp)->kids[pj] = id;
        r->flags &= ~F_FREEABLE;
        rn_->flags |= F_FREEABLE;
        rn_->holder = pp;
        rn_->hj = (uint32_t)pj;
        return;
    }
}

/* ---- full walk ---- */
static void push_cleared(uni *un, uint32_t k) {
    if (un->ncleared == un->cleared_cap) {
        un->cleared_cap = un->cleared_cap ? un->cleared_cap * 2 : 1024;
        un->cleared = realloc(un->cleared, un->cleared_cap * sizeof(uint32_t));
    }
    un->cleared[un->ncleared++] = k;
}

static size_t full_walk(uni *un) {
    uint32_t ep = ++un->epoch;
    size_t sp = 0, nv = 0, npend = 0;
    un->ncleared = 0;
#define VISIT(k)                                                                  \
    do {                                                                          \
        uint32_t k_ = (k);                                                        \
        if (k_ && un->visit[k_] != ep) {                                          \
            un->visit[k_] = ep;                                                   \
            un->vlist[nv++] = k_;                                                 \
            un->stack[sp++] = k_;                                                 \
        }                                                                         \
    } while (0)
    VISIT(un->rid);
    for (;;) {
        while (sp) {
            uint32_t id = un->stack[--sp];
            rec *r = R(un, id);
            check_hdr(un, id, "full walk");
            if (atomic_load(&finalized[gid(un, id)]) && !(r->flags & F_RESURR))
                FAIL(un, "object %u (%s) reachable but finalized", id, kname[r->kind]);
            if (atomic_load(&polled[gid(un, id)]) && !(r->flags & F_RESURR))
                FAIL(un, "object %u (%s) reachable but handed back by its guardian", id,
                     kname[r->kind]);
            if (r->flags & F_DEAD)
                FAIL(un, "object %u reachable in the model but freed (fuzzer bug)", id);
            size_t ns = nslots(r->kind, r->nw);
            void **p = (void **)r->addr;
            if (r->kind == KEPH) {
                void *ak = p[0], *av = p[1];
                uint32_t mk = r->kids[0], mv = r->kids[1];
                if (ak == NULL && av == NULL && (mk || mv)) {
                    if (mk)
                        push_cleared(un, mk);
                    else
                        FAIL(un, "ephemeron %u with no key had its value %u cleared", id, mv);
                    r->kids[0] = r->kids[1] = 0;
                    atomic_fetch_add(&total_eclear, 1);
                    continue;
                }
                uint32_t k0 = read_kid(un, id, 0, "walk eph key");
                uint32_t k1 = read_kid(un, id, 1, "walk eph value");
                if (k0 == UINT32_MAX || k1 == UINT32_MAX)
                    FAIL(un, "ephemeron %u half cleared: key %p value %p (model %u %u)", id, ak,
                         av, mk, mv);
                if (k0 == 0)
                    VISIT(k1); /* a non-heap key counts as reachable */
                else if (un->visit[k0] == ep)
                    VISIT(k1);
                else
                    un->pend[npend++] = id;
                continue;
            }
            for (size_t j = 0; j < ns; j++) {
                uint32_t k = r->kids[j];
                if (slot_weak(r->kind, j)) {
                    if (!k)
                        continue;
                    void *a = p[1];
                    if (a == NULL) {
                        push_cleared(un, k);
                        r->kids[j] = 0;
                        atomic_fetch_add(&total_wclear, 1);
                        continue;
                    }
                    read_kid(un, id, j, "walk weak field");
                    continue;
                }
                uint32_t got = read_kid(un, id, j, "full walk");
                VISIT(got);
            }
            if (r->kind == KL3 && (r->flags & F_W3REG) && r->nw > 3) {
                void *a = p[3];
                uint32_t k = r->w3;
                if (k && a == NULL) {
                    push_cleared(un, k);
                    r->w3 = 0;
                    atomic_fetch_add(&total_wclear, 1);
                } else if (k) {
                    if ((uintptr_t)a != R(un, k)->addr)
                        FAIL(un, "in-object weak slot of %u holds %p, model %u at %#lx", id, a, k,
                             (unsigned long)R(un, k)->addr);
                    check_hdr(un, k, "in-object weak target");
                } else if (a != NULL) {
                    FAIL(un, "in-object weak slot of %u holds %p, model NULL", id, a);
                }
            }
        }
        /* ephemeron fixpoint */
        bool any = false;
        for (size_t i = 0; i < npend; i++) {
            uint32_t e = un->pend[i];
            if (!e)
                continue;
            uint32_t k0 = R(un, e)->kids[0];
            if (un->visit[k0] == ep) {
                VISIT(R(un, e)->kids[1]);
                un->pend[i] = 0;
                any = true;
            }
        }
        if (!any)
            break;
    }
    for (size_t i = 0; i < un->ncleared; i++)
        if (un->visit[un->cleared[i]] == ep && !(R(un, un->cleared[i])->flags & F_RESURR))
            FAIL(un, "weak reference / ephemeron to %u (%s) cleared while it is reachable",
                 un->cleared[i], kname[R(un, un->cleared[i])->kind]);
    for (size_t i = 0; i < NWT; i++) {
        wslot *ws = &un->wm[i];
        if (!ws->id)
            continue;
        void *a = un->wtab[i];
        if (a == NULL) {
            if (un->visit[ws->id] == ep && !(R(un, ws->id)->flags & F_RESURR))
                FAIL(un, "weak table slot %zu (%s%s) to %u cleared while reachable", i,
                     ws->type == 1 ? "short" : "long", ws->expl ? ", explicit" : "", ws->id);
            rudo_weak_unregister(&un->wtab[i]);
            ws->id = 0;
            atomic_fetch_add(&total_wclear, 1);
            continue;
        }
        uintptr_t want = R(un, ws->id)->addr;
        if (ws->expl)
            want = ~want;
        if ((uintptr_t)a != want)
            FAIL(un, "weak table slot %zu holds %p, want %#lx", i, a, (unsigned long)want);
        check_hdr(un, ws->id, "weak table target");
    }
    atomic_fetch_add(&total_fullwalks, 1);
    return nv;
#undef VISIT
}

/* ---- threads ---- */
static void *worker(void *arg) {
    uni *un = arg;
    unsigned fl = un->sig ? RUDO_ATTACH_SIGNAL : 0;
    int rc = rudo_thread_attach_flags(fl);
    if (rc != RUDO_OK) {
        fprintf(stderr, "attach rc %d\n", rc);
        abort();
    }
    long end = un->ops + un->life_ops;
    while (un->ops < end && !atomic_load_explicit(&stop_all, memory_order_relaxed)) {
        un->ops++;
        curop = "?";
        memset(un->pins, 0, 16 * sizeof(void *)); /* a range: no barrier */
        uint64_t r = rn(un, 1000);
        bool big = un->last_s > 30000;
        if (r < 250) {
            if (!(disabled & OP_STORE))
                op_store(un);
        } else if (r < 330) {
            if (!(disabled & OP_DROP) || big)
                op_drop(un);
            if (big) {
                op_drop(un);
                op_drop(un);
            }
        } else if (r < 380) {
            if (!(disabled & OP_WEAKF))
                op_weakfield(un);
        } else if (r < 470) {
            if (!(disabled & OP_COPY))
                op_copy(un);
        } else if (r < 520) {
            if (!(disabled & OP_FILL))
                op_fill(un);
        } else if (r < 560) {
            if (!(disabled & OP_EPH))
                op_eph(un);
        } else if (r < 600) {
            if (!(disabled & OP_WTAB))
                op_wtab(un);
        } else if (r < 620) {
            if (!(disabled & OP_W3))
                op_w3(un);
        } else if (r < 640) {
            if (!(disabled & OP_FIN))
                op_fin(un);
        } else if (r < 670) {
            if (!(disabled & OP_GUARD))
                op_guard(un);
        } else if (r < 720) {
            if (!(disabled & OP_FREE))
                op_free(un);
        } else if (r < 760) {
            if (!(disabled & OP_REALLOC))
                op_realloc(un);
        } else if (r < 770) {
            if (!(disabled & OP_COLLECT)) {
                if (rn(un, 12) == 0)
                    rudo_collect();
                else
                    rudo_collect_minor();
            }
        } else if (r < 775) {
            if (!(disabled & OP_SPIN) && !un->sig)
                spin_us(2500); /* no safepoint: suspended by signal */
        } else if (r < 777) {
            un->last_s = full_walk(un);
        } else {
            /* garbage */
            curop = "garbage";
            int k = rand_kind(un);
            bool f;
            uint32_t x = new_obj(un, k, rand_size(un, k) % 4096 + 16);
            (void)x;
            (void)f;
        }
        if (un->nrec + 10 >= PER)
            break;
    }
    un->last_s = full_walk(un);
    atomic_fetch_add(&total_ops, un->life_ops);
    rudo_thread_detach();
    atomic_store(&un->done, 1);
    return NULL;
}

static void start_life(uni *un) {
    un->lives++;
    atomic_fetch_add(&total_lives, 1);
    un->sig = sigmode < 0 ? (int)rn(un, 2) : sigmode;
    un->life_ops = getenv("FZ_LIFE") ? atol(getenv("FZ_LIFE")) : 2000 + (long)rn(un, 30000);
    atomic_store(&un->done, 0);
    if (pthread_create(&un->th, NULL, worker, un) != 0)
        abort();
}

static void *watchdog(void *arg) {
    (void)arg;
    sleep((unsigned)(secs + 90));
    fprintf(stderr, "FZFAIL seed=%llu: HANG (no progress after %d s)\n", (unsigned long long)seed,
            secs + 90);
    abort();
}

static int fuzz_main(void) {
    const char *s = getenv("FZ_SEED");
    seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
    secs = getenv("FZ_SECS") ? atoi(getenv("FZ_SECS")) : 10;
    nuni = getenv("FZ_THREADS") ? atoi(getenv("FZ_THREADS")) : 4;
    if (nuni < 1 || nuni > MAXU)
        nuni = 4;
    if (getenv("FZ_SIGALL"))
        sigmode = atoi(getenv("FZ_SIGALL"));
    disabled = getenv("FZ_DISABLE") ? (unsigned)strtoul(getenv("FZ_DISABLE"), NULL, 0) : 0;
    if (getenv("FZ_TRACEID"))
        traceid = strtoull(getenv("FZ_TRACEID"), NULL, 0);
    if (getenv("FZ_FINQ"))
        finq = atoi(getenv("FZ_FINQ"));
    if (getenv("FZ_KINDS"))
        kmask = (unsigned)strtoul(getenv("FZ_KINDS"), NULL, 0) | 1;
    verbose = getenv("FZ_VERBOSE") ? atoi(getenv("FZ_VERBOSE")) : 0;
    markers = getenv("FZ_MARKERS") ? (unsigned)atoi(getenv("FZ_MARKERS")) : 1 + (unsigned)(test_mix64(seed) % 3);
    size_t nursery = getenv("FZ_NURSERY") ? strtoull(getenv("FZ_NURSERY"), NULL, 0) : 256 * 1024;
    printf("genfuzz: FZ_SEED=%llu FZ_SECS=%d FZ_THREADS=%d FZ_MARKERS=%u FZ_SIGALL=%d FZ_DISABLE=%#x FZ_NURSERY=%zu\n",
           (unsigned long long)seed, secs, nuni, markers, sigmode, disabled, nursery);
    fflush(stdout);

    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.generational = getenv("FZ_GEN") ? atoi(getenv("FZ_GEN")) : 1;
    cfg.scan_static_data = false;
    cfg.markers = markers;
    cfg.nursery = nursery;
    cfg.nursery_adapt = test_mix64(seed + 1) % 2;
    cfg.initial_heap = 1 << 20;
    cfg.major_growth = 1.2;
    cfg.signal_stop_ms = (unsigned)(test_mix64(seed + 2) % 3);
    if (rudo_heap_create(&cfg) != RUDO_OK)
        return 2;
    kh[KL3] = rudo_kind_layout("fz_l3", 3, (const uint64_t[]){6});
    kh[KCB] = rudo_kind_traced("fz_cb", cb_trace);
    kh[KCBF] = rudo_kind_traced("fz_cbf", cb_trace);
    rudo_kind_set_finalizer(kh[KCBF], fin_fn, NULL);
    kh[KCONS] = rudo_kind_conservative("fz_cons");
    kh[KEPH] = rudo_kind_ephemeron("fz_eph");
    kh[KLEAF] = rudo_kind_atomic("fz_leaf");
    finalized = calloc((size_t)MAXU << LBITS, 1);
    polled = calloc((size_t)MAXU << LBITS, 1);
    pthread_t wd;
    pthread_create(&wd, NULL, watchdog, NULL);

    for (int u = 0; u < nuni; u++) {
        uni *un = calloc(1, sizeof *un);
        U[u] = un;
        un->u = u;
        un->rng = test_mix64(seed * 1000003u + (uint64_t)u + 17) | 1;
        un->rec = calloc(PER, sizeof(rec));
        un->visit = calloc(PER, sizeof(uint32_t));
        un->stack = malloc(PER * sizeof(uint32_t));
        un->vlist = malloc(PER * sizeof(uint32_t));
        un->pend = malloc(PER * sizeof(uint32_t));
        un->wtab = calloc(NWT, sizeof(void *));
        un->nrec = 1;
        un->g = rudo_guardian_new();
        un->pins = calloc(16, sizeof(void *));
        rudo_root_add_range(un->pins, un->pins + 16);
        rudo_root_add(&un->root);
        un->rid = new_obj(un, KL3, getenv("FZ_ROOTB") ? strtoul(getenv("FZ_ROOTB"), NULL, 0) : RSLOTS_BYTES);
        un->root = P(un, un->rid);
    }
    rudo_collect();
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int u = 0; u < nuni; u++)
        start_life(U[u]);
    uint64_t mrng = seed | 1;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec >= secs)
            break;
        rudo_blocking_enter();
        usleep(2000);
        rudo_blocking_leave();
        mrng = test_mix64(mrng);
        if (!(disabled & OP_COLLECT) && !getenv("FZ_NOMAINGC")) {
            if (mrng % 16 == 0)
                rudo_collect();
            else if (mrng % 3 == 0)
                rudo_collect_minor();
        }
        for (int u = 0; u < nuni; u++)
            if (atomic_load(&U[u]->done)) {
                rudo_blocking_enter();
                pthread_join(U[u]->th, NULL);
                rudo_blocking_leave();
                start_life(U[u]);
            }
    }
    atomic_store(&stop_all, 1);
    for (int u = 0; u < nuni; u++) {
        rudo_blocking_enter();
        pthread_join(U[u]->th, NULL);
        rudo_blocking_leave();
    }
    rudo_collect_minor();
    for (int u = 0; u < nuni; u++)
        full_walk(U[u]);
    rudo_collect();
    rudo_collect();
    size_t live = 0;
    for (int u = 0; u < nuni; u++)
        live += full_walk(U[u]);
    rudo_stats st;
    rudo_get_stats(&st);
    printf("genfuzz OK: seed %llu, ops %ld, lives %ld, allocs %ld, frees %ld, reallocs %ld, copies %ld, "
           "finalized %ld, guardian %ld, weak cleared %ld, eph cleared %ld, walks %ld, live %zu, "
           "collections %llu (minor %llu, major %llu)\n",
           (unsigned long long)seed, atomic_load(&total_ops), atomic_load(&total_lives),
           atomic_load(&total_allocs), atomic_load(&total_frees), atomic_load(&total_reallocs),
           atomic_load(&total_copies), atomic_load(&total_fin), atomic_load(&total_guard),
           atomic_load(&total_wclear), atomic_load(&total_eclear), atomic_load(&total_fullwalks),
           live, (unsigned long long)st.collections, (unsigned long long)st.minor_collections,
           (unsigned long long)st.major_collections);
    (void)dump_stats;
    return 0;
}

/* The configurations CI runs: the fuzzer's repros first (the thaw bug
 * showed within seconds in 3 of 5 runs of the first), then mixes. */
struct fz_case {
    const char *env[8];
};
static const struct fz_case cases[] = {
    {{"FZ_SEED=5", "FZ_GEN=0", "FZ_THREADS=1", "FZ_SIGALL=1", "FZ_ROOTB=16384",
      "FZ_DISABLE=0x73fe"}},
    {{"FZ_SEED=1"}},
    {{"FZ_SEED=3", "FZ_SIGALL=1"}},
    {{"FZ_SEED=7", "FZ_SIGALL=0", "FZ_MARKERS=2"}},
    {{"FZ_SEED=11", "FZ_THREADS=2", "FZ_MARKERS=3"}},
    {{"FZ_SEED=13", "FZ_GEN=0"}},
};

int main(void) {
    if (getenv("TEST_FUZZ_ONE"))
        return fuzz_main();
    test_start_watchdog();
    long run_s = test_scaled(TEST_UNDER_TSAN ? 3 : 2);
    int rounds = test_env_long("TEST_LONG", 0) ? 8 : 1;
    char secs_env[32];
    snprintf(secs_env, sizeof secs_env, "%ld", run_s);
    for (int r = 0; r < rounds; r++) {
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            fflush(stdout);
            fflush(stderr);
            pid_t pid = fork();
            if (pid == 0) {
                for (int i = 0; i < 8 && cases[c].env[i]; i++)
                    putenv((char *)cases[c].env[i]);
                setenv("FZ_SECS", secs_env, 1);
                if (r > 0) { /* TEST_LONG: the same mixes, other seeds */
                    char sd[32];
                    snprintf(sd, sizeof sd, "%llu", (unsigned long long)(1000 * r + c));
                    setenv("FZ_SEED", sd, 1);
                }
                _exit(fuzz_main());
            }
            int st = test_wait_child(pid);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                fprintf(stderr, "case %zu (round %d) failed: %s %d\n", c, r,
                        WIFEXITED(st) ? "exit" : "signal",
                        WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
            CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        }
    }
    return test_report();
}
