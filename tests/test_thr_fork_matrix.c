/* test_thr_fork_matrix.c — fork() while other attached threads use the
 * heap, case by case, over the cross product
 *
 *     markers     (1, 2, 4)
 *   x generational (off, on: rudo_write on every pointer store, minor
 *                   collections in the threads and in the child)
 *   x page batch  (RUDO_PAGE_BATCH=1, =8, adaptive: unset)
 *   x interior_pointers (on, off)
 *   x activity    what the other threads do when the parent forks:
 *       small     allocate objects of four kinds (trace callback, layout,
 *                 conservative, atomic) in every size class 16 B .. 32 KiB,
 *                 link them (rudo_write) and re-link old ones; scoped
 *                 handles now and then;
 *       large     allocate (and rudo_free) objects of 100 KiB .. 2 MiB,
 *                 checking that each comes zeroed;
 *       free      rudo_free and rudo_realloc (small <-> large included),
 *                 checking what realloc keeps and zeroes;
 *       weak      register, check, unregister and move short and long weak
 *                 slots, add and remove a root slot;
 *       final     per-object finalizers (unordered, ordered), a kind with a
 *                 finalizer, guardian registrations and polls, unregisters;
 *       collect   rudo_collect and rudo_collect_minor in a loop;
 *       attach    attach, allocate, detach in a loop, and short-lived
 *                 threads that exit attached (the exit destructor);
 *       blocking  blocking regions, short and long;
 *       suspend   one thread suspends and resumes the others and the
 *                 forking thread (rudo_thread_suspend); the others
 *                 allocate or sit in blocking regions;
 *       signal    threads attached with RUDO_ATTACH_SIGNAL allocate and
 *                 spin without polling;
 *       mixed     each thread a different one of the above
 *   x threads     (1 .. 6 besides the forking thread).
 *
 * One case: the main thread creates the heap, builds its own structure (a
 * checksummed tree, objects of every kind across the size classes linked
 * to each other, large objects, two weak slots to held objects: all held
 * by a registered root range), starts the threads and forks three times.
 * Before each fork it waits until every thread has made progress since the
 * last one (counters, not sleeps), then waits a random moment (sleeping in
 * a blocking region, allocating, or spinning at safepoints) and forks from
 * one of three sites in turn: running, inside a blocking region, or
 * detached. The child (single-threaded: the others vanished wherever they
 * were) checks, and _exits nonzero on any failure (alarm(60): a hang is a
 * failure too):
 *  - it is attached (after leaving the region, or attaching), and
 *    rudo_get_stats says threads_attached == 1;
 *  - the main structure is intact (tree checksums, every object's tag and
 *    pattern, its links, the large objects, the weak slots);
 *  - it allocates every kind in every size class (a page and one more of
 *    each in the first round) and large objects, each zeroed, of the kind
 *    and size asked; collects (and collects minor, if generational) after
 *    each round, runs the heap verifier (rudo__debug_verify_heap), finds
 *    every object it holds intact, the marker pool re-created with the
 *    configured markers and quiescent, and collections counted;
 *  - the weak slots the vanished threads registered hold NULL or an intact
 *    object; the objects their guardians hand back are intact; every
 *    finalizer that runs (kind and per-object) finds its object intact or
 *    not yet published (one a vanished thread was filling);
 *  - two new threads attach, allocate, collect, check and detach;
 *  - rudo_heap_destroy.
 * The parent waits for the child inside a blocking region (its threads
 * wait at their next step meanwhile, so that the child has the CPUs), and
 * reports the case and how the child ended; a child still running after
 * 90 s is killed and counts as failed (under TSan the child's SIGALRM is
 * not delivered while it waits inside libc; TEST_HANG_STACKS=1 prints its
 * stacks with gdb first). After the forks the threads stop and check
 * their own structures; the parent checks its own, collects, verifies.
 * The threads check their objects all along (tags, patterns, links, weak
 * slots that must not have been cleared, zeroed allocations, realloc).
 * Trees are built with rudo_write on their child pointers (test_tree_make
 * stores them plainly: a minor collection that another thread runs while
 * a node's subtrees are built makes the node old, and the unrecorded
 * store then loses the subtree).
 *
 * Each thread publishes the phase it is in (alloc, fill, free, realloc,
 * weak registration, collect, attach, blocked, suspend ...); the children
 * count the phases their vanished threads were caught in, through a shared
 * mapping, and the test prints the tally.
 *
 * Default (CI) mode: fixed seed, a sample stratified by activity (2 cases
 * per activity: one generational, one not; markers, batch and interior
 * pointers cycle over the 22 cases, the thread counts and the cases' seeds
 * come from the seed): 66 forks. TEST_LONG=1 (or --long) runs the whole
 * product (2376 cases, 7128 forks). TEST_SEED changes the sample;
 * TEST_PER_ACT sets its size; TEST_VERBOSE=1 prints every case with the
 * line that reruns it alone: TEST_SEED=s
 * TEST_CASE=markers:gen:batch:interior:activity:threads (batch 0 =
 * adaptive; TEST_REPEAT=n runs it n times, seeds s, s+1, ...);
 * TEST_FORKS sets the forks per case. */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "debug/debug.h"
#include "heap/heap.h"
#include "rudo.h"
#include "testlib.h"

/* ThreadSanitizer ends a child that starts threads after a multi-threaded
 * fork unless told otherwise; this test does that on purpose. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) { return "die_after_fork=0"; }

#ifdef RUDO_TEST_DEBUG_BUILD
#define DEBUG_BUILD 1
#else
#define DEBUG_BUILD 0
#endif
#define SLOW_BUILD (TEST_UNDER_TSAN || TEST_UNDER_ASAN || DEBUG_BUILD)

/* ---- dimensions --------------------------------------------------------- */

enum {
    A_SMALL, A_LARGE, A_FREE, A_WEAK, A_FINAL, A_COLLECT, A_ATTACH,
    A_BLOCKING, A_SUSPEND, A_SIGNAL, A_MIXED, NACT
};
static const char *const act_name[NACT] = {
    "small", "large", "free", "weak", "final", "collect", "attach",
    "blocking", "suspend", "signal", "mixed"};
static const unsigned markers_v[] = {1, 2, 4};
static const unsigned batch_v[] = {1, 8, 0}; /* 0: adaptive (unset) */
#define MAXT 6

typedef struct kase {
    unsigned markers, batch, nthreads;
    bool gen, interior;
    int act;
} kase;

enum { SITE_RUNNING, SITE_BLOCKED, SITE_DETACHED, NSITES };
static const char *const site_name[NSITES] = {"running", "blocking region", "detached"};

/* What a thread is doing (published for the children's tally). */
enum {
    PH_NONE, PH_ALLOC, PH_FILL, PH_CHECK, PH_LINK, PH_LARGE, PH_FREE, PH_REALLOC,
    PH_WEAK_REG, PH_WEAK_UNREG, PH_WEAK_MOVE, PH_ROOT, PH_FIN_REG, PH_FIN_UNREG,
    PH_GUARD, PH_COLLECT, PH_MINOR, PH_ATTACH, PH_DETACH, PH_UNATTACHED, PH_SPAWN,
    PH_BLOCKED, PH_SUSPEND, PH_RESUME, PH_SPIN, PH_HANDLES, NPH
};
static const char *const ph_name[NPH] = {
    "none", "alloc", "fill", "check", "link", "large", "free", "realloc",
    "weak-reg", "weak-unreg", "weak-move", "root", "fin-reg", "fin-unreg",
    "guardian", "collect", "minor", "attach", "detach", "unattached", "spawn",
    "blocked", "suspend", "resume", "spin", "handles"};

/* ---- failures ----------------------------------------------------------- */

static atomic_ulong fails, checks, nprinted;
static bool in_child;
static char case_desc[192];

/* write(2), not stdio: the child must not take a lock a vanished thread
 * may hold. */
static void say(const char *fmt, ...) {
    char buf[640];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 1)
        n = (int)sizeof buf - 1;
    if (n > 0)
        (void)!write(2, buf, (size_t)n);
}

static void expect_at(bool ok, const char *what, int line) {
    atomic_fetch_add_explicit(&checks, 1, memory_order_relaxed);
    if (ok)
        return;
    atomic_fetch_add(&fails, 1);
    if (atomic_fetch_add(&nprinted, 1) < 30)
        say("FAIL line %d [%s %s]: %s\n", line, in_child ? "child" : "parent", case_desc,
            what);
}
#define EXPECT(c) expect_at((c) ? true : false, #c, __LINE__)

/* ---- shared with the children: the tally ------------------------------- */

typedef struct shared {
    atomic_ulong children, phases[NPH], fin_runs, fin_unpublished, weak_live, weak_null,
        guard_polled, vanished, child_collections;
} shared_t;
static shared_t *shared;

/* ---- kinds and objects ---------------------------------------------------- */

enum { K_TRACED, K_LAYOUT, K_CONS, K_ATOMIC, K_FIN, NK };
static const char *const k_name[NK] = {"traced", "layout", "conservative", "atomic", "final"};
static rudo_kind kinds[NK], k_tree;
static const uint64_t layout_bits = 1; /* word 0 of every 4 */

static void trace_obj(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    rudo_visit(tr, (void **)obj);
}
static void trace_tree(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    test_tnode *n = obj;
    rudo_visit(tr, (void **)&n->left);
    rudo_visit(tr, (void **)&n->right);
}

/* An object: word 0 a link (traced but in atomic objects, which have none),
 * word 1 its tag, the others a pattern derived from the tag (every word up
 * to 4 KiB, a sample above). The tag checks itself against the object's
 * usable size and is written last, with release: an object with tag 0 is
 * one its thread was still filling. Tag and pattern words are never heap
 * addresses (top byte 0xa5). */
#define TOP 0xa500000000000000ULL
static atomic_ulong next_id = 1;

static uint64_t tag_low(uint64_t id, size_t size) {
    return (uint32_t)test_mix64(id * 0x9e3779b97f4a7c15ULL ^ (uint64_t)size);
}
static uint64_t make_tag(uint64_t id, size_t size) {
    id &= 0xffffff;
    return TOP | id << 32 | tag_low(id, size);
}
static bool tag_ok(uint64_t tag, size_t size) {
    return (tag >> 56) == 0xa5 && (uint32_t)tag == tag_low((tag >> 32) & 0xffffff, size);
}
static uint64_t pat(uint64_t tag, size_t w) {
    return (test_mix64(tag + w) & 0x0000ffffffffffffULL) | TOP;
}
static bool sampled(size_t w, size_t nw) {
    return nw <= 512 || w < 64 || w + 64 >= nw || w % 509 == 0;
}
static bool all_zero(const void *p, size_t n) {
    const uint64_t *w = p;
    for (size_t i = 0; i < n / 8; i++)
        if (w[i])
            return false;
    return true;
}
/* Zero at the words an object's fill writes (large objects: a sample). */
static bool zero_sampled(const void *p, size_t n) {
    const uint64_t *w = p;
    size_t nw = n / 8;
    for (size_t i = 0; i < nw; i++)
        if (sampled(i, nw) && w[i])
            return false;
    return true;
}

/* Fills and publishes o; link (NULL for atomic kinds) goes to word 0. */
static void obj_fill(void *o, void *link) {
    uint64_t *w = o;
    size_t size = rudo_size(o), nw = size / 8;
    uint64_t tag = make_tag(atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed), size);
    for (size_t i = 2; i < nw; i++)
        if (sampled(i, nw))
            w[i] = pat(tag, i);
    if (link)
        rudo_write(o, (void **)o, link);
    __atomic_store_n(&w[1], tag, __ATOMIC_RELEASE);
}

enum { OBJ_OK, OBJ_UNPUBLISHED, OBJ_BAD };
/* Checks o and, to `depth`, what its link reaches. */
static int obj_check(const void *o, int depth) {
    if (!o || rudo_base(o) != o)
        return OBJ_BAD;
    const uint64_t *w = o;
    uint64_t tag = __atomic_load_n(&w[1], __ATOMIC_ACQUIRE);
    if (tag == 0)
        return OBJ_UNPUBLISHED;
    size_t size = rudo_size(o), nw = size / 8;
    if (!tag_ok(tag, size))
        return OBJ_BAD;
    for (size_t i = 2; i < nw; i++)
        if (sampled(i, nw) && w[i] != pat(tag, i))
            return OBJ_BAD;
    void *link = (void *)w[0];
    if (link && rudo_kind_of(o) == RUDO_KIND_ATOMIC)
        return OBJ_BAD; /* atomic objects never get one */
    if (link && depth > 0 && obj_check(link, depth - 1) != OBJ_OK)
        return OBJ_BAD;
    return OBJ_OK;
}
static bool obj_ok(const void *o, int depth) { return obj_check(o, depth) == OBJ_OK; }

static void *alloc_kind(int k, size_t size) {
    void *o = rudo_alloc(kinds[k], size);
    if (!o) {
        say("rudo_alloc(%s, %zu) returned NULL [%s]\n", k_name[k], size, case_desc);
        abort();
    }
    return o;
}

static bool tree_ok(const test_tnode *n, int depth) {
    if (!n)
        return depth < 0;
    if (rudo_base(n) != n || n->sum != test_tree_sum(n))
        return false;
    return tree_ok(n->left, depth - 1) && tree_ok(n->right, depth - 1);
}

/* test_tree_make, with the barrier on its child pointers: another thread's
 * minor collection may make a node old while its subtrees are built. */
static test_tnode *tree_make(int depth, uint64_t *rng) {
    test_tnode *n = rudo_alloc(k_tree, sizeof *n);
    if (!n) {
        say("rudo_alloc returned NULL [%s]\n", case_desc);
        abort();
    }
    n->val = test_rand(rng);
    if (depth > 0) {
        test_tnode *l = tree_make(depth - 1, rng);
        rudo_write(n, (void **)&n->left, l);
        test_tnode *r = tree_make(depth - 1, rng);
        rudo_write(n, (void **)&n->right, r);
    }
    n->sum = test_tree_sum(n);
    return n;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}
static void spin_us(long us) {
    uint64_t end = test_now_ns() + (uint64_t)us * 1000u;
    while (test_now_ns() < end) {
    }
}

/* ---- the finalizers ---------------------------------------------------------- */

static atomic_ulong fin_runs_parent;

/* Kind and per-object finalizers alike: the object must be intact, or, in a
 * child only, not yet published (a vanished thread was filling it). */
static void fin_check(void *obj, void *data) {
    (void)data;
    int r = obj_check(obj, 0);
    if (in_child) {
        atomic_fetch_add(&shared->fin_runs, 1);
        if (r == OBJ_UNPUBLISHED)
            atomic_fetch_add(&shared->fin_unpublished, 1);
        else
            EXPECT(r == OBJ_OK);
    } else {
        atomic_fetch_add(&fin_runs_parent, 1);
        EXPECT(r == OBJ_OK);
    }
}

/* ---- the threads ------------------------------------------------------------- */

#define NSMALL 64
#define NBIG 4
#define NFREE 32
#define NFIN 16
#define NWEAK 32

typedef struct thr {
    pthread_t tid;
    int idx, act;
    uint64_t seed;
    atomic_ulong progress;
    atomic_int phase;
    void **wslots;       /* malloc'd weak slots [NWEAK + 1]: the last is spare */
    void **rootslot;     /* malloc'd, a registered root */
    rudo_guardian *guard;
} thr;

static thr thrs[MAXT];
static unsigned nthr;
static atomic_int stop_flag;
/* Set while the parent waits for a child: the threads wait at their next
 * step (in a blocking region, if attached), so that the child has the
 * CPUs. Not a correctness matter: the child is another process. */
static atomic_int pause_flag;
/* Set once every thrs[].tid is written (pthread_create may store it after
 * the thread starts: under TSan it does). */
static atomic_int tids_ready;
static pthread_t main_tid;
static kase cur;
static uint64_t mix_off; /* the case's first activity in the mixed one */

/* The thread's own objects, on its stack (scanned). */
typedef struct local {
    void *sl[NSMALL];
    void *big[NBIG];
    void *fr[NFREE];
    void *fk[NFIN];
    int fmode[NFIN];
    void *strong[NWEAK];
    test_tnode *tree;
    uint64_t rng, steps;
    thr *t;
    bool attached;
} local;

static void set_phase(thr *t, int ph) {
    atomic_store_explicit(&t->phase, ph, memory_order_relaxed);
}
static uint64_t rnd(local *L) { return test_rand(&L->rng); }

static size_t rand_small_size(local *L) {
    unsigned c = (unsigned)(rnd(L) % 4 == 0 ? rnd(L) % RUDO_NCLASSES : rnd(L) % 40);
    size_t s = rudo__class_size[c];
    if (s > 16 && rnd(L) % 2)
        s -= rnd(L) % 16; /* not an exact class size */
    return s;
}
static int rand_base_kind(local *L) { return (int)(rnd(L) % 4); } /* not K_FIN */

static void small_step(local *L) {
    thr *t = L->t;
    unsigned i = (unsigned)(rnd(L) % NSMALL);
    if (L->sl[i]) {
        set_phase(t, PH_CHECK);
        EXPECT(obj_ok(L->sl[i], 1));
    }
    int k = rand_base_kind(L);
    size_t size = rand_small_size(L);
    set_phase(t, PH_ALLOC);
    void *o = alloc_kind(k, size);
    set_phase(t, PH_FILL);
    EXPECT(rudo_size(o) >= size && rudo_kind_of(o) == kinds[k]);
    EXPECT(all_zero(o, rudo_size(o) < 4096 ? rudo_size(o) : 4096));
    void *link = k == K_ATOMIC ? NULL : L->sl[rnd(L) % NSMALL];
    obj_fill(o, link);
    L->sl[i] = o;
    /* Re-link an older object (generational: an old-to-young store). */
    unsigned j = (unsigned)(rnd(L) % NSMALL);
    if (L->sl[j] && rnd(L) % 4 == 0 && rudo_kind_of(L->sl[j]) != RUDO_KIND_ATOMIC) {
        set_phase(t, PH_LINK);
        rudo_write(L->sl[j], (void **)L->sl[j], L->sl[rnd(L) % NSMALL]);
    }
    if (L->steps % 16 == 0) {
        set_phase(t, PH_HANDLES);
        rudo_scope sc;
        rudo_scope_enter(&sc);
        void **h[8];
        for (int n = 0; n < 8; n++) {
            void *x = alloc_kind(rand_base_kind(L), rand_small_size(L));
            obj_fill(x, NULL);
            h[n] = rudo_handle(x);
        }
        for (int n = 0; n < 8; n++)
            EXPECT(obj_ok(*h[n], 0));
        rudo_scope_exit(&sc);
    }
    set_phase(t, PH_NONE);
}

static void large_step(local *L) {
    thr *t = L->t;
    unsigned i = (unsigned)(rnd(L) % NBIG);
    void *o = L->big[i];
    if (o) {
        set_phase(t, PH_CHECK);
        EXPECT(obj_ok(o, 1));
        if (rnd(L) % 3 == 0) {
            L->big[i] = NULL;
            set_phase(t, PH_FREE);
            rudo_free(o);
        }
    }
    static const int lk[] = {K_TRACED, K_CONS, K_ATOMIC, K_LAYOUT};
    int k = lk[rnd(L) % 4];
    size_t size = 100 * 1024 + (size_t)(rnd(L) % (2 * 1024 * 1024 - 100 * 1024));
    size &= ~(size_t)15;
    set_phase(t, PH_LARGE);
    void *n = alloc_kind(k, size);
    set_phase(t, PH_FILL);
    EXPECT(rudo_size(n) >= size && rudo_kind_of(n) == kinds[k]);
    EXPECT(zero_sampled(n, rudo_size(n)));
    obj_fill(n, NULL); /* unlinked: it may be freed */
    L->big[i] = n;
    set_phase(t, PH_NONE);
}

static size_t rand_free_size(local *L) {
    uint64_t r = rnd(L) % 8;
    if (r == 0)
        return 32 * 1024 + 16 + (size_t)(rnd(L) % (200 * 1024)); /* large */
    return rand_small_size(L);
}

static void free_step(local *L) {
    thr *t = L->t;
    unsigned i = (unsigned)(rnd(L) % NFREE);
    void *o = L->fr[i];
    if (!o) {
        int k = rand_base_kind(L);
        set_phase(t, PH_ALLOC);
        o = alloc_kind(k, rand_free_size(L));
        set_phase(t, PH_FILL);
        obj_fill(o, NULL);
        L->fr[i] = o;
        set_phase(t, PH_NONE);
        return;
    }
    set_phase(t, PH_CHECK);
    EXPECT(obj_ok(o, 0));
    uint64_t r = rnd(L) % 3;
    if (r == 0) {
        L->fr[i] = NULL;
        set_phase(t, PH_FREE);
        rudo_free(o);
    } else if (r == 1) {
        const uint64_t *w = o;
        size_t old = rudo_size(o), onw = old / 8;
        uint64_t tag = w[1];
        rudo_kind kind = rudo_kind_of(o);
        size_t want = rand_free_size(L);
        set_phase(t, PH_REALLOC);
        void *n = rudo_realloc(o, want);
        set_phase(t, PH_CHECK);
        EXPECT(n != NULL);
        if (!n)
            return;
        const uint64_t *nw = n;
        size_t ns = rudo_size(n), nnw = ns / 8;
        EXPECT(ns >= want && rudo_kind_of(n) == kind);
        /* The first min(old, want) bytes are the old ones, the rest zero. */
        size_t copied = old < want ? old : want;
        size_t keep = copied / 8, zfrom = (copied + 7) / 8;
        bool ok = keep < 2 || nw[1] == tag;
        for (size_t j = 2; j < keep; j++)
            if (sampled(j, onw) && nw[j] != pat(tag, j))
                ok = false;
        EXPECT(ok);
        bool tail = true;
        for (size_t j = zfrom; j < nnw; j++)
            if ((j < zfrom + 64 || j + 64 >= nnw || j % 509 == 0) && nw[j])
                tail = false;
        EXPECT(tail);
        /* Not touched: the old object (if n is another) is garbage now. */
        __atomic_store_n((uint64_t *)&nw[1], 0, __ATOMIC_RELAXED);
        set_phase(t, PH_FILL);
        obj_fill(n, NULL);
        L->fr[i] = n;
    }
    set_phase(t, PH_NONE);
}

static void weak_step(local *L) {
    thr *t = L->t;
    unsigned i = (unsigned)(rnd(L) % NWEAK);
    void **s = &t->wslots[i];
    set_phase(t, PH_WEAK_REG);
    int reg = rudo_weak_registered(s);
    set_phase(t, PH_CHECK);
    if (reg) {
        void *v = __atomic_load_n(s, __ATOMIC_ACQUIRE);
        if (L->strong[i])
            EXPECT(v == L->strong[i]); /* held: never cleared */
        if (v)
            EXPECT(obj_ok(v, 0));
        uint64_t r = rnd(L) % 4;
        if (r == 0) {
            set_phase(t, PH_WEAK_UNREG);
            EXPECT(rudo_weak_unregister(s) == RUDO_OK);
            __atomic_store_n(s, NULL, __ATOMIC_RELEASE);
            L->strong[i] = NULL;
        } else if (r == 1 && L->strong[i]) {
            /* Move it to the spare slot and back (held: no value is lost
             * between the move and the copy). */
            void **spare = &t->wslots[NWEAK];
            set_phase(t, PH_WEAK_MOVE);
            EXPECT(rudo_weak_move(s, spare) == RUDO_OK);
            __atomic_store_n(spare, L->strong[i], __ATOMIC_RELEASE);
            __atomic_store_n(s, NULL, __ATOMIC_RELEASE);
            EXPECT(rudo_weak_registered(s) == 0 && rudo_weak_registered(spare) == reg);
            EXPECT(rudo_weak_move(spare, s) == RUDO_OK);
            __atomic_store_n(s, L->strong[i], __ATOMIC_RELEASE);
            __atomic_store_n(spare, NULL, __ATOMIC_RELEASE);
        } else if (r == 2) {
            L->strong[i] = NULL; /* may die now */
        }
    } else {
        set_phase(t, PH_ALLOC);
        void *o = alloc_kind(rand_base_kind(L), rand_small_size(L));
        set_phase(t, PH_FILL);
        obj_fill(o, NULL);
        __atomic_store_n(s, o, __ATOMIC_RELEASE);
        L->strong[i] = rnd(L) % 2 ? o : NULL;
        set_phase(t, PH_WEAK_REG);
        EXPECT((rnd(L) % 2 ? rudo_weak_register(s) : rudo_weak_register_long(s)) == RUDO_OK);
        /* Held (a register or this frame) until the call has taken it: the
         * slot is malloc'd, not scanned, and with strong[i] NULL a thread
         * suspended by signal before the call lost o to another thread's
         * collection, leaving a registered slot to a freed cell (-O2 kept
         * no other copy). The call holds its target through its wait. */
        __asm__ volatile("" : : "r"(o));
    }
    if (rnd(L) % 8 == 0) {
        set_phase(t, PH_ROOT);
        void *v = *t->rootslot;
        if (v)
            EXPECT(obj_ok(v, 0));
        void *o = alloc_kind(rand_base_kind(L), rand_small_size(L));
        obj_fill(o, NULL);
        if (rnd(L) % 2) {
            EXPECT(rudo_root_remove(t->rootslot) == RUDO_OK);
            *t->rootslot = o;
            rudo_root_add(t->rootslot);
            /* Held until the slot is a root again: between the remove and
             * the add it is malloc'd memory, not scanned, and rudo_root_add
             * waits (a safepoint) while a collection runs. */
            __asm__ volatile("" : : "r"(o));
        } else {
            *t->rootslot = o;
        }
    }
    set_phase(t, PH_NONE);
}

static void final_step(local *L) {
    thr *t = L->t;
    unsigned i = (unsigned)(rnd(L) % NFIN);
    if (L->fk[i]) {
        set_phase(t, PH_CHECK);
        EXPECT(obj_ok(L->fk[i], 0));
        if ((L->fmode[i] == 1 || L->fmode[i] == 2) && rnd(L) % 8 == 0) {
            set_phase(t, PH_FIN_UNREG);
            EXPECT(rudo_finalizer_unregister(L->fk[i]) == RUDO_OK);
            L->fmode[i] = -1;
            set_phase(t, PH_NONE);
            return;
        }
    }
    int mode = (int)(rnd(L) % 4);
    int k = mode == 0 ? K_FIN : rand_base_kind(L);
    set_phase(t, PH_ALLOC);
    void *o = alloc_kind(k, rand_small_size(L));
    set_phase(t, PH_FILL);
    obj_fill(o, NULL);
    set_phase(t, mode == 3 ? PH_GUARD : PH_FIN_REG);
    if (mode == 1)
        EXPECT(rudo_finalizer_register(o, fin_check, NULL) == RUDO_OK);
    else if (mode == 2)
        EXPECT(rudo_finalizer_register_ordered(o, fin_check, NULL) == RUDO_OK);
    else if (mode == 3)
        EXPECT(rudo_guardian_register(t->guard, o) == RUDO_OK);
    L->fk[i] = rnd(L) % 2 ? o : NULL; /* the other half dies */
    L->fmode[i] = mode;
    if (L->steps % 8 == 0) {
        set_phase(t, PH_GUARD);
        void *g;
        while ((g = rudo_guardian_poll(t->guard)) != NULL)
            EXPECT(obj_ok(g, 0));
    }
    if (L->steps % 32 == 31) {
        set_phase(t, PH_COLLECT);
        rudo_collect();
    }
    set_phase(t, PH_NONE);
}

static void collect_step(local *L) {
    thr *t = L->t;
    set_phase(t, PH_ALLOC);
    test_tnode *n = tree_make(5, &L->rng);
    if (L->tree) {
        set_phase(t, PH_CHECK);
        EXPECT(tree_ok(L->tree, 5));
    }
    L->tree = n;
    bool minor = cur.gen && rnd(L) % 2;
    set_phase(t, minor ? PH_MINOR : PH_COLLECT);
    if (minor)
        rudo_collect_minor();
    else
        rudo_collect();
    set_phase(t, PH_CHECK);
    EXPECT(tree_ok(L->tree, 5));
    set_phase(t, PH_NONE);
}

static void *exiter_main(void *arg) {
    uint64_t rng = (uintptr_t)arg;
    if (rudo_thread_attach() != RUDO_OK)
        EXPECT(!"short-lived thread attaches");
    test_tnode *n = tree_make(3, &rng);
    EXPECT(tree_ok(n, 3));
    return NULL; /* detached by the exit destructor */
}

static void attach_step(local *L) {
    thr *t = L->t;
    set_phase(t, PH_ATTACH);
    EXPECT(rudo_thread_attach() == RUDO_OK);
    L->attached = true;
    set_phase(t, PH_ALLOC);
    test_tnode *n = tree_make(4, &L->rng);
    void *o = alloc_kind(rand_base_kind(L), rand_small_size(L));
    set_phase(t, PH_FILL);
    obj_fill(o, NULL);
    set_phase(t, PH_CHECK);
    EXPECT(tree_ok(n, 4) && obj_ok(o, 0));
    set_phase(t, PH_DETACH);
    rudo_thread_detach();
    L->attached = false;
    set_phase(t, PH_UNATTACHED);
    if (L->steps % 16 == 0) {
        set_phase(t, PH_SPAWN);
        pthread_t x;
        if (pthread_create(&x, NULL, exiter_main, (void *)(uintptr_t)(rnd(L) | 1)) == 0)
            pthread_join(x, NULL);
        else
            EXPECT(!"pthread_create");
    }
    set_phase(t, PH_NONE);
}

static void blocking_step(local *L) {
    thr *t = L->t;
    small_step(L);
    set_phase(t, PH_BLOCKED);
    rudo_blocking_enter();
    if (rnd(L) % 8 == 0)
        sleep_us((long)(rnd(L) % 1000));
    else
        spin_us((long)(rnd(L) % 30));
    rudo_blocking_leave();
    set_phase(t, PH_NONE);
}

static int act_of(const thr *t);

/* Suspends and resumes the others and the forking thread in turn. */
static void suspend_step(local *L) {
    thr *t = L->t;
    pthread_t target = main_tid;
    unsigned j = (unsigned)(rnd(L) % (nthr + 1));
    if (j < nthr && j != (unsigned)t->idx)
        target = thrs[j].tid;
    EXPECT(!pthread_equal(target, pthread_self()));
    set_phase(t, PH_SUSPEND);
    int rc = rudo_thread_suspend(target);
    /* ENOENT: not attached now (detached, an attach loop, or exiting). */
    EXPECT(rc == RUDO_OK || rc == RUDO_ENOENT);
    if (rc != RUDO_OK && rc != RUDO_ENOENT)
        say("rudo_thread_suspend of %s: %s\n",
            j < nthr && j != (unsigned)t->idx ? act_name[act_of(&thrs[j])] : "the forking thread",
            rudo_strerror(rc));
    if (rc == RUDO_OK) {
        EXPECT(rudo_thread_is_suspended(target));
        spin_us((long)(rnd(L) % 50));
        set_phase(t, PH_RESUME);
        EXPECT(rudo_thread_resume(target) == RUDO_OK);
    }
    if (L->attached)
        small_step(L);
    else
        spin_us(20);
    set_phase(t, PH_NONE);
}

/* Allocates, then spins over its objects without a rudo call. */
static void signal_step(local *L) {
    thr *t = L->t;
    small_step(L);
    set_phase(t, PH_SPIN);
    uint64_t sum = 0;
    for (int r = 0; r < 20; r++)
        for (unsigned i = 0; i < NSMALL; i++)
            if (L->sl[i])
                sum += ((volatile uint64_t *)L->sl[i])[1];
    __asm__ volatile("" : : "r"(sum));
    set_phase(t, PH_NONE);
}

static int act_of(const thr *t) {
    if (t->act == A_MIXED) {
        static const int mix[] = {A_SMALL, A_WEAK, A_LARGE, A_FINAL, A_FREE,
                                  A_COLLECT, A_ATTACH, A_BLOCKING, A_SIGNAL, A_SUSPEND};
        /* One offset for the case: no two threads do the same (one
         * suspender at most). */
        return mix[(t->idx + (int)(mix_off % 10)) % 10];
    }
    if (t->act == A_SUSPEND && t->idx > 0)
        return t->idx % 2 ? A_SMALL : A_BLOCKING; /* what thread 0 suspends */
    return t->act;
}

static void check_all(local *L) {
    for (unsigned i = 0; i < NSMALL; i++)
        if (L->sl[i])
            EXPECT(obj_ok(L->sl[i], 1));
    for (unsigned i = 0; i < NBIG; i++)
        if (L->big[i])
            EXPECT(obj_ok(L->big[i], 1));
    for (unsigned i = 0; i < NFREE; i++)
        if (L->fr[i])
            EXPECT(obj_ok(L->fr[i], 0));
    for (unsigned i = 0; i < NFIN; i++)
        if (L->fk[i])
            EXPECT(obj_ok(L->fk[i], 0));
    for (unsigned i = 0; i < NWEAK; i++)
        if (L->strong[i])
            EXPECT(obj_ok(L->strong[i], 0) && L->t->wslots[i] == L->strong[i]);
    if (L->tree)
        EXPECT(tree_ok(L->tree, 5));
}

static void *thr_main(void *arg) {
    thr *t = arg;
    local L;
    memset(&L, 0, sizeof L);
    L.t = t;
    L.rng = test_mix64(t->seed) | 1;
    int act = act_of(t);
    if (act == A_SUSPEND)
        while (!atomic_load_explicit(&tids_ready, memory_order_acquire))
            sleep_us(100); /* not attached yet */
    /* attach: attaches per step; suspend: the suspender, attached or not */
    bool attach = act != A_ATTACH && !(act == A_SUSPEND && rnd(&L) % 2);
    if (attach) {
        set_phase(t, PH_ATTACH);
        int rc = act == A_SIGNAL ? rudo_thread_attach_flags(RUDO_ATTACH_SIGNAL)
                                 : rudo_thread_attach();
        EXPECT(rc == RUDO_OK);
        L.attached = true;
        if (act == A_WEAK)
            rudo_root_add(t->rootslot);
    }
    while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
        switch (act) {
        case A_SMALL: small_step(&L); break;
        case A_LARGE: large_step(&L); break;
        case A_FREE: free_step(&L); break;
        case A_WEAK: weak_step(&L); break;
        case A_FINAL: final_step(&L); break;
        case A_COLLECT: collect_step(&L); break;
        case A_ATTACH: attach_step(&L); break;
        case A_BLOCKING: blocking_step(&L); break;
        case A_SUSPEND: suspend_step(&L); break;
        case A_SIGNAL: signal_step(&L); break;
        }
        L.steps++;
        atomic_fetch_add_explicit(&t->progress, 1, memory_order_release);
        if (atomic_load_explicit(&pause_flag, memory_order_relaxed)) {
            if (L.attached)
                rudo_blocking_enter();
            while (atomic_load(&pause_flag) && !atomic_load(&stop_flag))
                sleep_us(200);
            if (L.attached)
                rudo_blocking_leave();
        }
    }
    if (L.attached) {
        check_all(&L);
        if (act == A_WEAK)
            EXPECT(rudo_root_remove(t->rootslot) == RUDO_OK);
        rudo_thread_detach();
    }
    return NULL;
}

/* ---- the main thread's structure --------------------------------------------- */

#define TREE_DEPTH 10
#define KIT 40
#define NLARGE_KIT 3
#define HOLD_N (1 + KIT + NLARGE_KIT)
static void **main_hold; /* malloc'd, a registered root range */
static void **main_weak; /* malloc'd [2]: weak slots to kit 3 (short) and 7 (long) */
static uint64_t main_rng;

static void *kit_make(unsigned j) {
    int k = (int)(j % NK);
    size_t size = rudo__class_size[(j * 7) % RUDO_NCLASSES];
    void *o = alloc_kind(k, size);
    obj_fill(o, k == K_ATOMIC || j == 0 ? NULL : main_hold[j]); /* the previous one */
    return o;
}

static void main_build(void) {
    main_hold = calloc(HOLD_N, sizeof *main_hold);
    main_weak = calloc(2, sizeof *main_weak);
    if (!main_hold || !main_weak) {
        perror("calloc");
        exit(2);
    }
    rudo_root_add_range(main_hold, main_hold + HOLD_N);
    main_hold[0] = tree_make(TREE_DEPTH, &main_rng);
    for (unsigned j = 0; j < KIT; j++)
        main_hold[1 + j] = kit_make(j);
    static const size_t lsize[NLARGE_KIT] = {100 * 1024, 1024 * 1024, 2 * 1024 * 1024 + 16};
    static const int lkind[NLARGE_KIT] = {K_CONS, K_ATOMIC, K_TRACED};
    for (unsigned j = 0; j < NLARGE_KIT; j++) {
        void *o = alloc_kind(lkind[j], lsize[j]);
        obj_fill(o, lkind[j] == K_ATOMIC ? NULL : main_hold[1 + j]);
        main_hold[1 + KIT + j] = o;
    }
    main_weak[0] = main_hold[1 + 3];
    main_weak[1] = main_hold[1 + 7];
    EXPECT(rudo_weak_register(&main_weak[0]) == RUDO_OK);
    EXPECT(rudo_weak_register_long(&main_weak[1]) == RUDO_OK);
}

/* Replaces a kit object (not the two the weak slots name). */
static void main_mutate(void) {
    unsigned j = (unsigned)(test_rand(&main_rng) % KIT);
    if (j == 3 || j == 7)
        return;
    main_hold[1 + j] = kit_make(j);
}

static bool main_ok(void) {
    bool ok = tree_ok(main_hold[0], TREE_DEPTH);
    EXPECT(ok);
    for (unsigned j = 1; j < HOLD_N; j++) {
        bool o = obj_ok(main_hold[j], 1);
        if (!o)
            say("main structure: object %u (%p) is not intact [%s]\n", j, main_hold[j],
                case_desc);
        ok = ok && o;
    }
    bool w = main_weak[0] == main_hold[1 + 3] && main_weak[1] == main_hold[1 + 7];
    EXPECT(w);
    return ok && w;
}

static void main_drop(void) {
    free(main_hold);
    free(main_weak);
    main_hold = main_weak = NULL;
}

/* ---- the child ---------------------------------------------------------------------- */

static unsigned cur_markers;

static void child_alarm(int sig) {
    (void)sig;
    static const char msg[] = "child: still running after 60 s (a hang) [";
    (void)!write(2, msg, sizeof msg - 1);
    (void)!write(2, case_desc, strlen(case_desc));
    (void)!write(2, "]\n", 2);
    _exit(4);
}

#define CHOLD (1 << 16)
static void **chold; /* the child's objects: malloc'd, a registered range */
static size_t nchold;

static void child_hold(void *o) {
    if (nchold < CHOLD)
        chold[nchold++] = o;
}

static void child_collect(void) {
    rudo_stats a, b;
    rudo_get_stats(&a);
    rudo_collect();
    if (cur.gen)
        rudo_collect_minor();
    rudo_get_stats(&b);
    EXPECT(b.collections >= a.collections + (cur.gen ? 2 : 1));
    atomic_fetch_add(&shared->child_collections, b.collections - a.collections);
    EXPECT(rudo__debug_markers() == cur_markers);
    EXPECT(rudo__debug_markers_quiescent());
    rudo__debug_verify_heap();
}

/* Every kind in every size class (`full`: a page's worth and one more of
 * each), then large ones: each zeroed, of the kind and size asked; every
 * eighth is held, filled. */
static void child_alloc_round(bool full) {
    for (int k = 0; k < NK; k++) {
        for (unsigned c = 0; c < RUDO_NCLASSES; c++) {
            size_t size = rudo__class_size[c];
            size_t n = full && k != K_FIN ? RUDO_PAGE_SIZE / size + 1 : 3;
            bool ok = true;
            for (size_t i = 0; i < n; i++) {
                void *o = alloc_kind(k, size);
                ok = ok && rudo_size(o) == size && rudo_kind_of(o) == kinds[k] &&
                     all_zero(o, size);
                if (!ok) {
                    say("child: allocation %zu of %s size %zu at %p: size %zu kind %u, %s\n", i,
                        k_name[k], size, o, rudo_size(o), (unsigned)rudo_kind_of(o),
                        all_zero(o, size) ? "zeroed" : "NOT zeroed");
                    break;
                }
                /* Objects of the finalized kind are all filled: the
                 * finalizer then counts only vanished threads' unfilled
                 * ones. */
                if (i % 8 == 0) {
                    obj_fill(o, k == K_ATOMIC || !nchold ? NULL : chold[nchold - 1]);
                    child_hold(o);
                } else if (k == K_FIN) {
                    obj_fill(o, NULL);
                }
            }
            EXPECT(ok);
        }
        static const size_t lsize[] = {100 * 1024, 600 * 1024, 2 * 1024 * 1024};
        for (unsigned j = 0; j < 3; j++) {
            if (!full && (unsigned)k % 3 != j)
                continue;
            void *o = alloc_kind(k, lsize[j]);
            bool ok = rudo_size(o) == lsize[j] && rudo_kind_of(o) == kinds[k] &&
                      all_zero(o, lsize[j]);
            if (!ok)
                say("child: large %s of %zu at %p: size %zu, %s\n", k_name[k], lsize[j], o,
                    rudo_size(o), all_zero(o, lsize[j]) ? "zeroed" : "NOT zeroed");
            EXPECT(ok);
            obj_fill(o, NULL);
            child_hold(o);
        }
    }
}

static void child_check_held(void) {
    size_t bad = 0;
    for (size_t i = 0; i < nchold; i++)
        if (!obj_ok(chold[i], 1))
            bad++;
    if (bad)
        say("child: %zu of %zu held objects not intact [%s]\n", bad, nchold, case_desc);
    EXPECT(bad == 0);
}

/* What the vanished threads left: their weak slots, their guardians. */
static void child_check_vanished(bool tally) {
    for (unsigned i = 0; i < nthr; i++) {
        thr *t = &thrs[i];
        if (tally) {
            atomic_fetch_add(&shared->phases[atomic_load(&t->phase)], 1);
            atomic_fetch_add(&shared->vanished, 1);
        }
        for (unsigned j = 0; j <= NWEAK; j++) {
            void **s = &t->wslots[j];
            if (!rudo_weak_registered(s))
                continue;
            void *v = *s;
            if (v) {
                atomic_fetch_add(&shared->weak_live, 1);
                EXPECT(obj_ok(v, 0));
            } else {
                atomic_fetch_add(&shared->weak_null, 1);
            }
        }
        void *g;
        while ((g = rudo_guardian_poll(t->guard)) != NULL) {
            atomic_fetch_add(&shared->guard_polled, 1);
            EXPECT(obj_ok(g, 0));
        }
    }
}

static void *child_thread(void *arg) {
    uint64_t rng = (uintptr_t)arg;
    EXPECT(rudo_thread_attach() == RUDO_OK);
    test_tnode *tree = tree_make(8, &rng);
    void *objs[NK * 18];
    unsigned n = 0;
    for (int k = 0; k < NK; k++)
        for (unsigned c = 0; c < RUDO_NCLASSES; c += 4) {
            void *o = alloc_kind(k, rudo__class_size[c]);
            EXPECT(all_zero(o, rudo__class_size[c]));
            obj_fill(o, k == K_ATOMIC || !n ? NULL : objs[n - 1]);
            objs[n++] = o;
        }
    for (int r = 0; r < 2; r++) {
        rudo_collect();
        if (cur.gen)
            rudo_collect_minor();
        EXPECT(tree_ok(tree, 8));
        bool ok = true;
        for (unsigned i = 0; i < n; i++)
            ok = ok && obj_ok(objs[i], 1);
        EXPECT(ok);
    }
    rudo_thread_detach();
    return NULL;
}

static int child_main(int site, int fno) {
    in_child = true;
    atomic_store(&fails, 0);
    atomic_store(&nprinted, 0);
    size_t len = strlen(case_desc);
    snprintf(case_desc + len, sizeof case_desc - len, " fork %d from %s", fno, site_name[site]);
    signal(SIGALRM, child_alarm);
    alarm(60);
    atomic_fetch_add(&shared->children, 1);
    if (site == SITE_BLOCKED)
        rudo_blocking_leave();
    if (site == SITE_DETACHED) {
        EXPECT(!rudo_thread_is_attached());
        EXPECT(rudo_thread_attach() == RUDO_OK);
    }
    EXPECT(rudo_thread_is_attached());
    rudo_stats st;
    rudo_get_stats(&st);
    EXPECT(st.threads_attached == 1);
    EXPECT(main_ok());
    chold = calloc(CHOLD, sizeof *chold);
    if (!chold) {
        say("child: calloc failed\n");
        _exit(2);
    }
    rudo_root_add_range(chold, chold + CHOLD);
    child_check_vanished(true); /* before any collection of the child */
    int rounds = SLOW_BUILD ? 2 : 3;
    for (int r = 0; r < rounds; r++) {
        child_alloc_round(r == 0);
        child_collect();
        child_check_held();
        EXPECT(main_ok());
        if (r == 0)
            child_check_vanished(false);
        /* Drop every other one: garbage for the next round. */
        size_t m = 0;
        for (size_t i = 0; i < nchold; i++)
            if (i % 2 == 0)
                chold[m++] = chold[i];
        for (size_t i = m; i < nchold; i++)
            chold[i] = NULL;
        nchold = m;
    }
    child_check_vanished(false); /* after more collections */
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&th[i], NULL, child_thread,
                           (void *)(uintptr_t)(77 + i * 1000 + fno)) != 0) {
            say("child: pthread_create failed\n");
            _exit(2);
        }
    rudo_blocking_enter();
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    rudo_blocking_leave();
    child_collect();
    child_check_held();
    EXPECT(main_ok());
    rudo_get_stats(&st);
    EXPECT(st.threads_attached == 1);
    rudo_heap_destroy();
    unsigned long f = atomic_load(&fails);
    if (f)
        say("child: %lu failures [%s]\n", f, case_desc);
    return f ? 1 : 0;
}

/* ---- one case ---------------------------------------------------------------------- */

static int nforks = 3;
static bool verbose;
static unsigned long forks_done, children_failed, cases_run;
static unsigned long site_count[NSITES];
static uint64_t ns_children, ns_progress; /* time waiting for them */

static void describe(const kase *c, uint64_t seed) {
    snprintf(case_desc, sizeof case_desc,
             "markers %u, %s, page batch %s, interior %s, activity %s, %u threads "
             "(TEST_SEED=%llu TEST_CASE=%u:%d:%u:%d:%s:%u)",
             c->markers, c->gen ? "generational" : "not generational",
             c->batch == 1 ? "1" : c->batch == 8 ? "8" : "adaptive",
             c->interior ? "on" : "off", act_name[c->act], c->nthreads,
             (unsigned long long)seed, c->markers, c->gen,
             c->batch, c->interior, act_name[c->act], c->nthreads);
}

/* Waits (in blocking regions) until every thread has made `need` steps
 * since `base`; false (and a message) after 30 s. */
static bool wait_progress(const uint64_t *base, uint64_t need) {
    uint64_t t0 = test_now_ns();
    for (;;) {
        bool all = true;
        for (unsigned i = 0; i < nthr; i++)
            if (atomic_load_explicit(&thrs[i].progress, memory_order_acquire) < base[i] + need)
                all = false;
        if (all)
            return true;
        if (test_now_ns() - t0 > 30ull * 1000000000u) {
            for (unsigned i = 0; i < nthr; i++)
                say("thread %u (%s): %lu steps, phase %s\n", i, act_name[act_of(&thrs[i])],
                    (unsigned long)atomic_load(&thrs[i].progress),
                    ph_name[atomic_load(&thrs[i].phase)]);
            EXPECT(!"every thread makes progress between forks");
            return false;
        }
        rudo_blocking_enter();
        sleep_us(100);
        rudo_blocking_leave();
    }
}

static void do_fork(int fno, uint64_t *rng, int site) {
    /* A random moment. */
    uint64_t r = test_rand(rng) % 4;
    long us = (long)(test_rand(rng) % 2000);
    if (r == 1) {
        rudo_blocking_enter();
        sleep_us(us);
        rudo_blocking_leave();
    } else if (r == 2) {
        uint64_t end = test_now_ns() + (uint64_t)us * 1000u;
        while (test_now_ns() < end) {
            void *o = alloc_kind((int)(test_rand(rng) % 4), rudo__class_size[test_rand(rng) % 30]);
            obj_fill(o, NULL);
        }
    } else if (r == 3) {
        uint64_t end = test_now_ns() + (uint64_t)us * 1000u;
        while (test_now_ns() < end)
            rudo_safepoint();
    }
    main_mutate();
    if (site == SITE_DETACHED)
        rudo_thread_detach();
    else if (site == SITE_BLOCKED)
        rudo_blocking_enter();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0)
        _exit(child_main(site, fno));
    if (site == SITE_BLOCKED)
        rudo_blocking_leave();
    else if (site == SITE_DETACHED)
        EXPECT(rudo_thread_attach() == RUDO_OK);
    EXPECT(pid > 0);
    if (pid <= 0)
        return;
    int status = 0;
    uint64_t t0 = test_now_ns();
    atomic_store(&pause_flag, 1);
    /* The child's alarm ends a hang, except where its signal cannot be
     * delivered (TSan defers it while the child sits in a libc wait that
     * is not intercepted): then the parent kills it after 90 s. */
    bool killed = false;
    pid_t w;
    rudo_blocking_enter();
    while ((w = waitpid(pid, &status, WNOHANG)) == 0) {
        if (!killed && test_now_ns() - t0 > 90ull * 1000000000u) {
            say("FAIL case %s, fork %d from %s: child still running after 90 s, killing it\n",
                case_desc, fno, site_name[site]);
            if (getenv("TEST_HANG_STACKS")) {
                char cmd[128];
                snprintf(cmd, sizeof cmd, "gdb -p %d -batch -ex 'thread apply all bt 20' 1>&2",
                         (int)pid);
                (void)!system(cmd);
            }
            kill(pid, SIGKILL);
            killed = true;
        }
        sleep_us(500);
    }
    rudo_blocking_leave();
    atomic_store(&pause_flag, 0);
    ns_children += test_now_ns() - t0;
    forks_done++;
    site_count[site]++;
    bool ok = w == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok) {
        children_failed++;
        say("FAIL case %s, fork %d from %s: child %s %d\n", case_desc, fno, site_name[site],
            WIFSIGNALED(status) ? "killed by signal" : "exited with status",
            WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
    EXPECT(ok);
}

static void register_kinds(void) {
    kinds[K_TRACED] = rudo_kind_traced("forkm/traced", trace_obj);
    kinds[K_LAYOUT] = rudo_kind_layout("forkm/layout", 4, &layout_bits);
    kinds[K_CONS] = RUDO_KIND_CONSERVATIVE;
    kinds[K_ATOMIC] = RUDO_KIND_ATOMIC;
    kinds[K_FIN] = rudo_kind_traced("forkm/final", trace_obj);
    rudo_kind_set_finalizer(kinds[K_FIN], fin_check, NULL);
    k_tree = rudo_kind_traced("forkm/tree", trace_tree);
}

static void run_case(const kase *c, uint64_t seed) {
    describe(c, seed);
    if (verbose) {
        printf("case %s\n", case_desc);
        fflush(stdout);
    }
    cur = *c;
    cur_markers = c->markers;
    if (c->batch) {
        char b[16];
        snprintf(b, sizeof b, "%u", c->batch);
        setenv("RUDO_PAGE_BATCH", b, 1);
    } else {
        unsetenv("RUDO_PAGE_BATCH");
    }
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.markers = c->markers;
    cfg.generational = c->gen;
    cfg.interior_pointers = c->interior;
    cfg.initial_heap = 2u << 20;
    cfg.nursery = 512u << 10;
    /* libtsan's static data is large: scanning it makes every collection
     * slow there. */
    cfg.scan_static_data = !TEST_UNDER_TSAN;
    test_heap_create(&cfg);
    register_kinds();
    main_rng = test_mix64(seed) | 1;
    mix_off = test_mix64(seed ^ 0x6d6978);
    main_build();
    uint64_t rng = test_mix64(seed ^ 0xf0f0) | 1;
    atomic_store(&stop_flag, 0);
    nthr = c->nthreads;
    main_tid = pthread_self();
    uint64_t base[MAXT];
    for (unsigned i = 0; i < nthr; i++) {
        thr *t = &thrs[i];
        t->idx = (int)i;
        t->act = c->act;
        t->seed = test_mix64(seed + i * 0x1234567ULL);
        atomic_store(&t->progress, 0);
        atomic_store(&t->phase, PH_NONE);
        t->wslots = calloc(NWEAK + 1, sizeof *t->wslots);
        t->rootslot = calloc(1, sizeof *t->rootslot);
        t->guard = rudo_guardian_new();
        if (!t->wslots || !t->rootslot || !t->guard) {
            perror("calloc");
            exit(2);
        }
        base[i] = 0;
    }
    atomic_store(&tids_ready, 0);
    for (unsigned i = 0; i < nthr; i++)
        if (pthread_create(&thrs[i].tid, NULL, thr_main, &thrs[i]) != 0) {
            perror("pthread_create");
            exit(2);
        }
    atomic_store_explicit(&tids_ready, 1, memory_order_release);
    int site0 = (int)(test_rand(&rng) % NSITES);
    for (int f = 0; f < nforks; f++) {
        uint64_t t0 = test_now_ns();
        bool moved = wait_progress(base, 2);
        ns_progress += test_now_ns() - t0;
        if (!moved)
            break;
        do_fork(f, &rng, (site0 + f) % NSITES);
        for (unsigned i = 0; i < nthr; i++)
            base[i] = atomic_load(&thrs[i].progress);
    }
    atomic_store(&stop_flag, 1);
    rudo_blocking_enter();
    for (unsigned i = 0; i < nthr; i++)
        pthread_join(thrs[i].tid, NULL);
    rudo_blocking_leave();
    EXPECT(main_ok());
    rudo_collect();
    if (c->gen)
        rudo_collect_minor();
    rudo__debug_verify_heap();
    EXPECT(main_ok());
    rudo_stats st;
    rudo_get_stats(&st);
    EXPECT(st.threads_attached == 1);
    rudo_heap_destroy();
    for (unsigned i = 0; i < nthr; i++) {
        free(thrs[i].wslots);
        free(thrs[i].rootslot);
        thrs[i].guard = NULL; /* freed with the heap */
    }
    main_drop();
    cases_run++;
}

/* ---- main ---------------------------------------------------------------------- */

static int act_by_name(const char *s) {
    for (int a = 0; a < NACT; a++)
        if (strcmp(s, act_name[a]) == 0)
            return a;
    return atoi(s);
}

int main(int argc, char **argv) {
    bool full = test_long_mode(argc, argv);
    if (TEST_UNDER_ASAN) {
        /* AddressSanitizer's allocator takes no lock around fork: a fork
         * while another thread is inside its malloc leaves that lock held
         * in the child, whose next malloc (rudo_thread_attach's calloc)
         * waits for ever (seen in CI: threads in asan_calloc's
         * GetFromAllocator). glibc's malloc, which the other builds use,
         * is fork-safe. Nothing of rudo's is checked here then. */
        printf("skipped under AddressSanitizer (its allocator is not fork-safe)\n");
        return 0;
    }
    test_start_watchdog();
    setvbuf(stdout, NULL, _IOLBF, 0);
    static const char *const env[] = {"RUDO_MARKERS", "RUDO_GENERATIONAL",
                                      "RUDO_INTERIOR_POINTERS", "RUDO_NURSERY",
                                      "RUDO_NURSERY_ADAPT", "RUDO_HEAP_INITIAL",
                                      "RUDO_HEAP_MAX", "RUDO_PAGE_BATCH"};
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i++)
        unsetenv(env[i]);
    shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    /* As an unsigned number: the per-case seeds printed are 64-bit. */
    const char *seed_s = getenv("TEST_SEED");
    uint64_t seed = (uint64_t)strtoull(seed_s && *seed_s ? seed_s : "0x666f726b", NULL, 0);
    long per_act = test_env_long("TEST_PER_ACT", 2);
    nforks = (int)test_env_long("TEST_FORKS", 3);
    verbose = test_env_long("TEST_VERBOSE", 0) != 0;
    const char *one = getenv("TEST_CASE");
    uint64_t t0 = test_now_ns();
    unsigned long planned = 0;
    unsigned long per_dim_markers[3] = {0}, per_dim_batch[3] = {0}, per_dim_gen[2] = {0},
                  per_dim_int[2] = {0}, per_dim_n[MAXT + 1] = {0};

    if (one && *one) {
        kase c = {0};
        char actbuf[32] = "";
        int g = 0, in = 0;
        if (sscanf(one, "%u:%d:%u:%d:%31[^:]:%u", &c.markers, &g, &c.batch, &in, actbuf,
                   &c.nthreads) != 6 ||
            c.nthreads < 1 || c.nthreads > MAXT) {
            fprintf(stderr, "TEST_CASE=markers:gen:batch:interior:activity:threads\n");
            return 2;
        }
        c.gen = g != 0;
        c.interior = in != 0;
        c.act = act_by_name(actbuf);
        if (c.act < 0 || c.act >= NACT) {
            fprintf(stderr, "unknown activity %s\n", actbuf);
            return 2;
        }
        printf("seed %llu, one case, %d forks\n", (unsigned long long)seed, nforks);
        long reps = test_env_long("TEST_REPEAT", 1);
        for (long r = 0; r < reps; r++)
            run_case(&c, seed + (uint64_t)r);
        planned = (unsigned long)reps;
    } else {
        printf("seed %llu, %s, %d forks per case\n", (unsigned long long)seed,
               full ? "full cross product" : "CI sample (TEST_LONG=1 for all)", nforks);
        unsigned long idx = 0;
        for (int a = 0; a < NACT; a++) {
            if (full) {
                for (unsigned mi = 0; mi < 3; mi++)
                    for (int g = 0; g < 2; g++)
                        for (unsigned bi = 0; bi < 3; bi++)
                            for (int in = 0; in < 2; in++)
                                for (unsigned n = 1; n <= MAXT; n++) {
                                    kase c = {markers_v[mi], batch_v[bi], n, g != 0, in != 0, a};
                                    planned++;
                                    run_case(&c, test_mix64(seed ^ ++idx));
                                    per_dim_markers[mi]++;
                                    per_dim_batch[bi]++;
                                    per_dim_gen[g]++;
                                    per_dim_int[in]++;
                                    per_dim_n[n]++;
                                }
            } else {
                /* Stratified: per_act cases of each activity, in turn
                 * generational and not; markers, batch and interior
                 * pointers (off in a third) cycle over the sample; the
                 * thread count and the case's seed come from the seed. */
                for (long j = 0; j < per_act; j++) {
                    uint64_t h = test_mix64(seed ^ (uint64_t)a << 32 ^ (uint64_t)j);
                    unsigned long ci = (unsigned long)a * (unsigned long)per_act + (unsigned long)j;
                    unsigned mi = (unsigned)(ci % 3), bi = (unsigned)(ci / 3 % 3);
                    int g = (int)((j + (per_act % 2 ? a : 0)) % 2);
                    int in = ci / 2 % 3 != 0;
                    unsigned n = 1 + (unsigned)(h % MAXT);
                    kase c = {markers_v[mi], batch_v[bi], n, g != 0, in != 0, a};
                    planned++;
                    run_case(&c, h);
                    per_dim_markers[mi]++;
                    per_dim_batch[bi]++;
                    per_dim_gen[g]++;
                    per_dim_int[in]++;
                    per_dim_n[n]++;
                }
            }
        }
    }
    double secs = (double)(test_now_ns() - t0) / 1e9;
    printf("%lu cases (%lu planned), %lu forks (from running %lu, blocking region %lu, "
           "detached %lu), %lu children failed, %.2f s\n",
           cases_run, planned, forks_done, site_count[0], site_count[1], site_count[2],
           children_failed, secs);
    printf("waiting for children %.2f s, for progress %.2f s\n", (double)ns_children / 1e9,
           (double)ns_progress / 1e9);
    printf("markers 1/2/4: %lu/%lu/%lu; batch 1/8/adaptive: %lu/%lu/%lu; generational "
           "off/on: %lu/%lu; interior off/on: %lu/%lu; threads 1..6:",
           per_dim_markers[0], per_dim_markers[1], per_dim_markers[2], per_dim_batch[0],
           per_dim_batch[1], per_dim_batch[2], per_dim_gen[0], per_dim_gen[1], per_dim_int[0],
           per_dim_int[1]);
    for (unsigned n = 1; n <= MAXT; n++)
        printf(" %lu", per_dim_n[n]);
    printf("\nchildren: %lu ran, %lu threads vanished, %lu collections; finalizers run "
           "there %lu (%lu on unpublished objects); weak slots of vanished threads: %lu "
           "live, %lu cleared; guardians handed back %lu; parent finalizers %lu\n",
           atomic_load(&shared->children), atomic_load(&shared->vanished),
           atomic_load(&shared->child_collections), atomic_load(&shared->fin_runs),
           atomic_load(&shared->fin_unpublished), atomic_load(&shared->weak_live),
           atomic_load(&shared->weak_null), atomic_load(&shared->guard_polled),
           atomic_load(&fin_runs_parent));
    printf("phases the vanished threads were caught in:");
    for (int p = 0; p < NPH; p++)
        if (atomic_load(&shared->phases[p]))
            printf(" %s %lu", ph_name[p], atomic_load(&shared->phases[p]));
    printf("\n");
    CHECK(cases_run > 0);
    CHECK(forks_done == cases_run * (unsigned long)nforks);
    CHECK_EQ(atomic_load(&shared->children), forks_done);
    CHECK_EQ(children_failed, 0ul);
    CHECK_EQ(atomic_load(&fails), 0ul);
    return test_report();
}
